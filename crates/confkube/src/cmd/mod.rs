//! Subcommands. Each module owns its clap arguments and a `run` function returning the exit code.

mod attest;
mod enclave;
mod node_agent;
mod quote;
mod testkit;
mod webhook;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Intel SGX enclave nodes for Kubernetes, and proof of what runs in them.
#[derive(Debug, Parser)]
#[command(name = "confkube", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter (tracing env-filter syntax, e.g. `info`, `confkube=debug`); default from
    /// RUST_LOG, else `info`.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs go to standard error; standard output is for data.
fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = level
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (only possible in tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[derive(Debug, Subcommand)]
enum Command {
    // One variant per subsystem; keep one line each.
    /// Verify SGX DCAP quotes; generate a test PKI with collateral and quotes.
    Quote(quote::QuoteArgs),
    /// The attestation service: verify quotes, apply policy, issue signed tokens (JWKS, OIDC).
    Attest(attest::AttestArgs),
    /// Measure MRENCLAVE, dump, sign/re-sign (key file or HSM two-step) and compute MRSIGNER.
    Enclave(enclave::EnclaveArgs),
    /// Serve the SGX admission webhook (EPC normalization, device/aesmd injection, validation).
    Webhook(webhook::WebhookArgs),
    /// Run the SGX node agent: discovery, kubelet device plugin, EPC capacity/labels, EPC metrics.
    NodeAgent(node_agent::NodeAgentArgs),
}

pub(crate) fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_format, cli.log_level.as_deref());
    match cli.command {
        Command::Quote(args) => quote::run(args),
        Command::Attest(args) => attest::run(args),
        Command::Enclave(args) => enclave::run(args),
        Command::Webhook(args) => webhook::run(args),
        Command::NodeAgent(args) => node_agent::run(args),
    }
}
