//! The parsed form of a policy.

use crate::claims::Value;

/// A claim property a condition or expression names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prop {
    Type,
    Value,
    Issuer,
    ValueType,
}

impl Prop {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Prop::Type => "type",
            Prop::Value => "value",
            Prop::Issuer => "issuer",
            Prop::ValueType => "valueType",
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub(crate) fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// Version 1.2's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    JmesPath,
    JsonToClaimValue,
    IsSubsetOf,
    AppendString,
    NegateBool,
    ContainsOnlyValue,
}

impl Func {
    pub(crate) const ALL: [Func; 6] = [
        Func::JmesPath,
        Func::JsonToClaimValue,
        Func::IsSubsetOf,
        Func::AppendString,
        Func::NegateBool,
        Func::ContainsOnlyValue,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::JmesPath => "JmesPath",
            Func::JsonToClaimValue => "JsonToClaimValue",
            Func::IsSubsetOf => "IsSubsetOf",
            Func::AppendString => "AppendString",
            Func::NegateBool => "NegateBool",
            Func::ContainsOnlyValue => "ContainsOnlyValue",
        }
    }

    pub(crate) fn arity(self) -> usize {
        match self {
            Func::JsonToClaimValue | Func::NegateBool => 1,
            _ => 2,
        }
    }
}

/// A value expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Lit(Value),
    /// `c.value`: the property of every claim bound to variable `c`.
    Var(usize, Prop),
    Call {
        func: Func,
        args: Vec<Expr>,
        line: u32,
        column: u32,
    },
}

/// `prop op expr` inside `[...]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PropCond {
    pub(crate) prop: Prop,
    pub(crate) op: Op,
    pub(crate) rhs: Expr,
}

/// `!? (var:)? [ ... ]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub(crate) negated: bool,
    pub(crate) var: Option<usize>,
    pub(crate) props: Vec<PropCond>,
    pub(crate) line: u32,
    pub(crate) column: u32,
    /// The condition as written (whitespace collapsed), for denial messages.
    pub(crate) text: String,
}

/// Conditions joined with `&&`, `||` and parentheses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CondExpr {
    And(Vec<CondExpr>),
    Or(Vec<CondExpr>),
    Leaf(Condition),
}

/// The claim an `add`, `issue` or `issueproperty` makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClaimSpec {
    /// `claim=c`: every claim bound to `c`, unchanged.
    Var(usize),
    /// `type=…, value=…`.
    TypeValue { ty: Expr, value: Expr },
}

/// What a rule does when its conditions hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Permit,
    Deny,
    Add(ClaimSpec),
    Issue(ClaimSpec),
    IssueProperty(ClaimSpec),
}

/// One claim rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) conditions: Option<CondExpr>,
    pub(crate) action: Action,
    /// Number of claim variables the rule binds.
    pub(crate) vars: usize,
    pub(crate) line: u32,
    pub(crate) column: u32,
    /// The rule as written (whitespace collapsed, shortened), for messages.
    pub(crate) text: String,
}
