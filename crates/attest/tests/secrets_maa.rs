//! Secret release policies in the MAA policy language (`{"maa": "<policy text>"}`): accepted and
//! parsed at create time, their `authorizationrules` evaluated over the presented attestation's
//! claims, for two-step (token) and one-step release.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::collateral::{CacheConfig, CollateralCache, OfflineDir};
use attest::keys::SigningAlg;
use attest::secrets::Secrets;
use attest::secrets::kek::Kek;
use attest::secrets::model::{Backend, StoreBackend};
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

/// The test clock: one fixed time, for the service and its cache alike.
#[derive(Debug, Clone, Copy)]
struct FixedClock(i64);

impl attest::collateral::Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

const AT: i64 = 1_767_225_600;
const NOW: i64 = AT + 3600;
const ADMIN: &str = "admin-secret";
const ISSUER: &str = "https://attest.example";
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const ATTEST: &str = "/attest/SgxEnclave?api-version=2022-08-01";
const VALUE: &[u8] = b"postgres://app:s3cr3t-Pa55@db/prod";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "confkube-secrets-maa-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Env {
    kit: Testkit,
    svc: Arc<Service>,
}

fn service_at(
    kit: &Testkit,
    dir: &Path,
    store: Arc<Store>,
    issuer: &str,
    now: i64,
    secrets: Option<Secrets>,
) -> Arc<Service> {
    let cache = CollateralCache::new(
        Arc::new(OfflineDir::new(dir.join("collateral"))),
        Arc::new(FixedClock(now)),
        CacheConfig::default(),
    );
    let cfg = ServiceConfig {
        issuer: issuer.into(),
        token_lifetime: 28_800,
        verify_at: None,
        anchor: TrustAnchor::from_certificate(kit.root_pem().as_bytes()).unwrap(),
        allow_missing_crls: false,
        signing_alg: SigningAlg::RS256,
        signing_key_dir: None,
        policy_file: None,
        body_limit: 256 * 1024,
        admin_token_sha256: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ADMIN.as_bytes())
            .as_ref()
            .try_into()
            .unwrap(),
    };
    let svc = Arc::new(
        Service::new(cfg, Some(store), Arc::new(cache), Arc::new(FixedClock(now))).unwrap(),
    );
    if let Some(s) = secrets {
        svc.enable_secrets(s).unwrap();
    }
    svc
}

fn env_with(name: &str, limit: Option<u32>) -> Env {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
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
    let kek = Kek::load_or_generate(&dir.join("data").join("secrets.kek")).unwrap();
    let secrets = Secrets::new(Backend::Store(StoreBackend::new(store.clone(), kek)), limit);
    let svc = service_at(&kit, &dir, store, ISSUER, NOW, Some(secrets));
    Env { kit, svc }
}

fn env(name: &str) -> Env {
    env_with(name, None)
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

/// Asserts a problem+json answer with `code`; returns its detail.
fn assert_problem(r: &(StatusCode, String, Value), status: StatusCode, code: &str) -> String {
    assert_eq!(r.0, status, "{}", r.2);
    assert_eq!(r.1, "application/problem+json", "{}", r.2);
    assert_eq!(r.2["code"], code, "{}", r.2);
    r.2["detail"].as_str().unwrap_or_default().to_string()
}

async fn put(e: &Env, name: &str, value: &[u8], policy: Value) -> (StatusCode, String, Value) {
    let body =
        json!({"value": B64URL.encode(value), "contentType": "text/plain", "policy": policy});
    call(
        &e.svc,
        "PUT",
        &format!("/secrets/{name}"),
        Some(body.to_string()),
        true,
    )
    .await
}

/// An attestation request whose JSON runtime data is `runtime`, bound into the quote.
fn attest_request(kit: &Testkit, runtime: &Value, q: QuoteParams) -> String {
    let text = runtime.to_string();
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
    );
    let quote = kit
        .quote(&QuoteParams {
            report_data: rd,
            ..q
        })
        .unwrap();
    json!({"quote": B64URL.encode(quote),
           "runtimeData": {"data": B64URL.encode(text.as_bytes()), "dataType": "JSON"}})
    .to_string()
}

async fn token_for(e: &Env, svc: &Arc<Service>, runtime: &Value, q: QuoteParams) -> String {
    let r = call(
        svc,
        "POST",
        ATTEST,
        Some(attest_request(&e.kit, runtime, q)),
        false,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    r.2["token"].as_str().unwrap().to_string()
}

async fn release(e: &Env, uri: &str, body: String) -> (StatusCode, String, Value) {
    call(&e.svc, "POST", uri, Some(body), false).await
}

fn token_body(t: &str) -> String {
    json!({ "token": t }).to_string()
}

/// A transfer key made with the aws-lc-rs ECDH API (for tests that need no external library).
fn rust_ec_jwk() -> Value {
    let k = aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::ECDH_P256).unwrap();
    let p = k.compute_public_key().unwrap();
    let b = &p.as_ref()[1..];
    json!({"kty": "EC", "crv": "P-256", "kid": "rust-ec",
           "x": B64URL.encode(&b[..32]), "y": B64URL.encode(&b[32..])})
}

fn mrsigner() -> String {
    hex::encode(QuoteParams::default().mrsigner)
}

fn by_signer_and_product() -> Value {
    json!({"maa": format!(
        "version=1.1;\nauthorizationrules {{\n  [type==\"x-ms-sgx-mrsigner\", value==\"{}\"] && [type==\"x-ms-sgx-product-id\", value==1] => permit();\n}};\n",
        mrsigner()
    )})
}

/// Releases `name` with a two-step token and decrypts nothing (the JWE shape is checked).
async fn released(e: &Env, name: &str, token: &str) -> Value {
    let r = release(e, &format!("/secrets/{name}/release"), token_body(token)).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["value"].as_str().unwrap().split('.').count(), 5);
    r.2
}

#[tokio::test]
async fn permit_by_mrsigner_and_product_and_metadata_shows_the_language() {
    let e = env("permit");
    let r = put(&e, "db", VALUE, by_signer_and_product()).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let (_, _, d) = call(&e.svc, "GET", "/secrets/db", None, true).await;
    assert_eq!(d["versions"][0]["policyLanguage"], "maa", "{d}");
    assert_eq!(d["versions"][0]["policy"], by_signer_and_product());
    let (_, _, l) = call(&e.svc, "GET", "/secrets", None, true).await;
    assert_eq!(
        l,
        json!({"secrets": [{"name": "db", "versions": [1], "current": 1, "policyLanguage": "maa"}]})
    );
    let runtime = json!({"keys": [rust_ec_jwk()]});
    let token = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;
    let out = released(&e, "db", &token).await;
    assert_eq!(out["version"], 1);

    // Another product: no rule permits; the message names the rule and condition, not the value.
    let other = QuoteParams {
        isv_prod_id: 2,
        ..QuoteParams::default()
    };
    let t = token_for(&e, &e.svc, &runtime, other).await;
    let r = release(&e, "/secrets/db/release", token_body(&t)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert_eq!(
        d,
        "denied by the secret's release policy: no authorization rule permitted: the rule at \
         line 3 needs [type==\"x-ms-sgx-product-id\", value==1] (line 3, column 109), which no \
         claim matches"
    );
    assert_eq!(r.2["unmet"][0]["condition"]["line"], 3, "{}", r.2);
    assert!(!r.2.to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn deny_by_svn_and_version_1_0_dollar_names() {
    let e = env("svn");
    let policy = json!({"maa": "version=1.0;\nauthorizationrules {\n  [type==\"$svn\", value<2] => deny();\n  [type==\"$is-debuggable\", value==false] && [type==\"$sgx-mrsigner\", value==\"".to_string()
        + &mrsigner() + "\"] => permit();\n};"});
    assert_eq!(put(&e, "db", VALUE, policy).await.0, StatusCode::OK);
    let runtime = json!({"keys": [rust_ec_jwk()]});
    // SVN 1 (the default quote): denied by the deny() rule.
    let t = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;
    let r = release(&e, "/secrets/db/release", token_body(&t)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert_eq!(
        d,
        "denied by the secret's release policy: denied by the authorization rule at line 3, \
         column 3: [type==\"$svn\", value<2] => deny()"
    );
    assert_eq!(r.2["rule"]["line"], 3, "{}", r.2);
    // SVN 2: the $-named permit rule holds.
    let t = token_for(
        &e,
        &e.svc,
        &runtime,
        QuoteParams {
            isv_svn: 2,
            ..QuoteParams::default()
        },
    )
    .await;
    released(&e, "db", &t).await;
    // A debug enclave with SVN 2 (the attestation policy admits debug enclaves):
    // $is-debuggable is true, so nothing permits.
    let r = call(
        &e.svc,
        "PUT",
        "/policies/SgxEnclave",
        Some(json!({"rules": [{"name": "any", "allow_debug": true}]}).to_string()),
        true,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let t = token_for(
        &e,
        &e.svc,
        &runtime,
        QuoteParams {
            isv_svn: 2,
            debug: true,
            ..QuoteParams::default()
        },
    )
    .await;
    let r = release(&e, "/secrets/db/release", token_body(&t)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert!(
        d.contains("[type==\"$is-debuggable\", value==false]"),
        "{d}"
    );
}

#[tokio::test]
async fn malformed_policies_are_400_invalid_policy_with_line_and_column() {
    let e = env("malformed");
    let r = put(
        &e,
        "db",
        VALUE,
        json!({"maa": "version=1.0;\nauthorizationrules {\n  => permit()\n"}),
    )
    .await;
    let d = assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-policy");
    assert_eq!(
        d,
        "invalid policy: line 4, column 1: expected a rule or `}` closing `authorizationrules`, \
         found the end of the policy"
    );
    assert_eq!(
        (r.2["line"].clone(), r.2["column"].clone()),
        (json!(4), json!(1))
    );
    for bad in [
        json!({"maa": 5}),
        json!({"maa": "version=1.0;", "rules": []}),
    ] {
        let r = put(&e, "db", VALUE, bad).await;
        assert_eq!(
            assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-policy"),
            "invalid policy: an MAA release policy is {\"maa\": \"<policy text>\"}: one string \
             member and nothing else"
        );
    }
    let r = put(
        &e,
        "db",
        VALUE,
        json!({"maa": "version=1.1; configurationrules { => issueproperty(type=\"x-ms-sgx-tcbidentifier\", value=\"17\"); }; authorizationrules { => permit(); };"}),
    )
    .await;
    let d = assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-policy");
    assert!(d.contains("x-ms-sgx-tcbidentifier"), "{d}");
    let (_, _, l) = call(&e.svc, "GET", "/secrets", None, true).await;
    assert_eq!(l, json!({"secrets": []}));
}

#[tokio::test]
async fn one_step_release_with_an_maa_policy() {
    let e = env("onestep");
    assert_eq!(
        put(&e, "db", VALUE, by_signer_and_product()).await.0,
        StatusCode::OK
    );
    let runtime = json!({"keys": [rust_ec_jwk()]});
    let body = attest_request(&e.kit, &runtime, QuoteParams::default());
    let r = release(&e, "/secrets/db/release", body).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["value"].as_str().unwrap().split('.').count(), 5);
    let other = QuoteParams {
        mrsigner: [7; 32],
        ..QuoteParams::default()
    };
    let body = attest_request(&e.kit, &runtime, other);
    let r = release(&e, "/secrets/db/release", body).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert!(d.contains("x-ms-sgx-mrsigner"), "{d}");
    // A runtime-data claim (x-ms-runtime, version 1.2 JmesPath) is visible to the policy too.
    let kid_policy = json!({"maa": "version=1.2; authorizationrules { c:[type==\"x-ms-runtime\"] => add(type=\"kid\", value=JmesPath(c.value, \"keys[0].kid\")); [type==\"kid\", value==\"\\\"rust-ec\\\"\"] => permit(); };"});
    let r = put(&e, "kid", VALUE, kid_policy).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let body = attest_request(&e.kit, &runtime, QuoteParams::default());
    let r = release(&e, "/secrets/kid/release", body).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
}
