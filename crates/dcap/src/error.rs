//! The verifier's error vocabulary: the codes of DESIGN.md §4, plus `tdx-module-mismatch` for
//! TDX quotes.

use sgx_types::ParseError;

/// Why a quote did not verify. [`VerifyError::code`] is the stable contract; the message is for
/// people and names the item and the check that failed. Each variant carries a typed detail
/// (which chain, certificate, item, expected and found values); the message is
/// `"<what failed>: <detail>"`, and the detail's own cause (a certificate that does not parse,
/// say) is exposed through [`std::error::Error::source`], never repeated in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The quote bytes are not a well-formed SGX quote.
    MalformedQuote(ParseError),
    /// A quote version or TEE this verifier does not handle.
    UnsupportedQuoteVersion(UnsupportedQuote),
    /// An attestation key type other than ECDSA P-256.
    UnsupportedAttestationKeyType(ParseError),
    /// Certification data that yields no PCK chain.
    UnsupportedCertificationData(CertificationDataError),
    /// A chain or CRL does not lead to the trust anchor, or a certificate's name breaks Intel
    /// QVL's rule.
    UntrustedRoot(ChainError),
    /// The PCK certificate or its CA is revoked.
    PckRevoked(Revoked),
    /// A certificate is past its notAfter.
    CertificateExpired(CertificateWindow),
    /// A CRL, TCB info or QE identity is past its nextUpdate.
    CollateralExpired(ItemWindow),
    /// A CRL, TCB info, QE identity or certificate is not valid yet at the verification time.
    CollateralNotYetValid(NotYetValid),
    /// The TCB info signature or its signing chain is invalid.
    TcbInfoSignatureInvalid(SignedItemError),
    /// The QE identity signature or its signing chain is invalid.
    QeIdentitySignatureInvalid(SignedItemError),
    /// The QE report is not signed by the PCK key.
    QeReportSignatureInvalid(QeReportSignature),
    /// The QE report data does not commit to the attestation key and QE authentication data.
    AttestationKeyBindingMismatch(KeyBinding),
    /// The quote is not signed by its attestation key.
    QuoteSignatureInvalid(QuoteSignature),
    /// The QE is not the one the QE identity describes.
    QeIdentityMismatch(QeMismatch),
    /// The PCK certificate's FMSPC differs from the TCB info's.
    FmspcMismatch(FmspcDiffers),
    /// The PCK certificate's PCE-ID differs from the TCB info's (or the quote's certification
    /// data).
    PceidMismatch(PceIdMismatch),
    /// No TCB level of the TCB info (or QE identity) matches the platform (or QE).
    TcbLevelNotFound(LevelNotFound),
    /// The matching TCB level is Revoked.
    TcbRevoked(RevokedLevel),
    /// The collateral has no CRL and missing CRLs were not allowed.
    CrlMissing(CrlError),
    /// TDX: the TD report's TDX module (MRSIGNER_SEAM, SEAM attributes, module version) is not
    /// one the TCB info describes (QVL `STATUS_TDX_MODULE_MISMATCH`). Not in DESIGN.md §4's
    /// SGX list: no SGX code fits.
    TdxModuleMismatch(TdxModuleError),
}

impl VerifyError {
    /// The typed detail, as an error whose `source()` is this error's source.
    fn detail(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Self::MalformedQuote(d) | Self::UnsupportedAttestationKeyType(d) => d,
            Self::UnsupportedQuoteVersion(d) => d,
            Self::UnsupportedCertificationData(d) => d,
            Self::UntrustedRoot(d) => d,
            Self::PckRevoked(d) => d,
            Self::CertificateExpired(d) => d,
            Self::CollateralExpired(d) => d,
            Self::CollateralNotYetValid(d) => d,
            Self::TcbInfoSignatureInvalid(d) | Self::QeIdentitySignatureInvalid(d) => d,
            Self::QeReportSignatureInvalid(d) => d,
            Self::AttestationKeyBindingMismatch(d) => d,
            Self::QuoteSignatureInvalid(d) => d,
            Self::QeIdentityMismatch(d) => d,
            Self::FmspcMismatch(d) => d,
            Self::PceidMismatch(d) => d,
            Self::TcbLevelNotFound(d) => d,
            Self::TcbRevoked(d) => d,
            Self::CrlMissing(d) => d,
            Self::TdxModuleMismatch(d) => d,
        }
    }

    fn prefix(&self) -> &'static str {
        match self {
            Self::MalformedQuote(_) => "malformed quote",
            Self::UnsupportedQuoteVersion(_) => "unsupported quote version",
            Self::UnsupportedAttestationKeyType(_) => "unsupported attestation key type",
            Self::UnsupportedCertificationData(_) => "unsupported certification data",
            Self::UntrustedRoot(_) => "untrusted root",
            Self::PckRevoked(_) => "PCK revoked",
            Self::CertificateExpired(_) => "certificate expired",
            Self::CollateralExpired(_) => "collateral expired",
            Self::CollateralNotYetValid(_) => "collateral not yet valid",
            Self::TcbInfoSignatureInvalid(_) => "TCB info signature invalid",
            Self::QeIdentitySignatureInvalid(_) => "QE identity signature invalid",
            Self::QeReportSignatureInvalid(_) => "QE report signature invalid",
            Self::AttestationKeyBindingMismatch(_) => "attestation key binding mismatch",
            Self::QuoteSignatureInvalid(_) => "quote signature invalid",
            Self::QeIdentityMismatch(_) => "QE identity mismatch",
            Self::FmspcMismatch(_) => "FMSPC mismatch",
            Self::PceidMismatch(_) => "PCE-ID mismatch",
            Self::TcbLevelNotFound(_) => "TCB level not found",
            Self::TcbRevoked(_) => "TCB revoked",
            Self::CrlMissing(_) => "CRL missing",
            Self::TdxModuleMismatch(_) => "TDX module mismatch",
        }
    }

    /// The message followed by every source's message (`a: b: c`), as the CLI and the HTTP
    /// problem documents show it.
    pub fn full_message(&self) -> String {
        let mut out = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.prefix(), self.detail())
    }
}

impl std::error::Error for VerifyError {
    /// The detail's cause: the detail itself is part of the message.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.detail().source()
    }
}

fn time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// A certificate chain of the quote or the collateral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Chain {
    /// The PCK chain (leaf, PCK CA, root), from the quote or `pck_certificate_chain`.
    PckCertificate,
    /// `pck_crl_issuer_chain`.
    PckCrlIssuer,
    /// `tcb_info_issuer_chain`.
    TcbInfoIssuer,
    /// `qe_identity_issuer_chain`.
    QeIdentityIssuer,
}

impl std::fmt::Display for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PckCertificate => "PCK certificate chain",
            Self::PckCrlIssuer => "PCK CRL issuer chain",
            Self::TcbInfoIssuer => "TCB info issuer chain",
            Self::QeIdentityIssuer => "QE identity issuer chain",
        })
    }
}

/// The role of a certificate in a chain (Intel QVL's name rule has one phrase per role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertRole {
    /// The root (`SGX Root CA`).
    Root,
    /// The PCK CA of the PCK chain (`CA`).
    PckCa,
    /// The PCK CA as the PCK CRL issuer (`CA`).
    PckCrlIssuer,
    /// The PCK leaf (`SGX PCK Certificate`).
    Pck,
    /// The TCB Signing certificate (`SGX TCB Signing`).
    TcbSigning,
}

impl std::fmt::Display for CertRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Root => "root",
            Self::PckCa => "PCK CA",
            Self::PckCrlIssuer => "PCK CRL issuer",
            Self::Pck => "PCK",
            Self::TcbSigning => "TCB Signing",
        })
    }
}

/// A collateral item with a validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CollateralItem {
    /// The root CA CRL.
    RootCaCrl,
    /// The PCK CRL.
    PckCrl,
    /// The TCB info.
    TcbInfo,
    /// The QE identity.
    QeIdentity,
}

impl std::fmt::Display for CollateralItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RootCaCrl => "the root CA CRL",
            Self::PckCrl => "the PCK CRL",
            Self::TcbInfo => "the TCB info",
            Self::QeIdentity => "the QE identity",
        })
    }
}

/// A signed JSON collateral item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignedItem {
    /// `tcbInfo`.
    TcbInfo,
    /// `enclaveIdentity` (QE identity).
    QeIdentity,
}

impl std::fmt::Display for SignedItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TcbInfo => "TCB info",
            Self::QeIdentity => "QE identity",
        })
    }
}

/// Detail of [`VerifyError::UnsupportedQuoteVersion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsupportedQuote {
    /// The quote's version, TEE type or body type (shown: it is the whole reason).
    #[error("{0}")]
    Parse(ParseError),
    /// A quote of a TEE this verifier does not know.
    #[error("a quote of an unknown TEE")]
    UnknownTee,
}

/// Detail of [`VerifyError::UnsupportedCertificationData`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificationDataError {
    /// Types 1–4 carry no PCK chain and the collateral has none either.
    #[error(
        "certification data type {kind} carries no PCK chain, and the collateral has no \
         pck_certificate_chain (fetch the PCK certificate from PCS/PCCS)"
    )]
    NoPckChain {
        /// The certification data type.
        kind: u16,
    },
    /// A type this verifier does not handle.
    #[error(
        "certification data type {kind} is not supported (supported: 5, or 1-4 with an \
         out-of-band PCK chain)"
    )]
    Unsupported {
        /// The certification data type.
        kind: u16,
    },
    /// The service's platform lookup needs type 5.
    #[error("certification data type {kind} carries no PCK chain; the service needs type 5")]
    NotType5 {
        /// The certification data type.
        kind: u16,
    },
    /// The platform information of types 1–3 does not parse.
    #[error("certification data type {kind}")]
    PlatformInfo {
        /// The certification data type.
        kind: u16,
        /// Why.
        #[source]
        source: ParseError,
    },
    /// The PCK chain does not parse.
    #[error("the {chain} cannot be read")]
    Unreadable {
        /// Which chain.
        chain: Chain,
        /// Why.
        #[source]
        source: crate::x509::X509Error,
    },
    /// The out-of-band PCK certificate is another platform's.
    #[error("the out-of-band PCK certificate belongs to another platform (PPID differs)")]
    OtherPlatform,
}

/// Detail of [`VerifyError::UntrustedRoot`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain's root does not carry the anchor's key.
    #[error(
        "the root of the {chain} ({root}) does not have the key of the trust anchor ({anchor})"
    )]
    NotTheAnchor {
        /// Which chain.
        chain: Chain,
        /// The root's common name.
        root: String,
        /// The anchor's label.
        anchor: String,
    },
    /// The chain's root does not name itself as issuer.
    #[error("the root of the {chain} ({root}) is not self-issued")]
    NotSelfIssued {
        /// Which chain.
        chain: Chain,
        /// The root's common name.
        root: String,
    },
    /// A common name without its role's phrase (Intel QVL `commonNameContains`).
    #[error(
        "in the {chain}, the {role} certificate's common name {common_name:?} does not contain \
         {phrase:?} (Intel QVL's name rule)"
    )]
    Name {
        /// Which chain.
        chain: Chain,
        /// The certificate's role.
        role: CertRole,
        /// Its subject common name.
        common_name: String,
        /// The phrase it must contain.
        phrase: &'static str,
    },
    /// A certificate is not issued and signed by the next one.
    #[error("in the {chain}, {subject} is not signed by {issuer}")]
    NotSignedBy {
        /// Which chain.
        chain: Chain,
        /// The certificate's common name.
        subject: String,
        /// The expected issuer's common name.
        issuer: String,
    },
    /// An issuer chain does not parse.
    #[error("the {chain} cannot be read")]
    Unreadable {
        /// Which chain.
        chain: Chain,
        /// Why.
        #[source]
        source: crate::x509::X509Error,
    },
    /// A chain with the wrong number of certificates.
    #[error("the {chain} has {found} certificates; expected {expected}")]
    Length {
        /// Which chain.
        chain: Chain,
        /// How many it has.
        found: usize,
        /// What it must hold, e.g. `3 (PCK, CA, root)`.
        expected: &'static str,
    },
    /// An issuer chain without certificates.
    #[error("the {chain} is empty")]
    Empty {
        /// Which chain.
        chain: Chain,
    },
    /// The root CA CRL is not issued and signed by the anchor.
    #[error("the root CA CRL is not signed by the trust anchor ({anchor})")]
    RootCrlNotSigned {
        /// The anchor's label.
        anchor: String,
    },
    /// The PCK CRL is not issued and signed by the CA of its issuer chain.
    #[error("the PCK CRL is not signed by the CA of its issuer chain ({ca})")]
    PckCrlNotSigned {
        /// The CA's common name.
        ca: String,
    },
    /// The PCK leaf's SGX extension is missing or does not parse.
    #[error("the PCK certificate is unusable")]
    PckUnusable {
        /// Why.
        #[source]
        source: crate::x509::X509Error,
    },
}

/// Detail of [`VerifyError::PckRevoked`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Revoked {
    /// The PCK CA is listed in the root CA CRL.
    #[error("{ca} is revoked by the root CA CRL")]
    PckCa {
        /// The CA's common name.
        ca: String,
    },
    /// The PCK leaf is listed in the PCK CRL.
    #[error(
        "the PCK certificate (serial {}) is revoked by the PCK CRL",
        hex::encode(serial)
    )]
    Pck {
        /// The leaf's serial number (DER integer bytes).
        serial: Vec<u8>,
    },
}

/// Detail of [`VerifyError::CertificateExpired`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{chain} ({subject}) expired at {}, before the verification time {}",
    time(*not_after),
    time(*now)
)]
#[non_exhaustive]
pub struct CertificateWindow {
    /// The chain holding the certificate.
    pub chain: Chain,
    /// The certificate's common name.
    pub subject: String,
    /// Its notAfter (Unix seconds).
    pub not_after: i64,
    /// The verification time (Unix seconds).
    pub now: i64,
}

/// Detail of [`VerifyError::CollateralExpired`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{item} expired at {} (next update), before the verification time {}",
    time(*next_update),
    time(*now)
)]
#[non_exhaustive]
pub struct ItemWindow {
    /// The item.
    pub item: CollateralItem,
    /// Its nextUpdate (Unix seconds).
    pub next_update: i64,
    /// The verification time (Unix seconds).
    pub now: i64,
}

/// Detail of [`VerifyError::CollateralNotYetValid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotYetValid {
    /// A CRL (thisUpdate), TCB info or QE identity (issueDate) from the future.
    #[error(
        "{item} is valid from {}, after the verification time {}",
        time(*valid_from),
        time(*now)
    )]
    Item {
        /// The item.
        item: CollateralItem,
        /// Its thisUpdate / issueDate (Unix seconds).
        valid_from: i64,
        /// The verification time.
        now: i64,
    },
    /// A certificate before its notBefore.
    #[error(
        "{chain} ({subject}) is valid from {}, after the verification time {}",
        time(*not_before),
        time(*now)
    )]
    Certificate {
        /// The chain holding the certificate.
        chain: Chain,
        /// The certificate's common name.
        subject: String,
        /// Its notBefore.
        not_before: i64,
        /// The verification time.
        now: i64,
    },
}

/// Detail of [`VerifyError::TcbInfoSignatureInvalid`] and
/// [`VerifyError::QeIdentitySignatureInvalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedItemError {
    /// The signer is listed in the root CA CRL.
    #[error("the {item} signing certificate ({signer}) is revoked by the root CA CRL")]
    SignerRevoked {
        /// The signed item.
        item: SignedItem,
        /// The signer's common name.
        signer: String,
    },
    /// The signature does not verify over the exact text.
    #[error("the {item} signature does not verify with the key of {signer}")]
    Signature {
        /// The signed item.
        item: SignedItem,
        /// The signer's common name.
        signer: String,
    },
}

/// Detail of [`VerifyError::QeReportSignatureInvalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the QE report signature does not verify with the PCK certificate's key")]
#[non_exhaustive]
pub struct QeReportSignature;

/// Detail of [`VerifyError::AttestationKeyBindingMismatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the QE report data is not SHA-256(attestation key || QE authentication data) followed by \
     32 zero bytes"
)]
#[non_exhaustive]
pub struct KeyBinding {
    /// The QE report data found.
    pub found: Vec<u8>,
    /// The report data expected.
    pub expected: Vec<u8>,
}

/// Detail of [`VerifyError::QuoteSignatureInvalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the quote signature does not verify with the attestation key")]
#[non_exhaustive]
pub struct QuoteSignature;

/// Detail of [`VerifyError::QeIdentityMismatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QeMismatch {
    /// The quote header's QE vendor ID is not Intel's.
    #[error("QE vendor ID {} is not Intel's", hex::encode(found))]
    VendorId {
        /// The vendor ID found.
        found: [u8; 16],
    },
    /// The QE's MRSIGNER.
    #[error(
        "the QE's MRSIGNER {} is not {}",
        hex::encode(found),
        hex::encode(expected)
    )]
    MrSigner {
        /// Found.
        found: [u8; 32],
        /// Expected (QE identity).
        expected: [u8; 32],
    },
    /// The QE's ISVPRODID.
    #[error("the QE's ISVPRODID {found} is not {expected}")]
    IsvProdId {
        /// Found.
        found: u16,
        /// Expected (QE identity).
        expected: u16,
    },
    /// MISCSELECT or ATTRIBUTES under the QE identity's mask.
    #[error(
        "the QE's {field} {} does not match {} under mask {}",
        hex::encode(found),
        hex::encode(expected),
        hex::encode(mask)
    )]
    Masked {
        /// `MISCSELECT` or `ATTRIBUTES`.
        field: &'static str,
        /// The value found (report byte order).
        found: Vec<u8>,
        /// The expected value.
        expected: Vec<u8>,
        /// The mask.
        mask: Vec<u8>,
    },
    /// The QE identity is not the one for this TEE (`QE` for SGX, `TD_QE` for TDX).
    #[error("the QE identity is {found:?}; {needs}")]
    Id {
        /// The QE identity's id.
        found: String,
        /// What the quote needs.
        needs: &'static str,
    },
    /// The signed QE identity does not parse.
    #[error("the signed QE identity cannot be used")]
    Unusable {
        /// Why.
        #[source]
        source: crate::tcb::TcbJsonError,
    },
}

/// Detail of [`VerifyError::FmspcMismatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the PCK certificate has FMSPC {}, the TCB info is for {}",
    hex::encode(pck),
    hex::encode(tcb_info)
)]
#[non_exhaustive]
pub struct FmspcDiffers {
    /// In the PCK certificate.
    pub pck: [u8; 6],
    /// In the TCB info.
    pub tcb_info: [u8; 6],
}

/// Detail of [`VerifyError::PceidMismatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PceIdMismatch {
    /// The PCK certificate vs the TCB info.
    #[error(
        "the PCK certificate has PCE-ID {}, the TCB info is for {}",
        hex::encode(pck),
        hex::encode(tcb_info)
    )]
    TcbInfo {
        /// In the PCK certificate.
        pck: [u8; 2],
        /// In the TCB info.
        tcb_info: [u8; 2],
    },
    /// The quote's certification data vs the PCK certificate.
    #[error(
        "the quote's certification data names PCE-ID {}, the PCK certificate {}",
        hex::encode(quote),
        hex::encode(pck)
    )]
    CertificationData {
        /// In the quote.
        quote: [u8; 2],
        /// In the PCK certificate.
        pck: [u8; 2],
    },
}

/// Detail of [`VerifyError::TcbLevelNotFound`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LevelNotFound {
    /// No platform TCB level: the PCK certificate's SVNs are below every level.
    #[error(
        "no TCB level of the {tcb_info} matches the platform (PCK TCB components \
         {tcb_components:?}, PCESVN {pce_svn})"
    )]
    Platform {
        /// `TCB info` or `TDX TCB info`.
        tcb_info: &'static str,
        /// The PCK certificate's SGX TCB component SVNs.
        tcb_components: [u8; 16],
        /// The PCK certificate's PCESVN.
        pce_svn: u16,
    },
    /// No QE TCB level for the QE's ISVSVN.
    #[error("no TCB level of the QE identity matches the QE's ISVSVN {isv_svn}")]
    Qe {
        /// The QE's ISVSVN.
        isv_svn: u16,
    },
    /// The TCB info is for the other TEE.
    #[error("the TCB info is for {tcb_info}; {needs}")]
    WrongTee {
        /// What the TCB info is for.
        tcb_info: &'static str,
        /// What the quote needs.
        needs: &'static str,
    },
    /// The signed TCB info does not parse.
    #[error("the signed TCB info cannot be used")]
    Unusable {
        /// Why.
        #[source]
        source: crate::tcb::TcbJsonError,
    },
    /// TDX: no level matches the TD's TEE_TCB_SVN.
    #[error(
        "no TCB level of the TDX TCB info matches the TD's TEE_TCB_SVN {} \
         (tdxtcbcomponents{})",
        hex::encode(tee_tcb_svn),
        if *from_index_2 { " from index 2; the module is judged by its identity" } else { "" }
    )]
    TdxTeeTcbSvn {
        /// The TD's TEE_TCB_SVN.
        tee_tcb_svn: [u8; 16],
        /// Whether components 0 and 1 were skipped (module judged by its identity).
        from_index_2: bool,
    },
    /// TDX: no level of the module identity matches the module's ISVSVN.
    #[error("no TCB level of TDX module identity {identity} matches the module ISVSVN {isv_svn}")]
    TdxModule {
        /// The module identity's id.
        identity: String,
        /// The module's ISVSVN.
        isv_svn: u8,
    },
    /// TDX: a list of TCB levels is empty.
    #[error("{what} has no TCB level")]
    NoLevels {
        /// `the TDX TCB info` or `TDX module identity TDX_nn`.
        what: String,
    },
}

/// Detail of [`VerifyError::TcbRevoked`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{who} is Revoked")]
#[non_exhaustive]
pub struct RevokedLevel {
    /// Whose level: `the platform's TCB level`, `the QE's TCB level`, ….
    pub who: &'static str,
}

/// Detail of [`VerifyError::CrlMissing`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// The collateral has no CRLs and missing CRLs were not allowed.
    #[error(
        "the collateral has no {}; revocation cannot be checked (allow it explicitly with \
         --allow-missing-crls)",
        missing.join(" and ")
    )]
    Absent {
        /// The missing fields (`root_ca_crl`, `pck_crl`).
        missing: Vec<&'static str>,
    },
    /// A CRL without nextUpdate.
    #[error("{item} has no nextUpdate")]
    NoNextUpdate {
        /// Which CRL.
        item: CollateralItem,
    },
    /// A CRL that does not parse.
    #[error("{item} cannot be read")]
    Unreadable {
        /// Which CRL.
        item: CollateralItem,
        /// Why.
        #[source]
        source: crate::x509::X509Error,
    },
    /// The collateral's PCK CRL is another CA's.
    #[error(
        "the collateral's PCK CRL is issued by {crl_issuer}, but this PCK certificate by {pck_issuer}"
    )]
    OtherCa {
        /// The CRL's issuer (common name).
        crl_issuer: String,
        /// The PCK certificate's CA (common name).
        pck_issuer: String,
    },
}

/// Detail of [`VerifyError::TdxModuleMismatch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TdxModuleError {
    /// The TCB info lists no module identities at all.
    #[error(
        "the TD runs TDX module version {version}, but the TCB info has no tdxModuleIdentities"
    )]
    NoIdentities {
        /// The module version.
        version: u8,
    },
    /// No identity for the module version.
    #[error(
        "the TCB info has no TDX module identity TDX_{version:02X} for the TD's {field}module \
         version {version}"
    )]
    NoIdentity {
        /// The module version.
        version: u8,
        /// `""` or `"TEE_TCB_SVN2 "`.
        field: &'static str,
    },
    /// MRSIGNER_SEAM.
    #[error(
        "MRSIGNER_SEAM {} is not the mrsigner of {which} ({})",
        hex::encode(found),
        hex::encode(expected)
    )]
    MrSignerSeam {
        /// The identity or TCB info compared with.
        which: String,
        /// Found.
        found: Vec<u8>,
        /// Expected.
        expected: Vec<u8>,
    },
    /// SEAM_ATTRIBUTES.
    #[error(
        "SEAM_ATTRIBUTES {} are not zero and equal to the attributes of {which} ({})",
        hex::encode(found),
        hex::encode(expected)
    )]
    SeamAttributes {
        /// The identity or TCB info compared with.
        which: String,
        /// Found.
        found: Vec<u8>,
        /// Expected.
        expected: Vec<u8>,
    },
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
            | ParseError::UnsupportedBodyType(_) => {
                Self::UnsupportedQuoteVersion(UnsupportedQuote::Parse(e))
            }
            ParseError::UnsupportedAttestationKeyType(_) => Self::UnsupportedAttestationKeyType(e),
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
