//! Serving certificate from PEM files, swapped in place when the files change.
//!
//! Kubernetes updates a mounted Secret by swapping a symlink, and cert-manager renews
//! certificates well before expiry; the store re-reads both files on every
//! [`CertStore::reload_if_changed`] call and swaps the key when their bytes differ. A pair that
//! fails to load is reported and the previous certificate stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {}: {error}; check the --tls-cert/--tls-key path", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The PEM text is damaged.
    #[error("{} is not valid PEM: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM decoder reported.
        message: String,
    },
    /// The certificate file holds no certificate.
    #[error(
        "{} holds no PEM CERTIFICATE block; --tls-cert must be the PEM certificate chain, leaf first",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error(
        "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1); --tls-key must be the PEM key of \
         the serving certificate",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is unsupported or does not match the certificate.
    #[error(
        "certificate {} and key {} cannot be used together: {message}; give the key that belongs \
         to the certificate",
        cert.display(),
        key.display()
    )]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls reported.
        message: String,
    },
    /// rustls refused the server configuration.
    #[error("TLS configuration failed: {0}")]
    Config(String),
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

/// The serving certificate and its source files; the rustls certificate resolver.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Loaded>>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}

/// The PEM decoder's error in words (its `Display` prints markers as byte arrays).
pub(crate) fn pem_message(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "no \"-----END {}-----\" line",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => {
            format!("bad BEGIN line \"{}\"", String::from_utf8_lossy(line))
        }
        Error::Base64Decode(message) => format!("bad base64 ({message})"),
        other => other.to_string(),
    }
}

impl CertStore {
    /// Loads the PEM certificate chain and key, with the aws-lc-rs provider.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let loaded = Self::parse(
            &provider,
            cert_path,
            key_path,
            read(cert_path)?,
            read(key_path)?,
        )?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    fn parse(
        provider: &CryptoProvider,
        cert_path: &Path,
        key_path: &Path,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Result<Loaded, TlsError> {
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                path: cert_path.to_owned(),
                message: pem_message(&e),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert_path.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                path: key_path.to_owned(),
            },
            other => TlsError::Pem {
                path: key_path.to_owned(),
                message: pem_message(&other),
            },
        })?;
        let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Pair {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            message: match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "the private key does not match the certificate's public key".to_owned()
                }
                other => other.to_string(),
            },
        })?;
        Ok(Loaded {
            key: Arc::new(key),
            cert_pem,
            key_pem,
        })
    }

    fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads both files; swaps the certificate if they changed and load cleanly.
    /// Returns whether a new certificate is now served. On error the old one stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let cert_pem = read(&self.cert_path)?;
        let key_pem = read(&self.key_path)?;
        let old = self.current();
        if old.cert_pem == cert_pem && old.key_pem == key_pem {
            return Ok(false);
        }
        let loaded = Self::parse(
            &self.provider,
            &self.cert_path,
            &self.key_path,
            cert_pem,
            key_pem,
        )?;
        let loaded = Arc::new(loaded);
        match self.current.write() {
            Ok(mut guard) => *guard = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        Ok(true)
    }

    /// A rustls server configuration serving this store's certificate (TLS 1.2 and 1.3,
    /// ALPN `h2` and `http/1.1`).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current().key))
    }
}
