//! Fuzz target: AdmissionReview decode + pod mutation/validation (`kube_sgx::admission`).
//!
//! Two uses of each input:
//! 1. The raw bytes as an HTTP body to `/mutate-pods` and `/validate-pods`: never a panic, and
//!    every answer is a JSON AdmissionReview response.
//!
//! Invariant on both: every patch the webhook emits applies (with the `json-patch` crate) to
//! the `request.object` it was computed from.
//! 2. The bytes drive a small pod grammar (containers, init containers, SGX resource names and
//!    quantities in limits/requests, quote-provider annotation, mounts, tolerations, affinity,
//!    and members that are absent, `null`, `{}` or `[]`), wrapped in a real AdmissionReview.
//!    Properties: the patch applies with an independent RFC 6902 implementation; re-running the mutator on the patched pod gives no patch
//!    (idempotent under reinvocation); the validator accepts the patched pod; a pod without
//!    EPC is neither patched nor denied; the admission path (which decodes only the fields the
//!    mutator reads) gives exactly the patch or denial of `mutate` on the full k8s-openapi Pod.
//!
//! The grammar makes the target useful from an empty corpus (no seeds needed).
#![no_main]

use base64::Engine as _;
use kube_sgx::admission::{Endpoint, Outcome, review};
use kube_sgx::k8s_openapi::api::core::v1::Pod;
use kube_sgx::{Config, parse_node_label, parse_toleration};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
        let i = usize::from(self.next()) % items.len();
        items.get(i).copied().unwrap_or("")
    }
}

const NAMES: &[&str] = &["app", "aesmd", "signer", "init", "app"];
const RESOURCES: &[&str] = &[
    "sgx.intel.com/epc",
    "sgx.intel.com/sgx_epc_mem_in_MiB",
    "kubernetes.azure.com/sgx_epc_mem_in_MiB",
    "sgx.intel.com/enclave",
    "sgx.intel.com/provision",
    "cpu",
];
const QUANTITIES: &[&str] = &[
    "10", "10Mi", "1", "0", "-1", "1.5", "100m", "1e3", "15Ei", "512Ki", "1k", "x", "10485760",
    "0.5Ki", "2", "+3", "1e-3", ".5",
];
const PROVIDERS: &[&str] = &["", "aesmd", "app", "signer", "missing"];

fn resources(b: &mut Bytes<'_>) -> Value {
    let mut out = Map::new();
    for section in ["limits", "requests"] {
        let n = b.next() % 4;
        if n == 0 {
            match b.next() % 3 {
                0 => continue,
                1 => {
                    out.insert(section.to_owned(), Value::Null);
                    continue;
                }
                _ => {}
            }
        }
        let mut map = Map::new();
        for _ in 0..n {
            let name = b.pick(RESOURCES);
            let q = b.pick(QUANTITIES);
            map.insert(name.to_owned(), Value::String(q.to_owned()));
        }
        out.insert(section.to_owned(), Value::Object(map));
    }
    Value::Object(out)
}

fn container(b: &mut Bytes<'_>, init: bool) -> Value {
    let mut c = Map::new();
    c.insert("name".to_owned(), Value::String(b.pick(NAMES).to_owned()));
    let flags = b.next();
    if flags & 1 != 0 {
        c.insert("resources".to_owned(), resources(b));
    }
    if flags & 2 != 0 {
        let path = if flags & 4 != 0 {
            "/var/run/aesmd"
        } else {
            "/data"
        };
        c.insert(
            "volumeMounts".to_owned(),
            json!([{"name": "v", "mountPath": path}]),
        );
    } else if flags & 4 != 0 {
        c.insert("volumeMounts".to_owned(), Value::Null);
    }
    if flags & 8 != 0 {
        c.insert(
            "env".to_owned(),
            json!([{"name": "SGX_AESM_ADDR", "value": "1"}]),
        );
    } else if flags & 32 != 0 {
        c.insert("env".to_owned(), Value::Null);
    }
    if init && flags & 16 != 0 {
        c.insert("restartPolicy".to_owned(), json!("Always"));
    }
    Value::Object(c)
}

fn pod(b: &mut Bytes<'_>) -> Value {
    let n = 1 + b.next() % 3;
    let containers: Vec<Value> = (0..n).map(|_| container(b, false)).collect();
    let mut spec = Map::new();
    spec.insert("containers".to_owned(), Value::Array(containers));
    let flags = b.next();
    if flags & 1 != 0 {
        let n = 1 + b.next() % 2;
        let init: Vec<Value> = (0..n).map(|_| container(b, true)).collect();
        spec.insert("initContainers".to_owned(), Value::Array(init));
    }
    if flags & 2 != 0 {
        spec.insert(
            "volumes".to_owned(),
            json!([{"name": "aesmd-socket", "emptyDir": {}}]),
        );
    }
    if flags & 4 != 0 {
        let tolerations = match b.next() % 3 {
            0 => json!([{"key": "sgx", "operator": "Exists"}]),
            1 => json!([]),
            _ => Value::Null,
        };
        spec.insert("tolerations".to_owned(), tolerations);
    }
    if flags & 8 != 0 {
        let required = "requiredDuringSchedulingIgnoredDuringExecution";
        let affinity = match b.next() % 10 {
            0 => json!({"nodeAffinity": {required:
                {"nodeSelectorTerms": [{"matchFields": []}, {"matchExpressions": []}]}}}),
            1 => json!({"nodeAffinity": {required: {}}}),
            2 => json!({"nodeAffinity": {required: {"nodeSelectorTerms": null}}}),
            3 => json!({"nodeAffinity": {required: {"nodeSelectorTerms": []}}}),
            4 => json!({"nodeAffinity": {required: null}}),
            5 => json!({"nodeAffinity": {}}),
            6 => json!({"nodeAffinity": null}),
            7 => json!({}),
            8 => {
                json!({"nodeAffinity": {required: {"nodeSelectorTerms": [{}, {"matchExpressions": null}]}}})
            }
            _ => Value::Null,
        };
        spec.insert("affinity".to_owned(), affinity);
    }
    let mut annotations = Map::new();
    let provider = b.pick(PROVIDERS);
    if !provider.is_empty() {
        annotations.insert("sgx.intel.com/quote-provider".to_owned(), json!(provider));
    }
    if flags & 16 != 0 {
        annotations.insert("sgx.intel.com/epc".to_owned(), json!(b.pick(QUANTITIES)));
    }
    let mut metadata = Map::new();
    metadata.insert("name".to_owned(), json!("p"));
    if flags & 32 != 0 || !annotations.is_empty() {
        metadata.insert("annotations".to_owned(), Value::Object(annotations));
    } else if flags & 64 != 0 {
        metadata.insert("annotations".to_owned(), Value::Null);
    }
    let mut pod = Map::new();
    pod.insert("apiVersion".to_owned(), json!("v1"));
    pod.insert("kind".to_owned(), json!("Pod"));
    // Without annotations, sometimes no `metadata` member at all, or a null one.
    let bare = !metadata.contains_key("annotations");
    match (bare, b.next() % 4) {
        (true, 0) => {}
        (true, 1) => {
            pod.insert("metadata".to_owned(), Value::Null);
        }
        _ => {
            pod.insert("metadata".to_owned(), Value::Object(metadata));
        }
    }
    pod.insert("spec".to_owned(), Value::Object(spec));
    Value::Object(pod)
}

/// The decoded patch of a `Patched` response.
fn sent_patch(resp: &Value) -> json_patch::Patch {
    let text = resp["response"]["patch"]
        .as_str()
        .expect("patch is a string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("patch is base64");
    serde_json::from_slice(&bytes).expect("patch is RFC 6902")
}

/// The invariant: the emitted patch applies to the object it was computed from.
fn apply(object: &Value, resp: &Value) -> Value {
    let ops = sent_patch(resp);
    let mut patched = object.clone();
    if let Err(e) = json_patch::patch(&mut patched, &ops) {
        panic!(
            "emitted patch does not apply: {e}\npatch: {}\nobject: {object}",
            serde_json::to_string(&ops).unwrap_or_default()
        );
    }
    patched
}

fn envelope(pod: &Value) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "object": pod
        }
    })
    .to_string()
    .into_bytes()
}

fn response(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("response is JSON");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    v
}

fuzz_target!(|data: &[u8]| {
    let config = Config::new()
        .with_tolerations(vec![
            parse_toleration("sgx.intel.com/epc:NoSchedule").unwrap(),
        ])
        .with_node_affinity(vec![
            parse_node_label("sgx.intel.com/capable=true").unwrap(),
        ])
        .with_max_epc_per_pod(Some(1 << 40));

    // 1. Raw bytes as a request body.
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        if let Ok(r) = review(endpoint, data, &config) {
            let resp = response(&r.body);
            if r.outcome == Outcome::Patched {
                let body: Value = serde_json::from_slice(data).expect("a reviewed body is JSON");
                apply(&body["request"]["object"], &resp);
            }
        }
    }

    // 2. Grammar-built pod in a real AdmissionReview.
    let mut b = Bytes(data);
    let pod = pod(&mut b);
    let first = review(Endpoint::Mutate, &envelope(&pod), &config).expect("well-formed review");
    let resp = response(&first.body);
    // The admission path decodes only the fields the mutator reads; it must agree with the
    // mutator run on the fully decoded k8s-openapi Pod.
    let full: Pod = serde_json::from_value(pod.clone()).expect("grammar pods are Pods");
    match (first.outcome, kube_sgx::mutate(&full, &config)) {
        (Outcome::Patched, Ok(p)) => {
            // A pod without (or with a null) `metadata` gets the member created first.
            let mut want = Vec::new();
            if pod.get("metadata").is_none_or(Value::is_null) {
                want.push(json!({"op": "add", "path": "/metadata", "value": {}}));
            }
            let Value::Array(ops) = serde_json::to_value(&p).expect("patch is JSON") else {
                panic!("patch is not an array");
            };
            want.extend(ops);
            assert_eq!(
                serde_json::to_value(sent_patch(&resp)).expect("patch is JSON"),
                Value::Array(want),
                "lean and full decode disagree"
            );
        }
        (Outcome::Denied(reason), Err(d)) => assert_eq!(reason, d.reason()),
        (Outcome::Allowed | Outcome::Ignored, Ok(p)) => assert!(p.is_empty()),
        (outcome, other) => panic!("lean {outcome:?} vs full {other:?} for {pod}"),
    }
    match first.outcome {
        Outcome::Patched => {
            let patched = apply(&pod, &resp);
            let again = review(Endpoint::Mutate, &envelope(&patched), &config).expect("review");
            assert_eq!(again.outcome, Outcome::Allowed, "not idempotent: {patched}");
            let valid = review(Endpoint::Validate, &envelope(&patched), &config).expect("review");
            assert_eq!(
                valid.outcome,
                Outcome::Allowed,
                "validate refuses mutated {patched}"
            );
        }
        Outcome::Allowed => {
            let valid = review(Endpoint::Validate, &envelope(&pod), &config).expect("review");
            assert_eq!(
                valid.outcome,
                Outcome::Allowed,
                "validate refuses unpatched {pod}"
            );
        }
        Outcome::Denied(_) => {
            assert_eq!(resp["response"]["allowed"], false);
            assert!(
                resp["response"]["status"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        Outcome::Ignored => {
            assert!(resp["response"].get("patch").is_none());
        }
        _ => {}
    }
});
