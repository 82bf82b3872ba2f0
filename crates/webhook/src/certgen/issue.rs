//! Issuing: a new CA and serving certificate ([`issue`]) and the Secret that holds them
//! ([`tls_secret`]).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use super::reuse::pem_certs;
use super::{
    BACKDATE, CA_CRT, MANAGED_BY, MANAGED_BY_LABEL, SECRET_TYPE, ServiceName, TLS_CRT, TLS_KEY,
    rfc3339,
};

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
