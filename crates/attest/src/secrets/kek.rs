//! The key-encryption key (`--secrets-kek-file`) and AES-256-GCM sealing of stored values.
//!
//! The file holds 32 random bytes as base64 (one line). When absent it is generated and written
//! atomically with mode 0600 (a temporary file in the same directory, fsynced, then renamed), so a
//! crash never leaves a half-written key. Each sealed value is `nonce(12) ‖ ciphertext ‖ tag(16)`
//! with the secret's name and version as associated data, so a stored record cannot be moved to
//! another name or version without failing to open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why the key-encryption key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// The file cannot be read, created or written.
    #[error("secrets KEK file {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The file does not hold a 32-byte key in base64.
    #[error(
        "secrets KEK file {path}: not a key: expected 32 bytes in base64 (one line), as \
         generated on first start"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// The system RNG failed.
    #[error("the system random number generator failed")]
    Rng,
}

/// Why a sealed value cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Wrong key, tampered record, or a record moved to another name/version.
    #[error(
        "the stored value does not open with this KEK (wrong --secrets-kek-file, or the record was altered)"
    )]
    Open,
    /// Sealing failed (the RNG).
    #[error("sealing failed")]
    Seal,
}

/// The KEK, zeroized on drop.
pub struct Kek {
    key: LessSafeKey,
    path: PathBuf,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn aad(name: &str, version: u64) -> Vec<u8> {
    format!("confkube-secret\0{name}\0{version}").into_bytes()
}

impl Kek {
    /// A KEK from raw bytes (tests, and after reading the file).
    pub fn from_bytes(bytes: &[u8; 32], path: PathBuf) -> Result<Self, KekError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| KekError::Malformed { path: path.clone() })?;
        Ok(Self {
            key: LessSafeKey::new(key),
            path,
        })
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the KEK file, or generates it (0600, atomically) when it does not exist.
    pub fn load_or_generate(path: &Path) -> Result<Self, KekError> {
        let io = |e: &dyn std::fmt::Display| KekError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        match std::fs::read(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let trimmed = std::str::from_utf8(&text)
                    .map_err(|_| KekError::Malformed {
                        path: path.to_path_buf(),
                    })?
                    .trim();
                let raw = Zeroizing::new(B64.decode(trimmed).map_err(|_| KekError::Malformed {
                    path: path.to_path_buf(),
                })?);
                let bytes: Zeroizing<[u8; 32]> =
                    Zeroizing::new(raw.as_slice().try_into().map_err(|_| KekError::Malformed {
                        path: path.to_path_buf(),
                    })?);
                Self::from_bytes(&bytes, path.to_path_buf())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                aws_lc_rs::rand::fill(bytes.as_mut_slice()).map_err(|_| KekError::Rng)?;
                let text = Zeroizing::new(format!("{}\n", B64.encode(bytes.as_slice())));
                write_atomic_private(path, text.as_bytes()).map_err(|e| io(&e))?;
                tracing::info!(path = %path.display(), "generated the secrets key-encryption key");
                Self::from_bytes(&bytes, path.to_path_buf())
            }
            Err(e) => Err(io(&e)),
        }
    }

    /// Seals a value of secret `name` version `version`.
    pub fn seal(&self, name: &str, version: u64, value: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + value.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(value);
        let body = out.get_mut(NONCE_LEN..).ok_or(SealError::Seal)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name, version)),
                body,
            )
            .map_err(|_| SealError::Seal)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a sealed value; the plaintext is zeroized when dropped.
    pub fn open(
        &self,
        name: &str,
        version: u64,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN).ok_or(SealError::Open)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Open)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let n = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name, version)),
                &mut buf,
            )
            .map_err(|_| SealError::Open)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

/// Writes `bytes` to `path` with mode 0600: a temporary file beside it, fsync, rename, fsync of
/// the directory.
pub(crate) fn write_atomic_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "kek".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("confkube-kek-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn generated_once_0600_and_reused() {
        let dir = tmp("gen");
        let path = dir.join("sub").join("secrets.kek");
        let a = Kek::load_or_generate(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(B64.decode(text.trim()).unwrap().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let sealed = a.seal("db", 1, b"pw").unwrap();
        let b = Kek::load_or_generate(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(&*b.open("db", 1, &sealed).unwrap(), b"pw");
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secrets.kek")]);
    }

    #[test]
    fn sealed_values_are_bound_to_name_version_and_key() {
        let k = Kek::from_bytes(&[7u8; 32], "k".into()).unwrap();
        let sealed = k.seal("db", 2, b"value").unwrap();
        assert_ne!(sealed.get(12..17), Some(&b"value"[..]));
        assert_eq!(&*k.open("db", 2, &sealed).unwrap(), b"value");
        assert_eq!(k.open("db", 1, &sealed).unwrap_err(), SealError::Open);
        assert_eq!(k.open("dc", 2, &sealed).unwrap_err(), SealError::Open);
        let other = Kek::from_bytes(&[8u8; 32], "k".into()).unwrap();
        assert_eq!(other.open("db", 2, &sealed).unwrap_err(), SealError::Open);
        let mut t = sealed.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(k.open("db", 2, &t).unwrap_err(), SealError::Open);
        assert_eq!(k.open("db", 2, &[1, 2]).unwrap_err(), SealError::Open);
    }

    #[test]
    fn malformed_file_is_named() {
        let dir = tmp("bad");
        let path = dir.join("kek");
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        assert_eq!(
            Kek::load_or_generate(&path).unwrap_err().to_string(),
            format!(
                "secrets KEK file {}: not a key: expected 32 bytes in base64 (one line), as \
                 generated on first start",
                path.display()
            )
        );
        let e = Kek::load_or_generate(&dir).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("secrets KEK file {}: ", dir.display())),
            "{e}"
        );
    }
}
