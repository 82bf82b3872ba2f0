#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Every vector in `testdata/enclaves` reproduces its expected MRENCLAVE, MRSIGNER and fields,
//! and re-signing with the published keys reproduces each SIGSTRUCT byte for byte.

use enclave::key::Key;
use enclave::measure::{Measurer, PAGE_SIZE, secinfo};
use enclave::sdk::{SdkEnclave, SdkError};
use enclave::sgxs::measure_sgxs;
use enclave::sigstruct::{Sigstruct, SigstructSigner};
use std::io::Cursor;

fn expected() -> Option<serde_json::Value> {
    let b = testdata::read("enclaves/expected.json")?;
    Some(serde_json::from_slice(&b).unwrap())
}

fn hexu(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn key(rel: &str) -> Key {
    let pem = String::from_utf8(testdata::read(rel).unwrap()).unwrap();
    Key::from_pem(&pem).unwrap()
}

/// Asserts every SIGSTRUCT field listed in expected.json.
fn check_fields(s: &Sigstruct, e: &serde_json::Value) {
    assert_eq!(
        s.enclavehash().to_hex(),
        e["mrenclave"]
            .as_str()
            .or(e["enclavehash"].as_str())
            .unwrap()
    );
    assert_eq!(s.mrsigner().to_hex(), e["mrsigner"].as_str().unwrap());
    assert_eq!(u64::from(s.isvprodid), e["isv_prod_id"].as_u64().unwrap());
    assert_eq!(u64::from(s.isvsvn), e["isv_svn"].as_u64().unwrap());
    assert_eq!(u64::from(s.date), hexu(&e["date"]));
    assert_eq!(u64::from(s.vendor), hexu(&e["vendor"]));
    assert_eq!(u64::from(s.header_type), hexu(&e["type"]));
    assert_eq!(u64::from(s.swdefined), hexu(&e["swdefined"]));
    assert_eq!(u64::from(s.miscselect), hexu(&e["miscselect"]));
    assert_eq!(u64::from(s.miscmask), hexu(&e["miscmask"]));
    assert_eq!(s.attributes.flags, hexu(&e["attributes"]["flags"]));
    assert_eq!(s.attributes.xfrm, hexu(&e["attributes"]["xfrm"]));
    assert_eq!(s.attributemask.flags, hexu(&e["attributemask"]["flags"]));
    assert_eq!(s.attributemask.xfrm, hexu(&e["attributemask"]["xfrm"]));
    assert_eq!(s.verify().is_ok(), e["signature_valid"].as_bool().unwrap());
}

/// Zeroes the key material and re-signs: must give the same bytes.
fn resign_matches(orig: &[u8], signer: &dyn SigstructSigner) {
    let mut s = Sigstruct::parse(orig).unwrap();
    s.modulus = [0; 384];
    s.signature = [0; 384];
    s.q1 = [0; 384];
    s.q2 = [0; 384];
    s.exponent = 0;
    s.sign(signer).unwrap();
    assert_eq!(s.encode().to_vec(), orig.to_vec());
}

#[test]
fn standalone_sigstructs() {
    let Some(exp) = expected() else { return };
    for rel in [
        "enarx-sgx-encl/encl.ss",
        "oasis-fortanix-sig1-sigstruct/sig1.sigstruct.bin",
        "intel-linux-sgx-le-prod-css/le_prod_css.bin",
    ] {
        let e = &exp["files"][rel];
        let bytes = testdata::read(&format!("enclaves/{rel}")).unwrap();
        let s = Sigstruct::parse(&bytes).unwrap();
        check_fields(&s, e);
        assert_eq!(
            s.encode().to_vec(),
            bytes,
            "{rel}: encode is the inverse of parse"
        );
        assert_eq!(
            hex::encode(enclave::measure::raw_sha256(&s.signed_data())),
            e["signed_bytes_sha256"].as_str().unwrap(),
            "{rel}"
        );
        if let Some(k) = e["signed_by"].as_str().filter(|k| k.ends_with(".pem")) {
            let key = key(&format!("enclaves/{k}"));
            assert_eq!(key.public().mrsigner(), s.mrsigner());
            let signer = key.into_signer().unwrap();
            resign_matches(&bytes, &signer);
        }
    }
}

#[test]
fn key_mrsigners() {
    let Some(exp) = expected() else { return };
    for rel in [
        "enarx-sgx-encl/encl.pem",
        "oasis-fortanix-sig1-sigstruct/sig1.key.pem",
        "enchecap-sample-enclave/Enclave_private_test.pem",
    ] {
        let k = key(&format!("enclaves/{rel}"));
        assert_eq!(
            k.public().mrsigner().to_hex(),
            exp["files"][rel]["mrsigner"].as_str().unwrap()
        );
    }
}

#[test]
fn detached_signature_roundtrip() {
    // HSM flow: gendata (256 bytes) -> external big-endian signature -> catsig.
    let Some(bytes) = testdata::read("enclaves/oasis-fortanix-sig1-sigstruct/sig1.sigstruct.bin")
    else {
        return;
    };
    let signer = key("enclaves/oasis-fortanix-sig1-sigstruct/sig1.key.pem")
        .into_signer()
        .unwrap();
    let orig = Sigstruct::parse(&bytes).unwrap();
    let data = orig.signed_data();
    let sig = signer.sign_pkcs1_sha256(&data).unwrap();
    let mut s = Sigstruct::from_signed_data(&data).unwrap();
    s.attach_signature(signer.public_key(), &sig).unwrap();
    assert_eq!(s.encode().to_vec(), bytes);
    // A signature over other data, or little-endian, is refused.
    let mut rev = sig;
    rev.reverse();
    let mut s2 = Sigstruct::from_signed_data(&data).unwrap();
    assert!(matches!(
        s2.attach_signature(signer.public_key(), &rev),
        Err(enclave::sigstruct::SignError::SignatureInvalid)
    ));
    assert!(matches!(
        s2.attach_signature(signer.public_key(), &sig[..100]),
        Err(enclave::sigstruct::SignError::WrongSignatureLength { len: 100 })
    ));
}

#[test]
fn tampered_sigstruct_fails_verification() {
    let Some(bytes) = testdata::read("enclaves/enarx-sgx-encl/encl.ss") else {
        return;
    };
    let mut b = bytes.clone();
    b[1024] ^= 1; // ISVPRODID
    assert!(matches!(
        Sigstruct::parse(&b).unwrap().verify(),
        Err(enclave::sigstruct::VerifyError::SignatureInvalid)
    ));
    let mut b = bytes.clone();
    b[1040] ^= 1; // Q1
    assert!(matches!(
        Sigstruct::parse(&b).unwrap().verify(),
        Err(enclave::sigstruct::VerifyError::Q1Q2Invalid)
    ));
    let mut b = bytes;
    b[512] = 5; // EXPONENT
    assert!(matches!(
        Sigstruct::parse(&b).unwrap().verify(),
        Err(enclave::sigstruct::VerifyError::Exponent { value: 5 })
    ));
}

#[test]
fn raw_image_and_sgxs() {
    let Some(exp) = expected() else { return };
    let img = testdata::read("enclaves/enarx-sgx-encl/encl.bin").unwrap();
    let sgxs = testdata::read("enclaves/enarx-sgx-encl/encl.sgxs").unwrap();
    let size = (img.len() as u64).next_power_of_two();
    let mut m = Measurer::with_sink(1, size, Vec::new()).unwrap();
    for (i, p) in img.chunks_exact(PAGE_SIZE).enumerate() {
        let flags = if i == 0 {
            secinfo::TCS
        } else {
            secinfo::REG | 7
        };
        m.add_page(
            (i * PAGE_SIZE) as u64,
            flags,
            Some(p.try_into().unwrap()),
            true,
        )
        .unwrap();
    }
    let (d, stats, written) = m.finish().unwrap();
    let want = exp["files"]["enarx-sgx-encl/encl.bin"]["mrenclave"]
        .as_str()
        .unwrap();
    assert_eq!(d.to_hex(), want);
    assert_eq!(stats.pages_added, 6);
    assert_eq!(
        written, sgxs,
        "the writer reproduces encl.sgxs byte for byte"
    );
    let sum = measure_sgxs(&sgxs[..]).unwrap();
    assert_eq!(
        sum.mrenclave.to_hex(),
        exp["files"]["enarx-sgx-encl/encl.sgxs"]["mrenclave"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        (
            sum.size,
            sum.ssa_frame_size,
            sum.pages_added,
            sum.chunks_extended
        ),
        (0x8000, 1, 6, 96)
    );
}

fn check_sdk(rel: &str) {
    let Some(exp) = expected() else { return };
    let e = &exp["files"][rel];
    let bytes = testdata::read(&format!("enclaves/{rel}")).unwrap();
    let mut cur = Cursor::new(&bytes);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let n = &e["note_sgxmeta"];
    assert_eq!(encl.note.sh_offset, hexu(&n["sh_offset"]));
    assert_eq!(encl.note.sh_size, hexu(&n["sh_size"]));
    assert_eq!(encl.note.descsz as u64, hexu(&n["descsz"]));
    assert_eq!(encl.note.metadata_offset, hexu(&n["metadata_offset"]));
    let metas = e["metadata"].as_array().unwrap();
    assert_eq!(encl.blocks.len(), metas.len());
    let signer = key("enclaves/enchecap-sample-enclave/Enclave_private_test.pem")
        .into_signer()
        .unwrap();
    for (b, m) in encl.blocks.iter().zip(metas) {
        assert_eq!(
            format!("{}.{}", b.major, b.minor),
            m["version"].as_str().unwrap()
        );
        assert_eq!(b.file_offset, hexu(&m["file_offset"]));
        assert_eq!(b.enclave_size, hexu(&m["enclave_size"]));
        assert_eq!(
            u64::from(b.ssa_frame_size),
            m["ssa_frame_size"].as_u64().unwrap()
        );
        check_fields(&b.sigstruct, m);
        let (d, stats, _) = encl.measure_block(&mut cur, b, std::io::sink()).unwrap();
        assert_eq!(
            d.to_hex(),
            m["enclavehash"].as_str().unwrap(),
            "block {}.{}",
            b.major,
            b.minor
        );
        assert_eq!(stats.pages_added, m["pages_eadded"].as_u64().unwrap());
        assert_eq!(stats.pages_extended, m["pages_eextended"].as_u64().unwrap());
        let off = b.sigstruct_offset() as usize;
        resign_matches(&bytes[off..off + 1808], &signer);
    }
    let (d, _) = encl.measure(&mut cur).unwrap();
    assert_eq!(d.to_hex(), e["mrenclave"].as_str().unwrap());
}

#[test]
fn enchecap_signed_so() {
    check_sdk("enchecap-sample-enclave/enclave.signed.so");
}

#[test]
fn swisstronik_signed_so() {
    check_sdk("swisstronik-enclave/enclave.signed.so");
}

#[test]
fn sdk_sgxs_stream_matches() {
    // The SGXS stream written during the replay hashes to the same MRENCLAVE.
    let Some(bytes) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    let mut cur = Cursor::new(&bytes);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let (d, _, sgxs) = encl
        .measure_block(&mut cur, encl.primary().unwrap(), Vec::new())
        .unwrap();
    let sum = measure_sgxs(&sgxs[..]).unwrap();
    assert_eq!(sum.mrenclave, d);
    assert_eq!(sum.pages_added, 1004);
}

#[test]
fn unsigned_so_is_reported() {
    let Some(bytes) = testdata::read("enclaves/enchecap-sample-enclave/enclave.so") else {
        return;
    };
    let mut cur = Cursor::new(&bytes);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    assert!(encl.blocks.is_empty());
    let e = encl.measure(&mut cur).unwrap_err();
    assert!(matches!(e, SdkError::Unsigned { offset: 0x33bd5 }));
    assert_eq!(
        e.to_string(),
        "no SGX metadata at offset 0x33bd5: the enclave is unsigned; sign it with Intel sgx_sign (signing from Enclave.config.xml is not supported)"
    );
}

#[test]
fn measure_sdk_needs_a_config_for_an_unsigned_so() {
    let Some(bytes) = testdata::read("enclaves/enchecap-sample-enclave/enclave.so") else {
        return;
    };
    let mut cur = Cursor::new(&bytes);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let e = enclave::inspect::measure_sdk(&mut cur, &encl, None, std::io::sink()).unwrap_err();
    assert!(matches!(
        e,
        enclave::inspect::MeasureSdkError::Replay(SdkError::Unsigned { offset: 0x33bd5 })
    ));
    assert_eq!(e.to_string(), "replaying the SDK loader");
}

#[test]
fn resign_sdk_so_reproduces_file() {
    let Some(bytes) = testdata::read("enclaves/enchecap-sample-enclave/enclave.signed.so") else {
        return;
    };
    let signer = key("enclaves/enchecap-sample-enclave/Enclave_private_test.pem")
        .into_signer()
        .unwrap();
    let mut cur = Cursor::new(&bytes);
    let encl = SdkEnclave::read(&mut cur).unwrap();
    let mut sigs = Vec::new();
    for b in &encl.blocks {
        let (d, _, _) = encl.measure_block(&mut cur, b, std::io::sink()).unwrap();
        let mut s = b.sigstruct.clone();
        s.enclavehash = d.0;
        s.sign(&signer).unwrap();
        sigs.push(s);
    }
    let mut out = Vec::new();
    encl.write_with_sigstructs(&mut cur, &mut out, &sigs)
        .unwrap();
    assert_eq!(
        out, bytes,
        "re-signing with the same key reproduces the file"
    );

    // New ISVSVN: only the SIGSTRUCTs change, and they verify.
    let f = enclave::sigstruct::SigningFields {
        isvsvn: Some(3),
        ..Default::default()
    };
    for s in &mut sigs {
        f.apply(s);
        s.sign(&signer).unwrap();
    }
    let mut out2 = Vec::new();
    encl.write_with_sigstructs(&mut cur, &mut out2, &sigs)
        .unwrap();
    assert_eq!(out2.len(), bytes.len());
    let encl2 = SdkEnclave::read(&mut Cursor::new(&out2)).unwrap();
    for b in &encl2.blocks {
        assert_eq!(b.sigstruct.isvsvn, 3);
        b.sigstruct.verify().unwrap();
    }
    let diff: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != out2[i]).collect();
    assert!(diff.iter().all(|&i| encl.blocks.iter().any(|b| {
        let o = b.sigstruct_offset() as usize;
        (o..o + 1808).contains(&i)
    })));
    assert!(matches!(
        encl.write_with_sigstructs(&mut cur, &mut Vec::new(), &sigs[..1]),
        Err(SdkError::BadMetadata { .. })
    ));
}
