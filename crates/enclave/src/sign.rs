//! The signing workflow behind `sign`, `gendata` and `catsig`: unsigned SIGSTRUCTs with
//! ENCLAVEHASH set to the measurement and the caller's fields applied ([`Prepared`]), the rule
//! that one external signature must cover every metadata block, and writing the signed
//! output. The DATE default is a parameter: this crate never reads the clock.

use crate::Mrenclave;
use crate::sdk::{SdkEnclave, SdkError};
use crate::sdk_gen::{GenError, GeneratedMetadata, SdkConfig};
use crate::sigstruct::{
    SIGNED_DATA_SIZE, SignError, SigningFields, Sigstruct, SigstructSigner, VerifyError,
};
use std::io::{Read, Seek, Write};

/// Why signing cannot proceed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// Reading or replaying the SDK enclave failed.
    #[error("replaying the SDK loader")]
    Sdk(#[source] SdkError),
    /// Generating metadata for an unsigned enclave failed.
    #[error("generating SGX metadata")]
    Generate(#[source] GenError),
    /// The metadata blocks do not measure the same.
    #[error(
        "metadata block {major}.{minor} at offset {offset:#x} measures {measured} but the first block {first}"
    )]
    BlocksDiffer {
        /// Block version.
        major: u32,
        /// Block version.
        minor: u32,
        /// Block offset.
        offset: u64,
        /// Its measurement.
        measured: Mrenclave,
        /// The first block's.
        first: Mrenclave,
    },
    /// Blocks carry different SIGSTRUCT fields: one external signature cannot cover them.
    #[error(
        "its metadata blocks carry different SIGSTRUCT fields, so one external signature cannot cover them; re-sign with `sign` and a key file instead"
    )]
    FieldsDiffer,
    /// Nothing to sign (an enclave without blocks).
    #[error("no SIGSTRUCT to sign")]
    NoSigstruct,
    /// The signer failed.
    #[error("signing the SIGSTRUCT")]
    Sign(#[source] SignError),
    /// The fresh signature does not verify.
    #[error("the fresh signature does not verify (signer fault)")]
    Verify(#[source] VerifyError),
}

/// Unsigned SIGSTRUCT(s) for an input, ENCLAVEHASH set to its measurement.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The measurement.
    pub mrenclave: Mrenclave,
    /// One SIGSTRUCT per metadata block (one for SGXS or generated metadata).
    pub sigstructs: Vec<Sigstruct>,
    /// Metadata generated for an unsigned SDK enclave (written with the signature).
    pub generated: Option<GeneratedMetadata>,
}

/// For an SGXS stream measuring `mrenclave`: the Intel SDK defaults, DATE = `date`, then
/// `fields`.
pub fn prepare_sgxs(mrenclave: Mrenclave, fields: &SigningFields, date: u32) -> Prepared {
    let mut s = Sigstruct::new(mrenclave);
    s.date = date;
    fields.apply(&mut s);
    Prepared {
        mrenclave,
        sigstructs: vec![s],
        generated: None,
    }
}

/// For an SDK enclave: a signed one is re-measured block by block (all must agree) and its
/// SIGSTRUCTs keep every field not in `fields`; an unsigned one gets `sgx_sign`'s metadata
/// generated from `config` and a fresh SIGSTRUCT (DATE = `date`).
pub fn prepare_sdk<R: Read + Seek>(
    r: &mut R,
    encl: &SdkEnclave,
    fields: &SigningFields,
    date: u32,
    config: &SdkConfig,
) -> Result<Prepared, PrepareError> {
    if encl.blocks.is_empty() {
        let g = crate::sdk_gen::generate(r, encl, config).map_err(PrepareError::Generate)?;
        let (d, _, _) = encl
            .measure_block(r, &g.block, std::io::sink())
            .map_err(PrepareError::Sdk)?;
        let mut s = Sigstruct::new(d);
        s.date = date;
        fields.apply(&mut s);
        return Ok(Prepared {
            mrenclave: d,
            sigstructs: vec![s],
            generated: Some(g),
        });
    }
    let mut sigs = Vec::new();
    let mut first: Option<Mrenclave> = None;
    for b in &encl.blocks {
        let (d, _, _) = encl
            .measure_block(r, b, std::io::sink())
            .map_err(PrepareError::Sdk)?;
        if let Some(f) = first
            && f != d
        {
            return Err(PrepareError::BlocksDiffer {
                major: b.major,
                minor: b.minor,
                offset: b.file_offset,
                measured: d,
                first: f,
            });
        }
        first = Some(d);
        let mut s = b.sigstruct.clone();
        s.enclavehash = d.0;
        fields.apply(&mut s);
        sigs.push(s);
    }
    Ok(Prepared {
        mrenclave: first.ok_or(PrepareError::NoSigstruct)?,
        sigstructs: sigs,
        generated: None,
    })
}

impl Prepared {
    /// The 256 bytes an external signer signs (`gendata`): the same for every block, or
    /// [`PrepareError::FieldsDiffer`].
    pub fn common_signed_data(&self) -> Result<[u8; SIGNED_DATA_SIZE], PrepareError> {
        let first = self
            .sigstructs
            .first()
            .ok_or(PrepareError::NoSigstruct)?
            .signed_data();
        if self.sigstructs.iter().any(|s| s.signed_data() != first) {
            return Err(PrepareError::FieldsDiffer);
        }
        Ok(first)
    }

    /// Signs every SIGSTRUCT with `signer` and verifies the result.
    pub fn sign(&self, signer: &dyn SigstructSigner) -> Result<Vec<Sigstruct>, PrepareError> {
        self.sigstructs
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.sign(signer).map_err(PrepareError::Sign)?;
                s.verify().map_err(PrepareError::Verify)?;
                Ok(s)
            })
            .collect()
    }

    /// Writes the signed SDK enclave: the file from `r` with the generated metadata (unsigned
    /// input) or with each block's SIGSTRUCT replaced (signed input).
    pub fn write_sdk<R: Read + Seek, W: Write>(
        &self,
        encl: &SdkEnclave,
        r: &mut R,
        w: &mut W,
        signed: &[Sigstruct],
    ) -> Result<(), PrepareError> {
        match &self.generated {
            Some(g) => {
                let mut g = g.clone();
                g.set_sigstruct(signed.first().ok_or(PrepareError::NoSigstruct)?)
                    .map_err(PrepareError::Generate)?;
                encl.write_with_metadata(r, w, &g.bytes)
            }
            None => encl.write_with_sigstructs(r, w, signed),
        }
        .map_err(PrepareError::Sdk)
    }
}

/// Whether metadata generation for `cfg` goes beyond the configurations checked byte for byte
/// against `sgx_sign` output (HeapInitSize = HeapMaxSize, TCSMaxNum = TCSNum, default
/// TCSMinPool, StackMinSize and HeapMinSize): callers should warn.
pub fn config_beyond_checked(cfg: &SdkConfig) -> bool {
    let d = SdkConfig::default();
    cfg.heap_init_size != cfg.heap_max_size
        || cfg.tcs_max_num != cfg.tcs_num
        || cfg.tcs_min_pool != d.tcs_min_pool
        || cfg.stack_min_size != d.stack_min_size
        || cfg.heap_min_size != d.heap_min_size
}
