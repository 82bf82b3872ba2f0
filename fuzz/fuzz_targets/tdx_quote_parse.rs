//! Fuzz target: the strict TDX quote codec (`sgx_types::TdxQuote`) and the TEE dispatch of
//! `sgx_types::DcapQuote`.
//!
//! Property: parsing never panics, and whenever arbitrary bytes parse as a TDX quote, encoding
//! the result gives back exactly those bytes (trailing zero padding included; any non-zero
//! trailing byte is refused). `DcapQuote::parse` agrees with the parser of the TEE it picks.
//! Seeds: the real TDX quotes of `shared/testdata/dcap/tdx`, copied into
//! `fuzz/corpus/tdx_quote_parse/` at run time by `scripts/fuzz-smoke.sh`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sgx_types::{DcapQuote, Quote, TdxQuote};

fuzz_target!(|data: &[u8]| {
    let tdx = TdxQuote::parse(data);
    if let Ok(quote) = &tdx {
        let encoded = quote.to_bytes();
        assert!(
            encoded == data,
            "parse -> to_bytes is not byte-identical: input {} bytes, encoded {} bytes",
            data.len(),
            encoded.len()
        );
        assert!(quote.signed_len() <= data.len());
    }
    match DcapQuote::parse(data) {
        Ok(DcapQuote::Tdx(q)) => assert!(tdx.as_ref() == Ok(&*q)),
        Ok(DcapQuote::Sgx(q)) => assert!(Quote::parse(data) == Ok(*q)),
        Ok(_) | Err(_) => {}
    }
});
