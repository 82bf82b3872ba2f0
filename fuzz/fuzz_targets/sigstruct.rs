//! Fuzz target: the strict SIGSTRUCT codec (`enclave::sigstruct::Sigstruct`).
//!
//! Properties: parsing never panics; whatever parses encodes back to exactly the input bytes;
//! the 256 signed bytes rebuild the same header and body (`from_signed_data`); verification
//! (RSA e = 3, q1/q2) and MRSIGNER never panic on arbitrary key material. Seeds: the
//! SIGSTRUCTs of `shared/testdata/enclaves` (`encl.ss`, `sig1.sigstruct.bin`,
//! `le_prod_css.bin`).
#![no_main]

use enclave::sigstruct::Sigstruct;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Sigstruct::parse(data) else { return };
    let encoded = s.encode();
    assert!(encoded[..] == data[..], "parse -> encode is not byte-identical");
    let signed = s.signed_data();
    let rebuilt = Sigstruct::from_signed_data(&signed).expect("signed data of a parsed SIGSTRUCT");
    assert!(rebuilt.signed_data() == signed, "from_signed_data -> signed_data differs");
    let _ = s.verify();
    let _ = s.mrsigner();
});
