//! Token signing keys, from one of two sources:
//!
//! * **managed** (the default): generated on first start, persisted in the store, rotated by
//!   `POST /admin/keys/rotate` with old public keys kept in the JWKS until every token they signed
//!   has expired;
//! * **directory** (`--signing-key-dir`): PEM files mounted from a Kubernetes Secret
//!   ([`crate::keyfile`]), replaced as a whole on reload; never generated, never stored. Every
//!   file's key is published; the active one signs.
//!
//! Keys are ES256 (P-256, the default) or RS256 (RSA ≥ 2048). The `kid` is the RFC 7638 JWK
//! thumbprint, so replicas loading the same files agree on it. Each JWK also carries `x5c`: a
//! self-signed certificate of the key, because some MAA consumers (Gramine's
//! `ra_tls_verify_maa`) read the key from `x5c[0]`.
//!
//! A signer takes one snapshot of the key set, so a request signs with the old or the new set,
//! never a mix. Tokens are signed with jsonwebtoken; tests check them with jsonwebtoken and PyJWT.

use crate::keyfile::{KeyDirConfig, KeyDirError, KeyFile, KeyParseError, KeySetFiles};
use crate::store::{Store, StoreError, Table};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The token signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    /// ECDSA P-256 SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256, 2048-bit or larger.
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

/// The problem code of `POST /admin/keys/rotate` when keys come from `--signing-key-dir`.
pub const KEYS_MANAGED_BY_DIRECTORY: &str = "signing-keys-managed-by-directory";

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
    /// The key directory cannot be used.
    #[error(transparent)]
    Dir(#[from] KeyDirError),
    /// Rotation was asked for while keys come from `--signing-key-dir`.
    #[error(
        "signing keys are managed by --signing-key-dir: to rotate, add a key file whose name \
         sorts last to that directory (the Kubernetes Secret); delete the old file once its \
         tokens have expired"
    )]
    ManagedByDirectory,
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

#[derive(Clone)]
struct LoadedKey {
    rec: KeyRecord,
    encoding: jsonwebtoken::EncodingKey,
    /// Directory mode: the file the key came from.
    file: Option<String>,
}

/// One consistent set of keys: what a signer or a JWKS request sees.
#[derive(Clone, Default)]
struct KeySet {
    /// Managed: by creation time; directory: by file name.
    keys: Vec<Arc<LoadedKey>>,
    /// The signing key, an index into `keys`.
    active: Option<usize>,
}

impl KeySet {
    /// Managed keys: the active key is the newest one not retired.
    fn managed(keys: Vec<Arc<LoadedKey>>) -> Self {
        let active = keys.iter().rposition(|k| k.rec.retired_at.is_none());
        Self { keys, active }
    }

    fn active(&self) -> Option<&LoadedKey> {
        self.active
            .and_then(|i| self.keys.get(i))
            .map(|k| k.as_ref())
    }

    /// The active key first, then the others newest (or last-named) first.
    fn published(&self, now: i64, lifetime: i64) -> Vec<&LoadedKey> {
        let active = self.active();
        active
            .into_iter()
            .chain(
                self.keys
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(i, _)| Some(*i) != self.active)
                    .map(|(_, k)| k.as_ref()),
            )
            .filter(|k| k.rec.retired_at.is_none_or(|r| r + lifetime >= now))
            .collect()
    }
}

/// A private key decoded from DER, with its public JWK and kid.
pub struct ParsedKey {
    pub(crate) alg: SigningAlg,
    /// PKCS#8 PrivateKeyInfo (for the x5c certificate).
    pub(crate) pkcs8: Vec<u8>,
    /// What jsonwebtoken signs with: ES256 PKCS#8, RS256 PKCS#1.
    pub(crate) signing_der: Vec<u8>,
    /// Public JWK members.
    pub(crate) public_jwk: Value,
    /// RFC 7638 thumbprint.
    pub(crate) kid: String,
}

impl ParsedKey {
    /// The RFC 7638 thumbprint, the `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }
}

impl std::fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("ParsedKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Where the keys come from.
#[derive(Debug)]
enum Source {
    Managed { store: Option<Arc<Store>> },
    Directory(KeyDirConfig),
}

/// The key ring.
pub struct KeyRing {
    source: Source,
    alg: SigningAlg,
    token_lifetime: i64,
    set: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("source", &self.source)
            .field("alg", &self.alg)
            .field("token_lifetime", &self.token_lifetime)
            .finish_non_exhaustive()
    }
}

/// What a directory (re)load installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirKeys {
    /// The active key's file name.
    pub active_file: String,
    /// The active key's id.
    pub active_kid: String,
    /// (file name, kid) of every published key, in file-name order.
    pub keys: Vec<(String, String)>,
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

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => other.into(),
    }
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.3.101.112" => format!("Ed25519 ({oid})"),
        "1.3.101.113" => format!("Ed448 ({oid})"),
        "1.2.840.10040.4.1" => format!("DSA ({oid})"),
        "1.2.840.113549.1.1.10" => format!("RSASSA-PSS ({oid})"),
        other => other.into(),
    }
}

/// The algorithm OID and its parameter OID (the curve for EC) of a PKCS#8 PrivateKeyInfo.
fn pkcs8_algorithm(pkcs8: &[u8]) -> Option<(String, Option<String>)> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, obj) = x509_parser::der_parser::parse_der(pkcs8).ok()?;
    let BerObjectContent::Sequence(items) = &obj.content else {
        return None;
    };
    let BerObjectContent::Sequence(alg) = &items.get(1)?.content else {
        return None;
    };
    let oid = alg.first()?.as_oid().ok()?.to_id_string();
    let param = alg
        .get(1)
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    Some((oid, param))
}

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (its third element, an OCTET STRING).
pub(crate) fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, obj) = x509_parser::der_parser::parse_der(pkcs8).map_err(|e| e.to_string())?;
    match &obj.content {
        BerObjectContent::Sequence(items) => items
            .get(2)
            .and_then(|o| o.as_slice().ok())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "PKCS#8 without a private key".to_string()),
        _ => Err("PKCS#8 is not a SEQUENCE".into()),
    }
}

/// The modulus and public exponent of a PKCS#1 RSAPrivateKey (its 2nd and 3rd INTEGERs),
/// big-endian without leading zeros.
fn rsa_public_from_pkcs1(pkcs1: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, obj) = x509_parser::der_parser::parse_der(pkcs1).map_err(|e| e.to_string())?;
    let BerObjectContent::Sequence(items) = &obj.content else {
        return Err("RSAPrivateKey is not a SEQUENCE".into());
    };
    let int = |i: usize| -> Result<Vec<u8>, String> {
        let b = items
            .get(i)
            .and_then(|o| o.as_slice().ok())
            .ok_or_else(|| "RSAPrivateKey without n and e".to_string())?;
        let nz = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        Ok(b.get(nz..).unwrap_or_default().to_vec())
    };
    Ok((int(1)?, int(2)?))
}

fn ec_parsed(kp: &EcdsaKeyPair) -> Result<ParsedKey, KeyParseError> {
    let invalid = |m: &str| KeyParseError::Invalid {
        kind: "EC",
        message: m.into(),
    };
    let pkcs8 = kp
        .to_pkcs8v1()
        .map_err(|_| invalid("cannot encode as PKCS#8"))?
        .as_ref()
        .to_vec();
    let point = kp.public_key().as_ref();
    let (x, y) = (
        point.get(1..33).ok_or_else(|| invalid("short EC point"))?,
        point.get(33..65).ok_or_else(|| invalid("short EC point"))?,
    );
    let public_jwk =
        json!({"kty": "EC", "crv": "P-256", "x": B64URL.encode(x), "y": B64URL.encode(y)});
    Ok(ParsedKey {
        alg: SigningAlg::ES256,
        kid: thumbprint(&public_jwk),
        signing_der: pkcs8.clone(),
        pkcs8,
        public_jwk,
    })
}

/// A PKCS#8 PrivateKeyInfo: P-256 EC or RSA.
pub(crate) fn parse_pkcs8(der: &[u8]) -> Result<ParsedKey, KeyParseError> {
    let invalid = |kind: &'static str, m: String| KeyParseError::Invalid { kind, message: m };
    let (oid, param) =
        pkcs8_algorithm(der).ok_or_else(|| invalid("PKCS#8", "not a PrivateKeyInfo".into()))?;
    match oid.as_str() {
        OID_EC_PUBLIC_KEY => match param.as_deref() {
            Some(OID_P256) => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| invalid("EC", e.to_string()))?;
                ec_parsed(&kp)
            }
            Some(curve) => Err(KeyParseError::UnsupportedCurve(curve_name(curve))),
            None => Err(invalid("EC", "no named curve".into())),
        },
        OID_RSA_ENCRYPTION => {
            let pkcs1 = pkcs1_from_pkcs8(der).map_err(|m| invalid("PKCS#8", m))?;
            parse_pkcs1(&pkcs1)
        }
        other => Err(KeyParseError::UnsupportedAlgorithm(algorithm_name(other))),
    }
}

/// A SEC1 (RFC 5915) ECPrivateKey on P-256.
pub(crate) fn parse_sec1(der: &[u8]) -> Result<ParsedKey, KeyParseError> {
    match EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        Ok(kp) => ec_parsed(&kp),
        Err(e) => {
            for (alg, name) in [
                (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"),
                (&ECDSA_P521_SHA512_FIXED_SIGNING, "P-521"),
            ] {
                if EcdsaKeyPair::from_private_key_der(alg, der).is_ok() {
                    return Err(KeyParseError::UnsupportedCurve(name.into()));
                }
            }
            Err(KeyParseError::Invalid {
                kind: "EC",
                message: format!("not a P-256 ECPrivateKey ({e})"),
            })
        }
    }
}

/// A PKCS#1 RSAPrivateKey of at least 2048 bits.
pub(crate) fn parse_pkcs1(pkcs1: &[u8]) -> Result<ParsedKey, KeyParseError> {
    let invalid = |m: String| KeyParseError::Invalid {
        kind: "RSA",
        message: m,
    };
    let (n, e) = rsa_public_from_pkcs1(pkcs1).map_err(invalid)?;
    let bits = n.first().map_or(0, |&top| {
        let len = u32::try_from(n.len()).unwrap_or(u32::MAX);
        len.saturating_sub(1)
            .saturating_mul(8)
            .saturating_add(8 - top.leading_zeros())
    });
    if bits < 2048 {
        return Err(KeyParseError::RsaTooSmall(bits));
    }
    let kp = aws_lc_rs::rsa::KeyPair::from_der(pkcs1).map_err(|e| invalid(e.to_string()))?;
    let pkcs8 = kp
        .as_der()
        .map_err(|e| invalid(e.to_string()))?
        .as_ref()
        .to_vec();
    let public_jwk = json!({"kty": "RSA", "n": B64URL.encode(&n), "e": B64URL.encode(&e)});
    Ok(ParsedKey {
        alg: SigningAlg::RS256,
        kid: thumbprint(&public_jwk),
        pkcs8,
        signing_der: pkcs1.to_vec(),
        public_jwk,
    })
}

/// A new PKCS#8 private key: P-256 for ES256, RSA-2048 for RS256.
pub(crate) fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    match alg {
        SigningAlg::ES256 => Ok(EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(gen_err)?
        .as_ref()
        .to_vec()),
        SigningAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(gen_err)?;
            Ok(kp.as_der().map_err(gen_err)?.as_ref().to_vec())
        }
    }
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

fn record(key: &ParsedKey, now: i64, lifetime: i64) -> Result<KeyRecord, KeyError> {
    Ok(KeyRecord {
        kid: key.kid.clone(),
        alg: key.alg,
        private_der: B64.encode(&key.signing_der),
        x5c: self_signed_x5c(&key.pkcs8, now, lifetime)?,
        public_jwk: key.public_jwk.clone(),
        created: now,
        retired_at: None,
    })
}

fn generate(alg: SigningAlg, now: i64, lifetime: i64) -> Result<KeyRecord, KeyError> {
    let key = parse_pkcs8(&generate_pkcs8(alg)?).map_err(gen_err)?;
    record(&key, now, lifetime)
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
    Ok(LoadedKey {
        rec,
        encoding,
        file: None,
    })
}

impl KeyRing {
    /// Managed keys: loads them from the store, creating the first key of `alg` when there is
    /// none or when the active key has another algorithm (the old one is retired, not deleted).
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
                keys.push(Arc::new(load(rec)?));
            }
        }
        keys.sort_by_key(|k| k.rec.created);
        let ring = Self {
            source: Source::Managed { store },
            alg,
            token_lifetime,
            set: RwLock::new(Arc::new(KeySet::managed(keys))),
        };
        let needs_new = ring.snapshot().active().is_none_or(|k| k.rec.alg != alg);
        if needs_new {
            ring.rotate(now)?;
        }
        Ok(ring)
    }

    /// Directory keys: the parsed files of `cfg.dir` (see [`crate::keyfile::read_key_dir`]).
    /// Nothing is generated or stored.
    pub fn from_dir(
        cfg: KeyDirConfig,
        files: &[KeyFile],
        token_lifetime: i64,
        now: i64,
    ) -> Result<Self, KeyError> {
        let parsed = crate::keyfile::parse_key_files(&cfg.dir, files, cfg.active.as_deref())?;
        let alg = parsed
            .keys
            .get(parsed.active)
            .map_or(SigningAlg::ES256, |(_, k)| k.alg);
        let set = dir_set(&parsed, &KeySet::default(), token_lifetime, now)?;
        Ok(Self {
            source: Source::Directory(cfg),
            alg,
            token_lifetime,
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// Directory mode: replaces the whole key set with the keys of `files`, atomically. On error
    /// the current set stays. Unchanged keys keep their `x5c`. Concurrent calls must be
    /// serialized by the caller ([`crate::server::Service::reload_config`] does).
    pub fn reload_dir(&self, files: &[KeyFile], now: i64) -> Result<DirKeys, KeyError> {
        let Source::Directory(cfg) = &self.source else {
            return Err(gen_err("not a directory key ring"));
        };
        let parsed = crate::keyfile::parse_key_files(&cfg.dir, files, cfg.active.as_deref())?;
        // Build the new set outside the lock (new keys get their x5c certificate here), then
        // swap it in. Directory rings change only here; callers serialize reloads.
        let set = Arc::new(dir_set(
            &parsed,
            &self.snapshot(),
            self.token_lifetime,
            now,
        )?);
        let loaded = dir_keys(&set);
        *self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = set;
        Ok(loaded)
    }

    /// Directory mode: what is loaded.
    pub fn dir_keys(&self) -> Option<DirKeys> {
        match self.source {
            Source::Directory(_) => Some(dir_keys(&self.snapshot())),
            Source::Managed { .. } => None,
        }
    }

    /// Whether keys come from `--signing-key-dir`.
    pub fn is_directory(&self) -> bool {
        matches!(self.source, Source::Directory(_))
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Signs claims with the active key (header `alg`, `typ`, `kid`, `jku`).
    pub fn sign(&self, claims: &Value, jku: Option<&str>) -> Result<String, KeyError> {
        let set = self.snapshot();
        let k = set
            .active()
            .ok_or_else(|| gen_err("no active signing key"))?;
        let mut header = jsonwebtoken::Header::new(k.rec.alg.jwt());
        header.kid = Some(k.rec.kid.clone());
        header.jku = jku.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &k.encoding).map_err(gen_err)
    }

    /// Managed mode: generates a new active key; the previous ones are retired now and stay
    /// published until their last token expires. Directory mode: [`KeyError::ManagedByDirectory`].
    pub fn rotate(&self, now: i64) -> Result<String, KeyError> {
        let Source::Managed { store } = &self.source else {
            return Err(KeyError::ManagedByDirectory);
        };
        let new = load(generate(self.alg, now, self.token_lifetime)?)?;
        let kid = new.rec.kid.clone();
        let mut guard = self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let keep_after = now - self.token_lifetime;
        let mut kept = Vec::with_capacity(guard.keys.len() + 1);
        for k in &guard.keys {
            let mut k = LoadedKey::clone(k);
            if k.rec.retired_at.is_none() {
                k.rec.retired_at = Some(now);
                persist(store, &k.rec)?;
            }
            // Drop keys whose tokens have all expired.
            if k.rec.retired_at.is_some_and(|r| r < keep_after) {
                if let Some(s) = store {
                    s.remove(Table::Keys, &k.rec.kid)?;
                }
            } else {
                kept.push(Arc::new(k));
            }
        }
        persist(store, &new.rec)?;
        kept.push(Arc::new(new));
        *guard = Arc::new(KeySet::managed(kept));
        Ok(kid)
    }

    /// The active key's id.
    pub fn active_kid(&self) -> Option<String> {
        self.snapshot().active().map(|k| k.rec.kid.clone())
    }

    /// The JWK Set: the active key first, then every other key whose tokens may still be valid
    /// (managed) or every other key file (directory).
    pub fn jwks(&self, now: i64) -> Value {
        let set = self.snapshot();
        let keys: Vec<Value> = set
            .published(now, self.token_lifetime)
            .into_iter()
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

    /// The algorithms of the published keys, the active key's first.
    pub fn published_algs(&self, now: i64) -> Vec<SigningAlg> {
        let set = self.snapshot();
        let mut algs = Vec::with_capacity(2);
        for k in set.published(now, self.token_lifetime) {
            if !algs.contains(&k.rec.alg) {
                algs.push(k.rec.alg);
            }
        }
        algs
    }

    /// The algorithm of new keys (managed), or of the active key at start-up (directory).
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }
}

fn persist(store: &Option<Arc<Store>>, rec: &KeyRecord) -> Result<(), KeyError> {
    if let Some(s) = store {
        let json = serde_json::to_string(rec).map_err(gen_err)?;
        s.put(Table::Keys, &rec.kid, &json)?;
    }
    Ok(())
}

/// The key set of a parsed directory, reusing `current`'s loaded keys by kid.
fn dir_set(
    parsed: &KeySetFiles,
    current: &KeySet,
    lifetime: i64,
    now: i64,
) -> Result<KeySet, KeyError> {
    let existing: HashMap<&str, &Arc<LoadedKey>> = current
        .keys
        .iter()
        .map(|k| (k.rec.kid.as_str(), k))
        .collect();
    let mut keys = Vec::with_capacity(parsed.keys.len());
    for (name, key) in &parsed.keys {
        let loaded = match existing.get(key.kid.as_str()) {
            Some(k) if k.file.as_deref() == Some(name.as_str()) => Arc::clone(k),
            Some(k) => Arc::new(LoadedKey {
                file: Some(name.clone()),
                ..LoadedKey::clone(k)
            }),
            None => {
                let mut k = load(record(key, now, lifetime)?)?;
                k.file = Some(name.clone());
                Arc::new(k)
            }
        };
        keys.push(loaded);
    }
    Ok(KeySet {
        keys,
        active: Some(parsed.active),
    })
}

fn dir_keys(set: &KeySet) -> DirKeys {
    let active = set.active();
    DirKeys {
        active_file: active.and_then(|k| k.file.clone()).unwrap_or_default(),
        active_kid: active.map(|k| k.rec.kid.clone()).unwrap_or_default(),
        keys: set
            .keys
            .iter()
            .map(|k| (k.file.clone().unwrap_or_default(), k.rec.kid.clone()))
            .collect(),
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
            ring.snapshot().keys.len(),
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

    fn dir_files(names: &[(&str, &str)]) -> Vec<KeyFile> {
        names
            .iter()
            .map(|(n, pem)| KeyFile {
                name: (*n).into(),
                contents: pem.as_bytes().to_vec(),
            })
            .collect()
    }

    fn kids_of(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn directory_keys_are_all_published_and_replicas_agree_on_kids() {
        let ec = crate::keyfile::pkcs8_pem(&generate_pkcs8(SigningAlg::ES256).unwrap());
        let rsa = crate::keyfile::pkcs8_pem(&generate_pkcs8(SigningAlg::RS256).unwrap());
        let files = dir_files(&[("a-rsa.pem", &rsa), ("b-ec.pem", &ec)]);
        let cfg = KeyDirConfig {
            dir: "/keys".into(),
            active: None,
        };
        // Two replicas, started at different times, load the same files.
        let r1 = KeyRing::from_dir(cfg.clone(), &files, 100, 1000).unwrap();
        let r2 = KeyRing::from_dir(cfg.clone(), &files, 100, 5000).unwrap();
        let ec_kid = crate::keyfile::parse_key_pem(ec.as_bytes()).unwrap().kid;
        let rsa_kid = crate::keyfile::parse_key_pem(rsa.as_bytes()).unwrap().kid;
        assert_eq!(r1.active_kid(), Some(ec_kid.clone()));
        assert_eq!(
            kids_of(&r1.jwks(1000)),
            vec![ec_kid.clone(), rsa_kid.clone()]
        );
        assert_eq!(kids_of(&r1.jwks(1000)), kids_of(&r2.jwks(9_999_999)));
        assert_eq!(
            r1.published_algs(1000),
            vec![SigningAlg::ES256, SigningAlg::RS256]
        );
        // A token from one replica verifies with the other's JWKS.
        let token = r1.sign(&json!({"sub": "x"}), None).unwrap();
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(r2.jwks(5000)).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(set.find(&ec_kid).unwrap()).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(&token, &key, &v).unwrap();
        // The RSA key signs when named.
        let named = KeyDirConfig {
            active: Some("a-rsa.pem".into()),
            ..cfg
        };
        let r3 = KeyRing::from_dir(named, &files, 100, 1000).unwrap();
        let token = r3.sign(&json!({"sub": "x"}), None).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            jsonwebtoken::Algorithm::RS256
        );
        assert_eq!(kids_of(&r3.jwks(1000)), vec![rsa_kid, ec_kid]);
        assert_eq!(r3.alg(), SigningAlg::RS256);
        assert_eq!(
            r3.published_algs(1000),
            vec![SigningAlg::RS256, SigningAlg::ES256]
        );
    }

    #[test]
    fn directory_reload_swaps_the_set_or_keeps_it_and_never_rotates() {
        let a = crate::keyfile::pkcs8_pem(&generate_pkcs8(SigningAlg::ES256).unwrap());
        let b = crate::keyfile::pkcs8_pem(&generate_pkcs8(SigningAlg::ES256).unwrap());
        let cfg = KeyDirConfig {
            dir: "/keys".into(),
            active: None,
        };
        let ring = KeyRing::from_dir(cfg, &dir_files(&[("1.pem", &a)]), 100, 1000).unwrap();
        let kid_a = ring.active_kid().unwrap();
        let x5c_a = ring.jwks(1000)["keys"][0]["x5c"].clone();
        let got = ring
            .reload_dir(&dir_files(&[("1.pem", &a), ("2.pem", &b)]), 2000)
            .unwrap();
        let kid_b = crate::keyfile::parse_key_pem(b.as_bytes()).unwrap().kid;
        assert_eq!(
            got,
            DirKeys {
                active_file: "2.pem".into(),
                active_kid: kid_b.clone(),
                keys: vec![
                    ("1.pem".into(), kid_a.clone()),
                    ("2.pem".into(), kid_b.clone())
                ],
            }
        );
        assert_eq!(ring.active_kid(), Some(kid_b.clone()));
        // The unchanged key keeps its certificate; published keys never expire in this mode.
        assert_eq!(ring.jwks(1_000_000)["keys"][1]["x5c"], x5c_a);
        assert_eq!(kids_of(&ring.jwks(1_000_000)), vec![kid_b.clone(), kid_a]);
        let e = ring
            .reload_dir(&dir_files(&[("1.pem", &a), ("2.pem", "junk")]), 3000)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("signing key file /keys/2.pem: no PEM private key"),
            "{e}"
        );
        assert_eq!(
            ring.active_kid(),
            Some(kid_b.clone()),
            "a bad reload keeps the set"
        );
        let e = ring.rotate(4000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "signing keys are managed by --signing-key-dir: to rotate, add a key file whose name \
             sorts last to that directory (the Kubernetes Secret); delete the old file once its \
             tokens have expired"
        );
        assert_eq!(ring.active_kid(), Some(kid_b));
        assert_eq!(ring.snapshot().keys.len(), 2);
    }
}
