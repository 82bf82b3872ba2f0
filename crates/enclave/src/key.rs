//! RSA keys for enclave signing: PEM/DER decoding, the SGX key rules (3072 bits, e = 3), the
//! key-file signer, and the PKCS#1 v1.5 arithmetic SIGSTRUCT needs (verification, q1/q2).
//!
//! Private-key signing uses aws-lc-rs (ring refuses e = 3). Verification and q1/q2 are plain
//! big-integer arithmetic on public values (num-bigint), so a SIGSTRUCT can be checked without
//! any key object.

use crate::sigstruct::{SignError, SigstructSigner};
use crate::{Mrsigner, sha256};
use num_bigint::BigUint;

/// Bytes in an SGX RSA modulus, signature, q1 and q2.
pub const KEY_BYTES: usize = 384;
/// The only public exponent SGX accepts.
pub const SGX_EXPONENT: u32 = 3;

/// DER prefix of `DigestInfo` for SHA-256 (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
/// OID 1.2.840.113549.1.1.1 (rsaEncryption), DER content bytes.
const RSA_ENCRYPTION_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No `-----BEGIN ...-----` block.
    #[error(
        "no PEM block found (expected -----BEGIN RSA PRIVATE KEY-----, PRIVATE KEY, RSA PUBLIC KEY or PUBLIC KEY)"
    )]
    NoPem,
    /// A PEM block of a kind we do not read.
    #[error(
        "unsupported PEM block \"{label}\": use an unencrypted RSA key (PKCS#1 or PKCS#8, or a public key)"
    )]
    UnsupportedPem {
        /// The PEM label.
        label: String,
    },
    /// A PEM block without its END line.
    #[error("PEM block \"{label}\" has no END line")]
    UnterminatedPem {
        /// The PEM label.
        label: String,
    },
    /// Encrypted PEM (`Proc-Type: 4,ENCRYPTED`).
    #[error("the PEM key is encrypted: decrypt it first (openssl rsa -in KEY -out PLAIN)")]
    Encrypted,
    /// A PEM block the `pem` crate refuses (bad base64, mismatched tags, bad headers).
    #[error("malformed PEM")]
    Pem(#[source] pem::PemError),
    /// The DER structure is not an RSA key.
    #[error("malformed DER in the key at byte {offset}: {what}")]
    Der {
        /// Byte offset inside the DER.
        offset: usize,
        /// What was expected.
        what: &'static str,
    },
    /// The key algorithm is not RSA.
    #[error("the key is not an RSA key (SGX needs RSA-3072 with e = 3)")]
    NotRsa,
    /// SGX requires exactly 3072 bits.
    #[error(
        "RSA key has {bits} bits; SGX requires exactly 3072 (generate one with: openssl genrsa -3 -out key.pem 3072)"
    )]
    WrongKeySize {
        /// The modulus size in bits.
        bits: u64,
    },
    /// SGX requires e = 3.
    #[error(
        "RSA public exponent is {exponent}; SGX requires 3 (generate one with: openssl genrsa -3 -out key.pem 3072)"
    )]
    WrongExponent {
        /// The exponent, decimal.
        exponent: String,
    },
    /// A public key was given where signing needs the private key.
    #[error(
        "this is a public key; signing needs the private key (or use gendata/catsig for an HSM)"
    )]
    NotPrivate,
    /// The crypto backend rejected the private key.
    #[error("the crypto backend rejected the private key: {0}")]
    Rejected(String),
}

/// An RSA public key checked against the SGX rules.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    n: BigUint,
    modulus_be: [u8; KEY_BYTES],
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPublicKey(mrsigner={})", self.mrsigner())
    }
}

impl RsaPublicKey {
    /// Builds a key from big-endian modulus and exponent bytes, enforcing 3072 bits and e = 3.
    pub fn from_be(modulus: &[u8], exponent: &[u8]) -> Result<Self, KeyError> {
        let n = BigUint::from_bytes_be(modulus);
        let e = BigUint::from_bytes_be(exponent);
        if n.bits() != 3072 {
            return Err(KeyError::WrongKeySize { bits: n.bits() });
        }
        if e != BigUint::from(SGX_EXPONENT) {
            return Err(KeyError::WrongExponent {
                exponent: e.to_string(),
            });
        }
        let mut modulus_be = [0u8; KEY_BYTES];
        let bytes = n.to_bytes_be();
        modulus_be.copy_from_slice(&bytes);
        Ok(Self { n, modulus_be })
    }

    /// Builds a key from the little-endian modulus as stored in SIGSTRUCT (e = 3 implied).
    pub fn from_le_modulus(modulus_le: &[u8; KEY_BYTES]) -> Result<Self, KeyError> {
        let mut be = *modulus_le;
        be.reverse();
        Self::from_be(&be, &[3])
    }

    /// The modulus, big-endian.
    pub fn modulus_be(&self) -> &[u8; KEY_BYTES] {
        &self.modulus_be
    }

    /// The modulus, little-endian, as SIGSTRUCT stores it.
    pub fn modulus_le(&self) -> [u8; KEY_BYTES] {
        let mut le = self.modulus_be;
        le.reverse();
        le
    }

    /// MRSIGNER = SHA-256 of the little-endian modulus.
    pub fn mrsigner(&self) -> Mrsigner {
        crate::Digest32(sha256(&self.modulus_le()))
    }

    /// Verifies an RSASSA-PKCS1-v1_5 SHA-256 signature (big-endian) over `msg`.
    pub fn verify_pkcs1_sha256(&self, msg: &[u8], signature_be: &[u8]) -> bool {
        if signature_be.len() != KEY_BYTES {
            return false;
        }
        let s = BigUint::from_bytes_be(signature_be);
        if s >= self.n {
            return false;
        }
        let m = s.modpow(&BigUint::from(SGX_EXPONENT), &self.n);
        let Some(em) = to_fixed_be(&m) else {
            return false;
        };
        em == emsa_pkcs1_sha256(msg)
    }

    /// q1 and q2 (little-endian, 384 bytes each) for a big-endian signature, as EINIT expects:
    /// `q1 = ⌊s²/n⌋`, `q2 = ⌊s·(s² mod n)/n⌋`.
    pub fn q1_q2(&self, signature_be: &[u8]) -> ([u8; KEY_BYTES], [u8; KEY_BYTES]) {
        let s = BigUint::from_bytes_be(signature_be);
        let s2 = &s * &s;
        let q1 = &s2 / &self.n;
        let q2 = (&s * (&s2 % &self.n)) / &self.n;
        (to_fixed_le(&q1), to_fixed_le(&q2))
    }
}

/// The PKCS#1 v1.5 encoded message for SHA-256 over a 3072-bit modulus.
fn emsa_pkcs1_sha256(msg: &[u8]) -> [u8; KEY_BYTES] {
    let mut em = [0xffu8; KEY_BYTES];
    const T_LEN: usize = 19 + 32;
    em[0] = 0;
    em[1] = 1;
    em[KEY_BYTES - T_LEN - 1] = 0;
    em[KEY_BYTES - T_LEN..KEY_BYTES - 32].copy_from_slice(&SHA256_DIGEST_INFO);
    em[KEY_BYTES - 32..].copy_from_slice(&sha256(msg));
    em
}

fn to_fixed_be(x: &BigUint) -> Option<[u8; KEY_BYTES]> {
    let b = x.to_bytes_be();
    let mut out = [0u8; KEY_BYTES];
    let start = KEY_BYTES.checked_sub(b.len())?;
    out.get_mut(start..)?.copy_from_slice(&b);
    Some(out)
}

/// Little-endian, truncated to 384 bytes (callers only pass values below 2^3072).
fn to_fixed_le(x: &BigUint) -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    for (o, b) in out.iter_mut().zip(x.to_bytes_le()) {
        *o = b;
    }
    out
}

/// A decoded key: public part always, private DER when present.
#[derive(Debug)]
pub enum Key {
    /// A private key (PKCS#1 `RSAPrivateKey` DER kept for the signer).
    Private(KeyFileSigner),
    /// A public key only.
    Public(RsaPublicKey),
}

impl Key {
    /// Decodes a PEM file's contents (PKCS#1/PKCS#8 private, PKCS#1/SPKI public) and checks
    /// the SGX rules.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_decode(pem)?;
        match label.as_str() {
            "RSA PRIVATE KEY" => KeyFileSigner::from_pkcs1_der(&der).map(Key::Private),
            "PRIVATE KEY" => {
                let inner = pkcs8_inner(&der)?;
                KeyFileSigner::from_pkcs1_der(inner).map(Key::Private)
            }
            "RSA PUBLIC KEY" => rsa_public_from_pkcs1(&der).map(Key::Public),
            "PUBLIC KEY" => rsa_public_from_spki(&der).map(Key::Public),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
            _ => Err(KeyError::UnsupportedPem { label }),
        }
    }

    /// The public key.
    pub fn public(&self) -> &RsaPublicKey {
        match self {
            Key::Private(s) => &s.public,
            Key::Public(p) => p,
        }
    }

    /// The signer, or [`KeyError::NotPrivate`].
    pub fn into_signer(self) -> Result<KeyFileSigner, KeyError> {
        match self {
            Key::Private(s) => Ok(s),
            Key::Public(_) => Err(KeyError::NotPrivate),
        }
    }
}

/// Signs with a private key held in memory (a key file). HSM/KMS signers implement
/// [`SigstructSigner`] the same way.
pub struct KeyFileSigner {
    public: RsaPublicKey,
    pair: aws_lc_rs::rsa::KeyPair,
}

impl std::fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFileSigner({:?})", self.public)
    }
}

impl KeyFileSigner {
    /// From a PKCS#1 `RSAPrivateKey` DER.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let public = rsa_public_from_private_pkcs1(der)?;
        let pair = aws_lc_rs::rsa::KeyPair::from_der(der)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self { public, pair })
    }
}

impl SigstructSigner for KeyFileSigner {
    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn sign_pkcs1_sha256(&self, msg: &[u8]) -> Result<[u8; KEY_BYTES], SignError> {
        let mut sig = [0u8; KEY_BYTES];
        if self.pair.public_modulus_len() != KEY_BYTES {
            return Err(SignError::Backend("modulus length is not 384 bytes".into()));
        }
        // aws-lc-rs ignores the RNG for PKCS#1 v1.5 (deterministic); it is part of the API.
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .map_err(|e| SignError::Backend(e.to_string()))?;
        Ok(sig)
    }
}

/// Decodes the first PEM block (RFC 7468, with RFC 1421 headers) with the `pem` crate: its
/// label and DER body. `Proc-Type: 4,ENCRYPTED` is refused with a hint.
fn pem_decode(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let p = pem::parse(text).map_err(|e| match e {
        _ if !text.contains("-----BEGIN ") => KeyError::NoPem,
        // RFC 1421 headers without the blank line the `pem` crate expects after them.
        _ if text.contains("Proc-Type:") && text.contains("ENCRYPTED") => KeyError::Encrypted,
        pem::PemError::MissingBeginTag => KeyError::NoPem,
        pem::PemError::MissingEndTag | pem::PemError::MalformedFraming => {
            KeyError::UnterminatedPem {
                label: text
                    .split("-----BEGIN ")
                    .nth(1)
                    .and_then(|r| r.split("-----").next())
                    .unwrap_or_default()
                    .to_string(),
            }
        }
        other => KeyError::Pem(other),
    })?;
    if p.headers()
        .get("Proc-Type")
        .is_some_and(|v| v.contains("ENCRYPTED"))
    {
        return Err(KeyError::Encrypted);
    }
    Ok((p.tag().to_string(), p.into_contents()))
}

/// A minimal strict DER walker over the few structures RSA keys use.
struct Der<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Der<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
        }
    }

    fn err(&self, what: &'static str) -> KeyError {
        KeyError::Der {
            offset: self.base + self.pos,
            what,
        }
    }

    /// Reads one TLV with `tag`, returns a walker over its contents.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Der<'a>, KeyError> {
        let start = self.pos;
        let t = *self.buf.get(self.pos).ok_or_else(|| self.err(what))?;
        if t != tag {
            return Err(self.err(what));
        }
        let l0 = *self.buf.get(self.pos + 1).ok_or_else(|| self.err(what))?;
        let mut p = self.pos + 2;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 4 {
                return Err(self.err("a DER length of 1 to 4 bytes"));
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(*self.buf.get(p).ok_or_else(|| self.err(what))?);
                p += 1;
            }
            len
        };
        let end = p.checked_add(len).ok_or_else(|| self.err(what))?;
        let content = self
            .buf
            .get(p..end)
            .ok_or_else(|| self.err("a length within the input"))?;
        self.pos = end;
        let _ = start;
        Ok(Der {
            buf: content,
            pos: 0,
            base: self.base + p,
        })
    }

    /// An INTEGER's magnitude bytes (leading zero stripped); negative numbers rejected.
    fn integer(&mut self, what: &'static str) -> Result<&'a [u8], KeyError> {
        let d = self.expect(0x02, what)?;
        match d.buf.first() {
            None => Err(d.err(what)),
            Some(b) if b & 0x80 != 0 => Err(d.err("a non-negative INTEGER")),
            Some(0) => Ok(d.buf.get(1..).unwrap_or_default()),
            Some(_) => Ok(d.buf),
        }
    }
}

fn rsa_public_from_private_pkcs1(der: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let mut outer = Der::new(der);
    let mut seq = outer.expect(0x30, "RSAPrivateKey SEQUENCE")?;
    let _version = seq.integer("RSAPrivateKey version")?;
    let n = seq.integer("RSAPrivateKey modulus")?;
    let e = seq.integer("RSAPrivateKey publicExponent")?;
    RsaPublicKey::from_be(n, e)
}

fn rsa_public_from_pkcs1(der: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let mut outer = Der::new(der);
    let mut seq = outer.expect(0x30, "RSAPublicKey SEQUENCE")?;
    let n = seq.integer("RSAPublicKey modulus")?;
    let e = seq.integer("RSAPublicKey publicExponent")?;
    RsaPublicKey::from_be(n, e)
}

fn check_rsa_alg(alg: &mut Der<'_>) -> Result<(), KeyError> {
    let oid = alg.expect(0x06, "AlgorithmIdentifier OID")?;
    if oid.buf != RSA_ENCRYPTION_OID {
        return Err(KeyError::NotRsa);
    }
    Ok(())
}

fn rsa_public_from_spki(der: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let mut outer = Der::new(der);
    let mut spki = outer.expect(0x30, "SubjectPublicKeyInfo SEQUENCE")?;
    let mut alg = spki.expect(0x30, "AlgorithmIdentifier SEQUENCE")?;
    check_rsa_alg(&mut alg)?;
    let bits = spki.expect(0x03, "subjectPublicKey BIT STRING")?;
    match bits.buf.split_first() {
        Some((0, inner)) => rsa_public_from_pkcs1(inner),
        _ => Err(bits.err("a BIT STRING with no unused bits")),
    }
}

fn pkcs8_inner(der: &[u8]) -> Result<&[u8], KeyError> {
    let mut outer = Der::new(der);
    let mut p8 = outer.expect(0x30, "PrivateKeyInfo SEQUENCE")?;
    let _version = p8.integer("PrivateKeyInfo version")?;
    let mut alg = p8.expect(0x30, "AlgorithmIdentifier SEQUENCE")?;
    check_rsa_alg(&mut alg)?;
    let inner = p8.expect(0x04, "privateKey OCTET STRING")?;
    Ok(inner.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors() {
        assert!(matches!(Key::from_pem("hello"), Err(KeyError::NoPem)));
        assert!(matches!(
            Key::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(KeyError::UnsupportedPem { label }) if label == "CERTIFICATE"
        ));
        assert!(matches!(
            Key::from_pem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n"),
            Err(KeyError::UnterminatedPem { .. })
        ));
        assert!(matches!(
            Key::from_pem(
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----"
            ),
            Err(KeyError::Encrypted)
        ));
        assert!(matches!(
            Key::from_pem(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
            ),
            Err(KeyError::Encrypted)
        ));
        assert!(matches!(
            Key::from_pem("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----"),
            Err(KeyError::Pem(_))
        ));
        let e = Key::from_pem("-----BEGIN RSA PUBLIC KEY-----\nAgEB\n-----END RSA PUBLIC KEY-----")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed DER in the key at byte 0: RSAPublicKey SEQUENCE"
        );
    }

    #[test]
    fn key_rules() {
        // 2048-bit modulus (top bit set), e = 3.
        let mut n = vec![0xffu8; 256];
        n[255] = 0xfb;
        assert!(matches!(
            RsaPublicKey::from_be(&n, &[3]),
            Err(KeyError::WrongKeySize { bits: 2048 })
        ));
        let n = vec![0xffu8; 384];
        let e = RsaPublicKey::from_be(&n, &[1, 0, 1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "RSA public exponent is 65537; SGX requires 3 (generate one with: openssl genrsa -3 -out key.pem 3072)"
        );
    }

    #[test]
    fn emsa_layout() {
        let em = emsa_pkcs1_sha256(b"abc");
        assert_eq!(&em[..3], &[0, 1, 0xff]);
        assert_eq!(em[KEY_BYTES - 52], 0);
        assert_eq!(&em[KEY_BYTES - 51..KEY_BYTES - 32], &SHA256_DIGEST_INFO);
    }
}
