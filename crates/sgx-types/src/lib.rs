//! SGX ABI vocabulary and one strict byte codec.
//!
//! **One job:** turn SGX wire structures into typed Rust values and back, byte for byte:
//! the 384-byte report body ([`ReportBody`]) with newtypes for its fields, and Intel DCAP ECDSA
//! quotes v3 and v4 with an SGX body ([`Quote`]), including the QE report, QE authentication
//! data and certification data (type 5 PCK chain; type 6 nesting in v4).
//!
//! **Not here:** any cryptography, X.509, collateral or policy (that is the `dcap` crate), and
//! any I/O, clock or environment access. TDX bodies and v5 quotes are recognised and refused with
//! a typed error.
//!
//! **Specs:** Intel DCAP `sgx_quote_3.h`, `sgx_quote_4.h`, linux-sgx `sgx_report.h` and
//! `sgx_attributes.h`, digested in `shared/spec/dcap-attestation.md` §1.
//!
//! **Why hand-written:** no maintained crate offers a strict (trailing bytes and inconsistent
//! lengths rejected), allocation-light parser with an encoder twin for these layouts; the
//! structures are small fixed layouts that one strict [`reader::Reader`] covers.

pub mod cpuid;
pub mod quote;
pub mod reader;
pub mod report;

pub use quote::{CertificationData, PpidPlatformInfo, Quote, QuoteHeader, SignatureData};
pub use report::{
    Attributes, ConfigId, CpuSvn, IsvExtId, MrEnclave, MrSigner, ReportBody, ReportData,
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
    #[error("quote version {0} is not supported (supported: 3, 4)")]
    UnsupportedVersion(u16),
    /// A v4 quote for a TEE other than SGX (e.g. TDX, 0x81).
    #[error("TEE type {0:#x} is not supported (only SGX, 0x0)")]
    UnsupportedTeeType(u32),
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
