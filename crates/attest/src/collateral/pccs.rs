//! A client for the Intel PCS or a PCCS (API v4; v3 header names accepted).
//!
//! HTTP is hyper-util's pooling client (`client::legacy::Client`, HTTP/1.1, idle connections
//! reused) over hyper-rustls (rustls with the aws-lc-rs provider and the Mozilla roots of
//! `webpki-roots`, plus an optional CA bundle), with no redirects, one overall timeout per
//! request and a body size limit. `https://` requests go through an HTTP proxy when one is
//! configured ([`ProxyConfig`]; by default `HTTPS_PROXY`/`ALL_PROXY` and `NO_PROXY`, read once
//! with hyper-util's `Matcher::from_env`), as a `CONNECT` tunnel (hyper-util's `Tunnel`), with
//! TLS to the PCS inside it. Plain `http://` is allowed only to a loopback host and never
//! proxied. What is hand-written here is the PCS API: URLs, the issuer-chain headers, status
//! mapping (`pcs.rs` decodes the bodies).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dcap::Collateral;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tower::ServiceExt as _;

use super::pcs::{self, Parts};
use super::{CollateralSource, PlatformId, SourceError, SourceFuture};

/// Where Intel publishes the SGX Root CA CRL (DER), for use with the Intel PCS, which has no
/// `rootcacrl` endpoint.
pub const INTEL_ROOT_CA_CRL_URL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

/// Where the root CA CRL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCrlSource {
    /// `GET <base>/rootcacrl` (a PCCS; the body is hex, DER and PEM are accepted too).
    Pccs,
    /// Any URL serving the CRL (DER, PEM or hex), e.g. [`INTEL_ROOT_CA_CRL_URL`] with the Intel
    /// PCS.
    Url(String),
}

/// The PCS `update` query parameter of `tcb` and `qe/identity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateType {
    /// `update=standard`.
    Standard,
    /// `update=early`.
    Early,
}

/// Whether `https://` requests go through an HTTP proxy (a `CONNECT` tunnel).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyConfig {
    /// From the environment, as curl reads it, once when the client is built:
    /// `HTTPS_PROXY`/`https_proxy` (else `ALL_PROXY`/`all_proxy`) for `https://` URLs, except
    /// hosts listed in `NO_PROXY`/`no_proxy` (names, `.domain` suffixes, IPs, CIDR ranges, `*`).
    FromEnv,
    /// Connect directly.
    Direct,
    /// This proxy (`http://[user:password@]host:port`) for every `https://` URL except hosts
    /// matching `no_proxy` (the `NO_PROXY` syntax).
    Url {
        /// The proxy URL.
        url: String,
        /// Hosts reached directly.
        no_proxy: String,
    },
}

/// Configuration of a [`PccsClient`].
#[derive(Debug, Clone)]
pub struct PccsConfig {
    /// The API base, e.g. `https://api.trustedservices.intel.com/sgx/certification/v4` or
    /// `https://pccs.example:8081/sgx/certification/v4`. `http://` only for a loopback host.
    pub base_url: String,
    /// Where the root CA CRL comes from (default: the PCCS `rootcacrl` endpoint).
    pub root_ca_crl: RootCrlSource,
    /// The `update` parameter; `None` sends none (the server's default, standard).
    pub update: Option<UpdateType>,
    /// Overall time for one request: connect, TLS, request and the whole body (default 10 s).
    pub timeout: Duration,
    /// Largest accepted response body (default 4 MiB).
    pub max_body_bytes: usize,
    /// PEM file of extra CA certificates trusted for TLS (added to the Mozilla roots), e.g. the
    /// CA of a PCCS with its own certificate.
    pub ca_bundle: Option<PathBuf>,
    /// Accept any TLS server certificate. Only for a local PCCS with a self-signed certificate
    /// during development: the collateral stays signed by Intel, but the connection is not
    /// authenticated. Prefer `ca_bundle`.
    pub danger_accept_invalid_certs: bool,
    /// Optional `Ocp-Apim-Subscription-Key` header value (the Intel PCS needs it only for
    /// `pckcert`, which this client does not call).
    pub api_key: Option<String>,
    /// The egress proxy (default: from the environment).
    pub proxy: ProxyConfig,
}

impl PccsConfig {
    /// Defaults for a base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            root_ca_crl: RootCrlSource::Pccs,
            update: None,
            timeout: Duration::from_secs(10),
            max_body_bytes: 4 << 20,
            ca_bundle: None,
            danger_accept_invalid_certs: false,
            api_key: None,
            proxy: ProxyConfig::FromEnv,
        }
    }
}

type HttpsConnector = hyper_rustls::HttpsConnector<ProxyConnector>;

/// The PCS/PCCS collateral source. See [`PccsConfig`] and `docs/attestation-collateral.md`.
/// Clones share one connection pool.
#[derive(Clone)]
pub struct PccsClient {
    base: String,
    /// The TDX API base: `base` with `/sgx/certification/` replaced by `/tdx/certification/`
    /// (Intel PCS and PCCS serve TDX TCB info and the TD_QE identity there).
    tdx_base: String,
    root_url: String,
    update: Option<UpdateType>,
    timeout: Duration,
    max_body: usize,
    api_key: Option<String>,
    http: Client<HttpsConnector, Empty<Bytes>>,
    proxy: Option<Arc<Matcher>>,
}

impl std::fmt::Debug for PccsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PccsClient")
            .field("base", &self.base)
            .field("root_url", &self.root_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Checks a URL and splits it into (https?, host, port). Rejects anything but
/// `https://host[:port]/…` and `http://<loopback>[:port]/…`.
fn endpoint(url: &str) -> Result<(bool, String, u16), SourceError> {
    let bad = |why: &str| SourceError::Config(format!("URL {url:?}: {why}"));
    let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(bad(
                "the scheme must be https (or http for a loopback host)",
            ));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !tls && !loopback {
        return Err(bad(
            "plain http is allowed only to a loopback host; use https",
        ));
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((tls, host, port))
}

fn tls_config(config: &PccsConfig) -> Result<rustls::ClientConfig, SourceError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Config(format!("TLS: {e}")))?;
    let mut tls = if config.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.ca_bundle {
            let name = path.display();
            let mut n = 0usize;
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| SourceError::Config(format!("CA bundle {name}: {e}")))?
            {
                let cert =
                    cert.map_err(|e| SourceError::Config(format!("CA bundle {name}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| SourceError::Config(format!("CA bundle {name}: {e}")))?;
                n += 1;
            }
            if n == 0 {
                return Err(SourceError::Config(format!(
                    "CA bundle {name}: no PEM certificate in it"
                )));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // hyper-rustls sets ALPN itself (none for HTTP/1.1 only).
    tls.alpn_protocols.clear();
    Ok(tls)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector under TLS: a direct TCP connection, or a `CONNECT` tunnel through the proxy
/// the [`Matcher`] names for an `https://` destination.
#[derive(Clone)]
struct ProxyConnector {
    tcp: HttpConnector,
    proxy: Option<Arc<Matcher>>,
}

/// A tunnel through `proxy` could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("through the proxy {proxy}")]
struct ProxyConnectError {
    proxy: Uri,
    /// hyper-util's tunnel error (not nameable outside hyper-util).
    #[source]
    source: BoxError,
}

impl tower::Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        // HttpConnector is always ready; each call works on its own clone.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let tcp = self.tcp.clone();
        let intercept = self
            .proxy
            .as_ref()
            .filter(|_| dst.scheme() == Some(&hyper::http::uri::Scheme::HTTPS))
            .and_then(|m| m.intercept(&dst));
        match intercept {
            None => Box::pin(async move { tcp.oneshot(dst).await.map_err(Into::into) }),
            Some(i) => {
                let proxy = i.uri().clone();
                let mut tunnel = Tunnel::new(proxy.clone(), tcp);
                if let Some(auth) = i.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    tunnel.oneshot(dst).await.map_err(|e| {
                        Box::new(ProxyConnectError {
                            proxy,
                            source: Box::new(e),
                        }) as BoxError
                    })
                })
            }
        }
    }
}

fn proxy_matcher(config: &ProxyConfig) -> Option<Matcher> {
    match config {
        ProxyConfig::Direct => None,
        ProxyConfig::FromEnv => Some(Matcher::from_env()),
        ProxyConfig::Url { url, no_proxy } => Some(
            Matcher::builder()
                .all(url.clone())
                .no(no_proxy.clone())
                .build(),
        ),
    }
}

/// The first error of type `T` in `e`'s source chain, looking inside `io::Error`s too (their
/// `source()` skips the error they wrap).
fn find_in_chain<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(t) = find_in_chain::<T>(inner)
        {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// `e` and its sources, `: `-separated, without repeats (an `io::Error` shows its inner error).
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p == &s) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// The `danger_accept_invalid_certs` verifier: any certificate, but the handshake signatures are
/// still checked.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Response {
    headers: HeaderMap,
    body: Bytes,
}

impl PccsClient {
    /// Checks the configuration (URLs, CA bundle) and builds the TLS client.
    pub fn new(config: PccsConfig) -> Result<Self, SourceError> {
        let base = config.base_url.trim_end_matches('/').to_string();
        endpoint(&format!("{base}/tcb"))?;
        let root_url = match &config.root_ca_crl {
            RootCrlSource::Pccs => format!("{base}/rootcacrl"),
            RootCrlSource::Url(u) => u.clone(),
        };
        endpoint(&root_url)?;
        let tls = tls_config(&config)?;
        let tdx_base = base.replacen("/sgx/certification/", "/tdx/certification/", 1);
        let proxy = proxy_matcher(&config.proxy).map(Arc::new);
        if let Some(m) = &proxy {
            for url in [format!("{base}/tcb"), root_url.clone()] {
                let uri: Uri = url
                    .parse()
                    .map_err(|e| SourceError::Config(format!("URL {url:?}: {e}")))?;
                if let Some(i) = m.intercept(&uri)
                    && i.uri().scheme() != Some(&hyper::http::uri::Scheme::HTTP)
                {
                    return Err(SourceError::Config(format!(
                        "proxy {}: only http:// proxies are supported (the tunnel carries TLS \
                         to the PCS)",
                        i.uri()
                    )));
                }
            }
        }
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(ProxyConnector {
                tcp,
                proxy: proxy.clone(),
            });
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(Self {
            tdx_base,
            base,
            root_url,
            update: config.update,
            timeout: config.timeout,
            max_body: config.max_body_bytes,
            api_key: config.api_key,
            http,
            proxy,
        })
    }

    fn update_param(&self) -> &'static str {
        match self.update {
            None => "",
            Some(UpdateType::Standard) => "update=standard",
            Some(UpdateType::Early) => "update=early",
        }
    }

    /// `<base>/tcb?fmspc=<FMSPC>[&update=…]` (the FMSPC in upper case, as Intel documents it).
    /// For TDX platforms (`id.tdx`) the TDX base (`…/tdx/certification/v4/tcb`).
    pub fn tcb_url(&self, id: &PlatformId) -> String {
        let u = self.update_param();
        let sep = if u.is_empty() { "" } else { "&" };
        format!(
            "{}/tcb?fmspc={}{sep}{u}",
            if id.tdx { &self.tdx_base } else { &self.base },
            id.fmspc_hex().to_ascii_uppercase()
        )
    }

    /// `<TDX base>/qe/identity[?update=…]`: the TD_QE identity.
    pub fn tdx_qe_identity_url(&self) -> String {
        let u = self.update_param();
        let sep = if u.is_empty() { "" } else { "?" };
        format!("{}/qe/identity{sep}{u}", self.tdx_base)
    }

    /// `<base>/qe/identity[?update=…]`.
    pub fn qe_identity_url(&self) -> String {
        let u = self.update_param();
        let sep = if u.is_empty() { "" } else { "?" };
        format!("{}/qe/identity{sep}{u}", self.base)
    }

    /// `<base>/pckcrl?ca=<processor|platform>&encoding=der`.
    pub fn pck_crl_url(&self, id: &PlatformId) -> String {
        format!("{}/pckcrl?ca={}&encoding=der", self.base, id.ca)
    }

    /// The root CA CRL URL.
    pub fn root_ca_crl_url(&self) -> &str {
        &self.root_url
    }

    /// Fetches the four PCS resources for `id` and assembles the collateral.
    pub async fn load(&self, id: &PlatformId) -> Result<Collateral, SourceError> {
        let tcb_url = self.tcb_url(id);
        // The TCB info first: an unknown FMSPC (404) or a bad answer costs no further requests.
        let tcb = self.get(&tcb_url, Some(id)).await?;
        let tcb_chain = match header(&tcb, "TCB-Info-Issuer-Chain") {
            Some(v) => pcs::chain_pem(v, &format!("{tcb_url} header TCB-Info-Issuer-Chain"))?,
            None => match header(&tcb, "SGX-TCB-Info-Issuer-Chain") {
                Some(v) => {
                    pcs::chain_pem(v, &format!("{tcb_url} header SGX-TCB-Info-Issuer-Chain"))?
                }
                None => {
                    return Err(missing_header(
                        &tcb_url,
                        "TCB-Info-Issuer-Chain (or SGX-TCB-Info-Issuer-Chain)",
                    ));
                }
            },
        };
        let tcb_signed = pcs::split_signed_body(&tcb.body, "tcbInfo", &tcb_url)?;
        let qe_url = if id.tdx {
            self.tdx_qe_identity_url()
        } else {
            self.qe_identity_url()
        };
        let pck_url = self.pck_crl_url(id);
        let (qe, pck, root) = tokio::join!(
            self.get(&qe_url, None),
            self.get(&pck_url, None),
            self.get(&self.root_url, None)
        );
        let (qe, pck, root) = (qe?, pck?, root?);
        let qe_chain = required_chain(&qe, &qe_url, "SGX-Enclave-Identity-Issuer-Chain")?;
        let pck_crl_chain = required_chain(&pck, &pck_url, "SGX-PCK-CRL-Issuer-Chain")?;
        let parts = Parts {
            tcb: tcb_signed,
            tcb_chain,
            qe: pcs::split_signed_body(&qe.body, "enclaveIdentity", &qe_url)?,
            qe_chain,
            pck_crl: pcs::crl_der(&pck.body, &pck_url)?,
            pck_crl_chain,
            root_ca_crl: pcs::crl_der(&root.body, &self.root_url)?,
            pck_certificate_chain: None,
        };
        pcs::assemble(parts, id, &tcb_url, &qe_url)
    }

    /// One GET with the overall timeout; maps the status (404 is not-found for `not_found`).
    async fn get(
        &self,
        url: &str,
        not_found: Option<&PlatformId>,
    ) -> Result<Response, SourceError> {
        let (status, resp) = match tokio::time::timeout(self.timeout, self.exchange(url)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SourceError::Unavailable {
                    location: url.to_string(),
                    reason: format!("no complete answer within {} ms", self.timeout.as_millis()),
                });
            }
        };
        if status == StatusCode::OK {
            return Ok(resp);
        }
        Err(match (status, not_found) {
            (StatusCode::NOT_FOUND, Some(id)) => SourceError::NotFound {
                fmspc: id.fmspc_hex(),
                location: url.to_string(),
            },
            (s, _)
                if s.is_server_error()
                    || s == StatusCode::TOO_MANY_REQUESTS
                    || s == StatusCode::REQUEST_TIMEOUT =>
            {
                SourceError::Unavailable {
                    location: url.to_string(),
                    reason: format!("HTTP {s}"),
                }
            }
            (s, _) => SourceError::Status {
                location: url.to_string(),
                status: s.as_u16(),
            },
        })
    }

    /// The proxy an `https://` URL goes through, if any.
    fn proxy_for(&self, uri: &Uri) -> Option<Uri> {
        let m = self.proxy.as_ref()?;
        (uri.scheme() == Some(&hyper::http::uri::Scheme::HTTPS))
            .then(|| m.intercept(uri))
            .flatten()
            .map(|i| i.uri().clone())
    }

    async fn exchange(&self, url: &str) -> Result<(StatusCode, Response), SourceError> {
        let unavailable = |reason: String| SourceError::Unavailable {
            location: url.to_string(),
            reason,
        };
        let (tls, host, port) = endpoint(url)?;
        let uri: Uri = url
            .parse()
            .map_err(|e| SourceError::Config(format!("URL {url:?}: {e}")))?;
        if tls {
            ServerName::try_from(host.clone())
                .map_err(|e| SourceError::Config(format!("URL {url:?}: host {host:?}: {e}")))?;
        }
        let mut req = Request::get(uri.clone()).header(
            USER_AGENT,
            concat!("confkube-attest/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(key) = &self.api_key {
            req = req.header("Ocp-Apim-Subscription-Key", key);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| SourceError::Config(format!("URL {url:?}: {e}")))?;
        let resp = self.http.request(req).await.map_err(|e| {
            let proxy = self.proxy_for(&uri);
            unavailable(request_failure(&e, &host, port, proxy.as_ref()))
        })?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    SourceError::Invalid {
                        location: url.to_string(),
                        reason: format!("the body exceeds {} bytes", self.max_body),
                    }
                } else {
                    unavailable(format!("reading the body: {e}"))
                }
            })?;
        Ok((
            parts.status,
            Response {
                headers: parts.headers,
                body: body.to_bytes(),
            },
        ))
    }
}

/// Why a request got no response, in the words of the step that failed: the proxy tunnel, the
/// TCP connection, the TLS handshake, or HTTP.
fn request_failure(
    e: &hyper_util::client::legacy::Error,
    host: &str,
    port: u16,
    proxy: Option<&Uri>,
) -> String {
    if let Some(p) = find_in_chain::<ProxyConnectError>(e) {
        return format!(
            "connect to {host}:{port} through the proxy {}: {}",
            p.proxy,
            chain_text(&*p.source)
        );
    }
    if let Some(t) = find_in_chain::<rustls::Error>(e) {
        return format!("TLS handshake with {host}: {t}");
    }
    if e.is_connect() {
        let cause = find_in_chain::<std::io::Error>(e)
            .map(|io| io.to_string())
            .unwrap_or_else(|| chain_text(e));
        return match proxy {
            Some(p) => format!("connect to {host}:{port} through the proxy {p}: {cause}"),
            None => format!("connect to {host}:{port}: {cause}"),
        };
    }
    match find_in_chain::<hyper::Error>(e) {
        Some(h) => format!("HTTP request: {h}"),
        None => format!("HTTP request: {}", chain_text(e)),
    }
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a [u8]> {
    resp.headers.get(name).map(|v| v.as_bytes())
}

fn missing_header(url: &str, name: &str) -> SourceError {
    SourceError::Invalid {
        location: url.to_string(),
        reason: format!("the response has no {name} header"),
    }
}

fn required_chain(resp: &Response, url: &str, name: &str) -> Result<String, SourceError> {
    let v = header(resp, name).ok_or_else(|| missing_header(url, name))?;
    pcs::chain_pem(v, &format!("{url} header {name}"))
}

impl CollateralSource for PccsClient {
    fn fetch(&self, id: &PlatformId) -> SourceFuture<'_> {
        let id = *id;
        Box::pin(async move { self.load(&id).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collateral::PckCaType;

    #[test]
    fn urls() {
        let c = PccsClient::new(PccsConfig::new(
            "https://api.trustedservices.intel.com/sgx/certification/v4/",
        ))
        .unwrap();
        let id = PlatformId::from_hex("00606a000000", PckCaType::Platform).unwrap();
        assert_eq!(
            c.tcb_url(&id),
            "https://api.trustedservices.intel.com/sgx/certification/v4/tcb?fmspc=00606A000000"
        );
        assert_eq!(
            c.qe_identity_url(),
            "https://api.trustedservices.intel.com/sgx/certification/v4/qe/identity"
        );
        assert_eq!(
            c.pck_crl_url(&id),
            "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
        );
        assert_eq!(
            c.root_ca_crl_url(),
            "https://api.trustedservices.intel.com/sgx/certification/v4/rootcacrl"
        );
        // TDX: TCB info and TD_QE identity from the TDX API, CRLs from the SGX one.
        let td = PlatformId::from_hex("b0c06f000000", PckCaType::Platform)
            .unwrap()
            .with_tdx(true);
        assert_eq!(
            c.tcb_url(&td),
            "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=B0C06F000000"
        );
        assert_eq!(
            c.tdx_qe_identity_url(),
            "https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity"
        );
        assert_eq!(
            c.pck_crl_url(&td),
            "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
        );
        assert_eq!(td.key(), "b0c06f000000-platform-tdx");
        let mut cfg = PccsConfig::new("http://127.0.0.1:8081/sgx/certification/v3");
        cfg.update = Some(UpdateType::Early);
        cfg.root_ca_crl = RootCrlSource::Url(INTEL_ROOT_CA_CRL_URL.into());
        let c = PccsClient::new(cfg).unwrap();
        assert_eq!(
            c.tcb_url(&id),
            "http://127.0.0.1:8081/sgx/certification/v3/tcb?fmspc=00606A000000&update=early"
        );
        assert_eq!(
            c.qe_identity_url(),
            "http://127.0.0.1:8081/sgx/certification/v3/qe/identity?update=early"
        );
        assert_eq!(c.root_ca_crl_url(), INTEL_ROOT_CA_CRL_URL);
    }

    #[test]
    fn config_errors() {
        let e = |u: &str| PccsClient::new(PccsConfig::new(u)).unwrap_err().to_string();
        assert_eq!(
            e("http://pccs.example/sgx/certification/v4"),
            "collateral source configuration: URL \"http://pccs.example/sgx/certification/v4/tcb\": \
             plain http is allowed only to a loopback host; use https"
        );
        assert_eq!(
            e("ftp://x/y"),
            "collateral source configuration: URL \"ftp://x/y/tcb\": the scheme must be https (or \
             http for a loopback host)"
        );
        assert_eq!(
            e("pccs.example/v4"),
            "collateral source configuration: URL \"pccs.example/v4/tcb\": invalid format"
        );
        assert_eq!(
            e("/sgx/certification/v4"),
            "collateral source configuration: URL \"/sgx/certification/v4/tcb\": the scheme must \
             be https (or http for a loopback host)"
        );
        assert_eq!(
            e("https://pccs example/v4"),
            "collateral source configuration: URL \"https://pccs example/v4/tcb\": invalid \
             uri character"
        );
        let mut cfg = PccsConfig::new("https://pccs.example/v4");
        cfg.root_ca_crl = RootCrlSource::Url("http://crl.example/root.der".into());
        assert_eq!(
            PccsClient::new(cfg).unwrap_err().to_string(),
            "collateral source configuration: URL \"http://crl.example/root.der\": plain http is \
             allowed only to a loopback host; use https"
        );
        assert!(PccsClient::new(PccsConfig::new("http://localhost:1/v4")).is_ok());
        assert!(PccsClient::new(PccsConfig::new("http://[::1]:1/v4")).is_ok());
        let mut cfg = PccsConfig::new("https://pccs.example/v4");
        cfg.ca_bundle = Some("/nonexistent/ca.pem".into());
        let e = PccsClient::new(cfg).unwrap_err().to_string();
        assert!(
            e.starts_with("collateral source configuration: CA bundle /nonexistent/ca.pem: "),
            "{e}"
        );
    }
}
