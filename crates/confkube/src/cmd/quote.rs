//! `confkube quote verify` and `confkube quote testkit`.
//!
//! Reads files, decodes inputs, calls the pure verifier, prints the DESIGN.md §4 result shape.
//! Exit codes: 0 verified, 1 verification failed, 2 usage or I/O error.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use dcap::{
    Collateral, TrustAnchor, VerifiedDcapQuote, VerifiedQuote, VerifiedTdxQuote, Verifier,
    VerifyOptions,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, mpsc};

/// Verify SGX and TDX DCAP quotes, or generate a test PKI with quotes for relying parties.
#[derive(Debug, Args)]
pub(crate) struct QuoteArgs {
    #[command(subcommand)]
    command: QuoteCommand,
}

#[derive(Debug, Subcommand)]
enum QuoteCommand {
    /// Verify an SGX or TDX DCAP quote against collateral (exit 0 verified, 1 not verified, 2
    /// error).
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

/// Reads and decodes a quote file (raw, hex or base64); JSON, PEM or other text is a usage
/// error naming the file.
fn read_quote(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_input(path, "quote")?;
    dcap::decode_quote_input(&bytes).with_context(|| format!("quote {}", path.display()))
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
    result: &Result<VerifiedDcapQuote, dcap::VerifyError>,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            let v = match result {
                Ok(v) => dcap::dcap_success_json(v),
                Err(e) => dcap::failure_json(e),
            };
            writeln!(out, "{v}")
        }
        Format::Text => match result {
            Ok(VerifiedDcapQuote::Tdx(v)) => print_tdx_text(out, label, v),
            Ok(VerifiedDcapQuote::Sgx(v)) => print_sgx_text(out, label, v),
            Err(e) => {
                writeln!(out, "NOT VERIFIED  {label}")?;
                writeln!(out, "  error           {}", e.code())?;
                writeln!(out, "  message         {}", e.full_message())
            }
        },
    }
}

fn print_tdx_text(out: &mut impl Write, label: &str, v: &VerifiedTdxQuote) -> std::io::Result<()> {
    let r = v.report();
    writeln!(out, "VERIFIED  {label}  (TDX trust domain)")?;
    writeln!(
        out,
        "  tcb status      {} (platform {}, TDX module {}, QE {})",
        v.tcb_status(),
        v.platform_tcb_status(),
        v.tdx_module_tcb_status(),
        v.qe_tcb_status()
    )?;
    let adv = if v.advisory_ids().is_empty() {
        "none".to_string()
    } else {
        v.advisory_ids().join(", ")
    };
    writeln!(out, "  advisories      {adv}")?;
    writeln!(out, "  mr_td           {}", r.mr_td)?;
    for (i, m) in r.rt_mr.iter().enumerate() {
        writeln!(out, "  rtmr{i}           {m}")?;
    }
    writeln!(out, "  mr_config_id    {}", r.mr_config_id)?;
    writeln!(out, "  mr_owner        {}", r.mr_owner)?;
    writeln!(out, "  mr_owner_config {}", r.mr_owner_config)?;
    writeln!(
        out,
        "  td_attributes   {}   xfam {}",
        hex::encode(r.td_attributes.to_bytes()),
        hex::encode(r.xfam.to_le_bytes())
    )?;
    let debug = if v.debug() {
        "YES (debug TD: its memory can be read; policy decides)"
    } else {
        "no"
    };
    writeln!(out, "  debug           {debug}")?;
    writeln!(out, "  report_data     {}", r.report_data)?;
    writeln!(out, "  fmspc           {}", hex::encode(v.fmspc()))?;
    if v.trailing_zero_bytes() > 0 {
        writeln!(
            out,
            "  padding         {} zero bytes after the signature data",
            v.trailing_zero_bytes()
        )?;
    }
    if !v.revocation_checked() {
        writeln!(
            out,
            "  revocation      NOT CHECKED (collateral without CRLs, allowed by \
             --allow-missing-crls)"
        )?;
    }
    Ok(())
}

fn print_sgx_text(out: &mut impl Write, label: &str, v: &VerifiedQuote) -> std::io::Result<()> {
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
        quote: read_quote(quote_path)?,
        collateral: load_collateral(coll_path)?,
        anchor: load_anchor(a.root_ca.as_deref())?,
        at: a.at.unwrap_or_else(now_unix),
    };
    let result = verifier.verify_dcap(&job.quote, &job.collateral, job.at, &job.anchor);
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

/// Parsed files of one batch, keyed by path: each distinct collateral and root file is read and
/// parsed once (bounded: past [`FILE_CACHE_MAX`] distinct paths the cache starts over). A file
/// that cannot be read is remembered as its error message.
#[derive(Default)]
struct FileCache {
    collateral: HashMap<PathBuf, Result<Arc<Collateral>, Arc<str>>>,
    anchors: HashMap<Option<PathBuf>, Result<Arc<TrustAnchor>, Arc<str>>>,
}

/// Distinct collateral (or root) files kept per batch.
const FILE_CACHE_MAX: usize = 4096;

fn cached<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut HashMap<K, Result<Arc<V>, Arc<str>>>,
    key: &K,
    load: impl FnOnce() -> Result<V>,
) -> Result<Arc<V>, Arc<str>> {
    if let Some(v) = map.get(key) {
        return v.clone();
    }
    if map.len() >= FILE_CACHE_MAX {
        map.clear();
    }
    let v = load()
        .map(Arc::new)
        .map_err(|e| Arc::from(format!("{e:#}")));
    map.insert(key.clone(), v.clone());
    v
}

/// One line of a batch, resolved on the reading thread (collateral and root from the
/// [`FileCache`]); the quote file is read by the worker.
enum Work {
    Verify {
        line: usize,
        quote_path: PathBuf,
        collateral: Arc<Collateral>,
        anchor: Arc<TrustAnchor>,
        at: i64,
    },
    /// The line cannot be verified: its message.
    InputError(String),
}

fn batch_work(
    line: &str,
    n: usize,
    base: &Path,
    default_at: Option<i64>,
    batch: &Path,
    files: &mut FileCache,
) -> Work {
    let input_error =
        |e: &dyn std::fmt::Display| Work::InputError(format!("{}:{n}: {e}", batch.display()));
    let l: BatchLine = match serde_json::from_str(line) {
        Ok(l) => l,
        Err(e) => {
            let e = anyhow::Error::new(e).context(
                r#"expected {"quote": PATH, "collateral": PATH, "at"?: TIME, "root_ca"?: PATH}"#,
            );
            return input_error(&format_args!("{e:#}"));
        }
    };
    let at = match l.at {
        None | Some(Value::Null) => Ok(default_at.unwrap_or_else(now_unix)),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("\"at\" {n} is not whole seconds")),
        Some(Value::String(s)) => parse_time(&s).map_err(|e| format!("\"at\": {e}")),
        Some(other) => Err(format!(
            "\"at\" must be RFC 3339 text or Unix seconds, not {other}"
        )),
    };
    let at = match at {
        Ok(at) => at,
        Err(e) => return input_error(&e),
    };
    let coll_path = base.join(&l.collateral);
    let collateral = match cached(&mut files.collateral, &coll_path, || {
        load_collateral(&coll_path)
    }) {
        Ok(c) => c,
        Err(e) => return input_error(&e),
    };
    let root_path = l.root_ca.map(|p| base.join(p));
    let anchor = match cached(&mut files.anchors, &root_path, || {
        load_anchor(root_path.as_deref())
    }) {
        Ok(a) => a,
        Err(e) => return input_error(&e),
    };
    Work::Verify {
        line: n,
        quote_path: base.join(&l.quote),
        collateral,
        anchor,
        at,
    }
}

/// The output of a chunk of lines, in line order.
#[derive(Default)]
struct Done {
    text: Vec<u8>,
    failed: u64,
    errors: u64,
}

fn input_error_line(out: &mut Vec<u8>, format: Format, msg: &str) -> std::io::Result<()> {
    match format {
        // Not a verification result: no error CODE (the codes are only for quotes that were
        // verified), but still one object on this line.
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::json!({"verified": false, "input_error": msg})
        ),
        Format::Text => writeln!(out, "ERROR  {msg}"),
    }
}

fn run_chunk(verifier: &Verifier, chunk: Vec<Work>, format: Format, batch: &Path) -> Done {
    let mut done = Done::default();
    for w in chunk {
        // Writing into a Vec cannot fail.
        let _ = match w {
            Work::InputError(msg) => {
                done.errors += 1;
                input_error_line(&mut done.text, format, &msg)
            }
            Work::Verify {
                line,
                quote_path,
                collateral,
                anchor,
                at,
            } => match read_quote(&quote_path) {
                Err(e) => {
                    done.errors += 1;
                    let msg = format!("{}:{line}: {e:#}", batch.display());
                    input_error_line(&mut done.text, format, &msg)
                }
                Ok(quote) => {
                    let r = verifier.verify_dcap(&quote, &collateral, at, &anchor);
                    done.failed += u64::from(r.is_err());
                    print_result(
                        &mut done.text,
                        format,
                        &quote_path.display().to_string(),
                        &r,
                    )
                }
            },
        };
    }
    done
}

/// Lines per unit of work handed to a thread.
const CHUNK_LINES: usize = 64;
/// Chunks in flight per thread (read ahead, being verified, or waiting to be printed in order):
/// bounds memory whatever the batch size.
const CHUNKS_PER_THREAD: usize = 4;

/// Verifies a JSON Lines batch on every core: the reading thread parses lines and resolves
/// collateral/root files (each parsed once per batch), workers read quotes and verify, results
/// are written in input order as soon as they are ready (streaming, with at most
/// `threads × CHUNKS_PER_THREAD × CHUNK_LINES` lines in flight).
fn run_batch(verifier: &Verifier, batch: &Path, a: &VerifyArgs) -> Result<ExitCode> {
    if a.collateral.is_some() || a.root_ca.is_some() {
        bail!("--batch takes collateral and root_ca from each line; drop --collateral/--root-ca");
    }
    let file = std::fs::File::open(batch)
        .with_context(|| format!("opening the batch file {}", batch.display()))?;
    let base = batch.parent().unwrap_or(Path::new("."));
    let format = a.format.unwrap_or(Format::Json);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let window = threads.saturating_mul(CHUNKS_PER_THREAD);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let (mut failed, mut errors) = (0u64, 0u64);
    let mut files = FileCache::default();

    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Vec<Work>)>(window);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(u64, Done)>();
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..threads {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            s.spawn(move || {
                loop {
                    let next = work_rx
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    let Ok((seq, chunk)) = next else { return };
                    if done_tx
                        .send((seq, run_chunk(verifier, chunk, format, batch)))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let (mut sent, mut printed) = (0u64, 0u64);
        let mut emit = |d: Done, out: &mut dyn Write| -> std::io::Result<()> {
            failed += d.failed;
            errors += d.errors;
            out.write_all(&d.text)
        };
        // Receives one finished chunk and writes every chunk now next in line.
        let mut collect = |pending: &mut BTreeMap<u64, Done>,
                           printed: &mut u64,
                           out: &mut std::io::BufWriter<std::io::StdoutLock<'_>>|
         -> Result<bool> {
            let Ok((seq, d)) = done_rx.recv() else {
                return Ok(false);
            };
            pending.insert(seq, d);
            while let Some(d) = pending.remove(printed) {
                emit(d, out)?;
                *printed += 1;
            }
            out.flush().context("writing the results")?;
            Ok(true)
        };
        let mut lines = std::io::BufReader::new(file).lines().enumerate();
        let mut chunk = Vec::with_capacity(CHUNK_LINES);
        let mut eof = false;
        while !eof {
            match lines.next() {
                None => eof = true,
                Some((i, line)) => {
                    let line = line
                        .with_context(|| format!("reading {} line {}", batch.display(), i + 1))?;
                    if !line.trim().is_empty() {
                        chunk.push(batch_work(&line, i + 1, base, a.at, batch, &mut files));
                    }
                }
            }
            if chunk.len() == CHUNK_LINES || (eof && !chunk.is_empty()) {
                while sent - printed >= window as u64 {
                    if !collect(&mut pending, &mut printed, &mut out)? {
                        bail!("a verification thread stopped");
                    }
                }
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_LINES));
                work_tx
                    .send((sent, full))
                    .map_err(|_| anyhow!("a verification thread stopped"))?;
                sent += 1;
            }
        }
        drop(work_tx);
        while printed < sent {
            if !collect(&mut pending, &mut printed, &mut out)? {
                bail!("a verification thread stopped");
            }
        }
        Ok(())
    })?;
    out.flush().context("writing the results")?;
    Ok(match (errors, failed) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

pub(crate) fn run(args: QuoteArgs) -> ExitCode {
    let result = match args.command {
        QuoteCommand::Verify(a) => run_verify(a),
        QuoteCommand::Testkit(a) => super::testkit::run(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
