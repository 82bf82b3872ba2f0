//! Fuzz target: the strict SGX quote codec (`sgx_types::Quote`).
//!
//! Property: parsing never panics, and whenever arbitrary bytes parse as a quote, encoding the
//! result gives back exactly those bytes (the codec is strict: no trailing bytes, no ignored
//! length fields, no normalisation). Seeds: the real quotes of `shared/testdata/dcap`, copied into
//! `fuzz/corpus/quote_parse/` at run time by `scripts/fuzz-smoke.sh`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sgx_types::Quote;

fuzz_target!(|data: &[u8]| {
    if let Ok(quote) = Quote::parse(data) {
        let encoded = quote.to_bytes();
        assert!(
            encoded == data,
            "parse -> to_bytes is not byte-identical: input {} bytes, encoded {} bytes",
            data.len(),
            encoded.len()
        );
    }
});
