//! Token signing keys, from one of two sources:
//!
//! * **managed** (the default): generated on first start, persisted in the store, rotated by
//!   `POST /admin/keys/rotate` with old public keys kept in the JWKS until every token they signed
//!   has expired;
//! * **directory** (`--signing-key-dir`): PEM files mounted from a Kubernetes Secret
//!   ([`crate::keyfile`]), replaced as a whole on reload; never generated, never stored. Every
//!   file's key is published; the active one signs.
//!
//! Keys are RS256 (RSA ≥ 2048, the default, as in Azure Attestation: Microsoft's SDKs check every
//! token as RSA) or ES256 (P-256). The public JWK and its `kid` (the RFC 7638 thumbprint) come
//! from jsonwebtoken's `Jwk::from_encoding_key` and `Jwk::thumbprint`, so replicas loading the same
//! files agree on the kid. Each JWK also carries `x5c`: a self-signed certificate of the key whose
//! subject and issuer are `CN=<token issuer>` (as Azure Attestation's are), because MAA consumers
//! (Microsoft's SDKs, Gramine's `ra_tls_verify_maa`) read the key from `x5c[0]`. In the JWKS, RSA
//! keys come first: Gramine's MAA client stops at the first key that is not RSA.
//!
//! **Parsed once.** A key is decoded into an aws-lc-rs key pair when it is loaded; tokens are
//! signed with that key pair and the pre-encoded JWS header. jsonwebtoken's `encode` is not used
//! for signing because it decodes the private key DER again for every token (for RSA, a key check
//! that costs as much as the signature); the compact JWS it would write is three base64url parts
//! joined with dots (RFC 7515 §7.1), written here.
//!
//! A signer takes one snapshot of the key set, so a request signs with the old or the new set,
//! never a mix. Tests check the tokens with jsonwebtoken, PyJWT and Microsoft's SDKs.

use crate::keyfile::{KeyDirConfig, KeyDirError, KeyFile, KeyParseError, KeySetFiles};
use crate::store::{Store, StoreError, Table};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

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

/// The certificate subject used when no issuer was set ([`KeyRing::with_issuer`]).
const DEFAULT_CN: &str = "confkube attestation token signing";

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

/// A stored key. The format is unchanged since the first release (so a store can be opened by
/// an older version again); `public_jwk` and `x5c` are written for that reason but recomputed
/// from the private key at load.
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

/// The private key, decoded once.
enum SigningKey {
    Ec(EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

impl SigningKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Ec(kp) => kp
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(gen_err),
            Self::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                    .map_err(gen_err)?;
                Ok(sig)
            }
        }
    }
}

struct LoadedKey {
    rec: KeyRecord,
    signer: SigningKey,
    /// PKCS#8, for the `x5c` certificates.
    pkcs8: Vec<u8>,
    /// The public JWK with `kid`, `alg` and `use` (no `x5c`).
    jwk: Jwk,
    /// `x5c[0]` per certificate subject (the issuer the JWKS was asked for), made on first use.
    x5c: Arc<Mutex<HashMap<String, Arc<str>>>>,
    /// base64url JWS header per `jku`.
    headers: Arc<Mutex<HashMap<Option<String>, Arc<str>>>>,
    /// Directory mode: the file the key came from.
    file: Option<String>,
}

impl LoadedKey {
    /// The same key with another record or file name; it keeps its certificates and headers
    /// (they depend on the key, the issuer and the kid only).
    fn with(&self, rec: KeyRecord, file: Option<String>) -> Result<Self, KeyError> {
        let mut k = load(rec)?;
        k.x5c = Arc::clone(&self.x5c);
        k.headers = Arc::clone(&self.headers);
        k.file = file;
        Ok(k)
    }

    fn retire(&self, at: i64) -> Result<Self, KeyError> {
        let mut rec = self.rec.clone();
        rec.retired_at = Some(at);
        self.with(rec, self.file.clone())
    }

    fn is_rsa(&self) -> bool {
        self.rec.alg == SigningAlg::RS256
    }

    /// The self-signed certificate with subject `CN=<cn>`, base64 DER (cached per subject).
    fn x5c(&self, cn: &str, lifetime: i64) -> Result<Arc<str>, KeyError> {
        let mut certs = self
            .x5c
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = certs.get(cn) {
            return Ok(c.clone());
        }
        let cert: Arc<str> = self_signed_x5c(&self.pkcs8, cn, self.rec.created, lifetime)?.into();
        certs.insert(cn.to_string(), cert.clone());
        Ok(cert)
    }

    /// The base64url JWS header `{"typ":"JWT","alg","jku","kid"}` (cached per jku).
    fn header(&self, jku: Option<&str>) -> Result<Arc<str>, KeyError> {
        let key = jku.map(str::to_string);
        let mut headers = self
            .headers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = headers.get(&key) {
            return Ok(h.clone());
        }
        let mut header = jsonwebtoken::Header::new(self.rec.alg.jwt());
        header.kid = Some(self.rec.kid.clone());
        header.jku = key.clone();
        let encoded: Arc<str> = B64URL
            .encode(serde_json::to_vec(&header).map_err(gen_err)?)
            .into();
        headers.insert(key, encoded.clone());
        Ok(encoded)
    }
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
    /// What is stored: ES256 PKCS#8, RS256 PKCS#1.
    pub(crate) signing_der: Vec<u8>,
    /// The public JWK (`kty` and `crv`/`x`/`y` or `n`/`e`, plus `alg`).
    pub(crate) jwk: Jwk,
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

    /// The public JWK members, as JSON.
    pub fn public_jwk(&self) -> Value {
        let mut v = serde_json::to_value(&self.jwk).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("alg");
        }
        v
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
    /// The subject of the `x5c` certificates when the caller names no issuer.
    issuer: String,
    set: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("source", &self.source)
            .field("alg", &self.alg)
            .field("token_lifetime", &self.token_lifetime)
            .field("issuer", &self.issuer)
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

/// The public JWK of a private key (jsonwebtoken derives `n`/`e` or `crv`/`x`/`y` with
/// aws-lc-rs) and its RFC 7638 thumbprint.
fn public_jwk(
    encoding: &jsonwebtoken::EncodingKey,
    alg: SigningAlg,
) -> Result<(Jwk, String), String> {
    let jwk = Jwk::from_encoding_key(encoding, alg.jwt()).map_err(|e| e.to_string())?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| e.to_string())?;
    Ok((jwk, kid))
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

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (its third element, an OCTET STRING):
/// jsonwebtoken's RSA `EncodingKey` is PKCS#1.
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

/// The modulus size of a PKCS#1 RSAPrivateKey (its 2nd INTEGER), read before aws-lc-rs sees the
/// key so that a small key is reported with its size rather than as "rejected".
fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<u32, String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, obj) = x509_parser::der_parser::parse_der(pkcs1).map_err(|e| e.to_string())?;
    let BerObjectContent::Sequence(items) = &obj.content else {
        return Err("RSAPrivateKey is not a SEQUENCE".into());
    };
    let n = items
        .get(1)
        .and_then(|o| o.as_slice().ok())
        .filter(|_| items.len() > 2)
        .ok_or_else(|| "RSAPrivateKey without n and e".to_string())?;
    let nz = n.iter().position(|&x| x != 0).unwrap_or(n.len());
    let n = n.get(nz..).unwrap_or_default();
    Ok(n.first().map_or(0, |&top| {
        let len = u32::try_from(n.len()).unwrap_or(u32::MAX);
        len.saturating_sub(1)
            .saturating_mul(8)
            .saturating_add(8 - top.leading_zeros())
    }))
}

fn ec_parsed(kp: &EcdsaKeyPair) -> Result<ParsedKey, KeyParseError> {
    let invalid = |m: String| KeyParseError::Invalid {
        kind: "EC",
        message: m,
    };
    let pkcs8 = kp
        .to_pkcs8v1()
        .map_err(|_| invalid("cannot encode as PKCS#8".into()))?
        .as_ref()
        .to_vec();
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(&pkcs8);
    let (jwk, kid) = public_jwk(&encoding, SigningAlg::ES256).map_err(invalid)?;
    Ok(ParsedKey {
        alg: SigningAlg::ES256,
        kid,
        signing_der: pkcs8.clone(),
        pkcs8,
        jwk,
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
    let bits = rsa_modulus_bits(pkcs1).map_err(invalid)?;
    if bits < 2048 {
        return Err(KeyParseError::RsaTooSmall(bits));
    }
    let kp = aws_lc_rs::rsa::KeyPair::from_der(pkcs1).map_err(|e| invalid(e.to_string()))?;
    let pkcs8 = kp
        .as_der()
        .map_err(|e| invalid(e.to_string()))?
        .as_ref()
        .to_vec();
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(pkcs1);
    let (jwk, kid) = public_jwk(&encoding, SigningAlg::RS256).map_err(invalid)?;
    Ok(ParsedKey {
        alg: SigningAlg::RS256,
        kid,
        pkcs8,
        signing_der: pkcs1.to_vec(),
        jwk,
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

/// A self-signed certificate of the key, subject = issuer = `CN=<cn>`, valid from an hour
/// before the key was made for ten years plus the token lifetime; base64 DER.
fn self_signed_x5c(
    pkcs8: &[u8],
    cn: &str,
    created: i64,
    lifetime: i64,
) -> Result<String, KeyError> {
    let kp = rcgen::KeyPair::try_from(pkcs8).map_err(gen_err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before =
        time::OffsetDateTime::from_unix_timestamp(created.saturating_sub(3600)).map_err(gen_err)?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(
        created
            .saturating_add(10 * 365 * 86_400)
            .saturating_add(lifetime),
    )
    .map_err(gen_err)?;
    let cert = params.self_signed(&kp).map_err(gen_err)?;
    Ok(B64.encode(cert.der()))
}

fn record(key: &ParsedKey, now: i64, lifetime: i64) -> Result<KeyRecord, KeyError> {
    Ok(KeyRecord {
        kid: key.kid.clone(),
        alg: key.alg,
        private_der: B64.encode(&key.signing_der),
        x5c: self_signed_x5c(&key.pkcs8, DEFAULT_CN, now, lifetime)?,
        public_jwk: key.public_jwk(),
        created: now,
        retired_at: None,
    })
}

fn generate(alg: SigningAlg, now: i64, lifetime: i64) -> Result<KeyRecord, KeyError> {
    let key = parse_pkcs8(&generate_pkcs8(alg)?).map_err(gen_err)?;
    record(&key, now, lifetime)
}

/// Decodes a record's private key once (a corrupt store fails at start, not per token).
fn load(rec: KeyRecord) -> Result<LoadedKey, KeyError> {
    let corrupt = |m: String| KeyError::Corrupt {
        kid: rec.kid.clone(),
        message: m,
    };
    let der = B64
        .decode(&rec.private_der)
        .map_err(|e| corrupt(e.to_string()))?;
    let (signer, pkcs8, encoding) = match rec.alg {
        SigningAlg::ES256 => {
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|e| corrupt(e.to_string()))?;
            let enc = jsonwebtoken::EncodingKey::from_ec_der(&der);
            (SigningKey::Ec(kp), der.clone(), enc)
        }
        SigningAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::from_der(&der).map_err(|e| corrupt(e.to_string()))?;
            let pkcs8 = kp
                .as_der()
                .map_err(|e| corrupt(e.to_string()))?
                .as_ref()
                .to_vec();
            let enc = jsonwebtoken::EncodingKey::from_rsa_der(&der);
            (SigningKey::Rsa(kp), pkcs8, enc)
        }
    };
    let (mut jwk, kid) = public_jwk(&encoding, rec.alg).map_err(corrupt)?;
    if kid != rec.kid {
        return Err(corrupt(format!(
            "the private key's thumbprint is {kid}, not the stored kid"
        )));
    }
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match rec.alg {
        SigningAlg::ES256 => KeyAlgorithm::ES256,
        SigningAlg::RS256 => KeyAlgorithm::RS256,
    });
    Ok(LoadedKey {
        rec,
        signer,
        pkcs8,
        jwk,
        x5c: Arc::default(),
        headers: Arc::default(),
        file: None,
    })
}

impl KeyRing {
    /// Managed keys: loads them from the store, creating the first key of `alg` when there is
    /// none or when the active key has another algorithm (the old one is retired, not deleted:
    /// it stays in the JWKS until its last token has expired).
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
            issuer: DEFAULT_CN.into(),
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
            .map_or(SigningAlg::RS256, |(_, k)| k.alg);
        let set = dir_set(&parsed, &KeySet::default(), token_lifetime, now)?;
        Ok(Self {
            source: Source::Directory(cfg),
            alg,
            token_lifetime,
            issuer: DEFAULT_CN.into(),
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// The issuer named in the `x5c` certificates of [`KeyRing::jwks`] (`CN=<issuer>`).
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Directory mode: replaces the whole key set with the keys of `files`, atomically. On error
    /// the current set stays. Unchanged keys keep their `x5c`. Concurrent calls must be
    /// serialized by the caller ([`crate::server::Service::reload_config`] does).
    pub fn reload_dir(&self, files: &[KeyFile], now: i64) -> Result<DirKeys, KeyError> {
        let Source::Directory(cfg) = &self.source else {
            return Err(gen_err("not a directory key ring"));
        };
        let parsed = crate::keyfile::parse_key_files(&cfg.dir, files, cfg.active.as_deref())?;
        // Build the new set outside the lock, then swap it in. Directory rings change only
        // here; callers serialize reloads.
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

    /// Signs claims with the active key: a compact JWS with header `typ: JWT`, `alg`, `kid` and
    /// `jku`.
    pub fn sign(&self, claims: &Value, jku: Option<&str>) -> Result<String, KeyError> {
        let set = self.snapshot();
        let k = set
            .active()
            .ok_or_else(|| gen_err("no active signing key"))?;
        let header = k.header(jku)?;
        let body = serde_json::to_vec(claims).map_err(gen_err)?;
        let mut token = String::with_capacity(header.len() + body.len() * 4 / 3 + 360);
        token.push_str(&header);
        token.push('.');
        B64URL.encode_string(&body, &mut token);
        let sig = k.signer.sign(token.as_bytes())?;
        token.push('.');
        B64URL.encode_string(sig, &mut token);
        Ok(token)
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
            let k = if k.rec.retired_at.is_none() {
                let retired = k.retire(now)?;
                persist(store, &retired.rec)?;
                Arc::new(retired)
            } else {
                Arc::clone(k)
            };
            // Drop keys whose tokens have all expired.
            if k.rec.retired_at.is_some_and(|r| r < keep_after) {
                if let Some(s) = store {
                    s.remove(Table::Keys, &k.rec.kid)?;
                }
            } else {
                kept.push(k);
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

    /// The JWK Set with `x5c` certificates naming the ring's issuer ([`KeyRing::with_issuer`]).
    pub fn jwks(&self, now: i64) -> Value {
        self.jwks_for(&self.issuer, now)
    }

    /// The JWK Set, each key with `kid`, `alg`, `use` and an `x5c` certificate whose subject and
    /// issuer are `CN=<issuer>`: RSA keys first, then the others; within each, the active key
    /// first, then every other key whose tokens may still be valid (managed) or every other key
    /// file (directory), newest (last-named) first. A key whose certificate cannot be made is
    /// published without `x5c` (and logged).
    pub fn jwks_for(&self, issuer: &str, now: i64) -> Value {
        let set = self.snapshot();
        let mut published = set.published(now, self.token_lifetime);
        published.sort_by_key(|k| !k.is_rsa());
        let keys: Vec<Value> = published
            .into_iter()
            .map(|k| {
                let mut jwk = k.jwk.clone();
                match k.x5c(issuer, self.token_lifetime) {
                    Ok(c) => jwk.common.x509_chain = Some(vec![c.to_string()]),
                    Err(e) => tracing::error!(kid = %k.rec.kid, error = %e, "no x5c certificate"),
                }
                serde_json::to_value(&jwk).unwrap_or(Value::Null)
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
            Some(k) => Arc::new(k.with(k.rec.clone(), Some(name.clone()))?),
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
        // RFC 7638 §3.1 example key and thumbprint: the independent oracle for the kid.
        let jwk: Jwk = serde_json::from_value(json!({"kty": "RSA", "e": "AQAB", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"})).unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // And the kid of a generated key is the thumbprint of exactly the JWKS members.
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let key = parse_pkcs8(&generate_pkcs8(alg).unwrap()).unwrap();
            let published: Jwk = serde_json::from_value(key.public_jwk()).unwrap();
            assert_eq!(
                published.thumbprint(ThumbprintHash::SHA256).unwrap(),
                key.kid
            );
        }
    }

    #[test]
    fn jwks_certificates_name_the_issuer_and_rsa_keys_come_first() {
        let ring = KeyRing::open(None, SigningAlg::ES256, 100, 1000)
            .unwrap()
            .with_issuer("https://attest.example");
        // An RSA key becomes active; the EC key is retired but still published.
        let ec_kid = ring.active_kid().unwrap();
        let rsa_kid = {
            let rsa = load(generate(SigningAlg::RS256, 1010, 100).unwrap()).unwrap();
            let kid = rsa.rec.kid.clone();
            let mut keys = ring.snapshot().keys.clone();
            keys.push(Arc::new(rsa));
            *ring.set.write().unwrap() = Arc::new(KeySet::managed(keys));
            kid
        };
        let jwks = ring.jwks(1020);
        assert_eq!(kids_of(&jwks), vec![rsa_kid.clone(), ec_kid.clone()]);
        // With the EC key active again, RSA still comes first.
        let mut keys = ring.snapshot().keys.clone();
        keys.reverse();
        *ring.set.write().unwrap() = Arc::new(KeySet {
            keys,
            active: Some(1),
        });
        assert_eq!(ring.active_kid(), Some(ec_kid.clone()));
        assert_eq!(kids_of(&ring.jwks(1020)), vec![rsa_kid, ec_kid]);
        for (issuer, jwks) in [
            ("https://attest.example", ring.jwks(1020)),
            (
                "https://other.example:8443",
                ring.jwks_for("https://other.example:8443", 1020),
            ),
        ] {
            for k in jwks["keys"].as_array().unwrap() {
                assert_eq!(k["use"], "sig");
                assert!(k["alg"] == "RS256" || k["alg"] == "ES256");
                let der = B64.decode(k["x5c"][0].as_str().unwrap()).unwrap();
                let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
                assert_eq!(cert.subject().to_string(), format!("CN={issuer}"));
                assert_eq!(cert.issuer().to_string(), format!("CN={issuer}"));
                // The certificate carries the JWK's key.
                use x509_parser::public_key::PublicKey;
                match cert.public_key().parsed().unwrap() {
                    PublicKey::RSA(rsa) => {
                        let n = rsa.modulus.iter().skip_while(|b| **b == 0).copied();
                        assert_eq!(
                            n.collect::<Vec<u8>>(),
                            B64URL.decode(k["n"].as_str().unwrap()).unwrap()
                        );
                    }
                    PublicKey::EC(point) => {
                        let x = B64URL.decode(k["x"].as_str().unwrap()).unwrap();
                        let y = B64URL.decode(k["y"].as_str().unwrap()).unwrap();
                        assert_eq!(point.data(), [&[4u8][..], &x, &y].concat());
                    }
                    other => panic!("unexpected key {other:?}"),
                }
            }
        }
        // Cached: the same certificate bytes on the next request.
        assert_eq!(ring.jwks(1020), ring.jwks(1030));
    }

    #[test]
    fn token_header_is_typ_jwt_with_kid_and_jku_and_verifies_with_x5c() {
        for alg in [SigningAlg::ES256, SigningAlg::RS256] {
            let ring = KeyRing::open(None, alg, 3600, 1_000_000)
                .unwrap()
                .with_issuer("https://a");
            let token = ring
                .sign(&json!({"sub": "x"}), Some("https://a/certs"))
                .unwrap();
            let head: Value =
                serde_json::from_slice(&B64URL.decode(token.split('.').next().unwrap()).unwrap())
                    .unwrap();
            assert_eq!(
                head,
                json!({"typ": "JWT", "alg": alg.name(), "kid": ring.active_kid().unwrap(),
                       "jku": "https://a/certs"})
            );
            // Verify with the public key of x5c[0] (what Microsoft's SDKs do).
            let jwks = ring.jwks(1_000_000);
            let der = B64
                .decode(jwks["keys"][0]["x5c"][0].as_str().unwrap())
                .unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            let spki = cert.public_key().subject_public_key.data.to_vec();
            let key = match alg {
                SigningAlg::RS256 => jsonwebtoken::DecodingKey::from_rsa_der(&spki),
                SigningAlg::ES256 => jsonwebtoken::DecodingKey::from_ec_der(&spki),
            };
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.required_spec_claims.clear();
            let data = jsonwebtoken::decode::<Value>(&token, &key, &v).unwrap();
            assert_eq!(data.claims["sub"], "x");
        }
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
        // RSA keys first (Gramine's MAA client stops at the first key that is not RSA).
        assert_eq!(
            kids_of(&r1.jwks(1000)),
            vec![rsa_kid.clone(), ec_kid.clone()]
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
