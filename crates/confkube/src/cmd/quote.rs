//! `confkube quote verify` and `confkube quote testkit`.
//!
//! Reads files, decodes inputs, calls the pure verifier, prints the DESIGN.md §4 result shape.
//! Exit codes: 0 verified, 1 verification failed, 2 usage or I/O error.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use dcap::{Collateral, TrustAnchor, VerifiedQuote, Verifier, VerifyOptions};
use serde::Deserialize;
use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Verify SGX DCAP quotes, or generate a test PKI with quotes for relying parties.
#[derive(Debug, Args)]
pub(crate) struct QuoteArgs {
    #[command(subcommand)]
    command: QuoteCommand,
}

#[derive(Debug, Subcommand)]
enum QuoteCommand {
    /// Verify an SGX DCAP quote against collateral (exit 0 verified, 1 not verified, 2 error).
    Verify(VerifyArgs),
    /// Generate a test PKI, collateral and quotes, for building relying parties without SGX.
    Testkit(super::testkit::TestkitArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable.
    Text,
    /// One JSON object per quote.
    Json,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The quote: raw bytes, or hex or base64 text (detected); `-` reads standard input.
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    quote: Option<PathBuf>,
    /// Collateral in the dcap-qvl QuoteCollateralV3 JSON encoding.
    #[arg(long, required_unless_present = "batch")]
    collateral: Option<PathBuf>,
    /// Verification time: RFC 3339 (2025-07-01T00:00:00Z) or Unix seconds. Default: now.
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    /// Trust anchor certificate (DER or PEM). Default: the embedded Intel SGX Root CA key.
    #[arg(long)]
    root_ca: Option<PathBuf>,
    /// Accept collateral without CRLs (revocation is then not checked, and the result says so).
    #[arg(long)]
    allow_missing_crls: bool,
    /// Verify many quotes: JSON Lines of {"quote","collateral","at","root_ca"} (paths relative
    /// to the batch file); one result per output line.
    #[arg(long)]
    batch: Option<PathBuf>,
    /// Output format (default: text for one quote, json for a batch).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// Parses RFC 3339 or Unix seconds.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| {
            format!("{s:?} is neither RFC 3339 (e.g. 2025-07-01T00:00:00Z) nor Unix seconds: {e}")
        })
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Decodes a quote given as raw bytes, or as hex or base64 (standard or URL-safe) text.
pub(crate) fn decode_quote_input(bytes: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return bytes.to_vec();
    };
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return bytes.to_vec();
    }
    let hex_body = compact.strip_prefix("0x").unwrap_or(&compact);
    if hex_body.len().is_multiple_of(2)
        && hex_body.bytes().all(|b| b.is_ascii_hexdigit())
        && let Ok(b) = hex::decode(hex_body)
    {
        return b;
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(&compact).ok())
        .unwrap_or_else(|| bytes.to_vec())
}

fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .with_context(|| format!("reading the {what} from standard input"))?;
        return Ok(b);
    }
    std::fs::read(path).with_context(|| format!("reading the {what} file {}", path.display()))
}

pub(crate) fn load_collateral(path: &Path) -> Result<Collateral> {
    let bytes = read_input(path, "collateral")?;
    Collateral::from_json(&bytes).with_context(|| {
        format!(
            "collateral {}: expected dcap-qvl QuoteCollateralV3 JSON (PEM chains, hex CRLs, \
             the signed tcbInfo/enclaveIdentity text, hex signatures)",
            path.display()
        )
    })
}

pub(crate) fn load_anchor(path: Option<&Path>) -> Result<TrustAnchor> {
    match path {
        None => Ok(TrustAnchor::intel_sgx_root()),
        Some(p) => {
            let bytes = read_input(p, "root CA")?;
            TrustAnchor::from_certificate(&bytes).with_context(|| {
                format!("root CA {}: expected a DER or PEM certificate", p.display())
            })
        }
    }
}

/// One verification's inputs, resolved and read.
struct Job {
    label: String,
    quote: Vec<u8>,
    collateral: Collateral,
    anchor: TrustAnchor,
    at: i64,
}

fn print_result(
    out: &mut impl Write,
    format: Format,
    label: &str,
    result: &Result<VerifiedQuote, dcap::VerifyError>,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            let v = match result {
                Ok(v) => dcap::success_json(v),
                Err(e) => dcap::failure_json(e),
            };
            writeln!(out, "{v}")
        }
        Format::Text => match result {
            Ok(v) => {
                let r = v.report();
                writeln!(out, "VERIFIED  {label}")?;
                writeln!(
                    out,
                    "  tcb status      {} (platform {}, QE {})",
                    v.tcb_status(),
                    v.platform_tcb_status(),
                    v.qe_tcb_status()
                )?;
                let adv = if v.advisory_ids().is_empty() {
                    "none".to_string()
                } else {
                    v.advisory_ids().join(", ")
                };
                writeln!(out, "  advisories      {adv}")?;
                writeln!(out, "  mrenclave       {}", r.mr_enclave)?;
                writeln!(out, "  mrsigner        {}", r.mr_signer)?;
                writeln!(
                    out,
                    "  isv_prod_id     {}   isv_svn {}",
                    r.isv_prod_id, r.isv_svn
                )?;
                let debug = if v.debug() {
                    "YES (debug enclave: its memory can be read; policy decides)"
                } else {
                    "no"
                };
                writeln!(out, "  debug           {debug}")?;
                writeln!(out, "  report_data     {}", r.report_data)?;
                writeln!(out, "  fmspc           {}", hex::encode(v.fmspc()))?;
                if !v.revocation_checked() {
                    writeln!(
                        out,
                        "  revocation      NOT CHECKED (collateral without CRLs, allowed by \
                         --allow-missing-crls)"
                    )?;
                }
                Ok(())
            }
            Err(e) => {
                writeln!(out, "NOT VERIFIED  {label}")?;
                writeln!(out, "  error           {}", e.code())?;
                writeln!(out, "  message         {e}")
            }
        },
    }
}

fn run_verify(a: VerifyArgs) -> Result<ExitCode> {
    let options = VerifyOptions::default().allow_missing_crls(a.allow_missing_crls);
    let verifier = Verifier::new(options);
    if let Some(batch) = &a.batch {
        return run_batch(&verifier, batch, &a);
    }
    let (Some(quote_path), Some(coll_path)) = (&a.quote, &a.collateral) else {
        bail!("QUOTE and --collateral are required (or --batch FILE.jsonl)");
    };
    let job = Job {
        label: quote_path.display().to_string(),
        quote: decode_quote_input(&read_input(quote_path, "quote")?),
        collateral: load_collateral(coll_path)?,
        anchor: load_anchor(a.root_ca.as_deref())?,
        at: a.at.unwrap_or_else(now_unix),
    };
    let result = verifier.verify(&job.quote, &job.collateral, job.at, &job.anchor);
    let mut out = std::io::stdout().lock();
    print_result(
        &mut out,
        a.format.unwrap_or(Format::Text),
        &job.label,
        &result,
    )
    .context("writing the result")?;
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine {
    quote: PathBuf,
    collateral: PathBuf,
    #[serde(default)]
    at: Option<Value>,
    #[serde(default)]
    root_ca: Option<PathBuf>,
}

fn batch_job(line: &str, base: &Path, default_at: Option<i64>) -> Result<Job> {
    let l: BatchLine = serde_json::from_str(line).context(
        r#"expected {"quote": PATH, "collateral": PATH, "at"?: TIME, "root_ca"?: PATH}"#,
    )?;
    let at = match l.at {
        None | Some(Value::Null) => default_at.unwrap_or_else(now_unix),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| anyhow!("\"at\" {n} is not whole seconds"))?,
        Some(Value::String(s)) => parse_time(&s).map_err(|e| anyhow!("\"at\": {e}"))?,
        Some(other) => bail!("\"at\" must be RFC 3339 text or Unix seconds, not {other}"),
    };
    let quote_path = base.join(&l.quote);
    Ok(Job {
        label: quote_path.display().to_string(),
        quote: decode_quote_input(&read_input(&quote_path, "quote")?),
        collateral: load_collateral(&base.join(&l.collateral))?,
        anchor: load_anchor(l.root_ca.map(|p| base.join(p)).as_deref())?,
        at,
    })
}

fn run_batch(verifier: &Verifier, batch: &Path, a: &VerifyArgs) -> Result<ExitCode> {
    if a.collateral.is_some() || a.root_ca.is_some() {
        bail!("--batch takes collateral and root_ca from each line; drop --collateral/--root-ca");
    }
    let file = std::fs::File::open(batch)
        .with_context(|| format!("opening the batch file {}", batch.display()))?;
    let base = batch.parent().unwrap_or(Path::new("."));
    let format = a.format.unwrap_or(Format::Json);
    let mut out = std::io::stdout().lock();
    let (mut failed, mut errors) = (0u64, 0u64);
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {} line {}", batch.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match batch_job(&line, base, a.at) {
            Ok(job) => {
                let r = verifier.verify(&job.quote, &job.collateral, job.at, &job.anchor);
                failed += u64::from(r.is_err());
                print_result(&mut out, format, &job.label, &r)?;
            }
            Err(e) => {
                errors += 1;
                let msg = format!("{}:{}: {e:#}", batch.display(), i + 1);
                match format {
                    // Not a verification result: no error CODE (the codes are only for quotes
                    // that were verified), but still one object on this line.
                    Format::Json => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"verified": false, "input_error": msg})
                    )?,
                    Format::Text => writeln!(out, "ERROR  {msg}")?,
                }
            }
        }
    }
    Ok(match (errors, failed) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

pub(crate) fn run(args: QuoteArgs) -> Result<ExitCode> {
    match args.command {
        QuoteCommand::Verify(a) => run_verify(a),
        QuoteCommand::Testkit(a) => super::testkit::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_input_detection() {
        let raw = vec![3u8, 0, 2, 0, 0xff, 0x10];
        assert_eq!(decode_quote_input(&raw), raw);
        assert_eq!(decode_quote_input(b"03000200ff10\n"), raw);
        assert_eq!(decode_quote_input(b"0x03000200FF10"), raw);
        assert_eq!(decode_quote_input(b"AwACAP8Q"), raw);
        assert_eq!(decode_quote_input(b"AwACAP8Q\n"), raw);
        assert_eq!(decode_quote_input(b"AwACAP8Q"), raw);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff, 0xfe]);
        assert_eq!(decode_quote_input(url.as_bytes()), vec![0xfb, 0xff, 0xfe]);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1751328000"), Ok(1_751_328_000));
        assert_eq!(parse_time("2025-07-01T00:00:00Z"), Ok(1_751_328_000));
        assert!(
            parse_time("July")
                .unwrap_err()
                .starts_with("\"July\" is neither RFC 3339")
        );
    }
}
