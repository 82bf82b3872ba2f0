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
    fn encode(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        match self.group {
            None => {
                b[0..2].copy_from_slice(&self.id.to_le_bytes());
                b[2..4].copy_from_slice(&self.attributes.to_le_bytes());
                b[4..8].copy_from_slice(&self.page_count.to_le_bytes());
                b[8..16].copy_from_slice(&self.rva.to_le_bytes());
                b[16..20].copy_from_slice(&self.content_size.to_le_bytes());
                b[20..24].copy_from_slice(&self.content_offset.to_le_bytes());
                b[24..32].copy_from_slice(&self.si_flags.to_le_bytes());
            }
            Some((count, times, step)) => {
                b[0..2].copy_from_slice(&self.id.to_le_bytes());
                b[2..4].copy_from_slice(&count.to_le_bytes());
                b[4..8].copy_from_slice(&times.to_le_bytes());
                b[8..16].copy_from_slice(&step.to_le_bytes());
            }
        }
        b
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

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(d) = buf.get_mut(at..at + bytes.len()) {
        d.copy_from_slice(bytes);
    }
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
    pub fn set_sigstruct(&mut self, s: &Sigstruct) {
        let enc = s.encode();
        for &o in &self.block_offsets {
            put(&mut self.bytes, o + 64, &enc);
        }
        self.block.sigstruct = s.clone();
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
) -> Vec<u8> {
    let mut b = primary.get(..layout_off).unwrap_or_default().to_vec();
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
    let step: u64 = layout
        .iter()
        .rev()
        .take(thread_len)
        .map(|e| u64::from(e.page_count) * PAGE_SIZE as u64)
        .sum();
    layout.push(Entry {
        id: 0x1009,
        group: Some((thread_len as u16, tcs_num - 1, step)),
        ..Default::default()
    });
    for e in &layout {
        b.extend_from_slice(&e.encode());
    }
    let size = b.len() as u32;
    put(&mut b, 8, &((1u64 << 32) | 4).to_le_bytes());
    put(&mut b, 16, &size.to_le_bytes());
    put(
        &mut b,
        64 + SIGSTRUCT_SIZE + 12,
        &((32 * layout.len()) as u32).to_le_bytes(),
    );
    b
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
    let zero_off = gd_off + gd_size as usize;
    let patch_off = zero_off + 8;
    let layout_off = patch_off + 4 * 32;

    // Layout table (build_layout_table).
    let pages = |bytes: u64| (bytes / page) as u32;
    let rw = secinfo::REG | secinfo::R | secinfo::W;
    let mut layouts: Vec<Entry> = vec![Entry {
        id: 1,
        attributes: page_attr::EADD,
        page_count: pages(cfg.heap_min_size),
        si_flags: rw,
        ..Default::default()
    }];
    if cfg.heap_init_size > cfg.heap_min_size {
        layouts.push(Entry {
            id: 2,
            attributes: page_attr::EADD | page_attr::POST_REMOVE | page_attr::POST_ADD,
            page_count: pages(cfg.heap_init_size - cfg.heap_min_size),
            si_flags: rw,
            ..Default::default()
        });
    }
    if cfg.heap_max_size > cfg.heap_init_size {
        layouts.push(Entry {
            id: 3,
            attributes: page_attr::POST_ADD,
            page_count: pages(cfg.heap_max_size - cfg.heap_init_size),
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
            page_count: pages(cfg.stack_max_size - cfg.stack_min_size),
            content_size: 0xCCCC_CCCC,
            si_flags: rw,
            ..Default::default()
        });
    }
    thread.push(Entry {
        id: 8,
        attributes: page_attr::EADD | page_attr::EEXTEND,
        page_count: pages(cfg.stack_min_size),
        content_size: 0xCCCC_CCCC,
        si_flags: rw,
        ..Default::default()
    });
    thread.push(guard);
    thread.push(Entry {
        id: 4,
        attributes: page_attr::EADD | page_attr::EEXTEND,
        page_count: 1,
        content_size: TCS_TEMPLATE_SIZE as u32,
        content_offset: tcs_off as u32,
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
    let td_pages = 1 + pages(tls_size.next_multiple_of(page));
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
    let group = |id: u16, times: u32| Entry {
        id,
        group: Some((thread.len() as u16, times, 0)),
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
    let mut rva = (last.vaddr + last.memsz).next_multiple_of(page);
    for i in 0..layouts.len() {
        let Some(e) = layouts.get(i).copied() else {
            break;
        };
        match e.group {
            None => {
                if let Some(x) = layouts.get_mut(i) {
                    x.rva = rva;
                }
                rva += u64::from(e.page_count) * page;
            }
            Some((count, times, _)) => {
                let step: u64 = (0..usize::from(count))
                    .filter_map(|j| layouts.get(i.checked_sub(j + 1)?))
                    .map(|x| u64::from(x.page_count) * page)
                    .sum();
                if let Some(x) = layouts.get_mut(i) {
                    x.group = Some((count, times, step));
                }
                rva += u64::from(times) * step;
            }
        }
    }
    let enclave_size = rva.next_power_of_two();
    if enclave_size > rva {
        layouts.push(Entry {
            id: 10,
            rva,
            page_count: ((enclave_size - rva) / page) as u32,
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

    // TCS template (build_tcs_template).
    let mut tcs_tpl = [0u8; TCS_TEMPLATE_SIZE];
    let fs = td.rva.wrapping_sub(tcs.rva) + (u64::from(td.page_count) - 1) * page;
    put(
        &mut tcs_tpl,
        16,
        &ssa.rva.wrapping_sub(tcs.rva).to_le_bytes(),
    );
    put(&mut tcs_tpl, 28, &SSA_NUM.to_le_bytes());
    put(&mut tcs_tpl, 32, &oentry.to_le_bytes());
    put(&mut tcs_tpl, 48, &fs.to_le_bytes());
    put(&mut tcs_tpl, 56, &fs.to_le_bytes());
    put(&mut tcs_tpl, 64, &u64::MAX.to_le_bytes());

    // g_global_data template (build_gd_template + update_global_data), 2021 layout.
    let mut gd = vec![0u8; gd_size as usize];
    let stack_base = (stack_min.rva + cfg.stack_min_size).wrapping_sub(tcs.rva);
    let stack_limit = stack_base.wrapping_sub(cfg.stack_max_size);
    let ssa_base = ssa.rva.wrapping_sub(tcs.rva);
    let td_addr = td.rva.wrapping_sub(tcs.rva) + (u64::from(td.page_count) - 1) * page;
    let tls_addr = td_addr - tls_size;
    let w = |gd: &mut Vec<u8>, off: usize, v: u64| put(gd, off, &v.to_le_bytes());
    w(&mut gd, 0x08, enclave_size);
    w(&mut gd, 0x10, heap_min.rva);
    w(&mut gd, 0x18, cfg.heap_max_size);
    w(&mut gd, 0x38, u64::from(cfg.tcs_policy));
    w(&mut gd, 0x40, u64::from(cfg.tcs_max_num));
    if let Some(o) = gdl.tcs_num {
        w(&mut gd, o, u64::from(cfg.tcs_num));
    }
    if let Some(o) = gdl.elrange {
        // No ELRANGE configured: image at 0, ELRANGE = the enclave.
        w(&mut gd, o + 16, enclave_size);
    }
    let td_tpl = gdl.td_template;
    w(&mut gd, td_tpl, td_addr); // self_addr
    w(&mut gd, td_tpl + 0x08, stack_base); // last_sp
    w(&mut gd, td_tpl + 0x10, stack_base); // stack_base_addr
    w(&mut gd, td_tpl + 0x18, stack_limit); // stack_limit_addr
    w(
        &mut gd,
        td_tpl + 0x20,
        ssa_base + u64::from(ssa_frame_size) * page - SSA_GPR_SIZE,
    );
    w(&mut gd, td_tpl + 0x38, xsave_size(META_ATTR_XFRM)); // xsave_size
    w(&mut gd, td_tpl + 0x50, tls_addr); // tls_addr
    w(&mut gd, td_tpl + 0x58, td_addr + 0x50); // tls_array = &td->tls_addr
    put(&mut gd, gdl.tcs_template, &tcs_tpl);
    put(
        &mut gd,
        gdl.layout_entry_num,
        &(layouts.len() as u32).to_le_bytes(),
    );
    if gdl.layout_table + 32 * layouts.len() > gdl.elrange.unwrap_or(gd.len()) {
        return Err(bad(
            "the layout has more entries than g_global_data holds (too many thread kinds)",
        ));
    }
    for (i, e) in layouts.iter().enumerate() {
        put(&mut gd, gdl.layout_table + 32 * i, &e.encode());
    }

    // Assemble metadata_t.
    let size = layout_off + 32 * layouts.len();
    let mut b = vec![0u8; size];
    w(&mut b, 0, METADATA_MAGIC);
    w(&mut b, 8, (2u64 << 32) | 4);
    put(&mut b, 16, &(size as u32).to_le_bytes());
    put(&mut b, 20, &cfg.tcs_policy.to_le_bytes());
    put(&mut b, 24, &ssa_frame_size.to_le_bytes());
    put(&mut b, 28, &META_MAX_SAVE_BUFFER.to_le_bytes());
    put(&mut b, 32, &cfg.misc_select.to_le_bytes());
    put(&mut b, 36, &cfg.tcs_min_pool.to_le_bytes());
    w(&mut b, 40, enclave_size);
    w(&mut b, 48, META_ATTR_FLAGS);
    w(&mut b, 56, META_ATTR_XFRM);
    // A placeholder SIGSTRUCT so the block parses; callers sign and set the real one.
    put(
        &mut b,
        64,
        &Sigstruct::new(crate::Digest32([0; 32])).encode(),
    );
    let d = 64 + SIGSTRUCT_SIZE;
    put(&mut b, d, &(patch_off as u32).to_le_bytes());
    put(&mut b, d + 4, &(4u32 * 32).to_le_bytes());
    put(&mut b, d + 8, &(layout_off as u32).to_le_bytes());
    put(&mut b, d + 12, &((32 * layouts.len()) as u32).to_le_bytes());
    put(&mut b, tcs_off, &tcs_tpl);
    put(&mut b, gd_off, &gd);
    for (i, (dst, src, len)) in [
        (gd_file, gd_off, gd_size as u32),
        (0x3c, zero_off, 2),
        (0x28, zero_off, 8),
        (0x3e, zero_off, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let at = patch_off + 32 * i;
        w(&mut b, at, dst);
        put(&mut b, at + 8, &(src as u32).to_le_bytes());
        put(&mut b, at + 12, &len.to_le_bytes());
    }
    for (i, e) in layouts.iter().enumerate() {
        put(&mut b, layout_off + 32 * i, &e.encode());
    }
    if b.len() as u64 > u64::from(encl.note.descsz) {
        return Err(bad("the generated metadata does not fit in .note.sgxmeta"));
    }
    let block = parse_block(&b, encl.note.metadata_offset)?;
    // The SGX2 copy (2.1) and the SGX1-compatible block (1.4) follow the primary block.
    let mut copy21 = b.clone();
    put(&mut copy21, 8, &((2u64 << 32) | 1).to_le_bytes());
    let utility_end = layouts.iter().position(|e| e.id == 5).map_or(0, |i| i + 1);
    let sgx1 = sgx1_block(
        &b,
        layout_off,
        layouts.get(..utility_end).unwrap_or_default(),
        thread.len(),
        cfg.tcs_num,
    );
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
