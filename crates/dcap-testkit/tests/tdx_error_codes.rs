//! The test PKI drives the TDX verifier through its statuses and every error code that applies
//! to TDX quotes (mutation tests as for SGX in `error_codes.rs`). Each case asserts its exact
//! code; a final check asserts that every code was produced.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dcap::{
    Collateral, QuoteCollateralV3, TcbStatus, TrustAnchor, VerifiedTdxQuote, Verifier, VerifyError,
    VerifyOptions,
};
use dcap_testkit::{
    CollateralParams, PkiParams, TdxCollateralParams, TdxQuoteParams, Testkit, standard_tdx_modules,
};
use sgx_types::TdxQuote;
use std::collections::BTreeSet;

const AT: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

struct World {
    kit: Testkit,
    coll: QuoteCollateralV3,
    quote: Vec<u8>,
}

fn world_with(
    pki: PkiParams,
    cp: CollateralParams,
    tp: TdxCollateralParams,
    qp: TdxQuoteParams,
) -> World {
    let kit = Testkit::generate(pki).unwrap();
    let coll = kit.tdx_collateral(&cp, &tp).unwrap();
    let quote = kit.tdx_quote(&qp).unwrap();
    World { kit, coll, quote }
}

fn world(qp: TdxQuoteParams) -> World {
    world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        CollateralParams::new(AT),
        TdxCollateralParams::default(),
        qp,
    )
}

fn good() -> World {
    world(TdxQuoteParams::default())
}

impl World {
    fn anchor(&self) -> TrustAnchor {
        TrustAnchor::from_certificate(self.kit.root_pem().as_bytes()).unwrap()
    }

    fn verify_at(&self, at: i64, opts: VerifyOptions) -> Result<VerifiedTdxQuote, VerifyError> {
        let c = Collateral::from_document(self.coll.clone()).unwrap();
        let uncached =
            Verifier::uncached(opts.clone()).verify_tdx(&self.quote, &c, at, &self.anchor());
        let cached = Verifier::new(opts);
        let first = cached.verify_tdx(&self.quote, &c, at, &self.anchor());
        let warm = cached.verify_tdx(&self.quote, &c, at, &self.anchor());
        assert_eq!(uncached, first);
        assert_eq!(first, warm);
        warm
    }

    fn verify(&self) -> Result<VerifiedTdxQuote, VerifyError> {
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

    fn edit_quote(&mut self, edit: impl Fn(&mut TdxQuote)) {
        let mut q = TdxQuote::parse(&self.quote).unwrap();
        edit(&mut q);
        self.quote = q.to_bytes();
    }
}

fn code(r: Result<VerifiedTdxQuote, VerifyError>) -> String {
    match r {
        Ok(v) => format!("verified {}", v.tcb_status()),
        Err(e) => e.code().to_string(),
    }
}

fn tee(module_svn: u8, version: u8, svn: u8) -> [u8; 16] {
    let mut t = [svn; 16];
    t[0] = module_svn;
    t[1] = version;
    t
}

#[test]
fn every_body_verifies_and_reports_its_fields() {
    for (version, body_type, trailing) in [(4, 2, 70), (5, 2, 0), (5, 3, 0), (5, 4, 3)] {
        let mut qp = TdxQuoteParams {
            version,
            body_type,
            trailing_zero_bytes: trailing,
            ..TdxQuoteParams::default()
        };
        qp.report_data[0] = 0xab;
        qp.mr_config_id[0] = 0xcd;
        let w = world(qp.clone());
        let v = w.verify().unwrap();
        assert_eq!(
            (
                v.tcb_status(),
                v.qe_tcb_status(),
                v.tdx_module_tcb_status(),
                v.tdx_module_identity(),
                v.trailing_zero_bytes(),
                v.debug(),
            ),
            (
                TcbStatus::UpToDate,
                TcbStatus::UpToDate,
                TcbStatus::UpToDate,
                Some("TDX_01"),
                trailing,
                false
            ),
            "v{version} body {body_type}"
        );
        let j = dcap::tdx_success_json(&v);
        assert_eq!(j["tee"], "tdx");
        assert_eq!(j["mr_td"], hex::encode(qp.mr_td));
        assert_eq!(j["rtmr2"], hex::encode(qp.rtmr[2]));
        assert_eq!(j["mr_config_id"], hex::encode(qp.mr_config_id));
        assert_eq!(j["report_data"], hex::encode(qp.report_data));
        assert_eq!(j["td_attributes"], "0000001000000000");
        assert_eq!(j["xfam"], "e702060000000000");
        assert_eq!(j["body_type"], if version == 4 { 2 } else { body_type });
        assert_eq!(
            j["tee_tcb_svn2"].is_string(),
            body_type >= 3 && version == 5
        );
    }
    let w = world(TdxQuoteParams {
        debug: true,
        ..TdxQuoteParams::default()
    });
    let v = w.verify().unwrap();
    assert!(v.debug(), "a debug TD is reported, not rejected");
    assert_eq!(
        dcap::tdx_success_json(&v)["td_attributes"],
        "0100001000000000"
    );
}

#[test]
fn platform_module_and_qe_statuses_converge() {
    use TcbStatus::*;
    // (PCK/TDX level status, module ISVSVN, QE ISVSVN) -> final status, module status.
    let cases = [
        (UpToDate, 5, 8, UpToDate, UpToDate),
        (UpToDate, 3, 8, OutOfDate, OutOfDate),
        (
            ConfigurationNeeded,
            3,
            8,
            OutOfDateConfigurationNeeded,
            OutOfDate,
        ),
        (SwHardeningNeeded, 5, 8, SwHardeningNeeded, UpToDate),
        (UpToDate, 5, 6, OutOfDate, UpToDate),
        (
            ConfigurationAndSwHardeningNeeded,
            5,
            6,
            OutOfDateConfigurationNeeded,
            UpToDate,
        ),
        (OutOfDate, 5, 8, OutOfDate, UpToDate),
    ];
    let levels = dcap_testkit::standard_tcb_levels();
    for (status, module_svn, qe_svn, want, want_module) in cases {
        let svn = levels.iter().find(|l| l.status == status).unwrap().svn;
        let w = world_with(
            PkiParams::new(AT, Some(status)),
            CollateralParams::new(AT),
            TdxCollateralParams::default(),
            TdxQuoteParams {
                tee_tcb_svn: tee(module_svn, 1, svn),
                qe_isv_svn: qe_svn,
                ..TdxQuoteParams::default()
            },
        );
        let v = w.verify().unwrap();
        assert_eq!(
            (
                v.tcb_status(),
                v.tdx_module_tcb_status(),
                v.platform_tcb_status()
            ),
            (want, want_module, status),
            "{status} module {module_svn} QE {qe_svn}"
        );
        let ids = v.advisory_ids();
        assert_eq!(
            ids.contains(&"TESTKIT-SA-MODULE-00001".to_string()),
            module_svn == 3,
            "{ids:?}"
        );
        assert_eq!(
            ids.contains(&"TESTKIT-SA-QE-00001".to_string()),
            qe_svn == 6,
            "{ids:?}"
        );
    }
}

#[test]
fn tee_tcb_svn_selects_the_tdx_level() {
    use TcbStatus::*;
    // PCK at UpToDate (SVN 10), the TD's TDX components at the OutOfDate level's SVN (6):
    // the TDX level decides.
    let w = world(TdxQuoteParams {
        tee_tcb_svn: tee(5, 1, 6),
        ..TdxQuoteParams::default()
    });
    assert_eq!(w.verify().unwrap().tcb_status(), OutOfDate);
    // Module version 0: no module identity; indices 0 and 1 are compared as TDX components.
    let w0 = world(TdxQuoteParams {
        tee_tcb_svn: {
            let mut t = [10u8; 16];
            t[1] = 0;
            t
        },
        ..TdxQuoteParams::default()
    });
    // index 1 = 0 is below every level's component 1 (SVN >= 4): no TDX level.
    assert_eq!(code(w0.verify()), "tcb-level-not-found");
}

#[test]
fn td15_relaunch_is_advised() {
    // Module OutOfDate (ISVSVN 3), TDX level OutOfDate (SVN 6), but TEE_TCB_SVN2 reaches the
    // latest level and module: relaunch advised.
    let mut qp = TdxQuoteParams {
        version: 5,
        body_type: 3,
        tee_tcb_svn: tee(3, 1, 6),
        tee_tcb_svn2: tee(5, 1, 10),
        ..TdxQuoteParams::default()
    };
    let w = world(qp.clone());
    assert_eq!(
        w.verify().unwrap().tcb_status(),
        TcbStatus::TdRelaunchAdvised
    );
    qp.tee_tcb_svn2 = tee(4, 1, 10);
    let w = world(qp.clone());
    assert_eq!(w.verify().unwrap().tcb_status(), TcbStatus::OutOfDate);
    qp.body_type = 2;
    let w = world(qp);
    assert_eq!(w.verify().unwrap().tcb_status(), TcbStatus::OutOfDate);
}

#[test]
fn every_tdx_error_code_is_produced() {
    let mut produced = BTreeSet::new();
    let mut check = |name: &str, r: Result<VerifiedTdxQuote, VerifyError>, want: &str| {
        let got = code(r);
        assert_eq!(got, want, "{name}");
        produced.insert(want.to_string());
    };
    let opts = VerifyOptions::default;

    let mut w = good();
    w.quote.truncate(w.quote.len() - 1);
    check("truncated quote", w.verify(), "malformed-quote");

    let mut w = good();
    w.quote.extend_from_slice(&[0, 0, 7]);
    check("non-zero trailing byte", w.verify(), "malformed-quote");

    let mut w = world(TdxQuoteParams {
        version: 5,
        body_type: 3,
        ..TdxQuoteParams::default()
    });
    w.quote[48] = 1;
    check("v5 SGX body", w.verify(), "unsupported-quote-version");

    let mut w = good();
    w.quote[0] = 6;
    check("version 6", w.verify(), "unsupported-quote-version");

    let mut w = good();
    w.quote[4] = 0;
    check("TEE type SGX", w.verify(), "unsupported-quote-version");

    let mut w = good();
    w.quote[2] = 3;
    check("P-384", w.verify(), "unsupported-attestation-key-type");

    let mut w = good();
    w.edit_quote(|q| q.signature.certification_data.kind = 7);
    check(
        "platform manifest",
        w.verify(),
        "unsupported-certification-data",
    );

    let w = good();
    let c = Collateral::from_document(w.coll.clone()).unwrap();
    check(
        "Intel root",
        Verifier::uncached(opts()).verify_tdx(&w.quote, &c, AT, &TrustAnchor::intel_sgx_root()),
        "untrusted-root",
    );

    let mut cp = CollateralParams::new(AT);
    cp.revoke_pck = true;
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        cp,
        TdxCollateralParams::default(),
        TdxQuoteParams::default(),
    );
    check("PCK revoked", w.verify(), "pck-revoked");

    let mut pki = PkiParams::new(AT, Some(TcbStatus::UpToDate));
    pki.leaf_not_after = Some(AT + 1800);
    let w = world_with(
        pki,
        CollateralParams::new(AT),
        TdxCollateralParams::default(),
        TdxQuoteParams::default(),
    );
    check("PCK leaf expired", w.verify(), "certificate-expired");

    let w = good();
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

    let mut w = good();
    w.coll.tcb_info = w.coll.tcb_info.replace("\"tcbType\":0", "\"tcbType\":1");
    check("TCB info edited", w.verify(), "tcb-info-signature-invalid");

    let mut w = good();
    w.coll.qe_identity = w
        .coll
        .qe_identity
        .replace("\"isvprodid\":2", "\"isvprodid\":3");
    check(
        "TD_QE identity edited",
        w.verify(),
        "qe-identity-signature-invalid",
    );

    let mut w = good();
    w.edit_quote(|q| q.signature.qe_report.reserved1[0] ^= 1);
    check("QE report byte", w.verify(), "qe-report-signature-invalid");

    let mut w = good();
    w.edit_quote(|q| q.signature.qe_auth_data[0] ^= 1);
    check(
        "QE auth data",
        w.verify(),
        "attestation-key-binding-mismatch",
    );

    for (version, body_type) in [(4, 2), (5, 3), (5, 4)] {
        let mut w = world(TdxQuoteParams {
            version,
            body_type,
            ..TdxQuoteParams::default()
        });
        w.edit_quote(|q| {
            if let sgx_types::TdBody::Td15Ex(_, _, ext) = &mut q.body {
                ext[236] ^= 1;
            } else {
                let mut r = q.body.report().clone();
                r.rt_mr[3].0[0] ^= 1;
                q.body = match &q.body {
                    sgx_types::TdBody::Td15(_, f) => sgx_types::TdBody::Td15(r, f.clone()),
                    _ => sgx_types::TdBody::Td10(r),
                };
            }
        });
        check("TD body byte", w.verify(), "quote-signature-invalid");
    }
    let mut w = good();
    w.edit_quote(|q| q.header.user_data[0] ^= 1);
    check("header byte", w.verify(), "quote-signature-invalid");

    // The SGX QE identity for a TDX quote.
    let mut w = good();
    let sgx_qe = w.kit.qe_identity_text(&CollateralParams::new(AT)).unwrap();
    w.resign_qe_identity(|_| sgx_qe.clone());
    check("SGX QE identity", w.verify(), "qe-identity-mismatch");

    let mut w = good();
    w.resign_qe_identity(|t| t.replace("\"isvprodid\":2", "\"isvprodid\":1"));
    check("TD_QE ISVPRODID", w.verify(), "qe-identity-mismatch");

    let mut w = good();
    w.resign_tcb_info(|t| t.replace("C0FFEE000000", "C0FFEE000001"));
    check("FMSPC", w.verify(), "fmspc-mismatch");

    let mut w = good();
    w.resign_tcb_info(|t| t.replace("\"pceId\":\"0000\"", "\"pceId\":\"0100\""));
    check("PCE-ID", w.verify(), "pceid-mismatch");

    // TDX module identity.
    let w = world(TdxQuoteParams {
        mr_signer_seam: [1; 48],
        ..TdxQuoteParams::default()
    });
    check("MRSIGNER_SEAM", w.verify(), "tdx-module-mismatch");
    let w = world(TdxQuoteParams {
        tee_tcb_svn: {
            let mut t = [10u8; 16];
            t[1] = 0;
            t[0] = 10;
            t
        },
        mr_signer_seam: [1; 48],
        ..TdxQuoteParams::default()
    });
    check(
        "MRSIGNER_SEAM vs tdxModule",
        w.verify(),
        "tdx-module-mismatch",
    );
    let w = world(TdxQuoteParams {
        seam_attributes: [0, 0, 0, 0, 0, 0, 0, 1],
        ..TdxQuoteParams::default()
    });
    check("SEAM_ATTRIBUTES", w.verify(), "tdx-module-mismatch");
    let w = world(TdxQuoteParams {
        tee_tcb_svn: tee(5, 2, 10),
        ..TdxQuoteParams::default()
    });
    check(
        "module version 2 unknown",
        w.verify(),
        "tdx-module-mismatch",
    );
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        CollateralParams::new(AT),
        TdxCollateralParams {
            modules: None,
            ..TdxCollateralParams::default()
        },
        TdxQuoteParams::default(),
    );
    check("no tdxModuleIdentities", w.verify(), "tdx-module-mismatch");
    let mut mods = standard_tdx_modules();
    mods[0].mrsigner = [2; 48];
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        CollateralParams::new(AT),
        TdxCollateralParams {
            modules: Some(mods),
            ..TdxCollateralParams::default()
        },
        TdxQuoteParams::default(),
    );
    check(
        "module identity MRSIGNER",
        w.verify(),
        "tdx-module-mismatch",
    );

    // TCB levels.
    let w = world_with(
        PkiParams::new(AT, None),
        CollateralParams::new(AT),
        TdxCollateralParams::default(),
        TdxQuoteParams::default(),
    );
    check("PCK below every level", w.verify(), "tcb-level-not-found");
    let w = world(TdxQuoteParams {
        tee_tcb_svn: tee(5, 1, 3),
        ..TdxQuoteParams::default()
    });
    check(
        "TEE_TCB_SVN below every level",
        w.verify(),
        "tcb-level-not-found",
    );
    let w = world(TdxQuoteParams {
        tee_tcb_svn: tee(0, 1, 10),
        ..TdxQuoteParams::default()
    });
    check(
        "module ISVSVN below every level",
        w.verify(),
        "tcb-level-not-found",
    );
    let w = world(TdxQuoteParams {
        qe_isv_svn: 1,
        ..TdxQuoteParams::default()
    });
    check(
        "QE ISVSVN below every level",
        w.verify(),
        "tcb-level-not-found",
    );
    let mut w = good();
    let sgx_tcb = w.kit.tcb_info_text(&CollateralParams::new(AT)).unwrap();
    w.resign_tcb_info(|_| sgx_tcb.clone());
    check("SGX TCB info", w.verify(), "tcb-level-not-found");

    let w = world(TdxQuoteParams {
        tee_tcb_svn: tee(5, 1, 4),
        ..TdxQuoteParams::default()
    });
    check("TDX level revoked", w.verify(), "tcb-revoked");
    let w = world(TdxQuoteParams {
        tee_tcb_svn: tee(1, 1, 10),
        ..TdxQuoteParams::default()
    });
    check("module revoked", w.verify(), "tcb-revoked");
    let w = world(TdxQuoteParams {
        qe_isv_svn: 2,
        ..TdxQuoteParams::default()
    });
    check("TD QE revoked", w.verify(), "tcb-revoked");

    let mut cp = CollateralParams::new(AT);
    cp.include_crls = false;
    let w = world_with(
        PkiParams::new(AT, Some(TcbStatus::UpToDate)),
        cp,
        TdxCollateralParams::default(),
        TdxQuoteParams::default(),
    );
    check("no CRLs", w.verify(), "crl-missing");
    let v = w
        .verify_at(AT + 60, VerifyOptions::default().allow_missing_crls(true))
        .unwrap();
    assert_eq!(dcap::tdx_success_json(&v)["revocation_checked"], false);

    // An SGX quote with TDX collateral, through the TEE-generic entry point.
    let w = good();
    let sgx = w.kit.quote(&dcap_testkit::QuoteParams::default()).unwrap();
    let c = Collateral::from_document(w.coll.clone()).unwrap();
    assert_eq!(
        dcap::verify_dcap(&sgx, &c, AT + 60, &w.anchor())
            .unwrap_err()
            .code(),
        "tcb-level-not-found",
        "SGX quote, TDX collateral"
    );

    // Every code applies to TDX quotes.
    let all: BTreeSet<String> = VerifyError::CODES.iter().map(|c| c.to_string()).collect();
    let missing: Vec<_> = all.difference(&produced).collect();
    assert!(missing.is_empty(), "codes never produced: {missing:?}");
}
