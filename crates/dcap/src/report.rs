//! The JSON result shapes of DESIGN.md §4 (SGX, and TDX with `"tee": "tdx"`), shared by the CLI
//! and the service.

use crate::error::VerifyError;
use crate::tdx::{VerifiedDcapQuote, VerifiedTdxQuote};
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

/// `{"verified": false, "error": CODE, "message": "..."}`; the message includes the error's
/// sources ([`VerifyError::full_message`]).
pub fn failure_json(e: &VerifyError) -> Value {
    json!({"verified": false, "error": e.code(), "message": e.full_message()})
}

/// The JSON result of a verified TDX quote: `{"verified": true, "tee": "tdx", "tcb_status",
/// "advisory_ids", "mr_td", "rtmr0".."rtmr3", "mr_config_id", "mr_owner", "mr_owner_config",
/// "td_attributes", "debug", "xfam", "report_data", "fmspc", "qe_tcb_status",
/// "tdx_module_tcb_status", ...}`. Byte fields are lowercase hex in report byte order
/// (`td_attributes` and `xfam` as their 8 little-endian bytes, like MRTD).
pub fn tdx_success_json(v: &VerifiedTdxQuote) -> Value {
    let r = v.report();
    let mut out = json!({
        "verified": true,
        "tee": "tdx",
        "tcb_status": v.tcb_status().as_str(),
        "advisory_ids": v.advisory_ids(),
        "mr_td": r.mr_td.to_hex(),
        "rtmr0": r.rt_mr[0].to_hex(),
        "rtmr1": r.rt_mr[1].to_hex(),
        "rtmr2": r.rt_mr[2].to_hex(),
        "rtmr3": r.rt_mr[3].to_hex(),
        "mr_config_id": r.mr_config_id.to_hex(),
        "mr_owner": r.mr_owner.to_hex(),
        "mr_owner_config": r.mr_owner_config.to_hex(),
        "td_attributes": hex::encode(r.td_attributes.to_bytes()),
        "debug": v.debug(),
        "xfam": hex::encode(r.xfam.to_le_bytes()),
        "report_data": r.report_data.to_hex(),
        "fmspc": hex::encode(v.fmspc()),
        "qe_tcb_status": v.qe_tcb_status().as_str(),
        "tdx_module_tcb_status": v.tdx_module_tcb_status().as_str(),
        "tdx_module_identity": v.tdx_module_identity(),
        "platform_tcb_status": v.platform_tcb_status().as_str(),
        "mr_seam": r.mr_seam.to_hex(),
        "mr_signer_seam": r.mr_signer_seam.to_hex(),
        "seam_attributes": hex::encode(r.seam_attributes),
        "tee_tcb_svn": hex::encode(r.tee_tcb_svn),
        "pce_id": hex::encode(v.pce_id()),
        "tcb_date": v.tcb_date(),
        "tcb_evaluation_data_number": v.tcb_evaluation_data_number(),
        "quote_version": v.header().version,
        "body_type": v.body().body_type(),
        "trailing_zero_bytes": v.trailing_zero_bytes(),
        "collateral_valid_until": v.collateral_valid_until(),
    });
    if let Some(o) = out.as_object_mut() {
        if let Some(f) = v.body().td15() {
            o.insert("tee_tcb_svn2".into(), hex::encode(f.tee_tcb_svn2).into());
            o.insert("mr_servicetd".into(), f.mr_service_td.to_hex().into());
        }
        if !v.revocation_checked() {
            o.insert("revocation_checked".into(), Value::Bool(false));
        }
    }
    out
}

/// [`success_json`] or [`tdx_success_json`], by TEE.
pub fn dcap_success_json(v: &VerifiedDcapQuote) -> Value {
    match v {
        VerifiedDcapQuote::Sgx(v) => success_json(v),
        VerifiedDcapQuote::Tdx(v) => tdx_success_json(v),
    }
}
