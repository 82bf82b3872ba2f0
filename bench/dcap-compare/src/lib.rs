//! Shared setup for the DCAP verification benchmark (`benches/dcap_compare.rs`) and its summary
//! table (`benches/summary.rs`).
//!
//! **One job:** load the real SGX quotes of `shared/testdata/dcap` that dcap-qvl 0.7.1 can verify,
//! with their collateral and verification times (from each set's `expected.json`), prepare what
//! each contender needs before timing starts, and check that confkube and dcap-qvl agree on every
//! quote's TCB status and advisory IDs.
//!
//! **Contenders:** (a) confkube warm: a `dcap::Verifier` whose cache was primed by one call;
//! (b) confkube cold: `dcap::Verifier::uncached`; (c) dcap-qvl 0.7.1 `QuoteVerifier` with the
//! collateral already deserialized; (d) the floor: SHA-256 of the 432 signed bytes plus two
//! ECDSA-P256-SHA256 verifies with aws-lc-rs (QE report signature with the PCK leaf key, quote
//! signature with the attestation key), over the quote's real signatures.
//!
//! **Not here:** any timing assertion. Test data is read at run time from `CONFKUBE_TESTDATA`
//! (default `../shared/testdata` relative to the repository root) and never copied into the
//! repository. This is harness code: it panics with a message when its own setup fails.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use dcap::{Collateral, TrustAnchor, Verifier, VerifyOptions};
use serde_json::Value;
use sgx_types::Quote;
use std::path::{Path, PathBuf};

/// One benchmarked quote: (id, set directory, quote path, collateral path), paths relative to
/// the set directory exactly as in its `expected.json`.
pub const CASES: [(&str, &str, &str, &str); 5] = [
    (
        "dcap-qvl-sgx_sgx_quote",
        "dcap-qvl-sgx",
        "sgx_quote",
        "sgx_quote_collateral.json",
    ),
    (
        "automata_icelake_quotev3",
        "automata-dcap-attestation",
        "icelake-00606A000000/derived_quotev3.bin",
        "icelake-00606A000000/derived_dcap_qvl_collateral.json",
    ),
    (
        "automata_icelake_sample0",
        "automata-dcap-attestation",
        "icelake-00606A000000/derived_sample_quote0_sgx.bin",
        "icelake-00606A000000/derived_dcap_qvl_collateral.json",
    ),
    (
        "automata_processor_debug",
        "automata-dcap-attestation",
        "processor-00A067110000/quote_sgx.bin",
        "../dcap-qvl-sgx/sgx_quote_collateral.json",
    ),
    (
        "oasis_pck_chain_icelake2025",
        "oasis-core",
        "quote_v3_ecdsa_p256_pck_chain.bin",
        "../automata-dcap-attestation/icelake-00606A000000/derived_dcap_qvl_collateral.json",
    ),
];

/// The four contenders, in table order: (criterion function id, column title).
pub const CONTENDERS: [(&str, &str); 4] = [
    ("a_confkube_warm", "(a) confkube warm"),
    ("b_confkube_cold", "(b) confkube cold"),
    ("c_dcap_qvl_0.7.1", "(c) dcap-qvl 0.7.1"),
    ("d_floor_2ecdsa_sha256", "(d) floor"),
];

/// Cases that also get the breakdown group (collateral of each PCK CA kind: the Processor CA
/// collateral of dcap-qvl-sgx and the Platform CA collateral of automata icelake, whose PCK
/// CRL is large).
pub const BREAKDOWN_CASES: [&str; 2] = ["dcap-qvl-sgx_sgx_quote", "automata_icelake_quotev3"];

/// The criterion group of a case.
pub fn group_name(case_id: &str) -> String {
    format!("verify_{case_id}")
}

/// The shared test data root: `CONFKUBE_TESTDATA`, or `../shared/testdata` next to the repo.
pub fn testdata_root() -> PathBuf {
    match std::env::var_os("CONFKUBE_TESTDATA") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"),
    }
}

/// What the floor verifies: the two real signatures of one quote and their messages.
#[derive(Debug, Clone)]
pub struct FloorInput {
    /// Header ‖ report body: the 432 bytes the attestation key signed.
    pub signed: Vec<u8>,
    /// The quote signature (r‖s).
    pub quote_signature: [u8; 64],
    /// The attestation key, SEC1 uncompressed (0x04 ‖ x ‖ y).
    pub attestation_key: [u8; 65],
    /// The 384-byte QE report the PCK key signed.
    pub qe_report: Vec<u8>,
    /// The QE report signature (r‖s).
    pub qe_report_signature: [u8; 64],
    /// The PCK leaf public key, SEC1 uncompressed.
    pub pck_key: Vec<u8>,
}

impl FloorInput {
    /// The floor: SHA-256 of the signed bytes and the two ECDSA-P256-SHA256 verifies. Returns
    /// whether both signatures verify (always true for these real quotes).
    pub fn run(&self) -> bool {
        let h = digest::digest(&digest::SHA256, &self.signed);
        let qe = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.pck_key)
            .verify(&self.qe_report, &self.qe_report_signature)
            .is_ok();
        let quote =
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.attestation_key)
                .verify(&self.signed, &self.quote_signature)
                .is_ok();
        qe & quote & (h.as_ref().len() == 32)
    }

    /// Reference for the breakdown: the quote signature alone, with aws-lc-rs.
    pub fn one_verify_aws_lc(&self) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.attestation_key)
            .verify(&self.signed, &self.quote_signature)
            .is_ok()
    }

    /// Reference for the breakdown: the quote signature alone, with ring (dcap-qvl's backend).
    pub fn one_verify_ring(&self) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &self.attestation_key,
        )
        .verify(&self.signed, &self.quote_signature)
        .is_ok()
    }
}

/// One quote, ready for every contender.
pub struct Case {
    /// Short id (criterion group suffix, table row).
    pub id: &'static str,
    /// The raw quote.
    pub quote: Vec<u8>,
    /// Verification time, Unix seconds (from `expected.json`).
    pub now: i64,
    /// Whether the enclave is a debug enclave (dcap-qvl then needs `allow_debug(true)`).
    pub debug: bool,
    /// confkube's decoded collateral.
    pub collateral: Collateral,
    /// The Intel SGX Root CA as a confkube trust anchor.
    pub anchor: TrustAnchor,
    /// dcap-qvl's collateral, already deserialized.
    pub qvl_collateral: dcap_qvl::QuoteCollateralV3,
    /// The Intel SGX Root CA certificate, DER (dcap-qvl's trust input).
    pub root_der: Vec<u8>,
    /// Inputs of the floor.
    pub floor: FloorInput,
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn unhex(field: &str, s: &str) -> Vec<u8> {
    hex::decode(s.trim()).unwrap_or_else(|e| panic!("collateral field {field}: {e}"))
}

/// dcap-qvl's collateral struct from confkube's decoded document (same JSON encoding; the hex
/// fields are decoded here because dcap-qvl's serde form of them is raw bytes).
fn qvl_collateral(c: &Collateral) -> dcap_qvl::QuoteCollateralV3 {
    let d = c.document();
    dcap_qvl::QuoteCollateralV3 {
        pck_crl_issuer_chain: d.pck_crl_issuer_chain.clone(),
        root_ca_crl: unhex("root_ca_crl", &d.root_ca_crl),
        pck_crl: unhex("pck_crl", &d.pck_crl),
        tcb_info_issuer_chain: d.tcb_info_issuer_chain.clone(),
        tcb_info: d.tcb_info.clone(),
        tcb_info_signature: unhex("tcb_info_signature", &d.tcb_info_signature),
        qe_identity_issuer_chain: d.qe_identity_issuer_chain.clone(),
        qe_identity: d.qe_identity.clone(),
        qe_identity_signature: unhex("qe_identity_signature", &d.qe_identity_signature),
        pck_certificate_chain: d.pck_certificate_chain.clone(),
    }
}

/// The public key of the first certificate of a PEM chain (the PCK leaf).
fn pem_leaf_key(pem: &[u8]) -> Vec<u8> {
    let first = x509_parser::pem::Pem::iter_from_buffer(pem)
        .next()
        .expect("the PCK chain has no PEM block")
        .expect("the PCK chain's first PEM block does not decode");
    let cert = first
        .parse_x509()
        .expect("the PCK leaf is not an X.509 certificate");
    cert.public_key().subject_public_key.data.to_vec()
}

fn floor_input(raw: &[u8]) -> FloorInput {
    let q = Quote::parse(raw).expect("the quote does not parse");
    let sig = &q.signature;
    let pem = sig
        .certification_data
        .pck_chain_pem()
        .expect("benchmarked quotes carry a PCK chain (certification data type 5)");
    let mut attestation_key = [4u8; 65];
    attestation_key[1..].copy_from_slice(&sig.attestation_key);
    FloorInput {
        signed: raw[..Quote::SIGNED_LEN].to_vec(),
        quote_signature: sig.quote_signature,
        attestation_key,
        qe_report: sig.qe_report.to_bytes(),
        qe_report_signature: sig.qe_report_signature,
        pck_key: pem_leaf_key(pem),
    }
}

/// Loads every case; `None` (after a notice) when the test data is absent.
pub fn load_cases() -> Option<Vec<Case>> {
    let dcap_dir = testdata_root().join("dcap");
    if !dcap_dir.join("README.md").is_file() {
        eprintln!(
            "notice: test data not found at {}; set CONFKUBE_TESTDATA (nothing to benchmark)",
            dcap_dir.display()
        );
        return None;
    }
    let root_der = read(&dcap_dir.join("intel-sgx-root-ca.der"));
    let anchor = TrustAnchor::from_certificate(&root_der).expect("intel-sgx-root-ca.der");
    let cases = CASES
        .iter()
        .map(|&(id, set, quote_rel, coll_rel)| {
            let set_dir = dcap_dir.join(set);
            let expected: Value = serde_json::from_slice(&read(&set_dir.join("expected.json")))
                .expect("expected.json is JSON");
            let case = expected["cases"]
                .as_array()
                .expect("expected.json has cases")
                .iter()
                .find(|c| c["quote"] == quote_rel && c["collateral"] == coll_rel)
                .unwrap_or_else(|| {
                    panic!("{set}/expected.json has no case {quote_rel} + {coll_rel}")
                });
            assert_eq!(
                case["expected"]["verified"], true,
                "{id}: expected to verify"
            );
            let quote = read(&set_dir.join(quote_rel));
            let collateral = Collateral::from_json(&read(&set_dir.join(coll_rel)))
                .unwrap_or_else(|e| panic!("{id}: collateral: {e}"));
            Case {
                id,
                now: case["verification_time_unix"]
                    .as_i64()
                    .expect("verification_time_unix"),
                debug: case["expected"]["debug"].as_bool().expect("expected.debug"),
                floor: floor_input(&quote),
                qvl_collateral: qvl_collateral(&collateral),
                quote,
                collateral,
                anchor: anchor.clone(),
                root_der: root_der.clone(),
            }
        })
        .collect();
    Some(cases)
}

impl Case {
    /// dcap-qvl's verifier for this case (debug enclaves allowed only for the debug quote).
    pub fn qvl_verifier(&self) -> dcap_qvl::verify::QuoteVerifier {
        dcap_qvl::verify::QuoteVerifier::new(self.root_der.clone()).allow_debug(self.debug)
    }

    /// dcap-qvl's `now` (it takes unsigned seconds).
    pub fn qvl_now(&self) -> u64 {
        u64::try_from(self.now).expect("verification time after 1970")
    }

    /// A confkube verifier with default options whose cache holds this case's collateral,
    /// PCK chain and QE report (primed by one verification).
    pub fn warm_verifier(&self) -> Verifier {
        let v = Verifier::new(VerifyOptions::default());
        v.verify(&self.quote, &self.collateral, self.now, &self.anchor)
            .unwrap_or_else(|e| panic!("{}: confkube priming failed: {e}", self.id));
        v
    }

    /// Verifies with both implementations and panics loudly unless they agree on the TCB status
    /// and the advisory IDs (as sets; the order is printed when it differs). Also checks that
    /// the warm verifier really hits its cache and that the floor's signatures verify.
    pub fn check_agreement(&self) {
        let ours = dcap::verify(&self.quote, &self.collateral, self.now, &self.anchor)
            .unwrap_or_else(|e| panic!("{}: confkube rejects the quote: {e}", self.id));
        let theirs = self
            .qvl_verifier()
            .verify(&self.quote, &self.qvl_collateral, self.qvl_now())
            .unwrap_or_else(|e| panic!("{}: dcap-qvl rejects the quote: {e:?}", self.id));
        let our_ids = ours.advisory_ids().to_vec();
        let mut a = our_ids.clone();
        let mut b = theirs.advisory_ids.clone();
        a.sort();
        b.sort();
        println!(
            "agreement {:<28} confkube {} {:?} | dcap-qvl {} {:?}{}",
            self.id,
            ours.tcb_status().as_str(),
            our_ids,
            theirs.status,
            theirs.advisory_ids,
            if our_ids == theirs.advisory_ids {
                ""
            } else {
                " (same set, other order)"
            }
        );
        if ours.tcb_status().as_str() != theirs.status || a != b {
            panic!(
                "DISAGREEMENT on {}: confkube says {} {:?}, dcap-qvl 0.7.1 says {} {:?}",
                self.id,
                ours.tcb_status().as_str(),
                our_ids,
                theirs.status,
                theirs.advisory_ids
            );
        }
        let warm = self.warm_verifier();
        let before = warm.stats();
        warm.verify(&self.quote, &self.collateral, self.now, &self.anchor)
            .unwrap_or_else(|e| panic!("{}: warm verification failed: {e}", self.id));
        let after = warm.stats();
        assert!(
            after.collateral_hits == before.collateral_hits + 1
                && after.pck_hits == before.pck_hits + 1,
            "{}: the primed verifier did not hit its cache ({before:?} -> {after:?})",
            self.id
        );
        assert!(
            self.floor.run(),
            "{}: the floor's signatures do not verify",
            self.id
        );
    }
}
