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

use attest::collateral::{CollateralSource, PccsClient, PccsConfig, SourceError};
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
