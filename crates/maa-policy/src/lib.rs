//! Microsoft Azure Attestation (MAA) policy language, versions 1.0, 1.1 and 1.2: a parser and a
//! pure evaluator, so a policy written for Azure Attestation works unchanged.
//!
//! **One job:** turn a policy text into a [`Policy`] (or a [`ParseError`] naming the line and
//! column), and evaluate it against an incoming claim set ([`Claims`]) into an [`Outcome`]
//! (which rule permitted, the claims to issue into the token, the token properties) or an
//! [`EvalError`] (which rule denied, or which condition of each permit rule matched nothing).
//!
//! **Not here:** IO, the clock, hashing, signing and quote verification. The attestation service
//! (`attest`) builds the incoming claims from a verified quote ([`sgx::SgxEvidence`]), stores
//! policies, computes `x-ms-policy-hash` and puts the outcome into the token.
//!
//! # The language (as Microsoft documents it)
//!
//! Sources: Microsoft Learn, Azure Attestation: "Attestation policy version 1.0", "… 1.1",
//! "… 1.2", "Claim and claim rules" (claim rule grammar), "Claim sets", "Claim rule functions
//! supported in policy version 1.2+", "Examples of an attestation policy", "How to author an
//! attestation policy" and "Custom TCB baseline enforcement" (the `articles/attestation/*.md`
//! sources of MicrosoftDocs/azure-security-docs).
//!
//! ```text
//! version=1.1;                                   // 1.0, 1.1 or 1.2
//! configurationrules {                           // 1.1+: unconditional issueproperty only
//!     => issueproperty(type="x-ms-sgx-tcbidentifier", value="17");
//! };
//! authorizationrules {                           // required
//!     [type=="x-ms-sgx-is-debuggable", value==false]
//!       && [type=="x-ms-sgx-svn", value>=2] => permit();
//!     c:[type=="x-ms-sgx-mrsigner"] && [type=="x-ms-sgx-product-id", value==3] => permit();
//! };
//! issuancerules {                                // optional
//!     c:[type=="x-ms-sgx-mrsigner"] => issue(type="signer", value=c.value);
//!     => issueproperty(type="report_validity_in_minutes", value=60);
//! };
//! ```
//!
//! * A **rule** is `conditions => action;` (conditions optional). A **condition** `[p op v, …]`
//!   holds when at least one claim of the incoming set satisfies every property comparison;
//!   properties are `type`, `value`, `issuer` (`AttestationService`, `AttestationPolicy`,
//!   `CustomClaim`) and `valueType` (`String`, `Integer`, `Boolean`). Integers compare with
//!   `== != < <= > >=`; strings and booleans with `==` and `!=`; values of different types are
//!   never equal. `c:[…]` binds the claim variable `c` to **every** claim the condition matched
//!   (MAA's claim sets): `c.value` is that set of values, so `issue(type="t", value=c.value)`
//!   issues one claim per matched claim and `value==c.value` compares with any of them.
//! * **Actions:** `permit()`, `deny()` (authorizationrules), `add(…)` (both rule sections: adds
//!   to the incoming set for later rules), `issue(…)` (issuancerules: incoming and outgoing, i.e.
//!   the token), `issueproperty(…)` (issuancerules and configurationrules: a property claim).
//!   Claims are made with `type=…, value=…` or `claim=c`.
//! * **Authorization** is deny unless a rule permits: every authorization rule is evaluated in
//!   order; if any `deny()` rule's conditions hold the attestation is denied, whatever its
//!   position (MAA's documents do not say whether an earlier `permit()` would win; failing closed
//!   is the safe reading, and every Microsoft example behaves the same under both); otherwise a
//!   `permit()` whose conditions hold permits; otherwise it is denied.
//! * **Properties** (issuancerules): `report_validity_in_minutes` (integer, 1 to 525600: one
//!   year) and `omit_x5c` (boolean); others are kept and reported. **Configuration**
//!   (configurationrules): `x-ms-sgx-tcbidentifier` = `"azuredefault"` or a TCB evaluation data
//!   number selects the TCB baseline ([`TcbIdentifier`]); others are kept and reported.
//! * **Version 1.2** adds the `!` condition (no claim matches) and the functions `JmesPath`,
//!   `JsonToClaimValue`, `IsSubsetOf`, `AppendString`, `NegateBool`, `ContainsOnlyValue`. For SGX
//!   they apply to the JSON claims `x-ms-runtime` and `x-ms-inittime` (runtime and init-time
//!   data sent as JSON). `JmesPath` returns the JSON text of the result (`"null"` when nothing
//!   matched), as Microsoft's examples compare it.
//! * Comments `// …` and `/* … */`. Keywords, section, action, property and function names are
//!   case-insensitive (Microsoft's own TCB sample writes `Issuancerules`); claim types, strings
//!   and variable names are not.
//! * **Incoming SGX claims** ([`sgx`]): `x-ms-sgx-is-debuggable`, `x-ms-sgx-mrsigner`,
//!   `x-ms-sgx-mrenclave` (lowercase hex), `x-ms-sgx-product-id`, `x-ms-sgx-svn`,
//!   `x-ms-sgx-report-data`, `x-ms-sgx-ehd`, `x-ms-attestation-type`, `x-ms-runtime`,
//!   `x-ms-inittime`, the deprecated version 1.0 names `$is-debuggable`, `$sgx-mrsigner`,
//!   `$sgx-mrenclave`, `$product-id`, `$svn`, `$tee`, `$maa-ehd`, `$aas-ehd` (in every
//!   version, as MAA does), and confkube's `x-confkube-tcb-status`, `x-confkube-advisory-ids`
//!   (one claim per advisory), `x-confkube-fmspc`, `x-confkube-tcb-evaluation-data-number`. The claim set
//!   is open: other TEEs add their own claims with [`Claims::push`].
//!
//! Beyond Microsoft's documents (confkube extensions, so a policy using them may not load in
//! Azure): `||` between conditions and parentheses for grouping (`&&` binds tighter); a
//! variable bound in an `||` branch that did not match is empty.
//! Leniencies, because Microsoft's own pages write them: `=` in a condition means `==`; the `;`
//! after a rule or a section may be left out.
//!
//! Not supported, each with a parse error naming line and column: `valueType=` inside an action;
//! the positional `issue("t", value=…)`; binding a variable in a `!` condition; MAA's read-only
//! claim tracking (nothing in an SGX claim set is read-only); TPM/VBS configuration properties
//! have no effect on SGX.
//!
//! # Why a hand-written parser
//!
//! The grammar is small (a dozen productions) but every error must name its line and column and
//! say what was expected in the policy's own terms, the parser is fuzzed, and it must not add
//! dependencies to the attestation service's build. A ~600-line recursive-descent parser over a
//! position-tracking lexer does this directly; parser generators (pest, lalrpop) or combinator
//! libraries (nom, chumsky) would add a build-time or generic-heavy dependency for no gain in
//! error quality. JMESPath itself is not hand-written: the [`jmespath`] crate (the JMESPath
//! project's Rust implementation) evaluates it.

mod ast;
mod claims;
mod eval;
mod lexer;
mod parser;
pub mod sgx;
pub mod tdx;

pub use claims::{Claim, Claims, Issuer, Value};

use std::fmt;

/// Largest policy text accepted.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Deepest nesting of parentheses and function calls.
pub const MAX_DEPTH: usize = 32;
/// Most claims an evaluation may hold (incoming plus added).
pub const MAX_CLAIMS: usize = 10_000;
/// Longest token validity a policy may ask for: one year, in minutes.
pub const MAX_REPORT_VALIDITY_MINUTES: i64 = 525_600;

/// The policy language version (`version=…;`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Version {
    /// 1.0: authorization and issuance rules.
    V1_0,
    /// 1.1: adds configuration rules.
    V1_1,
    /// 1.2: adds functions and the `!` condition.
    V1_2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Configuration,
    Authorization,
    Issuance,
}

impl Section {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Section::Configuration => "configurationrules",
            Section::Authorization => "authorizationrules",
            Section::Issuance => "issuancerules",
        }
    }
}

/// Why a policy text is not a valid policy: where (1-based line and column, in characters) and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
#[non_exhaustive]
pub struct ParseError {
    /// Line of the offending token.
    pub line: u32,
    /// Column of the offending token.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

/// A rule of the policy, for messages: where it starts and its text (whitespace collapsed,
/// shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// Line of the rule's first token.
    pub line: u32,
    /// Column of the rule's first token.
    pub column: u32,
    /// The rule as written.
    pub text: String,
}

/// A `permit()` rule whose conditions did not hold, and the first condition that matched no
/// claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPermitted {
    /// The rule.
    pub rule: RuleRef,
    /// Line of the condition.
    pub condition_line: u32,
    /// Column of the condition.
    pub condition_column: u32,
    /// The condition as written.
    pub condition: String,
}

/// Why an evaluation did not permit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A `deny()` rule's conditions held.
    #[error("denied by the authorization rule at line {}, column {}: {}", rule.line, rule.column, rule.text)]
    Denied {
        /// The rule.
        rule: RuleRef,
    },
    /// No `permit()` rule's conditions held.
    #[error("no authorization rule permitted{}", describe_unmet(unmet))]
    NotPermitted {
        /// Each `permit()` rule and its first unmet condition.
        unmet: Vec<NotPermitted>,
    },
    /// A function failed (bad JSON, a fraction, a non-string argument, …).
    #[error("line {line}, column {column}: {function}: {message}")]
    Function {
        /// Line of the call.
        line: u32,
        /// Column of the call.
        column: u32,
        /// The function.
        function: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A claim type that is not a string.
    #[error("line {line}, column {column}: the claim type {value} is not a string")]
    ClaimType {
        /// Line of the rule.
        line: u32,
        /// Column of the rule.
        column: u32,
        /// The value given as type.
        value: String,
    },
    /// A property claim with a value it cannot have.
    #[error("line {line}, column {column}: property {name}: {message}")]
    Property {
        /// Line of the rule.
        line: u32,
        /// Column of the rule.
        column: u32,
        /// The property.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The evaluation made more than [`MAX_CLAIMS`] claims.
    #[error("the policy made more than {limit} claims")]
    TooManyClaims {
        /// The limit.
        limit: usize,
    },
}

impl EvalError {
    /// A stable code: `policy-denied` (a `deny()` rule held), `policy-not-permitted` (no
    /// `permit()` rule held), `policy-evaluation-failed` (anything else).
    pub fn code(&self) -> &'static str {
        match self {
            EvalError::Denied { .. } => "policy-denied",
            EvalError::NotPermitted { .. } => "policy-not-permitted",
            _ => "policy-evaluation-failed",
        }
    }
}

fn describe_unmet(unmet: &[NotPermitted]) -> String {
    if unmet.is_empty() {
        return " (the policy has no permit() rule whose conditions could hold)".into();
    }
    let parts: Vec<String> = unmet
        .iter()
        .map(|u| {
            format!(
                "the rule at line {} needs {} (line {}, column {}), which no claim matches",
                u.rule.line, u.condition, u.condition_line, u.condition_column
            )
        })
        .collect();
    format!(": {}", parts.join("; "))
}

/// `x-ms-sgx-tcbidentifier`: which TCB baseline decides the TCB status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TcbIdentifier {
    /// `"azuredefault"`: the service's default baseline.
    AzureDefault,
    /// A TCB evaluation data number (Intel's `tcbEvaluationDataNumber`).
    EvaluationDataNumber(u32),
}

/// The result of a permitted evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    issued: Vec<(String, Value)>,
    properties: Vec<(String, Value)>,
    permitted_by: RuleRef,
}

impl Outcome {
    /// The claims `issue(…)` made, in order (a type may repeat).
    pub fn issued(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.issued.iter().map(|(t, v)| (t.as_str(), v))
    }

    /// The issued claims as JWT claims: one value, or an array when a type was issued more than
    /// once (in issue order).
    pub fn issued_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (t, v) in &self.issued {
            match m.get_mut(t) {
                None => {
                    m.insert(t.clone(), v.to_json());
                }
                Some(serde_json::Value::Array(a)) if self.issued_count(t) > 1 => {
                    a.push(v.to_json())
                }
                Some(existing) => {
                    let first = existing.take();
                    *existing = serde_json::Value::Array(vec![first, v.to_json()]);
                }
            }
        }
        m
    }

    fn issued_count(&self, t: &str) -> usize {
        self.issued.iter().filter(|(x, _)| x == t).count()
    }

    /// The property claims `issueproperty(…)` made in issuancerules, in order.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.properties.iter().map(|(t, v)| (t.as_str(), v))
    }

    fn last_property(&self, name: &str) -> Option<&Value> {
        self.properties
            .iter()
            .rev()
            .find(|(t, _)| t == name)
            .map(|(_, v)| v)
    }

    /// `report_validity_in_minutes`, when the policy set it (1 to one year).
    pub fn report_validity_in_minutes(&self) -> Option<i64> {
        match self.last_property("report_validity_in_minutes") {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// `omit_x5c`, when the policy set it.
    pub fn omit_x5c(&self) -> Option<bool> {
        match self.last_property("omit_x5c") {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The `permit()` rule that permitted.
    pub fn permitted_by(&self) -> &RuleRef {
        &self.permitted_by
    }
}

pub(crate) fn check_property(name: &str, v: &Value) -> Result<(), String> {
    match (name, v) {
        ("report_validity_in_minutes", Value::Int(i)) => {
            if (1..=MAX_REPORT_VALIDITY_MINUTES).contains(i) {
                Ok(())
            } else {
                Err(format!(
                    "{i} is out of range (1 to {MAX_REPORT_VALIDITY_MINUTES} minutes, one year)"
                ))
            }
        }
        ("report_validity_in_minutes", other) => Err(format!("{other} is not an integer")),
        ("omit_x5c", Value::Bool(_)) => Ok(()),
        ("omit_x5c", other) => Err(format!("{other} is not a boolean")),
        _ => Ok(()),
    }
}

/// A parsed, validated policy, ready to evaluate any number of times.
#[derive(Debug)]
pub struct Policy {
    text: String,
    parsed: parser::Parsed,
    configuration: Vec<(String, Value)>,
    tcb_identifier: Option<TcbIdentifier>,
}

impl Policy {
    /// Parses a policy text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let parsed = parser::parse(text)?;
        let mut configuration = Vec::new();
        let mut tcb_identifier = None;
        for rule in &parsed.configuration {
            let ast::Action::IssueProperty(spec) = &rule.action else {
                continue;
            };
            let here = |message: String| ParseError {
                line: rule.line,
                column: rule.column,
                message,
            };
            let ast::ClaimSpec::TypeValue {
                ty: ast::Expr::Lit(Value::Str(name)),
                value: ast::Expr::Lit(value),
            } = spec
            else {
                return Err(here(
                    "a configuration rule sets a property to a literal: `=> issueproperty(type=\"…\", value=…);`"
                        .into(),
                ));
            };
            if name == "x-ms-sgx-tcbidentifier" {
                tcb_identifier = Some(parse_tcb_identifier(value).map_err(here)?);
            }
            configuration.push((name.clone(), value.clone()));
        }
        Ok(Self {
            text: text.to_string(),
            parsed,
            configuration,
            tcb_identifier,
        })
    }

    /// The text the policy was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The language version.
    pub fn version(&self) -> Version {
        self.parsed.version
    }

    /// The configuration properties (`configurationrules`), in order.
    pub fn configuration(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.configuration.iter().map(|(t, v)| (t.as_str(), v))
    }

    /// The TCB baseline the policy selects (`x-ms-sgx-tcbidentifier`), if any.
    pub fn tcb_identifier(&self) -> Option<TcbIdentifier> {
        self.tcb_identifier
    }

    /// Evaluates only the configuration and authorization rules (no issuance): the `permit()`
    /// rule that permitted, or why none did. For decisions that issue nothing, such as secret
    /// release.
    pub fn authorize(&self, incoming: &Claims) -> Result<RuleRef, EvalError> {
        eval::authorize(self, incoming)
    }

    /// Evaluates the policy against an incoming claim set.
    pub fn evaluate(&self, incoming: &Claims) -> Result<Outcome, EvalError> {
        eval::evaluate(self, incoming)
    }
}

fn parse_tcb_identifier(v: &Value) -> Result<TcbIdentifier, String> {
    let bad = || {
        format!(
            "x-ms-sgx-tcbidentifier must be \"azuredefault\" or a TCB evaluation data number such as \"17\", not {v}"
        )
    };
    match v {
        Value::Str(s) if s.eq_ignore_ascii_case("azuredefault") => Ok(TcbIdentifier::AzureDefault),
        Value::Str(s) => s
            .parse::<u32>()
            .map(TcbIdentifier::EvaluationDataNumber)
            .map_err(|_| bad()),
        Value::Int(i) => u32::try_from(*i)
            .map(TcbIdentifier::EvaluationDataNumber)
            .map_err(|_| bad()),
        Value::Bool(_) => Err(bad()),
    }
}

/// Whether a document is in the MAA policy language (rather than JSON or a JWS): its first
/// token, after whitespace and comments, is `version`.
pub fn is_policy_language(text: &str) -> bool {
    let mut rest = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    loop {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
        rest = rest.trim_start();
    }
    rest.get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("version"))
}
