//! RFC 6902 JSON Patch building: the `json-patch` crate's operations with `jsonptr` pointers,
//! so RFC 6901 escaping (`sgx.intel.com/epc` → `sgx.intel.com~1epc`) is the library's and a
//! patch is well-formed by construction.

use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use jsonptr::PointerBuf;
use serde_json::Value;

/// Appending operations to a [`Patch`].
pub(crate) trait Ops {
    /// `add` `value` at `path` (creating an object member or replacing it).
    fn add(&mut self, path: PointerBuf, value: Value);
    /// `remove` the value at `path`.
    fn remove(&mut self, path: PointerBuf);
}

impl Ops for Patch {
    fn add(&mut self, path: PointerBuf, value: Value) {
        self.0
            .push(PatchOperation::Add(AddOperation { path, value }));
    }

    fn remove(&mut self, path: PointerBuf) {
        self.0
            .push(PatchOperation::Remove(RemoveOperation { path }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_tokens() {
        let p = PointerBuf::from_tokens(["metadata", "annotations", "sgx.intel.com/epc"]);
        assert_eq!(p.as_str(), "/metadata/annotations/sgx.intel.com~1epc");
        assert_eq!(PointerBuf::from_tokens(["a~b/c"]).as_str(), "/a~0b~1c");
    }

    #[test]
    fn serializes_rfc6902() {
        let mut p = Patch::default();
        p.add(PointerBuf::from_tokens(["a/b"]), Value::from("1"));
        p.remove(PointerBuf::from_tokens(["c"]));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"[{"op":"add","path":"/a~1b","value":"1"},{"op":"remove","path":"/c"}]"#
        );
    }
}
