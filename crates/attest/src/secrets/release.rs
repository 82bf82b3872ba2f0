//! The release decision: a token of this service checked against `/certs`, the claims turned into
//! policy evidence, the per-`jti` release limit.

use crate::keys::KeyRing;
use crate::policy::Evidence;
use dcap::TcbStatus;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// Why a token is not acceptable (always `401 token-invalid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenInvalid(pub String);

fn invalid(m: impl Into<String>) -> TokenInvalid {
    TokenInvalid(m.into())
}

/// Verifies a token issued by this service: signature by a key published in `/certs` (drafts
/// and foreign keys fail), `iss` one of the service's issuers, `nbf <= now < exp` on the
/// service clock. Returns the claims.
pub fn verify_token(
    token: &str,
    keys: &KeyRing,
    issuers: &[&str],
    now: i64,
) -> Result<Value, TokenInvalid> {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
    let header = decode_header(token).map_err(|e| {
        invalid(format!(
            "not a signed JWT this service accepts (alg must be RS256 or ES256): {e}"
        ))
    })?;
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| invalid("the token header has no kid"))?;
    let set: JwkSet = serde_json::from_value(keys.jwks(now))
        .map_err(|e| invalid(format!("the service's key set is unreadable: {e}")))?;
    let jwk = set.find(kid).ok_or_else(|| {
        invalid(format!(
            "kid {kid:?} is not a key of this service's /certs (a draft-policy token, another \
             issuer's token, or a retired key)"
        ))
    })?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| invalid(format!("key {kid:?} of /certs is unusable: {e}")))?;
    let mut v = Validation::new(header.alg);
    // The service clock (which may be pinned) decides expiry, below.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = ["exp", "iss"].iter().map(|s| (*s).to_string()).collect();
    let issuers: Vec<&str> = issuers.iter().map(|i| i.trim_end_matches('/')).collect();
    v.set_issuer(&issuers);
    let data = decode::<Value>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => invalid("the token signature does not verify"),
            ErrorKind::InvalidIssuer => invalid(format!(
                "the token was not issued by {}",
                issuers.join(" or ")
            )),
            ErrorKind::InvalidAlgorithm => {
                invalid("the token's alg does not match its key in /certs")
            }
            _ => invalid(format!("the token is not valid: {e}")),
        }
    })?;
    let claims = data.claims;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("exp is not a number"))?;
    if now >= exp {
        return Err(invalid(format!("the token expired at {exp} (now {now})")));
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && now < nbf
    {
        return Err(invalid(format!(
            "the token is not valid before {nbf} (now {now})"
        )));
    }
    if claims
        .get("x-confkube-draft-policy")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(invalid("a draft-policy token cannot release secrets"));
    }
    Ok(claims)
}

/// A fixed-size byte claim given as hex.
fn bytes_claim<const N: usize>(claims: &Value, name: &str) -> Result<[u8; N], String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| format!("{name} is missing or not {} hex digits", N * 2))
}

fn u16_claim(claims: &Value, name: &str) -> Result<u16, String> {
    claims
        .get(name)
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("{name} is missing or not a 16-bit number"))
}

/// The policy evidence of a token's SGX claims.
pub fn evidence(claims: &Value) -> Result<Evidence, String> {
    if claims.get("x-ms-attestation-type").and_then(Value::as_str) != Some("sgx") {
        return Err("the token is not an SGX enclave token (x-ms-attestation-type)".into());
    }
    let tcb = claims
        .get("x-confkube-tcb-status")
        .and_then(Value::as_str)
        .and_then(TcbStatus::parse)
        .ok_or("x-confkube-tcb-status is missing or unknown")?;
    Ok(Evidence {
        mrenclave: bytes_claim::<32>(claims, "x-ms-sgx-mrenclave")?,
        mrsigner: bytes_claim::<32>(claims, "x-ms-sgx-mrsigner")?,
        isv_prod_id: u16_claim(claims, "x-ms-sgx-product-id")?,
        isv_svn: u16_claim(claims, "x-ms-sgx-svn")?,
        debug: claims
            .get("x-ms-sgx-is-debuggable")
            .and_then(Value::as_bool)
            .ok_or("x-ms-sgx-is-debuggable is missing")?,
        tcb_status: tcb,
        tdx: None,
        advisory_ids: claims
            .get("x-confkube-advisory-ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        revocation_checked: claims
            .get("x-confkube-revocation-checked")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn json_text(claims: &Value, name: &str) -> Option<String> {
    claims.get(name).map(Value::to_string)
}

/// The MAA incoming claims of a token's SGX claims: the same claim set an attestation policy
/// sees (MAA names, version 1.0 `$` names, `x-confkube-*`), rebuilt from the token.
pub fn maa_claims(claims: &Value) -> Result<maa_policy::Claims, String> {
    let ev = evidence(claims)?;
    let runtime_data = match claims.get("x-ms-sgx-ehd").and_then(Value::as_str) {
        None => None,
        Some(e) => Some(crate::claims::decode_b64("x-ms-sgx-ehd", e).map_err(|e| e.to_string())?),
    };
    let report_data = claims
        .get("x-ms-sgx-report-data")
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok())
        .ok_or("x-ms-sgx-report-data is missing or not hex")?;
    let sgx = maa_policy::sgx::SgxEvidence {
        mrenclave: ev.mrenclave,
        mrsigner: ev.mrsigner,
        product_id: ev.isv_prod_id,
        svn: ev.isv_svn,
        debuggable: ev.debug,
        report_data,
        runtime_data,
        runtime_json: json_text(claims, "x-ms-runtime"),
        inittime_json: json_text(claims, "x-ms-inittime"),
        tcb_status: ev.tcb_status.as_str().to_string(),
        advisory_ids: ev.advisory_ids,
        fmspc: bytes_claim::<6>(claims, "x-confkube-fmspc")?,
        tcb_evaluation_data_number: None,
    };
    Ok(sgx.claims())
}

/// Most `jti`s tracked at once (only when a limit is configured).
pub const MAX_TRACKED_JTIS: usize = 100_000;

/// Counts releases per token `jti` until the token expires.
#[derive(Debug)]
pub struct JtiLimiter {
    limit: Option<u32>,
    seen: Mutex<HashMap<String, (u32, i64)>>,
}

/// Why the limiter refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitRefusal {
    /// This `jti` was used `limit` times already.
    Exhausted(u32),
    /// The tracking table is full of unexpired tokens.
    Full,
}

impl JtiLimiter {
    /// At most `limit` releases per `jti` (`None` = unlimited, nothing tracked).
    pub fn new(limit: Option<u32>) -> Self {
        Self {
            limit,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// Takes one release of `jti` (valid until `exp`) or refuses.
    pub fn take(&self, jti: &str, exp: i64, now: i64) -> Result<(), LimitRefusal> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !seen.contains_key(jti) && seen.len() >= MAX_TRACKED_JTIS {
            seen.retain(|_, (_, e)| *e > now);
            if seen.len() >= MAX_TRACKED_JTIS {
                return Err(LimitRefusal::Full);
            }
        }
        let entry = seen.entry(jti.to_string()).or_insert((0, exp));
        if entry.0 >= limit {
            return Err(LimitRefusal::Exhausted(limit));
        }
        entry.0 = entry.0.saturating_add(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_jti_and_forgets_expired() {
        let l = JtiLimiter::new(Some(2));
        assert_eq!(l.take("a", 100, 0), Ok(()));
        assert_eq!(l.take("a", 100, 0), Ok(()));
        assert_eq!(l.take("a", 100, 0), Err(LimitRefusal::Exhausted(2)));
        assert_eq!(l.take("b", 100, 0), Ok(()));
        let unlimited = JtiLimiter::new(None);
        for _ in 0..10 {
            assert_eq!(unlimited.take("a", 100, 0), Ok(()));
        }
    }

    #[test]
    fn evidence_needs_sgx_claims() {
        let ok = serde_json::json!({
            "x-ms-attestation-type": "sgx",
            "x-ms-sgx-mrenclave": "11".repeat(32),
            "x-ms-sgx-mrsigner": "22".repeat(32),
            "x-ms-sgx-product-id": 3,
            "x-ms-sgx-svn": 4,
            "x-ms-sgx-is-debuggable": false,
            "x-confkube-tcb-status": "UpToDate",
            "x-confkube-advisory-ids": ["INTEL-SA-1"],
            "x-confkube-revocation-checked": true,
        });
        let e = evidence(&ok).unwrap();
        assert_eq!((e.isv_prod_id, e.isv_svn, e.mrenclave), (3, 4, [0x11; 32]));
        assert_eq!(e.advisory_ids, vec!["INTEL-SA-1".to_string()]);
        let mut tdx = ok.clone();
        tdx["x-ms-attestation-type"] = "tdx".into();
        assert_eq!(
            evidence(&tdx).unwrap_err(),
            "the token is not an SGX enclave token (x-ms-attestation-type)"
        );
        let mut bad = ok;
        bad["x-ms-sgx-svn"] = 70_000.into();
        assert_eq!(
            evidence(&bad).unwrap_err(),
            "x-ms-sgx-svn is missing or not a 16-bit number"
        );
    }
}
