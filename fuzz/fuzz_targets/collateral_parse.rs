//! Fuzz target: collateral decoding in `dcap`.
//!
//! Arbitrary bytes go through `Collateral::from_json` (dcap-qvl `QuoteCollateralV3` JSON with hex
//! fields) and, when they are UTF-8, through `TcbInfo::parse` and `QeIdentity::parse` (the signed
//! PCS JSON texts). None of them may panic. When the collateral decodes, re-encoding it with
//! `to_json` and decoding again must give the same document and the same content digest (the
//! digest keys the verified-collateral cache), and verifying a real quote against it must not
//! panic either: that drives the certificate, CRL and signed-JSON checks with mutated
//! collateral. The quote (`dcap/dcap-qvl-sgx/sgx_quote`, at 2025-07-01T00:00:00Z, Intel SGX Root
//! CA) is read at startup from `CONFKUBE_TESTDATA` (default `../shared/testdata` relative to
//! the repository root), never embedded; without it that step is skipped. Seeds: the collateral
//! JSON files of `shared/testdata/dcap`, copied into `fuzz/corpus/collateral_parse/` at run time
//! by `scripts/fuzz-smoke.sh`.
#![no_main]

use dcap::{Collateral, QeIdentity, TcbInfo, TrustAnchor, VerifyOptions};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// 2025-07-01T00:00:00Z, the verification time of the `dcap-qvl-sgx` set.
const NOW: i64 = 1_751_328_000;

/// The real quote and trust anchor, when the test data is present.
fn real_quote() -> Option<&'static (Vec<u8>, TrustAnchor)> {
    static QUOTE: OnceLock<Option<(Vec<u8>, TrustAnchor)>> = OnceLock::new();
    QUOTE
        .get_or_init(|| {
            let root = match std::env::var_os("CONFKUBE_TESTDATA") {
                Some(v) if !v.is_empty() => PathBuf::from(v),
                _ => PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../shared/testdata"
                )),
            }
            .join("dcap");
            let quote = std::fs::read(root.join("dcap-qvl-sgx/sgx_quote")).ok();
            let anchor = std::fs::read(root.join("intel-sgx-root-ca.der")).ok();
            match (quote, anchor) {
                (Some(q), Some(a)) => Some((
                    q,
                    TrustAnchor::from_certificate(&a)
                        .unwrap_or_else(|e| panic!("intel-sgx-root-ca.der: {e}")),
                )),
                _ => {
                    eprintln!(
                        "notice: collateral_parse: test data not found at {}; set \
                         CONFKUBE_TESTDATA (skipping the verification step)",
                        root.display()
                    );
                    None
                }
            }
        })
        .as_ref()
}

fuzz_target!(
    init: {
        let _ = real_quote();
    },
    |data: &[u8]| {
        if let Ok(collateral) = Collateral::from_json(data) {
            let again = Collateral::from_json(collateral.to_json().as_bytes())
                .expect("re-encoded collateral must decode");
            assert_eq!(
                again.document(),
                collateral.document(),
                "JSON round trip changed the document"
            );
            assert_eq!(
                again.digest(),
                collateral.digest(),
                "JSON round trip changed the digest"
            );
            // The embedded signed texts are what the verifier parses next.
            let _ = TcbInfo::parse(&collateral.document().tcb_info);
            let _ = QeIdentity::parse(&collateral.document().qe_identity);
            if let Some((quote, anchor)) = real_quote() {
                for allow_missing_crls in [false, true] {
                    let opts = VerifyOptions::default().allow_missing_crls(allow_missing_crls);
                    let _ = dcap::Verifier::uncached(opts).verify(quote, &collateral, NOW, anchor);
                }
            }
        }
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = TcbInfo::parse(text);
            let _ = QeIdentity::parse(text);
        }
    }
);
