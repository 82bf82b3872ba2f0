//! Secret release (DESIGN.md §5b) through the real router, store, KEK, signing keys and
//! verifier; quotes from the test PKI; JWEs decrypted by Python `jwcrypto` and JS `jose`
//! (skipped with a notice when missing, failing under CI=true).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::secrets::Secrets;
use attest::secrets::kek::Kek;
use attest::secrets::model::{Backend, FileBackend, FileConfig, StoreBackend};
use attest::store::Store;
use axum::http::StatusCode;
use base64::Engine as _;
use dcap_testkit::QuoteParams;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

mod secrets_support;
use secrets_support::*;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jwe-interop")
}

#[tokio::test]
async fn admin_api_versions_list_describe_delete_and_sealed_at_rest() {
    let e = env("admin");
    let r = put(&e, "db-password", VALUE, default_rule()).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["name"], "db-password");
    assert_eq!(r.2["version"], 1);
    assert_eq!(r.2["created"], "2026-01-01T01:00:00Z");
    let r = put(&e, "db-password", b"rotated", default_rule()).await;
    assert_eq!(r.2["version"], 2);
    put(&e, "tls.key", b"k", default_rule()).await;

    let (st, _, l) = call(&e.svc, "GET", "/secrets", None, true).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        l,
        json!({"secrets": [
            {"name": "db-password", "versions": [1, 2], "current": 2,
             "policyLanguage": "confkube-json"},
            {"name": "tls.key", "versions": [1], "current": 1, "policyLanguage": "confkube-json"},
        ]})
    );
    let (st, _, d) = call(&e.svc, "GET", "/secrets/db-password", None, true).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(d["current"], 2);
    assert_eq!(d["versions"][0]["size"], VALUE.len());
    assert_eq!(d["versions"][0]["contentType"], "text/plain");
    assert_eq!(
        d["versions"][1]["policy"]["rules"][0]["name"],
        json!("payments")
    );
    let text = d.to_string();
    assert!(!text.contains(&B64URL.encode(VALUE)) && !text.contains("s3cr3t"));
    assert!(d["versions"][0].get("sealed").is_none(), "{d}");

    // Values are sealed in the store file, not in plaintext.
    let db = std::fs::read(e.store.path()).unwrap();
    assert!(!db.windows(VALUE.len()).any(|w| w == VALUE));
    assert!(!db.windows(7).any(|w| w == b"rotated"));

    // Roll back: delete version 2, version 1 is current again.
    let (st, _, v) = call(
        &e.svc,
        "DELETE",
        "/secrets/db-password?version=2",
        None,
        true,
    )
    .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::OK,
            json!({"name": "db-password", "deleted": [2]})
        )
    );
    let (_, _, l) = call(&e.svc, "GET", "/secrets", None, true).await;
    assert_eq!(
        l["secrets"][0],
        json!({"name": "db-password", "versions": [1], "current": 1,
               "policyLanguage": "confkube-json"})
    );
    // Version numbers are never reused.
    assert_eq!(
        put(&e, "db-password", b"v3", default_rule()).await.2["version"],
        3
    );
    let r = call(
        &e.svc,
        "DELETE",
        "/secrets/db-password?version=9",
        None,
        true,
    )
    .await;
    assert_eq!(
        assert_problem(&r, StatusCode::NOT_FOUND, "secret-not-found"),
        "secret \"db-password\" has no version 9"
    );
    let (st, _, v) = call(&e.svc, "DELETE", "/secrets/db-password", None, true).await;
    assert_eq!(
        (st, v),
        (
            StatusCode::OK,
            json!({"name": "db-password", "deleted": [1, 3]})
        )
    );
    let r = call(&e.svc, "GET", "/secrets/db-password", None, true).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "secret-not-found");

    // Admin auth on every admin endpoint.
    for (m, u) in [
        ("GET", "/secrets"),
        ("GET", "/secrets/tls.key"),
        ("PUT", "/secrets/tls.key"),
        ("DELETE", "/secrets/tls.key"),
    ] {
        let r = call(&e.svc, m, u, Some("{}".into()), false).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn admin_bad_input_is_a_clear_4xx() {
    let e = env("admin-bad");
    let long = "a".repeat(129);
    for (name, detail) in [
        (
            ".hidden",
            "secret name \".hidden\" is not allowed: use letters, digits, '.', '_' and '-', starting with a letter or digit",
        ),
        (
            "a%2Fb",
            "secret name \"a/b\" is not allowed: use letters, digits, '.', '_' and '-', starting with a letter or digit",
        ),
        (
            long.as_str(),
            "a secret name has 1 to 128 characters (this one has 129)",
        ),
    ] {
        let r = put(&e, name, b"x", default_rule()).await;
        assert_eq!(
            assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-secret-name"),
            detail
        );
    }
    let r = put(&e, "big", &vec![7u8; 64 * 1024 + 1], default_rule()).await;
    assert_eq!(
        assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "secret-too-large"),
        "the value has 65537 bytes; the limit is 65536"
    );
    let r = put(
        &e,
        "maa",
        b"x",
        json!({"maa": "version=1.0; authorizationrules{=>permit();};"}),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    call(&e.svc, "DELETE", "/secrets/maa", None, true).await;
    let r = put(&e, "p", b"x", json!({"rules": []})).await;
    assert_eq!(
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-policy"),
        "invalid policy: a policy needs at least one rule"
    );
    for body in [
        "not json".to_string(),
        json!({"value": "AA"}).to_string(),
        json!({"value": "AA", "policy": default_rule(), "extra": 1}).to_string(),
    ] {
        let r = call(&e.svc, "PUT", "/secrets/x", Some(body), true).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request");
    }
    let r = call(
        &e.svc,
        "PUT",
        "/secrets/x",
        Some(json!({"value": "***", "policy": default_rule()}).to_string()),
        true,
    )
    .await;
    assert!(
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request")
            .starts_with("value is not base64url")
    );
    let r = call(&e.svc, "DELETE", "/secrets/x?version=zero", None, true).await;
    assert_eq!(
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request"),
        "version \"zero\" is not a positive integer"
    );
    // Nothing was stored by any of these.
    let (_, _, l) = call(&e.svc, "GET", "/secrets", None, true).await;
    assert_eq!(l, json!({"secrets": []}));
}

enum Lib {
    Python,
    Node,
}

/// Runs the interop helper; `None` (with a notice) when the library is missing outside CI.
fn helper(lib: &Lib, args: &[&str], stdin: Option<&str>) -> Option<String> {
    let dir = interop_dir();
    let (prog, script, probe): (&str, &str, Vec<&str>) = match lib {
        Lib::Python => ("python3", "jwe.py", vec!["-c", "import jwcrypto"]),
        Lib::Node => (
            "node",
            "jwe.mjs",
            vec!["--input-type=module", "-e", "await import('jose')"],
        ),
    };
    let available = Command::new(prog)
        .args(&probe)
        .current_dir(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        let what = match lib {
            Lib::Python => "Python jwcrypto (pip install jwcrypto==1.5.6)",
            Lib::Node => "JS jose (npm ci in crates/attest/tests/jwe-interop)",
        };
        if std::env::var_os("CI").is_some() {
            panic!("{what} is required in CI (.ci/run installs it)");
        }
        eprintln!("notice: {what} is not installed; skipping its JWE interop check");
        return None;
    }
    let mut child = Command::new(prog)
        .arg(script)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut sin = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            sin.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

async fn interop(lib: Lib, tag: &str) {
    let e = env(&format!("interop-{tag}"));
    put(&e, "db-password", VALUE, default_rule()).await;
    for kind in ["RSA", "P-256", "P-384"] {
        let kid = format!("{tag}-{kind}");
        let Some(private) = helper(&lib, &["gen", kind, &kid], None) else {
            return;
        };
        let private: Value = serde_json::from_str(&private).unwrap();
        let keyfile = e.dir.join(format!("{kid}.jwk"));
        std::fs::write(&keyfile, private.to_string()).unwrap();
        let runtime = json!({"keys": [public_jwk(&private)]});

        // Two steps: attest, then release with the token.
        let token = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;
        let r = release(&e, "/secrets/db-password/release", token_body(&token)).await;
        assert_eq!(r.0, StatusCode::OK, "{kind}: {}", r.2);
        assert_eq!(r.2["name"], "db-password");
        assert_eq!(r.2["version"], 1);
        assert_eq!(r.2["contentType"], "text/plain");
        let jwe = r.2["value"].as_str().unwrap();
        assert_eq!(jwe.split('.').count(), 5);
        let out = helper(&lib, &["decrypt", keyfile.to_str().unwrap()], Some(jwe)).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        let alg = if kind == "RSA" {
            "RSA-OAEP-256"
        } else {
            "ECDH-ES+A256KW"
        };
        assert_eq!(out["header"]["alg"], alg, "{out}");
        assert_eq!(out["header"]["enc"], "A256GCM");
        assert_eq!(out["header"]["kid"], kid.as_str());
        let pt = base64::engine::general_purpose::STANDARD
            .decode(out["plaintext_b64"].as_str().unwrap())
            .unwrap();
        assert_eq!(pt, VALUE);

        // One step: the attestation request itself.
        let body = attest_request(&e.kit, &runtime, QuoteParams::default());
        let r = release(&e, "/secrets/db-password/release", body).await;
        assert_eq!(r.0, StatusCode::OK, "{kind}: {}", r.2);
        let jwe = r.2["value"].as_str().unwrap();
        let out = helper(&lib, &["decrypt", keyfile.to_str().unwrap()], Some(jwe)).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            out["plaintext_b64"],
            base64::engine::general_purpose::STANDARD.encode(VALUE)
        );
    }
}

#[tokio::test]
async fn jwcrypto_decrypts_released_secrets() {
    interop(Lib::Python, "py").await;
}

#[tokio::test]
async fn jose_decrypts_released_secrets() {
    interop(Lib::Node, "js").await;
}

#[tokio::test]
async fn token_invalid_for_none_tampered_expired_foreign_and_draft() {
    let e = env("token");
    put(&e, "db", VALUE, default_rule()).await;
    let runtime = json!({"keys": [rust_ec_jwk()]});
    let token = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;
    let uri = "/secrets/db/release";
    assert_eq!(release(&e, uri, token_body(&token)).await.0, StatusCode::OK);

    let parts: Vec<&str> = token.split('.').collect();
    let none_header = B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    let r = release(&e, uri, token_body(&unsigned)).await;
    let d = assert_problem(&r, StatusCode::UNAUTHORIZED, "token-invalid");
    assert!(
        d.starts_with("not a signed JWT this service accepts"),
        "{d}"
    );

    let mut claims: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
    claims["x-ms-sgx-mrenclave"] = json!("00".repeat(32));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(claims.to_string()),
        parts[2]
    );
    let r = release(&e, uri, token_body(&tampered)).await;
    assert_eq!(
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token-invalid"),
        "the token signature does not verify"
    );

    // The same keys (same store), later: expired.
    let later = service_at(&e.kit, &e.dir, e.store.clone(), ISSUER, NOW + 28_800, None);
    let r = call(&later, "POST", uri, Some(token_body(&token)), false).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "secrets-disabled");
    let kek = Kek::load_or_generate(&e.dir.join("data").join("secrets.kek")).unwrap();
    later
        .enable_secrets(Secrets::new(
            Backend::Store(StoreBackend::new(e.store.clone(), kek)),
            None,
        ))
        .unwrap();
    let r = call(&later, "POST", uri, Some(token_body(&token)), false).await;
    assert_eq!(
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token-invalid"),
        format!(
            "the token expired at {} (now {})",
            NOW + 28_800,
            NOW + 28_800
        )
    );

    // The same keys, another issuer name: foreign issuer.
    let other_iss = service_at(
        &e.kit,
        &e.dir,
        e.store.clone(),
        "https://evil.example",
        NOW,
        None,
    );
    let foreign = token_for(&e, &other_iss, &runtime, QuoteParams::default()).await;
    let r = release(&e, uri, token_body(&foreign)).await;
    assert_eq!(
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token-invalid"),
        "the token was not issued by https://attest.example"
    );

    // Another service's keys: not in /certs.
    let guard2 = tmp("token-foreign");
    let dir2 = guard2.path();
    std::fs::create_dir_all(dir2.join("collateral")).unwrap();
    for f in std::fs::read_dir(e.dir.join("collateral")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir2.join("collateral").join(f.file_name())).unwrap();
    }
    let store2 = Arc::new(Store::open(&dir2.join("data")).unwrap());
    let stranger = service_at(&e.kit, dir2, store2, ISSUER, NOW, None);
    let foreign = token_for(&e, &stranger, &runtime, QuoteParams::default()).await;
    let r = release(&e, uri, token_body(&foreign)).await;
    let d = assert_problem(&r, StatusCode::UNAUTHORIZED, "token-invalid");
    assert!(d.contains("is not a key of this service's /certs"), "{d}");

    // A draft-policy token is signed by an unpublished key.
    let mut draft: Value =
        serde_json::from_str(&attest_request(&e.kit, &runtime, QuoteParams::default())).unwrap();
    draft["draftPolicyForAttestation"] = json!(json!({"rules": [{"name": "d"}]}).to_string());
    let r = call(&e.svc, "POST", ATTEST, Some(draft.to_string()), false).await;
    let r = release(&e, uri, token_body(r.2["token"].as_str().unwrap())).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "token-invalid");
    // ... and a one-step release cannot carry a draft policy.
    let r = release(&e, uri, draft.to_string()).await;
    assert_eq!(
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request"),
        "draftPolicyForAttestation cannot be used to release a secret"
    );

    for body in [
        "[]",
        "{}",
        r#"{"token": 5}"#,
        r#"{"token": "a", "x": 1}"#,
        "nope",
    ] {
        let r = release(&e, uri, body.into()).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request");
    }
}

#[tokio::test]
async fn denied_not_found_no_transfer_key_limits_audit_metrics() {
    let e = env_with("deny", Some(2));
    put(&e, "db", VALUE, default_rule()).await;
    let mut strict = default_rule();
    strict["rules"][0]["min_isv_svn"] = json!(5);
    put(&e, "db", b"v2-needs-svn-5", strict).await;
    let runtime = json!({"keys": [rust_ec_jwk()]});
    let token = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;

    // Version 2 (current) needs ISVSVN 5: denied, naming the rule, nothing of the value.
    let r = release(&e, "/secrets/db/release", token_body(&token)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert_eq!(
        d,
        "denied by the secret's release policy: rule \"payments\": ISVSVN 1 is below the minimum 5"
    );
    assert_eq!(r.2["violations"][0]["code"], "isv-svn-too-low");
    assert!(!r.2.to_string().contains("v2-needs"));
    // A foreign MRENCLAVE.
    let other = QuoteParams {
        mrenclave: [9; 32],
        ..QuoteParams::default()
    };
    let t_other = token_for(&e, &e.svc, &runtime, other).await;
    let r = release(&e, "/secrets/db/release?version=1", token_body(&t_other)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert!(
        d.contains(&format!(
            "MRENCLAVE {} is not in the allowed list",
            "09".repeat(32)
        )),
        "{d}"
    );

    // Version 1 is released; the per-jti limit (2) then refuses a third release.
    for _ in 0..2 {
        let r = release(&e, "/secrets/db/release?version=1", token_body(&token)).await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        assert_eq!(r.2["version"], 1);
    }
    let r = release(&e, "/secrets/db/release?version=1", token_body(&token)).await;
    let d = assert_problem(&r, StatusCode::FORBIDDEN, "release-denied");
    assert!(d.starts_with("release limit: token jti "), "{d}");

    let fresh = token_for(&e, &e.svc, &runtime, QuoteParams::default()).await;
    let r = release(&e, "/secrets/nope/release", token_body(&fresh)).await;
    assert_eq!(
        assert_problem(&r, StatusCode::NOT_FOUND, "secret-not-found"),
        "no secret named \"nope\""
    );
    let r = release(&e, "/secrets/db/release?version=7", token_body(&fresh)).await;
    assert_eq!(
        assert_problem(&r, StatusCode::NOT_FOUND, "secret-not-found"),
        "secret \"db\" has no version 7"
    );
    let r = release(&e, "/secrets/..bad/release", token_body(&fresh)).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "secret-not-found");
    let r = release(&e, "/secrets/db/release?version=-1", token_body(&fresh)).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "invalid-request");

    // No usable transfer key: Binary runtime data; a 1024-bit RSA key; a signing-only key.
    let quote_bin = {
        let mut rd = [0u8; 64];
        rd[..32].copy_from_slice(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"bin").as_ref(),
        );
        e.kit
            .quote(&QuoteParams {
                report_data: rd,
                ..QuoteParams::default()
            })
            .unwrap()
    };
    let body = json!({"quote": B64URL.encode(&quote_bin),
                      "runtimeData": {"data": B64URL.encode(b"bin"), "dataType": "Binary"}});
    let r = release(&e, "/secrets/db/release?version=1", body.to_string()).await;
    let d = assert_problem(&r, StatusCode::BAD_REQUEST, "no-transfer-key");
    assert!(
        d.starts_with("no usable transfer key: the token carries no JSON runtime data"),
        "{d}"
    );
    let mut sig = rust_ec_jwk();
    sig["use"] = json!("sig");
    let weak =
        json!({"keys": [{"kty": "RSA", "e": "AQAB", "n": B64URL.encode([0xc5u8; 128])}, sig]});
    let t_weak = token_for(&e, &e.svc, &weak, QuoteParams::default()).await;
    let r = release(&e, "/secrets/db/release?version=1", token_body(&t_weak)).await;
    assert_eq!(
        assert_problem(&r, StatusCode::BAD_REQUEST, "no-transfer-key"),
        "no usable transfer key: key 0: RSA modulus of 1024 bits is below the minimum of 2048; \
         key 1: \"use\" is \"sig\", not \"enc\""
    );

    // One-step release keeps the attestation error codes (§4 / §5).
    let mut bad: Value =
        serde_json::from_str(&attest_request(&e.kit, &runtime, QuoteParams::default())).unwrap();
    bad["runtimeData"]["data"] = json!(B64URL.encode(br#"{"keys": []}"#));
    let r = release(&e, "/secrets/db/release", bad.to_string()).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "runtime-data-mismatch");
    let mut bad_quote = bad.clone();
    bad_quote["quote"] = json!(B64URL.encode([1u8, 2, 3]));
    let r = release(&e, "/secrets/db/release", bad_quote.to_string()).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "malformed-quote");

    // Metrics: by secret and result; unknown names are not labels; values never appear.
    let (_, _, m) = call(&e.svc, "GET", "/metrics", None, false).await;
    let m = m.as_str().unwrap().to_string();
    for line in [
        r#"confkube_attest_secret_releases_total{secret="db",result="released"} 2"#,
        r#"confkube_attest_secret_releases_total{secret="db",result="release-denied"} 3"#,
        r#"confkube_attest_secret_releases_total{secret="db",result="no-transfer-key"} 2"#,
        r#"confkube_attest_secret_releases_total{secret="",result="secret-not-found"} 3"#,
        r#"confkube_attest_secret_releases_total{secret="",result="attestation-failed"} 2"#,
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    assert!(!m.contains("nope") && !m.contains("s3cr3t"));
}

#[tokio::test]
async fn files_mode_releases_reloads_and_refuses_admin_writes() {
    let e = env("files-base");
    let dir = e.dir.join("secret-volume");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("db"), VALUE).unwrap();
    std::fs::write(dir.join(".hidden"), b"skipped").unwrap();
    let policy_file = e.dir.join("policies.json");
    let write_policies = |v: Value| std::fs::write(&policy_file, v.to_string()).unwrap();
    write_policies(json!({"db": {"policy": default_rule(), "contentType": "text/plain"}}));
    let cfg = FileConfig {
        dir: dir.clone(),
        policy_file: policy_file.clone(),
    };
    let files = FileBackend::load(cfg.clone()).unwrap();
    let svc = service_at(&e.kit, &e.dir, e.store.clone(), ISSUER, NOW, None);
    svc.enable_secrets(Secrets::new(Backend::Files(files), None))
        .unwrap();
    let runtime = json!({"keys": [rust_ec_jwk()]});
    let token = token_for(&e, &svc, &runtime, QuoteParams::default()).await;
    let r = call(
        &svc,
        "POST",
        "/secrets/db/release",
        Some(token_body(&token)),
        false,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
    assert_eq!(r.2["version"], 1);
    let (_, _, l) = call(&svc, "GET", "/secrets", None, true).await;
    assert_eq!(
        l,
        json!({"secrets": [{"name": "db", "versions": [1], "current": 1,
                            "policyLanguage": "confkube-json"}]})
    );
    let (_, _, d) = call(&svc, "GET", "/secrets/db", None, true).await;
    assert_eq!(d["source"], "files");
    assert!(!d.to_string().contains("s3cr3t"));
    let r = call(
        &svc,
        "PUT",
        "/secrets/db",
        Some(json!({"value": "AA", "policy": default_rule()}).to_string()),
        true,
    )
    .await;
    assert_problem(&r, StatusCode::CONFLICT, "secrets-managed-by-file");
    let r = call(&svc, "DELETE", "/secrets/db", None, true).await;
    assert_problem(&r, StatusCode::CONFLICT, "secrets-managed-by-file");
    assert_eq!(
        svc.reload_secrets(),
        attest::reload::ReloadOutcome::Unchanged
    );

    // A new version in both files is applied.
    std::fs::write(dir.join("db"), b"rotated").unwrap();
    write_policies(json!({"db": {"policy": default_rule(), "version": 2}}));
    assert_eq!(svc.reload_secrets(), attest::reload::ReloadOutcome::Applied);
    let r = call(
        &svc,
        "POST",
        "/secrets/db/release",
        Some(token_body(&token)),
        false,
    )
    .await;
    assert_eq!(r.2["version"], 2);

    // A value without a policy is rejected; the last good set stays.
    std::fs::write(dir.join("orphan"), b"x").unwrap();
    let out = svc.reload_secrets();
    assert_eq!(
        out,
        attest::reload::ReloadOutcome::Rejected(format!(
            "secrets files: {} has no policy for the value file \"orphan\" (add \"orphan\" to {})",
            dir.display(),
            policy_file.display()
        ))
    );
    let r = call(
        &svc,
        "POST",
        "/secrets/db/release",
        Some(token_body(&token)),
        false,
    )
    .await;
    assert_eq!(r.2["version"], 2);
    let (_, _, m) = call(&svc, "GET", "/metrics", None, false).await;
    let m = m.as_str().unwrap();
    assert!(
        m.contains(r#"confkube_attest_config_stale{source="secrets"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"confkube_attest_config_reloads_total{source="secrets",result="error"} 1"#)
    );
    // A policy without a value, and an MAA policy, are rejected at start-up with the reason.
    std::fs::remove_file(dir.join("orphan")).unwrap();
    write_policies(json!({"db": {"policy": default_rule()}, "gone": {"policy": default_rule()}}));
    let err = FileBackend::load(cfg.clone()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "secrets files: {}: secret \"gone\": has a policy but no value file {}",
            policy_file.display(),
            dir.join("gone").display()
        )
    );
    write_policies(json!({"db": {"policy": {"maa": "version=1.0;"}}}));
    let err = FileBackend::load(cfg.clone()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "secrets files: {}: secret \"db\": invalid policy: line 1, column 13: the policy \
             has no `authorizationrules` section",
            policy_file.display()
        )
    );
    // A well-formed MAA policy is accepted from the files too.
    write_policies(json!({"db": {"policy": {"maa":
        "version=1.0; authorizationrules { [type==\"x-ms-sgx-is-debuggable\", value==false] => permit(); };"}}}));
    let files = FileBackend::load(cfg).unwrap();
    let svc = service_at(&e.kit, &e.dir, e.store.clone(), ISSUER, NOW, None);
    svc.enable_secrets(Secrets::new(Backend::Files(files), None))
        .unwrap();
    let (_, _, d) = call(&svc, "GET", "/secrets/db", None, true).await;
    assert_eq!(d["versions"][0]["policyLanguage"], "maa", "{d}");
    let r = call(
        &svc,
        "POST",
        "/secrets/db/release",
        Some(token_body(&token)),
        false,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.2);
}
