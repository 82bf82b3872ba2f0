//! The JSON result shape of DESIGN.md §4, shared by the CLI and the service.

use crate::error::VerifyError;
use crate::verify::VerifiedQuote;
use serde_json::{Value, json};

/// `{"verified": true, "tcb_status", "advisory_ids", "mrenclave", "mrsigner", "isv_prod_id",
/// "isv_svn", "debug", "report_data", "fmspc", "qe_tcb_status", ...}`; `"revocation_checked":
/// false` is added only when CRLs were not checked.
pub fn success_json(v: &VerifiedQuote) -> Value {
    let r = v.report();
    let mut out = json!({
        "verified": true,
        "tcb_status": v.tcb_status().as_str(),
        "advisory_ids": v.advisory_ids(),
        "mrenclave": r.mr_enclave.to_hex(),
        "mrsigner": r.mr_signer.to_hex(),
        "isv_prod_id": r.isv_prod_id,
        "isv_svn": r.isv_svn,
        "debug": v.debug(),
        "report_data": r.report_data.to_hex(),
        "fmspc": hex::encode(v.fmspc()),
        "qe_tcb_status": v.qe_tcb_status().as_str(),
        "platform_tcb_status": v.platform_tcb_status().as_str(),
        "pce_id": hex::encode(v.pce_id()),
        "tcb_date": v.tcb_date(),
        "tcb_evaluation_data_number": v.tcb_evaluation_data_number(),
        "quote_version": v.header().version,
        "collateral_valid_until": v.collateral_valid_until(),
    });
    if !v.revocation_checked()
        && let Some(o) = out.as_object_mut()
    {
        o.insert("revocation_checked".into(), Value::Bool(false));
    }
    out
}

/// `{"verified": false, "error": CODE, "message": "..."}`.
pub fn failure_json(e: &VerifyError) -> Value {
    json!({"verified": false, "error": e.code(), "message": e.to_string()})
}
