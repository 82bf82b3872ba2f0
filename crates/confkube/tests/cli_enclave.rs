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

fn vector(rel: &str) -> PathBuf {
    testdata::path(&format!("enclaves/{rel}")).unwrap()
}

fn ok(o: &Output) -> &Output {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const ENCHECAP: &str = "d0c4f2da0b8aba01b5f0a588f0aa45c910f2c9d53806777620f188f3ad4a5290";
const SWISSTRONIK: &str = "fb0c0ced20346be2772af710c55d2e1363d7c04fcced26d1dca9bb7ac57b5118";
const ENARX: &str = "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0";

#[test]
fn measure_every_input_kind() {
    if testdata::root().is_none() {
        return;
    }
    let m = |args: &[&str]| stdout(ok(&confkube(args)));
    let signed = vector("enchecap-sample-enclave/enclave.signed.so");
    assert_eq!(
        m(&["enclave", "measure", s(&signed)]),
        format!("{ENCHECAP}\n")
    );
    let swiss = vector("swisstronik-enclave/enclave.signed.so");
    assert_eq!(
        m(&["enclave", "measure", s(&swiss)]),
        format!("{SWISSTRONIK}\n")
    );
    let sgxs = vector("enarx-sgx-encl/encl.sgxs");
    assert_eq!(m(&["enclave", "measure", s(&sgxs)]), format!("{ENARX}\n"));
    // Unsigned enclave.so + its Enclave.config.xml: the layout sgx_sign builds.
    let unsigned = vector("enchecap-sample-enclave/enclave.so");
    let xml = vector("enchecap-sample-enclave/Enclave.config.xml");
    assert_eq!(
        m(&["enclave", "measure", "--config", s(&xml), s(&unsigned)]),
        format!("{ENCHECAP}\n")
    );
    // Raw image, written as SGXS: byte-identical to the vector's encl.sgxs.
    let d = tmpdir("measure");
    let out = d.join("encl.sgxs");
    let bin = vector("enarx-sgx-encl/encl.bin");
    assert_eq!(
        m(&[
            "enclave",
            "measure",
            "--raw",
            s(&bin),
            "--sgxs-out",
            s(&out)
        ]),
        format!("{ENARX}\n")
    );
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&sgxs).unwrap());
    let j: serde_json::Value =
        serde_json::from_str(&m(&["enclave", "measure", "--format", "json", s(&signed)])).unwrap();
    assert_eq!(
        j,
        serde_json::json!({
            "file": s(&signed), "kind": "sdk-so", "mrenclave": ENCHECAP,
            "enclave_size": "0x1000000", "ssa_frame_size": 1,
            "pages_eadded": 1004, "pages_eextended": 748,
        })
    );
    // Unsigned without --config, a SIGSTRUCT, a missing file: usage errors, exit 2.
    let o = confkube(&["enclave", "measure", s(&unsigned)]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: unsigned SDK enclave (all-zero metadata at offset 0x33bd5): pass its \
             Enclave.config.xml with --config to build the layout sgx_sign would build\n",
            unsigned.display()
        )
    );
    let css = vector("intel-linux-sgx-le-prod-css/le_prod_css.bin");
    let o = confkube(&["enclave", "measure", s(&css)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("this is a SIGSTRUCT, which holds only the expected hash"));
    let o = confkube(&["enclave", "measure", s(&d.join("missing.so"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: cannot open "),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn dump_reports_real_sigstructs_and_fails_on_tampering() {
    if testdata::root().is_none() {
        return;
    }
    let css = vector("intel-linux-sgx-le-prod-css/le_prod_css.bin");
    let o = confkube(&["enclave", "dump", "--format", "json", s(&css)]);
    let v: serde_json::Value = serde_json::from_slice(&ok(&o).stdout).unwrap();
    let ss = &v["sigstruct"];
    assert_eq!(v["kind"], "sigstruct");
    assert_eq!(ss["vendor"], "0x8086");
    assert_eq!(ss["date"], "0x20240811");
    assert_eq!(ss["swdefined"], "0x10");
    assert_eq!(
        (ss["isv_prod_id"].as_u64(), ss["isv_svn"].as_u64()),
        (Some(0x20), Some(7))
    );
    assert_eq!(
        ss["attributes"],
        serde_json::json!({"flags": "0x24", "xfrm": "0x3"})
    );
    assert_eq!(
        ss["enclavehash"],
        "7881af9f9def547da9908c008f29cde9bd78064e36ac7e14c83c294ca4806150"
    );
    assert_eq!(
        ss["mrsigner"],
        "acb77012053e05a63d413b8bbae8fb6c5d73b3f2996d91c43bbbf90959c0f8d4"
    );
    assert_eq!(ss["signature_valid"], true);
    // A signed SDK enclave: three blocks, each verified and matching the measurement.
    let signed = vector("enchecap-sample-enclave/enclave.signed.so");
    let o = confkube(&["enclave", "dump", "--format", "json", s(&signed)]);
    let v: serde_json::Value = serde_json::from_slice(&ok(&o).stdout).unwrap();
    let versions: Vec<_> = v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["sigstruct"]["enclavehash_matches"], true);
            b["version"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(versions, ["2.4", "2.1", "1.4"]);
    assert_eq!(v["mrenclave"], ENCHECAP);
    let text = stdout(ok(&confkube(&["enclave", "dump", s(&signed)])));
    assert!(text.contains("\nmrenclave: d0c4f2da"), "{text}");
    // One flipped ISVSVN bit: the signature no longer verifies, exit 1.
    let d = tmpdir("dump");
    let mut b = std::fs::read(&css).unwrap();
    b[1026] ^= 1;
    let bad = d.join("bad.bin");
    std::fs::write(&bad, b).unwrap();
    let o = confkube(&["enclave", "dump", "--format", "json", s(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sigstruct"]["signature_valid"], false);
    assert_eq!(
        v["sigstruct"]["verify_error"],
        "the RSA signature does not verify"
    );
    let _ = std::fs::remove_dir_all(d);
}

/// The flags that make a key-file or HSM signature of encl.sgxs reproduce encl.ss.
const ENCL_SS_FIELDS: [&str; 8] = [
    "--date",
    "0",
    "--attributes-mask",
    "0",
    "--xfrm-mask",
    "0",
    "--miscmask",
    "0",
];

#[test]
fn sign_and_resign_reproduce_the_vectors_byte_for_byte() {
    if testdata::root().is_none() {
        return;
    }
    let d = tmpdir("sign");
    // SGXS -> SIGSTRUCT, with the enarx key: encl.ss.
    let out = d.join("encl.ss");
    let mut args = vec!["enclave", "sign", "--key"];
    let key = vector("enarx-sgx-encl/encl.pem");
    let sgxs = vector("enarx-sgx-encl/encl.sgxs");
    args.extend([s(&key), s(&sgxs), "--out", s(&out)]);
    args.extend(ENCL_SS_FIELDS);
    let o = confkube(&args);
    ok(&o);
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(vector("enarx-sgx-encl/encl.ss")).unwrap()
    );
    assert_eq!(
        stderr(&o),
        format!(
            "signed {} -> {} (MRENCLAVE {ENARX}, MRSIGNER 2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4)\n",
            sgxs.display(),
            out.display()
        )
    );
    // Re-sign a signed SDK enclave with its own key and no field changes: the same file.
    let signed = vector("enchecap-sample-enclave/enclave.signed.so");
    let sdk_key = vector("enchecap-sample-enclave/Enclave_private_test.pem");
    let resigned = d.join("resigned.so");
    ok(&confkube(&[
        "enclave",
        "sign",
        "--key",
        s(&sdk_key),
        s(&signed),
        "--out",
        s(&resigned),
    ]));
    assert!(std::fs::read(&resigned).unwrap() == std::fs::read(&signed).unwrap());
    // Re-sign with a new ISVSVN: only the SIGSTRUCTs change, and dump verifies them.
    let svn = d.join("svn.so");
    ok(&confkube(&[
        "enclave",
        "sign",
        "--key",
        s(&key),
        s(&signed),
        "--out",
        s(&svn),
        "--isvsvn",
        "3",
    ]));
    let v: serde_json::Value = serde_json::from_slice(
        &ok(&confkube(&["enclave", "dump", "--format", "json", s(&svn)])).stdout,
    )
    .unwrap();
    for b in v["metadata"].as_array().unwrap() {
        assert_eq!(b["sigstruct"]["isv_svn"], 3);
        assert_eq!(b["sigstruct"]["signature_valid"], true);
        assert_eq!(
            b["sigstruct"]["mrsigner"],
            "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"
        );
    }
    // Sign the unsigned enclave.so from its Enclave.config.xml with sgx_sign's DATE: the file
    // sgx_sign wrote.
    let unsigned = vector("enchecap-sample-enclave/enclave.so");
    let xml = vector("enchecap-sample-enclave/Enclave.config.xml");
    let fresh = d.join("fresh.so");
    ok(&confkube(&[
        "enclave",
        "sign",
        "--key",
        s(&sdk_key),
        "--config",
        s(&xml),
        s(&unsigned),
        "--out",
        s(&fresh),
        "--date",
        "20210312",
    ]));
    assert!(std::fs::read(&fresh).unwrap() == std::fs::read(&signed).unwrap());
    // The output may not be the input; a public key cannot sign.
    let o = confkube(&[
        "enclave",
        "sign",
        "--key",
        s(&sdk_key),
        s(&signed),
        "--out",
        s(&signed),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: --out {} is the input; write to a new file\n",
            signed.display()
        )
    );
    let _ = std::fs::remove_dir_all(d);
}

fn openssl_sign(key: &Path, data: &Path, sig: &Path) {
    let o = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", s(key), "-out", s(sig), s(data)])
        .output()
        .expect("openssl is needed for the HSM-flow test (apt-get install openssl)");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn hsm_flow_gendata_openssl_catsig() {
    if testdata::root().is_none() {
        return;
    }
    let d = tmpdir("hsm");
    // SGXS: gendata -> openssl (the external signer) -> catsig == encl.ss.
    let key = vector("enarx-sgx-encl/encl.pem");
    let sgxs = vector("enarx-sgx-encl/encl.sgxs");
    let data = d.join("data.bin");
    let mut args = vec!["enclave", "gendata", s(&sgxs), "--out", s(&data)];
    args.extend(ENCL_SS_FIELDS);
    ok(&confkube(&args));
    let ss = std::fs::read(vector("enarx-sgx-encl/encl.ss")).unwrap();
    let data_bytes = std::fs::read(&data).unwrap();
    assert_eq!(data_bytes.len(), 256);
    assert!(data_bytes[..128] == ss[..128] && data_bytes[128..] == ss[900..1028]);
    let sig = d.join("sig.bin");
    openssl_sign(&key, &data, &sig);
    // The public key is enough for catsig.
    let public = d.join("pub.pem");
    let o = Command::new("openssl")
        .args(["rsa", "-in", s(&key), "-pubout", "-out", s(&public)])
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = d.join("encl.ss");
    let o = confkube(&[
        "enclave",
        "catsig",
        s(&sgxs),
        "--key",
        s(&public),
        "--signature",
        s(&sig),
        "--unsigned",
        s(&data),
        "--out",
        s(&out),
    ]);
    assert_eq!(
        stderr(ok(&o)),
        format!("wrote {} (signature verified)\n", out.display())
    );
    assert!(std::fs::read(&out).unwrap() == ss);
    // SDK enclave: one signature covers all three blocks; catsig rebuilds sgx_sign's file.
    let signed = vector("enchecap-sample-enclave/enclave.signed.so");
    let sdk_key = vector("enchecap-sample-enclave/Enclave_private_test.pem");
    let sdata = d.join("sdk-data.bin");
    ok(&confkube(&[
        "enclave",
        "gendata",
        s(&signed),
        "--out",
        s(&sdata),
    ]));
    let ssig = d.join("sdk-sig.bin");
    openssl_sign(&sdk_key, &sdata, &ssig);
    let sout = d.join("sdk.so");
    ok(&confkube(&[
        "enclave",
        "catsig",
        s(&signed),
        "--key",
        s(&sdk_key),
        "--signature",
        s(&ssig),
        "--unsigned",
        s(&sdata),
        "--out",
        s(&sout),
    ]));
    assert!(std::fs::read(&sout).unwrap() == std::fs::read(&signed).unwrap());
    // A signature by another key, or gendata of another enclave: exit 1, nothing written.
    let wrong = d.join("wrong.ss");
    let o = confkube(&[
        "enclave",
        "catsig",
        s(&sgxs),
        "--key",
        s(&sdk_key),
        "--signature",
        s(&sig),
        "--unsigned",
        s(&data),
        "--out",
        s(&wrong),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: the signature does not verify with this key over this SIGSTRUCT's header \
             and body (wrong key, wrong data, or a little-endian signature where big-endian is \
             expected) (key MRSIGNER 83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e)\n",
            sig.display()
        )
    );
    assert!(!wrong.exists());
    let o = confkube(&[
        "enclave",
        "catsig",
        s(&signed),
        "--key",
        s(&sdk_key),
        "--signature",
        s(&ssig),
        "--unsigned",
        s(&data),
        "--out",
        s(&wrong),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: ENCLAVEHASH {ENARX} is not the measurement {ENCHECAP} of {}; run gendata on this enclave again\n",
            data.display(),
            signed.display()
        )
    );
    assert!(!wrong.exists());
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn mrsigner_of_private_and_public_keys() {
    if testdata::root().is_none() {
        return;
    }
    let key = vector("enchecap-sample-enclave/Enclave_private_test.pem");
    let want = "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e";
    assert_eq!(
        stdout(ok(&confkube(&["enclave", "mrsigner", "--key", s(&key)]))),
        format!("{want}\n")
    );
    let o = confkube(&["enclave", "mrsigner", "--key", s(&key), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&ok(&o).stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"key": s(&key), "private": true, "mrsigner": want})
    );
    let enarx = vector("enarx-sgx-encl/encl.pem");
    assert_eq!(
        stdout(ok(&confkube(&["enclave", "mrsigner", "--key", s(&enarx)]))),
        "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4\n"
    );
    // Not a key: exit 2 naming the file.
    let css = vector("intel-linux-sgx-le-prod-css/le_prod_css.bin");
    let o = confkube(&["enclave", "mrsigner", "--key", s(&css)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(&format!("error: cannot read key {}", css.display())),
        "{}",
        stderr(&o)
    );
    // Usage errors are exit 2 too.
    assert_eq!(confkube(&["enclave", "mrsigner"]).status.code(), Some(2));
}
