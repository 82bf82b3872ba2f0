//! The `caBundle` patch of a webhook configuration ([`ca_bundle_patch`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use jsonptr::PointerBuf;
use serde_json::Value;

/// The JSON patch that sets `caBundle` on a webhook configuration's entries.
#[derive(Debug, Clone, PartialEq)]
pub struct CaBundlePatch {
    /// RFC 6902 operations, `None` when every matching entry already has the bundle. Each
    /// changed entry gets `test` operations on its name and service before the `add`, so a
    /// configuration that changed since it was read is not patched at the wrong index.
    pub ops: Option<json_patch::Patch>,
    /// How many entries call the Service.
    pub matched: usize,
    /// How many of them the patch changes.
    pub changed: usize,
}

/// No entry of a webhook configuration calls the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatchingWebhook {
    /// What each entry calls: `NAME → NS/SVC`, `NAME → URL` or `NAME → nothing`.
    pub calls: Vec<String>,
}

/// Plans setting `webhooks[*].clientConfig.caBundle` to base64(`ca_pem`) for every entry of the
/// Mutating- or ValidatingWebhookConfiguration `config` (as JSON) whose `clientConfig.service`
/// is `namespace/service`. Entries calling other services or URLs are left alone.
pub fn ca_bundle_patch(
    config: &Value,
    namespace: &str,
    service: &str,
    ca_pem: &[u8],
) -> Result<CaBundlePatch, NoMatchingWebhook> {
    let entries = config
        .get("webhooks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut ops: Vec<PatchOperation> = Vec::new();
    let mut calls = Vec::new();
    let (mut matched, mut changed) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let entry_name = entry.get("name").and_then(Value::as_str);
        let client = entry.get("clientConfig");
        let svc = client.and_then(|c| c.get("service"));
        let svc_ns = svc.and_then(|s| s.get("namespace")).and_then(Value::as_str);
        let svc_name = svc.and_then(|s| s.get("name")).and_then(Value::as_str);
        if svc_ns != Some(namespace) || svc_name != Some(service) {
            let target = match (svc_ns, svc_name) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => client
                    .and_then(|c| c.get("url"))
                    .and_then(Value::as_str)
                    .unwrap_or("nothing")
                    .to_owned(),
            };
            calls.push(format!("{} → {target}", entry_name.unwrap_or("(unnamed)")));
            continue;
        }
        matched += 1;
        let current = client
            .and_then(|c| c.get("caBundle"))
            .and_then(Value::as_str)
            .and_then(|b| STANDARD.decode(b).ok());
        if current.as_deref() == Some(ca_pem) {
            continue;
        }
        changed += 1;
        let at = |tail: &[&str]| {
            let mut path = PointerBuf::from_tokens(["webhooks"]).with_trailing_token(i);
            for t in tail {
                path.push_back(*t);
            }
            path
        };
        let test = |path, value: &str| {
            PatchOperation::Test(TestOperation {
                path,
                value: Value::String(value.to_owned()),
            })
        };
        if let Some(n) = entry_name {
            ops.push(test(at(&["name"]), n));
        }
        ops.push(test(
            at(&["clientConfig", "service", "namespace"]),
            namespace,
        ));
        ops.push(test(at(&["clientConfig", "service", "name"]), service));
        ops.push(PatchOperation::Add(AddOperation {
            path: at(&["clientConfig", "caBundle"]),
            value: Value::String(STANDARD.encode(ca_pem)),
        }));
    }
    if matched == 0 {
        return Err(NoMatchingWebhook { calls });
    }
    Ok(CaBundlePatch {
        ops: (!ops.is_empty()).then_some(json_patch::Patch(ops)),
        matched,
        changed,
    })
}
