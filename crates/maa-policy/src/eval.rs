//! Evaluation: configuration, then authorization (deny unless a rule permits; a `deny()` that
//! fires wins), then issuance.

use crate::ast::{Action, ClaimSpec, CondExpr, Condition, Expr, Func, Op, Prop, Rule};
use crate::claims::{Claim, Claims, Issuer, Value};
use crate::{EvalError, MAX_CLAIMS, NotPermitted, Outcome, Policy, RuleRef};

/// The incoming claim set during evaluation: the caller's claims, then those the policy added.
struct Working<'a> {
    base: &'a [Claim],
    added: Vec<Claim>,
}

impl Working<'_> {
    fn len(&self) -> usize {
        self.base.len() + self.added.len()
    }

    fn get(&self, i: usize) -> Option<&Claim> {
        if i < self.base.len() {
            self.base.get(i)
        } else {
            self.added.get(i - self.base.len())
        }
    }

    fn push(&mut self, c: Claim) -> Result<(), EvalError> {
        if self.len() >= MAX_CLAIMS {
            return Err(EvalError::TooManyClaims { limit: MAX_CLAIMS });
        }
        self.added.push(c);
        Ok(())
    }
}

/// Claim variables: the indices of the claims each one is bound to (`None`: not bound, as when
/// its condition sits in an `||` branch that did not match).
type Env = Vec<Option<Vec<usize>>>;

struct Ctx<'a, 'b> {
    w: &'b Working<'a>,
    rule: &'b Rule,
}

fn prop_value(c: &Claim, p: Prop) -> Value {
    match p {
        Prop::Type => Value::Str(c.claim_type.clone()),
        Prop::Value => c.value.clone(),
        Prop::Issuer => Value::Str(c.issuer.as_str().to_string()),
        Prop::ValueType => Value::Str(c.value.value_type().to_string()),
    }
}

fn compare(lhs: &Value, op: Op, rhs: &Value) -> bool {
    match (lhs, rhs) {
        (Value::Int(a), Value::Int(b)) => match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        },
        _ => match op {
            Op::Eq => lhs == rhs,
            // Different types are different values.
            Op::Ne => lhs != rhs,
            // Ordering is defined on integers only.
            _ => false,
        },
    }
}

fn prop_matches(c: &Claim, p: Prop, op: Op, rhs: &[Value]) -> bool {
    match p {
        // Compare without allocating for the common `type=="…"` case.
        Prop::Type => rhs.iter().any(|v| match (v, op) {
            (Value::Str(s), Op::Eq) => c.claim_type == *s,
            (Value::Str(s), Op::Ne) => c.claim_type != *s,
            _ => false,
        }),
        Prop::Value => rhs.iter().any(|v| compare(&c.value, op, v)),
        _ => {
            let l = prop_value(c, p);
            rhs.iter().any(|v| compare(&l, op, v))
        }
    }
}

impl Ctx<'_, '_> {
    fn func_err(
        &self,
        func: Func,
        line: u32,
        column: u32,
        message: impl Into<String>,
    ) -> EvalError {
        EvalError::Function {
            line,
            column,
            function: func.name(),
            message: message.into(),
        }
    }

    /// Evaluates an expression to a set of values.
    fn expr(&self, e: &Expr, env: &Env) -> Result<Vec<Value>, EvalError> {
        match e {
            Expr::Lit(v) => Ok(vec![v.clone()]),
            Expr::Var(i, p) => Ok(env
                .get(*i)
                .and_then(|b| b.as_ref())
                .map(|idx| {
                    idx.iter()
                        .filter_map(|&k| self.w.get(k))
                        .map(|c| prop_value(c, *p))
                        .collect()
                })
                .unwrap_or_default()),
            Expr::Call {
                func,
                args,
                line,
                column,
            } => {
                let vals = args
                    .iter()
                    .map(|a| self.expr(a, env))
                    .collect::<Result<Vec<_>, _>>()?;
                self.call(*func, &vals, *line, *column)
            }
        }
    }

    fn call(
        &self,
        f: Func,
        args: &[Vec<Value>],
        line: u32,
        column: u32,
    ) -> Result<Vec<Value>, EvalError> {
        let empty = Vec::new();
        let a = args.first().unwrap_or(&empty);
        let b = args.get(1).unwrap_or(&empty);
        let limit = |n: usize| -> Result<(), EvalError> {
            if n > MAX_CLAIMS {
                Err(EvalError::TooManyClaims { limit: MAX_CLAIMS })
            } else {
                Ok(())
            }
        };
        let mut out = Vec::new();
        match f {
            Func::IsSubsetOf => out.push(Value::Bool(a.iter().all(|x| b.contains(x)))),
            Func::ContainsOnlyValue => {
                let [v] = b.as_slice() else {
                    return Err(self.func_err(
                        f,
                        line,
                        column,
                        format!(
                            "the second argument must be one value, not a set of {}",
                            b.len()
                        ),
                    ));
                };
                out.push(Value::Bool(!a.is_empty() && a.iter().all(|x| x == v)));
            }
            Func::NegateBool => {
                for x in a {
                    match x {
                        Value::Bool(v) => out.push(Value::Bool(!v)),
                        other => {
                            return Err(self.func_err(
                                f,
                                line,
                                column,
                                format!("{other} is not a boolean"),
                            ));
                        }
                    }
                }
            }
            Func::JsonToClaimValue => {
                for x in a {
                    let Value::Str(s) = x else {
                        return Err(self.func_err(
                            f,
                            line,
                            column,
                            format!("{x} is not a JSON string"),
                        ));
                    };
                    json_to_claim_values(s, &mut out)
                        .map_err(|m| self.func_err(f, line, column, m))?;
                    limit(out.len())?;
                }
            }
            Func::AppendString | Func::JmesPath => {
                limit(a.len().saturating_mul(b.len()))?;
                for x in a {
                    for y in b {
                        let (Value::Str(x), Value::Str(y)) = (x, y) else {
                            let bad = if matches!(x, Value::Str(_)) { y } else { x };
                            return Err(self.func_err(
                                f,
                                line,
                                column,
                                format!("{bad} is not a string"),
                            ));
                        };
                        if f == Func::AppendString {
                            let mut s = String::with_capacity(x.len() + y.len());
                            s.push_str(x);
                            s.push_str(y);
                            out.push(Value::Str(s));
                        } else {
                            out.push(Value::Str(
                                jmespath_search(x, y)
                                    .map_err(|m| self.func_err(f, line, column, m))?,
                            ));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether the conditions hold; binds variables in `env`; records in `failed` the first
    /// condition that matched no claim.
    fn conds(
        &self,
        c: &CondExpr,
        env: &mut Env,
        failed: &mut Option<(u32, u32, String)>,
    ) -> Result<bool, EvalError> {
        match c {
            CondExpr::And(items) => {
                for i in items {
                    if !self.conds(i, env, failed)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            CondExpr::Or(items) => {
                // Every branch is evaluated, so each binds its variables when it matches.
                let mut any = false;
                for i in items {
                    any |= self.conds(i, env, failed)?;
                }
                Ok(any)
            }
            CondExpr::Leaf(cond) => {
                let ok = self.leaf(cond, env)?;
                if !ok && failed.is_none() {
                    *failed = Some((cond.line, cond.column, cond.text.clone()));
                }
                Ok(ok)
            }
        }
    }

    fn leaf(&self, cond: &Condition, env: &mut Env) -> Result<bool, EvalError> {
        let rhs = cond
            .props
            .iter()
            .map(|p| self.expr(&p.rhs, env))
            .collect::<Result<Vec<_>, _>>()?;
        let matches = (0..self.w.len()).filter(|&i| {
            self.w.get(i).is_some_and(|c| {
                cond.props
                    .iter()
                    .zip(&rhs)
                    .all(|(p, r)| prop_matches(c, p.prop, p.op, r))
            })
        });
        if cond.negated {
            let mut m = matches;
            return Ok(m.next().is_none());
        }
        match cond.var {
            None => {
                let mut m = matches;
                Ok(m.next().is_some())
            }
            Some(v) => {
                let bound: Vec<usize> = matches.collect();
                let ok = !bound.is_empty();
                if let Some(slot) = env.get_mut(v) {
                    *slot = Some(bound);
                }
                Ok(ok)
            }
        }
    }

    /// The claims an `add`/`issue`/`issueproperty` makes.
    fn make(&self, spec: &ClaimSpec, env: &Env) -> Result<Vec<Claim>, EvalError> {
        match spec {
            ClaimSpec::Var(i) => Ok(env
                .get(*i)
                .and_then(|b| b.as_ref())
                .map(|idx| {
                    idx.iter()
                        .filter_map(|&k| self.w.get(k))
                        .map(|c| Claim {
                            claim_type: c.claim_type.clone(),
                            value: c.value.clone(),
                            issuer: Issuer::AttestationPolicy,
                        })
                        .collect()
                })
                .unwrap_or_default()),
            ClaimSpec::TypeValue { ty, value } => {
                let types = self.expr(ty, env)?;
                let values = self.expr(value, env)?;
                if types.len().saturating_mul(values.len()) > MAX_CLAIMS {
                    return Err(EvalError::TooManyClaims { limit: MAX_CLAIMS });
                }
                let mut out = Vec::new();
                for t in &types {
                    let Value::Str(t) = t else {
                        return Err(EvalError::ClaimType {
                            line: self.rule.line,
                            column: self.rule.column,
                            value: t.to_string(),
                        });
                    };
                    for v in &values {
                        out.push(Claim {
                            claim_type: t.clone(),
                            value: v.clone(),
                            issuer: Issuer::AttestationPolicy,
                        });
                    }
                }
                Ok(out)
            }
        }
    }
}

fn json_to_claim_values(s: &str, out: &mut Vec<Value>) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("the argument is not JSON: {e}"))?;
    let scalar = |v: &serde_json::Value| -> Result<Option<Value>, String> {
        Ok(match v {
            serde_json::Value::Null => None,
            serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
            serde_json::Value::Number(n) => Some(Value::Int(n.as_i64().ok_or_else(|| {
                format!("the number {n} is not an integer (fractions are not claim values)")
            })?)),
            serde_json::Value::String(s) => Some(Value::Str(s.clone())),
            serde_json::Value::Object(_) => {
                return Err("a JSON object is not a claim value".to_string());
            }
            serde_json::Value::Array(_) => {
                return Err("an array inside an array is not a claim value".to_string());
            }
        })
    };
    match &v {
        serde_json::Value::Array(items) => {
            for i in items {
                out.extend(scalar(i)?);
            }
        }
        other => out.extend(scalar(other)?),
    }
    Ok(())
}

fn jmespath_search(json: &str, query: &str) -> Result<String, String> {
    let expr = jmespath::compile(query).map_err(|e| {
        format!(
            "invalid JMESPath query: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    let data = jmespath::Variable::from_json(json)
        .map_err(|e| format!("the first argument is not JSON: {e}"))?;
    let result = expr.search(data).map_err(|e| {
        format!(
            "the query failed: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    serde_json::to_string(&*result).map_err(|e| format!("the result is not JSON: {e}"))
}

fn rule_ref(r: &Rule) -> RuleRef {
    RuleRef {
        line: r.line,
        column: r.column,
        text: r.text.clone(),
    }
}

/// Configuration and authorization: the `permit()` rule that permitted, with the working claim
/// set (incoming plus what configuration and `add` rules made) for issuance.
fn authorize_in<'p>(policy: &'p Policy, w: &mut Working<'_>) -> Result<&'p Rule, EvalError> {
    // The configuration properties are claims too (`issueproperty` adds to the incoming set).
    for (t, v) in &policy.configuration {
        w.push(Claim {
            claim_type: t.clone(),
            value: v.clone(),
            issuer: Issuer::AttestationPolicy,
        })?;
    }
    let mut permitted: Option<&Rule> = None;
    let mut denied: Option<&Rule> = None;
    let mut unmet = Vec::new();
    for rule in &policy.parsed.authorization {
        let mut env: Env = vec![None; rule.vars];
        let mut failed = None;
        let holds = match &rule.conditions {
            None => true,
            Some(c) => Ctx { w: &*w, rule }.conds(c, &mut env, &mut failed)?,
        };
        match (&rule.action, holds) {
            (Action::Permit, true) => {
                permitted.get_or_insert(rule);
            }
            (Action::Deny, true) => {
                denied.get_or_insert(rule);
            }
            (Action::Permit, false) => {
                if let Some((line, column, condition)) = failed {
                    unmet.push(NotPermitted {
                        rule: rule_ref(rule),
                        condition_line: line,
                        condition_column: column,
                        condition,
                    });
                }
            }
            (Action::Add(spec), true) => {
                let made = Ctx { w: &*w, rule }.make(spec, &env)?;
                for c in made {
                    w.push(c)?;
                }
            }
            _ => {}
        }
    }
    if let Some(rule) = denied {
        return Err(EvalError::Denied {
            rule: rule_ref(rule),
        });
    }
    permitted.ok_or(EvalError::NotPermitted { unmet })
}

/// Configuration and authorization only (no issuance): the rule that permitted.
pub(crate) fn authorize(policy: &Policy, incoming: &Claims) -> Result<RuleRef, EvalError> {
    let mut w = Working {
        base: incoming.as_slice(),
        added: Vec::new(),
    };
    authorize_in(policy, &mut w).map(rule_ref)
}

pub(crate) fn evaluate(policy: &Policy, incoming: &Claims) -> Result<Outcome, EvalError> {
    let mut w = Working {
        base: incoming.as_slice(),
        added: Vec::new(),
    };
    let permitted = authorize_in(policy, &mut w)?;
    let mut issued = Vec::new();
    let mut properties = Vec::new();
    for rule in &policy.parsed.issuance {
        let mut env: Env = vec![None; rule.vars];
        let mut failed = None;
        let holds = match &rule.conditions {
            None => true,
            Some(c) => Ctx { w: &w, rule }.conds(c, &mut env, &mut failed)?,
        };
        if !holds {
            continue;
        }
        let spec = match &rule.action {
            Action::Add(s) | Action::Issue(s) | Action::IssueProperty(s) => s,
            _ => continue,
        };
        let made = Ctx { w: &w, rule }.make(spec, &env)?;
        for c in made {
            match &rule.action {
                Action::Issue(_) => issued.push((c.claim_type.clone(), c.value.clone())),
                Action::IssueProperty(_) => {
                    crate::check_property(&c.claim_type, &c.value).map_err(|message| {
                        EvalError::Property {
                            line: rule.line,
                            column: rule.column,
                            name: c.claim_type.clone(),
                            message,
                        }
                    })?;
                    properties.push((c.claim_type.clone(), c.value.clone()));
                }
                _ => {}
            }
            w.push(c)?;
        }
    }
    Ok(Outcome {
        issued,
        properties,
        permitted_by: rule_ref(permitted),
    })
}
