//! `confkube enclave sign | gendata | catsig`: read the inputs, let `enclave::sign` prepare and
//! sign, write the output, print what was done.

use super::files::{commit_partial, create_partial, detect, finish, load_key, open, partial_path};
use super::measure::{measure_sgxs_file, read_sdk, unsigned_config};
use anyhow::{Context as _, Result, bail};
use enclave::inspect::InputKind;
use enclave::sdk::SdkEnclave;
use enclave::sdk_gen::SdkConfig;
use enclave::sign::{Prepared, prepare_sdk, prepare_sgxs};
use enclave::sigstruct::{SigningFields, Sigstruct};
use std::io::BufReader;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn sign(
    key: &Path,
    input: &Path,
    out: &Path,
    fields: &SigningFields,
    config: Option<&Path>,
    date: u32,
) -> Result<ExitCode> {
    let signer = load_key(key)?
        .into_signer()
        .with_context(|| key.display().to_string())?;
    let (p, e) = prepare(input, fields, config, date)?;
    let signed = p.sign(&signer)?;
    write_output(input, out, &p, e.as_ref(), &signed)?;
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

pub(super) fn gendata(
    input: &Path,
    out: &Path,
    fields: &SigningFields,
    config: Option<&Path>,
    date: u32,
) -> Result<ExitCode> {
    let (p, _) = prepare(input, fields, config, date)?;
    let data = p
        .common_signed_data()
        .with_context(|| input.display().to_string())?;
    std::fs::write(out, data).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "wrote the 256 bytes to sign to {} (MRENCLAVE {}); sign them with RSASSA-PKCS1-v1_5 \
         SHA-256, e.g. `openssl dgst -sha256 -sign key.pem -out sig.bin {}`, then run catsig",
        out.display(),
        p.mrenclave,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The `catsig` files.
pub(super) struct CatsigArgs<'a> {
    pub input: &'a Path,
    pub key: &'a Path,
    pub signature: &'a Path,
    pub unsigned: &'a Path,
    pub out: &'a Path,
    pub config: Option<&'a Path>,
}

pub(super) fn catsig(a: &CatsigArgs<'_>, date: u32) -> Result<ExitCode> {
    let key = load_key(a.key)?;
    let data =
        std::fs::read(a.unsigned).with_context(|| format!("reading {}", a.unsigned.display()))?;
    let sig =
        std::fs::read(a.signature).with_context(|| format!("reading {}", a.signature.display()))?;
    let mut s = Sigstruct::from_signed_data(&data)
        .with_context(|| format!("{}: not gendata output", a.unsigned.display()))?;
    let (p, e) = prepare(a.input, &SigningFields::default(), a.config, date)?;
    if s.enclavehash() != p.mrenclave {
        eprintln!(
            "error: {}: ENCLAVEHASH {} is not the measurement {} of {}; run gendata on this enclave again",
            a.unsigned.display(),
            s.enclavehash(),
            p.mrenclave,
            a.input.display()
        );
        return Ok(ExitCode::from(1));
    }
    if let Err(err) = s.attach_signature(key.public(), &sig) {
        eprintln!(
            "error: {}: {err} (key MRSIGNER {})",
            a.signature.display(),
            key.public().mrsigner()
        );
        return Ok(ExitCode::from(1));
    }
    let signed = vec![s; p.sigstructs.len()];
    write_output(a.input, a.out, &p, e.as_ref(), &signed)?;
    eprintln!("wrote {} (signature verified)", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Unsigned SIGSTRUCT(s) for an input (and the SDK enclave, to write the output).
fn prepare(
    input: &Path,
    fields: &SigningFields,
    config: Option<&Path>,
    date: u32,
) -> Result<(Prepared, Option<SdkEnclave>)> {
    match detect(input)? {
        InputKind::Sgxs => {
            let s = measure_sgxs_file(input)?;
            Ok((prepare_sgxs(s.mrenclave, fields, date), None))
        }
        InputKind::Sdk => {
            let (e, mut r) = read_sdk(input)?;
            let cfg = if e.blocks.is_empty() {
                unsigned_config(input, &e, config)?
            } else {
                SdkConfig::default()
            };
            let p = prepare_sdk(&mut r, &e, fields, date, &cfg)
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
