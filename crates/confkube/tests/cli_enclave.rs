//! `confkube enclave …` run as a user runs it, against the real vectors of
//! `shared/testdata/enclaves` (outputs and files compared byte for byte, exit codes asserted).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn confkube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(args)
        .output()
        .expect("run confkube")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "confkube-cli-enclave-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A copy of a vector with one bit flipped (the shared file is never touched).
fn flipped(dir: &Path, rel: &str, offset: usize, bit: u8) -> PathBuf {
    let mut b = testdata::read(rel).unwrap();
    b[offset] ^= 1 << bit;
    let p = dir.join(format!("flip-{offset:x}-{bit}.so"));
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn damaged_metadata_fails_dump_with_1_and_measure_with_2() {
    if testdata::root().is_none() {
        return;
    }
    let d = tmpdir("damaged");
    let encl = "enclaves/enchecap-sample-enclave/enclave.signed.so";
    for (byte, bit) in [(0x33bd5, 0), (0x33bd9, 5), (0x33bdc, 7)] {
        let p = flipped(&d, encl, byte, bit);
        let mut magic = 0x86a8_0294_635d_0e4c_u64.to_le_bytes();
        magic[byte - 0x33bd5] ^= 1 << bit;
        let msg = format!(
            "malformed .note.sgxmeta at offset 0x33bd5: expected the metadata magic \
             0x86a80294635d0e4c (or an all-zero descriptor: an unsigned enclave), found {:#018x}",
            u64::from_le_bytes(magic)
        );
        let o = confkube(&["enclave", "dump", s(&p)]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert_eq!(stderr(&o), format!("error: {}: {msg}\n", p.display()));
        let o = confkube(&["enclave", "measure", s(&p)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "error: {}: cannot read the SGX SDK enclave: {msg}\n",
                p.display()
            )
        );
    }
    let p = flipped(
        &d,
        "enclaves/swisstronik-enclave/enclave.signed.so",
        0xe1182,
        0,
    );
    let msg = "malformed metadata block at offset 0xe1171: size 0x1128 runs past the end of the \
               block's data (0x1028) over a non-zero byte at offset 0xe2199";
    let o = confkube(&["enclave", "dump", s(&p)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("error: {}: {msg}\n", p.display()));
    let o = confkube(&["enclave", "measure", s(&p)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).ends_with(&format!("{msg}\n")), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn dump_shows_a_block_of_an_unknown_metadata_version() {
    let Some(mut b) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    // Version 4.4 in the first block: not replayable, but its SIGSTRUCT is still shown.
    b[0x33bd5 + 12..0x33bd5 + 16].copy_from_slice(&4u32.to_le_bytes());
    let d = tmpdir("v44");
    let p = d.join("v44.so");
    std::fs::write(&p, &b).unwrap();
    let o = confkube(&["enclave", "dump", "--format", "json", s(&p)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &v["metadata"];
    assert_eq!(m[0]["version"], "4.4");
    assert_eq!(m[0]["sigstruct"]["signature_valid"], true);
    assert_eq!(
        m[0]["sigstruct"]["measured_mrenclave"],
        serde_json::Value::Null
    );
    assert_eq!(
        m[0]["sigstruct"]["enclavehash"],
        "d0c4f2da0b8aba01b5f0a588f0aa45c910f2c9d53806777620f188f3ad4a5290"
    );
    assert_eq!(m[1]["sigstruct"]["enclavehash_matches"], true);
    let o = confkube(&["enclave", "measure", s(&p)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).ends_with(
            "unsupported metadata version 4.4 at offset 0x33bd5: the loader replay supports 1.3+, 2.x, 3.x, 11.x, 13.x\n"
        ),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(d);
}
