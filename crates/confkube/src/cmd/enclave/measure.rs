//! `confkube enclave measure`: open the input, pick the measurement by its kind, print.

use super::Format;
use super::files::{detect, finish, open_input, print_json, with_sgxs_out};
use anyhow::{Context as _, Result, bail};
use enclave::config::EnclaveConfig;
use enclave::inspect::{InputKind, MeasureReport, Measurement, measure_sdk};
use enclave::measure::{flat_image_secinfo, flat_image_size, measure_flat_image};
use enclave::sdk::SdkEnclave;
use enclave::sdk_gen::SdkConfig;
use std::path::Path;
use std::process::ExitCode;

/// The `measure` flags.
pub(super) struct MeasureArgs<'a> {
    pub file: &'a Path,
    pub format: Format,
    pub raw: bool,
    pub tcs_pages: &'a [u64],
    pub ssa_frame_size: u32,
    pub sgxs_out: Option<&'a Path>,
    pub config: Option<&'a Path>,
}

pub(super) fn run(a: &MeasureArgs<'_>) -> Result<ExitCode> {
    let (m, kind) = if a.raw {
        let m = measure_raw(a.file, a.tcs_pages, a.ssa_frame_size, a.sgxs_out)?;
        (m, "raw-image")
    } else {
        measure_file(a.file, a.sgxs_out, a.config)?
    };
    match a.format {
        Format::Text => println!("{}", m.mrenclave),
        Format::Json => print_json(&MeasureReport::new(a.file.display().to_string(), kind, &m))?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn measure_sgxs_file(p: &Path) -> Result<enclave::sgxs::SgxsSummary> {
    let mut r = open_input(p, 1 << 20)?;
    let s = enclave::sgxs::measure_sgxs(&mut r)
        .with_context(|| format!("{}: invalid SGXS stream", p.display()))?;
    finish(&r);
    Ok(s)
}

pub(super) fn read_sdk(p: &Path) -> Result<(SdkEnclave, super::files::Input)> {
    let mut r = open_input(p, 1 << 16)?;
    let e = SdkEnclave::read(&mut r)
        .with_context(|| format!("{}: cannot read the SGX SDK enclave", p.display()))?;
    Ok((e, r))
}

/// The layout settings for an unsigned SDK enclave: its `Enclave.config.xml` is required.
pub(super) fn unsigned_config(
    p: &Path,
    e: &SdkEnclave,
    config: Option<&Path>,
) -> Result<SdkConfig> {
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
pub(super) fn measure_file(
    p: &Path,
    sgxs_out: Option<&Path>,
    config: Option<&Path>,
) -> Result<(Measurement, &'static str)> {
    match detect(p)? {
        InputKind::Sgxs if sgxs_out.is_some() => bail!(
            "{}: already an SGXS stream; --sgxs-out is for SDK and raw input",
            p.display()
        ),
        InputKind::Sgxs => Ok((Measurement::from(&measure_sgxs_file(p)?), "sgxs")),
        InputKind::Sdk => {
            let (e, mut r) = read_sdk(p)?;
            let cfg = if e.blocks.is_empty() {
                Some(unsigned_config(p, &e, config)?)
            } else {
                None
            };
            let m = with_sgxs_out(sgxs_out, |w| {
                let (m, _) = measure_sdk(&mut r, &e, cfg.as_ref(), w)
                    .with_context(|| p.display().to_string())?;
                Ok(m)
            })?;
            finish(&r);
            if let Some(embedded) = m.stale_enclavehash {
                eprintln!(
                    "warning: {}: the embedded ENCLAVEHASH {} differs from the measurement {}: the \
                     enclave was modified after signing; re-sign it (`confkube enclave sign`)",
                    p.display(),
                    embedded,
                    m.measurement.mrenclave
                );
            }
            Ok((m.measurement, "sdk-so"))
        }
        InputKind::Sigstruct => bail!(
            "{}: this is a SIGSTRUCT, which holds only the expected hash; use `confkube enclave dump` \
             to see its ENCLAVEHASH, or measure the enclave itself",
            p.display()
        ),
    }
}

pub(super) fn measure_raw(
    p: &Path,
    tcs: &[u64],
    ssa: u32,
    sgxs_out: Option<&Path>,
) -> Result<Measurement> {
    let mut r = open_input(p, 1 << 20)?;
    let len = r.progress.length().unwrap_or(0);
    let size = flat_image_size(len).with_context(|| p.display().to_string())?;
    let flags = |i: u64| flat_image_secinfo(tcs.contains(&i));
    let (mrenclave, stats) = with_sgxs_out(sgxs_out, |w| {
        let (d, stats, _) = measure_flat_image(&mut r, ssa, size, flags, w)
            .with_context(|| format!("{}: measuring the raw image", p.display()))?;
        Ok((d, stats))
    })?;
    finish(&r);
    Ok(Measurement {
        mrenclave,
        stats,
        enclave_size: size,
        ssa_frame_size: ssa,
    })
}

#[cfg(test)]
mod tests {
    use super::super::files::partial_path;
    use super::*;
    use enclave::MrEnclave;
    use enclave::sigstruct::Sigstruct;
    use std::path::PathBuf;

    fn temp(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn input_errors_name_the_file_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let g = temp(&dir, "garbage.bin", b"not an enclave at all");
        let e = measure_file(&g, None, None).err().unwrap().to_string();
        assert!(e.ends_with("not an Intel SGX SDK enclave (ELF .so), an SGXS stream or a 1808-byte SIGSTRUCT (for a flat page image use `measure --raw`)"), "{e}");
        let ss = temp(&dir, "s.sig", &Sigstruct::new(MrEnclave([0; 32])).encode());
        let e = measure_file(&ss, None, None).err().unwrap().to_string();
        assert!(
            e.contains("this is a SIGSTRUCT, which holds only the expected hash"),
            "{e}"
        );
        let raw = temp(&dir, "partial.img", &[0u8; 5000]);
        let e = format!("{:#}", measure_raw(&raw, &[0], 1, None).err().unwrap());
        assert!(e.ends_with("the image ends 904 bytes into the page at offset 0x1000: a flat image is whole 4096-byte pages"), "{e}");
        let missing = dir.path().join("does-not-exist");
        let e = measure_file(&missing, None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("cannot open "), "{e}");
        let empty = temp(&dir, "empty.img", b"");
        let e = format!("{:#}", measure_raw(&empty, &[0], 1, None).err().unwrap());
        assert_eq!(e, format!("{}: empty image", empty.display()));
    }

    #[test]
    fn raw_measure_and_sgxs_out_agree() {
        let dir = tempfile::tempdir().unwrap();
        let img = temp(&dir, "ok.img", &[0x5au8; 3 * 4096]);
        let out = dir.path().join("ok.sgxs");
        let m = measure_raw(&img, &[0], 1, Some(&out)).unwrap();
        assert_eq!(
            (m.enclave_size, m.stats.pages_added, m.stats.pages_extended),
            (0x4000, 3, 3)
        );
        let (m2, _) = measure_file(&out, None, None).unwrap();
        assert_eq!(m2.mrenclave, m.mrenclave);
        assert!(!partial_path(&out).exists());
    }

    #[test]
    fn failed_sgxs_out_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let img = temp(&dir, "bad.img", &[0u8; 5000]);
        let out = dir.path().join("bad.sgxs");
        assert!(measure_raw(&img, &[0], 1, Some(&out)).is_err());
        assert!(!partial_path(&out).exists());
        assert!(!out.exists());
    }
}
