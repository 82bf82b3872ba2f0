//! A recursive-descent parser over the tokens of [`crate::lexer`].

use crate::ast::{Action, ClaimSpec, CondExpr, Condition, Expr, Func, Op, Prop, PropCond, Rule};
use crate::claims::Value;
use crate::lexer::{Tok, Token, tokenize};
use crate::{MAX_DEPTH, MAX_POLICY_BYTES, ParseError, Section, Version};

/// A parsed document, before the configuration rules are applied.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) version: Version,
    pub(crate) configuration: Vec<Rule>,
    pub(crate) authorization: Vec<Rule>,
    pub(crate) issuance: Vec<Rule>,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    pos: usize,
    version: Version,
    /// Variables of the rule being parsed.
    vars: Vec<String>,
    depth: usize,
}

type R<T> = Result<T, ParseError>;

fn collapse(s: &str, max: usize) -> String {
    let mut out = String::new();
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > max {
        let mut short: String = out.chars().take(max).collect();
        short.push('…');
        short
    } else {
        out
    }
}

pub(crate) fn parse(text: &str) -> R<Parsed> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(ParseError {
            line: 1,
            column: 1,
            message: format!(
                "the policy is {} bytes; at most {MAX_POLICY_BYTES} are accepted",
                text.len()
            ),
        });
    }
    let toks = tokenize(text)?;
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        version: Version::V1_0,
        vars: Vec::new(),
        depth: 0,
    };
    p.document()
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof, and the parser never moves past it.
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .unwrap_or(&EOF)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        self.toks
            .get(self.pos.saturating_add(n))
            .map(|t| &t.tok)
            .unwrap_or(&Tok::Eof)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn err_at(&self, t: &Token, message: impl Into<String>) -> ParseError {
        ParseError {
            line: t.line,
            column: t.column,
            message: message.into(),
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let t = self.peek();
        self.err_at(
            t,
            format!("expected {expected}, found {}", t.tok.describe()),
        )
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(q) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> R<Token> {
        if self.is_punct(p) {
            Ok(self.next())
        } else {
            Err(self.unexpected(&format!("`{p}`")))
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(w))
    }

    fn document(&mut self) -> R<Parsed> {
        // version = MAJOR.MINOR ;
        if !self.is_word("version") {
            return Err(self.unexpected("`version=1.0;` (or 1.1, 1.2) at the start of the policy"));
        }
        self.next();
        self.expect_punct("=")?;
        let vt = self.peek().clone();
        let major = match vt.tok {
            Tok::Int(i) => i,
            _ => return Err(self.unexpected("a version number such as 1.0")),
        };
        self.next();
        self.expect_punct(".")?;
        let minor = match self.peek().tok {
            Tok::Int(i) => i,
            _ => return Err(self.unexpected("a version number such as 1.0")),
        };
        self.next();
        self.version = match (major, minor) {
            (1, 0) => Version::V1_0,
            (1, 1) => Version::V1_1,
            (1, 2) => Version::V1_2,
            _ => {
                return Err(self.err_at(
                    &vt,
                    format!(
                        "unsupported policy version {major}.{minor} (supported: 1.0, 1.1, 1.2)"
                    ),
                ));
            }
        };
        self.expect_punct(";")?;
        let mut out = Parsed {
            version: self.version,
            configuration: Vec::new(),
            authorization: Vec::new(),
            issuance: Vec::new(),
        };
        let mut seen: Vec<Section> = Vec::new();
        loop {
            let t = self.peek().clone();
            let section = match &t.tok {
                Tok::Eof => break,
                Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                    "configurationrules" => Section::Configuration,
                    "authorizationrules" => Section::Authorization,
                    "issuancerules" => Section::Issuance,
                    _ => {
                        return Err(self.unexpected(
                            "a section: `configurationrules`, `authorizationrules` or `issuancerules`",
                        ));
                    }
                },
                _ => {
                    return Err(self.unexpected(
                        "a section: `configurationrules`, `authorizationrules` or `issuancerules`",
                    ));
                }
            };
            if seen.contains(&section) {
                return Err(self.err_at(
                    &t,
                    format!("the section `{}` appears twice", section.name()),
                ));
            }
            if section == Section::Configuration && self.version == Version::V1_0 {
                return Err(self.err_at(
                    &t,
                    "`configurationrules` needs policy version 1.1 or later (this policy is version 1.0)",
                ));
            }
            seen.push(section);
            self.next();
            self.expect_punct("{")?;
            let mut rules = Vec::new();
            while !self.is_punct("}") {
                if self.peek().tok == Tok::Eof {
                    return Err(
                        self.unexpected(&format!("a rule or `}}` closing `{}`", section.name()))
                    );
                }
                rules.push(self.rule(section)?);
            }
            self.next();
            // The `;` after a section is what Microsoft's examples write; accept its absence.
            self.eat_punct(";");
            match section {
                Section::Configuration => out.configuration = rules,
                Section::Authorization => out.authorization = rules,
                Section::Issuance => out.issuance = rules,
            }
        }
        if !seen.contains(&Section::Authorization) {
            let t = self.peek().clone();
            return Err(self.err_at(&t, "the policy has no `authorizationrules` section"));
        }
        Ok(out)
    }

    fn rule(&mut self, section: Section) -> R<Rule> {
        self.vars.clear();
        let first = self.peek().clone();
        let conditions = if self.is_punct("=>") {
            None
        } else {
            Some(self.or_expr()?)
        };
        let arrow = self.peek().clone();
        if !self.eat_punct("=>") {
            return Err(self.unexpected("`&&`, `||` or `=>`"));
        }
        let action_tok = self.peek().clone();
        let action = self.action()?;
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map_or(first.end, |t| t.end);
        // A rule ends with `;`; Microsoft's examples sometimes leave it out, which is unambiguous.
        self.eat_punct(";");
        let text = collapse(self.text.get(first.start..end).unwrap_or(""), 160);
        let allowed = match (section, &action) {
            (Section::Configuration, Action::IssueProperty(_)) => conditions.is_none(),
            (Section::Configuration, _) => false,
            (Section::Authorization, Action::Permit | Action::Deny | Action::Add(_)) => true,
            (Section::Issuance, Action::Add(_) | Action::Issue(_) | Action::IssueProperty(_)) => {
                true
            }
            _ => false,
        };
        if !allowed {
            let msg = match section {
                Section::Configuration if matches!(action, Action::IssueProperty(_)) => {
                    return Err(self.err_at(
                        &first,
                        "configuration rules take no conditions: write `=> issueproperty(type=\"…\", value=…);`",
                    ));
                }
                Section::Configuration => {
                    "configurationrules allows only `issueproperty(...)`".to_string()
                }
                Section::Authorization => format!(
                    "authorizationrules allows `permit()`, `deny()` and `add(...)`, not `{}`",
                    action_name(&action)
                ),
                Section::Issuance => format!(
                    "issuancerules allows `issue(...)`, `issueproperty(...)` and `add(...)`, not `{}`",
                    action_name(&action)
                ),
            };
            let _ = arrow;
            return Err(self.err_at(&action_tok, msg));
        }
        Ok(Rule {
            conditions,
            action,
            vars: self.vars.len(),
            line: first.line,
            column: first.column,
            text,
        })
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let t = self.peek().clone();
            return Err(self.err_at(&t, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> R<CondExpr> {
        self.enter()?;
        let mut items = vec![self.and_expr()?];
        while self.eat_punct("||") {
            items.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(CondExpr::And(vec![]))
        } else {
            CondExpr::Or(items)
        })
    }

    fn and_expr(&mut self) -> R<CondExpr> {
        let mut items = vec![self.primary()?];
        while self.eat_punct("&&") {
            items.push(self.primary()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(CondExpr::And(vec![]))
        } else {
            CondExpr::And(items)
        })
    }

    fn primary(&mut self) -> R<CondExpr> {
        if self.eat_punct("(") {
            let inner = self.or_expr()?;
            self.expect_punct(")")?;
            return Ok(inner);
        }
        Ok(CondExpr::Leaf(self.condition()?))
    }

    fn condition(&mut self) -> R<Condition> {
        let first = self.peek().clone();
        let negated = self.is_punct("!");
        if negated {
            if self.version < Version::V1_2 {
                return Err(self.err_at(
                    &first,
                    format!(
                        "the `!` (not) condition needs policy version 1.2 or later (this policy is version {})",
                        self.version
                    ),
                ));
            }
            self.next();
        }
        let mut var = None;
        if let Tok::Ident(name) = &self.peek().tok
            && self.peek_at(1) == &Tok::Punct(":")
        {
            let name = name.clone();
            let t = self.next();
            self.next();
            if negated {
                return Err(self.err_at(
                    &t,
                    format!(
                        "a `!` condition matches no claim, so it cannot bind the variable `{name}`"
                    ),
                ));
            }
            if self.vars.contains(&name) {
                return Err(self.err_at(
                    &t,
                    format!("the claim variable `{name}` is bound twice in this rule"),
                ));
            }
            self.vars.push(name);
            var = Some(self.vars.len() - 1);
        }
        if !self.is_punct("[") {
            return Err(self.unexpected("a condition `[type==\"…\", …]`"));
        }
        self.next();
        let mut props = Vec::new();
        loop {
            props.push(self.prop_cond()?);
            if self.eat_punct(",") {
                continue;
            }
            if self.is_punct("]") {
                break;
            }
            return Err(self.unexpected("`,` or `]`"));
        }
        let close = self.next();
        let text = collapse(self.text.get(first.start..close.end).unwrap_or(""), 160);
        Ok(Condition {
            negated,
            var,
            props,
            line: first.line,
            column: first.column,
            text,
        })
    }

    fn prop(&mut self, what: &str) -> R<Prop> {
        let p = match &self.peek().tok {
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "type" => Prop::Type,
                "value" => Prop::Value,
                "issuer" => Prop::Issuer,
                "valuetype" => Prop::ValueType,
                _ => return Err(self.unexpected(what)),
            },
            _ => return Err(self.unexpected(what)),
        };
        self.next();
        Ok(p)
    }

    fn prop_cond(&mut self) -> R<PropCond> {
        let prop = self.prop("a claim property: `type`, `value`, `issuer` or `valueType`")?;
        let op_tok = self.peek().clone();
        let op = match &op_tok.tok {
            Tok::Punct("==") | Tok::Punct("=") => Op::Eq,
            Tok::Punct("!=") => Op::Ne,
            Tok::Punct("<") => Op::Lt,
            Tok::Punct("<=") => Op::Le,
            Tok::Punct(">") => Op::Gt,
            Tok::Punct(">=") => Op::Ge,
            _ => return Err(self.unexpected("a comparison: `==`, `!=`, `<`, `<=`, `>` or `>=`")),
        };
        self.next();
        let rhs_tok = self.peek().clone();
        let rhs = self.expr()?;
        if prop != Prop::Value {
            if op.is_ordering() {
                return Err(self.err_at(
                    &op_tok,
                    format!(
                        "`{}` is a string: compare it with `==` or `!=`",
                        prop.name()
                    ),
                ));
            }
            if let Expr::Lit(v) = &rhs
                && !matches!(v, Value::Str(_))
            {
                return Err(self.err_at(
                    &rhs_tok,
                    format!("`{}` is compared with a string, not {}", prop.name(), v),
                ));
            }
        } else if op.is_ordering()
            && let Expr::Lit(v @ (Value::Str(_) | Value::Bool(_))) = &rhs
        {
            return Err(self.err_at(
                &op_tok,
                format!(
                    "`<`, `<=`, `>` and `>=` compare integers; {v} is a {}",
                    v.value_type().to_ascii_lowercase()
                ),
            ));
        }
        Ok(PropCond { prop, op, rhs })
    }

    fn expr(&mut self) -> R<Expr> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Str(s) => {
                let s = s.clone();
                self.next();
                Ok(Expr::Lit(Value::Str(s)))
            }
            Tok::Int(i) => {
                let i = *i;
                self.next();
                Ok(Expr::Lit(Value::Int(i)))
            }
            Tok::Ident(w)
                if w.eq_ignore_ascii_case("true") && self.peek_at(1) != &Tok::Punct(".") =>
            {
                self.next();
                Ok(Expr::Lit(Value::Bool(true)))
            }
            Tok::Ident(w)
                if w.eq_ignore_ascii_case("false") && self.peek_at(1) != &Tok::Punct(".") =>
            {
                self.next();
                Ok(Expr::Lit(Value::Bool(false)))
            }
            Tok::Ident(name) if self.peek_at(1) == &Tok::Punct(".") => {
                let name = name.clone();
                let Some(idx) = self.vars.iter().position(|v| *v == name) else {
                    return Err(self.err_at(
                        &t,
                        format!("unknown claim variable `{name}` (bind it first, as in `{name}:[type==\"…\"]`)"),
                    ));
                };
                self.next();
                self.next();
                let prop = self
                    .prop("a claim property after `.`: `type`, `value`, `issuer` or `valueType`")?;
                Ok(Expr::Var(idx, prop))
            }
            Tok::Ident(name) if self.peek_at(1) == &Tok::Punct("(") => {
                let Some(func) = Func::ALL
                    .iter()
                    .copied()
                    .find(|f| f.name().eq_ignore_ascii_case(name))
                else {
                    return Err(self.err_at(
                        &t,
                        format!(
                            "unknown function `{name}` (known: JmesPath, JsonToClaimValue, IsSubsetOf, \
                             AppendString, NegateBool, ContainsOnlyValue)"
                        ),
                    ));
                };
                if self.version < Version::V1_2 {
                    return Err(self.err_at(
                        &t,
                        format!(
                            "the function `{}` needs policy version 1.2 or later (this policy is version {})",
                            func.name(),
                            self.version
                        ),
                    ));
                }
                self.next();
                self.next();
                self.enter()?;
                let mut args = Vec::new();
                if !self.is_punct(")") {
                    loop {
                        args.push(self.expr()?);
                        if self.eat_punct(",") {
                            continue;
                        }
                        break;
                    }
                }
                self.expect_punct(")")?;
                self.depth -= 1;
                if args.len() != func.arity() {
                    return Err(self.err_at(
                        &t,
                        format!(
                            "`{}` takes {} argument{}, not {}",
                            func.name(),
                            func.arity(),
                            if func.arity() == 1 { "" } else { "s" },
                            args.len()
                        ),
                    ));
                }
                if func == Func::JmesPath
                    && let Some(Expr::Lit(Value::Str(q))) = args.get(1)
                    && let Err(e) = jmespath::compile(q)
                {
                    return Err(self.err_at(
                        &t,
                        format!(
                            "`JmesPath`: invalid JMESPath query: {}",
                            first_line(&e.to_string())
                        ),
                    ));
                }
                Ok(Expr::Call {
                    func,
                    args,
                    line: t.line,
                    column: t.column,
                })
            }
            _ => Err(self.unexpected(
                "a value: a string, an integer, `true`, `false`, `c.value` or a function call",
            )),
        }
    }

    fn action(&mut self) -> R<Action> {
        let t = self.peek().clone();
        let name = match &t.tok {
            Tok::Ident(s) => s.to_ascii_lowercase(),
            _ => {
                return Err(self.unexpected(
                    "an action: `permit()`, `deny()`, `add(...)`, `issue(...)` or `issueproperty(...)`",
                ));
            }
        };
        let kind = match name.as_str() {
            "permit" | "deny" | "add" | "issue" | "issueproperty" => name,
            _ => {
                return Err(self.unexpected(
                    "an action: `permit()`, `deny()`, `add(...)`, `issue(...)` or `issueproperty(...)`",
                ));
            }
        };
        self.next();
        self.expect_punct("(")?;
        if kind == "permit" || kind == "deny" {
            if !self.is_punct(")") {
                return Err(self.unexpected(&format!("`)`: `{kind}()` takes no arguments")));
            }
            self.next();
            return Ok(if kind == "permit" {
                Action::Permit
            } else {
                Action::Deny
            });
        }
        let spec = self.claim_spec(&kind)?;
        self.expect_punct(")")?;
        Ok(match kind.as_str() {
            "add" => Action::Add(spec),
            "issue" => Action::Issue(spec),
            _ => Action::IssueProperty(spec),
        })
    }

    fn claim_spec(&mut self, action: &str) -> R<ClaimSpec> {
        // claim = c
        if self.is_word("claim") && self.peek_at(1) == &Tok::Punct("=") {
            self.next();
            self.next();
            let t = self.peek().clone();
            let Tok::Ident(name) = &t.tok else {
                return Err(self.unexpected("a claim variable after `claim=`"));
            };
            let Some(idx) = self.vars.iter().position(|v| v == name) else {
                return Err(self.err_at(
                    &t,
                    format!("unknown claim variable `{name}` (bind it first, as in `{name}:[type==\"…\"]`)"),
                ));
            };
            self.next();
            return Ok(ClaimSpec::Var(idx));
        }
        let mut ty = None;
        let mut value = None;
        loop {
            let t = self.peek().clone();
            let key = match &t.tok {
                Tok::Ident(s) if self.peek_at(1) == &Tok::Punct("=") => s.to_ascii_lowercase(),
                _ => {
                    return Err(self.unexpected(&format!(
                        "`type=\"…\", value=…` or `claim=c` in `{action}(...)`"
                    )));
                }
            };
            self.next();
            self.next();
            let slot = match key.as_str() {
                "type" => &mut ty,
                "value" => &mut value,
                "valuetype" => {
                    return Err(self.err_at(
                        &t,
                        "`valueType` in an action is not supported: the value's own type is used",
                    ));
                }
                other => {
                    return Err(self.err_at(
                        &t,
                        format!("unknown argument `{other}` in `{action}(...)` (known: type, value, claim)"),
                    ));
                }
            };
            if slot.is_some() {
                return Err(self.err_at(&t, format!("`{key}` is given twice")));
            }
            let e = self.expr()?;
            *slot = Some(e);
            if !self.eat_punct(",") {
                break;
            }
        }
        match (ty, value) {
            (Some(ty), Some(value)) => {
                if let Expr::Lit(v) = &ty
                    && !matches!(v, Value::Str(_))
                {
                    let t = self.peek().clone();
                    return Err(
                        self.err_at(&t, format!("the claim type must be a string, not {v}"))
                    );
                }
                Ok(ClaimSpec::TypeValue { ty, value })
            }
            (None, _) => Err(self.unexpected(&format!("`type=\"…\"` in `{action}(...)`"))),
            (_, None) => Err(self.unexpected(&format!("`value=…` in `{action}(...)`"))),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Permit => "permit()",
        Action::Deny => "deny()",
        Action::Add(_) => "add(...)",
        Action::Issue(_) => "issue(...)",
        Action::IssueProperty(_) => "issueproperty(...)",
    }
}

static EOF: Token = Token {
    tok: Tok::Eof,
    line: 1,
    column: 1,
    start: 0,
    end: 0,
};
