//! The JSON result shapes of DESIGN.md §4 (SGX, and TDX with `"tee": "tdx"`), shared by the CLI
//! and the service.
//!
//! Each shape is one borrowed `Serialize` struct: [`success_json`] and [`tdx_success_json`]
//! build a `serde_json::Value` from it, [`write_dcap_success_json`] writes the same object
//! straight to bytes (no intermediate map, hex written in place), for the batch path. The
//! fields are declared in byte order of their names, the order a `serde_json::Value` object
//! keeps, so both give the same text.

use crate::error::VerifyError;
use crate::tdx::{VerifiedDcapQuote, VerifiedTdxQuote};
use crate::verify::VerifiedQuote;
use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use std::fmt;

/// Bytes serialized as lowercase hex text, written in place.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 128];
        for chunk in self.0.chunks(64) {
            let out = buf.get_mut(..chunk.len() * 2).unwrap_or_default();
            // The slice is exactly twice the chunk and hex digits are ASCII: neither fails.
            if hex::encode_to_slice(chunk, out).is_ok()
                && let Ok(text) = std::str::from_utf8(out)
            {
                f.write_str(text)?;
            }
        }
        Ok(())
    }
}

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The SGX success object; fields in name order.
#[derive(Serialize)]
struct SgxJson<'a> {
    advisory_ids: &'a [String],
    collateral_valid_until: i64,
    debug: bool,
    fmspc: Hex<'a>,
    isv_prod_id: u16,
    isv_svn: u16,
    mrenclave: Hex<'a>,
    mrsigner: Hex<'a>,
    pce_id: Hex<'a>,
    platform_tcb_status: &'static str,
    qe_tcb_status: &'static str,
    quote_version: u16,
    report_data: Hex<'a>,
    #[serde(skip_serializing_if = "is_true")]
    revocation_checked: bool,
    tcb_date: Option<&'a str>,
    tcb_evaluation_data_number: Option<u32>,
    tcb_status: &'static str,
    verified: bool,
}

impl<'a> SgxJson<'a> {
    fn new(v: &'a VerifiedQuote, fmspc: &'a [u8; 6], pce_id: &'a [u8; 2]) -> Self {
        let r = v.report();
        Self {
            advisory_ids: v.advisory_ids(),
            collateral_valid_until: v.collateral_valid_until(),
            debug: v.debug(),
            fmspc: Hex(fmspc),
            isv_prod_id: r.isv_prod_id,
            isv_svn: r.isv_svn,
            mrenclave: Hex(r.mr_enclave.as_bytes()),
            mrsigner: Hex(r.mr_signer.as_bytes()),
            pce_id: Hex(pce_id),
            platform_tcb_status: v.platform_tcb_status().as_str(),
            qe_tcb_status: v.qe_tcb_status().as_str(),
            quote_version: v.header().version,
            report_data: Hex(r.report_data.as_bytes()),
            revocation_checked: v.revocation_checked(),
            tcb_date: v.tcb_date(),
            tcb_evaluation_data_number: v.tcb_evaluation_data_number(),
            tcb_status: v.tcb_status().as_str(),
            verified: true,
        }
    }
}

/// The TDX success object; fields in name order.
#[derive(Serialize)]
struct TdxJson<'a> {
    advisory_ids: &'a [String],
    body_type: u16,
    collateral_valid_until: i64,
    debug: bool,
    fmspc: Hex<'a>,
    mr_config_id: Hex<'a>,
    mr_owner: Hex<'a>,
    mr_owner_config: Hex<'a>,
    mr_seam: Hex<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mr_servicetd: Option<Hex<'a>>,
    mr_signer_seam: Hex<'a>,
    mr_td: Hex<'a>,
    pce_id: Hex<'a>,
    platform_tcb_status: &'static str,
    qe_tcb_status: &'static str,
    quote_version: u16,
    report_data: Hex<'a>,
    #[serde(skip_serializing_if = "is_true")]
    revocation_checked: bool,
    rtmr0: Hex<'a>,
    rtmr1: Hex<'a>,
    rtmr2: Hex<'a>,
    rtmr3: Hex<'a>,
    seam_attributes: Hex<'a>,
    tcb_date: Option<&'a str>,
    tcb_evaluation_data_number: Option<u32>,
    tcb_status: &'static str,
    td_attributes: Hex<'a>,
    tdx_module_identity: Option<&'a str>,
    tdx_module_tcb_status: &'static str,
    tee: &'static str,
    tee_tcb_svn: Hex<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tee_tcb_svn2: Option<Hex<'a>>,
    trailing_zero_bytes: usize,
    verified: bool,
    xfam: Hex<'a>,
}

/// The little-endian byte forms TDX reports its attribute words in.
struct TdxWords {
    fmspc: [u8; 6],
    pce_id: [u8; 2],
    td_attributes: [u8; 8],
    xfam: [u8; 8],
}

impl TdxWords {
    fn new(v: &VerifiedTdxQuote) -> Self {
        let r = v.report();
        Self {
            fmspc: v.fmspc(),
            pce_id: v.pce_id(),
            td_attributes: r.td_attributes.to_bytes(),
            xfam: r.xfam.to_le_bytes(),
        }
    }
}

impl<'a> TdxJson<'a> {
    fn new(v: &'a VerifiedTdxQuote, w: &'a TdxWords) -> Self {
        let r = v.report();
        let td15 = v.body().td15();
        Self {
            advisory_ids: v.advisory_ids(),
            body_type: v.body().body_type(),
            collateral_valid_until: v.collateral_valid_until(),
            debug: v.debug(),
            fmspc: Hex(&w.fmspc),
            mr_config_id: Hex(r.mr_config_id.as_bytes()),
            mr_owner: Hex(r.mr_owner.as_bytes()),
            mr_owner_config: Hex(r.mr_owner_config.as_bytes()),
            mr_seam: Hex(r.mr_seam.as_bytes()),
            mr_servicetd: td15.map(|f| Hex(f.mr_service_td.as_bytes())),
            mr_signer_seam: Hex(r.mr_signer_seam.as_bytes()),
            mr_td: Hex(r.mr_td.as_bytes()),
            pce_id: Hex(&w.pce_id),
            platform_tcb_status: v.platform_tcb_status().as_str(),
            qe_tcb_status: v.qe_tcb_status().as_str(),
            quote_version: v.header().version,
            report_data: Hex(r.report_data.as_bytes()),
            revocation_checked: v.revocation_checked(),
            rtmr0: Hex(r.rt_mr[0].as_bytes()),
            rtmr1: Hex(r.rt_mr[1].as_bytes()),
            rtmr2: Hex(r.rt_mr[2].as_bytes()),
            rtmr3: Hex(r.rt_mr[3].as_bytes()),
            seam_attributes: Hex(&r.seam_attributes),
            tcb_date: v.tcb_date(),
            tcb_evaluation_data_number: v.tcb_evaluation_data_number(),
            tcb_status: v.tcb_status().as_str(),
            td_attributes: Hex(&w.td_attributes),
            tdx_module_identity: v.tdx_module_identity(),
            tdx_module_tcb_status: v.tdx_module_tcb_status().as_str(),
            tee: "tdx",
            tee_tcb_svn: Hex(&r.tee_tcb_svn),
            tee_tcb_svn2: td15.map(|f| Hex(&f.tee_tcb_svn2)),
            trailing_zero_bytes: v.trailing_zero_bytes(),
            verified: true,
            xfam: Hex(&w.xfam),
        }
    }
}

/// Serializes infallibly-shaped data (no maps with non-string keys, no failing `Serialize`)
/// into a `Value`.
fn value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `{"verified": true, "tcb_status", "advisory_ids", "mrenclave", "mrsigner", "isv_prod_id",
/// "isv_svn", "debug", "report_data", "fmspc", "qe_tcb_status", ...}`; `"revocation_checked":
/// false` is added only when CRLs were not checked.
pub fn success_json(v: &VerifiedQuote) -> Value {
    let (fmspc, pce_id) = (v.fmspc(), v.pce_id());
    value(&SgxJson::new(v, &fmspc, &pce_id))
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
/// (`td_attributes` and `xfam` as their 8 little-endian bytes, like MRTD); TD report 1.5
/// bodies add `tee_tcb_svn2` and `mr_servicetd`.
pub fn tdx_success_json(v: &VerifiedTdxQuote) -> Value {
    let w = TdxWords::new(v);
    value(&TdxJson::new(v, &w))
}

/// [`success_json`] or [`tdx_success_json`], by TEE.
pub fn dcap_success_json(v: &VerifiedDcapQuote) -> Value {
    match v {
        VerifiedDcapQuote::Sgx(v) => success_json(v),
        VerifiedDcapQuote::Tdx(v) => tdx_success_json(v),
    }
}

/// Writes the text of [`dcap_success_json`] (compact, no newline) to `out`, without building
/// the `Value`; the only error is `out`'s.
pub fn write_dcap_success_json<W: std::io::Write>(
    out: W,
    v: &VerifiedDcapQuote,
) -> std::io::Result<()> {
    match v {
        VerifiedDcapQuote::Sgx(v) => {
            let (fmspc, pce_id) = (v.fmspc(), v.pce_id());
            serde_json::to_writer(out, &SgxJson::new(v, &fmspc, &pce_id))
        }
        VerifiedDcapQuote::Tdx(v) => {
            let w = TdxWords::new(v);
            serde_json::to_writer(out, &TdxJson::new(v, &w))
        }
    }
    .map_err(std::io::Error::from)
}
