//! MAA policy documents through the real router: detection and storage of either language,
//! the SDK request shapes (JWS uploads, `:reset`), their error paths with exact codes and
//! messages, isolated mode, MAA drafts as unsecured tokens, issued claims that cannot replace the
//! service's, and the TCB baseline a policy selects. (Microsoft's SDK itself runs against the
//! binary in crates/confkube/tests/maa_policy_sdk.rs.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::collateral::{CacheConfig, CollateralCache, OfflineDir};
use attest::keys::SigningAlg;
use attest::server::{Service, ServiceConfig, router};
use attest::store::Store;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use dcap::{TcbStatus, TrustAnchor};
use dcap_testkit::{CollateralParams, PkiParams, QuoteParams, Testkit};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt as _;

/// The test clock: one fixed time, for the service and its cache alike.
#[derive(Debug, Clone, Copy)]
struct FixedClock(i64);

impl attest::collateral::Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

const AT: i64 = 1_767_225_600;
const ADMIN: &str = "admin-secret";
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const ATTEST: &str = "/attest/SgxEnclave?api-version=2022-08-01";
const SDK: &str = "/policies/SgxEnclave?api-version=2020-10-01";

struct Env {
    kit: Testkit,
    dir: PathBuf,
    svc: Arc<Service>,
}

fn env(name: &str) -> Env {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
    let dir = std::env::temp_dir().join(format!("confkube-maapol-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("collateral")).unwrap();
    let coll = kit.collateral(&CollateralParams::new(AT)).unwrap();
    std::fs::write(
        dir.join("collateral")
            .join(format!("{}.json", hex::encode(kit.params().fmspc))),
        serde_json::to_string(&coll).unwrap(),
    )
    .unwrap();
    let svc = service(&kit, &dir);
    Env { kit, dir, svc }
}

fn service(kit: &Testkit, dir: &std::path::Path) -> Arc<Service> {
    let cache = CollateralCache::new(
        Arc::new(OfflineDir::new(dir.join("collateral"))),
        Arc::new(FixedClock(AT + 3600)),
        CacheConfig::default(),
    );
    let cfg = ServiceConfig {
        issuer: "https://attest.example".into(),
        token_lifetime: 28_800,
        verify_at: None,
        anchor: TrustAnchor::from_certificate(kit.root_pem().as_bytes()).unwrap(),
        allow_missing_crls: false,
        signing_alg: SigningAlg::ES256,
        signing_key_dir: None,
        policy_file: None,
        body_limit: 64 * 1024,
        admin_token_sha256: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ADMIN.as_bytes())
            .as_ref()
            .try_into()
            .unwrap(),
    };
    let store = Arc::new(Store::open(&dir.join("data")).unwrap());
    Arc::new(
        Service::new(
            cfg,
            Some(store),
            Arc::new(cache),
            Arc::new(FixedClock(AT + 3600)),
        )
        .unwrap(),
    )
}

async fn call(
    svc: &Arc<Service>,
    method: &str,
    uri: &str,
    body: Option<&str>,
    admin: bool,
    content_type: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type);
    if admin {
        req = req.header("authorization", format!("Bearer {ADMIN}"));
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = router(svc.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn body(kit: &Testkit, extra: Value) -> String {
    let mut v = json!({"quote": B64URL.encode(kit.quote(&QuoteParams::default()).unwrap())});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v.to_string()
}

fn unsecured(policy: &str) -> String {
    let p = json!({"AttestationPolicy": B64URL.encode(policy)}).to_string();
    format!(
        "{}.{}.",
        B64URL.encode(br#"{"alg":"none"}"#),
        B64URL.encode(p)
    )
}

fn decode(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let h = serde_json::from_slice(&B64URL.decode(it.next().unwrap()).unwrap()).unwrap();
    let p = serde_json::from_slice(&B64URL.decode(it.next().unwrap()).unwrap()).unwrap();
    (h, p)
}

const MAA: &str = "version=1.0;\nauthorizationrules { [type==\"x-ms-sgx-svn\", value>=1] => permit(); };\nissuancerules {\n  c:[type==\"x-ms-sgx-mrsigner\"] => issue(type=\"signer\", value=c.value);\n  => issue(type=\"x-ms-sgx-svn\", value=999);\n  => issueproperty(type=\"report_validity_in_minutes\", value=5);\n};\n";

#[tokio::test]
async fn maa_documents_through_put_get_and_attestation() {
    let e = env("putget");
    let s = &e.svc;
    // Plain PUT (confkube's API) of MAA text: detected, stored with its language.
    let (st, v) = call(
        s,
        "PUT",
        "/policies/SgxEnclave",
        Some(MAA),
        true,
        "text/x-maa",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["language"].as_str(), v["policy"].as_str()),
        (Some("maa"), Some(MAA))
    );
    let (_, got) = call(
        s,
        "GET",
        "/policies/SgxEnclave",
        None,
        true,
        "application/json",
    )
    .await;
    assert_eq!(got["language"], "maa");
    let hash = got["hash"].as_str().unwrap().to_string();
    // Attest: issued claims join the token, a service claim cannot be replaced, the lifetime is
    // the policy's 5 minutes.
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(&e.kit, json!({}))),
        false,
        "application/json",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, c) = decode(v["token"].as_str().unwrap());
    assert_eq!(c["signer"], c["x-ms-sgx-mrsigner"]);
    assert_eq!(c["x-ms-sgx-svn"], 1);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert_eq!(c["x-ms-policy-hash"], hash.as_str());
    assert_eq!(c["x-confkube-policy-rule"], "line 2");

    // A policy that does not parse: 400 naming line and column; the stored policy unchanged.
    let (st, v) = call(
        s,
        "PUT",
        "/policies/SgxEnclave",
        Some("version=1.1;\nauthorizationrules {\n  [type=\"x\"] = permit();\n};"),
        true,
        "text/plain",
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid-policy");
    assert_eq!(
        v["detail"],
        "invalid policy: line 3, column 14: expected `&&`, `||` or `=>`, found `=`"
    );
    let (_, got) = call(
        s,
        "GET",
        "/policies/SgxEnclave",
        None,
        true,
        "application/json",
    )
    .await;
    assert_eq!(got["policy"], MAA);

    // The service restarts with the stored MAA document.
    let Env { kit, dir, svc } = e;
    drop(svc);
    let restarted = service(&kit, &dir);
    let (_, got) = call(
        &restarted,
        "GET",
        "/policies/SgxEnclave",
        None,
        true,
        "application/json",
    )
    .await;
    assert_eq!(
        (got["language"].as_str(), got["hash"].as_str()),
        (Some("maa"), Some(hash.as_str()))
    );
}

#[tokio::test]
async fn sdk_shapes_and_their_errors() {
    let e = env("sdk");
    let s = &e.svc;
    for (method, uri) in [
        ("GET", SDK),
        ("PUT", SDK),
        ("POST", "/policies/SgxEnclave:reset?api-version=2020-10-01"),
    ] {
        let (st, v) = call(s, method, uri, Some(&unsecured(MAA)), false, "text/plain").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "{method} {uri}"
        );
    }
    let cases: [(&str, &str, StatusCode, &str, &str); 6] = [
        (
            SDK,
            "not a jws",
            StatusCode::BAD_REQUEST,
            "invalid-policy-token",
            "the body is not a JWS (three base64url parts separated by '.'; found 1)",
        ),
        (
            SDK,
            "eyJhbGciOiJub25lIn0.e30.",
            StatusCode::BAD_REQUEST,
            "invalid-policy-token",
            "the JWS payload has no AttestationPolicy (a StoredAttestationPolicy: {\"AttestationPolicy\": BASE64URL(policy text)})",
        ),
        (
            SDK,
            "eyJhbGciOiJub25lIn0.e30.c2ln",
            StatusCode::BAD_REQUEST,
            "invalid-policy-token",
            "an unsecured JWS (alg none) has an empty signature",
        ),
        (
            SDK,
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
            StatusCode::BAD_REQUEST,
            "invalid-policy-token",
            "a signed policy JWS (alg RS256) needs its certificate in x5c",
        ),
        (
            "/policies/SgxEnclave?api-version=2019-01-01",
            "x",
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "api-version 2019-01-01 is not supported (supported: 2020-10-01, 2022-08-01, 2022-09-01-preview, 2025-06-01)",
        ),
        (
            SDK,
            "",
            StatusCode::BAD_REQUEST,
            "invalid-policy-token",
            "the body is not a JWS (three base64url parts separated by '.'; found 1)",
        ),
    ];
    for (uri, b, status, code, detail) in cases {
        let (st, v) = call(s, "PUT", uri, Some(b), true, "text/plain").await;
        assert_eq!(
            (st, v["code"].as_str(), v["detail"].as_str()),
            (status, Some(code), Some(detail)),
            "{b}"
        );
    }
    let bad = unsecured("version=1.0; authorizationrules { => permit(); ");
    let (st, v) = call(s, "PUT", SDK, Some(&bad), true, "text/plain").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["detail"],
        "invalid policy: line 1, column 48: expected a rule or `}` closing `authorizationrules`, found the end of the policy"
    );

    // Set, get (the StoredAttestationPolicy JWS comes back as sent), reset.
    let jws = unsecured(MAA);
    let (st, v) = call(s, "PUT", SDK, Some(&jws), true, "text/plain").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (h, c) = decode(v["token"].as_str().unwrap());
    assert_eq!(h["alg"], "ES256");
    assert_eq!(c["x-ms-policy-result"], "Updated");
    assert_eq!(
        c["x-ms-policy-token-hash"],
        B64URL.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            jws.as_bytes()
        ))
    );
    assert_eq!(c["iss"], "https://attest.example");
    let (_, v) = call(s, "GET", SDK, None, true, "text/plain").await;
    let (_, c) = decode(v["token"].as_str().unwrap());
    assert_eq!(c["x-ms-policy"], jws.as_str());
    let (st, v) = call(
        s,
        "POST",
        "/policies/SgxEnclave:reset?api-version=2020-10-01",
        Some("eyJhbGciOiJub25lIn0.."),
        true,
        "text/plain",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, c) = decode(v["token"].as_str().unwrap());
    assert_eq!(c["x-ms-policy-result"], "Removed");
    let (_, v) = call(
        s,
        "GET",
        "/policies/SgxEnclave",
        None,
        true,
        "application/json",
    )
    .await;
    assert_eq!(
        (
            v["language"].as_str(),
            v["policy"]["rules"][0]["name"].as_str()
        ),
        (Some("confkube-json"), Some("default"))
    );

    // Isolated mode: the plain and the unsigned SDK uploads are refused, nothing changes.
    s.set_policy_signers(vec![vec![1, 2, 3]]);
    let (st, v) = call(s, "PUT", SDK, Some(&jws), true, "text/plain").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("policy-not-signed"))
    );
    let (st, v) = call(
        s,
        "PUT",
        "/policies/SgxEnclave",
        Some(MAA),
        true,
        "application/json",
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("policy-not-signed"))
    );
    let (_, v) = call(
        s,
        "GET",
        "/policies/SgxEnclave",
        None,
        true,
        "application/json",
    )
    .await;
    assert_eq!(v["language"], "confkube-json");
}

#[tokio::test]
async fn drafts_tcb_baselines_and_denials() {
    let e = env("drafts");
    let s = &e.svc;
    // An MAA draft: an unsecured token, as MAA answers drafts; the stored policy is untouched.
    let draft = "version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=\"d\", value=\"yes\"); };";
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(&e.kit, json!({"draftPolicyForAttestation": draft}))),
        false,
        "application/json",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let t = v["token"].as_str().unwrap();
    assert!(t.ends_with('.'), "{t}");
    let (h, c) = decode(t);
    assert_eq!(
        (h["alg"].as_str(), c["d"].as_str()),
        (Some("none"), Some("yes"))
    );
    assert_eq!(c["x-confkube-draft-policy"], true);
    // A confkube JSON draft is still signed by the draft key.
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(
            &e.kit,
            json!({"draftPolicyForAttestation": "{\"rules\":[{\"name\":\"d\"}]}"}),
        )),
        false,
        "application/json",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(decode(v["token"].as_str().unwrap()).0["alg"], "ES256");
    // A draft that does not parse.
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(
            &e.kit,
            json!({"draftPolicyForAttestation": "version=1.3;"}),
        )),
        false,
        "application/json",
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid-policy"))
    );
    assert_eq!(
        v["detail"],
        "invalid policy: line 1, column 9: unsupported policy version 1.3 (supported: 1.0, 1.1, 1.2)"
    );
    let (_, v) = call(
        s,
        "GET",
        "/policies/SgxEnclave",
        None,
        true,
        "application/json",
    )
    .await;
    assert_eq!(v["language"], "confkube-json");

    // A TCB baseline the collateral does not have.
    let pinned = "version=1.1; configurationrules { => issueproperty(type=\"x-ms-sgx-tcbidentifier\", value=\"99\"); }; authorizationrules { => permit(); };";
    let (st, v) = call(
        s,
        "PUT",
        "/policies/SgxEnclave",
        Some(pinned),
        true,
        "application/json",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(&e.kit, json!({}))),
        false,
        "application/json",
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("tcb-baseline-unavailable")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().starts_with("the policy selects TCB baseline 99 (x-ms-sgx-tcbidentifier) but the collateral for this platform has TCB evaluation data number "), "{v}");
    // A deny rule.
    let deny = "version=1.0; authorizationrules { => permit(); [type==\"x-confkube-tcb-status\", value==\"UpToDate\"] => deny(); };";
    call(
        s,
        "PUT",
        "/policies/SgxEnclave",
        Some(deny),
        true,
        "application/json",
    )
    .await;
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(&e.kit, json!({}))),
        false,
        "application/json",
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("policy-denied"))
    );
    assert_eq!(
        v["rule"],
        json!({"line": 1, "column": 48, "text": "[type==\"x-confkube-tcb-status\", value==\"UpToDate\"] => deny()"})
    );
}

/// Microsoft's two "PolicyFormat=JWT" examples (policy examples page), uploaded exactly as
/// published: the unsigned one and the signed one (RSA256, certificate in x5c).
#[tokio::test]
async fn microsofts_jwt_policy_examples_upload_and_apply() {
    let e = env("msjwt");
    let s = &e.svc;
    let unsigned = include_str!("../../maa-policy/tests/policies/jwt_unsigned.jws").trim();
    let signed = include_str!("../../maa-policy/tests/policies/jwt_signed.jws").trim();
    let (st, v) = call(s, "PUT", SDK, Some(unsigned), true, "text/plain").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(&e.kit, json!({}))),
        false,
        "application/json",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, c) = decode(v["token"].as_str().unwrap());
    for k in [
        "is-debuggable",
        "sgx-mrsigner",
        "sgx-mrenclave",
        "product-id",
        "svn",
        "tee",
    ] {
        assert!(c.get(k).is_some(), "{k} missing: {c}");
    }
    let (st, v) = call(s, "PUT", SDK, Some(signed), true, "text/plain").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, r) = decode(v["token"].as_str().unwrap());
    assert_eq!(r["x-ms-policy-signer"]["kty"], "RSA");
    let (st, v) = call(
        s,
        "POST",
        ATTEST,
        Some(&body(&e.kit, json!({}))),
        false,
        "application/json",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, c) = decode(v["token"].as_str().unwrap());
    assert_eq!(c["NotDebuggable"], false);
    // The debug enclave is denied by the signed example's deny rule.
    let debug = json!({"quote": B64URL.encode(e.kit.quote(&QuoteParams { debug: true, ..QuoteParams::default() }).unwrap())}).to_string();
    let (st, v) = call(s, "POST", ATTEST, Some(&debug), false, "application/json").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("policy-denied")),
        "{v}"
    );
    // GET returns the signed JWS as uploaded, with its signer.
    let (_, v) = call(s, "GET", SDK, None, true, "text/plain").await;
    let (_, g) = decode(v["token"].as_str().unwrap());
    assert_eq!(g["x-ms-policy"], signed);
    assert_eq!(g["x-ms-policy-signer"]["kty"], "RSA");
    // A signature that does not verify.
    let at = signed.len() - 10;
    let c0 = &signed[at..at + 1];
    let tampered = format!(
        "{}{}{}",
        &signed[..at],
        if c0 == "A" { "B" } else { "A" },
        &signed[at + 1..]
    );
    let (st, v) = call(s, "PUT", SDK, Some(&tampered), true, "text/plain").await;
    assert_eq!(
        (st, v["detail"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("the policy JWS signature does not verify with its x5c certificate")
        )
    );
}
