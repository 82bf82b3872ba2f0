//! Every real quote in the shared test data parses, and re-encodes byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use sgx_types::{ParseError, Quote};

/// (path, version, certification data type, mrenclave)
const SGX_QUOTES: &[(&str, u16, u16, &str)] = &[
    (
        "dcap/dcap-qvl-sgx/sgx_quote",
        3,
        5,
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
    ),
    (
        "dcap/automata-dcap-attestation/icelake-00606A000000/derived_quotev3.bin",
        3,
        5,
        "a4f45c39dac622cb1dd32ddb35a52ec92db41d0fa88a1c911c49e59c534f61cd",
    ),
    (
        "dcap/automata-dcap-attestation/icelake-00606A000000/derived_sample_quote0_sgx.bin",
        3,
        5,
        "3e7830a35057b9938d0fd849d13e3d82dc4abba812f8ffebbbb3d0e5ff1dd661",
    ),
    (
        "dcap/automata-dcap-attestation/processor-00A067110000/quote_sgx.bin",
        3,
        5,
        "a39d532e6ac9fe8ad9418851bbe26e1dee7408006505fce8580b511b97e704b4",
    ),
    (
        "dcap/mobilecoin-attestation/hw_quote.dat",
        3,
        5,
        "840d61b0585dc8b4dc90f53af293c760fda06bee75978a6a86263ffb296423f4",
    ),
    (
        "dcap/oasis-core/quote_v3_ecdsa_p256_pck_chain.bin",
        3,
        5,
        "68823bc62f409ee33a32ea270cfe45d4b19a6fb3c8570d7bc186cbe062398e8f",
    ),
    (
        "dcap/oasis-core/quote_v3_ecdsa_p256_eppid.bin",
        3,
        3,
        "9479d8eddfd7b1b700319419551dc340f688c2ef519a5e18657ecf32981dbd9e",
    ),
    (
        "dcap/intel-qvl-synthetic/quote.dat",
        3,
        1,
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),
];

#[test]
fn real_sgx_quotes_round_trip() {
    for (path, version, cert_type, mrenclave) in SGX_QUOTES {
        let Some(bytes) = testdata::read(path) else {
            return;
        };
        let q = Quote::parse(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(q.header.version, *version, "{path}");
        assert_eq!(q.signature.certification_data.kind, *cert_type, "{path}");
        assert_eq!(q.report.mr_enclave.to_hex(), *mrenclave, "{path}");
        assert_eq!(q.header.qe_vendor_id, sgx_types::quote::INTEL_QE_VENDOR_ID);
        assert_eq!(q.to_bytes(), bytes, "{path}: re-encoding differs");
    }
}

#[test]
fn eppid_quote_platform_info_matches_upstream() {
    let Some(bytes) = testdata::read("dcap/oasis-core/quote_v3_ecdsa_p256_eppid.bin") else {
        return;
    };
    let q = Quote::parse(&bytes).unwrap();
    assert_eq!(q.signature.certification_data.data.len(), 404);
    let info = q
        .signature
        .certification_data
        .ppid_platform_info()
        .unwrap()
        .unwrap();
    assert_eq!(
        hex::encode(info.cpu_svn),
        "05050c0cffff01000000000000000000"
    );
    assert_eq!(info.pce_svn, 12);
    assert_eq!(info.pce_id, Some([0, 0]));
    assert_eq!((q.header.qe_svn, q.header.pce_svn), (7, 12));
}

#[test]
fn every_truncation_of_a_real_quote_is_an_error() {
    let Some(bytes) = testdata::read("dcap/dcap-qvl-sgx/sgx_quote") else {
        return;
    };
    for n in 0..bytes.len() {
        assert!(
            matches!(Quote::parse(&bytes[..n]), Err(ParseError::Truncated { .. })),
            "prefix of {n} bytes"
        );
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 3]);
    assert_eq!(
        Quote::parse(&longer),
        Err(ParseError::TrailingBytes {
            offset: bytes.len(),
            count: 3
        })
    );
}

#[test]
fn tdx_quotes_are_refused_with_a_typed_error() {
    let Some(dir) = testdata::path("dcap/tdx/dcap-qvl") else {
        return;
    };
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("tdx_quote") || name.contains('.') {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let err = Quote::parse(&bytes).unwrap_err();
        match u16::from_le_bytes([bytes[0], bytes[1]]) {
            4 => assert_eq!(err, ParseError::UnsupportedTeeType(0x81), "{name}"),
            v => assert_eq!(err, ParseError::UnsupportedVersion(v), "{name}"),
        }
        seen += 1;
    }
    assert!(seen >= 2, "expected the TDX vectors, saw {seen}");
}
