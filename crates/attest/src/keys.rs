//! Token signing keys: generated on first start, persisted in the store, rotated with old public
//! keys kept in the JWKS until every token they signed has expired.
//!
//! Keys are ES256 (P-256, the default) or RS256 (RSA-2048). The `kid` is the RFC 7638 JWK
//! thumbprint. Each JWK also carries `x5c`: a self-signed certificate of the key, because some
//! MAA consumers (Gramine's `ra_tls_verify_maa`) read the key from `x5c[0]`.
//!
//! Tokens are signed with jsonwebtoken; tests check them with jsonwebtoken and with PyJWT.

use crate::store::{Store, StoreError, Table};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The token signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    /// ECDSA P-256 SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256, 2048-bit.
    RS256,
}

impl SigningAlg {
    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// A stored key cannot be used.
    #[error("stored signing key {kid} is unusable: {message}")]
    Corrupt {
        /// The key.
        kid: String,
        /// Why.
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    kid: String,
    alg: SigningAlg,
    /// ES256: PKCS#8; RS256: PKCS#1 RSAPrivateKey; base64.
    private_der: String,
    /// Public JWK members (kty, crv/x/y or n/e).
    public_jwk: Value,
    /// Self-signed certificate of the key, base64 DER.
    x5c: String,
    created: i64,
    retired_at: Option<i64>,
}

struct LoadedKey {
    rec: KeyRecord,
    encoding: jsonwebtoken::EncodingKey,
}

/// The key ring.
pub struct KeyRing {
    store: Option<Arc<Store>>,
    alg: SigningAlg,
    token_lifetime: i64,
    keys: RwLock<Vec<LoadedKey>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("alg", &self.alg)
            .field("token_lifetime", &self.token_lifetime)
            .finish_non_exhaustive()
    }
}

fn gen_err(e: impl std::fmt::Display) -> KeyError {
    KeyError::Generate(e.to_string())
}

/// RFC 7638 thumbprint over the required members in lexicographic order.
fn thumbprint(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str() {
        Some("EC") => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap_or_default(),
            jwk["x"].as_str().unwrap_or_default(),
            jwk["y"].as_str().unwrap_or_default()
        ),
        _ => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk["e"].as_str().unwrap_or_default(),
            jwk["n"].as_str().unwrap_or_default()
        ),
    };
    B64URL.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (its third element, an OCTET STRING).
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, KeyError> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, obj) = x509_parser::der_parser::parse_der(pkcs8).map_err(gen_err)?;
    match &obj.content {
        BerObjectContent::Sequence(items) => items
            .get(2)
            .and_then(|o| o.as_slice().ok())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| gen_err("PKCS#8 without a private key")),
        _ => Err(gen_err("PKCS#8 is not a SEQUENCE")),
    }
}

/// The modulus and public exponent of a PKCS#1 RSAPrivateKey (its 2nd and 3rd INTEGERs),
/// big-endian without leading zeros.
fn rsa_public_from_pkcs1(pkcs1: &[u8]) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, obj) = x509_parser::der_parser::parse_der(pkcs1).map_err(gen_err)?;
    let BerObjectContent::Sequence(items) = &obj.content else {
        return Err(gen_err("RSAPrivateKey is not a SEQUENCE"));
    };
    let int = |i: usize| -> Result<Vec<u8>, KeyError> {
        let b = items
            .get(i)
            .and_then(|o| o.as_slice().ok())
            .ok_or_else(|| gen_err("RSAPrivateKey without n and e"))?;
        let nz = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        Ok(b.get(nz..).unwrap_or_default().to_vec())
    };
    Ok((int(1)?, int(2)?))
}

fn self_signed_x5c(pkcs8: &[u8], now: i64, lifetime: i64) -> Result<String, KeyError> {
    let kp = rcgen::KeyPair::try_from(pkcs8).map_err(gen_err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "confkube attestation token signing",
    );
    params.not_before = time::OffsetDateTime::from_unix_timestamp(now - 3600).map_err(gen_err)?;
    params.not_after =
        time::OffsetDateTime::from_unix_timestamp(now + 10 * 365 * 86_400 + lifetime)
            .map_err(gen_err)?;
    let cert = params.self_signed(&kp).map_err(gen_err)?;
    Ok(B64.encode(cert.der()))
}

fn generate(alg: SigningAlg, now: i64, lifetime: i64) -> Result<KeyRecord, KeyError> {
    let rng = SystemRandom::new();
    let (pkcs8, public_jwk, private_der) = match alg {
        SigningAlg::ES256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(gen_err)?;
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(gen_err)?;
            let point = kp.public_key().as_ref();
            let (x, y) = (
                point.get(1..33).ok_or_else(|| gen_err("short EC point"))?,
                point.get(33..65).ok_or_else(|| gen_err("short EC point"))?,
            );
            let jwk =
                json!({"kty": "EC", "crv": "P-256", "x": B64URL.encode(x), "y": B64URL.encode(y)});
            (doc.as_ref().to_vec(), jwk, doc.as_ref().to_vec())
        }
        SigningAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(gen_err)?;
            let pkcs8 = kp.as_der().map_err(gen_err)?.as_ref().to_vec();
            let pkcs1 = pkcs1_from_pkcs8(&pkcs8)?;
            // n and e from the RSAPrivateKey itself: aws-lc-rs's public-key accessors change
            // type with its features.
            let (n, e) = rsa_public_from_pkcs1(&pkcs1)?;
            let jwk = json!({"kty": "RSA", "n": B64URL.encode(n), "e": B64URL.encode(e)});
            (pkcs8, jwk, pkcs1)
        }
    };
    Ok(KeyRecord {
        kid: thumbprint(&public_jwk),
        alg,
        private_der: B64.encode(private_der),
        x5c: self_signed_x5c(&pkcs8, now, lifetime)?,
        public_jwk,
        created: now,
        retired_at: None,
    })
}

fn load(rec: KeyRecord) -> Result<LoadedKey, KeyError> {
    let corrupt = |m: String| KeyError::Corrupt {
        kid: rec.kid.clone(),
        message: m,
    };
    let der = B64
        .decode(&rec.private_der)
        .map_err(|e| corrupt(e.to_string()))?;
    // Check the key once at load, so that a corrupt store fails at start, not per token.
    let encoding = match rec.alg {
        SigningAlg::ES256 => {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|e| corrupt(e.to_string()))?;
            jsonwebtoken::EncodingKey::from_ec_der(&der)
        }
        SigningAlg::RS256 => {
            aws_lc_rs::rsa::KeyPair::from_der(&der).map_err(|e| corrupt(e.to_string()))?;
            jsonwebtoken::EncodingKey::from_rsa_der(&der)
        }
    };
    Ok(LoadedKey { rec, encoding })
}

impl KeyRing {
    /// Loads the keys from the store, creating the first key of `alg` when there is none or
    /// when the active key has another algorithm (the old one is retired, not deleted).
    pub fn open(
        store: Option<Arc<Store>>,
        alg: SigningAlg,
        token_lifetime: i64,
        now: i64,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if let Some(s) = &store {
            for (kid, json) in s.list(Table::Keys)? {
                let rec: KeyRecord =
                    serde_json::from_str(&json).map_err(|e| KeyError::Corrupt {
                        kid: kid.clone(),
                        message: e.to_string(),
                    })?;
                keys.push(load(rec)?);
            }
        }
        keys.sort_by_key(|k| k.rec.created);
        let ring = Self {
            store,
            alg,
            token_lifetime,
            keys: RwLock::new(keys),
        };
        let needs_new = ring
            .read()
            .iter()
            .rev()
            .find(|k| k.rec.retired_at.is_none())
            .is_none_or(|k| k.rec.alg != alg);
        if needs_new {
            ring.rotate(now)?;
        }
        Ok(ring)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<LoadedKey>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Signs claims with the active key (header `alg`, `typ`, `kid`, `jku`).
    pub fn sign(&self, claims: &Value, jku: Option<&str>) -> Result<String, KeyError> {
        let keys = self.read();
        let k = keys
            .iter()
            .rev()
            .find(|k| k.rec.retired_at.is_none())
            .ok_or_else(|| gen_err("no active signing key"))?;
        let mut header = jsonwebtoken::Header::new(k.rec.alg.jwt());
        header.kid = Some(k.rec.kid.clone());
        header.jku = jku.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &k.encoding).map_err(gen_err)
    }

    /// Generates a new active key; the previous ones are retired now and stay published until
    /// their last token expires.
    pub fn rotate(&self, now: i64) -> Result<String, KeyError> {
        let new = load(generate(self.alg, now, self.token_lifetime)?)?;
        let kid = new.rec.kid.clone();
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in keys.iter_mut().filter(|k| k.rec.retired_at.is_none()) {
            k.rec.retired_at = Some(now);
            self.persist(&k.rec)?;
        }
        // Drop keys whose tokens have all expired.
        let keep_after = now - self.token_lifetime;
        let mut kept = Vec::with_capacity(keys.len() + 1);
        for k in keys.drain(..) {
            if k.rec.retired_at.is_some_and(|r| r < keep_after) {
                if let Some(s) = &self.store {
                    s.remove(Table::Keys, &k.rec.kid)?;
                }
            } else {
                kept.push(k);
            }
        }
        self.persist(&new.rec)?;
        kept.push(new);
        *keys = kept;
        Ok(kid)
    }

    fn persist(&self, rec: &KeyRecord) -> Result<(), KeyError> {
        if let Some(s) = &self.store {
            let json = serde_json::to_string(rec).map_err(gen_err)?;
            s.put(Table::Keys, &rec.kid, &json)?;
        }
        Ok(())
    }

    /// The active key's id.
    pub fn active_kid(&self) -> Option<String> {
        self.read()
            .iter()
            .rev()
            .find(|k| k.rec.retired_at.is_none())
            .map(|k| k.rec.kid.clone())
    }

    /// The JWK Set: the active key and every retired key whose tokens may still be valid.
    pub fn jwks(&self, now: i64) -> Value {
        let keys: Vec<Value> = self
            .read()
            .iter()
            .rev()
            .filter(|k| {
                k.rec
                    .retired_at
                    .is_none_or(|r| r + self.token_lifetime >= now)
            })
            .map(|k| {
                let mut jwk = k.rec.public_jwk.clone();
                if let Some(o) = jwk.as_object_mut() {
                    o.insert("kid".into(), k.rec.kid.clone().into());
                    o.insert("use".into(), "sig".into());
                    o.insert("alg".into(), k.rec.alg.name().into());
                    o.insert("x5c".into(), json!([k.rec.x5c]));
                }
                jwk
            })
            .collect();
        json!({ "keys": keys })
    }

    /// The algorithm of new keys.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_and_rs256_tokens_verify_with_the_jwks() {
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let ring = KeyRing::open(None, alg, 3600, 1_000_000).unwrap();
            let claims = json!({"sub": "x", "exp": 4_000_000_000u64});
            let token = ring.sign(&claims, Some("https://a/certs")).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.kid, ring.active_kid());
            assert_eq!(header.jku.as_deref(), Some("https://a/certs"));
            let jwks: jsonwebtoken::jwk::JwkSet =
                serde_json::from_value(ring.jwks(1_000_000)).unwrap();
            let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
            let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.required_spec_claims.clear();
            let data = jsonwebtoken::decode::<Value>(&token, &key, &v).unwrap();
            assert_eq!(data.claims["sub"], "x");
        }
    }

    #[test]
    fn rotation_keeps_old_keys_until_their_tokens_expire() {
        let ring = KeyRing::open(None, SigningAlg::ES256, 100, 1000).unwrap();
        let first = ring.active_kid().unwrap();
        let second = ring.rotate(1050).unwrap();
        assert_ne!(first, second);
        let kids = |now| -> Vec<String> {
            ring.jwks(now)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(kids(1100), vec![second.clone(), first.clone()]);
        assert_eq!(kids(1151), vec![second.clone()]);
        ring.rotate(1300).unwrap();
        assert_eq!(
            ring.read().len(),
            2,
            "the first key is pruned at the next rotation"
        );
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1 example key and thumbprint.
        let jwk = json!({"kty": "RSA", "e": "AQAB", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn keys_persist_across_reopen_and_corrupt_keys_are_named() {
        let dir = std::env::temp_dir().join(format!("confkube-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open(&dir).unwrap());
        let kid = KeyRing::open(Some(store.clone()), SigningAlg::ES256, 100, 1000)
            .unwrap()
            .active_kid();
        let again = KeyRing::open(Some(store.clone()), SigningAlg::ES256, 100, 2000).unwrap();
        assert_eq!(again.active_kid(), kid);
        store.put(Table::Keys, "bad", "{}").unwrap();
        let e = KeyRing::open(Some(store), SigningAlg::ES256, 100, 2000).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("stored signing key bad is unusable: missing field"),
            "{e}"
        );
    }
}
