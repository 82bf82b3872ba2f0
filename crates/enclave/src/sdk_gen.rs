//! Generates Intel SGX SDK metadata for an *unsigned* enclave (`enclave.so` straight from the
//! linker) from its configuration, as `sgx_sign` of the SDK generation the enclave was built
//! with does, so that the MRENCLAVE equals the one `sgx_sign` produces.
//!
//! Faithfulness is tied to the SDK version (spec digest §3.5): the `g_global_data` template is
//! the SDK's `global_data_t`, whose layout changes between releases. Supported are the layouts
//! identified by a 1656-byte (SDK 2.1x of 2021) and a 1688-byte (2023) `g_global_data`, both
//! with metadata 2.4; others are refused with [`GenError::UnsupportedSdk`]. Like those
//! `sgx_sign` versions, three blocks are emitted: the primary 2.4 block, a 2.1 copy and the
//! SGX1-compatible 1.4 block.
//!
//! Sources: intel/linux-sgx `sdk/sign_tool/SignTool/manage_metadata.cpp`
//! (`build_layout_table`, `update_layout_entries`, `build_layout_entries`, `build_patch_table`,
//! `build_tcs_template`, `build_gd_template`, `get_xsave_size`) and `common/inc/internal/`
//! (`metadata.h`, `global_data.h`, `thread_data.h`); values cross-checked byte for byte
//! against `sgx_sign` output (the Enchecap vector).

use crate::measure::{PAGE_SIZE, secinfo};
use crate::sdk::{METADATA_MAGIC, MetadataBlock, SdkEnclave, SdkError, page_attr, parse_block};
use crate::sigstruct::{SIGSTRUCT_SIZE, Sigstruct};
use sgx_types::reader::Writer;
use std::io::{Read, Seek};

/// `Enclave.config.xml` values that shape the layout (SDK defaults in [`Default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkConfig {
    /// `TCSNum`.
    pub tcs_num: u32,
    /// `TCSMaxNum` (defaults to `TCSNum`).
    pub tcs_max_num: u32,
    /// `TCSMinPool`.
    pub tcs_min_pool: u32,
    /// `TCSPolicy` (0 bind, 1 unbind).
    pub tcs_policy: u32,
    /// `StackMaxSize`.
    pub stack_max_size: u64,
    /// `StackMinSize`.
    pub stack_min_size: u64,
    /// `HeapMaxSize`.
    pub heap_max_size: u64,
    /// `HeapMinSize`.
    pub heap_min_size: u64,
    /// `HeapInitSize` (defaults to `HeapMaxSize`).
    pub heap_init_size: u64,
    /// `MiscSelect` (the loader's desired MISCSELECT).
    pub misc_select: u32,
}

impl Default for SdkConfig {
    fn default() -> Self {
        Self {
            tcs_num: 1,
            tcs_max_num: 1,
            tcs_min_pool: 1,
            tcs_policy: 1,
            stack_max_size: 0x40000,
            stack_min_size: 0x2000,
            heap_max_size: 0x100000,
            heap_min_size: 0x1000,
            heap_init_size: 0x100000,
            misc_select: 0,
        }
    }
}

/// Why metadata cannot be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// Reading the ELF failed.
    #[error(transparent)]
    Sdk(#[from] SdkError),
    /// The enclave already carries metadata.
    #[error("the enclave is already signed (metadata at offset {offset:#x}); re-sign it instead")]
    AlreadySigned {
        /// Offset of the metadata.
        offset: u64,
    },
    /// A symbol `sgx_sign` needs is missing (stripped binary?).
    #[error("symbol {0} not found in .symtab: sign the unstripped enclave")]
    MissingSymbol(&'static str),
    /// The `global_data_t` layout of this SDK version is not known.
    #[error(
        "g_global_data is {size} bytes: this SDK version's global_data_t layout is not supported (supported: 1656 and 1688 bytes, SDKs of 2021 and 2023); sign with that SDK's sgx_sign"
    )]
    UnsupportedSdk {
        /// `g_global_data` size.
        size: u64,
    },
    /// A configuration value out of range.
    #[error("invalid enclave configuration: {0}")]
    Config(String),
    /// A size or offset computed from the ELF or the configuration does not fit its field.
    #[error("{what} overflows its field (ELF or configuration values out of range)")]
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
}

fn overflow(what: &'static str) -> GenError {
    GenError::Overflow { what }
}

const SSA_NUM: u32 = 2;
const TCS_TEMPLATE_SIZE: usize = 72;
const GUARD_PAGES: u32 = 16;
const SSA_GPR_SIZE: u64 = 184;
/// Field offsets of one SDK generation's `global_data_t`, identified by its size.
struct GdLayout {
    size: u64,
    /// `tcs_num` (SDKs with EDMM thread accounting).
    tcs_num: Option<usize>,
    td_template: usize,
    tcs_template: usize,
    layout_entry_num: usize,
    layout_table: usize,
    /// `enclave_image_address`, `elrange_start_address`, `elrange_size`.
    elrange: Option<usize>,
}

/// The `global_data_t` layouts checked byte for byte against `sgx_sign` output:
/// 1656 bytes (SDK 2.1x of 2021, Enchecap vector: generated from `enclave.so`) and 1688 bytes
/// (2023 SDKs, swisstronik vector: regenerated from the signed file's ELF).
const GD_LAYOUTS: [GdLayout; 2] = [
    GdLayout {
        size: 0x678,
        tcs_num: None,
        td_template: 0x48,
        tcs_template: 0xe8,
        layout_entry_num: 0x130,
        layout_table: 0x138,
        elrange: None,
    },
    GdLayout {
        size: 0x698,
        tcs_num: Some(0x48),
        td_template: 0x50,
        tcs_template: 0xf0,
        layout_entry_num: 0x138,
        layout_table: 0x140,
        elrange: Some(0x680),
    },
];
/// `metadata.attributes` written by that SDK's `sgx_sign` (MODE64BIT; XFRM with AVX-512).
const META_ATTR_FLAGS: u64 = 0x4;
const META_ATTR_XFRM: u64 = 0xe7;
const META_MAX_SAVE_BUFFER: u32 = 2632;

#[derive(Clone, Copy, Default)]
struct Entry {
    id: u16,
    attributes: u16,
    page_count: u32,
    rva: u64,
    content_size: u32,
    content_offset: u32,
    si_flags: u64,
    group: Option<(u16, u32, u64)>, // entry_count, load_times, load_step
}

impl Entry {
    /// `layout_entry_t` / `layout_group_t` (32 bytes each).
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        match self.group {
            None => {
                w.u16(self.id)
                    .u16(self.attributes)
                    .u32(self.page_count)
                    .u64(self.rva)
                    .u32(self.content_size)
                    .u32(self.content_offset)
                    .u64(self.si_flags);
            }
            Some((count, times, step)) => {
                w.u16(self.id)
                    .u16(count)
                    .u32(times)
                    .u64(step)
                    .bytes(&[0; 16]);
            }
        }
        w.into_vec()
    }

    fn bytes(&self) -> Result<u64, GenError> {
        u64::from(self.page_count)
            .checked_mul(PAGE_SIZE as u64)
            .ok_or(overflow("layout entry size"))
    }
}

fn xsave_size(xfrm: u64) -> u64 {
    // get_xsave_size: the largest row whose bits are all requested.
    let table = [(0x3u64, 576u64), (0x7, 832), (0x1f, 1088), (0xe7, 2688)];
    table
        .iter()
        .rev()
        .find(|(bits, _)| xfrm & bits == *bits)
        .map_or(0, |(_, s)| *s)
}

/// Copies `bytes` to `buf[at..]`; a write outside the buffer is a layout bug, reported.
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), GenError> {
    at.checked_add(bytes.len())
        .and_then(|end| buf.get_mut(at..end))
        .ok_or(overflow("metadata write offset"))?
        .copy_from_slice(bytes);
    Ok(())
}

fn put64(buf: &mut [u8], at: usize, v: u64) -> Result<(), GenError> {
    put(buf, at, &v.to_le_bytes())
}

fn put32(buf: &mut [u8], at: usize, v: u32) -> Result<(), GenError> {
    put(buf, at, &v.to_le_bytes())
}

fn u32_of(v: usize, what: &'static str) -> Result<u32, GenError> {
    u32::try_from(v).map_err(|_| overflow(what))
}

/// The generated primary metadata block for an unsigned enclave.
#[derive(Debug, Clone)]
pub struct GeneratedMetadata {
    /// The descriptor contents: the primary block (2.4), its SGX2 copy (2.1) and the
    /// SGX1-compatible block (1.4), back to back, with placeholder SIGSTRUCTs.
    pub bytes: Vec<u8>,
    /// Offsets of the blocks inside `bytes`.
    pub block_offsets: Vec<usize>,
    /// The parsed primary block, for replay.
    pub block: MetadataBlock,
}

impl GeneratedMetadata {
    /// Copies `sigstruct` into every block (all blocks carry the same SIGSTRUCT).
    pub fn set_sigstruct(&mut self, s: &Sigstruct) -> Result<(), GenError> {
        let enc = s.encode();
        for &o in &self.block_offsets {
            let at = o.checked_add(64).ok_or(overflow("SIGSTRUCT offset"))?;
            put(&mut self.bytes, at, &enc)?;
        }
        self.block.sigstruct = s.clone();
        Ok(())
    }
}

/// The SGX1-compatible copy `sgx_sign` appends: POST_ADD removed (HEAP_MAX neutralised), the
/// utility thread kept, every other thread folded into one THREAD_GROUP repeated
/// `tcs_num - 1` times, dynamic threads and the final guard dropped.
fn sgx1_block(
    primary: &[u8],
    layout_off: usize,
    heap_and_utility: &[Entry],
    thread_len: usize,
    tcs_num: u32,
) -> Result<Vec<u8>, GenError> {
    let mut b = primary
        .get(..layout_off)
        .ok_or(overflow("layout offset"))?
        .to_vec();
    let mut layout: Vec<Entry> = heap_and_utility
        .iter()
        .map(|e| {
            let mut e = *e;
            if e.id == 3 {
                e.si_flags = 0;
            }
            e.attributes &= !page_attr::POST_ADD;
            e
        })
        .collect();
    let mut step = 0u64;
    for e in layout.iter().rev().take(thread_len) {
        step = step
            .checked_add(e.bytes()?)
            .ok_or(overflow("thread group step"))?;
    }
    layout.push(Entry {
        id: 0x1009,
        group: Some((
            u16::try_from(thread_len).map_err(|_| overflow("thread group entry count"))?,
            tcs_num.checked_sub(1).ok_or(overflow("TCSNum - 1"))?,
            step,
        )),
        ..Default::default()
    });
    for e in &layout {
        b.extend_from_slice(&e.encode());
    }
    let size = u32_of(b.len(), "SGX1 block size")?;
    put64(&mut b, 8, (1u64 << 32) | 4)?;
    put32(&mut b, 16, size)?;
    let layout_len = layout
        .len()
        .checked_mul(32)
        .ok_or(overflow("layout directory size"))?;
    put32(
        &mut b,
        64 + SIGSTRUCT_SIZE + 12,
        u32_of(layout_len, "layout directory size")?,
    )?;
    Ok(b)
}

/// Builds the primary metadata block `sgx_sign` would write for `encl` with `cfg`.
pub fn generate<R: Read + Seek>(
    r: &mut R,
    encl: &SdkEnclave,
    cfg: &SdkConfig,
) -> Result<GeneratedMetadata, GenError> {
    if !encl.blocks.is_empty() {
        return Err(GenError::AlreadySigned {
            offset: encl.note.metadata_offset,
        });
    }
    let page = PAGE_SIZE as u64;
    let bad = |m: &str| GenError::Config(m.to_string());
    if cfg.tcs_num == 0 || cfg.tcs_max_num < cfg.tcs_num {
        return Err(bad(
            "TCSNum must be at least 1 and TCSMaxNum at least TCSNum",
        ));
    }
    for (v, n) in [
        (cfg.stack_max_size, "StackMaxSize"),
        (cfg.stack_min_size, "StackMinSize"),
        (cfg.heap_max_size, "HeapMaxSize"),
        (cfg.heap_min_size, "HeapMinSize"),
        (cfg.heap_init_size, "HeapInitSize"),
    ] {
        if !v.is_multiple_of(page) || v >> 44 != 0 {
            return Err(GenError::Config(format!(
                "{n} {v:#x} is not a page multiple below 16 TiB"
            )));
        }
    }
    if cfg.stack_min_size > cfg.stack_max_size
        || cfg.heap_min_size > cfg.heap_init_size
        || cfg.heap_init_size > cfg.heap_max_size
    {
        return Err(bad(
            "need StackMinSize <= StackMaxSize and HeapMinSize <= HeapInitSize <= HeapMaxSize",
        ));
    }
    let (gd_rva, gd_size) = encl
        .symbol(r, "g_global_data")?
        .ok_or(GenError::MissingSymbol("g_global_data"))?;
    let gdl = GD_LAYOUTS
        .iter()
        .find(|l| l.size == gd_size)
        .ok_or(GenError::UnsupportedSdk { size: gd_size })?;
    let gd_len = usize::try_from(gd_size).map_err(|_| overflow("g_global_data size"))?;
    let (oentry, _) = encl
        .symbol(r, "enclave_entry")?
        .ok_or(GenError::MissingSymbol("enclave_entry"))?;
    let gd_file = encl
        .file_offset_of_rva(gd_rva)
        .ok_or(GenError::MissingSymbol(
            "g_global_data (not in a loaded segment)",
        ))?;

    // Metadata data area: TCS template, g_global_data template, zero buffer, patches, layout.
    let dirs_end = 64 + SIGSTRUCT_SIZE + 16;
    let tcs_off = dirs_end;
    let gd_off = tcs_off + TCS_TEMPLATE_SIZE;
    let zero_off = gd_off
        .checked_add(gd_len)
        .ok_or(overflow("g_global_data template end"))?;
    let patch_off = zero_off + 8;
    let layout_off = patch_off + 4 * 32;

    // Layout table (build_layout_table). Sizes are page multiples below 16 TiB (checked
    // above), so their page counts fit u32.
    let pages = |bytes: u64, what| u32::try_from(bytes / page).map_err(|_| overflow(what));
    let rw = secinfo::REG | secinfo::R | secinfo::W;
    let mut layouts: Vec<Entry> = vec![Entry {
        id: 1,
        attributes: page_attr::EADD,
        page_count: pages(cfg.heap_min_size, "HeapMinSize pages")?,
        si_flags: rw,
        ..Default::default()
    }];
    if cfg.heap_init_size > cfg.heap_min_size {
        layouts.push(Entry {
            id: 2,
            attributes: page_attr::EADD | page_attr::POST_REMOVE | page_attr::POST_ADD,
            page_count: pages(cfg.heap_init_size - cfg.heap_min_size, "HeapInitSize pages")?,
            si_flags: rw,
            ..Default::default()
        });
    }
    if cfg.heap_max_size > cfg.heap_init_size {
        layouts.push(Entry {
            id: 3,
            attributes: page_attr::POST_ADD,
            page_count: pages(cfg.heap_max_size - cfg.heap_init_size, "HeapMaxSize pages")?,
            si_flags: rw,
            ..Default::default()
        });
    }
    let guard = Entry {
        id: 10,
        page_count: GUARD_PAGES,
        ..Default::default()
    };
    let mut thread = vec![guard];
    if cfg.stack_max_size > cfg.stack_min_size {
        thread.push(Entry {
            id: 7,
            attributes: page_attr::EADD | page_attr::EEXTEND | page_attr::GROW_DOWN,
            page_count: pages(
                cfg.stack_max_size - cfg.stack_min_size,
                "StackMaxSize pages",
            )?,
            content_size: 0xCCCC_CCCC,
            si_flags: rw,
            ..Default::default()
        });
    }
    thread.push(Entry {
        id: 8,
        attributes: page_attr::EADD | page_attr::EEXTEND,
        page_count: pages(cfg.stack_min_size, "StackMinSize pages")?,
        content_size: 0xCCCC_CCCC,
        si_flags: rw,
        ..Default::default()
    });
    thread.push(guard);
    thread.push(Entry {
        id: 4,
        attributes: page_attr::EADD | page_attr::EEXTEND,
        page_count: 1,
        content_size: u32_of(TCS_TEMPLATE_SIZE, "TCS template size")?,
        content_offset: u32_of(tcs_off, "TCS template offset")?,
        si_flags: secinfo::TCS,
        ..Default::default()
    });
    let ssa_frame_size = 1u32; // ROUND_TO_PAGE(xsave 2688 + GPR 184) / 4096 for XFRM 0xe7
    thread.push(Entry {
        id: 6,
        attributes: page_attr::EADD | page_attr::EEXTEND,
        page_count: ssa_frame_size * SSA_NUM,
        si_flags: rw,
        ..Default::default()
    });
    thread.push(guard);
    let tls_size = encl.tls.map_or(0, |t| t.memsz);
    let tls_pages = tls_size
        .checked_next_multiple_of(page)
        .ok_or(overflow("PT_TLS p_memsz rounded to pages"))
        .and_then(|b| pages(b, "PT_TLS pages"))?;
    let td_pages = tls_pages
        .checked_add(1)
        .ok_or(overflow("thread data pages"))?;
    thread.push(Entry {
        id: 5,
        attributes: page_attr::EADD | page_attr::EEXTEND,
        page_count: td_pages,
        si_flags: rw,
        ..Default::default()
    });
    for mut l in thread.iter().copied() {
        if l.id == 7 {
            l.attributes |= page_attr::POST_ADD | page_attr::POST_REMOVE;
        }
        layouts.push(l);
    }
    let (min_pool, eremove) = if cfg.tcs_min_pool > cfg.tcs_num - 1 {
        (cfg.tcs_num - 1, 0)
    } else {
        (cfg.tcs_min_pool, cfg.tcs_num - 1 - cfg.tcs_min_pool)
    };
    let thread_len = u16::try_from(thread.len()).map_err(|_| overflow("thread entry count"))?;
    let group = |id: u16, times: u32| Entry {
        id,
        group: Some((thread_len, times, 0)),
        ..Default::default()
    };
    if min_pool > 0 {
        layouts.extend(thread.iter().copied());
        if min_pool > 1 {
            layouts.push(group(0x1009, min_pool - 1));
        }
    }
    if eremove > 0 {
        for mut l in thread.iter().copied() {
            if l.id != 10 {
                l.attributes |= page_attr::EREMOVE;
            }
            layouts.push(l);
        }
        if eremove > 1 {
            layouts.push(group(0x1009, eremove - 1));
        }
    }
    if cfg.tcs_max_num > min_pool + 1 {
        for mut l in thread.iter().copied() {
            if l.id == 7 {
                l.id += 10;
                l.attributes = page_attr::POST_ADD | page_attr::GROW_DOWN;
            } else if l.id != 10 {
                l.id += 10;
                l.attributes = page_attr::POST_ADD | page_attr::DYN_THREAD;
            }
            layouts.push(l);
        }
        layouts.push(group(0x1013, cfg.tcs_max_num - min_pool - 1));
    }
    // update_layout_entries: RVAs from the end of the highest segment.
    let last = encl
        .segments
        .iter()
        .max_by_key(|s| s.vaddr)
        .ok_or(SdkError::BadElf {
            offset: 0,
            what: "no PT_LOAD segment",
        })?;
    let mut rva = last
        .vaddr
        .checked_add(last.memsz)
        .and_then(|e| e.checked_next_multiple_of(page))
        .ok_or(overflow("end of the highest PT_LOAD (p_vaddr + p_memsz)"))?;
    for i in 0..layouts.len() {
        let Some(e) = layouts.get(i).copied() else {
            break;
        };
        match e.group {
            None => {
                if let Some(x) = layouts.get_mut(i) {
                    x.rva = rva;
                }
                rva = rva.checked_add(e.bytes()?).ok_or(overflow("layout RVA"))?;
            }
            Some((count, times, _)) => {
                let mut step = 0u64;
                for j in 0..usize::from(count) {
                    if let Some(x) = i.checked_sub(j + 1).and_then(|k| layouts.get(k)) {
                        step = step
                            .checked_add(x.bytes()?)
                            .ok_or(overflow("layout group step"))?;
                    }
                }
                if let Some(x) = layouts.get_mut(i) {
                    x.group = Some((count, times, step));
                }
                rva = u64::from(times)
                    .checked_mul(step)
                    .and_then(|g| rva.checked_add(g))
                    .ok_or(overflow("layout RVA"))?;
            }
        }
    }
    let enclave_size = rva.checked_next_power_of_two().ok_or(overflow(
        "enclave size (next power of two of the layout end)",
    ))?;
    if enclave_size > rva {
        layouts.push(Entry {
            id: 10,
            rva,
            page_count: u32::try_from((enclave_size - rva) / page)
                .map_err(|_| overflow("final guard page count"))?,
            ..Default::default()
        });
    }
    let first = |id: u16| {
        layouts
            .iter()
            .find(|e| e.group.is_none() && e.id == id)
            .copied()
            .unwrap_or_default()
    };
    let (tcs, ssa, td, stack_min, heap_min) = (first(4), first(6), first(5), first(8), first(1));

    // Thread-data offsets relative to the TCS (the TD entry follows the TCS in each thread).
    let td_last_page = u64::from(td.page_count)
        .checked_sub(1)
        .and_then(|p| p.checked_mul(page))
        .ok_or(overflow("thread data pages"))?;
    let rel = |to: u64, what| to.checked_sub(tcs.rva).ok_or(overflow(what));
    let td_addr = rel(td.rva, "thread data offset")?
        .checked_add(td_last_page)
        .ok_or(overflow("thread data offset"))?;

    // TCS template (build_tcs_template).
    let mut tcs_tpl = [0u8; TCS_TEMPLATE_SIZE];
    put64(&mut tcs_tpl, 16, rel(ssa.rva, "SSA offset")?)?;
    put32(&mut tcs_tpl, 28, SSA_NUM)?;
    put64(&mut tcs_tpl, 32, oentry)?;
    put64(&mut tcs_tpl, 48, td_addr)?;
    put64(&mut tcs_tpl, 56, td_addr)?;
    put64(&mut tcs_tpl, 64, u64::MAX)?;

    // g_global_data template (build_gd_template + update_global_data).
    let mut gd = vec![0u8; gd_len];
    // The stack lies below the TCS: its offsets from the TCS are negative, stored in two's
    // complement as sgx_sign stores them (the runtime adds the TCS address).
    let stack_base = stack_min
        .rva
        .checked_add(cfg.stack_min_size)
        .ok_or(overflow("stack base"))?
        .wrapping_sub(tcs.rva);
    let stack_limit = stack_base.wrapping_sub(cfg.stack_max_size);
    let ssa_base = rel(ssa.rva, "SSA offset")?;
    let tls_addr = td_addr.checked_sub(tls_size).ok_or(overflow(
        "TLS address (thread data offset - PT_TLS p_memsz)",
    ))?;
    let first_ssa_gpr = ssa_base
        .checked_add(u64::from(ssa_frame_size) * page - SSA_GPR_SIZE)
        .ok_or(overflow("SSA GPR offset"))?;
    put64(&mut gd, 0x08, enclave_size)?;
    put64(&mut gd, 0x10, heap_min.rva)?;
    put64(&mut gd, 0x18, cfg.heap_max_size)?;
    put64(&mut gd, 0x38, u64::from(cfg.tcs_policy))?;
    put64(&mut gd, 0x40, u64::from(cfg.tcs_max_num))?;
    if let Some(o) = gdl.tcs_num {
        put64(&mut gd, o, u64::from(cfg.tcs_num))?;
    }
    if let Some(o) = gdl.elrange {
        // No ELRANGE configured: image at 0, ELRANGE = the enclave.
        put64(&mut gd, o + 16, enclave_size)?;
    }
    let td_tpl = gdl.td_template;
    put64(&mut gd, td_tpl, td_addr)?; // self_addr
    put64(&mut gd, td_tpl + 0x08, stack_base)?; // last_sp
    put64(&mut gd, td_tpl + 0x10, stack_base)?; // stack_base_addr
    put64(&mut gd, td_tpl + 0x18, stack_limit)?; // stack_limit_addr
    put64(&mut gd, td_tpl + 0x20, first_ssa_gpr)?;
    put64(&mut gd, td_tpl + 0x38, xsave_size(META_ATTR_XFRM))?; // xsave_size
    put64(&mut gd, td_tpl + 0x50, tls_addr)?; // tls_addr
    put64(
        &mut gd,
        td_tpl + 0x58,
        td_addr.checked_add(0x50).ok_or(overflow("tls_array"))?,
    )?; // tls_array = &td->tls_addr
    put(&mut gd, gdl.tcs_template, &tcs_tpl)?;
    let layout_bytes = layouts
        .len()
        .checked_mul(32)
        .ok_or(overflow("layout table size"))?;
    put32(
        &mut gd,
        gdl.layout_entry_num,
        u32_of(layouts.len(), "layout entry count")?,
    )?;
    if gdl.layout_table.saturating_add(layout_bytes) > gdl.elrange.unwrap_or(gd.len()) {
        return Err(bad(
            "the layout has more entries than g_global_data holds (too many thread kinds)",
        ));
    }
    for (i, e) in layouts.iter().enumerate() {
        put(&mut gd, gdl.layout_table + 32 * i, &e.encode())?;
    }

    // Assemble metadata_t.
    let size = layout_off
        .checked_add(layout_bytes)
        .ok_or(overflow("metadata size"))?;
    let mut b = vec![0u8; size];
    put64(&mut b, 0, METADATA_MAGIC)?;
    put64(&mut b, 8, (2u64 << 32) | 4)?;
    put32(&mut b, 16, u32_of(size, "metadata size")?)?;
    put32(&mut b, 20, cfg.tcs_policy)?;
    put32(&mut b, 24, ssa_frame_size)?;
    put32(&mut b, 28, META_MAX_SAVE_BUFFER)?;
    put32(&mut b, 32, cfg.misc_select)?;
    put32(&mut b, 36, cfg.tcs_min_pool)?;
    put64(&mut b, 40, enclave_size)?;
    put64(&mut b, 48, META_ATTR_FLAGS)?;
    put64(&mut b, 56, META_ATTR_XFRM)?;
    // A placeholder SIGSTRUCT so the block parses; callers sign and set the real one.
    put(
        &mut b,
        64,
        &Sigstruct::new(crate::Digest32([0; 32])).encode(),
    )?;
    let d = 64 + SIGSTRUCT_SIZE;
    put32(&mut b, d, u32_of(patch_off, "patch directory offset")?)?;
    put32(&mut b, d + 4, 4 * 32)?;
    put32(
        &mut b,
        d + 8,
        u32_of(layout_off, "layout directory offset")?,
    )?;
    put32(
        &mut b,
        d + 12,
        u32_of(layout_bytes, "layout directory size")?,
    )?;
    put(&mut b, tcs_off, &tcs_tpl)?;
    put(&mut b, gd_off, &gd)?;
    for (i, (dst, src, len)) in [
        (gd_file, gd_off, u32_of(gd_len, "g_global_data size")?),
        (0x3c, zero_off, 2),
        (0x28, zero_off, 8),
        (0x3e, zero_off, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let at = patch_off + 32 * i;
        put64(&mut b, at, dst)?;
        put32(&mut b, at + 8, u32_of(src, "patch source offset")?)?;
        put32(&mut b, at + 12, len)?;
    }
    for (i, e) in layouts.iter().enumerate() {
        put(&mut b, layout_off + 32 * i, &e.encode())?;
    }
    if b.len() as u64 > u64::from(encl.note.descsz) {
        return Err(bad("the generated metadata does not fit in .note.sgxmeta"));
    }
    let block = parse_block(&b, encl.note.metadata_offset)?;
    // The SGX2 copy (2.1) and the SGX1-compatible block (1.4) follow the primary block.
    let mut copy21 = b.clone();
    put64(&mut copy21, 8, (2u64 << 32) | 1)?;
    let utility_end = layouts.iter().position(|e| e.id == 5).map_or(0, |i| i + 1);
    let sgx1 = sgx1_block(
        &b,
        layout_off,
        layouts.get(..utility_end).unwrap_or_default(),
        thread.len(),
        cfg.tcs_num,
    )?;
    let block_offsets = vec![0, b.len(), 2 * b.len()];
    let mut bytes = b;
    bytes.extend_from_slice(&copy21);
    bytes.extend_from_slice(&sgx1);
    if bytes.len() as u64 > u64::from(encl.note.descsz) {
        return Err(bad("the generated metadata does not fit in .note.sgxmeta"));
    }
    Ok(GeneratedMetadata {
        bytes,
        block_offsets,
        block,
    })
}
