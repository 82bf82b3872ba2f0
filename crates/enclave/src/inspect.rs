//! What `confkube enclave measure` and `dump` report: the input kind detected from magic bytes,
//! and a serialisable model of every SIGSTRUCT, metadata block and layout entry (hex strings
//! lowercase, scalars as the SDK's `print_metadata` shows them). The binary only prints it.

use crate::measure::MeasureStats;
use crate::sdk::{LayoutItem, MetadataBlock, SdkEnclave, SdkError, layout_name};
use crate::sdk_gen::{GenError, SdkConfig, generate};
use crate::sgxs::SgxsSummary;
use crate::sigstruct::{Attributes, HEADER, SIGSTRUCT_SIZE, Sigstruct, flags};
use serde::Serialize;
use sgx_types::MrEnclave;
use std::io::{Read, Seek, Write};

/// What kind of enclave file some bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// An Intel SGX SDK enclave (ELF).
    Sdk,
    /// A Fortanix SGXS stream.
    Sgxs,
    /// A raw 1808-byte SIGSTRUCT.
    Sigstruct,
}

impl InputKind {
    /// Detects the kind from the first bytes of a file (16 are enough) and its length.
    pub fn detect(head: &[u8], len: u64) -> Option<Self> {
        if head.starts_with(b"\x7fELF") {
            Some(Self::Sdk)
        } else if head.starts_with(b"ECREATE\0") || head.starts_with(b"UNSIZED\0") {
            Some(Self::Sgxs)
        } else if len == SIGSTRUCT_SIZE as u64 && head.starts_with(&HEADER) {
            Some(Self::Sigstruct)
        } else {
            None
        }
    }
}

fn hex64(v: u64) -> String {
    format!("{v:#x}")
}

/// An error and its `source()` chain as one line (`a: b: c`), for reports.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// ATTRIBUTES / ATTRIBUTEMASK as hex strings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttributesReport {
    /// Flags.
    pub flags: String,
    /// XFRM.
    pub xfrm: String,
}

impl From<&Attributes> for AttributesReport {
    fn from(a: &Attributes) -> Self {
        Self {
            flags: hex64(a.flags),
            xfrm: hex64(a.xfrm),
        }
    }
}

/// Names of the set attribute flags.
pub fn flag_names(f: u64) -> Vec<&'static str> {
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

/// Every SIGSTRUCT field, whether it verifies and whether ENCLAVEHASH matches a measurement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SigstructReport {
    /// TYPE.
    pub header_type: String,
    /// TYPE bit 31.
    pub debug_signed: bool,
    /// MODULE_VENDOR.
    pub vendor: String,
    /// DATE.
    pub date: String,
    /// SWDEFINED.
    pub swdefined: String,
    /// EXPONENT.
    pub exponent: u32,
    /// MODULUS as stored.
    pub modulus_le: String,
    /// SIGNATURE as stored.
    pub signature_le: String,
    /// MISCSELECT.
    pub miscselect: String,
    /// MISCMASK.
    pub miscmask: String,
    /// ISVFAMILYID.
    pub isvfamilyid: String,
    /// ATTRIBUTES.
    pub attributes: AttributesReport,
    /// Names of the ATTRIBUTES flags.
    pub attribute_names: Vec<&'static str>,
    /// ATTRIBUTEMASK.
    pub attributemask: AttributesReport,
    /// ENCLAVEHASH.
    pub enclavehash: String,
    /// ISVEXTPRODID.
    pub isvextprodid: String,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// Q1 as stored.
    pub q1_le: String,
    /// Q2 as stored.
    pub q2_le: String,
    /// MRSIGNER.
    pub mrsigner: String,
    /// Signature and q1/q2 verify.
    pub signature_valid: bool,
    /// Why not.
    pub verify_error: Option<String>,
    /// The measured MRENCLAVE, when the enclave was measured.
    pub measured_mrenclave: Option<String>,
    /// ENCLAVEHASH equals the measurement.
    pub enclavehash_matches: Option<bool>,
}

impl SigstructReport {
    /// The report for `s`, with the enclave's measurement if there is one.
    pub fn new(s: &Sigstruct, measured: Option<MrEnclave>) -> Self {
        let verify = s.verify();
        Self {
            header_type: format!("{:#x}", s.header_type),
            debug_signed: s.header_type & (1 << 31) != 0,
            vendor: format!("{:#x}", s.vendor),
            date: format!("{:#x}", s.date),
            swdefined: format!("{:#x}", s.swdefined),
            exponent: s.exponent,
            modulus_le: hex::encode(s.modulus),
            signature_le: hex::encode(s.signature),
            miscselect: format!("{:#x}", s.miscselect),
            miscmask: format!("{:#x}", s.miscmask),
            isvfamilyid: hex::encode(s.isvfamilyid),
            attributes: (&s.attributes).into(),
            attribute_names: flag_names(s.attributes.flags),
            attributemask: (&s.attributemask).into(),
            enclavehash: s.enclavehash().to_hex(),
            isvextprodid: hex::encode(s.isvextprodid),
            isv_prod_id: s.isvprodid,
            isv_svn: s.isvsvn,
            q1_le: hex::encode(s.q1),
            q2_le: hex::encode(s.q2),
            mrsigner: s.mrsigner().to_hex(),
            signature_valid: verify.is_ok(),
            verify_error: verify.err().map(|e| error_chain(&e)),
            measured_mrenclave: measured.map(|m| m.to_hex()),
            enclavehash_matches: measured.map(|m| m == s.enclavehash()),
        }
    }

    /// Every check passed (the signature verifies; ENCLAVEHASH matches when measured).
    pub fn ok(&self) -> bool {
        self.signature_valid && self.enclavehash_matches != Some(false)
    }
}

/// A layout table item.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LayoutReport {
    /// A region.
    Entry {
        /// Symbolic name.
        name: &'static str,
        /// Layout id.
        id: u16,
        /// Attributes.
        attributes: String,
        /// Pages.
        page_count: u32,
        /// RVA.
        rva: String,
        /// Content size or fill pattern.
        content_size: String,
        /// Content offset.
        content_offset: String,
        /// SECINFO flags.
        si_flags: String,
    },
    /// A repetition.
    Group {
        /// Symbolic name.
        group: &'static str,
        /// Group id.
        id: String,
        /// Items repeated.
        entry_count: u16,
        /// Repetitions.
        load_times: u32,
        /// RVA step.
        load_step: String,
    },
}

/// A patch entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PatchReport {
    /// File offset patched.
    pub dst: String,
    /// Source offset in the block.
    pub src: String,
    /// Bytes.
    pub size: String,
}

/// ELRANGE settings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ElrangeReport {
    /// Image address.
    pub image_address: String,
    /// ELRANGE start.
    pub start_address: String,
    /// ELRANGE size.
    pub size: String,
}

/// One metadata block.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BlockReport {
    /// `major.minor`.
    pub version: String,
    /// File offset.
    pub file_offset: String,
    /// `size`.
    pub size: String,
    /// TCS policy.
    pub tcs_policy: u32,
    /// SSA frame size.
    pub ssa_frame_size: u32,
    /// XSAVE size.
    pub max_save_buffer_size: u32,
    /// Loader MISCSELECT.
    pub desired_misc_select: String,
    /// TCS pool.
    pub tcs_min_pool: u32,
    /// Enclave size.
    pub enclave_size: String,
    /// Loader attributes.
    pub attributes: AttributesReport,
    /// ELRANGE.
    pub elrange: Option<ElrangeReport>,
    /// Pages EADDed by the replay (None when the version is not replayed).
    pub pages_eadded: Option<u64>,
    /// Pages EEXTENDed by the replay.
    pub pages_eextended: Option<u64>,
    /// Patch table.
    pub patches: Vec<PatchReport>,
    /// Layout table.
    pub layout: Vec<LayoutReport>,
    /// The block's SIGSTRUCT.
    pub sigstruct: SigstructReport,
}

impl BlockReport {
    /// The report for `b`, with its replay result (`None` when not replayed).
    pub fn new(b: &MetadataBlock, measured: Option<(MrEnclave, MeasureStats)>) -> Self {
        let layout = b
            .layout
            .iter()
            .map(|l| match l {
                LayoutItem::Entry(x) => LayoutReport::Entry {
                    name: layout_name(x.id),
                    id: x.id,
                    attributes: format!("{:#x}", x.attributes),
                    page_count: x.page_count,
                    rva: hex64(x.rva),
                    content_size: format!("{:#x}", x.content_size),
                    content_offset: format!("{:#x}", x.content_offset),
                    si_flags: hex64(x.si_flags),
                },
                LayoutItem::Group(g) => LayoutReport::Group {
                    group: layout_name(g.id),
                    id: format!("{:#x}", g.id),
                    entry_count: g.entry_count,
                    load_times: g.load_times,
                    load_step: hex64(g.load_step),
                },
            })
            .collect();
        Self {
            version: format!("{}.{}", b.major, b.minor),
            file_offset: hex64(b.file_offset),
            size: format!("{:#x}", b.size),
            tcs_policy: b.tcs_policy,
            ssa_frame_size: b.ssa_frame_size,
            max_save_buffer_size: b.max_save_buffer_size,
            desired_misc_select: format!("{:#x}", b.desired_misc_select),
            tcs_min_pool: b.tcs_min_pool,
            enclave_size: hex64(b.enclave_size),
            attributes: (&b.attributes).into(),
            elrange: b.elrange.map(|x| ElrangeReport {
                image_address: hex64(x.image_address),
                start_address: hex64(x.start_address),
                size: hex64(x.size),
            }),
            pages_eadded: measured.map(|m| m.1.pages_added),
            pages_eextended: measured.map(|m| m.1.pages_extended),
            patches: b
                .patches
                .iter()
                .map(|p| PatchReport {
                    dst: hex64(p.dst),
                    src: format!("{:#x}", p.src),
                    size: format!("{:#x}", p.size),
                })
                .collect(),
            layout,
            sigstruct: SigstructReport::new(&b.sigstruct, measured.map(|m| m.0)),
        }
    }
}

/// A `PT_LOAD` segment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SegmentReport {
    /// p_offset.
    pub offset: String,
    /// p_vaddr.
    pub vaddr: String,
    /// p_filesz.
    pub filesz: String,
    /// p_memsz.
    pub memsz: String,
    /// p_flags.
    pub flags: u32,
}

/// Where `.note.sgxmeta` is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NoteReport {
    /// Section offset.
    pub sh_offset: String,
    /// Section size.
    pub sh_size: String,
    /// Alignment.
    pub sh_addralign: u64,
    /// Name size.
    pub namesz: u32,
    /// Descriptor size.
    pub descsz: String,
    /// Note type.
    pub r#type: u32,
    /// Metadata offset.
    pub metadata_offset: String,
}

/// `dump` of an SDK enclave.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SdkReport {
    /// The input name.
    pub file: String,
    /// `signed-sdk-so` or `unsigned-sdk-so`.
    pub kind: &'static str,
    /// The first block's measurement.
    pub mrenclave: Option<String>,
    /// PT_LOAD segments.
    pub segments: Vec<SegmentReport>,
    /// The note.
    pub note_sgxmeta: NoteReport,
    /// Every metadata block.
    pub metadata: Vec<BlockReport>,
}

impl SdkReport {
    /// Every block's checks passed.
    pub fn ok(&self) -> bool {
        self.metadata.iter().all(|b| b.sigstruct.ok())
    }
}

/// Replays every block of `encl` (read from `r`) and reports it. A block whose metadata
/// version is not replayed is still reported (no measurement) and its error returned in the
/// second element: `dump` never refuses on a metadata version.
pub fn inspect_sdk<R: Read + Seek>(
    r: &mut R,
    encl: &SdkEnclave,
    file: String,
) -> Result<(SdkReport, Vec<SdkError>), SdkError> {
    let mut metadata = Vec::new();
    let mut skipped = Vec::new();
    for b in &encl.blocks {
        let measured = match encl.measure_block(r, b, std::io::sink()) {
            Ok((d, stats, _)) => Some((d, stats)),
            Err(e @ SdkError::UnsupportedVersion { .. }) => {
                skipped.push(e);
                None
            }
            Err(e) => return Err(e),
        };
        metadata.push(BlockReport::new(b, measured));
    }
    let n = &encl.note;
    let report = SdkReport {
        file,
        kind: if encl.blocks.is_empty() {
            "unsigned-sdk-so"
        } else {
            "signed-sdk-so"
        },
        mrenclave: metadata
            .first()
            .and_then(|b| b.sigstruct.measured_mrenclave.clone()),
        segments: encl
            .segments
            .iter()
            .map(|s| SegmentReport {
                offset: hex64(s.offset),
                vaddr: hex64(s.vaddr),
                filesz: hex64(s.filesz),
                memsz: hex64(s.memsz),
                flags: s.flags,
            })
            .collect(),
        note_sgxmeta: NoteReport {
            sh_offset: hex64(n.sh_offset),
            sh_size: hex64(n.sh_size),
            sh_addralign: n.sh_addralign,
            namesz: n.namesz,
            descsz: format!("{:#x}", n.descsz),
            r#type: n.note_type,
            metadata_offset: hex64(n.metadata_offset),
        },
        metadata,
    };
    Ok((report, skipped))
}

/// `dump` of a SIGSTRUCT file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SigstructFileReport {
    /// The input name.
    pub file: String,
    /// `sigstruct`.
    pub kind: &'static str,
    /// Its fields.
    pub sigstruct: SigstructReport,
}

/// `dump` of an SGXS stream.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SgxsReport {
    /// The input name.
    pub file: String,
    /// `sgxs`.
    pub kind: &'static str,
    /// SHA-256 of the measured records.
    pub mrenclave: String,
    /// ECREATE SIZE.
    pub enclave_size: String,
    /// ECREATE SSAFRAMESIZE.
    pub ssa_frame_size: u32,
    /// EADD records.
    pub pages_eadded: u64,
    /// EEXTEND records.
    pub chunks_eextended: u64,
    /// UNMEASRD records.
    pub chunks_unmeasured: u64,
    /// Bytes.
    pub stream_len: u64,
}

impl SgxsReport {
    /// The report for a measured stream.
    pub fn new(file: String, s: &SgxsSummary) -> Self {
        Self {
            file,
            kind: "sgxs",
            mrenclave: s.mrenclave.to_hex(),
            enclave_size: hex64(s.size),
            ssa_frame_size: s.ssa_frame_size,
            pages_eadded: s.pages_added,
            chunks_eextended: s.chunks_extended,
            chunks_unmeasured: s.chunks_unmeasured,
            stream_len: s.stream_len,
        }
    }
}

/// One MRENCLAVE measurement of any input kind, with what `measure --format json` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// MRENCLAVE.
    pub mrenclave: MrEnclave,
    /// Pages EADDed and EEXTENDed.
    pub stats: MeasureStats,
    /// ECREATE SIZE (the ELRANGE size when the enclave has one).
    pub enclave_size: u64,
    /// ECREATE SSAFRAMESIZE.
    pub ssa_frame_size: u32,
}

impl From<&SgxsSummary> for Measurement {
    /// An SGXS stream's measurement; a page counts as extended per 16 EEXTENDed chunks.
    fn from(s: &SgxsSummary) -> Self {
        Self {
            mrenclave: s.mrenclave,
            stats: MeasureStats {
                pages_added: s.pages_added,
                pages_extended: s.chunks_extended / 16,
            },
            enclave_size: s.size,
            ssa_frame_size: s.ssa_frame_size,
        }
    }
}

/// Why an SDK enclave cannot be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureSdkError {
    /// The metadata `sgx_sign` would build for the unsigned enclave could not be generated.
    #[error("generating SGX metadata")]
    Generate(#[source] GenError),
    /// The replay of the SDK loader failed.
    #[error("replaying the SDK loader")]
    Replay(#[source] SdkError),
}

/// An SDK enclave's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkMeasurement {
    /// What was measured (the primary block's layout).
    pub measurement: Measurement,
    /// The embedded ENCLAVEHASH when it differs from the measurement (the enclave was modified
    /// after signing); `None` when they agree or the enclave is unsigned.
    pub stale_enclavehash: Option<MrEnclave>,
    /// The metadata was generated from `cfg` (the enclave was unsigned).
    pub generated: bool,
}

/// Measures an SDK enclave: a signed one with its primary metadata block; an unsigned one
/// (no metadata blocks) with the block `sgx_sign` would generate from `cfg` (required then:
/// `None` gives [`SdkError::Unsigned`]). `sink` receives the SGXS stream.
pub fn measure_sdk<R: Read + Seek, W: Write>(
    r: &mut R,
    e: &SdkEnclave,
    cfg: Option<&SdkConfig>,
    sink: W,
) -> Result<(SdkMeasurement, W), MeasureSdkError> {
    let generated;
    let block = if e.blocks.is_empty() {
        let cfg = cfg.ok_or(MeasureSdkError::Replay(SdkError::Unsigned {
            offset: e.note.metadata_offset,
        }))?;
        generated = Some(
            generate(r, e, cfg)
                .map_err(MeasureSdkError::Generate)?
                .block,
        );
        generated.as_ref()
    } else {
        generated = None;
        e.blocks.first()
    };
    let b = block.ok_or(MeasureSdkError::Replay(SdkError::Unsigned {
        offset: e.note.metadata_offset,
    }))?;
    let (d, stats, sink) = e
        .measure_block(r, b, sink)
        .map_err(MeasureSdkError::Replay)?;
    let signed = generated.is_none();
    let m = SdkMeasurement {
        measurement: Measurement {
            mrenclave: d,
            stats,
            enclave_size: b.elrange.map_or(b.enclave_size, |x| x.size),
            ssa_frame_size: b.ssa_frame_size,
        },
        stale_enclavehash: (signed && b.sigstruct.enclavehash() != d)
            .then(|| b.sigstruct.enclavehash()),
        generated: !signed,
    };
    Ok((m, sink))
}

/// `measure --format json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MeasureReport {
    /// The input name.
    pub file: String,
    /// `sdk-so`, `sgxs` or `raw-image`.
    pub kind: &'static str,
    /// MRENCLAVE.
    pub mrenclave: String,
    /// ECREATE SIZE.
    pub enclave_size: String,
    /// ECREATE SSAFRAMESIZE.
    pub ssa_frame_size: u32,
    /// Pages EADDed.
    pub pages_eadded: u64,
    /// Pages EEXTENDed.
    pub pages_eextended: u64,
}

impl MeasureReport {
    /// The report for one measurement.
    pub fn new(file: String, kind: &'static str, m: &Measurement) -> Self {
        Self {
            file,
            kind,
            mrenclave: m.mrenclave.to_hex(),
            enclave_size: hex64(m.enclave_size),
            ssa_frame_size: m.ssa_frame_size,
            pages_eadded: m.stats.pages_added,
            pages_eextended: m.stats.pages_extended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_by_magic() {
        assert_eq!(
            InputKind::detect(b"\x7fELF\x02\x01", 100),
            Some(InputKind::Sdk)
        );
        assert_eq!(
            InputKind::detect(b"ECREATE\0....", 64),
            Some(InputKind::Sgxs)
        );
        assert_eq!(
            InputKind::detect(b"UNSIZED\0....", 64),
            Some(InputKind::Sgxs)
        );
        assert_eq!(InputKind::detect(&HEADER, 1808), Some(InputKind::Sigstruct));
        assert_eq!(InputKind::detect(&HEADER, 1809), None);
        assert_eq!(InputKind::detect(b"not an enclave", 14), None);
    }
}
