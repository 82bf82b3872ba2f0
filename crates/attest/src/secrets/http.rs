//! The `/secrets` endpoints: thin adapters over [`super::model`], [`super::release`] and
//! [`super::jwe`].

// Helpers return the finished problem response as their error, like the handlers of
// `crate::server`; boxing it would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use super::Secrets;
use super::jwe::TransferKey;
use super::model::{Backend, BackendError, MAX_CONTENT_TYPE, MAX_VALUE, ReleasePolicy, check_name};
use super::release::{LimitRefusal, evidence, maa_claims, verify_token};
use crate::claims;
use crate::metrics::SecretReleaseLabels;
use crate::server::{RequestShape, Service, attest_claims, body_problem, problem, unauthorized};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The routes (merged into [`crate::server::router`]).
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/secrets", get(list))
        .route(
            "/secrets/{name}",
            get(describe).put(put_secret).delete(delete_secret),
        )
        .route("/secrets/{name}/release", post(release))
}

fn enabled(s: &Service) -> Result<&Arc<Secrets>, Response> {
    s.secrets.get().ok_or_else(|| {
        problem(
            StatusCode::NOT_FOUND,
            "secrets-disabled",
            "secret release is not enabled on this service",
            None,
        )
    })
}

fn not_found(detail: String) -> Response {
    problem(StatusCode::NOT_FOUND, "secret-not-found", detail, None)
}

fn backend_problem(e: &BackendError) -> Response {
    match e {
        BackendError::NotFound(m) => not_found(m.clone()),
        BackendError::ManagedByFiles => problem(
            StatusCode::CONFLICT,
            "secrets-managed-by-file",
            e.to_string(),
            None,
        ),
        BackendError::Full => problem(
            StatusCode::INSUFFICIENT_STORAGE,
            "secrets-full",
            e.to_string(),
            None,
        ),
        BackendError::Corrupt { .. } | BackendError::Seal(_) => {
            tracing::error!(error = %e, "a stored secret cannot be read");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "secret-unreadable",
                e.to_string(),
                None,
            )
        }
        _ => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store-failed",
            e.to_string(),
            None,
        ),
    }
}

fn version_param(q: &HashMap<String, String>) -> Result<Option<u64>, Response> {
    match q.get("version") {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    format!("version {v:?} is not a positive integer"),
                    None,
                )
            }),
    }
}

async fn list(State(s): State<Arc<Service>>, headers: HeaderMap) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    let sec = match enabled(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match sec.backend.list() {
        Ok(l) => axum::Json(json!({ "secrets": l })).into_response(),
        Err(e) => backend_problem(&e),
    }
}

async fn describe(
    State(s): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    let sec = match enabled(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(m) = check_name(&name) {
        return not_found(m);
    }
    match sec.backend.describe(&name) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => backend_problem(&e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutBody {
    value: String,
    #[serde(default)]
    content_type: Option<String>,
    policy: Value,
}

fn invalid(code: &str, detail: impl Into<String>) -> Response {
    problem(StatusCode::BAD_REQUEST, code, detail, None)
}

async fn put_secret(
    State(s): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    let sec = match enabled(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Backend::Store(store) = &sec.backend else {
        return backend_problem(&BackendError::ManagedByFiles);
    };
    if let Err(m) = check_name(&name) {
        return invalid("invalid-secret-name", m);
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(r),
    };
    let req: PutBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return invalid(
                "invalid-request",
                format!(
                    "the body is not a secret ({{\"value\": base64url, \"contentType\"?: str, \
                     \"policy\": {{...}}}}): {e}"
                ),
            );
        }
    };
    let b64 = Zeroizing::new(req.value);
    let value = match claims::decode_b64("value", &b64) {
        Ok(v) => Zeroizing::new(v),
        Err(e) => return invalid("invalid-request", e.to_string()),
    };
    if value.len() > MAX_VALUE {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "secret-too-large",
            format!(
                "the value has {} bytes; the limit is {MAX_VALUE}",
                value.len()
            ),
            None,
        );
    }
    if let Some(ct) = &req.content_type
        && (ct.len() > MAX_CONTENT_TYPE || ct.chars().any(char::is_control))
    {
        return invalid(
            "invalid-request",
            format!("contentType must be at most {MAX_CONTENT_TYPE} printable characters"),
        );
    }
    let policy = match ReleasePolicy::from_value(&req.policy) {
        Ok(p) => p,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.code(), e.to_string(), e.extra()),
    };
    let created = time::OffsetDateTime::from_unix_timestamp(s.now())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    match store.put(&name, &value, req.content_type, policy.document(), created) {
        Ok(v) => {
            tracing::info!(target: "confkube::audit", event = "secret-put", secret = %name,
                           version = v.version, size = v.size, "stored a secret version");
            axum::Json(json!({"name": name, "version": v.version, "created": v.created}))
                .into_response()
        }
        Err(e) => backend_problem(&e),
    }
}

async fn delete_secret(
    State(s): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    let sec = match enabled(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Backend::Store(store) = &sec.backend else {
        return backend_problem(&BackendError::ManagedByFiles);
    };
    if let Err(m) = check_name(&name) {
        return not_found(m);
    }
    let version = match version_param(&q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match store.delete(&name, version) {
        Ok(deleted) => {
            tracing::info!(target: "confkube::audit", event = "secret-delete", secret = %name,
                           versions = ?deleted, "deleted a secret");
            axum::Json(json!({"name": name, "deleted": deleted})).into_response()
        }
        Err(e) => backend_problem(&e),
    }
}

/// What the audit line and the counter say about one decision.
struct Audit<'a> {
    name: &'a str,
    version: Option<u64>,
    claims: Option<&'a Value>,
}

impl Audit<'_> {
    fn claim(&self, k: &str) -> String {
        match self.claims.and_then(|c| c.get(k)) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    fn record(&self, s: &Service, known: bool, result: &str, reason: &str) {
        s.metrics
            .secret_releases
            .get_or_create(&SecretReleaseLabels {
                secret: if known {
                    self.name.into()
                } else {
                    String::new()
                },
                result: result.into(),
            })
            .inc();
        let released = result == "released";
        let version = self.version.map(|v| v.to_string()).unwrap_or_default();
        macro_rules! line {
            ($lvl:ident) => {
                tracing::$lvl!(
                    target: "confkube::audit",
                    event = "secret-release",
                    secret = %self.name,
                    version = %version,
                    mrenclave = %self.claim("x-ms-sgx-mrenclave"),
                    mrsigner = %self.claim("x-ms-sgx-mrsigner"),
                    product_id = %self.claim("x-ms-sgx-product-id"),
                    svn = %self.claim("x-ms-sgx-svn"),
                    jti = %self.claim("jti"),
                    outcome = %result,
                    reason = %reason,
                    "secret release decision"
                )
            };
        }
        if released {
            line!(info);
        } else {
            line!(warn);
        }
    }
}

async fn release(
    State(s): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let sec = match enabled(&s) {
        Ok(x) => Arc::clone(x),
        Err(r) => return r,
    };
    let version = match version_param(&q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(r),
    };
    let mut audit = Audit {
        name: &name,
        version,
        claims: None,
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => Value::Object(m),
        _ => {
            return invalid(
                "invalid-request",
                "the body is {\"token\": JWT} or an attestation request {\"quote\", \
                 \"runtimeData\", ...}",
            );
        }
    };
    let now = s.now();
    let claims = if let Some(token) = parsed.get("token") {
        let Some(token) = token
            .as_str()
            .filter(|_| parsed.as_object().map(|m| m.len()) == Some(1))
        else {
            return invalid(
                "invalid-request",
                "a token release body is exactly {\"token\": \"<JWT>\"}",
            );
        };
        match verify_token(token, &s.keys, &s.issuers(), now) {
            Ok(c) => c,
            Err(e) => {
                audit.record(&s, false, "token-invalid", &e.0);
                let mut r = problem(StatusCode::UNAUTHORIZED, "token-invalid", e.0, None);
                r.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return r;
            }
        }
    } else if parsed.get("quote").is_some() {
        match attest_claims(
            &s,
            RequestShape::SgxEnclave,
            &body,
            s.issuer_for(&headers),
            false,
        )
        .await
        {
            Ok(a) => a.claims,
            Err(r) => {
                audit.record(&s, false, "attestation-failed", r.status().as_str());
                return r;
            }
        }
    } else {
        return invalid(
            "invalid-request",
            "the body has neither \"token\" nor \"quote\": send {\"token\": JWT} or an \
             attestation request",
        );
    };
    audit.claims = Some(&claims);
    let deny = |audit: &Audit<'_>, detail: String, extra: Option<Value>| {
        audit.record(&s, true, "release-denied", &detail);
        problem(StatusCode::FORBIDDEN, "release-denied", detail, extra)
    };
    if let Err(m) = check_name(&name) {
        audit.record(&s, false, "secret-not-found", &m);
        return not_found(m);
    }
    let item = match sec.backend.releasable(&name, version) {
        Ok(x) => x,
        Err(e @ BackendError::NotFound(_)) => {
            audit.record(&s, false, "secret-not-found", &e.to_string());
            return backend_problem(&e);
        }
        Err(e) => return backend_problem(&e),
    };
    audit.version = Some(item.version);
    match &item.policy {
        ReleasePolicy::Json(policy) => {
            let ev = match evidence(&claims) {
                Ok(ev) => ev,
                Err(m) => return deny(&audit, format!("the token cannot be appraised: {m}"), None),
            };
            if let Err(d) = policy.evaluate(&ev) {
                return deny(
                    &audit,
                    format!("denied by the secret's release policy: {}", d.message()),
                    Some(json!({ "violations": d.violations })),
                );
            }
        }
        ReleasePolicy::Maa(policy) => {
            let incoming = match maa_claims(&claims) {
                Ok(c) => c,
                Err(m) => return deny(&audit, format!("the token cannot be appraised: {m}"), None),
            };
            if let Err(e) = policy.authorize(&incoming) {
                return deny(
                    &audit,
                    format!("denied by the secret's release policy: {e}"),
                    crate::policy_doc::maa_extra(&e),
                );
            }
        }
    }
    let key = match TransferKey::select(claims.get("x-ms-runtime")) {
        Ok(k) => k,
        Err(e) => {
            audit.record(&s, true, "no-transfer-key", &e.reason);
            return invalid("no-transfer-key", e.to_string());
        }
    };
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    match sec.limiter.take(jti, exp, now) {
        Ok(()) => {}
        Err(LimitRefusal::Exhausted(n)) => {
            return deny(
                &audit,
                format!(
                    "release limit: token jti {jti} was used for {n} release(s) already \
                     (--secrets-max-releases-per-token); attest again for a new token"
                ),
                None,
            );
        }
        Err(LimitRefusal::Full) => {
            audit.record(&s, true, "release-tracker-full", "");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "release-tracker-full",
                "too many unexpired tokens are being tracked for the release limit; retry later",
                None,
            );
        }
    }
    let jwe = match key.encrypt(&item.value) {
        Ok(j) => j,
        Err(e) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encryption-failed",
                e.to_string(),
                None,
            );
        }
    };
    audit.record(&s, true, "released", &format!("transfer key {}", key.kid()));
    let mut out = json!({"name": name, "version": item.version, "value": jwe});
    if let (Some(ct), Some(m)) = (&item.content_type, out.as_object_mut()) {
        m.insert("contentType".into(), ct.clone().into());
    }
    axum::Json(out).into_response()
}
