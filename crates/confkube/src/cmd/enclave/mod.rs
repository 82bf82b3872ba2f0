//! `confkube enclave`: measure MRENCLAVE, dump, sign and re-sign, HSM two-step signing
//! (gendata/catsig) and MRSIGNER. This module parses flags, opens files, reads the clock (the
//! default DATE) and prints; formats and rules are the `enclave` crate (`config`, `inspect`,
//! `sign`, `sdk`, `sgxs`, `sigstruct`).

mod dump;
mod files;
mod measure;
mod sign;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use enclave::key::Key;
use enclave::sigstruct::{SigningFields, date_from_ymd};
use std::path::PathBuf;
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

/// Today's date (UTC) as SIGSTRUCT DATE: the only clock read of the enclave tool. 0 (no date)
/// when the clock is before 1970 or after 9999.
fn today() -> u32 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp())
        .ok()
        .and_then(date_from_unix_secs)
        .unwrap_or(0)
}

/// The UTC calendar date of a Unix time as SIGSTRUCT DATE (yyyymmdd as hex digits, so
/// 2024-02-29 is 0x20240229); `None` after 9999-12-31, which four digits cannot hold.
fn date_from_unix_secs(secs: u64) -> Option<u32> {
    let d = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?)
        .ok()?
        .date();
    date_from_ymd(
        u32::try_from(d.year()).ok()?,
        u32::from(u8::from(d.month())),
        u32::from(d.day()),
    )
}

impl FieldArgs {
    fn resolve(&self) -> Result<SigningFields> {
        let base = match &self.config {
            Some(p) => files::read_config(p)?,
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

pub(crate) fn run(args: EnclaveArgs) -> Result<ExitCode> {
    match args.command {
        EnclaveCommand::Measure {
            file,
            format,
            raw,
            tcs_pages,
            ssa_frame_size,
            sgxs_out,
            config,
        } => measure::run(&measure::MeasureArgs {
            file: &file,
            format,
            raw,
            tcs_pages: &tcs_pages,
            ssa_frame_size,
            sgxs_out: sgxs_out.as_deref(),
            config: config.as_deref(),
        }),
        EnclaveCommand::Dump { file, format } => dump::run(&file, format),
        EnclaveCommand::Sign {
            key,
            input,
            out,
            fields,
        } => sign::sign(
            &key,
            &input,
            &out,
            &fields.resolve()?,
            fields.config.as_deref(),
            today(),
        ),
        EnclaveCommand::Gendata { input, out, fields } => sign::gendata(
            &input,
            &out,
            &fields.resolve()?,
            fields.config.as_deref(),
            today(),
        ),
        EnclaveCommand::Catsig {
            input,
            key,
            signature,
            unsigned,
            out,
            config,
        } => sign::catsig(
            &sign::CatsigArgs {
                input: &input,
                key: &key,
                signature: &signature,
                unsigned: &unsigned,
                out: &out,
                config: config.as_deref(),
            },
            today(),
        ),
        EnclaveCommand::Mrsigner { key, format } => {
            let k = files::load_key(&key)?;
            let mrsigner = k.public().mrsigner();
            match format {
                Format::Text => println!("{mrsigner}"),
                Format::Json => files::print_json(&serde_json::json!({
                    "key": key.display().to_string(),
                    "private": matches!(k, Key::Private(_)),
                    "mrsigner": mrsigner.to_hex(),
                }))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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

    #[test]
    fn dates_from_unix_time() {
        // (Unix seconds, UTC date) pairs; the seconds are `date -u -d <date> +%s`.
        let cases: &[(u64, u32)] = &[
            (0, 0x1970_0101),
            (86_399, 0x1970_0101),
            (86_400, 0x1970_0102),
            (946_684_799, 0x1999_1231),
            (946_684_800, 0x2000_0101),
            (951_782_400, 0x2000_0229), // 2000 is a leap year (divisible by 400)
            (951_868_800, 0x2000_0301),
            (1_703_980_800, 0x2023_1231),
            (1_704_067_199, 0x2023_1231),
            (1_704_067_200, 0x2024_0101),
            (1_709_164_800, 0x2024_0229),
            (1_709_251_200, 0x2024_0301),
            (4_107_542_399, 0x2100_0228), // 2100 is not (divisible by 100, not by 400)
            (4_107_542_400, 0x2100_0301),
            (253_402_300_799, 0x9999_1231),
        ];
        for &(secs, date) in cases {
            assert_eq!(date_from_unix_secs(secs), Some(date), "{secs}");
        }
        assert_eq!(date_from_unix_secs(253_402_300_800), None); // 10000-01-01
        assert_eq!(date_from_unix_secs(u64::MAX), None);
        let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();
        let t = today();
        // today() is date_from_unix_secs of the clock (unless midnight passed in between).
        assert!(
            date_from_unix_secs(now) == Some(t) || date_from_unix_secs(now + 5) == Some(t),
            "{t:#x}"
        );
    }
}
