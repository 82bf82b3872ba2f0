//! Serving the router: plain HTTP on loopback only, HTTPS (rustls) anywhere, with the
//! timeouts and connection bound of [`http_guard`].
//!
//! The HTTPS certificate comes from a [`ReloadingCert`] (the `tls-reload` crate): rustls asks it
//! for the certificate on every handshake, and [`crate::reload::watch_tls`] polls it, so a
//! certificate renewed in a mounted Kubernetes Secret is served without a restart, while a pair
//! that cannot be used keeps the previous certificate in service.

use axum::Router;
pub use http_guard::{BodyError, Closed, Counts, Events, Limits};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tls_reload::{CertFiles, ReloadingCert, TlsFileError};

/// The ALPN protocols offered over HTTPS.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Plain HTTP was asked for on a non-loopback address.
    #[error(
        "refusing plain HTTP on {0}: only loopback addresses may serve without TLS; pass \
         --tls-cert and --tls-key"
    )]
    PlainHttpNotLoopback(SocketAddr),
    /// The TLS certificate or key file cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsFileError),
    /// rustls refused the server configuration (the crypto provider supports no TLS version).
    #[error("TLS configuration failed: {0}")]
    TlsConfig(rustls::Error),
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

/// A rustls server configuration from PEM files (aws-lc-rs provider, TLS 1.2 and 1.3, ALPN
/// `h2` and `http/1.1`) whose certificate is never reloaded.
pub fn tls_config(files: &CertFiles) -> Result<rustls::ServerConfig, ServeError> {
    let cert = Arc::new(ReloadingCert::load(
        files.clone(),
        tls_reload::default_provider(),
    )?);
    cert.server_config(&ALPN).map_err(ServeError::TlsConfig)
}

/// A bound listener that is not serving yet: bind first (before anything touches the disk),
/// so a port in use or a refused plain-HTTP address fails before the store is created.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    tls: Option<Arc<ReloadingCert>>,
    addr: SocketAddr,
}

impl Server {
    /// Checks the address rule (plain HTTP only on loopback) and binds `addr`.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<ReloadingCert>>,
    ) -> Result<Self, ServeError> {
        check_plain_http(addr, tls.is_some())?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind {
                addr,
                message: e.to_string(),
            })?;
        Ok(Self {
            listener,
            tls,
            addr,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.addr)
    }

    /// Serves `router` within `limits` until `shutdown` completes (see [`http_guard`] for the
    /// timeouts and the connection bound). Every request body is read here first: a declared
    /// `Content-Length` above the body limit gets `413 request-too-large` at once (and never
    /// `100 Continue`), a body slower than the body timeout `408 request-timeout`.
    pub async fn serve(
        self,
        router: Router,
        limits: Limits,
        events: Arc<dyn Events>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let acceptor = self
            .tls
            .map(|cert| cert.server_config(&ALPN))
            .transpose()
            .map_err(ServeError::TlsConfig)?
            .map(|cfg| tokio_rustls::TlsAcceptor::from(Arc::new(cfg)));
        let router = router.layer(axum::middleware::from_fn_with_state(limits, read_body));
        let svc = hyper_util::service::TowerToHyperService::new(router);
        http_guard::serve(self.listener, acceptor, svc, limits, events, None, shutdown).await;
        Ok(())
    }
}

/// Plain HTTP is refused off loopback.
pub fn check_plain_http(addr: SocketAddr, tls: bool) -> Result<(), ServeError> {
    if tls || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::PlainHttpNotLoopback(addr))
    }
}

/// Reads the whole body within the limits before the route sees the request.
async fn read_body(
    axum::extract::State(limits): axum::extract::State<Limits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    if let Some(n) = http_guard::declared_too_large(req.headers(), limits.body_limit) {
        let mut resp = crate::server::problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request-too-large",
            format!(
                "the request declares a {n}-byte body; the limit is {} bytes (--body-limit)",
                limits.body_limit
            ),
            None,
        );
        // The unread body stays on an HTTP/1 connection: do not reuse it.
        if req.version() <= axum::http::Version::HTTP_11 {
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        return resp;
    }
    let (parts, body) = req.into_parts();
    match http_guard::read_body(body, &limits).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Err(e) => {
            let (status, code) = match &e {
                BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "request-too-large"),
                BodyError::Timeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request-timeout"),
                _ => (StatusCode::BAD_REQUEST, "invalid-request"),
            };
            crate::server::problem(status, code, e.to_string(), None)
        }
    }
}

/// Binds `addr` and serves until `shutdown` completes, with the default [`Limits`] (and the
/// given body limit): HTTPS with the certificate of `tls` (reloaded by whoever polls it, see
/// [`crate::reload::watch_tls`]), else plain HTTP on loopback. `on_bound` receives the bound
/// address (useful with port 0).
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    tls: Option<Arc<ReloadingCert>>,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let server = Server::bind(addr, tls).await?;
    on_bound(server.local_addr());
    server
        .serve(
            router,
            Limits::default(),
            Arc::new(http_guard::Counts::default()),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_tls_reload_errors_unchanged() {
        let dir = std::env::temp_dir().join(format!("confkube-serve-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let e = tls_config(&files).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read {}: No such file or directory (os error 2); check the \
                 --tls-cert/--tls-key path",
                files.cert.display()
            )
        );
        assert!(matches!(e, ServeError::Tls(TlsFileError::Read { .. })));

        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(&files.cert, ck.cert.pem()).unwrap();
        std::fs::write(&files.key, ck.signing_key.serialize_pem()).unwrap();
        let cfg = tls_config(&files).unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
