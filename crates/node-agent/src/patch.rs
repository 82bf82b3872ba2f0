//! What the Node object should say about SGX, from discovery: [`desired`] maps an [`SgxNode`]
//! to [`NodeFacts`]. The patch builders themselves are pure Kubernetes logic and live in
//! [`kube_sgx::node`] (re-exported here); [`crate::patcher`] sends them.

use crate::discovery::SgxNode;
pub use kube_sgx::node::{CAPABLE_LABEL, DETAIL_PREFIX, NodeFacts, capacity_patch, label_patch};
use std::collections::BTreeMap;

/// The node extended resource for EPC, in bytes.
pub const EPC_RESOURCE: &str = kube_sgx::EPC;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover;
    use crate::probe::FixtureProbe;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::{Value, json};
    use std::path::PathBuf;

    /// A typed Node from test JSON.
    fn n(v: &Value) -> Node {
        serde_json::from_value(v.clone()).unwrap()
    }

    /// A patch as JSON, for comparison with the expected operations.
    fn ops(p: Option<kube_sgx::Patch>) -> Option<Value> {
        p.map(|p| serde_json::to_value(p).unwrap())
    }

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

    /// Label names are escaped as RFC 6901 tokens (by jsonptr): `/` → `~1`, `~` → `~0`.
    #[test]
    fn escape_table() {
        for (raw, want) in [
            ("sgx.intel.com/epc", "/metadata/labels/sgx.intel.com~1epc"),
            (
                "sgx.confkube.io/a~b/c",
                "/metadata/labels/sgx.confkube.io~1a~0b~1c",
            ),
            (
                "sgx.confkube.io/plain",
                "/metadata/labels/sgx.confkube.io~1plain",
            ),
        ] {
            let want_facts = NodeFacts {
                epc_bytes: 1,
                labels: [(raw.to_owned(), "v".to_owned())].into_iter().collect(),
            };
            let patch = ops(label_patch(
                &n(&json!({"metadata": {"labels": {}}})),
                Some(&want_facts),
            ));
            assert_eq!(patch.unwrap()[0]["path"], want);
        }
    }

    #[test]
    fn capacity_and_label_patch_on_a_fresh_node() {
        let want = facts("one-socket.json").unwrap();
        let node = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/arch": "amd64"}},
                          "status": {"capacity": {"cpu": "2"}}});
        assert_eq!(
            ops(capacity_patch(&n(&node), Some(&want))).unwrap(),
            json!([{"op": "add", "path": "/status/capacity/sgx.intel.com~1epc", "value": "4261412864"}])
        );
        let labels = ops(label_patch(&n(&node), Some(&want))).unwrap();
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
        assert_eq!(ops(capacity_patch(&n(&node), Some(&want))), None);
        assert_eq!(ops(label_patch(&n(&node), Some(&want))), None);
        node["metadata"]["labels"]["sgx.confkube.io/sgx2"] = json!("false");
        node["metadata"]["labels"]["sgx.confkube.io/stale-detail"] = json!("x");
        node["status"]["capacity"]["sgx.intel.com/epc"] = json!("1");
        assert_eq!(
            ops(label_patch(&n(&node), Some(&want))).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/labels/sgx.confkube.io~1sgx2", "value": "true"},
                {"op": "remove", "path": "/metadata/labels/sgx.confkube.io~1stale-detail"}
            ])
        );
        assert_eq!(
            ops(capacity_patch(&n(&node), Some(&want))).unwrap(),
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
            ops(capacity_patch(&n(&node), None)).unwrap(),
            json!([{"op": "remove", "path": "/status/capacity/sgx.intel.com~1epc"}])
        );
        assert_eq!(
            ops(label_patch(&n(&node), None)).unwrap(),
            json!([
                {"op": "remove", "path": "/metadata/labels/sgx.confkube.io~1flc"},
                {"op": "remove", "path": "/metadata/labels/sgx.intel.com~1capable"}
            ])
        );
        let clean = json!({"metadata": {"labels": {"kubernetes.io/arch": "amd64"}},
                           "status": {"capacity": {"cpu": "2"}}});
        assert_eq!(ops(capacity_patch(&n(&clean), None)), None);
        assert_eq!(ops(label_patch(&n(&clean), None)), None);
    }

    #[test]
    fn bare_node_gets_containers_created() {
        let want = facts("one-socket.json").unwrap();
        let bare = json!({"metadata": {"name": "n1"}});
        let cap = ops(capacity_patch(&n(&bare), Some(&want))).unwrap();
        assert_eq!(
            cap,
            json!([
                {"op": "add", "path": "/status", "value": {}},
                {"op": "add", "path": "/status/capacity", "value": {}},
                {"op": "add", "path": "/status/capacity/sgx.intel.com~1epc", "value": "4261412864"}
            ])
        );
        let labels = ops(label_patch(&n(&bare), Some(&want))).unwrap();
        assert_eq!(
            labels[0],
            json!({"op": "add", "path": "/metadata/labels", "value": {}})
        );
    }
}
