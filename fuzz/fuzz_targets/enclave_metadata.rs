//! Fuzz target: Intel SGX SDK enclave parsing (`enclave::sdk`).
//!
//! Input starting with `\x7fELF` is read as a whole enclave (ELF64 headers, `.note.sgxmeta`,
//! the metadata chain) and every block small enough is replayed into a measurement (for an
//! unsigned enclave, `sgx_sign`'s metadata is generated first); any other
//! input is parsed as a bare metadata descriptor. Property: no panic, no unbounded work; an
//! error is a typed `SdkError`. Seeds: the `.so` files of `shared/testdata/enclaves`.
#![no_main]

use enclave::sdk::{SdkEnclave, parse_metadata_chain};
use enclave::sdk_gen::{SdkConfig, generate};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

/// Replays only enclaves up to this size, so that one input cannot run for minutes.
const MAX_REPLAY_SIZE: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"\x7fELF") {
        let mut cur = Cursor::new(data);
        let Ok(encl) = SdkEnclave::read(&mut cur) else { return };
        if encl.blocks.is_empty() {
            // Unsigned: generate sgx_sign's metadata with the default configuration.
            if let Ok(g) = generate(&mut cur, &encl, &SdkConfig::default()) {
                if g.block.enclave_size <= MAX_REPLAY_SIZE {
                    let _ = encl.measure_block(&mut cur, &g.block, std::io::sink());
                }
            }
        }
        for b in &encl.blocks {
            let size = b.elrange.map_or(b.enclave_size, |e| e.size);
            if size <= MAX_REPLAY_SIZE {
                let _ = encl.measure_block(&mut cur, b, std::io::sink());
            }
        }
    } else if let Ok(blocks) = parse_metadata_chain(data, 0) {
        for b in &blocks {
            assert!(b.file_offset < data.len() as u64);
        }
    }
});
