//! Shared by the secret release tests (`secrets.rs`, `secrets_maa.rs`): a service with the
//! embedded secret store on dcap-testkit collateral at a fixed time, request helpers and
//! transfer keys.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

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
pub struct FixedClock(i64);

impl attest::collateral::Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

pub const AT: i64 = 1_767_225_600;
pub const NOW: i64 = AT + 3600;
pub const ADMIN: &str = "admin-secret";
pub const ISSUER: &str = "https://attest.example";
pub const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub const ATTEST: &str = "/attest/SgxEnclave?api-version=2022-08-01";
pub const VALUE: &[u8] = b"postgres://app:s3cr3t-Pa55@db/prod";

/// A fresh directory, removed when the returned guard drops.
pub fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("confkube-secrets-{name}-"))
        .tempdir()
        .unwrap()
}

pub struct Env {
    pub kit: Testkit,
    /// The service's directory (collateral, store); lives as long as `_guard`.
    pub dir: PathBuf,
    pub store: Arc<Store>,
    pub svc: Arc<Service>,
    _guard: tempfile::TempDir,
}

pub fn service_at(
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

pub fn env_with(name: &str, limit: Option<u32>) -> Env {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
    let guard = tmp(name);
    let dir = guard.path().to_path_buf();
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
    let svc = service_at(&kit, &dir, store.clone(), ISSUER, NOW, Some(secrets));
    Env {
        kit,
        dir,
        store,
        svc,
        _guard: guard,
    }
}

pub fn env(name: &str) -> Env {
    env_with(name, None)
}

pub async fn call(
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
pub fn assert_problem(r: &(StatusCode, String, Value), status: StatusCode, code: &str) -> String {
    assert_eq!(r.0, status, "{}", r.2);
    assert_eq!(r.1, "application/problem+json", "{}", r.2);
    assert_eq!(r.2["code"], code, "{}", r.2);
    r.2["detail"].as_str().unwrap_or_default().to_string()
}

pub fn default_rule() -> Value {
    json!({"rules": [{
        "name": "payments",
        "mrenclave": [hex::encode(QuoteParams::default().mrenclave)],
        "mrsigner": [hex::encode(QuoteParams::default().mrsigner)],
        "isv_prod_id": [1],
        "min_isv_svn": 1
    }]})
}

pub async fn put(e: &Env, name: &str, value: &[u8], policy: Value) -> (StatusCode, String, Value) {
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

pub fn public_jwk(private: &Value) -> Value {
    let mut p = private.clone();
    for k in ["d", "p", "q", "dp", "dq", "qi", "ext", "key_ops"] {
        p.as_object_mut().unwrap().remove(k);
    }
    p
}

/// An attestation request whose JSON runtime data is `runtime`, bound into the quote.
pub fn attest_request(kit: &Testkit, runtime: &Value, q: QuoteParams) -> String {
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

pub async fn token_for(e: &Env, svc: &Arc<Service>, runtime: &Value, q: QuoteParams) -> String {
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

pub async fn release(e: &Env, uri: &str, body: String) -> (StatusCode, String, Value) {
    call(&e.svc, "POST", uri, Some(body), false).await
}

pub fn token_body(t: &str) -> String {
    json!({ "token": t }).to_string()
}

/// A transfer key made with the aws-lc-rs ECDH API (for tests that need no external library).
pub fn rust_ec_jwk() -> Value {
    let k = aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::ECDH_P256).unwrap();
    let p = k.compute_public_key().unwrap();
    let b = &p.as_ref()[1..];
    json!({"kty": "EC", "crv": "P-256", "kid": "rust-ec",
           "x": B64URL.encode(&b[..32]), "y": B64URL.encode(&b[32..])})
}
