//! Policy management as Azure Attestation does it, for Microsoft's
//! `AttestationAdministrationClient` (Python `azure-security-attestation` 1.0.0, and the other
//! SDKs of the same REST API, api-version 2020-10-01 and later):
//!
//! * `GET /policies/SgxEnclave?api-version=V` → `{"token": JWT}`; the JWT (signed like
//!   attestation tokens, checked by the SDK against `/certs`) is a `PolicyResult` whose
//!   `x-ms-policy` is the policy as a JWS `StoredAttestationPolicy`
//!   (`{"AttestationPolicy": BASE64URL(policy text)}`).
//! * `PUT /policies/SgxEnclave?api-version=V`, `Content-Type: text/plain`, body a JWS whose
//!   payload is a `StoredAttestationPolicy`: unsigned (`alg: none`) or signed (`RS256`/`ES256`
//!   with the signing certificate in `x5c`). → `PolicyResult` with `x-ms-policy-result:
//!   "Updated"`, `x-ms-policy-token-hash` = BASE64URL(SHA256(the JWS as sent)) and, for a signed
//!   upload, `x-ms-policy-signer` (the JWK with `x5c`).
//! * `POST /policies/SgxEnclave:reset?api-version=V`, body a JWS with an empty payload → confkube's
//!   default policy, `x-ms-policy-result: "Removed"`.
//!
//! With policy management certificates configured (`--policy-signer-cert`, as MAA's isolated
//! mode), uploads and resets must be signed by a key whose certificate is one of them; without,
//! signed uploads are accepted when their signature verifies with their own certificate (MAA's
//! AAD mode). The admin bearer token is required either way.
// Handlers return a finished `Response` as their error, as the rest of the router does.
#![allow(clippy::result_large_err)]

use crate::policy_doc::ActivePolicy;
use crate::server::{POLICY_NAME, Service, problem, unauthorized};
use crate::store::Table;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The api-versions of the policy endpoints (Microsoft's SDKs send 2020-10-01).
pub const POLICY_API_VERSIONS: [&str; 4] = [
    "2020-10-01",
    "2022-08-01",
    "2022-09-01-preview",
    "2025-06-01",
];

/// Problem code: isolated mode and the upload is not signed.
pub const POLICY_NOT_SIGNED: &str = "policy-not-signed";
/// Problem code: the upload is signed by a certificate that is not a policy management
/// certificate.
pub const POLICY_SIGNER_NOT_TRUSTED: &str = "policy-signer-not-trusted";
/// Problem code: the JWS is malformed or its signature does not verify.
pub const INVALID_POLICY_TOKEN: &str = "invalid-policy-token";

/// Reads policy management certificates: PEM with one or more `CERTIFICATE` blocks.
pub fn parse_signer_certs(pem_text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
    let mut out = Vec::new();
    for b in blocks {
        if b.tag() != "CERTIFICATE" {
            continue;
        }
        x509_parser::parse_x509_certificate(b.contents())
            .map_err(|e| format!("a CERTIFICATE block is not an X.509 certificate: {e}"))?;
        out.push(b.contents().to_vec());
    }
    if out.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(out)
}

/// A policy JWS as uploaded.
#[derive(Debug)]
pub(crate) struct PolicyJws {
    /// The payload (`None`: empty, as in a reset).
    payload: Option<Value>,
    /// The signer: certificate DER and its JWK, when signed.
    signer: Option<(Vec<u8>, Value)>,
}

fn jws_err(m: impl Into<String>) -> (StatusCode, &'static str, String) {
    (StatusCode::BAD_REQUEST, INVALID_POLICY_TOKEN, m.into())
}

fn spki(der: &[u8]) -> Result<(Vec<u8>, String), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("x5c[0] is not an X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    Ok((spki.subject_public_key.data.to_vec(), oid))
}

/// Parses a compact JWS and verifies its signature (by its own `x5c[0]`).
pub(crate) fn parse_jws(text: &str) -> Result<PolicyJws, (StatusCode, &'static str, String)> {
    let text = text.trim();
    let parts: Vec<&str> = text.split('.').collect();
    let [h, p, sig] = parts.as_slice() else {
        return Err(jws_err(format!(
            "the body is not a JWS (three base64url parts separated by '.'; found {})",
            parts.len()
        )));
    };
    let header: Value = B64URL
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| jws_err("the JWS header is not base64url JSON"))?;
    let payload = if p.is_empty() {
        None
    } else {
        let b = B64URL
            .decode(p)
            .map_err(|_| jws_err("the JWS payload is not base64url"))?;
        if b.is_empty() || b == b"null" {
            None
        } else {
            Some(
                serde_json::from_slice::<Value>(&b)
                    .map_err(|e| jws_err(format!("the JWS payload is not JSON: {e}")))?,
            )
        }
    };
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg == "none" {
        if !sig.is_empty() {
            return Err(jws_err(
                "an unsecured JWS (alg none) has an empty signature",
            ));
        }
        return Ok(PolicyJws {
            payload,
            signer: None,
        });
    }
    // RFC 7515 puts the certificate in `x5c`; Microsoft's SDKs put it in `jwk.x5c`.
    let x5c0 = header
        .get("x5c")
        .or_else(|| header.get("jwk").and_then(|j| j.get("x5c")))
        .and_then(|x| x.get(0))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            jws_err(format!(
                "a signed policy JWS (alg {alg}) needs its certificate in x5c"
            ))
        })?;
    let der = B64
        .decode(x5c0)
        .map_err(|_| jws_err("x5c[0] is not base64"))?;
    let (key, oid) = spki(&der).map_err(jws_err)?;
    let signature = B64URL
        .decode(sig)
        .map_err(|_| jws_err("the JWS signature is not base64url"))?;
    let signing_input = format!("{h}.{p}");
    use aws_lc_rs::signature::{self as sg, UnparsedPublicKey};
    let (verify_alg, kty): (&'static dyn sg::VerificationAlgorithm, &str) =
        match (alg, oid.as_str()) {
            // `RSA256` and `ECDH256` (an ASN.1 DER signature) are the names Microsoft's SDKs and
            // policy examples write.
            ("RS256" | "RSA256", "1.2.840.113549.1.1.1") => {
                (&sg::RSA_PKCS1_2048_8192_SHA256, "RSA")
            }
            ("ECDH256", "1.2.840.10045.2.1") => (&sg::ECDSA_P256_SHA256_ASN1, "EC"),
            ("RS384", "1.2.840.113549.1.1.1") => (&sg::RSA_PKCS1_2048_8192_SHA384, "RSA"),
            ("PS256", "1.2.840.113549.1.1.1") => (&sg::RSA_PSS_2048_8192_SHA256, "RSA"),
            ("ES256", "1.2.840.10045.2.1") => (&sg::ECDSA_P256_SHA256_FIXED, "EC"),
            ("ES384", "1.2.840.10045.2.1") => (&sg::ECDSA_P384_SHA384_FIXED, "EC"),
            _ => {
                return Err(jws_err(format!(
                    "unsupported policy signature: alg {alg} with a key of type {oid} \
                 (supported: RS256/RSA256, RS384, PS256 with RSA; ES256, ECDH256, ES384 with EC)"
                )));
            }
        };
    UnparsedPublicKey::new(verify_alg, &key)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| {
            jws_err("the policy JWS signature does not verify with its x5c certificate")
        })?;
    let jwk = json!({"kty": kty, "x5c": [x5c0]});
    Ok(PolicyJws {
        payload,
        signer: Some((der, jwk)),
    })
}

/// The unsecured JWS of a `StoredAttestationPolicy`, as MAA returns an unsigned policy.
pub(crate) fn unsecured_stored_policy(text: &str) -> String {
    let header = B64URL.encode(br#"{"alg":"none"}"#);
    let body = json!({"AttestationPolicy": B64URL.encode(text.as_bytes())}).to_string();
    format!("{header}.{}.", B64URL.encode(body))
}

/// An unsecured JWT (`alg: none`), as MAA answers a draft-policy attestation.
pub(crate) fn unsecured_jwt(claims: &Value) -> String {
    let header = B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", B64URL.encode(claims.to_string()))
}

fn api_version_problem(q: &HashMap<String, String>) -> Option<Response> {
    match q.get("api-version").map(String::as_str) {
        Some(v) if POLICY_API_VERSIONS.contains(&v) => None,
        Some(v) => Some(problem(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            format!(
                "api-version {v} is not supported (supported: {})",
                POLICY_API_VERSIONS.join(", ")
            ),
            None,
        )),
        None => None,
    }
}

fn policy_result(s: &Service, headers: &HeaderMap, mut body: Value) -> Response {
    let now = s.now();
    let issuer = s.issuer_for(headers).to_string();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("iss".into(), issuer.clone().into());
        obj.insert("iat".into(), now.into());
        obj.insert("nbf".into(), now.into());
        obj.insert(
            "exp".into(),
            now.saturating_add(s.cfg.token_lifetime).into(),
        );
    }
    let jku = format!("{issuer}/certs");
    match s.keys.sign(&body, Some(&jku)) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "signing-failed",
            e.to_string(),
            None,
        ),
    }
}

/// `GET /policies/SgxEnclave?api-version=…` (the SDK's `get_policy`).
pub(crate) fn get(s: &Service, q: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    if let Some(r) = api_version_problem(q) {
        return r;
    }
    let p = s.current_policy();
    let jws = s
        .policy_jws()
        .unwrap_or_else(|| unsecured_stored_policy(&p.text()));
    let mut body = json!({"x-ms-policy": jws});
    if let (Some(signer), Some(obj)) = (p.signer(), body.as_object_mut()) {
        obj.insert("x-ms-policy-signer".into(), signer.clone());
    }
    policy_result(s, headers, body)
}

/// Checks a JWS against isolated mode: who may change the policy.
fn authorize_signer(s: &Service, jws: &PolicyJws) -> Result<(), Response> {
    let trusted = s.policy_signers();
    if trusted.is_empty() {
        return Ok(());
    }
    let Some((der, _)) = &jws.signer else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            POLICY_NOT_SIGNED,
            "this service requires policies signed with a policy management certificate \
             (--policy-signer-cert): sign the policy (the SDK's signing_key and \
             signing_certificate)",
            None,
        ));
    };
    let presented = spki(der).map(|k| k.0).unwrap_or_default();
    let ok = trusted
        .iter()
        .any(|t| t == der || spki(t).is_ok_and(|k| k.0 == presented));
    if ok {
        Ok(())
    } else {
        Err(problem(
            StatusCode::FORBIDDEN,
            POLICY_SIGNER_NOT_TRUSTED,
            "the policy is signed by a certificate that is not one of this service's policy \
             management certificates (--policy-signer-cert)",
            None,
        ))
    }
}

fn managed_by_file(s: &Service) -> Option<Response> {
    s.cfg.policy_file.is_some().then(|| {
        problem(
            StatusCode::CONFLICT,
            crate::server::POLICY_MANAGED_BY_FILE,
            crate::server::POLICY_MANAGED_BY_FILE_DETAIL,
            None,
        )
    })
}

fn sha256_b64url(b: &[u8]) -> String {
    B64URL.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

fn store_and_apply(s: &Service, policy: ActivePolicy, jws: Option<String>) -> Result<(), Response> {
    if let Some(store) = s.store() {
        let mut stored: Value = serde_json::from_str(&policy.to_stored()).unwrap_or(Value::Null);
        if let (Some(j), Some(obj)) = (&jws, stored.as_object_mut()) {
            obj.insert("jws".into(), j.clone().into());
        }
        store
            .put(Table::Policies, POLICY_NAME, &stored.to_string())
            .map_err(|e| {
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store-failed",
                    e.to_string(),
                    None,
                )
            })?;
    }
    s.install_policy(policy, jws);
    Ok(())
}

/// The body of an SDK upload: a JWS.
fn upload(
    s: &Service,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(PolicyJws, String), Response> {
    if !s.admin_ok(headers) {
        return Err(unauthorized());
    }
    if let Some(r) = managed_by_file(s) {
        return Err(r);
    }
    let body = body.map_err(crate::server::body_problem)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| {
            problem(
                StatusCode::BAD_REQUEST,
                INVALID_POLICY_TOKEN,
                "the body is not UTF-8",
                None,
            )
        })?
        .trim()
        .to_string();
    let jws = parse_jws(&text).map_err(|(st, code, m)| problem(st, code, m, None))?;
    authorize_signer(s, &jws)?;
    Ok((jws, text))
}

/// The JWS an SDK upload came as, from the store's form.
pub(crate) fn stored_jws(stored: &str) -> Option<String> {
    serde_json::from_str::<Value>(stored)
        .ok()?
        .get("jws")?
        .as_str()
        .map(str::to_string)
}

/// Whether a PUT is the SDK's (an api-version, or a JWS body: base64url JSON starting `{"`)
/// rather than a policy document in either language.
pub(crate) fn is_sdk_request(
    q: &HashMap<String, String>,
    body: &Result<Bytes, BytesRejection>,
) -> bool {
    q.contains_key("api-version")
        || body
            .as_ref()
            .is_ok_and(|b| b.trim_ascii_start().starts_with(b"eyJ"))
}

/// `PUT /policies/SgxEnclave?api-version=…` (the SDK's `set_policy`).
pub(crate) fn set(
    s: &Service,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(r) = api_version_problem(q) {
        return r;
    }
    let (jws, text) = match upload(s, headers, body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(encoded) = jws
        .payload
        .as_ref()
        .and_then(|p| p.get("AttestationPolicy"))
        .and_then(Value::as_str)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            INVALID_POLICY_TOKEN,
            "the JWS payload has no AttestationPolicy (a StoredAttestationPolicy: \
             {\"AttestationPolicy\": BASE64URL(policy text)})",
            None,
        );
    };
    let Ok(policy_bytes) = B64URL.decode(encoded.trim_end_matches('=')) else {
        return problem(
            StatusCode::BAD_REQUEST,
            INVALID_POLICY_TOKEN,
            "AttestationPolicy is not base64url",
            None,
        );
    };
    let policy = match ActivePolicy::parse(&policy_bytes) {
        Ok(p) => p.with_signer(jws.signer.as_ref().map(|(_, jwk)| jwk.clone())),
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-policy",
                e.to_string(),
                None,
            );
        }
    };
    let signer = policy.signer().cloned();
    if let Err(r) = store_and_apply(s, policy, Some(text.clone())) {
        return r;
    }
    let mut body = json!({
        "x-ms-policy-result": "Updated",
        "x-ms-policy-token-hash": sha256_b64url(text.as_bytes()),
    });
    if let (Some(signer), Some(obj)) = (signer, body.as_object_mut()) {
        obj.insert("x-ms-policy-signer".into(), signer);
    }
    policy_result(s, headers, body)
}

/// `POST /policies/SgxEnclave:reset?api-version=…` (the SDK's `reset_policy`).
pub(crate) fn reset(
    s: &Service,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(r) = api_version_problem(q) {
        return r;
    }
    let (jws, text) = match upload(s, headers, body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let signer = jws.signer.as_ref().map(|(_, jwk)| jwk.clone());
    if let Err(r) = store_and_apply(s, ActivePolicy::default_policy(), None) {
        return r;
    }
    let mut body = json!({
        "x-ms-policy-result": "Removed",
        "x-ms-policy-token-hash": sha256_b64url(text.as_bytes()),
    });
    if let (Some(signer), Some(obj)) = (signer, body.as_object_mut()) {
        obj.insert("x-ms-policy-signer".into(), signer);
    }
    policy_result(s, headers, body)
}
