//! Subcommands. Each module owns its clap arguments and a `run` function returning the exit code.

mod attest;
mod enclave;
mod node_agent;
mod quote;
mod runtime;
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

/// Runs the command. `json`: the command line asked for `--format json`, so an error that exits
/// 2 is also printed as one JSON object on standard output.
pub(crate) fn run(cli: Cli, json: bool) -> ExitCode {
    init_logging(cli.log_format, cli.log_level.as_deref());
    let result = match cli.command {
        Command::Quote(args) => quote::run(args),
        Command::Attest(args) => attest::run(args),
        Command::Enclave(args) => enclave::run(args),
        Command::Webhook(args) => webhook::run(args),
        Command::NodeAgent(args) => node_agent::run(args),
    };
    result.unwrap_or_else(|e| fail("io-error", &format!("{e:#}"), json))
}

/// The error `CODE` of a command-line usage error in `--format json` output.
pub(crate) const USAGE_ERROR: &str = "usage-error";

/// Prints `error: MESSAGE` on standard error (and, with `json`, `{"error": CODE, "message":
/// MESSAGE}` on standard output) and returns exit code 2.
pub(crate) fn fail(code: &str, message: &str, json: bool) -> ExitCode {
    eprintln!("error: {message}");
    if json {
        println!("{}", serde_json::json!({"error": code, "message": message}));
    }
    ExitCode::from(2)
}

/// Whether the command line asks for `--format json` (`--format json` or `--format=json`);
/// read from the raw arguments because a usage error happens before they are parsed.
pub(crate) fn wants_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let mut prev_format = false;
    for a in args {
        if a == "--" {
            return false;
        }
        if a == "--format=json" || (prev_format && a == "json") {
            return true;
        }
        prev_format = a == "--format";
    }
    false
}

/// Reports a clap error: help and version go to standard output (exit 0); a usage error to
/// standard error, and with `json` also as one JSON object on standard output (exit 2).
pub(crate) fn usage_error(e: &clap::Error, json: bool) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let _ = e.print();
    if json {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        let message = first.strip_prefix("error: ").unwrap_or(first);
        println!(
            "{}",
            serde_json::json!({"error": USAGE_ERROR, "message": message})
        );
    }
    ExitCode::from(2)
}

/// The connection bounds of an HTTP server (attest serve, webhook): the same flags, names and
/// defaults in both; see the `http-guard` crate and docs/operations.md.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerLimits {
    /// A new connection must send its first request's headers within this time (after the TLS
    /// handshake), and so must a keep-alive request once its first byte arrived.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = timeout)]
    header_timeout: std::time::Duration,
    /// A connection with no request in flight (HTTP/1.1 keep-alive, HTTP/2 without an open
    /// stream) is closed after this time.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = timeout)]
    idle_timeout: std::time::Duration,
    /// A TLS handshake must finish within this time after the connection is accepted.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = timeout)]
    tls_handshake_timeout: std::time::Duration,
    /// A request body must arrive within this time [default: 30s for attest serve, 10s for the
    /// webhook].
    #[arg(long, value_name = "DURATION", value_parser = timeout)]
    body_timeout: Option<std::time::Duration>,
    /// Connections held at once. Beyond it a new connection is accepted and the oldest one
    /// without a request in flight is closed for it (or the new one, when all are busy).
    /// Keep it below the file-descriptor limit.
    #[arg(long, value_name = "N", default_value_t = http_guard_default_max_connections(),
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
}

const fn http_guard_default_max_connections() -> u64 {
    512
}

impl ServerLimits {
    /// The limits, with the server's body limit and default body timeout.
    pub(crate) fn limits(
        &self,
        body_limit: usize,
        default_body_timeout: std::time::Duration,
    ) -> ::webhook::Limits {
        ::webhook::Limits::default()
            .with_header_timeout(self.header_timeout)
            .with_idle_timeout(self.idle_timeout)
            .with_handshake_timeout(self.tls_handshake_timeout)
            .with_body_timeout(self.body_timeout.unwrap_or(default_body_timeout))
            .with_max_connections(usize::try_from(self.max_connections).unwrap_or(usize::MAX))
            .with_body_limit(body_limit)
    }
}

fn timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(
        s,
        std::time::Duration::from_millis(10),
        std::time::Duration::from_secs(86_400),
    )
}

/// [`parse_duration`] within `min..=max`.
pub(crate) fn parse_duration_within(
    s: &str,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d < min || d > max {
        return Err(format!(
            "{s:?} is out of range ({}ms to {}s)",
            min.as_millis(),
            max.as_secs()
        ));
    }
    Ok(d)
}

/// A duration flag: seconds, or a number with a unit (`500ms`, `30s`, `5m`, `8h`, `1d`); the one
/// convention of every duration flag.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30, 500ms, 30s, 5m, 8h, 1d)"))?;
    let millis_per = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    match n.checked_mul(millis_per) {
        Some(ms) if ms > 0 => Ok(std::time::Duration::from_millis(ms)),
        _ => Err(format!("{s:?} must be a positive duration")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(28_800)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("5y"),
            Err("\"5y\": unknown unit \"y\" (ms, s, m, h, d)".into())
        );
        assert_eq!(
            parse_duration("0"),
            Err("\"0\" must be a positive duration".into())
        );
        assert_eq!(
            parse_duration("h"),
            Err("\"h\" is not a duration (e.g. 30, 500ms, 30s, 5m, 8h, 1d)".into())
        );
        assert_eq!(
            parse_duration("99999999999999999d"),
            Err("\"99999999999999999d\" must be a positive duration".into())
        );
    }

    #[test]
    fn json_is_detected_in_both_spellings() {
        let v = |a: &[&str]| wants_json(a.iter().map(std::ffi::OsString::from));
        assert!(v(&["confkube", "quote", "verify", "--format", "json"]));
        assert!(v(&["confkube", "enclave", "dump", "--format=json", "x"]));
        assert!(!v(&["confkube", "quote", "verify", "--format", "text"]));
        assert!(!v(&["confkube", "enclave", "dump", "--", "--format=json"]));
        assert!(!v(&["confkube", "json"]));
    }
}
