//! Naive baseline attestation server (see Cargo.toml). What it does per request, with no caching:
//! parse the JSON body, base64url-decode the quote, `QuoteVerifier::new(root).verify(quote,
//! &collateral, now)` (dcap-qvl re-parses and re-verifies the whole certificate chain, CRLs, TCB
//! info and QE identity every time), check SHA-256(runtimeData) == report_data[0..32], build a
//! few MAA claims and sign an ES256 JWT with jsonwebtoken (which re-parses the PKCS#8 key each
//! time). The collateral JSON is read once at start.
//!
//! Usage: attest-baseline --listen 127.0.0.1:PORT --collateral FILE.json --root-ca ROOT.der --at UNIX_SECS

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::Report;
use dcap_qvl::verify::QuoteVerifier;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

struct App {
    collateral: QuoteCollateralV3,
    root_der: Vec<u8>,
    now: u64,
    key: jsonwebtoken::EncodingKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttestRequest {
    quote: String,
    runtime_data: Option<RuntimeData>,
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct RuntimeData {
    data: String,
    #[serde(rename = "dataType")]
    #[allow(dead_code)]
    data_type: Option<String>,
}

/// The collateral file as the test data ships it: dcap-qvl's JSON with hex-encoded byte fields.
#[derive(Deserialize)]
struct CollateralFile {
    pck_crl_issuer_chain: String,
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    tcb_info: String,
    tcb_info_signature: String,
    qe_identity_issuer_chain: String,
    qe_identity: String,
    qe_identity_signature: String,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).expect("collateral: bad hex")
}

fn problem(status: StatusCode, detail: String) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "detail": detail})),
    )
        .into_response()
}

fn b64url(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))
}

fn attest(app: &App, req: AttestRequest) -> Response {
    let Ok(quote) = b64url(&req.quote) else {
        return problem(StatusCode::BAD_REQUEST, "quote: bad base64url".into());
    };
    let verifier = QuoteVerifier::new(app.root_der.clone());
    let verified = match verifier.verify(&quote, &app.collateral, app.now) {
        Ok(v) => v,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("verification failed: {e:#}"),
            );
        }
    };
    let Report::SgxEnclave(report) = &verified.report else {
        return problem(StatusCode::BAD_REQUEST, "not an SGX quote".into());
    };
    if matches!(
        verified.status.as_str(),
        "Revoked" | "OutOfDate" | "OutOfDateConfigurationNeeded"
    ) {
        return problem(
            StatusCode::FORBIDDEN,
            format!("tcb status {}", verified.status),
        );
    }
    let debug = report.attributes[0] & 0x02 != 0;
    if debug {
        return problem(StatusCode::FORBIDDEN, "debug enclave".into());
    }
    let mut ehd = None;
    if let Some(rd) = &req.runtime_data {
        let Ok(data) = b64url(&rd.data) else {
            return problem(StatusCode::BAD_REQUEST, "runtimeData: bad base64url".into());
        };
        if Sha256::digest(&data).as_slice() != &report.report_data[..32] {
            return problem(StatusCode::BAD_REQUEST, "runtime-data-mismatch".into());
        }
        ehd = Some(rd.data.clone());
    }
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "iss": "http://baseline",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 8 * 3600,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nonce": req.nonce,
        "x-ms-ver": "1.0",
        "x-ms-attestation-type": "sgx",
        "x-ms-sgx-is-debuggable": debug,
        "x-ms-sgx-mrenclave": hex::encode(report.mr_enclave),
        "x-ms-sgx-mrsigner": hex::encode(report.mr_signer),
        "x-ms-sgx-product-id": report.isv_prod_id,
        "x-ms-sgx-svn": report.isv_svn,
        "x-ms-sgx-report-data": hex::encode(report.report_data),
        "x-ms-sgx-ehd": ehd,
        "x-baseline-tcb-status": verified.status,
        "x-baseline-advisory-ids": verified.advisory_ids,
    });
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    match jsonwebtoken::encode(&header, &claims, &app.key) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, format!("signing: {e}")),
    }
}

async fn handler(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if q.get("api-version").map(String::as_str) != Some("2022-08-01") {
        return problem(
            StatusCode::BAD_REQUEST,
            "api-version must be 2022-08-01".into(),
        );
    }
    let req: AttestRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    // Verification is CPU work: the naive server still keeps it off the async workers.
    match tokio::task::spawn_blocking(move || attest(&app, req)).await {
        Ok(r) => r,
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .unwrap_or_else(|| {
            eprintln!(
                "usage: attest-baseline --listen ADDR --collateral FILE --root-ca DER --at SECS"
            );
            std::process::exit(2)
        })
        .clone()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen");
    let now: u64 = arg(&args, "--at").parse().expect("--at: unix seconds");
    let root_der = std::fs::read(arg(&args, "--root-ca")).expect("--root-ca");
    let file: CollateralFile =
        serde_json::from_slice(&std::fs::read(arg(&args, "--collateral")).expect("--collateral"))
            .expect("collateral JSON");
    let collateral = QuoteCollateralV3 {
        pck_crl_issuer_chain: file.pck_crl_issuer_chain,
        root_ca_crl: unhex(&file.root_ca_crl),
        pck_crl: unhex(&file.pck_crl),
        tcb_info_issuer_chain: file.tcb_info_issuer_chain,
        tcb_info: file.tcb_info,
        tcb_info_signature: unhex(&file.tcb_info_signature),
        qe_identity_issuer_chain: file.qe_identity_issuer_chain,
        qe_identity: file.qe_identity,
        qe_identity_signature: unhex(&file.qe_identity_signature),
        pck_certificate_chain: None,
    };
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("key generation");
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let app = Arc::new(App {
        collateral,
        root_der,
        now,
        key,
    });

    // One verification at start: print the TCB status (the self-test of the benchmark quote).
    if let Some(q) = args.iter().position(|a| a == "--self-test-quote") {
        let quote = std::fs::read(&args[q + 1]).expect("--self-test-quote");
        match QuoteVerifier::new(app.root_der.clone()).verify(&quote, &app.collateral, now) {
            Ok(v) => eprintln!(
                "baseline: self-test quote verified, tcb status {} {:?}",
                v.status, v.advisory_ids
            ),
            Err(e) => {
                eprintln!("baseline: self-test quote FAILED: {e:#}");
                std::process::exit(1)
            }
        }
    }

    let router = Router::new()
        .route("/attest/SgxEnclave", post(handler))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    eprintln!("baseline: listening on http://{listen}");
    axum::serve(listener, router).await.expect("serve");
}
