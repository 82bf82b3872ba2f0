//! Files of `confkube enclave`: opening and detecting inputs (with a progress bar for large
//! ones), reading keys and signing configs, writing outputs atomically, printing JSON.

use anyhow::{Context as _, Result};
use enclave::inspect::InputKind;
use enclave::key::Key;
use enclave::sigstruct::SigningFields;
use indicatif::{ProgressBar, ProgressBarIter, ProgressStyle};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

pub(super) fn read_config(p: &Path) -> Result<SigningFields> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading signing config {}", p.display()))?;
    enclave::config::signing_fields_from_text(&text).with_context(|| {
        format!(
            "{}: invalid signing config (Enclave.config.xml or JSON, see docs/enclave.md)",
            p.display()
        )
    })
}

pub(super) fn load_key(p: &Path) -> Result<Key> {
    let pem = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read key {} (expected a PEM file)", p.display()))?;
    Key::from_pem(&pem).with_context(|| format!("{}: unusable key", p.display()))
}

pub(super) fn open(p: &Path) -> Result<File> {
    File::open(p).with_context(|| format!("cannot open {}", p.display()))
}

pub(super) fn detect(p: &Path) -> Result<InputKind> {
    let mut f = open(p)?;
    let len = file_len(&f);
    let mut head = [0u8; 16];
    let n = f
        .read(&mut head)
        .with_context(|| format!("reading {}", p.display()))?;
    InputKind::detect(head.get(..n).unwrap_or_default(), len).with_context(|| {
        format!(
            "{}: not an Intel SGX SDK enclave (ELF .so), an SGXS stream or a 1808-byte SIGSTRUCT (for a flat page image use `measure --raw`)",
            p.display()
        )
    })
}

fn file_len(f: &File) -> u64 {
    f.metadata().map(|m| m.len()).unwrap_or(0)
}

/// Inputs above this size get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 64 << 20;

pub(super) type Input = ProgressBarIter<BufReader<File>>;

/// Opens `p` for streaming, with an `indicatif` progress bar for large inputs on a terminal
/// (hidden otherwise; seeks move it, so every replay pass shows its own progress).
pub(super) fn open_input(p: &Path, buf: usize) -> Result<Input> {
    let f = open(p)?;
    let total = file_len(&f);
    let bar = if total > PROGRESS_THRESHOLD && io::stderr().is_terminal() {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "measuring [{bar:50}] {percent:>3}% {bytes}/{total_bytes}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_length(total);
    Ok(bar.wrap_read(BufReader::with_capacity(buf, f)))
}

pub(super) fn finish(r: &Input) {
    r.progress.finish_and_clear();
}

pub(super) fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// A writer to `OUT.partial`, renamed to OUT by [`commit_partial`] once complete.
pub(super) fn create_partial(out: &Path) -> Result<BufWriter<File>> {
    let tmp = partial_path(out);
    let f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

pub(super) fn commit_partial(out: &Path, w: BufWriter<File>) -> Result<()> {
    let tmp = partial_path(out);
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))
}

/// Runs `f` with a sink for the measured SGXS stream: `OUT.partial` renamed to OUT when `f`
/// succeeds (removed when it fails), or nothing without `--sgxs-out`.
pub(super) fn with_sgxs_out<T>(
    out: Option<&Path>,
    f: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let Some(out) = out else {
        return f(&mut io::sink());
    };
    let mut w = create_partial(out)?;
    match f(&mut w) {
        Ok(t) => {
            commit_partial(out, w)?;
            Ok(t)
        }
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(partial_path(out));
            Err(e)
        }
    }
}

/// Pretty JSON with keys sorted (through `serde_json::Value`), the tool's stable output.
pub(super) fn print_json(v: &impl Serialize) -> Result<()> {
    let v = serde_json::to_value(v)?;
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &v)?;
    writeln!(out)?;
    Ok(())
}
