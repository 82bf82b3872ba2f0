//! The appraisal policy: a small declarative JSON format, evaluated purely.
//!
//! ```json
//! {
//!   "rules": [
//!     {
//!       "name": "payments",
//!       "mrenclave": ["<64 hex>", "..."],
//!       "mrsigner": ["<64 hex>"],
//!       "isv_prod_id": [1],
//!       "min_isv_svn": 3,
//!       "allow_debug": false,
//!       "tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
//!       "forbidden_advisory_ids": ["INTEL-SA-00334"],
//!       "require_revocation_checked": true
//!     }
//!   ]
//! }
//! ```
//!
//! A quote is allowed when **any** rule accepts it; a rule accepts when **every** constraint it
//! states holds. Omitted constraints: any MRENCLAVE/MRSIGNER/ISVPRODID, no minimum ISVSVN, debug
//! enclaves rejected, TCB statuses UpToDate, SWHardeningNeeded, ConfigurationNeeded and
//! ConfigurationAndSWHardeningNeeded accepted (OutOfDate* and Revoked rejected), no advisory
//! forbidden, revocation must have been checked. The default policy is one rule, `default`, with
//! every constraint omitted. A denial names, per rule, the first constraint that failed.
//!
//! **TDX.** A rule may instead name TD measurements: `mr_td`, `rtmr0`..`rtmr3`,
//! `mr_config_id`, `mr_owner`, `mr_owner_config` (lists of 96 hex digits) and
//! `tdx_module_tcb_statuses`; `"tee": "sgx" | "tdx"` says which TEE a rule is for (implied by
//! the fields it names; a rule naming none applies to both). `allow_debug`, `tcb_statuses`,
//! `forbidden_advisory_ids` and `require_revocation_checked` apply to TDs as to enclaves
//! (`debug` = TD_ATTRIBUTES.DEBUG). A rule for the other TEE fails with `tee-not-matched`; a
//! measurement outside its list with `tdx-measurement-not-allowed`.

use dcap::{TcbStatus, VerifiedQuote, VerifiedTdxQuote};
use serde::{Deserialize, Serialize};

/// Why a policy document is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(pub String);

fn perr(msg: impl Into<String>) -> PolicyError {
    PolicyError(msg.into())
}

/// One rule, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique name, shown in denials.
    pub name: String,
    /// Accepted MRENCLAVE values (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrenclave: Option<Vec<String>>,
    /// Accepted MRSIGNER values (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrsigner: Option<Vec<String>>,
    /// Accepted ISVPRODID values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isv_prod_id: Option<Vec<u16>>,
    /// Minimum ISVSVN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_isv_svn: Option<u16>,
    /// Accept debug enclaves (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_debug: Option<bool>,
    /// Accepted final TCB statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcb_statuses: Option<Vec<String>>,
    /// Advisory IDs that must not be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbidden_advisory_ids: Option<Vec<String>>,
    /// Require that CRLs were checked (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_revocation_checked: Option<bool>,
    /// The TEE the rule is for: `"sgx"` or `"tdx"`. Omitted: the TEE its measurement fields
    /// name (SGX fields: SGX; TDX fields: TDX), or either when it names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee: Option<String>,
    /// TDX: accepted MRTD values (96 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_td: Option<Vec<String>>,
    /// TDX: accepted RTMR0 values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr0: Option<Vec<String>>,
    /// TDX: accepted RTMR1 values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr1: Option<Vec<String>>,
    /// TDX: accepted RTMR2 values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr2: Option<Vec<String>>,
    /// TDX: accepted RTMR3 values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr3: Option<Vec<String>>,
    /// TDX: accepted MRCONFIGID values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_config_id: Option<Vec<String>>,
    /// TDX: accepted MROWNER values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_owner: Option<Vec<String>>,
    /// TDX: accepted MROWNERCONFIG values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_owner_config: Option<Vec<String>>,
    /// TDX: accepted TDX module TCB statuses (default: any; the final status already counts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx_module_tcb_statuses: Option<Vec<String>>,
}

/// Which TEE a rule or evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tee {
    /// An SGX enclave.
    Sgx,
    /// A TDX trust domain.
    Tdx,
}

impl Tee {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sgx => "sgx",
            Self::Tdx => "tdx",
        }
    }
}

/// The TDX measurement lists of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TdxLists {
    /// (field name, accepted values) for MRTD, RTMR0..3, MRCONFIGID, MROWNER, MROWNERCONFIG.
    lists: Vec<(&'static str, Vec<[u8; 48]>)>,
    module_statuses: Option<Vec<TcbStatus>>,
}

/// What the policy looks at in a TD, taken from a verified TDX quote.
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
    /// The TDX module's TCB status.
    pub tdx_module_tcb_status: TcbStatus,
}

impl TdxEvidence {
    fn field(&self, name: &str) -> Option<&[u8; 48]> {
        match name {
            "mr_td" => Some(&self.mr_td),
            "rtmr0" => self.rtmr.first(),
            "rtmr1" => self.rtmr.get(1),
            "rtmr2" => self.rtmr.get(2),
            "rtmr3" => self.rtmr.get(3),
            "mr_config_id" => Some(&self.mr_config_id),
            "mr_owner" => Some(&self.mr_owner),
            "mr_owner_config" => Some(&self.mr_owner_config),
            _ => None,
        }
    }
}

fn hex48_list(rule: &str, field: &str, list: &[String]) -> Result<Vec<[u8; 48]>, PolicyError> {
    if list.is_empty() {
        return Err(perr(format!(
            "rule {rule:?}: {field} is an empty list (omit it to allow any)"
        )));
    }
    list.iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 48]>::try_from(b).ok())
                .ok_or_else(|| perr(format!("rule {rule:?}: {field} {h:?} is not 96 hex digits")))
        })
        .collect()
}

fn statuses(rule: &str, field: &str, list: &[String]) -> Result<Vec<TcbStatus>, PolicyError> {
    if list.is_empty() {
        return Err(perr(format!("rule {rule:?}: {field} is empty")));
    }
    list.iter()
        .map(|s| {
            TcbStatus::parse(s)
                .ok_or_else(|| perr(format!("rule {rule:?}: unknown TCB status {s:?}")))
        })
        .collect()
}

impl Rule {
    fn tdx_lists(&self) -> Result<TdxLists, PolicyError> {
        let mut lists = Vec::new();
        for (name, v) in [
            ("mr_td", &self.mr_td),
            ("rtmr0", &self.rtmr0),
            ("rtmr1", &self.rtmr1),
            ("rtmr2", &self.rtmr2),
            ("rtmr3", &self.rtmr3),
            ("mr_config_id", &self.mr_config_id),
            ("mr_owner", &self.mr_owner),
            ("mr_owner_config", &self.mr_owner_config),
        ] {
            if let Some(l) = v {
                lists.push((name, hex48_list(&self.name, name, l)?));
            }
        }
        let module_statuses = self
            .tdx_module_tcb_statuses
            .as_deref()
            .map(|l| statuses(&self.name, "tdx_module_tcb_statuses", l))
            .transpose()?;
        Ok(TdxLists {
            lists,
            module_statuses,
        })
    }

    fn tee(&self, tdx: &TdxLists) -> Result<Option<Tee>, PolicyError> {
        let sgx_fields = self.mrenclave.is_some()
            || self.mrsigner.is_some()
            || self.isv_prod_id.is_some()
            || self.min_isv_svn.is_some();
        let tdx_fields = !tdx.lists.is_empty() || tdx.module_statuses.is_some();
        let named = match self.tee.as_deref() {
            None => None,
            Some("sgx") => Some(Tee::Sgx),
            Some("tdx") => Some(Tee::Tdx),
            Some(other) => {
                return Err(perr(format!(
                    "rule {:?}: tee {other:?} is neither \"sgx\" nor \"tdx\"",
                    self.name
                )));
            }
        };
        match (named, sgx_fields, tdx_fields) {
            (_, true, true) => Err(perr(format!(
                "rule {:?} names both SGX fields (mrenclave, mrsigner, isv_prod_id, \
                 min_isv_svn) and TDX fields (mr_td, rtmr*, mr_config_id, mr_owner*, \
                 tdx_module_tcb_statuses); write one rule per TEE",
                self.name
            ))),
            (Some(Tee::Sgx), _, true) | (Some(Tee::Tdx), true, _) => Err(perr(format!(
                "rule {:?}: tee {:?} does not match the fields it names",
                self.name,
                self.tee.as_deref().unwrap_or_default()
            ))),
            (Some(t), _, _) => Ok(Some(t)),
            (None, true, _) => Ok(Some(Tee::Sgx)),
            (None, _, true) => Ok(Some(Tee::Tdx)),
            (None, false, false) => Ok(None),
        }
    }
}

/// A policy document, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// The rules; any one may accept.
    pub rules: Vec<Rule>,
}

/// The statuses accepted when a rule does not say.
pub const DEFAULT_TCB_STATUSES: [TcbStatus; 4] = [
    TcbStatus::UpToDate,
    TcbStatus::SwHardeningNeeded,
    TcbStatus::ConfigurationNeeded,
    TcbStatus::ConfigurationAndSwHardeningNeeded,
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct CompiledRule {
    name: String,
    mrenclave: Option<Vec<[u8; 32]>>,
    mrsigner: Option<Vec<[u8; 32]>>,
    isv_prod_id: Option<Vec<u16>>,
    min_isv_svn: Option<u16>,
    allow_debug: bool,
    tcb_statuses: Vec<TcbStatus>,
    forbidden_advisory_ids: Vec<String>,
    require_revocation_checked: bool,
    tee: Option<Tee>,
    tdx: TdxLists,
}

/// A validated policy, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    doc: PolicyDocument,
    rules: Vec<CompiledRule>,
}

/// One rule's reason for not accepting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule.
    pub rule: String,
    /// A stable code: `mrenclave-not-allowed`, `mrsigner-not-allowed`,
    /// `isv-prod-id-not-allowed`, `isv-svn-too-low`, `debug-not-allowed`,
    /// `tcb-status-not-accepted`, `advisory-forbidden`, `revocation-not-checked`,
    /// `tee-not-matched`, `tdx-measurement-not-allowed`.
    pub code: &'static str,
    /// What failed, for people.
    pub message: String,
}

/// Why a policy denied a quote: one violation per rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Per rule, in policy order.
    pub violations: Vec<Violation>,
}

impl Denial {
    /// The code of a denial: the rule's code when the policy has one rule, else
    /// `no-rule-matched`.
    pub fn code(&self) -> &'static str {
        match self.violations.as_slice() {
            [one] => one.code,
            _ => "no-rule-matched",
        }
    }

    /// One line naming each rule and what failed.
    pub fn message(&self) -> String {
        self.violations
            .iter()
            .map(|v| format!("rule {:?}: {}", v.rule, v.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What the policy looks at, taken from a verified quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// DEBUG attribute.
    pub debug: bool,
    /// Final TCB status.
    pub tcb_status: TcbStatus,
    /// Advisory IDs.
    pub advisory_ids: Vec<String>,
    /// Whether CRLs were checked.
    pub revocation_checked: bool,
    /// The TD's measurements, for a TDX quote (`None` for SGX, whose fields are above; for a TD
    /// those are zero).
    pub tdx: Option<TdxEvidence>,
}

impl From<&VerifiedTdxQuote> for Evidence {
    fn from(v: &VerifiedTdxQuote) -> Self {
        let r = v.report();
        Self {
            mrenclave: [0; 32],
            mrsigner: [0; 32],
            isv_prod_id: 0,
            isv_svn: 0,
            debug: v.debug(),
            tcb_status: v.tcb_status(),
            advisory_ids: v.advisory_ids().to_vec(),
            revocation_checked: v.revocation_checked(),
            tdx: Some(TdxEvidence {
                mr_td: r.mr_td.0,
                rtmr: r.rt_mr.map(|m| m.0),
                mr_config_id: r.mr_config_id.0,
                mr_owner: r.mr_owner.0,
                mr_owner_config: r.mr_owner_config.0,
                tdx_module_tcb_status: v.tdx_module_tcb_status(),
            }),
        }
    }
}

impl From<&VerifiedQuote> for Evidence {
    fn from(v: &VerifiedQuote) -> Self {
        let r = v.report();
        Self {
            mrenclave: r.mr_enclave.0,
            mrsigner: r.mr_signer.0,
            isv_prod_id: r.isv_prod_id,
            isv_svn: r.isv_svn,
            debug: v.debug(),
            tcb_status: v.tcb_status(),
            advisory_ids: v.advisory_ids().to_vec(),
            revocation_checked: v.revocation_checked(),
            tdx: None,
        }
    }
}

fn hex32_list(
    rule: &str,
    field: &str,
    v: &Option<Vec<String>>,
) -> Result<Option<Vec<[u8; 32]>>, PolicyError> {
    let Some(list) = v else { return Ok(None) };
    if list.is_empty() {
        return Err(perr(format!(
            "rule {rule:?}: {field} is an empty list (omit it to allow any)"
        )));
    }
    list.iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| perr(format!("rule {rule:?}: {field} {h:?} is not 64 hex digits")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl Policy {
    /// Parses and validates a policy document (JSON).
    pub fn from_json(text: &[u8]) -> Result<Self, PolicyError> {
        let doc: PolicyDocument = serde_json::from_slice(text)
            .map_err(|e| perr(format!("not a policy document: {e}")))?;
        Self::from_document(doc)
    }

    /// Validates a policy document.
    pub fn from_document(doc: PolicyDocument) -> Result<Self, PolicyError> {
        if doc.rules.is_empty() {
            return Err(perr("a policy needs at least one rule"));
        }
        let mut rules = Vec::with_capacity(doc.rules.len());
        for r in &doc.rules {
            if r.name.trim().is_empty() {
                return Err(perr("every rule needs a non-empty name"));
            }
            if rules.iter().any(|c: &CompiledRule| c.name == r.name) {
                return Err(perr(format!("rule name {:?} is used twice", r.name)));
            }
            let tcb_statuses = match &r.tcb_statuses {
                None => DEFAULT_TCB_STATUSES.to_vec(),
                Some(list) if list.is_empty() => {
                    return Err(perr(format!("rule {:?}: tcb_statuses is empty", r.name)));
                }
                Some(list) => list
                    .iter()
                    .map(|s| {
                        TcbStatus::parse(s).ok_or_else(|| {
                            perr(format!("rule {:?}: unknown TCB status {s:?}", r.name))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            if let Some(list) = &r.isv_prod_id
                && list.is_empty()
            {
                return Err(perr(format!(
                    "rule {:?}: isv_prod_id is an empty list",
                    r.name
                )));
            }
            let tdx = r.tdx_lists()?;
            let tee = r.tee(&tdx)?;
            rules.push(CompiledRule {
                tee,
                tdx,
                name: r.name.clone(),
                mrenclave: hex32_list(&r.name, "mrenclave", &r.mrenclave)?,
                mrsigner: hex32_list(&r.name, "mrsigner", &r.mrsigner)?,
                isv_prod_id: r.isv_prod_id.clone(),
                min_isv_svn: r.min_isv_svn,
                allow_debug: r.allow_debug.unwrap_or(false),
                tcb_statuses,
                forbidden_advisory_ids: r.forbidden_advisory_ids.clone().unwrap_or_default(),
                require_revocation_checked: r.require_revocation_checked.unwrap_or(true),
            });
        }
        Ok(Self { doc, rules })
    }

    /// The default policy: rule `default`, every constraint at its default.
    pub fn default_policy() -> Self {
        let doc = PolicyDocument {
            rules: vec![Rule {
                name: "default".into(),
                ..Rule::default()
            }],
        };
        // The default document is valid by construction; fall back to an empty rule set
        // (which denies everything) rather than panic if that ever changed.
        Self::from_document(doc.clone()).unwrap_or(Self { doc, rules: vec![] })
    }

    /// The document (for GET).
    pub fn document(&self) -> &PolicyDocument {
        &self.doc
    }

    /// Canonical JSON text of the document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.doc).unwrap_or_default()
    }

    /// MAA's policy hash: BASE64URL(SHA-256(BASE64URL(policy text))).
    pub fn hash(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let inner = b64.encode(self.to_json());
        b64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            inner.as_bytes(),
        ))
    }

    /// Ok(rule name) when a rule accepts, else every rule's first failure.
    pub fn evaluate(&self, e: &Evidence) -> Result<String, Denial> {
        let mut violations = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            match r.check(e) {
                None => return Ok(r.name.clone()),
                Some((code, message)) => violations.push(Violation {
                    rule: r.name.clone(),
                    code,
                    message,
                }),
            }
        }
        Err(Denial { violations })
    }
}

impl CompiledRule {
    fn check(&self, e: &Evidence) -> Option<(&'static str, String)> {
        let tee = if e.tdx.is_some() { Tee::Tdx } else { Tee::Sgx };
        if let Some(want) = self.tee
            && want != tee
        {
            return Some((
                "tee-not-matched",
                format!(
                    "the rule is for {} quotes, this is {}",
                    want.as_str(),
                    tee.as_str()
                ),
            ));
        }
        if let Some(td) = &e.tdx {
            for (name, list) in &self.tdx.lists {
                if let Some(v) = td.field(name)
                    && !list.contains(v)
                {
                    return Some((
                        "tdx-measurement-not-allowed",
                        format!("{name} {} is not in the allowed list", hex::encode(v)),
                    ));
                }
            }
            if let Some(list) = &self.tdx.module_statuses
                && !list.contains(&td.tdx_module_tcb_status)
            {
                return Some((
                    "tcb-status-not-accepted",
                    format!(
                        "TDX module TCB status {} is not accepted",
                        td.tdx_module_tcb_status
                    ),
                ));
            }
        }
        if let Some(list) = &self.mrenclave
            && !list.contains(&e.mrenclave)
        {
            return Some((
                "mrenclave-not-allowed",
                format!(
                    "MRENCLAVE {} is not in the allowed list",
                    hex::encode(e.mrenclave)
                ),
            ));
        }
        if let Some(list) = &self.mrsigner
            && !list.contains(&e.mrsigner)
        {
            return Some((
                "mrsigner-not-allowed",
                format!(
                    "MRSIGNER {} is not in the allowed list",
                    hex::encode(e.mrsigner)
                ),
            ));
        }
        if let Some(list) = &self.isv_prod_id
            && !list.contains(&e.isv_prod_id)
        {
            return Some((
                "isv-prod-id-not-allowed",
                format!("ISVPRODID {} is not in {list:?}", e.isv_prod_id),
            ));
        }
        if let Some(min) = self.min_isv_svn
            && e.isv_svn < min
        {
            return Some((
                "isv-svn-too-low",
                format!("ISVSVN {} is below the minimum {min}", e.isv_svn),
            ));
        }
        if e.debug && !self.allow_debug {
            return Some((
                "debug-not-allowed",
                "the enclave is a debug enclave (allow_debug is false)".into(),
            ));
        }
        if !self.tcb_statuses.contains(&e.tcb_status) {
            let accepted: Vec<_> = self.tcb_statuses.iter().map(|s| s.as_str()).collect();
            return Some((
                "tcb-status-not-accepted",
                format!(
                    "TCB status {} is not one of {}",
                    e.tcb_status,
                    accepted.join(", ")
                ),
            ));
        }
        if let Some(a) = e
            .advisory_ids
            .iter()
            .find(|a| self.forbidden_advisory_ids.contains(a))
        {
            return Some(("advisory-forbidden", format!("advisory {a} is forbidden")));
        }
        if self.require_revocation_checked && !e.revocation_checked {
            return Some((
                "revocation-not-checked",
                "revocation was not checked (collateral without CRLs)".into(),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Evidence {
        Evidence {
            mrenclave: [1; 32],
            mrsigner: [2; 32],
            isv_prod_id: 5,
            isv_svn: 3,
            debug: false,
            tcb_status: TcbStatus::SwHardeningNeeded,
            advisory_ids: vec!["INTEL-SA-00615".into()],
            revocation_checked: true,
            tdx: None,
        }
    }

    fn policy(rule: serde_json::Value) -> Policy {
        let mut r = rule;
        r["name"] = "r".into();
        Policy::from_json(serde_json::json!({ "rules": [r] }).to_string().as_bytes()).unwrap()
    }

    fn code(p: &Policy, e: &Evidence) -> String {
        match p.evaluate(e) {
            Ok(rule) => format!("allow {rule}"),
            Err(d) => d.code().to_string(),
        }
    }

    #[test]
    fn allow_deny_matrix() {
        let one = hex::encode([1u8; 32]);
        let two = hex::encode([2u8; 32]);
        let other = hex::encode([9u8; 32]);
        let cases = [
            (serde_json::json!({}), ev(), "allow r"),
            (serde_json::json!({"mrenclave": [one]}), ev(), "allow r"),
            (
                serde_json::json!({"mrenclave": [other]}),
                ev(),
                "mrenclave-not-allowed",
            ),
            (serde_json::json!({"mrsigner": [two]}), ev(), "allow r"),
            (
                serde_json::json!({"mrsigner": [other]}),
                ev(),
                "mrsigner-not-allowed",
            ),
            (serde_json::json!({"isv_prod_id": [4, 5]}), ev(), "allow r"),
            (
                serde_json::json!({"isv_prod_id": [4]}),
                ev(),
                "isv-prod-id-not-allowed",
            ),
            (serde_json::json!({"min_isv_svn": 3}), ev(), "allow r"),
            (
                serde_json::json!({"min_isv_svn": 4}),
                ev(),
                "isv-svn-too-low",
            ),
            (
                serde_json::json!({}),
                Evidence {
                    debug: true,
                    ..ev()
                },
                "debug-not-allowed",
            ),
            (
                serde_json::json!({"allow_debug": true}),
                Evidence {
                    debug: true,
                    ..ev()
                },
                "allow r",
            ),
            (
                serde_json::json!({}),
                Evidence {
                    tcb_status: TcbStatus::OutOfDate,
                    ..ev()
                },
                "tcb-status-not-accepted",
            ),
            (
                serde_json::json!({}),
                Evidence {
                    tcb_status: TcbStatus::OutOfDateConfigurationNeeded,
                    ..ev()
                },
                "tcb-status-not-accepted",
            ),
            (
                serde_json::json!({"tcb_statuses": ["UpToDate"]}),
                ev(),
                "tcb-status-not-accepted",
            ),
            (
                serde_json::json!({"tcb_statuses": ["OutOfDate"]}),
                Evidence {
                    tcb_status: TcbStatus::OutOfDate,
                    ..ev()
                },
                "allow r",
            ),
            (
                serde_json::json!({"forbidden_advisory_ids": ["INTEL-SA-00615"]}),
                ev(),
                "advisory-forbidden",
            ),
            (
                serde_json::json!({"forbidden_advisory_ids": ["INTEL-SA-00334"]}),
                ev(),
                "allow r",
            ),
            (
                serde_json::json!({}),
                Evidence {
                    revocation_checked: false,
                    ..ev()
                },
                "revocation-not-checked",
            ),
            (
                serde_json::json!({"require_revocation_checked": false}),
                Evidence {
                    revocation_checked: false,
                    ..ev()
                },
                "allow r",
            ),
        ];
        for (rule, e, want) in cases {
            assert_eq!(code(&policy(rule.clone()), &e), want, "{rule}");
        }
    }

    #[test]
    fn default_policy_rejects_debug_and_out_of_date() {
        let p = Policy::default_policy();
        assert_eq!(code(&p, &ev()), "allow default");
        let d = p
            .evaluate(&Evidence {
                debug: true,
                ..ev()
            })
            .unwrap_err();
        assert_eq!(
            d.message(),
            "rule \"default\": the enclave is a debug enclave (allow_debug is false)"
        );
        for s in [TcbStatus::OutOfDate, TcbStatus::Revoked] {
            assert_eq!(
                code(
                    &p,
                    &Evidence {
                        tcb_status: s,
                        ..ev()
                    }
                ),
                "tcb-status-not-accepted"
            );
        }
    }

    #[test]
    fn several_rules_any_may_accept_and_all_are_named() {
        let text = serde_json::json!({"rules": [
            {"name": "a", "mrenclave": [hex::encode([7u8; 32])]},
            {"name": "b", "min_isv_svn": 9},
        ]});
        let p = Policy::from_json(text.to_string().as_bytes()).unwrap();
        let d = p.evaluate(&ev()).unwrap_err();
        assert_eq!(d.code(), "no-rule-matched");
        assert_eq!(
            d.message(),
            format!(
                "rule \"a\": MRENCLAVE {} is not in the allowed list; rule \"b\": ISVSVN 3 is below the minimum 9",
                hex::encode([1u8; 32])
            )
        );
        let ok = Evidence {
            mrenclave: [7; 32],
            ..ev()
        };
        assert_eq!(p.evaluate(&ok), Ok("a".to_string()));
    }

    #[test]
    fn invalid_documents_are_explained() {
        let cases = [
            (
                r#"{"rules": []}"#,
                "invalid policy: a policy needs at least one rule",
            ),
            (
                r#"{"rules": [{"name": ""}]}"#,
                "invalid policy: every rule needs a non-empty name",
            ),
            (
                r#"{"rules": [{"name": "a"}, {"name": "a"}]}"#,
                "invalid policy: rule name \"a\" is used twice",
            ),
            (
                r#"{"rules": [{"name": "a", "mrenclave": ["abc"]}]}"#,
                "invalid policy: rule \"a\": mrenclave \"abc\" is not 64 hex digits",
            ),
            (
                r#"{"rules": [{"name": "a", "mrsigner": []}]}"#,
                "invalid policy: rule \"a\": mrsigner is an empty list (omit it to allow any)",
            ),
            (
                r#"{"rules": [{"name": "a", "tcb_statuses": ["Fine"]}]}"#,
                "invalid policy: rule \"a\": unknown TCB status \"Fine\"",
            ),
            (
                r#"{"rules": [{"name": "a", "tcb_statuses": []}]}"#,
                "invalid policy: rule \"a\": tcb_statuses is empty",
            ),
            (
                r#"{"rules": [{"name": "a", "isv_prod_id": []}]}"#,
                "invalid policy: rule \"a\": isv_prod_id is an empty list",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                Policy::from_json(text.as_bytes()).unwrap_err().to_string(),
                want,
                "{text}"
            );
        }
        let e =
            Policy::from_json(br#"{"rules": [{"name": "a", "allow_debugg": true}]}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid policy: not a policy document: unknown field `allow_debugg`"),
            "{e}"
        );
    }

    #[test]
    fn hash_is_stable_and_content_bound() {
        let a = Policy::default_policy();
        assert_eq!(a.hash(), Policy::default_policy().hash());
        assert_eq!(a.hash().len(), 43);
        assert_ne!(
            a.hash(),
            policy(serde_json::json!({"min_isv_svn": 1})).hash()
        );
    }
}
