//! The peer and the reference of `bench/dcap-batch.sh`, on the real quote
//! `dcap/dcap-qvl-sgx/sgx_quote`:
//!
//! * `batch_baseline write-batch FILE N`: writes a JSON Lines batch of N lines for
//!   `confkube quote verify --batch` (the quote, its collateral, its verification time from
//!   `expected.json`);
//! * `batch_baseline measure N`: a single-threaded dcap-qvl 0.7.1 loop of N verifications of that
//!   quote (collateral deserialized once, before timing), and N P-256 verifications of the quote
//!   signature with aws-lc-rs (the reference for per-quote CPU); prints one JSON object with
//!   wall and thread-CPU nanoseconds.
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
        _ => panic!("usage: batch_baseline write-batch FILE N | measure N"),
    }
}
