//! Serving the router: plain HTTP on loopback only, HTTPS (rustls) anywhere.

use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// TLS certificate chain and key files (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

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
    /// TLS files could not be read.
    #[error("TLS {path}: {message}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

/// Loads a rustls server configuration from PEM files.
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |path: &PathBuf, m: String| ServeError::Tls {
        path: path.clone(),
        message: m,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(&files.cert, "no CERTIFICATE block".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| err(&files.key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(&files.key, e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Binds `addr` and serves until `shutdown` completes. `on_bound` receives the bound address
/// (useful with port 0).
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    tls: Option<TlsFiles>,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::PlainHttpNotLoopback(addr));
    }
    let tls_cfg = tls.as_ref().map(tls_config).transpose()?;
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
