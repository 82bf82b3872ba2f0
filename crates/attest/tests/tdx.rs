//! `POST /attest/TdxVm` through the real router, offline collateral source (its `tdx/` folder),
//! cache and signing keys: the real TDX quote of `shared/testdata/dcap/tdx/dcap-qvl` under the
//! Intel root, and test-PKI TDs for runtime-data binding and TDX policy rules.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::collateral::{CacheConfig, CollateralCache, OfflineDir};
use attest::keys::SigningAlg;
use attest::server::{Service, ServiceConfig, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use dcap::{TcbStatus, TrustAnchor};
use dcap_testkit::{
    CollateralParams, PkiParams, QuoteParams, TdxCollateralParams, TdxQuoteParams, Testkit,
};
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
const ADMIN: &str = "admin-secret";
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const TDXVM: &str = "/attest/TdxVm?api-version=2025-06-01";
const SGX: &str = "/attest/SgxEnclave?api-version=2022-08-01";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-tdx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("collateral/tdx")).unwrap();
    d
}

fn service(anchor: TrustAnchor, dir: &Path, at: i64) -> Arc<Service> {
    let cache = CollateralCache::new(
        Arc::new(OfflineDir::new(dir.join("collateral"))),
        Arc::new(FixedClock(at)),
        CacheConfig::default(),
    );
    let cfg = ServiceConfig {
        issuer: "https://attest.example".into(),
        token_lifetime: 28_800,
        verify_at: None,
        anchor,
        allow_missing_crls: false,
        signing_alg: SigningAlg::RS256,
        signing_key_dir: None,
        policy_file: None,
        body_limit: 64 * 1024,
        admin_token_sha256: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ADMIN.as_bytes())
            .as_ref()
            .try_into()
            .unwrap(),
    };
    Arc::new(Service::new(cfg, None, Arc::new(cache), Arc::new(FixedClock(at))).unwrap())
}

async fn call(
    svc: &Arc<Service>,
    method: &str,
    uri: &str,
    body: Option<String>,
    admin: bool,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if admin {
        req = req.header("authorization", format!("Bearer {ADMIN}"));
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = router(svc.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn claims_of(svc: &Arc<Service>, token: &str) -> Value {
    let (_, jwks) = call(svc, "GET", "/certs", None, false).await;
    let header = jsonwebtoken::decode_header(token).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(set.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&["https://attest.example"]);
    v.validate_exp = false;
    v.validate_nbf = false;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn real_td_quote_gets_a_token_with_maa_tdx_claims() {
    let Some(src) = testdata::path("dcap/tdx/dcap-qvl") else {
        return;
    };
    let dir = tmp("real");
    std::fs::copy(
        src.join("tdx_quote_collateral.json"),
        dir.join("collateral/tdx/b0c06f000000.json"),
    )
    .unwrap();
    let svc = service(TrustAnchor::intel_sgx_root(), &dir, 1_751_328_000);
    let quote = std::fs::read(src.join("tdx_quote")).unwrap();
    let body = json!({"quote": B64URL.encode(&quote), "nonce": "td-nonce"}).to_string();
    let (st, v) = call(&svc, "POST", TDXVM, Some(body.clone()), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let c = claims_of(&svc, v["token"].as_str().unwrap()).await;
    let want = [
        ("x-ms-attestation-type", json!("tdxvm")),
        ("tee", json!("tdx")),
        ("eat_profile", json!("https://aka.ms/maa-eat-profile-tdxvm")),
        ("attester_tcb_status", json!("UpToDate")),
        ("dbgstat", json!("disabled")),
        ("intuse", json!("generic")),
        (
            "tdx_mrtd",
            json!(
                "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
            ),
        ),
        ("tdx_td_attributes", json!("0000001000000000")),
        ("tdx_td_attributes_debug", json!(false)),
        ("tdx_td_attributes_septve_disable", json!(true)),
        ("tdx_is_debuggable", json!(false)),
        ("tdx_xfam", json!("e702060000000000")),
        ("tdx_tee_tcb_svn", json!("06010300000000000000000000000000")),
        ("tdx_seamsvn", json!(0x0106)),
        ("tdx_seam_attributes", json!("0000000000000000")),
        ("x-confkube-tdx-module-tcb-status", json!("UpToDate")),
        ("x-confkube-fmspc", json!("b0c06f000000")),
        ("nonce", json!("td-nonce")),
        ("x-ms-ver", json!("1.0")),
    ];
    for (k, val) in want {
        assert_eq!(c[k], val, "{k}");
    }
    for k in [
        "tdx_rtmr0",
        "tdx_rtmr1",
        "tdx_rtmr2",
        "tdx_rtmr3",
        "tdx_mrconfigid",
    ] {
        assert_eq!(c[k].as_str().unwrap().len(), 96, "{k}");
    }
    assert_eq!(
        c["tdx_report_data"],
        hex::encode(&quote[48 + 520..48 + 584])
    );

    // The SGX route refuses a TD quote, naming the TDX route.
    let (st, v) = call(&svc, "POST", SGX, Some(body), false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "unsupported-quote-version"),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("/attest/TdxVm"),
        "{v}"
    );
}

#[tokio::test]
async fn td_quote_without_tdx_collateral_is_collateral_not_found() {
    let Some(src) = testdata::path("dcap/tdx/dcap-qvl") else {
        return;
    };
    let dir = tmp("nocoll");
    // SGX-side collateral for the FMSPC is not TDX collateral.
    std::fs::copy(
        src.join("tdx_quote_collateral.json"),
        dir.join("collateral/b0c06f000000.json"),
    )
    .unwrap();
    let svc = service(TrustAnchor::intel_sgx_root(), &dir, 1_751_328_000);
    let quote = std::fs::read(src.join("tdx_quote")).unwrap();
    let body = json!({"quote": B64URL.encode(&quote)}).to_string();
    let (st, v) = call(&svc, "POST", TDXVM, Some(body), false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::UNPROCESSABLE_ENTITY, "collateral-not-found"),
        "{v}"
    );
}

struct Td {
    kit: Testkit,
    svc: Arc<Service>,
}

fn td_env(name: &str) -> Td {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
    let dir = tmp(name);
    let cp = CollateralParams::new(AT);
    let fmspc = hex::encode(kit.params().fmspc);
    std::fs::write(
        dir.join(format!("collateral/tdx/{fmspc}.json")),
        serde_json::to_string(
            &kit.tdx_collateral(&cp, &TdxCollateralParams::default())
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("collateral/{fmspc}.json")),
        serde_json::to_string(&kit.collateral(&cp).unwrap()).unwrap(),
    )
    .unwrap();
    let anchor = TrustAnchor::from_certificate(kit.root_pem().as_bytes()).unwrap();
    let svc = service(anchor, &dir, AT + 3600);
    Td { kit, svc }
}

fn td_quote(kit: &Testkit, runtime: &[u8], qp: TdxQuoteParams) -> Vec<u8> {
    let mut rd = [0u8; 64];
    rd[..32]
        .copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, runtime).as_ref());
    kit.tdx_quote(&TdxQuoteParams {
        report_data: rd,
        ..qp
    })
    .unwrap()
}

#[tokio::test]
async fn runtime_data_binding_and_tdx_policy_rules() {
    let e = td_env("policy");
    let runtime = br#"{"keys":[]}"#;
    let quote = td_quote(&e.kit, runtime, TdxQuoteParams::default());
    let body = |q: &[u8], data: &[u8]| {
        json!({"quote": B64URL.encode(q),
               "runtimeData": {"data": B64URL.encode(data), "dataType": "JSON"}})
        .to_string()
    };
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&quote, runtime)), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let c = claims_of(&e.svc, v["token"].as_str().unwrap()).await;
    assert_eq!(c["x-ms-runtime"], json!({"keys": []}));
    assert_eq!(c["tdx_mrtd"], hex::encode(TdxQuoteParams::default().mr_td));
    assert_eq!(c["x-confkube-policy-rule"], "default");

    let (st, v) = call(
        &e.svc,
        "POST",
        TDXVM,
        Some(body(&quote, br#"{"other":1}"#)),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "runtime-data-mismatch"),
        "{v}"
    );

    // A debug TD is denied by the default policy.
    let dbg = td_quote(
        &e.kit,
        runtime,
        TdxQuoteParams {
            debug: true,
            ..TdxQuoteParams::default()
        },
    );
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&dbg, runtime)), false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "debug-not-allowed"),
        "{v}"
    );

    // TDX rules: MRTD and RTMR2 lists; an SGX rule does not admit a TD.
    let mr_td = hex::encode(TdxQuoteParams::default().mr_td);
    let rtmr2 = hex::encode(TdxQuoteParams::default().rtmr[2]);
    let put = |pol: Value| {
        let svc = e.svc.clone();
        async move {
            let (st, v) = call(
                &svc,
                "PUT",
                "/policies/SgxEnclave",
                Some(pol.to_string()),
                true,
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
    };
    put(json!({"rules": [{"name": "td", "mr_td": [mr_td], "rtmr2": [rtmr2]}]})).await;
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&quote, runtime)), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        claims_of(&e.svc, v["token"].as_str().unwrap()).await["x-confkube-policy-rule"],
        "td"
    );
    // The same policy refuses an SGX enclave (the rule is for TDs).
    let sgx = e.kit.quote(&QuoteParams::default()).unwrap();
    let (st, v) = call(
        &e.svc,
        "POST",
        SGX,
        Some(json!({"quote": B64URL.encode(&sgx)}).to_string()),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "tee-not-matched"),
        "{v}"
    );
    put(json!({"rules": [{"name": "td", "rtmr3": ["00".repeat(48)]}]})).await;
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&quote, runtime)), false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "tdx-measurement-not-allowed"),
        "{v}"
    );
    put(json!({"rules": [{"name": "enclaves", "mrsigner": ["11".repeat(32)]}]})).await;
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&quote, runtime)), false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "tee-not-matched"),
        "{v}"
    );
    // A rule that mixes SGX and TDX fields is refused when stored.
    let (st, v) = call(
        &e.svc,
        "PUT",
        "/policies/SgxEnclave",
        Some(
            json!({"rules": [{"name": "x", "mrsigner": ["11".repeat(32)], "mr_td": [mr_td]}]})
                .to_string(),
        ),
        true,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

    // An SGX quote at the TDX route.
    let (st, v) = call(
        &e.svc,
        "POST",
        TDXVM,
        Some(json!({"quote": B64URL.encode(&sgx)}).to_string()),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "unsupported-quote-version"),
        "{v}"
    );
    // A forged TD quote keeps its verification code.
    let mut forged = quote.clone();
    forged[48 + 200] ^= 1;
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&forged, runtime)), false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "quote-signature-invalid"),
        "{v}"
    );
}

#[tokio::test]
async fn maa_policies_permit_and_deny_td_quotes() {
    let e = td_env("maa");
    let runtime = br#"{"keys":[]}"#;
    let body = |q: &[u8]| {
        json!({"quote": B64URL.encode(q),
               "runtimeData": {"data": B64URL.encode(runtime), "dataType": "JSON"}})
        .to_string()
    };
    let quote = td_quote(&e.kit, runtime, TdxQuoteParams::default());
    // A JSON-policy token first: its TDX claims are what an MAA policy must see.
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&quote)), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let json_claims = claims_of(&e.svc, v["token"].as_str().unwrap()).await;
    let put = |text: String| {
        let svc = e.svc.clone();
        async move {
            let (st, v) = call(&svc, "PUT", "/policies/SgxEnclave", Some(text), true).await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
    };
    // Every TDX claim of the token, as a condition: the MAA claim set has the same names and values.
    let mut conds = Vec::new();
    for (k, val) in json_claims.as_object().unwrap() {
        let scalar = match val {
            Value::String(s) => format!("{s:?}"),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if k.starts_with("tdx_") || k == "attester_tcb_status" || k == "dbgstat" {
            conds.push(format!("[type==\"{k}\", value=={scalar}]"));
        }
    }
    assert!(conds.len() > 20, "{conds:?}");
    put(format!(
        "version=1.0;\nauthorizationrules {{\n  {} => permit();\n}};\nissuancerules {{\n  c:[type==\"tdx_mrtd\"] => issue(type=\"td-measurement\", value=c.value);\n}};",
        conds.join(" && ")
    ))
    .await;
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&quote)), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let c = claims_of(&e.svc, v["token"].as_str().unwrap()).await;
    assert_eq!(
        c["td-measurement"],
        hex::encode(TdxQuoteParams::default().mr_td)
    );
    assert_eq!(c["x-confkube-policy-rule"], "line 3");

    // By MRTD and the debug attribute.
    let mr_td = hex::encode(TdxQuoteParams::default().mr_td);
    put(format!(
        "version=1.0;\nauthorizationrules {{\n  [type==\"tdx_td_attributes_debug\", value==true] => deny();\n  [type==\"tdx_mrtd\", value==\"{mr_td}\"] => permit();\n}};"
    ))
    .await;
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&quote)), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let other = td_quote(
        &e.kit,
        runtime,
        TdxQuoteParams {
            mr_td: [0x5a; 48],
            ..TdxQuoteParams::default()
        },
    );
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&other)), false).await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::FORBIDDEN, "policy-not-permitted"),
        "{v}"
    );
    assert_eq!(v["unmet"][0]["condition"]["line"], 4, "{v}");
    let dbg = td_quote(
        &e.kit,
        runtime,
        TdxQuoteParams {
            debug: true,
            ..TdxQuoteParams::default()
        },
    );
    let (st, v) = call(&e.svc, "POST", TDXVM, Some(body(&dbg)), false).await;
    assert_eq!(
        (st, v["detail"].as_str().unwrap()),
        (
            StatusCode::FORBIDDEN,
            "denied by policy: denied by the authorization rule at line 3, column 3: \
             [type==\"tdx_td_attributes_debug\", value==true] => deny()"
        ),
        "{v}"
    );
    assert_eq!(v["code"], "policy-denied");
}
