//! Subcommands. Each module owns its clap arguments and a `run` function returning the exit code.

mod enclave;
mod webhook;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Intel SGX enclave nodes for Kubernetes, and proof of what runs in them.
#[derive(Debug, Parser)]
#[command(name = "confkube", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // One variant per subsystem; keep one line each.
    /// Measure MRENCLAVE, dump, sign/re-sign (key file or HSM two-step) and compute MRSIGNER.
    Enclave(enclave::EnclaveArgs),
    /// Serve the SGX admission webhook (EPC normalization, device/aesmd injection, validation).
    Webhook(webhook::WebhookArgs),
}

pub(crate) fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Enclave(args) => enclave::run(args),
        Command::Webhook(args) => webhook::run(args),
    }
}
