//! `confkube attest serve --tls-cert/--tls-key` as a process: a certificate renewed in a
//! Secret-shaped directory is reloaded without a restart (logged), a broken pair is logged with
//! the file and the reason while the old one stays, and a bad pair at start-up exits 2.
//! (The handshake itself is checked in crates/attest/tests/tls_reload.rs.)
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::keyfile::{KeyDirConfig, KeyFile, generate_pem};
use attest::keys::{KeyRing, SigningAlg};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-attest-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A P-256 key (PKCS#8 PEM) and a self-signed certificate of it (PEM): the `x5c` certificate
/// the key ring makes for a signing key, which is all a TLS server needs.
fn pair() -> (String, String) {
    let (key_pem, _) = generate_pem(SigningAlg::ES256).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ring = KeyRing::from_dir(
        KeyDirConfig {
            dir: PathBuf::from("/unused"),
            active: None,
        },
        &[KeyFile {
            name: "k.pem".into(),
            contents: key_pem.clone().into_bytes(),
        }],
        3600,
        now,
    )
    .unwrap();
    let b64 = ring.jwks(now)["keys"][0]["x5c"][0]
        .as_str()
        .unwrap()
        .to_string();
    let mut cert = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        cert.push_str(std::str::from_utf8(line).unwrap());
        cert.push('\n');
    }
    cert.push_str("-----END CERTIFICATE-----\n");
    (cert, key_pem)
}

/// The kubelet's atomic update of a Secret volume holding `tls.crt` and `tls.key`.
fn k8s_publish(dir: &Path, generation: u32, cert: &str, key: &str) {
    let ts_name = format!("..2026_01_01_00_00_{generation:02}.{generation:09}");
    std::fs::create_dir_all(dir.join(&ts_name)).unwrap();
    std::fs::write(dir.join(&ts_name).join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join(&ts_name).join("tls.key"), key).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&ts_name, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

struct Server {
    child: Child,
    logs: mpsc::Receiver<Value>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The next JSON log line whose message is `message` (up to 60 s).
    fn wait_for(&self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(v) if v["fields"]["message"] == message => return v,
                Ok(_) => {}
                Err(e) => panic!("no log {message:?}: {e}"),
            }
        }
        panic!("no log {message:?} within 60 s");
    }
}

fn start(data: &Path, tls: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["--log-format", "json", "attest", "serve", "--demo"])
        .args(["--listen", "127.0.0.1:0", "--config-reload-interval", "1"])
        .arg("--data-dir")
        .arg(data)
        .arg("--tls-cert")
        .arg(tls.join("tls.crt"))
        .arg("--tls-key")
        .arg(tls.join("tls.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, logs) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    Server { child, logs }
}

#[test]
fn renewed_certificate_is_reloaded_and_a_broken_one_is_logged() {
    let dir = tmpdir("reload");
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ((cert_a, key_a), (cert_b, key_b)) = (pair(), pair());
    k8s_publish(&tls, 1, &cert_a, &key_a);
    let server = start(&dir.join("data"), &tls);
    server.wait_for("confkube attestation service ready");

    k8s_publish(&tls, 2, &cert_b, &key_b);
    let v = server.wait_for("reloaded the TLS certificate");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["fields"]["source"], "tls");
    assert_eq!(v["fields"]["cert"], tls.join("tls.crt").to_str().unwrap());
    assert_eq!(v["fields"]["key"], tls.join("tls.key").to_str().unwrap());
    // notAfter of the new leaf (the x5c certificate is valid for ten years).
    let not_after = time::OffsetDateTime::parse(
        v["fields"]["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let years = (not_after - time::OffsetDateTime::now_utc()).whole_days() / 365;
    assert_eq!(years, 10, "{v}");

    k8s_publish(&tls, 3, &cert_a, &key_b);
    let v = server.wait_for("rejected the new TLS certificate; still serving the last good one");
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["fields"]["source"], "tls");
    assert_eq!(
        v["fields"]["error"],
        format!(
            "the private key in {} does not belong to the certificate in {}; --tls-key must be \
             the key of the first (leaf) certificate in --tls-cert",
            tls.join("tls.key").display(),
            tls.join("tls.crt").display()
        )
    );
}

#[test]
fn a_bad_pair_at_start_up_exits_2_naming_the_file() {
    let dir = tmpdir("startup");
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ((cert_a, _), (_, key_b)) = (pair(), pair());
    k8s_publish(&tls, 1, &cert_a, &key_b);
    let run = || {
        let o = Command::new(env!("CARGO_BIN_EXE_confkube"))
            .args(["attest", "serve", "--demo", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--tls-cert")
            .arg(tls.join("tls.crt"))
            .arg("--tls-key")
            .arg(tls.join("tls.key"))
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, err) = run();
    assert_eq!(code, Some(2));
    assert!(
        err.ends_with(&format!(
            "error: loading the TLS certificate: the private key in {} does not belong to the \
             certificate in {}; --tls-key must be the key of the first (leaf) certificate in \
             --tls-cert\n",
            tls.join("tls.key").display(),
            tls.join("tls.crt").display()
        )),
        "{err}"
    );
    std::fs::remove_file(tls.join("tls.crt")).unwrap();
    let (code, err) = run();
    assert_eq!(code, Some(2));
    assert!(
        err.ends_with(&format!(
            "error: loading the TLS certificate: cannot read {}: No such file or directory (os \
             error 2); check the --tls-cert/--tls-key path\n",
            tls.join("tls.crt").display()
        )),
        "{err}"
    );
}
