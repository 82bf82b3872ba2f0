//! Pure builders for the Node patches: `status.capacity["sgx.intel.com/epc"]` (bytes) and the
//! SGX labels, as RFC 6902 JSON patches computed against the node as it is now, so an in-sync
//! node gets no request, drift is repaired and a node that lost SGX is cleaned up.
//!
//! These live here rather than in `kube-sgx` (DESIGN §2 lists node patch builders there)
//! because that crate is owned by another work stream; they take and return plain JSON so
//! they can move without change.

use crate::discovery::SgxNode;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The node extended resource for EPC, in bytes.
pub const EPC_RESOURCE: &str = kube_sgx::EPC;
/// The label Intel's tooling and the DaemonSet selectors use.
pub const CAPABLE_LABEL: &str = "sgx.intel.com/capable";
/// The prefix of confkube's detail labels.
pub const DETAIL_PREFIX: &str = "sgx.confkube.io/";

/// What the node object should say about SGX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// `status.capacity["sgx.intel.com/epc"]`.
    pub epc_bytes: u64,
    /// The SGX labels (capable + details).
    pub labels: BTreeMap<String, String>,
}

fn flag(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

/// The desired node facts, or `None` when the node cannot run enclaves (everything is removed).
pub fn desired(node: &SgxNode) -> Option<NodeFacts> {
    if !node.capable() {
        return None;
    }
    let mut labels = BTreeMap::new();
    labels.insert(CAPABLE_LABEL.to_owned(), "true".to_owned());
    let mut detail = |k: &str, v: String| {
        labels.insert(format!("{DETAIL_PREFIX}{k}"), v);
    };
    detail("sgx2", flag(node.sgx2()));
    detail("flc", flag(node.features.flc));
    detail("kss", flag(node.kss()));
    detail("aex-notify", flag(node.aex_notify()));
    detail("provision", flag(node.devices.provision));
    detail("epc-bytes", node.epc_bytes.to_string());
    detail("epc-sections", node.epc_sections().to_string());
    detail("epc-source", node.epc_source.as_str().to_owned());
    Some(NodeFacts {
        epc_bytes: node.epc_bytes,
        labels,
    })
}

/// Escapes one JSON-pointer token (`~` → `~0`, `/` → `~1`).
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn ours(label: &str) -> bool {
    label == CAPABLE_LABEL || label.starts_with(DETAIL_PREFIX)
}

/// The JSON patch for the node's labels (sent to the node object), or `None` when in sync.
pub fn label_patch(node: &Value, want: Option<&NodeFacts>) -> Option<Value> {
    let current = node.pointer("/metadata/labels").and_then(Value::as_object);
    let mut ops = Vec::new();
    if let Some(facts) = want {
        if current.is_none() && !facts.labels.is_empty() {
            ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
        }
        for (k, v) in &facts.labels {
            if current.and_then(|c| c.get(k)).and_then(Value::as_str) != Some(v.as_str()) {
                ops.push(json!({
                    "op": "add",
                    "path": format!("/metadata/labels/{}", escape_pointer(k)),
                    "value": v,
                }));
            }
        }
    }
    if let Some(current) = current {
        let mut stale: Vec<&String> = current
            .keys()
            .filter(|k| ours(k) && !want.is_some_and(|f| f.labels.contains_key(*k)))
            .collect();
        stale.sort();
        for k in stale {
            ops.push(json!({
                "op": "remove",
                "path": format!("/metadata/labels/{}", escape_pointer(k)),
            }));
        }
    }
    (!ops.is_empty()).then_some(Value::Array(ops))
}

/// The JSON patch for `status.capacity` (sent to the `status` subresource), or `None` when in
/// sync.
pub fn capacity_patch(node: &Value, want: Option<&NodeFacts>) -> Option<Value> {
    let capacity = node.pointer("/status/capacity").and_then(Value::as_object);
    let current = capacity
        .and_then(|c| c.get(EPC_RESOURCE))
        .and_then(Value::as_str);
    let path = format!("/status/capacity/{}", escape_pointer(EPC_RESOURCE));
    match want {
        Some(facts) => {
            let value = facts.epc_bytes.to_string();
            if current == Some(value.as_str()) {
                return None;
            }
            let mut ops = Vec::new();
            if node.pointer("/status").is_none() {
                ops.push(json!({"op": "add", "path": "/status", "value": {}}));
            }
            if capacity.is_none() {
                ops.push(json!({"op": "add", "path": "/status/capacity", "value": {}}));
            }
            ops.push(json!({"op": "add", "path": path, "value": value}));
            Some(Value::Array(ops))
        }
        None => capacity
            .is_some_and(|c| c.contains_key(EPC_RESOURCE))
            .then(|| json!([{"op": "remove", "path": path}])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover;
    use crate::probe::FixtureProbe;
    use std::path::PathBuf;

    fn facts(fixture: &str) -> Option<NodeFacts> {
        let probe = FixtureProbe::open(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(fixture),
        )
        .unwrap();
        desired(&discover(&probe, None).unwrap())
    }

    #[test]
    fn desired_labels_for_fixtures() {
        let two = facts("two-socket.json").unwrap();
        assert_eq!(two.epc_bytes, 34_292_629_504);
        let want: BTreeMap<String, String> = [
            ("sgx.intel.com/capable", "true"),
            ("sgx.confkube.io/aex-notify", "false"),
            ("sgx.confkube.io/epc-bytes", "34292629504"),
            ("sgx.confkube.io/epc-sections", "2"),
            ("sgx.confkube.io/epc-source", "cpuid"),
            ("sgx.confkube.io/flc", "true"),
            ("sgx.confkube.io/kss", "true"),
            ("sgx.confkube.io/provision", "true"),
            ("sgx.confkube.io/sgx2", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(two.labels, want);
        assert_eq!(facts("no-sgx.json"), None);
        assert_eq!(facts("no-flc.json"), None);
        let vm = facts("vm-hidden-leaf.json").unwrap();
        assert_eq!(vm.labels["sgx.confkube.io/epc-source"], "sysfs");
        assert_eq!(vm.labels["sgx.confkube.io/epc-sections"], "0");
    }

    #[test]
    fn escape_table() {
        for (raw, want) in [
            ("sgx.intel.com/epc", "sgx.intel.com~1epc"),
            ("a~b/c", "a~0b~1c"),
            ("plain", "plain"),
        ] {
            assert_eq!(escape_pointer(raw), want);
        }
    }

    #[test]
    fn capacity_and_label_patch_on_a_fresh_node() {
        let want = facts("one-socket.json").unwrap();
        let node = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/arch": "amd64"}},
                          "status": {"capacity": {"cpu": "2"}}});
        assert_eq!(
            capacity_patch(&node, Some(&want)).unwrap(),
            json!([{"op": "add", "path": "/status/capacity/sgx.intel.com~1epc", "value": "4261412864"}])
        );
        let labels = label_patch(&node, Some(&want)).unwrap();
        let ops = labels.as_array().unwrap();
        assert_eq!(ops.len(), want.labels.len());
        assert!(ops.contains(&json!({"op": "add", "path": "/metadata/labels/sgx.intel.com~1capable", "value": "true"})));
        assert!(ops.contains(
            &json!({"op": "add", "path": "/metadata/labels/sgx.confkube.io~1sgx2", "value": "true"})
        ));
    }

    #[test]
    fn in_sync_node_needs_no_patch_and_drift_is_repaired() {
        let want = facts("one-socket.json").unwrap();
        let mut labels = serde_json::Map::new();
        labels.insert("kubernetes.io/arch".into(), json!("amd64"));
        for (k, v) in &want.labels {
            labels.insert(k.clone(), json!(v));
        }
        let mut node = json!({"metadata": {"labels": labels},
                              "status": {"capacity": {"sgx.intel.com/epc": "4261412864"}}});
        assert_eq!(capacity_patch(&node, Some(&want)), None);
        assert_eq!(label_patch(&node, Some(&want)), None);
        node["metadata"]["labels"]["sgx.confkube.io/sgx2"] = json!("false");
        node["metadata"]["labels"]["sgx.confkube.io/stale-detail"] = json!("x");
        node["status"]["capacity"]["sgx.intel.com/epc"] = json!("1");
        assert_eq!(
            label_patch(&node, Some(&want)).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/labels/sgx.confkube.io~1sgx2", "value": "true"},
                {"op": "remove", "path": "/metadata/labels/sgx.confkube.io~1stale-detail"}
            ])
        );
        assert_eq!(
            capacity_patch(&node, Some(&want)).unwrap(),
            json!([{"op": "add", "path": "/status/capacity/sgx.intel.com~1epc", "value": "4261412864"}])
        );
    }

    #[test]
    fn sgx_gone_removes_only_ours() {
        let node = json!({"metadata": {"labels": {
                              "kubernetes.io/arch": "amd64",
                              "sgx.intel.com/capable": "true",
                              "sgx.confkube.io/flc": "true",
                              "intel.feature.node.kubernetes.io/sgx": "true"}},
                          "status": {"capacity": {"cpu": "2", "sgx.intel.com/epc": "5"}}});
        assert_eq!(
            capacity_patch(&node, None).unwrap(),
            json!([{"op": "remove", "path": "/status/capacity/sgx.intel.com~1epc"}])
        );
        assert_eq!(
            label_patch(&node, None).unwrap(),
            json!([
                {"op": "remove", "path": "/metadata/labels/sgx.confkube.io~1flc"},
                {"op": "remove", "path": "/metadata/labels/sgx.intel.com~1capable"}
            ])
        );
        let clean = json!({"metadata": {"labels": {"kubernetes.io/arch": "amd64"}},
                           "status": {"capacity": {"cpu": "2"}}});
        assert_eq!(capacity_patch(&clean, None), None);
        assert_eq!(label_patch(&clean, None), None);
    }

    #[test]
    fn bare_node_gets_containers_created() {
        let want = facts("one-socket.json").unwrap();
        let bare = json!({"metadata": {"name": "n1"}});
        let cap = capacity_patch(&bare, Some(&want)).unwrap();
        assert_eq!(
            cap,
            json!([
                {"op": "add", "path": "/status", "value": {}},
                {"op": "add", "path": "/status/capacity", "value": {}},
                {"op": "add", "path": "/status/capacity/sgx.intel.com~1epc", "value": "4261412864"}
            ])
        );
        let labels = label_patch(&bare, Some(&want)).unwrap();
        assert_eq!(
            labels[0],
            json!({"op": "add", "path": "/metadata/labels", "value": {}})
        );
    }
}
