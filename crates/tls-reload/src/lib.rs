//! A rustls server certificate from PEM files, re-read when the files change and swapped
//! atomically behind [`ResolvesServerCert`].
//!
//! **One job:** [`ReloadingCert`] holds the certificate chain and private key of a server, loaded
//! from a PEM certificate file and a PEM key file ([`CertFiles`]), and answers rustls's
//! "which certificate?" on every handshake. [`ReloadingCert::reload_if_changed`] re-reads both
//! files and, when their contents changed, parses the new pair completely, checks that the key
//! belongs to the leaf certificate and only then swaps it in; a pair that cannot be used is
//! returned as a [`TlsFileError`] naming the file and the fix, and the last good pair stays in
//! service. A handshake in progress keeps the key it already holds.
//!
//! Kubernetes updates a mounted Secret by pointing its `..data` symlink at a new directory
//! (cert-manager renews certificates that way), which leaves modification times meaningless, so
//! changes are detected by a SHA-256 fingerprint of the *contents*. The two files are read as
//! certificate, key, certificate again; if the certificate changed in between, the key may belong
//! to the other version and the pair is read again.
//!
//! **Not here:** no scheduling (the caller polls, typically on a blocking thread every few
//! seconds), no metrics and no logging (the caller counts and logs the [`Reload`] or error it
//! gets, under its own names), no client authentication, no certificate issuing or ACME.
//!
//! **Why hand-written:** rustls ships static resolvers only (one fixed chain, or one per SNI
//! name); the webhook and the attestation service both need one that follows a renewed Secret
//! without a restart, with the same rules. It is small, and one copy is easier to keep right.
//!
//! **Specs:** RFC 7468 (PEM), RFC 5280 (certificates, `notAfter`), RFC 5958/8017/5915 private
//! keys as PKCS#8, PKCS#1 or SEC1 PEM; keys are loaded by the caller's rustls
//! [`CryptoProvider`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The PEM files of a server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Certificate chain, PEM `CERTIFICATE` blocks, leaf first (e.g. `tls.crt`).
    pub cert: PathBuf,
    /// Private key of the leaf certificate, PEM: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE
    /// KEY` or SEC1 `EC PRIVATE KEY` (e.g. `tls.key`).
    pub key: PathBuf,
}

/// A certificate or key file that cannot be used. Each message names the file and the fix, and
/// shows its cause (so no variant exposes it again as `source()`); the cause is a typed field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFileError {
    /// The file cannot be read.
    #[error("cannot read {}: {error}; check the --tls-cert/--tls-key path", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The PEM text is damaged.
    #[error("{} is not valid PEM: {}", path.display(), pem_message(error))]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM decoder reported (shown in the message, in words).
        error: rustls::pki_types::pem::Error,
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
    /// The crypto provider cannot use the private key (an unsupported algorithm or curve, or
    /// damaged key bytes).
    #[error(
        "{} holds a private key that cannot be used ({error}); --tls-key must be an RSA, ECDSA or \
         Ed25519 key",
        path.display()
    )]
    UnsupportedKey {
        /// The key file.
        path: PathBuf,
        /// What the crypto provider reported.
        error: rustls::Error,
    },
    /// The leaf certificate cannot be parsed.
    #[error(
        "{} holds a leaf certificate that cannot be parsed ({error}); --tls-cert must be the PEM \
         certificate chain, leaf first",
        path.display()
    )]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What rustls reported.
        error: rustls::Error,
    },
    /// The key is not the key of the leaf certificate.
    #[error(
        "the private key in {} does not belong to the certificate in {}; --tls-key must be the \
         key of the first (leaf) certificate in --tls-cert",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// What [`ReloadingCert::reload_if_changed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files hold the same bytes as at the previous look (load or reload), so what happened
    /// then still holds: that pair is served, or it was rejected (reported once, by that call)
    /// and the pair before it is served.
    Unchanged,
    /// New contents were loaded and are served from now on.
    Swapped {
        /// The new leaf certificate's `notAfter`, RFC 3339 (`None` if it cannot be decoded).
        not_after: Option<String>,
    },
}

/// SHA-256 of the contents last looked at, or of the error reading them.
type Fingerprint = [u8; 32];

/// The certificate file's and the key file's contents, or why they cannot be read.
type PairRead = Result<(Vec<u8>, Vec<u8>), TlsFileError>;

/// rustls's aws-lc-rs crypto provider, the one confkube uses for every server.
pub fn default_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server certificate from PEM files, swapped in when the files change; the rustls
/// certificate resolver of a server. See the [crate] docs.
pub struct ReloadingCert {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The fingerprint of the contents last looked at (applied or rejected).
    seen: Mutex<Fingerprint>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Reads and parses both files (blocking IO) with the keys of `provider`. Any problem is an
    /// error naming the file.
    pub fn load(files: CertFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsFileError> {
        let read = read_pair(&files, read_file);
        let seen = fingerprint(&read);
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
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// The certificate chain and key new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The served leaf certificate's `notAfter`, RFC 3339 (`None` if it cannot be decoded).
    pub fn not_after(&self) -> Option<String> {
        leaf_not_after(&self.current())
    }

    /// Re-reads both files (blocking IO: call it from a blocking thread). Contents unchanged
    /// since the previous look are [`Reload::Unchanged`]; changed contents that parse, with a
    /// key that belongs to the leaf certificate, are swapped in ([`Reload::Swapped`]). Changed
    /// contents that cannot be used are an error, once per change: the next call with the same
    /// contents is `Unchanged`, and the last good pair stays in service.
    pub fn reload_if_changed(&self) -> Result<Reload, TlsFileError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let read = read_pair(&self.files, read_file);
        let fp = fingerprint(&read);
        if *seen == fp {
            return Ok(Reload::Unchanged);
        }
        *seen = fp;
        let (cert, key) = read?;
        let key = Arc::new(parse_pair(&self.files, &self.provider, &cert, &key)?);
        let not_after = leaf_not_after(&key);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(Reload::Swapped { not_after })
    }

    /// A rustls server configuration (TLS 1.2 and 1.3, no client authentication) whose
    /// certificate is always this one's current one, offering `alpn_protocols` (e.g. `h2`,
    /// `http/1.1`). Fails only if the crypto provider supports no protocol version.
    pub fn server_config(
        self: &Arc<Self>,
        alpn_protocols: &[&[u8]],
    ) -> Result<ServerConfig, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn_protocols.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reads a whole file, following symlinks (a Secret volume's files link through `..data`).
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// Reads the certificate, the key, and the certificate again: if the certificate changed in
/// between (the kubelet swapped `..data`), the key may belong to the other version, so read
/// again (at most three times; parsing then decides).
fn read_pair(
    files: &CertFiles,
    mut read: impl FnMut(&Path) -> std::io::Result<Vec<u8>>,
) -> PairRead {
    let mut read = |path: &Path| {
        read(path).map_err(|error| TlsFileError::Read {
            path: path.to_owned(),
            error,
        })
    };
    let mut cert = read(&files.cert)?;
    let mut attempt = 1;
    loop {
        let key = read(&files.key)?;
        let again = read(&files.cert)?;
        if again == cert || attempt == 3 {
            return Ok((again, key));
        }
        cert = again;
        attempt += 1;
    }
}

/// The fingerprint of a pair read: both contents (length-prefixed, so that moving bytes from
/// one file to the other changes it), or the read error.
fn fingerprint(read: &PairRead) -> Fingerprint {
    let error;
    let parts: [&[u8]; 3] = match read {
        Ok((cert, key)) => [b"pair", cert, key],
        Err(e) => {
            error = e.to_string();
            [b"error", error.as_bytes(), b""]
        }
    };
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The PEM decoder's error in words (its `Display` prints markers as byte arrays), e.g.
/// `no "-----END CERTIFICATE-----" line`; for messages about other PEM files, too.
pub fn pem_message(e: &rustls::pki_types::pem::Error) -> String {
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

/// Parses the PEM chain and key and checks that the key belongs to the leaf certificate (the
/// steps of rustls's `CertifiedKey::from_der`, each with its own error).
fn parse_pair(
    files: &CertFiles,
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsFileError> {
    use rustls::pki_types::pem::Error as PemError;
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsFileError::Pem {
            path: files.cert.clone(),
            error,
        })?;
    if chain.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        PemError::NoItemsFound => TlsFileError::NoKey {
            path: files.key.clone(),
        },
        error => TlsFileError::Pem {
            path: files.key.clone(),
            error,
        },
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsFileError::UnsupportedKey {
            path: files.key.clone(),
            error,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // As `CertifiedKey::from_der`: a key that cannot tell its public key is not a mismatch.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsFileError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(error) => Err(TlsFileError::BadCertificate {
            path: files.cert.clone(),
            error,
        }),
    }
}

/// The leaf certificate's `notAfter` (RFC 3339).
fn leaf_not_after(key: &CertifiedKey) -> Option<String> {
    let leaf = key.end_entity_cert().ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    cert.validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests;
