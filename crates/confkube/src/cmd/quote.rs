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
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
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
        Format::Json => match result {
            Ok(v) => {
                dcap::write_dcap_success_json(&mut *out, v)?;
                out.write_all(b"\n")
            }
            Err(e) => writeln!(out, "{}", dcap::failure_json(e)),
        },
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

/// One line of a batch. Paths are borrowed from the line when they hold no JSON escapes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine<'a> {
    #[serde(borrow)]
    quote: Cow<'a, str>,
    #[serde(borrow)]
    collateral: Cow<'a, str>,
    #[serde(default)]
    at: Option<Value>,
    #[serde(default, borrow)]
    root_ca: Option<Cow<'a, str>>,
}

/// Parsed files of one batch, keyed by the path as the lines give it (relative to the batch
/// file): each distinct collateral, root and quote file is read and parsed once per batch. The
/// batch is a snapshot: a file changed while the batch runs may be seen at its first read only.
/// A file that cannot be read is remembered as its error message. Bounded: past
/// [`FILE_CACHE_MAX`] distinct collateral (or root) paths that cache starts over; quotes are
/// evicted oldest first past [`QUOTE_CACHE_BYTES`] or [`QUOTE_CACHE_MAX`] entries, so a
/// million-line batch of distinct quote files keeps memory bounded.
#[derive(Default)]
struct FileCache {
    collateral: HashMap<String, Result<Arc<Collateral>, Arc<str>>>,
    anchors: HashMap<Option<String>, Result<Arc<TrustAnchor>, Arc<str>>>,
    quotes: QuoteCache,
}

/// Distinct collateral (or root) files kept per batch.
const FILE_CACHE_MAX: usize = 4096;
/// Bytes of quote files (raw plus parsed) kept per batch.
const QUOTE_CACHE_BYTES: usize = 64 << 20;
/// Distinct quote files kept per batch.
const QUOTE_CACHE_MAX: usize = 16 << 10;

fn cached<K, Q, V>(
    map: &mut HashMap<K, Result<Arc<V>, Arc<str>>>,
    key: &Q,
    load: impl FnOnce() -> Result<V>,
) -> Result<Arc<V>, Arc<str>>
where
    K: std::borrow::Borrow<Q> + Eq + std::hash::Hash,
    Q: ToOwned<Owned = K> + Eq + std::hash::Hash + ?Sized,
{
    if let Some(v) = map.get(key) {
        return v.clone();
    }
    if map.len() >= FILE_CACHE_MAX {
        map.clear();
    }
    let v = load()
        .map(Arc::new)
        .map_err(|e| Arc::from(format!("{e:#}")));
    map.insert(key.to_owned(), v.clone());
    v
}

/// A quote file of the batch: its label (the path as printed), and the parsed quote, or the
/// verification error of a quote that does not parse (a result, like any other failure), or
/// the message of a file that cannot be read or decoded (an input error).
struct QuoteFile {
    label: Arc<str>,
    quote: Result<dcap::ParsedQuote, QuoteFileError>,
}

enum QuoteFileError {
    Parse(dcap::VerifyError),
    Input(String),
}

impl QuoteFile {
    fn load(path: &Path) -> Self {
        let quote = match read_quote(path) {
            Err(e) => Err(QuoteFileError::Input(format!("{e:#}"))),
            Ok(bytes) => dcap::ParsedQuote::parse(bytes).map_err(QuoteFileError::Parse),
        };
        Self {
            label: Arc::from(path.display().to_string()),
            quote,
        }
    }

    fn size(&self) -> usize {
        let body = match &self.quote {
            Ok(q) => q.size_hint(),
            Err(QuoteFileError::Input(m)) => m.len(),
            Err(QuoteFileError::Parse(_)) => 256,
        };
        body + self.label.len() + 64
    }
}

/// Quote files by path, evicted oldest first past a byte or entry budget.
struct QuoteCache {
    map: HashMap<String, (Arc<QuoteFile>, usize)>,
    order: VecDeque<String>,
    bytes: usize,
    max_bytes: usize,
    max_entries: usize,
}

impl Default for QuoteCache {
    fn default() -> Self {
        Self::new(QUOTE_CACHE_BYTES, QUOTE_CACHE_MAX)
    }
}

impl QuoteCache {
    fn new(max_bytes: usize, max_entries: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_entries,
        }
    }

    fn get(&mut self, key: &str, path: impl FnOnce() -> PathBuf) -> Arc<QuoteFile> {
        if let Some((q, _)) = self.map.get(key) {
            return q.clone();
        }
        let q = Arc::new(QuoteFile::load(&path()));
        let size = q.size();
        if size > self.max_bytes || self.max_entries == 0 {
            // Larger than the whole budget: used for this line, never kept.
            return q;
        }
        while !self.order.is_empty()
            && (self.bytes.saturating_add(size) > self.max_bytes
                || self.order.len() >= self.max_entries)
        {
            if let Some(old) = self.order.pop_front()
                && let Some((_, n)) = self.map.remove(&old)
            {
                self.bytes = self.bytes.saturating_sub(n);
            }
        }
        self.map.insert(key.to_owned(), (q.clone(), size));
        self.order.push_back(key.to_owned());
        self.bytes = self.bytes.saturating_add(size);
        q
    }
}

/// One line of a batch, resolved on the reading thread (quote, collateral and root from the
/// [`FileCache`]); workers only verify and encode.
enum Work {
    Verify {
        line: usize,
        quote: Arc<QuoteFile>,
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
    let l: BatchLine<'_> = match serde_json::from_str(line) {
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
    let collateral = match cached(&mut files.collateral, &*l.collateral, || {
        load_collateral(&base.join(&*l.collateral))
    }) {
        Ok(c) => c,
        Err(e) => return input_error(&e),
    };
    let root_key = l.root_ca.map(Cow::into_owned);
    let anchor = cached(&mut files.anchors, &root_key, || {
        load_anchor(root_key.as_ref().map(|p| base.join(p)).as_deref())
    });
    let anchor = match anchor {
        Ok(a) => a,
        Err(e) => return input_error(&e),
    };
    let quote = files.quotes.get(&l.quote, || base.join(&*l.quote));
    Work::Verify {
        line: n,
        quote,
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
    let mut done = Done {
        text: Vec::with_capacity(chunk.len() * 1024),
        ..Done::default()
    };
    for w in chunk {
        // Writing into a Vec cannot fail.
        let _ = match w {
            Work::InputError(msg) => {
                done.errors += 1;
                input_error_line(&mut done.text, format, &msg)
            }
            Work::Verify {
                line,
                quote,
                collateral,
                anchor,
                at,
            } => {
                // Every line verifies its quote afresh (its own signature included); only the
                // file's read and parse are shared.
                let r = match &quote.quote {
                    Err(QuoteFileError::Input(e)) => {
                        done.errors += 1;
                        let msg = format!("{}:{line}: {e}", batch.display());
                        let _ = input_error_line(&mut done.text, format, &msg);
                        continue;
                    }
                    Err(QuoteFileError::Parse(e)) => Err(e.clone()),
                    Ok(q) => verifier.verify_parsed(q, &collateral, at, &anchor),
                };
                done.failed += u64::from(r.is_err());
                print_result(&mut done.text, format, &quote.label, &r)
            }
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
/// quote, collateral and root files (each read and parsed once per batch), workers verify
/// every line's quote (its signature included) and encode the result; results
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
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut line = String::new();
        let mut chunk = Vec::with_capacity(CHUNK_LINES);
        let (mut eof, mut n) = (false, 0usize);
        while !eof {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .with_context(|| format!("reading {} line {}", batch.display(), n + 1))?;
            if read == 0 {
                eof = true;
            } else {
                n += 1;
                let text = line.strip_suffix('\n').unwrap_or(&line);
                let text = text.strip_suffix('\r').unwrap_or(text);
                if !text.trim().is_empty() {
                    chunk.push(batch_work(text, n, base, a.at, batch, &mut files));
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

pub(crate) fn run(args: QuoteArgs) -> Result<ExitCode> {
    match args.command {
        QuoteCommand::Verify(a) => run_verify(a),
        QuoteCommand::Testkit(a) => super::testkit::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each distinct quote file is read and parsed once; the cache evicts oldest first past its
    /// entry or byte budget, and does not keep a file larger than the whole budget.
    #[test]
    fn quote_cache_reads_once_and_stays_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let files: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = dir.join(format!("q{i}"));
                // Not a quote: the parse error is what gets cached.
                std::fs::write(&p, [3u8, 0, 2, 0, i]).unwrap();
                p
            })
            .collect();
        let key = |i: usize| format!("q{i}");
        let mut c = QuoteCache::new(1 << 20, 2);
        let a = c.get(&key(0), || files[0].clone());
        assert!(matches!(
            &a.quote,
            Err(QuoteFileError::Parse(e)) if e.code() == "malformed-quote"
        ));
        assert_eq!(&*a.label, files[0].display().to_string());
        // Same path: the same parsed file, not read again (removed from disk meanwhile).
        std::fs::remove_file(&files[0]).unwrap();
        assert!(Arc::ptr_eq(&a, &c.get(&key(0), || files[0].clone())));
        let _ = c.get(&key(1), || files[1].clone());
        let _ = c.get(&key(2), || files[2].clone());
        assert_eq!((c.map.len(), c.order.len()), (2, 2));
        // q0 was evicted: reading it again now fails, as an input error naming the file.
        let again = c.get(&key(0), || files[0].clone());
        assert!(matches!(
            &again.quote,
            Err(QuoteFileError::Input(m)) if m.starts_with("reading the quote file ")
        ));
        assert_eq!(c.bytes, c.map.values().map(|(_, n)| n).sum::<usize>());
        // A file larger than the whole budget is not kept, and does not flush what is.
        let mut tiny = QuoteCache::new(c.map[&key(2)].1 + 1, 4);
        let _ = tiny.get(&key(2), || files[2].clone());
        assert_eq!(tiny.map.len(), 1);
        let long = dir.join("missing-".repeat(20));
        let big = tiny.get("big", || long.clone());
        assert!(matches!(&big.quote, Err(QuoteFileError::Input(_))));
        assert_eq!(tiny.map.keys().collect::<Vec<_>>(), [&key(2)]);
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
