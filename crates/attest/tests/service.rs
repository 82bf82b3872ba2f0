//! The service's HTTP contract, through the real router, real offline collateral source, real
//! cache, real store and real signing keys; quotes and collateral from the test PKI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::collateral::{CacheConfig, CollateralCache, OfflineDir};
use attest::keys::SigningAlg;
use attest::provider::ServiceClock;
use attest::server::{Service, ServiceConfig, router};
use attest::store::Store;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use dcap::{TcbStatus, TrustAnchor};
use dcap_testkit::{CollateralParams, PkiParams, QuoteParams, Testkit};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt as _;

const AT: i64 = 1_767_225_600;
const ADMIN: &str = "admin-secret";
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const ATTEST: &str = "/attest/SgxEnclave?api-version=2022-08-01";

struct Env {
    kit: Testkit,
    dir: PathBuf,
    svc: Arc<Service>,
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-svc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn service(kit: &Testkit, dir: &Path, store: Option<Arc<Store>>, alg: SigningAlg) -> Arc<Service> {
    let cache = CollateralCache::new(
        Arc::new(OfflineDir::new(dir.join("collateral"))),
        Arc::new(ServiceClock(Some(AT + 3600))),
        CacheConfig::default(),
    );
    let cfg = ServiceConfig {
        issuer: "https://attest.example".into(),
        token_lifetime: 28_800,
        pinned_time: Some(AT + 3600),
        anchor: TrustAnchor::from_certificate(kit.root_pem().as_bytes()).unwrap(),
        allow_missing_crls: false,
        signing_alg: alg,
        signing_key_dir: None,
        policy_file: None,
        body_limit: 64 * 1024,
        admin_token_sha256: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ADMIN.as_bytes())
            .as_ref()
            .try_into()
            .unwrap(),
    };
    Arc::new(Service::new(cfg, store, Arc::new(cache)).unwrap())
}

fn env(name: &str, status: TcbStatus) -> Env {
    let kit = Testkit::generate(PkiParams::new(AT, Some(status))).unwrap();
    let dir = tmp(name);
    std::fs::create_dir_all(dir.join("collateral")).unwrap();
    let coll = kit.collateral(&CollateralParams::new(AT)).unwrap();
    std::fs::write(
        dir.join("collateral")
            .join(format!("{}.json", hex::encode(kit.params().fmspc))),
        serde_json::to_string(&coll).unwrap(),
    )
    .unwrap();
    let store = Arc::new(Store::open(&dir.join("data")).unwrap());
    let svc = service(&kit, &dir, Some(store), SigningAlg::ES256);
    Env { kit, dir, svc }
}

async fn call(
    svc: &Arc<Service>,
    method: &str,
    uri: &str,
    body: Option<String>,
    admin: bool,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if admin {
        req = req.header("authorization", format!("Bearer {ADMIN}"));
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = router(svc.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, ct, v)
}

fn attest_body(quote: &[u8], runtime: Option<&[u8]>, nonce: Option<&str>) -> String {
    let mut b = json!({"quote": B64URL.encode(quote)});
    if let Some(r) = runtime {
        b["runtimeData"] = json!({"data": B64URL.encode(r), "dataType": "Binary"});
    }
    if let Some(n) = nonce {
        b["nonce"] = json!(n);
    }
    b.to_string()
}

fn quote_for(kit: &Testkit, runtime: &[u8], debug: bool) -> Vec<u8> {
    let mut rd = [0u8; 64];
    rd[..32]
        .copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, runtime).as_ref());
    kit.quote(&QuoteParams {
        report_data: rd,
        debug,
        ..QuoteParams::default()
    })
    .unwrap()
}

fn decode_token(token: &str, jwks: &Value) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&["https://attest.example"]);
    // The service clock is pinned in 2026-01; do not judge exp against the wall clock.
    v.validate_exp = false;
    v.validate_nbf = false;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn attest_end_to_end_token_verifies_with_jwks() {
    let e = env("e2e", TcbStatus::SwHardeningNeeded);
    let quote = quote_for(&e.kit, b"hello enclave", false);
    let body = attest_body(&quote, Some(b"hello enclave"), Some("n-123"));
    let (st, ct, v) = call(&e.svc, "POST", ATTEST, Some(body), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(ct.starts_with("application/json"));
    let (_, ct, jwks) = call(&e.svc, "GET", "/certs", None, false).await;
    assert_eq!(ct, "application/json");
    // The same JWKS with a trailing slash, where Gramine's MAA client looks for it.
    let (st, ct, jwks_slash) = call(&e.svc, "GET", "/certs/", None, false).await;
    assert_eq!((st, ct.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(jwks_slash, jwks);
    let claims = decode_token(v["token"].as_str().unwrap(), &jwks);
    assert_eq!(claims["x-ms-attestation-type"], "sgx");
    assert_eq!(claims["tee"], "sgx");
    assert_eq!(claims["x-ms-ver"], "1.0");
    assert_eq!(
        claims["x-ms-sgx-mrenclave"],
        hex::encode(QuoteParams::default().mrenclave)
    );
    assert_eq!(
        claims["x-ms-sgx-mrsigner"],
        hex::encode(QuoteParams::default().mrsigner)
    );
    assert_eq!(claims["x-ms-sgx-product-id"], 1);
    assert_eq!(claims["x-ms-sgx-svn"], 1);
    assert_eq!(claims["x-ms-sgx-is-debuggable"], false);
    assert_eq!(claims["x-ms-sgx-ehd"], B64URL.encode(b"hello enclave"));
    assert_eq!(claims["nonce"], "n-123");
    assert_eq!(claims["x-confkube-tcb-status"], "SWHardeningNeeded");
    assert_eq!(
        claims["x-confkube-advisory-ids"],
        json!(["TESTKIT-SA-00001"])
    );
    assert_eq!(claims["x-confkube-fmspc"], "c0ffee000000");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        28_800
    );
    assert_eq!(claims["iat"], AT + 3600);
    assert_eq!(claims["x-ms-sgx-report-data"].as_str().unwrap().len(), 128);

    let (st, _, oidc) = call(
        &e.svc,
        "GET",
        "/.well-known/openid-configuration",
        None,
        false,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(oidc["jwks_uri"], "https://attest.example/certs");
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );

    let (_, _, m) = call(&e.svc, "GET", "/metrics", None, false).await;
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains(
            "confkube_attest_attestations_total{result=\"verified\",tcb_status=\"SWHardeningNeeded\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("confkube_attest_cache_events{cache=\"collateral_source\",event=\"miss\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn bad_requests_are_problem_json_never_500() {
    let e = env("bad", TcbStatus::UpToDate);
    let quote = quote_for(&e.kit, b"x", false);
    let mut truncated = quote.clone();
    truncated.pop();
    let big = "a".repeat(70 * 1024);
    let draft_bad = json!({"quote": B64URL.encode(&quote), "draftPolicyForAttestation": "{}"});
    let cases: Vec<(String, String, StatusCode, &str)> = vec![
        (
            "/attest/SgxEnclave".into(),
            attest_body(&quote, None, None),
            StatusCode::BAD_REQUEST,
            "invalid-request",
        ),
        (
            "/attest/SgxEnclave?api-version=1999-01-01".into(),
            attest_body(&quote, None, None),
            StatusCode::BAD_REQUEST,
            "invalid-request",
        ),
        (
            ATTEST.into(),
            "not json".into(),
            StatusCode::BAD_REQUEST,
            "invalid-request",
        ),
        (
            ATTEST.into(),
            json!({"quote": "!!"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid-request",
        ),
        (
            ATTEST.into(),
            json!({"quote": "AAAA", "extra": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid-request",
        ),
        (
            ATTEST.into(),
            attest_body(&truncated, None, None),
            StatusCode::BAD_REQUEST,
            "malformed-quote",
        ),
        (
            ATTEST.into(),
            attest_body(&quote, Some(b"other data"), None),
            StatusCode::BAD_REQUEST,
            "runtime-data-mismatch",
        ),
        (
            ATTEST.into(),
            json!({"quote": big}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request-too-large",
        ),
        (
            ATTEST.into(),
            draft_bad.to_string(),
            StatusCode::BAD_REQUEST,
            "invalid-policy",
        ),
    ];
    for (uri, body, want_status, want_code) in cases {
        let (st, ct, v) = call(&e.svc, "POST", &uri, Some(body), false).await;
        assert_eq!(
            (st, v["code"].as_str().unwrap_or("?")),
            (want_status, want_code),
            "{uri}: {v}"
        );
        assert_eq!(ct, "application/problem+json");
        assert_eq!(v["status"], want_status.as_u16());
    }
    let (st, _, v) = call(&e.svc, "GET", "/nope", None, false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::NOT_FOUND, "not-found")
    );
}

#[tokio::test]
async fn unknown_platform_and_verification_failures() {
    let e = env("unknown", TcbStatus::UpToDate);
    // A quote whose PCK chain does not lead to the anchor is refused before any collateral
    // lookup: forged quotes cannot make the service fetch collateral for arbitrary FMSPCs.
    let mut pki = PkiParams::new(AT, Some(TcbStatus::UpToDate));
    pki.fmspc = [1, 2, 3, 4, 5, 6];
    let other = Testkit::generate(pki).unwrap();
    let q = other.quote(&QuoteParams::default()).unwrap();
    let (st, _, v) = call(
        &e.svc,
        "POST",
        ATTEST,
        Some(attest_body(&q, None, None)),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "untrusted-root"),
        "{v}"
    );
    let (_, _, m) = call(&e.svc, "GET", "/metrics", None, false).await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("confkube_attest_cache_events{cache=\"collateral_source\",event=\"miss\"} 0"),
        "{m}"
    );

    let mut q = quote_for(&e.kit, b"x", false);
    q[100] ^= 1;
    let (st, _, v) = call(
        &e.svc,
        "POST",
        ATTEST,
        Some(attest_body(&q, None, None)),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "quote-signature-invalid"),
        "{v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("quote signature invalid")
    );

    // A genuine platform without collateral: 422 collateral-not-found.
    let e = env("nocoll", TcbStatus::UpToDate);
    std::fs::remove_dir_all(e.dir.join("collateral")).unwrap();
    std::fs::create_dir_all(e.dir.join("collateral")).unwrap();
    let q = quote_for(&e.kit, b"x", false);
    let (st, _, v) = call(
        &e.svc,
        "POST",
        ATTEST,
        Some(attest_body(&q, None, None)),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::UNPROCESSABLE_ENTITY, "collateral-not-found"),
        "{v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("no collateral for FMSPC c0ffee000000"),
        "{v}"
    );
}

#[tokio::test]
async fn policy_matrix_admin_auth_and_draft_policies() {
    let e = env("policy", TcbStatus::UpToDate);
    let q = quote_for(&e.kit, b"x", false);
    let dbg = quote_for(&e.kit, b"x", true);
    let (st, ct, v) = call(
        &e.svc,
        "POST",
        ATTEST,
        Some(attest_body(&dbg, None, None)),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "debug-not-allowed"),
        "{v}"
    );
    assert_eq!(ct, "application/problem+json");
    assert_eq!(v["violations"][0]["rule"], "default");

    let pol = json!({"rules": [{"name": "only-other", "mrenclave": [hex::encode([9u8; 32])]}]})
        .to_string();
    for (admin, want) in [(false, StatusCode::UNAUTHORIZED), (true, StatusCode::OK)] {
        let (st, _, v) = call(
            &e.svc,
            "PUT",
            "/policies/SgxEnclave",
            Some(pol.clone()),
            admin,
        )
        .await;
        assert_eq!(st, want, "{v}");
    }
    let (st, _, v) = call(&e.svc, "GET", "/policies/SgxEnclave", None, false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (_, _, v) = call(&e.svc, "GET", "/policies/SgxEnclave", None, true).await;
    assert_eq!(v["policy"]["rules"][0]["name"], "only-other");
    let bad = Some("{\"rules\": []}".to_string());
    let (st, _, v) = call(&e.svc, "PUT", "/policies/SgxEnclave", bad, true).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "invalid-policy")
    );

    let (st, _, v) = call(
        &e.svc,
        "POST",
        ATTEST,
        Some(attest_body(&q, None, None)),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "mrenclave-not-allowed")
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("rule \"only-other\"")
    );

    let draft = json!({"rules": [{"name": "draft", "allow_debug": true}]}).to_string();
    let body =
        json!({"quote": B64URL.encode(&dbg), "draftPolicyForAttestation": draft}).to_string();
    let (st, _, v) = call(&e.svc, "POST", ATTEST, Some(body), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, _, jwks) = call(&e.svc, "GET", "/certs", None, false).await;
    let kid = jsonwebtoken::decode_header(v["token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    assert!(
        set.find(&kid).is_none(),
        "a draft-policy token must not verify with /certs"
    );
    let (_, _, v) = call(&e.svc, "GET", "/policies/SgxEnclave", None, true).await;
    assert_eq!(
        v["policy"]["rules"][0]["name"], "only-other",
        "the draft was not stored"
    );
}

#[tokio::test]
async fn rotation_and_restart_persistence() {
    let e = env("rotate", TcbStatus::UpToDate);
    let q = quote_for(&e.kit, b"x", false);
    let (_, _, v) = call(
        &e.svc,
        "POST",
        ATTEST,
        Some(attest_body(&q, None, None)),
        false,
    )
    .await;
    let old_token = v["token"].as_str().unwrap().to_string();
    let (st, _, _) = call(&e.svc, "POST", "/admin/keys/rotate", None, false).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, r) = call(&e.svc, "POST", "/admin/keys/rotate", None, true).await;
    assert_eq!(st, StatusCode::OK);
    let (_, _, v) = call(
        &e.svc,
        "POST",
        ATTEST,
        Some(attest_body(&q, None, None)),
        false,
    )
    .await;
    let new_token = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .unwrap(),
        r["active_kid"].as_str().unwrap()
    );
    let pol = json!({"rules": [{"name": "kept", "min_isv_svn": 1}]}).to_string();
    call(&e.svc, "PUT", "/policies/SgxEnclave", Some(pol), true).await;

    drop(e.svc);
    let store = Arc::new(Store::open(&e.dir.join("data")).unwrap());
    let svc = service(&e.kit, &e.dir, Some(store), SigningAlg::ES256);
    let (_, _, jwks) = call(&svc, "GET", "/certs", None, false).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    decode_token(&old_token, &jwks);
    decode_token(&new_token, &jwks);
    let (_, _, v) = call(&svc, "GET", "/policies/SgxEnclave", None, true).await;
    assert_eq!(v["policy"]["rules"][0]["name"], "kept");
}

#[tokio::test]
async fn rs256_option() {
    let e = env("rs256", TcbStatus::UpToDate);
    let svc = service(&e.kit, &e.dir, None, SigningAlg::RS256);
    let q = quote_for(&e.kit, b"x", false);
    let (st, _, v) = call(
        &svc,
        "POST",
        ATTEST,
        Some(attest_body(&q, None, None)),
        false,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    let (_, _, jwks) = call(&svc, "GET", "/certs", None, false).await;
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(
        jwks["keys"][0]["x5c"][0]
            .as_str()
            .unwrap()
            .starts_with("MII")
    );
    decode_token(token, &jwks);
}
