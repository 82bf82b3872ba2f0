//! The incoming claims of a TDX attestation (Microsoft's TDX claim set, "Azure Attestation EAT
//! profile for TDX"), from the fields of a verified TD quote.
//!
//! The names and encodings are those the attestation service puts into a TD token: measurements
//! and attribute masks as lowercase hex of their bytes in the quote (`tdx_td_attributes` and
//! `tdx_xfam` little-endian, as in the TD report), flags as booleans, `tdx_seamsvn` as an
//! integer, `x-ms-attestation-type` = `tdxvm`.

use crate::claims::Claims;

/// TD_ATTRIBUTES.DEBUG (Intel TDX module ABI, TD_ATTRIBUTES bit 0).
pub const TD_ATTRIBUTES_DEBUG: u64 = 1 << 0;
/// TD_ATTRIBUTES.SEPT_VE_DISABLE (bit 28).
pub const TD_ATTRIBUTES_SEPT_VE_DISABLE: u64 = 1 << 28;
/// TD_ATTRIBUTES.PKS (bit 30).
pub const TD_ATTRIBUTES_PKS: u64 = 1 << 30;
/// TD_ATTRIBUTES.KL (bit 31).
pub const TD_ATTRIBUTES_KL: u64 = 1 << 31;
/// TD_ATTRIBUTES.PERFMON (bit 63).
pub const TD_ATTRIBUTES_PERFMON: u64 = 1 << 63;

/// What a TDX attestation tells the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxEvidence {
    /// MRTD.
    pub mr_td: [u8; 48],
    /// RTMR0..3.
    pub rtmr: [[u8; 48]; 4],
    /// MRCONFIGID.
    pub mr_config_id: [u8; 48],
    /// MROWNER.
    pub mr_owner: [u8; 48],
    /// MROWNERCONFIG.
    pub mr_owner_config: [u8; 48],
    /// MRSEAM.
    pub mr_seam: [u8; 48],
    /// MRSIGNER_SEAM.
    pub mr_signer_seam: [u8; 48],
    /// The report data.
    pub report_data: Vec<u8>,
    /// TD_ATTRIBUTES.
    pub td_attributes: u64,
    /// SEAM_ATTRIBUTES.
    pub seam_attributes: [u8; 8],
    /// XFAM.
    pub xfam: u64,
    /// TEE_TCB_SVN.
    pub tee_tcb_svn: [u8; 16],
    /// TEE_TCB_SVN2 and MRSERVICETD (TD report 1.5 only).
    pub td15: Option<([u8; 16], [u8; 48])>,
    /// The runtime data's JSON text, when sent as `dataType: "JSON"`.
    pub runtime_json: Option<String>,
    /// The init-time data's JSON text, when sent as `dataType: "JSON"`.
    pub inittime_json: Option<String>,
    /// The final TCB status (`UpToDate`, …).
    pub tcb_status: String,
    /// The TDX module's TCB status.
    pub tdx_module_tcb_status: String,
    /// Intel advisory IDs.
    pub advisory_ids: Vec<String>,
    /// FMSPC.
    pub fmspc: [u8; 6],
    /// The TCB evaluation data number of the TCB info that decided the status.
    pub tcb_evaluation_data_number: Option<u32>,
}

impl Default for TdxEvidence {
    fn default() -> Self {
        Self {
            mr_td: [0; 48],
            rtmr: [[0; 48]; 4],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            mr_seam: [0; 48],
            mr_signer_seam: [0; 48],
            report_data: Vec::new(),
            td_attributes: 0,
            seam_attributes: [0; 8],
            xfam: 0,
            tee_tcb_svn: [0; 16],
            td15: None,
            runtime_json: None,
            inittime_json: None,
            tcb_status: String::new(),
            tdx_module_tcb_status: String::new(),
            advisory_ids: Vec::new(),
            fmspc: [0; 6],
            tcb_evaluation_data_number: None,
        }
    }
}

impl TdxEvidence {
    /// Whether TD_ATTRIBUTES.DEBUG is set.
    pub fn debuggable(&self) -> bool {
        self.td_attributes & TD_ATTRIBUTES_DEBUG != 0
    }

    /// `tdx_seamsvn`: TEE_TCB_SVN[0..2] as a little-endian number (module ISVSVN, version).
    pub fn seamsvn(&self) -> u16 {
        let [isvsvn, version, ..] = self.tee_tcb_svn;
        u16::from_le_bytes([isvsvn, version])
    }

    /// The incoming claim set: MAA's TDX names and confkube's `x-confkube-*` claims.
    pub fn claims(&self) -> Claims {
        let mut c = Claims::new();
        let bit = |b: u64| self.td_attributes & b != 0;
        let debug = self.debuggable();
        c.push("x-ms-attestation-type", "tdxvm")
            .push("eat_profile", "https://aka.ms/maa-eat-profile-tdxvm")
            .push("intuse", "generic")
            .push("dbgstat", if debug { "enabled" } else { "disabled" })
            .push("attester_tcb_status", self.tcb_status.clone());
        for a in &self.advisory_ids {
            c.push("attester_advisory_ids", a.clone());
        }
        c.push("tdx_mrsignerseam", hex::encode(self.mr_signer_seam))
            .push("tdx_mrseam", hex::encode(self.mr_seam))
            .push("tdx_mrtd", hex::encode(self.mr_td));
        for (i, rt) in self.rtmr.iter().enumerate() {
            c.push(format!("tdx_rtmr{i}"), hex::encode(rt));
        }
        c.push("tdx_mrconfigid", hex::encode(self.mr_config_id))
            .push("tdx_mrowner", hex::encode(self.mr_owner))
            .push("tdx_mrownerconfig", hex::encode(self.mr_owner_config))
            .push("tdx_report_data", hex::encode(&self.report_data))
            .push("tdx_seam_attributes", hex::encode(self.seam_attributes))
            .push(
                "tdx_td_attributes",
                hex::encode(self.td_attributes.to_le_bytes()),
            )
            .push("tdx_td_attributes_debug", debug)
            .push(
                "tdx_td_attributes_septve_disable",
                bit(TD_ATTRIBUTES_SEPT_VE_DISABLE),
            )
            .push("tdx_td_attributes_protection_keys", bit(TD_ATTRIBUTES_PKS))
            .push("tdx_td_attributes_key_locker", bit(TD_ATTRIBUTES_KL))
            .push("tdx_td_attributes_perfmon", bit(TD_ATTRIBUTES_PERFMON))
            .push("tdx_is_debuggable", debug)
            .push("tdx_tee_tcb_svn", hex::encode(self.tee_tcb_svn))
            .push("tdx_seamsvn", self.seamsvn())
            .push("tdx_xfam", hex::encode(self.xfam.to_le_bytes()));
        if let Some((svn2, service_td)) = &self.td15 {
            c.push("tdx_tee_tcb_svn2", hex::encode(svn2))
                .push("tdx_mrservicetd", hex::encode(service_td));
        }
        if let Some(j) = &self.runtime_json {
            c.push("x-ms-runtime", j.clone());
        }
        if let Some(j) = &self.inittime_json {
            c.push("x-ms-inittime", j.clone());
        }
        c.push("x-confkube-tcb-status", self.tcb_status.clone())
            .push(
                "x-confkube-tdx-module-tcb-status",
                self.tdx_module_tcb_status.clone(),
            );
        for a in &self.advisory_ids {
            c.push("x-confkube-advisory-ids", a.clone());
        }
        c.push("x-confkube-fmspc", hex::encode(self.fmspc));
        if let Some(n) = self.tcb_evaluation_data_number {
            c.push("x-confkube-tcb-evaluation-data-number", i64::from(n));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Value};

    fn td() -> TdxEvidence {
        TdxEvidence {
            mr_td: [0xaa; 48],
            td_attributes: TD_ATTRIBUTES_SEPT_VE_DISABLE,
            tee_tcb_svn: [6, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            xfam: 0x0006_02e7,
            tcb_status: "UpToDate".into(),
            tdx_module_tcb_status: "UpToDate".into(),
            advisory_ids: vec!["INTEL-SA-00001".into()],
            ..TdxEvidence::default()
        }
    }

    #[test]
    fn claim_names_and_encodings() {
        let c = td().claims();
        let one = |t: &str| c.values(t).cloned().collect::<Vec<_>>();
        assert_eq!(one("x-ms-attestation-type"), vec![Value::from("tdxvm")]);
        assert_eq!(one("tdx_mrtd"), vec![Value::from("aa".repeat(48))]);
        assert_eq!(
            one("tdx_td_attributes"),
            vec![Value::from("0000001000000000")]
        );
        assert_eq!(one("tdx_td_attributes_debug"), vec![Value::Bool(false)]);
        assert_eq!(
            one("tdx_td_attributes_septve_disable"),
            vec![Value::Bool(true)]
        );
        assert_eq!(one("tdx_xfam"), vec![Value::from("e702060000000000")]);
        assert_eq!(one("tdx_seamsvn"), vec![Value::Int(0x0106)]);
        assert_eq!(one("dbgstat"), vec![Value::from("disabled")]);
        assert_eq!(
            one("attester_advisory_ids"),
            vec![Value::from("INTEL-SA-00001")]
        );
        assert!(one("tdx_mrservicetd").is_empty());
    }

    #[test]
    fn policies_permit_and_deny_by_mrtd_and_debug() {
        let p = Policy::parse(&format!(
            "version=1.0;\nauthorizationrules {{\n  [type==\"tdx_td_attributes_debug\", value==true] => deny();\n  [type==\"tdx_mrtd\", value==\"{}\"] => permit();\n}};",
            "aa".repeat(48)
        ))
        .unwrap();
        assert_eq!(p.authorize(&td().claims()).unwrap().line, 4);
        let other = TdxEvidence {
            mr_td: [0xbb; 48],
            ..td()
        };
        assert_eq!(
            p.authorize(&other.claims()).unwrap_err().code(),
            "policy-not-permitted"
        );
        let debug = TdxEvidence {
            td_attributes: TD_ATTRIBUTES_DEBUG,
            ..td()
        };
        assert!(debug.debuggable());
        assert_eq!(
            p.authorize(&debug.claims()).unwrap_err().to_string(),
            "denied by the authorization rule at line 3, column 3: [type==\"tdx_td_attributes_debug\", value==true] => deny()"
        );
    }
}
