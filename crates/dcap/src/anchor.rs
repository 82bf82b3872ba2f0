//! The trust anchor: a root public key, not certificate bytes (spec §2.1: two Intel root
//! certificates share one key, and quotes from 2020–2021 embed the older one).

use crate::x509::{Cert, X509Error, parse_pem_chain};

/// The Intel SGX Root CA public key (SEC1, uncompressed P-256), as published by Intel
/// (`INTEL_ROOT_PUB_KEY` in the QvE; spec §2.1).
pub const INTEL_SGX_ROOT_CA_PUBLIC_KEY: [u8; 65] = [
    0x04, 0x0b, 0xa9, 0xc4, 0xc0, 0xc0, 0xc8, 0x61, 0x93, 0xa3, 0xfe, 0x23, 0xd6, 0xb0, 0x2c, 0xda,
    0x10, 0xa8, 0xbb, 0xd4, 0xe8, 0x8e, 0x48, 0xb4, 0x45, 0x85, 0x61, 0xa3, 0x6e, 0x70, 0x55, 0x25,
    0xf5, 0x67, 0x91, 0x8e, 0x2e, 0xdc, 0x88, 0xe4, 0x0d, 0x86, 0x0b, 0xd0, 0xcc, 0x4e, 0xe2, 0x6a,
    0xac, 0xc9, 0x88, 0xe5, 0x05, 0xa9, 0x53, 0x55, 0x8c, 0x45, 0x3f, 0x6b, 0x09, 0x04, 0xae, 0x73,
    0x94,
];

/// Why a trust anchor could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// Neither a DER nor a PEM certificate.
    #[error("not a DER or PEM X.509 certificate")]
    NotACertificate(#[source] X509Error),
    /// PEM text without a CERTIFICATE block.
    #[error("not a DER or PEM X.509 certificate: no CERTIFICATE block")]
    NoCertificateBlock,
    /// A key that is not an uncompressed P-256 point.
    #[error("the root key is not an uncompressed P-256 public key ({0} bytes)")]
    NotP256(usize),
}

/// The root key that every chain and CRL must lead to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrustAnchor {
    key: Vec<u8>,
    label: String,
}

impl TrustAnchor {
    /// The embedded Intel SGX Root CA key.
    pub fn intel_sgx_root() -> Self {
        Self {
            key: INTEL_SGX_ROOT_CA_PUBLIC_KEY.to_vec(),
            label: "Intel SGX Root CA".into(),
        }
    }

    /// A root given by its uncompressed P-256 public key.
    pub fn from_public_key(sec1: &[u8], label: &str) -> Result<Self, AnchorError> {
        if sec1.len() != 65 || sec1.first() != Some(&4) {
            return Err(AnchorError::NotP256(sec1.len()));
        }
        Ok(Self {
            key: sec1.to_vec(),
            label: label.into(),
        })
    }

    /// A root given as a certificate, DER or PEM (detected); only its public key is kept.
    pub fn from_certificate(bytes: &[u8]) -> Result<Self, AnchorError> {
        let cert = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            parse_pem_chain(bytes)
                .map_err(AnchorError::NotACertificate)?
                .into_iter()
                .next()
                .ok_or(AnchorError::NoCertificateBlock)?
        } else {
            Cert::from_der(bytes.to_vec()).map_err(AnchorError::NotACertificate)?
        };
        let label = if cert.subject_cn.is_empty() {
            "root".to_string()
        } else {
            cert.subject_cn.clone()
        };
        Self::from_public_key(&cert.public_key, &label)
    }

    /// The SEC1 public key.
    pub fn public_key(&self) -> &[u8] {
        &self.key
    }

    /// Whether this is Intel's production root.
    pub fn is_intel(&self) -> bool {
        self.key == INTEL_SGX_ROOT_CA_PUBLIC_KEY
    }

    /// The root's common name, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_anchors() {
        assert_eq!(
            TrustAnchor::from_public_key(&[4; 64], "x"),
            Err(AnchorError::NotP256(64))
        );
        assert!(matches!(
            TrustAnchor::from_certificate(b"garbage"),
            Err(AnchorError::NotACertificate(_))
        ));
        assert_eq!(
            TrustAnchor::from_certificate(
                b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"
            ),
            Err(AnchorError::NoCertificateBlock)
        );
        assert!(TrustAnchor::intel_sgx_root().is_intel());
    }
}
