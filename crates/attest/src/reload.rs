//! Hot reload of the mounted configuration: the signing key directory (`--signing-key-dir`, a
//! Kubernetes Secret), the policy file (`--policy-file`, a ConfigMap) and the HTTPS certificate
//! and key (`--tls-cert`/`--tls-key`, a Secret that cert-manager renews; a
//! [`tls_reload::ReloadingCert`] polled by [`watch_tls`]).
//!
//! Kubernetes updates such a volume by pointing its `..data` symlink at a new directory, which
//! leaves file mtimes meaningless; so each poll reads the contents and compares a SHA-256
//! fingerprint with the last one seen. A changed source is parsed completely and then swapped in
//! one step (an in-flight request keeps the key set or policy it already holds). A source whose
//! new content is rejected keeps serving the last good configuration, logs the file and the
//! reason, counts `confkube_attest_config_reloads_total{source,result="error"}` once per
//! content change and sets `confkube_attest_config_stale{source}` to 1 until a good version
//! arrives.
//!
//! At start-up the same readers run inside [`Service::new`], where a bad file is an error.

use crate::keyfile::{KeyDirError, KeyFile, read_key_dir};
use crate::keys::KeyError;
use crate::policy_doc::ActivePolicy;
use crate::server::Service;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tls_reload::{Reload, ReloadingCert};

/// The `source` label of the signing key directory.
pub const SOURCE_SIGNING_KEYS: &str = "signing-keys";
/// The `source` label of the policy file.
pub const SOURCE_POLICY: &str = "policy";
/// The `source` label of the TLS certificate and key files.
pub const SOURCE_TLS: &str = "tls";

/// Largest policy file read.
pub const MAX_POLICY_FILE: u64 = 1 << 20;

/// Why the policy file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy file {path}: {message}")]
pub struct PolicyFileError {
    /// The file.
    pub path: PathBuf,
    /// Why: a read error or the policy validation message.
    pub message: String,
}

pub(crate) type Fingerprint = [u8; 32];

/// The fingerprints of the contents last seen (applied or rejected), per source.
#[derive(Debug, Default)]
pub(crate) struct ReloadState {
    pub(crate) keys: Option<Fingerprint>,
    pub(crate) policy: Option<Fingerprint>,
}

/// What one poll did with one source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The source is not configured.
    NotConfigured,
    /// Same contents as last time.
    Unchanged,
    /// New contents applied.
    Applied,
    /// New contents rejected (the message names the file and the reason); the last good
    /// configuration stays.
    Rejected(String),
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// `--signing-key-dir`.
    pub signing_keys: ReloadOutcome,
    /// `--policy-file`.
    pub policy: ReloadOutcome,
}

pub(crate) fn sha256(parts: &[&[u8]]) -> Fingerprint {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        // Length-prefix each part so that ("ab", "c") and ("a", "bc") differ.
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The fingerprint of a key directory read: names and contents, or the read error.
pub(crate) fn keys_fingerprint(read: &Result<Vec<KeyFile>, KeyDirError>) -> Fingerprint {
    match read {
        Ok(files) => {
            let mut parts: Vec<&[u8]> = vec![b"files"];
            for f in files {
                parts.push(f.name.as_bytes());
                parts.push(&f.contents);
            }
            sha256(&parts)
        }
        Err(e) => sha256(&[b"error", e.to_string().as_bytes()]),
    }
}

/// The fingerprint of a policy file read: its contents, or the read error.
pub(crate) fn policy_fingerprint(read: &Result<Vec<u8>, PolicyFileError>) -> Fingerprint {
    match read {
        Ok(bytes) => sha256(&[b"file", bytes]),
        Err(e) => sha256(&[b"error", e.to_string().as_bytes()]),
    }
}

/// Reads the policy file (following symlinks, as a ConfigMap mount needs).
pub(crate) fn read_policy_bytes(path: &Path) -> Result<Vec<u8>, PolicyFileError> {
    use std::io::Read as _;
    let err = |m: String| PolicyFileError {
        path: path.to_path_buf(),
        message: m,
    };
    let f = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    f.take(MAX_POLICY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_POLICY_FILE {
        return Err(err(format!("larger than {MAX_POLICY_FILE} bytes")));
    }
    Ok(bytes)
}

/// Parses policy file contents: the document `PUT /policies/SgxEnclave` accepts, in either
/// language (confkube JSON, or MAA's policy language: detected).
pub fn parse_policy_file(path: &Path, bytes: &[u8]) -> Result<ActivePolicy, PolicyFileError> {
    ActivePolicy::parse(bytes).map_err(|e| PolicyFileError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl Service {
    /// Polls the configured sources once and applies what changed (blocking file IO: call it
    /// from a blocking context, as [`watch`] does).
    pub fn reload_config(&self) -> ReloadReport {
        let mut state = self
            .reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ReloadReport {
            signing_keys: self.reload_keys(&mut state),
            policy: self.reload_policy(&mut state),
        }
    }

    fn reload_keys(&self, state: &mut ReloadState) -> ReloadOutcome {
        let Some(cfg) = &self.cfg.signing_key_dir else {
            return ReloadOutcome::NotConfigured;
        };
        let read = read_key_dir(&cfg.dir);
        let fp = keys_fingerprint(&read);
        if state.keys == Some(fp) {
            return ReloadOutcome::Unchanged;
        }
        state.keys = Some(fp);
        let result = read
            .map_err(KeyError::from)
            .and_then(|files| self.keys.reload_dir(&files, self.now()));
        match result {
            Ok(loaded) => {
                self.metrics.config_reload(SOURCE_SIGNING_KEYS, true);
                tracing::info!(
                    source = SOURCE_SIGNING_KEYS,
                    dir = %cfg.dir.display(),
                    active_file = %loaded.active_file,
                    active_kid = %loaded.active_kid,
                    keys = ?loaded.keys,
                    "reloaded the signing keys"
                );
                ReloadOutcome::Applied
            }
            Err(e) => {
                self.metrics.config_reload(SOURCE_SIGNING_KEYS, false);
                tracing::error!(
                    source = SOURCE_SIGNING_KEYS,
                    error = %e,
                    active_kid = self.keys.active_kid().unwrap_or_default(),
                    "rejected the new signing keys; still signing with the last good ones"
                );
                ReloadOutcome::Rejected(e.to_string())
            }
        }
    }

    fn reload_policy(&self, state: &mut ReloadState) -> ReloadOutcome {
        let Some(path) = &self.cfg.policy_file else {
            return ReloadOutcome::NotConfigured;
        };
        let read = read_policy_bytes(path);
        let fp = policy_fingerprint(&read);
        if state.policy == Some(fp) {
            return ReloadOutcome::Unchanged;
        }
        state.policy = Some(fp);
        match read.and_then(|bytes| parse_policy_file(path, &bytes)) {
            Ok(policy) => {
                let hash = policy.hash();
                self.set_policy(policy);
                self.metrics.config_reload(SOURCE_POLICY, true);
                tracing::info!(
                    source = SOURCE_POLICY,
                    file = %path.display(),
                    policy_hash = %hash,
                    "reloaded the policy"
                );
                ReloadOutcome::Applied
            }
            Err(e) => {
                self.metrics.config_reload(SOURCE_POLICY, false);
                tracing::error!(
                    source = SOURCE_POLICY,
                    error = %e,
                    "rejected the new policy; still applying the last good one"
                );
                ReloadOutcome::Rejected(e.to_string())
            }
        }
    }
}

impl Service {
    /// Polls the TLS certificate and key files of `tls` once (blocking file IO), swaps a changed
    /// valid pair in, and counts and logs the outcome under `source="tls"`. A rejected pair is
    /// [`ReloadOutcome::Rejected`] with the [`tls_reload::TlsFileError`] message, once per content
    /// change.
    pub fn reload_tls(&self, tls: &ReloadingCert) -> ReloadOutcome {
        match tls.reload_if_changed() {
            Ok(Reload::Unchanged) => ReloadOutcome::Unchanged,
            Ok(Reload::Swapped { not_after }) => {
                self.metrics.config_reload(SOURCE_TLS, true);
                tracing::info!(
                    source = SOURCE_TLS,
                    cert = %tls.files().cert.display(),
                    key = %tls.files().key.display(),
                    not_after = not_after.unwrap_or_default(),
                    "reloaded the TLS certificate"
                );
                ReloadOutcome::Applied
            }
            Err(e) => {
                self.metrics.config_reload(SOURCE_TLS, false);
                tracing::error!(
                    source = SOURCE_TLS,
                    error = %e,
                    not_after = tls.not_after().unwrap_or_default(),
                    "rejected the new TLS certificate; still serving the last good one"
                );
                ReloadOutcome::Rejected(e.to_string())
            }
        }
    }
}

/// Polls the TLS certificate and key files every `every` until the task is dropped (the first
/// poll one interval after the start). Calling it creates the `source="tls"` metric series.
pub fn watch_tls(
    service: Arc<Service>,
    tls: Arc<ReloadingCert>,
    every: Duration,
) -> impl Future<Output = ()> + Send + 'static {
    service.metrics.config_source(SOURCE_TLS);
    async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (s, t) = (Arc::clone(&service), Arc::clone(&tls));
            if let Err(e) = tokio::task::spawn_blocking(move || s.reload_tls(&t)).await {
                tracing::error!(error = %e, "the TLS certificate reload task failed");
            }
        }
    }
}

/// Polls the configured sources every `every` until the task is dropped. The first poll is one
/// interval after the start (start-up loaded the sources already).
pub async fn watch(service: Arc<Service>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = Arc::clone(&service);
        if let Err(e) = tokio::task::spawn_blocking(move || s.reload_config()).await {
            tracing::error!(error = %e, "the configuration reload task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_contents_not_files() {
        let f = |n: &str, c: &str| KeyFile {
            name: n.into(),
            contents: c.as_bytes().to_vec(),
        };
        let a = keys_fingerprint(&Ok(vec![f("a", "1"), f("b", "2")]));
        assert_eq!(a, keys_fingerprint(&Ok(vec![f("a", "1"), f("b", "2")])));
        assert_ne!(a, keys_fingerprint(&Ok(vec![f("a", "1"), f("b", "3")])));
        assert_ne!(a, keys_fingerprint(&Ok(vec![f("a", "1"), f("c", "2")])));
        assert_ne!(a, keys_fingerprint(&Ok(vec![f("a", "12"), f("b", "")])));
        let p = policy_fingerprint(&Ok(b"{}".to_vec()));
        assert_ne!(p, policy_fingerprint(&Ok(b"{ }".to_vec())));
        let missing = PolicyFileError {
            path: "/p".into(),
            message: "cannot read: gone".into(),
        };
        assert_ne!(p, policy_fingerprint(&Err(missing)));
    }

    #[test]
    fn policy_file_errors_name_the_file_and_reason() {
        let dir =
            std::env::temp_dir().join(format!("confkube-reload-policy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        assert_eq!(
            read_policy_bytes(&missing).unwrap_err().to_string(),
            format!(
                "policy file {}: cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let big = dir.join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_POLICY_FILE + 1) as usize]).unwrap();
        assert_eq!(
            read_policy_bytes(&big).unwrap_err().to_string(),
            format!("policy file {}: larger than 1048576 bytes", big.display())
        );
        let p = Path::new("/etc/confkube/policy.json");
        assert_eq!(
            parse_policy_file(p, br#"{"rules": []}"#)
                .unwrap_err()
                .to_string(),
            "policy file /etc/confkube/policy.json: invalid policy: a policy needs at least one rule"
        );
        let e = parse_policy_file(p, b"{not json").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "policy file /etc/confkube/policy.json: invalid policy: not a policy document: "
            ),
            "{e}"
        );
    }
}
