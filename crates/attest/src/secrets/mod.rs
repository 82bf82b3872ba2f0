//! Attestation-gated secret release (DESIGN.md §5b).
//!
//! An enclave proves itself (a token of this service, or a quote in the same request) and gets a
//! secret encrypted to a key only it holds: the first usable JWK of its runtime data, which the
//! quote binds through `report_data`. The answer is a compact JWE ([`jwe`]); the secret's release
//! policy is a confkube JSON policy evaluated on the token's claims ([`release`]).
//!
//! Secrets live in the embedded store, values sealed with AES-256-GCM under a key-encryption key
//! ([`kek`]), versions kept for rollback; or, for several stateless replicas, in mounted files (a
//! Kubernetes Secret for values, a ConfigMap for policies) polled like `--policy-file`
//! ([`model::FileBackend`], [`watch`]). Every release and denial is logged on the
//! `confkube::audit` target and counted in `confkube_attest_secret_releases_total`; values are
//! never logged, never labels, and zeroized after use.
//!
//! **Not here:** quote verification (the attestation path of [`crate::server`]), the MAA policy
//! language itself ([`maa_policy`]: a `{"maa": …}` release policy's `authorizationrules` are
//! evaluated over the SGX claim set an attestation policy sees, rebuilt from the token).
//!
//! **Specs:** DESIGN.md §5b; RFC 7516 (JWE), RFC 7517 (JWK), RFC 7518 §4.3, §4.6, §5.3 (RSA-OAEP-256,
//! ECDH-ES+A256KW, A256GCM), RFC 7638 (thumbprints for keys without `kid`).

mod http;
pub mod jwe;
pub mod kek;
pub mod model;
pub mod release;

pub use http::routes;

use crate::reload::ReloadOutcome;
use crate::server::Service;
use model::{Backend, FileBackend, fingerprint, parse_files, read_files};
use release::JtiLimiter;
use std::sync::Arc;
use std::time::Duration;

/// The `source` label of the secrets files in the reload metrics.
pub const SOURCE_SECRETS: &str = "secrets";

/// The secret release state of a service.
#[derive(Debug)]
pub struct Secrets {
    backend: Backend,
    limiter: JtiLimiter,
}

impl Secrets {
    /// Secrets from `backend`; at most `max_releases_per_token` releases per token `jti`
    /// (`None` = unlimited).
    pub fn new(backend: Backend, max_releases_per_token: Option<u32>) -> Self {
        Self {
            backend,
            limiter: JtiLimiter::new(max_releases_per_token),
        }
    }
}

/// Why secrets could not be enabled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// `enable_secrets` was called twice.
    #[error("secret release is already enabled")]
    AlreadyEnabled,
}

impl Service {
    /// Turns on the `/secrets` endpoints with `secrets`.
    pub fn enable_secrets(&self, secrets: Secrets) -> Result<(), SecretsError> {
        if matches!(secrets.backend, Backend::Files(_)) {
            self.metrics.config_source(SOURCE_SECRETS);
        }
        self.secrets
            .set(Arc::new(secrets))
            .map_err(|_| SecretsError::AlreadyEnabled)
    }

    /// Polls the secrets files once (blocking IO) and swaps a changed valid set in; a rejected
    /// set keeps the last good one (logged, `config_reloads{source="secrets",result="error"}`,
    /// `config_stale{source="secrets"} 1`).
    pub fn reload_secrets(&self) -> ReloadOutcome {
        let Some(Backend::Files(f)) = self.secrets.get().map(|s| &s.backend) else {
            return ReloadOutcome::NotConfigured;
        };
        reload_files(self, f)
    }
}

fn reload_files(svc: &Service, f: &FileBackend) -> ReloadOutcome {
    let mut seen = f
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let read = read_files(&f.cfg);
    let fp = fingerprint(&read);
    if *seen == Some(fp) {
        return ReloadOutcome::Unchanged;
    }
    *seen = Some(fp);
    match read.and_then(|r| parse_files(&f.cfg, r)) {
        Ok(set) => {
            let names = set_names(&set);
            *f.set
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
            svc.metrics.config_reload(SOURCE_SECRETS, true);
            tracing::info!(
                source = SOURCE_SECRETS,
                dir = %f.cfg.dir.display(),
                policy_file = %f.cfg.policy_file.display(),
                secrets = ?names,
                "reloaded the secrets"
            );
            ReloadOutcome::Applied
        }
        Err(e) => {
            svc.metrics.config_reload(SOURCE_SECRETS, false);
            tracing::error!(
                source = SOURCE_SECRETS,
                error = %e,
                "rejected the new secrets files; still releasing the last good set"
            );
            ReloadOutcome::Rejected(e.to_string())
        }
    }
}

fn set_names(set: &model::FileSet) -> Vec<String> {
    set.names()
}

/// Polls the secrets files every `every` until dropped (first poll one interval after start).
pub async fn watch(service: Arc<Service>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = Arc::clone(&service);
        if let Err(e) = tokio::task::spawn_blocking(move || s.reload_secrets()).await {
            tracing::error!(error = %e, "the secrets reload task failed");
        }
    }
}
