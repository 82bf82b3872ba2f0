//! The HTTPS certificate renewed in a Kubernetes Secret volume (the kubelet writes a new
//! `..<timestamp>` directory and swaps the `..data` symlink; `tls.crt`/`tls.key` link through
//! `..data`) is picked up by the TLS reload watcher without a restart; a broken pair keeps the
//! last good certificate in service and is counted.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use attest::collateral::{CacheConfig, CollateralCache, OfflineDir};
use attest::keys::SigningAlg;
use attest::reload::watch_tls;
use attest::serve::serve;
use attest::server::{Service, ServiceConfig, router};
use attest::tls_reload::{CertFiles, ReloadingCert, default_provider};
use dcap::TrustAnchor;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const INTERVAL: Duration = Duration::from_millis(200);

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("confkube-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A CA and a `localhost` serving certificate it issued.
struct Pki {
    ca_der: CertificateDer<'static>,
    leaf_pem: String,
    leaf_der: Vec<u8>,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("test CA {name}"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, format!("attest {name}"));
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_der: ca.der().clone(),
        leaf_pem: leaf.pem(),
        leaf_der: leaf.der().to_vec(),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// Publishes `tls.crt` and `tls.key` into `dir` as the kubelet's atomic writer does.
fn k8s_publish(dir: &Path, generation: u32, cert: &str, key: &str) {
    use std::os::unix::fs::symlink;
    let ts_name = format!("..2026_01_01_00_00_{generation:02}.{generation:09}");
    let ts = dir.join(&ts_name);
    std::fs::create_dir_all(&ts).unwrap();
    std::fs::write(ts.join("tls.crt"), cert).unwrap();
    std::fs::write(ts.join("tls.key"), key).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    let _ = std::fs::remove_file(dir.join("..data_tmp"));
    symlink(&ts_name, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

fn service(dir: &Path) -> Arc<Service> {
    let cache = CollateralCache::new(
        Arc::new(OfflineDir::new(dir.join("collateral"))),
        Arc::new(attest::collateral::SystemClock),
        CacheConfig::default(),
    );
    let cfg = ServiceConfig {
        issuer: "https://localhost".into(),
        token_lifetime: 28_800,
        verify_at: None,
        anchor: TrustAnchor::intel_sgx_root(),
        allow_missing_crls: false,
        signing_alg: SigningAlg::ES256,
        signing_key_dir: None,
        policy_file: None,
        body_limit: 64 * 1024,
        admin_token_sha256: [7; 32],
    };
    Arc::new(
        Service::new(
            cfg,
            None,
            Arc::new(cache),
            Arc::new(attest::collateral::SystemClock),
        )
        .unwrap(),
    )
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to `localhost` trusting exactly `cas`.
async fn connect(addr: SocketAddr, cas: &[&CertificateDer<'static>]) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add((*ca).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn peer_leaf(tls: &Tls) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/1.1 request on the connection; returns the status line.
async fn get(tls: &mut Tls, path: &str, close: bool) -> String {
    let connection = if close { "close" } else { "keep-alive" };
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().unwrap_or_default().to_string()
}

fn reloads(result: &str, n: u64) -> String {
    format!("confkube_attest_config_reloads_total{{source=\"tls\",result=\"{result}\"}} {n}")
}

fn stale(v: i64) -> String {
    format!("confkube_attest_config_stale{{source=\"tls\"}} {v}")
}

/// Waits (up to 20 s) until the metrics contain `line`.
async fn wait_for_metric(svc: &Service, line: &str) {
    for _ in 0..400 {
        if svc.metrics().encode().contains(line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {line:?} in\n{}", svc.metrics().encode());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_in_a_secret_volume_is_served_without_a_restart() {
    let dir = tmp("renew");
    let secret = dir.join("tls");
    std::fs::create_dir_all(&secret).unwrap();
    let (a, b) = (pki("A"), pki("B"));
    assert_ne!(a.leaf_der, b.leaf_der);
    k8s_publish(&secret, 1, &a.leaf_pem, &a.key_pem);
    let files = CertFiles {
        cert: secret.join("tls.crt"),
        key: secret.join("tls.key"),
    };

    let svc = service(&dir);
    let resolver = Arc::new(ReloadingCert::load(files.clone(), default_provider()).unwrap());
    let watcher = tokio::spawn(watch_tls(svc.clone(), resolver.clone(), INTERVAL));
    let m = svc.metrics().encode();
    for line in [reloads("ok", 0), reloads("error", 0), stale(0)] {
        assert!(m.contains(&line), "{line} not in\n{m}");
    }
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        router(svc.clone()),
        "127.0.0.1:0".parse().unwrap(),
        Some(resolver),
        move |addr| {
            let _ = bound_tx.send(addr);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let addr = bound_rx.await.unwrap();
    let both = [&a.ca_der, &b.ca_der];

    let mut before = connect(addr, &both).await;
    assert_eq!(peer_leaf(&before), a.leaf_der);
    assert_eq!(get(&mut before, "/healthz", false).await, "HTTP/1.1 200 OK");

    // cert-manager renews; the kubelet swaps `..data`.
    k8s_publish(&secret, 2, &b.leaf_pem, &b.key_pem);
    tokio::time::sleep(INTERVAL * 3).await;
    wait_for_metric(&svc, &reloads("ok", 1)).await;
    let mut after = connect(addr, &both).await;
    assert_eq!(peer_leaf(&after), b.leaf_der, "new handshakes get cert B");
    assert_eq!(get(&mut after, "/healthz", true).await, "HTTP/1.1 200 OK");
    // The connection made before the swap keeps working with the certificate it got.
    assert_eq!(get(&mut before, "/healthz", true).await, "HTTP/1.1 200 OK");
    assert_eq!(peer_leaf(&before), a.leaf_der);

    // A broken renewal (the key of B with the certificate of A) keeps B in service.
    k8s_publish(&secret, 3, &a.leaf_pem, &b.key_pem);
    wait_for_metric(&svc, &reloads("error", 1)).await;
    let m = svc.metrics().encode();
    for line in [reloads("ok", 1), reloads("error", 1), stale(1)] {
        assert!(m.contains(&line), "{line} not in\n{m}");
    }
    assert_eq!(peer_leaf(&connect(addr, &both).await), b.leaf_der);
    // Counted once per content change, not at each poll.
    tokio::time::sleep(INTERVAL * 3).await;
    assert!(svc.metrics().encode().contains(&reloads("error", 1)));

    // A good pair again clears the staleness.
    k8s_publish(&secret, 4, &a.leaf_pem, &a.key_pem);
    wait_for_metric(&svc, &reloads("ok", 2)).await;
    assert!(svc.metrics().encode().contains(&stale(0)));
    assert_eq!(peer_leaf(&connect(addr, &[&a.ca_der]).await), a.leaf_der);

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    watcher.abort();
}

#[tokio::test]
async fn reload_tls_counts_and_reports_the_file_and_reason() {
    let dir = tmp("direct");
    let secret = dir.join("tls");
    std::fs::create_dir_all(&secret).unwrap();
    let (a, b) = (pki("A"), pki("B"));
    k8s_publish(&secret, 1, &a.leaf_pem, &a.key_pem);
    let files = CertFiles {
        cert: secret.join("tls.crt"),
        key: secret.join("tls.key"),
    };
    let svc = service(&dir);
    let resolver = ReloadingCert::load(files.clone(), default_provider()).unwrap();
    use attest::reload::ReloadOutcome;
    assert_eq!(svc.reload_tls(&resolver), ReloadOutcome::Unchanged);

    k8s_publish(&secret, 2, &b.leaf_pem, &a.key_pem);
    assert_eq!(
        svc.reload_tls(&resolver),
        ReloadOutcome::Rejected(format!(
            "the private key in {} does not belong to the certificate in {}; --tls-key must be \
             the key of the first (leaf) certificate in --tls-cert",
            files.key.display(),
            files.cert.display()
        ))
    );
    assert_eq!(svc.reload_tls(&resolver), ReloadOutcome::Unchanged);
    assert_eq!(
        resolver.current().end_entity_cert().unwrap().to_vec(),
        a.leaf_der
    );
    let m = svc.metrics().encode();
    assert!(m.contains(&reloads("error", 1)), "{m}");
    assert!(m.contains(&stale(1)), "{m}");

    k8s_publish(&secret, 3, &b.leaf_pem, &b.key_pem);
    assert_eq!(svc.reload_tls(&resolver), ReloadOutcome::Applied);
    assert_eq!(
        resolver.current().end_entity_cert().unwrap().to_vec(),
        b.leaf_der
    );
    let m = svc.metrics().encode();
    assert!(m.contains(&reloads("ok", 1)), "{m}");
    assert!(m.contains(&reloads("error", 1)), "{m}");
    assert!(m.contains(&stale(0)), "{m}");
}
