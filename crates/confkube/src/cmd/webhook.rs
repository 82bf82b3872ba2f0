//! `confkube webhook`: the HTTPS admission webhook for SGX pods. Parses flags into a
//! `kube_sgx::Config`, loads the serving certificate, builds the tokio runtime, serves until
//! SIGINT/SIGTERM. Logging is set up by the global `--log-format`/`--log-level` flags.
//! All pod logic is in `kube-sgx`, all serving in `webhook`.
//!
//! `confkube webhook certgen` keeps the webhook's self-signed serving certificate in a Secret
//! and its CA in the webhook configurations' `caBundle`, for clusters without cert-manager
//! (`webhook::certgen`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use webhook::certgen::ServiceName;
use webhook::certgen::cluster::{self, CertgenOptions};
use webhook::kube_sgx::k8s_openapi::api::core::v1::{NodeSelectorRequirement, Toleration};
use webhook::kube_sgx::{self, Config};
use webhook::{CertFiles, Options, ReloadingCert, Server, tls_reload};

use super::runtime::{self, Threads};

fn reload_interval(s: &str) -> Result<Duration, String> {
    super::parse_duration_within(s, Duration::from_millis(100), Duration::from_secs(3600))
}

/// Serve the SGX admission webhook: /mutate-pods normalizes EPC requests (aliases → sgx.intel.com/epc),
/// adds the enclave/provision devices, aesmd socket, tolerations and affinity; /validate-pods
/// denies pods that are not normalized or are invalid. Also /healthz, /readyz, /metrics.
/// `confkube webhook certgen` makes its certificate when cert-manager is not installed.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct WebhookArgs {
    #[command(subcommand)]
    command: Option<WebhookCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Create or renew the webhook's self-signed serving certificate Secret and set caBundle in
    /// its webhook configurations (for clusters without cert-manager; run as a Helm hook Job).
    Certgen(CertgenArgs),
}

/// Flags of the server (`confkube webhook --tls-cert ... --tls-key ...`).
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address and port to listen on (HTTPS).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// PEM certificate chain, leaf first (e.g. tls.crt of a cert-manager Secret). Re-read
    /// when it changes.
    #[arg(long, value_name = "FILE", required = true)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate (e.g. tls.key). Re-read when it changes.
    #[arg(long, value_name = "FILE", required = true)]
    tls_key: Option<PathBuf>,
    /// How often to check the certificate files for changes (seconds, or 500ms, 1m, ...).
    /// Also accepted as --tls-reload-interval.
    #[arg(long, value_name = "DURATION", default_value = "10s", alias = "tls-reload-interval",
          value_parser = reload_interval)]
    config_reload_interval: Duration,
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
    /// Largest AdmissionReview body accepted, in bytes: a larger declared Content-Length gets
    /// HTTP 413 before the body is read. Also accepted as --max-body-bytes.
    #[arg(long, value_name = "BYTES", default_value_t = webhook::DEFAULT_MAX_BODY_BYTES,
          alias = "max-body-bytes")]
    body_limit: usize,
    #[command(flatten)]
    limits: super::ServerLimits,
    /// Allow every pod unchanged without inspecting it (emergency bypass; benchmark baseline).
    #[arg(long)]
    passthrough: bool,
}

/// Makes sure the Secret holds a CA and serving certificate valid for the Service (reused while
/// valid; a new CA and certificate otherwise, or when expiring within --renew-before-days), and
/// sets clientConfig.caBundle on every webhook of the named configurations that calls the
/// Service. A new CA goes into caBundle (next to the previous one) before the Secret is written.
/// Exit 0 when done, 1 when the API server refuses or fails, 2 on a usage error.
#[derive(Debug, Args)]
struct CertgenArgs {
    /// Namespace of the webhook Service and of the Secret.
    #[arg(long, value_name = "NS", value_parser = dns_label)]
    namespace: String,
    /// Name of the webhook Service; the certificate covers SVC, SVC.NS, SVC.NS.svc and
    /// SVC.NS.svc.<cluster-domain>.
    #[arg(long, value_name = "SVC", value_parser = dns_label)]
    service: String,
    /// Name of the kubernetes.io/tls Secret (keys tls.crt, tls.key, ca.crt) to create or renew.
    #[arg(long, value_name = "NAME", value_parser = dns_subdomain)]
    secret: String,
    /// MutatingWebhookConfiguration whose caBundle to set; repeatable.
    #[arg(long = "mutating-webhook", value_name = "NAME", value_parser = dns_subdomain)]
    mutating_webhook: Vec<String>,
    /// ValidatingWebhookConfiguration whose caBundle to set; repeatable.
    #[arg(long = "validating-webhook", value_name = "NAME", value_parser = dns_subdomain)]
    validating_webhook: Vec<String>,
    /// Skip (and log) a --mutating-webhook or --validating-webhook configuration that does not
    /// exist yet instead of failing, e.g. in a pre-install hook that runs before the chart
    /// creates them.
    #[arg(long)]
    skip_missing_webhooks: bool,
    /// Kubeconfig file; default $KUBECONFIG, ~/.kube/config, then the pod's service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Lifetime of a new CA and certificate, in days.
    #[arg(long, value_name = "N", default_value_t = 3650,
          value_parser = clap::value_parser!(i64).range(1..=36500))]
    validity_days: i64,
    /// Replace a certificate that expires within this many days.
    #[arg(long, value_name = "N", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(0..=36500))]
    renew_before_days: i64,
    /// The cluster's DNS domain.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local", value_parser = cluster_domain)]
    cluster_domain: String,
}

fn dns_label(s: &str) -> Result<String, String> {
    webhook::certgen::check_dns_label(s).map(|()| s.to_owned())
}

fn dns_subdomain(s: &str) -> Result<String, String> {
    webhook::certgen::check_dns_subdomain(s).map(|()| s.to_owned())
}

fn cluster_domain(s: &str) -> Result<String, String> {
    let s = s.strip_suffix('.').unwrap_or(s);
    webhook::certgen::check_dns_subdomain(s).map(|()| s.to_owned())
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

pub(crate) fn run(args: WebhookArgs) -> Result<ExitCode> {
    if let Some(WebhookCommand::Certgen(args)) = args.command {
        return certgen(args);
    }
    serve(args.serve)
}

fn certgen(args: CertgenArgs) -> Result<ExitCode> {
    if args.renew_before_days >= args.validity_days {
        anyhow::bail!(
            "--renew-before-days {} must be less than --validity-days {}, or every run would \
             replace the certificate",
            args.renew_before_days,
            args.validity_days
        );
    }
    let name = ServiceName::new(args.namespace, args.service, args.cluster_domain);
    let opts = CertgenOptions::new(name, args.secret)
        .with_mutating_webhooks(args.mutating_webhook)
        .with_validating_webhooks(args.validating_webhook)
        .with_skip_missing_webhooks(args.skip_missing_webhooks)
        .with_validity(time::Duration::days(args.validity_days))
        .with_renew_before(time::Duration::days(args.renew_before_days));
    runtime::run(Threads::One, async {
        let result = async {
            let client = cluster::client(args.kubeconfig.as_deref()).await?;
            cluster::run(&client, &opts, time::OffsetDateTime::now_utc()).await
        }
        .await;
        match result {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(e) if e.is_usage() => Err(anyhow::Error::new(e)),
            Err(e) => {
                eprintln!("error: {:#}", anyhow::Error::from(e));
                Ok(ExitCode::FAILURE)
            }
        }
    })
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let (Some(tls_cert), Some(tls_key)) = (args.tls_cert, args.tls_key) else {
        anyhow::bail!("--tls-cert and --tls-key are required");
    };
    let files = CertFiles {
        cert: tls_cert,
        key: tls_key,
    };
    let store = ReloadingCert::load(files, tls_reload::default_provider())
        .context("cannot load the serving certificate")?;
    let config = Config::new()
        .with_tolerations(args.tolerate)
        .with_node_affinity(args.node_label)
        .with_max_epc_per_pod(args.max_epc_per_pod);
    let limits = args
        .limits
        .limits(args.body_limit, webhook::DEFAULT_BODY_TIMEOUT);
    let options = Options::new(config)
        .with_limits(limits)
        .with_passthrough(args.passthrough)
        .with_reload_interval(args.config_reload_interval);
    runtime::run(Threads::PerCore, async {
        let server = Server::bind(
            args.listen,
            Arc::new(store),
            options,
            runtime::metrics_registry(),
        )
        .await
        .context("cannot start the webhook server")?;
        let addr = server.local_addr().unwrap_or(args.listen);
        tracing::info!(%addr, passthrough = args.passthrough, "serving /mutate-pods and /validate-pods");
        server.serve(runtime::shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
