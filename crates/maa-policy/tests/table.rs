//! Policies × quotes: each quote is built with dcap-testkit, verified with dcap against the
//! testkit's collateral, turned into MAA's incoming claims, and evaluated.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dcap::{Collateral, TcbStatus, TrustAnchor, VerifiedQuote};
use dcap_testkit::{CollateralParams, PkiParams, QuoteParams, Testkit};
use maa_policy::sgx::SgxEvidence;
use maa_policy::{Policy, TcbIdentifier};

const AT: i64 = 1_767_225_600;

struct Kit {
    kit: Testkit,
    coll: Collateral,
    anchor: TrustAnchor,
}

fn kit() -> Kit {
    let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::SwHardeningNeeded))).unwrap();
    let doc = kit.collateral(&CollateralParams::new(AT)).unwrap();
    let coll = Collateral::from_document(doc).unwrap();
    let anchor = TrustAnchor::from_certificate(kit.root_pem().as_bytes()).unwrap();
    Kit { kit, coll, anchor }
}

fn verify(k: &Kit, q: &QuoteParams) -> VerifiedQuote {
    let quote = k.kit.quote(q).unwrap();
    dcap::verify(&quote, &k.coll, AT + 3600, &k.anchor).unwrap()
}

fn evidence(v: &VerifiedQuote, runtime_json: Option<&str>) -> SgxEvidence {
    let r = v.report();
    SgxEvidence {
        mrenclave: r.mr_enclave.0,
        mrsigner: r.mr_signer.0,
        product_id: r.isv_prod_id,
        svn: r.isv_svn,
        debuggable: v.debug(),
        report_data: r.report_data.0.to_vec(),
        runtime_data: runtime_json.map(|j| j.as_bytes().to_vec()),
        runtime_json: runtime_json.map(str::to_string),
        inittime_json: None,
        tcb_status: v.tcb_status().to_string(),
        advisory_ids: v.advisory_ids().to_vec(),
        fmspc: v.fmspc(),
        tcb_evaluation_data_number: v.tcb_evaluation_data_number(),
    }
}

/// `permit <issued claims JSON> [properties]`, `deny: <message>` or `parse: <message>`.
fn run(policy: &str, ev: &SgxEvidence) -> String {
    let p = match Policy::parse(policy) {
        Ok(p) => p,
        Err(e) => return format!("parse: {e}"),
    };
    match p.evaluate(&ev.claims()) {
        Ok(o) => {
            let mut s = format!("permit {}", serde_json::Value::Object(o.issued_json()));
            let props: Vec<String> = o.properties().map(|(t, v)| format!("{t}={v}")).collect();
            if !props.is_empty() {
                s.push_str(&format!(" [{}]", props.join(", ")));
            }
            s
        }
        Err(e) => format!("deny: {e}"),
    }
}

const SAMPLE_CUSTOM: &str = include_str!("policies/sample_custom.policy");

const DEFAULT_SGX: &str = include_str!("policies/default_sgx.policy");

const MULTI: &str = include_str!("policies/multi.policy");

/// The policy inside Microsoft's "Unsigned Policy for an SGX enclave with PolicyFormat=JWT".
const JWT_UNSIGNED: &str = include_str!("policies/jwt_unsigned.policy");

/// The policy inside Microsoft's "Signed Policy for an SGX enclave with PolicyFormat=JWT".
const JWT_SIGNED: &str = include_str!("policies/jwt_signed.policy");

fn auth(rules: &str) -> String {
    format!("version=1.0;\nauthorizationrules {{\n{rules}\n}};\n")
}

#[test]
fn policies_times_quotes() {
    let k = kit();
    let base_q = QuoteParams::default();
    let debug_q = QuoteParams {
        debug: true,
        ..QuoteParams::default()
    };
    let svn5_q = QuoteParams {
        isv_svn: 5,
        isv_prod_id: 3,
        ..QuoteParams::default()
    };
    let base = evidence(&verify(&k, &base_q), None);
    let debug = evidence(&verify(&k, &debug_q), None);
    let svn5 = evidence(&verify(&k, &svn5_q), None);
    let json_rt = evidence(
        &verify(&k, &base_q),
        Some(r#"{"keys":[{"kid":"k1","kty":"RSA"}],"n":[1,2,3]}"#),
    );
    let signer = hex::encode(base.mrsigner);
    let enclave = hex::encode(base.mrenclave);
    let sub = |s: &str| {
        s.replace("MRSIGNER", &signer)
            .replace("MRENCLAVE", &enclave)
    };
    let issue_all = format!(
        r#"{{"is-debuggable":false,"product-id":1,"sgx-mrenclave":"{enclave}","sgx-mrsigner":"{signer}","svn":1,"tee":"sgx"}}"#
    );
    let issue_all_debug = issue_all.replace("\"is-debuggable\":false", "\"is-debuggable\":true");

    let cases: Vec<(&str, String, &SgxEvidence, String)> = vec![
        // Microsoft's "policy examples" page.
        ("sample custom, matching quote", sub(SAMPLE_CUSTOM), &base,
            format!(r#"permit {{"my-signer":"{signer}"}}"#)),
        ("sample custom, debug quote", sub(SAMPLE_CUSTOM), &debug,
            "deny: no authorization rule permitted: the rule at line 4 needs [ type==\"x-ms-sgx-is-debuggable\", value==false ] (line 4, column 8), which no claim matches".into()),
        ("sample custom, other product", sub(SAMPLE_CUSTOM), &svn5,
            "deny: no authorization rule permitted: the rule at line 4 needs [ type==\"x-ms-sgx-product-id\", value==1 ] (line 5, column 12), which no claim matches".into()),
        ("sample custom, other signer", SAMPLE_CUSTOM.replace("MRSIGNER", &"ab".repeat(32)), &base,
            format!("deny: no authorization rule permitted: the rule at line 4 needs [ type==\"x-ms-sgx-mrsigner\", value==\"{}\"] (line 7, column 12), which no claim matches", "ab".repeat(32))),
        ("default SGX policy", DEFAULT_SGX.into(), &base, format!("permit {issue_all}")),
        ("default SGX policy, debug", DEFAULT_SGX.into(), &debug, format!("permit {issue_all_debug}")),
        ("multiple enclaves, second signer", sub(MULTI), &debug, "permit {}".into()),
        ("multiple enclaves, release enclave", sub(MULTI), &base,
            "deny: no authorization rule permitted: the rule at line 4 needs [ type==\"x-ms-sgx-is-debuggable\", value==true ] (line 4, column 2), which no claim matches; the rule at line 6 needs [ type==\"x-ms-sgx-is-debuggable\", value==true ] (line 6, column 2), which no claim matches".into()),
        ("JWT unsigned example ($ names)", JWT_UNSIGNED.into(), &base, format!("permit {issue_all}")),
        ("JWT signed example, release", JWT_SIGNED.into(), &base,
            format!("permit {}", issue_all.replacen('{', "{\"NotDebuggable\":false,", 1))),
        ("JWT signed example, debug", JWT_SIGNED.into(), &debug,
            "deny: denied by the authorization rule at line 1, column 33: c:[type==\"$is-debuggable\"] && [value==true] => deny()".into()),
        // Comparisons on product id and svn.
        ("product id ==", auth("[type==\"x-ms-sgx-product-id\", value==3] => permit();"), &svn5, "permit {}".into()),
        ("product id !=", auth("[type==\"$product-id\", value!=3] => permit();"), &svn5,
            "deny: no authorization rule permitted: the rule at line 3 needs [type==\"$product-id\", value!=3] (line 3, column 1), which no claim matches".into()),
        ("svn >= equal", auth("[type==\"x-ms-sgx-svn\", value>=5] => permit();"), &svn5, "permit {}".into()),
        ("svn > equal", auth("[type==\"x-ms-sgx-svn\", value>5] => permit();"), &svn5,
            "deny: no authorization rule permitted: the rule at line 3 needs [type==\"x-ms-sgx-svn\", value>5] (line 3, column 1), which no claim matches".into()),
        ("svn < and <=", auth("[type==\"$svn\", value<6] && [type==\"$svn\", value<=5] => permit();"), &svn5, "permit {}".into()),
        ("svn < fails on base", auth("[type==\"$svn\", value<1] => permit();"), &base,
            "deny: no authorization rule permitted: the rule at line 3 needs [type==\"$svn\", value<1] (line 3, column 1), which no claim matches".into()),
        // v1.0 names.
        ("$sgx-mrenclave", sub(&auth("[type==\"$sgx-mrenclave\", value==\"MRENCLAVE\"] => permit();")), &base, "permit {}".into()),
        ("$tee", auth("[type==\"$tee\", value==\"sgx\"] => permit();"), &base, "permit {}".into()),
        ("$is-debuggable false", auth("[type==\"$is-debuggable\", value==false] => permit();"), &debug,
            "deny: no authorization rule permitted: the rule at line 3 needs [type==\"$is-debuggable\", value==false] (line 3, column 1), which no claim matches".into()),
        // Deny wins; empty authorization denies.
        ("deny alone", auth("=> deny();"), &base, "deny: denied by the authorization rule at line 3, column 1: => deny()".into()),
        ("permit then deny", auth("=> permit();\n[type==\"x-ms-sgx-svn\", value<2] => deny();"), &base,
            "deny: denied by the authorization rule at line 4, column 1: [type==\"x-ms-sgx-svn\", value<2] => deny()".into()),
        ("no rules", auth(""), &base, "deny: no authorization rule permitted (the policy has no permit() rule whose conditions could hold)".into()),
        // issueproperty.
        ("report validity", "version=1.0; authorizationrules { => permit(); }; issuancerules { => issueproperty(type=\"report_validity_in_minutes\", value=60); => issueproperty(type=\"omit_x5c\", value=true); };".into(), &base,
            "permit {} [report_validity_in_minutes=60, omit_x5c=true]".into()),
        ("report validity out of range", "version=1.0; authorizationrules { => permit(); }; issuancerules {\n => issueproperty(type=\"report_validity_in_minutes\", value=525601); };".into(), &base,
            "deny: line 2, column 2: property report_validity_in_minutes: 525601 is out of range (1 to 525600 minutes, one year)".into()),
        ("omit_x5c not a bool", "version=1.0; authorizationrules { => permit(); }; issuancerules { => issueproperty(type=\"omit_x5c\", value=\"yes\"); };".into(), &base,
            "deny: line 1, column 67: property omit_x5c: \"yes\" is not a boolean".into()),
        // Issued claims: claim=c, add, variables in conditions, issuer and valueType.
        ("issue(claim=c)", "version=1.0; authorizationrules { => permit(); }; issuancerules { c:[type==\"x-ms-sgx-svn\"] => issue(claim=c); };".into(), &svn5,
            r#"permit {"x-ms-sgx-svn":5}"#.into()),
        ("add then issue", "version=1.0; authorizationrules { [type==\"$svn\", value>=5] => add(type=\"tier\", value=\"gold\"); => permit(); }; issuancerules { c:[type==\"tier\", issuer==\"AttestationPolicy\"] => issue(type=\"tier\", value=c.value); };".into(), &svn5,
            r#"permit {"tier":"gold"}"#.into()),
        ("variable in a condition", "version=1.0; authorizationrules { s:[type==\"x-ms-sgx-svn\"] && [type==\"x-ms-sgx-product-id\", value==s.value] => permit(); };".into(), &base, "permit {}".into()),
        ("issuer and valueType", "version=1.0; authorizationrules { [type==\"x-ms-sgx-svn\", issuer==\"AttestationService\", valueType==\"Integer\"] => permit(); };".into(), &base, "permit {}".into()),
        ("custom issuer never matches", "version=1.0; authorizationrules { [type==\"x-ms-sgx-svn\", issuer==\"CustomClaim\"] => permit(); };".into(), &base,
            "deny: no authorization rule permitted: the rule at line 1 needs [type==\"x-ms-sgx-svn\", issuer==\"CustomClaim\"] (line 1, column 35), which no claim matches".into()),
        ("mixed-type equality is false", auth("[type==\"x-ms-sgx-svn\", value==\"1\"] => permit();"), &base,
            "deny: no authorization rule permitted: the rule at line 3 needs [type==\"x-ms-sgx-svn\", value==\"1\"] (line 3, column 1), which no claim matches".into()),
        // confkube claims.
        ("tcb status", auth("[type==\"x-confkube-tcb-status\", value==\"SWHardeningNeeded\"] => permit();"), &base, "permit {}".into()),
        ("grouping and ||", auth("([type==\"$svn\", value>=5] || [type==\"$is-debuggable\", value==true]) && [type==\"$tee\", value==\"sgx\"] => permit();"), &debug, "permit {}".into()),
        ("|| neither", auth("[type==\"$svn\", value>=5] || [type==\"$is-debuggable\", value==true] => permit();"), &base,
            "deny: no authorization rule permitted: the rule at line 3 needs [type==\"$svn\", value>=5] (line 3, column 1), which no claim matches".into()),
        // Version 1.2.
        ("1.2 not-condition", "version=1.2; authorizationrules { ![type==\"x-ms-sgx-is-debuggable\", value==true] => permit(); };".into(), &debug,
            "deny: no authorization rule permitted: the rule at line 1 needs ![type==\"x-ms-sgx-is-debuggable\", value==true] (line 1, column 35), which no claim matches".into()),
        ("1.2 JmesPath on x-ms-runtime", "version=1.2; authorizationrules { => permit(); }; issuancerules { c:[type==\"x-ms-runtime\"] => issue(type=\"kid\", value=JsonToClaimValue(JmesPath(c.value, \"keys[0].kid\"))); c:[type==\"x-ms-runtime\"] => issue(type=\"n\", value=JsonToClaimValue(JmesPath(c.value, \"n\"))); };".into(), &json_rt,
            r#"permit {"kid":"k1","n":[1,2,3]}"#.into()),
        ("1.2 ContainsOnlyValue/IsSubsetOf/AppendString/NegateBool", r#"version=1.2; authorizationrules { => permit(); }; issuancerules {
            c:[type=="x-ms-runtime"] => add(type="n", value=JsonToClaimValue(JmesPath(c.value, "n")));
            c:[type=="n"] => issue(type="only1", value=ContainsOnlyValue(c.value, 1));
            c:[type=="n"] => issue(type="sub", value=IsSubsetOf(c.value, JsonToClaimValue("[3,2,1,0]")));
            c:[type=="x-ms-attestation-type"] => issue(type="s", value=AppendString(c.value, "-enclave"));
            c:[type=="$is-debuggable"] => issue(type="release", value=NegateBool(c.value));
        };"#.into(), &json_rt,
            r#"permit {"only1":false,"release":true,"s":"sgx-enclave","sub":true}"#.into()),
        ("1.2 JsonToClaimValue of a fraction", "version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(type=\"x\", value=JsonToClaimValue(\"1.5\")); };".into(), &base,
            "deny: line 1, column 92: JsonToClaimValue: the number 1.5 is not an integer (fractions are not claim values)".into()),
        // Malformed documents.
        ("no version", "authorizationrules { => permit(); };".into(), &base,
            "parse: line 1, column 1: expected `version=1.0;` (or 1.1, 1.2) at the start of the policy, found `authorizationrules`".into()),
        ("version 2.0", "version=2.0; authorizationrules { => permit(); };".into(), &base,
            "parse: line 1, column 9: unsupported policy version 2.0 (supported: 1.0, 1.1, 1.2)".into()),
        ("configurationrules in 1.0", "version=1.0;\nconfigurationrules { };".into(), &base,
            "parse: line 2, column 1: `configurationrules` needs policy version 1.1 or later (this policy is version 1.0)".into()),
        ("! in 1.1", "version=1.1; authorizationrules {\n  ![type==\"a\"] => permit(); };".into(), &base,
            "parse: line 2, column 3: the `!` (not) condition needs policy version 1.2 or later (this policy is version 1.1)".into()),
        ("function in 1.0", "version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=\"a\", value=AppendString(\"a\", \"b\")); };".into(), &base,
            "parse: line 1, column 92: the function `AppendString` needs policy version 1.2 or later (this policy is version 1.0)".into()),
        ("missing ]", "version=1.0;\nauthorizationrules {\n  [type==\"x-ms-sgx-svn\", value>=1 => permit();\n};".into(), &base,
            "parse: line 3, column 35: expected `,` or `]`, found `=>`".into()),
        ("< on a string", auth("[type==\"x-ms-sgx-mrsigner\", value<\"abc\"] => permit();"), &base,
            "parse: line 3, column 34: `<`, `<=`, `>` and `>=` compare integers; \"abc\" is a string".into()),
        ("unknown variable", "version=1.0; authorizationrules { => permit(); }; issuancerules { [type==\"a\"] => issue(type=\"b\", value=c.value); };".into(), &base,
            "parse: line 1, column 104: unknown claim variable `c` (bind it first, as in `c:[type==\"…\"]`)".into()),
        ("permit in issuancerules", "version=1.0; authorizationrules { => permit(); }; issuancerules { => permit(); };".into(), &base,
            "parse: line 1, column 70: issuancerules allows `issue(...)`, `issueproperty(...)` and `add(...)`, not `permit()`".into()),
        ("issue in authorizationrules", auth("=> issue(type=\"a\", value=1);"), &base,
            "parse: line 3, column 4: authorizationrules allows `permit()`, `deny()` and `add(...)`, not `issue(...)`".into()),
        ("section twice", "version=1.0; authorizationrules { }; authorizationrules { };".into(), &base,
            "parse: line 1, column 38: the section `authorizationrules` appears twice".into()),
        ("no authorizationrules", "version=1.0; issuancerules { };".into(), &base,
            "parse: line 1, column 32: the policy has no `authorizationrules` section".into()),
        ("unknown function", "version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(type=\"a\", value=Lower(\"A\")); };".into(), &base,
            "parse: line 1, column 92: unknown function `Lower` (known: JmesPath, JsonToClaimValue, IsSubsetOf, AppendString, NegateBool, ContainsOnlyValue)".into()),
        ("wrong arity", "version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(type=\"a\", value=NegateBool(true, false)); };".into(), &base,
            "parse: line 1, column 92: `NegateBool` takes 1 argument, not 2".into()),
        ("invalid JMESPath", "version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(type=\"a\", value=JmesPath(\"{}\", \"a[\")); };".into(), &base,
            "parse: line 1, column 92: `JmesPath`: invalid JMESPath query: Parse error: Expected number, ':', or '*' -- found Eof (line 0, column 2)".into()),
        ("bad tcb identifier", "version=1.1; configurationrules { => issueproperty(type=\"x-ms-sgx-tcbidentifier\", value=\"latest\"); }; authorizationrules { => permit(); };".into(), &base,
            "parse: line 1, column 35: x-ms-sgx-tcbidentifier must be \"azuredefault\" or a TCB evaluation data number such as \"17\", not \"latest\"".into()),
        ("typographic quote (Microsoft's TCB sample)", "version = 1.1;\nconfigurationrules\n{\n=> issueproperty (\ntype = \"x-ms-sgx-tcbidentifier\", value = \"11\u{201d}\n);\n};".into(), &base,
            "parse: line 5, column 42: the string is never closed (missing `\"`)".into()),
        ("missing permit parentheses", auth("=> permit;"), &base,
            "parse: line 3, column 10: expected `(`, found `;`".into()),
        ("conditional configuration rule", "version=1.1; configurationrules { [type==\"a\"] => issueproperty(type=\"x\", value=1); }; authorizationrules { };".into(), &base,
            "parse: line 1, column 35: configuration rules take no conditions: write `=> issueproperty(type=\"…\", value=…);`".into()),
        ("valueType in an action", "version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=\"a\", valueType=\"Integer\", value=1); };".into(), &base,
            "parse: line 1, column 86: `valueType` in an action is not supported: the value's own type is used".into()),
        ("positional issue", "version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(\"t\", value=true); };".into(), &base,
            "parse: line 1, column 76: expected `type=\"…\", value=…` or `claim=c` in `issue(...)`, found the string \"t\"".into()),
        ("binding in a negated condition", "version=1.2; authorizationrules { !c:[type==\"a\"] => permit(); };".into(), &base,
            "parse: line 1, column 36: a `!` condition matches no claim, so it cannot bind the variable `c`".into()),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (name, policy, ev, want) in &cases {
        let got = run(policy, ev);
        if &got != want {
            failures.push(format!("{name}:\n   got: {got}\n  want: {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn tcb_identifier_and_configuration() {
    let p = Policy::parse(DEFAULT_SGX).unwrap();
    assert_eq!(p.tcb_identifier(), Some(TcbIdentifier::AzureDefault));
    assert_eq!(p.version().to_string(), "1.1");
    let p = Policy::parse(
        "version=1.1; configurationrules { => issueproperty(type=\"x-ms-sgx-tcbidentifier\", value=\"17\"); }; authorizationrules { c:[type==\"x-ms-sgx-tcbidentifier\", value==\"17\"] => permit(); };",
    )
    .unwrap();
    assert_eq!(
        p.tcb_identifier(),
        Some(TcbIdentifier::EvaluationDataNumber(17))
    );
    // The configuration property is an incoming claim the rules can read.
    let k = kit();
    let ev = evidence(&verify(&k, &QuoteParams::default()), None);
    assert_eq!(p.evaluate(&ev.claims()).unwrap().permitted_by().line, 1);
}

/// The fuzz target's properties over the example policies and every prefix of them: no panic,
/// parse errors inside the text, parsed policies evaluate.
#[test]
fn prefixes_of_the_examples_fail_inside_the_text() {
    let k = kit();
    let ev = evidence(
        &verify(&k, &QuoteParams::default()),
        Some(r#"{"keys":[{"kid":"a"}],"n":[1,2]}"#),
    );
    let all = [
        SAMPLE_CUSTOM,
        DEFAULT_SGX,
        MULTI,
        JWT_UNSIGNED,
        JWT_SIGNED,
        include_str!("policies/v12_functions.policy"),
    ];
    let mut errors = 0;
    for text in all {
        for (i, _) in text.char_indices() {
            let prefix = &text[..i];
            match Policy::parse(prefix) {
                Err(e) => {
                    errors += 1;
                    let lines: Vec<&str> = prefix.split('\n').collect();
                    let line = e.line as usize;
                    assert!(line >= 1 && line <= lines.len(), "{prefix:?}: {e}");
                    assert!(
                        (e.column as usize) <= lines[line - 1].chars().count() + 1,
                        "{prefix:?}: {e}"
                    );
                }
                Ok(p) => {
                    let _ = p.evaluate(&ev.claims());
                }
            }
        }
    }
    assert!(errors > 1000, "{errors}");
}
