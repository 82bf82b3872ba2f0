//! `confkube attest serve` as a process: the README demo end to end over HTTP, the token checked
//! by an independent JWT library (PyJWT), restart persistence, and crash safety under kill -9.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-attest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.unwrap_or("");
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status: u16 = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "attest",
        "serve",
        "--listen",
        &listen,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let child = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/healthz", None, None).0 == 200
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the service did not come up on {listen}");
}

fn pyjwt_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("PyJWT is required in CI (.ci/run installs it: pip install 'pyjwt[crypto]')");
    }
    if !ok {
        eprintln!("notice: python3 PyJWT not installed; skipping the independent token check");
    }
    ok
}

const PYJWT_CHECK: &str = r#"
import json, sys, jwt
token, jwks, issuer = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
pub = jwt.PyJWK.from_dict(key)
claims = jwt.decode(token, pub, algorithms=[key["alg"]], issuer=issuer)
print(json.dumps(claims))
"#;

#[test]
fn readme_demo_end_to_end_with_pyjwt() {
    let data = tmpdir("demo");
    let server = start(&data, &["--demo"]);
    let port = server.port;
    let request = std::fs::read_to_string(data.join("demo/request.json")).unwrap();
    let (st, body) = http(
        port,
        "POST",
        "/attest/SgxEnclave?api-version=2022-08-01",
        Some(&request),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, jwks) = http(port, "GET", "/certs", None, None);
    assert_eq!(st, 200);
    let (st, oidc) = http(port, "GET", "/.well-known/openid-configuration", None, None);
    assert_eq!(st, 200);
    let issuer = format!("http://127.0.0.1:{port}");
    assert_eq!(
        serde_json::from_str::<Value>(&oidc).unwrap()["jwks_uri"],
        format!("{issuer}/certs")
    );
    let (st, ready) = http(port, "GET", "/readyz", None, None);
    assert_eq!(st, 200, "{ready}");
    if pyjwt_available() {
        let out = Command::new("python3")
            .args(["-c", PYJWT_CHECK, &token, &jwks, &issuer])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "PyJWT rejected the token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["x-ms-attestation-type"], "sgx");
        assert_eq!(claims["x-confkube-tcb-status"], "UpToDate");
        assert_eq!(claims["nonce"], "demo-nonce");
        assert_eq!(claims["x-ms-sgx-is-debuggable"], false);
        // A tampered token must fail in PyJWT too.
        let mut bad = token.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        let out = Command::new("python3")
            .args(["-c", PYJWT_CHECK, &bad, &jwks, &issuer])
            .output()
            .unwrap();
        assert!(!out.status.success(), "PyJWT accepted a tampered token");
    }
    let (st, metrics) = http(port, "GET", "/metrics", None, None);
    assert_eq!(st, 200);
    assert!(
        metrics.contains(
            "confkube_attest_attestations_total{result=\"verified\",tcb_status=\"UpToDate\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn refuses_plain_http_off_loopback_and_missing_sources() {
    let data = tmpdir("refuse");
    let out = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args([
            "attest",
            "serve",
            "--demo",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "refusing plain HTTP on 0.0.0.0:0: only loopback addresses may serve without TLS"
        ),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args([
            "attest",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no collateral source: pass --collateral-dir DIR")
    );
}

#[test]
fn kill_9_during_policy_writes_loses_no_acknowledged_write() {
    let data = tmpdir("crash");
    let token_file = data.join("token");
    std::fs::write(&token_file, "crash-test-admin-token-0123456789").unwrap();
    let tok = "crash-test-admin-token-0123456789";
    let args = ["--demo", "--admin-token-file", token_file.to_str().unwrap()];
    let mut server = start(&data, &args);
    let port = server.port;
    // Write policies as fast as possible from another thread; remember the last acknowledged.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for i in 0..100_000i64 {
                let body = json!({"rules": [{"name": format!("v{i}")}]}).to_string();
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let req = format!(
                    "PUT /policies/SgxEnclave HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {tok}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(req.as_bytes()).is_err() {
                    return;
                }
                let mut resp = String::new();
                if s.read_to_string(&mut resp).is_err() || !resp.starts_with("HTTP/1.1 200") {
                    return;
                }
                acked.store(i, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    // Let some writes land, then kill -9 mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(std::sync::atomic::Ordering::SeqCst) < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    writer.join().unwrap();
    let last = acked.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        last >= 20,
        "too few writes acknowledged before the kill: {last}"
    );
    drop(server);

    let server = start(&data, &args);
    let (st, body) = http(server.port, "GET", "/policies/SgxEnclave", None, Some(tok));
    assert_eq!(st, 200, "{body}");
    let name = serde_json::from_str::<Value>(&body).unwrap()["policy"]["rules"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let n: i64 = name.trim_start_matches('v').parse().unwrap();
    // The stored policy is the last acknowledged one, or the one whose reply the kill cut off.
    assert!(
        n == last || n == last + 1,
        "acknowledged v{last}, found {name} after the crash"
    );
}
