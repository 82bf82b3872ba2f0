//! certgen against a local HTTP stand-in of the API server that serves Secrets (GET, POST,
//! PUT with resourceVersion checks) and Mutating/ValidatingWebhookConfigurations (GET, and
//! PATCH with RFC 6902 JSON patches, `test` ops included), can be told to answer 403, and
//! records every request. The client is the real kube client, configured by a kubeconfig file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use k8s_openapi::ByteString;
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use webhook::certgen::cluster::{
    CertgenError, CertgenOptions, Outcome, SecretAction, WebhookKind, WebhookPatched,
    WebhookSkipped, client, run,
};
use webhook::certgen::{Decision, Reason, ServiceName, decide, issue};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const SECRET_PATH: &str = "/api/v1/namespaces/confkube/secrets/confkube-webhook";
const SECRETS_PATH: &str = "/api/v1/namespaces/confkube/secrets";
const MUTATING_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/confkube-sgx";
const VALIDATING_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/confkube-sgx";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
}

fn req(method: &str, path: &str) -> Request {
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
    }
}

#[derive(Default)]
struct State {
    /// Objects by path.
    objects: BTreeMap<String, Value>,
    /// (method, path) answered with 403.
    forbidden: Vec<(String, String)>,
    requests: Vec<Request>,
    version: u64,
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn describe(path: &str) -> (&'static str, &str) {
    let name = path.rsplit('/').next().unwrap_or("");
    let resource = if path.contains("/secrets") {
        "secrets"
    } else if path.contains("mutatingwebhookconfigurations") {
        "mutatingwebhookconfigurations.admissionregistration.k8s.io"
    } else {
        "validatingwebhookconfigurations.admissionregistration.k8s.io"
    };
    (resource, name)
}

fn handle(state: &Mutex<State>, method: &str, path: &str, ct: &str, body: &[u8]) -> (u16, Value) {
    let mut st = state.lock().unwrap();
    st.requests.push(req(method, path));
    if st.forbidden.iter().any(|(m, p)| m == method && p == path) {
        let verb = match method {
            "GET" => "get",
            "POST" => "create",
            "PUT" => "update",
            _ => "patch",
        };
        let (resource, name) = describe(path);
        let scope = if resource == "secrets" {
            " in the namespace \"confkube\""
        } else {
            " at the cluster scope"
        };
        let (res, group) = resource.split_once('.').unwrap_or((resource, ""));
        return status(
            403,
            "Forbidden",
            &format!(
                "{resource} \"{name}\" is forbidden: User \"system:serviceaccount:confkube:certgen\" \
                 cannot {verb} resource \"{res}\" in API group \"{group}\"{scope}"
            ),
        );
    }
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match method {
        "GET" => match st.objects.get(path) {
            Some(obj) => (200, obj.clone()),
            None => {
                let (resource, name) = describe(path);
                status(404, "NotFound", &format!("{resource} \"{name}\" not found"))
            }
        },
        "POST" if path == SECRETS_PATH => {
            let name = parsed["metadata"]["name"].as_str().unwrap_or("").to_owned();
            let key = format!("{SECRETS_PATH}/{name}");
            if st.objects.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("secrets \"{name}\" already exists"),
                );
            }
            st.version += 1;
            let mut obj = parsed;
            obj["metadata"]["resourceVersion"] = json!(st.version.to_string());
            st.objects.insert(key, obj.clone());
            (201, obj)
        }
        "PUT" => {
            let Some(current) = st.objects.get(path) else {
                return status(404, "NotFound", "not found");
            };
            if parsed["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return status(409, "Conflict", "the object has been modified");
            }
            if parsed["type"] != current["type"] {
                return status(422, "Invalid", "type: Invalid value: field is immutable");
            }
            st.version += 1;
            let mut obj = parsed;
            obj["metadata"]["resourceVersion"] = json!(st.version.to_string());
            st.objects.insert(path.to_owned(), obj.clone());
            (200, obj)
        }
        "PATCH" => {
            if ct != "application/json-patch+json" {
                return status(415, "UnsupportedMediaType", ct);
            }
            let Some(current) = st.objects.get(path).cloned() else {
                return status(404, "NotFound", "not found");
            };
            let patch: json_patch::Patch = match serde_json::from_value(parsed) {
                Ok(p) => p,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let mut obj = current;
            if let Err(e) = json_patch::patch(&mut obj, &patch) {
                return status(422, "Invalid", &e.to_string());
            }
            st.version += 1;
            obj["metadata"]["resourceVersion"] = json!(st.version.to_string());
            st.objects.insert(path.to_owned(), obj.clone());
            (200, obj)
        }
        _ => status(405, "MethodNotAllowed", method),
    }
}

struct ApiServer {
    state: Arc<Mutex<State>>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    async fn start(tag: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |r: hyper::Request<hyper::body::Incoming>| {
                            let st = st.clone();
                            async move {
                                let method = r.method().to_string();
                                let path = r.uri().path().to_owned();
                                let ct = r
                                    .headers()
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned();
                                let body = r.into_body().collect().await.unwrap().to_bytes();
                                let (code, value) = handle(&st, &method, &path, &ct, &body);
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(code)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(value.to_string())))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let dir = tempfile::Builder::new()
            .prefix(&format!("webhook-certgen-{tag}-"))
            .tempdir()
            .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: http://{addr}\n\
                 users:\n- name: certgen\n  user: {{}}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: certgen\n\
                 current-context: standin\n"
            ),
        )
        .unwrap();
        Self {
            state,
            kubeconfig,
            dir,
            task,
        }
    }

    fn put(&self, path: &str, obj: Value) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(path.to_owned(), obj);
    }

    fn get(&self, path: &str) -> Value {
        self.state.lock().unwrap().objects[path].clone()
    }

    fn forbid(&self, method: &str, path: &str) {
        self.state
            .lock()
            .unwrap()
            .forbidden
            .push((method.to_owned(), path.to_owned()));
    }

    fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut self.state.lock().unwrap().requests)
    }

    async fn run(
        &self,
        opts: &CertgenOptions,
        now: OffsetDateTime,
    ) -> Result<Outcome, CertgenError> {
        let client = client(Some(&self.kubeconfig)).await.unwrap();
        run(&client, opts, now).await
    }
}

fn service() -> ServiceName {
    ServiceName::new("confkube", "confkube-webhook", "cluster.local")
}

fn options() -> CertgenOptions {
    CertgenOptions::new(service(), "confkube-webhook")
        .with_mutating_webhooks(vec!["confkube-sgx".to_owned()])
        .with_validating_webhooks(vec!["confkube-sgx".to_owned()])
}

fn mutating() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "confkube-sgx", "resourceVersion": "100"},
        "webhooks": [
            {"name": "other.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
             "clientConfig": {"service": {"namespace": "other", "name": "hook"}, "caBundle": "eA=="}},
            {"name": "mutate.sgx.confkube.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
             "failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded",
             "clientConfig": {"service": {"namespace": "confkube", "name": "confkube-webhook",
                                          "path": "/mutate-pods", "port": 443}}}
        ]
    })
}

fn validating() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "confkube-sgx", "resourceVersion": "101"},
        "webhooks": [
            {"name": "validate.sgx.confkube.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
             "failurePolicy": "Ignore",
             "clientConfig": {"service": {"namespace": "confkube", "name": "confkube-webhook",
                                          "path": "/validate-pods", "port": 443}}}
        ]
    })
}

fn secret_data(secret: &Value) -> BTreeMap<String, ByteString> {
    serde_json::from_value(secret["data"].clone()).unwrap()
}

fn decoded(secret: &Value, key: &str) -> Vec<u8> {
    STANDARD
        .decode(secret["data"][key].as_str().unwrap())
        .unwrap()
}

fn patched(kind: WebhookKind, changed: usize) -> WebhookPatched {
    WebhookPatched {
        kind,
        name: "confkube-sgx".to_owned(),
        matched: 1,
        changed,
    }
}

#[tokio::test]
async fn first_run_creates_the_secret_and_patches_both_configurations() {
    let api = ApiServer::start("first").await;
    api.put(MUTATING_PATH, mutating());
    api.put(VALIDATING_PATH, validating());

    let outcome = api.run(&options(), NOW).await.unwrap();
    assert_eq!(
        outcome,
        Outcome {
            secret: SecretAction::Created,
            webhooks: vec![
                patched(WebhookKind::Mutating, 1),
                patched(WebhookKind::Validating, 1)
            ],
            skipped: vec![],
        }
    );
    // The configurations are read, then patched, then the Secret is written.
    assert_eq!(
        api.take_requests(),
        [
            req("GET", SECRET_PATH),
            req("GET", MUTATING_PATH),
            req("GET", VALIDATING_PATH),
            req("PATCH", MUTATING_PATH),
            req("PATCH", VALIDATING_PATH),
            req("POST", SECRETS_PATH),
        ]
    );

    let secret = api.get(SECRET_PATH);
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(
        secret["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "confkube-certgen"})
    );
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(
        decide(
            Some(&secret_data(&secret)),
            &service(),
            Duration::days(30),
            NOW
        ),
        Decision::Reuse {
            expires: datetime!(2036-02-27 12:00 UTC)
        }
    );

    // caBundle = base64(ca.crt) on the entries that call the Service, nothing else changed.
    let ca_b64 = STANDARD.encode(decoded(&secret, "ca.crt"));
    let mut want = mutating();
    want["webhooks"][1]["clientConfig"]["caBundle"] = json!(ca_b64);
    let mut got = api.get(MUTATING_PATH);
    got["metadata"]["resourceVersion"] = json!("100");
    assert_eq!(got, want);
    let mut want = validating();
    want["webhooks"][0]["clientConfig"]["caBundle"] = json!(ca_b64);
    let mut got = api.get(VALIDATING_PATH);
    got["metadata"]["resourceVersion"] = json!("101");
    assert_eq!(got, want);

    // The webhook server serves the pair.
    std::fs::write(api.dir.path().join("tls.crt"), decoded(&secret, "tls.crt")).unwrap();
    std::fs::write(api.dir.path().join("tls.key"), decoded(&secret, "tls.key")).unwrap();
    let files = webhook::CertFiles {
        cert: api.dir.path().join("tls.crt"),
        key: api.dir.path().join("tls.key"),
    };
    webhook::ReloadingCert::load(files, webhook::tls_reload::default_provider()).unwrap();
}

#[tokio::test]
async fn second_run_changes_nothing() {
    let api = ApiServer::start("second").await;
    api.put(MUTATING_PATH, mutating());
    api.put(VALIDATING_PATH, validating());
    api.run(&options(), NOW).await.unwrap();
    let before = api.state.lock().unwrap().objects.clone();
    api.take_requests();

    let outcome = api.run(&options(), NOW + Duration::days(1)).await.unwrap();
    assert_eq!(
        outcome,
        Outcome {
            secret: SecretAction::Reused {
                expires: datetime!(2036-02-27 12:00 UTC)
            },
            webhooks: vec![
                patched(WebhookKind::Mutating, 0),
                patched(WebhookKind::Validating, 0)
            ],
            skipped: vec![],
        }
    );
    assert_eq!(
        api.take_requests(),
        [
            req("GET", SECRET_PATH),
            req("GET", MUTATING_PATH),
            req("GET", VALIDATING_PATH),
        ],
        "no writes"
    );
    assert_eq!(api.state.lock().unwrap().objects, before);
}

/// Puts a Secret whose certificate was issued 50 days before `NOW` for 60 days: 10 days left,
/// inside the 30-day renewal window. Returns what it holds.
fn put_expiring_secret(api: &ApiServer) -> webhook::certgen::Issued {
    let old = issue(
        &service(),
        Duration::days(60),
        NOW - Duration::days(50),
        None,
    )
    .unwrap();
    api.put(
        SECRET_PATH,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "confkube-webhook", "namespace": "confkube",
                            "resourceVersion": "5", "labels": {"team": "sgx"}},
               "type": "kubernetes.io/tls",
               "data": {"ca.crt": STANDARD.encode(&old.ca_pem),
                        "tls.crt": STANDARD.encode(&old.cert_pem),
                        "tls.key": STANDARD.encode(&old.key_pem)}}),
    );
    old
}

fn ca_bundle(api: &ApiServer, path: &str, entry: usize) -> String {
    let b64 = api.get(path)["webhooks"][entry]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap()
        .to_owned();
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

fn pem_blocks(pem: &str) -> Vec<String> {
    pem.split_inclusive("-----END CERTIFICATE-----\n")
        .map(str::to_owned)
        .collect()
}

fn tls_data(ca: &str, cert: &str, key: &str) -> BTreeMap<String, ByteString> {
    [("ca.crt", ca), ("tls.crt", cert), ("tls.key", key)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

#[tokio::test]
async fn renews_an_expiring_certificate_and_keeps_the_old_ca_in_the_bundle() {
    let api = ApiServer::start("renew").await;
    api.put(MUTATING_PATH, mutating());
    api.put(VALIDATING_PATH, validating());
    let old = put_expiring_secret(&api);

    let outcome = api.run(&options(), NOW).await.unwrap();
    assert_eq!(
        outcome.secret,
        SecretAction::Replaced(Reason::Expiring {
            key: "tls.crt",
            not_after: datetime!(2026-03-11 12:00 UTC),
            renew_before_days: 30
        })
    );
    let secret = api.get(SECRET_PATH);
    assert_eq!(
        secret["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "confkube-certgen", "team": "sgx"})
    );
    let ca = String::from_utf8(decoded(&secret, "ca.crt")).unwrap();
    assert_eq!(ca.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(ca.ends_with(&old.ca_pem));
    assert_ne!(decoded(&secret, "tls.crt"), old.cert_pem.as_bytes());
    let bundle = api.get(VALIDATING_PATH)["webhooks"][0]["clientConfig"]["caBundle"].clone();
    assert_eq!(bundle, json!(STANDARD.encode(&ca)));
}

#[tokio::test]
async fn upgrade_renewal_patches_ca_bundle_before_replacing_the_secret() {
    // The chart's pre-upgrade Job: both webhook flags and --skip-missing-webhooks, both
    // configurations present from the previous release, the certificate due for renewal.
    let api = ApiServer::start("upgrade").await;
    api.put(MUTATING_PATH, mutating());
    api.put(VALIDATING_PATH, validating());
    let old = put_expiring_secret(&api);

    let opts = options().with_skip_missing_webhooks(true);
    let outcome = api.run(&opts, NOW).await.unwrap();
    assert_eq!(
        outcome,
        Outcome {
            secret: SecretAction::Replaced(Reason::Expiring {
                key: "tls.crt",
                not_after: datetime!(2026-03-11 12:00 UTC),
                renew_before_days: 30
            }),
            webhooks: vec![
                patched(WebhookKind::Mutating, 1),
                patched(WebhookKind::Validating, 1)
            ],
            skipped: vec![],
        }
    );
    // Both caBundle patches go out before the Secret the webhook reloads from is replaced.
    assert_eq!(
        api.take_requests(),
        [
            req("GET", SECRET_PATH),
            req("GET", MUTATING_PATH),
            req("GET", VALIDATING_PATH),
            req("PATCH", MUTATING_PATH),
            req("PATCH", VALIDATING_PATH),
            req("PUT", SECRET_PATH),
        ]
    );

    let secret = api.get(SECRET_PATH);
    let new_ca = String::from_utf8(decoded(&secret, "ca.crt")).unwrap();
    let new_cert = String::from_utf8(decoded(&secret, "tls.crt")).unwrap();
    let new_key = String::from_utf8(decoded(&secret, "tls.key")).unwrap();
    for (path, entry) in [(MUTATING_PATH, 1), (VALIDATING_PATH, 0)] {
        let bundle = ca_bundle(&api, path, entry);
        // The new CA first, the old one after it: the bundle is the new ca.crt.
        assert_eq!(bundle, new_ca, "{path}");
        let blocks = pem_blocks(&bundle);
        assert_eq!(blocks.len(), 2, "{path}");
        assert_ne!(blocks[0], old.ca_pem, "{path}");
        assert_eq!(blocks[1], old.ca_pem, "{path}");
        // It verifies both the certificate served until the webhook reloads and the new one.
        assert_eq!(
            decide(
                Some(&tls_data(&bundle, &old.cert_pem, &old.key_pem)),
                &service(),
                Duration::ZERO,
                NOW
            ),
            Decision::Reuse {
                expires: datetime!(2026-03-11 12:00 UTC)
            },
            "{path}: old certificate"
        );
        assert_eq!(
            decide(
                Some(&tls_data(&bundle, &new_cert, &new_key)),
                &service(),
                Duration::days(30),
                NOW
            ),
            Decision::Reuse {
                expires: datetime!(2036-02-27 12:00 UTC)
            },
            "{path}: new certificate"
        );
    }
}

#[tokio::test]
async fn pre_install_run_skips_missing_configurations_and_creates_the_secret() {
    // The chart's pre-install Job: the configurations do not exist yet.
    let api = ApiServer::start("preinstall").await;
    let opts = options().with_skip_missing_webhooks(true);
    let outcome = api.run(&opts, NOW).await.unwrap();
    assert_eq!(
        outcome,
        Outcome {
            secret: SecretAction::Created,
            webhooks: vec![],
            skipped: vec![
                WebhookSkipped {
                    kind: WebhookKind::Mutating,
                    name: "confkube-sgx".to_owned()
                },
                WebhookSkipped {
                    kind: WebhookKind::Validating,
                    name: "confkube-sgx".to_owned()
                },
            ],
        }
    );
    let lines: Vec<String> = outcome.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "mutatingwebhookconfiguration confkube-sgx does not exist yet; skipped \
             (--skip-missing-webhooks)",
            "validatingwebhookconfiguration confkube-sgx does not exist yet; skipped \
             (--skip-missing-webhooks)",
        ]
    );
    assert_eq!(
        api.take_requests(),
        [
            req("GET", SECRET_PATH),
            req("GET", MUTATING_PATH),
            req("GET", VALIDATING_PATH),
            req("POST", SECRETS_PATH),
        ]
    );
    let secret = api.get(SECRET_PATH);
    assert_eq!(
        decide(
            Some(&secret_data(&secret)),
            &service(),
            Duration::days(30),
            NOW
        ),
        Decision::Reuse {
            expires: datetime!(2036-02-27 12:00 UTC)
        }
    );

    // The post-install Job, once the chart has created the configurations: reuses the Secret
    // and patches both.
    api.put(MUTATING_PATH, mutating());
    api.put(VALIDATING_PATH, validating());
    let outcome = api.run(&options(), NOW).await.unwrap();
    assert_eq!(
        outcome.webhooks,
        [
            patched(WebhookKind::Mutating, 1),
            patched(WebhookKind::Validating, 1)
        ]
    );
    assert_eq!(
        ca_bundle(&api, VALIDATING_PATH, 0).as_bytes(),
        decoded(&secret, "ca.crt")
    );
}

#[tokio::test]
async fn skip_missing_webhooks_still_patches_the_configurations_that_exist() {
    let api = ApiServer::start("skip-one").await;
    api.put(MUTATING_PATH, mutating());
    let opts = options().with_skip_missing_webhooks(true);
    let outcome = api.run(&opts, NOW).await.unwrap();
    assert_eq!(
        outcome,
        Outcome {
            secret: SecretAction::Created,
            webhooks: vec![patched(WebhookKind::Mutating, 1)],
            skipped: vec![WebhookSkipped {
                kind: WebhookKind::Validating,
                name: "confkube-sgx".to_owned()
            }],
        }
    );
    assert_eq!(
        api.take_requests(),
        [
            req("GET", SECRET_PATH),
            req("GET", MUTATING_PATH),
            req("GET", VALIDATING_PATH),
            req("PATCH", MUTATING_PATH),
            req("POST", SECRETS_PATH),
        ]
    );
}

#[tokio::test]
async fn secret_write_failing_after_the_patch_leaves_the_old_ca_trusted() {
    let api = ApiServer::start("put-fails").await;
    api.put(MUTATING_PATH, mutating());
    api.put(VALIDATING_PATH, validating());
    let old = put_expiring_secret(&api);
    api.forbid("PUT", SECRET_PATH);

    let err = api.run(&options(), NOW).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret confkube/confkube-webhook: update: forbidden: secrets \"confkube-webhook\" is \
         forbidden: User \"system:serviceaccount:confkube:certgen\" cannot update resource \
         \"secrets\" in API group \"\" in the namespace \"confkube\"; the service account needs \
         update on secrets in namespace confkube; see \"Certificates\" in docs/webhook.md"
    );
    assert_eq!(api.take_requests().last(), Some(&req("PUT", SECRET_PATH)));
    // The webhook still serves the old certificate, and the patched bundle still trusts it.
    assert_eq!(
        decoded(&api.get(SECRET_PATH), "tls.crt"),
        old.cert_pem.as_bytes()
    );
    for (path, entry) in [(MUTATING_PATH, 1), (VALIDATING_PATH, 0)] {
        let bundle = ca_bundle(&api, path, entry);
        assert_eq!(pem_blocks(&bundle).len(), 2, "{path}");
        assert!(bundle.ends_with(&old.ca_pem), "{path}");
        assert_eq!(
            decide(
                Some(&tls_data(&bundle, &old.cert_pem, &old.key_pem)),
                &service(),
                Duration::ZERO,
                NOW
            ),
            Decision::Reuse {
                expires: datetime!(2026-03-11 12:00 UTC)
            },
            "{path}"
        );
    }
}

#[tokio::test]
async fn missing_webhook_configuration_is_an_error() {
    let api = ApiServer::start("missing").await;
    api.put(MUTATING_PATH, mutating());
    let err = api.run(&options(), NOW).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "validatingwebhookconfiguration confkube-sgx not found; create it before running certgen \
         (run certgen as a post-install and post-upgrade hook), or drop --validating-webhook \
         confkube-sgx"
    );
    assert!(!err.is_usage());
    // Every configuration is read before anything is written: nothing was written.
    assert_eq!(
        api.take_requests(),
        [
            req("GET", SECRET_PATH),
            req("GET", MUTATING_PATH),
            req("GET", VALIDATING_PATH),
        ]
    );
    assert_eq!(api.get(MUTATING_PATH), mutating());
    assert!(!api.state.lock().unwrap().objects.contains_key(SECRET_PATH));
}

#[tokio::test]
async fn forbidden_secret_is_an_error_naming_the_rbac() {
    let api = ApiServer::start("forbidden-secret").await;
    api.forbid("GET", SECRET_PATH);
    let err = api.run(&options(), NOW).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret confkube/confkube-webhook: get: forbidden: secrets \"confkube-webhook\" is \
         forbidden: User \"system:serviceaccount:confkube:certgen\" cannot get resource \
         \"secrets\" in API group \"\" in the namespace \"confkube\"; the service account needs \
         get on secrets in namespace confkube; see \"Certificates\" in docs/webhook.md"
    );
    assert!(!err.is_usage());
    assert_eq!(api.take_requests(), [req("GET", SECRET_PATH)]);
}

#[tokio::test]
async fn forbidden_patch_is_an_error_naming_the_rbac() {
    let api = ApiServer::start("forbidden-patch").await;
    api.put(MUTATING_PATH, mutating());
    api.put(VALIDATING_PATH, validating());
    api.forbid("PATCH", MUTATING_PATH);
    let err = api.run(&options(), NOW).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "mutatingwebhookconfiguration confkube-sgx: patch: forbidden: \
         mutatingwebhookconfigurations.admissionregistration.k8s.io \"confkube-sgx\" is \
         forbidden: User \"system:serviceaccount:confkube:certgen\" cannot patch resource \
         \"mutatingwebhookconfigurations\" in API group \"admissionregistration.k8s.io\" at the \
         cluster scope; the service account needs patch on mutatingwebhookconfigurations \
         (resourceNames: confkube-sgx); see \"Certificates\" in docs/webhook.md"
    );
    // The Secret is written only after the configurations are patched: it was not.
    assert_eq!(
        api.take_requests(),
        [
            req("GET", SECRET_PATH),
            req("GET", MUTATING_PATH),
            req("GET", VALIDATING_PATH),
            req("PATCH", MUTATING_PATH),
        ]
    );
}

#[tokio::test]
async fn configuration_without_a_webhook_for_the_service_is_an_error() {
    let api = ApiServer::start("unmatched").await;
    let mut config = mutating();
    config["webhooks"][1]["clientConfig"]["service"]["name"] = json!("webhook");
    api.put(MUTATING_PATH, config);
    let opts = CertgenOptions::new(service(), "confkube-webhook")
        .with_mutating_webhooks(vec!["confkube-sgx".to_owned()]);
    let err = api.run(&opts, NOW).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "mutatingwebhookconfiguration confkube-sgx: no webhook calls service \
         confkube/confkube-webhook (its webhooks call: other.example.com → other/hook, \
         mutate.sgx.confkube.io → confkube/webhook); check --namespace and --service"
    );
    assert_eq!(
        api.take_requests().last(),
        Some(&req("GET", MUTATING_PATH)),
        "nothing patched"
    );
}

#[tokio::test]
async fn secret_of_another_type_is_an_error() {
    let api = ApiServer::start("opaque").await;
    api.put(
        SECRET_PATH,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "confkube-webhook", "namespace": "confkube", "resourceVersion": "3"},
               "type": "Opaque", "data": {"password": "eA=="}}),
    );
    let err = api.run(&options(), NOW).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret confkube/confkube-webhook has type Opaque, not kubernetes.io/tls, and a Secret's \
         type cannot change; delete it (kubectl -n confkube delete secret confkube-webhook) or \
         pass another --secret"
    );
    assert_eq!(api.take_requests(), [req("GET", SECRET_PATH)]);
}

#[tokio::test]
async fn unreadable_kubeconfig_is_a_usage_error() {
    let err = client(Some(std::path::Path::new("/nonexistent/kubeconfig")))
        .await
        .err()
        .unwrap();
    assert!(err.is_usage());
    // The message names what failed and exposes the cause as its source, never both.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        assert!(!text.contains(&s.to_string()), "{text} repeats {s}");
        text = format!("{text}: {s}");
        source = s.source();
    }
    assert_eq!(
        text,
        "Kubernetes client configuration: cannot read --kubeconfig /nonexistent/kubeconfig: No \
         such file or directory (os error 2)"
    );
}
