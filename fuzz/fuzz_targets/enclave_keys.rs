//! Fuzz target: the RSA key readers (`enclave::key::Key::from_pem`: PEM via the `pem` crate,
//! then the strict DER walker for PKCS#1, PKCS#8 and SPKI).
//!
//! Properties: never panics on any text; a key that is accepted is 3072-bit with e = 3 and
//! its MRSIGNER is stable. Seeds: the PEM keys of `shared/testdata/enclaves`.
#![no_main]

use enclave::key::Key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(k) = Key::from_pem(text) else { return };
    assert_eq!(k.public().modulus_le().len(), 384);
    assert!(k.public().mrsigner() == k.public().mrsigner());
});
