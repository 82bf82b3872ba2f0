//! The Fortanix SGXS format: the measured record stream itself (ECREATE, EADD, EEXTEND + 256
//! data bytes, each record 64 bytes), plus two extensions excluded from the hash: `UNSIZED`
//! (an ECREATE whose size is filled in later; cannot be measured) and `UNMEASRD` (64 + 256 bytes
//! loaded but not measured).
//!
//! [`measure_sgxs`] reads a stream once, validates its structure and computes MRENCLAVE. The
//! writer is [`crate::measure::Measurer::with_sink`]: the bytes it hashes are a canonical SGXS
//! stream.

use crate::measure::{
    EEXTEND_CHUNK, Hasher, MEAS_EADD, MEAS_ECREATE, MEAS_EEXTEND, MEAS_UNMEASRD, MEAS_UNSIZED,
    PAGE_SIZE, secinfo,
};
use crate::{Digest32, Mrenclave};
use sgx_types::reader::Reader;
use std::collections::HashSet;
use std::io::{self, ErrorKind, Read};

/// Why an SGXS stream cannot be measured. Offsets are byte offsets in the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SgxsError {
    /// Reading the stream failed.
    #[error("reading the SGXS stream at offset {offset}")]
    Io {
        /// Where the read failed.
        offset: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The stream is empty or does not start with ECREATE.
    #[error("not an SGXS stream: no ECREATE record at offset 0")]
    NoEcreate,
    /// An `UNSIZED` ECREATE: the size must be fixed before the enclave can be measured.
    #[error("the SGXS stream is UNSIZED (offset {offset}): set its enclave size before measuring")]
    Unsized {
        /// Offset of the record.
        offset: u64,
    },
    /// A second ECREATE.
    #[error("a second ECREATE record at offset {offset}")]
    DuplicateEcreate {
        /// Offset of the record.
        offset: u64,
    },
    /// An unknown record tag.
    #[error("unknown SGXS record tag {tag:#018x} at offset {offset}")]
    UnknownRecord {
        /// Offset of the record.
        offset: u64,
        /// The tag (first 8 bytes, little-endian).
        tag: u64,
    },
    /// The stream ends inside a record or its data.
    #[error("the SGXS stream ends inside a record at offset {offset}")]
    Truncated {
        /// Offset of the record.
        offset: u64,
    },
    /// ECREATE SIZE is not a power of two of at least a page.
    #[error("ECREATE size {size:#x} at offset 0 is not a power of two of at least 4096")]
    BadSize {
        /// The size.
        size: u64,
    },
    /// An EADD offset outside the enclave or not page aligned, or bad SECINFO flags.
    #[error(
        "EADD at offset {offset}: page {page:#x} with flags {flags:#x} is invalid (unaligned, outside the enclave, added twice, or flags outside page type/RWX)"
    )]
    BadEadd {
        /// Offset of the record.
        offset: u64,
        /// The page offset in the enclave.
        page: u64,
        /// The SECINFO flags.
        flags: u64,
    },
    /// An EEXTEND of a chunk whose page was not added, or not 256-byte aligned.
    #[error(
        "EEXTEND at offset {offset}: chunk {chunk:#x} is not 256-byte aligned or its page was not added"
    )]
    BadEextend {
        /// Offset of the record.
        offset: u64,
        /// The chunk offset in the enclave.
        chunk: u64,
    },
}

/// What an SGXS stream contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxsSummary {
    /// The measurement.
    pub mrenclave: Mrenclave,
    /// ECREATE SSAFRAMESIZE.
    pub ssa_frame_size: u32,
    /// ECREATE SIZE.
    pub size: u64,
    /// EADD records.
    pub pages_added: u64,
    /// EEXTEND records (256-byte chunks).
    pub chunks_extended: u64,
    /// UNMEASRD chunks (not part of the hash).
    pub chunks_unmeasured: u64,
    /// Stream length in bytes.
    pub stream_len: u64,
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean EOF before the first byte.
fn read_record(r: &mut impl Read, buf: &mut [u8], offset: u64) -> Result<bool, SgxsError> {
    let mut got = 0;
    while got < buf.len() {
        let rest = buf.get_mut(got..).unwrap_or_default();
        match r.read(rest) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(SgxsError::Truncated { offset }),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(SgxsError::Io {
                    offset: offset + got as u64,
                    source,
                });
            }
        }
    }
    Ok(true)
}

/// Measures an SGXS stream, validating its structure.
pub fn measure_sgxs(mut r: impl Read) -> Result<SgxsSummary, SgxsError> {
    let mut hasher = Hasher::new(io::sink());
    let mut rec = [0u8; 64];
    let mut data = [0u8; EEXTEND_CHUNK];
    let mut offset = 0u64;
    if !read_record(&mut r, &mut rec, 0)? {
        return Err(SgxsError::NoEcreate);
    }
    // ECREATE: tag, SSAFRAMESIZE (u32), SIZE (u64); a 64-byte record cannot run short.
    let short = |offset| move |_| SgxsError::Truncated { offset };
    let mut er = Reader::new(&rec);
    match er.u64("tag").map_err(short(0))? {
        MEAS_ECREATE => {}
        MEAS_UNSIZED => return Err(SgxsError::Unsized { offset: 0 }),
        _ => return Err(SgxsError::NoEcreate),
    }
    let ssa_frame_size = er.u32("ssaframesize").map_err(short(0))?;
    let size = er.u64("size").map_err(short(0))?;
    if size < PAGE_SIZE as u64 || !size.is_power_of_two() {
        return Err(SgxsError::BadSize { size });
    }
    let io_err = |offset| move |source| SgxsError::Io { offset, source };
    hasher.feed(&rec).map_err(io_err(0))?;
    offset += 64;
    let mut pages: HashSet<u64> = HashSet::new();
    let mut s = SgxsSummary {
        mrenclave: Digest32([0; 32]),
        ssa_frame_size,
        size,
        pages_added: 0,
        chunks_extended: 0,
        chunks_unmeasured: 0,
        stream_len: 0,
    };
    while read_record(&mut r, &mut rec, offset)? {
        // EADD: tag, offset, SECINFO.FLAGS; EEXTEND: tag, offset.
        let mut rr = Reader::new(&rec);
        let tag = rr.u64("tag").map_err(short(offset))?;
        let field1 = rr.u64("offset").map_err(short(offset))?;
        let field2 = rr.u64("flags").map_err(short(offset))?;
        match tag {
            MEAS_EADD => {
                let (page, flags) = (field1, field2);
                if !page.is_multiple_of(PAGE_SIZE as u64)
                    || page >= size
                    || flags & !secinfo::EXTERNAL != 0
                    || !pages.insert(page)
                {
                    return Err(SgxsError::BadEadd {
                        offset,
                        page,
                        flags,
                    });
                }
                hasher.feed(&rec).map_err(io_err(offset))?;
                s.pages_added += 1;
                offset += 64;
            }
            MEAS_EEXTEND => {
                let chunk = field1;
                if !chunk.is_multiple_of(EEXTEND_CHUNK as u64)
                    || !pages.contains(&(chunk & !(PAGE_SIZE as u64 - 1)))
                {
                    return Err(SgxsError::BadEextend { offset, chunk });
                }
                if !read_record(&mut r, &mut data, offset)? {
                    return Err(SgxsError::Truncated { offset });
                }
                hasher.feed(&rec).map_err(io_err(offset))?;
                hasher.feed(&data).map_err(io_err(offset))?;
                s.chunks_extended += 1;
                offset += 64 + EEXTEND_CHUNK as u64;
            }
            MEAS_UNMEASRD => {
                if !read_record(&mut r, &mut data, offset)? {
                    return Err(SgxsError::Truncated { offset });
                }
                s.chunks_unmeasured += 1;
                offset += 64 + EEXTEND_CHUNK as u64;
            }
            MEAS_ECREATE | MEAS_UNSIZED => return Err(SgxsError::DuplicateEcreate { offset }),
            tag => return Err(SgxsError::UnknownRecord { offset, tag }),
        }
    }
    let (d, _) = hasher.finish().map_err(io_err(offset))?;
    s.mrenclave = Digest32(d);
    s.stream_len = offset;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Measurer;

    fn sample() -> Vec<u8> {
        let mut m = Measurer::with_sink(1, 0x4000, Vec::new()).unwrap();
        m.add_page(0, secinfo::TCS, Some(&[1; PAGE_SIZE]), true)
            .unwrap();
        m.add_page(0x1000, secinfo::REG | 3, None, false).unwrap();
        m.finish().unwrap().2
    }

    #[test]
    fn roundtrip_with_writer() {
        let s = sample();
        let sum = measure_sgxs(&s[..]).unwrap();
        assert_eq!(sum.mrenclave.0, crate::sha256(&s));
        assert_eq!(
            (sum.pages_added, sum.chunks_extended, sum.size),
            (2, 16, 0x4000)
        );
    }

    #[test]
    fn unmeasured_is_skipped() {
        let mut s = sample();
        let want = crate::sha256(&s);
        let mut rec = [0u8; 64 + 256];
        rec[..8].copy_from_slice(&MEAS_UNMEASRD.to_le_bytes());
        s.extend_from_slice(&rec);
        let sum = measure_sgxs(&s[..]).unwrap();
        assert_eq!(sum.mrenclave.0, want);
        assert_eq!(sum.chunks_unmeasured, 1);
    }

    #[test]
    fn errors() {
        assert!(matches!(measure_sgxs(&[][..]), Err(SgxsError::NoEcreate)));
        let s = sample();
        let mut u = s.clone();
        u[..8].copy_from_slice(&MEAS_UNSIZED.to_le_bytes());
        assert!(matches!(
            measure_sgxs(&u[..]),
            Err(SgxsError::Unsized { offset: 0 })
        ));
        let t = &s[..s.len() - 10];
        let e = measure_sgxs(t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the SGXS stream ends inside a record at offset 5248"
        );
        let mut d = s.clone();
        d.extend_from_slice(&s[..64]);
        assert!(matches!(
            measure_sgxs(&d[..]),
            Err(SgxsError::DuplicateEcreate { offset: 5312 })
        ));
        let mut k = s.clone();
        k.extend_from_slice(&[0xaa; 64]);
        assert!(matches!(
            measure_sgxs(&k[..]),
            Err(SgxsError::UnknownRecord { offset: 5312, .. })
        ));
        let mut z = s.clone();
        z[12..20].copy_from_slice(&0x3000u64.to_le_bytes());
        assert!(matches!(
            measure_sgxs(&z[..]),
            Err(SgxsError::BadSize { size: 0x3000 })
        ));
        // EADD of the same page twice
        let mut dup = s.clone();
        dup.extend_from_slice(&s[64..128]);
        assert!(matches!(
            measure_sgxs(&dup[..]),
            Err(SgxsError::BadEadd {
                offset: 5312,
                page: 0,
                flags: 0x100
            })
        ));
        // EEXTEND of a page never added
        let mut ext = s.clone();
        let mut rec = [0u8; 64 + 256];
        rec[..8].copy_from_slice(&MEAS_EEXTEND.to_le_bytes());
        rec[8..16].copy_from_slice(&0x3000u64.to_le_bytes());
        ext.extend_from_slice(&rec);
        assert!(matches!(
            measure_sgxs(&ext[..]),
            Err(SgxsError::BadEextend {
                offset: 5312,
                chunk: 0x3000
            })
        ));
    }
}
