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
    /// Kubeconfig for the node patch; default: in-cluster service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Read the machine (CPUID, device nodes, NUMA EPC) from a JSON fixture instead of the host
    /// (testing; see docs/node-agent.md).
    #[arg(long, value_name = "FILE")]
    probe_fixture: Option<PathBuf>,
    /// How often device nodes are rescanned, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    rescan_interval_ms: u64,
    /// How often the plugin sockets are checked for deletion (kubelet restart), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    socket_poll_ms: u64,
    /// How often the node object is checked for drift, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    node_resync_secs: u64,
}

fn epc_size(s: &str) -> Result<u64, node_agent::discovery::EpcSizeError> {
    node_agent::discovery::parse_epc_size(s)
}

pub(crate) fn run(args: NodeAgentArgs) -> Result<ExitCode> {
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
            resync: Duration::from_secs(args.node_resync_secs),
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
        poll_interval: Duration::from_millis(args.socket_poll_ms),
        rescan_interval: Duration::from_millis(args.rescan_interval_ms),
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
