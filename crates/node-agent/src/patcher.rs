//! Applies the [`crate::patch`] builders to the Node object with the kube client: labels on the
//! node, `sgx.intel.com/epc` on its `status` subresource. Re-read and re-applied every resync
//! period and whenever device health changes, so drift, a recreated node object and a node
//! that lost SGX are all handled by the same comparison.

use crate::discovery::SgxNode;
use crate::patch::{NodeFacts, capacity_patch, desired, label_patch};
use crate::probe::DeviceNodes;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// Why the node could not be patched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// `--kubeconfig` cannot be read or used.
    #[error("Kubernetes client configuration: {path}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: kube::config::KubeconfigError,
    },
    /// No `--kubeconfig`, none in the environment and no in-cluster service account.
    #[error("not running in a cluster; pass --kubeconfig or run as a DaemonSet")]
    InCluster {
        /// The cause.
        source: kube::config::InferConfigError,
    },
    /// The client could not be built from the configuration.
    #[error("Kubernetes client")]
    Client {
        /// The cause.
        source: kube::Error,
    },
    /// The API server refused or failed a request.
    #[error("node {node}: {action}")]
    Api {
        /// The node name.
        node: String,
        /// What was being done.
        action: &'static str,
        /// The cause.
        source: kube::Error,
    },
}

/// A kube client from `kubeconfig`; without one, from `$KUBECONFIG`, `~/.kube/config` or the
/// in-cluster service account (`kube_sgx::client`, the constructor the webhook's certgen uses).
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, PatchError> {
    use kube_sgx::client::ClientError;
    kube_sgx::client::client(kubeconfig)
        .await
        .map_err(|e| match e {
            ClientError::Kubeconfig { path, source } => PatchError::Kubeconfig { path, source },
            ClientError::NoConfig { source } => PatchError::InCluster { source },
            ClientError::Client { source } => PatchError::Client { source },
        })
}

/// What one reconcile did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// The labels were patched.
    pub labels: bool,
    /// The capacity was patched.
    pub capacity: bool,
}

/// Reads the node and sends the patches that bring it to `want` (nothing when in sync).
pub async fn reconcile(
    client: &kube::Client,
    node_name: &str,
    want: Option<&NodeFacts>,
) -> Result<Reconciled, PatchError> {
    let api: Api<Node> = Api::all(client.clone());
    let api_err = |action| {
        move |source| PatchError::Api {
            node: node_name.to_owned(),
            action,
            source,
        }
    };
    let node = api.get(node_name).await.map_err(api_err("get"))?;
    let mut done = Reconciled::default();
    let params = PatchParams::default();
    if let Some(ops) = label_patch(&node, want) {
        let patch: Patch<()> = Patch::Json(ops);
        api.patch(node_name, &params, &patch)
            .await
            .map_err(api_err("patch labels"))?;
        done.labels = true;
    }
    if let Some(ops) = capacity_patch(&node, want) {
        let patch: Patch<()> = Patch::Json(ops);
        api.patch_status(node_name, &params, &patch)
            .await
            .map_err(api_err("patch status capacity"))?;
        done.capacity = true;
    }
    Ok(done)
}

/// Keeps the node in sync: reconciles at start, every `resync`, and when device health
/// changes. Errors are logged and retried at the next tick; returns when `health` closes.
pub async fn run_patcher(
    client: kube::Client,
    node_name: String,
    mut node: SgxNode,
    mut health: watch::Receiver<DeviceNodes>,
    resync: Duration,
) {
    loop {
        node.devices = *health.borrow_and_update();
        let want = desired(&node);
        match reconcile(&client, &node_name, want.as_ref()).await {
            Ok(done) if done.labels || done.capacity => tracing::info!(
                node = %node_name,
                labels = done.labels,
                capacity = done.capacity,
                sgx = want.is_some(),
                "node patched"
            ),
            Ok(_) => tracing::debug!(node = %node_name, "node in sync"),
            Err(e) => {
                tracing::warn!(error = %crate::Chain(&e), "node patch failed; retrying at the next resync")
            }
        }
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(resync) => {}
        }
    }
}
