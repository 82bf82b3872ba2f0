//! The HTTPS server: accept → TLS → HTTP/1.1 or HTTP/2 → route → kube-sgx → response.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
pub use http_guard::Limits;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use kube_sgx::Config;
use kube_sgx::admission::{self, Endpoint, Outcome};
use prometheus_client::registry::Registry;
use tls_reload::{Reload, ReloadingCert, TlsFileError};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::metrics::{DenialLabels, EndpointLabels, Metrics, ReloadLabels, RequestLabels};

/// Admission bodies larger than this are refused by default (the API server's own request
/// limit is 3 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 << 20;

/// The webhook's default body timeout (the API server gives a webhook call 10 s by default).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Server behaviour; build with [`Options::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// What the mutator adds and enforces.
    pub config: Config,
    /// Answer every review "allowed" without looking at the pod (benchmark baseline and
    /// emergency bypass).
    pub passthrough: bool,
    /// How often the certificate files are re-read.
    pub reload_interval: Duration,
    /// Timeouts, connection bound and body limit (`http-guard`).
    pub limits: Limits,
}

impl Options {
    /// Defaults: 3 MiB bodies read within 10 s, reload every 10 s, and the other
    /// [`Limits`] defaults (10 s handshake and header timeouts, 120 s idle, 512 connections).
    pub fn new(config: Config) -> Self {
        Self {
            config,
            passthrough: false,
            reload_interval: Duration::from_secs(10),
            limits: Limits::default()
                .with_body_limit(DEFAULT_MAX_BODY_BYTES)
                .with_body_timeout(DEFAULT_BODY_TIMEOUT),
        }
    }

    /// Sets the largest accepted request body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.limits.body_limit = bytes;
        self
    }

    /// Sets the timeouts, connection bound and body limit.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets passthrough mode.
    pub fn with_passthrough(mut self, passthrough: bool) -> Self {
        self.passthrough = passthrough;
        self
    }

    /// Sets how often the certificate files are re-read.
    pub fn with_reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }
}

/// The server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {error}; choose a free local address with --listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// rustls refused the server configuration (the crypto provider supports no TLS version).
    #[error("TLS configuration failed: {0}")]
    TlsConfig(rustls::Error),
}

struct State {
    options: Options,
    metrics: Metrics,
    registry: Registry,
    ready: AtomicBool,
}

/// A bound, not yet serving, admission server.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    store: Arc<ReloadingCert>,
    state: Arc<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` and registers the server's metrics in `registry`, which `/metrics` serves.
    pub async fn bind(
        addr: SocketAddr,
        store: Arc<ReloadingCert>,
        options: Options,
        mut registry: Registry,
    ) -> Result<Self, ServeError> {
        let tls = store
            .server_config(&[b"h2", b"http/1.1"])
            .map_err(ServeError::TlsConfig)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| ServeError::Bind { addr, error })?;
        let metrics = Metrics::register(&mut registry);
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            store,
            state: Arc::new(State {
                options,
                metrics,
                registry,
                ready: AtomicBool::new(true),
            }),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, reports not-ready and lets open
    /// connections finish (at most 10 s). Connections are bounded as `Options::limits` says.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            acceptor,
            store,
            state,
        } = self;
        let reloader = tokio::spawn(reload_loop(
            Arc::clone(&store),
            state.metrics.clone(),
            state.options.reload_interval,
        ));
        let svc_state = Arc::clone(&state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&svc_state);
            async move { Ok::<_, Infallible>(route(&state, req).await) }
        });
        let ready = Arc::clone(&state);
        let shutdown = async move {
            shutdown.await;
            ready.ready.store(false, Ordering::Relaxed);
        };
        http_guard::serve(
            listener,
            Some(acceptor),
            service,
            state.options.limits,
            Arc::new(state.metrics.clone()),
            None,
            shutdown,
        )
        .await;
        reloader.abort();
    }
}

async fn reload_loop(store: Arc<ReloadingCert>, metrics: Metrics, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut rejected = None;
    loop {
        ticker.tick().await;
        let store = Arc::clone(&store);
        // File reads block; keep them off the reactor threads.
        match tokio::task::spawn_blocking(move || store.reload_if_changed()).await {
            Ok(result) => record_reload(result, &mut rejected, &metrics),
            Err(e) => tracing::error!(error = %e, "certificate reload task failed"),
        }
    }
}

/// Logs and counts one poll of the certificate files. `rejected` is the error of the files'
/// current contents, if they were rejected: `tls-reload` reports that once per change, but the
/// webhook logs and counts it at every poll until good files arrive, so that
/// `increase(confkube_webhook_certificate_reloads_total{result="error"}[15m]) > 0` keeps
/// alerting while the old certificate is still served.
fn record_reload(
    result: Result<Reload, TlsFileError>,
    rejected: &mut Option<String>,
    metrics: &Metrics,
) {
    let error = match result {
        Ok(Reload::Swapped { not_after }) => {
            *rejected = None;
            tracing::info!(
                not_after = not_after.unwrap_or_default(),
                "serving certificate reloaded"
            );
            metrics
                .reloads
                .get_or_create(&ReloadLabels { result: "reloaded" })
                .inc();
            return;
        }
        Ok(Reload::Unchanged) => match rejected {
            Some(error) => error.as_str(),
            None => return,
        },
        Err(e) => rejected.insert(e.to_string()).as_str(),
    };
    tracing::error!(error = %error, "serving certificate not reloaded; keeping the old one");
    metrics
        .reloads
        .get_or_create(&ReloadLabels { result: "error" })
        .inc();
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A failure: `application/problem+json` (RFC 9457) with a stable `code`, shaped as the
/// attestation service's (`type`, `title`, `status`, `code`, `detail`, and the
/// `"error": {"code", "message"}` envelope).
fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response<Full<Bytes>> {
    let detail = detail.into();
    let body = serde_json::json!({
        "type": format!("https://confkube.io/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
        "error": {"code": code, "message": detail},
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    resp
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let endpoint = match req.uri().path() {
        "/mutate-pods" => Endpoint::Mutate,
        "/validate-pods" => Endpoint::Validate,
        "/healthz" | "/readyz" | "/metrics" if req.method() != Method::GET => {
            return not_allowed(req.method(), req.uri().path(), "GET");
        }
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Relaxed) => return text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "shutting down",
            );
        }
        "/metrics" => return metrics(state),
        path => {
            return problem(
                StatusCode::NOT_FOUND,
                "not-found",
                format!(
                    "no such endpoint: {path}; admission paths are /mutate-pods and \
                     /validate-pods"
                ),
            );
        }
    };
    if req.method() != Method::POST {
        return not_allowed(req.method(), req.uri().path(), "POST");
    }
    let started = Instant::now();
    let name = match endpoint {
        Endpoint::Validate => "validate",
        _ => "mutate",
    };
    let resp = admit(state, endpoint, name, req).await;
    state
        .metrics
        .duration
        .get_or_create(&EndpointLabels { endpoint: name })
        .observe(started.elapsed().as_secs_f64());
    resp
}

fn not_allowed(method: &Method, path: &str, allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed on {path} (allowed: {allow})"),
    );
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    resp
}

fn metrics(state: &State) -> Response<Full<Bytes>> {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            format!("metrics encoding failed: {e}"),
        );
    }
    let mut resp = text(StatusCode::OK, body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}

async fn admit(
    state: &State,
    endpoint: Endpoint,
    name: &'static str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let max = state.options.limits.body_limit;
    let count = |outcome: &'static str| {
        state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                endpoint: name,
                outcome,
            })
            .inc();
    };
    let bad = |message: String| {
        count("bad_request");
        tracing::warn!(endpoint = name, %message, "bad admission request");
        problem(StatusCode::BAD_REQUEST, "invalid-request", message)
    };
    let refuse = |status: StatusCode, message: String| {
        count("bad_request");
        tracing::warn!(endpoint = name, %message, "bad admission request");
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request-too-large"
        } else {
            "request-timeout"
        };
        problem(status, code, message)
    };
    // Refused before any byte of the body is read, so hyper never sends `100 Continue` for it.
    if http_guard::declared_too_large(req.headers(), max).is_some() {
        let mut resp = refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {max}-byte limit (--body-limit)"),
        );
        if req.version() <= hyper::Version::HTTP_11 {
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        return resp;
    }
    let body = match http_guard::read_body(req.into_body(), &state.options.limits).await {
        Ok(body) => body,
        Err(e @ http_guard::BodyError::TooLarge { .. }) => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
        }
        Err(e @ http_guard::BodyError::Timeout { .. }) => {
            return refuse(StatusCode::REQUEST_TIMEOUT, e.to_string());
        }
        Err(e) => {
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            return bad(format!("{e}: {}", cause.unwrap_or_default()));
        }
    };
    let endpoint = if state.options.passthrough {
        Endpoint::Passthrough
    } else {
        endpoint
    };
    match admission::review(endpoint, &body, &state.options.config) {
        Ok(reviewed) => {
            let outcome = match reviewed.outcome {
                Outcome::Allowed => "allowed",
                Outcome::Patched => "patched",
                Outcome::Denied(reason) => {
                    state
                        .metrics
                        .denials
                        .get_or_create(&DenialLabels {
                            endpoint: name,
                            reason,
                        })
                        .inc();
                    tracing::info!(endpoint = name, reason, "pod denied");
                    "denied"
                }
                _ => "ignored",
            };
            count(outcome);
            let mut resp = Response::new(Full::new(Bytes::from(reviewed.body)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => bad(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_certificate_is_counted_at_every_poll_until_good_files_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let files = tls_reload::CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let write = |cert: &str, key: &str| {
            std::fs::write(&files.cert, cert).unwrap();
            std::fs::write(&files.key, key).unwrap();
        };
        let pair = || {
            let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            (ck.cert.pem(), ck.signing_key.serialize_pem())
        };
        let (cert_a, key_a) = pair();
        write(&cert_a, &key_a);
        let store = ReloadingCert::load(files.clone(), tls_reload::default_provider()).unwrap();
        let metrics = Metrics::register(&mut Registry::default());
        let count = |result| {
            metrics
                .reloads
                .get_or_create(&ReloadLabels { result })
                .get()
        };
        let mut rejected = None;
        let mut poll = || record_reload(store.reload_if_changed(), &mut rejected, &metrics);

        poll();
        assert_eq!((count("reloaded"), count("error")), (0, 0));
        write(&cert_a, "garbage\n");
        for _ in 0..3 {
            poll();
        }
        assert_eq!((count("reloaded"), count("error")), (0, 3));
        let (cert_b, key_b) = pair();
        write(&cert_b, &key_b);
        poll();
        poll();
        assert_eq!((count("reloaded"), count("error")), (1, 3));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
