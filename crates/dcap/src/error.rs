//! The verifier's error vocabulary: the codes of DESIGN.md §4, plus `tdx-module-mismatch` for
//! TDX quotes.

use sgx_types::ParseError;

/// Why a quote did not verify. [`VerifyError::code`] is the stable contract; the message is for
/// people and names the item and the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The quote bytes are not a well-formed SGX quote.
    #[error("malformed quote: {0}")]
    MalformedQuote(ParseError),
    /// A quote version or TEE this verifier does not handle.
    #[error("unsupported quote version: {0}")]
    UnsupportedQuoteVersion(String),
    /// An attestation key type other than ECDSA P-256.
    #[error("unsupported attestation key type: {0}")]
    UnsupportedAttestationKeyType(String),
    /// Certification data that yields no PCK chain.
    #[error("unsupported certification data: {0}")]
    UnsupportedCertificationData(String),
    /// A chain or CRL does not lead to the trust anchor.
    #[error("untrusted root: {0}")]
    UntrustedRoot(String),
    /// The PCK certificate or its CA is revoked.
    #[error("PCK revoked: {0}")]
    PckRevoked(String),
    /// A certificate is past its notAfter.
    #[error("certificate expired: {0}")]
    CertificateExpired(String),
    /// A CRL, TCB info or QE identity is past its nextUpdate.
    #[error("collateral expired: {0}")]
    CollateralExpired(String),
    /// A CRL, TCB info, QE identity or certificate is not valid yet at the verification time.
    #[error("collateral not yet valid: {0}")]
    CollateralNotYetValid(String),
    /// The TCB info signature or its signing chain is invalid.
    #[error("TCB info signature invalid: {0}")]
    TcbInfoSignatureInvalid(String),
    /// The QE identity signature or its signing chain is invalid.
    #[error("QE identity signature invalid: {0}")]
    QeIdentitySignatureInvalid(String),
    /// The QE report is not signed by the PCK key.
    #[error("QE report signature invalid: {0}")]
    QeReportSignatureInvalid(String),
    /// The QE report data does not commit to the attestation key and QE authentication data.
    #[error("attestation key binding mismatch: {0}")]
    AttestationKeyBindingMismatch(String),
    /// The quote is not signed by its attestation key.
    #[error("quote signature invalid: {0}")]
    QuoteSignatureInvalid(String),
    /// The QE is not the one the QE identity describes.
    #[error("QE identity mismatch: {0}")]
    QeIdentityMismatch(String),
    /// The PCK certificate's FMSPC differs from the TCB info's.
    #[error("FMSPC mismatch: {0}")]
    FmspcMismatch(String),
    /// The PCK certificate's PCE-ID differs from the TCB info's.
    #[error("PCE-ID mismatch: {0}")]
    PceidMismatch(String),
    /// No TCB level of the TCB info (or QE identity) matches the platform (or QE).
    #[error("TCB level not found: {0}")]
    TcbLevelNotFound(String),
    /// The matching TCB level is Revoked.
    #[error("TCB revoked: {0}")]
    TcbRevoked(String),
    /// The collateral has no CRL and missing CRLs were not allowed.
    #[error("CRL missing: {0}")]
    CrlMissing(String),
    /// TDX: the TD report's TDX module (MRSIGNER_SEAM, SEAM attributes, module version) is not
    /// one the TCB info describes (QVL `STATUS_TDX_MODULE_MISMATCH`). Not in DESIGN.md §4's
    /// SGX list: no SGX code fits.
    #[error("TDX module mismatch: {0}")]
    TdxModuleMismatch(String),
}

impl VerifyError {
    /// Every code, in the order of DESIGN.md §4.
    pub const CODES: [&'static str; 21] = [
        "malformed-quote",
        "unsupported-quote-version",
        "unsupported-attestation-key-type",
        "unsupported-certification-data",
        "untrusted-root",
        "pck-revoked",
        "certificate-expired",
        "collateral-expired",
        "collateral-not-yet-valid",
        "tcb-info-signature-invalid",
        "qe-identity-signature-invalid",
        "qe-report-signature-invalid",
        "attestation-key-binding-mismatch",
        "quote-signature-invalid",
        "qe-identity-mismatch",
        "fmspc-mismatch",
        "pceid-mismatch",
        "tcb-level-not-found",
        "tcb-revoked",
        "crl-missing",
        "tdx-module-mismatch",
    ];

    /// The stable error code (DESIGN.md §4).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedQuote(_) => "malformed-quote",
            Self::UnsupportedQuoteVersion(_) => "unsupported-quote-version",
            Self::UnsupportedAttestationKeyType(_) => "unsupported-attestation-key-type",
            Self::UnsupportedCertificationData(_) => "unsupported-certification-data",
            Self::UntrustedRoot(_) => "untrusted-root",
            Self::PckRevoked(_) => "pck-revoked",
            Self::CertificateExpired(_) => "certificate-expired",
            Self::CollateralExpired(_) => "collateral-expired",
            Self::CollateralNotYetValid(_) => "collateral-not-yet-valid",
            Self::TcbInfoSignatureInvalid(_) => "tcb-info-signature-invalid",
            Self::QeIdentitySignatureInvalid(_) => "qe-identity-signature-invalid",
            Self::QeReportSignatureInvalid(_) => "qe-report-signature-invalid",
            Self::AttestationKeyBindingMismatch(_) => "attestation-key-binding-mismatch",
            Self::QuoteSignatureInvalid(_) => "quote-signature-invalid",
            Self::QeIdentityMismatch(_) => "qe-identity-mismatch",
            Self::FmspcMismatch(_) => "fmspc-mismatch",
            Self::PceidMismatch(_) => "pceid-mismatch",
            Self::TcbLevelNotFound(_) => "tcb-level-not-found",
            Self::TcbRevoked(_) => "tcb-revoked",
            Self::CrlMissing(_) => "crl-missing",
            Self::TdxModuleMismatch(_) => "tdx-module-mismatch",
        }
    }
}

impl From<ParseError> for VerifyError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::UnsupportedVersion(_)
            | ParseError::UnsupportedTeeType(_)
            | ParseError::UnsupportedBodyType(_) => Self::UnsupportedQuoteVersion(e.to_string()),
            ParseError::UnsupportedAttestationKeyType(_) => {
                Self::UnsupportedAttestationKeyType(e.to_string())
            }
            other => Self::MalformedQuote(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_map_to_codes() {
        let cases = [
            (
                ParseError::UnsupportedVersion(5),
                "unsupported-quote-version",
            ),
            (
                ParseError::UnsupportedTeeType(0x81),
                "unsupported-quote-version",
            ),
            (
                ParseError::UnsupportedAttestationKeyType(3),
                "unsupported-attestation-key-type",
            ),
            (
                ParseError::TrailingBytes {
                    offset: 10,
                    count: 1,
                },
                "malformed-quote",
            ),
        ];
        for (e, code) in cases {
            assert_eq!(VerifyError::from(e).code(), code);
        }
        assert_eq!(
            VerifyError::from(ParseError::UnsupportedVersion(5)).to_string(),
            "unsupported quote version: quote version 5 is not supported (SGX: 3, 4; TDX: 4, 5)"
        );
    }
}
