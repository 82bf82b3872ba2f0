//! Criterion benchmark for TDX: per real TDX quote of `shared/testdata/dcap/tdx/dcap-qvl` that
//! verifies, (a) confkube warm (`Verifier::verify_tdx` with its cache primed), (b) confkube cold
//! (`Verifier::uncached`), (c) dcap-qvl 0.7.1 `QuoteVerifier` with the collateral already
//! deserialized, and (d) one ECDSA-P256-SHA256 verify of the quote signature with aws-lc-rs,
//! all in one run. Targets (issue 17): (a) within 1.15x of (d); (b) no slower than (c).
//!
//! Before timing, confkube and dcap-qvl must agree on each quote's TCB status (the run panics
//! otherwise). Clock: the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), as in
//! `dcap_compare.rs`, because the machine is shared. Run it with `bash bench/tdx-verify.sh`.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use dcap::{Collateral, TrustAnchor, Verifier, VerifyOptions};
use dcap_compare::testdata_root;
use serde_json::Value;
use sgx_types::TdxQuote;
use std::hint::black_box;
use std::time::Duration;

struct ThreadCpuTime {
    wall: WallTime,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

struct TdCase {
    id: String,
    quote: Vec<u8>,
    now: i64,
    collateral: Collateral,
    qvl_collateral: dcap_qvl::QuoteCollateralV3,
    anchor: TrustAnchor,
    root_der: Vec<u8>,
    signed: Vec<u8>,
    quote_signature: [u8; 64],
    attestation_key: [u8; 65],
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).expect("collateral hex")
}

fn load() -> Vec<TdCase> {
    let dcap_dir = testdata_root().join("dcap");
    let dir = dcap_dir.join("tdx/dcap-qvl");
    let root_der = std::fs::read(dcap_dir.join("intel-sgx-root-ca.der")).expect("root");
    let anchor = TrustAnchor::from_certificate(&root_der).expect("root");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected.json"))
            .expect("expected.json is JSON");
    expected["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["expected"]["verified"] == true)
        .map(|c| {
            let quote = std::fs::read(dir.join(c["quote"].as_str().expect("quote"))).expect("q");
            let collateral = Collateral::from_json(
                &std::fs::read(dir.join(c["collateral"].as_str().expect("coll"))).expect("c"),
            )
            .expect("collateral");
            let d = collateral.document();
            let qvl_collateral = dcap_qvl::QuoteCollateralV3 {
                pck_crl_issuer_chain: d.pck_crl_issuer_chain.clone(),
                root_ca_crl: unhex(&d.root_ca_crl),
                pck_crl: unhex(&d.pck_crl),
                tcb_info_issuer_chain: d.tcb_info_issuer_chain.clone(),
                tcb_info: d.tcb_info.clone(),
                tcb_info_signature: unhex(&d.tcb_info_signature),
                qe_identity_issuer_chain: d.qe_identity_issuer_chain.clone(),
                qe_identity: d.qe_identity.clone(),
                qe_identity_signature: unhex(&d.qe_identity_signature),
                pck_certificate_chain: d.pck_certificate_chain.clone(),
            };
            let q = TdxQuote::parse(&quote).expect("TDX quote");
            let mut attestation_key = [4u8; 65];
            attestation_key[1..].copy_from_slice(&q.signature.attestation_key);
            TdCase {
                id: c["case"].as_str().expect("case").to_string(),
                now: c["verification_time_unix"].as_i64().expect("time"),
                signed: q.signed_bytes(),
                quote_signature: q.signature.quote_signature,
                attestation_key,
                quote,
                collateral,
                qvl_collateral,
                anchor: anchor.clone(),
                root_der: root_der.clone(),
            }
        })
        .collect()
}

impl TdCase {
    fn qvl(&self) -> dcap_qvl::verify::QuoteVerifier {
        dcap_qvl::verify::QuoteVerifier::new(self.root_der.clone())
    }

    fn one_verify(&self) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.attestation_key)
            .verify(&self.signed, &self.quote_signature)
            .is_ok()
    }

    fn check_agreement(&self) {
        let ours = Verifier::uncached(VerifyOptions::default())
            .verify_tdx(&self.quote, &self.collateral, self.now, &self.anchor)
            .unwrap_or_else(|e| panic!("{}: confkube rejects the quote: {e}", self.id));
        let theirs = self
            .qvl()
            .verify(&self.quote, &self.qvl_collateral, self.now as u64)
            .unwrap_or_else(|e| panic!("{}: dcap-qvl rejects the quote: {e:?}", self.id));
        println!(
            "agreement {:<20} confkube {} {:?} | dcap-qvl {} {:?}",
            self.id,
            ours.tcb_status().as_str(),
            ours.advisory_ids(),
            theirs.status,
            theirs.advisory_ids
        );
        assert_eq!(ours.tcb_status().as_str(), theirs.status, "{}", self.id);
        assert!(self.one_verify(), "{}: the quote signature", self.id);
    }
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    if !testdata_root().join("dcap/tdx/dcap-qvl/expected.json").is_file() {
        eprintln!("notice: TDX test data not found; set CONFKUBE_TESTDATA (nothing to benchmark)");
        return;
    }
    let cases = load();
    for case in &cases {
        case.check_agreement();
    }
    for case in &cases {
        let mut g = c.benchmark_group(format!("tdx_{}", case.id));
        let warm = Verifier::new(VerifyOptions::default());
        warm.verify_tdx(&case.quote, &case.collateral, case.now, &case.anchor)
            .expect("priming");
        g.bench_function("a_confkube_warm", |b| {
            b.iter(|| {
                warm.verify_tdx(black_box(&case.quote), &case.collateral, case.now, &case.anchor)
                    .expect("warm")
            })
        });
        let cold = Verifier::uncached(VerifyOptions::default());
        g.bench_function("b_confkube_cold", |b| {
            b.iter(|| {
                cold.verify_tdx(black_box(&case.quote), &case.collateral, case.now, &case.anchor)
                    .expect("cold")
            })
        });
        let qvl = case.qvl();
        g.bench_function("c_dcap_qvl_0.7.1", |b| {
            b.iter(|| {
                qvl.verify(black_box(&case.quote), &case.qvl_collateral, case.now as u64)
                    .expect("dcap-qvl")
            })
        });
        g.bench_function("d_one_p256_verify", |b| {
            b.iter(|| assert!(black_box(case).one_verify()))
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default()
        .with_measurement(ThreadCpuTime { wall: WallTime })
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4))
        .sample_size(60)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
