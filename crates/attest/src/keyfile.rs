//! Token signing keys from PEM files: one key per file, in a directory mounted from a Kubernetes
//! Secret (`--signing-key-dir`), so that several stateless replicas sign with the same keys.
//!
//! Accepted: PKCS#8 `PRIVATE KEY` (P-256 EC or RSA ≥ 2048 bits), SEC1 `EC PRIVATE KEY` (P-256),
//! PKCS#1 `RSA PRIVATE KEY` (≥ 2048 bits). `EC PARAMETERS` blocks (as `openssl ecparam -genkey`
//! writes them) are ignored; encrypted keys and any other block are refused. Names starting with
//! `.` are skipped: a Secret volume holds `..data` and `..<timestamp>` entries beside the keys.
//!
//! Parsing ([`parse_key_pem`], [`parse_key_files`]) is pure; [`read_key_dir`] is the only IO.
//! Specs: RFC 7468 (PEM), RFC 5208 (PKCS#8), RFC 5915 (SEC1), RFC 8017 (PKCS#1), RFC 7638 (kid).

use crate::keys::{ParsedKey, SigningAlg};
use std::path::{Path, PathBuf};

/// Largest key file read: a PEM RSA-8192 key is about 6.5 KiB.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Where signing keys come from in directory mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDirConfig {
    /// The directory (a Secret volume mount).
    pub dir: PathBuf,
    /// The file whose key signs; `None` = the file whose name sorts last.
    pub active: Option<String>,
}

/// One key file as read from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The file name (not hidden, UTF-8).
    pub name: String,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// Why one PEM file is not a usable signing key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyParseError {
    /// No private key block.
    #[error(
        "no PEM private key (expected a BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or BEGIN RSA \
         PRIVATE KEY block)"
    )]
    NoKey,
    /// The PEM framing or base64 is broken.
    #[error("malformed PEM: {0}")]
    Malformed(String),
    /// An encrypted key.
    #[error(
        "encrypted private keys are not supported; store it unencrypted in the Secret (openssl \
         pkey -in KEY -out PLAIN.pem)"
    )]
    Encrypted,
    /// A block that is not a private key.
    #[error(
        "unexpected PEM block {0:?} (a key file holds one PRIVATE KEY, EC PRIVATE KEY or RSA \
         PRIVATE KEY block)"
    )]
    UnexpectedBlock(String),
    /// Two or more keys in one file.
    #[error("more than one private key in one file (one key per file)")]
    SeveralKeys,
    /// A key type other than EC or RSA.
    #[error("unsupported key algorithm {0} (use a P-256 EC key for ES256 or RSA for RS256)")]
    UnsupportedAlgorithm(String),
    /// An EC key on another curve.
    #[error("EC key on curve {0} is not supported (only P-256, for ES256)")]
    UnsupportedCurve(String),
    /// An RSA key below 2048 bits.
    #[error("RSA key of {0} bits is too small (at least 2048)")]
    RsaTooSmall(u32),
    /// The key material is invalid.
    #[error("invalid {kind} key: {message}")]
    Invalid {
        /// `PKCS#8`, `EC` or `RSA`.
        kind: &'static str,
        /// What the parser said.
        message: String,
    },
}

/// Why a key directory cannot be used. Every message names the directory or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDirError {
    /// The directory cannot be listed.
    #[error("signing key directory {dir}: {message}")]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// A file cannot be read or is not a key.
    #[error("signing key file {path}: {reason}")]
    File {
        /// The file (as named in the directory, not its `..data` target).
        path: PathBuf,
        /// Why.
        reason: FileProblem,
    },
    /// No key files.
    #[error(
        "signing key directory {dir} holds no key files (names starting with '.' are skipped); \
         add a PEM private key, e.g. one written by `confkube attest keygen`"
    )]
    NoKeys {
        /// The directory.
        dir: PathBuf,
    },
    /// `--active-signing-key` names no file.
    #[error("--active-signing-key {name}: no key file of that name in {dir} (found: {found})")]
    ActiveMissing {
        /// The name given.
        name: String,
        /// The directory.
        dir: PathBuf,
        /// The key files present, comma-separated.
        found: String,
    },
    /// The same key in two files.
    #[error("signing key file {path} holds the same key as {other} (kid {kid})")]
    Duplicate {
        /// The later file.
        path: PathBuf,
        /// The earlier file.
        other: String,
        /// The key id.
        kid: String,
    },
}

/// What is wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileProblem {
    /// Reading failed.
    #[error("cannot read: {0}")]
    Read(String),
    /// Not a regular file (after following symlinks).
    #[error("not a regular file")]
    NotAFile,
    /// Larger than [`MAX_KEY_FILE`].
    #[error("larger than {MAX_KEY_FILE} bytes, not a key")]
    TooLarge,
    /// The name is not UTF-8.
    #[error("the file name is not UTF-8")]
    NameNotUtf8,
    /// Not a usable key.
    #[error(transparent)]
    Key(KeyParseError),
}

/// A parsed key directory: keys in file-name order and the active one.
#[derive(Debug)]
pub struct KeySetFiles {
    /// (file name, key), sorted by file name.
    pub(crate) keys: Vec<(String, ParsedKey)>,
    /// Index of the signing key in `keys`.
    pub(crate) active: usize,
}

impl KeySetFiles {
    /// The active key's file name.
    pub fn active_name(&self) -> &str {
        self.keys.get(self.active).map_or("", |(n, _)| n.as_str())
    }

    /// (file name, kid) of every key, in file-name order.
    pub fn kids(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .map(|(n, k)| (n.clone(), k.kid.clone()))
            .collect()
    }
}

struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// Every PEM block, decoded by the `pem` crate (RFC 7468; text outside blocks is ignored, CRLF
/// accepted, RFC 1421 headers parsed). Each `-----BEGIN` is decoded on its own so that an error
/// names its block.
fn pem_blocks(text: &[u8]) -> Result<Vec<PemBlock>, KeyParseError> {
    let text = std::str::from_utf8(text)
        .map_err(|_| KeyParseError::Malformed("the file is not UTF-8 text".into()))?;
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(BEGIN) {
        let block = rest.get(at..).unwrap_or_default();
        let label = block
            .get(BEGIN.len()..)
            .and_then(|l| l.split_once("-----"))
            .map_or("", |(l, _)| l)
            .to_string();
        let parsed = pem::parse(block).map_err(|e| match e {
            pem::PemError::MismatchedTags(b, e) => {
                KeyParseError::Malformed(format!("BEGIN {b} is closed by END {e}"))
            }
            pem::PemError::InvalidData(e) => {
                KeyParseError::Malformed(format!("the {label} block is not valid base64: {e}"))
            }
            pem::PemError::MalformedFraming | pem::PemError::MissingEndTag => {
                KeyParseError::Malformed(format!("the {label} block has no END line"))
            }
            other => KeyParseError::Malformed(format!("the {label} block: {other}")),
        })?;
        if parsed
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"))
        {
            return Err(KeyParseError::Encrypted);
        }
        // Continue after this block's END line.
        let end = format!("-----END {}-----", parsed.tag());
        rest = block
            .find(&end)
            .and_then(|i| block.get(i + end.len()..))
            .unwrap_or_default();
        blocks.push(PemBlock {
            label: parsed.tag().to_string(),
            der: parsed.into_contents(),
        });
    }
    Ok(blocks)
}

enum KeyKind {
    Pkcs8,
    Sec1,
    Pkcs1,
}

/// Parses one PEM key file into a signing key (pure).
pub fn parse_key_pem(text: &[u8]) -> Result<ParsedKey, KeyParseError> {
    let mut key: Option<(KeyKind, Vec<u8>)> = None;
    for b in pem_blocks(text)? {
        let kind = match b.label.as_str() {
            "PRIVATE KEY" => KeyKind::Pkcs8,
            "EC PRIVATE KEY" => KeyKind::Sec1,
            "RSA PRIVATE KEY" => KeyKind::Pkcs1,
            "EC PARAMETERS" => continue,
            "ENCRYPTED PRIVATE KEY" => return Err(KeyParseError::Encrypted),
            other => return Err(KeyParseError::UnexpectedBlock(other.to_string())),
        };
        if key.is_some() {
            return Err(KeyParseError::SeveralKeys);
        }
        key = Some((kind, b.der));
    }
    match key {
        None => Err(KeyParseError::NoKey),
        Some((KeyKind::Pkcs8, der)) => crate::keys::parse_pkcs8(&der),
        Some((KeyKind::Sec1, der)) => crate::keys::parse_sec1(&der),
        Some((KeyKind::Pkcs1, der)) => crate::keys::parse_pkcs1(&der),
    }
}

/// A PKCS#8 `PRIVATE KEY` PEM document.
pub fn pkcs8_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A new key as a PKCS#8 PEM document, and its kid (`confkube attest keygen`).
pub fn generate_pem(alg: SigningAlg) -> Result<(String, String), crate::keys::KeyError> {
    let pkcs8 = crate::keys::generate_pkcs8(alg)?;
    let parsed = crate::keys::parse_pkcs8(&pkcs8)
        .map_err(|e| crate::keys::KeyError::Generate(e.to_string()))?;
    Ok((pkcs8_pem(&pkcs8), parsed.kid))
}

/// Parses a key directory's files and picks the active key (pure). `dir` only names files in
/// errors.
pub fn parse_key_files(
    dir: &Path,
    files: &[KeyFile],
    active: Option<&str>,
) -> Result<KeySetFiles, KeyDirError> {
    let mut sorted: Vec<&KeyFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    if sorted.is_empty() {
        return Err(KeyDirError::NoKeys {
            dir: dir.to_path_buf(),
        });
    }
    let mut keys: Vec<(String, ParsedKey)> = Vec::with_capacity(sorted.len());
    for f in sorted {
        let parsed = parse_key_pem(&f.contents).map_err(|e| KeyDirError::File {
            path: dir.join(&f.name),
            reason: FileProblem::Key(e),
        })?;
        if let Some((other, _)) = keys.iter().find(|(_, k)| k.kid == parsed.kid) {
            return Err(KeyDirError::Duplicate {
                path: dir.join(&f.name),
                other: other.clone(),
                kid: parsed.kid,
            });
        }
        keys.push((f.name.clone(), parsed));
    }
    let active =
        match active {
            None => keys.len().saturating_sub(1),
            Some(name) => keys.iter().position(|(n, _)| n == name).ok_or_else(|| {
                KeyDirError::ActiveMissing {
                    name: name.to_string(),
                    dir: dir.to_path_buf(),
                    found: keys
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?,
        };
    Ok(KeySetFiles { keys, active })
}

/// Reads every non-hidden file of a key directory, sorted by name.
///
/// A Kubernetes Secret volume publishes an update by pointing the `..data` symlink at a new
/// `..<timestamp>` directory; when `..data` exists the files are read from its target, and the
/// read is retried when the target changed meanwhile, so one call sees one version of the Secret.
pub fn read_key_dir(dir: &Path) -> Result<Vec<KeyFile>, KeyDirError> {
    let data_link = dir.join("..data");
    let mut last = None;
    for _ in 0..3 {
        let before = std::fs::read_link(&data_link).ok();
        let root = match &before {
            Some(_) => std::fs::canonicalize(&data_link).unwrap_or_else(|_| dir.to_path_buf()),
            None => dir.to_path_buf(),
        };
        let result = read_files(dir, &root);
        let after = std::fs::read_link(&data_link).ok();
        if before == after {
            return result;
        }
        last = Some(result);
    }
    // The Secret changed during every attempt: report the last result.
    last.unwrap_or_else(|| {
        Err(KeyDirError::ReadDir {
            dir: dir.to_path_buf(),
            message: "changed during every read".into(),
        })
    })
}

fn read_files(dir: &Path, root: &Path) -> Result<Vec<KeyFile>, KeyDirError> {
    let read_dir_err = |e: std::io::Error| KeyDirError::ReadDir {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).map_err(read_dir_err)? {
        let entry = entry.map_err(read_dir_err)?;
        let os_name = entry.file_name();
        let file_err = |reason: FileProblem| KeyDirError::File {
            path: dir.join(&os_name),
            reason,
        };
        let Some(name) = os_name.to_str() else {
            return Err(file_err(FileProblem::NameNotUtf8));
        };
        if name.starts_with('.') {
            continue;
        }
        let path = root.join(name);
        let meta =
            std::fs::metadata(&path).map_err(|e| file_err(FileProblem::Read(e.to_string())))?;
        if !meta.is_file() {
            return Err(file_err(FileProblem::NotAFile));
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(file_err(FileProblem::TooLarge));
        }
        let contents =
            std::fs::read(&path).map_err(|e| file_err(FileProblem::Read(e.to_string())))?;
        files.push(KeyFile {
            name: name.to_string(),
            contents,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    };

    fn pem(label: &str, der: &[u8]) -> String {
        pkcs8_pem(der).replace("PRIVATE KEY", label)
    }

    fn ec_pkcs8() -> Vec<u8> {
        crate::keys::generate_pkcs8(SigningAlg::ES256).unwrap()
    }

    fn rsa_pkcs8() -> Vec<u8> {
        crate::keys::generate_pkcs8(SigningAlg::RS256).unwrap()
    }

    /// A 1024-bit RSA key made with `openssl genrsa -traditional 1024`, for the size check only.
    const RSA_1024: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXwIBAAKBgQDldPvV870bvAGxLAnbhjEfzfPiD7f37jCN5aPZqEDIQls+Oi3v
/vqYnGbCJxkGyKd8p7fHKJrhyQfTc0ad29/ig8hWVefEwoqAYvaMur/a2QlgkT4a
iGoVJ78vYBa0x7pn1h803hO7j9iIktI/gBzjSAIn3gp1BZyG2+xv7wJCzwIDAQAB
AoGBAMETgN11bUkrGBlnPxwzfJ6QhIlSRLEhAkZEV21NAMYB4Bkqh4ENAvzrjiQN
Fif5K8XesuuopTscF7O7qk4mt+mgomsQDzizHOVN766aioom1Ri7N3TmjlJfbKAJ
C328ZVKdGIYm5T/6b/BIRRoV/7YOhyLoO+b31rS4eDblQENxAkEA9bvI++WzKby+
NqvyjxArKJdj1vt6gbvuPn9VT+QRQoHkcKHaG6PW743E71+0+xOQwwW9X0OqkKnH
7823XQ+v2wJBAO8LHU4AgWOrteLFySYenRYMZhrFbH9Tcqxin+Ny8G7qI3oWKVKS
UzSQpRd3/Unzfo3zARLB7fPUugFi5kxpNR0CQQClFqS/PqFwT+JGnpxVqtoj6hlk
LA0wrY4wpKEvDBzgXp2XYdVDLn5O8CK3YsgWyh0+OFPydWZYzAeLvtwKhGhzAkEA
kEsdPWCAujGEcYcCjMgd+pkxaSeS/qjYp8ZAzYMsL0eWcrO97eH1590ISspbUrBw
zC7Ljw8RHAZk4UFZ0vYO4QJBAL89x2XZ0BhTppuiuTWf7Dh8/vrOj6mnYAcpMXv7
PPIKSQdPLqVpGxxiGkfIxWDSJdalo1KNApnSVgTHfkTDMhI=
-----END RSA PRIVATE KEY-----
";

    #[test]
    fn each_pem_type_parses_to_the_same_kid_as_its_pkcs8_form() {
        // EC: PKCS#8 and SEC1 (with the EC PARAMETERS block `openssl ecparam -genkey` writes).
        let ec8 = ec_pkcs8();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &ec8).unwrap();
        let sec1 = kp.private_key().as_der().unwrap();
        let a = parse_key_pem(pkcs8_pem(&ec8).as_bytes()).unwrap();
        let params =
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        let b =
            parse_key_pem(format!("{params}{}", pem("EC PRIVATE KEY", sec1.as_ref())).as_bytes())
                .unwrap();
        assert_eq!((a.alg, b.alg), (SigningAlg::ES256, SigningAlg::ES256));
        assert_eq!(a.kid, b.kid);
        assert_eq!(a.public_jwk()["crv"], "P-256");
        assert_eq!(a.kid.len(), 43);
        // RSA: PKCS#8 and PKCS#1, with CRLF line ends.
        let rsa8 = rsa_pkcs8();
        let pkcs1 = crate::keys::pkcs1_from_pkcs8(&rsa8).unwrap();
        let c = parse_key_pem(pkcs8_pem(&rsa8).as_bytes()).unwrap();
        let d = parse_key_pem(
            pem("RSA PRIVATE KEY", &pkcs1)
                .replace('\n', "\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!((c.alg, d.alg), (SigningAlg::RS256, SigningAlg::RS256));
        assert_eq!(c.kid, d.kid);
        assert_eq!(c.public_jwk()["e"], "AQAB");
        assert_ne!(a.kid, c.kid);
    }

    #[test]
    fn bad_pem_files_are_explained() {
        let ec8 = ec_pkcs8();
        let good = pkcs8_pem(&ec8);
        let p384 = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let ed = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let truncated = good.replace("-----END PRIVATE KEY-----\n", "");
        let cases: Vec<(String, KeyParseError)> = vec![
            ("".into(), KeyParseError::NoKey),
            ("just some text\n".into(), KeyParseError::NoKey),
            (
                "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
                    .into(),
                KeyParseError::NoKey,
            ),
            (
                truncated,
                KeyParseError::Malformed("the PRIVATE KEY block has no END line".into()),
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".into(),
                KeyParseError::Malformed("BEGIN PRIVATE KEY is closed by END RSA PRIVATE KEY".into()),
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".into(),
                KeyParseError::Malformed(
                    "the PRIVATE KEY block is not valid base64: Invalid symbol 33, offset 0."
                        .into(),
                ),
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                    .into(),
                KeyParseError::Encrypted,
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
                    .into(),
                KeyParseError::Encrypted,
            ),
            (
                format!("{good}{}", pem("CERTIFICATE", b"x")),
                KeyParseError::UnexpectedBlock("CERTIFICATE".into()),
            ),
            (format!("{good}{good}"), KeyParseError::SeveralKeys),
            (
                pkcs8_pem(p384.as_ref()),
                KeyParseError::UnsupportedCurve("P-384".into()),
            ),
            (
                pkcs8_pem(ed.as_ref()),
                KeyParseError::UnsupportedAlgorithm("Ed25519 (1.3.101.112)".into()),
            ),
            (
                pem(
                    "EC PRIVATE KEY",
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, p384.as_ref())
                        .unwrap()
                        .private_key()
                        .as_der()
                        .unwrap()
                        .as_ref(),
                ),
                KeyParseError::UnsupportedCurve("P-384".into()),
            ),
            (RSA_1024.into(), KeyParseError::RsaTooSmall(1024)),
            (
                pkcs8_pem(b"\x30\x03\x02\x01\x00"),
                KeyParseError::Invalid {
                    kind: "PKCS#8",
                    message: "not a PrivateKeyInfo".into(),
                },
            ),
            (
                pem("EC PRIVATE KEY", b"\x30\x03\x02\x01\x01"),
                KeyParseError::Invalid {
                    kind: "EC",
                    message: "not a P-256 ECPrivateKey (UnexpectedError)".into(),
                },
            ),
            (
                pem("RSA PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
                KeyParseError::Invalid {
                    kind: "RSA",
                    message: "RSAPrivateKey without n and e".into(),
                },
            ),
        ];
        for (text, want) in cases {
            let got = parse_key_pem(text.as_bytes()).map(|k| k.kid);
            assert_eq!(got, Err(want), "{text}");
        }
        assert_eq!(
            KeyParseError::RsaTooSmall(1024).to_string(),
            "RSA key of 1024 bits is too small (at least 2048)"
        );
        assert_eq!(
            KeyParseError::NoKey.to_string(),
            "no PEM private key (expected a BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or BEGIN RSA \
             PRIVATE KEY block)"
        );
    }

    fn file(name: &str, contents: &str) -> KeyFile {
        KeyFile {
            name: name.into(),
            contents: contents.as_bytes().to_vec(),
        }
    }

    #[test]
    fn active_key_is_the_last_name_unless_named() {
        let (a, b, c) = (ec_pkcs8(), ec_pkcs8(), rsa_pkcs8());
        let files = vec![
            file("2026-02.pem", &pkcs8_pem(&b)),
            file("2026-01.pem", &pkcs8_pem(&a)),
            file("2025-12-rsa.pem", &pkcs8_pem(&c)),
        ];
        let dir = Path::new("/keys");
        let set = parse_key_files(dir, &files, None).unwrap();
        assert_eq!(set.active_name(), "2026-02.pem");
        let names: Vec<String> = set.kids().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["2025-12-rsa.pem", "2026-01.pem", "2026-02.pem"]);
        let set = parse_key_files(dir, &files, Some("2026-01.pem")).unwrap();
        assert_eq!(set.active_name(), "2026-01.pem");
        let e = parse_key_files(dir, &files, Some("2027.pem")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--active-signing-key 2027.pem: no key file of that name in /keys (found: \
             2025-12-rsa.pem, 2026-01.pem, 2026-02.pem)"
        );
    }

    #[test]
    fn no_keys_bad_files_and_duplicates_are_errors_naming_the_file() {
        let dir = Path::new("/keys");
        assert_eq!(
            parse_key_files(dir, &[], None).unwrap_err().to_string(),
            "signing key directory /keys holds no key files (names starting with '.' are \
             skipped); add a PEM private key, e.g. one written by `confkube attest keygen`"
        );
        let a = pkcs8_pem(&ec_pkcs8());
        let e =
            parse_key_files(dir, &[file("a.pem", &a), file("b.pem", "oops")], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "signing key file /keys/b.pem: no PEM private key (expected a BEGIN PRIVATE KEY, \
             BEGIN EC PRIVATE KEY or BEGIN RSA PRIVATE KEY block)"
        );
        let e = parse_key_files(dir, &[file("b.pem", &a), file("a.pem", &a)], None).unwrap_err();
        let kid = parse_key_pem(a.as_bytes()).unwrap().kid;
        assert_eq!(
            e.to_string(),
            format!("signing key file /keys/b.pem holds the same key as a.pem (kid {kid})")
        );
    }

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("confkube-keyfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[cfg(unix)]
    #[test]
    fn reads_a_secret_volume_layout_skipping_hidden_entries() {
        use std::os::unix::fs::symlink;
        let dir = tmp("secret");
        let key = pkcs8_pem(&ec_pkcs8());
        let ts = dir.join("..2026_01_01_00_00_00.000000001");
        std::fs::create_dir(&ts).unwrap();
        std::fs::write(ts.join("a.pem"), &key).unwrap();
        symlink("..2026_01_01_00_00_00.000000001", dir.join("..data")).unwrap();
        symlink("..data/a.pem", dir.join("a.pem")).unwrap();
        std::fs::write(dir.join(".hidden"), "not a key").unwrap();
        let files = read_key_dir(&dir).unwrap();
        assert_eq!(files, vec![file("a.pem", &key)]);

        // A plain directory works too; a hidden name is skipped, a subdirectory is refused.
        let plain = tmp("plain");
        std::fs::write(plain.join("k.pem"), &key).unwrap();
        std::fs::write(plain.join(".k.pem.swp"), "junk").unwrap();
        assert_eq!(read_key_dir(&plain).unwrap(), vec![file("k.pem", &key)]);
        std::fs::create_dir(plain.join("sub")).unwrap();
        assert_eq!(
            read_key_dir(&plain).unwrap_err().to_string(),
            format!(
                "signing key file {}: not a regular file",
                plain.join("sub").display()
            )
        );
        let e = read_key_dir(&dir.join("missing")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "signing key directory {}: No such file or directory (os error 2)",
                dir.join("missing").display()
            )
        );
    }
}
