//! Claims: what a policy reads (the incoming claim set) and what it produces.

use std::fmt;

/// A claim value: MAA's three value types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `Boolean`.
    Bool(bool),
    /// `Integer` (64-bit signed).
    Int(i64),
    /// `String`.
    Str(String),
}

impl Value {
    /// MAA's name of the value type (`valueType`): `Boolean`, `Integer` or `String`.
    pub fn value_type(&self) -> &'static str {
        match self {
            Value::Bool(_) => "Boolean",
            Value::Int(_) => "Integer",
            Value::Str(_) => "String",
        }
    }

    /// The value as JSON (a JWT claim value).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Str(s) => serde_json::Value::String(s.clone()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

/// Who put a claim into the claim set (MAA's `issuer` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Issuer {
    /// Made by the attestation service from the evidence.
    AttestationService,
    /// Added by the policy (`add`, `issue`, `issueproperty`).
    AttestationPolicy,
    /// Supplied by the client.
    CustomClaim,
}

impl Issuer {
    /// The name policies compare with (`issuer=="AttestationService"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Issuer::AttestationService => "AttestationService",
            Issuer::AttestationPolicy => "AttestationPolicy",
            Issuer::CustomClaim => "CustomClaim",
        }
    }
}

/// One claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `type`.
    pub claim_type: String,
    /// `value`.
    pub value: Value,
    /// `issuer`.
    pub issuer: Issuer,
}

impl Claim {
    /// A claim made by the attestation service.
    pub fn service(claim_type: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            claim_type: claim_type.into(),
            value: value.into(),
            issuer: Issuer::AttestationService,
        }
    }
}

/// A claim set: the incoming claims a policy is evaluated against. A type may occur more than
/// once (a set of values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    claims: Vec<Claim>,
}

impl Claims {
    /// An empty claim set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a claim made by the attestation service.
    pub fn push(&mut self, claim_type: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.claims.push(Claim::service(claim_type, value));
        self
    }

    /// Adds a claim.
    pub fn push_claim(&mut self, claim: Claim) -> &mut Self {
        self.claims.push(claim);
        self
    }

    /// The claims, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Claim> {
        self.claims.iter()
    }

    /// Number of claims.
    pub fn len(&self) -> usize {
        self.claims.len()
    }

    /// No claims.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    /// The values of every claim of a type.
    pub fn values<'a>(&'a self, claim_type: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.claims
            .iter()
            .filter(move |c| c.claim_type == claim_type)
            .map(|c| &c.value)
    }

    /// Incoming claims from a token's JSON claims (for policies evaluated against a token that
    /// this service issued, as secret release does): booleans, integers and strings become claims
    /// of the same type; an array of those becomes one claim per element; an object, a fraction
    /// or a nested array becomes a string claim holding its JSON text (readable with
    /// `JmesPath`/`JsonToClaimValue` in version 1.2); `null` is skipped.
    pub fn from_json_claims(map: &serde_json::Map<String, serde_json::Value>) -> Self {
        let mut out = Claims::new();
        for (k, v) in map {
            match v {
                serde_json::Value::Array(items) => {
                    for item in items {
                        if let Some(value) = json_scalar(item) {
                            out.push(k.clone(), value);
                        } else if !item.is_null() {
                            out.push(k.clone(), item.to_string());
                        }
                    }
                }
                other => {
                    if let Some(value) = json_scalar(other) {
                        out.push(k.clone(), value);
                    } else if !other.is_null() {
                        out.push(k.clone(), other.to_string());
                    }
                }
            }
        }
        out
    }

    pub(crate) fn as_slice(&self) -> &[Claim] {
        &self.claims
    }
}

fn json_scalar(v: &serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
        serde_json::Value::Number(n) => n.as_i64().map(Value::Int),
        serde_json::Value::String(s) => Some(Value::Str(s.clone())),
        _ => None,
    }
}

impl Extend<Claim> for Claims {
    fn extend<T: IntoIterator<Item = Claim>>(&mut self, iter: T) {
        self.claims.extend(iter);
    }
}

impl FromIterator<Claim> for Claims {
    fn from_iter<T: IntoIterator<Item = Claim>>(iter: T) -> Self {
        Self {
            claims: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_claims_become_incoming_claims() {
        let map = serde_json::json!({
            "b": true, "i": 7, "s": "x", "n": null, "f": 1.5,
            "a": [1, "two", null, {"k": 1}], "o": {"k": [1]}
        });
        let c = Claims::from_json_claims(map.as_object().unwrap());
        let got: Vec<(String, Value)> = c
            .iter()
            .map(|c| (c.claim_type.clone(), c.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), Value::Int(1)),
                ("a".into(), Value::Str("two".into())),
                ("a".into(), Value::Str("{\"k\":1}".into())),
                ("b".into(), Value::Bool(true)),
                ("f".into(), Value::Str("1.5".into())),
                ("i".into(), Value::Int(7)),
                ("o".into(), Value::Str("{\"k\":[1]}".into())),
                ("s".into(), Value::Str("x".into())),
            ]
        );
    }
}
