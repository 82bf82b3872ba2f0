//! Measures and signs Intel SGX enclaves: MRENCLAVE, SIGSTRUCT and MRSIGNER.
//!
//! One job: turn enclave images into the identities SGX attestation reports — MRENCLAVE (the
//! SHA-256 over the ECREATE/EADD/EEXTEND record stream) and MRSIGNER (the SHA-256 of the signer's
//! little-endian RSA modulus) — and build, sign and verify the SIGSTRUCT that binds them.
//!
//! * [`measure`]: the streaming MRENCLAVE engine, which can also emit the SGXS stream it hashes.
//! * [`sgxs`]: the Fortanix SGXS format (reader that measures and validates it).
//! * [`sdk`]: Intel SGX SDK enclaves (`*.so`): ELF64 reader, the `.note.sgxmeta` metadata chain,
//!   and the replay of the SDK loader's layout (segments, TCS, SSA, stacks, heap, guard pages,
//!   patches) into the measurement.
//! * [`sdk_gen`]: the metadata `sgx_sign` generates for an *unsigned* SDK enclave from its
//!   `Enclave.config.xml` values (layout table, TCS and `g_global_data` templates, patches, the
//!   2.4/2.1/1.4 blocks), for the SDK generation whose `global_data_t` is known.
//! * [`sigstruct`]: the 1808-byte SIGSTRUCT codec (strict parse, encode twin), signing with any
//!   [`sigstruct::SigstructSigner`] (a key file now, an HSM later), verification and q1/q2.
//! * [`key`]: RSA-3072 / e = 3 keys from PEM (PKCS#1 or PKCS#8 private, PKCS#1 or SPKI public;
//!   PEM framing by the `pem` crate).
//! * [`config`]: `Enclave.config.xml` (roxmltree, checked as `sgx_sign` checks it) and the JSON
//!   signing config (serde) → [`sigstruct::SigningFields`] / [`sdk_gen::SdkConfig`].
//! * [`inspect`]: input-kind detection, the measurement of any input kind ([`inspect::measure_sdk`],
//!   `Measurement`) and the serialisable `measure`/`dump` report model.
//! * [`sign`]: the `sign`/`gendata`/`catsig` workflow (multi-block preparation, one external
//!   signature for all blocks, writing the output); the default DATE is a parameter.
//!
//! SGX vocabulary comes from `sgx-types` ([`MrEnclave`], [`MrSigner`], `Attributes`, the strict
//! `reader::Reader`). The SIGSTRUCT codec stays in [`sigstruct`] rather than `sgx-types` (DESIGN
//! §2 places it there): its parse/encode twin is inseparable here from signing, q1/q2 and
//! MRSIGNER, which need RSA and SHA-256, and `sgx-types` is crypto-free by its contract; moving
//! only the byte layout would split one 1808-byte structure across two crates and force an
//! extension trait on every caller. It reads through the `sgx-types` strict reader.
//!
//! What it deliberately does not do: read files, the clock or the environment (callers pass
//! `Read`/`Seek` streams, byte slices and dates); guess `global_data_t` layouts of SDK versions
//! it has not been checked against; load or run enclaves.
//!
//! Specifications followed: Intel SDM Vol. 3D §39.4 (SIGSTRUCT, MRENCLAVE records, MRSIGNER);
//! intel/linux-sgx `common/inc/internal/arch.h`, `metadata.h` and `psw/urts/loader.cpp` (the
//! loader replay); Fortanix SGXS (`intel-sgx/sgxs/src/sgxs.rs`); RFC 8017 (PKCS#1 v1.5).
//!
//! Why hand-written: the SGX structures are small, fixed and security-relevant; existing crates
//! either pull a whole SGX SDK, assume OpenSSL, read files themselves, or panic on bad keys.
//! The ELF reader is hand-written because only a few ELF64 fields are needed, must be read
//! from a seekable stream without loading the image, and every error must carry its offset.

pub mod config;
pub mod inspect;
pub mod key;
pub mod measure;
pub mod sdk;
pub mod sdk_gen;
pub mod sgxs;
pub mod sign;
pub mod sigstruct;

pub use sgx_types::{MrEnclave, MrSigner};

/// SHA-256 with the workspace's crypto backend.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
