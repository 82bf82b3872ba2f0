//! The policy in force: confkube's JSON policy ([`crate::policy`]) or a Microsoft Azure
//! Attestation policy-language document ([`maa_policy`]), detected from the text, stored with its
//! language, hashed as MAA defines `x-ms-policy-hash`, and applied to a verified quote.
//!
//! Detection: a document whose first token (after whitespace and comments) is `version` is in
//! the MAA language; anything else is read as confkube JSON. In the store a document is kept as
//! `{"language": "confkube-json"|"maa", "policy": <JSON document or MAA text>, "signer"?: JWK}`;
//! a bare JSON policy (what earlier versions stored) still loads.
//!
//! `x-ms-policy-hash` is BASE64URL(SHA256(UTF8(BASE64URL(UTF8(policy text))))), Microsoft's
//! definition ("Claim sets", outgoing claims); for a JSON policy the text is its canonical JSON.

use crate::claims::Data;
use crate::policy::{Evidence, Policy};
use base64::Engine as _;
use dcap::{VerifiedDcapQuote, VerifiedQuote, VerifiedTdxQuote};
use maa_policy::sgx::SgxEvidence;
use maa_policy::tdx::TdxEvidence;
use maa_policy::{EvalError, TcbIdentifier};
use serde_json::{Map, Value, json};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The language of a policy document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Language {
    /// confkube's JSON policy (`{"rules": [...]}`).
    ConfkubeJson,
    /// Microsoft Azure Attestation's policy language, versions 1.0 to 1.2.
    Maa,
}

impl Language {
    /// `confkube-json` or `maa`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::ConfkubeJson => "confkube-json",
            Language::Maa => "maa",
        }
    }
}

/// Why a policy document cannot be used; the message of an MAA document names line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {message}")]
#[non_exhaustive]
pub struct PolicyDocError {
    /// What is wrong.
    pub message: String,
}

fn doc_err(message: impl Into<String>) -> PolicyDocError {
    PolicyDocError {
        message: message.into(),
    }
}

/// A policy in force.
#[derive(Debug)]
#[non_exhaustive]
pub enum ActivePolicy {
    /// confkube JSON.
    Json(Policy),
    /// MAA policy language; `signer` is the JWK (with `x5c`) of the key that signed the upload.
    Maa {
        /// The parsed policy.
        policy: maa_policy::Policy,
        /// Who signed it, when it came as a signed JWS.
        signer: Option<Value>,
    },
}

/// What the policy added to a permitted attestation.
#[derive(Debug, Clone, PartialEq)]
pub struct Appraisal {
    /// The rule that permitted (`x-confkube-policy-rule`).
    pub rule: String,
    /// Claims the policy issued (MAA `issue(...)`).
    pub issued: Map<String, Value>,
    /// `report_validity_in_minutes`, when the policy set it.
    pub validity_minutes: Option<i64>,
}

/// Why the policy refused: problem code, message and extra problem fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The problem code.
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// Extra fields (`violations`).
    pub extra: Option<Value>,
}

/// The problem code when the policy selects a TCB baseline the collateral does not have.
pub const TCB_BASELINE_UNAVAILABLE: &str = "tcb-baseline-unavailable";

/// The evidence MAA policies see, from a verified quote and the request's data.
pub fn sgx_evidence(v: &VerifiedQuote, runtime: Option<&Data>, init: Option<&Data>) -> SgxEvidence {
    let r = v.report();
    SgxEvidence {
        mrenclave: r.mr_enclave.0,
        mrsigner: r.mr_signer.0,
        product_id: r.isv_prod_id,
        svn: r.isv_svn,
        debuggable: v.debug(),
        report_data: r.report_data.0.to_vec(),
        runtime_data: runtime.map(|d| d.bytes.clone()),
        runtime_json: runtime.and_then(|d| d.json.as_ref()).map(Value::to_string),
        inittime_json: init.and_then(|d| d.json.as_ref()).map(Value::to_string),
        tcb_status: v.tcb_status().as_str().to_string(),
        advisory_ids: v.advisory_ids().to_vec(),
        fmspc: v.fmspc(),
        tcb_evaluation_data_number: v.tcb_evaluation_data_number(),
    }
}

/// The evidence MAA policies see for a TD, from a verified TD quote and the request's data.
pub fn tdx_evidence(
    v: &VerifiedTdxQuote,
    runtime: Option<&Data>,
    init: Option<&Data>,
) -> TdxEvidence {
    let r = v.report();
    TdxEvidence {
        mr_td: r.mr_td.0,
        rtmr: r.rt_mr.map(|m| m.0),
        mr_config_id: r.mr_config_id.0,
        mr_owner: r.mr_owner.0,
        mr_owner_config: r.mr_owner_config.0,
        mr_seam: r.mr_seam.0,
        mr_signer_seam: r.mr_signer_seam.0,
        report_data: r.report_data.0.to_vec(),
        td_attributes: r.td_attributes.0,
        seam_attributes: r.seam_attributes,
        xfam: r.xfam,
        tee_tcb_svn: r.tee_tcb_svn,
        td15: v.body().td15().map(|f| (f.tee_tcb_svn2, f.mr_service_td.0)),
        runtime_json: runtime.and_then(|d| d.json.as_ref()).map(Value::to_string),
        inittime_json: init.and_then(|d| d.json.as_ref()).map(Value::to_string),
        tcb_status: v.tcb_status().as_str().to_string(),
        tdx_module_tcb_status: v.tdx_module_tcb_status().as_str().to_string(),
        advisory_ids: v.advisory_ids().to_vec(),
        fmspc: v.fmspc(),
        tcb_evaluation_data_number: v.tcb_evaluation_data_number(),
    }
}

/// The hash MAA puts in `x-ms-policy-hash` for a policy text.
pub fn maa_policy_hash(text: &str) -> String {
    let inner = B64URL.encode(text.as_bytes());
    B64URL.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        inner.as_bytes(),
    ))
}

impl ActivePolicy {
    /// confkube's default policy.
    pub fn default_policy() -> Self {
        ActivePolicy::Json(Policy::default_policy())
    }

    /// Parses a document in either language (detected).
    pub fn parse(text: &[u8]) -> Result<Self, PolicyDocError> {
        let s = std::str::from_utf8(text).map_err(|e| doc_err(format!("not UTF-8 text: {e}")))?;
        if maa_policy::is_policy_language(s) {
            let policy = maa_policy::Policy::parse(s).map_err(|e| doc_err(e.to_string()))?;
            return Ok(ActivePolicy::Maa {
                policy,
                signer: None,
            });
        }
        Policy::from_json(text)
            .map(ActivePolicy::Json)
            .map_err(|e| doc_err(e.0))
    }

    /// The same policy, recorded as signed by `signer`.
    pub fn with_signer(self, signer: Option<Value>) -> Self {
        match self {
            ActivePolicy::Maa { policy, .. } => ActivePolicy::Maa { policy, signer },
            other => other,
        }
    }

    /// The language.
    pub fn language(&self) -> Language {
        match self {
            ActivePolicy::Json(_) => Language::ConfkubeJson,
            ActivePolicy::Maa { .. } => Language::Maa,
        }
    }

    /// The policy text: canonical JSON, or the MAA text as uploaded.
    pub fn text(&self) -> String {
        match self {
            ActivePolicy::Json(p) => p.to_json(),
            ActivePolicy::Maa { policy, .. } => policy.text().to_string(),
        }
    }

    /// The JWK of the key that signed the upload, if any.
    pub fn signer(&self) -> Option<&Value> {
        match self {
            ActivePolicy::Maa { signer, .. } => signer.as_ref(),
            ActivePolicy::Json(_) => None,
        }
    }

    /// `x-ms-policy-hash`.
    pub fn hash(&self) -> String {
        match self {
            ActivePolicy::Json(p) => p.hash(),
            ActivePolicy::Maa { policy, .. } => maa_policy_hash(policy.text()),
        }
    }

    /// The document as `GET /policies/SgxEnclave` shows it: the JSON document, or the MAA text.
    pub fn document(&self) -> Value {
        match self {
            ActivePolicy::Json(p) => serde_json::to_value(p.document()).unwrap_or(Value::Null),
            ActivePolicy::Maa { policy, .. } => Value::String(policy.text().to_string()),
        }
    }

    /// The store's form.
    pub fn to_stored(&self) -> String {
        let mut v = json!({"language": self.language().as_str(), "policy": self.document()});
        if let (Some(s), Some(obj)) = (self.signer(), v.as_object_mut()) {
            obj.insert("signer".into(), s.clone());
        }
        v.to_string()
    }

    /// Reads the store's form (or a bare JSON policy, as stored before languages existed).
    pub fn from_stored(text: &str) -> Result<Self, PolicyDocError> {
        let v: Value = serde_json::from_str(text).map_err(|e| doc_err(format!("not JSON: {e}")))?;
        let Some(lang) = v.get("language").and_then(Value::as_str) else {
            return Policy::from_json(text.as_bytes())
                .map(ActivePolicy::Json)
                .map_err(|e| doc_err(e.0));
        };
        let doc = v.get("policy").cloned().unwrap_or(Value::Null);
        match lang {
            "confkube-json" => Policy::from_json(doc.to_string().as_bytes())
                .map(ActivePolicy::Json)
                .map_err(|e| doc_err(e.0)),
            "maa" => {
                let t = doc
                    .as_str()
                    .ok_or_else(|| doc_err("a stored MAA policy must be a string"))?;
                let policy = maa_policy::Policy::parse(t).map_err(|e| doc_err(e.to_string()))?;
                Ok(ActivePolicy::Maa {
                    policy,
                    signer: v.get("signer").cloned(),
                })
            }
            other => Err(doc_err(format!("unknown policy language {other:?}"))),
        }
    }

    /// The TCB baseline an MAA policy selects (`x-ms-sgx-tcbidentifier`).
    pub fn tcb_identifier(&self) -> Option<TcbIdentifier> {
        match self {
            ActivePolicy::Maa { policy, .. } => policy.tcb_identifier(),
            ActivePolicy::Json(_) => None,
        }
    }

    /// Applies the policy to a verified quote.
    pub fn appraise(
        &self,
        verified: &VerifiedDcapQuote,
        runtime: Option<&Data>,
        init: Option<&Data>,
    ) -> Result<Appraisal, Refusal> {
        let evidence = match verified {
            VerifiedDcapQuote::Sgx(v) => Evidence::from(&**v),
            VerifiedDcapQuote::Tdx(v) => Evidence::from(&**v),
        };
        match self {
            ActivePolicy::Json(p) => p
                .evaluate(&evidence)
                .map(|rule| Appraisal {
                    rule,
                    issued: Map::new(),
                    validity_minutes: None,
                })
                .map_err(|d| Refusal {
                    code: d.code(),
                    message: format!("denied by policy: {}", d.message()),
                    extra: Some(json!({ "violations": d.violations })),
                }),
            ActivePolicy::Maa { policy, .. } => {
                let edn = match verified {
                    VerifiedDcapQuote::Sgx(v) => v.tcb_evaluation_data_number(),
                    VerifiedDcapQuote::Tdx(v) => v.tcb_evaluation_data_number(),
                };
                if let Some(TcbIdentifier::EvaluationDataNumber(want)) = policy.tcb_identifier()
                    && edn != Some(want)
                {
                    let have = edn.map_or_else(|| "none".to_string(), |n| n.to_string());
                    return Err(Refusal {
                        code: TCB_BASELINE_UNAVAILABLE,
                        message: format!(
                            "the policy selects TCB baseline {want} (x-ms-sgx-tcbidentifier) but the \
                             collateral for this platform has TCB evaluation data number {have}: \
                             provide collateral of baseline {want}, or set \"azuredefault\""
                        ),
                        extra: None,
                    });
                }
                let claims = match verified {
                    VerifiedDcapQuote::Sgx(v) => sgx_evidence(v, runtime, init).claims(),
                    VerifiedDcapQuote::Tdx(v) => tdx_evidence(v, runtime, init).claims(),
                };
                policy
                    .evaluate(&claims)
                    .map(|o| Appraisal {
                        rule: format!("line {}", o.permitted_by().line),
                        issued: o.issued_json(),
                        validity_minutes: o.report_validity_in_minutes(),
                    })
                    .map_err(|e| Refusal {
                        code: e.code(),
                        message: format!("denied by policy: {e}"),
                        extra: maa_extra(&e),
                    })
            }
        }
    }
}

/// The problem fields of an MAA denial: the denying rule, or each permit rule's unmet condition.
pub(crate) fn maa_extra(e: &EvalError) -> Option<Value> {
    match e {
        EvalError::Denied { rule } => {
            Some(json!({"rule": {"line": rule.line, "column": rule.column, "text": rule.text}}))
        }
        EvalError::NotPermitted { unmet } => Some(json!({"unmet": unmet.iter().map(|u| json!({
            "rule": {"line": u.rule.line, "column": u.rule.column, "text": u.rule.text},
            "condition": {"line": u.condition_line, "column": u.condition_column, "text": u.condition},
        })).collect::<Vec<_>>()})),
        _ => None,
    }
}

/// Adds the policy's issued claims to token claims (claims the service sets win: a policy can
/// add claims, not change the verified ones) and applies `report_validity_in_minutes` (which can
/// shorten the token's lifetime, never lengthen it past the configured one).
pub fn apply_appraisal(claims: &mut Value, a: &Appraisal) {
    let Some(obj) = claims.as_object_mut() else {
        return;
    };
    for (k, v) in &a.issued {
        if !obj.contains_key(k) {
            obj.insert(k.clone(), v.clone());
        }
    }
    if let Some(minutes) = a.validity_minutes {
        let iat = obj.get("iat").and_then(Value::as_i64);
        let exp = obj.get("exp").and_then(Value::as_i64);
        if let (Some(iat), Some(exp)) = (iat, exp) {
            let wanted = iat.saturating_add(minutes.saturating_mul(60));
            obj.insert("exp".into(), Value::from(wanted.min(exp)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_storage_and_hash() {
        let maa = "// a comment\nversion=1.0; authorizationrules { => permit(); };";
        let p = ActivePolicy::parse(maa.as_bytes()).unwrap();
        assert_eq!(p.language(), Language::Maa);
        assert_eq!(p.text(), maa);
        let back = ActivePolicy::from_stored(&p.to_stored()).unwrap();
        assert_eq!(back.text(), maa);
        assert_eq!(back.hash(), p.hash());
        // BASE64URL(SHA256(BASE64URL(text))), recomputed independently of maa_policy_hash.
        let inner = B64URL.encode(maa);
        let want = B64URL.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            inner.as_bytes(),
        ));
        assert_eq!(p.hash(), want);

        let json = ActivePolicy::parse(br#"{"rules":[{"name":"r","min_isv_svn":2}]}"#).unwrap();
        assert_eq!(json.language(), Language::ConfkubeJson);
        let stored = json.to_stored();
        assert!(
            stored.starts_with(r#"{"language":"confkube-json""#),
            "{stored}"
        );
        assert_eq!(
            ActivePolicy::from_stored(&stored).unwrap().hash(),
            json.hash()
        );
        // A bare JSON document (the earlier store format) still loads.
        let legacy = ActivePolicy::from_stored(r#"{"rules":[{"name":"r"}]}"#).unwrap();
        assert_eq!(legacy.language(), Language::ConfkubeJson);

        let e = ActivePolicy::parse(b"version=1.0;\nauthorizationrules {\n  => permit()\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid policy: line 4, column 1: expected a rule or `}` closing `authorizationrules`, found the end of the policy"
        );
        let e = ActivePolicy::from_stored(r#"{"language":"rego","policy":""}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid policy: unknown policy language \"rego\""
        );
    }

    #[test]
    fn issued_claims_never_replace_service_claims_and_validity_only_shortens() {
        let mut c = json!({"iat": 100, "exp": 100 + 3600, "x-ms-sgx-svn": 1});
        let mut issued = Map::new();
        issued.insert("x-ms-sgx-svn".into(), json!(99));
        issued.insert("custom".into(), json!("v"));
        apply_appraisal(
            &mut c,
            &Appraisal {
                rule: "line 1".into(),
                issued: issued.clone(),
                validity_minutes: Some(10),
            },
        );
        assert_eq!(
            c,
            json!({"iat": 100, "exp": 700, "x-ms-sgx-svn": 1, "custom": "v"})
        );
        let mut c = json!({"iat": 100, "exp": 200});
        apply_appraisal(
            &mut c,
            &Appraisal {
                rule: "line 1".into(),
                issued: Map::new(),
                validity_minutes: Some(525_600),
            },
        );
        assert_eq!(c["exp"], 200);
    }
}
