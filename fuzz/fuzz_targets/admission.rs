//! Fuzz target: AdmissionReview decode + pod mutation/validation (`kube_sgx::admission`).
//!
//! Two uses of each input:
//! 1. The raw bytes as an HTTP body to `/mutate-pods` and `/validate-pods`: never a panic, and
//!    every answer is a JSON AdmissionReview response.
//! 2. The bytes drive a small pod grammar (containers, init containers, SGX resource names and
//!    quantities in limits/requests, quote-provider annotation, mounts, tolerations, affinity),
//!    wrapped in a real AdmissionReview. Properties: the patch applies with an independent
//!    RFC 6902 implementation; re-running the mutator on the patched pod gives no patch
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
        if n == 0 && b.next() % 2 == 0 {
            continue;
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
    }
    if flags & 8 != 0 {
        c.insert(
            "env".to_owned(),
            json!([{"name": "SGX_AESM_ADDR", "value": "1"}]),
        );
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
        spec.insert(
            "tolerations".to_owned(),
            json!([{"key": "sgx", "operator": "Exists"}]),
        );
    }
    if flags & 8 != 0 {
        spec.insert(
            "affinity".to_owned(),
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": []}, {"matchExpressions": []}]}}}),
        );
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
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
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
            response(&r.body);
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
            let sent = base64::engine::general_purpose::STANDARD
                .decode(resp["response"]["patch"].as_str().expect("patch"))
                .expect("base64");
            assert_eq!(
                sent,
                p.to_json().into_bytes(),
                "lean and full decode disagree"
            );
        }
        (Outcome::Denied(reason), Err(d)) => assert_eq!(reason, d.reason()),
        (Outcome::Allowed | Outcome::Ignored, Ok(p)) => assert!(p.is_empty()),
        (outcome, other) => panic!("lean {outcome:?} vs full {other:?} for {pod}"),
    }
    match first.outcome {
        Outcome::Patched => {
            let patch = base64::engine::general_purpose::STANDARD
                .decode(
                    resp["response"]["patch"]
                        .as_str()
                        .expect("patch is a string"),
                )
                .expect("patch is base64");
            let ops: json_patch::Patch = serde_json::from_slice(&patch).expect("patch is RFC 6902");
            let mut patched = pod.clone();
            json_patch::patch(&mut patched, &ops).expect("patch applies");
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
