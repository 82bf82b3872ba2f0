//! The PCS/PCCS client against a local stand-in serving the real collateral of
//! `../shared/testdata` in PCS response shapes (bodies byte for byte, URL-encoded issuer-chain
//! headers, DER PCK CRL, hex `rootcacrl`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod collateral_support;

use std::sync::Arc;
use std::time::Duration;

use attest::collateral::{
    CollateralSource, PccsClient, PccsConfig, PckCaType, PlatformId, RootCrlSource, SourceError,
};
use collateral_support::{
    Knobs, Pcs, Set, assert_verifies, diff_fields, icelake, mobilecoin, synthetic,
};
use dcap::{Collateral, QuoteCollateralV3};

fn client(base: &str, ver: &str) -> PccsClient {
    PccsClient::new(PccsConfig::new(format!("{base}/sgx/certification/{ver}"))).unwrap()
}

/// The derived dcap-qvl document of the set, with the one documented difference of the PCS
/// shape: the PCK CRL issuer chain is the header's (PCK CA + root); the derived files of some
/// sets hold only the CA.
fn expected(set: &Set) -> QuoteCollateralV3 {
    let mut doc = set.derived.document().clone();
    assert!(set.pck_chain.starts_with(&set.derived_pck_chain));
    assert_eq!(doc.pck_crl_issuer_chain, set.derived_pck_chain);
    doc.pck_crl_issuer_chain = set.pck_chain.clone();
    doc.pck_certificate_chain = None;
    doc
}

fn assert_same(got: &Collateral, want: &QuoteCollateralV3, name: &str) {
    let g = got.document();
    assert_eq!(diff_fields(g, want), Vec::<&str>::new(), "{name}");
    assert_eq!(g, want, "{name}");
}

async fn fetch_set(set: Set, ver: &str) -> Option<(Arc<Pcs>, Collateral)> {
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    let c = client(&base, ver).fetch(&pcs.set.id).await.unwrap();
    Some((pcs, c))
}

#[tokio::test]
async fn icelake_v4_equals_derived_and_verifies() {
    let Some(set) = icelake() else { return };
    let (pcs, c) = fetch_set(set, "v4").await.unwrap();
    let want = expected(&pcs.set);
    assert_same(&c, &want, "icelake");
    assert_verifies(&pcs.set, &c);
    // The derived document verifies the same way (the PCS chain only adds the root).
    assert_verifies(&pcs.set, &pcs.set.derived);
    assert_eq!(pcs.hits(), 4);
}

#[tokio::test]
async fn mobilecoin_v4_equals_derived_and_is_expired() {
    let Some(set) = mobilecoin() else { return };
    let (pcs, c) = fetch_set(set, "v4").await.unwrap();
    assert_same(&c, &expected(&pcs.set), "mobilecoin");
    assert_verifies(&pcs.set, &c);
}

#[tokio::test]
async fn synthetic_v4_equals_derived_without_out_of_band_chain() {
    let Some(set) = synthetic() else { return };
    let (pcs, c) = fetch_set(set, "v4").await.unwrap();
    // This set's derived chain already holds CA + root: every field is equal, except the
    // out-of-band PCK chain that a PCS `tcb`/`pckcrl` client cannot know.
    assert_eq!(pcs.set.pck_chain, pcs.set.derived_pck_chain);
    assert_same(&c, &expected(&pcs.set), "synthetic");
    let mut doc = c.document().clone();
    doc.pck_certificate_chain = pcs.set.pck_certificate_chain.clone();
    assert_eq!(&doc, pcs.set.derived.document());
    // Without the out-of-band chain the type-1 quote cannot be verified.
    let case = &pcs.set.cases[0];
    assert_eq!(
        dcap::verify(&case.quote, &c, case.at, &pcs.set.anchor)
            .unwrap_err()
            .code(),
        "unsupported-certification-data"
    );
    assert_verifies(&pcs.set, &Collateral::from_document(doc).unwrap());
}

#[tokio::test]
async fn v3_header_name_is_accepted() {
    let Some(set) = icelake() else { return };
    let (pcs, c) = fetch_set(set, "v3").await.unwrap();
    assert_same(&c, &expected(&pcs.set), "icelake v3");
}

#[tokio::test]
async fn root_crl_from_intel_distribution_point_url_in_der() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    let mut cfg = PccsConfig::new(format!("{base}/sgx/certification/v4/"));
    cfg.root_ca_crl = RootCrlSource::Url(format!("{base}/IntelSGXRootCA.der"));
    let c = PccsClient::new(cfg)
        .unwrap()
        .fetch(&pcs.set.id)
        .await
        .unwrap();
    assert_same(&c, &expected(&pcs.set), "icelake, DER root CRL");
}

#[tokio::test]
async fn unknown_fmspc_is_not_found() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    let id = PlatformId::from_hex("00906ED50000", PckCaType::Platform).unwrap();
    let e = client(&base, "v4").fetch(&id).await.unwrap_err();
    assert_eq!(
        e,
        SourceError::NotFound {
            fmspc: "00906ed50000".into(),
            location: format!("{base}/sgx/certification/v4/tcb?fmspc=00906ED50000"),
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "no collateral for FMSPC 00906ed50000 at {base}/sgx/certification/v4/tcb?fmspc=00906ED50000"
        )
    );
    // Nothing else was asked for an unknown platform.
    assert_eq!(pcs.hits(), 1);
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    let c = client(&base, "v4");
    for (status, reason) in [
        (500, "HTTP 500 Internal Server Error"),
        (503, "HTTP 503 Service Unavailable"),
        (429, "HTTP 429 Too Many Requests"),
    ] {
        pcs.set_knobs(Knobs {
            status: Some(status),
            ..Knobs::default()
        });
        assert_eq!(
            c.fetch(&pcs.set.id).await.unwrap_err(),
            SourceError::Unavailable {
                location: format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000"),
                reason: reason.into(),
            }
        );
    }
    pcs.set_knobs(Knobs {
        status: Some(403),
        ..Knobs::default()
    });
    let e = c.fetch(&pcs.set.id).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "collateral source {base}/sgx/certification/v4/tcb?fmspc=00606A000000 answered HTTP 403"
        )
    );
    assert_eq!(e.kind(), "http-status");
}

#[tokio::test]
async fn slow_server_times_out_as_unavailable() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    pcs.set_knobs(Knobs {
        delay: Some(Duration::from_secs(5)),
        ..Knobs::default()
    });
    let mut cfg = PccsConfig::new(format!("{base}/sgx/certification/v4"));
    cfg.timeout = Duration::from_millis(200);
    let e = PccsClient::new(cfg)
        .unwrap()
        .fetch(&pcs.set.id)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SourceError::Unavailable {
            location: format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000"),
            reason: "no complete answer within 200 ms".into(),
        }
    );
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    // Bind, learn the port, close: nothing listens there any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let id = PlatformId::from_hex("00606A000000", PckCaType::Platform).unwrap();
    let e = client(&format!("http://127.0.0.1:{port}"), "v4")
        .fetch(&id)
        .await
        .unwrap_err();
    let SourceError::Unavailable { location, reason } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        location,
        &format!("http://127.0.0.1:{port}/sgx/certification/v4/tcb?fmspc=00606A000000")
    );
    assert!(
        reason.starts_with(&format!("connect to 127.0.0.1:{port}: Connection refused")),
        "{reason}"
    );
}

#[tokio::test]
async fn garbage_issuer_chain_header_is_invalid() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    let c = client(&base, "v4");
    let tcb_url = format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000");
    pcs.set_knobs(Knobs {
        tcb_header_override: Some("garbage%ZZ".into()),
        ..Knobs::default()
    });
    assert_eq!(
        c.fetch(&pcs.set.id).await.unwrap_err(),
        SourceError::Invalid {
            location: format!("{tcb_url} header TCB-Info-Issuer-Chain"),
            reason: "the issuer chain is not a (URL-encoded) PEM certificate chain".into(),
        }
    );
    // A bad TCB answer costs no further requests.
    assert_eq!(pcs.hits(), 1);
    // A PEM header around garbage.
    pcs.set_knobs(Knobs {
        tcb_header_override: Some(
            "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A".into(),
        ),
        ..Knobs::default()
    });
    assert_eq!(
        c.fetch(&pcs.set.id).await.unwrap_err().to_string(),
        format!(
            "invalid collateral from {tcb_url} header TCB-Info-Issuer-Chain: certificate 1 of \
             the issuer chain: Parsing Error: Der(UnexpectedTag {{ expected: Some(Tag(16)), \
             actual: Tag(0) }})"
        )
    );
    // Percent-encoded bytes that are not UTF-8.
    pcs.set_knobs(Knobs {
        tcb_header_override: Some("%FF%FE".into()),
        ..Knobs::default()
    });
    assert_eq!(
        c.fetch(&pcs.set.id).await.unwrap_err().to_string(),
        format!(
            "invalid collateral from {tcb_url} header TCB-Info-Issuer-Chain: the URL-decoded \
             issuer chain is not UTF-8"
        )
    );
}

#[tokio::test]
async fn missing_header_and_bad_body_are_invalid() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    let c = client(&base, "v4");
    pcs.set_knobs(Knobs {
        drop_qe_header: true,
        ..Knobs::default()
    });
    assert_eq!(
        c.fetch(&pcs.set.id).await.unwrap_err(),
        SourceError::Invalid {
            location: format!("{base}/sgx/certification/v4/qe/identity"),
            reason: "the response has no SGX-Enclave-Identity-Issuer-Chain header".into(),
        }
    );
    pcs.set_knobs(Knobs {
        tcb_body_override: Some(b"<html>maintenance</html>".to_vec()),
        ..Knobs::default()
    });
    assert_eq!(
        c.fetch(&pcs.set.id).await.unwrap_err().to_string(),
        format!(
            "invalid collateral from {base}/sgx/certification/v4/tcb?fmspc=00606A000000: not a \
             PCS {{\"tcbInfo\":…,\"signature\":…}} body: expected value at line 1 column 1"
        )
    );
    // A TCB info for another platform under this FMSPC.
    let other = mobilecoin().unwrap().tcb_body;
    pcs.set_knobs(Knobs {
        tcb_body_override: Some(other),
        ..Knobs::default()
    });
    assert_eq!(
        c.fetch(&pcs.set.id).await.unwrap_err().to_string(),
        format!(
            "invalid collateral from {base}/sgx/certification/v4/tcb?fmspc=00606A000000: the TCB \
             info is for FMSPC 00906ed50000, not 00606a000000"
        )
    );
    // Over the body limit.
    pcs.set_knobs(Knobs::default());
    let mut cfg = PccsConfig::new(format!("{base}/sgx/certification/v4"));
    cfg.max_body_bytes = 1000;
    assert_eq!(
        PccsClient::new(cfg)
            .unwrap()
            .fetch(&pcs.set.id)
            .await
            .unwrap_err(),
        SourceError::Invalid {
            location: format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000"),
            reason: "the body exceeds 1000 bytes".into(),
        }
    );
}

#[tokio::test]
async fn missing_tcb_header_names_both_variants() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    // The stand-in's answers with the TCB info issuer-chain header stripped.
    let router = pcs.router().layer(axum::middleware::map_response(
        |mut r: axum::response::Response| async move {
            r.headers_mut().remove("TCB-Info-Issuer-Chain");
            r
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let e = client(&format!("http://{addr}"), "v4")
        .fetch(&pcs.set.id)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SourceError::Invalid {
            location: format!("http://{addr}/sgx/certification/v4/tcb?fmspc=00606A000000"),
            reason: "the response has no TCB-Info-Issuer-Chain (or SGX-TCB-Info-Issuer-Chain) \
                     header"
                .into(),
        }
    );
}

/// A raw TCP server that answers every connection with `reply` and closes.
async fn raw_server(reply: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn broken_http_answers_are_unavailable() {
    let id = PlatformId::from_hex("00606A000000", PckCaType::Platform).unwrap();
    // The connection closes without an answer.
    let base = raw_server(b"").await;
    let e = client(&base, "v4").fetch(&id).await.unwrap_err();
    assert_eq!(
        e,
        SourceError::Unavailable {
            location: format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000"),
            reason: "HTTP request: connection closed before message completed".into(),
        }
    );
    // The body ends before its Content-Length.
    let base = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort").await;
    let e = client(&base, "v4").fetch(&id).await.unwrap_err();
    let SourceError::Unavailable { location, reason } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        location,
        &format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000")
    );
    assert!(reason.starts_with("reading the body: "), "{reason}");
    // Not HTTP at all.
    let base = raw_server(b"SSH-2.0-OpenSSH\r\n").await;
    let e = client(&base, "v4").fetch(&id).await.unwrap_err();
    assert_eq!(
        e,
        SourceError::Unavailable {
            location: format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000"),
            reason: "HTTP request: invalid HTTP version parsed".into(),
        }
    );
}

#[tokio::test]
async fn subscription_key_header_is_sent_when_configured() {
    let Some(set) = icelake() else { return };
    let pcs = Pcs::new(set);
    let base = pcs.serve().await;
    pcs.set_knobs(Knobs {
        require_key: Some("k3y".into()),
        ..Knobs::default()
    });
    assert_eq!(
        client(&base, "v4").fetch(&pcs.set.id).await.unwrap_err(),
        SourceError::Status {
            location: format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000"),
            status: 401,
        }
    );
    let mut cfg = PccsConfig::new(format!("{base}/sgx/certification/v4"));
    cfg.api_key = Some("k3y".into());
    let c = PccsClient::new(cfg)
        .unwrap()
        .fetch(&pcs.set.id)
        .await
        .unwrap();
    assert_same(&c, &expected(&pcs.set), "icelake with a subscription key");
}
