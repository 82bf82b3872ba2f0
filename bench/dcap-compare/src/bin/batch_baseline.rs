//! The peer and the reference of `bench/dcap-batch.sh`, on the real quote
//! `dcap/dcap-qvl-sgx/sgx_quote`:
//!
//! * `batch_baseline write-batch FILE N`: writes a JSON Lines batch of N lines for
//!   `confkube quote verify --batch` (the quote, its collateral, its verification time from
//!   `expected.json`);
//! * `batch_baseline measure N`: a single-threaded dcap-qvl 0.7.1 loop of N verifications of that
//!   quote (collateral deserialized once, before timing), and N P-256 verifications of the quote
//!   signature with aws-lc-rs (the reference for per-quote CPU); prints one JSON object with
//!   wall and thread-CPU nanoseconds;
//! * `batch_baseline p256 N`: only the N P-256 verifications, for instruction counts under
//!   callgrind (`bench/dcap-batch.sh` with `CALLGRIND=1`);
//! * `batch_baseline qvl N`: only the N dcap-qvl verifications, for callgrind;
//! * `batch_baseline tdx-warm CASE N` / `tdx-p256 CASE N`: N warm confkube verifications of a
//!   real TDX quote, or N P-256 verifications of its signature (`bench/tdx-verify.sh` with
//!   `CALLGRIND=1`).
//!
//! Harness code: it panics with a message when its own setup fails.

use dcap_compare::{Case, load_cases};
use std::hint::black_box;
use std::time::Instant;

const CASE: &str = "dcap-qvl-sgx_sgx_quote";

fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    u128::try_from(ts.tv_sec).expect("seconds") * 1_000_000_000
        + u128::try_from(ts.tv_nsec).expect("nanoseconds")
}

/// Runs `f` n times; (wall ns, thread CPU ns) in total.
fn timed(n: usize, mut f: impl FnMut() -> bool) -> (u128, u128) {
    let (w0, c0) = (Instant::now(), thread_cpu_ns());
    for _ in 0..n {
        assert!(black_box(f()), "a verification failed");
    }
    (w0.elapsed().as_nanos(), thread_cpu_ns() - c0)
}

fn case() -> Case {
    load_cases()
        .expect("test data")
        .into_iter()
        .find(|c| c.id == CASE)
        .expect("the dcap-qvl-sgx case")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("write-batch") => {
            let (file, n) = (&args[2], args[3].parse::<usize>().expect("N"));
            let dir = dcap_compare::testdata_root().join("dcap/dcap-qvl-sgx");
            let c = case();
            let line = serde_json::json!({
                "quote": dir.join("sgx_quote"),
                "collateral": dir.join("sgx_quote_collateral.json"),
                "at": c.now,
            })
            .to_string();
            let text: String = (0..n).map(|_| format!("{line}\n")).collect();
            std::fs::write(file, text).expect("writing the batch file");
        }
        Some("measure") => {
            let n = args[2].parse::<usize>().expect("N");
            let c = case();
            c.check_agreement();
            let qvl = c.qvl_verifier();
            // One untimed call each, so that both loops start warm.
            assert!(qvl.verify(&c.quote, &c.qvl_collateral, c.qvl_now()).is_ok());
            let (qvl_wall, qvl_cpu) = timed(n, || {
                qvl.verify(black_box(&c.quote), &c.qvl_collateral, c.qvl_now())
                    .is_ok()
            });
            let (p256_wall, p256_cpu) = timed(n, || c.floor.one_verify_aws_lc());
            println!(
                "{}",
                serde_json::json!({
                    "n": n,
                    "dcap_qvl_wall_ns": qvl_wall,
                    "dcap_qvl_cpu_ns": qvl_cpu,
                    "p256_verify_wall_ns": p256_wall,
                    "p256_verify_cpu_ns": p256_cpu,
                })
            );
        }
        Some("p256") => {
            // N P-256 verifications only: run under callgrind with two N, the difference of
            // the instruction counts over the difference of N is one verify's instructions.
            let n = args[2].parse::<usize>().expect("N");
            let c = case();
            for _ in 0..n {
                assert!(black_box(c.floor.one_verify_aws_lc()), "a verification failed");
            }
        }
        Some("qvl") => {
            // Only the dcap-qvl loop (collateral deserialized before it), for callgrind.
            let n = args[2].parse::<usize>().expect("N");
            let c = case();
            let qvl = c.qvl_verifier();
            for _ in 0..n {
                let ok = qvl
                    .verify(black_box(&c.quote), &c.qvl_collateral, c.qvl_now())
                    .is_ok();
                assert!(black_box(ok), "a verification failed");
            }
        }
        Some(mode @ ("tdx-warm" | "tdx-p256")) => {
            // One TDX case of tdx/dcap-qvl (CASE = tdx_quote or tdx_quote_td15ex), N times:
            // warm verifications through one primed `dcap::Verifier`, or only the P-256
            // verification of its quote signature; for instruction counts under callgrind
            // (`bench/tdx-verify.sh` with `CALLGRIND=1`).
            let (case_id, n) = (&args[2], args[3].parse::<usize>().expect("N"));
            let dir = dcap_compare::testdata_root().join("dcap/tdx/dcap-qvl");
            let expected: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.join("expected.json")).expect("expected.json"),
            )
            .expect("expected.json is JSON");
            let c = expected["cases"]
                .as_array()
                .expect("cases")
                .iter()
                .find(|c| c["case"] == case_id.as_str())
                .expect("the TDX case");
            let path = |k: &str| dir.join(c[k].as_str().expect("path"));
            let quote = std::fs::read(path("quote")).expect("quote");
            let coll = dcap::Collateral::from_json(&std::fs::read(path("collateral")).expect("c"))
                .expect("collateral");
            let anchor =
                dcap::TrustAnchor::from_certificate(&std::fs::read(path("trust_anchor")).expect("r"))
                    .expect("root");
            let now = c["verification_time_unix"].as_i64().expect("time");
            let q = sgx_types::TdxQuote::parse(&quote).expect("TDX quote");
            let mut key = [4u8; 65];
            key[1..].copy_from_slice(&q.signature.attestation_key);
            let signed = q.signed_bytes();
            let v = dcap::Verifier::default();
            assert!(v.verify_tdx(&quote, &coll, now, &anchor).is_ok(), "prime");
            for _ in 0..n {
                let ok = if mode == "tdx-warm" {
                    v.verify_tdx(black_box(&quote), &coll, now, &anchor).is_ok()
                } else {
                    aws_lc_rs::signature::UnparsedPublicKey::new(
                        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                        &key,
                    )
                    .verify(black_box(&signed), &q.signature.quote_signature)
                    .is_ok()
                };
                assert!(black_box(ok), "a verification failed");
            }
        }
        _ => panic!(
            "usage: batch_baseline write-batch FILE N | measure N | p256 N | qvl N | tdx-warm CASE N | \
             tdx-p256 CASE N"
        ),
    }
}
