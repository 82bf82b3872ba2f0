//! What MAA policy evaluation adds to an attestation request, for Microsoft's SGX examples:
//! building the incoming claim set from the verified quote's fields, and evaluating.
//!
//! `cargo bench -p maa-policy --bench evaluate` (target: under 10 µs per request).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use criterion::{Criterion, criterion_group};
use maa_policy::Policy;
use maa_policy::sgx::SgxEvidence;
use std::hint::black_box;

fn evidence() -> SgxEvidence {
    SgxEvidence {
        mrenclave: [0x27; 32],
        mrsigner: [0x2d; 32],
        product_id: 1,
        svn: 1,
        debuggable: false,
        report_data: vec![7; 64],
        runtime_data: Some(br#"{"keys":[{"kid":"k1","kty":"RSA"}],"n":[1,2,3]}"#.to_vec()),
        runtime_json: Some(r#"{"keys":[{"kid":"k1","kty":"RSA"}],"n":[1,2,3]}"#.into()),
        inittime_json: None,
        tcb_status: "UpToDate".into(),
        advisory_ids: vec!["INTEL-SA-00615".into(), "INTEL-SA-00657".into()],
        fmspc: [0xc0, 0xff, 0xee, 0, 0, 0],
        tcb_evaluation_data_number: Some(17),
    }
}

fn bench(c: &mut Criterion) {
    let ev = evidence();
    let signer = hex::encode(ev.mrsigner);
    let examples = [
        (
            "sample_custom",
            include_str!("../tests/policies/sample_custom.policy").replace("MRSIGNER", &signer),
        ),
        (
            "default_sgx",
            include_str!("../tests/policies/default_sgx.policy").to_string(),
        ),
        (
            "multi",
            include_str!("../tests/policies/multi.policy").replace("MRSIGNER", &signer),
        ),
        (
            "jwt_unsigned",
            include_str!("../tests/policies/jwt_unsigned.policy").to_string(),
        ),
        (
            "jwt_signed",
            include_str!("../tests/policies/jwt_signed.policy").to_string(),
        ),
        (
            "v12_functions",
            include_str!("../tests/policies/v12_functions.policy").to_string(),
        ),
    ];
    let mut g = c.benchmark_group("maa_policy");
    g.bench_function("claims", |b| b.iter(|| black_box(&ev).claims()));
    for (name, text) in &examples {
        let p = Policy::parse(text).unwrap();
        // Every example is exercised as it would be in a request (the multi-enclave example
        // denies a release enclave: the denial path is measured too).
        let _ = p.evaluate(&ev.claims());
        g.bench_function(format!("claims+evaluate/{name}"), |b| {
            b.iter(|| black_box(&p).evaluate(&black_box(&ev).claims()))
        });
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| Policy::parse(black_box(text)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
