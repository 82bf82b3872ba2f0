//! Transfer keys (JWK, RFC 7517) and compact JWE (RFC 7516) encryption to them.
//!
//! Two key-management algorithms of RFC 7518, both with content encryption `A256GCM`:
//! `RSA-OAEP-256` (§4.3: RSAES-OAEP with SHA-256 and MGF1-SHA-256 wraps a random content key)
//! and `ECDH-ES+A256KW` (§4.6: an ephemeral key on the recipient's curve, ECDH, the Concat KDF of
//! NIST SP 800-56A §5.8.1 with SHA-256, then AES-256 key wrap, RFC 3394, of the content key).
//!
//! Built from aws-lc-rs primitives (OAEP, ECDH agreement, the single-step digest KDF of SP
//! 800-56C, which is the Concat KDF, AES key wrap, AES-GCM) because no maintained Rust JOSE crate
//! encrypts with the tree's crypto library: `josekit` needs OpenSSL, `biscuit` ring, the
//! RustCrypto-based `jose-jwe` is unreleased, and `jsonwebtoken` signs only. The encoder is
//! checked against RFC 7518's Concat KDF example and decrypted by Python `jwcrypto` and JS `jose`
//! in the tests.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, ECDH_P384, UnparsedPublicKey};
use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyUncompressedBin};
use aws_lc_rs::kdf::{SskdfDigestAlgorithmId, get_sskdf_digest_algorithm, sskdf_digest};
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrap};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicKeyComponents};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `alg` for RSA transfer keys.
pub const ALG_RSA: &str = "RSA-OAEP-256";
/// `alg` for EC transfer keys.
pub const ALG_EC: &str = "ECDH-ES+A256KW";
/// `enc` of every JWE.
pub const ENC: &str = "A256GCM";

/// Smallest accepted RSA modulus.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus (bounds the work a caller can ask for).
pub const MAX_RSA_BITS: usize = 8192;
/// Most keys looked at in a key set.
pub const MAX_KEYS: usize = 16;
const MAX_KID: usize = 256;

/// An elliptic curve of a transfer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }
    fn coord_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
    fn agreement(self) -> &'static agreement::Algorithm {
        match self {
            Self::P256 => &ECDH_P256,
            Self::P384 => &ECDH_P384,
        }
    }
}

#[derive(Debug)]
enum KeyKind {
    Rsa { key: OaepPublicEncryptingKey },
    Ec { curve: Curve, point: Vec<u8> },
}

/// The key a secret is encrypted to: the first usable key of the runtime data's JWK set.
#[derive(Debug)]
pub struct TransferKey {
    kid: String,
    index: usize,
    kind: KeyKind,
}

/// Why no key of the runtime data can be a transfer key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no usable transfer key: {reason}")]
pub struct NoTransferKey {
    /// What is missing, or per key why it was skipped.
    pub reason: String,
}

impl TransferKey {
    /// The `kid` put in the JWE header: the JWK's own `kid`, else its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's position in the set.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The JWE `alg` for this key.
    pub fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Rsa { .. } => ALG_RSA,
            KeyKind::Ec { .. } => ALG_EC,
        }
    }

    /// Picks the first usable key of `{"keys": [JWK, ...]}` (the runtime data as JSON).
    pub fn select(runtime: Option<&Value>) -> Result<Self, NoTransferKey> {
        let no = |r: &str| NoTransferKey { reason: r.into() };
        let runtime = runtime.ok_or_else(|| {
            no(
                "the token carries no JSON runtime data (x-ms-runtime); attest with runtimeData \
                {\"data\": <JSON {\"keys\": [JWK]}>, \"dataType\": \"JSON\"}",
            )
        })?;
        let keys = runtime
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| no("the runtime data has no \"keys\" array (a JWK set)"))?;
        if keys.is_empty() {
            return Err(no("the runtime data's \"keys\" array is empty"));
        }
        let mut skipped = Vec::new();
        for (i, k) in keys.iter().take(MAX_KEYS).enumerate() {
            match parse_jwk(k) {
                Ok((kid, kind)) => {
                    return Ok(Self {
                        kid,
                        index: i,
                        kind,
                    });
                }
                Err(why) => skipped.push(format!("key {i}: {why}")),
            }
        }
        if keys.len() > MAX_KEYS {
            skipped.push(format!("keys after the first {MAX_KEYS} were not examined"));
        }
        Err(NoTransferKey {
            reason: skipped.join("; "),
        })
    }

    /// Encrypts `plaintext` to this key as a compact JWE (`alg` of the key, `enc` A256GCM,
    /// `kid` in the protected header).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, JweError> {
        let mut cek = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(cek.as_mut_slice()).map_err(|_| JweError::Rng)?;
        let mut header = Map::new();
        header.insert("alg".into(), self.alg().into());
        header.insert("enc".into(), ENC.into());
        header.insert("kid".into(), self.kid.clone().into());
        let encrypted_key = match &self.kind {
            KeyKind::Rsa { key } => {
                let mut out = vec![0u8; key.ciphertext_size()];
                let n = key
                    .encrypt(&OAEP_SHA256_MGF1SHA256, cek.as_slice(), &mut out, None)
                    .map_err(|_| JweError::Crypto("RSA-OAEP"))?
                    .len();
                out.truncate(n);
                out
            }
            KeyKind::Ec { curve, point } => {
                let (epk, wrapped) = ecdh_es_a256kw(*curve, point, cek.as_slice())?;
                header.insert("epk".into(), epk);
                wrapped
            }
        };
        let header_b64 = B64URL.encode(Value::Object(header).to_string());
        let mut iv = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| JweError::Rng)?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, cek.as_slice())
                .map_err(|_| JweError::Crypto("AES-GCM key"))?,
        );
        let mut ct = Zeroizing::new(plaintext.to_vec());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(header_b64.as_bytes()),
                &mut ct,
            )
            .map_err(|_| JweError::Crypto("AES-GCM"))?;
        Ok(format!(
            "{header_b64}.{}.{}.{}.{}",
            B64URL.encode(encrypted_key),
            B64URL.encode(iv),
            B64URL.encode(&*ct),
            B64URL.encode(tag.as_ref())
        ))
    }
}

/// Why a JWE could not be made (never the caller's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JweError {
    /// The system RNG failed.
    #[error("the system random number generator failed")]
    Rng,
    /// A primitive refused its input.
    #[error("{0} failed")]
    Crypto(&'static str),
}

fn b64_field(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("\"{name}\" is missing or not a string"))?;
    B64URL
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("\"{name}\" is not base64url: {e}"))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

fn bit_len(b: &[u8]) -> usize {
    let b = strip_zeros(b);
    match b.first() {
        None => 0,
        Some(&top) => (b.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// Checks `use`, `key_ops` and `alg`, then the key material; returns the kid and the key.
fn parse_jwk(k: &Value) -> Result<(String, KeyKind), String> {
    let jwk = k.as_object().ok_or("not a JSON object")?;
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("\"kty\" is missing")?;
    if let Some(u) = jwk.get("use")
        && u.as_str() != Some("enc")
    {
        return Err(format!("\"use\" is {u}, not \"enc\""));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ok = ops.as_array().is_some_and(|a| {
            a.iter().any(|o| {
                matches!(
                    o.as_str(),
                    Some("encrypt" | "wrapKey" | "deriveKey" | "deriveBits")
                )
            })
        });
        if !ok {
            return Err(format!(
                "\"key_ops\" {ops} allows none of encrypt, wrapKey, deriveKey, deriveBits"
            ));
        }
    }
    if jwk.contains_key("d") {
        return Err("it holds private key material (\"d\"); send only the public key".into());
    }
    let (expected_alg, kind, canonical) = match kty {
        "RSA" => {
            let n = b64_field(jwk, "n")?;
            let e = b64_field(jwk, "e")?;
            let bits = bit_len(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA modulus of {bits} bits is below the minimum of {MIN_RSA_BITS}"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "RSA modulus of {bits} bits is above the maximum of {MAX_RSA_BITS}"
                ));
            }
            let pk: aws_lc_rs::rsa::PublicEncryptingKey = PublicKeyComponents {
                n: strip_zeros(&n),
                e: strip_zeros(&e),
            }
            .try_into()
            .map_err(|_| "not a valid RSA public key".to_string())?;
            let key = OaepPublicEncryptingKey::new(pk)
                .map_err(|_| "not usable for RSA-OAEP".to_string())?;
            let canonical = json!({"e": B64URL.encode(strip_zeros(&e)), "kty": "RSA",
                                   "n": B64URL.encode(strip_zeros(&n))});
            (ALG_RSA, KeyKind::Rsa { key }, canonical)
        }
        "EC" => {
            let crv = jwk
                .get("crv")
                .and_then(Value::as_str)
                .ok_or("\"crv\" is missing")?;
            let curve = match crv {
                "P-256" => Curve::P256,
                "P-384" => Curve::P384,
                other => {
                    return Err(format!("curve {other:?} is not supported (P-256 or P-384)"));
                }
            };
            let x = b64_field(jwk, "x")?;
            let y = b64_field(jwk, "y")?;
            let len = curve.coord_len();
            if x.len() != len || y.len() != len {
                return Err(format!(
                    "{} coordinates must be {len} bytes each (x has {}, y {})",
                    curve.name(),
                    x.len(),
                    y.len()
                ));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            agreement::ParsedPublicKey::try_from(&UnparsedPublicKey::new(
                curve.agreement(),
                &point,
            ))
            .map_err(|_| format!("the point is not on {}", curve.name()))?;
            let canonical = json!({"crv": crv, "kty": "EC", "x": B64URL.encode(&x),
                                   "y": B64URL.encode(&y)});
            (ALG_EC, KeyKind::Ec { curve, point }, canonical)
        }
        other => {
            return Err(format!(
                "key type {other:?} cannot be a transfer key (RSA or EC)"
            ));
        }
    };
    if let Some(a) = jwk.get("alg")
        && a.as_str() != Some(expected_alg)
    {
        return Err(format!(
            "its \"alg\" is {a}; confkube encrypts to {kty} keys with {expected_alg}"
        ));
    }
    let kid = match jwk.get("kid") {
        None => thumbprint(&canonical),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_KID => s.clone(),
        Some(_) => return Err(format!("\"kid\" must be a string of 1 to {MAX_KID} bytes")),
    };
    Ok((kid, kind))
}

/// RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, no spaces
/// (serde_json's map is ordered, and `to_string` is compact).
fn thumbprint(canonical: &Value) -> String {
    B64URL.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.to_string().as_bytes(),
    ))
}

/// The Concat KDF of RFC 7518 §4.6.2 with SHA-256 (no PartyUInfo/PartyVInfo when empty).
pub fn concat_kdf(
    z: &[u8],
    alg_id: &str,
    apu: &[u8],
    apv: &[u8],
    out: &mut [u8],
) -> Result<(), JweError> {
    let len32 = |n: usize| u32::try_from(n).map(u32::to_be_bytes);
    let bad = |_| JweError::Crypto("Concat KDF input length");
    let mut info = Vec::with_capacity(16 + alg_id.len() + apu.len() + apv.len());
    for part in [alg_id.as_bytes(), apu, apv] {
        info.extend_from_slice(&len32(part.len()).map_err(bad)?);
        info.extend_from_slice(part);
    }
    let bits = out.len().checked_mul(8).ok_or(JweError::Crypto("KDF"))?;
    info.extend_from_slice(&len32(bits).map_err(bad)?);
    let alg = get_sskdf_digest_algorithm(SskdfDigestAlgorithmId::Sha256)
        .ok_or(JweError::Crypto("Concat KDF"))?;
    sskdf_digest(alg, z, &info, out).map_err(|_| JweError::Crypto("Concat KDF"))
}

fn ecdh_es_a256kw(curve: Curve, peer: &[u8], cek: &[u8]) -> Result<(Value, Vec<u8>), JweError> {
    let eph = agreement::PrivateKey::generate(curve.agreement())
        .map_err(|_| JweError::Crypto("ephemeral key generation"))?;
    let public = eph
        .compute_public_key()
        .map_err(|_| JweError::Crypto("ephemeral public key"))?;
    let bin: EcPublicKeyUncompressedBin<'_> = public
        .as_be_bytes()
        .map_err(|_| JweError::Crypto("ephemeral public key"))?;
    let coords = bin.as_ref().get(1..).unwrap_or_default();
    let (x, y) = coords.split_at(coords.len() / 2);
    let epk =
        json!({"kty": "EC", "crv": curve.name(), "x": B64URL.encode(x), "y": B64URL.encode(y)});
    let kek = agreement::agree(
        &eph,
        UnparsedPublicKey::new(curve.agreement(), peer),
        JweError::Crypto("ECDH"),
        |z| {
            let mut k = Zeroizing::new([0u8; 32]);
            concat_kdf(z, ALG_EC, &[], &[], k.as_mut_slice())?;
            Ok(k)
        },
    )?;
    let wrapper = KeyEncryptionKey::new(&AES_256, kek.as_slice())
        .map_err(|_| JweError::Crypto("AES key wrap key"))?;
    let mut out = vec![0u8; cek.len() + 8];
    let n = wrapper
        .wrap(cek, &mut out)
        .map_err(|_| JweError::Crypto("AES key wrap"))?
        .len();
    out.truncate(n);
    Ok((epk, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_kdf_matches_rfc7518_appendix_c() {
        // RFC 7518 Appendix C: ECDH-ES, enc A128GCM, apu "Alice", apv "Bob".
        let z = [
            158u8, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let mut out = [0u8; 16];
        concat_kdf(&z, "A128GCM", b"Alice", b"Bob", &mut out).unwrap();
        assert_eq!(B64URL.encode(out), "VqqN6vgjbSBcIijNcacQGg");
    }

    fn ec_jwk(curve: Curve) -> (agreement::PrivateKey, Value) {
        let k = agreement::PrivateKey::generate(curve.agreement()).unwrap();
        let p = k.compute_public_key().unwrap();
        let b = p.as_ref().get(1..).unwrap().to_vec();
        let (x, y) = b.split_at(b.len() / 2);
        (
            k,
            json!({"kty": "EC", "crv": curve.name(), "x": B64URL.encode(x), "y": B64URL.encode(y)}),
        )
    }

    fn rsa_jwk(bits: aws_lc_rs::rsa::KeySize) -> (aws_lc_rs::rsa::PrivateDecryptingKey, Value) {
        let k = aws_lc_rs::rsa::PrivateDecryptingKey::generate(bits).unwrap();
        let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(
            aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k)
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        let c: PublicKeyComponents<Vec<u8>> = kp.public_key().into();
        (
            k,
            json!({"kty": "RSA", "n": B64URL.encode(&c.n), "e": B64URL.encode(&c.e)}),
        )
    }

    fn decrypt_ec(curve: Curve, k: &agreement::PrivateKey, jwe: &str) -> (Value, Vec<u8>) {
        let parts: Vec<&str> = jwe.split('.').collect();
        assert_eq!(parts.len(), 5);
        let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        let epk = &header["epk"];
        let mut point = vec![4u8];
        point.extend(B64URL.decode(epk["x"].as_str().unwrap()).unwrap());
        point.extend(B64URL.decode(epk["y"].as_str().unwrap()).unwrap());
        let kek = agreement::agree(
            k,
            UnparsedPublicKey::new(curve.agreement(), &point),
            (),
            |z| {
                let mut o = [0u8; 32];
                concat_kdf(z, ALG_EC, &[], &[], &mut o).unwrap();
                Ok(o)
            },
        )
        .unwrap();
        let wrapped = B64URL.decode(parts[1]).unwrap();
        let mut cek = [0u8; 32];
        KeyEncryptionKey::new(&AES_256, &kek)
            .unwrap()
            .unwrap(&wrapped, &mut cek)
            .unwrap();
        (header, gcm_open(&cek, &parts))
    }

    fn gcm_open(cek: &[u8], parts: &[&str]) -> Vec<u8> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, cek).unwrap());
        let iv: [u8; 12] = B64URL.decode(parts[2]).unwrap().try_into().unwrap();
        let mut buf = B64URL.decode(parts[3]).unwrap();
        buf.extend(B64URL.decode(parts[4]).unwrap());
        key.open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(parts[0].as_bytes()),
            &mut buf,
        )
        .unwrap()
        .to_vec()
    }

    #[test]
    fn ec_round_trip_both_curves() {
        for curve in [Curve::P256, Curve::P384] {
            let (k, mut jwk) = ec_jwk(curve);
            jwk["kid"] = json!("enclave-key");
            let set = json!({"keys": [jwk]});
            let tk = TransferKey::select(Some(&set)).unwrap();
            assert_eq!((tk.kid(), tk.alg(), tk.index()), ("enclave-key", ALG_EC, 0));
            let jwe = tk.encrypt(b"db-password").unwrap();
            let (h, pt) = decrypt_ec(curve, &k, &jwe);
            assert_eq!(pt, b"db-password");
            assert_eq!(h["alg"], ALG_EC);
            assert_eq!(h["enc"], ENC);
            assert_eq!(h["kid"], "enclave-key");
            assert_eq!(h["epk"]["crv"], curve.name());
        }
    }

    #[test]
    fn rsa_round_trip_and_thumbprint_kid() {
        let (k, jwk) = rsa_jwk(aws_lc_rs::rsa::KeySize::Rsa2048);
        let set = json!({"keys": [jwk.clone()]});
        let tk = TransferKey::select(Some(&set)).unwrap();
        assert_eq!(tk.kid(), thumbprint(&jwk));
        let jwe = tk.encrypt(b"tls-key").unwrap();
        let parts: Vec<&str> = jwe.split('.').collect();
        let oaep = aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(k).unwrap();
        let ek = B64URL.decode(parts[1]).unwrap();
        let mut cek = vec![0u8; 512];
        let cek = oaep
            .decrypt(&OAEP_SHA256_MGF1SHA256, &ek, &mut cek, None)
            .unwrap()
            .to_vec();
        assert_eq!(gcm_open(&cek, &parts), b"tls-key");
        let h: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(h, json!({"alg": ALG_RSA, "enc": ENC, "kid": tk.kid()}));
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let tp = thumbprint(&json!({"e": "AQAB", "kty": "RSA", "n": n}));
        assert_eq!(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn selection_skips_unusable_keys_and_explains() {
        let (_, weak) = rsa_jwk(aws_lc_rs::rsa::KeySize::Rsa2048);
        let mut weak = weak;
        // A 1024-bit modulus: keep the top half of a real one.
        let n = B64URL.decode(weak["n"].as_str().unwrap()).unwrap();
        weak["n"] = json!(B64URL.encode(&n[..128]));
        let (_, ec) = ec_jwk(Curve::P256);
        let mut sig = ec.clone();
        sig["use"] = json!("sig");
        let mut p521 = ec.clone();
        p521["crv"] = json!("P-521");
        let mut private = ec.clone();
        private["d"] = json!("AAAA");
        let mut wrong_alg = ec.clone();
        wrong_alg["alg"] = json!("ECDH-ES");
        let mut off_curve = ec.clone();
        off_curve["y"] = off_curve["x"].clone();
        let set = json!({"keys": [weak, sig, p521, private, wrong_alg, off_curve,
                                  {"kty": "oct", "k": "AA"}, "x", ec]});
        let tk = TransferKey::select(Some(&set)).unwrap();
        assert_eq!(tk.index(), 8);
        let set = json!({"keys": set["keys"].as_array().unwrap()[..8].to_vec()});
        let e = TransferKey::select(Some(&set)).unwrap_err();
        assert_eq!(
            e.reason,
            "key 0: RSA modulus of 1024 bits is below the minimum of 2048; \
             key 1: \"use\" is \"sig\", not \"enc\"; \
             key 2: curve \"P-521\" is not supported (P-256 or P-384); \
             key 3: it holds private key material (\"d\"); send only the public key; \
             key 4: its \"alg\" is \"ECDH-ES\"; confkube encrypts to EC keys with ECDH-ES+A256KW; \
             key 5: the point is not on P-256; \
             key 6: key type \"oct\" cannot be a transfer key (RSA or EC); \
             key 7: not a JSON object"
        );
        for (runtime, reason) in [
            (None, "the token carries no JSON runtime data"),
            (
                Some(json!({"k": 1})),
                "the runtime data has no \"keys\" array (a JWK set)",
            ),
            (
                Some(json!({"keys": []})),
                "the runtime data's \"keys\" array is empty",
            ),
        ] {
            let e = TransferKey::select(runtime.as_ref()).unwrap_err();
            assert!(e.reason.starts_with(reason), "{}", e.reason);
        }
    }
}
