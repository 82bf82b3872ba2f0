//! `confkube attest serve`: the attestation service on its embedded store, or — for several
//! stateless replicas — with signing keys and policy from mounted files (`--signing-key-dir`,
//! `--policy-file`), hot-reloaded; the HTTPS certificate (`--tls-cert`/`--tls-key`) is
//! hot-reloaded too. `confkube attest keygen`: a PEM signing key for that directory.

use super::quote::{load_anchor, parse_time};
use anyhow::{Context, Result, bail};
use attest::admin::{AdminToken, TokenSource};
use attest::collateral::{
    CacheConfig, CollateralCache, CollateralSource, OfflineDir, PccsClient, PccsConfig,
    RootCrlSource,
};
use attest::collateral::{Clock, SystemClock};
use attest::keyfile::KeyDirConfig;
use attest::keys::SigningAlg;
use attest::provider::StorePersistence;
use attest::server::{MAX_TOKEN_LIFETIME, Service, ServiceConfig};
use attest::store::{IfDamaged, Store};
use attest::tls_reload::{CertFiles, ReloadingCert, default_provider};
use clap::{Args, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::runtime::{self, Threads};

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
    /// Judge quotes and collateral at this time instead of now (RFC 3339 or Unix seconds): for
    /// archived collateral and tests. Tokens still carry the real time (iat, nbf, exp).
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
    /// Token lifetime: seconds, or with a unit (30m, 8h, 1d); at most 7d.
    #[arg(long, value_name = "DURATION", default_value = "8h", value_parser = token_lifetime)]
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
    /// The policy from a file (a mounted ConfigMap; the document PUT /policies/SgxEnclave
    /// takes: confkube JSON, or Azure Attestation's policy language, detected) instead of the
    /// store; PUT /policies/SgxEnclave is then refused.
    #[arg(long, value_name = "FILE")]
    policy_file: Option<PathBuf>,
    /// Policy management certificates (PEM, one or more), as Azure Attestation's isolated mode:
    /// policy uploads and resets must then be JWS signed with the key of one of them (the SDKs'
    /// signing_key/signing_certificate); unsigned uploads are refused (policy-not-signed).
    #[arg(long, value_name = "FILE")]
    policy_signer_cert: Option<PathBuf>,
    /// How often --signing-key-dir, --policy-file and --tls-cert/--tls-key are re-read (seconds,
    /// or 500ms, 1m, ...). A changed and valid source is applied atomically; an invalid one is
    /// logged and the last good one kept.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = reload_interval)]
    config_reload_interval: std::time::Duration,
    /// File holding the admin bearer token (policy and key endpoints): at least 16 characters,
    /// no whitespace. Default: CONFKUBE_ADMIN_TOKEN, else a token generated once (256 bits)
    /// into DATA_DIR/admin-token.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// The admin bearer token itself (same rule). Prefer the environment variable: a command
    /// line is visible to every user of the host.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CONFKUBE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Start with a new, empty store when DATA_DIR/confkube.redb is empty or unreadable (the
    /// damaged file is kept as confkube.redb.damaged-<time>). Without it such a store refuses
    /// to start: the signing keys and the policy are never replaced silently.
    #[arg(long)]
    init_store: bool,
    /// TLS certificate chain (PEM), leaf first. Re-read with --tls-key every
    /// --config-reload-interval seconds: a renewed certificate is served without a restart.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest accepted request body, in bytes: a larger declared Content-Length gets 413 before
    /// the body is read. Also accepted as --max-body-bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, alias = "max-body-bytes")]
    body_limit: usize,
    #[command(flatten)]
    limits: super::ServerLimits,
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

fn token_lifetime(s: &str) -> Result<i64, String> {
    let max = std::time::Duration::from_secs(MAX_TOKEN_LIFETIME.unsigned_abs());
    let d = super::parse_duration_within(s, std::time::Duration::from_secs(1), max)?;
    i64::try_from(d.as_secs()).map_err(|e| e.to_string())
}

fn reload_interval(s: &str) -> Result<std::time::Duration, String> {
    super::parse_duration_within(
        s,
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(3600),
    )
}

/// Writes a 0600 file atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. A crash leaves the old file or the new one, never a partial one.
fn write_private_atomic(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
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

/// A configured admin token (--admin-token-file, else CONFKUBE_ADMIN_TOKEN), checked; `None`
/// when neither is given (a token is generated into the data directory later).
fn configured_admin_token(a: &ServeArgs) -> Result<Option<AdminToken>> {
    if let Some(f) = &a.admin_token_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the admin token file {}", f.display()))?;
        return Ok(Some(AdminToken::parse(
            &text,
            TokenSource::File(f.clone()),
        )?));
    }
    match &a.admin_token {
        Some(t) => Ok(Some(AdminToken::parse(t, TokenSource::Env)?)),
        None => Ok(None),
    }
}

/// The generated token in DATA_DIR/admin-token: read (and checked) when present, else made
/// and written atomically.
fn generated_admin_token(data_dir: &Path) -> Result<(AdminToken, PathBuf)> {
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((
            AdminToken::parse(&text, TokenSource::Generated(path.clone()))?,
            path,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = AdminToken::generate()?;
            write_private_atomic(&path, token.expose())?;
            Ok((token, path))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Secret release: from --secrets-dir/--secrets-policy-file (polled), else the store with the
/// KEK file.
fn enable_secrets(
    a: &ServeArgs,
    service: &Arc<Service>,
    store: &Arc<attest::store::Store>,
    every: std::time::Duration,
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

/// Writes the demo material (`dcap_testkit::demo`) under DATA_DIR/demo unless a still-valid
/// copy exists.
#[cfg(feature = "testkit")]
fn prepare_demo(data_dir: &Path, now: i64) -> Result<Demo> {
    use dcap_testkit::demo;
    let dir = data_dir.join("demo");
    let d = Demo {
        root_ca: dir.join("root-ca.pem"),
        collateral_dir: dir.join("collateral"),
        request: dir.join("request.json"),
    };
    let until_file = dir.join("valid-until");
    let valid_until = std::fs::read_to_string(&until_file)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    if demo::still_valid(valid_until, now) && d.request.is_file() {
        return Ok(d);
    }
    let files = demo::generate(now)?;
    std::fs::create_dir_all(&d.collateral_dir)
        .with_context(|| format!("creating {}", d.collateral_dir.display()))?;
    let write = |p: &Path, bytes: &[u8]| {
        std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))
    };
    write(&d.root_ca, files.root_ca_pem.as_bytes())?;
    write(
        &d.collateral_dir.join(&files.collateral_name),
        files.collateral_json.as_bytes(),
    )?;
    write(&dir.join("quote.bin"), &files.quote)?;
    write(&d.request, files.request_json.as_bytes())?;
    write(&until_file, files.valid_until.to_string().as_bytes())?;
    Ok(d)
}

/// Without the `testkit` feature there is no demo PKI to make.
#[cfg(not(feature = "testkit"))]
fn prepare_demo(_data_dir: &Path, _now: i64) -> Result<Demo> {
    bail!("{DEMO_NEEDS_TESTKIT}")
}

/// What `--demo` says in a build without the `testkit` feature.
#[cfg(not(feature = "testkit"))]
const DEMO_NEEDS_TESTKIT: &str = "--demo needs the `testkit` cargo feature, and this confkube was \
     built without it (--no-default-features, a production build); build it with default \
     features for the demo, or pass --root-ca and --collateral-dir or --pccs-url";

async fn serve(a: ServeArgs) -> Result<ExitCode> {
    // 1. Check the whole configuration; nothing is written yet.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    #[cfg(not(feature = "testkit"))]
    if a.demo {
        bail!("{DEMO_NEEDS_TESTKIT}");
    }
    attest::serve::check_plain_http(a.listen, a.tls_cert.is_some())?;
    let source: Option<Arc<dyn CollateralSource>> = match (&a.collateral_dir, &a.pccs_url) {
        _ if a.demo => None,
        (Some(dir), None) => {
            if !dir.is_dir() {
                bail!("--collateral-dir {} is not a directory", dir.display());
            }
            Some(Arc::new(OfflineDir::new(dir.clone())))
        }
        (None, Some(url)) => {
            let mut cfg = PccsConfig::new(url.clone());
            if let Some(u) = &a.root_crl_url {
                cfg.root_ca_crl = RootCrlSource::Url(u.clone());
            }
            cfg.ca_bundle = a.pccs_ca_bundle.clone();
            Some(Arc::new(
                PccsClient::new(cfg).with_context(|| format!("--pccs-url {url}"))?,
            ))
        }
        (Some(_), Some(_)) => bail!("pass either --collateral-dir or --pccs-url, not both"),
        (None, None) => bail!(
            "no collateral source: pass --collateral-dir DIR (offline bundles) or --pccs-url URL \
             (a PCCS or the Intel PCS), or --demo"
        ),
    };
    let anchor = if a.demo {
        None
    } else {
        Some(load_anchor(a.root_ca.as_deref())?)
    };
    let configured_token = configured_admin_token(&a)?;
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
    // 2. Bind: a port in use fails here, before the data directory exists.
    let server = attest::serve::Server::bind(a.listen, tls.clone()).await?;
    // 3. The store: creates the data directory, takes its lock, refuses a damaged file.
    let if_damaged = if a.init_store {
        IfDamaged::MoveAside
    } else {
        IfDamaged::Refuse
    };
    let store = Arc::new(
        Store::open_with(&a.data_dir, if_damaged)
            .with_context(|| format!("opening the store in {}", a.data_dir.display()))?,
    );
    // 4. What lives in the data directory: the generated admin token, the demo material.
    let (token, token_file) = match configured_token {
        Some(t) => (t, None),
        None => {
            let (t, path) = generated_admin_token(&a.data_dir)?;
            (t, Some(path))
        }
    };
    let demo = if a.demo {
        Some(prepare_demo(&a.data_dir, clock.now())?)
    } else {
        None
    };
    let anchor = match (anchor, &demo) {
        (Some(anchor), _) => anchor,
        (None, Some(d)) => load_anchor(Some(&d.root_ca))?,
        (None, None) => load_anchor(a.root_ca.as_deref())?,
    };
    let source = match (source, &demo) {
        (Some(s), _) => s,
        (None, Some(d)) => Arc::new(OfflineDir::new(d.collateral_dir.clone())),
        (None, None) => bail!("no collateral source"),
    };
    let cache = CollateralCache::with_persistence(
        source,
        Arc::clone(&clock),
        CacheConfig::default(),
        Arc::new(StorePersistence(store.clone())),
    );
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
    let cfg = ServiceConfig {
        issuer: issuer.clone(),
        token_lifetime: a.token_lifetime,
        verify_at: a.at,
        anchor: anchor.clone(),
        allow_missing_crls: a.allow_missing_crls,
        signing_alg: signing_alg(a.signing_alg),
        signing_key_dir: a.signing_key_dir.clone().map(|dir| KeyDirConfig {
            dir,
            active: a.active_signing_key.clone(),
        }),
        policy_file: a.policy_file.clone(),
        body_limit: a.body_limit,
        admin_token_sha256: token.sha256(),
    };
    let service = Arc::new(
        Service::with_registry(
            cfg,
            Some(store.clone()),
            Arc::new(cache),
            clock,
            runtime::metrics_registry(),
        )
        .context("starting the attestation service")?
        .with_issuers(a.issuer.iter().skip(1).cloned().collect()),
    );
    if let Some(path) = &a.policy_signer_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading --policy-signer-cert {}", path.display()))?;
        let certs = attest::policy_admin::parse_signer_certs(&pem)
            .map_err(|e| anyhow::anyhow!("--policy-signer-cert {}: {e}", path.display()))?;
        service.set_policy_signers(certs);
    }
    let reload_every = a.config_reload_interval;
    let secrets_watcher = enable_secrets(&a, &service, &store, reload_every)?;
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
    let bound = server.local_addr();
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
        verify_at = a.at,
        "confkube attestation service ready"
    );
    if let Some(path) = &token_file {
        tracing::info!(path = %path.display(), "admin bearer token file");
    }
    if let Some(d) = &demo {
        eprintln!(
            "DEMO MODE: trusting the demo root {} (a test PKI made by this command, NOT \
             Intel's).\nTry:\n  curl -s -X POST \
             'http://{bound}/attest/SgxEnclave?api-version=2022-08-01' -H \
             'content-type: application/json' -d @{}",
            d.root_ca.display(),
            d.request.display()
        );
    }
    let limits = a
        .limits
        .limits(a.body_limit, attest::serve::Limits::default().body_timeout);
    let events = Arc::new(attest::serve::Counts::default());
    server
        .serve(router, limits, events, runtime::shutdown_signal())
        .await?;
    for w in [watcher, tls_watcher, secrets_watcher]
        .into_iter()
        .flatten()
    {
        w.abort();
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: AttestArgs) -> Result<ExitCode> {
    match args.command {
        AttestCommand::Serve(a) => runtime::run(Threads::PerCore, serve(*a)),
        AttestCommand::Keygen(k) => keygen(&k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
