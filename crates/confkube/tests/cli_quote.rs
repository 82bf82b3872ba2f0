//! `confkube quote verify` and `confkube quote testkit`, run as a user runs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn confkube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confkube"))
        .args(args)
        .output()
        .expect("run confkube")
}

fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SETS: &[&str] = &[
    "dcap-qvl-sgx",
    "automata-dcap-attestation",
    "intel-qvl-synthetic",
    "mobilecoin-attestation",
    "oasis-core",
    "tdx/dcap-qvl",
];

#[test]
fn every_real_case_through_the_cli_contract() {
    let Some(root) = testdata::path("dcap") else {
        return;
    };
    let mut n = 0;
    for set in SETS {
        let dir = root.join(set);
        let exp: Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        for case in exp["cases"].as_array().unwrap() {
            let p = |k: &str| dir.join(case[k].as_str().unwrap()).display().to_string();
            let (quote, coll, anchor) = (p("quote"), p("collateral"), p("trust_anchor"));
            let at = case["verification_time"].as_str().unwrap();
            let mut args = vec![
                "quote",
                "verify",
                &quote,
                "--collateral",
                &coll,
                "--root-ca",
                &anchor,
                "--at",
                at,
                "--format",
                "json",
            ];
            for extra in case["extra_args"].as_array().into_iter().flatten() {
                args.push(extra.as_str().unwrap());
            }
            let out = confkube(&args);
            let got = stdout_json(&out);
            let want = &case["expected"];
            let name = case["case"].as_str().unwrap();
            if want["verified"] == true {
                assert_eq!(out.status.code(), Some(0), "{name}");
                for (k, v) in want.as_object().unwrap() {
                    assert_eq!(&got[k], v, "{name}: {k}");
                }
            } else {
                assert_eq!(out.status.code(), Some(1), "{name}");
                assert_eq!(got["error"], want["error"], "{name}");
                assert_eq!(got["verified"], false);
                assert!(got["message"].as_str().unwrap().len() > 10);
            }
            n += 1;
        }
    }
    assert!(n >= 20);
}

#[test]
fn tdx_quote_text_output_names_the_td_fields() {
    let Some(dir) = testdata::path("dcap/tdx/dcap-qvl") else {
        return;
    };
    let q = dir.join("tdx_quote").display().to_string();
    let c = dir.join("tdx_quote_collateral.json").display().to_string();
    let out = confkube(&[
        "quote",
        "verify",
        &q,
        "--collateral",
        &c,
        "--at",
        "1751328000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "(TDX trust domain)",
        "tcb status      UpToDate (platform UpToDate, TDX module UpToDate, QE UpToDate)",
        "mr_td           91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
        "td_attributes   0000001000000000   xfam e702060000000000",
        "padding         70 zero bytes after the signature data",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    // A non-zero byte in the padding is a malformed quote.
    let mut b = std::fs::read(dir.join("tdx_quote")).unwrap();
    *b.last_mut().unwrap() = 1;
    let tmp = tmpdir("tdx-padding");
    let bad = tmp.join("q");
    std::fs::write(&bad, &b).unwrap();
    let out = confkube(&[
        "quote",
        "verify",
        bad.to_str().unwrap(),
        "--collateral",
        &c,
        "--at",
        "1751328000",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let j = stdout_json(&out);
    assert_eq!(j["error"], "malformed-quote");
    assert_eq!(
        j["message"],
        "malformed quote: 70 trailing bytes after the signature data are not zero padding \
         (non-zero byte at offset 5005)"
    );
}

#[test]
fn default_root_is_intel_and_inputs_may_be_hex_or_base64() {
    let Some(dir) = testdata::path("dcap/automata-dcap-attestation/icelake-00606A000000") else {
        return;
    };
    let coll = dir.join("derived_dcap_qvl_collateral.json");
    let coll = coll.to_str().unwrap();
    // quotev3.hex is the upstream hex text of the same quote as derived_quotev3.bin.
    let hex = dir.join("quotev3.hex");
    let out = confkube(&[
        "quote",
        "verify",
        hex.to_str().unwrap(),
        "--collateral",
        coll,
        "--at",
        "1755648000",
        "--format",
        "json",
    ]);
    let j = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{j}");
    assert_eq!(j["tcb_status"], "SWHardeningNeeded");
    assert_eq!(
        j["mrenclave"],
        "a4f45c39dac622cb1dd32ddb35a52ec92db41d0fa88a1c911c49e59c534f61cd"
    );

    use base64::Engine as _;
    let raw = std::fs::read(dir.join("derived_quotev3.bin")).unwrap();
    let t = tmpdir("b64");
    let b64 = t.join("quote.b64");
    std::fs::write(&b64, base64::engine::general_purpose::STANDARD.encode(&raw)).unwrap();
    let out = confkube(&[
        "quote",
        "verify",
        b64.to_str().unwrap(),
        "--collateral",
        coll,
        "--at",
        "2025-08-20T00:00:00Z",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("VERIFIED  "), "{text}");
    assert!(
        text.contains(
            "  tcb status      SWHardeningNeeded (platform SWHardeningNeeded, QE UpToDate)"
        )
    );
}

#[test]
fn batch_mode_one_result_per_line() {
    let Some(root) = testdata::path("dcap") else {
        return;
    };
    let t = tmpdir("batch");
    let d = root.join("dcap-qvl-sgx");
    let q = d.join("sgx_quote");
    let c = d.join("sgx_quote_collateral.json");
    let lines = [
        serde_json::json!({"quote": q, "collateral": c, "at": "2025-07-01T00:00:00Z"}),
        serde_json::json!({"quote": q, "collateral": c, "at": 1754006400}),
        serde_json::json!({"quote": q, "collateral": c, "at": "2025-07-01T00:00:00Z",
                           "root_ca": root.join("intel-qvl-synthetic/trustedRootCaCert.pem")}),
    ];
    let batch = t.join("batch.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&batch, text).unwrap();
    let out = confkube(&["quote", "verify", "--batch", batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0]["tcb_status"],
        "ConfigurationAndSWHardeningNeeded"
    );
    assert_eq!(results[1]["error"], "collateral-expired");
    assert_eq!(results[2]["error"], "untrusted-root");

    // A line that cannot be read is reported on its own line, and the exit code is 2.
    std::fs::write(&batch, format!("{}\n{{\"quote\": 1}}\n", lines[0])).unwrap();
    let out = confkube(&["quote", "verify", "--batch", batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    let second: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["verified"], false);
    assert!(
        second["input_error"]
            .as_str()
            .unwrap()
            .contains("batch.jsonl:2: expected {\"quote\""),
        "{second}"
    );

    // A line whose quote file is JSON (an attestation request) is an input error too.
    let request = t.join("request.json");
    std::fs::write(&request, r#"{"quote": "AwACAA"}"#).unwrap();
    let line = serde_json::json!({"quote": request, "collateral": c});
    std::fs::write(&batch, format!("{line}\n")).unwrap();
    let out = confkube(&["quote", "verify", "--batch", batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = first["input_error"].as_str().unwrap();
    assert!(
        msg.ends_with(&format!(
            "batch.jsonl:1: quote {}: QUOTE looks like JSON (an attestation request?) — pass the \
             quote bytes, or use the base64 text of its \"quote\" field (jq -r .quote FILE | \
             confkube quote verify - …)",
            request.display()
        )),
        "{msg}"
    );
}

/// A batch longer than one unit of work (64 lines) and than the read-ahead window: results
/// come out in input order, one per line, whatever thread verified them.
#[test]
fn batch_results_keep_input_order_across_threads() {
    let Some(root) = testdata::path("dcap") else {
        return;
    };
    let t = tmpdir("batch-order");
    let d = root.join("dcap-qvl-sgx");
    let q = d.join("sgx_quote");
    let c = d.join("sgx_quote_collateral.json");
    let kinds = [
        serde_json::json!({"quote": q, "collateral": c, "at": "2025-07-01T00:00:00Z"}).to_string(),
        serde_json::json!({"quote": q, "collateral": c, "at": 1754006400}).to_string(),
        r#"{"quote": 1}"#.to_string(),
        serde_json::json!({"quote": q, "collateral": t.join("missing.json")}).to_string(),
    ];
    let n = 1000;
    let text: String = (0..n).map(|i| format!("{}\n", kinds[i % 4])).collect();
    let batch = t.join("batch.jsonl");
    std::fs::write(&batch, text).unwrap();
    let out = confkube(&["quote", "verify", "--batch", batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n);
    for (i, r) in lines.iter().enumerate() {
        match i % 4 {
            0 => assert_eq!(
                r["tcb_status"], "ConfigurationAndSWHardeningNeeded",
                "line {i}"
            ),
            1 => assert_eq!(r["error"], "collateral-expired", "line {i}"),
            2 => assert!(
                r["input_error"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("batch.jsonl:{}: expected {{\"quote\"", i + 1)),
                "line {i}: {r}"
            ),
            _ => assert!(
                r["input_error"].as_str().unwrap().contains(&format!(
                    "batch.jsonl:{}: reading the collateral file {}",
                    i + 1,
                    t.join("missing.json").display()
                )),
                "line {i}: {r}"
            ),
        }
    }
}

#[test]
fn usage_and_input_errors_exit_2_and_name_the_input() {
    let t = tmpdir("usage");
    let bad = t.join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let q = t.join("q.bin");
    std::fs::write(&q, [3u8, 0, 2, 0]).unwrap();
    let request = t.join("request.json");
    std::fs::write(
        &request,
        r#"{"quote": "AwACAAAAAAA", "runtimeData": {"data": "aGk", "dataType": "Binary"}}"#,
    )
    .unwrap();
    let pem = t.join("chain.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = t.join("notes.txt");
    std::fs::write(&text, "my quote is attached\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "quote",
                "verify",
                request.to_str().unwrap(),
                "--collateral",
                bad.to_str().unwrap(),
            ],
            "QUOTE looks like JSON (an attestation request?) — pass the quote bytes, or use the \
             base64 text of its \"quote\" field (jq -r .quote FILE | confkube quote verify - …)",
        ),
        (
            vec![
                "quote",
                "verify",
                pem.to_str().unwrap(),
                "--collateral",
                bad.to_str().unwrap(),
            ],
            "QUOTE looks like PEM (CERTIFICATE) — pass the quote bytes, or hex or base64 text of \
             them; certificates belong in --collateral or --root-ca",
        ),
        (
            vec![
                "quote",
                "verify",
                text.to_str().unwrap(),
                "--collateral",
                bad.to_str().unwrap(),
            ],
            "QUOTE is text but neither hex nor base64 (it starts with \"my quote is attached\")",
        ),
        (
            vec![
                "quote",
                "verify",
                "/nonexistent/q",
                "--collateral",
                bad.to_str().unwrap(),
            ],
            "error: reading the quote file /nonexistent/q:",
        ),
        (
            vec![
                "quote",
                "verify",
                q.to_str().unwrap(),
                "--collateral",
                bad.to_str().unwrap(),
            ],
            "expected dcap-qvl QuoteCollateralV3 JSON",
        ),
        (
            vec![
                "quote",
                "verify",
                q.to_str().unwrap(),
                "--collateral",
                bad.to_str().unwrap(),
                "--root-ca",
                q.to_str().unwrap(),
            ],
            "expected dcap-qvl QuoteCollateralV3 JSON",
        ),
        (
            vec![
                "quote",
                "verify",
                q.to_str().unwrap(),
                "--collateral",
                "x",
                "--at",
                "July",
            ],
            "\"July\" is neither RFC 3339",
        ),
        (vec!["quote", "verify"], "required"),
    ];
    for (args, want) in cases {
        let out = confkube(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

fn testkit(dir: &Path, extra: &[&str]) {
    let mut args = vec!["quote", "testkit", "--out", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = confkube(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is not Intel's: nothing trusts it unless you pass it with --root-ca"));
}

#[test]
fn testkit_quotes_verify_only_under_their_explicit_root() {
    let t = tmpdir("testkit");
    testkit(
        &t,
        &[
            "--mrenclave",
            &"ab".repeat(32),
            "--runtime-data",
            "hello",
            "--debug",
            "--tcb-status",
            "OutOfDate",
            "--quote-version",
            "4",
        ],
    );
    let f = |n: &str| t.join(n).display().to_string();
    let (q, c, r) = (f("quote.bin"), f("collateral.json"), f("root-ca.pem"));
    let out = confkube(&[
        "quote",
        "verify",
        &q,
        "--collateral",
        &c,
        "--root-ca",
        &r,
        "--format",
        "json",
    ]);
    let j = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{j}");
    assert_eq!(j["tcb_status"], "OutOfDate");
    assert_eq!(j["mrenclave"], "ab".repeat(32));
    assert_eq!(j["debug"], true);
    // SHA-256("hello") then 32 zero bytes.
    assert_eq!(
        j["report_data"],
        format!(
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824{}",
            "0".repeat(64)
        )
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(t.join("testkit.json")).unwrap()).unwrap();
    assert_eq!(summary["expected"]["report_data"], j["report_data"]);
    // The same quote under the default (Intel) root is untrusted.
    let out = confkube(&[
        "quote",
        "verify",
        &q,
        "--collateral",
        &c,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["error"], "untrusted-root");
    // The base64url copy is the same quote.
    let b = f("quote.b64url");
    let out = confkube(&["quote", "verify", &b, "--collateral", &c, "--root-ca", &r]);
    assert_eq!(out.status.code(), Some(0));
}

/// Intel QVL's name rule through the CLI: a private PKI whose TCB signer is named
/// `Synthetic SGX TCB Signing` verifies under `--root-ca`; one named `Foo` fails with
/// `untrusted-root` (a name problem, not a signature problem).
#[test]
fn private_pki_names_follow_qvl_phrase_rules() {
    let verify = |t: &Path| {
        let f = |n: &str| t.join(n).display().to_string();
        let (q, c, r) = (f("quote.bin"), f("collateral.json"), f("root-ca.pem"));
        confkube(&[
            "quote",
            "verify",
            &q,
            "--collateral",
            &c,
            "--root-ca",
            &r,
            "--format",
            "json",
        ])
    };
    let t = tmpdir("testkit-names-ok");
    testkit(
        &t,
        &[
            "--root-cn",
            "Synthetic SGX Root CA",
            "--pck-ca-cn",
            "Synthetic SGX PCK Processor CA",
            "--pck-cn",
            "Synthetic SGX PCK Certificate",
            "--tcb-signer-cn",
            "Synthetic SGX TCB Signing",
        ],
    );
    let out = verify(&t);
    let j = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{j}");
    assert_eq!(j["verified"], true);

    let t = tmpdir("testkit-names-bad");
    testkit(&t, &["--tcb-signer-cn", "Foo"]);
    let out = verify(&t);
    assert_eq!(out.status.code(), Some(1));
    let j = stdout_json(&out);
    assert_eq!(j["error"], "untrusted-root");
    assert_eq!(
        j["message"],
        "untrusted root: in the TCB info issuer chain, the TCB Signing certificate's common name \
         \"Foo\" does not contain \"SGX TCB Signing\" (Intel QVL's name rule)"
    );
}

#[test]
fn testkit_rejects_bad_arguments() {
    let t = tmpdir("testkit-bad");
    let out = confkube(&[
        "quote",
        "testkit",
        "--out",
        t.to_str().unwrap(),
        "--tcb-status",
        "Fine",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown TCB status \"Fine\""));
    let out = confkube(&[
        "quote",
        "testkit",
        "--out",
        t.to_str().unwrap(),
        "--mrenclave",
        "abcd",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 bytes; expected 32"));
}
