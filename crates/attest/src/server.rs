//! The HTTP service: decode → verify (dcap) → bind runtime data → policy → sign → encode, with
//! metrics around it. Failures are `application/problem+json` with a stable `code`.

use crate::claims::{
    self, AttestOpenEnclaveRequest, AttestRequest, Data, RequestError, TokenContext,
};
use crate::collateral::Clock;
use crate::keyfile::{KeyDirConfig, read_key_dir};
use crate::keys::{KEYS_MANAGED_BY_DIRECTORY, KeyError, KeyRing, SigningAlg};
use crate::metrics::{Metrics, OutcomeLabels, RequestLabels, RouteLabels};
use crate::policy_doc::{ActivePolicy, apply_appraisal};
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
use dcap::{Collateral, PckPlatform, TrustAnchor, VerifiedDcapQuote, Verifier, VerifyOptions};
use prometheus_client::registry::Registry;
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
    policy: RwLock<InstalledPolicy>,
    /// Policy management certificates (isolated mode); empty = any admin may set a policy.
    policy_signers: RwLock<Vec<Vec<u8>>>,
    collateral: Arc<dyn CollateralProvider>,
    pub(crate) metrics: Metrics,
    platforms: Mutex<HashMap<Box<[u8]>, PckPlatform>>,
    pub(crate) reload: Mutex<ReloadState>,
    clock: Arc<dyn Clock>,
    /// Secret release (`crate::secrets`), when enabled.
    pub(crate) secrets: std::sync::OnceLock<Arc<crate::secrets::Secrets>>,
    /// Every issuer the service answers as: `cfg.issuer` first, then
    /// [`Service::with_issuers`]'s, each with the `host[:port]` clients dial for it.
    issuers: Vec<(String, String)>,
    /// TCB evaluation data numbers of the collateral served (`/tcbbaselines`), with the newest
    /// TCB date of each, and the digests of the collateral already looked at.
    tcb_numbers: Mutex<TcbNumbers>,
}

#[derive(Default)]
struct TcbNumbers {
    seen: std::collections::HashSet<[u8; 32]>,
    numbers: std::collections::BTreeMap<u32, Option<String>>,
}

impl TcbNumbers {
    fn note(&mut self, c: &Collateral) {
        if self.seen.contains(c.digest()) {
            return;
        }
        if self.seen.len() >= MAX_PLATFORMS {
            self.seen.clear();
        }
        self.seen.insert(*c.digest());
        if let Ok(info) = dcap::TcbInfo::parse(&c.document().tcb_info)
            && let Some(n) = info.tcb_evaluation_data_number
        {
            // Levels are in descending order: the first one's date is the TCB recovery event
            // of this evaluation data number.
            let date = info.levels.first().and_then(|l| l.tcb_date.clone());
            let slot = self.numbers.entry(n).or_insert(None);
            if slot.is_none() {
                *slot = date;
            }
        }
    }
}

/// The `host[:port]` of an issuer URL, lowercase, without the scheme's default port.
fn issuer_authority(issuer: &str) -> String {
    let (scheme, rest) = issuer.split_once("://").unwrap_or(("https", issuer));
    let authority = rest
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        ":443"
    };
    authority
        .strip_suffix(default_port)
        .map_or(authority.clone(), str::to_string)
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

const MAX_PLATFORMS: usize = 4096;

/// The policy in force and, when it was uploaded through the MAA API, the JWS it came as.
#[derive(Clone)]
struct InstalledPolicy {
    policy: Arc<ActivePolicy>,
    jws: Option<String>,
}

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
        Self::with_registry(cfg, store, collateral, clock, Registry::default())
    }

    /// [`Service::new`] with the process's one metrics registry (created by the binary): the
    /// service registers its metrics in it (prefixed `confkube_attest_`) and serves it at
    /// `/metrics`.
    pub fn with_registry(
        cfg: ServiceConfig,
        store: Option<Arc<Store>>,
        collateral: Arc<dyn CollateralProvider>,
        clock: Arc<dyn Clock>,
        registry: Registry,
    ) -> Result<Self, ServiceError> {
        if !(1..=MAX_TOKEN_LIFETIME).contains(&cfg.token_lifetime) {
            return Err(ServiceError::TokenLifetime {
                seconds: cfg.token_lifetime,
            });
        }
        let now = clock.now();
        let metrics = Metrics::with_registry(registry);
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
        let (policy, jws) = match (&cfg.policy_file, &store) {
            (Some(path), _) => {
                let read = read_policy_bytes(path);
                let fp = policy_fingerprint(&read);
                let policy = parse_policy_file(path, &read?)?;
                reload.policy = Some(fp);
                metrics.config_source(SOURCE_POLICY);
                (policy, None)
            }
            (None, Some(s)) => match s.get(Table::Policies, POLICY_NAME)? {
                Some(text) => (
                    ActivePolicy::from_stored(&text)
                        .map_err(|e| ServiceError::Policy(e.to_string()))?,
                    crate::policy_admin::stored_jws(&text),
                ),
                None => (ActivePolicy::default_policy(), None),
            },
            (None, None) => (ActivePolicy::default_policy(), None),
        };
        let verifier =
            Verifier::new(VerifyOptions::default().allow_missing_crls(cfg.allow_missing_crls));
        Ok(Self {
            cfg,
            verifier,
            keys,
            draft_keys,
            store,
            policy: RwLock::new(InstalledPolicy {
                policy: Arc::new(policy),
                jws,
            }),
            policy_signers: RwLock::new(Vec::new()),
            collateral,
            metrics,
            platforms: Mutex::new(HashMap::new()),
            reload: Mutex::new(reload),
            clock,
            secrets: std::sync::OnceLock::new(),
            issuers: Vec::new(),
            tcb_numbers: Mutex::new(TcbNumbers::default()),
        }
        .with_issuers(Vec::new()))
    }

    /// Also answers as these issuers: a request whose `Host` (HTTP/1.1) or `:authority`
    /// (HTTP/2) is an issuer's `host[:port]` gets tokens with that `iss` (and `jku`), and the
    /// OpenID configuration and JWKS certificates of that issuer; any other gets `cfg.issuer`.
    /// Trailing slashes are removed (clients compare `iss` with the URL they dialled).
    #[must_use]
    pub fn with_issuers(mut self, extra: Vec<String>) -> Self {
        let mut issuers = Vec::with_capacity(extra.len() + 1);
        for i in std::iter::once(self.cfg.issuer.clone()).chain(extra) {
            let i = i.trim_end_matches('/').to_string();
            if !issuers.iter().any(|(known, _)| *known == i) {
                let authority = issuer_authority(&i);
                issuers.push((i, authority));
            }
        }
        self.cfg.issuer = issuers.first().map_or_else(String::new, |(i, _)| i.clone());
        self.issuers = issuers;
        self
    }

    /// The issuer a request is addressed to (see [`Service::with_issuers`]).
    pub fn issuer_for(&self, headers: &HeaderMap) -> &str {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if let Some(host) = host
            && let Some((i, _)) = self.issuers.iter().find(|(_, a)| {
                *a == host
                    || host
                        .strip_suffix(":443")
                        .or_else(|| host.strip_suffix(":80"))
                        .is_some_and(|h| h == a)
            })
        {
            return i;
        }
        &self.cfg.issuer
    }

    /// Every issuer the service answers as, the default first.
    pub fn issuers(&self) -> Vec<&str> {
        self.issuers.iter().map(|(i, _)| i.as_str()).collect()
    }

    fn note_collateral(&self, c: &Collateral) {
        self.tcb_numbers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .note(c);
    }

    /// The TCB evaluation data numbers of the collateral the service has served or holds in its
    /// store, newest first, each with its TCB date.
    fn tcb_baselines(&self) -> Vec<(u32, Option<String>)> {
        if let Some(store) = &self.store
            && let Ok(rows) = store.list(Table::Collateral)
        {
            for (_, json) in rows {
                if let Ok(c) = Collateral::from_json(json.as_bytes()) {
                    self.note_collateral(&c);
                }
            }
        }
        let numbers = self
            .tcb_numbers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        numbers
            .numbers
            .iter()
            .rev()
            .map(|(n, d)| (*n, d.clone()))
            .collect()
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

    /// The policy in force.
    pub(crate) fn current_policy(&self) -> Arc<ActivePolicy> {
        self.policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .policy
            .clone()
    }

    /// The JWS the policy in force was uploaded as (MAA API), if it was.
    pub(crate) fn policy_jws(&self) -> Option<String> {
        self.policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .jws
            .clone()
    }

    pub(crate) fn set_policy(&self, policy: ActivePolicy) {
        self.install_policy(policy, None);
    }

    pub(crate) fn install_policy(&self, policy: ActivePolicy, jws: Option<String>) {
        *self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = InstalledPolicy {
            policy: Arc::new(policy),
            jws,
        };
    }

    pub(crate) fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// Policy management certificates (DER), as MAA's isolated mode: from then on a policy
    /// upload or reset must be a JWS signed with the key of one of them.
    pub fn set_policy_signers(&self, certs: Vec<Vec<u8>>) {
        *self
            .policy_signers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = certs;
    }

    pub(crate) fn policy_signers(&self) -> Vec<Vec<u8>> {
        self.policy_signers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The platform of a quote, remembered by its exact PCK chain bytes.
    fn platform_of(&self, quote: &[u8]) -> Result<PckPlatform, dcap::VerifyError> {
        let parsed = sgx_types::DcapQuote::parse(quote)?;
        let chain = match &parsed {
            sgx_types::DcapQuote::Tdx(q) => q.signature.certification_data.data.as_slice(),
            sgx_types::DcapQuote::Sgx(q) => q.signature.certification_data.data.as_slice(),
            _ => {
                return Err(dcap::VerifyError::UnsupportedQuoteVersion(
                    dcap::UnsupportedQuote::UnknownTee,
                ));
            }
        };
        let mut map = self
            .platforms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The chain identifies the platform; the TEE is the quote's own (an SGX enclave and a
        // TD on one host share the PCK chain).
        let tdx = matches!(parsed, sgx_types::DcapQuote::Tdx(_));
        if let Some(p) = map.get(chain) {
            let mut p = p.clone();
            p.tdx = tdx;
            return Ok(p);
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

    pub(crate) fn admin_ok(&self, headers: &HeaderMap) -> bool {
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

/// The content type of every failure (RFC 9457), unless the client accepts only
/// `application/json` (Microsoft's SDKs send `Accept: application/json`), which then gets the
/// same body as `application/json` ([`shape_errors`]).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem+json response: RFC 9457 members (`type`, `title`, `status`, `detail`) and `code`,
/// plus MAA's error envelope `"error": {"code", "message"}` and the `x-ms-error-code` header, so
/// that MAA clients (Microsoft's SDKs) show the code and the message.
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: impl Into<String>,
    extra: Option<Value>,
) -> Response {
    let detail = detail.into();
    let mut body = json!({
        "type": format!("https://confkube.io/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
        "error": {"code": code, "message": detail},
    });
    if let (Some(Value::Object(extra)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.extend(extra);
    }
    let mut resp = (status, body.to_string()).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert("x-ms-error-code", v);
    }
    resp
}

pub(crate) fn body_problem(r: BytesRejection) -> Response {
    let status = r.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request-too-large"
    } else {
        "invalid-request"
    };
    problem(status, code, r.body_text(), None)
}

/// The MAA REST API versions accepted (Microsoft's SDKs send `2020-10-01`). confkube answers
/// them all the same way (docs/attestation.md, "API versions").
pub const API_VERSIONS: [&str; 4] = [
    "2020-10-01",
    "2022-08-01",
    "2022-09-01-preview",
    "2025-06-01",
];

/// Checks `?api-version=`: required when `required`, and one of [`API_VERSIONS`] when given;
/// the problem to answer otherwise.
fn check_api_version(q: &HashMap<String, String>, required: bool) -> Option<Response> {
    match q.get("api-version").map(String::as_str) {
        Some(v) if API_VERSIONS.contains(&v) => None,
        Some(v) => Some(problem(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            format!(
                "api-version {v} is not supported (supported: {})",
                API_VERSIONS.join(", ")
            ),
            None,
        )),
        None if required => Some(problem(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            format!(
                "the api-version query parameter is required (e.g. ?api-version=2022-08-01; \
                 supported: {})",
                API_VERSIONS.join(", ")
            ),
            None,
        )),
        None => None,
    }
}

/// Which MAA request shape a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestShape {
    /// `AttestSgxEnclaveRequest`: `quote`.
    SgxEnclave,
    /// `AttestOpenEnclaveRequest`: `report` (Open Enclave header + quote).
    OpenEnclave,
    /// MAA 2025-06-01 `AttestTdxVmRequest`: `quote` (a TDX quote), `runtimeData`,
    /// `initTimeData`, `nonce`; the token carries MAA's TDX claims.
    TdxVm,
}

async fn attest(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    attest_with(&s, RequestShape::SgxEnclave, &q, &headers, body).await
}

async fn attest_open_enclave(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    attest_with(&s, RequestShape::OpenEnclave, &q, &headers, body).await
}

async fn attest_tdx(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    attest_with(&s, RequestShape::TdxVm, &q, &headers, body).await
}

async fn attest_with(
    s: &Service,
    kind: RequestShape,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match (check_api_version(q, true), body) {
        (Some(resp), _) => Err(resp),
        (None, Err(r)) => Err(body_problem(r)),
        (None, Ok(body)) => {
            let issuer = s.issuer_for(headers);
            attest_inner(s, kind, &body, issuer).await
        }
    };
    match result {
        Ok(token) => (StatusCode::OK, Json(json!({ "token": token }))).into_response(),
        Err(resp) => {
            let code = resp
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("error")
                .to_string();
            tracing::info!(
                code = %code,
                status = resp.status().as_u16(),
                evidence = ?kind,
                "attestation failed"
            );
            resp
        }
    }
}

fn bad_request(e: &RequestError) -> Response {
    problem(StatusCode::BAD_REQUEST, e.code(), e.to_string(), None)
}

async fn attest_inner(
    s: &Service,
    kind: RequestShape,
    body: &[u8],
    issuer: &str,
) -> Result<String, Response> {
    let a = attest_claims(s, kind, body, issuer, true).await?;
    // A draft in the MAA language is answered as MAA does: an unsecured token (alg none).
    if a.draft == Some(crate::policy_doc::Language::Maa) {
        return Ok(crate::policy_admin::unsecured_jwt(&a.claims));
    }
    let ring = if a.draft.is_some() {
        &s.draft_keys
    } else {
        &s.keys
    };
    let jku = format!("{issuer}/certs");
    ring.sign(&a.claims, Some(&jku)).map_err(|e| {
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "signing-failed",
            e.to_string(),
            None,
        )
    })
}

/// A verified attestation's token claims, before signing.
pub(crate) struct Attested {
    pub(crate) claims: Value,
    /// The language of the draft policy used, if any.
    draft: Option<crate::policy_doc::Language>,
}

/// Decodes, verifies, binds and appraises an attestation request of shape `kind`: the token's
/// claims for `issuer` (counted as `verified`). `allow_draft` = false refuses
/// `draftPolicyForAttestation` (secret release).
pub(crate) async fn attest_claims(
    s: &Service,
    kind: RequestShape,
    body: &[u8],
    issuer: &str,
    allow_draft: bool,
) -> Result<Attested, Response> {
    let (req, quote) = match kind {
        RequestShape::SgxEnclave | RequestShape::TdxVm => {
            let req: AttestRequest = serde_json::from_slice(body).map_err(|e| {
                let name = if kind == RequestShape::TdxVm {
                    "AttestTdxVmRequest"
                } else {
                    "AttestSgxEnclaveRequest"
                };
                bad_request(&RequestError::Invalid(format!(
                    "the body is not an {name}: {e}"
                )))
            })?;
            let quote = claims::decode_b64("quote", &req.quote).map_err(|e| bad_request(&e))?;
            (req, quote)
        }
        RequestShape::OpenEnclave => {
            let req: AttestOpenEnclaveRequest = serde_json::from_slice(body).map_err(|e| {
                bad_request(&RequestError::Invalid(format!(
                    "the body is not an AttestOpenEnclaveRequest: {e}"
                )))
            })?;
            let report = claims::decode_b64("report", &req.report).map_err(|e| bad_request(&e))?;
            let quote = claims::oe_report_quote(&report)
                .map_err(|e| bad_request(&e))?
                .to_vec();
            (AttestRequest::from(req), quote)
        }
    };
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
    if !allow_draft && req.draft_policy_for_attestation.is_some() {
        return Err(bad_request(&RequestError::Invalid(
            "draftPolicyForAttestation cannot be used to release a secret".into(),
        )));
    }
    let draft = req
        .draft_policy_for_attestation
        .as_deref()
        .map(|t| ActivePolicy::parse(t.as_bytes()))
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
        problem(StatusCode::BAD_REQUEST, e.code(), e.full_message(), None)
    };
    let platform = s.platform_of(&quote).map_err(verify_failed)?;
    match (kind, platform.tdx) {
        (RequestShape::TdxVm, false) => {
            return Err(verify_failed(dcap::VerifyError::UnsupportedQuoteVersion(
                dcap::UnsupportedQuote::WrongEndpoint(
                    "this is an SGX quote, not a TDX quote: attest it at /attest/SgxEnclave",
                ),
            )));
        }
        (RequestShape::SgxEnclave | RequestShape::OpenEnclave, true) => {
            return Err(verify_failed(dcap::VerifyError::UnsupportedQuoteVersion(
                dcap::UnsupportedQuote::WrongEndpoint(
                    "this is a TDX quote: attest it at /attest/TdxVm",
                ),
            )));
        }
        _ => {}
    }
    let collateral = s.collateral.collateral(&platform, verify_at).await;
    if let Ok(c) = &collateral {
        s.note_collateral(c);
    }
    let collateral = collateral.map_err(|e| {
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
        .verify_dcap(&quote, &collateral, verify_at, &s.cfg.anchor)
        .map_err(verify_failed)?;
    let tcb = verified.tcb_status().as_str();
    match &verified {
        VerifiedDcapQuote::Sgx(v) => claims::check_bindings(v, runtime.as_ref(), init.as_ref()),
        VerifiedDcapQuote::Tdx(v) => claims::check_tdx_bindings(v, runtime.as_ref(), init.as_ref()),
    }
    .map_err(|e| {
        s.outcome(e.code(), tcb);
        bad_request(&e)
    })?;
    let draft_language = draft.as_ref().map(ActivePolicy::language);
    let policy = match draft {
        Some(p) => Arc::new(p),
        None => s.current_policy(),
    };
    let appraisal = policy
        .appraise(&verified, runtime.as_ref(), init.as_ref())
        .map_err(|r| {
            s.outcome(r.code, tcb);
            problem(StatusCode::FORBIDDEN, r.code, r.message, r.extra)
        })?;
    let jti = {
        let mut b = [0u8; 16];
        // The system RNG does not fail on supported platforms; a zero jti would still be unique
        // enough with iat, so do not refuse service over it.
        let _ = aws_lc_rs::rand::fill(&mut b);
        hex::encode(b)
    };
    let ctx = TokenContext {
        issuer,
        now,
        lifetime: s.cfg.token_lifetime,
        jti,
        nonce: req.nonce.as_deref(),
        runtime: runtime.as_ref(),
        init: init.as_ref(),
        policy_hash: policy.hash(),
        rule: &appraisal.rule,
        draft: draft_language.is_some(),
    };
    let mut c = match &verified {
        VerifiedDcapQuote::Sgx(v) => claims::claims(v, &ctx),
        VerifiedDcapQuote::Tdx(v) => claims::tdx_claims(v, &ctx),
    };
    apply_appraisal(&mut c, &appraisal);
    s.outcome("verified", tcb);
    Ok(Attested {
        claims: c,
        draft: draft_language,
    })
}

async fn certs(State(s): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let issuer = s.issuer_for(&headers);
    // application/json: the JS SDK's pipeline deserializes only JSON content types, and
    // Microsoft's SDKs ask for "application/jwk+json, application/json".
    Json(s.keys.jwks_for(issuer, s.now())).into_response()
}

async fn openid_configuration(State(s): State<Arc<Service>>, headers: HeaderMap) -> Json<Value> {
    let base = s.issuer_for(&headers);
    let algs: Vec<&str> = s
        .keys
        .published_algs(s.now())
        .into_iter()
        .map(SigningAlg::name)
        .collect();
    let claims = claims::CLAIM_NAMES;
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

/// The attestation types `/tcbbaselines/{type}` answers for.
const TCB_BASELINE_TYPES: [&str; 2] = ["SgxEnclave", "OpenEnclave"];

/// `GET /tcbbaselines/SgxEnclave` in MAA's `TcbBaselineResult` shape (api-version 2025-06-01):
/// `azuredefault` (what confkube applies: the newest collateral it has) and one baseline per TCB
/// evaluation data number of the collateral it has, newest first.
async fn tcb_baselines(
    State(s): State<Arc<Service>>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(resp) = check_api_version(&q, false) {
        return resp;
    }
    if !TCB_BASELINE_TYPES.contains(&kind.as_str()) {
        return problem(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "no TCB baselines for attestation type {kind:?} (supported: {})",
                TCB_BASELINE_TYPES.join(", ")
            ),
            None,
        );
    }
    let numbers = s.tcb_baselines();
    let entry = |id: String, n: u32, date: &Option<String>, selected: bool| {
        json!({
            "tcbIdentifier": id,
            "tcbEvaluationDataNumber": n,
            "tcbReleaseDate": date,
            "isSelectedTcb": selected,
        })
    };
    let mut list = Vec::with_capacity(numbers.len() + 1);
    if let Some((n, date)) = numbers.first() {
        list.push(entry("azuredefault".into(), *n, date, true));
    }
    for (n, date) in &numbers {
        list.push(entry(n.to_string(), *n, date, false));
    }
    Json(json!({ "tcbBaselines": list })).into_response()
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

pub(crate) fn unauthorized() -> Response {
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

async fn get_policy(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    if q.contains_key("api-version") {
        return crate::policy_admin::get(&s, &q, &headers);
    }
    let p = s.current_policy();
    Json(json!({"language": p.language().as_str(), "policy": p.document(), "hash": p.hash()}))
        .into_response()
}

async fn reset_policy(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    crate::policy_admin::reset(&s, &q, &headers, body)
}

async fn put_policy(
    State(s): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if crate::policy_admin::is_sdk_request(&q, &body) {
        return crate::policy_admin::set(&s, &q, &headers, body);
    }
    if !s.admin_ok(&headers) {
        return unauthorized();
    }
    if !s.policy_signers().is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            crate::policy_admin::POLICY_NOT_SIGNED,
            "this service requires policies signed with a policy management certificate \
             (--policy-signer-cert): upload a signed JWS (PUT with ?api-version, as the Azure \
             Attestation SDKs do)",
            None,
        );
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
    let policy = match ActivePolicy::parse(&body) {
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
        && let Err(e) = store.put(Table::Policies, POLICY_NAME, &policy.to_stored())
    {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store-failed",
            e.to_string(),
            None,
        );
    }
    let hash = policy.hash();
    let doc = policy.document();
    let language = policy.language().as_str();
    s.set_policy(policy);
    Json(json!({"language": language, "policy": doc, "hash": hash})).into_response()
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

async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no such endpoint: {method} {}", uri.path()),
        None,
    )
}

/// Whether an `Accept` header value admits `media` (`type/subtype`), by RFC 9110 §12.5.1
/// ranges; a range with `q=0` refuses it.
fn accepts(accept: &str, media: &str) -> bool {
    let (ty, _) = media.split_once('/').unwrap_or((media, ""));
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let r = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !refused && (r == media || r == "*/*" || r == format!("{ty}/*"))
    })
}

/// The problem code for a status answered without one (axum's own 405 and extractor rejections).
fn status_code_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "request-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        s if s.is_client_error() => "invalid-request",
        _ => "internal-error",
    }
}

/// Largest error body rewritten into a problem (axum's rejection texts are short).
const MAX_REWRITTEN_BODY: usize = 4096;

/// Every failure leaves as a problem ([`problem`]): answers that are not one yet (axum's 405
/// with its `Allow` header, extractor rejections) are rewritten with a code, and a client whose
/// `Accept` admits `application/json` but not `application/problem+json` (Microsoft's SDKs) gets
/// the same body as `application/json`, which their pipelines parse.
pub async fn shape_errors(req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let mut resp = if is_problem {
        resp
    } else {
        let (parts, body) = resp.into_parts();
        let text = axum::body::to_bytes(body, MAX_REWRITTEN_BODY)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        let allow = parts.headers.get(header::ALLOW).cloned();
        let detail = match (status, &allow) {
            (StatusCode::METHOD_NOT_ALLOWED, Some(a)) => format!(
                "{method} is not allowed on {path} (allowed: {})",
                a.to_str().unwrap_or_default()
            ),
            (StatusCode::METHOD_NOT_ALLOWED, None) => format!("{method} is not allowed on {path}"),
            _ if !text.is_empty() => text,
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        };
        let mut p = problem(status, status_code_name(status), detail, None);
        for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
            if let Some(v) = parts.headers.get(&name) {
                p.headers_mut().insert(name, v.clone());
            }
        }
        p
    };
    if let Some(a) = accept
        && !accepts(&a, PROBLEM_JSON)
        && accepts(&a, "application/json")
    {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
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
///
/// Routes added by other parts (secrets, TDX) go in the inner router; [`shape_errors`] wraps
/// the whole of it, so that it sees axum's 405 answers with their `Allow` header.
pub fn router(s: Arc<Service>) -> Router {
    let routes = Router::new()
        .route("/attest/SgxEnclave", post(attest))
        .route("/attest/OpenEnclave", post(attest_open_enclave))
        .route("/attest/TdxVm", post(attest_tdx))
        .route("/tcbbaselines/{attestation_type}", get(tcb_baselines))
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
        .route("/policies/SgxEnclave:reset", post(reset_policy))
        .route("/admin/keys/rotate", post(rotate_keys))
        .merge(crate::secrets::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(s.clone(), track))
        .layer(DefaultBodyLimit::max(s.cfg.body_limit))
        .with_state(s);
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(shape_errors))
}
