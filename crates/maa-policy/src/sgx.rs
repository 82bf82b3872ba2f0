//! The incoming claims of an SGX attestation (Microsoft's "Claim sets", SGX attestation), from
//! the fields of a verified quote.

use crate::claims::Claims;
use base64::Engine as _;

/// What an SGX attestation tells the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SgxEvidence {
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// ISVPRODID.
    pub product_id: u16,
    /// ISVSVN.
    pub svn: u16,
    /// The DEBUG attribute.
    pub debuggable: bool,
    /// The report data.
    pub report_data: Vec<u8>,
    /// The runtime data (enclave held data), when sent.
    pub runtime_data: Option<Vec<u8>>,
    /// The runtime data's JSON text, when sent as `dataType: "JSON"`.
    pub runtime_json: Option<String>,
    /// The init-time data's JSON text, when sent as `dataType: "JSON"`.
    pub inittime_json: Option<String>,
    /// The final TCB status (`UpToDate`, `SWHardeningNeeded`, …).
    pub tcb_status: String,
    /// Intel advisory IDs.
    pub advisory_ids: Vec<String>,
    /// FMSPC.
    pub fmspc: [u8; 6],
    /// The TCB evaluation data number of the TCB info that decided the status.
    pub tcb_evaluation_data_number: Option<u32>,
}

impl SgxEvidence {
    /// The incoming claim set: MAA's names, the deprecated version 1.0 `$` names, and
    /// confkube's `x-confkube-*` claims.
    pub fn claims(&self) -> Claims {
        let mut c = Claims::new();
        let mrsigner = hex::encode(self.mrsigner);
        let mrenclave = hex::encode(self.mrenclave);
        c.push("x-ms-attestation-type", "sgx")
            .push("x-ms-sgx-is-debuggable", self.debuggable)
            .push("x-ms-sgx-mrsigner", mrsigner.clone())
            .push("x-ms-sgx-mrenclave", mrenclave.clone())
            .push("x-ms-sgx-product-id", self.product_id)
            .push("x-ms-sgx-svn", self.svn)
            .push("x-ms-sgx-report-data", hex::encode(&self.report_data))
            .push("$is-debuggable", self.debuggable)
            .push("$sgx-mrsigner", mrsigner)
            .push("$sgx-mrenclave", mrenclave)
            .push("$product-id", self.product_id)
            .push("$svn", self.svn)
            .push("$tee", "sgx");
        if let Some(data) = &self.runtime_data {
            let ehd = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
            c.push("x-ms-sgx-ehd", ehd.clone())
                .push("$maa-ehd", ehd.clone())
                .push("$aas-ehd", ehd);
        }
        if let Some(j) = &self.runtime_json {
            c.push("x-ms-runtime", j.clone());
        }
        if let Some(j) = &self.inittime_json {
            c.push("x-ms-inittime", j.clone());
        }
        c.push("x-confkube-tcb-status", self.tcb_status.clone());
        for a in &self.advisory_ids {
            c.push("x-confkube-advisory-ids", a.clone());
        }
        // Revocation is not a boolean claim: Microsoft's signed example policy denies when any
        // claim has the value `true` (`[value==true] => deny()`), meaning the debug flag.
        c.push("x-confkube-fmspc", hex::encode(self.fmspc));
        if let Some(n) = self.tcb_evaluation_data_number {
            c.push("x-confkube-tcb-evaluation-data-number", i64::from(n));
        }
        c
    }
}
