//! `confkube enclave`: measure MRENCLAVE, dump, sign and re-sign, HSM two-step signing
//! (gendata/catsig) and MRSIGNER. Opens files and reads the clock; everything else is the
//! `enclave` crate.

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use enclave::key::Key;
use enclave::measure::MeasureStats;
use enclave::sdk::{LayoutItem, SdkEnclave, layout_name};
use enclave::sdk_gen::{GeneratedMetadata, SdkConfig};
use enclave::sgxs::measure_sgxs;
use enclave::sigstruct::{
    SIGNED_DATA_SIZE, SIGSTRUCT_SIZE, SigningFields, Sigstruct, date_from_ymd, flags,
};
use enclave::{Digest32, Mrenclave};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
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

/// Today's date (UTC) as SIGSTRUCT DATE.
fn today() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as u32;
    date_from_ymd(y, m, d).unwrap_or(0)
}

impl FieldArgs {
    fn resolve(&self) -> Result<SigningFields> {
        let mut f = match &self.config {
            Some(p) => read_config(p)?,
            None => SigningFields::default(),
        };
        let over = SigningFields {
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
        };
        macro_rules! merge {
            ($($f:ident),*) => { $( if over.$f.is_some() { f.$f = over.$f; } )* };
        }
        merge!(
            header_type,
            vendor,
            date,
            swdefined,
            miscselect,
            miscmask,
            attributes_flags,
            attributes_xfrm,
            attributemask_flags,
            attributemask_xfrm,
            isvprodid,
            isvsvn
        );
        Ok(f)
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

/// What kind of file a path holds.
enum Kind {
    Sdk,
    Sgxs,
    Sigstruct,
}

fn open(p: &Path) -> Result<File> {
    File::open(p).with_context(|| format!("cannot open {}", p.display()))
}

fn detect(p: &Path) -> Result<Kind> {
    let mut f = open(p)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = [0u8; 16];
    let n = f
        .read(&mut head)
        .with_context(|| format!("reading {}", p.display()))?;
    let head = head.get(..n).unwrap_or_default();
    if head.starts_with(b"\x7fELF") {
        Ok(Kind::Sdk)
    } else if head.starts_with(b"ECREATE\0") || head.starts_with(b"UNSIZED\0") {
        Ok(Kind::Sgxs)
    } else if len == SIGSTRUCT_SIZE as u64 && head.starts_with(&enclave::sigstruct::HEADER) {
        Ok(Kind::Sigstruct)
    } else {
        bail!(
            "{}: not an Intel SGX SDK enclave (ELF .so), an SGXS stream or a 1808-byte SIGSTRUCT (for a flat page image use `measure --raw`)",
            p.display()
        )
    }
}

/// Reads through, drawing a progress bar on a terminal for large inputs.
struct Progress<R> {
    inner: R,
    total: u64,
    done: u64,
    shown: u64,
    enabled: bool,
}

const PROGRESS_THRESHOLD: u64 = 64 << 20;

impl<R> Progress<R> {
    fn new(inner: R, total: u64) -> Self {
        let enabled = total > PROGRESS_THRESHOLD && io::stderr().is_terminal();
        Self {
            inner,
            total,
            done: 0,
            shown: u64::MAX,
            enabled,
        }
    }

    fn draw(&mut self) {
        if !self.enabled || self.total == 0 {
            return;
        }
        let pct = (self.done.min(self.total) * 100) / self.total;
        if pct == self.shown {
            return;
        }
        self.shown = pct;
        let filled = (pct / 2) as usize;
        eprint!(
            "\rmeasuring [{}{}] {pct:3}% {}/{} MiB",
            "#".repeat(filled),
            " ".repeat(50 - filled),
            self.done >> 20,
            self.total >> 20
        );
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.draw();
        Ok(n)
    }
}

impl<R: Seek> Seek for Progress<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn file_len(f: &File) -> u64 {
    f.metadata().map(|m| m.len()).unwrap_or(0)
}

struct Measured {
    mrenclave: Mrenclave,
    stats: MeasureStats,
    enclave_size: u64,
    ssa_frame_size: u32,
}

fn measure_sgxs_file(p: &Path) -> Result<(Measured, enclave::sgxs::SgxsSummary)> {
    let f = open(p)?;
    let total = file_len(&f);
    let mut r = Progress::new(BufReader::with_capacity(1 << 20, f), total);
    let s =
        measure_sgxs(&mut r).with_context(|| format!("{}: invalid SGXS stream", p.display()))?;
    r.finish();
    let m = Measured {
        mrenclave: s.mrenclave,
        stats: MeasureStats {
            pages_added: s.pages_added,
            pages_extended: s.chunks_extended / 16,
        },
        enclave_size: s.size,
        ssa_frame_size: s.ssa_frame_size,
    };
    Ok((m, s))
}

fn read_sdk(p: &Path) -> Result<(SdkEnclave, Progress<BufReader<File>>)> {
    let f = open(p)?;
    let total = file_len(&f);
    let mut r = Progress::new(BufReader::with_capacity(1 << 16, f), total);
    let e = SdkEnclave::read(&mut r)
        .with_context(|| format!("{}: cannot read the SGX SDK enclave", p.display()))?;
    Ok((e, r))
}

fn measure_sdk_block(
    p: &Path,
    e: &SdkEnclave,
    r: &mut Progress<BufReader<File>>,
    i: usize,
) -> Result<Measured> {
    let b = e.blocks.get(i).context("no such metadata block")?;
    r.done = 0;
    let (d, stats, _) = e
        .measure_block(r, b, io::sink())
        .with_context(|| format!("{}: replaying the SDK loader", p.display()))?;
    r.finish();
    Ok(Measured {
        mrenclave: d,
        stats,
        enclave_size: b.elrange.map_or(b.enclave_size, |x| x.size),
        ssa_frame_size: b.ssa_frame_size,
    })
}

/// Measures any supported enclave file.
fn measure_file(
    p: &Path,
    sgxs_out: Option<&Path>,
    config: Option<&Path>,
) -> Result<(Measured, &'static str)> {
    match detect(p)? {
        Kind::Sgxs if sgxs_out.is_some() => {
            bail!(
                "{}: already an SGXS stream; --sgxs-out is for SDK and raw input",
                p.display()
            )
        }
        Kind::Sgxs => Ok((measure_sgxs_file(p)?.0, "sgxs")),
        Kind::Sdk => {
            let (mut e, mut r) = read_sdk(p)?;
            let generated = e.blocks.is_empty();
            if generated {
                let g = generate_metadata(p, &e, &mut r, config)?;
                e.blocks.push(g.block);
            }
            let Some(out) = sgxs_out else {
                let m = measure_sdk_block(p, &e, &mut r, 0)?;
                if !generated {
                    warn_if_hash_differs(p, &e, m.mrenclave);
                }
                return Ok((m, "sdk-so"));
            };
            let b = e.primary().context("no metadata")?;
            let w = create_partial(out)?;
            let (d, stats, w) = e
                .measure_block(&mut r, b, w)
                .with_context(|| format!("{}: replaying the SDK loader", p.display()))?;
            r.finish();
            commit_partial(out, w)?;
            let m = Measured {
                mrenclave: d,
                stats,
                enclave_size: b.elrange.map_or(b.enclave_size, |x| x.size),
                ssa_frame_size: b.ssa_frame_size,
            };
            Ok((m, "sdk-so"))
        }
        Kind::Sigstruct => bail!(
            "{}: this is a SIGSTRUCT, which holds only the expected hash; use `confkube enclave dump` \
             to see its ENCLAVEHASH, or measure the enclave itself",
            p.display()
        ),
    }
}

/// Generates `sgx_sign`'s metadata for an unsigned SDK enclave from its `Enclave.config.xml`.
fn generate_metadata(
    p: &Path,
    e: &SdkEnclave,
    r: &mut Progress<BufReader<File>>,
    config: Option<&Path>,
) -> Result<GeneratedMetadata> {
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
    let cfg = enclave::config::EnclaveConfig::parse(&text)
        .and_then(|c| c.sdk_config())
        .with_context(|| format!("{}: unusable Enclave.config.xml", cfg_path.display()))?;
    let d = SdkConfig::default();
    if cfg.heap_init_size != cfg.heap_max_size
        || cfg.tcs_max_num != cfg.tcs_num
        || cfg.tcs_min_pool != d.tcs_min_pool
        || cfg.stack_min_size != d.stack_min_size
        || cfg.heap_min_size != d.heap_min_size
    {
        eprintln!(
            "warning: {}: HeapInitSize/TCSMaxNum/TCSMinPool/StackMinSize/HeapMinSize differ from \
             the configurations checked against sgx_sign output; compare the MRENCLAVE with \
             sgx_sign's once before relying on it",
            cfg_path.display()
        );
    }
    enclave::sdk_gen::generate(r, e, &cfg)
        .with_context(|| format!("{}: generating SGX metadata", p.display()))
}

/// The embedded ENCLAVEHASH should equal the measurement; if not, the image or its metadata
/// was changed after signing (EINIT would refuse it). The measurement is still printed.
fn warn_if_hash_differs(p: &Path, e: &SdkEnclave, measured: Mrenclave) {
    if let Some(b) = e.blocks.first()
        && b.sigstruct.enclavehash() != measured
    {
        eprintln!(
            "warning: {}: the embedded ENCLAVEHASH {} differs from the measurement {}: the \
             enclave was modified after signing; re-sign it (`confkube enclave sign`)",
            p.display(),
            b.sigstruct.enclavehash(),
            measured
        );
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
    let f = open(p)?;
    let len = file_len(&f);
    if len == 0 {
        bail!("{}: empty image", p.display());
    }
    let size = len.next_power_of_two().max(4096);
    let mut r = Progress::new(BufReader::with_capacity(1 << 20, f), len);
    let flags = |i: u64| {
        if tcs.contains(&i) {
            enclave::measure::secinfo::TCS
        } else {
            enclave::measure::secinfo::REG | 7
        }
    };
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
    r.finish();
    Ok(Measured {
        mrenclave: d,
        stats,
        enclave_size: size,
        ssa_frame_size: ssa,
    })
}

pub(crate) fn run(args: EnclaveArgs) -> Result<ExitCode> {
    run_inner(args)
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
                (
                    measure_raw(&file, &tcs_pages, ssa_frame_size, sgxs_out.as_deref())?,
                    "raw-image",
                )
            } else {
                measure_file(&file, sgxs_out.as_deref(), config.as_deref())?
            };
            match format {
                Format::Text => println!("{}", m.mrenclave),
                Format::Json => print_json(&json!({
                    "file": file.display().to_string(),
                    "kind": kind,
                    "mrenclave": m.mrenclave.to_hex(),
                    "enclave_size": hex64(m.enclave_size),
                    "ssa_frame_size": m.ssa_frame_size,
                    "pages_eadded": m.stats.pages_added,
                    "pages_eextended": m.stats.pages_extended,
                }))?,
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
            let config = fields.config.clone();
            let fields = fields.resolve()?;
            let sigs = prepare(&input, &fields, config.as_deref())?;
            let mut signed = Vec::new();
            for mut s in sigs.sigstructs.clone() {
                s.sign(&signer).context("signing the SIGSTRUCT")?;
                s.verify()
                    .context("the fresh signature does not verify (signer fault)")?;
                signed.push(s);
            }
            write_output(&input, &out, &sigs, &signed)?;
            eprintln!(
                "signed {} -> {} (MRENCLAVE {}, MRSIGNER {})",
                input.display(),
                out.display(),
                sigs.mrenclave,
                signer_mrsigner(&signed)
            );
            Ok(ExitCode::SUCCESS)
        }
        EnclaveCommand::Gendata { input, out, fields } => {
            let sigs = prepare(&input, &fields.resolve()?, fields.config.as_deref())?;
            let data = sigs.common_signed_data(&input)?;
            write_file(&out, &data)?;
            eprintln!(
                "wrote the 256 bytes to sign to {} (MRENCLAVE {}); sign them with RSASSA-PKCS1-v1_5 \
                 SHA-256, e.g. `openssl dgst -sha256 -sign key.pem -out sig.bin {}`, then run catsig",
                out.display(),
                sigs.mrenclave,
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
            let sigs = prepare(&input, &SigningFields::default(), config.as_deref())?;
            if s.enclavehash() != sigs.mrenclave {
                eprintln!(
                    "error: {}: ENCLAVEHASH {} is not the measurement {} of {}; run gendata on this enclave again",
                    unsigned.display(),
                    s.enclavehash(),
                    sigs.mrenclave,
                    input.display()
                );
                return Ok(ExitCode::from(1));
            }
            if let Err(e) = s.attach_signature(key.public(), &sig) {
                eprintln!(
                    "error: {}: {e} (key MRSIGNER {})",
                    signature.display(),
                    key.public().mrsigner()
                );
                return Ok(ExitCode::from(1));
            }
            let signed = vec![s; sigs.sigstructs.len()];
            write_output(&input, &out, &sigs, &signed)?;
            eprintln!("wrote {} (signature verified)", out.display());
            Ok(ExitCode::SUCCESS)
        }
        EnclaveCommand::Mrsigner { key, format } => {
            let k = load_key(&key)?;
            let mrsigner = k.public().mrsigner();
            match format {
                Format::Text => println!("{mrsigner}"),
                Format::Json => print_json(&json!({
                    "key": key.display().to_string(),
                    "private": matches!(k, Key::Private(_)),
                    "mrsigner": mrsigner.to_hex(),
                }))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn signer_mrsigner(s: &[Sigstruct]) -> String {
    s.first().map(|s| s.mrsigner().to_hex()).unwrap_or_default()
}

fn load_key(p: &Path) -> Result<Key> {
    let pem = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read key {} (expected a PEM file)", p.display()))?;
    Key::from_pem(&pem).with_context(|| format!("{}: unusable key", p.display()))
}

/// Unsigned SIGSTRUCT(s) for an input, with ENCLAVEHASH set to its measurement.
struct Prepared {
    kind: Kind,
    mrenclave: Mrenclave,
    sigstructs: Vec<Sigstruct>,
    sdk: Option<SdkEnclave>,
    /// Metadata generated for an unsigned SDK enclave (written with the signature).
    generated: Option<GeneratedMetadata>,
}

impl Prepared {
    fn common_signed_data(&self, input: &Path) -> Result<[u8; SIGNED_DATA_SIZE]> {
        let first = self
            .sigstructs
            .first()
            .context("no SIGSTRUCT")?
            .signed_data();
        if self.sigstructs.iter().any(|s| s.signed_data() != first) {
            bail!(
                "{}: its metadata blocks carry different SIGSTRUCT fields, so one external \
                 signature cannot cover them; re-sign with `sign` and a key file instead",
                input.display()
            );
        }
        Ok(first)
    }
}

fn prepare(input: &Path, fields: &SigningFields, config: Option<&Path>) -> Result<Prepared> {
    match detect(input)? {
        Kind::Sgxs => {
            let (m, _) = measure_sgxs_file(input)?;
            let mut s = Sigstruct::new(m.mrenclave);
            s.date = today();
            fields.apply(&mut s);
            Ok(Prepared {
                kind: Kind::Sgxs,
                mrenclave: m.mrenclave,
                sigstructs: vec![s],
                sdk: None,
                generated: None,
            })
        }
        Kind::Sdk => {
            let (e, mut r) = read_sdk(input)?;
            if e.blocks.is_empty() {
                let g = generate_metadata(input, &e, &mut r, config)?;
                let (d, _, _) = e
                    .measure_block(&mut r, &g.block, io::sink())
                    .with_context(|| format!("{}: replaying the SDK loader", input.display()))?;
                let mut s = Sigstruct::new(d);
                s.date = today();
                fields.apply(&mut s);
                return Ok(Prepared {
                    kind: Kind::Sdk,
                    mrenclave: d,
                    sigstructs: vec![s],
                    sdk: Some(e),
                    generated: Some(g),
                });
            }
            let mut sigs = Vec::new();
            let mut first: Option<Mrenclave> = None;
            for (i, b) in e.blocks.iter().enumerate() {
                let m = measure_sdk_block(input, &e, &mut r, i)?;
                if let Some(f) = first
                    && f != m.mrenclave
                {
                    bail!(
                        "{}: metadata block {}.{} at offset {:#x} measures {} but the first block {}",
                        input.display(),
                        b.major,
                        b.minor,
                        b.file_offset,
                        m.mrenclave,
                        f
                    );
                }
                first = Some(m.mrenclave);
                let mut s = b.sigstruct.clone();
                s.enclavehash = m.mrenclave.0;
                fields.apply(&mut s);
                sigs.push(s);
            }
            let mrenclave = first.unwrap_or(Digest32([0; 32]));
            Ok(Prepared {
                kind: Kind::Sdk,
                mrenclave,
                sigstructs: sigs,
                sdk: Some(e),
                generated: None,
            })
        }
        Kind::Sigstruct => bail!(
            "{}: this is a SIGSTRUCT; sign the enclave (.sgxs or SDK .so) it belongs to",
            input.display()
        ),
    }
}

fn write_file(out: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(out, data).with_context(|| format!("cannot write {}", out.display()))
}

fn write_output(input: &Path, out: &Path, p: &Prepared, signed: &[Sigstruct]) -> Result<()> {
    match (&p.kind, &p.sdk) {
        (Kind::Sdk, Some(e)) => {
            if out == input {
                bail!("--out {} is the input; write to a new file", out.display());
            }
            let mut r = BufReader::new(open(input)?);
            let mut w = create_partial(out)?;
            match &p.generated {
                Some(g) => {
                    let mut g = g.clone();
                    g.set_sigstruct(signed.first().context("no SIGSTRUCT")?)?;
                    e.write_with_metadata(&mut r, &mut w, &g.bytes)
                }
                None => e.write_with_sigstructs(&mut r, &mut w, signed),
            }
            .with_context(|| format!("writing {}", partial_path(out).display()))?;
            commit_partial(out, w)
        }
        _ => {
            let s = signed.first().context("no SIGSTRUCT")?;
            write_file(out, &s.encode())
        }
    }
}

fn print_json(v: &Value) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn hex64(v: u64) -> String {
    format!("{v:#x}")
}

fn attributes_json(a: &enclave::sigstruct::Attributes) -> Value {
    json!({ "flags": hex64(a.flags), "xfrm": hex64(a.xfrm) })
}

fn flag_names(f: u64) -> Vec<&'static str> {
    [
        (flags::INIT, "INIT"),
        (flags::DEBUG, "DEBUG"),
        (flags::MODE64BIT, "MODE64BIT"),
        (flags::PROVISION_KEY, "PROVISION_KEY"),
        (flags::EINITTOKEN_KEY, "EINITTOKEN_KEY"),
        (flags::KSS, "KSS"),
        (flags::AEX_NOTIFY, "AEX_NOTIFY"),
    ]
    .into_iter()
    .filter(|(b, _)| f & b != 0)
    .map(|(_, n)| n)
    .collect()
}

fn sigstruct_json(s: &Sigstruct, measured: Option<Mrenclave>) -> Value {
    let verify = s.verify();
    json!({
        "header_type": format!("{:#x}", s.header_type),
        "debug_signed": s.header_type & (1 << 31) != 0,
        "vendor": format!("{:#x}", s.vendor),
        "date": format!("{:#x}", s.date),
        "swdefined": format!("{:#x}", s.swdefined),
        "exponent": s.exponent,
        "modulus_le": hex::encode(s.modulus),
        "signature_le": hex::encode(s.signature),
        "miscselect": format!("{:#x}", s.miscselect),
        "miscmask": format!("{:#x}", s.miscmask),
        "isvfamilyid": hex::encode(s.isvfamilyid),
        "attributes": attributes_json(&s.attributes),
        "attribute_names": flag_names(s.attributes.flags),
        "attributemask": attributes_json(&s.attributemask),
        "enclavehash": s.enclavehash().to_hex(),
        "isvextprodid": hex::encode(s.isvextprodid),
        "isv_prod_id": s.isvprodid,
        "isv_svn": s.isvsvn,
        "q1_le": hex::encode(s.q1),
        "q2_le": hex::encode(s.q2),
        "mrsigner": s.mrsigner().to_hex(),
        "signature_valid": verify.is_ok(),
        "verify_error": verify.err().map(|e| format!("{:#}", anyhow::Error::new(e))),
        "measured_mrenclave": measured.map(|m| m.to_hex()),
        "enclavehash_matches": measured.map(|m| m == s.enclavehash()),
    })
}

fn ok_of(v: &Value) -> bool {
    v["signature_valid"].as_bool() == Some(true)
        && v["enclavehash_matches"].as_bool() != Some(false)
}

fn dump(file: &Path, format: Format) -> Result<ExitCode> {
    let (v, ok) = match detect(file)? {
        Kind::Sigstruct => {
            let b = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let s = Sigstruct::parse(&b).with_context(|| format!("{}", file.display()))?;
            let sj = sigstruct_json(&s, None);
            let ok = ok_of(&sj);
            (
                json!({"file": file.display().to_string(), "kind": "sigstruct", "sigstruct": sj}),
                ok,
            )
        }
        Kind::Sgxs => {
            let (m, s) = measure_sgxs_file(file)?;
            let v = json!({
                "file": file.display().to_string(),
                "kind": "sgxs",
                "mrenclave": m.mrenclave.to_hex(),
                "enclave_size": hex64(s.size),
                "ssa_frame_size": s.ssa_frame_size,
                "pages_eadded": s.pages_added,
                "chunks_eextended": s.chunks_extended,
                "chunks_unmeasured": s.chunks_unmeasured,
                "stream_len": s.stream_len,
            });
            (v, true)
        }
        Kind::Sdk => {
            let f = open(file)?;
            let total = file_len(&f);
            let mut r = Progress::new(BufReader::with_capacity(1 << 16, f), total);
            let e = match SdkEnclave::read(&mut r) {
                Ok(e) => e,
                Err(e @ enclave::sdk::SdkError::Io { .. }) => {
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
            let mut blocks = Vec::new();
            let mut ok = true;
            for (i, b) in e.blocks.iter().enumerate() {
                let m = match measure_sdk_block(file, &e, &mut r, i) {
                    Ok(m) => Some(m),
                    Err(err) => {
                        // dump never refuses on a metadata version: the SIGSTRUCT is at the
                        // same offset in every version.
                        if !err.chain().any(|c| {
                            matches!(
                                c.downcast_ref::<enclave::sdk::SdkError>(),
                                Some(enclave::sdk::SdkError::UnsupportedVersion { .. })
                            )
                        }) {
                            return Err(err);
                        }
                        eprintln!("warning: {err:#}");
                        None
                    }
                };
                let sj = sigstruct_json(&b.sigstruct, m.as_ref().map(|m| m.mrenclave));
                ok &= ok_of(&sj);

                let layout: Vec<Value> = b
                    .layout
                    .iter()
                    .map(|l| match l {
                        LayoutItem::Entry(x) => json!({
                            "name": layout_name(x.id), "id": x.id,
                            "attributes": format!("{:#x}", x.attributes),
                            "page_count": x.page_count, "rva": hex64(x.rva),
                            "content_size": format!("{:#x}", x.content_size),
                            "content_offset": format!("{:#x}", x.content_offset),
                            "si_flags": hex64(x.si_flags),
                        }),
                        LayoutItem::Group(g) => json!({
                            "group": layout_name(g.id), "id": format!("{:#x}", g.id),
                            "entry_count": g.entry_count, "load_times": g.load_times,
                            "load_step": hex64(g.load_step),
                        }),
                    })
                    .collect();
                blocks.push(json!({
                    "version": format!("{}.{}", b.major, b.minor),
                    "file_offset": hex64(b.file_offset),
                    "size": format!("{:#x}", b.size),
                    "tcs_policy": b.tcs_policy,
                    "ssa_frame_size": b.ssa_frame_size,
                    "max_save_buffer_size": b.max_save_buffer_size,
                    "desired_misc_select": format!("{:#x}", b.desired_misc_select),
                    "tcs_min_pool": b.tcs_min_pool,
                    "enclave_size": hex64(b.enclave_size),
                    "attributes": attributes_json(&b.attributes),
                    "elrange": b.elrange.map(|x| json!({
                        "image_address": hex64(x.image_address),
                        "start_address": hex64(x.start_address),
                        "size": hex64(x.size),
                    })),
                    "pages_eadded": m.as_ref().map(|m| m.stats.pages_added),
                    "pages_eextended": m.as_ref().map(|m| m.stats.pages_extended),
                    "patches": b.patches.iter().map(|p| json!({
                        "dst": hex64(p.dst), "src": format!("{:#x}", p.src), "size": format!("{:#x}", p.size),
                    })).collect::<Vec<_>>(),
                    "layout": layout,
                    "sigstruct": sj,
                }));
            }
            let n = &e.note;
            let v = json!({
                "file": file.display().to_string(),
                "kind": if e.blocks.is_empty() { "unsigned-sdk-so" } else { "signed-sdk-so" },
                "mrenclave": e.blocks.first().and(blocks.first()).and_then(|b| b.pointer("/sigstruct/measured_mrenclave").cloned()),
                "segments": e.segments.iter().map(|s| json!({
                    "offset": hex64(s.offset), "vaddr": hex64(s.vaddr), "filesz": hex64(s.filesz),
                    "memsz": hex64(s.memsz), "flags": s.flags,
                })).collect::<Vec<_>>(),
                "note_sgxmeta": {
                    "sh_offset": hex64(n.sh_offset), "sh_size": hex64(n.sh_size),
                    "sh_addralign": n.sh_addralign, "namesz": n.namesz,
                    "descsz": format!("{:#x}", n.descsz), "type": n.note_type,
                    "metadata_offset": hex64(n.metadata_offset),
                },
                "metadata": blocks,
            });
            (v, ok)
        }
    };
    match format {
        Format::Json => print_json(&v)?,
        Format::Text => print_text(&v, "")?,
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Plain `key: value` lines, nested with indentation; long hex split into 64-char lines.
fn print_text(v: &Value, indent: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    text_lines(&mut out, v, indent)?;
    Ok(())
}

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
