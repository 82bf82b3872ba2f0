#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Signing an *unsigned* SDK enclave from its configuration reproduces `sgx_sign`: the
//! generated metadata equals the one in `enclave.signed.so` (outside the SIGSTRUCT) and the
//! MRENCLAVE matches.

use enclave::config::EnclaveConfig;
use enclave::sdk::SdkEnclave;
use enclave::sdk_gen::{GenError, SdkConfig, generate};
use std::io::Cursor;

/// The layout settings of a vector's real `Enclave.config.xml`, read by `enclave::config`.
fn vector_config(dir: &str) -> SdkConfig {
    let xml = testdata::read(&format!("enclaves/{dir}/Enclave.config.xml")).unwrap();
    EnclaveConfig::parse(std::str::from_utf8(&xml).unwrap())
        .unwrap()
        .sdk_config()
        .unwrap()
}

fn enchecap_config() -> SdkConfig {
    // TCSNum 10, TCSPolicy 1, StackMaxSize 0x40000, HeapMaxSize 0x100000; the rest are SDK
    // defaults.
    let c = vector_config("enchecap-sample-enclave");
    assert_eq!(
        c,
        SdkConfig {
            tcs_num: 10,
            tcs_max_num: 10,
            ..SdkConfig::default()
        }
    );
    c
}

#[test]
fn enchecap_unsigned_matches_sgx_sign() {
    let Some(unsigned) = testdata::read("enclaves/enchecap-sample-enclave/enclave.so") else {
        return;
    };
    let signed = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so").unwrap();
    let mut cur = Cursor::new(&unsigned);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let g = generate(&mut cur, &encl, &enchecap_config()).unwrap();
    let m = 0x33bd5usize;
    assert_eq!(g.block_offsets, vec![0, 0x1348, 0x2690]);
    assert_eq!(
        g.bytes.len(),
        0x1348 + 0x1348 + 0x1008,
        "sizes of sgx_sign's 2.4, 2.1 and 1.4 blocks"
    );
    for &o in &g.block_offsets[1..] {
        let len = if o == 0x2690 { 0x1008 } else { 0x1348 };
        assert_eq!(
            &g.bytes[o..o + 64],
            &signed[m + o..m + o + 64],
            "header of block at {o:#x}"
        );
        assert_eq!(
            &g.bytes[o + 1872..o + len],
            &signed[m + o + 1872..m + o + len],
            "block at {o:#x}"
        );
    }
    let want = &signed[m..m + 0x1348];
    assert_eq!(&g.bytes[..64], &want[..64], "metadata header");
    assert_eq!(
        &g.bytes[1872..0x1348],
        &want[1872..],
        "dirs, TCS and g_global_data templates, patches, layout"
    );
    let (d, stats, _) = encl
        .measure_block(&mut cur, &g.block, std::io::sink())
        .unwrap();
    assert_eq!(
        d.to_hex(),
        // = the ENCLAVEHASH sgx_sign wrote into enclave.signed.so (expected.json).
        "d0c4f2da0b8aba01b5f0a588f0aa45c910f2c9d53806777620f188f3ad4a5290"
    );
    assert_eq!((stats.pages_added, stats.pages_extended), (1004, 748));
}

#[test]
fn refuses_signed_and_unsupported() {
    let Some(signed) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    let mut cur = Cursor::new(&signed);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    assert!(matches!(
        generate(&mut cur, &encl, &SdkConfig::default()),
        Err(GenError::AlreadySigned { offset: 0x33bd5 })
    ));
    let unsigned = testdata::read("enclaves/enchecap-sample-enclave/enclave.so").unwrap();
    let mut cur = Cursor::new(&unsigned);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let cfg = SdkConfig {
        stack_min_size: 0x80000,
        ..SdkConfig::default()
    };
    let e = generate(&mut cur, &encl, &cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid enclave configuration: need StackMinSize <= StackMaxSize and HeapMinSize <= HeapInitSize <= HeapMaxSize"
    );
}

#[test]
fn signing_unsigned_reproduces_sgx_sign_file_byte_for_byte() {
    let Some(unsigned) = testdata::read("enclaves/enchecap-sample-enclave/enclave.so") else {
        return;
    };
    let signed = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so").unwrap();
    let pem = String::from_utf8(
        testdata::read("enclaves/enchecap-sample-enclave/Enclave_private_test.pem").unwrap(),
    )
    .unwrap();
    let signer = enclave::key::Key::from_pem(&pem)
        .unwrap()
        .into_signer()
        .unwrap();
    let mut cur = Cursor::new(&unsigned);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let mut g = generate(&mut cur, &encl, &enchecap_config()).unwrap();
    let (d, _, _) = encl
        .measure_block(&mut cur, &g.block, std::io::sink())
        .unwrap();
    let mut s = enclave::sigstruct::Sigstruct::new(d);
    s.date = 0x2021_0312;
    s.sign(&signer).unwrap();
    g.set_sigstruct(&s).unwrap();
    let mut out = Vec::new();
    encl.write_with_metadata(&mut cur, &mut out, &g.bytes)
        .unwrap();
    // The whole file is byte-identical to what sgx_sign wrote.
    assert_eq!(out, signed);
    let back = SdkEnclave::read(&mut Cursor::new(&out)).unwrap();
    assert_eq!(back.blocks.len(), 3);
    for b in &back.blocks {
        b.sigstruct.verify().unwrap();
        let (d2, _, _) = back
            .measure_block(&mut Cursor::new(&out), b, std::io::sink())
            .unwrap();
        assert_eq!(d2, d);
    }
    let e = encl
        .write_with_metadata(&mut cur, &mut Vec::new(), &vec![0u8; 0x6000])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed metadata block at offset 0x33bd5: 24576 bytes of metadata do not fit the 20480-byte descriptor"
    );
}

#[test]
fn swisstronik_2023_sdk_metadata_regenerated() {
    // No unsigned copy of this enclave is published; its signed file has the same ELF, so
    // the metadata is regenerated from it (blocks ignored) with its Enclave.config.xml
    // (TCSNum 1, StackMaxSize 0x40000, HeapMaxSize 0x100000) and compared with sgx_sign's.
    let Some(signed) = testdata::read("enclaves/swisstronik-enclave/enclave.signed.so") else {
        return;
    };
    let mut cur = Cursor::new(&signed);
    let mut encl = SdkEnclave::read(&mut cur).unwrap();
    encl.blocks.clear();
    let cfg = vector_config("swisstronik-enclave");
    assert_eq!(cfg, SdkConfig::default());
    let g = generate(&mut cur, &encl, &cfg).unwrap();
    let m = 0xe0149usize;
    assert_eq!(g.block_offsets, vec![0, 0x1028, 0x2050]);
    for &o in &g.block_offsets {
        assert_eq!(
            &g.bytes[o..o + 64],
            &signed[m + o..m + o + 64],
            "header of block at {o:#x}"
        );
        assert_eq!(
            &g.bytes[o + 1872..o + 0x1028],
            &signed[m + o + 1872..m + o + 0x1028],
            "block at {o:#x}"
        );
    }
    let (d, stats, _) = encl
        .measure_block(&mut cur, &g.block, std::io::sink())
        .unwrap();
    assert_eq!(
        d.to_hex(),
        // = the ENCLAVEHASH sgx_sign wrote into the signed file (expected.json).
        "fb0c0ced20346be2772af710c55d2e1363d7c04fcced26d1dca9bb7ac57b5118"
    );
    assert_eq!((stats.pages_added, stats.pages_extended), (561, 305));
}

#[test]
fn unknown_sdk_layout_is_refused() {
    let Some(unsigned) = testdata::read("enclaves/enchecap-sample-enclave/enclave.so") else {
        return;
    };
    // Change the st_size of g_global_data in .symtab: an SDK generation not known.
    let mut b = unsigned.clone();
    let symtab = 0x652c8usize; // .symtab and .strtab offsets of this file (readelf -S)
    let strtab = 0x6b490usize;
    let name = strtab
        + b[strtab..]
            .windows(15)
            .position(|w| w == b"\0g_global_data\0")
            .unwrap()
        + 1;
    let entry = (0..0x61c8 / 24)
        .map(|i| symtab + 24 * i)
        .find(|&e| u32::from_le_bytes(b[e..e + 4].try_into().unwrap()) as usize == name - strtab)
        .unwrap();
    b[entry + 16..entry + 24].copy_from_slice(&0x700u64.to_le_bytes());
    let mut cur = Cursor::new(&b);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let e = generate(&mut cur, &encl, &SdkConfig::default()).unwrap_err();
    assert!(
        matches!(e, GenError::UnsupportedSdk { size: 0x700 }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "g_global_data is 1792 bytes: this SDK version's global_data_t layout is not supported (supported: 1656 and 1688 bytes, SDKs of 2021 and 2023); sign with that SDK's sgx_sign"
    );
}

/// Issue 12 item 5: every size/offset computed from ELF fields is checked — a value out of
/// range is an error naming the computation, never a debug panic or a wrapped MRENCLAVE.
#[test]
fn elf_values_out_of_range_are_errors() {
    let Some(unsigned) = testdata::read("enclaves/enchecap-sample-enclave/enclave.so") else {
        return;
    };
    let cfg = enchecap_config();
    let mut cur = Cursor::new(&unsigned);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let gen_err = |e: &SdkEnclave, c: &SdkConfig| {
        generate(&mut Cursor::new(&unsigned), e, c)
            .unwrap_err()
            .to_string()
    };
    // The highest PT_LOAD ends past 2^64.
    let mut e = encl.clone();
    e.segments.push(enclave::sdk::LoadSegment {
        offset: 0,
        vaddr: u64::MAX - 0x10,
        filesz: 0,
        memsz: 0x100,
        flags: 6,
    });
    assert_eq!(
        gen_err(&e, &cfg),
        "end of the highest PT_LOAD (p_vaddr + p_memsz) overflows its field (ELF or configuration values out of range)"
    );
    // It ends just below 2^64: the layout placed after it overflows.
    let mut e = encl.clone();
    let last = e.segments.iter_mut().max_by_key(|s| s.vaddr).unwrap();
    last.memsz = 0xffff_ffff_ffff_f000 - last.vaddr;
    assert_eq!(
        gen_err(&e, &cfg),
        "layout RVA overflows its field (ELF or configuration values out of range)"
    );
    // A PT_TLS whose size does not round to pages, and one whose page count exceeds u32.
    let mut e = encl.clone();
    e.tls = Some(enclave::sdk::LoadSegment {
        offset: 0,
        vaddr: 0,
        filesz: 0,
        memsz: u64::MAX,
        flags: 4,
    });
    assert_eq!(
        gen_err(&e, &cfg),
        "PT_TLS p_memsz rounded to pages overflows its field (ELF or configuration values out of range)"
    );
    if let Some(t) = e.tls.as_mut() {
        t.memsz = 1 << 50;
    }
    assert_eq!(
        gen_err(&e, &cfg),
        "PT_TLS pages overflows its field (ELF or configuration values out of range)"
    );
    // So many threads that the final guard's page count no longer fits layout_entry_t.
    let many = SdkConfig {
        tcs_num: 1,
        tcs_max_num: u32::MAX,
        ..cfg.clone()
    };
    assert_eq!(
        gen_err(&encl, &many),
        "final guard page count overflows its field (ELF or configuration values out of range)"
    );
    // The reader refuses such a segment in a file before anything is computed from it.
    let phoff = u64::from_le_bytes(unsigned[0x20..0x28].try_into().unwrap()) as usize;
    let rw = (0..8)
        .map(|i| phoff + 56 * i)
        .find(|&p| unsigned[p] == 1 && unsigned[p + 4] == 6)
        .unwrap();
    let mut b = unsigned.clone();
    b[rw + 16..rw + 24].copy_from_slice(&(u64::MAX - 0x1000).to_le_bytes());
    b[rw + 24..rw + 32].copy_from_slice(&(u64::MAX - 0x1000).to_le_bytes());
    let err = SdkEnclave::read(&mut Cursor::new(&b)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed ELF at offset 0x32668: p_vaddr + p_memsz overflows the address space"
    );
}
