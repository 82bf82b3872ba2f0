//! Serving the router: plain HTTP on loopback only, HTTPS (rustls) anywhere.
//!
//! The HTTPS certificate comes from a [`TlsCertResolver`]: rustls asks it for the certificate on
//! every handshake, and [`TlsCertResolver::reload`] (polled by [`crate::reload::watch_tls`])
//! re-reads the PEM files and swaps a changed, valid pair in one step, so a certificate renewed
//! in a mounted Kubernetes Secret is served without a restart. A pair that cannot be used keeps
//! the previous certificate in service.

use crate::reload::{Fingerprint, ReloadOutcome, sha256};
use axum::Router;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

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

fn tls_error(path: &Path, message: String) -> ServeError {
    ServeError::Tls {
        path: path.to_path_buf(),
        message,
    }
}

fn read_tls_file(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|e| tls_error(path, format!("I/O error: {e}")))
}

/// Reads the certificate, the key, and the certificate again: if the certificate changed in
/// between (the kubelet swapped `..data`), the key may belong to the other version, so read
/// again (at most three times; the parse then decides).
fn read_pair(files: &TlsFiles) -> Result<(Vec<u8>, Vec<u8>), ServeError> {
    let mut cert = read_tls_file(&files.cert)?;
    let mut attempt = 1;
    loop {
        let key = read_tls_file(&files.key)?;
        let again = read_tls_file(&files.cert)?;
        if again == cert || attempt == 3 {
            return Ok((again, key));
        }
        cert = again;
        attempt += 1;
    }
}

/// The fingerprint of a pair read: both contents, or the read error.
fn pair_fingerprint(read: &Result<(Vec<u8>, Vec<u8>), ServeError>) -> Fingerprint {
    match read {
        Ok((cert, key)) => sha256(&[b"pair", cert, key]),
        Err(e) => sha256(&[b"error", e.to_string().as_bytes()]),
    }
}

/// Parses a PEM certificate chain and key and checks that the key belongs to the leaf
/// certificate (rustls `CertifiedKey::keys_match`, via `CertifiedKey::from_der`).
fn parse_pair(
    files: &TlsFiles,
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_error(&files.cert, "no CERTIFICATE block".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| tls_error(&files.key, e.to_string()))?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key does not belong to the certificate in {}",
                files.cert.display()
            ),
            other => other.to_string(),
        };
        tls_error(&files.key, why)
    })
}

/// The leaf certificate's notAfter (RFC 3339), for logs.
pub(crate) fn leaf_not_after(key: &CertifiedKey) -> Option<String> {
    let leaf = key.end_entity_cert().ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    cert.validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The serving certificate and key from PEM files, re-read on [`TlsCertResolver::reload`] and
/// swapped atomically; the rustls certificate resolver of the HTTPS server.
///
/// Like the other mounted sources ([`crate::reload`]) it compares contents, not modification
/// times: the kubelet swaps a Secret volume's `..data` symlink. A changed pair is parsed
/// completely, its key checked against the leaf certificate, and only then swapped in; a
/// handshake in progress keeps the key it already holds.
pub struct TlsCertResolver {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The fingerprint of the contents last seen (applied or rejected).
    seen: Mutex<Fingerprint>,
}

impl std::fmt::Debug for TlsCertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertResolver")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsCertResolver {
    /// Loads the pair (aws-lc-rs provider). Any problem is an error naming the file.
    pub fn load(files: TlsFiles) -> Result<Self, ServeError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let read = read_pair(&files);
        let seen = pair_fingerprint(&read);
        let (cert, key) = read?;
        let current = parse_pair(&files, &provider, &cert, &key)?;
        Ok(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(current)),
            seen: Mutex::new(seen),
        })
    }

    /// The files.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate and key new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads both files (blocking IO). Changed contents that parse, with a key that matches
    /// the certificate, are swapped in ([`ReloadOutcome::Applied`]); otherwise the current pair
    /// stays ([`ReloadOutcome::Rejected`] with `TLS <file>: <reason>`, once per content change).
    pub fn reload(&self) -> ReloadOutcome {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let read = read_pair(&self.files);
        let fp = pair_fingerprint(&read);
        if *seen == fp {
            return ReloadOutcome::Unchanged;
        }
        *seen = fp;
        let parsed =
            read.and_then(|(cert, key)| parse_pair(&self.files, &self.provider, &cert, &key));
        match parsed {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                ReloadOutcome::Applied
            }
            Err(e) => ReloadOutcome::Rejected(e.to_string()),
        }
    }

    /// A rustls server configuration whose certificate is this resolver's current one (TLS 1.2
    /// and 1.3, ALPN `h2` and `http/1.1`).
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, ServeError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&self.files.cert, e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

impl ResolvesServerCert for TlsCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Loads a rustls server configuration from PEM files, with a [`TlsCertResolver`] that is never
/// reloaded.
pub fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, ServeError> {
    Arc::new(TlsCertResolver::load(files.clone())?).server_config()
}

/// Binds `addr` and serves until `shutdown` completes: HTTPS with the certificate of `tls`
/// (reloaded by whoever polls it, see [`crate::reload::watch_tls`]), else plain HTTP on
/// loopback. `on_bound` receives the bound address (useful with port 0).
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    tls: Option<Arc<TlsCertResolver>>,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::PlainHttpNotLoopback(addr));
    }
    let tls_cfg = tls
        .as_ref()
        .map(TlsCertResolver::server_config)
        .transpose()?;
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

    /// A self-signed certificate for `localhost` and its PKCS#8 key, both PEM, and the
    /// certificate DER.
    fn pair() -> (String, String, Vec<u8>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (
            ck.cert.pem(),
            ck.signing_key.serialize_pem(),
            ck.cert.der().to_vec(),
        )
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("confkube-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(files: &TlsFiles, cert: &str, key: &str) {
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
    }

    fn served_der(r: &TlsCertResolver) -> Vec<u8> {
        r.current().end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn resolver_swaps_a_changed_pair_and_keeps_the_last_good_one() {
        let dir = tmp("resolver");
        let files = TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let (cert_a, key_a, der_a) = pair();
        let (cert_b, key_b, der_b) = pair();
        write(&files, &cert_a, &key_a);
        let r = Arc::new(TlsCertResolver::load(files.clone()).unwrap());
        assert_eq!(served_der(&r), der_a);
        assert_eq!(r.reload(), ReloadOutcome::Unchanged);

        // good -> good: swapped.
        write(&files, &cert_b, &key_b);
        assert_eq!(r.reload(), ReloadOutcome::Applied);
        assert_eq!(served_der(&r), der_b);
        assert_eq!(r.reload(), ReloadOutcome::Unchanged);

        // good -> unparsable certificate: the last good pair stays, reported once.
        write(&files, "not a certificate\n", &key_b);
        assert_eq!(
            r.reload(),
            ReloadOutcome::Rejected(format!(
                "TLS {}: no CERTIFICATE block",
                files.cert.display()
            ))
        );
        assert_eq!(r.reload(), ReloadOutcome::Unchanged);
        assert_eq!(served_der(&r), der_b);

        // A key that does not belong to the certificate is rejected.
        write(&files, &cert_a, &key_b);
        assert_eq!(
            r.reload(),
            ReloadOutcome::Rejected(format!(
                "TLS {}: the private key does not belong to the certificate in {}",
                files.key.display(),
                files.cert.display()
            ))
        );
        assert_eq!(served_der(&r), der_b);

        // A truncated key.
        write(&files, &cert_a, "-----BEGIN PRIVATE KEY-----\nAAAA\n");
        assert_eq!(
            r.reload(),
            ReloadOutcome::Rejected(format!(
                // rustls-pki-types prints the marker ("PRIVATE KEY") as bytes.
                "TLS {}: missing section end marker: [80, 82, 73, 86, 65, 84, 69, 32, 75, 69, 89]",
                files.key.display()
            ))
        );

        // A missing file.
        std::fs::remove_file(&files.key).unwrap();
        assert_eq!(
            r.reload(),
            ReloadOutcome::Rejected(format!(
                "TLS {}: I/O error: No such file or directory (os error 2)",
                files.key.display()
            ))
        );
        assert_eq!(served_der(&r), der_b);

        // Back to a good pair (even the previous one) clears it.
        write(&files, &cert_a, &key_a);
        assert_eq!(r.reload(), ReloadOutcome::Applied);
        assert_eq!(served_der(&r), der_a);

        // The server configuration resolves to whatever is current.
        let cfg = r.server_config().unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn start_up_errors_name_the_file() {
        let dir = tmp("startup");
        let files = TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let msg = |files: &TlsFiles| {
            TlsCertResolver::load(files.clone())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg(&files),
            format!(
                "TLS {}: I/O error: No such file or directory (os error 2)",
                files.cert.display()
            )
        );
        let (cert_a, key_a, _) = pair();
        let (_, key_b, _) = pair();
        write(&files, &cert_a, &key_b);
        assert_eq!(
            msg(&files),
            format!(
                "TLS {}: the private key does not belong to the certificate in {}",
                files.key.display(),
                files.cert.display()
            )
        );
        write(&files, &key_a, &key_a);
        assert_eq!(
            msg(&files),
            format!("TLS {}: no CERTIFICATE block", files.cert.display())
        );
        write(&files, &cert_a, &cert_a);
        assert_eq!(
            msg(&files),
            format!("TLS {}: no items found", files.key.display())
        );
        write(&files, &cert_a, &key_a);
        assert!(tls_config(&files).is_ok());
    }

    #[test]
    fn pair_fingerprints_follow_both_contents() {
        let dir = tmp("fingerprint");
        let files = TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        write(&files, "c", "k");
        let read = read_pair(&files);
        assert_eq!(read.as_ref().unwrap(), &(b"c".to_vec(), b"k".to_vec()));
        let fp = pair_fingerprint(&read);
        write(&files, "c", "k2");
        assert_ne!(fp, pair_fingerprint(&read_pair(&files)));
        write(&files, "ck", "");
        assert_ne!(fp, pair_fingerprint(&read_pair(&files)));
    }
}
