//! The admin bearer token: one strength rule for every source, and the check of a presented
//! token. Reading the file or the environment is the binary's job; this module only decides.
//!
//! Sources, in order: `--admin-token-file`, `CONFKUBE_ADMIN_TOKEN`, else a token generated once
//! into `DATA_DIR/admin-token`. A configured token (any source, including an existing generated
//! file) must be at least [`MIN_LEN`] characters with no whitespace; one trailing line ending of
//! a file is ignored. A generated token is [`GENERATED_BYTES`] random bytes (256 bits), hex.

use std::fmt;
use std::path::PathBuf;

/// Shortest accepted admin token, in characters.
pub const MIN_LEN: usize = 16;
/// Random bytes in a generated token (hex-encoded: 64 characters, 256 bits of entropy).
pub const GENERATED_BYTES: usize = 32;

/// Where a token came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `--admin-token-file FILE`.
    File(PathBuf),
    /// The `CONFKUBE_ADMIN_TOKEN` environment variable (or `--admin-token`).
    Env,
    /// The generated `DATA_DIR/admin-token`.
    Generated(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(
                f,
                "the admin token file {} (--admin-token-file)",
                p.display()
            ),
            Self::Env => f.write_str("CONFKUBE_ADMIN_TOKEN (or --admin-token)"),
            Self::Generated(p) => write!(f, "the generated admin token file {}", p.display()),
        }
    }
}

/// Why a configured token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// Empty (or only a line ending).
    #[error("{from} is empty; {fix}", fix = fix(from))]
    Empty {
        /// Where it came from.
        from: TokenSource,
    },
    /// Shorter than [`MIN_LEN`].
    #[error("the admin token from {from} has {len} characters; at least {MIN_LEN} are required")]
    TooShort {
        /// Where it came from.
        from: TokenSource,
        /// Its length in characters.
        len: usize,
    },
    /// Holds whitespace.
    #[error(
        "the admin token from {from} contains whitespace; use a token without spaces, tabs or line breaks"
    )]
    Whitespace {
        /// Where it came from.
        from: TokenSource,
    },
    /// The system random generator failed.
    #[error("cannot generate an admin token: the system random generator failed")]
    Random,
}

fn fix(source: &TokenSource) -> &'static str {
    match source {
        TokenSource::Generated(_) => "delete it to have a new token generated",
        _ => "put a token of at least 16 characters there",
    }
}

/// An admin token that passed the rule. Its text is only for writing the generated file.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Checks a configured token from `source`: one trailing `\n` or `\r\n` is dropped (files);
    /// anything else must be at least [`MIN_LEN`] characters without whitespace.
    pub fn parse(text: &str, source: TokenSource) -> Result<Self, AdminTokenError> {
        let t = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        if t.is_empty() {
            return Err(AdminTokenError::Empty { from: source });
        }
        if t.chars().any(char::is_whitespace) {
            return Err(AdminTokenError::Whitespace { from: source });
        }
        let len = t.chars().count();
        if len < MIN_LEN {
            return Err(AdminTokenError::TooShort { from: source, len });
        }
        Ok(Self(t.to_owned()))
    }

    /// A new random token ([`GENERATED_BYTES`] bytes from the system RNG, hex).
    pub fn generate() -> Result<Self, AdminTokenError> {
        let mut b = [0u8; GENERATED_BYTES];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| AdminTokenError::Random)?;
        Ok(Self(hex::encode(b)))
    }

    /// The token text (to write the generated file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 the service compares presented tokens with.
    pub fn sha256(&self) -> [u8; 32] {
        sha256(self.0.as_bytes())
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref());
    out
}

/// Whether `presented` (the bearer token of a request) is the token whose SHA-256 is
/// `expected`: an empty token never is; the digests are compared in constant time.
pub fn presented_matches(expected: &[u8; 32], presented: &str) -> bool {
    let presented = presented.trim();
    if presented.is_empty() {
        return false;
    }
    aws_lc_rs::constant_time::verify_slices_are_equal(&sha256(presented.as_bytes()), expected)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_gets_the_same_rule() {
        let file = TokenSource::File("/etc/t".into());
        let generated = TokenSource::Generated("d/admin-token".into());
        assert_eq!(
            AdminToken::parse("", generated.clone())
                .unwrap_err()
                .to_string(),
            "the generated admin token file d/admin-token is empty; delete it to have a new \
             token generated"
        );
        assert_eq!(
            AdminToken::parse("\n", file.clone())
                .unwrap_err()
                .to_string(),
            "the admin token file /etc/t (--admin-token-file) is empty; put a token of at least \
             16 characters there"
        );
        assert_eq!(
            AdminToken::parse("   ", TokenSource::Env)
                .unwrap_err()
                .to_string(),
            "the admin token from CONFKUBE_ADMIN_TOKEN (or --admin-token) contains whitespace; \
             use a token without spaces, tabs or line breaks"
        );
        assert_eq!(
            AdminToken::parse("0123456789 abcdef", file.clone()).unwrap_err(),
            AdminTokenError::Whitespace { from: file.clone() }
        );
        assert_eq!(
            AdminToken::parse("short-token", TokenSource::Env)
                .unwrap_err()
                .to_string(),
            "the admin token from CONFKUBE_ADMIN_TOKEN (or --admin-token) has 11 characters; at \
             least 16 are required"
        );
        let ok = AdminToken::parse("0123456789abcdef\n", file).unwrap();
        assert_eq!(ok.expose(), "0123456789abcdef");
    }

    #[test]
    fn generated_tokens_have_256_bits_and_differ() {
        let a = AdminToken::generate().unwrap();
        let b = AdminToken::generate().unwrap();
        assert_eq!(a.expose().len(), 2 * GENERATED_BYTES);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(AdminToken::parse(a.expose(), TokenSource::Generated("x".into())).is_ok());
    }

    #[test]
    fn an_empty_presented_token_never_matches() {
        // Even against the digest of the empty string (what an empty file used to give).
        let empty = sha256(b"");
        assert!(!presented_matches(&empty, ""));
        assert!(!presented_matches(&empty, "   "));
        let t = AdminToken::parse("0123456789abcdef", TokenSource::Env).unwrap();
        assert!(presented_matches(&t.sha256(), "0123456789abcdef"));
        assert!(!presented_matches(&t.sha256(), "0123456789abcdeF"));
    }
}
