//! The PCS/PCCS client over TLS (rustls) against the stand-in behind a self-signed certificate,
//! as a local PCCS usually is: rejected by default, accepted with the CA bundle option or the
//! clearly named insecure flag.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod collateral_support;

use std::sync::Arc;

use attest::collateral::{CollateralSource, PccsClient, PccsConfig, ProxyConfig, SourceError};
use collateral_support::{Pcs, diff_fields, icelake, scratch_dir};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Serves the stand-in over TLS on 127.0.0.1 with a fresh self-signed certificate for
/// `localhost`; returns the base URL and the certificate PEM.
async fn serve_tls(pcs: &Arc<Pcs>) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = ck.cert.pem();
    let chain = vec![CertificateDer::from(ck.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = pcs.router();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                // A client that rejects the certificate ends the handshake: nothing to serve.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                    .await;
            });
        }
    });
    (
        format!("https://localhost:{port}/sgx/certification/v4"),
        cert_pem,
    )
}

#[tokio::test]
async fn self_signed_pccs_is_rejected_by_default() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let (base, _) = serve_tls(&pcs).await;
    let e = PccsClient::new(PccsConfig::new(&base))
        .unwrap()
        .fetch(&pcs.set.id)
        .await
        .unwrap_err();
    let SourceError::Unavailable { location, reason } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(location, &format!("{base}/tcb?fmspc=00606A000000"));
    assert_eq!(
        reason,
        "TLS handshake with localhost: invalid peer certificate: UnknownIssuer"
    );
}

#[tokio::test]
async fn ca_bundle_trusts_the_pccs_certificate() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let (base, cert_pem) = serve_tls(&pcs).await;
    let bundle = scratch_dir("tls-bundle").join("pccs-ca.pem");
    std::fs::write(&bundle, cert_pem).unwrap();
    let mut cfg = PccsConfig::new(&base);
    cfg.ca_bundle = Some(bundle);
    let c = PccsClient::new(cfg)
        .unwrap()
        .fetch(&pcs.set.id)
        .await
        .unwrap();
    let mut want = pcs.set.derived.document().clone();
    want.pck_crl_issuer_chain = pcs.set.pck_chain.clone();
    assert_eq!(diff_fields(c.document(), &want), Vec::<&str>::new());
}

#[tokio::test]
async fn insecure_flag_accepts_any_certificate() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let (base, _) = serve_tls(&pcs).await;
    let mut cfg = PccsConfig::new(&base);
    cfg.danger_accept_invalid_certs = true;
    let c = PccsClient::new(cfg)
        .unwrap()
        .fetch(&pcs.set.id)
        .await
        .unwrap();
    assert_eq!(c.document().tcb_info, pcs.set.derived.document().tcb_info);
}

#[test]
fn ca_bundle_without_certificates_is_a_config_error() {
    let bundle = scratch_dir("tls-empty-bundle").join("empty.pem");
    std::fs::write(&bundle, "no certificates here\n").unwrap();
    let mut cfg = PccsConfig::new("https://pccs.example/sgx/certification/v4");
    cfg.ca_bundle = Some(bundle.clone());
    assert_eq!(
        PccsClient::new(cfg).unwrap_err(),
        SourceError::Config(format!(
            "CA bundle {}: no PEM certificate in it",
            bundle.display()
        ))
    );
}

/// A `CONNECT` proxy stand-in on loopback: reads the request head, records its first line,
/// dials the target, answers 200 and relays bytes both ways. Returns its URL and the lines.
async fn connect_proxy() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = client.read(&mut b).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&b[..n]);
                }
                let head = String::from_utf8(head).unwrap();
                let first = head.lines().next().unwrap().to_string();
                log.lock().unwrap().push(first.clone());
                let target = first
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                    .unwrap()
                    .to_string();
                let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn port_of(base: &str) -> u16 {
    base.split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn https_goes_through_the_connect_proxy_with_pooled_connections() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let (base, cert_pem) = serve_tls(&pcs).await;
    let bundle = scratch_dir("tls-proxy-bundle").join("pccs-ca.pem");
    std::fs::write(&bundle, cert_pem).unwrap();
    let (proxy, seen) = connect_proxy().await;
    let mut cfg = PccsConfig::new(&base);
    cfg.ca_bundle = Some(bundle.clone());
    cfg.proxy = ProxyConfig::Url {
        url: proxy.clone(),
        no_proxy: "pccs.example, .internal".into(),
    };
    let client = PccsClient::new(cfg).unwrap();
    let c = client.fetch(&pcs.set.id).await.unwrap();
    assert_eq!(c.document().tcb_info, pcs.set.derived.document().tcb_info);
    let want = format!("CONNECT localhost:{} HTTP/1.1", port_of(&base));
    let first: Vec<String> = seen.lock().unwrap().clone();
    // Four requests (TCB info, then QE identity, PCK CRL and root CRL at once).
    assert!(!first.is_empty() && first.len() <= 4, "{first:?}");
    assert!(first.iter().all(|l| *l == want), "{first:?}");
    // The second fetch reuses the pooled tunnels instead of opening four new ones.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    client.fetch(&pcs.set.id).await.unwrap();
    let total = seen.lock().unwrap().len();
    assert!(total < first.len() + 4, "{total} tunnels for 8 requests");

    // A host listed in no_proxy is reached directly.
    let (proxy2, seen2) = connect_proxy().await;
    let mut cfg = PccsConfig::new(&base);
    cfg.ca_bundle = Some(bundle);
    cfg.proxy = ProxyConfig::Url {
        url: proxy2,
        no_proxy: "localhost".into(),
    };
    PccsClient::new(cfg)
        .unwrap()
        .fetch(&pcs.set.id)
        .await
        .unwrap();
    assert!(seen2.lock().unwrap().is_empty());
}

#[tokio::test]
async fn proxy_failures_name_the_proxy() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let id = attest::collateral::PlatformId::from_hex(
        "00606A000000",
        attest::collateral::PckCaType::Platform,
    )
    .unwrap();
    let base = "https://localhost:9/sgx/certification/v4";
    let fail = |proxy: String| {
        let mut cfg = PccsConfig::new(base);
        cfg.proxy = ProxyConfig::Url {
            url: proxy,
            no_proxy: String::new(),
        };
        PccsClient::new(cfg).unwrap()
    };
    // Nothing listens at the proxy's address.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = fail(format!("http://127.0.0.1:{port}"))
        .fetch(&id)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SourceError::Unavailable {
            location: format!("{base}/tcb?fmspc=00606A000000"),
            reason: format!(
                "connect to localhost:9 through the proxy http://127.0.0.1:{port}/: tunnel \
                 error: failed to create underlying connection: tcp connect error: Connection \
                 refused (os error 111)"
            ),
        }
    );
    // The proxy wants credentials.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            let _ = s
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                .await;
        }
    });
    let e = fail(format!("http://{addr}")).fetch(&id).await.unwrap_err();
    assert_eq!(
        e,
        SourceError::Unavailable {
            location: format!("{base}/tcb?fmspc=00606A000000"),
            reason: format!(
                "connect to localhost:9 through the proxy http://{addr}/: tunnel error: proxy \
                 authorization required"
            ),
        }
    );
    // Only http:// proxies: the tunnel itself carries TLS.
    let mut cfg = PccsConfig::new(base);
    cfg.proxy = ProxyConfig::Url {
        url: "https://proxy.example:3128".into(),
        no_proxy: String::new(),
    };
    assert_eq!(
        PccsClient::new(cfg).unwrap_err(),
        SourceError::Config(
            "proxy https://proxy.example:3128/: only http:// proxies are supported (the tunnel \
             carries TLS to the PCS)"
                .into()
        )
    );
}
