//! RFC 6902 JSON Patch operations, as the admission response carries them.

use serde::Serialize;
use serde_json::Value;

/// One JSON Patch operation. Only the two operations the mutator needs are modelled: `add`
/// (which also replaces an existing object member) and `remove`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
#[non_exhaustive]
pub enum PatchOp {
    /// Add `value` at `path` (replacing an object member that is already there).
    Add {
        /// RFC 6901 JSON Pointer.
        path: String,
        /// The value to add.
        value: Value,
    },
    /// Remove the value at `path`.
    Remove {
        /// RFC 6901 JSON Pointer.
        path: String,
    },
}

impl PatchOp {
    /// The JSON Pointer this operation targets.
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. } | PatchOp::Remove { path } => path,
        }
    }
}

/// An ordered JSON Patch; empty when the object needs no change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Patch(pub Vec<PatchOp>);

impl Patch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[PatchOp] {
        &self.0
    }

    /// The patch as RFC 6902 JSON text.
    pub fn to_json(&self) -> String {
        // Serializing strings and `Value`s cannot fail; fall back to an empty patch regardless.
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".to_owned())
    }

    pub(crate) fn add(&mut self, path: String, value: Value) {
        self.0.push(PatchOp::Add { path, value });
    }

    pub(crate) fn remove(&mut self, path: String) {
        self.0.push(PatchOp::Remove { path });
    }
}

/// Escapes one JSON Pointer reference token (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_tokens() {
        assert_eq!(escape("sgx.intel.com/epc"), "sgx.intel.com~1epc");
        assert_eq!(escape("a~b/c"), "a~0b~1c");
    }

    #[test]
    fn serializes_rfc6902() {
        let mut p = Patch::default();
        p.add("/a~1b".to_owned(), Value::from("1"));
        p.remove("/c".to_owned());
        assert_eq!(
            p.to_json(),
            r#"[{"op":"add","path":"/a~1b","value":"1"},{"op":"remove","path":"/c"}]"#
        );
    }
}
