//! The demo material of `confkube attest serve --demo` (the README quickstart): a fresh test
//! PKI, its collateral, a quote whose report data binds [`RUNTIME_DATA`], and the attestation
//! request that carries both, all returned as file contents. The caller writes them (under
//! `DATA_DIR/demo`) and passes the time; nothing here reads files or the clock.
//!
//! The quote binds its runtime data as the attestation service checks it: report data =
//! SHA-256(runtime data) followed by 32 zero bytes ([`report_data_for`]).

use crate::{CollateralParams, PkiParams, QuoteParams, Testkit, TestkitError};
use base64::Engine as _;
use dcap::TcbStatus;

/// The runtime data the demo quote binds.
pub const RUNTIME_DATA: &str = "hello from a confkube demo enclave";

/// The nonce of the demo request.
pub const NONCE: &str = "demo-nonce";

/// Demo material with less than this left before the collateral's nextUpdate is renewed.
pub const RENEW_BEFORE_SECS: i64 = 86_400;

/// Why the demo material could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Generating the PKI, collateral or quote failed.
    #[error("generating the demo {what}")]
    Testkit {
        /// `PKI`, `collateral` or `quote`.
        what: &'static str,
        /// The cause.
        #[source]
        source: TestkitError,
    },
    /// Encoding the collateral or the request as JSON failed.
    #[error("encoding the demo {what} as JSON")]
    Json {
        /// `collateral` or `request`.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The demo files, as bytes to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoFiles {
    /// `root-ca.pem`: the demo trust anchor (a test root, not Intel's).
    pub root_ca_pem: String,
    /// The collateral file's name in an offline collateral directory (`FMSPC.json`).
    pub collateral_name: String,
    /// The collateral (dcap-qvl `QuoteCollateralV3` JSON, pretty-printed).
    pub collateral_json: String,
    /// `quote.bin`: the quote.
    pub quote: Vec<u8>,
    /// `request.json`: the attestation request (quote, runtime data, nonce).
    pub request_json: String,
    /// The collateral's nextUpdate (Unix seconds), what `valid-until` records.
    pub valid_until: i64,
}

/// Report data binding `runtime` as the attestation service checks it: SHA-256(runtime)
/// followed by 32 zero bytes.
pub fn report_data_for(runtime: &[u8]) -> [u8; 64] {
    let mut rd = [0u8; 64];
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, runtime);
    rd.split_at_mut(32).0.copy_from_slice(digest.as_ref());
    rd
}

/// Whether demo material valid until `valid_until` (the recorded nextUpdate; `None` when
/// unknown) can still be used at `now`: more than [`RENEW_BEFORE_SECS`] must be left.
pub fn still_valid(valid_until: Option<i64>, now: i64) -> bool {
    valid_until.is_some_and(|u| u > now.saturating_add(RENEW_BEFORE_SECS))
}

/// Generates the demo material for time `now` (Unix seconds): an up-to-date platform,
/// collateral valid for 30 days, a v3 quote binding [`RUNTIME_DATA`].
pub fn generate(now: i64) -> Result<DemoFiles, DemoError> {
    let kit =
        Testkit::generate(PkiParams::new(now, Some(TcbStatus::UpToDate))).map_err(|source| {
            DemoError::Testkit {
                what: "PKI",
                source,
            }
        })?;
    let cp = CollateralParams::new(now);
    let coll = kit.collateral(&cp).map_err(|source| DemoError::Testkit {
        what: "collateral",
        source,
    })?;
    let quote = kit
        .quote(&QuoteParams {
            report_data: report_data_for(RUNTIME_DATA.as_bytes()),
            ..QuoteParams::default()
        })
        .map_err(|source| DemoError::Testkit {
            what: "quote",
            source,
        })?;
    let collateral_json =
        serde_json::to_string_pretty(&coll).map_err(|source| DemoError::Json {
            what: "collateral",
            source,
        })?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let request = serde_json::json!({
        "quote": b64.encode(&quote),
        "runtimeData": {"data": b64.encode(RUNTIME_DATA), "dataType": "Binary"},
        "nonce": NONCE,
    });
    let request_json =
        serde_json::to_string_pretty(&request).map_err(|source| DemoError::Json {
            what: "request",
            source,
        })?;
    Ok(DemoFiles {
        root_ca_pem: kit.root_pem().to_string(),
        collateral_name: format!("{}.json", hex::encode(kit.params().fmspc)),
        collateral_json,
        quote,
        request_json,
        valid_until: cp.next_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_binds_the_runtime_data() {
        let rd = report_data_for(b"abc");
        assert_eq!(
            hex::encode(&rd[..32]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(rd[32..], [0u8; 32]);
    }

    #[test]
    fn renewal_window() {
        assert!(!still_valid(None, 0));
        assert!(!still_valid(Some(86_400), 0));
        assert!(still_valid(Some(86_401), 0));
        assert!(!still_valid(Some(i64::MAX), i64::MAX));
    }

    #[test]
    fn demo_files_verify_together() {
        let now = 1_765_000_000;
        let d = generate(now).unwrap();
        assert_eq!(d.valid_until, now + 30 * 86_400);
        assert!(d.root_ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(d.collateral_name.ends_with(".json"));
        let req: serde_json::Value = serde_json::from_str(&d.request_json).unwrap();
        assert_eq!(req["nonce"], NONCE);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(req["quote"], b64.encode(&d.quote));
        assert_eq!(
            b64.decode(req["runtimeData"]["data"].as_str().unwrap())
                .unwrap(),
            RUNTIME_DATA.as_bytes()
        );
        let coll = dcap::Collateral::from_json(d.collateral_json.as_bytes()).unwrap();
        let anchor = dcap::TrustAnchor::from_certificate(d.root_ca_pem.as_bytes()).unwrap();
        let v = dcap::verify(&d.quote, &coll, now + 60, &anchor).unwrap();
        assert_eq!(v.tcb_status(), TcbStatus::UpToDate);
        // Past the window the same files no longer verify.
        let e = dcap::verify(&d.quote, &coll, d.valid_until + 1, &anchor).unwrap_err();
        assert_eq!(e.code(), "collateral-expired");
    }
}
