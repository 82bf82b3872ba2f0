//! Negative cases built by mutating real quotes and real collateral: each asserts its exact code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dcap::{Collateral, QuoteCollateralV3, TrustAnchor, Verifier, VerifyOptions};
use sgx_types::Quote;

const AT: i64 = 1_751_328_000; // 2025-07-01T00:00:00Z, inside the dcap-qvl-sgx window

struct Case {
    quote: Vec<u8>,
    doc: QuoteCollateralV3,
}

fn base() -> Option<Case> {
    let quote = testdata::read("dcap/dcap-qvl-sgx/sgx_quote")?;
    let doc = serde_json::from_slice(&testdata::read(
        "dcap/dcap-qvl-sgx/sgx_quote_collateral.json",
    )?)
    .unwrap();
    Some(Case { quote, doc })
}

impl Case {
    fn code_at(&self, at: i64, anchor: &TrustAnchor) -> String {
        let c = Collateral::from_document(self.doc.clone()).unwrap();
        match Verifier::uncached(VerifyOptions::default()).verify(&self.quote, &c, at, anchor) {
            Ok(v) => format!("verified {}", v.tcb_status()),
            Err(e) => e.code().to_string(),
        }
    }

    fn code(&self) -> String {
        self.code_at(AT, &TrustAnchor::intel_sgx_root())
    }

    fn edit_quote(mut self, f: impl Fn(&mut Quote)) -> Self {
        let mut q = Quote::parse(&self.quote).unwrap();
        f(&mut q);
        self.quote = q.to_bytes();
        self
    }
}

fn flip_hex_digit(s: &str, i: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[i] = if b[i] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap()
}

#[test]
fn unmodified_base_verifies() {
    let Some(c) = base() else { return };
    assert_eq!(c.code(), "verified ConfigurationAndSWHardeningNeeded");
}

#[test]
fn quote_mutations() {
    let Some(_) = base() else { return };
    type Mutation = Box<dyn Fn(Case) -> Case>;
    let table: Vec<(&str, Mutation, &str)> = vec![
        (
            "truncate by one",
            Box::new(|mut c| {
                c.quote.pop();
                c
            }),
            "malformed-quote",
        ),
        (
            "header only",
            Box::new(|mut c| {
                c.quote.truncate(48);
                c
            }),
            "malformed-quote",
        ),
        (
            "trailing byte",
            Box::new(|mut c| {
                c.quote.push(0);
                c
            }),
            "malformed-quote",
        ),
        (
            "version 2",
            Box::new(|mut c| {
                c.quote[0] = 2;
                c
            }),
            "unsupported-quote-version",
        ),
        (
            "key type 3",
            Box::new(|mut c| {
                c.quote[2] = 3;
                c
            }),
            "unsupported-attestation-key-type",
        ),
        (
            "signature_data_len + 1",
            Box::new(|mut c| {
                c.quote[432] = c.quote[432].wrapping_add(1);
                c
            }),
            "malformed-quote",
        ),
        (
            "quote signature bit",
            Box::new(|c| c.edit_quote(|q| q.signature.quote_signature[0] ^= 0x80)),
            "quote-signature-invalid",
        ),
        (
            "report data byte",
            Box::new(|c| c.edit_quote(|q| q.report.report_data.0[63] ^= 1)),
            "quote-signature-invalid",
        ),
        (
            "debug flag set",
            Box::new(|c| c.edit_quote(|q| q.report.attributes.flags |= 2)),
            "quote-signature-invalid",
        ),
        (
            "attestation key byte",
            Box::new(|c| c.edit_quote(|q| q.signature.attestation_key[10] ^= 1)),
            "attestation-key-binding-mismatch",
        ),
        (
            "QE auth data byte",
            Box::new(|c| c.edit_quote(|q| q.signature.qe_auth_data[0] ^= 1)),
            "attestation-key-binding-mismatch",
        ),
        (
            "QE report byte",
            Box::new(|c| c.edit_quote(|q| q.signature.qe_report.isv_svn ^= 1)),
            "qe-report-signature-invalid",
        ),
        (
            "QE report signature bit",
            Box::new(|c| c.edit_quote(|q| q.signature.qe_report_signature[40] ^= 1)),
            "qe-report-signature-invalid",
        ),
        (
            "certification data type 3 without chain",
            Box::new(|c| c.edit_quote(|q| q.signature.certification_data.kind = 3)),
            "unsupported-certification-data",
        ),
        (
            "PCK chain without root",
            Box::new(|c| {
                c.edit_quote(|q| {
                    let pem =
                        String::from_utf8(q.signature.certification_data.data.clone()).unwrap();
                    let end = "-----END CERTIFICATE-----";
                    let two: Vec<&str> = pem.split_inclusive(end).take(2).collect();
                    q.signature.certification_data.data = two.concat().into_bytes();
                })
            }),
            "untrusted-root",
        ),
        (
            "QE vendor ID",
            Box::new(|c| c.edit_quote(|q| q.header.qe_vendor_id[0] ^= 1)),
            "qe-identity-mismatch",
        ),
    ];
    for (name, mutate, want) in table {
        let c = mutate(base().unwrap());
        assert_eq!(c.code(), want, "{name}");
    }
}

#[test]
fn collateral_mutations() {
    let Some(_) = base() else { return };
    type Edit = Box<dyn Fn(&mut QuoteCollateralV3)>;
    let table: Vec<(&str, Edit, &str)> = vec![
        (
            "TCB info signature",
            Box::new(|d| d.tcb_info_signature = flip_hex_digit(&d.tcb_info_signature, 3)),
            "tcb-info-signature-invalid",
        ),
        (
            "TCB info text",
            Box::new(|d| {
                d.tcb_info =
                    d.tcb_info
                        .replacen("\"ConfigurationAndSWHardeningNeeded\"", "\"UpToDate\"", 1)
            }),
            "tcb-info-signature-invalid",
        ),
        (
            "TCB info whitespace",
            Box::new(|d| d.tcb_info = d.tcb_info.replacen(',', ", ", 1)),
            "tcb-info-signature-invalid",
        ),
        (
            "QE identity signature",
            Box::new(|d| d.qe_identity_signature = flip_hex_digit(&d.qe_identity_signature, 70)),
            "qe-identity-signature-invalid",
        ),
        (
            "QE identity text",
            Box::new(|d| {
                d.qe_identity = d
                    .qe_identity
                    .replacen("\"isvprodid\":1", "\"isvprodid\":2", 1)
            }),
            "qe-identity-signature-invalid",
        ),
        (
            "TCB chain swapped for the PCK CRL chain",
            Box::new(|d| d.tcb_info_issuer_chain = d.pck_crl_issuer_chain.clone()),
            "tcb-info-signature-invalid",
        ),
        (
            "root CRL removed",
            Box::new(|d| d.root_ca_crl.clear()),
            "crl-missing",
        ),
        (
            "PCK CRL removed",
            Box::new(|d| d.pck_crl.clear()),
            "crl-missing",
        ),
        (
            "root CRL bit",
            Box::new(|d| {
                let n = d.root_ca_crl.len();
                d.root_ca_crl = flip_hex_digit(&d.root_ca_crl, n - 10);
            }),
            "untrusted-root",
        ),
        (
            "PCK CRL bit",
            Box::new(|d| {
                let n = d.pck_crl.len();
                d.pck_crl = flip_hex_digit(&d.pck_crl, n - 10);
            }),
            "untrusted-root",
        ),
        (
            "PCK CRL replaced by the root CRL",
            Box::new(|d| d.pck_crl = d.root_ca_crl.clone()),
            "untrusted-root",
        ),
        (
            "TCB chain emptied",
            Box::new(|d| d.tcb_info_issuer_chain.clear()),
            "untrusted-root",
        ),
    ];
    for (name, edit, want) in table {
        let mut c = base().unwrap();
        edit(&mut c.doc);
        assert_eq!(c.code(), want, "{name}");
    }
}

#[test]
fn wrong_time_and_wrong_root() {
    let Some(c) = base() else { return };
    let intel = TrustAnchor::intel_sgx_root();
    assert_eq!(c.code_at(1_754_006_400, &intel), "collateral-expired");
    assert_eq!(c.code_at(1_748_736_000, &intel), "collateral-not-yet-valid");
    // Far future: the Intel root CA CRL and TCB info are long expired; a certificate expires
    // too, but collateral windows are checked as they are met.
    assert_eq!(c.code_at(4_102_444_800, &intel), "certificate-expired");
    let other = TrustAnchor::from_certificate(
        &testdata::read("dcap/intel-qvl-synthetic/trustedRootCaCert.pem").unwrap(),
    )
    .unwrap();
    assert_eq!(c.code_at(AT, &other), "untrusted-root");
}

#[test]
fn platform_ca_crl_does_not_cover_a_processor_pck() {
    // The Ice Lake collateral carries the Platform CA's CRL; the dcap-qvl-sgx quote's PCK is
    // issued by the Processor CA. FMSPCs differ too, but the CRL check comes first.
    let Some(quote) = testdata::read("dcap/dcap-qvl-sgx/sgx_quote") else {
        return;
    };
    let coll = Collateral::from_json(
        &testdata::read(
            "dcap/automata-dcap-attestation/icelake-00606A000000/derived_dcap_qvl_collateral.json",
        )
        .unwrap(),
    )
    .unwrap();
    let e = dcap::verify(&quote, &coll, 1_755_648_000, &TrustAnchor::intel_sgx_root()).unwrap_err();
    assert_eq!(e.code(), "crl-missing");
    assert_eq!(
        e.to_string(),
        "CRL missing: the collateral's PCK CRL is issued by Intel SGX PCK Platform CA, but this \
         PCK certificate by Intel SGX PCK Processor CA"
    );
}
