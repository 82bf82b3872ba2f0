#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! `confkube node-agent` first-run behaviour (issue 16 item 8): without a kubelet it names the
//! missing device-plugin directory and `--device-plugin-dir`; on SIGTERM it removes its
//! device-plugin sockets and exits 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../node-agent/fixtures/one-socket.json")
}

#[test]
fn without_a_kubelet_names_the_directory_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("device-plugins");
    let out = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["node-agent", "--device-plugin-dir"])
        .arg(&absent)
        .arg("--probe-fixture")
        .arg(fixture())
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "device-plugin directory {} does not exist: is a kubelet running on this node? Set \
             --device-plugin-dir to the kubelet's device-plugin directory",
            absent.display()
        )),
        "{stderr}"
    );
}

#[test]
fn sigterm_removes_the_device_plugin_sockets() {
    // Unix socket paths are limited to 108 bytes: keep the directory short.
    let dir = tempfile::Builder::new()
        .prefix("na-term")
        .tempdir_in("/tmp")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["node-agent", "--device-plugin-dir"])
        .arg(dir.path())
        .arg("--probe-fixture")
        .arg(fixture())
        .env_remove("NODE_NAME")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sockets = [
        dir.path().join("sgx.intel.com-enclave.sock"),
        dir.path().join("sgx.intel.com-provision.sock"),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sockets.iter().all(|s| s.exists()) {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent never created its sockets");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    for s in &sockets {
        assert!(!s.exists(), "{} left behind", s.display());
    }
}

#[test]
fn durations_in_help_and_the_old_spellings_still_work() {
    let help = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["node-agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--rescan-interval <DURATION>",
        "--socket-poll-interval <DURATION>",
        "--node-resync-interval <DURATION>",
    ] {
        assert!(help.contains(flag), "{flag} missing in {help}");
    }
    for old in [
        "--rescan-interval-ms",
        "--socket-poll-ms",
        "--node-resync-secs",
    ] {
        assert!(!help.contains(old), "{old} is shown in {help}");
    }
    // The old spellings are accepted: the agent gets as far as the device-plugin directory.
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("device-plugins");
    let out = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args([
            "node-agent",
            "--rescan-interval-ms",
            "500",
            "--socket-poll-ms",
            "100",
            "--node-resync-secs",
            "30",
            "--device-plugin-dir",
        ])
        .arg(&absent)
        .arg("--probe-fixture")
        .arg(fixture())
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "device-plugin directory {} does not exist",
            absent.display()
        )),
        "{stderr}"
    );
}
