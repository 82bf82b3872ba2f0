//! Criterion benchmark: per real SGX quote, (a) confkube warm, (b) confkube cold,
//! (c) dcap-qvl 0.7.1, (d) the floor of two ECDSA-P256 verifies plus SHA-256 of the signed data,
//! all in one run. Before any timing, confkube and dcap-qvl must agree on every quote's TCB
//! status and advisory IDs (the run panics otherwise). See `src/lib.rs` for the contenders and
//! `bash bench/dcap-verify.sh` for the command and the summary table.
//!
//! **Clock.** This machine is shared (other builds run beside the benchmark), so by default the
//! time measured is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which time spent
//! descheduled does not inflate; `DCAP_BENCH_CLOCK=wall` measures wall-clock time instead. Both
//! are in nanoseconds per iteration.

use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use dcap::{CacheLimits, Verifier, VerifyOptions};
use dcap_compare::{BREAKDOWN_CASES, CONTENDERS, Case, group_name, load_cases};
use std::hint::black_box;
use std::time::Duration;

/// Thread CPU time as a criterion measurement (nanoseconds).
struct ThreadCpuTime {
    /// Formats values the way wall time is formatted (both are nanoseconds).
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

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    let Some(cases) = load_cases() else {
        return;
    };
    for case in &cases {
        case.check_agreement();
    }
    for case in &cases {
        let mut g = c.benchmark_group(group_name(case.id));
        let [warm_id, cold_id, qvl_id, floor_id] = CONTENDERS.map(|(id, _)| id);

        let warm = case.warm_verifier();
        g.bench_function(warm_id, |b| {
            b.iter(|| {
                warm.verify(
                    black_box(&case.quote),
                    &case.collateral,
                    case.now,
                    &case.anchor,
                )
                .expect("warm verification")
            })
        });

        let cold = Verifier::uncached(VerifyOptions::default());
        g.bench_function(cold_id, |b| {
            b.iter(|| {
                cold.verify(
                    black_box(&case.quote),
                    &case.collateral,
                    case.now,
                    &case.anchor,
                )
                .expect("cold verification")
            })
        });

        let qvl = case.qvl_verifier();
        let qvl_now = case.qvl_now();
        g.bench_function(qvl_id, |b| {
            b.iter(|| {
                qvl.verify(black_box(&case.quote), &case.qvl_collateral, qvl_now)
                    .expect("dcap-qvl verification")
            })
        });

        g.bench_function(floor_id, |b| {
            b.iter(|| assert!(black_box(&case.floor).run()))
        });
        g.finish();
    }
    for case in cases.iter().filter(|c| BREAKDOWN_CASES.contains(&c.id)) {
        breakdown(c, case);
    }
}

/// Where cold time goes, through the public API only: the same verifier with parts of its cache
/// disabled, plus one ECDSA verify with each backend and the quote parser alone.
fn breakdown<M: Measurement>(c: &mut Criterion<M>, case: &Case) {
    let mut g = c.benchmark_group(format!("breakdown_{}", case.id));
    let limited = |pck_per_collateral, qe_reports_per_pck| {
        let v = Verifier::with_limits(
            VerifyOptions::default(),
            CacheLimits {
                collateral: 256,
                pck_per_collateral,
                qe_reports_per_pck,
            },
        );
        v.verify(&case.quote, &case.collateral, case.now, &case.anchor)
            .expect("priming");
        v
    };
    for (name, v) in [
        ("collateral_cached_pck_uncached", limited(0, 0)),
        ("pck_cached_qe_report_uncached", limited(1024, 0)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                v.verify(
                    black_box(&case.quote),
                    &case.collateral,
                    case.now,
                    &case.anchor,
                )
                .expect("verification")
            })
        });
    }
    g.bench_function("one_ecdsa_verify_aws_lc", |b| {
        b.iter(|| assert!(black_box(&case.floor).one_verify_aws_lc()))
    });
    g.bench_function("one_ecdsa_verify_ring", |b| {
        b.iter(|| assert!(black_box(&case.floor).one_verify_ring()))
    });
    g.bench_function("quote_parse", |b| {
        b.iter(|| sgx_types::Quote::parse(black_box(&case.quote)).expect("parse"))
    });
    g.finish();
}

fn run<M: Measurement>(c: Criterion<M>) {
    let mut c = c
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4))
        .sample_size(60)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}

fn main() {
    match std::env::var("DCAP_BENCH_CLOCK").as_deref() {
        Ok("wall") => {
            println!("clock: wall time");
            run(Criterion::default());
        }
        Ok("cpu") | Err(_) => {
            println!("clock: thread CPU time");
            run(Criterion::default().with_measurement(ThreadCpuTime { wall: WallTime }));
        }
        Ok(other) => panic!("DCAP_BENCH_CLOCK={other}: expected cpu or wall"),
    }
}
