//! Fuzz target: the attestation request bodies an unauthenticated client sends
//! (`POST /attest/SgxEnclave`, `/attest/TdxVm`, `/attest/OpenEnclave`): the serde models
//! `attest::claims::{AttestRequest, AttestOpenEnclaveRequest}`, `decode_b64`, `decode_data`,
//! `oe_report_quote` and the draft policy's `ActivePolicy::parse`, in the order the server runs
//! them.
//!
//! The first input byte picks the shape (even: `AttestRequest`, odd: `AttestOpenEnclaveRequest`,
//! and for 0xff the rest is a raw Open Enclave report). Properties: nothing panics; every error
//! is `invalid-request`; decoded base64 re-encodes (base64url unpadded and standard padded) to
//! text that decodes to the same bytes; decoded data carries JSON exactly when `dataType` says
//! JSON; an Open Enclave report's quote is the report after its 16-byte header.
#![no_main]

use attest::claims::{
    self, AttestOpenEnclaveRequest, AttestRequest, RequestError, RuntimeData,
};
use attest::policy_doc::ActivePolicy;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;

fn code(e: &RequestError) -> &'static str {
    let c = e.code();
    assert_eq!(c, "invalid-request", "{e}");
    c
}

fn b64(field: &str, text: &str) -> Option<Vec<u8>> {
    match claims::decode_b64(field, text) {
        Ok(bytes) => {
            for again in [URL_SAFE_NO_PAD.encode(&bytes), STANDARD.encode(&bytes)] {
                assert_eq!(claims::decode_b64(field, &again).as_ref(), Ok(&bytes), "{again}");
            }
            Some(bytes)
        }
        Err(e) => {
            code(&e);
            None
        }
    }
}

fn data(field: &str, d: &RuntimeData) {
    match claims::decode_data(field, d) {
        Ok(decoded) => {
            assert_eq!(Some(&decoded.bytes), b64(field, &d.data).as_ref());
            let json = d.data_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("JSON"));
            assert_eq!(decoded.json.is_some(), json);
        }
        Err(e) => {
            code(&e);
        }
    }
}

fn oe_report(report: &[u8]) {
    match claims::oe_report_quote(report) {
        Ok(quote) => assert_eq!(Some(quote), report.get(16..)),
        Err(e) => {
            code(&e);
        }
    }
}

fn rest(req: &AttestRequest) {
    for (field, d) in [("runtimeData", &req.runtime_data), ("initTimeData", &req.init_time_data)] {
        if let Some(d) = d {
            data(field, d);
        }
    }
    if let Some(draft) = &req.draft_policy_for_attestation {
        let _ = ActivePolicy::parse(draft.as_bytes());
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&shape, body)) = input.split_first() else { return };
    if shape == 0xff {
        oe_report(body);
        return;
    }
    if shape % 2 == 0 {
        let Ok(req) = serde_json::from_slice::<AttestRequest>(body) else { return };
        b64("quote", &req.quote);
        rest(&req);
    } else {
        let Ok(req) = serde_json::from_slice::<AttestOpenEnclaveRequest>(body) else { return };
        if let Some(report) = b64("report", &req.report) {
            oe_report(&report);
        }
        rest(&AttestRequest::from(req));
    }
});
