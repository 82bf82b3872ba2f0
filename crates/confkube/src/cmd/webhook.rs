//! `confkube webhook`: the HTTPS admission webhook for SGX pods. Parses flags into a
//! `kube_sgx::Config`, loads the serving certificate, builds the tokio runtime, serves until
//! SIGINT/SIGTERM. Logging is set up by the global `--log-format`/`--log-level` flags.
//! All pod logic is in `kube-sgx`, all serving in `webhook`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use webhook::kube_sgx::k8s_openapi::api::core::v1::{NodeSelectorRequirement, Toleration};
use webhook::kube_sgx::{self, Config};
use webhook::{CertStore, Options, Registry, Server};

/// Serve the SGX admission webhook: /mutate-pods normalizes EPC requests (aliases → sgx.intel.com/epc),
/// adds the enclave/provision devices, aesmd socket, tolerations and affinity; /validate-pods
/// denies pods that are not normalized or are invalid. Also /healthz, /readyz, /metrics.
#[derive(Debug, Args)]
pub(crate) struct WebhookArgs {
    /// Address and port to listen on (HTTPS).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// PEM certificate chain, leaf first (e.g. tls.crt of a cert-manager Secret). Re-read
    /// when it changes.
    #[arg(long, value_name = "FILE")]
    tls_cert: PathBuf,
    /// PEM private key of the certificate (e.g. tls.key). Re-read when it changes.
    #[arg(long, value_name = "FILE")]
    tls_key: PathBuf,
    /// How often to check the certificate files for changes, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    tls_reload_interval: u64,
    /// Toleration to add to SGX pods, taint syntax KEY[=VALUE][:EFFECT]; repeatable
    /// (e.g. kubernetes.azure.com/sgx_epc_mem_in_MiB=true:NoSchedule).
    #[arg(long = "tolerate", value_name = "KEY[=VALUE][:EFFECT]", value_parser = toleration)]
    tolerate: Vec<Toleration>,
    /// Node label SGX pods must land on, as required node affinity KEY=VALUE; repeatable
    /// (e.g. sgx.intel.com/capable=true).
    #[arg(long = "node-label", value_name = "KEY=VALUE", value_parser = node_label)]
    node_label: Vec<NodeSelectorRequirement>,
    /// Deny pods whose total EPC exceeds this byte quantity (e.g. 256Mi).
    #[arg(long, value_name = "QUANTITY", value_parser = epc_max)]
    max_epc_per_pod: Option<u64>,
    /// Largest AdmissionReview body accepted, in bytes; larger bodies get HTTP 400.
    #[arg(long, value_name = "BYTES", default_value_t = webhook::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Allow every pod unchanged without inspecting it (emergency bypass; benchmark baseline).
    #[arg(long)]
    passthrough: bool,
}

fn toleration(s: &str) -> Result<Toleration, String> {
    kube_sgx::parse_toleration(s).map_err(|e| e.to_string())
}

fn node_label(s: &str) -> Result<NodeSelectorRequirement, String> {
    kube_sgx::parse_node_label(s).map_err(|e| e.to_string())
}

fn epc_max(s: &str) -> Result<u64, String> {
    kube_sgx::parse_epc_max(s).map_err(|e| e.to_string())
}

pub(crate) fn run(args: WebhookArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confkube webhook: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: WebhookArgs) -> Result<()> {
    let store = CertStore::load(&args.tls_cert, &args.tls_key)
        .context("cannot load the serving certificate")?;
    let config = Config::new()
        .with_tolerations(args.tolerate)
        .with_node_affinity(args.node_label)
        .with_max_epc_per_pod(args.max_epc_per_pod);
    let options = Options::new(config)
        .with_max_body_bytes(args.max_body_bytes)
        .with_passthrough(args.passthrough)
        .with_reload_interval(Duration::from_secs(args.tls_reload_interval));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(args.listen, Arc::new(store), options, Registry::default())
            .await
            .context("cannot start the webhook server")?;
        let addr = server.local_addr().unwrap_or(args.listen);
        tracing::info!(%addr, passthrough = args.passthrough, "serving /mutate-pods and /validate-pods");
        server.serve(shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
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
    tracing::info!("shutdown requested; draining connections");
}
