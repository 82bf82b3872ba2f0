//! `confkube webhook` as a process: the serve flags still parse next to the `certgen`
//! subcommand, and `confkube webhook certgen` against a small stand-in API server (plain
//! HTTP/1.1 on 127.0.0.1, one request per connection) for exit codes and messages. The
//! request-by-request behaviour is tested in crates/webhook/tests/certgen.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const SECRET: &str = "/api/v1/namespaces/confkube/secrets/confkube-webhook";
const SECRETS: &str = "/api/v1/namespaces/confkube/secrets";
const MUTATING: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/confkube-sgx";
const VALIDATING: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/confkube-sgx";

fn confkube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-webhook-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

type Handler = dyn Fn(&str, &str, &[u8]) -> (u16, Value) + Send + Sync;
type Log = Arc<Mutex<Vec<(String, String)>>>;

/// A stand-in API server: each connection carries one request, answered by `handler` with
/// `Connection: close`. Returns the kubeconfig pointing at it and the (method, path) log.
fn standin(name: &str, handler: Arc<Handler>) -> (PathBuf, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let requests = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_owned();
            let target = parts.next().unwrap_or("");
            let path = target.split('?').next().unwrap_or("").to_owned();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            requests
                .lock()
                .unwrap()
                .push((method.clone(), path.clone()));
            let (code, value) = handler(&method, &path, &body);
            let body = value.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tmpdir(name);
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: certgen\n  user: {{}}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: certgen\n\
             current-context: standin\n"
        ),
    )
    .unwrap();
    (kubeconfig, log)
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn certgen_args<'a>(kubeconfig: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "webhook",
        "certgen",
        "--namespace",
        "confkube",
        "--service",
        "confkube-webhook",
        "--secret",
        "confkube-webhook",
        "--kubeconfig",
        kubeconfig,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn webhook_help_lists_certgen_and_the_serve_flags() {
    let out = confkube(&["webhook", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains(
            "Usage: confkube webhook [OPTIONS] --tls-cert <FILE> --tls-key <FILE>\n       \
             confkube webhook <COMMAND>\n"
        ),
        "{help}"
    );
    assert!(
        help.contains("\n  certgen  Create or renew the webhook's self-signed serving certificate"),
        "{help}"
    );
    for flag in [
        "--listen <ADDR:PORT>",
        "--tls-cert <FILE>",
        "--tls-key <FILE>",
        "--config-reload-interval <DURATION>",
        "--tolerate <KEY[=VALUE][:EFFECT]>",
        "--node-label <KEY=VALUE>",
        "--max-epc-per-pod <QUANTITY>",
        "--body-limit <BYTES>",
        "--header-timeout <DURATION>",
        "--idle-timeout <DURATION>",
        "--tls-handshake-timeout <DURATION>",
        "--body-timeout <DURATION>",
        "--max-connections <N>",
        "--passthrough",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
    let out = confkube(&["webhook", "certgen", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "--namespace <NS>",
        "--service <SVC>",
        "--secret <NAME>",
        "--mutating-webhook <NAME>",
        "--validating-webhook <NAME>",
        "--skip-missing-webhooks",
        "--kubeconfig <FILE>",
        "--validity-days <N>",
        "--renew-before-days <N>",
        "--cluster-domain <DOMAIN>",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
}

#[test]
fn serve_flags_still_parse() {
    // Every serve flag is accepted; the run stops at loading the (missing) certificate.
    let out = confkube(&[
        "webhook",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent/tls.crt",
        "--tls-key",
        "/nonexistent/tls.key",
        "--tls-reload-interval",
        "5",
        "--tolerate",
        "sgx.intel.com/epc:NoSchedule",
        "--node-label",
        "sgx.intel.com/capable=true",
        "--max-epc-per-pod",
        "64Mi",
        "--max-body-bytes",
        "1048576",
        "--passthrough",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: cannot load the serving certificate: cannot read \
         /nonexistent/tls.crt: No such file or directory (os error 2); check the \
         --tls-cert/--tls-key path\n"
    );
    // The certificate flags are still required without a subcommand.
    let out = confkube(&["webhook", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(
            "error: the following required arguments were not provided:\n  --tls-cert <FILE>\n  \
             --tls-key <FILE>\n"
        ),
        "{err}"
    );
    // And cannot be mixed with certgen.
    let out = confkube(&[
        "webhook",
        "--tls-cert",
        "a",
        "certgen",
        "--namespace",
        "a",
        "--service",
        "b",
        "--secret",
        "c",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: the subcommand 'certgen' cannot be used with '--tls-cert <FILE>'"),
        "{err}"
    );
}

#[test]
fn certgen_usage_errors_exit_2() {
    let out = confkube(&certgen_args(
        "/nonexistent/kubeconfig",
        &["--validity-days", "30", "--renew-before-days", "30"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: --renew-before-days 30 must be less than --validity-days 30, \
         or every run would replace the certificate\n"
    );
    let out = confkube(&certgen_args(
        "/nonexistent/kubeconfig",
        &["--log-level", "off"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: Kubernetes client configuration: cannot read --kubeconfig \
         /nonexistent/kubeconfig: No such file or directory (os error 2)\n"
    );
    let out = confkube(&[
        "webhook",
        "certgen",
        "--namespace",
        "Confkube",
        "--service",
        "s",
        "--secret",
        "s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "error: invalid value 'Confkube' for '--namespace <NS>': \"Confkube\" is not a DNS \
             label"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn certgen_forbidden_exits_1_with_the_cause() {
    let handler: Arc<Handler> = Arc::new(|_, _, _| {
        status(
            403,
            "Forbidden",
            "secrets \"confkube-webhook\" is forbidden: User \"system:serviceaccount:confkube:default\" \
             cannot get resource \"secrets\" in API group \"\" in the namespace \"confkube\"",
        )
    });
    let (kubeconfig, log) = standin("forbidden", handler);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let out = confkube(&certgen_args(kubeconfig, &["--log-level", "off"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: secret confkube/confkube-webhook: get: forbidden: secrets \
         \"confkube-webhook\" is forbidden: User \"system:serviceaccount:confkube:default\" \
         cannot get resource \"secrets\" in API group \"\" in the namespace \"confkube\"; the \
         service account needs get on secrets in namespace confkube; see \"Certificates\" in \
         docs/webhook.md\n"
    );
    assert_eq!(
        *log.lock().unwrap(),
        [("GET".to_owned(), SECRET.to_owned())]
    );
}

/// Applies the `add` operations of a JSON patch (the only kind certgen sends besides `test`).
fn apply_adds(target: &mut Value, ops: &Value) {
    for op in ops.as_array().unwrap() {
        if op["op"] != "add" {
            continue;
        }
        let path = op["path"].as_str().unwrap();
        let (parent, key) = path.rsplit_once('/').unwrap();
        target.pointer_mut(parent).unwrap()[key] = op["value"].clone();
    }
}

#[test]
fn certgen_creates_then_reuses() {
    let state = Arc::new(Mutex::new((
        None::<Value>,
        json!({"apiVersion": "admissionregistration.k8s.io/v1",
               "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "confkube-sgx"},
               "webhooks": [{"name": "mutate.sgx.confkube.io", "admissionReviewVersions": ["v1"],
                             "sideEffects": "None",
                             "clientConfig": {"service": {"namespace": "confkube",
                                                          "name": "confkube-webhook"}}}]}),
    )));
    let st = state.clone();
    let handler: Arc<Handler> = Arc::new(move |method, path, body| {
        let mut st = st.lock().unwrap();
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (method, path) {
            ("GET", SECRET) => match &st.0 {
                Some(s) => (200, s.clone()),
                None => status(404, "NotFound", "secrets \"confkube-webhook\" not found"),
            },
            ("POST", SECRETS) => {
                st.0 = Some(body.clone());
                (201, body)
            }
            ("GET", MUTATING) => (200, st.1.clone()),
            ("PATCH", MUTATING) => {
                apply_adds(&mut st.1, &body);
                (200, st.1.clone())
            }
            _ => status(405, "MethodNotAllowed", method),
        }
    });
    let (kubeconfig, log) = standin("create", handler);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let args = certgen_args(kubeconfig, &["--mutating-webhook", "confkube-sgx"]);

    let out = confkube(&args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("created the serving certificate"), "{err}");
    assert!(err.contains("caBundle set"), "{err}");
    let methods: Vec<String> = log.lock().unwrap().drain(..).map(|(m, _)| m).collect();
    assert_eq!(
        methods,
        ["GET", "GET", "PATCH", "POST"],
        "caBundle is patched before the Secret is written"
    );
    {
        let st = state.lock().unwrap();
        let secret = st.0.as_ref().unwrap();
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert_eq!(
            st.1["webhooks"][0]["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
            "caBundle is base64(ca.crt), as the Secret stores it"
        );
    }

    let out = confkube(&args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("reusing the serving certificate"), "{err}");
    assert!(err.contains("caBundle up to date"), "{err}");
    let methods: Vec<String> = log.lock().unwrap().drain(..).map(|(m, _)| m).collect();
    assert_eq!(methods, ["GET", "GET"], "no writes on the second run");
}

#[test]
fn certgen_skip_missing_webhooks_creates_the_secret_before_the_configurations_exist() {
    // The chart's pre-install Job: both webhook flags and --skip-missing-webhooks, no
    // configurations yet.
    let created = Arc::new(Mutex::new(None::<Value>));
    let st = created.clone();
    let handler: Arc<Handler> = Arc::new(move |method, path, body| match (method, path) {
        ("GET", SECRET) => status(404, "NotFound", "secrets \"confkube-webhook\" not found"),
        ("GET", MUTATING) => status(
            404,
            "NotFound",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io \"confkube-sgx\" not found",
        ),
        ("GET", VALIDATING) => status(
            404,
            "NotFound",
            "validatingwebhookconfigurations.admissionregistration.k8s.io \"confkube-sgx\" not \
             found",
        ),
        ("POST", SECRETS) => {
            let body: Value = serde_json::from_slice(body).unwrap();
            *st.lock().unwrap() = Some(body.clone());
            (201, body)
        }
        _ => status(405, "MethodNotAllowed", method),
    });
    let (kubeconfig, log) = standin("skip-missing", handler);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let webhooks = [
        "--mutating-webhook",
        "confkube-sgx",
        "--validating-webhook",
        "confkube-sgx",
    ];

    let mut args = webhooks.to_vec();
    args.push("--skip-missing-webhooks");
    let out = confkube(&certgen_args(kubeconfig, &args));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for line in [
        "mutatingwebhookconfiguration confkube-sgx does not exist yet; skipped \
         (--skip-missing-webhooks)",
        "validatingwebhookconfiguration confkube-sgx does not exist yet; skipped \
         (--skip-missing-webhooks)",
        "created the serving certificate",
    ] {
        assert!(err.contains(line), "{line} missing from\n{err}");
    }
    assert_eq!(
        *log.lock().unwrap(),
        [
            ("GET".to_owned(), SECRET.to_owned()),
            ("GET".to_owned(), MUTATING.to_owned()),
            ("GET".to_owned(), VALIDATING.to_owned()),
            ("POST".to_owned(), SECRETS.to_owned()),
        ]
    );
    assert_eq!(
        created.lock().unwrap().as_ref().unwrap()["type"],
        "kubernetes.io/tls"
    );

    // Without the flag a missing configuration is still an error, and nothing is written.
    *created.lock().unwrap() = None;
    log.lock().unwrap().clear();
    let mut args = webhooks.to_vec();
    args.extend(["--log-level", "off"]);
    let out = confkube(&certgen_args(kubeconfig, &args));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: mutatingwebhookconfiguration confkube-sgx not found; create it \
         before running certgen (run certgen as a post-install and post-upgrade hook), or drop \
         --mutating-webhook confkube-sgx\n"
    );
    assert!(created.lock().unwrap().is_none());
}
