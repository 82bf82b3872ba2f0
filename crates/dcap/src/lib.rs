//! Pure-Rust verification of Intel SGX and TDX DCAP ECDSA quotes.
//!
//! **One job:** `verify(quote, &collateral, now, &trust_anchor) -> Result<VerifiedQuote,
//! VerifyError>`: the PCK chain to the anchor *by public key*, both CRLs with their issuer
//! chains, every certificate's validity, the TCB Info and QE Identity signatures over their exact
//! signed text, every collateral window (issueDate/thisUpdate and nextUpdate), the QE report
//! signature, the full 64-byte attestation-key binding, the quote signature, the QE identity
//! (MRSIGNER, ISVPRODID, masked MISCSELECT/ATTRIBUTES, QE TCB level), FMSPC and PCE-ID, TCB
//! level selection with platform/QE status merging and advisory IDs. TDX quotes (v4/v5) add the
//! TDX module identity, TCB matching on `tee_tcb_svn` and module/relaunch status convergence
//! ([`Verifier::verify_tdx`], [`Verifier::verify_dcap`] for either TEE). [`Verifier`] adds a bounded
//! verified-collateral cache so that quotes from known platforms cost about one ECDSA verify.
//!
//! **Not here:** fetching collateral (the `attest` crate), policy (debug enclaves are reported,
//! not rejected), token issuance. No I/O, no clock, no environment: the caller passes `now`
//! and the trust anchor. [`VerifiedQuote`] can only be built by this crate.
//!
//! **Specs:** `shared/spec/dcap-attestation.md` (Intel QVL/QvE algorithm, §2–§5), DESIGN.md §4
//! for the error vocabulary and the strict rules that go past QVL and dcap-qvl (full 64-byte
//! binding, PCE-ID check, notBefore/issueDate/thisUpdate checks, trailing bytes rejected).
//!
//! **Why hand-written:** DCAP's rules (fixed 3-certificate chains, CN checks, CRLs per CA,
//! signed-JSON collateral, TCB matching on PCK extension SVNs) are not web-PKI path building;
//! x509-parser does the ASN.1 and aws-lc-rs the cryptography.

mod anchor;
mod cache;
mod collateral;
mod error;
mod input;
mod report;
mod tcb;
mod tdx;
mod verify;
mod x509;

pub use anchor::{AnchorError, INTEL_SGX_ROOT_CA_PUBLIC_KEY, TrustAnchor};
pub use cache::{CacheLimits, CacheStats, Verifier, verify};
pub use collateral::{Collateral, CollateralError, QuoteCollateralV3};
pub use error::{
    CertRole, CertificateWindow, CertificationDataError, Chain, ChainError, CollateralItem,
    CrlError, FmspcDiffers, ItemWindow, KeyBinding, LevelNotFound, NotYetValid, PceIdMismatch,
    QeMismatch, QeReportSignature, QuoteSignature, Revoked, RevokedLevel, SignedItem,
    SignedItemError, TdxModuleError, UnsupportedQuote, VerifyError,
};
pub use input::{QuoteInputError, decode_quote_input};
pub use report::{
    dcap_success_json, failure_json, success_json, tdx_success_json, write_dcap_success_json,
};
pub use tcb::{
    HexError, JsonField, QeIdentity, QeTcbLevel, SignedDocument, TcbInfo, TcbJsonError, TcbLevel,
    TcbStatus,
};
pub use tdx::{
    ParsedQuote, TdxModule, TdxModuleIdentity, TdxModuleInfo, TdxModuleTcbLevel, VerifiedDcapQuote,
    VerifiedTdxQuote, verify_dcap,
};
pub use verify::{PckPlatform, VerifiedQuote, VerifyOptions, pck_platform, pck_platform_anchored};
pub use x509::{ParseCause, PckExtension, X509Error};
