//! The Azure Attestation (MAA) compatibility of the HTTP contract, through the real router, the
//! real offline collateral source and real keys: api-versions, base64 variants, the Open Enclave
//! endpoint, deprecated claim names, the error envelope, 404/405 problems, issuers per host, the
//! JWKS shape, TCB baselines and the upgrade of an ES256 store. (Microsoft's SDKs themselves run
//! against the binary in crates/confkube/tests/maa_sdk.rs.)
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
const ADMIN: &str = "admin-secret-0123456789";
const ISSUER: &str = "https://attest.example";
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-maa-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("collateral")).unwrap();
    d
}

struct Env {
    kit: Testkit,
    svc: Arc<Service>,
}

fn service(kit: &Testkit, dir: &Path, alg: SigningAlg) -> Service {
    let cache = CollateralCache::new(
        Arc::new(OfflineDir::new(dir.join("collateral"))),
        Arc::new(ServiceClock(Some(AT + 3600))),
        CacheConfig::default(),
    );
    let cfg = ServiceConfig {
        issuer: format!("{ISSUER}/"),
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
    let store = Arc::new(Store::open(&dir.join("data")).unwrap());
    Service::new(cfg, Some(store), Arc::new(cache)).unwrap()
}

fn env(name: &str) -> Env {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
    let dir = tmp(name);
    let coll = kit.collateral(&CollateralParams::new(AT)).unwrap();
    std::fs::write(
        dir.join("collateral")
            .join(format!("{}.json", hex::encode(kit.params().fmspc))),
        serde_json::to_string(&coll).unwrap(),
    )
    .unwrap();
    let svc = Arc::new(service(&kit, &dir, SigningAlg::RS256));
    Env { kit, svc }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn call(svc: &Arc<Service>, method: &str, uri: &str, body: Option<String>) -> Answer {
    call_with(svc, method, uri, body, &[]).await
}

async fn call_with(
    svc: &Arc<Service>,
    method: &str,
    uri: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = router(svc.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        headers,
        body,
    }
}

fn quote_for(kit: &Testkit, runtime: &[u8]) -> Vec<u8> {
    let mut rd = [0u8; 64];
    rd[..32]
        .copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, runtime).as_ref());
    kit.quote(&QuoteParams {
        report_data: rd,
        isv_prod_id: 7,
        isv_svn: 3,
        ..QuoteParams::default()
    })
    .unwrap()
}

/// An Open Enclave report: `oe_report_header_t` {version, report_type, report_size} + quote.
fn oe_report(version: u32, kind: u32, size: u64, quote: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + quote.len());
    r.extend_from_slice(&version.to_le_bytes());
    r.extend_from_slice(&kind.to_le_bytes());
    r.extend_from_slice(&size.to_le_bytes());
    r.extend_from_slice(quote);
    r
}

fn claims_of(token: &str, jwks: &Value) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

fn sgx_uri(version: &str) -> String {
    format!("/attest/SgxEnclave?api-version={version}")
}

#[tokio::test]
async fn every_maa_api_version_is_accepted_and_an_unknown_one_is_listed() {
    let e = env("versions");
    let quote = quote_for(&e.kit, b"rt");
    let body = json!({"quote": B64URL.encode(&quote), "runtimeData": {"data": B64URL.encode(b"rt"), "dataType": "Binary"}}).to_string();
    for v in [
        "2020-10-01",
        "2022-08-01",
        "2022-09-01-preview",
        "2025-06-01",
    ] {
        let a = call(&e.svc, "POST", &sgx_uri(v), Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::OK, "{v}: {}", a.body);
    }
    let a = call(&e.svc, "POST", &sgx_uri("2019-01-01"), Some(body.clone())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.header("content-type"), "application/problem+json");
    assert_eq!(a.header("x-ms-error-code"), "invalid-request");
    let msg = "api-version 2019-01-01 is not supported (supported: 2020-10-01, 2022-08-01, \
               2022-09-01-preview, 2025-06-01)";
    assert_eq!(a.body["detail"], msg);
    assert_eq!(
        a.body["error"],
        json!({"code": "invalid-request", "message": msg})
    );
    let a = call(&e.svc, "POST", "/attest/SgxEnclave", Some(body)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body["detail"],
        "the api-version query parameter is required (e.g. ?api-version=2022-08-01; supported: \
         2020-10-01, 2022-08-01, 2022-09-01-preview, 2025-06-01)"
    );
}

#[tokio::test]
async fn base64url_and_standard_base64_padded_or_not_in_every_field() {
    let e = env("b64");
    // Bytes whose base64 has '+', '/' (standard) or '-', '_' (url) and needs padding.
    let runtime: Vec<u8> = (0u8..=250).rev().collect();
    let quote = quote_for(&e.kit, &runtime);
    type Encoder = fn(&[u8]) -> String;
    let encoders: [(&str, Encoder); 4] = [
        ("base64url", |b| B64URL.encode(b)),
        ("base64url padded", |b| {
            base64::engine::general_purpose::URL_SAFE.encode(b)
        }),
        ("standard", |b| B64.encode(b)),
        ("standard unpadded", |b| {
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
        }),
    ];
    for (name, enc) in encoders {
        let body = json!({
            "quote": enc(&quote),
            "runtimeData": {"data": enc(&runtime), "dataType": "Binary"},
        });
        let a = call(
            &e.svc,
            "POST",
            &sgx_uri("2022-08-01"),
            Some(body.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.body);
        let report = oe_report(1, 2, quote.len() as u64, &quote);
        let body = json!({
            "report": enc(&report),
            "runtimeData": {"data": enc(&runtime), "dataType": "Binary"},
        });
        let a = call(
            &e.svc,
            "POST",
            "/attest/OpenEnclave?api-version=2022-08-01",
            Some(body.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{name} (OpenEnclave): {}", a.body);
        // initTimeData decodes in every form: the binding check then runs (the test quote's
        // CONFIGID is zero, so it cannot match).
        let body = json!({
            "quote": enc(&quote),
            "initTimeData": {"data": enc(&runtime), "dataType": "Binary"},
        });
        let a = call(
            &e.svc,
            "POST",
            &sgx_uri("2022-08-01"),
            Some(body.to_string()),
        )
        .await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("runtime-data-mismatch")),
            "{name}"
        );
        assert_eq!(
            a.body["detail"],
            "SHA-256(initTimeData) is not the quote's CONFIGID[0..32]"
        );
    }
    // PascalCase field names and an upper-case dataType, as some MAA clients send them.
    let body = json!({
        "Quote": B64.encode(&quote),
        "RuntimeData": {"Data": B64.encode(&runtime), "DataType": "BINARY"},
    });
    let a = call(
        &e.svc,
        "POST",
        &sgx_uri("2020-10-01"),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let body = json!({"quote": "not*base64"}).to_string();
    let a = call(&e.svc, "POST", &sgx_uri("2022-08-01"), Some(body)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body["detail"],
        "quote is not base64url: Invalid symbol 42, offset 3."
    );
}

#[tokio::test]
async fn open_enclave_reports_verify_and_bad_headers_are_named() {
    let e = env("oe");
    let quote = quote_for(&e.kit, b"ego");
    let uri = "/attest/OpenEnclave?api-version=2020-10-01";
    let body = |report: &[u8]| {
        json!({"report": B64URL.encode(report), "runtimeData": {"data": B64URL.encode(b"ego"), "dataType": "Binary"}}).to_string()
    };
    let ok = call(
        &e.svc,
        "POST",
        uri,
        Some(body(&oe_report(1, 2, quote.len() as u64, &quote))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let jwks = call(&e.svc, "GET", "/certs", None).await.body;
    let claims = claims_of(ok.body["token"].as_str().unwrap(), &jwks);
    assert_eq!(claims["x-ms-attestation-type"], "sgx");
    assert_eq!(claims["x-ms-sgx-ehd"], B64URL.encode(b"ego"));
    assert_eq!(claims["x-ms-sgx-product-id"], 7);
    let n = quote.len();
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            quote[..10].to_vec(),
            "report: 10 bytes is shorter than the 16-byte Open Enclave report header".into(),
        ),
        (
            oe_report(2, 2, n as u64, &quote),
            "report: Open Enclave report header version 2 is not supported (expected 1)".into(),
        ),
        (
            oe_report(1, 1, n as u64, &quote),
            "report: a local Open Enclave report (type 1) cannot be verified remotely; send a \
             remote report (oe_get_report with OE_REPORT_FLAGS_REMOTE_ATTESTATION)"
                .into(),
        ),
        (
            oe_report(1, 3, n as u64, &quote),
            "report: Open Enclave report type 3 is not SGX remote (2)".into(),
        ),
        (
            oe_report(1, 2, n as u64 + 1, &quote),
            format!(
                "report: the Open Enclave header says {} bytes of quote follow, but {n} do",
                n + 1
            ),
        ),
        // A raw quote sent as an OE report: its first bytes (version 3, key type 2) are not an
        // OE header.
        (
            quote.clone(),
            "report: Open Enclave report header version 131075 is not supported (expected 1)"
                .into(),
        ),
    ];
    for (report, want) in cases {
        let a = call(&e.svc, "POST", uri, Some(body(&report))).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{want}");
        assert_eq!(a.body["code"], "invalid-request");
        assert_eq!(a.body["detail"], want);
        assert_eq!(a.body["error"]["message"], want);
    }
    // The SGX field name is refused on the OE endpoint, and the other way round.
    let a = call(
        &e.svc,
        "POST",
        uri,
        Some(json!({"quote": "AAAA"}).to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("the body is not an AttestOpenEnclaveRequest: unknown field `quote`"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn tokens_carry_maa_claims_and_their_deprecated_names() {
    let e = env("claims");
    let runtime = br#"{"pub": "key", "n": 1}"#;
    let quote = quote_for(&e.kit, runtime);
    let body = json!({
        "quote": B64URL.encode(&quote),
        "runtimeData": {"data": B64URL.encode(runtime), "dataType": "JSON"},
        "nonce": "n-1",
    });
    let a = call(
        &e.svc,
        "POST",
        &sgx_uri("2025-06-01"),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let token = a.body["token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(
        header.alg,
        jsonwebtoken::Algorithm::RS256,
        "RS256 is the default"
    );
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.jku.as_deref(), Some("https://attest.example/certs"));
    let jwks = call(&e.svc, "GET", "/certs", None).await.body;
    let c = claims_of(token, &jwks);
    let mrenclave = hex::encode(QuoteParams::default().mrenclave);
    let mrsigner = hex::encode(QuoteParams::default().mrsigner);
    let ehd = B64URL.encode(runtime);
    assert!(!ehd.ends_with('='));
    for (name, want) in [
        ("iss", json!(ISSUER)),
        ("x-ms-ver", json!("1.0")),
        ("ver", json!("1.0")),
        ("x-ms-attestation-type", json!("sgx")),
        ("tee", json!("sgx")),
        ("x-ms-sgx-is-debuggable", json!(false)),
        ("is-debuggable", json!(false)),
        ("x-ms-sgx-mrenclave", json!(mrenclave)),
        ("sgx-mrenclave", json!(mrenclave)),
        ("x-ms-sgx-mrsigner", json!(mrsigner)),
        ("sgx-mrsigner", json!(mrsigner)),
        ("x-ms-sgx-product-id", json!(7)),
        ("product-id", json!(7)),
        ("x-ms-sgx-svn", json!(3)),
        ("svn", json!(3)),
        ("x-ms-sgx-ehd", json!(ehd)),
        ("maa-ehd", json!(ehd)),
        ("x-ms-runtime", json!({"pub": "key", "n": 1})),
        ("nonce", json!("n-1")),
    ] {
        assert_eq!(c[name], want, "{name}");
    }
    assert_eq!(c["x-ms-policy-hash"].as_str().unwrap().len(), 43);
    // claims_supported lists every claim a token carries (including a draft-policy token's).
    let oidc = call(&e.svc, "GET", "/.well-known/openid-configuration", None).await;
    let supported: Vec<&str> = oidc.body["claims_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let draft = json!({
        "quote": B64URL.encode(&quote),
        "runtimeData": {"data": B64URL.encode(runtime), "dataType": "JSON"},
        "draftPolicyForAttestation": r#"{"rules":[{"name":"d"}]}"#,
    });
    let d = call(
        &e.svc,
        "POST",
        &sgx_uri("2022-08-01"),
        Some(draft.to_string()),
    )
    .await;
    let draft_claims: Value = serde_json::from_slice(
        &B64URL
            .decode(d.body["token"].as_str().unwrap().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(draft_claims["x-confkube-draft-policy"], true);
    for claims in [&c, &draft_claims] {
        for name in claims.as_object().unwrap().keys() {
            assert!(
                supported.contains(&name.as_str()),
                "{name} not in claims_supported"
            );
        }
    }
    assert_eq!(oidc.body["claimsSupported"], oidc.body["claims_supported"]);
    assert_eq!(
        oidc.body["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
}

#[tokio::test]
async fn failures_carry_the_maa_envelope_and_negotiate_json() {
    let e = env("errors");
    let mut quote = quote_for(&e.kit, b"x");
    // One bit of the enclave report body (ISVSVN): the quote signature no longer matches.
    quote[48 + 258] ^= 1;
    let body = json!({"quote": B64URL.encode(&quote)}).to_string();
    // Microsoft's SDKs send Accept: application/json; curl sends */*.
    for (accept, ct) in [
        (None, "application/problem+json"),
        (Some("*/*"), "application/problem+json"),
        (Some("application/json"), "application/json"),
        (
            Some("application/problem+json, application/json"),
            "application/problem+json",
        ),
        (
            Some("application/json, application/problem+json;q=0"),
            "application/json",
        ),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
        let a = call_with(
            &e.svc,
            "POST",
            &sgx_uri("2020-10-01"),
            Some(body.clone()),
            &headers,
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{accept:?}");
        assert_eq!(a.header("content-type"), ct, "{accept:?}");
        let code = a.body["code"].as_str().unwrap();
        assert_eq!(code, "quote-signature-invalid");
        assert_eq!(a.header("x-ms-error-code"), code);
        assert_eq!(a.body["error"]["code"], code);
        assert_eq!(a.body["error"]["message"], a.body["detail"]);
        assert_eq!(a.body["status"], 400);
        assert_eq!(
            a.body["type"],
            format!("https://confkube.io/problems/{code}")
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems_with_allow() {
    let e = env("routes");
    for (method, uri, allow, detail) in [
        (
            "GET",
            "/attest/SgxEnclave",
            "POST",
            "GET is not allowed on /attest/SgxEnclave (allowed: POST)",
        ),
        (
            "GET",
            "/attest/OpenEnclave",
            "POST",
            "GET is not allowed on /attest/OpenEnclave (allowed: POST)",
        ),
        (
            "DELETE",
            "/policies/SgxEnclave",
            "GET,HEAD,PUT",
            "DELETE is not allowed on /policies/SgxEnclave (allowed: GET,HEAD,PUT)",
        ),
        (
            "GET",
            "/admin/keys/rotate",
            "POST",
            "GET is not allowed on /admin/keys/rotate (allowed: POST)",
        ),
        (
            "POST",
            "/certs",
            "GET,HEAD",
            "POST is not allowed on /certs (allowed: GET,HEAD)",
        ),
        (
            "POST",
            "/tcbbaselines/SgxEnclave",
            "GET,HEAD",
            "POST is not allowed on /tcbbaselines/SgxEnclave (allowed: GET,HEAD)",
        ),
    ] {
        let a = call(&e.svc, method, uri, None).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(a.header("content-type"), "application/problem+json");
        assert_eq!(a.header("allow"), allow, "{method} {uri}");
        assert_eq!(a.header("x-ms-error-code"), "method-not-allowed");
        assert_eq!(a.body["code"], "method-not-allowed");
        assert_eq!(a.body["detail"], detail);
        assert_eq!(a.body["error"]["message"], detail);
    }
    let a = call(&e.svc, "GET", "/attest/Nothing", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.header("content-type"), "application/problem+json");
    assert_eq!(a.body["code"], "not-found");
    assert_eq!(a.body["detail"], "no such endpoint: GET /attest/Nothing");
    // A body that is not JSON for the declared type is a problem too (axum's rejection).
    let a = call(
        &e.svc,
        "POST",
        "/attest/SgxEnclave?api-version=2022-08-01&api-version=x",
        Some("{}".into()),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.header("content-type"), "application/problem+json");
    assert!(a.body["code"].is_string(), "{}", a.body);
}

#[tokio::test]
async fn issuer_follows_the_host_clients_dialled() {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
    let dir = tmp("hosts");
    let coll = kit.collateral(&CollateralParams::new(AT)).unwrap();
    std::fs::write(
        dir.join("collateral")
            .join(format!("{}.json", hex::encode(kit.params().fmspc))),
        serde_json::to_string(&coll).unwrap(),
    )
    .unwrap();
    let svc = Arc::new(service(&kit, &dir, SigningAlg::RS256).with_issuers(vec![
        "https://attest.internal:8443/".into(),
        "http://10.0.0.5:8080".into(),
    ]));
    assert_eq!(
        svc.issuers(),
        vec![
            ISSUER,
            "https://attest.internal:8443",
            "http://10.0.0.5:8080"
        ]
    );
    let quote = quote_for(&kit, b"h");
    let body = json!({"quote": B64URL.encode(&quote), "runtimeData": {"data": B64URL.encode(b"h"), "dataType": "Binary"}}).to_string();
    for (host, want) in [
        (None, ISSUER),
        (Some("attest.example"), ISSUER),
        (Some("attest.example:443"), ISSUER),
        (Some("ATTEST.INTERNAL:8443"), "https://attest.internal:8443"),
        (Some("10.0.0.5:8080"), "http://10.0.0.5:8080"),
        (Some("unknown.example"), ISSUER),
    ] {
        let headers: Vec<(&str, &str)> = host.iter().map(|h| ("host", *h)).collect();
        let a = call_with(
            &svc,
            "POST",
            &sgx_uri("2022-08-01"),
            Some(body.clone()),
            &headers,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        let token = a.body["token"].as_str().unwrap();
        let jwks = call_with(&svc, "GET", "/certs", None, &headers).await.body;
        let c = claims_of(token, &jwks);
        assert_eq!(c["iss"], want, "{host:?}");
        assert_eq!(
            jsonwebtoken::decode_header(token).unwrap().jku,
            Some(format!("{want}/certs"))
        );
        let oidc = call_with(
            &svc,
            "GET",
            "/.well-known/openid-configuration",
            None,
            &headers,
        )
        .await;
        assert_eq!(oidc.body["issuer"], want);
        assert_eq!(oidc.body["jwks_uri"], format!("{want}/certs"));
        // The x5c certificate names the same issuer.
        let der = B64
            .decode(jwks["keys"][0]["x5c"][0].as_str().unwrap())
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.subject().to_string(), format!("CN={want}"));
        assert_eq!(cert.issuer().to_string(), format!("CN={want}"));
    }
}

#[tokio::test]
async fn jwks_is_application_json_at_certs_and_certs_slash() {
    let e = env("jwks");
    for path in ["/certs", "/certs/"] {
        let a = call(&e.svc, "GET", path, None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("content-type"), "application/json");
        let keys = a.body["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kty"], "RSA");
        assert_eq!(keys[0]["alg"], "RS256");
        assert_eq!(keys[0]["use"], "sig");
        assert_eq!(keys[0]["kid"], e.svc.keys().active_kid().unwrap());
        assert!(
            keys[0]["n"].as_str().unwrap().len() >= 342,
            "RSA-2048 or larger"
        );
    }
}

#[tokio::test]
async fn tcb_baselines_come_from_the_collateral_the_service_has() {
    let e = env("tcb");
    let uri = "/tcbbaselines/SgxEnclave?api-version=2025-06-01";
    let a = call(&e.svc, "GET", uri, None).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (StatusCode::OK, json!({"tcbBaselines": []}))
    );
    let quote = quote_for(&e.kit, b"t");
    let body = json!({"quote": B64URL.encode(&quote)}).to_string();
    assert_eq!(
        call(&e.svc, "POST", &sgx_uri("2022-08-01"), Some(body))
            .await
            .status,
        StatusCode::OK
    );
    // The test collateral is TCB evaluation data number 17, TCB date 2024-01-01.
    let want = json!({"tcbBaselines": [
        {"tcbIdentifier": "azuredefault", "tcbEvaluationDataNumber": 17,
         "tcbReleaseDate": "2024-01-01T00:00:00Z", "isSelectedTcb": true},
        {"tcbIdentifier": "17", "tcbEvaluationDataNumber": 17,
         "tcbReleaseDate": "2024-01-01T00:00:00Z", "isSelectedTcb": false},
    ]});
    for uri in [
        uri,
        "/tcbbaselines/OpenEnclave",
        "/tcbbaselines/SgxEnclave?api-version=2022-09-01-preview",
    ] {
        let a = call(&e.svc, "GET", uri, None).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert_eq!(a.header("content-type"), "application/json");
        assert_eq!(a.body, want, "{uri}");
    }
    let a = call(&e.svc, "GET", "/tcbbaselines/SevSnpVm", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.body["detail"],
        "no TCB baselines for attestation type \"SevSnpVm\" (supported: SgxEnclave, OpenEnclave)"
    );
    let a = call(
        &e.svc,
        "GET",
        "/tcbbaselines/SgxEnclave?api-version=1",
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["code"], "invalid-request");
}

#[tokio::test]
async fn an_es256_store_keeps_working_after_the_rs256_default() {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
    let dir = tmp("upgrade");
    let coll = kit.collateral(&CollateralParams::new(AT)).unwrap();
    std::fs::write(
        dir.join("collateral")
            .join(format!("{}.json", hex::encode(kit.params().fmspc))),
        serde_json::to_string(&coll).unwrap(),
    )
    .unwrap();
    let quote = quote_for(&kit, b"u");
    let body = json!({"quote": B64URL.encode(&quote)}).to_string();
    let (old_token, old_kid) = {
        let svc = Arc::new(service(&kit, &dir, SigningAlg::ES256));
        let a = call(&svc, "POST", &sgx_uri("2022-08-01"), Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::OK);
        (
            a.body["token"].as_str().unwrap().to_string(),
            svc.keys().active_kid().unwrap(),
        )
    };
    // The same store under the new default: a new RS256 key signs; the ES256 key is still
    // published (after the RSA key) so its tokens keep verifying until they expire.
    let svc = Arc::new(service(&kit, &dir, SigningAlg::RS256));
    let new_kid = svc.keys().active_kid().unwrap();
    assert_ne!(new_kid, old_kid);
    let jwks = call(&svc, "GET", "/certs", None).await.body;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), old_kid.as_str()]);
    assert_eq!(claims_of(&old_token, &jwks)["iss"], ISSUER);
    let a = call(&svc, "POST", &sgx_uri("2022-08-01"), Some(body)).await;
    let token = a.body["token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    assert_eq!(claims_of(token, &jwks)["iss"], ISSUER);
    let oidc = call(&svc, "GET", "/.well-known/openid-configuration", None).await;
    assert_eq!(
        oidc.body["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
