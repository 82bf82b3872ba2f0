//! The secret-release example of docs/attestation.md, run as written: Python `jwcrypto` plays
//! the enclave (key, runtime data, decryption) against the real `confkube` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn example() -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/attestation.md"),
    )
    .unwrap();
    let start = doc
        .find("<!-- secret-release-example:start -->")
        .expect("start marker");
    let end = doc
        .find("<!-- secret-release-example:end -->")
        .expect("end marker");
    let block = &doc[start..end];
    let code = block
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.rsplit_once("```"))
        .map(|(code, _)| code)
        .expect("a python block between the markers");
    code.to_string()
}

#[test]
fn docs_secret_release_example() {
    let ok = Command::new("python3")
        .args(["-c", "import jwcrypto"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!(
                "Python jwcrypto is required in CI (.ci/run installs it: pip install jwcrypto==1.5.6)"
            );
        }
        eprintln!(
            "notice: Python jwcrypto not installed; skipping the docs secret-release example"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("confkube-docs-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("example.py");
    std::fs::write(&script, example()).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .env("CONFKUBE", env!("CARGO_BIN_EXE_confkube"))
        .env("WORKDIR", dir.join("work"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout, "released db-password version 1 -> s3cr3t-Pa55\nok\n",
        "example output"
    );
}
