//! Collateral sources: where the attestation service gets the TCB info, QE identity, CRLs and
//! issuer chains that `dcap::verify` needs for a platform.
//!
//! **One job:** turn a [`PlatformId`] (FMSPC + PCK CA type, read from the quote's PCK
//! certificate) into a [`dcap::Collateral`]:
//!
//! * [`OfflineDir`]: an offline bundle directory, either one dcap-qvl `QuoteCollateralV3` JSON
//!   per FMSPC (`DIR/<fmspc>.json`, DESIGN.md §5) or the PCS response bodies saved as files
//!   (`DIR/<fmspc>/tcb.json`, …; see [`OfflineDir`]).
//! * [`PccsClient`]: an Intel PCS or PCCS speaking API v4 (v3 header names accepted): `tcb`,
//!   `qe/identity`, `pckcrl`, `rootcacrl`, with issuer chains from the URL-encoded response
//!   headers and the signed `tcbInfo` / `enclaveIdentity` text cut from the body byte for byte.
//! * [`CollateralCache`]: wraps any source; caches per platform until the earliest nextUpdate,
//!   refreshes ahead of expiry in the background, keeps serving a still-valid copy when a refresh
//!   fails (stale-while-error), optionally persists through [`CollateralPersistence`].
//!
//! **Not here:** verification. A source checks only the encodings (JSON, hex, PEM, DER CRL) and
//! that the TCB info is for the requested FMSPC; signatures, chains and validity windows are
//! checked by `dcap::verify`. Time is injected through [`Clock`]; the pure refresh planning never
//! reads the clock.
//!
//! **Specs:** `shared/spec/dcap-attestation.md` §5 (validity windows) and §6 (PCS/PCCS endpoints,
//! issuer-chain headers, PCCS `rootcacrl` in hex, `QuoteCollateralV3` encoding). User guide:
//! `docs/attestation-collateral.md`.

pub mod cache;
mod offline;
mod pccs;
mod pcs;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use cache::{
    CacheConfig, CacheCounters, Clock, CollateralCache, CollateralPersistence, SystemClock,
};
pub use offline::OfflineDir;
pub use pccs::{
    INTEL_ROOT_CA_CRL_URL, PccsClient, PccsConfig, ProxyConfig, RootCrlSource, UpdateType,
};
// The PCS body and header parsers are public for the fuzz target `pcs_response`.
pub use pcs::{chain_pem, collateral_next_update, crl_der, split_signed_body};

/// The CA that issued the platform's PCK certificate; selects the PCK CRL (`pckcrl?ca=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PckCaType {
    /// "Intel SGX PCK Processor CA" (client and E3 platforms).
    Processor,
    /// "Intel SGX PCK Platform CA" (multi-package / scalable platforms).
    Platform,
}

impl PckCaType {
    /// From the common name of the PCK certificate's issuer (`Intel SGX PCK Processor CA` or
    /// `Intel SGX PCK Platform CA`); `None` for any other name.
    pub fn from_issuer_cn(cn: &str) -> Option<Self> {
        match cn.trim() {
            "Intel SGX PCK Processor CA" => Some(Self::Processor),
            "Intel SGX PCK Platform CA" => Some(Self::Platform),
            _ => None,
        }
    }

    /// The `ca` query value of the PCS `pckcrl` endpoint: `processor` or `platform`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Processor => "processor",
            Self::Platform => "platform",
        }
    }
}

impl fmt::Display for PckCaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PckCaType {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "processor" => Ok(Self::Processor),
            "platform" => Ok(Self::Platform),
            _ => Err(SourceError::Config(format!(
                "PCK CA type {s:?} is neither \"processor\" nor \"platform\""
            ))),
        }
    }
}

/// What collateral is requested for: the platform's FMSPC and its PCK CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlatformId {
    /// FMSPC from the PCK certificate's SGX extension.
    pub fmspc: [u8; 6],
    /// The PCK certificate's issuing CA.
    pub ca: PckCaType,
    /// TDX collateral (TDX TCB info and TD_QE identity, from the `tdx/certification/v4` API
    /// or the bundle's `tdx/` folder) rather than SGX collateral.
    pub tdx: bool,
}

impl PlatformId {
    /// A platform id (SGX collateral).
    pub fn new(fmspc: [u8; 6], ca: PckCaType) -> Self {
        Self {
            fmspc,
            ca,
            tdx: false,
        }
    }

    /// The same platform, for TDX collateral when `tdx` is true.
    pub fn with_tdx(mut self, tdx: bool) -> Self {
        self.tdx = tdx;
        self
    }

    /// Parses a 12-digit hex FMSPC (either case).
    pub fn from_hex(fmspc: &str, ca: PckCaType) -> Result<Self, SourceError> {
        let mut out = [0u8; 6];
        hex::decode_to_slice(fmspc.trim(), &mut out).map_err(|e| {
            SourceError::Config(format!("FMSPC {fmspc:?} is not 12 hex digits: {e}"))
        })?;
        Ok(Self::new(out, ca))
    }

    /// The FMSPC as 12 lowercase hex digits (the offline bundle file name).
    pub fn fmspc_hex(&self) -> String {
        hex::encode(self.fmspc)
    }

    /// A stable key, `<fmspc hex>-<processor|platform>[-tdx]`, used for persistence.
    pub fn key(&self) -> String {
        let tee = if self.tdx { "-tdx" } else { "" };
        format!("{}-{}{tee}", self.fmspc_hex(), self.ca)
    }
}

impl fmt::Display for PlatformId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tee = if self.tdx { ", TDX" } else { "" };
        write!(f, "FMSPC {} ({} CA{tee})", self.fmspc_hex(), self.ca)
    }
}

/// Why a source could not deliver collateral. `location` names the URL or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source has no collateral for this FMSPC (HTTP 404, no bundle file).
    #[error("no collateral for FMSPC {fmspc} at {location}")]
    NotFound {
        /// The FMSPC, 12 lowercase hex digits.
        fmspc: String,
        /// The URL or file that was asked.
        location: String,
    },
    /// The source could not be reached or failed transiently: connection, TLS, timeout,
    /// HTTP 408/429/5xx, an unreadable file.
    #[error("collateral source {location} is unavailable: {reason}")]
    Unavailable {
        /// The URL or file.
        location: String,
        /// What happened.
        reason: String,
    },
    /// The source answered with an unexpected HTTP status (a 4xx other than 404/408/429).
    #[error("collateral source {location} answered HTTP {status}")]
    Status {
        /// The URL.
        location: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The source answered, but the body, a header or a file is not valid collateral.
    #[error("invalid collateral from {location}: {reason}")]
    Invalid {
        /// The URL (with the header name, where a header is at fault) or file.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The source is misconfigured (bad URL, unreadable CA bundle, plain HTTP to a remote host).
    #[error("collateral source configuration: {0}")]
    Config(String),
}

impl SourceError {
    /// A short stable label for metrics and logs: `not-found`, `unavailable`, `http-status`,
    /// `invalid` or `config`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not-found",
            Self::Unavailable { .. } => "unavailable",
            Self::Status { .. } => "http-status",
            Self::Invalid { .. } => "invalid",
            Self::Config(_) => "config",
        }
    }
}

/// The boxed future a [`CollateralSource`] returns.
pub type SourceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<dcap::Collateral, SourceError>> + Send + 'a>>;

/// Anything that can deliver collateral for a platform. Object safe (`Arc<dyn
/// CollateralSource>`); the future is boxed.
pub trait CollateralSource: Send + Sync {
    /// Fetches the collateral for `id`. Implementations check the encodings and that the TCB
    /// info is for `id.fmspc`; they do not verify signatures or validity windows.
    fn fetch(&self, id: &PlatformId) -> SourceFuture<'_>;
}

impl<T: CollateralSource + ?Sized> CollateralSource for Arc<T> {
    fn fetch(&self, id: &PlatformId) -> SourceFuture<'_> {
        (**self).fetch(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_id_names() {
        let id = PlatformId::from_hex("00606A000000", PckCaType::Platform).unwrap();
        assert_eq!(id.fmspc, [0, 0x60, 0x6a, 0, 0, 0]);
        assert_eq!(id.fmspc_hex(), "00606a000000");
        assert_eq!(id.key(), "00606a000000-platform");
        assert_eq!(id.to_string(), "FMSPC 00606a000000 (platform CA)");
        assert_eq!(
            PlatformId::from_hex("00606A0000", PckCaType::Platform).unwrap_err(),
            SourceError::Config(
                "FMSPC \"00606A0000\" is not 12 hex digits: Invalid string length".into()
            )
        );
    }

    #[test]
    fn ca_type_names() {
        assert_eq!(
            PckCaType::from_issuer_cn("Intel SGX PCK Processor CA"),
            Some(PckCaType::Processor)
        );
        assert_eq!(
            PckCaType::from_issuer_cn("Intel SGX PCK Platform CA"),
            Some(PckCaType::Platform)
        );
        assert_eq!(PckCaType::from_issuer_cn("Intel SGX Root CA"), None);
        assert_eq!("Platform".parse::<PckCaType>(), Ok(PckCaType::Platform));
        assert_eq!(
            "root".parse::<PckCaType>().unwrap_err().to_string(),
            "collateral source configuration: PCK CA type \"root\" is neither \"processor\" nor \
             \"platform\""
        );
    }

    #[test]
    fn error_kinds() {
        let l = || "x".to_string();
        assert_eq!(
            [
                SourceError::NotFound {
                    fmspc: l(),
                    location: l()
                }
                .kind(),
                SourceError::Unavailable {
                    location: l(),
                    reason: l()
                }
                .kind(),
                SourceError::Status {
                    location: l(),
                    status: 403
                }
                .kind(),
                SourceError::Invalid {
                    location: l(),
                    reason: l()
                }
                .kind(),
                SourceError::Config(l()).kind(),
            ],
            [
                "not-found",
                "unavailable",
                "http-status",
                "invalid",
                "config"
            ]
        );
    }
}
