//! Self-signed serving certificates for clusters without cert-manager: the pure half.
//!
//! [`decide`] reads the `kubernetes.io/tls` Secret's data and says whether it can be reused for
//! the webhook Service (it parses, `tls.key` belongs to `tls.crt`, `tls.crt` is signed by a CA in
//! `ca.crt`, covers the Service's four DNS names and expires neither within the renewal window)
//! or why a new one must be issued. The path, extendedKeyUsage and DNS-name checks are
//! rustls-webpki's (the verifier rustls clients use, so "reusable" means "an API server's TLS
//! client accepts it"); certgen adds what a trust anchor's verifier leaves out (the CA's own
//! validity and `CA:TRUE`) and compares the keys as parsed SubjectPublicKeyInfos. [`issue`] makes a new CA (ECDSA P-256, `CA:TRUE`,
//! keyCertSign) and a serving certificate signed by it (serverAuth, the Service's DNS names).
//! [`tls_secret`] builds the Secret to create or replace and [`ca_bundle_patch`] the JSON patch
//! that sets `caBundle` in a webhook configuration.
//!
//! Nothing here reads the clock or does IO: `now` is a parameter; key generation uses the
//! system random source. The API calls are in [`cluster`].
//!
//! Rotation: a new `ca.crt` keeps the previous CA (when it is still valid) after the new one,
//! so an API server that already has the new `caBundle` still trusts the old serving
//! certificate until the webhook has reloaded the new one. [`cluster::run`] patches `caBundle`
//! before it writes the Secret, so the API server trusts the new CA before the webhook can
//! load a certificate signed by it.

pub mod cluster;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use jsonptr::PointerBuf;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};
use x509_parser::der_parser::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

/// Secret key holding the CA certificate(s), PEM.
pub const CA_CRT: &str = "ca.crt";
/// Secret key holding the serving certificate, PEM.
pub const TLS_CRT: &str = "tls.crt";
/// Secret key holding the serving certificate's private key, PEM (PKCS#8).
pub const TLS_KEY: &str = "tls.key";
/// Type of the Secret certgen writes.
pub const SECRET_TYPE: &str = "kubernetes.io/tls";
/// Label set on the Secret certgen writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "confkube-certgen";

/// How far back a new certificate's notBefore is set, for clocks a little behind ours.
const BACKDATE: Duration = Duration::minutes(5);

/// The webhook Service a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    namespace: String,
    service: String,
    cluster_domain: String,
}

impl ServiceName {
    /// The Service `namespace/service` in a cluster whose DNS domain is `cluster_domain`
    /// (e.g. `cluster.local`; a trailing dot is dropped).
    pub fn new(
        namespace: impl Into<String>,
        service: impl Into<String>,
        cluster_domain: impl Into<String>,
    ) -> Self {
        let cluster_domain: String = cluster_domain.into();
        Self {
            namespace: namespace.into(),
            service: service.into(),
            cluster_domain: cluster_domain.trim_end_matches('.').to_owned(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The DNS names the serving certificate must cover: `SVC`, `SVC.NS`, `SVC.NS.svc`,
    /// `SVC.NS.svc.<cluster-domain>`.
    pub fn dns_names(&self) -> Vec<String> {
        let Self {
            namespace: ns,
            service: svc,
            cluster_domain: domain,
        } = self;
        vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.{domain}"),
        ]
    }
}

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

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
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
struct Cert {
    der: Vec<u8>,
    key: PublicKey,
    not_before: i64,
    not_after: i64,
    is_ca: bool,
}

/// A SubjectPublicKeyInfo as x509-parser parses it: the algorithm, its curve (EC keys) and
/// the key bits. Two encodings of one key compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PublicKey {
    algorithm: Oid<'static>,
    curve: Option<Oid<'static>>,
    bits: Vec<u8>,
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
fn pem_certs(key: &'static str, pem: &[u8]) -> Result<Vec<Cert>, Reason> {
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
enum PathFailure {
    /// A property of `tls.crt` alone (validity, EKU, basicConstraints): no CA can help.
    Leaf(Reason),
    /// This CA did not sign `tls.crt`.
    OtherIssuer,
}

/// rustls-webpki's verdict on the path `tls.crt` → `anchor` at `at`, for TLS server use.
fn verify_path(
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

/// A new CA and serving certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The new CA certificate, then the previous CA when still valid (PEM).
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    /// The serving certificate's private key (PEM, PKCS#8).
    pub key_pem: String,
    /// notAfter of both certificates.
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// rcgen could not build a certificate.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate the certificate")]
pub struct IssueError(#[source] rcgen::Error);

/// Makes a CA and a serving certificate for `name`, valid from `now` (less five minutes) for
/// `validity`. `previous_ca` is the old `ca.crt`: its first certificate is kept after the new
/// CA when it is a CA still valid at `now`.
pub fn issue(
    name: &ServiceName,
    validity: Duration,
    now: OffsetDateTime,
    previous_ca: Option<&[u8]>,
) -> Result<Issued, IssueError> {
    let err = IssueError;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let not_before = now.saturating_sub(BACKDATE);
    let not_after = now.saturating_add(validity);

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!(
            "confkube-certgen CA for {}.{} {}",
            name.service,
            name.namespace,
            rfc3339(now)
        ),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = CertificateParams::new(name.dns_names()).map_err(err)?;
    params.distinguished_name.push(
        DnType::CommonName,
        format!("{}.{}.svc", name.service, name.namespace),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let issuer = Issuer::new(ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).map_err(err)?;

    let mut ca_pem = ca_cert.pem();
    let kept = previous_ca
        .and_then(|pem| pem_certs(CA_CRT, pem).ok())
        .and_then(|certs| certs.into_iter().next())
        .filter(|c| c.is_ca && c.not_after > now.unix_timestamp());
    if let Some(old) = kept {
        ca_pem.push_str(&pem::encode_config(
            &pem::Pem::new("CERTIFICATE", old.der),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ));
    }
    Ok(Issued {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// The Secret to write: `existing` (metadata, type and other keys kept) or a new
/// `kubernetes.io/tls` Secret `namespace/name`, with `issued` in `ca.crt`, `tls.crt`,
/// `tls.key` and the label `app.kubernetes.io/managed-by: confkube-certgen`.
pub fn tls_secret(
    namespace: &str,
    name: &str,
    issued: &Issued,
    existing: Option<Secret>,
) -> Secret {
    let mut secret = existing.unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        ..Secret::default()
    });
    secret
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    for (key, value) in [
        (CA_CRT, &issued.ca_pem),
        (TLS_CRT, &issued.cert_pem),
        (TLS_KEY, &issued.key_pem),
    ] {
        data.insert(key.to_owned(), ByteString(value.as_bytes().to_vec()));
    }
    secret.string_data = None;
    secret
}

/// The JSON patch that sets `caBundle` on a webhook configuration's entries.
#[derive(Debug, Clone, PartialEq)]
pub struct CaBundlePatch {
    /// RFC 6902 operations, `None` when every matching entry already has the bundle. Each
    /// changed entry gets `test` operations on its name and service before the `add`, so a
    /// configuration that changed since it was read is not patched at the wrong index.
    pub ops: Option<json_patch::Patch>,
    /// How many entries call the Service.
    pub matched: usize,
    /// How many of them the patch changes.
    pub changed: usize,
}

/// No entry of a webhook configuration calls the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatchingWebhook {
    /// What each entry calls: `NAME → NS/SVC`, `NAME → URL` or `NAME → nothing`.
    pub calls: Vec<String>,
}

/// Plans setting `webhooks[*].clientConfig.caBundle` to base64(`ca_pem`) for every entry of the
/// Mutating- or ValidatingWebhookConfiguration `config` (as JSON) whose `clientConfig.service`
/// is `namespace/service`. Entries calling other services or URLs are left alone.
pub fn ca_bundle_patch(
    config: &Value,
    namespace: &str,
    service: &str,
    ca_pem: &[u8],
) -> Result<CaBundlePatch, NoMatchingWebhook> {
    let entries = config
        .get("webhooks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut ops: Vec<PatchOperation> = Vec::new();
    let mut calls = Vec::new();
    let (mut matched, mut changed) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let entry_name = entry.get("name").and_then(Value::as_str);
        let client = entry.get("clientConfig");
        let svc = client.and_then(|c| c.get("service"));
        let svc_ns = svc.and_then(|s| s.get("namespace")).and_then(Value::as_str);
        let svc_name = svc.and_then(|s| s.get("name")).and_then(Value::as_str);
        if svc_ns != Some(namespace) || svc_name != Some(service) {
            let target = match (svc_ns, svc_name) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => client
                    .and_then(|c| c.get("url"))
                    .and_then(Value::as_str)
                    .unwrap_or("nothing")
                    .to_owned(),
            };
            calls.push(format!("{} → {target}", entry_name.unwrap_or("(unnamed)")));
            continue;
        }
        matched += 1;
        let current = client
            .and_then(|c| c.get("caBundle"))
            .and_then(Value::as_str)
            .and_then(|b| STANDARD.decode(b).ok());
        if current.as_deref() == Some(ca_pem) {
            continue;
        }
        changed += 1;
        let at = |tail: &[&str]| {
            let mut path = PointerBuf::from_tokens(["webhooks"]).with_trailing_token(i);
            for t in tail {
                path.push_back(*t);
            }
            path
        };
        let test = |path, value: &str| {
            PatchOperation::Test(TestOperation {
                path,
                value: Value::String(value.to_owned()),
            })
        };
        if let Some(n) = entry_name {
            ops.push(test(at(&["name"]), n));
        }
        ops.push(test(
            at(&["clientConfig", "service", "namespace"]),
            namespace,
        ));
        ops.push(test(at(&["clientConfig", "service", "name"]), service));
        ops.push(PatchOperation::Add(AddOperation {
            path: at(&["clientConfig", "caBundle"]),
            value: Value::String(STANDARD.encode(ca_pem)),
        }));
    }
    if matched == 0 {
        return Err(NoMatchingWebhook { calls });
    }
    Ok(CaBundlePatch {
        ops: (!ops.is_empty()).then_some(json_patch::Patch(ops)),
        matched,
        changed,
    })
}

/// Checks a DNS label (RFC 1123): a namespace or Service name.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a DNS label: use at most 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    }
}

/// Checks a DNS subdomain (RFC 1123): a Secret or webhook configuration name, a cluster
/// domain.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    let ok =
        !s.is_empty() && s.len() <= 253 && s.split('.').all(|label| check_dns_label(label).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a DNS subdomain: use at most 253 characters of dot-separated DNS \
             labels (lowercase letters, digits and '-')"
        ))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests;
