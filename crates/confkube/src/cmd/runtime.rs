//! What the three servers (attest serve, webhook, node-agent) share: the tokio runtime, the
//! shutdown signal, the process's one metrics registry, and the exit-code policy: a failure to start (bad flags or files, a port
//! in use, a locked store) is an `Err` and exits 2; a server that started and then failed
//! returns exit code 1 itself; a requested shutdown exits 0.

use anyhow::{Context as _, Result};
use std::future::Future;
use std::process::ExitCode;

/// The process's one Prometheus registry (DESIGN §7.9): each server command creates it once
/// and passes it to the component that registers its metrics and serves `/metrics` (attest
/// `Service::with_registry`, webhook `Server::bind`, node-agent `agent::run`).
pub(crate) fn metrics_registry() -> prometheus_client::registry::Registry {
    prometheus_client::registry::Registry::default()
}

/// How many worker threads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Threads {
    /// One thread (the node agent: a few gRPC calls a second, low idle RSS).
    One,
    /// One per core (the HTTP servers).
    PerCore,
}

/// Builds the runtime and runs `server` on it.
pub(crate) fn run<F>(threads: Threads, server: F) -> Result<ExitCode>
where
    F: Future<Output = Result<ExitCode>>,
{
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(server)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}
