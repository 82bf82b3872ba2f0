//! The attestation requests (MAA `AttestSgxEnclaveRequest` and `AttestOpenEnclaveRequest`) and
//! the token claims (MAA SGX claim set, its deprecated duplicate names, plus `x-confkube-*`),
//! built purely from a [`VerifiedQuote`].
//!
//! Base64 fields accept what the MAA clients send: base64url (Microsoft's Python SDK, Gramine,
//! EGo) and standard base64 (the JS SDK's byte arrays, Occlum), padded or not.

use base64::Engine as _;
use dcap::{VerifiedQuote, VerifiedTdxQuote};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `{"data": base64url, "dataType": "Binary" | "JSON"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeData {
    /// base64url of the data.
    #[serde(alias = "Data")]
    pub data: String,
    /// How to read the data in claims (`Binary` or `JSON`, any letter case).
    #[serde(default, alias = "DataType")]
    pub data_type: Option<String>,
}

/// `POST /attest/SgxEnclave` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestRequest {
    /// base64url of the raw SGX quote. (Field names are also accepted in PascalCase, as
    /// Azure Attestation accepts them: some MAA clients send `Quote`, `RuntimeData`.)
    #[serde(alias = "Quote")]
    pub quote: String,
    /// Data the enclave bound into report_data[0..32] as its SHA-256.
    #[serde(default, alias = "RuntimeData")]
    pub runtime_data: Option<RuntimeData>,
    /// Data the enclave was initialised with, bound as SHA-256 into CONFIGID[0..32].
    #[serde(default, alias = "InitTimeData")]
    pub init_time_data: Option<RuntimeData>,
    /// A policy to try instead of the stored one; the token is then not verifiable with JWKS.
    #[serde(default, alias = "DraftPolicyForAttestation")]
    pub draft_policy_for_attestation: Option<String>,
    /// Echoed in the token.
    #[serde(default, alias = "Nonce")]
    pub nonce: Option<String>,
}

/// `POST /attest/OpenEnclave` body: an Open Enclave report instead of a quote.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestOpenEnclaveRequest {
    /// base64(url) of the Open Enclave report: a 16-byte `oe_report_header_t` and the SGX quote.
    #[serde(alias = "Report")]
    pub report: String,
    /// As in [`AttestRequest`].
    #[serde(default, alias = "RuntimeData")]
    pub runtime_data: Option<RuntimeData>,
    /// As in [`AttestRequest`].
    #[serde(default, alias = "InitTimeData")]
    pub init_time_data: Option<RuntimeData>,
    /// As in [`AttestRequest`].
    #[serde(default, alias = "DraftPolicyForAttestation")]
    pub draft_policy_for_attestation: Option<String>,
    /// Echoed in the token.
    #[serde(default, alias = "Nonce")]
    pub nonce: Option<String>,
}

impl From<AttestOpenEnclaveRequest> for AttestRequest {
    fn from(r: AttestOpenEnclaveRequest) -> Self {
        Self {
            quote: r.report,
            runtime_data: r.runtime_data,
            init_time_data: r.init_time_data,
            draft_policy_for_attestation: r.draft_policy_for_attestation,
            nonce: r.nonce,
        }
    }
}

/// `oe_report_header_t.version` (Open Enclave `OE_REPORT_HEADER_VERSION`).
pub const OE_REPORT_HEADER_VERSION: u32 = 1;
/// `OE_REPORT_TYPE_SGX_REMOTE`: the report is an SGX (DCAP) quote.
pub const OE_REPORT_TYPE_SGX_REMOTE: u32 = 2;
/// `OE_REPORT_TYPE_SGX_LOCAL`: a local report, which no remote party can verify.
pub const OE_REPORT_TYPE_SGX_LOCAL: u32 = 1;

/// The SGX quote inside an Open Enclave report: `oe_report_header_t` is `version: u32`,
/// `report_type: u32`, `report_size: u64` (little-endian), then `report_size` bytes of quote
/// (Open Enclave `include/openenclave/internal/report.h`). The header must say version 1, type
/// SGX remote, and the exact size that follows.
pub fn oe_report_quote(report: &[u8]) -> Result<&[u8], RequestError> {
    let invalid = |m: String| RequestError::Invalid(format!("report: {m}"));
    let (head, quote) = report.split_at_checked(16).ok_or_else(|| {
        invalid(format!(
            "{} bytes is shorter than the 16-byte Open Enclave report header",
            report.len()
        ))
    })?;
    let u32_at = |i: usize| {
        head.get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    let size = head
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes);
    let (version, kind) = (u32_at(0), u32_at(4));
    if version != OE_REPORT_HEADER_VERSION {
        return Err(invalid(format!(
            "Open Enclave report header version {version} is not supported (expected 1)"
        )));
    }
    match kind {
        OE_REPORT_TYPE_SGX_REMOTE => {}
        OE_REPORT_TYPE_SGX_LOCAL => {
            return Err(invalid(
                "a local Open Enclave report (type 1) cannot be verified remotely; send a remote \
                 report (oe_get_report with OE_REPORT_FLAGS_REMOTE_ATTESTATION)"
                    .into(),
            ));
        }
        other => {
            return Err(invalid(format!(
                "Open Enclave report type {other} is not SGX remote (2)"
            )));
        }
    }
    if u64::try_from(quote.len()).ok() != Some(size) {
        return Err(invalid(format!(
            "the Open Enclave header says {size} bytes of quote follow, but {} do",
            quote.len()
        )));
    }
    Ok(quote)
}

/// Why a request is not acceptable (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body or one of its fields cannot be read.
    #[error("{0}")]
    Invalid(String),
    /// runtimeData / initTimeData is not bound by the quote.
    #[error("{0}")]
    BindingMismatch(String),
}

impl RequestError {
    /// The problem code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid-request",
            Self::BindingMismatch(_) => "runtime-data-mismatch",
        }
    }
}

/// Decodes base64url or standard base64, padded or not (Microsoft's SDKs, Gramine and EGo send
/// base64url; the JS SDK and Occlum standard base64 with padding).
pub fn decode_b64(field: &str, s: &str) -> Result<Vec<u8>, RequestError> {
    let s = s.trim();
    let trimmed = s.trim_end_matches('=');
    B64URL
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|e| RequestError::Invalid(format!("{field} is not base64url: {e}")))
}

/// A decoded data item and how it is shown in claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The raw bytes.
    pub bytes: Vec<u8>,
    /// Parsed when `dataType` is `JSON`.
    pub json: Option<Value>,
}

/// Decodes a runtimeData / initTimeData item.
pub fn decode_data(field: &str, d: &RuntimeData) -> Result<Data, RequestError> {
    let bytes = decode_b64(&format!("{field}.data"), &d.data)?;
    let json = match d.data_type.as_deref() {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("Binary") => None,
        Some(t) if t.eq_ignore_ascii_case("JSON") => {
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                RequestError::Invalid(format!("{field}.data is declared JSON but is not: {e}"))
            })?)
        }
        Some(other) => {
            return Err(RequestError::Invalid(format!(
                "{field}.dataType {other:?} is not Binary or JSON"
            )));
        }
    };
    Ok(Data { bytes, json })
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// Checks report_data[0..32] == SHA-256(runtime data) and CONFIGID[0..32] == SHA-256(init data).
pub fn check_bindings(
    v: &VerifiedQuote,
    runtime: Option<&Data>,
    init: Option<&Data>,
) -> Result<(), RequestError> {
    let r = v.report();
    if let Some(d) = runtime
        && r.report_data.0.get(..32) != Some(sha256(&d.bytes).as_slice())
    {
        return Err(RequestError::BindingMismatch(
            "SHA-256(runtimeData) is not the quote's report_data[0..32]".into(),
        ));
    }
    if let Some(d) = init
        && r.config_id.0.get(..32) != Some(sha256(&d.bytes).as_slice())
    {
        return Err(RequestError::BindingMismatch(
            "SHA-256(initTimeData) is not the quote's CONFIGID[0..32]".into(),
        ));
    }
    Ok(())
}

/// TDX: report_data[0..32] == SHA-256(runtime data) and MRCONFIGID[0..32] == SHA-256(init data)
/// (the TD's init-time data is bound through MRCONFIGID, as Trustee binds `init_data`).
pub fn check_tdx_bindings(
    v: &VerifiedTdxQuote,
    runtime: Option<&Data>,
    init: Option<&Data>,
) -> Result<(), RequestError> {
    let r = v.report();
    if let Some(d) = runtime
        && r.report_data.0.get(..32) != Some(sha256(&d.bytes).as_slice())
    {
        return Err(RequestError::BindingMismatch(
            "SHA-256(runtimeData) is not the TD report's report_data[0..32]".into(),
        ));
    }
    if let Some(d) = init
        && r.mr_config_id.0.get(..32) != Some(sha256(&d.bytes).as_slice())
    {
        return Err(RequestError::BindingMismatch(
            "SHA-256(initTimeData) is not the TD report's MRCONFIGID[0..32]".into(),
        ));
    }
    Ok(())
}

/// Everything besides the verified quote that goes into a token.
#[derive(Debug, Clone)]
pub struct TokenContext<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `iat`/`nbf`.
    pub now: i64,
    /// `exp - iat`.
    pub lifetime: i64,
    /// `jti`.
    pub jti: String,
    /// Echoed nonce.
    pub nonce: Option<&'a str>,
    /// Runtime data.
    pub runtime: Option<&'a Data>,
    /// Init-time data.
    pub init: Option<&'a Data>,
    /// `x-ms-policy-hash`.
    pub policy_hash: String,
    /// The rule that accepted.
    pub rule: &'a str,
    /// Whether a draft policy was used (the token is then not signed by a published key).
    pub draft: bool,
}

/// Every claim a token can carry (`claims_supported` of the OpenID configuration).
pub const CLAIM_NAMES: &[&str] = &[
    "iss",
    "iat",
    "nbf",
    "exp",
    "jti",
    "nonce",
    "x-ms-ver",
    "x-ms-attestation-type",
    "x-ms-policy-hash",
    "x-ms-sgx-is-debuggable",
    "x-ms-sgx-mrenclave",
    "x-ms-sgx-mrsigner",
    "x-ms-sgx-product-id",
    "x-ms-sgx-svn",
    "x-ms-sgx-report-data",
    "x-ms-sgx-config-id",
    "x-ms-sgx-config-svn",
    "x-ms-sgx-isv-extended-product-id",
    "x-ms-sgx-isv-family-id",
    "x-ms-sgx-ehd",
    "x-ms-runtime",
    "x-ms-inittime",
    "tee",
    "ver",
    "is-debuggable",
    "sgx-mrenclave",
    "sgx-mrsigner",
    "product-id",
    "svn",
    "maa-ehd",
    "x-confkube-tcb-status",
    "x-confkube-platform-tcb-status",
    "x-confkube-qe-tcb-status",
    "x-confkube-advisory-ids",
    "x-confkube-fmspc",
    "x-confkube-revocation-checked",
    "x-confkube-collateral-expires",
    "x-confkube-policy-rule",
    "x-confkube-draft-policy",
    "eat_profile",
    "intuse",
    "dbgstat",
    "attester_tcb_status",
    "attester_advisory_ids",
    "tdx_mrsignerseam",
    "tdx_mrseam",
    "tdx_mrtd",
    "tdx_rtmr0",
    "tdx_rtmr1",
    "tdx_rtmr2",
    "tdx_rtmr3",
    "tdx_mrconfigid",
    "tdx_mrowner",
    "tdx_mrownerconfig",
    "tdx_report_data",
    "tdx_seam_attributes",
    "tdx_td_attributes",
    "tdx_td_attributes_debug",
    "tdx_td_attributes_septve_disable",
    "tdx_td_attributes_protection_keys",
    "tdx_td_attributes_key_locker",
    "tdx_td_attributes_perfmon",
    "tdx_is_debuggable",
    "tdx_tee_tcb_svn",
    "tdx_seamsvn",
    "tdx_xfam",
    "tdx_tee_tcb_svn2",
    "tdx_mrservicetd",
    "x-confkube-tdx-module-tcb-status",
];

/// What every token says about its verification, whatever the TEE.
struct Verdict<'a> {
    /// The `x-confkube-*-tcb-status` claims of this TEE, with their values.
    statuses: &'a [(&'a str, &'a str)],
    advisory_ids: &'a [String],
    fmspc: [u8; 6],
    revocation_checked: bool,
    collateral_valid_until: i64,
}

/// The claims every token ends with: init-time JSON, nonce, the verification outcome, the
/// policy rule and the draft marker.
fn put_verdict(put: &mut impl FnMut(&str, Value), c: &TokenContext<'_>, v: &Verdict<'_>) {
    if let Some(d) = c.init
        && let Some(j) = &d.json
    {
        put("x-ms-inittime", j.clone());
    }
    if let Some(n) = c.nonce {
        put("nonce", n.into());
    }
    for (k, status) in v.statuses {
        put(k, (*status).into());
    }
    put("x-confkube-advisory-ids", json!(v.advisory_ids));
    put("x-confkube-fmspc", hex::encode(v.fmspc).into());
    put("x-confkube-revocation-checked", v.revocation_checked.into());
    put(
        "x-confkube-collateral-expires",
        v.collateral_valid_until.into(),
    );
    put("x-confkube-policy-rule", c.rule.into());
    if c.draft {
        put("x-confkube-draft-policy", true.into());
    }
}

/// The token claims.
pub fn claims(v: &VerifiedQuote, c: &TokenContext<'_>) -> Value {
    let r = v.report();
    let mut m = Map::new();
    let mut put = |k: &str, val: Value| {
        m.insert(k.to_string(), val);
    };
    put("iss", c.issuer.into());
    put("iat", c.now.into());
    put("nbf", c.now.into());
    put("exp", (c.now + c.lifetime).into());
    put("jti", c.jti.clone().into());
    put("x-ms-ver", "1.0".into());
    put("x-ms-attestation-type", "sgx".into());
    put("tee", "sgx".into());
    put("x-ms-policy-hash", c.policy_hash.clone().into());
    put("x-ms-sgx-is-debuggable", v.debug().into());
    put("x-ms-sgx-mrenclave", r.mr_enclave.to_hex().into());
    put("x-ms-sgx-mrsigner", r.mr_signer.to_hex().into());
    put("x-ms-sgx-product-id", r.isv_prod_id.into());
    put("x-ms-sgx-svn", r.isv_svn.into());
    put("x-ms-sgx-report-data", r.report_data.to_hex().into());
    put("x-ms-sgx-config-id", r.config_id.to_hex().into());
    put("x-ms-sgx-config-svn", r.config_svn.into());
    put(
        "x-ms-sgx-isv-extended-product-id",
        r.isv_ext_prod_id.to_hex().into(),
    );
    put("x-ms-sgx-isv-family-id", r.isv_family_id.to_hex().into());
    // MAA's deprecated names, "fully supported and will continue to be included" (MAA claim
    // sets); Microsoft's SDKs and older relying parties read them.
    put("ver", "1.0".into());
    put("is-debuggable", v.debug().into());
    put("sgx-mrenclave", r.mr_enclave.to_hex().into());
    put("sgx-mrsigner", r.mr_signer.to_hex().into());
    put("product-id", r.isv_prod_id.into());
    put("svn", r.isv_svn.into());
    if let Some(d) = c.runtime {
        let ehd = B64URL.encode(&d.bytes);
        put("maa-ehd", ehd.clone().into());
        put("x-ms-sgx-ehd", ehd.into());
        if let Some(j) = &d.json {
            put("x-ms-runtime", j.clone());
        }
    }
    let verdict = Verdict {
        statuses: &[
            ("x-confkube-tcb-status", v.tcb_status().as_str()),
            (
                "x-confkube-platform-tcb-status",
                v.platform_tcb_status().as_str(),
            ),
            ("x-confkube-qe-tcb-status", v.qe_tcb_status().as_str()),
        ],
        advisory_ids: v.advisory_ids(),
        fmspc: v.fmspc(),
        revocation_checked: v.revocation_checked(),
        collateral_valid_until: v.collateral_valid_until(),
    };
    put_verdict(&mut put, c, &verdict);
    Value::Object(m)
}

/// The token claims of a TD: MAA's TDX claim set (Azure Attestation EAT profile for TDX:
/// `eat_profile`, `attester_tcb_status`, `dbgstat`, `intuse`, `tdx_*`, `x-ms-attestation-type:
/// "tdxvm"`) plus the common JWT/MAA claims and `x-confkube-*`.
pub fn tdx_claims(v: &VerifiedTdxQuote, c: &TokenContext<'_>) -> Value {
    let r = v.report();
    let mut m = Map::new();
    let mut put = |k: &str, val: Value| {
        m.insert(k.to_string(), val);
    };
    put("iss", c.issuer.into());
    put("iat", c.now.into());
    put("nbf", c.now.into());
    put("exp", (c.now + c.lifetime).into());
    put("jti", c.jti.clone().into());
    put("x-ms-ver", "1.0".into());
    put("x-ms-attestation-type", "tdxvm".into());
    put("tee", "tdx".into());
    put("x-ms-policy-hash", c.policy_hash.clone().into());
    put("eat_profile", "https://aka.ms/maa-eat-profile-tdxvm".into());
    put("intuse", "generic".into());
    put(
        "dbgstat",
        if v.debug() { "enabled" } else { "disabled" }.into(),
    );
    put("attester_tcb_status", v.tcb_status().as_str().into());
    put("attester_advisory_ids", json!(v.advisory_ids()));
    let attrs = r.td_attributes;
    let bit = |b: u64| attrs.0 & b != 0;
    put("tdx_mrsignerseam", r.mr_signer_seam.to_hex().into());
    put("tdx_mrseam", r.mr_seam.to_hex().into());
    put("tdx_mrtd", r.mr_td.to_hex().into());
    for (i, rt) in r.rt_mr.iter().enumerate() {
        put(&format!("tdx_rtmr{i}"), rt.to_hex().into());
    }
    put("tdx_mrconfigid", r.mr_config_id.to_hex().into());
    put("tdx_mrowner", r.mr_owner.to_hex().into());
    put("tdx_mrownerconfig", r.mr_owner_config.to_hex().into());
    put("tdx_report_data", r.report_data.to_hex().into());
    put("tdx_seam_attributes", hex::encode(r.seam_attributes).into());
    put("tdx_td_attributes", hex::encode(attrs.to_bytes()).into());
    put(
        "tdx_td_attributes_debug",
        bit(sgx_types::TdAttributes::DEBUG).into(),
    );
    put(
        "tdx_td_attributes_septve_disable",
        bit(sgx_types::TdAttributes::SEPT_VE_DISABLE).into(),
    );
    put(
        "tdx_td_attributes_protection_keys",
        bit(sgx_types::TdAttributes::PKS).into(),
    );
    put(
        "tdx_td_attributes_key_locker",
        bit(sgx_types::TdAttributes::KL).into(),
    );
    put(
        "tdx_td_attributes_perfmon",
        bit(sgx_types::TdAttributes::PERFMON).into(),
    );
    put("tdx_is_debuggable", v.debug().into());
    put("tdx_tee_tcb_svn", hex::encode(r.tee_tcb_svn).into());
    let seamsvn = u16::from_le_bytes([
        r.tee_tcb_svn.first().copied().unwrap_or(0),
        r.tee_tcb_svn.get(1).copied().unwrap_or(0),
    ]);
    put("tdx_seamsvn", seamsvn.into());
    put("tdx_xfam", hex::encode(r.xfam.to_le_bytes()).into());
    if let Some(f) = v.body().td15() {
        put("tdx_tee_tcb_svn2", hex::encode(f.tee_tcb_svn2).into());
        put("tdx_mrservicetd", f.mr_service_td.to_hex().into());
    }
    if let Some(j) = c.runtime.and_then(|d| d.json.as_ref()) {
        put("x-ms-runtime", j.clone());
    }
    let verdict = Verdict {
        statuses: &[
            ("x-confkube-tcb-status", v.tcb_status().as_str()),
            (
                "x-confkube-platform-tcb-status",
                v.platform_tcb_status().as_str(),
            ),
            ("x-confkube-qe-tcb-status", v.qe_tcb_status().as_str()),
            (
                "x-confkube-tdx-module-tcb-status",
                v.tdx_module_tcb_status().as_str(),
            ),
        ],
        advisory_ids: v.advisory_ids(),
        fmspc: v.fmspc(),
        revocation_checked: v.revocation_checked(),
        collateral_valid_until: v.collateral_valid_until(),
    };
    put_verdict(&mut put, c, &verdict);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_decoding_and_errors() {
        let d = decode_data(
            "runtimeData",
            &RuntimeData {
                data: B64URL.encode(br#"{"k":1}"#),
                data_type: Some("JSON".into()),
            },
        )
        .unwrap();
        assert_eq!(d.json, Some(json!({"k": 1})));
        let padded = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8, 0xff]);
        assert_eq!(decode_b64("q", &padded).unwrap(), vec![0xfb, 0xff]);
        assert_eq!(
            decode_b64("quote", "***").unwrap_err().to_string(),
            "quote is not base64url: Invalid symbol 42, offset 0."
        );
        let e = decode_data(
            "runtimeData",
            &RuntimeData {
                data: B64URL.encode(b"x"),
                data_type: Some("Text".into()),
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "runtimeData.dataType \"Text\" is not Binary or JSON"
        );
        assert_eq!(e.code(), "invalid-request");
        let e = decode_data(
            "runtimeData",
            &RuntimeData {
                data: B64URL.encode(b"nope"),
                data_type: Some("JSON".into()),
            },
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("runtimeData.data is declared JSON but is not")
        );
    }
}
