//! Node patches: `status.capacity["sgx.intel.com/epc"]` (bytes) and the SGX labels, as RFC 6902
//! JSON patches computed against the node as it is now, so an in-sync node gets no request,
//! drift is repaired and a node that lost SGX is cleaned up. The node agent decides the
//! [`NodeFacts`] from discovery and sends the patches.

use std::collections::BTreeMap;

use json_patch::Patch;
use jsonptr::{Pointer, PointerBuf};
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use crate::EPC;
use crate::patch::Ops as _;

/// The label Intel's tooling and the DaemonSet selectors use.
pub const CAPABLE_LABEL: &str = "sgx.intel.com/capable";
/// The prefix of confkube's detail labels.
pub const DETAIL_PREFIX: &str = "sgx.confkube.io/";

const LABELS: &Pointer = Pointer::from_static("/metadata/labels");
const STATUS: &Pointer = Pointer::from_static("/status");
const CAPACITY: &Pointer = Pointer::from_static("/status/capacity");

/// What the node object should say about SGX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// `status.capacity["sgx.intel.com/epc"]`.
    pub epc_bytes: u64,
    /// The SGX labels (capable + details).
    pub labels: BTreeMap<String, String>,
}

/// Whether confkube owns `label` (it is removed when SGX is gone or the detail is dropped).
fn ours(label: &str) -> bool {
    label == CAPABLE_LABEL || label.starts_with(DETAIL_PREFIX)
}

/// The JSON patch for the node's labels (sent to the node object), or `None` when in sync.
/// `want` is `None` when the node cannot run enclaves: only confkube's labels are removed.
pub fn label_patch(node: &Node, want: Option<&NodeFacts>) -> Option<Patch> {
    let current = node.metadata.labels.as_ref();
    let mut patch = Patch::default();
    if let Some(facts) = want {
        if current.is_none() && !facts.labels.is_empty() {
            patch.add(LABELS.to_buf(), Value::Object(serde_json::Map::new()));
        }
        for (k, v) in &facts.labels {
            if current.and_then(|c| c.get(k)) != Some(v) {
                patch.add(LABELS.with_trailing_token(k), Value::String(v.clone()));
            }
        }
    }
    if let Some(current) = current {
        // BTreeMap keys are sorted: removals come in a stable order.
        for k in current
            .keys()
            .filter(|k| ours(k) && !want.is_some_and(|f| f.labels.contains_key(*k)))
        {
            patch.remove(LABELS.with_trailing_token(k));
        }
    }
    (!patch.is_empty()).then_some(patch)
}

/// The JSON patch for `status.capacity` (sent to the `status` subresource), or `None` when in
/// sync.
pub fn capacity_patch(node: &Node, want: Option<&NodeFacts>) -> Option<Patch> {
    let status = node.status.as_ref();
    let capacity = status.and_then(|s| s.capacity.as_ref());
    let current = capacity.and_then(|c| c.get(EPC)).map(|q| q.0.as_str());
    let path: PointerBuf = CAPACITY.with_trailing_token(EPC);
    match want {
        Some(facts) => {
            let value = facts.epc_bytes.to_string();
            if current == Some(value.as_str()) {
                return None;
            }
            let mut patch = Patch::default();
            if status.is_none() {
                patch.add(STATUS.to_buf(), Value::Object(serde_json::Map::new()));
            }
            if capacity.is_none() {
                patch.add(CAPACITY.to_buf(), Value::Object(serde_json::Map::new()));
            }
            patch.add(path, Value::String(value));
            Some(patch)
        }
        None => capacity.is_some_and(|c| c.contains_key(EPC)).then(|| {
            let mut patch = Patch::default();
            patch.remove(path);
            patch
        }),
    }
}
