//! `confkube enclave dump`: the `enclave::inspect` report of a file, as JSON or text lines.

use super::Format;
use super::files::{detect, finish, open_input, print_json};
use super::measure::measure_sgxs_file;
use anyhow::{Context as _, Result};
use enclave::inspect::{InputKind, SdkReport, SgxsReport, SigstructFileReport, SigstructReport};
use enclave::sdk::{SdkEnclave, SdkError};
use enclave::sigstruct::Sigstruct;
use serde_json::Value;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn run(file: &Path, format: Format) -> Result<ExitCode> {
    let (v, ok) = match detect(file)? {
        InputKind::Sigstruct => {
            let b = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let s = Sigstruct::parse(&b).with_context(|| format!("{}", file.display()))?;
            let sigstruct = SigstructReport::new(&s, None);
            let ok = sigstruct.ok();
            let r = SigstructFileReport {
                file: file.display().to_string(),
                kind: "sigstruct",
                sigstruct,
            };
            (serde_json::to_value(r)?, ok)
        }
        InputKind::Sgxs => {
            let s = measure_sgxs_file(file)?;
            (
                serde_json::to_value(SgxsReport::new(file.display().to_string(), &s))?,
                true,
            )
        }
        InputKind::Sdk => {
            let mut r = open_input(file, 1 << 16)?;
            let res = SdkEnclave::read(&mut r).and_then(|e| {
                enclave::inspect::inspect_sdk(&mut r, &e, file.display().to_string())
            });
            finish(&r);
            let (report, skipped): (SdkReport, _) = match res {
                Ok(x) => x,
                Err(e @ SdkError::Io { .. }) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "{}: cannot read the SGX SDK enclave",
                        file.display()
                    )));
                }
                Err(e) => {
                    // A damaged enclave is a failed check, not a usage error.
                    eprintln!("error: {}: {:#}", file.display(), anyhow::Error::new(e));
                    return Ok(ExitCode::from(1));
                }
            };
            for e in skipped {
                // dump never refuses on a metadata version: the SIGSTRUCT is still shown.
                eprintln!("warning: {}: replaying the SDK loader: {e}", file.display());
            }
            let ok = report.ok();
            (serde_json::to_value(report)?, ok)
        }
    };
    match format {
        Format::Json => print_json(&v)?,
        Format::Text => text_lines(&mut io::stdout().lock(), &v, "")?,
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Plain `key: value` lines, nested with indentation; long hex split into 64-char lines.
fn text_lines(out: &mut impl Write, v: &Value, indent: &str) -> io::Result<()> {
    let Some(obj) = v.as_object() else {
        return writeln!(out, "{indent}{v}");
    };
    for (k, val) in obj {
        match val {
            Value::Object(_) => {
                writeln!(out, "{indent}{k}:")?;
                text_lines(out, val, &format!("{indent}  "))?;
            }
            Value::Array(items) => {
                writeln!(out, "{indent}{k}: ({} items)", items.len())?;
                for (i, it) in items.iter().enumerate() {
                    if it.is_object() {
                        let one_line = it.as_object().is_some_and(|o| {
                            o.values().all(|x| !x.is_object() && !x.is_array()) && o.len() <= 8
                        });
                        if one_line {
                            let parts: Vec<String> = it
                                .as_object()
                                .into_iter()
                                .flatten()
                                .map(|(k, v)| {
                                    format!(
                                        "{k}={}",
                                        v.as_str().map_or(v.to_string(), str::to_string)
                                    )
                                })
                                .collect();
                            writeln!(out, "{indent}  [{i}] {}", parts.join(" "))?;
                        } else {
                            writeln!(out, "{indent}  [{i}]")?;
                            text_lines(out, it, &format!("{indent}    "))?;
                        }
                    } else {
                        writeln!(
                            out,
                            "{indent}  - {}",
                            it.as_str().map_or(it.to_string(), str::to_string)
                        )?;
                    }
                }
            }
            Value::String(s) if s.len() > 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                writeln!(out, "{indent}{k}:")?;
                for chunk in s.as_bytes().chunks(64) {
                    writeln!(out, "{indent}  {}", String::from_utf8_lossy(chunk))?;
                }
            }
            Value::String(s) => writeln!(out, "{indent}{k}: {s}")?,
            other => writeln!(out, "{indent}{k}: {other}")?,
        }
    }
    Ok(())
}
