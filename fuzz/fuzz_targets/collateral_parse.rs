//! Fuzz target: collateral decoding in `dcap`.
//!
//! Arbitrary bytes go through `Collateral::from_json` (dcap-qvl `QuoteCollateralV3` JSON with hex
//! fields) and, when they are UTF-8, through `TcbInfo::parse` and `QeIdentity::parse` (the signed
//! PCS JSON texts). None of them may panic. When the collateral decodes, re-encoding it with
//! `to_json` and decoding again must give the same document and the same content digest (the
//! digest keys the verified-collateral cache). Seeds: the collateral JSON files of
//! `shared/testdata/dcap`, copied into `fuzz/corpus/collateral_parse/` at run time by
//! `scripts/fuzz-smoke.sh`.
#![no_main]

use dcap::{Collateral, QeIdentity, TcbInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TcbInfo::parse(text);
        let _ = QeIdentity::parse(text);
    }
});
