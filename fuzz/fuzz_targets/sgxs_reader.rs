//! Fuzz target: the Fortanix SGXS stream reader (`enclave::sgxs::measure_sgxs`).
//!
//! Properties: never panics; a stream that measures is canonical, so its MRENCLAVE is the
//! SHA-256 of the measured records, which for a stream without UNMEASRD chunks is the whole
//! input; the counts agree with the stream length. Seed: `enarx-sgx-encl/encl.sgxs`.
#![no_main]

use enclave::sgxs::measure_sgxs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = measure_sgxs(data) else { return };
    assert_eq!(s.stream_len, data.len() as u64);
    assert_eq!(
        s.stream_len,
        64 * (1 + s.pages_added) + (64 + 256) * (s.chunks_extended + s.chunks_unmeasured)
    );
    if s.chunks_unmeasured == 0 {
        let d = enclave::measure::raw_sha256(data);
        assert!(d == s.mrenclave.0, "MRENCLAVE is not SHA-256 of the stream");
    }
});
