//! `confkube attest serve`: the attestation service on its embedded store, or — for several
//! stateless replicas — with signing keys and policy from mounted files (`--signing-key-dir`,
//! `--policy-file`), hot-reloaded; the HTTPS certificate (`--tls-cert`/`--tls-key`) is
//! hot-reloaded too. `confkube attest keygen`: a PEM signing key for that directory.

use super::quote::{load_anchor, parse_time};
use anyhow::{Context, Result, bail};
use attest::collateral::{
    CacheConfig, CollateralCache, CollateralSource, OfflineDir, PccsClient, PccsConfig,
    RootCrlSource,
};
use attest::keyfile::KeyDirConfig;
use attest::keys::SigningAlg;
use attest::provider::{ServiceClock, StorePersistence};
use attest::server::{Service, ServiceConfig};
use attest::store::Store;
use attest::tls_reload::{CertFiles, ReloadingCert, default_provider};
use clap::{Args, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The attestation service: verify SGX quotes, apply policy, issue signed tokens.
#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    #[command(subcommand)]
    command: AttestCommand,
}

#[derive(Debug, Subcommand)]
enum AttestCommand {
    /// Serve the MAA-shaped attestation API (POST /attest/SgxEnclave, /certs, OIDC, metrics).
    Serve(Box<ServeArgs>),
    /// Write a new token signing key (PKCS#8 PEM, mode 0600) for --signing-key-dir, e.g. to
    /// create the Kubernetes Secret: kubectl create secret generic NAME --from-file=FILE.
    Keygen(KeygenArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// One human-readable line.
    Text,
    /// One JSON object: alg, kid, path.
    Json,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Signature algorithm: RS256 (RSA-2048, the default, as Azure Attestation) or ES256 (P-256).
    #[arg(long, value_enum, default_value = "RS256")]
    alg: Alg,
    /// The key file to create (mode 0600). An existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
    /// Output format of the summary on standard output.
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Alg {
    /// ECDSA P-256.
    #[value(name = "ES256")]
    Es256,
    /// RSA-2048 PKCS#1 v1.5 (the default of serve, as Azure Attestation).
    #[value(name = "RS256")]
    Rs256,
}

fn parse_issuer(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => {
            Ok(trimmed.to_string())
        }
        _ => Err(format!(
            "{s:?} is not an issuer URL (https://host[:port][/path], as clients dial it)"
        )),
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Listen address. Plain HTTP only on loopback; anything else needs --tls-cert/--tls-key.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Embedded store (policies, signing keys, cached collateral), created 0700/0600.
    #[arg(long, default_value = "./confkube-data")]
    data_dir: PathBuf,
    /// Offline collateral: DIR/<fmspc as 12 lowercase hex>.json (dcap-qvl JSON), or the
    /// PCS-shaped layout of docs/attestation-collateral.md.
    #[arg(long)]
    collateral_dir: Option<PathBuf>,
    /// PCCS or Intel PCS API base, e.g. https://pccs.example:8081/sgx/certification/v4.
    #[arg(long)]
    pccs_url: Option<String>,
    /// Root CA CRL URL when the PCCS has no rootcacrl endpoint (the Intel PCS).
    #[arg(long)]
    root_crl_url: Option<String>,
    /// Extra CA certificates (PEM) trusted for the PCCS TLS connection.
    #[arg(long)]
    pccs_ca_bundle: Option<PathBuf>,
    /// Trust anchor certificate (DER or PEM). Default: the embedded Intel SGX Root CA key.
    #[arg(long)]
    root_ca: Option<PathBuf>,
    /// Pin the verification clock (RFC 3339 or Unix seconds): for archived collateral and tests.
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    /// Accept collateral without CRLs (tokens then say x-confkube-revocation-checked: false,
    /// and the default policy still rejects them).
    #[arg(long)]
    allow_missing_crls: bool,
    /// Token issuer (`iss`, base of jku and jwks_uri), e.g. https://attest.example.com: the URL
    /// clients dial (a trailing slash is dropped). Repeat for every external name the service is
    /// reached by: a request whose Host is an issuer's host[:port] gets that issuer, any other
    /// the first. Default: http(s)://<listen>.
    #[arg(long, value_name = "URL", value_parser = parse_issuer)]
    issuer: Vec<String>,
    /// Token lifetime: seconds, or with a unit (30m, 8h, 1d).
    #[arg(long, default_value = "8h", value_parser = parse_duration)]
    token_lifetime: i64,
    /// Algorithm of new token signing keys (not with --signing-key-dir: each key file has its
    /// own). RS256 (RSA-2048) as Azure Attestation; ES256 for relying parties that prefer it. A
    /// store whose active key has the other algorithm gets a new active key; the old one stays
    /// in /certs until its tokens have expired.
    #[arg(
        long,
        value_enum,
        default_value = "RS256",
        conflicts_with = "signing_key_dir"
    )]
    signing_alg: Alg,
    /// Token signing keys from a directory of PEM private keys (a mounted Kubernetes Secret:
    /// names starting with '.' are skipped) instead of the store: PKCS#8, SEC1 or PKCS#1; P-256
    /// or RSA >= 2048. Every key is published in /certs; the file whose name sorts last signs.
    /// Keys are never generated or stored, and POST /admin/keys/rotate is refused.
    #[arg(long, value_name = "DIR")]
    signing_key_dir: Option<PathBuf>,
    /// The key file in --signing-key-dir that signs, instead of the one whose name sorts last.
    #[arg(long, value_name = "NAME", requires = "signing_key_dir")]
    active_signing_key: Option<String>,
    /// The policy from a JSON file (a mounted ConfigMap; the document PUT /policies/SgxEnclave
    /// takes) instead of the store; PUT /policies/SgxEnclave is then refused.
    #[arg(long, value_name = "FILE")]
    policy_file: Option<PathBuf>,
    /// How often --signing-key-dir, --policy-file and --tls-cert/--tls-key are re-read, in
    /// seconds. A changed and valid source is applied atomically; an invalid one is logged and
    /// the last good one kept.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    config_reload_interval: u64,
    /// File holding the admin bearer token (policy and key endpoints). Default: the
    /// CONFKUBE_ADMIN_TOKEN environment variable, else one generated in DATA_DIR/admin-token.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM), leaf first. Re-read with --tls-key every
    /// --config-reload-interval seconds: a renewed certificate is served without a restart.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    body_limit: usize,
    /// Secret release: the key-encryption key sealing stored secret values (32 random bytes in
    /// base64; generated 0600 on first start when absent). Default: DATA_DIR/secrets.kek.
    #[arg(long, value_name = "FILE", conflicts_with = "secrets_dir")]
    secrets_kek_file: Option<PathBuf>,
    /// Secret release from mounted files instead of the store: one file per secret, named after
    /// it (a Kubernetes Secret); PUT/DELETE /secrets are then refused. Re-read every
    /// --config-reload-interval seconds.
    #[arg(long, value_name = "DIR", requires = "secrets_policy_file")]
    secrets_dir: Option<PathBuf>,
    /// The release policies of --secrets-dir: JSON {"<name>": {"policy": {...},
    /// "contentType"?: str, "version"?: N}} (a ConfigMap).
    #[arg(long, value_name = "FILE", requires = "secrets_dir")]
    secrets_policy_file: Option<PathBuf>,
    /// Releases allowed per attestation token (jti) within its lifetime. Default: unlimited.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    secrets_max_releases_per_token: Option<u32>,
    /// Demo mode: generate (once) a test PKI, collateral and a quote under DATA_DIR/demo, and
    /// trust that demo root. Never use it for real enclaves.
    #[arg(long, conflicts_with_all = ["root_ca", "collateral_dir", "pccs_url"])]
    demo: bool,
}

fn parse_duration(s: &str) -> Result<i64, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 28800, 30m, 8h, 1d)"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("{s:?} must be a positive duration")),
    }
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn keygen(a: &KeygenArgs) -> Result<ExitCode> {
    use std::io::Write as _;
    let alg = signing_alg(a.alg);
    let (pem, kid) = attest::keyfile::generate_pem(alg).context("generating the key")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = match opts.open(&a.out) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists; refusing to overwrite a signing key (choose another name, or delete it \
             first)",
            a.out.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {}", a.out.display())),
    };
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", a.out.display()))?;
    match a.format {
        OutputFormat::Text => println!(
            "wrote {} signing key {kid} to {} (mode 0600)",
            alg.name(),
            a.out.display()
        ),
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"alg": alg.name(), "kid": kid, "path": a.out})
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn signing_alg(a: Alg) -> SigningAlg {
    match a {
        Alg::Es256 => SigningAlg::ES256,
        Alg::Rs256 => SigningAlg::RS256,
    }
}

fn admin_token(a: &ServeArgs) -> Result<(String, Option<PathBuf>)> {
    if let Some(f) = &a.admin_token_file {
        let t = std::fs::read_to_string(f)
            .with_context(|| format!("reading the admin token file {}", f.display()))?;
        let t = t.trim().to_string();
        if t.len() < 16 {
            bail!(
                "the admin token in {} is shorter than 16 characters",
                f.display()
            );
        }
        return Ok((t, None));
    }
    if let Ok(t) = std::env::var("CONFKUBE_ADMIN_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok((t.trim().to_string(), None));
    }
    let path = a.data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok((t.trim().to_string(), Some(path)));
    }
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
    let t = hex::encode(b);
    write_private(&path, &t)?;
    Ok((t, Some(path)))
}

fn reload_every_secs(a: &ServeArgs) -> Duration {
    Duration::from_secs(a.config_reload_interval)
}

/// Secret release: from --secrets-dir/--secrets-policy-file (polled), else the store with the
/// KEK file.
fn enable_secrets(
    a: &ServeArgs,
    service: &Arc<Service>,
    store: &Arc<attest::store::Store>,
    every: Duration,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    use attest::secrets::{Secrets, kek::Kek, model};
    let (backend, watch) = match (&a.secrets_dir, &a.secrets_policy_file) {
        (Some(dir), Some(policy_file)) => {
            let cfg = model::FileConfig {
                dir: dir.clone(),
                policy_file: policy_file.clone(),
            };
            let files = model::FileBackend::load(cfg).context("loading the secrets files")?;
            (model::Backend::Files(files), true)
        }
        _ => {
            let path = a
                .secrets_kek_file
                .clone()
                .unwrap_or_else(|| a.data_dir.join("secrets.kek"));
            let kek = Kek::load_or_generate(&path)?;
            (
                model::Backend::Store(model::StoreBackend::new(store.clone(), kek)),
                false,
            )
        }
    };
    service.enable_secrets(Secrets::new(backend, a.secrets_max_releases_per_token))?;
    Ok(watch.then(|| tokio::spawn(attest::secrets::watch(service.clone(), every))))
}

struct Demo {
    root_ca: PathBuf,
    collateral_dir: PathBuf,
    request: PathBuf,
}

const DEMO_RUNTIME_DATA: &str = "hello from a confkube demo enclave";

/// Generates the demo material under DATA_DIR/demo unless a still-valid copy exists.
fn prepare_demo(data_dir: &Path, now: i64) -> Result<Demo> {
    use dcap_testkit::{CollateralParams, PkiParams, QuoteParams, Testkit};
    let dir = data_dir.join("demo");
    let demo = Demo {
        root_ca: dir.join("root-ca.pem"),
        collateral_dir: dir.join("collateral"),
        request: dir.join("request.json"),
    };
    let until_file = dir.join("valid-until");
    let valid_until = std::fs::read_to_string(&until_file)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    if valid_until.is_some_and(|u| u > now + 86_400) && demo.request.is_file() {
        return Ok(demo);
    }
    let kit = Testkit::generate(PkiParams::new(now, Some(dcap::TcbStatus::UpToDate)))
        .context("generating the demo PKI")?;
    let cp = CollateralParams::new(now);
    let coll = kit.collateral(&cp).context("generating demo collateral")?;
    let mut report_data = [0u8; 64];
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, DEMO_RUNTIME_DATA.as_bytes());
    report_data
        .split_at_mut(32)
        .0
        .copy_from_slice(digest.as_ref());
    let quote = kit
        .quote(&QuoteParams {
            report_data,
            ..QuoteParams::default()
        })
        .context("generating the demo quote")?;
    std::fs::create_dir_all(&demo.collateral_dir)
        .with_context(|| format!("creating {}", demo.collateral_dir.display()))?;
    std::fs::write(&demo.root_ca, kit.root_pem())
        .with_context(|| format!("writing {}", demo.root_ca.display()))?;
    let coll_file = demo
        .collateral_dir
        .join(format!("{}.json", hex::encode(kit.params().fmspc)));
    std::fs::write(&coll_file, serde_json::to_string_pretty(&coll)?)
        .with_context(|| format!("writing {}", coll_file.display()))?;
    std::fs::write(dir.join("quote.bin"), &quote).context("writing the demo quote")?;
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let request = serde_json::json!({
        "quote": b64.encode(&quote),
        "runtimeData": {"data": b64.encode(DEMO_RUNTIME_DATA), "dataType": "Binary"},
        "nonce": "demo-nonce",
    });
    std::fs::write(&demo.request, serde_json::to_string_pretty(&request)?)
        .with_context(|| format!("writing {}", demo.request.display()))?;
    std::fs::write(&until_file, cp.next_update.to_string()).context("writing the demo window")?;
    Ok(demo)
}

async fn serve(a: ServeArgs) -> Result<ExitCode> {
    let now =
        a.at.unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let store = Arc::new(
        Store::open(&a.data_dir)
            .with_context(|| format!("opening the store in {}", a.data_dir.display()))?,
    );
    let demo = if a.demo {
        Some(prepare_demo(&a.data_dir, now)?)
    } else {
        None
    };
    let root_ca = demo
        .as_ref()
        .map(|d| d.root_ca.clone())
        .or(a.root_ca.clone());
    let anchor = load_anchor(root_ca.as_deref())?;
    let collateral_dir = demo
        .as_ref()
        .map(|d| d.collateral_dir.clone())
        .or(a.collateral_dir.clone());
    let source: Arc<dyn CollateralSource> = match (&collateral_dir, &a.pccs_url) {
        (Some(dir), None) => {
            if !dir.is_dir() {
                bail!("--collateral-dir {} is not a directory", dir.display());
            }
            Arc::new(OfflineDir::new(dir.clone()))
        }
        (None, Some(url)) => {
            let mut cfg = PccsConfig::new(url.clone());
            if let Some(u) = &a.root_crl_url {
                cfg.root_ca_crl = RootCrlSource::Url(u.clone());
            }
            cfg.ca_bundle = a.pccs_ca_bundle.clone();
            Arc::new(PccsClient::new(cfg).with_context(|| format!("--pccs-url {url}"))?)
        }
        (Some(_), Some(_)) => bail!("pass either --collateral-dir or --pccs-url, not both"),
        (None, None) => bail!(
            "no collateral source: pass --collateral-dir DIR (offline bundles) or --pccs-url URL \
             (a PCCS or the Intel PCS), or --demo"
        ),
    };
    let cache = CollateralCache::with_persistence(
        source,
        Arc::new(ServiceClock(a.at)),
        CacheConfig::default(),
        Arc::new(StorePersistence(store.clone())),
    );
    let (token, token_file) = admin_token(&a)?;
    let replicated = a.signing_key_dir.is_some() || a.policy_file.is_some();
    if replicated && let Some(path) = &token_file {
        tracing::warn!(
            path = %path.display(),
            "the admin token comes from the data directory, which differs per replica; give \
             every replica the same token with --admin-token-file or CONFKUBE_ADMIN_TOKEN"
        );
    }
    let scheme = if a.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let issuer = a
        .issuer
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{scheme}://{}", a.listen));
    let mut admin_sha = [0u8; 32];
    admin_sha.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
    );
    let cfg = ServiceConfig {
        issuer: issuer.clone(),
        token_lifetime: a.token_lifetime,
        pinned_time: a.at,
        anchor: anchor.clone(),
        allow_missing_crls: a.allow_missing_crls,
        signing_alg: signing_alg(a.signing_alg),
        signing_key_dir: a.signing_key_dir.clone().map(|dir| KeyDirConfig {
            dir,
            active: a.active_signing_key.clone(),
        }),
        policy_file: a.policy_file.clone(),
        body_limit: a.body_limit,
        admin_token_sha256: admin_sha,
    };
    let service = Arc::new(
        Service::new(cfg, Some(store.clone()), Arc::new(cache))
            .context("starting the attestation service")?
            .with_issuers(a.issuer.iter().skip(1).cloned().collect()),
    );
    let secrets_watcher = enable_secrets(&a, &service, &store, reload_every_secs(&a))?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => {
            let files = CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let cert = ReloadingCert::load(files, default_provider())
                .context("loading the TLS certificate")?;
            Some(Arc::new(cert))
        }
        _ => None,
    };
    let reload_every = Duration::from_secs(a.config_reload_interval);
    let watcher =
        replicated.then(|| tokio::spawn(attest::reload::watch(service.clone(), reload_every)));
    let tls_watcher = tls.as_ref().map(|t| {
        tokio::spawn(attest::reload::watch_tls(
            service.clone(),
            Arc::clone(t),
            reload_every,
        ))
    });
    let active_kid = service.keys().active_kid().unwrap_or_default();
    let router = attest::server::router(service);
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutting down");
    };
    let demo_ref = demo.as_ref();
    attest::serve::serve(
        router,
        a.listen,
        tls,
        |bound| {
            tracing::info!(
                listen = %bound,
                issuer = %issuer,
                store = %store.path().display(),
                trust_anchor = anchor.label(),
                signing_kid = %active_kid,
                signing_keys = %a.signing_key_dir.as_ref().map_or_else(
                    || "store".to_string(),
                    |d| d.display().to_string()
                ),
                policy = %a.policy_file.as_ref().map_or_else(
                    || "store".to_string(),
                    |p| p.display().to_string()
                ),
                "confkube attestation service ready"
            );
            if let Some(path) = &token_file {
                tracing::info!(path = %path.display(), "admin bearer token file");
            }
            if let Some(d) = demo_ref {
                eprintln!(
                    "DEMO MODE: trusting the demo root {} (a test PKI made by this command, NOT \
                     Intel's).\nTry:\n  curl -s -X POST \
                     'http://{bound}/attest/SgxEnclave?api-version=2022-08-01' -H \
                     'content-type: application/json' -d @{}",
                    d.root_ca.display(),
                    d.request.display()
                );
            }
        },
        shutdown,
    )
    .await?;
    for w in [watcher, tls_watcher, secrets_watcher]
        .into_iter()
        .flatten()
    {
        w.abort();
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: AttestArgs) -> ExitCode {
    let a = match args.command {
        AttestCommand::Serve(a) => *a,
        AttestCommand::Keygen(k) => {
            return keygen(&k).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            });
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(serve(a)).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8h"), Ok(28_800));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(
            parse_duration("5y"),
            Err("\"5y\": unknown unit \"y\" (s, m, h, d)".into())
        );
        assert_eq!(
            parse_duration("0"),
            Err("\"0\" must be a positive duration".into())
        );
        assert!(
            parse_duration("h")
                .unwrap_err()
                .contains("is not a duration")
        );
    }

    #[test]
    fn issuers() {
        assert_eq!(
            parse_issuer("https://attest.example.com/"),
            Ok("https://attest.example.com".into())
        );
        assert_eq!(
            parse_issuer("http://127.0.0.1:8080"),
            Ok("http://127.0.0.1:8080".into())
        );
        assert_eq!(
            parse_issuer("attest.example.com"),
            Err(
                "\"attest.example.com\" is not an issuer URL (https://host[:port][/path], as \
                 clients dial it)"
                    .into()
            )
        );
        assert!(parse_issuer("https://").is_err());
    }
}
