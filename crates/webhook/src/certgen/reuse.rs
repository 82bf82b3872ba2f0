//! The reuse decision: whether the Secret's pair can keep serving the Service ([`decide`]).
//!
//! The path, extendedKeyUsage and DNS-name rules are rustls-webpki's; what a verifier leaves
//! out for a trust anchor (its validity, `CA:TRUE`) and the key match are checked here.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use time::{Duration, OffsetDateTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};
use x509_parser::der_parser::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{CA_CRT, ServiceName, TLS_CRT, TLS_KEY, rfc3339};

/// Why the Secret's certificate cannot be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// There is no Secret.
    NoSecret,
    /// A key of the Secret's data is missing.
    MissingKey {
        /// `ca.crt`, `tls.crt` or `tls.key`.
        key: &'static str,
    },
    /// `ca.crt` or `tls.crt` does not hold a readable certificate.
    BadCertificate {
        /// `ca.crt` or `tls.crt`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `tls.key` does not hold a usable private key.
    BadKey {
        /// What is wrong.
        message: String,
    },
    /// `tls.key` is not the key of `tls.crt`.
    KeyMismatch,
    /// No certificate in `ca.crt` is a CA (basicConstraints `CA:TRUE`).
    NotCa,
    /// `tls.crt` is not signed by a CA in `ca.crt`.
    NotSignedByCa,
    /// `tls.crt` does not cover these DNS names of the Service.
    MissingDnsNames {
        /// The names, in [`ServiceName::dns_names`] order.
        names: Vec<String>,
    },
    /// `tls.crt`'s extendedKeyUsage does not allow TLS servers.
    NotServerAuth,
    /// `tls.crt` is a CA certificate (basicConstraints `CA:TRUE`), not a serving certificate.
    LeafIsCa,
    /// rustls-webpki refuses a certificate for a rule of RFC 5280 certgen does not check
    /// itself (e.g. an unknown critical extension).
    Rejected {
        /// `ca.crt` or `tls.crt`.
        key: &'static str,
        /// What rustls-webpki reported.
        error: webpki::Error,
    },
    /// A certificate's notBefore is after `now`.
    NotYetValid {
        /// `ca.crt` or `tls.crt`.
        key: &'static str,
        /// Its notBefore.
        not_before: OffsetDateTime,
    },
    /// A certificate has expired.
    Expired {
        /// `ca.crt` or `tls.crt`.
        key: &'static str,
        /// Its notAfter.
        not_after: OffsetDateTime,
    },
    /// A certificate expires within the renewal window.
    Expiring {
        /// `ca.crt` or `tls.crt`.
        key: &'static str,
        /// Its notAfter.
        not_after: OffsetDateTime,
        /// The renewal window, in whole days.
        renew_before_days: i64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSecret => f.write_str("the secret does not exist"),
            Self::MissingKey { key } => write!(f, "the secret has no {key}"),
            Self::BadCertificate { key, message } => {
                write!(f, "{key} is not a usable certificate: {message}")
            }
            Self::BadKey { message } => write!(f, "tls.key is not a usable private key: {message}"),
            Self::KeyMismatch => f.write_str("tls.key is not the private key of tls.crt"),
            Self::NotCa => f.write_str("ca.crt holds no CA certificate (basicConstraints CA:TRUE)"),
            Self::NotSignedByCa => f.write_str("tls.crt is not signed by a CA in ca.crt"),
            Self::MissingDnsNames { names } => {
                write!(
                    f,
                    "tls.crt does not cover the DNS names {}",
                    names.join(", ")
                )
            }
            Self::NotServerAuth => f.write_str("tls.crt's extendedKeyUsage lacks serverAuth"),
            Self::LeafIsCa => f.write_str(
                "tls.crt is a CA certificate (basicConstraints CA:TRUE), not a serving certificate",
            ),
            Self::Rejected { key, error } => {
                write!(
                    f,
                    "{key} breaks a certificate rule of rustls-webpki: {error:?}"
                )
            }
            Self::NotYetValid { key, not_before } => {
                write!(f, "{key} is not valid before {}", rfc3339(*not_before))
            }
            Self::Expired { key, not_after } => {
                write!(f, "{key} expired at {}", rfc3339(*not_after))
            }
            Self::Expiring {
                key,
                not_after,
                renew_before_days,
            } => write!(
                f,
                "{key} expires at {}, within the renewal window of {renew_before_days} days",
                rfc3339(*not_after)
            ),
        }
    }
}

/// What to do with the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Keep it: it is valid for the Service until `expires` (the earlier notAfter of
    /// `tls.crt` and its CA).
    Reuse {
        /// When the pair stops being valid.
        expires: OffsetDateTime,
    },
    /// Issue a new CA and serving certificate.
    Issue(Reason),
}

/// The facts of one certificate that certgen reads itself, owned: the DER (for rustls-webpki
/// and for re-encoding a kept CA), the validity (for [`Reason`]'s times and the CA, which
/// webpki does not check as a trust anchor), basicConstraints `CA` and the public key.
#[derive(Debug, Clone)]
pub(super) struct Cert {
    pub(super) der: Vec<u8>,
    pub(super) key: PublicKey,
    pub(super) not_before: i64,
    pub(super) not_after: i64,
    pub(super) is_ca: bool,
}

/// A SubjectPublicKeyInfo as x509-parser parses it: the algorithm, its curve (EC keys) and
/// the key bits. Two encodings of one key compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PublicKey {
    pub(super) algorithm: Oid<'static>,
    pub(super) curve: Option<Oid<'static>>,
    pub(super) bits: Vec<u8>,
}

impl PublicKey {
    fn of(spki: &SubjectPublicKeyInfo<'_>) -> Self {
        Self {
            algorithm: spki.algorithm.algorithm.to_owned(),
            curve: spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_owned()),
            bits: spki.subject_public_key.data.to_vec(),
        }
    }
}

impl Cert {
    fn from_der(der: Vec<u8>) -> Result<Self, String> {
        let (rest, c) = X509Certificate::from_der(&der)
            .map_err(|_| "a CERTIFICATE block is not a DER X.509 certificate".to_owned())?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".to_owned());
        }
        let is_ca = c
            .basic_constraints()
            .map_err(|e| format!("basicConstraints: {e}"))?
            .is_some_and(|bc| bc.value.ca);
        let out = Self {
            key: PublicKey::of(c.public_key()),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
            is_ca,
            der: Vec::new(),
        };
        Ok(Self { der, ..out })
    }
}

/// Every CERTIFICATE block of a PEM text, parsed; at least one.
pub(super) fn pem_certs(key: &'static str, pem: &[u8]) -> Result<Vec<Cert>, Reason> {
    let bad = |message: String| Reason::BadCertificate { key, message };
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|der| {
            let der = der.map_err(|e| bad(tls_reload::pem_message(&e)))?;
            Cert::from_der(der.to_vec()).map_err(bad)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

fn time(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn webpki_time(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(t.unix_timestamp()).unwrap_or(0),
    ))
}

fn offset_time(t: UnixTime) -> OffsetDateTime {
    time(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

/// Checks the CA certificate `cert` is valid at `now` and for `renew_before` more (rustls-webpki
/// takes a trust anchor as given, without its validity).
fn check_ca_validity(
    cert: &Cert,
    renew_before: Duration,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    let key = CA_CRT;
    let now = now.unix_timestamp();
    if now < cert.not_before {
        return Err(Reason::NotYetValid {
            key,
            not_before: time(cert.not_before),
        });
    }
    if cert.not_after <= now {
        return Err(Reason::Expired {
            key,
            not_after: time(cert.not_after),
        });
    }
    if cert.not_after.saturating_sub(now) < renew_before.whole_seconds() {
        return Err(Reason::Expiring {
            key,
            not_after: time(cert.not_after),
            renew_before_days: renew_before.whole_days(),
        });
    }
    Ok(())
}

/// What a failed path check says about `tls.crt` and the one CA tried.
pub(super) enum PathFailure {
    /// A property of `tls.crt` alone (validity, EKU, basicConstraints): no CA can help.
    Leaf(Reason),
    /// This CA did not sign `tls.crt`.
    OtherIssuer,
}

/// rustls-webpki's verdict on the path `tls.crt` → `anchor` at `at`, for TLS server use.
pub(super) fn verify_path(
    leaf: &EndEntityCert<'_>,
    anchor: &TrustAnchor<'_>,
    at: OffsetDateTime,
) -> Result<(), PathFailure> {
    let algorithms = rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all;
    let error = match leaf.verify_for_usage(
        algorithms,
        std::slice::from_ref(anchor),
        &[],
        webpki_time(at),
        KeyUsage::server_auth(),
        None,
        None,
    ) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    use webpki::Error as E;
    Err(match error {
        E::UnknownIssuer
        | E::InvalidSignatureForPublicKey
        | E::SignatureAlgorithmMismatch
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::NameConstraintViolation
        | E::PathLenConstraintViolated => PathFailure::OtherIssuer,
        E::CertExpired { not_after, .. } => PathFailure::Leaf(Reason::Expired {
            key: TLS_CRT,
            not_after: offset_time(not_after),
        }),
        E::CertNotValidYet { not_before, .. } => PathFailure::Leaf(Reason::NotYetValid {
            key: TLS_CRT,
            not_before: offset_time(not_before),
        }),
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            PathFailure::Leaf(Reason::NotServerAuth)
        }
        E::CaUsedAsEndEntity => PathFailure::Leaf(Reason::LeafIsCa),
        error => PathFailure::Leaf(Reason::Rejected {
            key: TLS_CRT,
            error,
        }),
    })
}

fn check(
    data: Option<&BTreeMap<String, ByteString>>,
    name: &ServiceName,
    renew_before: Duration,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, Reason> {
    let data = data.ok_or(Reason::NoSecret)?;
    let get = |key: &'static str| {
        data.get(key)
            .map(|v| v.0.as_slice())
            .ok_or(Reason::MissingKey { key })
    };
    let (ca_pem, cert_pem, key_pem) = (get(CA_CRT)?, get(TLS_CRT)?, get(TLS_KEY)?);
    let cas = pem_certs(CA_CRT, ca_pem)?;
    let leaf = pem_certs(TLS_CRT, cert_pem)?
        .into_iter()
        .next()
        .ok_or(Reason::MissingKey { key: TLS_CRT })?;
    check_key(&leaf, key_pem)?;
    if !cas.iter().any(|c| c.is_ca) {
        return Err(Reason::NotCa);
    }
    let leaf_der = CertificateDer::from(leaf.der.as_slice());
    let end_entity = EndEntityCert::try_from(&leaf_der).map_err(|error| Reason::Rejected {
        key: TLS_CRT,
        error,
    })?;
    // The first CA (basicConstraints CA:TRUE) in ca.crt that signed tls.crt.
    let mut found = None;
    for ca in cas.iter().filter(|c| c.is_ca) {
        let ca_der = CertificateDer::from(ca.der.as_slice());
        let anchor = anchor_from_trusted_cert(&ca_der)
            .map_err(|error| Reason::Rejected { key: CA_CRT, error })?;
        match verify_path(&end_entity, &anchor, now) {
            Ok(()) => {
                found = Some((ca, anchor.to_owned()));
                break;
            }
            Err(PathFailure::Leaf(reason)) => return Err(reason),
            Err(PathFailure::OtherIssuer) => {}
        }
    }
    let (ca, anchor) = found.ok_or(Reason::NotSignedByCa)?;
    let missing: Vec<String> = name
        .dns_names()
        .into_iter()
        .filter(|n| {
            ServerName::try_from(n.as_str()).map_or(true, |dns| {
                end_entity.verify_is_valid_for_subject_name(&dns).is_err()
            })
        })
        .collect();
    if !missing.is_empty() {
        return Err(Reason::MissingDnsNames { names: missing });
    }
    // The renewal window: the same path must still verify `renew_before` from now.
    match verify_path(&end_entity, &anchor, now.saturating_add(renew_before)) {
        Ok(()) => {}
        Err(PathFailure::Leaf(Reason::Expired { key, not_after })) => {
            return Err(Reason::Expiring {
                key,
                not_after,
                renew_before_days: renew_before.whole_days(),
            });
        }
        Err(PathFailure::Leaf(reason)) => return Err(reason),
        Err(PathFailure::OtherIssuer) => return Err(Reason::NotSignedByCa),
    }
    check_ca_validity(ca, renew_before, now)?;
    Ok(time(leaf.not_after.min(ca.not_after)))
}

/// Whether `key_pem` is a private key the webhook can serve with, and the key of `leaf`: the
/// public key the crypto provider derives from it, parsed, against the certificate's.
fn check_key(leaf: &Cert, key_pem: &[u8]) -> Result<(), Reason> {
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Reason::BadKey {
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned()
            }
            other => tls_reload::pem_message(&other),
        },
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Reason::BadKey {
            message: e.to_string(),
        })?;
    let derived = signing_key.public_key().ok_or_else(|| Reason::BadKey {
        message: "its public key cannot be derived".to_owned(),
    })?;
    let derived = match SubjectPublicKeyInfo::from_der(derived.as_ref()) {
        Ok((_, spki)) => PublicKey::of(&spki),
        Err(_) => {
            return Err(Reason::BadKey {
                message: "its public key cannot be derived".to_owned(),
            });
        }
    };
    if derived == leaf.key {
        Ok(())
    } else {
        Err(Reason::KeyMismatch)
    }
}

/// Whether the Secret `data` (`None`: no Secret) can keep serving `name` for at least
/// `renew_before` after `now`.
pub fn decide(
    data: Option<&BTreeMap<String, ByteString>>,
    name: &ServiceName,
    renew_before: Duration,
    now: OffsetDateTime,
) -> Decision {
    match check(data, name, renew_before, now) {
        Ok(expires) => Decision::Reuse { expires },
        Err(reason) => Decision::Issue(reason),
    }
}
