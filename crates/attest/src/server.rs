//! The HTTP service: decode → verify (dcap) → bind runtime data → policy → sign → encode, with
//! metrics around it. Failures are `application/problem+json` with a stable `code`.

use crate::claims::{self, AttestRequest, Data, RequestError, TokenContext};
use crate::collateral::Clock;
use crate::keyfile::{KeyDirConfig, read_key_dir};
use crate::keys::{KEYS_MANAGED_BY_DIRECTORY, KeyError, KeyRing, SigningAlg};
use crate::metrics::{Metrics, OutcomeLabels, RequestLabels, RouteLabels};
use crate::policy::{Evidence, Policy};
use crate::reload::{
    PolicyFileError, ReloadState, SOURCE_POLICY, SOURCE_SIGNING_KEYS, keys_fingerprint,
    parse_policy_file, policy_fingerprint, read_policy_bytes,
};
use crate::store::{Store, Table};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dcap::{Collateral, PckPlatform, TrustAnchor, Verifier, VerifyOptions};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// The stored policy's name (MAA's attestation type).
pub const POLICY_NAME: &str = "SgxEnclave";

/// The problem code of `PUT /policies/SgxEnclave` when the policy comes from `--policy-file`.
pub const POLICY_MANAGED_BY_FILE: &str = "policy-managed-by-file";

/// The problem detail of `PUT /policies/SgxEnclave` when the policy comes from `--policy-file`.
pub const POLICY_MANAGED_BY_FILE_DETAIL: &str = "the policy is managed by --policy-file: change \
     that file (the Kubernetes ConfigMap) instead; every replica applies it within \
     --config-reload-interval";

/// Why collateral could not be provided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No collateral exists for this platform (unknown FMSPC).
    #[error("no collateral for FMSPC {fmspc}: {message}")]
    NotFound {
        /// The platform's FMSPC, hex.
        fmspc: String,
        /// Where it was looked for.
        message: String,
    },
    /// The collateral source failed (network, PCCS 5xx, unreadable file).
    #[error("collateral source unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future, for the object-safe collateral seam.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the service gets collateral for a platform.
pub trait CollateralProvider: Send + Sync {
    /// Collateral for the platform, valid (as far as the provider knows) at `now`.
    fn collateral<'a>(
        &'a self,
        platform: &'a PckPlatform,
        now: i64,
    ) -> BoxFuture<'a, Result<Arc<Collateral>, ProviderError>>;

    /// Cumulative event counts (`hit`, `miss`, `refresh`, `error`, ...), for metrics.
    fn cache_stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Validated service settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `iss` of tokens and base of `jku`/`jwks_uri`.
    pub issuer: String,
    /// Token lifetime in seconds.
    pub token_lifetime: i64,
    /// Pinned verification time (`--at`: archived collateral): quotes and collateral are judged
    /// at this time instead of the clock's. Tokens, keys and JWKS always use the clock.
    pub verify_at: Option<i64>,
    /// The trust anchor.
    pub anchor: TrustAnchor,
    /// Accept collateral without CRLs.
    pub allow_missing_crls: bool,
    /// Algorithm of new signing keys (managed keys and draft-policy keys).
    pub signing_alg: SigningAlg,
    /// Signing keys from a directory of PEM files (`--signing-key-dir`) instead of the store.
    pub signing_key_dir: Option<KeyDirConfig>,
    /// The policy from a file (`--policy-file`) instead of the store.
    pub policy_file: Option<PathBuf>,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// SHA-256 of the admin bearer token.
    pub admin_token_sha256: [u8; 32],
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Signing keys.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The stored policy is invalid.
    #[error("the stored policy is invalid: {0}")]
    Policy(String),
    /// The policy file cannot be used.
    #[error(transparent)]
    PolicyFile(#[from] PolicyFileError),
    /// The token lifetime is not in `1..=MAX_TOKEN_LIFETIME`.
    #[error(
        "the token lifetime of {seconds} s is out of range (1 s to {MAX_TOKEN_LIFETIME} s, 7 days)"
    )]
    TokenLifetime {
        /// The configured lifetime, in seconds.
        seconds: i64,
    },
}

/// The longest token lifetime (7 days): keeps `exp` arithmetic far from overflow and tokens
/// short-lived.
pub const MAX_TOKEN_LIFETIME: i64 = 7 * 86_400;

/// The service state shared by all requests.
pub struct Service {
    pub(crate) cfg: ServiceConfig,
    verifier: Verifier,
    pub(crate) keys: KeyRing,
    draft_keys: KeyRing,
    store: Option<Arc<Store>>,
    policy: RwLock<Arc<Policy>>,
    collateral: Arc<dyn CollateralProvider>,
    pub(crate) metrics: Metrics,
    platforms: Mutex<HashMap<Box<[u8]>, PckPlatform>>,
    pub(crate) reload: Mutex<ReloadState>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

const MAX_PLATFORMS: usize = 4096;

impl Service {
    /// Builds the service: keys from `--signing-key-dir` or the store (created when absent),
    /// the policy from `--policy-file` or the store. A bad key directory or policy file is an
    /// error naming the file and the reason. `clock` is the service's one clock, read once per
    /// request (give the collateral cache the same one).
    pub fn new(
        cfg: ServiceConfig,
        store: Option<Arc<Store>>,
        collateral: Arc<dyn CollateralProvider>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        if !(1..=MAX_TOKEN_LIFETIME).contains(&cfg.token_lifetime) {
            return Err(ServiceError::TokenLifetime {
                seconds: cfg.token_lifetime,
            });
        }
        let now = clock.now();
        let metrics = Metrics::new();
        let mut reload = ReloadState::default();
        let keys = match &cfg.signing_key_dir {
            Some(dir) => {
                let read = read_key_dir(&dir.dir);
                let fp = keys_fingerprint(&read);
                let files = read.map_err(KeyError::from)?;
                let ring = KeyRing::from_dir(dir.clone(), &files, cfg.token_lifetime, now)?;
                reload.keys = Some(fp);
                metrics.config_source(SOURCE_SIGNING_KEYS);
                ring
            }
            None => KeyRing::open(store.clone(), cfg.signing_alg, cfg.token_lifetime, now)?,
        };
        let draft_keys = KeyRing::open(None, cfg.signing_alg, cfg.token_lifetime, now)?;
        let policy = match (&cfg.policy_file, &store) {
            (Some(path), _) => {
                let read = read_policy_bytes(path);
                let fp = policy_fingerprint(&read);
                let policy = parse_policy_file(path, &read?)?;
                reload.policy = Some(fp);
                metrics.config_source(SOURCE_POLICY);
                policy
            }
            (None, Some(s)) => match s.get(Table::Policies, POLICY_NAME)? {
                Some(text) => Policy::from_json(text.as_bytes())
                    .map_err(|e| ServiceError::Policy(e.to_string()))?,
                None => Policy::default_policy(),
            },
            (None, None) => Policy::default_policy(),
        };
        let verifier =
            Verifier::new(VerifyOptions::default().allow_missing_crls(cfg.allow_missing_crls));
        Ok(Self {
            cfg,
            verifier,
            keys,
            draft_keys,
            store,
            policy: RwLock::new(Arc::new(policy)),
            collateral,
            metrics,
            platforms: Mutex::new(HashMap::new()),
            reload: Mutex::new(reload),
            clock,
        })
    }

    /// The service clock (tokens, keys, JWKS).
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_policy(&self, policy: Policy) {
        *self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(policy);
    }

    /// The platform of a quote, remembered by its exact PCK chain bytes.
    fn platform_of(&self, quote: &[u8]) -> Result<PckPlatform, dcap::VerifyError> {
        let parsed = sgx_types::Quote::parse(quote)?;
        let chain = parsed.signature.certification_data.data.as_slice();
        let mut map = self
            .platforms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = map.get(chain) {
            return Ok(p.clone());
        }
        // Only chains that lead to the anchor select collateral: a forged quote cannot make the
        // service fetch collateral for arbitrary FMSPCs.
        let p = dcap::pck_platform_anchored(quote, &self.cfg.anchor)?;
        if map.len() >= MAX_PLATFORMS {
            map.clear();
        }
        map.insert(chain.into(), p.clone());
        Ok(p)
    }

    fn outcome(&self, result: &str, tcb: &str) {
        self.metrics
            .outcomes
            .get_or_create(&OutcomeLabels {
                result: result.into(),
                tcb_status: tcb.into(),
            })
            .inc();
    }

    fn admin_ok(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        crate::admin::presented_matches(&self.cfg.admin_token_sha256, token)
    }
}

/// A problem+json response.
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: impl Into<String>,
    extra: Option<Value>,
) -> Response {
    let mut body = json!({
        "type": format!("https://confkube.io/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail.into(),
    });
    if let (Some(Value::Object(extra)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.extend(extra);
    }
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

fn body_problem(r: BytesRejection) -> Response {
    let status = r.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request-too-large"
    } else {
        "invalid-request"
    };
    problem(status, code, r.body_text(), None)
}

const API_VERSIONS: [&str; 2] = ["2022-08-01", "2025-06-01"];

async fn attest(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match q.get("api-version").map(String::as_str) {
        Some(v) if API_VERSIONS.contains(&v) => {}
        Some(v) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                format!(
                    "api-version {v} is not supported (supported: {})",
                    API_VERSIONS.join(", ")
                ),
                None,
            );
        }
        None => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "the api-version query parameter is required (e.g. ?api-version=2022-08-01)",
                None,
            );
        }
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(r),
    };
    match attest_inner(&s, &body).await {
        Ok(token) => (StatusCode::OK, Json(json!({ "token": token }))).into_response(),
        Err(resp) => resp,
    }
}

fn bad_request(e: &RequestError) -> Response {
    problem(StatusCode::BAD_REQUEST, e.code(), e.to_string(), None)
}

async fn attest_inner(s: &Service, body: &[u8]) -> Result<String, Response> {
    let req: AttestRequest = serde_json::from_slice(body).map_err(|e| {
        bad_request(&RequestError::Invalid(format!(
            "the body is not an AttestSgxEnclaveRequest: {e}"
        )))
    })?;
    let quote = claims::decode_b64("quote", &req.quote).map_err(|e| bad_request(&e))?;
    let runtime: Option<Data> = req
        .runtime_data
        .as_ref()
        .map(|d| claims::decode_data("runtimeData", d))
        .transpose()
        .map_err(|e| bad_request(&e))?;
    let init: Option<Data> = req
        .init_time_data
        .as_ref()
        .map(|d| claims::decode_data("initTimeData", d))
        .transpose()
        .map_err(|e| bad_request(&e))?;
    let draft = req
        .draft_policy_for_attestation
        .as_deref()
        .map(|t| Policy::from_json(t.as_bytes()))
        .transpose()
        .map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                "invalid-policy",
                e.to_string(),
                None,
            )
        })?;

    // The clock is read once per request; `--at` moves only the verification time.
    let now = s.now();
    let verify_at = s.cfg.verify_at.unwrap_or(now);
    let verify_failed = |e: dcap::VerifyError| {
        s.outcome(e.code(), "");
        problem(StatusCode::BAD_REQUEST, e.code(), e.to_string(), None)
    };
    let platform = s.platform_of(&quote).map_err(verify_failed)?;
    let collateral = s
        .collateral
        .collateral(&platform, verify_at)
        .await
        .map_err(|e| {
            let (status, code) = match &e {
                ProviderError::NotFound { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "collateral-not-found")
                }
                ProviderError::Unavailable(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "collateral-unavailable")
                }
            };
            s.outcome(code, "");
            problem(status, code, e.to_string(), None)
        })?;
    let verified = s
        .verifier
        .verify(&quote, &collateral, verify_at, &s.cfg.anchor)
        .map_err(verify_failed)?;
    let tcb = verified.tcb_status().as_str();
    claims::check_bindings(&verified, runtime.as_ref(), init.as_ref()).map_err(|e| {
        s.outcome(e.code(), tcb);
        bad_request(&e)
    })?;
    let policy = match &draft {
        Some(p) => Arc::new(p.clone()),
        None => s.policy(),
    };
    let rule = policy.evaluate(&Evidence::from(&verified)).map_err(|d| {
        s.outcome(d.code(), tcb);
        problem(
            StatusCode::FORBIDDEN,
            d.code(),
            format!("denied by policy: {}", d.message()),
            Some(json!({ "violations": d.violations })),
        )
    })?;
    let jti = {
        let mut b = [0u8; 16];
        // The system RNG does not fail on supported platforms; a zero jti would still be unique
        // enough with iat, so do not refuse service over it.
        let _ = aws_lc_rs::rand::fill(&mut b);
        hex::encode(b)
    };
    let ctx = TokenContext {
        issuer: &s.cfg.issuer,
        now,
        lifetime: s.cfg.token_lifetime,
        jti,
        nonce: req.nonce.as_deref(),
        runtime: runtime.as_ref(),
        init: init.as_ref(),
        policy_hash: policy.hash(),
        rule: &rule,
        draft: draft.is_some(),
    };
    let c = claims::claims(&verified, &ctx);
    let ring = if draft.is_some() {
        &s.draft_keys
    } else {
        &s.keys
    };
    let jku = format!("{}/certs", s.cfg.issuer.trim_end_matches('/'));
    let token = ring.sign(&c, Some(&jku)).map_err(|e| {
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "signing-failed",
            e.to_string(),
            None,
        )
    })?;
    s.outcome("verified", tcb);
    Ok(token)
}

async fn certs(State(s): State<Arc<Service>>) -> Response {
    let mut resp = Json(s.keys.jwks(s.now())).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    resp
}

async fn openid_configuration(State(s): State<Arc<Service>>) -> Json<Value> {
    let base = s.cfg.issuer.trim_end_matches('/');
    let algs: Vec<&str> = s
        .keys
        .published_algs(s.now())
        .into_iter()
        .map(SigningAlg::name)
        .collect();
    let claims = [
        "iss",
        "iat",
        "nbf",
        "exp",
        "jti",
        "nonce",
        "tee",
        "x-ms-ver",
        "x-ms-attestation-type",
        "x-ms-policy-hash",
        "x-ms-sgx-is-debuggable",
        "x-ms-sgx-mrenclave",
        "x-ms-sgx-mrsigner",
        "x-ms-sgx-product-id",
        "x-ms-sgx-svn",
        "x-ms-sgx-report-data",
        "x-ms-sgx-ehd",
        "x-ms-sgx-config-id",
        "x-ms-runtime",
        "x-confkube-tcb-status",
        "x-confkube-advisory-ids",
        "x-confkube-fmspc",
    ];
    Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}/certs"),
        "id_token_signing_alg_values_supported": algs,
        "response_types_supported": ["token", "none"],
        "claims_supported": claims,
        // MAA's own casing, for clients written against it.
        "jwksUri": format!("{base}/certs"),
        "idTokenSigningAlgValuesSupported": algs,
        "responseTypesSupported": ["token", "none"],
        "claimsSupported": claims,
    }))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<Arc<Service>>) -> Response {
    match s.keys.active_kid() {
        Some(kid) => Json(json!({"ready": true, "signing_kid": kid})).into_response(),
        None => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "no active signing key",
            None,
        ),
    }
}

async fn metrics(State(s): State<Arc<Service>>) -> Response {
    let st = s.verifier.stats();
    s.metrics.set_cache("collateral", "hit", st.collateral_hits);
    s.metrics
        .set_cache("collateral", "miss", st.collateral_misses);
    s.metrics.set_cache("pck", "hit", st.pck_hits);
    s.metrics.set_cache("pck", "miss", st.pck_misses);
    for (event, n) in s.collateral.cache_stats() {
        s.metrics.set_cache("collateral_source", event, n);
    }
    let mut resp = s.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

fn unauthorized() -> Response {
    let mut r = problem(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this endpoint needs the admin bearer token (Authorization: Bearer <token>)",
        None,
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn get_policy(State(s): State<Arc<Service>>, headers: HeaderMap) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    let p = s.policy();
    Json(json!({"policy": p.document(), "hash": p.hash()})).into_response()
}

async fn put_policy(
    State(s): State<Arc<Service>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    if s.cfg.policy_file.is_some() {
        return problem(
            StatusCode::CONFLICT,
            POLICY_MANAGED_BY_FILE,
            POLICY_MANAGED_BY_FILE_DETAIL,
            None,
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(r),
    };
    let policy = match Policy::from_json(&body) {
        Ok(p) => p,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-policy",
                e.to_string(),
                None,
            );
        }
    };
    if let Some(store) = &s.store
        && let Err(e) = store.put(Table::Policies, POLICY_NAME, &policy.to_json())
    {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store-failed",
            e.to_string(),
            None,
        );
    }
    let hash = policy.hash();
    let doc = serde_json::to_value(policy.document()).unwrap_or(Value::Null);
    s.set_policy(policy);
    Json(json!({"policy": doc, "hash": hash})).into_response()
}

async fn rotate_keys(State(s): State<Arc<Service>>, headers: HeaderMap) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    match s.keys.rotate(s.now()) {
        Ok(kid) => Json(json!({"active_kid": kid})).into_response(),
        Err(e @ KeyError::ManagedByDirectory) => problem(
            StatusCode::CONFLICT,
            KEYS_MANAGED_BY_DIRECTORY,
            e.to_string(),
            None,
        ),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rotation-failed",
            e.to_string(),
            None,
        ),
    }
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "not-found", "no such endpoint", None)
}

async fn track(State(s): State<Arc<Service>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    s.metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    s.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// The router.
pub fn router(s: Arc<Service>) -> Router {
    Router::new()
        .route("/attest/SgxEnclave", post(attest))
        .route("/certs", get(certs))
        // Gramine's MAA client (ra_tls_verify_maa) asks for "<provider>/certs/".
        .route("/certs/", get(certs))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/policies/SgxEnclave", get(get_policy).put(put_policy))
        .route("/admin/keys/rotate", post(rotate_keys))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(s.clone(), track))
        .layer(DefaultBodyLimit::max(s.cfg.body_limit))
        .with_state(s)
}
