#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Issue 12 item 4: the node agent's EPC metrics and the admission decision read pod
//! quantities with one grammar (`kube_sgx::quantity`), so they agree on every form the API
//! server can serialize: plain integers, binary SI, decimal SI (including `n`, `u`, `m`),
//! decimal exponents and fractional mantissas.

use k8s_openapi::api::core::v1::Pod;
use kube_sgx::quantity::parse;
use kube_sgx::{Config, Denial, EPC, mutate};
use node_agent::pods::{PodError, requested_epc};
use serde_json::json;

fn pod(q: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "c", "resources": {
            "limits": {EPC: q, "sgx.intel.com/enclave": "1"},
            "requests": {EPC: q, "sgx.intel.com/enclave": "1"}}}]}
    }))
    .unwrap()
}

/// The bytes the admission webhook admits the pod with (its EPC annotation), or the denial.
fn admitted(q: &str) -> Result<u64, Denial> {
    let patch = mutate(&pod(q), &Config::new())?;
    let ops = serde_json::to_value(&patch).unwrap();
    let annotation = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/metadata/annotations")
        .expect("the pod total is annotated");
    Ok(parse(annotation["value"][EPC].as_str().unwrap())
        .unwrap()
        .value)
}

#[test]
fn metrics_and_admission_agree_on_every_quantity_form() {
    let forms: &[(&str, Option<u64>)] = &[
        ("4096", Some(4096)),
        ("10Mi", Some(10 << 20)),
        ("10.5Mi", Some(11_010_048)),
        ("0.5Ki", Some(512)),
        ("1Pi", Some(1 << 50)),
        ("2Ei", Some(2 << 60)),
        ("1e6", Some(1_000_000)),
        ("1E6", Some(1_000_000)),
        ("1.5e3", Some(1500)),
        ("15e-1", None),
        ("1k", Some(1000)),
        ("1M", Some(1_000_000)),
        ("1.5G", Some(1_500_000_000)),
        ("1T", Some(1_000_000_000_000)),
        ("1P", Some(1_000_000_000_000_000)),
        ("1E", Some(1_000_000_000_000_000_000)),
        ("1000m", Some(1)),
        ("100m", None),
        ("5000000u", Some(5)),
        ("3000000000n", Some(3)),
        ("5n", None),
        ("+7", Some(7)),
        ("1.5", None),
        ("-1Mi", None),
        ("16Ei", None),
        ("x", None),
    ];
    for &(q, want) in forms {
        let metrics = requested_epc(&pod(q));
        let admission = admitted(q);
        match (want, metrics, admission) {
            (Some(bytes), Ok(containers), Ok(admitted)) => {
                assert_eq!(containers.len(), 1, "{q}");
                assert_eq!(containers[0].epc_bytes, bytes, "{q}: metrics");
                assert_eq!(admitted, bytes, "{q}: admission");
            }
            (
                None,
                Err(PodError::Quantity { problem, .. }),
                Err(Denial::BadQuantity {
                    problem: denied, ..
                }),
            ) => {
                assert_eq!(problem, denied, "{q}: same reason");
            }
            (want, metrics, admission) => {
                panic!("{q}: want {want:?}, metrics {metrics:?}, admission {admission:?}")
            }
        }
    }
}
