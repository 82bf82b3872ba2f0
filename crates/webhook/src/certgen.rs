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

mod ca_bundle;
pub mod cluster;
mod issue;
mod reuse;

pub use ca_bundle::{CaBundlePatch, NoMatchingWebhook, ca_bundle_patch};
pub use issue::{IssueError, Issued, issue, tls_secret};
pub use reuse::{Decision, Reason, decide};
#[cfg(test)]
use reuse::{pem_certs, verify_path};

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

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
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
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
