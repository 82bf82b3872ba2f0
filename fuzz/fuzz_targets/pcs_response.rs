//! Fuzz target: PCS/PCCS responses as the collateral client reads them
//! (`attest::collateral::{split_signed_body, crl_der, chain_pem}`): the signed
//! `{"tcbInfo"|"enclaveIdentity": …, "signature": …}` bodies, CRL bodies (DER, PEM or hex) and
//! issuer-chain header values (URL-encoded PEM), all from a server the service does not control.
//!
//! The first input byte picks the parser (0, 1: signed body as TCB info / QE identity; 2: CRL;
//! 3: issuer chain). Properties: nothing panics; a signed object is cut out byte for byte (it is
//! a substring of the body and a JSON object) with a 128-digit lowercase hex signature; a CRL's
//! DER is accepted again as it is; an issuer chain starts with a PEM certificate and is accepted
//! again when it has no '%' left to decode.
#![no_main]

use attest::collateral::{chain_pem, crl_der, split_signed_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&which, body)) = input.split_first() else { return };
    match which % 4 {
        0 | 1 => {
            let object = if which % 4 == 0 { "tcbInfo" } else { "enclaveIdentity" };
            if let Ok((signed, signature)) = split_signed_body(body, object, "fuzz") {
                let text = std::str::from_utf8(body).expect("a parsed body is UTF-8");
                assert!(text.contains(&signed));
                // serde_json's RawValue accepts numbers a `Value` cannot hold (out of range),
                // so only the object shape of the cut-out text is checked here.
                assert!(signed.trim_start().starts_with('{') && signed.trim_end().ends_with('}'));
                assert_eq!(signature.len(), 128);
                assert!(signature.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            }
        }
        2 => {
            if let Ok(der) = crl_der(body, "fuzz") {
                assert_eq!(crl_der(&der, "fuzz").as_ref(), Ok(&der));
            }
        }
        _ => {
            if let Ok(pem) = chain_pem(body, "fuzz") {
                assert!(pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----"));
                if !pem.contains('%') {
                    assert_eq!(chain_pem(pem.as_bytes(), "fuzz").as_ref(), Ok(&pem));
                }
            }
        }
    }
});
