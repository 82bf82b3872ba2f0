//! The HTTPS server: accept → TLS → HTTP/1.1 or HTTP/2 → route → kube-sgx → response.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
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

/// Server behaviour; build with [`Options::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// What the mutator adds and enforces.
    pub config: Config,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Answer every review "allowed" without looking at the pod (benchmark baseline and
    /// emergency bypass).
    pub passthrough: bool,
    /// How often the certificate files are re-read.
    pub reload_interval: Duration,
    /// Limit for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Limit for reading request headers (HTTP/1.1) and a request body.
    pub body_timeout: Duration,
}

impl Options {
    /// Defaults: 3 MiB bodies, reload every 10 s, 10 s handshake and body timeouts.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            passthrough: false,
            reload_interval: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the largest accepted request body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
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
    /// connections finish (at most 10 s).
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
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let conn = connection(tcp, peer, acceptor.clone(), Arc::clone(&state));
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let _ = conn(watcher).await;
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends are transient: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        state.ready.store(false, Ordering::Relaxed);
        reloader.abort();
        drop(listener);
        if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    }
}

fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<State>,
) -> impl FnOnce(
    hyper_util::server::graceful::Watcher,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    move |watcher| {
        Box::pin(async move {
            let _ = tcp.set_nodelay(true);
            let timeout = state.options.handshake_timeout;
            let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    state.metrics.handshake_failures.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    state.metrics.handshake_failures.inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let svc_state = Arc::clone(&state);
            let service = service_fn(move |req| {
                let state = Arc::clone(&svc_state);
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // Without a header deadline a client could hold a connection by trickling headers.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(state.options.body_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        })
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

async fn route(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let endpoint = match req.uri().path() {
        "/mutate-pods" => Endpoint::Mutate,
        "/validate-pods" => Endpoint::Validate,
        "/healthz" | "/readyz" | "/metrics" if req.method() != Method::GET => {
            return not_allowed("GET");
        }
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Relaxed) => return text(StatusCode::OK, "ok\n"),
        "/readyz" => return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        "/metrics" => return metrics(state),
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found; admission paths are /mutate-pods and /validate-pods\n",
            );
        }
    };
    if req.method() != Method::POST {
        return not_allowed("POST");
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

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}\n"),
    );
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    resp
}

fn metrics(state: &State) -> Response<Full<Bytes>> {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics encoding failed: {e}\n"),
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
    let max = state.options.max_body_bytes;
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
        text(StatusCode::BAD_REQUEST, message + "\n")
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return bad(format!(
            "request body is larger than the {max}-byte limit (--max-body-bytes)"
        ));
    }
    let body = Limited::new(req.into_body(), max).collect();
    let body = match tokio::time::timeout(state.options.body_timeout, body).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return bad(format!(
                "request body is larger than the {max}-byte limit (--max-body-bytes)"
            ));
        }
        Ok(Err(e)) => return bad(format!("cannot read request body: {e}")),
        Err(_) => return bad("timed out reading the request body".to_owned()),
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
        let dir = std::env::temp_dir().join(format!(
            "confkube-webhook-reload-count-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = tls_reload::CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
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
