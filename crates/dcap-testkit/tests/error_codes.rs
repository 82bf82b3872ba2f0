//! The test PKI drives the verifier through every TCB status and every error code of DESIGN.md
//! §4. Each case asserts its exact code; a final check asserts that all codes were produced.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dcap::{
    Collateral, QuoteCollateralV3, TcbStatus, TrustAnchor, VerifiedQuote, Verifier, VerifyError,
    VerifyOptions,
};
use dcap_testkit::{CollateralParams, PkiNames, PkiParams, QuoteParams, Testkit};
use sgx_types::Quote;
use std::collections::BTreeSet;

const AT: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

struct World {
    kit: Testkit,
    coll: QuoteCollateralV3,
    quote: Vec<u8>,
}

fn world(status: Option<TcbStatus>) -> World {
    world_with(
        PkiParams::new(AT, status),
        CollateralParams::new(AT),
        QuoteParams::default(),
    )
}

fn world_with(pki: PkiParams, cp: CollateralParams, qp: QuoteParams) -> World {
    let kit = Testkit::generate(pki).unwrap();
    let coll = kit.collateral(&cp).unwrap();
    let quote = kit.quote(&qp).unwrap();
    World { kit, coll, quote }
}

impl World {
    fn anchor(&self) -> TrustAnchor {
        TrustAnchor::from_certificate(self.kit.root_pem().as_bytes()).unwrap()
    }

    fn verify_at(&self, at: i64, opts: VerifyOptions) -> Result<VerifiedQuote, VerifyError> {
        let c = Collateral::from_document(self.coll.clone()).unwrap();
        let uncached = Verifier::uncached(opts.clone()).verify(&self.quote, &c, at, &self.anchor());
        let cached = Verifier::new(opts);
        // Twice through the cache: the warm path must agree with the cold one.
        let first = cached.verify(&self.quote, &c, at, &self.anchor());
        let warm = cached.verify(&self.quote, &c, at, &self.anchor());
        assert_eq!(uncached, first);
        assert_eq!(first, warm);
        warm
    }

    fn verify(&self) -> Result<VerifiedQuote, VerifyError> {
        self.verify_at(AT + 3600, VerifyOptions::default())
    }

    fn resign_tcb_info(&mut self, edit: impl Fn(&str) -> String) {
        self.coll.tcb_info = edit(&self.coll.tcb_info);
        self.coll.tcb_info_signature = self.kit.sign_collateral_text(&self.coll.tcb_info).unwrap();
    }

    fn resign_qe_identity(&mut self, edit: impl Fn(&str) -> String) {
        self.coll.qe_identity = edit(&self.coll.qe_identity);
        self.coll.qe_identity_signature = self
            .kit
            .sign_collateral_text(&self.coll.qe_identity)
            .unwrap();
    }

    fn edit_quote(&mut self, edit: impl Fn(&mut Quote)) {
        let mut q = Quote::parse(&self.quote).unwrap();
        edit(&mut q);
        self.quote = q.to_bytes();
    }
}

fn flip_hex(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    c[10] = if c[10] == '0' { '1' } else { '0' };
    c.into_iter().collect()
}

fn code(r: Result<VerifiedQuote, VerifyError>) -> String {
    match r {
        Ok(v) => format!("verified {}", v.tcb_status()),
        Err(e) => e.code().to_string(),
    }
}

#[test]
fn every_platform_tcb_status() {
    for status in TcbStatus::ALL {
        let w = world(Some(status));
        let r = w.verify();
        if status == TcbStatus::Revoked {
            assert_eq!(code(r), "tcb-revoked");
            continue;
        }
        let v = r.unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(v.tcb_status(), status);
        assert_eq!(v.platform_tcb_status(), status);
        assert_eq!(v.qe_tcb_status(), TcbStatus::UpToDate);
        let want: Vec<String> = if status == TcbStatus::UpToDate {
            vec![]
        } else {
            let i = TcbStatus::ALL.iter().position(|s| *s == status).unwrap();
            vec![format!("TESTKIT-SA-{i:05}")]
        };
        assert_eq!(v.advisory_ids(), want.as_slice(), "{status}");
        assert!(v.revocation_checked());
        assert_eq!(v.fmspc(), [0xc0, 0xff, 0xee, 0, 0, 0]);
    }
}

#[test]
fn qe_status_merges_into_the_platform_status() {
    let cases = [
        (TcbStatus::UpToDate, 6, "verified OutOfDate"),
        (
            TcbStatus::ConfigurationNeeded,
            6,
            "verified OutOfDateConfigurationNeeded",
        ),
        (
            TcbStatus::SwHardeningNeeded,
            9,
            "verified SWHardeningNeeded",
        ),
        (TcbStatus::UpToDate, 2, "tcb-revoked"),
        (TcbStatus::UpToDate, 1, "tcb-level-not-found"),
    ];
    for (platform, qe_svn, want) in cases {
        let w = world_with(
            PkiParams::new(AT, Some(platform)),
            CollateralParams::new(AT),
            QuoteParams {
                qe_isv_svn: qe_svn,
                ..QuoteParams::default()
            },
        );
        assert_eq!(code(w.verify()), want, "{platform} with QE ISVSVN {qe_svn}");
    }
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::SwHardeningNeeded)),
        CollateralParams::new(AT),
        QuoteParams {
            qe_isv_svn: 6,
            ..QuoteParams::default()
        },
    );
    let v = w.verify().unwrap();
    assert_eq!(
        v.advisory_ids(),
        ["TESTKIT-SA-00001", "TESTKIT-SA-QE-00001"]
    );
}

#[test]
fn quote_fields_come_through_v3_and_v4() {
    for version in [3, 4] {
        let qp = QuoteParams {
            version,
            mrenclave: [0xaa; 32],
            mrsigner: [0xbb; 32],
            report_data: [0xcc; 64],
            debug: true,
            isv_prod_id: 7,
            isv_svn: 9,
            qe_isv_svn: 8,
        };
        let w = world_with(
            PkiParams::new(AT, Some(TcbStatus::UpToDate)),
            CollateralParams::new(AT),
            qp,
        );
        let v = w.verify().unwrap();
        assert_eq!(v.header().version, version);
        assert_eq!(v.report().mr_enclave.0, [0xaa; 32]);
        assert_eq!(v.report().mr_signer.0, [0xbb; 32]);
        assert_eq!(v.report().report_data.0, [0xcc; 64]);
        assert!(v.debug());
        assert_eq!((v.report().isv_prod_id, v.report().isv_svn), (7, 9));
        assert_eq!(v.collateral_valid_until(), AT + 30 * 86_400);
    }
}

#[test]
fn every_error_code_is_produced() {
    let mut produced = BTreeSet::new();
    let mut check = |name: &str, r: Result<VerifiedQuote, VerifyError>, want: &str| {
        if let Err(e) = &r {
            assert_sources_not_repeated(e);
        }
        let got = code(r);
        assert_eq!(got, want, "{name}");
        produced.insert(want.to_string());
    };
    let opts = VerifyOptions::default;

    let mut w = world(Some(TcbStatus::UpToDate));
    w.quote.truncate(w.quote.len() - 1);
    check("truncated quote", w.verify(), "malformed-quote");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.quote.push(0);
    check("trailing byte", w.verify(), "malformed-quote");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.quote[0] = 5;
    check("version 5", w.verify(), "unsupported-quote-version");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.quote[4] = 0x81;
    w.quote[0] = 4;
    check("v4 TDX", w.verify(), "unsupported-quote-version");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.quote[2] = 3;
    check(
        "P-384 key type",
        w.verify(),
        "unsupported-attestation-key-type",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.edit_quote(|q| q.signature.certification_data.kind = 7);
    check(
        "platform manifest",
        w.verify(),
        "unsupported-certification-data",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.edit_quote(|q| {
        q.signature.certification_data.kind = 3;
        q.signature.certification_data.data = vec![0; 404];
    });
    check(
        "type 3 without PCK chain",
        w.verify(),
        "unsupported-certification-data",
    );
    // ...and with the out-of-band chain it verifies.
    w.coll.pck_certificate_chain = Some(w.kit.pck_chain_pem());
    check("type 3 with PCK chain", w.verify(), "verified UpToDate");

    let w = world(Some(TcbStatus::UpToDate));
    let other = Testkit::generate(PkiParams::new(AT, None)).unwrap();
    let c = Collateral::from_document(w.coll.clone()).unwrap();
    let foreign = TrustAnchor::from_certificate(other.root_der()).unwrap();
    check(
        "another root",
        dcap::verify(&w.quote, &c, AT, &foreign),
        "untrusted-root",
    );
    check(
        "Intel root",
        dcap::verify(&w.quote, &c, AT, &TrustAnchor::intel_sgx_root()),
        "untrusted-root",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    let other = Testkit::generate(PkiParams::new(AT, Some(TcbStatus::UpToDate))).unwrap();
    w.edit_quote(|q| q.signature.certification_data.data = other.pck_chain_pem().into_bytes());
    check("PCK chain from another root", w.verify(), "untrusted-root");

    let mut cp = CollateralParams::new(AT);
    cp.revoke_pck = true;
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        cp,
        QuoteParams::default(),
    );
    check("PCK leaf revoked", w.verify(), "pck-revoked");

    let mut cp = CollateralParams::new(AT);
    cp.revoke_pck_ca = true;
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        cp,
        QuoteParams::default(),
    );
    check("PCK CA revoked", w.verify(), "pck-revoked");

    let mut pki = PkiParams::new(AT, Some(TcbStatus::UpToDate));
    pki.leaf_not_after = Some(AT + 1800);
    let w = world_with(pki, CollateralParams::new(AT), QuoteParams::default());
    check("PCK leaf expired", w.verify(), "certificate-expired");

    let w = world(Some(TcbStatus::UpToDate));
    check(
        "after nextUpdate",
        w.verify_at(AT + 31 * 86_400, opts()),
        "collateral-expired",
    );
    check(
        "before issueDate",
        w.verify_at(AT - 60, opts()),
        "collateral-not-yet-valid",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.coll.tcb_info_signature = flip_hex(&w.coll.tcb_info_signature);
    check(
        "TCB info signature bit",
        w.verify(),
        "tcb-info-signature-invalid",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.coll.tcb_info = w.coll.tcb_info.replace("\"tcbType\":0", "\"tcbType\":1");
    check(
        "TCB info text edited",
        w.verify(),
        "tcb-info-signature-invalid",
    );

    let mut cp = CollateralParams::new(AT);
    cp.revoke_tcb_signer = true;
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        cp,
        QuoteParams::default(),
    );
    check(
        "TCB signer revoked",
        w.verify(),
        "tcb-info-signature-invalid",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.coll.qe_identity_signature = flip_hex(&w.coll.qe_identity_signature);
    check(
        "QE identity signature bit",
        w.verify(),
        "qe-identity-signature-invalid",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.coll.qe_identity_issuer_chain = w.coll.pck_crl_issuer_chain.clone();
    check(
        "QE identity signed by PCK CA",
        w.verify(),
        "qe-identity-signature-invalid",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.edit_quote(|q| q.signature.qe_report.reserved1[0] ^= 1);
    check("QE report byte", w.verify(), "qe-report-signature-invalid");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.edit_quote(|q| q.signature.qe_auth_data[0] ^= 1);
    check(
        "QE auth data byte",
        w.verify(),
        "attestation-key-binding-mismatch",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.edit_quote(|q| q.report.mr_enclave.0[0] ^= 1);
    check("MRENCLAVE byte", w.verify(), "quote-signature-invalid");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.edit_quote(|q| q.signature.quote_signature[5] ^= 1);
    check("quote signature bit", w.verify(), "quote-signature-invalid");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.resign_qe_identity(|t| t.replace("\"isvprodid\":1", "\"isvprodid\":2"));
    check("QE ISVPRODID", w.verify(), "qe-identity-mismatch");

    let mut w = world(Some(TcbStatus::UpToDate));
    let signer = hex::encode_upper(dcap_testkit::testkit_qe_mrsigner());
    w.resign_qe_identity(|t| t.replace(&signer, &"AB".repeat(32)));
    check("QE MRSIGNER", w.verify(), "qe-identity-mismatch");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.resign_qe_identity(|t| {
        t.replace(
            "\"attributes\":\"11000000000000000000000000000000\"",
            "\"attributes\":\"13000000000000000000000000000000\"",
        )
    });
    check(
        "QE ATTRIBUTES (DEBUG QE)",
        w.verify(),
        "qe-identity-mismatch",
    );

    let mut w = world(Some(TcbStatus::UpToDate));
    w.resign_tcb_info(|t| t.replace("C0FFEE000000", "C0FFEE000001"));
    check("FMSPC", w.verify(), "fmspc-mismatch");

    let mut w = world(Some(TcbStatus::UpToDate));
    w.resign_tcb_info(|t| t.replace("\"pceId\":\"0000\"", "\"pceId\":\"0100\""));
    check("PCE-ID", w.verify(), "pceid-mismatch");

    check("no level", world(None).verify(), "tcb-level-not-found");
    check(
        "revoked level",
        world(Some(TcbStatus::Revoked)).verify(),
        "tcb-revoked",
    );

    let mut cp = CollateralParams::new(AT);
    cp.include_crls = false;
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        cp,
        QuoteParams::default(),
    );
    check("no CRLs", w.verify(), "crl-missing");
    let v = w
        .verify_at(AT + 60, VerifyOptions::default().allow_missing_crls(true))
        .unwrap();
    assert!(!v.revocation_checked());
    assert_eq!(dcap::success_json(&v)["revocation_checked"], false);

    // tdx-module-mismatch is TDX-only: tests/tdx_error_codes.rs produces it.
    let all: BTreeSet<String> = VerifyError::CODES
        .iter()
        .filter(|c| **c != "tdx-module-mismatch")
        .map(|c| c.to_string())
        .collect();
    let missing: Vec<_> = all.difference(&produced).collect();
    assert!(missing.is_empty(), "codes never produced: {missing:?}");
}

#[test]
fn failure_messages_name_the_item() {
    let w = world(Some(TcbStatus::UpToDate));
    let e = w
        .verify_at(AT + 31 * 86_400, VerifyOptions::default())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "collateral expired: the root CA CRL expired at 2026-01-31T00:00:00Z (next update), \
         before the verification time 2026-02-01T00:00:00Z"
    );
    let mut cp = CollateralParams::new(AT);
    cp.include_crls = false;
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        cp,
        QuoteParams::default(),
    );
    assert_eq!(
        w.verify().unwrap_err().to_string(),
        "CRL missing: the collateral has no root_ca_crl and pck_crl; revocation cannot be \
         checked (allow it explicitly with --allow-missing-crls)"
    );
}

/// Intel QVL's name rule: each CN must contain its role's phrase (`SGX Root CA`, `CA`,
/// `SGX PCK Certificate`, `SGX TCB Signing`); a private PKI with such names verifies, one
/// without fails with `untrusted-root` and names the certificate, the chain and the phrase.
#[test]
fn certificate_names_follow_qvl_phrase_rules() {
    let synthetic = PkiNames {
        root: "Synthetic SGX Root CA".into(),
        pck_ca: "Synthetic SGX PCK Platform CA".into(),
        pck: "Synthetic SGX PCK Certificate".into(),
        tcb_signer: "Synthetic SGX TCB Signing".into(),
    };
    let with_names = |names: PkiNames| {
        let mut pki = PkiParams::new(AT, Some(TcbStatus::UpToDate));
        pki.names = names;
        world_with(pki, CollateralParams::new(AT), QuoteParams::default())
    };
    let w = with_names(synthetic.clone());
    assert_eq!(code(w.verify()), "verified UpToDate");
    // The PCK CA's name needs only "CA" (QVL's SGX_INTERMEDIATE_CN_PHRASE).
    let w = with_names(PkiNames {
        pck_ca: "Example CA".into(),
        ..synthetic.clone()
    });
    assert_eq!(code(w.verify()), "verified UpToDate");

    type Edit = fn(&mut PkiNames);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "root",
            |n| n.root = "Foo".into(),
            "untrusted root: in the TCB info issuer chain, the root certificate's common name \
             \"Foo\" does not contain \"SGX Root CA\" (Intel QVL's name rule)",
        ),
        (
            "TCB signer",
            |n| n.tcb_signer = "Foo".into(),
            "untrusted root: in the TCB info issuer chain, the TCB Signing certificate's common \
             name \"Foo\" does not contain \"SGX TCB Signing\" (Intel QVL's name rule)",
        ),
        (
            "PCK CA",
            |n| n.pck_ca = "Foo".into(),
            "untrusted root: in the PCK CRL issuer chain, the PCK CRL issuer certificate's \
             common name \"Foo\" does not contain \"CA\" (Intel QVL's name rule)",
        ),
        (
            "PCK leaf",
            |n| n.pck = "Foo".into(),
            "untrusted root: in the PCK certificate chain, the PCK certificate's common name \
             \"Foo\" does not contain \"SGX PCK Certificate\" (Intel QVL's name rule)",
        ),
    ];
    for (role, edit, message) in cases {
        let mut names = synthetic.clone();
        edit(&mut names);
        let e = with_names(names).verify().unwrap_err();
        assert_eq!(e.code(), "untrusted-root", "{role}");
        assert_eq!(e.to_string(), message, "{role}");
    }

    // The unverified platform lookup applies the same rules when it is anchored.
    let w = with_names(PkiNames {
        pck: "Foo".into(),
        ..synthetic
    });
    assert_eq!(
        dcap::pck_platform_anchored(&w.quote, &w.anchor())
            .unwrap_err()
            .code(),
        "untrusted-root"
    );
    assert!(dcap::pck_platform(&w.quote).is_ok());
}

/// DESIGN §7.5: a message shows its source or exposes it through `source()`, never both.
fn assert_sources_not_repeated(e: &(dyn std::error::Error + 'static)) {
    let mut cur = e;
    while let Some(src) = cur.source() {
        let (m, s) = (cur.to_string(), src.to_string());
        assert!(!m.contains(&s), "{m:?} repeats its source {s:?}");
        cur = src;
    }
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e;
    while let Some(src) = cur.source() {
        out.push(src.to_string());
        cur = src;
    }
    out
}

/// Errors caused by a parse failure keep the parser's error as their source (typed, not a
/// string), the message names what failed without repeating it, and `full_message` (the JSON
/// and HTTP message) shows the whole chain.
#[test]
fn typed_sources_are_exposed_not_repeated() {
    // A PCK chain whose PEM does not decode.
    let mut w = world(Some(TcbStatus::UpToDate));
    w.edit_quote(|q| {
        q.signature.certification_data.data =
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec()
    });
    let e = w.verify().unwrap_err();
    assert_eq!(e.code(), "unsupported-certification-data");
    assert!(matches!(
        &e,
        VerifyError::UnsupportedCertificationData(dcap::CertificationDataError::Unreadable {
            chain: dcap::Chain::PckCertificate,
            source: dcap::X509Error::Pem(_),
        })
    ));
    let chain = source_chain(&e);
    assert_eq!(
        chain[..2],
        [
            "unsupported certification data: the PCK certificate chain cannot be read",
            "invalid PEM"
        ]
    );
    assert!(chain.len() >= 3, "{chain:?}");
    assert_sources_not_repeated(&e);
    assert!(
        e.full_message()
            .starts_with("unsupported certification data: the PCK certificate chain cannot be read: invalid PEM: "),
        "{}",
        e.full_message()
    );
    assert_eq!(dcap::failure_json(&e)["message"], e.full_message());

    // A root CA CRL that is not DER.
    let mut w = world(Some(TcbStatus::UpToDate));
    w.coll.root_ca_crl = "3003020100".into();
    let e = w.verify().unwrap_err();
    assert_eq!(e.code(), "crl-missing");
    assert!(matches!(
        &e,
        VerifyError::CrlMissing(dcap::CrlError::Unreadable {
            item: dcap::CollateralItem::RootCaCrl,
            source: dcap::X509Error::Crl(_),
        })
    ));
    assert_eq!(
        source_chain(&e)[..2],
        [
            "CRL missing: the root CA CRL cannot be read",
            "not a DER CRL"
        ]
    );
    assert_sources_not_repeated(&e);

    // A validly signed TCB info that is not TCB info JSON.
    let mut w = world(Some(TcbStatus::UpToDate));
    w.resign_tcb_info(|_| "{\"id\":\"SGX\"}".into());
    let e = w.verify().unwrap_err();
    assert_eq!(e.code(), "tcb-level-not-found");
    assert!(matches!(
        &e,
        VerifyError::TcbLevelNotFound(dcap::LevelNotFound::Unusable { .. })
    ));
    assert_eq!(
        source_chain(&e)[0],
        "TCB level not found: the signed TCB info cannot be used"
    );
    assert_eq!(source_chain(&e).len(), 2);
    assert_sources_not_repeated(&e);

    // Typed fields: which item, when, and the time of verification.
    let w = world(Some(TcbStatus::UpToDate));
    let e = w
        .verify_at(AT + 31 * 86_400, VerifyOptions::default())
        .unwrap_err();
    let VerifyError::CollateralExpired(d) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (d.item, d.next_update, d.now),
        (
            dcap::CollateralItem::RootCaCrl,
            AT + 30 * 86_400,
            AT + 31 * 86_400
        )
    );

    // The trust anchor and the testkit follow the same rule.
    let e = TrustAnchor::from_certificate(b"garbage").unwrap_err();
    assert_eq!(
        source_chain(&e)[..2],
        [
            "not a DER or PEM X.509 certificate",
            "not a DER X.509 certificate"
        ]
    );
    assert_sources_not_repeated(&e);
    let mut pki = PkiParams::new(AT, Some(TcbStatus::UpToDate));
    pki.names.root = String::new();
    if let Err(e) = Testkit::generate(pki) {
        assert_sources_not_repeated(&e);
    }
}
