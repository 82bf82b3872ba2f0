//! Fuzz target: the MAA policy language (`maa_policy::Policy::parse` and `evaluate`).
//!
//! Properties: parsing arbitrary text never panics; a parse error points inside the text (its
//! line exists and its column is at most one past that line's last character); a policy that
//! parses evaluates without panicking against an SGX claim set (with JSON runtime data, so the
//! version 1.2 functions run), and parses again from its own text to an equal result. Seeds:
//! `crates/maa-policy/tests/policies/` (Microsoft's SGX examples and a 1.2 policy using every function).
#![no_main]

use libfuzzer_sys::fuzz_target;
use maa_policy::Policy;
use maa_policy::sgx::SgxEvidence;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Policy::parse(text) {
        Err(e) => {
            let lines: Vec<&str> = text.split('\n').collect();
            let line = usize::try_from(e.line).unwrap();
            assert!(line >= 1 && line <= lines.len(), "line {line} of {}", lines.len());
            let width = lines[line - 1].chars().count();
            let column = usize::try_from(e.column).unwrap();
            assert!(column >= 1 && column <= width + 1, "column {column} of {width}: {e}");
        }
        Ok(p) => {
            let ev = SgxEvidence {
                mrenclave: [1; 32],
                mrsigner: [2; 32],
                product_id: 1,
                svn: 2,
                debuggable: false,
                report_data: vec![0; 64],
                runtime_data: Some(br#"{"keys":[{"kid":"a"}],"n":[1,2]}"#.to_vec()),
                runtime_json: Some(r#"{"keys":[{"kid":"a"}],"n":[1,2]}"#.into()),
                tcb_status: "UpToDate".into(),
                ..SgxEvidence::default()
            };
            let first = p.evaluate(&ev.claims());
            let again = Policy::parse(p.text()).expect("a policy's own text parses");
            assert_eq!(first, again.evaluate(&ev.claims()));
        }
    }
});
