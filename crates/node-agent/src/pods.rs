//! Pods bound to this node: requested EPC per container (the scheduler's view, next to the
//! committed EPC from `/proc`), and pods that request EPC without the enclave device — the
//! webhook missed them, so `/dev/sgx_enclave` will not be in the container. Those raise a
//! Warning Event (once per pod) and a metric.

use crate::metrics::Metrics;
use k8s_openapi::api::core::v1::{Container, Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ListParams, PostParams};
use kube_sgx::quantity::QuantityError;
use kube_sgx::{ENCLAVE, EPC};
use std::collections::BTreeSet;
use std::time::Duration;

/// The Event reason for a pod that requests EPC but not the enclave device.
pub const MISSING_ENCLAVE_REASON: &str = "SgxEnclaveDeviceMissing";

/// Why a pod's EPC request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PodError {
    /// The `sgx.intel.com/epc` quantity is not a whole number of bytes.
    #[error("pod {namespace}/{pod} container {container}: {EPC} \"{value}\" {problem}")]
    Quantity {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The quantity as written.
        value: String,
        /// What is wrong with it (the same rule the admission webhook applies).
        problem: QuantityError,
    },
}

/// One container's EPC request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEpc {
    /// The namespace.
    pub namespace: String,
    /// The pod name.
    pub pod: String,
    /// The pod UID.
    pub pod_uid: String,
    /// The container name.
    pub container: String,
    /// `sgx.intel.com/epc` (limit, else request) in bytes.
    pub epc_bytes: u64,
    /// The container also gets `sgx.intel.com/enclave`.
    pub has_enclave: bool,
}

fn container_epc(meta: &ObjectMeta, c: &Container) -> Result<Option<ContainerEpc>, PodError> {
    let resources = c.resources.as_ref();
    let pick = |name: &str| {
        resources
            .and_then(|r| r.limits.as_ref().and_then(|l| l.get(name)))
            .or_else(|| resources.and_then(|r| r.requests.as_ref().and_then(|l| l.get(name))))
    };
    let Some(q) = pick(EPC) else {
        return Ok(None);
    };
    let namespace = meta.namespace.clone().unwrap_or_default();
    let pod = meta.name.clone().unwrap_or_default();
    let epc_bytes = kube_sgx::quantity::parse(&q.0)
        .map_err(|problem| PodError::Quantity {
            namespace: namespace.clone(),
            pod: pod.clone(),
            container: c.name.clone(),
            value: q.0.clone(),
            problem,
        })?
        .value;
    Ok(Some(ContainerEpc {
        namespace,
        pod,
        pod_uid: meta.uid.clone().unwrap_or_default(),
        container: c.name.clone(),
        epc_bytes,
        has_enclave: pick(ENCLAVE).is_some(),
    }))
}

/// The EPC-requesting containers of a pod (pure).
pub fn requested_epc(pod: &Pod) -> Result<Vec<ContainerEpc>, PodError> {
    let mut out = Vec::new();
    if let Some(spec) = &pod.spec {
        for c in &spec.containers {
            if let Some(epc) = container_epc(&pod.metadata, c)? {
                out.push(epc);
            }
        }
    }
    Ok(out)
}

/// Whether the pod still runs (finished pods hold no EPC).
fn active(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The Warning Event for a pod whose containers request EPC without the enclave device.
pub fn missing_enclave_event(
    pod: &Pod,
    containers: &[String],
    node_name: &str,
    now: Time,
) -> Event {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone();
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.sgx-")),
            namespace: namespace.clone(),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            name: Some(name),
            namespace,
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(MISSING_ENCLAVE_REASON.to_owned()),
        message: Some(format!(
            "container(s) {} request {EPC} but not {ENCLAVE}, so /dev/sgx_enclave \
             is not available to them; is the confkube admission webhook installed and reachable?",
            containers.join(", ")
        )),
        type_: Some("Warning".to_owned()),
        source: Some(EventSource {
            component: Some("confkube-node-agent".to_owned()),
            host: Some(node_name.to_owned()),
        }),
        reporting_component: Some("confkube.io/node-agent".to_owned()),
        reporting_instance: Some(node_name.to_owned()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    }
}

/// One pass: list this node's pods, publish requested EPC, raise Events for new pods that
/// miss the enclave device. `reported` remembers pod UIDs already reported.
pub async fn scan_pods(
    client: &kube::Client,
    node_name: &str,
    metrics: &Metrics,
    reported: &mut BTreeSet<String>,
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node_name}")))
        .await?;
    let mut requested = Vec::new();
    let mut missing = Vec::new();
    for pod in list.items.iter().filter(|p| active(p)) {
        match requested_epc(pod) {
            Ok(containers) => {
                let without: Vec<String> = containers
                    .iter()
                    .filter(|c| c.epc_bytes > 0 && !c.has_enclave)
                    .map(|c| c.container.clone())
                    .collect();
                if !without.is_empty() {
                    missing.push((pod, without));
                }
                requested.extend(containers);
            }
            Err(e) => tracing::warn!(error = %e, "skipping pod"),
        }
    }
    metrics.set_requested(&requested);
    metrics.set_missing_enclave(missing.iter().map(|(p, _)| {
        (
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
        )
    }));
    for (pod, containers) in missing {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if reported.contains(&uid) {
            continue;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let event = missing_enclave_event(pod, &containers, node_name, now);
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        events.create(&PostParams::default(), &event).await?;
        tracing::warn!(
            namespace = %ns,
            pod = pod.metadata.name.as_deref().unwrap_or(""),
            "pod requests EPC without the enclave device"
        );
        reported.insert(uid);
    }
    let live: BTreeSet<String> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    reported.retain(|uid| live.contains(uid));
    Ok(())
}

/// Scans this node's pods every `interval`; errors are logged and retried.
pub async fn run_pod_monitor(
    client: kube::Client,
    node_name: String,
    metrics: Metrics,
    interval: Duration,
) {
    let mut reported = BTreeSet::new();
    loop {
        if let Err(e) = scan_pods(&client, &node_name, &metrics, &mut reported).await {
            tracing::warn!(error = %e, "listing this node's pods failed; retrying");
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "app", "namespace": "ns1", "uid": "u1"},
            "spec": {"containers": containers}
        }))
        .unwrap()
    }

    #[test]
    fn requested_epc_table() {
        let p = pod(json!([
            {"name": "enclave", "resources": {"limits": {"sgx.intel.com/epc": "10Mi", "sgx.intel.com/enclave": "1"},
                                               "requests": {"sgx.intel.com/epc": "10Mi", "sgx.intel.com/enclave": "1"}}},
            {"name": "missed", "resources": {"requests": {"sgx.intel.com/epc": "4096"}}},
            {"name": "plain", "resources": {"limits": {"cpu": "1"}}},
            {"name": "none"}
        ]));
        let got = requested_epc(&p).unwrap();
        assert_eq!(
            got.iter()
                .map(|c| (c.container.as_str(), c.epc_bytes, c.has_enclave))
                .collect::<Vec<_>>(),
            [("enclave", 10 << 20, true), ("missed", 4096, false)]
        );
        assert_eq!(got[0].pod_uid, "u1");
        assert_eq!(got[0].namespace, "ns1");
    }

    /// `10.5Mi` is 11010048 bytes: the node agent used to call it a bad quantity (issue 12
    /// item 4); a fractional byte count is the error.
    #[test]
    fn bad_quantity_is_an_error() {
        let p =
            pod(json!([{"name": "c", "resources": {"limits": {"sgx.intel.com/epc": "10.5Mi"}}}]));
        assert_eq!(requested_epc(&p).unwrap()[0].epc_bytes, 11_010_048);
        let p = pod(json!([{"name": "c", "resources": {"limits": {"sgx.intel.com/epc": "1.5"}}}]));
        let err = requested_epc(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod ns1/app container c: sgx.intel.com/epc \"1.5\" is not a whole number"
        );
        assert!(matches!(
            err,
            PodError::Quantity {
                problem: QuantityError::NotIntegral,
                ..
            }
        ));
    }

    #[test]
    fn event_shape() {
        let p = pod(json!([]));
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let e = missing_enclave_event(&p, &["missed".to_owned()], "sgx-1", now);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["metadata"]["generateName"], "app.sgx-");
        assert_eq!(v["metadata"]["namespace"], "ns1");
        assert_eq!(
            v["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "name": "app", "namespace": "ns1", "uid": "u1"})
        );
        assert_eq!(v["reason"], "SgxEnclaveDeviceMissing");
        assert_eq!(v["type"], "Warning");
        assert_eq!(
            v["message"],
            "container(s) missed request sgx.intel.com/epc but not sgx.intel.com/enclave, so /dev/sgx_enclave is not available to them; is the confkube admission webhook installed and reachable?"
        );
        assert_eq!(v["source"]["host"], "sgx-1");
    }
}
