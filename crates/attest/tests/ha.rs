//! Several stateless replicas: signing keys from a Secret-shaped directory and the policy from a
//! ConfigMap-shaped file, updated the way the kubelet does it (a new `..<timestamp>` directory,
//! then the `..data` symlink swapped atomically) and picked up by the reload watcher.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::collateral::{CacheConfig, CollateralCache, OfflineDir};
use attest::keyfile::{KeyDirConfig, generate_pem};
use attest::keys::SigningAlg;
use attest::reload::{ReloadOutcome, ReloadReport};
use attest::server::{Service, ServiceConfig, router};
use attest::store::{Store, Table};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use dcap::{TcbStatus, TrustAnchor};
use dcap_testkit::{CollateralParams, PkiParams, QuoteParams, Testkit};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt as _;

const AT: i64 = 1_767_225_600;

/// The test clock: one fixed time, for the service and its cache alike.
#[derive(Debug, Clone, Copy)]
struct FixedClock(i64);

impl attest::collateral::Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}
const ADMIN: &str = "admin-secret";
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const ATTEST: &str = "/attest/SgxEnclave?api-version=2022-08-01";
const NO_KEY: &str = "no PEM private key (expected a BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or \
                      BEGIN RSA PRIVATE KEY block)";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-ha-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Publishes `files` into `dir` as the kubelet's atomic writer does for a Secret or ConfigMap
/// volume: write a new hidden timestamped directory, swap `..data` to it with one rename, add
/// symlinks for new names, remove those of deleted names and the old directory.
fn k8s_publish(dir: &Path, generation: u32, files: &[(&str, &str)]) {
    use std::os::unix::fs::symlink;
    let ts_name = format!("..2026_01_01_00_00_{generation:02}.{generation:09}");
    let ts = dir.join(&ts_name);
    std::fs::create_dir_all(&ts).unwrap();
    for (name, contents) in files {
        std::fs::write(ts.join(name), contents).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let _ = std::fs::remove_file(dir.join("..data_tmp"));
    symlink(&ts_name, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with('.') && !files.iter().any(|(n, _)| *n == name) {
            std::fs::remove_file(dir.join(&name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

struct Env {
    kit: Testkit,
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Self {
        let kit = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
        let dir = tmp(name);
        for d in ["collateral", "keys", "policy"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let coll = kit.collateral(&CollateralParams::new(AT)).unwrap();
        std::fs::write(
            dir.join("collateral")
                .join(format!("{}.json", hex::encode(kit.params().fmspc))),
            serde_json::to_string(&coll).unwrap(),
        )
        .unwrap();
        Self { kit, dir }
    }

    fn keys(&self) -> PathBuf {
        self.dir.join("keys")
    }

    fn policy_file(&self) -> PathBuf {
        self.dir.join("policy").join("policy.json")
    }

    fn config(&self, key_dir: bool, active: Option<&str>, policy_file: bool) -> ServiceConfig {
        ServiceConfig {
            issuer: "https://attest.example".into(),
            token_lifetime: 28_800,
            verify_at: None,
            anchor: TrustAnchor::from_certificate(self.kit.root_pem().as_bytes()).unwrap(),
            allow_missing_crls: false,
            signing_alg: SigningAlg::ES256,
            signing_key_dir: key_dir.then(|| KeyDirConfig {
                dir: self.keys(),
                active: active.map(str::to_string),
            }),
            policy_file: policy_file.then(|| self.policy_file()),
            body_limit: 64 * 1024,
            admin_token_sha256: aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                ADMIN.as_bytes(),
            )
            .as_ref()
            .try_into()
            .unwrap(),
        }
    }

    fn service(
        &self,
        cfg: ServiceConfig,
        store: Option<Arc<Store>>,
    ) -> Result<Arc<Service>, attest::server::ServiceError> {
        let cache = CollateralCache::new(
            Arc::new(OfflineDir::new(self.dir.join("collateral"))),
            Arc::new(FixedClock(AT + 3600)),
            CacheConfig::default(),
        );
        Service::new(cfg, store, Arc::new(cache), Arc::new(FixedClock(AT + 3600))).map(Arc::new)
    }

    fn quote(&self, debug: bool) -> Vec<u8> {
        let mut rd = [0u8; 64];
        rd[..32]
            .copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"x").as_ref());
        self.kit
            .quote(&QuoteParams {
                report_data: rd,
                debug,
                ..QuoteParams::default()
            })
            .unwrap()
    }

    fn attest_body(&self) -> String {
        json!({
            "quote": B64URL.encode(self.quote(false)),
            "runtimeData": {"data": B64URL.encode(b"x"), "dataType": "Binary"},
        })
        .to_string()
    }
}

async fn call(
    svc: &Arc<Service>,
    method: &str,
    uri: &str,
    body: Option<String>,
    admin: bool,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if admin {
        req = req.header("authorization", format!("Bearer {ADMIN}"));
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = router(svc.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn token(svc: &Arc<Service>, body: &str) -> String {
    let (st, v) = call(svc, "POST", ATTEST, Some(body.to_string()), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_string()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Verifies a token against a JWKS as a relying party would; `None` when its kid is absent.
fn verify(token: &str, jwks: &Value) -> Option<Value> {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap())?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&["https://attest.example"]);
    v.validate_exp = false;
    v.validate_nbf = false;
    Some(
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .unwrap()
            .claims,
    )
}

async fn metrics(svc: &Arc<Service>) -> String {
    let (_, m) = call(svc, "GET", "/metrics", None, false).await;
    m.as_str().unwrap().to_string()
}

fn reloads(source: &str, result: &str, n: u64) -> String {
    format!("confkube_attest_config_reloads_total{{source=\"{source}\",result=\"{result}\"}} {n}")
}

fn stale(source: &str, v: i64) -> String {
    format!("confkube_attest_config_stale{{source=\"{source}\"}} {v}")
}

/// Polls `check` every 25 ms for up to 10 s (the watcher runs every 50 ms).
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until `/metrics` shows `line` (the watcher counts a reload just after applying it).
async fn wait_metric(svc: &Arc<Service>, line: String) {
    wait_until(&line.clone(), || {
        let svc = svc.clone();
        let line = line.clone();
        async move { metrics(&svc).await.contains(&line) }
    })
    .await;
}

async fn active_kid(svc: &Arc<Service>) -> String {
    let (st, v) = call(svc, "GET", "/readyz", None, false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["signing_kid"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_rotation_through_a_secret_volume_swap() {
    let e = Env::new("rotate");
    let (pem_a, kid_a) = generate_pem(SigningAlg::ES256).unwrap();
    let (pem_b, kid_b) = generate_pem(SigningAlg::RS256).unwrap();
    k8s_publish(&e.keys(), 1, &[("2026-01.pem", &pem_a)]);
    let store = Arc::new(Store::open(&e.dir.join("data")).unwrap());
    let svc = e
        .service(e.config(true, None, false), Some(store.clone()))
        .unwrap();
    let watcher = tokio::spawn(attest::reload::watch(
        svc.clone(),
        Duration::from_millis(50),
    ));
    let body = e.attest_body();

    let t1 = token(&svc, &body).await;
    assert_eq!(kid_of(&t1), kid_a);
    assert_eq!(active_kid(&svc).await, kid_a);
    let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
    assert_eq!(jwks_kids(&jwks), vec![kid_a.clone()]);
    assert_eq!(verify(&t1, &jwks).unwrap()["x-ms-attestation-type"], "sgx");

    // The rotation endpoint is refused: keys belong to the directory.
    let (st, v) = call(&svc, "POST", "/admin/keys/rotate", None, true).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["code"], "signing-keys-managed-by-directory");
    assert_eq!(
        v["detail"],
        "signing keys are managed by --signing-key-dir: to rotate, add a key file whose name \
         sorts last to that directory (the Kubernetes Secret); delete the old file once its \
         tokens have expired"
    );
    assert_eq!(active_kid(&svc).await, kid_a);

    // Rotation: a new key file whose name sorts last.
    k8s_publish(
        &e.keys(),
        2,
        &[("2026-01.pem", &pem_a), ("2026-02.pem", &pem_b)],
    );
    wait_until("the new key to sign", || {
        let svc = svc.clone();
        let kid_b = kid_b.clone();
        async move { active_kid(&svc).await == kid_b }
    })
    .await;
    let t2 = token(&svc, &body).await;
    assert_eq!(kid_of(&t2), kid_b);
    assert_eq!(
        jsonwebtoken::decode_header(&t2).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
    assert_eq!(jwks_kids(&jwks), vec![kid_b.clone(), kid_a.clone()]);
    assert!(
        verify(&t1, &jwks).is_some(),
        "the old key is still published"
    );
    assert!(verify(&t2, &jwks).is_some());
    let (_, oidc) = call(
        &svc,
        "GET",
        "/.well-known/openid-configuration",
        None,
        false,
    )
    .await;
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    wait_metric(&svc, reloads("signing-keys", "ok", 1)).await;
    let m = metrics(&svc).await;
    assert!(m.contains(&reloads("signing-keys", "ok", 1)), "{m}");
    assert!(m.contains(&reloads("signing-keys", "error", 0)), "{m}");
    assert!(m.contains(&stale("signing-keys", 0)), "{m}");

    // After the token lifetime the operator deletes the old file: it leaves /certs.
    k8s_publish(&e.keys(), 3, &[("2026-02.pem", &pem_b)]);
    wait_until("the old key to leave /certs", || {
        let svc = svc.clone();
        async move {
            let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
            jwks_kids(&jwks).len() == 1
        }
    })
    .await;
    let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
    assert_eq!(jwks_kids(&jwks), vec![kid_b.clone()]);
    assert!(verify(&t1, &jwks).is_none());
    assert!(verify(&t2, &jwks).is_some());
    wait_metric(&svc, reloads("signing-keys", "ok", 2)).await;
    // Nothing was generated into or stored in redb.
    assert_eq!(store.list(Table::Keys).unwrap(), vec![]);
    watcher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_swap_bad_versions_keep_the_last_good_one() {
    let e = Env::new("policy");
    let (pem_a, _) = generate_pem(SigningAlg::ES256).unwrap();
    k8s_publish(&e.keys(), 1, &[("k.pem", &pem_a)]);
    let any = json!({"rules": [{"name": "any"}]}).to_string();
    k8s_publish(
        e.policy_file().parent().unwrap(),
        1,
        &[("policy.json", &any)],
    );
    let store = Arc::new(Store::open(&e.dir.join("data")).unwrap());
    let svc = e
        .service(e.config(true, None, true), Some(store.clone()))
        .unwrap();
    let watcher = tokio::spawn(attest::reload::watch(
        svc.clone(),
        Duration::from_millis(50),
    ));
    let body = e.attest_body();
    let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
    let claims = verify(&token(&svc, &body).await, &jwks).unwrap();
    assert_eq!(claims["x-confkube-policy-rule"], "any");

    // The API cannot change a file-managed policy; the admin check still comes first.
    let other = json!({"rules": [{"name": "x"}]}).to_string();
    let (st, v) = call(
        &svc,
        "PUT",
        "/policies/SgxEnclave",
        Some(other.clone()),
        false,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (st, v) = call(&svc, "PUT", "/policies/SgxEnclave", Some(other), true).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["code"], "policy-managed-by-file");
    assert_eq!(
        v["detail"],
        "the policy is managed by --policy-file: change that file (the Kubernetes ConfigMap) \
         instead; every replica applies it within --config-reload-interval"
    );
    let (st, v) = call(&svc, "GET", "/policies/SgxEnclave", None, true).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["policy"], json!({"rules": [{"name": "any"}]}));
    assert_eq!(store.get(Table::Policies, "SgxEnclave").unwrap(), None);

    // A policy that rejects this enclave.
    let nine = hex::encode([9u8; 32]);
    let deny = json!({"rules": [{"name": "only-other", "mrenclave": [nine]}]}).to_string();
    k8s_publish(
        e.policy_file().parent().unwrap(),
        2,
        &[("policy.json", &deny)],
    );
    let policy_name = |svc: Arc<Service>| async move {
        let (_, v) = call(&svc, "GET", "/policies/SgxEnclave", None, true).await;
        v["policy"]["rules"][0]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    wait_until("the denying policy", || {
        let svc = svc.clone();
        async move { policy_name(svc).await == "only-other" }
    })
    .await;
    let denied = |svc: Arc<Service>, body: String| async move {
        let (st, v) = call(&svc, "POST", ATTEST, Some(body), false).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["code"], "mrenclave-not-allowed");
        assert_eq!(
            v["detail"],
            format!(
                "denied by policy: rule \"only-other\": MRENCLAVE {} is not in the allowed list",
                hex::encode(QuoteParams::default().mrenclave)
            )
        );
    };
    denied(svc.clone(), body.clone()).await;
    // A draft policy per request still works.
    let draft = json!({
        "quote": B64URL.encode(e.quote(false)),
        "draftPolicyForAttestation": json!({"rules": [{"name": "draft"}]}).to_string(),
    })
    .to_string();
    let (st, v) = call(&svc, "POST", ATTEST, Some(draft), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Bad versions: unparsable, then semantically invalid. The last good policy stays.
    k8s_publish(
        e.policy_file().parent().unwrap(),
        3,
        &[("policy.json", "{not json")],
    );
    wait_metric(&svc, reloads("policy", "error", 1)).await;
    assert!(metrics(&svc).await.contains(&stale("policy", 1)));
    assert_eq!(policy_name(svc.clone()).await, "only-other");
    denied(svc.clone(), body.clone()).await;
    k8s_publish(
        e.policy_file().parent().unwrap(),
        4,
        &[("policy.json", r#"{"rules": []}"#)],
    );
    wait_metric(&svc, reloads("policy", "error", 2)).await;
    denied(svc.clone(), body.clone()).await;

    // A good version again.
    k8s_publish(
        e.policy_file().parent().unwrap(),
        5,
        &[("policy.json", &any)],
    );
    wait_until("the permissive policy", || {
        let svc = svc.clone();
        async move { policy_name(svc).await == "any" }
    })
    .await;
    token(&svc, &body).await;
    wait_metric(&svc, reloads("policy", "ok", 2)).await;
    let m = metrics(&svc).await;
    assert!(m.contains(&reloads("policy", "ok", 2)), "{m}");
    assert!(m.contains(&reloads("policy", "error", 2)), "{m}");
    assert!(m.contains(&stale("policy", 0)), "{m}");
    assert!(m.contains(&reloads("signing-keys", "ok", 0)), "{m}");
    watcher.abort();
}

#[tokio::test]
async fn bad_key_reload_keeps_the_key_set_and_counts_once_per_change() {
    let e = Env::new("badkeys");
    let (pem_a, kid_a) = generate_pem(SigningAlg::ES256).unwrap();
    let (pem_b, kid_b) = generate_pem(SigningAlg::ES256).unwrap();
    k8s_publish(&e.keys(), 1, &[("a.pem", &pem_a)]);
    let svc = e.service(e.config(true, None, false), None).unwrap();
    let unchanged = ReloadReport {
        signing_keys: ReloadOutcome::Unchanged,
        policy: ReloadOutcome::NotConfigured,
    };
    assert_eq!(svc.reload_config(), unchanged);

    let truncated = "-----BEGIN PRIVATE KEY-----\nAAAA\n";
    k8s_publish(&e.keys(), 2, &[("a.pem", &pem_a), ("b.pem", truncated)]);
    assert_eq!(
        svc.reload_config().signing_keys,
        ReloadOutcome::Rejected(format!(
            "signing key file {}: malformed PEM: the PRIVATE KEY block has no END line",
            e.keys().join("b.pem").display()
        ))
    );
    assert_eq!(
        svc.reload_config(),
        unchanged,
        "the same bad content counts once"
    );
    let m = metrics(&svc).await;
    assert!(m.contains(&reloads("signing-keys", "error", 1)), "{m}");
    assert!(m.contains(&stale("signing-keys", 1)), "{m}");
    let t = token(&svc, &e.attest_body()).await;
    assert_eq!(kid_of(&t), kid_a, "still signing with the last good key");
    let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
    assert_eq!(jwks_kids(&jwks), vec![kid_a.clone()]);

    // No keys at all (every file deleted) is rejected too.
    k8s_publish(&e.keys(), 3, &[]);
    assert_eq!(
        svc.reload_config().signing_keys,
        ReloadOutcome::Rejected(format!(
            "signing key directory {} holds no key files (names starting with '.' are \
             skipped); add a PEM private key, e.g. one written by `confkube attest keygen`",
            e.keys().display()
        ))
    );
    assert_eq!(active_kid(&svc).await, kid_a);

    // Fixed: the new key applies and the stale flag clears.
    k8s_publish(&e.keys(), 4, &[("a.pem", &pem_a), ("b.pem", &pem_b)]);
    assert_eq!(svc.reload_config().signing_keys, ReloadOutcome::Applied);
    assert_eq!(active_kid(&svc).await, kid_b);
    let m = metrics(&svc).await;
    assert!(m.contains(&reloads("signing-keys", "error", 2)), "{m}");
    assert!(m.contains(&reloads("signing-keys", "ok", 1)), "{m}");
    assert!(m.contains(&stale("signing-keys", 0)), "{m}");
}

#[tokio::test]
async fn active_signing_key_flag_and_startup_errors() {
    let e = Env::new("startup");
    let (pem_a, kid_a) = generate_pem(SigningAlg::ES256).unwrap();
    let (pem_b, _) = generate_pem(SigningAlg::ES256).unwrap();
    k8s_publish(&e.keys(), 1, &[("a.pem", &pem_a), ("b.pem", &pem_b)]);
    let svc = e
        .service(e.config(true, Some("a.pem"), false), None)
        .unwrap();
    assert_eq!(active_kid(&svc).await, kid_a);
    let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
    assert_eq!(jwks_kids(&jwks).len(), 2);

    let err = |cfg| e.service(cfg, None).unwrap_err().to_string();
    assert_eq!(
        err(e.config(true, Some("c.pem"), false)),
        format!(
            "--active-signing-key c.pem: no key file of that name in {} (found: a.pem, b.pem)",
            e.keys().display()
        )
    );
    k8s_publish(&e.keys(), 2, &[("a.pem", "not a key")]);
    assert_eq!(
        err(e.config(true, None, false)),
        format!(
            "signing key file {}: {NO_KEY}",
            e.keys().join("a.pem").display()
        )
    );
    k8s_publish(&e.keys(), 3, &[]);
    assert_eq!(
        err(e.config(true, None, false)),
        format!(
            "signing key directory {} holds no key files (names starting with '.' are \
             skipped); add a PEM private key, e.g. one written by `confkube attest keygen`",
            e.keys().display()
        )
    );
    assert_eq!(
        err(e.config(false, None, true)),
        format!(
            "policy file {}: cannot read: No such file or directory (os error 2)",
            e.policy_file().display()
        )
    );
    std::fs::write(
        e.policy_file(),
        r#"{"rules": [{"name": "a", "tcb_statuses": ["Fine"]}]}"#,
    )
    .unwrap();
    assert_eq!(
        err(e.config(false, None, true)),
        format!(
            "policy file {}: invalid policy: rule \"a\": unknown TCB status \"Fine\"",
            e.policy_file().display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_in_the_maa_language_is_detected_and_hot_reloaded() {
    let e = Env::new("maapolicy");
    let (pem_a, _) = generate_pem(SigningAlg::ES256).unwrap();
    k8s_publish(&e.keys(), 1, &[("k.pem", &pem_a)]);
    let maa = "version=1.0;\nauthorizationrules { [type==\"x-ms-sgx-is-debuggable\", value==false] => permit(); };\nissuancerules { => issue(type=\"generation\", value=1); };\n";
    k8s_publish(
        e.policy_file().parent().unwrap(),
        1,
        &[("policy.json", maa)],
    );
    let svc = e.service(e.config(true, None, true), None).unwrap();
    let watcher = tokio::spawn(attest::reload::watch(
        svc.clone(),
        Duration::from_millis(50),
    ));
    let body = e.attest_body();
    let (_, jwks) = call(&svc, "GET", "/certs", None, false).await;
    let claims = verify(&token(&svc, &body).await, &jwks).unwrap();
    assert_eq!(claims["generation"], 1);
    assert_eq!(claims["x-confkube-policy-rule"], "line 2");
    let (_, v) = call(&svc, "GET", "/policies/SgxEnclave", None, true).await;
    assert_eq!(
        (v["language"].as_str(), v["policy"].as_str()),
        (Some("maa"), Some(maa))
    );

    // A broken MAA version is rejected (logged, counted) and the last good one kept.
    k8s_publish(
        e.policy_file().parent().unwrap(),
        2,
        &[(
            "policy.json",
            "version=1.0;\nauthorizationrules { => permit() ",
        )],
    );
    wait_metric(&svc, reloads("policy", "error", 1)).await;
    let claims = verify(&token(&svc, &body).await, &jwks).unwrap();
    assert_eq!(claims["generation"], 1);
    assert_eq!(
        svc.reload_config().policy,
        ReloadOutcome::Unchanged,
        "the same bad file is not re-parsed"
    );

    // Switch to confkube JSON, then back to MAA with a denial: both detected.
    let any = json!({"rules": [{"name": "any"}]}).to_string();
    k8s_publish(
        e.policy_file().parent().unwrap(),
        3,
        &[("policy.json", &any)],
    );
    wait_until("the JSON policy", || {
        let svc = svc.clone();
        async move {
            call(&svc, "GET", "/policies/SgxEnclave", None, true)
                .await
                .1["language"]
                == "confkube-json"
        }
    })
    .await;
    let deny = "version=1.2; authorizationrules { ![type==\"x-ms-sgx-svn\", value>=50] => deny(); => permit(); };";
    k8s_publish(
        e.policy_file().parent().unwrap(),
        4,
        &[("policy.json", deny)],
    );
    wait_until("the denying MAA policy", || {
        let svc = svc.clone();
        async move {
            call(&svc, "GET", "/policies/SgxEnclave", None, true)
                .await
                .1["policy"]
                == deny
        }
    })
    .await;
    let (st, v) = call(&svc, "POST", ATTEST, Some(body.clone()), false).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "policy-denied");
    assert_eq!(
        v["detail"],
        "denied by policy: denied by the authorization rule at line 1, column 35: \
         ![type==\"x-ms-sgx-svn\", value>=50] => deny()"
    );
    watcher.abort();
}
