//! Secret release policies in the MAA policy language (`{"maa": "<policy text>"}`): accepted and
//! parsed at create time, their `authorizationrules` evaluated over the presented attestation's
//! claims, for two-step (token) and one-step release.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use axum::http::StatusCode;
use dcap_testkit::QuoteParams;
use serde_json::{Value, json};

mod secrets_support;
use secrets_support::*;

fn mrsigner() -> String {
    hex::encode(QuoteParams::default().mrsigner)
}

fn by_signer_and_product() -> Value {
    json!({"maa": format!(
        "version=1.1;\nauthorizationrules {{\n  [type==\"x-ms-sgx-mrsigner\", value==\"{}\"] && [type==\"x-ms-sgx-product-id\", value==1] => permit();\n}};\n",
        mrsigner()
    )})
}

/// Releases `name` with a two-step token and decrypts nothing (the JWE shape is checked).
async fn released(e: &Env, name: &str, token: &str) -> Value {
    let r = release(e, &format!("/secrets/{name}/release"), token_body(token)).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["value"].as_str().unwrap().split('.').count(), 5);
    r.2
}

#[tokio::test]
async fn permit_by_mrsigner_and_product_and_metadata_shows_the_language() {
    let e = env("permit");
    let r = put(&e, "db", VALUE, by_signer_and_product()).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let (_, _, d) = call(&e.svc, "GET", "/secrets/db", None, true).await;
    assert_eq!(d["versions"][0]["policyLanguage"], "maa", "{d}");
    assert_eq!(d["versions"][0]["policy"], by_signer_and_product());
    let (_, _, l) = call(&e.svc, "GET", "/secrets", None, true).await;
    assert_eq!(
        l,
        json!({"secrets": [{"name": "db", "versions": [1], "current": 1, "policyLanguage": "maa"}]})
    );
    let runtime = json!({"keys": [rust_ec_jwk()]});
    let token = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;
    let out = released(&e, "db", &token).await;
    assert_eq!(out["version"], 1);

    // Another product: no rule permits; the message names the rule and condition, not the value.
    let other = QuoteParams {
        isv_prod_id: 2,
        ..QuoteParams::default()
    };
    let t = token_for(&e, &e.svc, &runtime, other).await;
    let r = release(&e, "/secrets/db/release", token_body(&t)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert_eq!(
        d,
        "denied by the secret's release policy: no authorization rule permitted: the rule at \
         line 3 needs [type==\"x-ms-sgx-product-id\", value==1] (line 3, column 109), which no \
         claim matches"
    );
    assert_eq!(r.2["unmet"][0]["condition"]["line"], 3, "{}", r.2);
    assert!(!r.2.to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn deny_by_svn_and_version_1_0_dollar_names() {
    let e = env("svn");
    let policy = json!({"maa": "version=1.0;\nauthorizationrules {\n  [type==\"$svn\", value<2] => deny();\n  [type==\"$is-debuggable\", value==false] && [type==\"$sgx-mrsigner\", value==\"".to_string()
        + &mrsigner() + "\"] => permit();\n};"});
    assert_eq!(put(&e, "db", VALUE, policy).await.0, StatusCode::OK);
    let runtime = json!({"keys": [rust_ec_jwk()]});
    // SVN 1 (the default quote): denied by the deny() rule.
    let t = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;
    let r = release(&e, "/secrets/db/release", token_body(&t)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert_eq!(
        d,
        "denied by the secret's release policy: denied by the authorization rule at line 3, \
         column 3: [type==\"$svn\", value<2] => deny()"
    );
    assert_eq!(r.2["rule"]["line"], 3, "{}", r.2);
    // SVN 2: the $-named permit rule holds.
    let t = token_for(
        &e,
        &e.svc,
        &runtime,
        QuoteParams {
            isv_svn: 2,
            ..QuoteParams::default()
        },
    )
    .await;
    released(&e, "db", &t).await;
    // A debug enclave with SVN 2 (the attestation policy admits debug enclaves):
    // $is-debuggable is true, so nothing permits.
    let r = call(
        &e.svc,
        "PUT",
        "/policies/SgxEnclave",
        Some(json!({"rules": [{"name": "any", "allow_debug": true}]}).to_string()),
        true,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let t = token_for(
        &e,
        &e.svc,
        &runtime,
        QuoteParams {
            isv_svn: 2,
            debug: true,
            ..QuoteParams::default()
        },
    )
    .await;
    let r = release(&e, "/secrets/db/release", token_body(&t)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert!(
        d.contains("[type==\"$is-debuggable\", value==false]"),
        "{d}"
    );
}

#[tokio::test]
async fn malformed_policies_are_400_invalid_policy_with_line_and_column() {
    let e = env("malformed");
    let r = put(
        &e,
        "db",
        VALUE,
        json!({"maa": "version=1.0;\nauthorizationrules {\n  => permit()\n"}),
    )
    .await;
    let d = assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-policy");
    assert_eq!(
        d,
        "invalid policy: line 4, column 1: expected a rule or `}` closing `authorizationrules`, \
         found the end of the policy"
    );
    assert_eq!(
        (r.2["line"].clone(), r.2["column"].clone()),
        (json!(4), json!(1))
    );
    for bad in [
        json!({"maa": 5}),
        json!({"maa": "version=1.0;", "rules": []}),
    ] {
        let r = put(&e, "db", VALUE, bad).await;
        assert_eq!(
            assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-policy"),
            "invalid policy: an MAA release policy is {\"maa\": \"<policy text>\"}: one string \
             member and nothing else"
        );
    }
    let r = put(
        &e,
        "db",
        VALUE,
        json!({"maa": "version=1.1; configurationrules { => issueproperty(type=\"x-ms-sgx-tcbidentifier\", value=\"17\"); }; authorizationrules { => permit(); };"}),
    )
    .await;
    let d = assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-policy");
    assert!(d.contains("x-ms-sgx-tcbidentifier"), "{d}");
    let (_, _, l) = call(&e.svc, "GET", "/secrets", None, true).await;
    assert_eq!(l, json!({"secrets": []}));
}

#[tokio::test]
async fn one_step_release_with_an_maa_policy() {
    let e = env("onestep");
    assert_eq!(
        put(&e, "db", VALUE, by_signer_and_product()).await.0,
        StatusCode::OK
    );
    let runtime = json!({"keys": [rust_ec_jwk()]});
    let body = attest_request(&e.kit, &runtime, QuoteParams::default());
    let r = release(&e, "/secrets/db/release", body).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["value"].as_str().unwrap().split('.').count(), 5);
    let other = QuoteParams {
        mrsigner: [7; 32],
        ..QuoteParams::default()
    };
    let body = attest_request(&e.kit, &runtime, other);
    let r = release(&e, "/secrets/db/release", body).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert!(d.contains("x-ms-sgx-mrsigner"), "{d}");
    // A runtime-data claim (x-ms-runtime, version 1.2 JmesPath) is visible to the policy too.
    let kid_policy = json!({"maa": "version=1.2; authorizationrules { c:[type==\"x-ms-runtime\"] => add(type=\"kid\", value=JmesPath(c.value, \"keys[0].kid\")); [type==\"kid\", value==\"\\\"rust-ec\\\"\"] => permit(); };"});
    let r = put(&e, "kid", VALUE, kid_policy).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    let body = attest_request(&e.kit, &runtime, QuoteParams::default());
    let r = release(&e, "/secrets/kid/release", body).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
}
