//! Microsoft's own Azure Attestation SDKs, unmodified, against `confkube attest serve` over
//! HTTPS on loopback with default settings plus `--tls-cert/--tls-key/--issuer`, token validation
//! on: Python `azure-security-attestation` 1.0.0 (PyPI) and JS `@azure/attestation` 1.0.0 (npm,
//! installed by `npm ci` in tests/maa_sdk/js). Each SDK reads the OpenID metadata and the signing
//! certificates, attests SGX quotes with binary, JSON and no runtime data and an Open Enclave
//! report, and gets the SDK's HTTP error (4xx, confkube's code and message) for a tampered quote.
//!
//! Without the packages the tests print a notice and pass; with `CI` set they fail (.ci/run
//! installs them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::Engine as _;
use dcap::TcbStatus;
use dcap_testkit::{CollateralParams, PkiParams, QuoteParams, Testkit};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/maa_sdk")
}

/// Whether a check can run; panics in CI when it cannot.
fn available(what: &str, ok: bool, install: &str) -> bool {
    if !ok && std::env::var_os("CI").is_some() {
        panic!("{what} is required in CI (.ci/run installs it: {install})");
    }
    if !ok {
        eprintln!("notice: {what} is not installed; skipping (install: {install})");
    }
    ok
}

fn python_sdk() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import azure.security.attestation, azure.core"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    available(
        "Python azure-security-attestation",
        ok,
        "pip install azure-security-attestation==1.0.0 azure-core",
    )
}

fn js_sdk() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let ok = node
        && sdk_dir()
            .join("js/node_modules/@azure/attestation/package.json")
            .is_file();
    available(
        "node with @azure/attestation",
        ok,
        "npm ci --prefix crates/confkube/tests/maa_sdk/js",
    )
}

struct Server {
    child: Child,
    endpoint: String,
    ca: PathBuf,
    inputs: PathBuf,
    expect: Value,
    logs: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref());
    out
}

/// A quote whose report_data[0..32] is SHA-256(runtime).
fn quote(kit: &Testkit, runtime: &[u8]) -> Vec<u8> {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&sha256(runtime));
    kit.quote(&QuoteParams {
        report_data: rd,
        isv_prod_id: 42,
        isv_svn: 5,
        ..QuoteParams::default()
    })
    .unwrap()
}

/// A test CA and a server certificate for 127.0.0.1 and localhost, PEM.
fn tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "confkube MAA SDK test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("confkube-maa-sdk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("collateral")).unwrap();
    // The SDKs check exp/nbf against the wall clock: PKI and collateral valid now.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let kit = Testkit::generate(PkiParams::new(now - 3600, Some(TcbStatus::UpToDate))).unwrap();
    let coll = kit.collateral(&CollateralParams::new(now - 3600)).unwrap();
    std::fs::write(
        dir.join("collateral")
            .join(format!("{}.json", hex::encode(kit.params().fmspc))),
        serde_json::to_string(&coll).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("root.pem"), kit.root_pem()).unwrap();
    let (ca, cert, key) = tls(&dir);

    // Gramine's ra-tls-maa puts a DER public key in runtimeData; any bytes do here.
    let runtime_binary: Vec<u8> = (0u8..=255).collect();
    let runtime_json = br#"{"keys":[{"kty":"oct","kid":"k1"}],"purpose":"confkube sdk test"}"#;
    let q_bin = quote(&kit, &runtime_binary);
    let q_json = quote(&kit, runtime_json);
    let q_plain = quote(&kit, b"no runtime data sent");
    let mut oe = Vec::new();
    oe.extend_from_slice(&1u32.to_le_bytes());
    oe.extend_from_slice(&2u32.to_le_bytes());
    oe.extend_from_slice(&(q_bin.len() as u64).to_le_bytes());
    oe.extend_from_slice(&q_bin);
    let mut tampered = q_plain.clone();
    tampered[48 + 258] ^= 1; // ISVSVN: the quote signature no longer matches

    let port = free_port();
    let endpoint = format!("https://127.0.0.1:{port}");
    let inputs = dir.join("inputs.json");
    std::fs::write(
        &inputs,
        json!({
            "endpoint": endpoint,
            "quote_binary": B64.encode(&q_bin),
            "runtime_binary": B64.encode(&runtime_binary),
            "quote_json": B64.encode(&q_json),
            "runtime_json": B64.encode(runtime_json),
            "quote_plain": B64.encode(&q_plain),
            "oe_report": B64.encode(&oe),
            "quote_tampered": B64.encode(&tampered),
        })
        .to_string(),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["--log-format", "json", "attest", "serve"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--collateral-dir")
        .arg(dir.join("collateral"))
        .arg("--root-ca")
        .arg(dir.join("root.pem"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--issuer", &endpoint])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = Server {
        logs: logs.clone(),
        child,
        endpoint,
        ca,
        inputs,
        expect: json!({
            "mr_enclave": hex::encode(QuoteParams::default().mrenclave),
            "mr_signer": hex::encode(QuoteParams::default().mrsigner),
            "runtime_binary": B64.encode(&runtime_binary),
            "runtime_json": serde_json::from_slice::<Value>(runtime_json).unwrap(),
        }),
    };
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.contains("confkube attestation service ready") => break,
            Ok(_) => {}
            Err(e) => panic!("the service did not start: {e}"),
        }
    }
    // Keep the log (the failed attestation is logged at info).
    std::thread::spawn(move || {
        while let Ok(l) = rx.recv() {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                logs.lock().unwrap().push(v);
            }
        }
    });
    server
}

/// What both SDKs must report.
fn check(sdk: &str, out: &Value, s: &Server) {
    assert_eq!(out["metadata"]["issuer"], s.endpoint, "{sdk}");
    assert_eq!(
        out["metadata"]["jwks_uri"],
        format!("{}/certs", s.endpoint),
        "{sdk}"
    );
    let signers = out["signers"].as_array().unwrap();
    assert_eq!(signers.len(), 1, "{sdk}: {out}");
    assert_eq!(signers[0]["certificates"], 1, "{sdk}");
    assert_eq!(out["sgx_binary"]["token_alg"], "RS256", "{sdk}");
    assert_eq!(
        out["sgx_binary"]["token_kid"], signers[0]["key_id"],
        "{sdk}"
    );
    for case in ["sgx_binary", "sgx_json", "sgx_plain", "open_enclave"] {
        let r = &out[case];
        assert_eq!(r["issuer"], s.endpoint, "{sdk} {case}");
        assert_eq!(r["mr_enclave"], s.expect["mr_enclave"], "{sdk} {case}");
        assert_eq!(r["mr_signer"], s.expect["mr_signer"], "{sdk} {case}");
        // The Python SDK's model types these as float.
        assert_eq!(r["product_id"].as_f64(), Some(42.0), "{sdk} {case}");
        assert_eq!(r["svn"].as_f64(), Some(5.0), "{sdk} {case}");
        assert_eq!(r["is_debuggable"], false, "{sdk} {case}");
        assert_eq!(r["version"], "1.0", "{sdk} {case}");
        assert_eq!(r["verifier_type"], "sgx", "{sdk} {case}");
    }
    for case in ["sgx_binary", "open_enclave"] {
        assert_eq!(
            out[case]["enclave_held_data"], s.expect["runtime_binary"],
            "{sdk} {case}"
        );
    }
    assert_eq!(
        out["sgx_json"]["runtime_claims"], s.expect["runtime_json"],
        "{sdk}"
    );
    assert_eq!(out["sgx_plain"]["enclave_held_data"], Value::Null, "{sdk}");
    let t = &out["tampered"];
    assert_eq!(t["raised"], true, "{sdk}: {out}");
    assert_eq!(t["status"], 400, "{sdk}: {t}");
    assert_eq!(t["code"], "quote-signature-invalid", "{sdk}: {t}");
    let text = t["text"].as_str().unwrap();
    assert!(
        text.contains("quote signature invalid: the quote signature does not verify"),
        "{sdk}: the exception shows confkube's message: {text}"
    );
    // The service logged the failure at info with its code.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = s.logs.lock().unwrap().iter().any(|l| {
            l["level"] == "INFO"
                && l["fields"]["message"] == "attestation failed"
                && l["fields"]["code"] == "quote-signature-invalid"
                && l["fields"]["status"] == 400
        });
        if found {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sdk}: no info log of the failed attestation: {:?}",
            s.logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn microsoft_python_sdk_works_unmodified_with_validation() {
    if !python_sdk() {
        return;
    }
    let s = start("py");
    let out = run(Command::new("python3")
        .arg(sdk_dir().join("maa_sdk.py"))
        .arg(&s.inputs)
        .env("REQUESTS_CA_BUNDLE", &s.ca));
    check("python", &out, &s);
    // The SDK's HttpResponseError text: "(code) message\nCode: code\nMessage: message".
    let msg = out["tampered"]["message"].as_str().unwrap();
    let text = out["tampered"]["text"].as_str().unwrap();
    assert!(text.contains("Code: quote-signature-invalid"), "{text}");
    assert!(msg.starts_with("quote signature"), "{msg}");
    assert!(
        out["tampered"]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("Message: {msg}")),
        "{}",
        out["tampered"]
    );
}

#[test]
fn microsoft_js_sdk_works_unmodified_with_validation() {
    if !js_sdk() {
        return;
    }
    let s = start("js");
    let out = run(Command::new("node")
        .arg(sdk_dir().join("maa_sdk.js"))
        .arg(&s.inputs)
        .env("NODE_EXTRA_CA_CERTS", &s.ca));
    check("js", &out, &s);
    assert_eq!(out["tampered"]["name"], "RestError", "{}", out["tampered"]);
    assert!(
        out["tampered"]["message"]
            .as_str()
            .unwrap()
            .starts_with("quote signature"),
        "{}",
        out["tampered"]
    );
}
