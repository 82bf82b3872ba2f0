#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Key formats: the published PKCS#1 test keys re-wrapped at run time as PKCS#8, SPKI and
//! PKCS#1 public keys all give the same MRSIGNER; the wrong kinds are refused.

use base64::Engine as _;
use enclave::key::{Key, KeyError};

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

const RSA_ALG: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn pkcs1_der(pem_text: &str) -> Vec<u8> {
    let body: String = pem_text
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(' '))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn rsa_public_der(modulus_be: &[u8], e: &[u8]) -> Vec<u8> {
    let mut n = vec![0u8];
    n.extend_from_slice(modulus_be);
    let mut seq = der(0x02, &n);
    seq.extend(der(0x02, e));
    der(0x30, &seq)
}

#[test]
fn all_formats_same_mrsigner() {
    let Some(raw) = testdata::read("enclaves/enarx-sgx-encl/encl.pem") else {
        return;
    };
    let text = String::from_utf8(raw).unwrap();
    let key = Key::from_pem(&text).unwrap();
    let want = "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4";
    assert_eq!(key.public().mrsigner().to_hex(), want);

    let p1 = pkcs1_der(&text);
    let mut p8 = der(0x02, &[0]);
    p8.extend_from_slice(&RSA_ALG);
    p8.extend(der(0x04, &p1));
    let p8 = der(0x30, &p8);
    let k8 = Key::from_pem(&pem("PRIVATE KEY", &p8)).unwrap();
    assert_eq!(k8.public().mrsigner().to_hex(), want);
    assert!(matches!(k8, Key::Private(_)));

    let rpk = rsa_public_der(key.public().modulus_be(), &[3]);
    let kp = Key::from_pem(&pem("RSA PUBLIC KEY", &rpk)).unwrap();
    assert_eq!(kp.public().mrsigner().to_hex(), want);
    assert!(matches!(kp.into_signer(), Err(KeyError::NotPrivate)));

    let mut bits = vec![0u8];
    bits.extend_from_slice(&rpk);
    let mut spki = RSA_ALG.to_vec();
    spki.extend(der(0x03, &bits));
    let spki = der(0x30, &spki);
    let ks = Key::from_pem(&pem("PUBLIC KEY", &spki)).unwrap();
    assert_eq!(ks.public().mrsigner().to_hex(), want);

    // Wrong exponent and a non-RSA algorithm.
    let e65537 = rsa_public_der(key.public().modulus_be(), &[1, 0, 1]);
    assert!(matches!(
        Key::from_pem(&pem("RSA PUBLIC KEY", &e65537)),
        Err(KeyError::WrongExponent { exponent }) if exponent == "65537"
    ));
    let mut ec = spki.clone();
    let oid_pos = ec.windows(3).position(|w| w == [0x2a, 0x86, 0x48]).unwrap();
    ec[oid_pos + 8] = 0x02; // 1.2.840.113549.1.1.2: not rsaEncryption
    assert!(matches!(
        Key::from_pem(&pem("PUBLIC KEY", &ec)),
        Err(KeyError::NotRsa)
    ));
}
