//! Wiring: discovery, device health rescans, the two device plugins and the metrics endpoint.

use crate::discovery::{DiscoveryError, SgxNode, discover};
use crate::metrics::{Exporter, Metrics};
use crate::plugin::{PluginConfig, PluginError, SgxResource, run_plugin};
use crate::probe::{DeviceNodes, Probe, ProbeError};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Discovery failed at startup.
    #[error("SGX discovery failed")]
    Discovery(#[from] DiscoveryError),
    /// A device plugin stopped.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The Kubernetes client could not be configured.
    #[error(transparent)]
    Kube(#[from] crate::patcher::PatchError),
    /// The metrics listener failed.
    #[error("metrics listener {addr}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// The validated node-agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Kubelet device-plugin directory.
    pub device_plugin_dir: PathBuf,
    /// `/proc` (committed EPC).
    pub proc_root: PathBuf,
    /// Devices advertised for `sgx.intel.com/enclave`.
    pub enclave_limit: u32,
    /// Devices advertised for `sgx.intel.com/provision`.
    pub provision_limit: u32,
    /// `--epc-size`.
    pub epc_size: Option<u64>,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Socket deletion checks and first Register retry delay.
    pub poll_interval: Duration,
    /// How often device nodes are rescanned for health.
    pub rescan_interval: Duration,
    /// Patch this node's capacity and labels, if set.
    pub node_patch: Option<NodePatchConfig>,
}

/// Which node to patch and how to reach the API server.
#[derive(Debug, Clone)]
pub struct NodePatchConfig {
    /// The node's name (`--node-name`, `$NODE_NAME`).
    pub node_name: String,
    /// `--kubeconfig`; `None` = in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// How often the node object is re-read to repair drift.
    pub resync: Duration,
}

/// Rescans the device nodes every `interval` and publishes changes. Probe errors are logged
/// and the last known state kept.
pub async fn watch_devices(
    probe: Arc<dyn Probe>,
    tx: watch::Sender<DeviceNodes>,
    metrics: Metrics,
    interval: Duration,
) {
    loop {
        let current = *tx.borrow();
        for resource in SgxResource::ALL {
            metrics.set_device_health(resource, resource.healthy(&current));
        }
        tokio::time::sleep(interval).await;
        match probe.device_nodes() {
            Ok(now) => {
                tx.send_if_modified(|old| {
                    if *old == now {
                        return false;
                    }
                    tracing::info!(?now, "SGX device nodes changed");
                    *old = now;
                    true
                });
            }
            Err(e) => tracing::warn!(error = %crate::Chain(&e), "device rescan failed"),
        }
    }
}

fn log_discovery(node: &SgxNode) {
    tracing::info!(
        capable = node.capable(),
        sgx = node.features.sgx,
        flc = node.features.flc,
        sgx2 = node.sgx2(),
        kss = node.kss(),
        aex_notify = node.aex_notify(),
        epc_bytes = node.epc_bytes,
        epc_source = node.epc_source.as_str(),
        epc_sections = node.epc_sections(),
        numa_nodes = node.numa.len(),
        sgx_enclave = node.devices.enclave,
        sgx_provision = node.devices.provision,
        "SGX discovery"
    );
    if node.devices.legacy_enclave || node.devices.legacy_provision {
        tracing::warn!(
            "legacy /dev/sgx/* device nodes found (out-of-tree DCAP driver); they are reported but not handed out"
        );
    }
}

/// Runs the agent until a component fails. `registry` is the process's one metrics registry
/// (created by the binary): the agent registers its metrics in it and serves it at
/// `--metrics-listen`.
pub async fn run(
    cfg: AgentConfig,
    probe: Arc<dyn Probe>,
    mut registry: Registry,
) -> Result<(), AgentError> {
    let node = discover(probe.as_ref(), cfg.epc_size)?;
    log_discovery(&node);
    let metrics = Metrics::register(&mut registry);
    metrics.set_discovery(&node);
    let (health_tx, health_rx) = watch::channel(node.devices);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(np) = cfg.node_patch.clone() {
        let client = crate::patcher::client(np.kubeconfig.as_deref()).await?;
        let health = health_rx.clone();
        let node = node.clone();
        let (pods_client, pods_node, pods_metrics, resync) = (
            client.clone(),
            np.node_name.clone(),
            metrics.clone(),
            np.resync,
        );
        tasks.spawn(async move {
            crate::patcher::run_patcher(client, np.node_name, node, health, np.resync).await;
            Ok(())
        });
        tasks.spawn(async move {
            crate::pods::run_pod_monitor(pods_client, pods_node, pods_metrics, resync).await;
            Ok(())
        });
    }
    let watch_metrics = metrics.clone();
    tasks.spawn(async move {
        watch_devices(probe, health_tx, watch_metrics, cfg.rescan_interval).await;
        Ok(())
    });
    for (resource, count) in [
        (SgxResource::Enclave, cfg.enclave_limit),
        (SgxResource::Provision, cfg.provision_limit),
    ] {
        let plugin = PluginConfig {
            dir: cfg.device_plugin_dir.clone(),
            resource,
            count,
            poll_interval: cfg.poll_interval,
        };
        let health = health_rx.clone();
        let metrics = metrics.clone();
        tasks.spawn(async move { Ok(run_plugin(plugin, health, metrics).await?) });
    }
    if let Some(addr) = cfg.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Metrics { addr, source })?;
        tracing::info!(%addr, "serving /metrics");
        let exporter = Exporter::new(registry, metrics.clone(), cfg.proc_root.clone());
        tasks.spawn(async move {
            exporter
                .serve(listener)
                .await
                .map_err(|source| AgentError::Metrics { addr, source })
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(join) => tracing::error!(error = %join, "agent task ended abnormally"),
        }
    }
    Ok(())
}

/// Converts a probe construction error for callers that build the probe themselves.
impl From<ProbeError> for AgentError {
    fn from(e: ProbeError) -> Self {
        Self::Discovery(DiscoveryError::Probe(e))
    }
}
