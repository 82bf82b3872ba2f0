#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Issue 12 item 2: Intel SGX SDK metadata version 1.3 (SGX 1.5).
//!
//! No real 1.3 `.signed.so` is in the shared test data (the Intel Launch Enclave
//! `libsgx_le.signed.so`, MRENCLAVE 8050122c…, is not there; `le_prod_css.bin` is the 2.x LE's
//! SIGSTRUCT only). These tests therefore use **generated** 1.3 enclaves: copies of the real
//! Enchecap `enclave.signed.so` whose metadata version words are rewritten to 1.3. The 1.3
//! block layout is the 1.4 one (`metadata_t` with `dirs[DIR_PATCH, DIR_LAYOUT]`); the only
//! loader difference is the extra page of `loader.cpp` `build_sections` (spec digest §3.3),
//! whose records the second test builds by hand from the SDM record layout.

use enclave::sdk::SdkEnclave;
use std::io::Cursor;

const BLOCKS: [usize; 3] = [0x33bd5, 0x34f1d, 0x36265];
const MRENCLAVE: &str = "d0c4f2da0b8aba01b5f0a588f0aa45c910f2c9d53806777620f188f3ad4a5290";

fn as_13(orig: &[u8]) -> Vec<u8> {
    let mut b = orig.to_vec();
    for o in BLOCKS {
        b[o + 8..o + 16].copy_from_slice(&((1u64 << 32) | 3).to_le_bytes());
    }
    b
}

fn sgxs(b: &[u8]) -> (String, u64, Vec<u8>) {
    let mut c = Cursor::new(b);
    let e = SdkEnclave::read(&mut c).unwrap();
    let (d, stats, out) = e.measure_block(&mut c, &e.blocks[0], Vec::new()).unwrap();
    (d.to_string(), stats.pages_added, out)
}

#[test]
fn generated_13_enclave_measures_to_its_enclavehash() {
    let Some(orig) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    let b = as_13(&orig);
    let mut c = Cursor::new(&b);
    let e = SdkEnclave::read(&mut c).unwrap();
    assert_eq!(
        e.blocks
            .iter()
            .map(|b| (b.major, b.minor))
            .collect::<Vec<_>>(),
        [(1, 3); 3]
    );
    // The segments end page-aligned after rounding (0x232668 + 0x10cb8), so the 1.3 extra
    // page does not apply: every block replays to the real ENCLAVEHASH.
    for blk in &e.blocks {
        let (d, stats, _) = e.measure_block(&mut c, blk, std::io::sink()).unwrap();
        assert_eq!(d.to_string(), MRENCLAVE);
        assert_eq!(d, blk.sigstruct.enclavehash());
        assert_eq!((stats.pages_added, stats.pages_extended), (1004, 748));
    }
}

/// Record bytes (SDM §39.4.1.1) for one measured zero page at `offset` with SECINFO `flags`.
fn zero_page_records(offset: u64, flags: u64) -> Vec<u8> {
    let mut v = Vec::new();
    let mut eadd = [0u8; 64];
    eadd[..8].copy_from_slice(b"EADD\0\0\0\0");
    eadd[8..16].copy_from_slice(&offset.to_le_bytes());
    eadd[16..24].copy_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&eadd);
    for chunk in 0..16u64 {
        let mut ext = [0u8; 64];
        ext[..8].copy_from_slice(b"EEXTEND\0");
        ext[8..16].copy_from_slice(&(offset + chunk * 256).to_le_bytes());
        v.extend_from_slice(&ext);
        v.extend_from_slice(&[0u8; 256]);
    }
    v
}

/// Byte position of the first EADD record whose offset is at least `at`.
fn eadd_position(stream: &[u8], at: u64) -> usize {
    let mut pos = 64; // ECREATE
    while pos < stream.len() {
        let tag = &stream[pos..pos + 8];
        let off = u64::from_le_bytes(stream[pos + 8..pos + 16].try_into().unwrap());
        if tag == b"EADD\0\0\0\0" && off >= at {
            return pos;
        }
        pos += if tag == b"EEXTEND\0" { 64 + 256 } else { 64 };
    }
    panic!("no EADD at or above {at:#x}");
}

#[test]
fn metadata_13_adds_the_sgx15_loader_page() {
    let Some(orig) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    // Shrink the RW PT_LOAD's p_memsz (p_memsz at +40 of its program header) from 0x10cb8 to
    // 0x10100: it starts at 0x232668, so ROUND_TO_PAGE(vaddr + memsz) = 0x243000 is below
    // ROUND_TO_PAGE(ROUND_TO_PAGE(memsz) + vaddr) = 0x244000 and the SGX 1.5 loader adds one
    // zero RW page at 0x243000 after the highest segment.
    let phoff = u64::from_le_bytes(orig[0x20..0x28].try_into().unwrap()) as usize;
    let rw = (0..8)
        .map(|i| phoff + 56 * i)
        .find(|&p| orig[p] == 1 && orig[p + 4] == 6)
        .expect("the RW PT_LOAD");
    let memsz_at = rw + 40;
    assert_eq!(
        u64::from_le_bytes(orig[memsz_at..memsz_at + 8].try_into().unwrap()),
        0x10cb8
    );
    let mut v14 = orig.clone();
    v14[memsz_at..memsz_at + 8].copy_from_slice(&0x10100u64.to_le_bytes());
    let v13 = as_13(&v14);
    let (d14, pages14, s14) = sgxs(&v14);
    let (d13, pages13, s13) = sgxs(&v13);
    assert_eq!(pages13, pages14 + 1);
    assert_ne!(d13, d14);
    let k = eadd_position(&s14, 0x243000);
    let mut want = s14[..k].to_vec();
    want.extend_from_slice(&zero_page_records(0x243000, 0x203));
    want.extend_from_slice(&s14[k..]);
    assert!(
        s13 == want,
        "1.3 stream is the 1.4 stream plus the extra page"
    );
    assert_eq!(
        d13,
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &want))
    );
}

/// The MRENCLAVE issue 12 names for the metadata-1.3 Launch Enclave `libsgx_le.signed.so`.
const LE_13_MRENCLAVE: &str = "8050122c5f999a28624b23ddd85b0483caedae3f38a29d192758798e6785d090";

#[test]
fn le_prod_css_is_the_2x_le_not_the_13_one() {
    // `le_prod_css.bin` (linux-sgx psw/ae/data/prebuilt, DATE 2024-08-11) is the SIGSTRUCT of
    // the current 2.x Launch Enclave. Its ENCLAVEHASH is that LE's MRENCLAVE, not the 1.3 LE's
    // 8050122c…: that value cannot be checked against anything in the shared test data (no 1.3
    // `.signed.so` there, and the web is not reachable). If a future copy of the file carried
    // 8050122c…, this test says so and must then become a real check of a 1.3 enclave.
    let Some(css) = testdata::read("enclaves/intel-linux-sgx-le-prod-css/le_prod_css.bin") else {
        return;
    };
    let s = enclave::sigstruct::Sigstruct::parse(&css).unwrap();
    let hash = s.enclavehash().to_string();
    assert_ne!(
        hash, LE_13_MRENCLAVE,
        "le_prod_css.bin now carries the 1.3 LE's MRENCLAVE"
    );
    assert_eq!(
        hash,
        "7881af9f9def547da9908c008f29cde9bd78064e36ac7e14c83c294ca4806150"
    );
    assert_eq!(s.date, 0x2024_0811);
}
