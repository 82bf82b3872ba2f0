//! `confkube quote testkit --out DIR`: a test PKI, collateral and a quote, written to files.
//! The generation is `dcap-testkit`, linked only with the `testkit` cargo feature (default on;
//! a production build turns it off and this command then says so).

use super::quote::parse_time;
use anyhow::Result;
#[cfg(feature = "testkit")]
use anyhow::{Context, bail};
use clap::Args;
use dcap::TcbStatus;
#[cfg(feature = "testkit")]
use dcap_testkit::{CollateralParams, PkiNames, PkiParams, QuoteParams, Testkit};
#[cfg(feature = "testkit")]
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

/// Generate a complete test PKI (root, PCK CA, PCK certificate with SGX extensions, TCB signer,
/// CRLs), collateral and a quote. The root is NEVER trusted unless passed with --root-ca.
#[derive(Debug, Args)]
pub(crate) struct TestkitArgs {
    /// Directory to write root-ca.pem, collateral.json, quote.bin, quote.b64url, testkit.json.
    #[arg(long)]
    out: PathBuf,
    /// MRENCLAVE (64 hex digits). Default: a fixed testkit value.
    #[arg(long, value_parser = hex32)]
    mrenclave: Option<[u8; 32]>,
    /// MRSIGNER (64 hex digits). Default: a fixed testkit value.
    #[arg(long, value_parser = hex32)]
    mrsigner: Option<[u8; 32]>,
    /// Report data: up to 64 bytes of hex, zero-padded.
    #[arg(long, value_parser = hex64, conflicts_with = "runtime_data")]
    report_data: Option<[u8; 64]>,
    /// Runtime data to bind: report data = SHA-256(this text's bytes) followed by 32 zero bytes,
    /// as the attestation service's runtimeData check expects.
    #[arg(long)]
    runtime_data: Option<String>,
    /// Mark the enclave as a debug enclave.
    #[arg(long)]
    debug: bool,
    /// ISVPRODID.
    #[arg(long, default_value_t = 1)]
    isv_prod_id: u16,
    /// ISVSVN.
    #[arg(long, default_value_t = 1)]
    isv_svn: u16,
    /// Platform TCB status the PCK certificate lands on: UpToDate, SWHardeningNeeded,
    /// ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate,
    /// OutOfDateConfigurationNeeded, Revoked, or none (no TCB level matches).
    #[arg(long, default_value = "UpToDate", value_parser = tcb_choice)]
    tcb_status: TcbChoice,
    /// Quote version (3 or 4).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=4))]
    quote_version: u16,
    /// Issue time of the collateral (RFC 3339 or Unix seconds; default now). Collateral is
    /// valid for 30 days from it, certificates from a day before it for 7 years.
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    /// Common name of the root CA (Intel QVL's rule: it must contain "SGX Root CA").
    #[arg(long, value_name = "NAME")]
    root_cn: Option<String>,
    /// Common name of the PCK CA (Intel QVL's rule: it must contain "CA").
    #[arg(long, value_name = "NAME")]
    pck_ca_cn: Option<String>,
    /// Common name of the PCK certificate (it must contain "SGX PCK Certificate").
    #[arg(long, value_name = "NAME")]
    pck_cn: Option<String>,
    /// Common name of the TCB Signing certificate (it must contain "SGX TCB Signing").
    #[arg(long, value_name = "NAME")]
    tcb_signer_cn: Option<String>,
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "testkit"), allow(dead_code))]
struct TcbChoice(Option<TcbStatus>);

fn tcb_choice(s: &str) -> Result<TcbChoice, String> {
    if s == "none" {
        return Ok(TcbChoice(None));
    }
    TcbStatus::parse(s)
        .map(|t| TcbChoice(Some(t)))
        .ok_or_else(|| {
            let names: Vec<_> = TcbStatus::ALL.iter().map(|t| t.as_str()).collect();
            format!(
                "unknown TCB status {s:?}; one of {}, none",
                names.join(", ")
            )
        })
}

fn hex_n<const N: usize>(s: &str, pad: bool) -> Result<[u8; N], String> {
    let b = hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("not hex: {e}"))?;
    if b.len() > N || (!pad && b.len() != N) {
        return Err(format!("{} bytes; expected {N}", b.len()));
    }
    let mut out = [0u8; N];
    for (o, v) in out.iter_mut().zip(b) {
        *o = v;
    }
    Ok(out)
}

fn hex32(s: &str) -> Result<[u8; 32], String> {
    hex_n::<32>(s, false)
}

fn hex64(s: &str) -> Result<[u8; 64], String> {
    hex_n::<64>(s, true)
}

#[cfg(feature = "testkit")]
fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))
}

/// What `quote testkit` says in a build without the `testkit` feature.
#[cfg(not(feature = "testkit"))]
pub(crate) const TESTKIT_NEEDS_FEATURE: &str = "quote testkit needs the `testkit` cargo feature, \
     and this confkube was built without it (--no-default-features, a production build)";

#[cfg(not(feature = "testkit"))]
pub(crate) fn run(_: TestkitArgs) -> Result<ExitCode> {
    anyhow::bail!("{TESTKIT_NEEDS_FEATURE}")
}

#[cfg(feature = "testkit")]
pub(crate) fn run(a: TestkitArgs) -> Result<ExitCode> {
    let at =
        a.at.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let mut pki = PkiParams::new(at, a.tcb_status.0);
    let defaults = PkiNames::default();
    pki.names = PkiNames {
        root: a.root_cn.clone().unwrap_or(defaults.root),
        pck_ca: a.pck_ca_cn.clone().unwrap_or(defaults.pck_ca),
        pck: a.pck_cn.clone().unwrap_or(defaults.pck),
        tcb_signer: a.tcb_signer_cn.clone().unwrap_or(defaults.tcb_signer),
    };
    let kit = Testkit::generate(pki).context("generating the test PKI")?;
    let defaults = QuoteParams::default();
    let report_data = match (&a.report_data, &a.runtime_data) {
        (Some(rd), _) => *rd,
        (None, Some(text)) => dcap_testkit::demo::report_data_for(text.as_bytes()),
        (None, None) => [0u8; 64],
    };
    let qp = QuoteParams {
        version: a.quote_version,
        mrenclave: a.mrenclave.unwrap_or(defaults.mrenclave),
        mrsigner: a.mrsigner.unwrap_or(defaults.mrsigner),
        report_data,
        debug: a.debug,
        isv_prod_id: a.isv_prod_id,
        isv_svn: a.isv_svn,
        qe_isv_svn: defaults.qe_isv_svn,
    };
    let cp = CollateralParams::new(at);
    let coll = kit.collateral(&cp).context("generating collateral")?;
    let quote = kit.quote(&qp).context("generating the quote")?;

    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {} exists and is not a directory", a.out.display());
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("creating the directory {}", a.out.display()))?;
    write(&a.out, "root-ca.pem", kit.root_pem().as_bytes())?;
    let coll_json = serde_json::to_string_pretty(&coll).context("encoding collateral")?;
    write(&a.out, "collateral.json", coll_json.as_bytes())?;
    write(&a.out, "quote.bin", &quote)?;
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&quote);
        write(&a.out, "quote.b64url", b64.as_bytes())?;
    }
    let summary = serde_json::json!({
        "warning": "TEST PKI: this root is not Intel's and is trusted only when passed with --root-ca",
        "root_ca": "root-ca.pem",
        "collateral": "collateral.json",
        "quote": "quote.bin",
        "quote_b64url": "quote.b64url",
        "runtime_data": a.runtime_data,
        "valid_from": at,
        "valid_until": cp.next_update,
        "expected": {
            "tcb_status": a.tcb_status.0.map(|t| t.as_str()),
            "mrenclave": hex::encode(qp.mrenclave),
            "mrsigner": hex::encode(qp.mrsigner),
            "isv_prod_id": qp.isv_prod_id,
            "isv_svn": qp.isv_svn,
            "debug": qp.debug,
            "report_data": hex::encode(qp.report_data),
            "fmspc": hex::encode(kit.params().fmspc),
        }
    });
    write(
        &a.out,
        "testkit.json",
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let d = a.out.display();
    println!("wrote a TEST PKI, collateral and a quote to {d}/");
    println!(
        "  the root ({d}/root-ca.pem) is not Intel's: nothing trusts it unless you pass it with \
         --root-ca"
    );
    println!(
        "  verify: confkube quote verify {d}/quote.bin --collateral {d}/collateral.json \
         --root-ca {d}/root-ca.pem"
    );
    Ok(ExitCode::SUCCESS)
}
