//! `confkube node-agent`: SGX discovery, the kubelet device plugin, the node's EPC capacity and
//! labels, and EPC metrics, on one node. Parses flags into a `node_agent::agent::AgentConfig`,
//! builds the probe and the tokio runtime, runs until SIGINT/SIGTERM or a component fails.
//! All logic is in the `node-agent` crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use node_agent::agent::{AgentConfig, NodePatchConfig};
use node_agent::probe::{FixtureProbe, HostProbe, Probe};

use super::runtime::{self, Threads};

/// Run the SGX node agent (a DaemonSet on SGX nodes): detect SGX and EPC (CPUID leaves
/// 0x7/0x12, /dev/sgx_*, sysfs), serve the kubelet device plugin for sgx.intel.com/enclave and
/// sgx.intel.com/provision, keep the node's sgx.intel.com/epc capacity and SGX labels, and
/// export EPC metrics.
#[derive(Debug, Args)]
pub(crate) struct NodeAgentArgs {
    /// Kubelet device-plugin directory (holds kubelet.sock; the plugin sockets are created here).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/kubelet/device-plugins"
    )]
    device_plugin_dir: PathBuf,
    /// Directory holding the SGX device nodes (sgx_enclave, sgx_provision, legacy sgx/*).
    #[arg(long, value_name = "DIR", default_value = "/dev")]
    dev_dir: PathBuf,
    /// sysfs root, for devices/system/node/node*/x86/sgx_total_bytes.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    sysfs_root: PathBuf,
    /// proc root, for committed EPC (/proc/<pid>/maps and cgroup; needs hostPID).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    proc_root: PathBuf,
    /// This node's name (for the capacity and label patch); default $NODE_NAME. Without it the
    /// node is not patched.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    node_name: Option<String>,
    /// Number of sgx.intel.com/enclave devices (containers that can share /dev/sgx_enclave).
    #[arg(long, value_name = "N", default_value_t = 110,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    enclave_limit: u32,
    /// Number of sgx.intel.com/provision devices.
    #[arg(long, value_name = "N", default_value_t = 110,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    provision_limit: u32,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Override the EPC size (bytes or a quantity like 94Mi), for VMs that hide CPUID leaf 0x12.
    #[arg(long, value_name = "QUANTITY", value_parser = epc_size)]
    epc_size: Option<u64>,
    /// Kubeconfig for the node patch; default: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Read the machine (CPUID, device nodes, NUMA EPC) from a JSON fixture instead of the host
    /// (testing; see docs/node-agent.md).
    #[arg(long, value_name = "FILE")]
    probe_fixture: Option<PathBuf>,
    /// How often device nodes are rescanned (a duration: `500ms`, `1s`; 10ms to 600s).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = rescan_interval)]
    rescan_interval: Duration,
    /// How often the plugin sockets are checked for deletion (kubelet restart; 10ms to 60s).
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = socket_poll)]
    socket_poll_interval: Duration,
    /// How often the node object is checked for drift (1s to 1d).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = node_resync)]
    node_resync_interval: Duration,
    /// The old spelling of `--rescan-interval`, in milliseconds (hidden; still accepted).
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "rescan_interval",
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    rescan_interval_ms: Option<u64>,
    /// The old spelling of `--socket-poll-interval`, in milliseconds (hidden; still accepted).
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "socket_poll_interval",
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    socket_poll_ms: Option<u64>,
    /// The old spelling of `--node-resync-interval`, in seconds (hidden; still accepted).
    #[arg(long, value_name = "SECONDS", hide = true, conflicts_with = "node_resync_interval",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    node_resync_secs: Option<u64>,
}

fn rescan_interval(s: &str) -> Result<Duration, String> {
    super::parse_duration_within(s, Duration::from_millis(10), Duration::from_secs(600))
}

fn socket_poll(s: &str) -> Result<Duration, String> {
    super::parse_duration_within(s, Duration::from_millis(10), Duration::from_secs(60))
}

fn node_resync(s: &str) -> Result<Duration, String> {
    super::parse_duration_within(s, Duration::from_secs(1), Duration::from_secs(86_400))
}

impl NodeAgentArgs {
    /// The three intervals (rescan, socket poll, node resync), the old `-ms`/`-secs`
    /// spellings winning when given (clap refuses both spellings at once).
    fn intervals(&self) -> (Duration, Duration, Duration) {
        (
            self.rescan_interval_ms
                .map_or(self.rescan_interval, Duration::from_millis),
            self.socket_poll_ms
                .map_or(self.socket_poll_interval, Duration::from_millis),
            self.node_resync_secs
                .map_or(self.node_resync_interval, Duration::from_secs),
        )
    }
}

fn epc_size(s: &str) -> Result<u64, node_agent::discovery::EpcSizeError> {
    node_agent::discovery::parse_epc_size(s)
}

pub(crate) fn run(args: NodeAgentArgs) -> Result<ExitCode> {
    let (rescan, socket_poll, resync) = args.intervals();
    let probe: Arc<dyn Probe> = match &args.probe_fixture {
        Some(path) => Arc::new(FixtureProbe::open(path).context("--probe-fixture")?),
        None => Arc::new(HostProbe::new(&args.dev_dir, &args.sysfs_root)),
    };
    let node_patch = args
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .map(|node_name| NodePatchConfig {
            node_name,
            kubeconfig: args.kubeconfig.clone(),
            resync,
        });
    if node_patch.is_none() {
        tracing::warn!(
            "no --node-name or NODE_NAME: the node's EPC capacity and labels are not patched"
        );
    }
    let cfg = AgentConfig {
        device_plugin_dir: args.device_plugin_dir,
        proc_root: args.proc_root,
        enclave_limit: args.enclave_limit,
        provision_limit: args.provision_limit,
        epc_size: args.epc_size,
        metrics_listen: args.metrics_listen,
        poll_interval: socket_poll,
        rescan_interval: rescan,
        node_patch,
    };
    // One thread is plenty for a few gRPC calls a second and keeps the idle RSS low.
    runtime::run(Threads::One, async move {
        tokio::select! {
            res = node_agent::agent::run(cfg, probe, runtime::metrics_registry()) => match res {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    let e = node_agent::Chain(&e);
                    tracing::error!(error = %e, "node agent stopped");
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            },
            () = runtime::shutdown_signal() => Ok(ExitCode::SUCCESS),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: NodeAgentArgs,
    }

    fn parse(extra: &[&str]) -> Result<NodeAgentArgs, clap::Error> {
        let argv = ["node-agent"].iter().chain(extra).copied();
        Cli::try_parse_from(argv).map(|c| c.args)
    }

    #[test]
    fn durations_and_the_old_spellings() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let d = parse(&[]).unwrap();
        assert_eq!(d.intervals(), (secs(1), ms(250), secs(60)));
        let new = parse(&[
            "--rescan-interval",
            "2s",
            "--socket-poll-interval",
            "100ms",
            "--node-resync-interval",
            "5m",
        ])
        .unwrap();
        assert_eq!(new.intervals(), (secs(2), ms(100), secs(300)));
        let old = parse(&[
            "--rescan-interval-ms",
            "2000",
            "--socket-poll-ms",
            "100",
            "--node-resync-secs",
            "300",
        ])
        .unwrap();
        assert_eq!(old.intervals(), new.intervals());
        let e = parse(&["--socket-poll-ms", "100", "--socket-poll-interval", "1s"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let e = parse(&["--rescan-interval", "5ms"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"5ms\" is out of range (10ms to 600s)"), "{e}");
        let e = parse(&["--node-resync-interval", "2d"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"2d\" is out of range (1000ms to 86400s)"),
            "{e}"
        );
        let e = parse(&["--socket-poll-ms", "5"]).unwrap_err().to_string();
        assert!(e.contains("5 is not in 10..=60000"), "{e}");
    }
}
