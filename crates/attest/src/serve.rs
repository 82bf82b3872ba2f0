//! Serving the router: plain HTTP on loopback only, HTTPS (rustls) anywhere.
//!
//! The HTTPS certificate comes from a [`ReloadingCert`] (the `tls-reload` crate): rustls asks it
//! for the certificate on every handshake, and [`crate::reload::watch_tls`] polls it, so a
//! certificate renewed in a mounted Kubernetes Secret is served without a restart, while a pair
//! that cannot be used keeps the previous certificate in service.

use axum::Router;
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

/// Binds `addr` and serves until `shutdown` completes: HTTPS with the certificate of `tls`
/// (reloaded by whoever polls it, see [`crate::reload::watch_tls`]), else plain HTTP on
/// loopback. `on_bound` receives the bound address (useful with port 0).
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    tls: Option<Arc<ReloadingCert>>,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::PlainHttpNotLoopback(addr));
    }
    let tls_cfg = tls
        .map(|cert| cert.server_config(&ALPN))
        .transpose()
        .map_err(ServeError::TlsConfig)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind {
            addr,
            message: e.to_string(),
        })?;
    let bound = listener.local_addr().unwrap_or(addr);
    on_bound(bound);
    let Some(tls_cfg) = tls_cfg else {
        return axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ServeError::Bind {
                addr,
                message: e.to_string(),
            });
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_cfg));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
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
