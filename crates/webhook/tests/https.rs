#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The real server over real TLS on loopback: AdmissionReview round trips over HTTP/1.1 and
//! HTTP/2, 400s for bad bodies, health and metrics endpoints, certificate hot reload.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use webhook::kube_sgx::{Config, parse_toleration};
use webhook::{
    CertFiles, Options, Registry, Reload, ReloadingCert, Server, TlsFileError, tls_reload,
};

struct Pki {
    ca_der: CertificateDer<'static>,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            ca_params,
            ca_key,
        }
    }

    /// A leaf for `localhost`: (cert PEM, key PEM, cert DER).
    fn leaf(&self) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }
}

fn load(cert: &Path, key: &Path) -> Result<ReloadingCert, TlsFileError> {
    let files = CertFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
    };
    ReloadingCert::load(files, tls_reload::default_provider())
}

/// A fresh directory, removed when dropped.
fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("confkube-webhook-{name}-"))
        .tempdir()
        .unwrap()
}

struct Running {
    addr: SocketAddr,
    store: Arc<ReloadingCert>,
    connector: TlsConnector,
    h2_connector: TlsConnector,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    dir: TempDir,
}

async fn start(name: &str, pki: &Pki, options: Options) -> Running {
    let dir = temp_dir(name);
    let (cert, key, _) = pki.leaf();
    std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();
    let store = Arc::new(load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap());
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&store),
        options,
        Registry::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let client = |alpn: &[u8]| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(cfg))
    };
    Running {
        addr,
        store,
        connector: client(b"http/1.1"),
        h2_connector: client(b"h2"),
        stop: Some(tx),
        done,
        dir,
    }
}

impl Running {
    async fn tls(&self, connector: &TlsConnector) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// One HTTP/1.1 request on a fresh TLS connection: (status, body).
    async fn request(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let io = hyper_util::rt::TokioIo::new(self.tls(&self.connector).await);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (status, body) = self
            .request(Method::POST, path, body.to_string().into_bytes())
            .await;
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let (status, body) = self.request(Method::GET, path, Vec::new()).await;
        (status, String::from_utf8(body).unwrap())
    }

    async fn peer_cert(&self) -> CertificateDer<'static> {
        let tls = self.tls(&self.connector).await;
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap();
    }
}

fn review(uid: &str, pod: Value) -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:job-controller"},
            "object": pod,
            "dryRun": false
        }
    })
}

fn faq_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "sgx-test-", "labels": {"app": "sgx-test"}},
        "spec": {"containers": [{"name": "sgxtest", "image": "oeciteam/sgx-test:1.0",
            "resources": {"limits": {"sgx.intel.com/sgx_epc_mem_in_MiB": "10"}}}],
            "restartPolicy": "Never"}
    })
}

fn apply(pod: &Value, response: &Value) -> Value {
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["response"]["patch"].as_str().unwrap())
        .unwrap();
    let ops: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut pod = pod.clone();
    json_patch::patch(&mut pod, &ops).unwrap();
    pod
}

fn options() -> Options {
    Options::new(Config::new().with_tolerations(vec![
        parse_toleration("sgx.intel.com/epc:NoSchedule").unwrap(),
    ]))
}

#[tokio::test]
async fn mutate_and_validate_over_tls() {
    let pki = Pki::new();
    let srv = start("roundtrip", &pki, options()).await;

    let (status, resp) = srv.post("/mutate-pods", &review("uid-1", faq_pod())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["response"]["uid"], "uid-1");
    assert_eq!(resp["response"]["allowed"], true);
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    let pod = apply(&faq_pod(), &resp);
    let sgx = json!({"sgx.intel.com/epc": "10Mi", "sgx.intel.com/enclave": "1"});
    assert_eq!(
        pod,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "sgx-test-", "labels": {"app": "sgx-test"},
                         "annotations": {"sgx.intel.com/epc": "10Mi"}},
            "spec": {"containers": [{"name": "sgxtest", "image": "oeciteam/sgx-test:1.0",
                "resources": {"limits": sgx, "requests": sgx}}],
                "restartPolicy": "Never",
                "tolerations": [{"key": "sgx.intel.com/epc", "operator": "Exists", "effect": "NoSchedule"}]}
        })
    );

    // Reinvocation: the mutated pod needs nothing more and validates.
    let (_, again) = srv
        .post("/mutate-pods", &review("uid-2", pod.clone()))
        .await;
    assert_eq!(
        again,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "response": {"uid": "uid-2", "allowed": true}})
    );
    let (status, ok) = srv.post("/validate-pods", &review("uid-3", pod)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ok["response"]["allowed"], true);

    // A bad pod is denied with the message in the status.
    let mut bad = faq_pod();
    bad["spec"]["containers"][0]["resources"]["limits"]["sgx.intel.com/sgx_epc_mem_in_MiB"] =
        json!("2.5");
    let (status, denied) = srv.post("/mutate-pods", &review("uid-4", bad)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        denied["response"],
        json!({"uid": "uid-4", "allowed": false, "status": {"status": "Failure", "code": 400,
            "reason": "BadRequest",
            "message": "container \"sgxtest\": sgx.intel.com/sgx_epc_mem_in_MiB is \"2.5\", which \
                        is not a whole number; write a whole number of MiB (e.g. 10)"}})
    );

    let (status, metrics) = srv.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "confkube_webhook_admission_requests_total{endpoint=\"mutate\",outcome=\"patched\"} 1",
        "confkube_webhook_admission_requests_total{endpoint=\"mutate\",outcome=\"allowed\"} 1",
        "confkube_webhook_admission_requests_total{endpoint=\"mutate\",outcome=\"denied\"} 1",
        "confkube_webhook_admission_requests_total{endpoint=\"validate\",outcome=\"allowed\"} 1",
        "confkube_webhook_denials_total{endpoint=\"mutate\",reason=\"bad-quantity\"} 1",
        "confkube_webhook_admission_duration_seconds_count{endpoint=\"mutate\"} 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn http2_is_served() {
    let pki = Pki::new();
    let srv = start("h2", &pki, options()).await;
    let tls = srv.tls(&srv.h2_connector).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let io = hyper_util::rt::TokioIo::new(tls);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::POST)
        .uri("https://localhost/mutate-pods")
        .body(Full::new(Bytes::from(
            review("h2-uid", faq_pod()).to_string(),
        )))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["response"]["uid"], "h2-uid");
    assert_eq!(body["response"]["patchType"], "JSONPatch");
    drop(sender);
    srv.stop().await;
}

/// The `code` and `detail` of a problem+json body.
fn problem(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not a problem ({e}): {}", String::from_utf8_lossy(body)));
    assert_eq!(v["error"]["code"], v["code"]);
    assert_eq!(v["error"]["message"], v["detail"]);
    (
        v["code"].as_str().unwrap().to_string(),
        v["detail"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn bad_requests_get_400_with_a_message() {
    let pki = Pki::new();
    let srv = start("bad", &pki, options().with_max_body_bytes(4096)).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"not json".to_vec(),
            "request body is not a JSON AdmissionReview: expected ident at line 1 column 2",
        ),
        (
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"x"}}"#.to_vec(),
            "AdmissionReview apiVersion is \"admission.k8s.io/v1beta1\", but this webhook speaks \
             admission.k8s.io/v1 only; set admissionReviewVersions: [\"v1\"] in the webhook \
             configuration",
        ),
    ];
    for (body, message) in cases {
        let (status, got) = srv.request(Method::POST, "/mutate-pods", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem(&got), ("invalid-request".into(), message.into()));
    }
    // A declared body above the limit is refused with 413 before it is read.
    let (status, got) = srv
        .request(Method::POST, "/mutate-pods", vec![b' '; 5000])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        problem(&got),
        (
            "request-too-large".into(),
            "request body is larger than the 4096-byte limit (--body-limit)".into()
        )
    );

    // A chunked body without Content-Length is cut off by the streaming limit.
    let mut tls = srv.tls(&srv.connector).await;
    let chunk = vec![b' '; 3000];
    let mut raw = b"POST /validate-pods HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..2 {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    tls.write_all(&raw).await.unwrap();
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp).await;
    let resp = String::from_utf8(resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{resp}"
    );
    let body = resp.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        problem(body.as_bytes()),
        (
            "request-too-large".into(),
            "request body is larger than the 4096-byte limit (--body-limit)".into()
        ),
        "{resp}"
    );
    assert!(
        resp.to_ascii_lowercase()
            .contains("content-type: application/problem+json\r\n"),
        "{resp}"
    );

    let (status, body) = srv.get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        problem(body.as_bytes()),
        (
            "not-found".into(),
            "no such endpoint: /nope; admission paths are /mutate-pods and /validate-pods".into()
        )
    );
    let (status, body) = srv.get("/mutate-pods").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        problem(body.as_bytes()),
        (
            "method-not-allowed".into(),
            "GET is not allowed on /mutate-pods (allowed: POST)".into()
        )
    );
    let (status, body) = srv.request(Method::POST, "/healthz", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        problem(&body),
        (
            "method-not-allowed".into(),
            "POST is not allowed on /healthz (allowed: GET)".into()
        )
    );
    // Content type and Allow header of a 405, on the wire.
    let mut tls = srv.tls(&srv.connector).await;
    tls.write_all(
        b"DELETE /validate-pods HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp).await;
    let resp = String::from_utf8(resp).unwrap().to_ascii_lowercase();
    assert!(
        resp.starts_with("http/1.1 405 method not allowed\r\n"),
        "{resp}"
    );
    assert!(resp.contains("\r\nallow: post\r\n"), "{resp}");
    assert!(
        resp.contains("\r\ncontent-type: application/problem+json\r\n"),
        "{resp}"
    );

    let (_, metrics) = srv.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l
            == "confkube_webhook_admission_requests_total{endpoint=\"mutate\",outcome=\"bad_request\"} 3"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn health_endpoints_and_passthrough() {
    let pki = Pki::new();
    let srv = start("health", &pki, options().with_passthrough(true)).await;
    assert_eq!(
        srv.get("/healthz").await,
        (StatusCode::OK, "ok\n".to_owned())
    );
    assert_eq!(
        srv.get("/readyz").await,
        (StatusCode::OK, "ok\n".to_owned())
    );
    let (status, resp) = srv.post("/mutate-pods", &review("pt", faq_pod())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        resp,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "response": {"uid": "pt", "allowed": true}})
    );
    srv.stop().await;
}

#[tokio::test]
async fn certificate_hot_reload() {
    let pki = Pki::new();
    let srv = start("reload", &pki, options()).await;
    let first = srv.peer_cert().await;
    assert_eq!(
        srv.store.reload_if_changed().unwrap(),
        Reload::Unchanged,
        "unchanged files"
    );

    let (cert, key, der) = pki.leaf();
    std::fs::write(srv.dir.path().join("tls.crt"), cert).unwrap();
    std::fs::write(srv.dir.path().join("tls.key"), key).unwrap();
    assert_eq!(
        srv.store.reload_if_changed().unwrap(),
        Reload::Swapped {
            // rcgen's default validity.
            not_after: Some("4096-01-01T00:00:00Z".to_owned())
        }
    );
    let second = srv.peer_cert().await;
    assert_ne!(first, second);
    assert_eq!(second, der);

    // A broken key is reported and the last good certificate stays in service.
    std::fs::write(srv.dir.path().join("tls.key"), "garbage\n").unwrap();
    let err = srv.store.reload_if_changed().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1); --tls-key must be the PEM key \
             of the serving certificate",
            srv.dir.path().join("tls.key").display()
        )
    );
    assert_eq!(srv.peer_cert().await, der);
    let (status, _) = srv.post("/mutate-pods", &review("after", faq_pod())).await;
    assert_eq!(status, StatusCode::OK);
    srv.stop().await;
}

#[test]
fn certificate_load_errors() {
    let pki = Pki::new();
    let dir = temp_dir("load-errors");
    let (cert, key, _) = pki.leaf();
    let (_, other_key, _) = pki.leaf();
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("cert.pem"), &cert).unwrap();
    std::fs::write(path("key.pem"), &key).unwrap();
    std::fs::write(path("other.pem"), &other_key).unwrap();
    std::fs::write(path("empty.pem"), "").unwrap();
    std::fs::write(path("broken.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let d = |n: &str| path(n).display().to_string();
    let msg = |c: &str, k: &str| load(&path(c), &path(k)).unwrap_err().to_string();

    assert_eq!(
        msg("missing.pem", "key.pem"),
        format!(
            "cannot read {}: No such file or directory (os error 2); check the \
             --tls-cert/--tls-key path",
            d("missing.pem")
        )
    );
    assert_eq!(
        msg("empty.pem", "key.pem"),
        format!(
            "{} holds no PEM CERTIFICATE block; --tls-cert must be the PEM certificate chain, \
             leaf first",
            d("empty.pem")
        )
    );
    assert!(matches!(
        load(&path("broken.pem"), &path("key.pem")),
        Err(TlsFileError::Pem { .. })
    ));
    assert_eq!(
        msg("broken.pem", "key.pem"),
        format!(
            "{} is not valid PEM: no \"-----END CERTIFICATE-----\" line",
            d("broken.pem")
        )
    );
    assert_eq!(
        msg("cert.pem", "cert.pem"),
        format!(
            "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1); --tls-key must be the PEM key \
             of the serving certificate",
            d("cert.pem")
        )
    );
    assert_eq!(
        msg("cert.pem", "other.pem"),
        format!(
            "the private key in {} does not belong to the certificate in {}; --tls-key must be \
             the key of the first (leaf) certificate in --tls-cert",
            d("other.pem"),
            d("cert.pem")
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let pki = Pki::new();
    let srv = start("bind", &pki, options()).await;
    let err = Server::bind(
        srv.addr,
        Arc::clone(&srv.store),
        options(),
        Registry::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot listen on {}: Address already in use (os error 98); choose a free local \
             address with --listen",
            srv.addr
        )
    );
    srv.stop().await;
}
