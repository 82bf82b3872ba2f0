//! The `confkube` binary: command-line parsing, logging and wiring. No business logic lives here.

mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let json = cmd::wants_json(std::env::args_os());
    match cmd::Cli::try_parse() {
        Ok(cli) => cmd::run(cli, json),
        Err(e) => cmd::usage_error(&e, json),
    }
}
