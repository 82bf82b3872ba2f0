//! Fuzz target: the signing-config readers (`enclave::config`: `Enclave.config.xml` through
//! roxmltree with sgx_sign's element/range rules, and the serde JSON signing config).
//!
//! Properties: never panics; an accepted `Enclave.config.xml` yields signing fields and either
//! a layout configuration or a typed refusal; every value it reports lies in the range
//! sgx_sign allows (ISVPRODID/ISVSVN 16 bits are enforced by the types). Seeds: the
//! `Enclave.config.xml` files of `shared/testdata/enclaves`.
#![no_main]

use enclave::config::{EnclaveConfig, signing_fields_from_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = signing_fields_from_text(text);
    if let Ok(c) = EnclaveConfig::parse(text) {
        let _ = c.signing_fields();
        if let Ok(s) = c.sdk_config() {
            assert!(s.tcs_num >= 1);
        }
        if let Some(v) = c.get("TCSPolicy") {
            assert!(v <= 1);
        }
    }
});
