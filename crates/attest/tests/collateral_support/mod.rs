//! Shared by the `collateral_*` tests: the real collateral sets of `../shared/testdata` in their
//! PCS shapes, and a PCS/PCCS stand-in written from spec §6 (an axum server on 127.0.0.1).
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest::collateral::{Clock, PckCaType, PlatformId};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use dcap::{Collateral, QuoteCollateralV3, TrustAnchor};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// PEM of one DER certificate, 64 columns, trailing newline (as the derived files have it).
pub fn pem(der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

fn join_pem(a: &str, b: &str) -> String {
    if a.ends_with('\n') {
        format!("{a}{b}")
    } else {
        format!("{a}\n{b}")
    }
}

/// One expected verification of a quote of the set.
pub struct Case {
    pub quote: Vec<u8>,
    pub at: i64,
    /// `Ok((tcb status, advisory ids))` or `Err(error code)`.
    pub expect: Result<(&'static str, Vec<&'static str>), &'static str>,
}

/// A real collateral set as the PCS serves it, and its derived dcap-qvl JSON.
pub struct Set {
    pub name: &'static str,
    pub id: PlatformId,
    /// PCS `tcb` body, byte for byte.
    pub tcb_body: Vec<u8>,
    /// PEM the `TCB-Info-Issuer-Chain` header carries (URL-encoded on the wire).
    pub tcb_chain: String,
    pub qe_body: Vec<u8>,
    pub qe_chain: String,
    pub pck_crl_der: Vec<u8>,
    /// PEM the `SGX-PCK-CRL-Issuer-Chain` header carries: the PCK CA and the root, as the PCS
    /// sends it.
    pub pck_chain: String,
    /// The PCK CA alone, as in the derived JSON of the sets that hold only it.
    pub derived_pck_chain: String,
    pub root_crl_der: Vec<u8>,
    /// An out-of-band PCK chain (sets whose quote has none).
    pub pck_certificate_chain: Option<String>,
    pub derived: Collateral,
    pub anchor: TrustAnchor,
    pub cases: Vec<Case>,
}

fn rd(rel: &str) -> Option<Vec<u8>> {
    testdata::read(&format!("dcap/{rel}"))
}

fn text(rel: &str) -> Option<String> {
    rd(rel).map(|b| String::from_utf8(b).unwrap())
}

/// `automata-dcap-attestation/icelake-00606A000000`: Platform CA, two quotes.
pub fn icelake() -> Option<Set> {
    let d = "automata-dcap-attestation/icelake-00606A000000";
    let root = pem(&rd(&format!("{d}/root.der"))?);
    let signing = pem(&rd(&format!("{d}/signing.der"))?);
    let platform = pem(&rd(&format!("{d}/platform.der"))?);
    let expect = Ok(("SWHardeningNeeded", vec!["INTEL-SA-00615"]));
    Some(Set {
        name: "icelake",
        id: PlatformId::from_hex("00606A000000", PckCaType::Platform).unwrap(),
        tcb_body: rd(&format!("{d}/sgx_tcbinfov3_00606a000000.json"))?,
        tcb_chain: join_pem(&signing, &root),
        qe_body: rd(&format!("{d}/sgx_qeidentity_v4.json"))?,
        qe_chain: join_pem(&signing, &root),
        pck_crl_der: rd(&format!("{d}/platform_crl.der"))?,
        pck_chain: join_pem(&platform, &root),
        derived_pck_chain: platform,
        root_crl_der: rd(&format!("{d}/intel_root_ca_crl.der"))?,
        pck_certificate_chain: None,
        derived: Collateral::from_json(&rd(&format!("{d}/derived_dcap_qvl_collateral.json"))?)
            .unwrap(),
        anchor: TrustAnchor::intel_sgx_root(),
        cases: vec![
            Case {
                quote: rd(&format!("{d}/derived_quotev3.bin"))?,
                at: 1_755_648_000,
                expect: expect.clone(),
            },
            Case {
                quote: rd(&format!("{d}/derived_sample_quote0_sgx.bin"))?,
                at: 1_755_648_000,
                expect,
            },
        ],
    })
}

/// `mobilecoin-attestation`: Processor CA, stale PCK CRL (collateral-expired).
pub fn mobilecoin() -> Option<Set> {
    let d = "mobilecoin-attestation";
    let root = text(&format!("{d}/root_ca.pem"))?;
    let signer = text(&format!("{d}/tcb_signer.pem"))?;
    let ca = text(&format!("{d}/processor_ca.pem"))?;
    Some(Set {
        name: "mobilecoin",
        id: PlatformId::from_hex("00906ED50000", PckCaType::Processor).unwrap(),
        tcb_body: rd(&format!("{d}/fmspc_00906ED50000_2023_07_12.json"))?,
        tcb_chain: join_pem(&signer, &root),
        qe_body: rd(&format!("{d}/qe_identity.json"))?,
        qe_chain: join_pem(&signer, &root),
        pck_crl_der: rd(&format!("{d}/processor_crl.der"))?,
        pck_chain: join_pem(&ca, &root),
        derived_pck_chain: ca,
        root_crl_der: rd(&format!("{d}/root_crl.der"))?,
        pck_certificate_chain: None,
        derived: Collateral::from_json(&rd(&format!("{d}/derived_dcap_qvl_collateral.json"))?)
            .unwrap(),
        anchor: TrustAnchor::intel_sgx_root(),
        cases: vec![Case {
            quote: rd(&format!("{d}/hw_quote.dat"))?,
            at: 1_689_194_905,
            expect: Err("collateral-expired"),
        }],
    })
}

/// `intel-qvl-synthetic`: test root, out-of-band PCK chain.
pub fn synthetic() -> Option<Set> {
    let d = "intel-qvl-synthetic";
    let pck_sign = text(&format!("{d}/pckSignChain.pem"))?;
    let tcb_sign = text(&format!("{d}/tcbSignChain.pem"))?;
    let root = text(&format!("{d}/trustedRootCaCert.pem"))?;
    Some(Set {
        name: "synthetic",
        id: PlatformId::from_hex("00707F000000", PckCaType::Processor).unwrap(),
        tcb_body: rd(&format!("{d}/tcbInfo.json"))?,
        tcb_chain: tcb_sign.clone(),
        qe_body: rd(&format!("{d}/qeIdentity.json"))?,
        qe_chain: tcb_sign,
        pck_crl_der: rd(&format!("{d}/intermediateCaCrl.der"))?,
        pck_chain: pck_sign.clone(),
        derived_pck_chain: pck_sign.clone(),
        root_crl_der: rd(&format!("{d}/rootCaCrl.der"))?,
        pck_certificate_chain: Some(format!(
            "{}{}",
            text(&format!("{d}/pckCert.pem"))?,
            pck_sign
        )),
        derived: Collateral::from_json(&rd(&format!("{d}/derived_dcap_qvl_collateral.json"))?)
            .unwrap(),
        anchor: TrustAnchor::from_certificate(root.as_bytes()).unwrap(),
        cases: vec![Case {
            quote: rd(&format!("{d}/quote.dat"))?,
            at: 1_577_836_800,
            expect: Ok(("UpToDate", vec![])),
        }],
    })
}

/// The names of the fields in which two documents differ.
pub fn diff_fields(a: &QuoteCollateralV3, b: &QuoteCollateralV3) -> Vec<&'static str> {
    let mut d = Vec::new();
    let pairs: [(&'static str, &str, &str); 9] = [
        (
            "pck_crl_issuer_chain",
            &a.pck_crl_issuer_chain,
            &b.pck_crl_issuer_chain,
        ),
        ("root_ca_crl", &a.root_ca_crl, &b.root_ca_crl),
        ("pck_crl", &a.pck_crl, &b.pck_crl),
        (
            "tcb_info_issuer_chain",
            &a.tcb_info_issuer_chain,
            &b.tcb_info_issuer_chain,
        ),
        ("tcb_info", &a.tcb_info, &b.tcb_info),
        (
            "tcb_info_signature",
            &a.tcb_info_signature,
            &b.tcb_info_signature,
        ),
        (
            "qe_identity_issuer_chain",
            &a.qe_identity_issuer_chain,
            &b.qe_identity_issuer_chain,
        ),
        ("qe_identity", &a.qe_identity, &b.qe_identity),
        (
            "qe_identity_signature",
            &a.qe_identity_signature,
            &b.qe_identity_signature,
        ),
    ];
    for (name, x, y) in pairs {
        if x != y {
            d.push(name);
        }
    }
    if a.pck_certificate_chain != b.pck_certificate_chain {
        d.push("pck_certificate_chain");
    }
    d
}

/// Checks `dcap::verify` of every quote of the set with `c` against the set's expectations.
pub fn assert_verifies(set: &Set, c: &Collateral) {
    for (i, case) in set.cases.iter().enumerate() {
        let got = dcap::verify(&case.quote, c, case.at, &set.anchor)
            .map(|v| {
                (
                    v.tcb_status().as_str().to_string(),
                    v.advisory_ids().to_vec(),
                    v.fmspc(),
                )
            })
            .map_err(|e| e.code());
        match (&case.expect, got) {
            (Ok((status, ids)), Ok((s, a, f))) => {
                assert_eq!(
                    (s.as_str(), a),
                    (
                        *status,
                        ids.iter().map(|x| x.to_string()).collect::<Vec<_>>()
                    ),
                    "{} case {i}",
                    set.name
                );
                assert_eq!(f, set.id.fmspc, "{} case {i}", set.name);
            }
            (Err(code), Err(c)) => assert_eq!(c, *code, "{} case {i}", set.name),
            (want, got) => panic!("{} case {i}: want {want:?}, got {got:?}", set.name),
        }
    }
}

/// What the stand-in does besides answering normally.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// Answer every request with this status (and an empty body).
    pub status: Option<u16>,
    /// Sleep this long before answering.
    pub delay: Option<Duration>,
    /// Send this (already encoded) value as the TCB info issuer-chain header.
    pub tcb_header_override: Option<String>,
    /// Leave out the QE identity issuer-chain header.
    pub drop_qe_header: bool,
    /// Replace the tcb body.
    pub tcb_body_override: Option<Vec<u8>>,
    /// Answer `tcb` with 401 unless `Ocp-Apim-Subscription-Key` has this value.
    pub require_key: Option<String>,
}

/// A PCS/PCCS stand-in serving one set under `/sgx/certification/{v3,v4}/`, plus the root CA CRL
/// as DER at `/IntelSGXRootCA.der` (Intel's distribution point).
pub struct Pcs {
    pub set: Set,
    pub knobs: Mutex<Knobs>,
    /// Requests per endpoint: tcb, qe/identity, pckcrl, rootcacrl (both forms).
    pub tcb_hits: AtomicUsize,
    pub qe_hits: AtomicUsize,
    pub pckcrl_hits: AtomicUsize,
    pub root_hits: AtomicUsize,
}

fn chain_header(pem: &str) -> HeaderValue {
    HeaderValue::from_str(&utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()).unwrap()
}

impl Pcs {
    pub fn new(set: Set) -> Arc<Self> {
        Arc::new(Self {
            set,
            knobs: Mutex::new(Knobs::default()),
            tcb_hits: AtomicUsize::new(0),
            qe_hits: AtomicUsize::new(0),
            pckcrl_hits: AtomicUsize::new(0),
            root_hits: AtomicUsize::new(0),
        })
    }

    pub fn set_knobs(&self, k: Knobs) {
        *self.knobs.lock().unwrap() = k;
    }

    /// Total requests so far.
    pub fn hits(&self) -> usize {
        self.tcb_hits.load(Ordering::SeqCst)
            + self.qe_hits.load(Ordering::SeqCst)
            + self.pckcrl_hits.load(Ordering::SeqCst)
            + self.root_hits.load(Ordering::SeqCst)
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/sgx/certification/{ver}/tcb", get(tcb))
            .route("/sgx/certification/{ver}/qe/identity", get(qe))
            .route("/sgx/certification/{ver}/pckcrl", get(pckcrl))
            .route("/sgx/certification/{ver}/rootcacrl", get(rootcacrl))
            .route("/IntelSGXRootCA.der", get(root_der))
            .with_state(self.clone())
    }

    /// Serves plain HTTP on 127.0.0.1; returns `http://127.0.0.1:PORT`.
    pub async fn serve(self: &Arc<Self>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    /// Applies the knobs: delay, then a forced status.
    async fn prelude(&self) -> Result<Knobs, Response> {
        let k = self.knobs.lock().unwrap().clone();
        if let Some(d) = k.delay {
            tokio::time::sleep(d).await;
        }
        if let Some(s) = k.status {
            return Err(StatusCode::from_u16(s).unwrap().into_response());
        }
        Ok(k)
    }
}

type Q = Query<std::collections::HashMap<String, String>>;

async fn tcb(
    State(p): State<Arc<Pcs>>,
    Path(ver): Path<String>,
    Query(q): Q,
    headers: axum::http::HeaderMap,
) -> Response {
    p.tcb_hits.fetch_add(1, Ordering::SeqCst);
    let k = match p.prelude().await {
        Ok(k) => k,
        Err(r) => return r,
    };
    if let Some(key) = &k.require_key {
        let sent = headers
            .get("Ocp-Apim-Subscription-Key")
            .map(|v| v.as_bytes());
        if sent != Some(key.as_bytes()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let asked = q.get("fmspc").map(|f| f.to_ascii_lowercase());
    if asked.as_deref() != Some(p.set.id.fmspc_hex().as_str()) {
        // PCCS: "No cache data for this fmspc" / PCS: 404.
        return StatusCode::NOT_FOUND.into_response();
    }
    // apputil.js getTcbInfoIssuerChainName(version): v3 → SGX-TCB-Info-Issuer-Chain.
    let name = if ver == "v3" {
        "SGX-TCB-Info-Issuer-Chain"
    } else {
        "TCB-Info-Issuer-Chain"
    };
    let value = match k.tcb_header_override {
        Some(v) => HeaderValue::from_str(&v).unwrap(),
        None => chain_header(&p.set.tcb_chain),
    };
    let body = k
        .tcb_body_override
        .unwrap_or_else(|| p.set.tcb_body.clone());
    let mut r = body.into_response();
    r.headers_mut().insert(name, value);
    r.headers_mut()
        .insert("Content-Type", HeaderValue::from_static("application/json"));
    r
}

async fn qe(State(p): State<Arc<Pcs>>) -> Response {
    p.qe_hits.fetch_add(1, Ordering::SeqCst);
    let k = match p.prelude().await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut r = p.set.qe_body.clone().into_response();
    if !k.drop_qe_header {
        r.headers_mut().insert(
            "SGX-Enclave-Identity-Issuer-Chain",
            chain_header(&p.set.qe_chain),
        );
    }
    r
}

async fn pckcrl(State(p): State<Arc<Pcs>>, Query(q): Q) -> Response {
    p.pckcrl_hits.fetch_add(1, Ordering::SeqCst);
    if let Err(r) = p.prelude().await {
        return r;
    }
    if q.get("ca").map(String::as_str) != Some(p.set.id.ca.as_str()) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let body = if q.get("encoding").map(String::as_str) == Some("der") {
        p.set.pck_crl_der.clone()
    } else {
        let b = base64::engine::general_purpose::STANDARD.encode(&p.set.pck_crl_der);
        format!("-----BEGIN X509 CRL-----\n{b}\n-----END X509 CRL-----\n").into_bytes()
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert("SGX-PCK-CRL-Issuer-Chain", chain_header(&p.set.pck_chain));
    r
}

/// PCCS `rootcacrl`: hex (spec §6.1, pitfall 19).
async fn rootcacrl(State(p): State<Arc<Pcs>>) -> Response {
    p.root_hits.fetch_add(1, Ordering::SeqCst);
    if let Err(r) = p.prelude().await {
        return r;
    }
    hex::encode(&p.set.root_crl_der).into_response()
}

/// Intel's CRL distribution point: DER.
async fn root_der(State(p): State<Arc<Pcs>>) -> Response {
    p.root_hits.fetch_add(1, Ordering::SeqCst);
    if let Err(r) = p.prelude().await {
        return r;
    }
    p.set.root_crl_der.clone().into_response()
}

/// A settable clock.
#[derive(Debug, Default)]
pub struct TestClock(pub AtomicI64);

impl TestClock {
    pub fn at(t: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(t)))
    }
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A fresh, empty directory below the test target tmp dir.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("collateral-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
