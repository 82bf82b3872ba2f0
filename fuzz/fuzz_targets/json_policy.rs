//! Fuzz target: confkube JSON attestation policies (`attest::policy::Policy::from_json` and
//! `evaluate`), the parser an unauthenticated client reaches through `draftPolicyForAttestation`.
//!
//! Input: 8 header bytes that build the evidence (ISVPRODID, ISVSVN, flags, TCB status, the
//! MRENCLAVE and MRSIGNER fill bytes, so `"0101…"` in a rule can match), then the policy text.
//! Properties: parsing and evaluating never panic; a policy that parses is re-parsed from its
//! canonical JSON (`to_json`) to the same document, hash and verdict; a denial names every rule.
#![no_main]

use attest::policy::{Evidence, Policy, TdxEvidence};
use dcap::TcbStatus;
use libfuzzer_sys::fuzz_target;

const STATUSES: [&str; 9] = [
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
];

fn status(b: u8) -> TcbStatus {
    TcbStatus::parse(STATUSES[usize::from(b) % STATUSES.len()]).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((head, text)) = data.split_first_chunk::<8>() else { return };
    let [p0, p1, s0, s1, flags, tcb, mre, mrs] = *head;
    let evidence = Evidence {
        mrenclave: [mre; 32],
        mrsigner: [mrs; 32],
        isv_prod_id: u16::from_le_bytes([p0, p1]),
        isv_svn: u16::from_le_bytes([s0, s1]),
        debug: flags & 1 != 0,
        tcb_status: status(tcb),
        advisory_ids: if flags & 2 != 0 {
            vec!["INTEL-SA-00334".into(), "INTEL-SA-00615".into()]
        } else {
            vec![]
        },
        revocation_checked: flags & 4 != 0,
        tdx: (flags & 8 != 0).then(|| TdxEvidence {
            mr_td: [mre; 48],
            rtmr: [[mrs; 48]; 4],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            tdx_module_tcb_status: status(tcb >> 4),
        }),
    };
    let Ok(policy) = Policy::from_json(text) else { return };
    let verdict = policy.evaluate(&evidence);
    if let Err(denial) = &verdict {
        assert_eq!(denial.violations.len(), policy.document().rules.len(), "one per rule");
    }
    let canonical = policy.to_json();
    let again = Policy::from_json(canonical.as_bytes()).expect("a policy's canonical JSON parses");
    assert_eq!(again.to_json(), canonical);
    assert_eq!(again.hash(), policy.hash());
    assert_eq!(again.evaluate(&evidence), verdict);
});
