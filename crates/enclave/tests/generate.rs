#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Signing an *unsigned* SDK enclave from its configuration reproduces `sgx_sign`: the
//! generated metadata equals the one in `enclave.signed.so` (outside the SIGSTRUCT) and the
//! MRENCLAVE matches.

use enclave::sdk::SdkEnclave;
use enclave::sdk_gen::{GenError, SdkConfig, generate};
use std::io::Cursor;

fn enchecap_config() -> SdkConfig {
    // Enclave.config.xml of the vector: TCSNum 10, TCSPolicy 1, StackMaxSize 0x40000,
    // HeapMaxSize 0x100000; the rest are SDK defaults.
    SdkConfig { tcs_num: 10, tcs_max_num: 10, ..SdkConfig::default() }
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
    let want = &signed[m..m + g.bytes.len()];
    assert_eq!(g.bytes.len(), 0x1348, "block size of sgx_sign's 2.4 block");
    assert_eq!(&g.bytes[..64], &want[..64], "metadata header");
    assert_eq!(&g.bytes[1872..], &want[1872..], "dirs, TCS and g_global_data templates, patches, layout");
    let (d, stats, _) = encl.measure_block(&mut cur, &g.block, std::io::sink()).unwrap();
    assert_eq!(d.to_hex(), "d0c4f2da0b8aba01b5f0a588f0aa45c910f2c9d53806777620f188f3ad4a5290");
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
    let sw = testdata::read("enclaves/swisstronik-enclave/enclave.signed.so").unwrap();
    let mut cur = Cursor::new(&sw);
    let mut encl = SdkEnclave::read(&mut cur).unwrap();
    encl.blocks.clear();
    let e = generate(&mut cur, &encl, &SdkConfig::default()).unwrap_err();
    assert!(matches!(e, GenError::UnsupportedSdk { size: 0x698 }), "{e:?}");
    let unsigned = testdata::read("enclaves/enchecap-sample-enclave/enclave.so").unwrap();
    let mut cur = Cursor::new(&unsigned);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let cfg = SdkConfig { stack_min_size: 0x80000, ..SdkConfig::default() };
    let e = generate(&mut cur, &encl, &cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid enclave configuration: need StackMinSize <= StackMaxSize and HeapMinSize <= HeapInitSize <= HeapMaxSize"
    );
}
