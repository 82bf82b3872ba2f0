#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Malformed SDK enclaves, derived at run time from the real Enchecap vector: every error is
//! the exact variant with the file offset, never a panic.

use enclave::measure::MeasureError;
use enclave::sdk::{SdkEnclave, SdkError};
use enclave::sigstruct::SigstructError;
use std::io::Cursor;

const META: usize = 0x33bd5; // metadata offset of the Enchecap sample
const NOTE: usize = 0x33bbc; // .note.sgxmeta sh_offset

fn signed() -> Option<Vec<u8>> {
    testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so")
}

fn read(b: &[u8]) -> Result<SdkEnclave, SdkError> {
    SdkEnclave::read(&mut Cursor::new(b))
}

fn measure(b: &[u8]) -> Result<enclave::Mrenclave, SdkError> {
    let mut c = Cursor::new(b);
    let e = SdkEnclave::read(&mut c)?;
    e.measure(&mut c).map(|(d, _)| d)
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

#[test]
fn elf_header_errors() {
    let Some(orig) = signed() else { return };
    assert!(matches!(read(b"hello"), Err(SdkError::NotElf)));
    let mut b = orig.clone();
    b[0] = b'X';
    assert!(matches!(read(&b), Err(SdkError::NotElf)));
    let mut b = orig.clone();
    b[4] = 1;
    let e = read(&b).unwrap_err();
    assert!(matches!(e, SdkError::UnsupportedElf { class: 1, data: 1 }));
    assert_eq!(
        e.to_string(),
        "unsupported ELF class/data 1/1 at offset 4: only little-endian ELF64 enclaves are supported"
    );
    let mut b = orig.clone();
    put_u16(&mut b, 0x36, 32);
    assert!(matches!(
        read(&b),
        Err(SdkError::BadElf { offset: 0x36, .. })
    ));
    let mut b = orig.clone();
    put_u16(&mut b, 0x3c, 0);
    assert!(matches!(read(&b), Err(SdkError::NoMetadataSection)));
    let mut b = orig.clone();
    put_u16(&mut b, 0x3e, 0xfff0);
    assert!(matches!(
        read(&b),
        Err(SdkError::BadElf {
            offset: 0x3e,
            what: "e_shstrndx out of range"
        })
    ));
    // Truncated: the section headers at the end of the file are cut off.
    let e = read(&orig[..orig.len() - 100]).unwrap_err();
    assert!(
        matches!(
            e,
            SdkError::BadElf {
                what: "section headers outside the file",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn missing_or_malformed_note() {
    let Some(orig) = signed() else { return };
    // Rename the section: no metadata section.
    let pos = orig
        .windows(13)
        .position(|w| w == b".note.sgxmeta")
        .unwrap();
    let mut b = orig.clone();
    b[pos + 6] = b'X';
    let e = read(&b).unwrap_err();
    assert!(matches!(e, SdkError::NoMetadataSection));
    assert_eq!(
        e.to_string(),
        "no .note.sgxmeta section: this is not an Intel SGX SDK enclave (for SGXS use an .sgxs file)"
    );
    let mut b = orig.clone();
    b[NOTE + 12] = b'X';
    assert!(matches!(
        read(&b),
        Err(SdkError::BadNote { offset, what: "note name is not \"sgx_metadata\"" }) if offset == NOTE as u64
    ));
    let mut b = orig.clone();
    put_u32(&mut b, NOTE + 4, 0x4000); // descsz no longer matches sh_size
    let e = read(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed .note.sgxmeta at offset 0x33bbc: sh_size is not ROUND_TO(12 + namesz + descsz, sh_addralign)"
    );
}

#[test]
fn metadata_errors() {
    let Some(orig) = signed() else { return };
    // Versions the replay does not implement are read (dump shows their SIGSTRUCT) but not
    // measured. (Metadata 1.3 is implemented now: see tests/metadata13.rs.)
    let mut b = orig.clone();
    put_u32(&mut b, META + 8, 2);
    put_u32(&mut b, META + 12, 1);
    let e = measure(&b).unwrap_err();
    assert!(
        matches!(e, SdkError::UnsupportedVersion { offset, major: 1, minor: 2 } if offset == META as u64)
    );
    assert_eq!(
        e.to_string(),
        "unsupported metadata version 1.2 at offset 0x33bd5: the loader replay supports 1.3+, 2.x, 3.x, 11.x, 13.x"
    );
    let mut b = orig.clone();
    put_u32(&mut b, META + 12, 4);
    let encl = read(&b).unwrap();
    assert_eq!((encl.blocks[0].major, encl.blocks[0].minor), (4, 4));
    assert!(matches!(
        measure(&b),
        Err(SdkError::UnsupportedVersion {
            major: 4,
            minor: 4,
            ..
        })
    ));
    // A broken SIGSTRUCT header inside the first block.
    let mut b = orig.clone();
    b[META + 64] = 0;
    let e = read(&b).unwrap_err();
    match e {
        SdkError::Sigstruct { offset, source } => {
            assert_eq!(offset, (META + 64) as u64);
            assert_eq!(
                source,
                SigstructError::BadHeader {
                    field: "HEADER",
                    offset: 0
                }
            );
        }
        other => panic!("{other:?}"),
    }
    // Layout directory pointing outside the metadata.
    let mut b = orig.clone();
    put_u32(&mut b, META + 1872 + 8, 0xffff_0000);
    let e = read(&b).unwrap_err();
    assert!(
        matches!(&e, SdkError::BadMetadata { offset, what } if *offset == META as u64 && what.starts_with("layout directory 0xffff0000+")),
        "{e:?}"
    );
    // Directory size not a multiple of the entry size.
    let mut b = orig.clone();
    let sz = get_u32(&b, META + 1872 + 4);
    put_u32(&mut b, META + 1872 + 4, sz + 1);
    let e = read(&b).unwrap_err();
    assert!(
        matches!(&e, SdkError::BadMetadata { what, .. } if what.starts_with("patch directory size")),
        "{e:?}"
    );
    // Block size smaller than the header.
    let mut b = orig.clone();
    put_u32(&mut b, META + 16, 100);
    assert!(
        matches!(read(&b), Err(SdkError::BadMetadata { what, .. }) if what == "size 0x64 is smaller than the header")
    );
}

#[test]
fn replay_errors() {
    let Some(orig) = signed() else { return };
    let layout_off = get_u32(&orig, META + 1872 + 8) as usize;
    let first_entry = META + layout_off;
    // A patch whose source lies outside the metadata.
    let patch_off = META + get_u32(&orig, META + 1872) as usize;
    let mut b = orig.clone();
    put_u32(&mut b, patch_off + 8, 0xffff_0000);
    let e = measure(&b).unwrap_err();
    assert!(
        matches!(&e, SdkError::BadMetadata { what, .. } if what.starts_with("patch source 0xffff0000+")),
        "{e:?}"
    );
    // A group as the very first layout entry repeats entries that do not exist.
    let mut b = orig.clone();
    put_u16(&mut b, first_entry, 0x1009);
    put_u16(&mut b, first_entry + 2, 3);
    let e = measure(&b).unwrap_err();
    assert!(
        matches!(&e, SdkError::BadMetadata { what, .. } if what == "layout group 0 repeats 3 entries, only 0 precede it"),
        "{e:?}"
    );
    // A layout entry placed outside the enclave.
    let mut b = orig.clone();
    b[first_entry + 8..first_entry + 16].copy_from_slice(&0x4000_0000u64.to_le_bytes());
    let e = measure(&b).unwrap_err();
    match e {
        SdkError::Measure {
            offset,
            source: MeasureError::BadPageOffset { offset: page, size },
        } => {
            assert_eq!(offset, META as u64);
            assert_eq!((page, size), (0x4000_0000, 0x100_0000));
        }
        other => panic!("{other:?}"),
    }
    // More pages than the enclave holds.
    let mut b = orig.clone();
    put_u32(&mut b, first_entry + 4, 0x10_0000);
    let e = measure(&b).unwrap_err();
    assert!(
        matches!(&e, SdkError::BadMetadata { what, .. } if what == "the layout adds more pages than the enclave holds"),
        "{e:?}"
    );
    // TCS template larger than a page.
    let tcs = (0..64)
        .map(|i| first_entry + 32 * i)
        .find(|&o| u16::from_le_bytes([orig[o], orig[o + 1]]) == 4)
        .unwrap();
    let mut b = orig.clone();
    put_u32(&mut b, tcs + 16, 0x2000);
    let e = measure(&b).unwrap_err();
    assert!(
        matches!(&e, SdkError::BadMetadata { what, .. } if what.starts_with("layout content 0x760+0x2000")),
        "{e:?}"
    );
}

#[test]
fn tampered_image_changes_the_measurement() {
    let Some(orig) = signed() else { return };
    let good = measure(&orig).unwrap();
    let mut b = orig.clone();
    b[0x1000] ^= 0xff; // inside the first PT_LOAD segment
    let bad = measure(&b).unwrap();
    assert_ne!(bad, good);
    assert_eq!(measure(&orig).unwrap(), good, "deterministic");
}
