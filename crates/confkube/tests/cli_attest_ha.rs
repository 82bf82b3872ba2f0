//! `confkube attest keygen` and `confkube attest serve --signing-key-dir/--policy-file` as
//! processes: key files usable by the loader, rotation by a Secret-style swap without a restart,
//! and start-up errors (exit 2, naming the file).
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "ha-test-admin-token-0123456789";
const NO_KEY: &str = "no PEM private key (expected a BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or \
                      BEGIN RSA PRIVATE KEY block)";

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-attest-ha-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn confkube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(args)
        .output()
        .unwrap()
}

fn keygen(alg: &str, out: &Path) -> Value {
    let o = confkube(&[
        "attest",
        "keygen",
        "--alg",
        alg,
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The kubelet's atomic update of a Secret/ConfigMap volume (see crates/attest/tests/ha.rs).
fn k8s_publish(dir: &Path, generation: u32, files: &[(&str, &[u8])]) {
    let ts_name = format!("..2026_01_01_00_00_{generation:02}.{generation:09}");
    std::fs::create_dir_all(dir.join(&ts_name)).unwrap();
    for (name, contents) in files {
        std::fs::write(dir.join(&ts_name).join(name), contents).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&ts_name, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[test]
fn keygen_writes_a_0600_pkcs8_key_the_loader_accepts_and_never_overwrites() {
    let dir = tmpdir("keygen");
    for alg in ["ES256", "RS256"] {
        let out = dir.join(format!("{alg}.pem"));
        let v = keygen(alg, &out);
        assert_eq!(v["alg"], alg);
        assert_eq!(v["path"], out.to_str().unwrap());
        let pem = std::fs::read(&out).unwrap();
        assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
        let parsed = attest::keyfile::parse_key_pem(&pem).unwrap();
        assert_eq!(v["kid"], parsed.kid());
        assert_eq!(parsed.alg().name(), alg);
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let out = dir.join("ES256.pem");
    let before = std::fs::read(&out).unwrap();
    let o = confkube(&["attest", "keygen", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: {} exists; refusing to overwrite a signing key (choose another name, or \
             delete it first)\n",
            out.display()
        )
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // Text output names the key and the file; RS256 is the default, as for serve.
    let out = dir.join("text.pem");
    let o = confkube(&["attest", "keygen", "--out", out.to_str().unwrap()]);
    assert!(o.status.success());
    let kid = attest::keyfile::parse_key_pem(&std::fs::read(&out).unwrap())
        .unwrap()
        .kid()
        .to_string();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "wrote RS256 signing key {kid} to {} (mode 0600)\n",
            out.display()
        )
    );
}

fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: \
         Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status: u16 = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
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

fn start(args: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["attest", "serve", "--listen", &listen])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/healthz", None).0 == 200
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the service did not come up on {listen}");
}

fn token_kid(port: u16, request: &str) -> String {
    let (st, v) = http(
        port,
        "POST",
        "/attest/SgxEnclave?api-version=2022-08-01",
        Some(request),
    );
    assert_eq!(st, 200, "{v}");
    use base64::Engine as _;
    let header = v["token"].as_str().unwrap().split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

#[test]
fn serve_from_a_secret_and_a_configmap_rotates_without_restart() {
    let dir = tmpdir("serve");
    let (keys, policy, data) = (dir.join("keys"), dir.join("policy"), dir.join("data"));
    for d in [&keys, &policy] {
        std::fs::create_dir_all(d).unwrap();
    }
    let a = keygen("ES256", &dir.join("a.pem"));
    let b = keygen("ES256", &dir.join("b.pem"));
    let a_pem = std::fs::read(dir.join("a.pem")).unwrap();
    let b_pem = std::fs::read(dir.join("b.pem")).unwrap();
    k8s_publish(&keys, 1, &[("2026-01.pem", &a_pem)]);
    let any = json!({"rules": [{"name": "any"}]}).to_string();
    k8s_publish(&policy, 1, &[("policy.json", any.as_bytes())]);
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let server = start(&[
        "--demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--signing-key-dir",
        keys.to_str().unwrap(),
        "--policy-file",
        policy.join("policy.json").to_str().unwrap(),
        "--config-reload-interval",
        "1",
        "--admin-token-file",
        token_file.to_str().unwrap(),
    ]);
    let port = server.port;
    let request = std::fs::read_to_string(data.join("demo/request.json")).unwrap();
    assert_eq!(token_kid(port, &request), a["kid"].as_str().unwrap());

    let (st, v) = http(port, "PUT", "/policies/SgxEnclave", Some(&any));
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (409, "policy-managed-by-file")
    );
    let (st, v) = http(port, "POST", "/admin/keys/rotate", None);
    assert_eq!(
        (st, v["code"].as_str().unwrap()),
        (409, "signing-keys-managed-by-directory")
    );

    k8s_publish(
        &keys,
        2,
        &[("2026-01.pem", &a_pem), ("2026-02.pem", &b_pem)],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, v) = http(port, "GET", "/readyz", None);
        if v["signing_kid"] == b["kid"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new key never became active: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(token_kid(port, &request), b["kid"].as_str().unwrap());
    let (_, jwks) = http(port, "GET", "/certs", None);
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [b["kid"].as_str().unwrap(), a["kid"].as_str().unwrap()]
    );
    // Metrics are text, not JSON: read them raw. The reload is counted just after it applies.
    let want = "confkube_attest_config_reloads_total{source=\"signing-keys\",result=\"ok\"} 1";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        if text.contains(want) {
            break;
        }
        assert!(Instant::now() < deadline, "{want} not in {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_files_and_flags_exit_2_naming_the_problem() {
    let dir = tmpdir("errors");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("a.pem"), "not a key").unwrap();
    let data = dir.join("data");
    let base = [
        "attest",
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let o = confkube(&args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--signing-key-dir", keys.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        err.ends_with(&format!(
            "error: starting the attestation service: signing key file {}: {NO_KEY}\n",
            keys.join("a.pem").display()
        )),
        "{err}"
    );
    let bad_policy = dir.join("policy.json");
    std::fs::write(&bad_policy, "{").unwrap();
    let (code, err) = run(&["--policy-file", bad_policy.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!(
            "error: starting the attestation service: policy file {}: invalid policy: not a \
             policy document: EOF while parsing an object",
            bad_policy.display()
        )),
        "{err}"
    );
    for (extra, want) in [
        (
            &["--config-reload-interval", "0"][..],
            "invalid value '0' for '--config-reload-interval <SECONDS>': 0 is not in 1..=3600",
        ),
        (
            &["--config-reload-interval", "3601"][..],
            "invalid value '3601' for '--config-reload-interval <SECONDS>': 3601 is not in \
             1..=3600",
        ),
        (
            &["--active-signing-key", "a.pem"][..],
            "the following required arguments were not provided:\n  --signing-key-dir <DIR>",
        ),
        (
            &["--signing-alg", "RS256", "--signing-key-dir", "/k"][..],
            "the argument '--signing-alg <SIGNING_ALG>' cannot be used with '--signing-key-dir \
             <DIR>'",
        ),
    ] {
        let (code, err) = run(extra);
        assert_eq!(code, Some(2), "{extra:?}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
}
