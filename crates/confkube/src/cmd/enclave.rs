//! `confkube enclave`: measure MRENCLAVE, dump, sign and re-sign, HSM two-step signing
//! (gendata/catsig) and MRSIGNER. This module parses flags, opens files, reads the clock (the
//! default DATE) and prints; formats and rules are the `enclave` crate (`config`, `inspect`,
//! `sign`, `sdk`, `sgxs`, `sigstruct`).

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use enclave::Mrenclave;
use enclave::config::EnclaveConfig;
use enclave::inspect::{
    InputKind, MeasureReport, SdkReport, SgxsReport, SigstructFileReport, SigstructReport,
};
use enclave::key::Key;
use enclave::measure::MeasureStats;
use enclave::sdk::{SdkEnclave, SdkError};
use enclave::sdk_gen::SdkConfig;
use enclave::sign::{Prepared, prepare_sdk, prepare_sgxs};
use enclave::sigstruct::{SigningFields, Sigstruct, date_from_ymd};
use indicatif::{ProgressBar, ProgressBarIter, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Measure, inspect and sign SGX enclaves (Intel SDK `.so`, Fortanix `.sgxs`, SIGSTRUCT files).
#[derive(Debug, Args)]
pub(crate) struct EnclaveArgs {
    #[command(subcommand)]
    command: EnclaveCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum EnclaveCommand {
    /// Print the MRENCLAVE of an SDK enclave (`.so`; unsigned ones need `--config`), an `.sgxs`
    /// stream or a flat image (`--raw`).
    Measure {
        /// The enclave: Intel SDK `*.signed.so`, Fortanix `.sgxs`, or a flat image with `--raw`.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// FILE is a flat image loaded at enclave offset 0, every page measured, TCS pages per
        /// `--tcs-pages`, the others REG|RWX (the Linux/enarx selftest `encl.bin` convention).
        #[arg(long)]
        raw: bool,
        /// With `--raw`: indexes of the TCS pages.
        #[arg(long, value_delimiter = ',', default_values_t = [0u64], requires = "raw")]
        tcs_pages: Vec<u64>,
        /// With `--raw`: SSAFRAMESIZE in pages.
        #[arg(long, default_value_t = 1, requires = "raw")]
        ssa_frame_size: u32,
        /// Also write the measured record stream as an `.sgxs` file (SDK `.so` or `--raw` input).
        #[arg(long)]
        sgxs_out: Option<PathBuf>,
        /// For an unsigned SDK enclave: its `Enclave.config.xml` (the layout `sgx_sign` would build).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show every SIGSTRUCT and metadata field, whether the signature verifies and whether
    /// ENCLAVEHASH equals the measurement. Exit 1 when a check fails.
    Dump {
        /// An SDK `.so`, an `.sgxs` stream or a raw 1808-byte SIGSTRUCT (`.sig`, `.ss`, `.bin`).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Sign: an `.sgxs` gives a SIGSTRUCT file; a signed SDK `.so` is re-signed (new key and
    /// fields) into a new `.so`.
    Sign {
        /// Private key: RSA-3072, e = 3, PEM (PKCS#1 or PKCS#8, unencrypted).
        #[arg(long)]
        key: PathBuf,
        /// The enclave (`.sgxs` or signed SDK `.so`).
        input: PathBuf,
        /// Output: SIGSTRUCT file for `.sgxs`, signed `.so` for an SDK enclave.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        fields: FieldArgs,
    },
    /// Write the 256 bytes to sign (SIGSTRUCT header ‖ body) for an external signer (HSM).
    Gendata {
        /// The enclave (`.sgxs` or signed SDK `.so`).
        input: PathBuf,
        /// Where to write the 256 bytes.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        fields: FieldArgs,
    },
    /// Combine an external signature with the gendata bytes: verified before anything is written.
    Catsig {
        /// The enclave (`.sgxs` or signed SDK `.so`) that gendata was run on.
        input: PathBuf,
        /// Public (or private) key of the external signer, PEM.
        #[arg(long)]
        key: PathBuf,
        /// The RSA signature: 384 bytes, big-endian (what OpenSSL and HSMs produce).
        #[arg(long)]
        signature: PathBuf,
        /// The 256 bytes written by `gendata`.
        #[arg(long)]
        unsigned: PathBuf,
        /// Output: SIGSTRUCT file for `.sgxs`, signed `.so` for an SDK enclave.
        #[arg(long)]
        out: PathBuf,
        /// For an unsigned SDK enclave: the `Enclave.config.xml` given to gendata.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print MRSIGNER (SHA-256 of the little-endian modulus) for a public or private key.
    Mrsigner {
        /// RSA-3072, e = 3 key, PEM.
        #[arg(long)]
        key: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

/// SIGSTRUCT fields. For `.sgxs` unset fields take the Intel SDK defaults and today's date;
/// for a signed `.so` unset fields keep the embedded values.
#[derive(Debug, Args)]
struct FieldArgs {
    /// JSON file with any of: isvprodid, isvsvn, date, vendor, swdefined, miscselect, miscmask,
    /// attributes {flags, xfrm}, attributemask {flags, xfrm}, debug_signed; or an Intel
    /// `Enclave.config.xml` (ProdID, ISVSVN, MiscSelect, MiscMask, DisableDebug). Flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// ISVPRODID.
    #[arg(long, value_parser = parse_u16)]
    isvprodid: Option<u16>,
    /// ISVSVN.
    #[arg(long, value_parser = parse_u16)]
    isvsvn: Option<u16>,
    /// DATE as YYYYMMDD, or 0 for none.
    #[arg(long, value_parser = parse_date)]
    date: Option<u32>,
    /// ATTRIBUTES.flags (e.g. 0x4 = MODE64BIT; 0x6 adds DEBUG).
    #[arg(long, value_parser = parse_u64)]
    attributes: Option<u64>,
    /// ATTRIBUTES.xfrm.
    #[arg(long, value_parser = parse_u64)]
    xfrm: Option<u64>,
    /// ATTRIBUTEMASK.flags.
    #[arg(long, value_parser = parse_u64)]
    attributes_mask: Option<u64>,
    /// ATTRIBUTEMASK.xfrm.
    #[arg(long, value_parser = parse_u64)]
    xfrm_mask: Option<u64>,
    /// MISCSELECT.
    #[arg(long, value_parser = parse_u32)]
    miscselect: Option<u32>,
    /// MISCMASK.
    #[arg(long, value_parser = parse_u32)]
    miscmask: Option<u32>,
    /// MODULE_VENDOR (0x8086 is Intel's; ISVs use 0).
    #[arg(long, value_parser = parse_u32)]
    vendor: Option<u32>,
    /// SWDEFINED.
    #[arg(long, value_parser = parse_u32)]
    swdefined: Option<u32>,
    /// Set TYPE bit 31 (debug-signed, `sgx_sign` ReleaseType 1).
    #[arg(long)]
    debug_signed: bool,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    enclave::config::parse_number(s)
}

fn parse_u32(s: &str) -> Result<u32, String> {
    u32::try_from(parse_u64(s)?).map_err(|_| format!("{s} does not fit in 32 bits"))
}

fn parse_u16(s: &str) -> Result<u16, String> {
    u16::try_from(parse_u64(s)?).map_err(|_| format!("{s} does not fit in 16 bits"))
}

fn parse_date(s: &str) -> Result<u32, String> {
    enclave::config::parse_date(s)
}

/// Today's date (UTC) as SIGSTRUCT DATE: the only clock read of the enclave tool.
fn today() -> u32 {
    let d = time::OffsetDateTime::now_utc().date();
    u32::try_from(d.year())
        .ok()
        .and_then(|y| date_from_ymd(y, u32::from(u8::from(d.month())), u32::from(d.day())))
        .unwrap_or(0)
}

impl FieldArgs {
    fn resolve(&self) -> Result<SigningFields> {
        let base = match &self.config {
            Some(p) => read_config(p)?,
            None => SigningFields::default(),
        };
        Ok(base.merge(&SigningFields {
            header_type: self.debug_signed.then_some(1 << 31),
            vendor: self.vendor,
            date: self.date,
            swdefined: self.swdefined,
            miscselect: self.miscselect,
            miscmask: self.miscmask,
            attributes_flags: self.attributes,
            attributes_xfrm: self.xfrm,
            attributemask_flags: self.attributes_mask,
            attributemask_xfrm: self.xfrm_mask,
            isvprodid: self.isvprodid,
            isvsvn: self.isvsvn,
            isvfamilyid: None,
            isvextprodid: None,
        }))
    }
}

fn read_config(p: &Path) -> Result<SigningFields> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading signing config {}", p.display()))?;
    enclave::config::signing_fields_from_text(&text).with_context(|| {
        format!(
            "{}: invalid signing config (Enclave.config.xml or JSON, see docs/enclave.md)",
            p.display()
        )
    })
}

fn open(p: &Path) -> Result<File> {
    File::open(p).with_context(|| format!("cannot open {}", p.display()))
}

fn detect(p: &Path) -> Result<InputKind> {
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

type Input = ProgressBarIter<BufReader<File>>;

/// Opens `p` for streaming, with an `indicatif` progress bar for large inputs on a terminal
/// (hidden otherwise; seeks move it, so every replay pass shows its own progress).
fn open_input(p: &Path, buf: usize) -> Result<Input> {
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

fn finish(r: &Input) {
    r.progress.finish_and_clear();
}

struct Measured {
    mrenclave: Mrenclave,
    stats: MeasureStats,
    enclave_size: u64,
    ssa_frame_size: u32,
}

fn measure_sgxs_file(p: &Path) -> Result<enclave::sgxs::SgxsSummary> {
    let mut r = open_input(p, 1 << 20)?;
    let s = enclave::sgxs::measure_sgxs(&mut r)
        .with_context(|| format!("{}: invalid SGXS stream", p.display()))?;
    finish(&r);
    Ok(s)
}

fn read_sdk(p: &Path) -> Result<(SdkEnclave, Input)> {
    let mut r = open_input(p, 1 << 16)?;
    let e = SdkEnclave::read(&mut r)
        .with_context(|| format!("{}: cannot read the SGX SDK enclave", p.display()))?;
    Ok((e, r))
}

/// The layout settings for an unsigned SDK enclave: its `Enclave.config.xml` is required.
fn unsigned_config(p: &Path, e: &SdkEnclave, config: Option<&Path>) -> Result<SdkConfig> {
    let Some(cfg_path) = config else {
        bail!(
            "{}: unsigned SDK enclave (all-zero metadata at offset {:#x}): pass its \
             Enclave.config.xml with --config to build the layout sgx_sign would build",
            p.display(),
            e.note.metadata_offset
        );
    };
    let text = std::fs::read_to_string(cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?;
    let cfg = EnclaveConfig::parse(&text)
        .and_then(|c| c.sdk_config())
        .with_context(|| format!("{}: unusable Enclave.config.xml", cfg_path.display()))?;
    if enclave::sign::config_beyond_checked(&cfg) {
        eprintln!(
            "warning: {}: HeapInitSize/TCSMaxNum/TCSMinPool/StackMinSize/HeapMinSize differ from \
             the configurations checked against sgx_sign output; compare the MRENCLAVE with \
             sgx_sign's once before relying on it",
            cfg_path.display()
        );
    }
    Ok(cfg)
}

/// Measures any supported enclave file.
fn measure_file(
    p: &Path,
    sgxs_out: Option<&Path>,
    config: Option<&Path>,
) -> Result<(Measured, &'static str)> {
    match detect(p)? {
        InputKind::Sgxs if sgxs_out.is_some() => bail!(
            "{}: already an SGXS stream; --sgxs-out is for SDK and raw input",
            p.display()
        ),
        InputKind::Sgxs => {
            let s = measure_sgxs_file(p)?;
            let stats = MeasureStats {
                pages_added: s.pages_added,
                pages_extended: s.chunks_extended / 16,
            };
            let m = Measured {
                mrenclave: s.mrenclave,
                stats,
                enclave_size: s.size,
                ssa_frame_size: s.ssa_frame_size,
            };
            Ok((m, "sgxs"))
        }
        InputKind::Sdk => {
            let (mut e, mut r) = read_sdk(p)?;
            let generated = e.blocks.is_empty();
            if generated {
                let cfg = unsigned_config(p, &e, config)?;
                let g = enclave::sdk_gen::generate(&mut r, &e, &cfg)
                    .with_context(|| format!("{}: generating SGX metadata", p.display()))?;
                e.blocks.push(g.block);
            }
            let b = e.primary().context("no metadata")?;
            let ctx = || format!("{}: replaying the SDK loader", p.display());
            let (d, stats) = match sgxs_out {
                None => {
                    let (d, stats, _) = e.measure_block(&mut r, b, io::sink()).with_context(ctx)?;
                    (d, stats)
                }
                Some(out) => {
                    let w = create_partial(out)?;
                    let (d, stats, w) = e.measure_block(&mut r, b, w).with_context(ctx)?;
                    commit_partial(out, w)?;
                    (d, stats)
                }
            };
            finish(&r);
            if !generated && b.sigstruct.enclavehash() != d {
                eprintln!(
                    "warning: {}: the embedded ENCLAVEHASH {} differs from the measurement {}: the \
                     enclave was modified after signing; re-sign it (`confkube enclave sign`)",
                    p.display(),
                    b.sigstruct.enclavehash(),
                    d
                );
            }
            let m = Measured {
                mrenclave: d,
                stats,
                enclave_size: b.elrange.map_or(b.enclave_size, |x| x.size),
                ssa_frame_size: b.ssa_frame_size,
            };
            Ok((m, "sdk-so"))
        }
        InputKind::Sigstruct => bail!(
            "{}: this is a SIGSTRUCT, which holds only the expected hash; use `confkube enclave dump` \
             to see its ENCLAVEHASH, or measure the enclave itself",
            p.display()
        ),
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// A writer to `OUT.partial`, renamed to OUT by [`commit_partial`] once complete.
fn create_partial(out: &Path) -> Result<BufWriter<File>> {
    let tmp = partial_path(out);
    let f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

fn commit_partial(out: &Path, w: BufWriter<File>) -> Result<()> {
    let tmp = partial_path(out);
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))
}

fn measure_raw(p: &Path, tcs: &[u64], ssa: u32, sgxs_out: Option<&Path>) -> Result<Measured> {
    let mut r = open_input(p, 1 << 20)?;
    let len = r.progress.length().unwrap_or(0);
    if len == 0 {
        bail!("{}: empty image", p.display());
    }
    let size = len
        .checked_next_power_of_two()
        .context("image too large")?
        .max(4096);
    let flags = |i: u64| enclave::measure::flat_image_secinfo(tcs.contains(&i));
    let ctx = || format!("{}: measuring the raw image", p.display());
    let (d, stats) = match sgxs_out {
        Some(out) => {
            let w = create_partial(out)?;
            let (d, stats, w) = enclave::measure::measure_flat_image(&mut r, ssa, size, flags, w)
                .with_context(ctx)?;
            commit_partial(out, w)?;
            (d, stats)
        }
        None => {
            let (d, stats, _) =
                enclave::measure::measure_flat_image(&mut r, ssa, size, flags, io::sink())
                    .with_context(ctx)?;
            (d, stats)
        }
    };
    finish(&r);
    Ok(Measured {
        mrenclave: d,
        stats,
        enclave_size: size,
        ssa_frame_size: ssa,
    })
}

pub(crate) fn run(args: EnclaveArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: EnclaveArgs) -> Result<ExitCode> {
    match args.command {
        EnclaveCommand::Measure {
            file,
            format,
            raw,
            tcs_pages,
            ssa_frame_size,
            sgxs_out,
            config,
        } => {
            let (m, kind) = if raw {
                let m = measure_raw(&file, &tcs_pages, ssa_frame_size, sgxs_out.as_deref())?;
                (m, "raw-image")
            } else {
                measure_file(&file, sgxs_out.as_deref(), config.as_deref())?
            };
            match format {
                Format::Text => println!("{}", m.mrenclave),
                Format::Json => print_json(&MeasureReport::new(
                    file.display().to_string(),
                    kind,
                    m.mrenclave,
                    m.stats,
                    m.enclave_size,
                    m.ssa_frame_size,
                ))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        EnclaveCommand::Dump { file, format } => dump(&file, format),
        EnclaveCommand::Sign {
            key,
            input,
            out,
            fields,
        } => {
            let signer = load_key(&key)?
                .into_signer()
                .with_context(|| key.display().to_string())?;
            let (p, e) = prepare(&input, &fields.resolve()?, fields.config.as_deref())?;
            let signed = p.sign(&signer)?;
            write_output(&input, &out, &p, e.as_ref(), &signed)?;
            eprintln!(
                "signed {} -> {} (MRENCLAVE {}, MRSIGNER {})",
                input.display(),
                out.display(),
                p.mrenclave,
                signed
                    .first()
                    .map(|s| s.mrsigner().to_hex())
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        EnclaveCommand::Gendata { input, out, fields } => {
            let (p, _) = prepare(&input, &fields.resolve()?, fields.config.as_deref())?;
            let data = p
                .common_signed_data()
                .with_context(|| input.display().to_string())?;
            std::fs::write(&out, data)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote the 256 bytes to sign to {} (MRENCLAVE {}); sign them with RSASSA-PKCS1-v1_5 \
                 SHA-256, e.g. `openssl dgst -sha256 -sign key.pem -out sig.bin {}`, then run catsig",
                out.display(),
                p.mrenclave,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        EnclaveCommand::Catsig {
            input,
            key,
            signature,
            unsigned,
            out,
            config,
        } => {
            let key = load_key(&key)?;
            let data = std::fs::read(&unsigned)
                .with_context(|| format!("reading {}", unsigned.display()))?;
            let sig = std::fs::read(&signature)
                .with_context(|| format!("reading {}", signature.display()))?;
            let mut s = Sigstruct::from_signed_data(&data)
                .with_context(|| format!("{}: not gendata output", unsigned.display()))?;
            let (p, e) = prepare(&input, &SigningFields::default(), config.as_deref())?;
            if s.enclavehash() != p.mrenclave {
                eprintln!(
                    "error: {}: ENCLAVEHASH {} is not the measurement {} of {}; run gendata on this enclave again",
                    unsigned.display(),
                    s.enclavehash(),
                    p.mrenclave,
                    input.display()
                );
                return Ok(ExitCode::from(1));
            }
            if let Err(err) = s.attach_signature(key.public(), &sig) {
                eprintln!(
                    "error: {}: {err} (key MRSIGNER {})",
                    signature.display(),
                    key.public().mrsigner()
                );
                return Ok(ExitCode::from(1));
            }
            let signed = vec![s; p.sigstructs.len()];
            write_output(&input, &out, &p, e.as_ref(), &signed)?;
            eprintln!("wrote {} (signature verified)", out.display());
            Ok(ExitCode::SUCCESS)
        }
        EnclaveCommand::Mrsigner { key, format } => {
            let k = load_key(&key)?;
            let mrsigner = k.public().mrsigner();
            match format {
                Format::Text => println!("{mrsigner}"),
                Format::Json => print_json(&serde_json::json!({
                    "key": key.display().to_string(),
                    "private": matches!(k, Key::Private(_)),
                    "mrsigner": mrsigner.to_hex(),
                }))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_key(p: &Path) -> Result<Key> {
    let pem = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read key {} (expected a PEM file)", p.display()))?;
    Key::from_pem(&pem).with_context(|| format!("{}: unusable key", p.display()))
}

/// Unsigned SIGSTRUCT(s) for an input (and the SDK enclave, to write the output).
fn prepare(
    input: &Path,
    fields: &SigningFields,
    config: Option<&Path>,
) -> Result<(Prepared, Option<SdkEnclave>)> {
    match detect(input)? {
        InputKind::Sgxs => {
            let s = measure_sgxs_file(input)?;
            Ok((prepare_sgxs(s.mrenclave, fields, today()), None))
        }
        InputKind::Sdk => {
            let (e, mut r) = read_sdk(input)?;
            let cfg = if e.blocks.is_empty() {
                unsigned_config(input, &e, config)?
            } else {
                SdkConfig::default()
            };
            let p = prepare_sdk(&mut r, &e, fields, today(), &cfg)
                .with_context(|| input.display().to_string())?;
            finish(&r);
            Ok((p, Some(e)))
        }
        InputKind::Sigstruct => bail!(
            "{}: this is a SIGSTRUCT; sign the enclave (.sgxs or SDK .so) it belongs to",
            input.display()
        ),
    }
}

fn write_output(
    input: &Path,
    out: &Path,
    p: &Prepared,
    sdk: Option<&SdkEnclave>,
    signed: &[Sigstruct],
) -> Result<()> {
    let Some(e) = sdk else {
        let s = signed.first().context("no SIGSTRUCT")?;
        return std::fs::write(out, s.encode())
            .with_context(|| format!("cannot write {}", out.display()));
    };
    if out == input {
        bail!("--out {} is the input; write to a new file", out.display());
    }
    let mut r = BufReader::new(open(input)?);
    let mut w = create_partial(out)?;
    p.write_sdk(e, &mut r, &mut w, signed)
        .with_context(|| format!("writing {}", partial_path(out).display()))?;
    commit_partial(out, w)
}

/// Pretty JSON with keys sorted (through `serde_json::Value`), the tool's stable output.
fn print_json(v: &impl Serialize) -> Result<()> {
    let v = serde_json::to_value(v)?;
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &v)?;
    writeln!(out)?;
    Ok(())
}

fn dump(file: &Path, format: Format) -> Result<ExitCode> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use enclave::Digest32;

    #[test]
    fn parsers() {
        assert_eq!(parse_u64("0x10"), Ok(16));
        assert_eq!(parse_u64("42"), Ok(42));
        assert!(parse_u64("zz").is_err());
        assert_eq!(
            parse_u16("70000"),
            Err("70000 does not fit in 16 bits".to_string())
        );
        assert_eq!(parse_date("20210312"), Ok(0x2021_0312));
        assert_eq!(parse_date("2021-03-12"), Ok(0x2021_0312));
        assert_eq!(parse_date("0"), Ok(0));
        assert_eq!(
            parse_date("2021031"),
            Err("date \"2021031\": use YYYYMMDD (e.g. 20260131) or 0".to_string())
        );
        assert!(today() > 0x2020_0101);
    }

    fn temp(name: &str, data: &[u8]) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("confkube-enclave-{}-{name}", std::process::id()));
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn input_errors_name_the_file_and_fix() {
        let g = temp("garbage.bin", b"not an enclave at all");
        let e = measure_file(&g, None, None).err().unwrap().to_string();
        assert!(e.ends_with("not an Intel SGX SDK enclave (ELF .so), an SGXS stream or a 1808-byte SIGSTRUCT (for a flat page image use `measure --raw`)"), "{e}");
        let ss = temp("s.sig", &Sigstruct::new(Digest32([0; 32])).encode());
        let e = measure_file(&ss, None, None).err().unwrap().to_string();
        assert!(
            e.contains("this is a SIGSTRUCT, which holds only the expected hash"),
            "{e}"
        );
        let raw = temp("partial.img", &[0u8; 5000]);
        let e = format!("{:#}", measure_raw(&raw, &[0], 1, None).err().unwrap());
        assert!(e.ends_with("the image ends 904 bytes into the page at offset 0x1000: a flat image is whole 4096-byte pages"), "{e}");
        let missing = std::env::temp_dir().join("confkube-enclave-does-not-exist");
        let e = measure_file(&missing, None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("cannot open "), "{e}");
        for p in [g, ss, raw] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn raw_measure_and_sgxs_out_agree() {
        let img = temp("ok.img", &[0x5au8; 3 * 4096]);
        let out =
            std::env::temp_dir().join(format!("confkube-enclave-{}-ok.sgxs", std::process::id()));
        let m = measure_raw(&img, &[0], 1, Some(&out)).unwrap();
        assert_eq!(
            (m.enclave_size, m.stats.pages_added, m.stats.pages_extended),
            (0x4000, 3, 3)
        );
        let (m2, _) = measure_file(&out, None, None).unwrap();
        assert_eq!(m2.mrenclave, m.mrenclave);
        assert!(!partial_path(&out).exists());
        let _ = std::fs::remove_file(img);
        let _ = std::fs::remove_file(out);
    }
}
