#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Issue 11 item 7: a `.note.sgxmeta` that is present, not all-zero, and does not parse is an
//! error naming the offset and what `sgx_sign` writes there — never an "unsigned" enclave or a
//! silently shorter chain. Every case flips bits in a copy of a real vector (the shared files
//! are never modified).

use enclave::sdk::{METADATA_MAGIC, SdkEnclave, SdkError};
use std::io::Cursor;

fn read(b: &[u8]) -> Result<SdkEnclave, SdkError> {
    SdkEnclave::read(&mut Cursor::new(b))
}

#[test]
fn every_bit_of_the_enchecap_magic() {
    let Some(orig) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    assert_eq!(read(&orig).unwrap().blocks.len(), 3);
    for byte in 0..8usize {
        for bit in 0..8 {
            let mut b = orig.clone();
            b[0x33bd5 + byte] ^= 1 << bit;
            let e = read(&b).unwrap_err();
            let found = METADATA_MAGIC ^ (1u64 << (8 * byte + bit));
            assert!(
                matches!(
                    &e,
                    SdkError::BadChain {
                        offset: 0x33bd5,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "malformed .note.sgxmeta at offset 0x33bd5: expected the metadata magic \
                     0x86a80294635d0e4c (or an all-zero descriptor: an unsigned enclave), found \
                     {found:#018x}"
                )
            );
        }
    }
}

#[test]
fn later_blocks_and_padding_of_the_enchecap_chain() {
    let Some(orig) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    // The third block's magic (blocks at 0x33bd5, 0x34f1d, 0x36265).
    let mut b = orig.clone();
    b[0x36265] ^= 0x01;
    assert_eq!(
        read(&b).unwrap_err().to_string(),
        "malformed .note.sgxmeta at offset 0x36265: expected the metadata magic \
         0x86a80294635d0e4c of a further block, or zero padding, after the block at 0x34f1d \
         (size 0x1348), found 0x86a80294635d0e4d"
    );
    // A stray byte in the zero padding after the last block (which ends at 0x3726d).
    let mut b = orig.clone();
    b[0x3726d + 0x20] = 0x80;
    assert_eq!(
        read(&b).unwrap_err().to_string(),
        "malformed .note.sgxmeta at offset 0x3726d: expected the metadata magic \
         0x86a80294635d0e4c of a further block, or zero padding, after the block at 0x36265 \
         (size 0x1008), found zero there but the non-zero byte 0x80 at offset 0x3728d"
    );
}

#[test]
fn every_bit_of_the_swisstronik_size_byte() {
    let Some(orig) = testdata::read("enclaves/swisstronik-enclave/enclave.signed.so") else {
        return;
    };
    assert_eq!(read(&orig).unwrap().blocks.len(), 3);
    // 0xe1182 is the second byte of the second block's size (0x1028 at 0xe1181).
    assert_eq!(orig[0xe1182], 0x10);
    let past_data = |size: u32| {
        format!(
            "malformed metadata block at offset 0xe1171: size {size:#x} runs past the end of the \
             block's data (0x1028) over a non-zero byte at offset 0xe2199"
        )
    };
    let past_note = |size: u32| {
        format!(
            "malformed metadata block at offset 0xe1171: size {size:#x} runs past the end of the \
             .note.sgxmeta descriptor (0x3fd8 bytes left)"
        )
    };
    let expected = [
        past_data(0x1128),
        past_data(0x1228),
        past_data(0x1428),
        past_data(0x1828),
        "malformed metadata block at offset 0xe1171: size 0x28 is smaller than the header".into(),
        past_data(0x3028),
        past_note(0x5028),
        past_note(0x9028),
    ];
    for (bit, want) in expected.iter().enumerate() {
        let mut b = orig.clone();
        b[0xe1182] ^= 1 << bit;
        let e = read(&b).unwrap_err();
        assert!(
            matches!(
                &e,
                SdkError::BadMetadata {
                    offset: 0xe1171,
                    ..
                }
            ),
            "bit {bit}: {e:?}"
        );
        assert_eq!(&e.to_string(), want, "bit {bit}");
    }
}

#[test]
fn all_zero_descriptor_is_unsigned() {
    let Some(b) = testdata::read("enclaves/enchecap-sample-enclave/enclave.so") else {
        return;
    };
    assert!(read(&b).unwrap().blocks.is_empty());
}
