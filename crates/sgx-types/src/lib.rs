//! SGX ABI vocabulary and one strict byte codec.
//!
//! **One job:** turn SGX and TDX wire structures into typed Rust values and back, byte for byte:
//! the 384-byte report body ([`ReportBody`]) with newtypes for its fields, Intel DCAP ECDSA
//! quotes v3 and v4 with an SGX body ([`Quote`]), and TDX quotes v4/v5 with TD report 1.0, 1.5
//! and 1.5 "ex" bodies ([`TdxQuote`]), including the QE report, QE authentication data and
//! certification data (type 5 PCK chain; type 6 nesting in v4/v5). [`DcapQuote`] picks the
//! layout from the header.
//!
//! **Not here:** any cryptography, X.509, collateral or policy (that is the `dcap` crate), and
//! any I/O, clock or environment access. v5 quotes with an SGX body (body type 1) are refused
//! with a typed error, as dcap-qvl does.
//!
//! **Specs:** Intel DCAP `sgx_quote_3.h`, `sgx_quote_4.h`, `sgx_quote_5.h`, linux-sgx `sgx_report.h` and
//! `sgx_attributes.h`, digested in `shared/spec/dcap-attestation.md` §1.
//!
//! **Why hand-written:** no maintained crate offers a strict (trailing bytes and inconsistent
//! lengths rejected), allocation-light parser with an encoder twin for these layouts; the
//! structures are small fixed layouts that one strict [`reader::Reader`] covers.

pub mod cpuid;
pub mod quote;
pub mod reader;
pub mod report;
pub mod td;

pub use quote::{CertificationData, PpidPlatformInfo, Quote, QuoteHeader, SignatureData};
pub use report::{
    Attributes, ConfigId, CpuSvn, IsvExtId, MrEnclave, MrSigner, ReportBody, ReportData,
};
pub use td::{
    DcapQuote, Measurement, TdAttributes, TdBody, TdReport10, TdReport15Fields, TdxQuote,
};

/// Why bytes are not a valid SGX structure. Offsets are absolute in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input ends before a field.
    #[error("truncated at offset {offset}: {field} needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// Its length.
        needed: usize,
        /// What was left.
        available: usize,
    },
    /// Bytes remain after a structure that declares its own length.
    #[error("{count} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// A quote version other than 3 or 4.
    #[error("quote version {0} is not supported (SGX: 3, 4; TDX: 4, 5)")]
    UnsupportedVersion(u16),
    /// A TEE type this parser does not handle (the SGX parser takes 0x0, the TDX parser 0x81).
    #[error("TEE type {0:#x} is not supported here (SGX is 0x0, TDX 0x81)")]
    UnsupportedTeeType(u32),
    /// A v5 body type other than a TD report (2 = TD 1.0, 3 = TD 1.5, 4 = TD 1.5 ex).
    #[error("quote body type {0} is not supported (supported: 2, 3, 4)")]
    UnsupportedBodyType(u16),
    /// A v5 body size that is not the size of its body type.
    #[error("quote body type {body_type} declares {declared} bytes; that body has {expected}")]
    BodySizeMismatch {
        /// The body type.
        body_type: u16,
        /// The size field.
        declared: u32,
        /// The size of that body type.
        expected: usize,
    },
    /// Trailing bytes after a TDX quote's signature data that are not all zero padding.
    #[error(
        "{count} trailing bytes after the signature data are not zero padding (non-zero byte at \
         offset {offset})"
    )]
    NonZeroTrailingBytes {
        /// The first non-zero trailing byte.
        offset: usize,
        /// How many trailing bytes there are.
        count: usize,
    },
    /// An attestation key type other than ECDSA P-256 (2).
    #[error("attestation key type {0} is not supported (only 2, ECDSA P-256)")]
    UnsupportedAttestationKeyType(u16),
    /// Certification data of a type that cannot stand where it was found.
    #[error("certification data type {found} where type {expected} is required")]
    UnexpectedCertificationDataType {
        /// The type the layout requires.
        expected: u16,
        /// The type found.
        found: u16,
    },
}

/// Lowercase hex, the project's text form for SGX byte fields.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
