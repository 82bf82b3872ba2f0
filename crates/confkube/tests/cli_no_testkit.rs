//! A production build (`--no-default-features`, no `testkit` feature): `attest serve --demo`
//! and `quote testkit` say that they need the feature, and write nothing. Run with
//! `cargo nextest run -p confkube --no-default-features --test cli_no_testkit`; in a default
//! build (the feature on) this file has no tests.
#![cfg(not(feature = "testkit"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-no-testkit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn demo_needs_the_testkit_feature() {
    let dir = tmpdir("demo");
    let data = dir.join("data");
    let o = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["attest", "serve", "--demo", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: --demo needs the `testkit` cargo feature, and this confkube was built without it \
         (--no-default-features, a production build); build it with default features for the \
         demo, or pass --root-ca and --collateral-dir or --pccs-url\n"
    );
    assert!(!data.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn quote_testkit_needs_the_testkit_feature() {
    let dir = tmpdir("quote");
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(["quote", "testkit", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: quote testkit needs the `testkit` cargo feature, and this confkube was built \
         without it (--no-default-features, a production build)\n"
    );
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(dir);
}
