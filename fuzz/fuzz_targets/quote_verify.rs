//! Fuzz target: full DCAP verification of arbitrary bytes as a quote.
//!
//! The collateral is fixed and real: `dcap/dcap-qvl-sgx/sgx_quote_collateral.json` of the shared
//! test data, verified at its expected time (2025-07-01T00:00:00Z) against the Intel SGX Root CA
//! of `dcap/intel-sgx-root-ca.der`. The data is read at startup from `CONFKUBE_TESTDATA`
//! (default: `../shared/testdata` relative to the repository root), never embedded: test data is
//! not copied into this repository. Without it the target prints a notice and only
//! `pck_platform` runs, so the smoke run still passes.
//!
//! Property: verification never panics, whatever the quote bytes; a quote that verifies also
//! parses. `dcap::pck_platform` (which reads the unverified PCK chain to select collateral) must
//! not panic either, and agrees with a successful verification on FMSPC and PCE-ID. A cached `dcap::Verifier` is used, so the per-quote checks (PCK chain, QE report,
//! binding, signature, QE identity, TCB matching) are what the fuzzer spends its time on.
//! Seeds: the real quotes, copied into `fuzz/corpus/quote_verify/` by `scripts/fuzz-smoke.sh`.
#![no_main]

use dcap::{Collateral, TrustAnchor, Verifier, VerifyOptions};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// 2025-07-01T00:00:00Z, the verification time of the `dcap-qvl-sgx` set.
const NOW: i64 = 1_751_328_000;

struct Fixture {
    collateral: Collateral,
    anchor: TrustAnchor,
    verifier: Verifier,
}

fn testdata_root() -> PathBuf {
    match std::env::var_os("CONFKUBE_TESTDATA") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/testdata"
        )),
    }
}

fn load() -> Option<Fixture> {
    let dcap_dir = testdata_root().join("dcap");
    let coll_path = dcap_dir.join("dcap-qvl-sgx/sgx_quote_collateral.json");
    let (Ok(coll), Ok(root)) = (
        std::fs::read(&coll_path),
        std::fs::read(dcap_dir.join("intel-sgx-root-ca.der")),
    ) else {
        eprintln!(
            "notice: quote_verify: test data not found at {}; set CONFKUBE_TESTDATA (skipping \
             verification; only pck_platform runs)",
            dcap_dir.display()
        );
        return None;
    };
    let collateral = Collateral::from_json(&coll)
        .unwrap_or_else(|e| panic!("{}: not valid collateral: {e}", coll_path.display()));
    let anchor = TrustAnchor::from_certificate(&root)
        .unwrap_or_else(|e| panic!("intel-sgx-root-ca.der: not a certificate: {e}"));
    Some(Fixture {
        collateral,
        anchor,
        verifier: Verifier::new(VerifyOptions::default()),
    })
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(load).as_ref()
}

fuzz_target!(
    init: {
        let _ = fixture();
    },
    |data: &[u8]| {
        let platform = dcap::pck_platform(data);
        let Some(f) = fixture() else {
            return;
        };
        if let Ok(v) = f.verifier.verify(data, &f.collateral, NOW, &f.anchor) {
            assert!(
                sgx_types::Quote::parse(data).is_ok(),
                "a quote that verifies must parse"
            );
            let p = platform.expect("pck_platform must read a quote that verifies");
            assert_eq!((p.fmspc, p.pce_id), (v.fmspc(), v.pce_id()), "pck_platform disagrees");
        }
    }
);
