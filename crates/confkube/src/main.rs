//! The `confkube` binary: command-line parsing, logging and wiring. No business logic lives here.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    cmd::run(cli)
}
