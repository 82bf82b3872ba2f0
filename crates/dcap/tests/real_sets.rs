//! Every SGX case of every real set in `shared/testdata/dcap` gives its expected result.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dcap::{Collateral, TrustAnchor, Verifier, VerifyOptions, success_json};
use serde_json::Value;
use std::path::Path;

const SETS: &[&str] = &[
    "dcap-qvl-sgx",
    "automata-dcap-attestation",
    "intel-qvl-synthetic",
    "mobilecoin-attestation",
    "oasis-core",
];

fn run_case(dir: &Path, case: &Value, verifier_cached: &Verifier) -> Result<(), String> {
    let name = case["case"].as_str().unwrap();
    let quote = std::fs::read(dir.join(case["quote"].as_str().unwrap())).unwrap();
    let coll = Collateral::from_json(
        &std::fs::read(dir.join(case["collateral"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let anchor = TrustAnchor::from_certificate(
        &std::fs::read(dir.join(case["trust_anchor"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let now = case["verification_time_unix"].as_i64().unwrap();
    let allow = case["extra_args"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "--allow-missing-crls"));
    let opts = VerifyOptions::default().allow_missing_crls(allow);
    let expected = &case["expected"];
    // Uncached, then twice through a cached verifier: all three must agree.
    let results = [
        Verifier::uncached(opts.clone()).verify(&quote, &coll, now, &anchor),
        Verifier::new(opts.clone()).verify(&quote, &coll, now, &anchor),
        if allow {
            Verifier::new(opts).verify(&quote, &coll, now, &anchor)
        } else {
            verifier_cached.verify(&quote, &coll, now, &anchor)
        },
    ];
    for got in results {
        match (&got, expected["verified"].as_bool().unwrap()) {
            (Ok(v), true) => {
                let j = success_json(v);
                for key in [
                    "tcb_status",
                    "advisory_ids",
                    "mrenclave",
                    "mrsigner",
                    "isv_prod_id",
                    "isv_svn",
                    "debug",
                    "fmspc",
                    "qe_tcb_status",
                    "report_data",
                ] {
                    if j[key] != expected[key] {
                        return Err(format!(
                            "{name}: {key} = {} expected {}",
                            j[key], expected[key]
                        ));
                    }
                }
                let crls_absent = case["crls"] == "none";
                if v.revocation_checked() == crls_absent {
                    return Err(format!("{name}: revocation_checked wrong"));
                }
                if crls_absent && j["revocation_checked"] != Value::Bool(false) {
                    return Err(format!("{name}: JSON must say revocation_checked: false"));
                }
            }
            (Err(e), false) if e.code() == expected["error"].as_str().unwrap() => {}
            (got, _) => {
                return Err(format!(
                    "{name}: got {:?}, expected {}",
                    got.as_ref().map(success_json).map_err(|e| e.to_string()),
                    expected
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn every_real_sgx_case_matches_expected() {
    let Some(root) = testdata::path("dcap") else {
        return;
    };
    let cached = Verifier::default();
    let mut failures = Vec::new();
    let mut ran = 0;
    for set in SETS {
        let dir = root.join(set);
        let expected: Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        for case in expected["cases"].as_array().unwrap() {
            ran += 1;
            if let Err(e) = run_case(&dir, case, &cached) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 17, "only {ran} cases ran");
}

#[test]
fn pck_platform_selects_the_collateral() {
    let cases = [
        ("dcap/dcap-qvl-sgx/sgx_quote", "00a067110000", false),
        (
            "dcap/automata-dcap-attestation/icelake-00606A000000/derived_quotev3.bin",
            "00606a000000",
            true,
        ),
        (
            "dcap/mobilecoin-attestation/hw_quote.dat",
            "00906ed50000",
            false,
        ),
    ];
    for (path, fmspc, platform_ca) in cases {
        let Some(q) = testdata::read(path) else {
            return;
        };
        let p = dcap::pck_platform(&q).unwrap();
        assert_eq!(
            (hex::encode(p.fmspc), p.platform_ca),
            (fmspc.to_string(), platform_ca),
            "{path}"
        );
    }
    let Some(q) = testdata::read("dcap/intel-qvl-synthetic/quote.dat") else {
        return;
    };
    assert_eq!(
        dcap::pck_platform(&q).unwrap_err().code(),
        "unsupported-certification-data"
    );
    assert_eq!(
        dcap::pck_platform(&[3, 0]).unwrap_err().code(),
        "malformed-quote"
    );
}

#[test]
fn every_real_tdx_case_matches_expected() {
    let Some(root) = testdata::path("dcap") else {
        return;
    };
    let dir = root.join("tdx/dcap-qvl");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let cached = Verifier::default();
    let mut ran = 0;
    for case in expected["cases"].as_array().unwrap() {
        ran += 1;
        let name = case["case"].as_str().unwrap();
        let quote = std::fs::read(dir.join(case["quote"].as_str().unwrap())).unwrap();
        let coll = Collateral::from_json(
            &std::fs::read(dir.join(case["collateral"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let anchor = TrustAnchor::from_certificate(
            &std::fs::read(dir.join(case["trust_anchor"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let now = case["verification_time_unix"].as_i64().unwrap();
        let want = &case["expected"];
        let results = [
            Verifier::uncached(VerifyOptions::default()).verify_tdx(&quote, &coll, now, &anchor),
            cached.verify_tdx(&quote, &coll, now, &anchor),
            cached.verify_tdx(&quote, &coll, now, &anchor),
        ];
        for got in results {
            match (got, want["verified"].as_bool().unwrap()) {
                (Ok(v), true) => {
                    let j = dcap::tdx_success_json(&v);
                    for key in [
                        "tcb_status",
                        "advisory_ids",
                        "tee",
                        "mr_td",
                        "debug",
                        "fmspc",
                        "qe_tcb_status",
                    ] {
                        assert_eq!(j[key], want[key], "{name}: {key}");
                    }
                    assert_eq!(
                        j["trailing_zero_bytes"], case["trailing_bytes"],
                        "{name}: trailing bytes"
                    );
                    assert!(v.revocation_checked(), "{name}");
                    // The TEE-generic entry point gives the same result.
                    let any = dcap::verify_dcap(&quote, &coll, now, &anchor).unwrap();
                    assert_eq!(dcap::dcap_success_json(&any), j, "{name}");
                }
                (Err(e), false) => {
                    assert_eq!(e.code(), want["error"].as_str().unwrap(), "{name}: {e}")
                }
                (got, _) => panic!(
                    "{name}: got {:?}, expected {want}",
                    got.map(|v| dcap::tdx_success_json(&v))
                        .map_err(|e| e.to_string())
                ),
            }
        }
        // The SGX-only entry point refuses TDX quotes with a typed error.
        assert_eq!(
            dcap::verify(&quote, &coll, now, &anchor)
                .unwrap_err()
                .code(),
            "unsupported-quote-version",
            "{name}"
        );
    }
    assert_eq!(ran, 3);
}

/// The keys of the SGX result object (DESIGN.md §4), `revocation_checked` only without CRLs.
const SGX_KEYS: &[&str] = &[
    "advisory_ids",
    "collateral_valid_until",
    "debug",
    "fmspc",
    "isv_prod_id",
    "isv_svn",
    "mrenclave",
    "mrsigner",
    "pce_id",
    "platform_tcb_status",
    "qe_tcb_status",
    "quote_version",
    "report_data",
    "tcb_date",
    "tcb_evaluation_data_number",
    "tcb_status",
    "verified",
];

/// The keys of the TDX result object; TD 1.5 bodies add `tee_tcb_svn2` and `mr_servicetd`.
const TDX_KEYS: &[&str] = &[
    "advisory_ids",
    "body_type",
    "collateral_valid_until",
    "debug",
    "fmspc",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "mr_seam",
    "mr_signer_seam",
    "mr_td",
    "pce_id",
    "platform_tcb_status",
    "qe_tcb_status",
    "quote_version",
    "report_data",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "seam_attributes",
    "tcb_date",
    "tcb_evaluation_data_number",
    "tcb_status",
    "td_attributes",
    "tdx_module_identity",
    "tdx_module_tcb_status",
    "tee",
    "tee_tcb_svn",
    "trailing_zero_bytes",
    "verified",
    "xfam",
];

/// `write_dcap_success_json` (the batch path's encoder) writes exactly the text of
/// `dcap_success_json`, with exactly the result keys, for every verified real quote of either
/// TEE, and `Verifier::verify_parsed` agrees with `verify_dcap` on every case.
#[test]
fn direct_json_text_equals_the_value_for_every_real_quote() {
    let Some(root) = testdata::path("dcap") else {
        return;
    };
    let (mut sgx, mut tdx, mut no_crls, mut td15, mut failed) = (0, 0, 0, 0, 0);
    let sets = SETS.iter().copied().chain(["tdx/dcap-qvl"]);
    for set in sets {
        let dir = root.join(set);
        let expected: Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        for case in expected["cases"].as_array().unwrap() {
            let name = case["case"].as_str().unwrap();
            let read = |k: &str| std::fs::read(dir.join(case[k].as_str().unwrap())).unwrap();
            let quote = read("quote");
            let coll = Collateral::from_json(&read("collateral")).unwrap();
            let anchor = TrustAnchor::from_certificate(&read("trust_anchor")).unwrap();
            let now = case["verification_time_unix"].as_i64().unwrap();
            let allow = case["extra_args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "--allow-missing-crls"));
            let v = Verifier::new(VerifyOptions::default().allow_missing_crls(allow));
            let parsed = dcap::ParsedQuote::parse(quote.clone()).unwrap();
            assert_eq!(parsed.bytes(), &quote[..], "{name}");
            let direct = v.verify_parsed(&parsed, &coll, now, &anchor);
            let got = v.verify_dcap(&quote, &coll, now, &anchor);
            assert_eq!(direct, got, "{name}");
            let Ok(got) = got else {
                failed += 1;
                continue;
            };
            let value = dcap::dcap_success_json(&got);
            let mut text = Vec::new();
            dcap::write_dcap_success_json(&mut text, &got).unwrap();
            assert_eq!(
                String::from_utf8(text).unwrap(),
                value.to_string(),
                "{name}"
            );
            let mut keys: Vec<&str> = value
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut want: Vec<&str> = match &got {
                dcap::VerifiedDcapQuote::Sgx(_) => {
                    sgx += 1;
                    SGX_KEYS.to_vec()
                }
                _ => {
                    tdx += 1;
                    TDX_KEYS.to_vec()
                }
            };
            if !got.revocation_checked() {
                no_crls += 1;
                assert_eq!(value["revocation_checked"], false, "{name}");
                want.push("revocation_checked");
            }
            if value.get("tee_tcb_svn2").is_some() {
                td15 += 1;
                want.extend(["tee_tcb_svn2", "mr_servicetd"]);
            }
            keys.sort_unstable();
            want.sort_unstable();
            assert_eq!(keys, want, "{name}");
        }
    }
    assert!(
        sgx >= 5 && tdx >= 2 && no_crls >= 1 && td15 >= 1 && failed >= 1,
        "sgx {sgx} tdx {tdx} no_crls {no_crls} td15 {td15} failed {failed}"
    );
}
