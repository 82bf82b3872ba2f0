#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! AdmissionReview v1 wire format: uid echo, base64 JSON patch, denials, 400-class errors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube_sgx::Config;
use kube_sgx::admission::{Endpoint, Outcome, ReviewError, review};
use serde_json::{Value, json};

/// An AdmissionReview as the API server sends it for a pod CREATE.
fn review_for(uid: &str, pod: Value) -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:job-controller",
                         "uid": "a0b1", "groups": ["system:serviceaccounts"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

fn faq_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "sgx-test-", "namespace": "default", "labels": {"app": "sgx-test"}},
        "spec": {"containers": [{"name": "sgxtest", "image": "oeciteam/sgx-test:1.0",
            "resources": {"limits": {"sgx.intel.com/sgx_epc_mem_in_MiB": "10"},
                          "requests": {"sgx.intel.com/sgx_epc_mem_in_MiB": "10"}}}],
            "restartPolicy": "Never"}
    })
}

fn run(endpoint: Endpoint, body: &Value) -> (Value, Outcome) {
    let out = review(endpoint, body.to_string().as_bytes(), &Config::new()).unwrap();
    (serde_json::from_slice(&out.body).unwrap(), out.outcome)
}

#[test]
fn mutate_returns_base64_json_patch_and_echoes_uid() {
    let uid = "705ab4f5-6393-11e8-b7cc-42010a800002";
    let (resp, outcome) = run(Endpoint::Mutate, &review_for(uid, faq_pod()));
    assert_eq!(outcome, Outcome::Patched);
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(resp["kind"], "AdmissionReview");
    assert_eq!(resp["response"]["uid"], uid);
    assert_eq!(resp["response"]["allowed"], true);
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    assert!(resp["response"].get("status").is_none());
    let patch = STANDARD
        .decode(resp["response"]["patch"].as_str().unwrap())
        .unwrap();
    let ops: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut pod = faq_pod();
    json_patch::patch(&mut pod, &ops).unwrap();
    let sgx = json!({"sgx.intel.com/epc": "10Mi", "sgx.intel.com/enclave": "1"});
    assert_eq!(
        pod["spec"]["containers"][0]["resources"],
        json!({"limits": sgx, "requests": sgx})
    );
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({"sgx.intel.com/epc": "10Mi"})
    );

    // The patched pod passes the validating endpoint unchanged.
    let (resp, outcome) = run(Endpoint::Validate, &review_for("v1", pod));
    assert_eq!(outcome, Outcome::Allowed);
    assert_eq!(
        resp,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "response": {"uid": "v1", "allowed": true}})
    );
}

#[test]
fn denial_carries_status_message() {
    let mut pod = faq_pod();
    pod["spec"]["containers"][0]["resources"]["limits"]["sgx.intel.com/sgx_epc_mem_in_MiB"] =
        json!("-1");
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        let (resp, outcome) = run(endpoint, &review_for("u-2", pod.clone()));
        assert_eq!(outcome, Outcome::Denied("bad-quantity"));
        assert_eq!(
            resp,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "u-2", "allowed": false, "status": {
                    "status": "Failure", "code": 400, "reason": "BadRequest",
                    "message": "container \"sgxtest\": sgx.intel.com/sgx_epc_mem_in_MiB is \"-1\", \
                                which is negative; SGX resources cannot be negative"}}})
        );
    }
}

#[test]
fn unmutated_pod_is_forbidden_by_validate() {
    let (resp, outcome) = run(Endpoint::Validate, &review_for("u-3", faq_pod()));
    assert_eq!(outcome, Outcome::Denied("not-normalized"));
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(resp["response"]["status"]["code"], 403);
    assert_eq!(resp["response"]["status"]["reason"], "Forbidden");
}

#[test]
fn non_pod_and_non_create_requests_pass_untouched() {
    let expected = |uid: &str| {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "response": {"uid": uid, "allowed": true}})
    };
    let mut update = review_for("upd", faq_pod());
    update["request"]["operation"] = json!("UPDATE");
    let mut status = review_for("sub", faq_pod());
    status["request"]["subResource"] = json!("status");
    let mut delete = review_for("del", Value::Null);
    delete["request"]["operation"] = json!("DELETE");
    let mut deployment = review_for("dep", json!({"kind": "Deployment"}));
    deployment["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    let plain = review_for(
        "plain",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
    );
    for (uid, body) in [
        ("upd", update),
        ("sub", status),
        ("del", delete),
        ("dep", deployment),
        ("plain", plain),
    ] {
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            let (resp, outcome) = run(endpoint, &body);
            assert_eq!(resp, expected(uid), "{uid}");
            assert_eq!(outcome, Outcome::Ignored, "{uid}");
        }
    }
    let (resp, outcome) = run(Endpoint::Passthrough, &review_for("pt", faq_pod()));
    assert_eq!(resp, expected("pt"));
    assert_eq!(outcome, Outcome::Ignored);
}

#[test]
fn malformed_bodies_are_errors_with_messages() {
    let config = Config::new();
    let err = |body: &[u8]| review(Endpoint::Mutate, body, &config).unwrap_err();
    assert_eq!(
        err(b"").to_string(),
        "request body is not a JSON AdmissionReview: EOF while parsing a value at line 1 column 0"
    );
    assert_eq!(
        err(br#"{"kind":"Pod","apiVersion":"v1"}"#),
        ReviewError::Kind("Pod".to_owned())
    );
    assert_eq!(
        err(br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"x"}}"#)
            .to_string(),
        "AdmissionReview apiVersion is \"admission.k8s.io/v1beta1\", but this webhook speaks \
         admission.k8s.io/v1 only; set admissionReviewVersions: [\"v1\"] in the webhook configuration"
    );
    assert_eq!(
        err(br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#).to_string(),
        "AdmissionReview has no request"
    );
    assert_eq!(
        err(br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{}}"#)
            .to_string(),
        "request body is not a JSON AdmissionReview: missing field `uid` at line 1 column 73"
    );
    let mut no_object = review_for("n", Value::Null);
    no_object["request"]
        .as_object_mut()
        .unwrap()
        .remove("object");
    assert_eq!(
        err(no_object.to_string().as_bytes()).to_string(),
        "AdmissionReview request n creates a pod but has no request.object"
    );
    let bad_pod = review_for(
        "b",
        json!({"spec": {"containers": "none", "x": "sgx.intel.com/epc"}}),
    );
    assert_eq!(
        err(bad_pod.to_string().as_bytes()).to_string(),
        "AdmissionReview request b: request.object is not a valid Pod: invalid type: string \
         \"none\", expected a sequence at line 1 column 28"
    );
}

#[test]
fn pods_without_epc_names_are_not_decoded_but_escaped_names_are() {
    // No EPC name anywhere: allowed without decoding, even though this is not a valid Pod.
    let not_a_pod = review_for("fast", json!({"spec": {"containers": "none"}}));
    let (resp, outcome) = run(Endpoint::Mutate, &not_a_pod);
    assert_eq!(outcome, Outcome::Ignored);
    assert_eq!(resp["response"], json!({"uid": "fast", "allowed": true}));

    // A JSON escape can hide a name from a substring search: such bodies are decoded.
    let body = review_for("esc", faq_pod()).to_string().replace(
        "sgx.intel.com/sgx_epc_mem_in_MiB",
        "sgx.intel.com\\/sgx\\u005fepc_mem_in_MiB",
    );
    assert!(!body.contains("_epc_mem_in_MiB"));
    let out = review(Endpoint::Mutate, body.as_bytes(), &Config::new()).unwrap();
    assert_eq!(out.outcome, Outcome::Patched);
}

/// A pod object without `metadata` (or with `"metadata": null`) gets a patch that creates the
/// member first, so the annotation lands in an object that exists (issue 11 item 6).
#[test]
fn patch_creates_missing_metadata() {
    let spec = json!({"containers": [{"name": "c",
        "resources": {"limits": {"sgx.intel.com/epc": "1Mi", "sgx.intel.com/enclave": "1"},
                      "requests": {"sgx.intel.com/epc": "1Mi", "sgx.intel.com/enclave": "1"}}}]});
    for pod in [
        json!({"apiVersion": "v1", "kind": "Pod", "spec": spec}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": null, "spec": spec}),
    ] {
        let (resp, outcome) = run(Endpoint::Mutate, &review_for("u", pod.clone()));
        assert_eq!(outcome, Outcome::Patched, "{pod}");
        let patch: Value = serde_json::from_slice(
            &STANDARD
                .decode(resp["response"]["patch"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "add", "path": "/metadata", "value": {}},
                {"op": "add", "path": "/metadata/annotations", "value": {"sgx.intel.com/epc": "1Mi"}}
            ]),
            "{pod}"
        );
        let ops: json_patch::Patch = serde_json::from_value(patch).unwrap();
        let mut doc = pod.clone();
        json_patch::patch(&mut doc, &ops).unwrap();
        assert_eq!(
            doc["metadata"],
            json!({"annotations": {"sgx.intel.com/epc": "1Mi"}})
        );
        let (_, again) = run(Endpoint::Mutate, &review_for("u", doc));
        assert_eq!(again, Outcome::Allowed, "{pod}");
    }
}

#[test]
fn decode_errors_are_typed_and_shown_once() {
    use std::error::Error as _;
    let config = Config::new();
    let err = review(
        Endpoint::Mutate,
        br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{}}"#,
        &config,
    )
    .unwrap_err();
    let ReviewError::Json(json) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(json.get().classify(), serde_json::error::Category::Data);
    assert_eq!((json.get().line(), json.get().column()), (1, 73));
    // The message carries the decoder's words, so the cause is not exposed a second time.
    assert!(err.source().is_none());

    let bad_pod = review_for(
        "b",
        json!({"spec": {"containers": "none", "x": "sgx.intel.com/epc"}}),
    );
    let err = review(Endpoint::Validate, bad_pod.to_string().as_bytes(), &config).unwrap_err();
    let ReviewError::Object { uid, error } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(uid, "b");
    assert_eq!((error.get().line(), error.get().column()), (1, 28));
    assert_eq!(
        error.to_string(),
        "invalid type: string \"none\", expected a sequence at line 1 column 28"
    );
    assert!(err.source().is_none());
    // Equal errors: same category, place and words.
    assert_eq!(err.clone(), err);
}
