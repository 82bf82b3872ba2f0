//! Intel SGX SDK enclaves (`enclave.so` / `enclave.signed.so`): the ELF64 reader, the
//! `.note.sgxmeta` metadata chain, and the replay of the SDK loader that yields MRENCLAVE.
//!
//! Sources: intel/linux-sgx `common/inc/internal/metadata.h` (`metadata_t`, layout/patch
//! entries), `psw/urts/parser/elfparser.cpp` (`get_meta_property`: the descriptor starts right
//! after the 13-byte name, *without* the gABI 4-byte padding), `psw/urts/loader.cpp`
//! (`build_sections`, `build_mem_region`, `build_partial_page`, `build_contexts`,
//! `build_context`) and `sdk/sign_tool/SignTool/enclave_creator_sign.cpp` (the records).
//!
//! Replay (§3.3 of the project's spec digest): ECREATE(ssa_frame_size, enclave_size or the
//! ELRANGE size); PT_LOAD segments in program-header order from a *patched* view of the file
//! (patch entries copy metadata bytes over file offsets: the `g_global_data` template and the
//! zeroed `e_shoff`/`e_shnum`/`e_shstrndx`); then the layout table in order, groups expanded.
//! The file is read page by page through `Read + Seek`; the image is never loaded whole.

use crate::Mrenclave;
use crate::measure::{MeasureError, MeasureStats, Measurer, PAGE_SIZE, secinfo};
use crate::sigstruct::{SIGSTRUCT_SIZE, Sigstruct, SigstructError};
use sgx_types::reader::Reader;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// `metadata_t.magic_num`.
pub const METADATA_MAGIC: u64 = 0x86A8_0294_635D_0E4C;
/// Offset of `enclave_css` (the SIGSTRUCT) inside a metadata block.
pub const METADATA_CSS_OFFSET: usize = 64;
/// Offset of `dirs[]` inside a metadata block.
const METADATA_DIRS_OFFSET: usize = 64 + SIGSTRUCT_SIZE;
/// Largest `.note.sgxmeta` descriptor accepted (the SDK uses 0x5000–0x6000).
pub const MAX_METADATA_SIZE: u64 = 1 << 20;
const NOTE_NAME: &[u8; 13] = b"sgx_metadata\0";
const GROUP_FLAG: u16 = 1 << 12;
const SI_FLAG_TCS: u64 = secinfo::TCS;
/// Upper bound on layout entries visited while expanding groups (defence against loops).
const MAX_LAYOUT_VISITS: u64 = 1 << 24;

/// Layout entry attributes (`se_page_attr.h`).
pub mod page_attr {
    /// The page is EADDed at load time.
    pub const EADD: u16 = 0x1;
    /// The page is EEXTENDed (measured).
    pub const EEXTEND: u16 = 0x2;
    /// The page is removed after EINIT.
    pub const EREMOVE: u16 = 0x4;
    /// Added after EINIT (EDMM).
    pub const POST_ADD: u16 = 0x8;
    /// Removed after EINIT (EDMM).
    pub const POST_REMOVE: u16 = 0x10;
    /// Dynamic thread.
    pub const DYN_THREAD: u16 = 0x20;
    /// Grows down (stacks).
    pub const GROW_DOWN: u16 = 0x40;
}

/// Why an SDK enclave cannot be read or measured. Offsets are file offsets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// Reading the file failed.
    #[error("reading at file offset {offset:#x}")]
    Io {
        /// Where.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Not an ELF file.
    #[error("not an ELF file (no \\x7fELF magic at offset 0)")]
    NotElf,
    /// ELF32 or big-endian ELF.
    #[error(
        "unsupported ELF class/data {class}/{data} at offset 4: only little-endian ELF64 enclaves are supported"
    )]
    UnsupportedElf {
        /// EI_CLASS.
        class: u8,
        /// EI_DATA.
        data: u8,
    },
    /// A malformed ELF structure.
    #[error("malformed ELF at offset {offset:#x}: {what}")]
    BadElf {
        /// Where.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// No `.note.sgxmeta` section.
    #[error(
        "no .note.sgxmeta section: this is not an Intel SGX SDK enclave (for SGXS use an .sgxs file)"
    )]
    NoMetadataSection,
    /// The note header does not match what `sgx_sign` writes.
    #[error("malformed .note.sgxmeta at offset {offset:#x}: {what}")]
    BadNote {
        /// Where.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// The descriptor holds no metadata (an enclave never signed).
    #[error(
        "no SGX metadata at offset {offset:#x}: the enclave is unsigned; sign it with Intel sgx_sign (signing from Enclave.config.xml is not supported)"
    )]
    Unsigned {
        /// The descriptor's offset.
        offset: u64,
    },
    /// A metadata block with a structural error.
    #[error("malformed metadata block at offset {offset:#x}: {what}")]
    BadMetadata {
        /// The block's file offset (or the offending field's).
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Bytes of a non-empty `.note.sgxmeta` descriptor that are neither a metadata block nor
    /// zero padding (a damaged magic, or a chain that does not end cleanly).
    #[error("malformed .note.sgxmeta at offset {offset:#x}: expected {expected}, found {found}")]
    BadChain {
        /// File offset of the unexpected bytes.
        offset: u64,
        /// What `sgx_sign` writes there.
        expected: String,
        /// What is there.
        found: String,
    },
    /// A metadata version the replay does not implement (`dump` still shows its SIGSTRUCT).
    #[error(
        "unsupported metadata version {major}.{minor} at offset {offset:#x}: the loader replay supports 1.3+, 2.x, 3.x, 11.x, 13.x"
    )]
    UnsupportedVersion {
        /// The block's file offset.
        offset: u64,
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// A feature of the metadata the replay does not implement.
    #[error("unsupported in metadata block at offset {offset:#x}: {what}")]
    Unsupported {
        /// The block's file offset.
        offset: u64,
        /// What.
        what: &'static str,
    },
    /// The embedded SIGSTRUCT could not be parsed.
    #[error("SIGSTRUCT of the metadata block at offset {offset:#x}")]
    Sigstruct {
        /// The SIGSTRUCT's file offset.
        offset: u64,
        /// The cause.
        #[source]
        source: SigstructError,
    },
    /// The replay produced an invalid page.
    #[error("replaying metadata block at offset {offset:#x}")]
    Measure {
        /// The block's file offset.
        offset: u64,
        /// The cause.
        #[source]
        source: MeasureError,
    },
}

/// One PT_LOAD program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// p_offset.
    pub offset: u64,
    /// p_vaddr (the RVA).
    pub vaddr: u64,
    /// p_filesz.
    pub filesz: u64,
    /// p_memsz.
    pub memsz: u64,
    /// p_flags (PF_X = 1, PF_W = 2, PF_R = 4).
    pub flags: u32,
}

impl LoadSegment {
    /// SECINFO flags: REG plus R/W/X from `p_flags` (`page_attr_to_si_flags`).
    pub fn secinfo(&self) -> u64 {
        let mut f = secinfo::REG;
        if self.flags & 4 != 0 {
            f |= secinfo::R;
        }
        if self.flags & 2 != 0 {
            f |= secinfo::W;
        }
        if self.flags & 1 != 0 {
            f |= secinfo::X;
        }
        f
    }
}

/// Where the metadata note sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteInfo {
    /// Section offset.
    pub sh_offset: u64,
    /// Section size.
    pub sh_size: u64,
    /// Section alignment.
    pub sh_addralign: u64,
    /// Note name size (13).
    pub namesz: u32,
    /// Descriptor size (METADATA_SIZE).
    pub descsz: u32,
    /// Note type (1).
    pub note_type: u32,
    /// File offset of the descriptor: `sh_offset + 12 + namesz` (unaligned).
    pub metadata_offset: u64,
}

/// A patch entry: copy `size` metadata bytes from `src` over file offset `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    /// File offset patched.
    pub dst: u64,
    /// Offset in the metadata block.
    pub src: u32,
    /// Byte count.
    pub size: u32,
}

/// A layout table entry (`layout_entry_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutEntry {
    /// Layout id (HEAP_MIN = 1, TCS = 4, GUARD = 10, ...).
    pub id: u16,
    /// Page attributes ([`page_attr`]).
    pub attributes: u16,
    /// Pages.
    pub page_count: u32,
    /// RVA.
    pub rva: u64,
    /// Content size, or the u32 fill pattern when `content_offset` is 0.
    pub content_size: u32,
    /// Offset of the content in the metadata block, or 0.
    pub content_offset: u32,
    /// SECINFO flags.
    pub si_flags: u64,
}

/// A layout group (`layout_group_t`): repeat the `entry_count` items before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutGroup {
    /// Group id (with `GROUP_FLAG`).
    pub id: u16,
    /// Items repeated.
    pub entry_count: u16,
    /// Repetitions.
    pub load_times: u32,
    /// RVA step per repetition.
    pub load_step: u64,
}

/// An item of the layout table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutItem {
    /// A region.
    Entry(LayoutEntry),
    /// A repetition of the preceding items.
    Group(LayoutGroup),
}

/// SGX2 ELRANGE configuration (metadata majors 11 and 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elrange {
    /// Enclave image address.
    pub image_address: u64,
    /// ELRANGE start.
    pub start_address: u64,
    /// ELRANGE size (the ECREATE size).
    pub size: u64,
}

/// The symbolic name of a layout id.
pub fn layout_name(id: u16) -> &'static str {
    match id {
        1 => "HEAP_MIN",
        2 => "HEAP_INIT",
        3 => "HEAP_MAX",
        4 => "TCS",
        5 => "TD",
        6 => "SSA",
        7 => "STACK_MAX",
        8 => "STACK_MIN",
        0x1009 => "THREAD_GROUP",
        10 => "GUARD",
        11 => "HEAP_DYN_MIN",
        12 => "HEAP_DYN_INIT",
        13 => "HEAP_DYN_MAX",
        14 => "TCS_DYN",
        15 => "TD_DYN",
        16 => "SSA_DYN",
        17 => "STACK_DYN_MAX",
        18 => "STACK_DYN_MIN",
        0x1013 => "THREAD_GROUP_DYN",
        20 => "RSRV_MIN",
        21 => "RSRV_INIT",
        22 => "RSRV_MAX",
        23 => "USER_REGION",
        _ => "UNKNOWN",
    }
}

/// One `metadata_t` block.
#[derive(Debug, Clone)]
pub struct MetadataBlock {
    /// File offset of the block.
    pub file_offset: u64,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// `size`: offset to the next block.
    pub size: u32,
    /// 0 = bind, 1 = unbind.
    pub tcs_policy: u32,
    /// SSA frame size in pages.
    pub ssa_frame_size: u32,
    /// XSAVE size.
    pub max_save_buffer_size: u32,
    /// MISCSELECT the loader requests.
    pub desired_misc_select: u32,
    /// Static TCS pool.
    pub tcs_min_pool: u32,
    /// Enclave size (power of two).
    pub enclave_size: u64,
    /// SECS attributes the loader requests (not the SIGSTRUCT values).
    pub attributes: crate::sigstruct::Attributes,
    /// The embedded SIGSTRUCT.
    pub sigstruct: Sigstruct,
    /// Patch table.
    pub patches: Vec<Patch>,
    /// Layout table.
    pub layout: Vec<LayoutItem>,
    /// ELRANGE, for majors 11 and 13.
    pub elrange: Option<Elrange>,
    /// Where the block's data ends (its `size`, or for a size-0 last block the end of its
    /// tables), relative to the block.
    pub data_end: u32,
    /// The block's bytes up to the end of the descriptor (content offsets index into it).
    bytes: Vec<u8>,
}

impl MetadataBlock {
    /// File offset of this block's SIGSTRUCT.
    pub fn sigstruct_offset(&self) -> u64 {
        self.file_offset + METADATA_CSS_OFFSET as u64
    }

    fn content(&self, off: u32, len: u64) -> Option<&[u8]> {
        let off = usize::try_from(off).ok()?;
        let len = usize::try_from(len).ok()?;
        self.bytes.get(off..off.checked_add(len)?)
    }
}

/// A parsed SDK enclave: segments, note and metadata chain.
#[derive(Debug, Clone)]
pub struct SdkEnclave {
    /// File length.
    pub file_len: u64,
    /// PT_LOAD segments, in program-header order.
    pub segments: Vec<LoadSegment>,
    /// The metadata note.
    pub note: NoteInfo,
    /// The metadata blocks in chain order (empty for an unsigned enclave).
    pub blocks: Vec<MetadataBlock>,
    /// The PT_TLS segment, if any (sizes the thread-data pages when generating metadata).
    pub tls: Option<LoadSegment>,
    /// `.symtab` (offset, size) and its string table (offset, size), if present.
    symtab: Option<(u64, u64, u64, u64)>,
}

/// The ELF64 header fields the reader needs (`Elf64_Ehdr`).
struct Ehdr {
    phoff: u64,
    shoff: u64,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

fn elf_err(offset: u64) -> impl Fn(sgx_types::ParseError) -> SdkError {
    move |_| SdkError::BadElf {
        offset,
        what: "truncated ELF structure",
    }
}

impl Ehdr {
    fn parse(b: &[u8; 64]) -> Result<Self, SdkError> {
        let mut r = Reader::new(b);
        let e = elf_err(0);
        r.take(16, "e_ident").map_err(&e)?;
        r.u16("e_type").map_err(&e)?;
        r.u16("e_machine").map_err(&e)?;
        r.u32("e_version").map_err(&e)?;
        r.u64("e_entry").map_err(&e)?;
        let phoff = r.u64("e_phoff").map_err(&e)?;
        let shoff = r.u64("e_shoff").map_err(&e)?;
        r.u32("e_flags").map_err(&e)?;
        r.u16("e_ehsize").map_err(&e)?;
        let h = Self {
            phoff,
            shoff,
            phentsize: r.u16("e_phentsize").map_err(&e)?,
            phnum: r.u16("e_phnum").map_err(&e)?,
            shentsize: r.u16("e_shentsize").map_err(&e)?,
            shnum: r.u16("e_shnum").map_err(&e)?,
            shstrndx: r.u16("e_shstrndx").map_err(&e)?,
        };
        r.finish().map_err(&e)?;
        Ok(h)
    }
}

/// `Elf64_Phdr` (56 bytes): its type and the segment.
struct Phdr;

impl Phdr {
    fn parse(b: &[u8], at: u64) -> Result<(u32, LoadSegment), SdkError> {
        let mut r = Reader::new(b);
        let e = elf_err(at);
        let p_type = r.u32("p_type").map_err(&e)?;
        let flags = r.u32("p_flags").map_err(&e)?;
        let offset = r.u64("p_offset").map_err(&e)?;
        let vaddr = r.u64("p_vaddr").map_err(&e)?;
        r.u64("p_paddr").map_err(&e)?;
        let filesz = r.u64("p_filesz").map_err(&e)?;
        let memsz = r.u64("p_memsz").map_err(&e)?;
        r.u64("p_align").map_err(&e)?;
        r.finish().map_err(&e)?;
        Ok((
            p_type,
            LoadSegment {
                offset,
                vaddr,
                filesz,
                memsz,
                flags,
            },
        ))
    }
}

/// The `Elf64_Shdr` fields the reader needs (64 bytes).
#[derive(Clone, Copy)]
struct Shdr {
    name: u32,
    sh_type: u32,
    offset: u64,
    size: u64,
    link: u32,
    addralign: u64,
}

impl Shdr {
    fn parse(b: &[u8]) -> Result<Self, sgx_types::ParseError> {
        let mut r = Reader::new(b);
        let name = r.u32("sh_name")?;
        let sh_type = r.u32("sh_type")?;
        r.u64("sh_flags")?;
        r.u64("sh_addr")?;
        let offset = r.u64("sh_offset")?;
        let size = r.u64("sh_size")?;
        let link = r.u32("sh_link")?;
        r.u32("sh_info")?;
        let addralign = r.u64("sh_addralign")?;
        r.u64("sh_entsize")?;
        r.finish()?;
        Ok(Self {
            name,
            sh_type,
            offset,
            size,
            link,
            addralign,
        })
    }
}

fn io_at(offset: u64) -> impl FnOnce(io::Error) -> SdkError {
    move |source| SdkError::Io { offset, source }
}

fn read_at<R: Read + Seek>(r: &mut R, offset: u64, buf: &mut [u8]) -> Result<(), SdkError> {
    r.seek(SeekFrom::Start(offset)).map_err(io_at(offset))?;
    r.read_exact(buf).map_err(io_at(offset))
}

fn read_vec<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    len: u64,
    file_len: u64,
    what: &'static str,
) -> Result<Vec<u8>, SdkError> {
    if offset.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(SdkError::BadElf { offset, what });
    }
    let n = usize::try_from(len).map_err(|_| SdkError::BadElf { offset, what })?;
    let mut v = vec![0u8; n];
    read_at(r, offset, &mut v)?;
    Ok(v)
}

impl SdkEnclave {
    /// Reads the ELF headers and the metadata chain (not the image).
    pub fn read<R: Read + Seek>(r: &mut R) -> Result<Self, SdkError> {
        let file_len = r.seek(SeekFrom::End(0)).map_err(io_at(0))?;
        let mut eh = [0u8; 64];
        if file_len < 64 {
            return Err(SdkError::NotElf);
        }
        read_at(r, 0, &mut eh)?;
        if eh.get(0..4) != Some(b"\x7fELF") {
            return Err(SdkError::NotElf);
        }
        let (class, data) = (eh[4], eh[5]);
        if class != 2 || data != 1 {
            return Err(SdkError::UnsupportedElf { class, data });
        }
        let ehdr = Ehdr::parse(&eh)?;
        let (phoff, shoff, shstrndx) = (ehdr.phoff, ehdr.shoff, ehdr.shstrndx);
        let (shentsize, shnum) = (ehdr.shentsize, ehdr.shnum);
        if ehdr.phentsize != 56 {
            return Err(SdkError::BadElf {
                offset: 0x36,
                what: "e_phentsize is not 56",
            });
        }
        let ph = read_vec(
            r,
            phoff,
            56 * u64::from(ehdr.phnum),
            file_len,
            "program headers outside the file",
        )?;
        let mut segments = Vec::new();
        let mut tls = None;
        for (i, p) in ph.chunks_exact(56).enumerate() {
            let at = phoff + 56 * i as u64;
            let (p_type, seg) = Phdr::parse(p, at)?;
            match p_type {
                1 => segments.push(seg),
                7 => tls = Some(seg),
                _ => {}
            }
        }
        for s in segments.iter().chain(&tls) {
            if s.offset.checked_add(s.filesz).is_none_or(|e| e > file_len) || s.filesz > s.memsz {
                return Err(SdkError::BadElf {
                    offset: s.offset,
                    what: "PT_LOAD file range outside the file or p_filesz > p_memsz",
                });
            }
            if s.vaddr
                .checked_add(s.memsz)
                .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE as u64))
                .is_none()
            {
                return Err(SdkError::BadElf {
                    offset: s.offset,
                    what: "p_vaddr + p_memsz overflows the address space",
                });
            }
        }
        if shnum == 0 || shoff == 0 {
            return Err(SdkError::NoMetadataSection);
        }
        if shentsize != 64 {
            return Err(SdkError::BadElf {
                offset: 0x3a,
                what: "e_shentsize is not 64",
            });
        }
        let sh = read_vec(
            r,
            shoff,
            64 * u64::from(shnum),
            file_len,
            "section headers outside the file",
        )?;
        let shdr = |i: u16| -> Option<Shdr> {
            let start = usize::from(i) * 64;
            sh.get(start..start + 64).and_then(|b| Shdr::parse(b).ok())
        };
        let strtab = shdr(shstrndx).ok_or(SdkError::BadElf {
            offset: 0x3e,
            what: "e_shstrndx out of range",
        })?;
        let names = read_vec(
            r,
            strtab.offset,
            strtab.size.min(1 << 20),
            file_len,
            "section name table outside the file",
        )?;
        let mut note_sh = None;
        let mut symtab = None;
        for i in 0..shnum {
            let Some(s) = shdr(i) else { break };
            if s.sh_type == 2 {
                // SHT_SYMTAB; sh_link names its string table.
                if let Some(st) = u16::try_from(s.link).ok().and_then(shdr) {
                    symtab = Some((s.offset, s.size, st.offset, st.size));
                }
            }
            let name = usize::try_from(s.name)
                .ok()
                .and_then(|o| names.get(o..))
                .unwrap_or_default();
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            if name == b".note.sgxmeta" {
                note_sh = Some(s);
            }
        }
        let s = note_sh.ok_or(SdkError::NoMetadataSection)?;
        let (sh_offset, sh_size, sh_addralign) = (s.offset, s.size, s.addralign);
        let mut nh = [0u8; 12 + 13];
        if sh_offset.checked_add(25).is_none_or(|e| e > file_len) {
            return Err(SdkError::BadNote {
                offset: sh_offset,
                what: "note header outside the file",
            });
        }
        read_at(r, sh_offset, &mut nh)?;
        let mut nr = Reader::new(&nh);
        let note_err = |_| SdkError::BadNote {
            offset: sh_offset,
            what: "note header truncated",
        };
        let namesz = nr.u32("namesz").map_err(note_err)?;
        let descsz = nr.u32("descsz").map_err(note_err)?;
        let note_type = nr.u32("type").map_err(note_err)?;
        if namesz != 13 || nh.get(12..25) != Some(&NOTE_NAME[..]) {
            return Err(SdkError::BadNote {
                offset: sh_offset,
                what: "note name is not \"sgx_metadata\"",
            });
        }
        let raw = 12 + u64::from(namesz) + u64::from(descsz);
        let align = sh_addralign.max(1);
        if raw.div_ceil(align).checked_mul(align) != Some(sh_size) {
            return Err(SdkError::BadNote {
                offset: sh_offset,
                what: "sh_size is not ROUND_TO(12 + namesz + descsz, sh_addralign)",
            });
        }
        if u64::from(descsz) > MAX_METADATA_SIZE {
            return Err(SdkError::BadNote {
                offset: sh_offset + 4,
                what: "descriptor larger than 1 MiB",
            });
        }
        let metadata_offset = sh_offset + 12 + u64::from(namesz);
        let desc = read_vec(
            r,
            metadata_offset,
            u64::from(descsz),
            file_len,
            "metadata outside the file",
        )
        .map_err(|_| SdkError::BadNote {
            offset: sh_offset,
            what: "descriptor outside the file",
        })?;
        let note = NoteInfo {
            sh_offset,
            sh_size,
            sh_addralign,
            namesz,
            descsz,
            note_type,
            metadata_offset,
        };
        let blocks = parse_metadata_chain(&desc, metadata_offset)?;
        Ok(Self {
            file_len,
            segments,
            note,
            blocks,
            tls,
            symtab,
        })
    }

    /// Looks up a symbol in `.symtab`: its value (RVA) and size.
    pub fn symbol<R: Read + Seek>(
        &self,
        r: &mut R,
        name: &str,
    ) -> Result<Option<(u64, u64)>, SdkError> {
        let Some((off, size, str_off, str_size)) = self.symtab else {
            return Ok(None);
        };
        let syms = read_vec(
            r,
            off,
            size.min(64 << 20),
            self.file_len,
            "symbol table outside the file",
        )?;
        let names = read_vec(
            r,
            str_off,
            str_size.min(64 << 20),
            self.file_len,
            "symbol names outside the file",
        )?;
        for (i, sym) in syms.chunks_exact(24).enumerate() {
            // Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, st_size.
            let mut sr = Reader::new(sym);
            let e = elf_err(off.saturating_add(24 * i as u64));
            let n = sr.u32("st_name").map_err(&e)?;
            sr.take(4, "st_info/st_other/st_shndx").map_err(&e)?;
            let value = sr.u64("st_value").map_err(&e)?;
            let size = sr.u64("st_size").map_err(&e)?;
            let sym_name = usize::try_from(n)
                .ok()
                .and_then(|n| names.get(n..))
                .unwrap_or_default();
            let sym_name = sym_name.split(|&b| b == 0).next().unwrap_or_default();
            if sym_name == name.as_bytes() {
                return Ok(Some((value, size)));
            }
        }
        Ok(None)
    }

    /// The file offset holding the byte at `rva` (within a segment's file-backed part).
    pub fn file_offset_of_rva(&self, rva: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let start = s.vaddr & !(PAGE_SIZE as u64 - 1);
            let end = s
                .vaddr
                .checked_add(s.memsz)?
                .checked_next_multiple_of(PAGE_SIZE as u64)?;
            if start <= rva && rva < end {
                let off = rva.checked_sub(s.vaddr)?;
                (off <= s.filesz).then(|| s.offset + off)
            } else {
                None
            }
        })
    }

    /// The primary (first) metadata block, or [`SdkError::Unsigned`].
    pub fn primary(&self) -> Result<&MetadataBlock, SdkError> {
        self.blocks.first().ok_or(SdkError::Unsigned {
            offset: self.note.metadata_offset,
        })
    }

    /// Replays the loader for `block` and returns MRENCLAVE; `sink` receives the SGXS stream.
    pub fn measure_block<R: Read + Seek, W: Write>(
        &self,
        r: &mut R,
        block: &MetadataBlock,
        sink: W,
    ) -> Result<(Mrenclave, MeasureStats, W), SdkError> {
        let boff = block.file_offset;
        if !replay_supported(block.major, block.minor) {
            return Err(SdkError::UnsupportedVersion {
                offset: boff,
                major: block.major,
                minor: block.minor,
            });
        }
        let merr = |source| SdkError::Measure {
            offset: boff,
            source,
        };
        let ecreate_size = block.elrange.map_or(block.enclave_size, |e| e.size);
        let mut m = Measurer::with_sink(block.ssa_frame_size, ecreate_size, sink).map_err(merr)?;
        if let Some(e) = block.elrange {
            m.set_offset_bias(e.image_address.wrapping_sub(e.start_address));
        }
        let patches: Vec<(u64, &[u8])> = block
            .patches
            .iter()
            .map(|p| {
                block
                    .content(p.src, u64::from(p.size))
                    .map(|b| (p.dst, b))
                    .ok_or_else(|| SdkError::BadMetadata {
                        offset: boff,
                        what: format!(
                            "patch source {:#x}+{:#x} outside the metadata",
                            p.src, p.size
                        ),
                    })
            })
            .collect::<Result<_, _>>()?;
        let max_pages = ecreate_size / PAGE_SIZE as u64;
        // 1. PT_LOAD segments.
        let mut page = [0u8; PAGE_SIZE];
        // Metadata 1.3 (SGX 1.5): the loader adds one zero page after the highest segment
        // seen so far in certain rounding cases (`loader.cpp` `build_sections`).
        let sgx15 = (block.major, block.minor) == (1, 3);
        let mut last: Option<&LoadSegment> = None;
        for seg in &self.segments {
            if sgx15
                && let Some(l) = last
                && let Some(rva) = sgx15_extra_page(l, Some(seg.vaddr), boff)?
            {
                m.add_page(rva, l.secinfo(), None, true).map_err(merr)?;
            }
            if seg.vaddr > last.map_or(0, |l| l.vaddr) {
                last = Some(seg);
            }
            let flags = seg.secinfo();
            let mut off = 0u64;
            if seg.filesz > 0 {
                r.seek(SeekFrom::Start(seg.offset))
                    .map_err(io_at(seg.offset))?;
            }
            while off < seg.filesz {
                let rva = seg.vaddr.wrapping_add(off);
                let in_page = (rva % PAGE_SIZE as u64) as usize;
                let len = (PAGE_SIZE - in_page).min((seg.filesz - off) as usize);
                page.fill(0);
                let dst = page.get_mut(in_page..in_page + len).unwrap_or_default();
                let file_off = seg.offset + off;
                r.read_exact(dst).map_err(io_at(file_off))?;
                apply_patches(&patches, file_off, dst);
                m.add_page(rva - in_page as u64, flags, Some(&page), true)
                    .map_err(merr)?;
                off += (PAGE_SIZE - in_page) as u64;
                if m.stats().pages_added > max_pages {
                    return Err(too_many(boff));
                }
            }
            if seg.memsz > off {
                let rva = seg.vaddr.wrapping_add(off);
                let pages = (seg.memsz - off).div_ceil(PAGE_SIZE as u64);
                if pages > max_pages {
                    return Err(too_many(boff));
                }
                for i in 0..pages {
                    m.add_page(rva.wrapping_add(i * PAGE_SIZE as u64), flags, None, true)
                        .map_err(merr)?;
                }
            }
        }
        if sgx15
            && let Some(l) = last
            && let Some(rva) = sgx15_extra_page(l, None, boff)?
        {
            m.add_page(rva, l.secinfo(), None, true).map_err(merr)?;
        }
        // 2. Layout table.
        let mut visits = 0u64;
        build_contexts(
            block,
            &block.layout,
            0,
            block.layout.len(),
            0,
            &mut m,
            &mut visits,
            max_pages,
        )?;
        let (d, stats, sink) = m.finish().map_err(merr)?;
        Ok((d, stats, sink))
    }

    /// Replays the primary block: the enclave's MRENCLAVE.
    pub fn measure<R: Read + Seek>(
        &self,
        r: &mut R,
    ) -> Result<(Mrenclave, MeasureStats), SdkError> {
        let b = self.primary()?;
        let (d, s, _) = self.measure_block(r, b, io::sink())?;
        Ok((d, s))
    }
}

impl SdkEnclave {
    /// Streams the file from `r` to `out` with the start of the `.note.sgxmeta` descriptor
    /// replaced by `metadata` (what `sgx_sign` writes into an unsigned enclave).
    pub fn write_with_metadata<R: Read + Seek, W: Write>(
        &self,
        r: &mut R,
        out: &mut W,
        metadata: &[u8],
    ) -> Result<(), SdkError> {
        let at = self.note.metadata_offset;
        if metadata.len() as u64 > u64::from(self.note.descsz) {
            return Err(SdkError::BadMetadata {
                offset: at,
                what: format!(
                    "{} bytes of metadata do not fit the {}-byte descriptor",
                    metadata.len(),
                    self.note.descsz
                ),
            });
        }
        r.seek(SeekFrom::Start(0)).map_err(io_at(0))?;
        let copied = io::copy(&mut r.by_ref().take(at), out).map_err(io_at(0))?;
        if copied != at {
            return Err(SdkError::Io {
                offset: copied,
                source: io::ErrorKind::UnexpectedEof.into(),
            });
        }
        out.write_all(metadata).map_err(io_at(at))?;
        r.seek(SeekFrom::Current(metadata.len() as i64))
            .map_err(io_at(at))?;
        io::copy(r, out).map_err(io_at(at))?;
        out.flush().map_err(io_at(at))?;
        Ok(())
    }

    /// Streams the file from `r` to `out`, replacing the SIGSTRUCT of block `i` with
    /// `sigstructs[i]` (what `sgx_sign -resign`/`catsig` change; nothing else is touched).
    pub fn write_with_sigstructs<R: Read + Seek, W: Write>(
        &self,
        r: &mut R,
        out: &mut W,
        sigstructs: &[Sigstruct],
    ) -> Result<(), SdkError> {
        if sigstructs.len() != self.blocks.len() {
            return Err(SdkError::BadMetadata {
                offset: self.note.metadata_offset,
                what: format!(
                    "{} SIGSTRUCTs given for {} metadata blocks",
                    sigstructs.len(),
                    self.blocks.len()
                ),
            });
        }
        let mut repl: Vec<(u64, [u8; SIGSTRUCT_SIZE])> = self
            .blocks
            .iter()
            .zip(sigstructs)
            .map(|(b, s)| (b.sigstruct_offset(), s.encode()))
            .collect();
        repl.sort_by_key(|(o, _)| *o);
        r.seek(SeekFrom::Start(0)).map_err(io_at(0))?;
        let mut pos = 0u64;
        for (off, bytes) in &repl {
            let n = off.saturating_sub(pos);
            let copied = io::copy(&mut r.by_ref().take(n), out).map_err(io_at(pos))?;
            if copied != n {
                return Err(SdkError::Io {
                    offset: pos + copied,
                    source: io::ErrorKind::UnexpectedEof.into(),
                });
            }
            out.write_all(bytes).map_err(io_at(*off))?;
            r.seek(SeekFrom::Current(SIGSTRUCT_SIZE as i64))
                .map_err(io_at(*off))?;
            pos = off + SIGSTRUCT_SIZE as u64;
        }
        io::copy(r, out).map_err(io_at(pos))?;
        out.flush().map_err(io_at(pos))?;
        Ok(())
    }
}

/// The SGX 1.5 loader's extra page (`build_sections`, metadata 1.3 only): with `last` the
/// segment of highest RVA so far, a zero page (EADD + EEXTEND, `last`'s SECINFO) is added at
/// `end = ROUND_TO_PAGE(rva + memsz)` when `end < ROUND_TO_PAGE(ROUND_TO_PAGE(memsz) + rva)` (an
/// unaligned start whose rounding lost a page) and, between segments, when `end` lies below
/// the page of the next segment's RVA. Returns that page's RVA.
pub(crate) fn sgx15_extra_page(
    last: &LoadSegment,
    next_rva: Option<u64>,
    block_offset: u64,
) -> Result<Option<u64>, SdkError> {
    let page = PAGE_SIZE as u64;
    let overflow = || SdkError::BadMetadata {
        offset: block_offset,
        what: format!(
            "PT_LOAD at p_vaddr {:#x} with p_memsz {:#x} overflows the address space",
            last.vaddr, last.memsz
        ),
    };
    let end = last
        .vaddr
        .checked_add(last.memsz)
        .and_then(|e| e.checked_next_multiple_of(page))
        .ok_or_else(overflow)?;
    let alt = last
        .memsz
        .checked_next_multiple_of(page)
        .and_then(|m| m.checked_add(last.vaddr))
        .and_then(|e| e.checked_next_multiple_of(page))
        .ok_or_else(overflow)?;
    let below_next = next_rva.is_none_or(|n| end < n & !(page - 1));
    Ok((end < alt && below_next).then_some(end))
}

fn too_many(offset: u64) -> SdkError {
    SdkError::BadMetadata {
        offset,
        what: "the layout adds more pages than the enclave holds".into(),
    }
}

fn apply_patches(patches: &[(u64, &[u8])], file_off: u64, buf: &mut [u8]) {
    let end = file_off + buf.len() as u64;
    for &(dst, src) in patches {
        let pend = dst.saturating_add(src.len() as u64);
        if pend <= file_off || dst >= end {
            continue;
        }
        let from = dst.max(file_off);
        let to = pend.min(end);
        let (bs, be) = ((from - file_off) as usize, (to - file_off) as usize);
        let (ss, se) = ((from - dst) as usize, (to - dst) as usize);
        if let (Some(d), Some(s)) = (buf.get_mut(bs..be), src.get(ss..se)) {
            d.copy_from_slice(s);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_contexts<W: Write>(
    block: &MetadataBlock,
    items: &[LayoutItem],
    start: usize,
    end: usize,
    delta: u64,
    m: &mut Measurer<W>,
    visits: &mut u64,
    max_pages: u64,
) -> Result<(), SdkError> {
    let boff = block.file_offset;
    for i in start..end {
        *visits += 1;
        if *visits > MAX_LAYOUT_VISITS {
            return Err(SdkError::BadMetadata {
                offset: boff,
                what: "layout groups expand too far".into(),
            });
        }
        match items.get(i) {
            Some(LayoutItem::Entry(e)) => build_context(block, e, delta, m, max_pages)?,
            Some(LayoutItem::Group(g)) => {
                let first = i.checked_sub(usize::from(g.entry_count)).ok_or_else(|| {
                    SdkError::BadMetadata {
                        offset: boff,
                        what: format!(
                            "layout group {i} repeats {} entries, only {i} precede it",
                            g.entry_count
                        ),
                    }
                })?;
                let mut step = 0u64;
                for _ in 0..g.load_times {
                    step = step.wrapping_add(g.load_step);
                    build_contexts(block, items, first, i, step, m, visits, max_pages)?;
                }
            }
            None => break,
        }
    }
    Ok(())
}

fn build_context<W: Write>(
    block: &MetadataBlock,
    e: &LayoutEntry,
    delta: u64,
    m: &mut Measurer<W>,
    max_pages: u64,
) -> Result<(), SdkError> {
    let boff = block.file_offset;
    let merr = |source| SdkError::Measure {
        offset: boff,
        source,
    };
    if e.attributes & page_attr::EADD == 0 {
        return Ok(());
    }
    if m.stats().pages_added + u64::from(e.page_count) > max_pages {
        return Err(too_many(boff));
    }
    let rva = delta.wrapping_add(e.rva);
    let extend = e.attributes & page_attr::EEXTEND != 0;
    let page_at = |i: u32| rva.wrapping_add(u64::from(i) * PAGE_SIZE as u64);
    let mut page = [0u8; PAGE_SIZE];
    if e.content_offset != 0 {
        let bad = || SdkError::BadMetadata {
            offset: boff,
            what: format!(
                "layout content {:#x}+{:#x} outside the metadata or larger than its pages",
                e.content_offset, e.content_size
            ),
        };
        if e.si_flags == SI_FLAG_TCS {
            let tpl = block
                .content(e.content_offset, u64::from(e.content_size))
                .ok_or_else(bad)?;
            page.get_mut(..tpl.len())
                .ok_or_else(bad)?
                .copy_from_slice(tpl);
            // TCS: ossa (16), ofs_base (48), ogs_base (56) are relative to the TCS page.
            for off in [16usize, 48, 56] {
                let field = page.get_mut(off..off + 8).ok_or_else(bad)?;
                let v = Reader::new(field)
                    .u64("TCS offset field")
                    .map_err(|_| bad())?
                    .wrapping_add(rva);
                field.copy_from_slice(&v.to_le_bytes());
            }
            for i in 0..e.page_count {
                m.add_page(page_at(i), e.si_flags, Some(&page), extend)
                    .map_err(merr)?;
            }
        } else {
            let content = block
                .content(e.content_offset, u64::from(e.content_size))
                .ok_or_else(bad)?;
            if content.len() as u64 > u64::from(e.page_count) * PAGE_SIZE as u64 {
                return Err(bad());
            }
            for i in 0..e.page_count {
                page.fill(0);
                let from = i as usize * PAGE_SIZE;
                if let Some(src) = content.get(from..) {
                    let n = src.len().min(PAGE_SIZE);
                    page.get_mut(..n)
                        .unwrap_or_default()
                        .copy_from_slice(src.get(..n).unwrap_or_default());
                }
                m.add_page(page_at(i), e.si_flags, Some(&page), extend)
                    .map_err(merr)?;
            }
        }
    } else if e.si_flags != 0 {
        let data = if e.content_size != 0 {
            for c in page.chunks_exact_mut(4) {
                c.copy_from_slice(&e.content_size.to_le_bytes());
            }
            Some(&page)
        } else {
            None
        };
        for i in 0..e.page_count {
            m.add_page(page_at(i), e.si_flags, data, extend)
                .map_err(merr)?;
        }
    }
    Ok(())
}

/// Parses the metadata chain of a `.note.sgxmeta` descriptor; `base` is the descriptor's file
/// offset (used in errors and [`MetadataBlock::file_offset`]). An all-zero descriptor (an
/// unsigned enclave) gives no blocks.
///
/// Strict where `sgx_sign` is: the descriptor is either all zero, or blocks back to back (each
/// starting with the magic, the next one at `offset + size`) followed by zero padding only.
/// A damaged magic, a size that runs past the block's data or the descriptor, or non-zero
/// bytes after the last block are [`SdkError::BadChain`] / [`SdkError::BadMetadata`] naming
/// the offset — never a silently shorter chain.
pub fn parse_metadata_chain(desc: &[u8], base: u64) -> Result<Vec<MetadataBlock>, SdkError> {
    let mut blocks: Vec<MetadataBlock> = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = desc.get(pos..).unwrap_or_default();
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let offset = file_offset(base, pos)?;
        let mut magic = [0u8; 8];
        for (m, b) in magic.iter_mut().zip(rest) {
            *m = *b;
        }
        let found = u64::from_le_bytes(magic);
        if found != METADATA_MAGIC || rest.len() < 8 {
            let expected = match blocks.last() {
                None => format!(
                    "the metadata magic {METADATA_MAGIC:#018x} (or an all-zero descriptor: an unsigned enclave)"
                ),
                Some(prev) => format!(
                    "the metadata magic {METADATA_MAGIC:#018x} of a further block, or zero padding, after the block at {:#x} (size {:#x})",
                    prev.file_offset, prev.size
                ),
            };
            let found = match rest.iter().position(|&b| b != 0) {
                Some(i) if found == 0 => format!(
                    "zero there but the non-zero byte {:#04x} at offset {:#x}",
                    rest.get(i).copied().unwrap_or_default(),
                    file_offset(base, pos.saturating_add(i))?
                ),
                _ => format!("{found:#018x}"),
            };
            return Err(SdkError::BadChain {
                offset,
                expected,
                found,
            });
        }
        let b = parse_block(rest, offset)?;
        let (size, data_end) = (b.size, b.data_end);
        blocks.push(b);
        if size == 0 {
            // The chain ends at size 0; what follows its data must be padding.
            let tail_at = pos.saturating_add(data_end as usize);
            let tail = desc.get(tail_at..).unwrap_or_default();
            if let Some(i) = tail.iter().position(|&b| b != 0) {
                return Err(SdkError::BadChain {
                    offset: file_offset(base, tail_at.saturating_add(i))?,
                    expected: format!(
                        "zero padding after the last block at {offset:#x} (size 0 ends the chain)"
                    ),
                    found: "a non-zero byte".into(),
                });
            }
            break;
        }
        pos = pos
            .checked_add(size as usize)
            .ok_or(SdkError::BadMetadata {
                offset,
                what: "size overflows".into(),
            })?;
    }
    Ok(blocks)
}

fn file_offset(base: u64, pos: usize) -> Result<u64, SdkError> {
    u64::try_from(pos)
        .ok()
        .and_then(|p| base.checked_add(p))
        .ok_or(SdkError::BadNote {
            offset: base,
            what: "descriptor offset overflows",
        })
}

/// Whether the loader replay implements metadata version `major.minor`: 1.3 (SGX 1.5, with
/// its extra-page rule), 1.4+, 2.x, 3.x and the ELRANGE majors 11 and 13.
pub fn replay_supported(major: u32, minor: u32) -> bool {
    matches!((major, minor), (1, 3..) | (2 | 3 | 11 | 13, _))
}

/// Fixed `metadata_t` header through `dirs[0..2]` (every version has PATCH and LAYOUT).
const METADATA_HEADER_MIN: usize = METADATA_DIRS_OFFSET + 16;

pub(crate) fn parse_block(b: &[u8], file_offset: u64) -> Result<MetadataBlock, SdkError> {
    let bad = |what: String| SdkError::BadMetadata {
        offset: file_offset,
        what,
    };
    if b.len() < METADATA_HEADER_MIN {
        return Err(bad("shorter than the fixed header".into()));
    }
    let rd = |e: sgx_types::ParseError| bad(e.to_string());
    let mut r = Reader::new(b);
    let _magic = r.u64("magic_num").map_err(rd)?;
    let version = r.u64("version").map_err(rd)?;
    let (major, minor) = (
        u32::try_from(version >> 32).unwrap_or(u32::MAX),
        u32::try_from(version & 0xffff_ffff).unwrap_or(u32::MAX),
    );
    let size = r.u32("size").map_err(rd)?;
    let tcs_policy = r.u32("tcs_policy").map_err(rd)?;
    let ssa_frame_size = r.u32("ssa_frame_size").map_err(rd)?;
    let max_save_buffer_size = r.u32("max_save_buffer_size").map_err(rd)?;
    let desired_misc_select = r.u32("desired_misc_select").map_err(rd)?;
    let tcs_min_pool = r.u32("tcs_min_pool").map_err(rd)?;
    let enclave_size = r.u64("enclave_size").map_err(rd)?;
    let attributes = crate::sigstruct::Attributes {
        flags: r.u64("attributes.flags").map_err(rd)?,
        xfrm: r.u64("attributes.xfrm").map_err(rd)?,
    };
    let css = r.take(SIGSTRUCT_SIZE, "enclave_css").map_err(rd)?;
    if size != 0 && (size as usize) < METADATA_HEADER_MIN {
        return Err(bad(format!("size {size:#x} is smaller than the header")));
    }
    if size as usize > b.len() {
        return Err(bad(format!(
            "size {size:#x} runs past the end of the .note.sgxmeta descriptor ({:#x} bytes left)",
            b.len()
        )));
    }
    let sigstruct = Sigstruct::parse(css).map_err(|source| SdkError::Sigstruct {
        offset: file_offset + METADATA_CSS_OFFSET as u64,
        source,
    })?;
    let replayable = replay_supported(major, minor);
    let mut block = MetadataBlock {
        file_offset,
        major,
        minor,
        size,
        tcs_policy,
        ssa_frame_size,
        max_save_buffer_size,
        desired_misc_select,
        tcs_min_pool,
        enclave_size,
        attributes,
        sigstruct,
        patches: Vec::new(),
        layout: Vec::new(),
        elrange: None,
        data_end: if size == 0 {
            METADATA_HEADER_MIN as u32
        } else {
            size
        },
        bytes: b.to_vec(),
    };
    if !replayable {
        // Only the fixed header and the SIGSTRUCT are known for this version: `dump` shows
        // them, `measure` refuses with UnsupportedVersion.
        return Ok(block);
    }
    let mut dirs = [(0u32, 0u32); 4];
    let ndirs = if major >= 3 { 4 } else { 2 };
    for d in dirs.iter_mut().take(ndirs) {
        *d = (
            r.u32("dirs.offset").map_err(rd)?,
            r.u32("dirs.size").map_err(rd)?,
        );
    }
    let mut data_end = METADATA_DIRS_OFFSET + 8 * ndirs;
    let table = |i: usize, entry: usize, name: &str| -> Result<&[u8], SdkError> {
        let (off, sz) = dirs.get(i).copied().unwrap_or_default();
        if !(sz as usize).is_multiple_of(entry) {
            return Err(bad(format!(
                "{name} directory size {sz:#x} is not a multiple of {entry}"
            )));
        }
        (off as usize)
            .checked_add(sz as usize)
            .and_then(|end| b.get(off as usize..end))
            .ok_or_else(|| {
                bad(format!(
                    "{name} directory {off:#x}+{sz:#x} outside the metadata"
                ))
            })
    };
    // The tables end the data `sgx_sign` writes (templates come first); patch sources and
    // layout contents are bounds-checked when the block is replayed.
    let mut note_end = |off: u32, len: u64| {
        let end = u64::from(off).saturating_add(len);
        data_end = data_end.max(usize::try_from(end).unwrap_or(usize::MAX));
    };
    let (po, ps) = dirs[0];
    let (lo, ls) = dirs[1];
    if ps != 0 {
        note_end(po, u64::from(ps));
    }
    if ls != 0 {
        note_end(lo, u64::from(ls));
    }
    let mut patches = Vec::new();
    for p in table(0, 32, "patch")?.chunks_exact(32) {
        let mut r = Reader::new(p);
        let patch = Patch {
            dst: r.u64("patch.dst").map_err(rd)?,
            src: r.u32("patch.src").map_err(rd)?,
            size: r.u32("patch.size").map_err(rd)?,
        };
        patches.push(patch);
    }
    let mut layout = Vec::new();
    for l in table(1, 32, "layout")?.chunks_exact(32) {
        let mut r = Reader::new(l);
        let id = r.u16("layout.id").map_err(rd)?;
        if id & GROUP_FLAG != 0 {
            layout.push(LayoutItem::Group(LayoutGroup {
                id,
                entry_count: r.u16("group.entry_count").map_err(rd)?,
                load_times: r.u32("group.load_times").map_err(rd)?,
                load_step: r.u64("group.load_step").map_err(rd)?,
            }));
        } else {
            let e = LayoutEntry {
                id,
                attributes: r.u16("layout.attributes").map_err(rd)?,
                page_count: r.u32("layout.page_count").map_err(rd)?,
                rva: r.u64("layout.rva").map_err(rd)?,
                content_size: r.u32("layout.content_size").map_err(rd)?,
                content_offset: r.u32("layout.content_offset").map_err(rd)?,
                si_flags: r.u64("layout.si_flags").map_err(rd)?,
            };
            layout.push(LayoutItem::Entry(e));
        }
    }
    let elrange = if matches!(major, 11 | 13) {
        let e = table(2, 24, "ELRANGE")?;
        let (eo, es) = dirs[2];
        if es != 0 {
            note_end(eo, u64::from(es));
        }
        match e.get(..24) {
            Some(e) => {
                let mut r = Reader::new(e);
                Some(Elrange {
                    image_address: r.u64("elrange.image_address").map_err(rd)?,
                    start_address: r.u64("elrange.start_address").map_err(rd)?,
                    size: r.u64("elrange.size").map_err(rd)?,
                })
            }
            None => None,
        }
    } else {
        None
    };
    if major >= 3 && dirs[3].1 != 0 {
        return Err(SdkError::Unsupported {
            offset: file_offset,
            what: "DIR_EXTEND (FIPS shared object appended to the image)",
        });
    }
    let data_end = u32::try_from(data_end).unwrap_or(u32::MAX);
    if size != 0 {
        if data_end > size {
            return Err(bad(format!(
                "size {size:#x} ends before the block's data, which reaches {data_end:#x}"
            )));
        }
        // sgx_sign sets size = end of the data it wrote; bytes between the data and `size`
        // can only be zero (a larger size would swallow the next block).
        let tail = b.get(data_end as usize..size as usize).unwrap_or_default();
        if let Some(i) = tail.iter().position(|&x| x != 0) {
            let at = file_offset + u64::from(data_end) + i as u64;
            return Err(bad(format!(
                "size {size:#x} runs past the end of the block's data ({data_end:#x}) over a non-zero byte at offset {at:#x}"
            )));
        }
    }
    block.patches = patches;
    block.layout = layout;
    block.elrange = elrange;
    block.data_end = if size == 0 { data_end } else { size };
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(vaddr: u64, memsz: u64) -> LoadSegment {
        LoadSegment {
            offset: 0,
            vaddr,
            filesz: 0,
            memsz,
            flags: 6,
        }
    }

    #[test]
    fn sgx15_extra_page_rule() {
        // Aligned start: rounding loses nothing, no page.
        assert_eq!(
            sgx15_extra_page(&seg(0x1000, 0x100), None, 0).unwrap(),
            None
        );
        // 0x1100 + 0x100 rounds to 0x2000; ROUND(0x100) + 0x1100 rounds to 0x3000: page 0x2000.
        assert_eq!(
            sgx15_extra_page(&seg(0x1100, 0x100), None, 0).unwrap(),
            Some(0x2000)
        );
        // Unaligned but the tail crosses a page (0x668 + 0xcb8 > 0x1000): no page.
        assert_eq!(
            sgx15_extra_page(&seg(0x232668, 0x10cb8), None, 0).unwrap(),
            None
        );
        // Between segments only when the page lies below the next segment's page.
        assert_eq!(
            sgx15_extra_page(&seg(0x1100, 0x100), Some(0x2fff), 0).unwrap(),
            None
        );
        assert_eq!(
            sgx15_extra_page(&seg(0x1100, 0x100), Some(0x3000), 0).unwrap(),
            Some(0x2000)
        );
        let e = sgx15_extra_page(&seg(u64::MAX - 0x10, 0x100), None, 0x40).unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed metadata block at offset 0x40: PT_LOAD at p_vaddr 0xffffffffffffffef with p_memsz 0x100 overflows the address space"
        );
    }
}
