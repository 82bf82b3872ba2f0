//! The streaming MRENCLAVE engine (SDM Vol. 3D §39.4.1.1).
//!
//! MRENCLAVE is one SHA-256 over 64-byte records: one ECREATE, then per added page an EADD and,
//! for measured pages, 16 EEXTENDs each followed by 256 bytes of page data. [`Measurer`] builds
//! exactly these records, hashes them in large batches, and can copy the same bytes to a sink —
//! that copy is a canonical SGXS stream, so measuring and writing `.sgxs` are one operation.

use crate::{MrEnclave, sha256};
use aws_lc_rs::digest;
use std::io::{self, Write};

/// The SGX page size.
pub const PAGE_SIZE: usize = 4096;
/// Bytes of page data covered by one EEXTEND.
pub const EEXTEND_CHUNK: usize = 256;
/// Record tag `"ECREATE\0"` as a little-endian u64.
pub const MEAS_ECREATE: u64 = 0x0045_5441_4552_4345;
/// Record tag `"EADD\0\0\0\0"`.
pub const MEAS_EADD: u64 = 0x0000_0000_4444_4145;
/// Record tag `"EEXTEND\0"`.
pub const MEAS_EEXTEND: u64 = 0x0044_4E45_5458_4545;
/// Fortanix SGXS extension `"UNSIZED\0"`: an ECREATE whose size is filled in later.
pub const MEAS_UNSIZED: u64 = 0x0044_455a_4953_4e55;
/// Fortanix SGXS extension `"UNMEASRD"`: 256 bytes loaded but not measured.
pub const MEAS_UNMEASRD: u64 = 0x4452_5341_454d_4e55;

/// SECINFO.FLAGS bits (arch.h `SI_FLAG_*`).
pub mod secinfo {
    /// Readable.
    pub const R: u64 = 0x1;
    /// Writable.
    pub const W: u64 = 0x2;
    /// Executable.
    pub const X: u64 = 0x4;
    /// Page type TCS (no RWX bits).
    pub const TCS: u64 = 0x100;
    /// Page type REG.
    pub const REG: u64 = 0x200;
    /// The bits a signer may set: page type and RWX (`SI_FLAGS_EXTERNAL`).
    pub const EXTERNAL: u64 = 0xff07;
}

/// Why a page or enclave cannot be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// ECREATE SIZE must be a power of two of at least one page.
    #[error("enclave size {size:#x} is not a power of two of at least 4096 bytes")]
    BadEnclaveSize {
        /// The rejected size.
        size: u64,
    },
    /// A page offset is not page aligned or lies outside the enclave.
    #[error(
        "page offset {offset:#x} is not page aligned or lies outside the enclave (size {size:#x})"
    )]
    BadPageOffset {
        /// The page offset.
        offset: u64,
        /// The enclave size (ECREATE SIZE).
        size: u64,
    },
    /// SECINFO flags with bits outside page type and RWX.
    #[error(
        "SECINFO flags {flags:#x} at page offset {offset:#x} set bits outside page type and RWX"
    )]
    BadSecinfo {
        /// The page offset.
        offset: u64,
        /// The rejected flags.
        flags: u64,
    },
    /// Writing the SGXS copy failed.
    #[error("writing the SGXS stream")]
    Sink(#[source] io::Error),
    /// A record field outside the record buffer (a bug in the record layout, never input).
    #[error("internal error: record field at byte {at} outside the page record buffer")]
    RecordLayout {
        /// Byte offset of the field.
        at: usize,
    },
}

/// Batches hashed bytes (a few KiB per update keeps the FFI cost negligible) and mirrors them
/// to a sink.
pub(crate) struct Hasher<W: Write> {
    ctx: digest::Context,
    buf: Vec<u8>,
    sink: W,
}

const BATCH: usize = 64 * 1024;

impl<W: Write> Hasher<W> {
    pub(crate) fn new(sink: W) -> Self {
        Self {
            ctx: digest::Context::new(&digest::SHA256),
            buf: Vec::with_capacity(BATCH),
            sink,
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), io::Error> {
        if bytes.len() >= 4096 {
            // Large pieces (a whole measured page) go straight to the hash.
            if !self.buf.is_empty() {
                self.flush()?;
            }
            self.ctx.update(bytes);
            return self.sink.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BATCH - 8 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), io::Error> {
        self.ctx.update(&self.buf);
        self.sink.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<([u8; 32], W), io::Error> {
        self.flush()?;
        self.sink.flush()?;
        let d = self.ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Ok((out, self.sink))
    }
}

/// Bytes hashed for one measured page: EADD + 16 × (EEXTEND + 256 data bytes).
pub const PAGE_RECORDS: usize = 64 + (PAGE_SIZE / EEXTEND_CHUNK) * (64 + EEXTEND_CHUNK);

/// Writes `bytes` at `at` of the record buffer; out of range is an error, never a skip.
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), MeasureError> {
    at.checked_add(bytes.len())
        .and_then(|end| buf.get_mut(at..end))
        .ok_or(MeasureError::RecordLayout { at })?
        .copy_from_slice(bytes);
    Ok(())
}

/// Counts of what was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeasureStats {
    /// Pages EADDed.
    pub pages_added: u64,
    /// Pages EEXTENDed (all 16 chunks).
    pub pages_extended: u64,
}

/// A streaming MRENCLAVE computation. Pages are fed in the loader's order.
///
/// `W` receives a byte-exact copy of the hashed stream (a canonical SGXS file); use
/// [`Measurer::new`] for no copy.
pub struct Measurer<W: Write = io::Sink> {
    hasher: Hasher<W>,
    page_records: Box<[u8; PAGE_RECORDS]>,
    size: u64,
    offset_bias: u64,
    stats: MeasureStats,
}

impl Measurer<io::Sink> {
    /// Starts a measurement with the ECREATE record (SSAFRAMESIZE in pages, SIZE in bytes).
    pub fn new(ssa_frame_size: u32, size: u64) -> Result<Self, MeasureError> {
        Self::with_sink(ssa_frame_size, size, io::sink())
    }
}

impl<W: Write> Measurer<W> {
    /// Like [`Measurer::new`], also writing the hashed stream (SGXS) to `sink`.
    pub fn with_sink(ssa_frame_size: u32, size: u64, sink: W) -> Result<Self, MeasureError> {
        if size < PAGE_SIZE as u64 || !size.is_power_of_two() {
            return Err(MeasureError::BadEnclaveSize { size });
        }
        let mut hasher = Hasher::new(sink);
        let mut rec = [0u8; 64];
        rec[0..8].copy_from_slice(&MEAS_ECREATE.to_le_bytes());
        rec[8..12].copy_from_slice(&ssa_frame_size.to_le_bytes());
        rec[12..20].copy_from_slice(&size.to_le_bytes());
        hasher.feed(&rec).map_err(MeasureError::Sink)?;
        Ok(Self {
            hasher,
            page_records: Box::new([0u8; PAGE_RECORDS]),
            size,
            offset_bias: 0,
            stats: MeasureStats::default(),
        })
    }

    /// Adds `bias` to every following page offset (Intel SDK ELRANGE: image address minus
    /// ELRANGE start).
    pub fn set_offset_bias(&mut self, bias: u64) {
        self.offset_bias = bias;
    }

    /// EADDs one page at `offset` (relative to the enclave base) with SECINFO `flags`, then, if
    /// `extend`, EEXTENDs its 4096 bytes. `data == None` is a zero page.
    pub fn add_page(
        &mut self,
        offset: u64,
        flags: u64,
        data: Option<&[u8; PAGE_SIZE]>,
        extend: bool,
    ) -> Result<(), MeasureError> {
        let offset = offset.wrapping_add(self.offset_bias);
        if !offset.is_multiple_of(PAGE_SIZE as u64) || offset >= self.size {
            return Err(MeasureError::BadPageOffset {
                offset,
                size: self.size,
            });
        }
        if flags & !secinfo::EXTERNAL != 0 {
            return Err(MeasureError::BadSecinfo { offset, flags });
        }
        // One contiguous record block per page: EADD, then 16 × (EEXTEND + 256 bytes).
        // Only the tag, offset and flag fields are ever written; the zero padding stays zero.
        let rec: &mut [u8] = &mut self.page_records[..];
        put(rec, 0, &MEAS_EADD.to_le_bytes())?;
        put(rec, 8, &offset.to_le_bytes())?;
        put(rec, 16, &flags.to_le_bytes())?;
        self.stats.pages_added += 1;
        if !extend {
            return self
                .hasher
                .feed(rec.get(..64).unwrap_or_default())
                .map_err(MeasureError::Sink);
        }
        const ZERO: [u8; PAGE_SIZE] = [0u8; PAGE_SIZE];
        let page = data.unwrap_or(&ZERO);
        for (i, chunk) in page.chunks_exact(EEXTEND_CHUNK).enumerate() {
            let at = 64 + i * (64 + EEXTEND_CHUNK);
            put(rec, at, &MEAS_EEXTEND.to_le_bytes())?;
            // offset < size <= 2^63 (a power of two), so offset + 0xf00 cannot overflow.
            put(
                rec,
                at + 8,
                &(offset + (i * EEXTEND_CHUNK) as u64).to_le_bytes(),
            )?;
            put(rec, at + 64, chunk)?;
        }
        self.stats.pages_extended += 1;
        self.hasher.feed(rec).map_err(MeasureError::Sink)
    }

    /// What has been measured so far.
    pub fn stats(&self) -> MeasureStats {
        self.stats
    }

    /// The enclave size from ECREATE.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Finalises: MRENCLAVE (EINIT adds no record), the stats, and the sink.
    pub fn finish(self) -> Result<(MrEnclave, MeasureStats, W), MeasureError> {
        let stats = self.stats;
        let (d, sink) = self.hasher.finish().map_err(MeasureError::Sink)?;
        Ok((MrEnclave(d), stats, sink))
    }
}

/// Raw SHA-256 over `data`, with the same backend the engine uses (for comparisons).
pub fn raw_sha256(data: &[u8]) -> [u8; 32] {
    sha256(data)
}

/// Why a flat image cannot be measured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlatImageError {
    /// Reading the image failed.
    #[error("reading the image at offset {offset:#x}")]
    Io {
        /// Where.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The image does not end on a page boundary.
    #[error(
        "the image ends {tail} bytes into the page at offset {offset:#x}: a flat image is whole 4096-byte pages"
    )]
    PartialPage {
        /// Offset of the partial page.
        offset: u64,
        /// Bytes present in it.
        tail: usize,
    },
    /// A page could not be measured.
    #[error("measuring the image")]
    Measure(#[source] MeasureError),
    /// The image has no bytes.
    #[error("empty image")]
    Empty,
    /// The image is longer than any power-of-two enclave size.
    #[error("image too large ({len} bytes): no power-of-two enclave size holds it")]
    TooLarge {
        /// Its length.
        len: u64,
    },
}

/// ECREATE SIZE for a flat image of `len` bytes: the next power of two, at least one page.
pub fn flat_image_size(len: u64) -> Result<u64, FlatImageError> {
    if len == 0 {
        return Err(FlatImageError::Empty);
    }
    len.checked_next_power_of_two()
        .map(|s| s.max(PAGE_SIZE as u64))
        .ok_or(FlatImageError::TooLarge { len })
}

/// The SECINFO of page `i` of a flat image (the Linux/enarx selftest `encl.bin` convention):
/// TCS for the pages named as TCS, REG|R|W|X for all others.
pub fn flat_image_secinfo(is_tcs: bool) -> u64 {
    if is_tcs {
        secinfo::TCS
    } else {
        secinfo::REG | secinfo::R | secinfo::W | secinfo::X
    }
}

/// Measures a flat image loaded at enclave offset 0, page after page, every page measured
/// (the Linux kernel SGX selftest / enarx convention): `flags_of(page_index)` gives each page's
/// SECINFO flags; SIZE is `size` (callers usually pass the next power of two of the length).
pub fn measure_flat_image<R: io::Read, W: Write>(
    mut r: R,
    ssa_frame_size: u32,
    size: u64,
    flags_of: impl Fn(u64) -> u64,
    sink: W,
) -> Result<(MrEnclave, MeasureStats, W), FlatImageError> {
    let mut m = Measurer::with_sink(ssa_frame_size, size, sink).map_err(FlatImageError::Measure)?;
    let mut page = [0u8; PAGE_SIZE];
    let mut index = 0u64;
    loop {
        let offset = index * PAGE_SIZE as u64;
        let mut got = 0;
        while got < PAGE_SIZE {
            match r.read(page.get_mut(got..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(FlatImageError::Io {
                        offset: offset + got as u64,
                        source,
                    });
                }
            }
        }
        if got == 0 {
            break;
        }
        if got < PAGE_SIZE {
            return Err(FlatImageError::PartialPage { offset, tail: got });
        }
        m.add_page(offset, flags_of(index), Some(&page), true)
            .map_err(FlatImageError::Measure)?;
        index += 1;
    }
    m.finish().map_err(FlatImageError::Measure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_size() {
        assert!(matches!(
            Measurer::new(1, 0x3000),
            Err(MeasureError::BadEnclaveSize { size: 0x3000 })
        ));
        assert!(matches!(
            Measurer::new(1, 0),
            Err(MeasureError::BadEnclaveSize { size: 0 })
        ));
    }

    #[test]
    fn rejects_bad_offsets_and_flags() {
        let mut m = Measurer::new(1, 0x2000).unwrap();
        let e = m.add_page(0x2000, 0x203, None, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "page offset 0x2000 is not page aligned or lies outside the enclave (size 0x2000)"
        );
        assert!(matches!(
            m.add_page(0x10, 0x203, None, true),
            Err(MeasureError::BadPageOffset {
                offset: 0x10,
                size: 0x2000
            })
        ));
        assert!(matches!(
            m.add_page(0, 0x208, None, true),
            Err(MeasureError::BadSecinfo {
                offset: 0,
                flags: 0x208
            })
        ));
    }

    #[test]
    fn flat_image_errors() {
        let e = measure_flat_image(&[0u8; 5000][..], 1, 0x2000, |_| secinfo::REG, io::sink())
            .unwrap_err();
        assert!(matches!(
            e,
            FlatImageError::PartialPage {
                offset: 0x1000,
                tail: 904
            }
        ));
        let e = measure_flat_image(&[0u8; 0x3000][..], 1, 0x2000, |_| secinfo::REG, io::sink())
            .unwrap_err();
        assert!(matches!(
            e,
            FlatImageError::Measure(MeasureError::BadPageOffset {
                offset: 0x2000,
                size: 0x2000
            })
        ));
    }

    #[test]
    fn flat_image_sizes() {
        assert!(matches!(flat_image_size(0), Err(FlatImageError::Empty)));
        assert_eq!(flat_image_size(0).unwrap_err().to_string(), "empty image");
        let e = flat_image_size(u64::MAX).unwrap_err();
        assert!(matches!(e, FlatImageError::TooLarge { len: u64::MAX }));
        assert_eq!(
            e.to_string(),
            "image too large (18446744073709551615 bytes): no power-of-two enclave size holds it"
        );
        assert_eq!(flat_image_size(1).unwrap(), 0x1000);
        assert_eq!(flat_image_size(0x1000).unwrap(), 0x1000);
        assert_eq!(flat_image_size(0x3000).unwrap(), 0x4000);
    }

    #[test]
    fn sink_copy_is_the_hashed_stream() {
        let mut m = Measurer::with_sink(1, 0x8000, Vec::new()).unwrap();
        let page = [7u8; PAGE_SIZE];
        m.add_page(0, secinfo::TCS, Some(&page), true).unwrap();
        m.add_page(0x1000, secinfo::REG | secinfo::R, None, false)
            .unwrap();
        let (d, stats, sgxs) = m.finish().unwrap();
        assert_eq!(sgxs.len(), 64 + 64 + 16 * 320 + 64);
        assert_eq!(d.0, sha256(&sgxs));
        assert_eq!(
            stats,
            MeasureStats {
                pages_added: 2,
                pages_extended: 1
            }
        );
    }
}
