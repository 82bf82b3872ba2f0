//! A complete SGX DCAP test PKI, collateral and quotes: for relying parties built without SGX
//! hardware, and for this project's own negative tests.
//!
//! **One job:** generate a root CA, a PCK CA (Processor), a PCK leaf carrying the real SGX
//! extension (OID 1.2.840.113741.1.13.1: PPID, TCB component SVNs, PCESVN, CPUSVN, PCE-ID,
//! FMSPC, SGX type), a TCB Signing certificate, both CRLs, TCB info v3 and QE identity v2 signed
//! over their exact text, all in the dcap-qvl `QuoteCollateralV3` encoding, and v3/v4 quotes with
//! chosen MRENCLAVE, MRSIGNER, report data, debug flag and TCB level, signed end to end (QE
//! report by the PCK key, quote by a fresh attestation key bound into the QE report data).
//!
//! **Never trusted by default.** The root is a fresh key, named "confkube testkit"; a verifier
//! trusts it only when it is passed explicitly as the trust anchor (`--root-ca`). The CA and
//! signer common names default to Intel's; [`PkiNames`] chooses others, to test Intel QVL's name
//! rule (a CN must contain `SGX Root CA`, `CA`, `SGX PCK Certificate` or `SGX TCB Signing`,
//! which the verifier checks). The organisation says "confkube testkit (NOT INTEL)".
//!
//! **Not here:** anything that reads files or the clock: the caller passes the times.
//! Certificates and CRLs are built with rcgen; raw r‖s signatures with aws-lc-rs. The SGX
//! extension's small DER is written by hand (see [`der`]) because rcgen takes custom extensions
//! as bytes.

pub mod demo;
pub mod der;
mod tdx;

pub use tdx::{TdxCollateralParams, TdxModuleSpec, TdxQuoteParams, standard_tdx_modules};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use dcap::{QuoteCollateralV3, TcbStatus};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevokedCertParams, SerialNumber,
};
use sgx_types::quote::{INTEL_QE_VENDOR_ID, cert_type};
use sgx_types::{
    Attributes, CertificationData, MrEnclave, MrSigner, Quote, QuoteHeader, ReportBody, ReportData,
    SignatureData,
};
use time::OffsetDateTime;

/// Why the testkit could not generate something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// Certificate or CRL generation failed.
    #[error("certificate generation failed")]
    Rcgen(#[from] rcgen::Error),
    /// Key generation or signing failed.
    #[error("key generation or signing failed")]
    Crypto,
    /// A time outside the representable range.
    #[error("time {0} is out of range")]
    Time(i64),
}

impl From<aws_lc_rs::error::Unspecified> for TestkitError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Self::Crypto
    }
}

impl From<aws_lc_rs::error::KeyRejected> for TestkitError {
    fn from(_: aws_lc_rs::error::KeyRejected) -> Self {
        Self::Crypto
    }
}

fn ts(t: i64) -> Result<OffsetDateTime, TestkitError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|_| TestkitError::Time(t))
}

fn rfc3339(t: i64) -> Result<String, TestkitError> {
    ts(t)?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| TestkitError::Time(t))
}

/// The testkit QE's MRSIGNER: SHA-256 of "confkube testkit quoting enclave".
pub fn testkit_qe_mrsigner() -> [u8; 32] {
    sha256(b"confkube testkit quoting enclave")
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, b).as_ref());
    out
}

/// The organisation every testkit certificate carries.
pub const TESTKIT_ORG: &str = "confkube testkit (NOT INTEL)";

/// A key with both an rcgen handle (for certificates) and a raw r‖s signer (for DCAP blobs).
struct Key {
    rcgen: KeyPair,
    raw: EcdsaKeyPair,
}

impl Key {
    fn generate() -> Result<Self, TestkitError> {
        let rcgen = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let raw =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rcgen.serialize_der())?;
        Ok(Self { rcgen, raw })
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; 64], TestkitError> {
        let sig = self.raw.sign(&SystemRandom::new(), msg)?;
        sig.as_ref().try_into().map_err(|_| TestkitError::Crypto)
    }

    fn public_sec1(&self) -> &[u8] {
        self.raw.public_key().as_ref()
    }
}

/// A CA: its parameters (needed to issue), key and certificate.
struct Ca {
    params: CertificateParams,
    key: Key,
    der: Vec<u8>,
    pem: String,
    serial: Vec<u8>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d.push(DnType::OrganizationName, TESTKIT_ORG);
    d.push(DnType::CountryName, "ZZ");
    d
}

/// The subject common names of the generated certificates. Verifiers that follow Intel QVL
/// accept any name that *contains* its role's phrase: `SGX Root CA` (root), `CA` (PCK CA),
/// `SGX PCK Certificate` (PCK leaf), `SGX TCB Signing` (TCB info and QE identity signer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiNames {
    /// The root CA.
    pub root: String,
    /// The PCK CA (the intermediate, also the PCK CRL issuer).
    pub pck_ca: String,
    /// The PCK leaf.
    pub pck: String,
    /// The TCB Signing certificate.
    pub tcb_signer: String,
}

impl Default for PkiNames {
    /// Intel's names for the CA, leaf and signer; a root named as untrusted.
    fn default() -> Self {
        Self {
            root: "confkube testkit SGX Root CA (untrusted)".into(),
            pck_ca: "Intel SGX PCK Processor CA".into(),
            pck: "Intel SGX PCK Certificate".into(),
            tcb_signer: "Intel SGX TCB Signing".into(),
        }
    }
}

/// The platform and PKI: what the PCK certificate says, and the validity of the certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiParams {
    /// FMSPC in the PCK certificate.
    pub fmspc: [u8; 6],
    /// PCE-ID in the PCK certificate.
    pub pce_id: [u8; 2],
    /// TCB component SVNs in the PCK certificate (selects the TCB level).
    pub pck_tcb: [u8; 16],
    /// PCESVN in the PCK certificate.
    pub pce_svn: u16,
    /// Certificates are valid from this time (Unix seconds)...
    pub not_before: i64,
    /// ...to this time.
    pub not_after: i64,
    /// The PCK leaf's own notAfter, when it should expire before the rest.
    pub leaf_not_after: Option<i64>,
    /// The certificates' common names.
    pub names: PkiNames,
}

impl PkiParams {
    /// A platform at `status` (see [`standard_tcb_levels`]), certificates valid from a day
    /// before `at` for seven years.
    pub fn new(at: i64, status: Option<TcbStatus>) -> Self {
        Self {
            fmspc: [0xc0, 0xff, 0xee, 0x00, 0x00, 0x00],
            pce_id: [0, 0],
            pck_tcb: pck_tcb_for(status),
            pce_svn: 13,
            not_before: at - 86_400,
            not_after: at + 7 * 365 * 86_400,
            leaf_not_after: None,
            names: PkiNames::default(),
        }
    }
}

/// One TCB level of a generated TCB info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelSpec {
    /// Every SGX TCB component SVN of the level.
    pub svn: u8,
    /// PCESVN of the level.
    pub pce_svn: u16,
    /// Status.
    pub status: TcbStatus,
    /// Advisory IDs.
    pub advisory_ids: Vec<String>,
}

/// The standard levels: one per status, component SVN 10 (UpToDate) down to 4 (Revoked).
pub fn standard_tcb_levels() -> Vec<LevelSpec> {
    TcbStatus::ALL
        .iter()
        .enumerate()
        .map(|(i, &status)| LevelSpec {
            svn: 10 - i as u8,
            pce_svn: 13,
            status,
            advisory_ids: if i == 0 {
                vec![]
            } else {
                vec![format!("TESTKIT-SA-{i:05}")]
            },
        })
        .collect()
}

/// PCK TCB component SVNs that select the standard level of `status`; `None` selects no level
/// (every component below the lowest level).
pub fn pck_tcb_for(status: Option<TcbStatus>) -> [u8; 16] {
    let svn = status
        .and_then(|s| standard_tcb_levels().into_iter().find(|l| l.status == s))
        .map_or(3, |l| l.svn);
    [svn; 16]
}

/// One TCB level of a generated QE identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QeLevelSpec {
    /// Minimum QE ISVSVN.
    pub isv_svn: u16,
    /// Status.
    pub status: TcbStatus,
    /// Advisory IDs.
    pub advisory_ids: Vec<String>,
}

/// The standard QE levels: ISVSVN 8 UpToDate, 6 OutOfDate, 2 Revoked.
pub fn standard_qe_levels() -> Vec<QeLevelSpec> {
    vec![
        QeLevelSpec {
            isv_svn: 8,
            status: TcbStatus::UpToDate,
            advisory_ids: vec![],
        },
        QeLevelSpec {
            isv_svn: 6,
            status: TcbStatus::OutOfDate,
            advisory_ids: vec!["TESTKIT-SA-QE-00001".into()],
        },
        QeLevelSpec {
            isv_svn: 2,
            status: TcbStatus::Revoked,
            advisory_ids: vec!["TESTKIT-SA-QE-00002".into()],
        },
    ]
}

/// What the collateral says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollateralParams {
    /// TCB info and QE identity issueDate, and CRL thisUpdate (Unix seconds).
    pub issue_date: i64,
    /// TCB info and QE identity nextUpdate, and CRL nextUpdate.
    pub next_update: i64,
    /// TCB levels, highest first.
    pub tcb_levels: Vec<LevelSpec>,
    /// QE levels, highest first.
    pub qe_levels: Vec<QeLevelSpec>,
    /// Include both CRLs (false = empty strings, as in CRL-less upstream data).
    pub include_crls: bool,
    /// List the PCK leaf in the PCK CRL.
    pub revoke_pck: bool,
    /// List the PCK CA in the root CA CRL.
    pub revoke_pck_ca: bool,
    /// List the TCB Signing certificate in the root CA CRL.
    pub revoke_tcb_signer: bool,
}

impl CollateralParams {
    /// Collateral issued at `at`, valid for 30 days, with the standard levels and CRLs.
    pub fn new(at: i64) -> Self {
        Self {
            issue_date: at,
            next_update: at + 30 * 86_400,
            tcb_levels: standard_tcb_levels(),
            qe_levels: standard_qe_levels(),
            include_crls: true,
            revoke_pck: false,
            revoke_pck_ca: false,
            revoke_tcb_signer: false,
        }
    }
}

/// What the quote says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteParams {
    /// 3 or 4.
    pub version: u16,
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// Report data.
    pub report_data: [u8; 64],
    /// Set the DEBUG attribute.
    pub debug: bool,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// The QE's ISVSVN (selects the QE level).
    pub qe_isv_svn: u16,
}

impl Default for QuoteParams {
    fn default() -> Self {
        Self {
            version: 3,
            mrenclave: sha256(b"confkube testkit enclave"),
            mrsigner: sha256(b"confkube testkit enclave signer"),
            report_data: [0; 64],
            debug: false,
            isv_prod_id: 1,
            isv_svn: 1,
            qe_isv_svn: 8,
        }
    }
}

/// A generated PKI: root, PCK CA, PCK leaf, TCB signer.
pub struct Testkit {
    params: PkiParams,
    root: Ca,
    pck_ca: Ca,
    tcb_signer: Ca,
    pck_key: Key,
    pck_pem: String,
    pck_serial: Vec<u8>,
}

impl std::fmt::Debug for Testkit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testkit")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn serial(n: u8) -> Vec<u8> {
    let mut s = sha256(&[n, 0x5a]).to_vec();
    s.truncate(16);
    if let Some(first) = s.first_mut() {
        *first &= 0x7f;
        *first |= 0x01;
    }
    s
}

fn ca_params(cn: &str, serial_no: &[u8], p: &PkiParams) -> Result<CertificateParams, TestkitError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = ts(p.not_before)?;
    params.not_after = ts(p.not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(serial_no));
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

impl Testkit {
    /// Generates fresh keys and certificates.
    pub fn generate(params: PkiParams) -> Result<Self, TestkitError> {
        let root_key = Key::generate()?;
        let root_serial = serial(1);
        let names = &params.names;
        let mut root_params = ca_params(&names.root, &root_serial, &params)?;
        root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        root_params.use_authority_key_identifier_extension = false;
        let root_cert = root_params.self_signed(&root_key.rcgen)?;
        let root = Ca {
            der: root_cert.der().to_vec(),
            pem: root_cert.pem(),
            params: root_params,
            key: root_key,
            serial: root_serial,
        };
        let root_issuer = Issuer::from_params(&root.params, &root.key.rcgen);

        let ca_key = Key::generate()?;
        let ca_serial = serial(2);
        let ca_p = ca_params(&names.pck_ca, &ca_serial, &params)?;
        let ca_cert = ca_p.signed_by(&ca_key.rcgen, &root_issuer)?;
        let pck_ca = Ca {
            der: ca_cert.der().to_vec(),
            pem: ca_cert.pem(),
            params: ca_p,
            key: ca_key,
            serial: ca_serial,
        };

        let tcb_key = Key::generate()?;
        let tcb_serial = serial(3);
        let mut tcb_p = ca_params(&names.tcb_signer, &tcb_serial, &params)?;
        tcb_p.is_ca = IsCa::NoCa;
        tcb_p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let tcb_cert = tcb_p.signed_by(&tcb_key.rcgen, &root_issuer)?;
        let tcb_signer = Ca {
            der: tcb_cert.der().to_vec(),
            pem: tcb_cert.pem(),
            params: tcb_p,
            key: tcb_key,
            serial: tcb_serial,
        };

        let pck_key = Key::generate()?;
        let pck_serial = serial(4);
        let mut leaf = ca_params(&names.pck, &pck_serial, &params)?;
        leaf.is_ca = IsCa::NoCa;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        if let Some(na) = params.leaf_not_after {
            leaf.not_after = ts(na)?;
        }
        leaf.custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 2, 840, 113741, 1, 13, 1],
                der::sgx_extension(&der::SgxExtension {
                    ppid: sha256(b"confkube testkit PPID")
                        .get(..16)
                        .and_then(|s| s.try_into().ok())
                        .unwrap_or([0; 16]),
                    tcb_comp_svn: params.pck_tcb,
                    pce_svn: params.pce_svn,
                    cpu_svn: params.pck_tcb,
                    pce_id: params.pce_id,
                    fmspc: params.fmspc,
                    sgx_type: 0,
                }),
            ));
        let ca_issuer = Issuer::from_params(&pck_ca.params, &pck_ca.key.rcgen);
        let leaf_cert = leaf.signed_by(&pck_key.rcgen, &ca_issuer)?;
        let pck_pem = leaf_cert.pem();
        Ok(Self {
            params,
            root,
            pck_ca,
            tcb_signer,
            pck_key,
            pck_pem,
            pck_serial,
        })
    }

    /// The PKI parameters.
    pub fn params(&self) -> &PkiParams {
        &self.params
    }

    /// The root certificate, PEM: the trust anchor to pass explicitly.
    pub fn root_pem(&self) -> &str {
        &self.root.pem
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    /// The PCK chain, PEM: leaf, PCK CA, root.
    pub fn pck_chain_pem(&self) -> String {
        format!("{}{}{}", self.pck_pem, self.pck_ca.pem, self.root.pem)
    }

    /// Signs text with the TCB Signing key: hex r‖s, as in collateral.
    pub fn sign_collateral_text(&self, text: &str) -> Result<String, TestkitError> {
        Ok(hex::encode(self.tcb_signer.key.sign(text.as_bytes())?))
    }

    fn crl(
        &self,
        issuer: &Ca,
        revoked: &[&[u8]],
        p: &CollateralParams,
    ) -> Result<Vec<u8>, TestkitError> {
        let params = CertificateRevocationListParams {
            this_update: ts(p.issue_date)?,
            next_update: ts(p.next_update)?,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| {
                    Ok(RevokedCertParams {
                        serial_number: SerialNumber::from_slice(s),
                        revocation_time: ts(p.issue_date)?,
                        reason_code: None,
                        invalidity_date: None,
                    })
                })
                .collect::<Result<_, TestkitError>>()?,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let iss = Issuer::from_params(&issuer.params, &issuer.key.rcgen);
        Ok(params.signed_by(&iss)?.der().to_vec())
    }

    /// The signed `tcbInfo` text (v3, SGX) for these levels.
    pub fn tcb_info_text(&self, p: &CollateralParams) -> Result<String, TestkitError> {
        let levels: Vec<serde_json::Value> = p
            .tcb_levels
            .iter()
            .map(|l| {
                let comps: Vec<_> = (0..16).map(|_| serde_json::json!({"svn": l.svn})).collect();
                serde_json::json!({
                    "tcb": {"sgxtcbcomponents": comps, "pcesvn": l.pce_svn},
                    "tcbDate": "2024-01-01T00:00:00Z",
                    "tcbStatus": l.status.as_str(),
                    "advisoryIDs": l.advisory_ids,
                })
            })
            .collect();
        let v = serde_json::json!({
            "id": "SGX",
            "version": 3,
            "issueDate": rfc3339(p.issue_date)?,
            "nextUpdate": rfc3339(p.next_update)?,
            "fmspc": hex::encode_upper(self.params.fmspc),
            "pceId": hex::encode_upper(self.params.pce_id),
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tcbLevels": levels,
        });
        Ok(v.to_string())
    }

    /// The signed `enclaveIdentity` text (QE, v2) for these levels.
    pub fn qe_identity_text(&self, p: &CollateralParams) -> Result<String, TestkitError> {
        let levels: Vec<serde_json::Value> = p
            .qe_levels
            .iter()
            .map(|l| {
                serde_json::json!({
                    "tcb": {"isvsvn": l.isv_svn},
                    "tcbDate": "2024-01-01T00:00:00Z",
                    "tcbStatus": l.status.as_str(),
                    "advisoryIDs": l.advisory_ids,
                })
            })
            .collect();
        let v = serde_json::json!({
            "id": "QE",
            "version": 2,
            "issueDate": rfc3339(p.issue_date)?,
            "nextUpdate": rfc3339(p.next_update)?,
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000",
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": hex::encode_upper(testkit_qe_mrsigner()),
            "isvprodid": 1,
            "tcbLevels": levels,
        });
        Ok(v.to_string())
    }

    /// Complete collateral in the `QuoteCollateralV3` encoding.
    pub fn collateral(&self, p: &CollateralParams) -> Result<QuoteCollateralV3, TestkitError> {
        self.collateral_with(p, self.tcb_info_text(p)?, self.qe_identity_text(p)?)
    }

    /// Collateral around the given signed texts (signed here).
    fn collateral_with(
        &self,
        p: &CollateralParams,
        tcb_info: String,
        qe_identity: String,
    ) -> Result<QuoteCollateralV3, TestkitError> {
        let (root_ca_crl, pck_crl) = if p.include_crls {
            let mut root_revoked: Vec<&[u8]> = Vec::new();
            if p.revoke_pck_ca {
                root_revoked.push(&self.pck_ca.serial);
            }
            if p.revoke_tcb_signer {
                root_revoked.push(&self.tcb_signer.serial);
            }
            let pck_revoked: Vec<&[u8]> = if p.revoke_pck {
                vec![&self.pck_serial]
            } else {
                vec![]
            };
            (
                hex::encode(self.crl(&self.root, &root_revoked, p)?),
                hex::encode(self.crl(&self.pck_ca, &pck_revoked, p)?),
            )
        } else {
            (String::new(), String::new())
        };
        let signing_chain = format!("{}{}", self.tcb_signer.pem, self.root.pem);
        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain: format!("{}{}", self.pck_ca.pem, self.root.pem),
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain: signing_chain.clone(),
            tcb_info_signature: self.sign_collateral_text(&tcb_info)?,
            tcb_info,
            qe_identity_issuer_chain: signing_chain,
            qe_identity_signature: self.sign_collateral_text(&qe_identity)?,
            qe_identity,
            pck_certificate_chain: None,
        })
    }

    /// A quote signed end to end: certification data type 5 with this PKI's PCK chain.
    pub fn quote(&self, q: &QuoteParams) -> Result<Vec<u8>, TestkitError> {
        let (att, signature) = self.signed_qe_block(q.qe_isv_svn, 1)?;
        let mut report = ReportBody::zeroed();
        report.cpu_svn = sgx_types::CpuSvn(self.params.pck_tcb);
        report.attributes = Attributes {
            flags: Attributes::INIT
                | Attributes::MODE64BIT
                | if q.debug { Attributes::DEBUG } else { 0 },
            xfrm: 0x3,
        };
        report.mr_enclave = MrEnclave(q.mrenclave);
        report.mr_signer = MrSigner(q.mrsigner);
        report.isv_prod_id = q.isv_prod_id;
        report.isv_svn = q.isv_svn;
        report.report_data = ReportData(q.report_data);

        let mut quote = Quote {
            header: self.header(q.version, 0, q.qe_isv_svn),
            report,
            signature,
        };
        quote.signature.quote_signature = att.sign(&quote.signed_bytes())?;
        Ok(quote.to_bytes())
    }

    fn header(&self, version: u16, tee_type: u32, qe_isv_svn: u16) -> QuoteHeader {
        QuoteHeader {
            version,
            att_key_type: sgx_types::quote::ATT_KEY_TYPE_ECDSA_P256,
            tee_type,
            qe_svn: qe_isv_svn,
            pce_svn: self.params.pce_svn,
            qe_vendor_id: INTEL_QE_VENDOR_ID,
            user_data: [0; 20],
        }
    }

    /// A fresh attestation key and the signature data endorsing it: the QE report (ISVSVN
    /// `qe_isv_svn`, ISVPRODID `qe_prod_id`) binding the key, signed by the PCK key, and this
    /// PKI's PCK chain. The quote signature is left zero for the caller to fill.
    fn signed_qe_block(
        &self,
        qe_isv_svn: u16,
        qe_prod_id: u16,
    ) -> Result<(Key, SignatureData), TestkitError> {
        let att = Key::generate()?;
        let att_pub: [u8; 64] = att
            .public_sec1()
            .get(1..)
            .and_then(|k| k.try_into().ok())
            .ok_or(TestkitError::Crypto)?;
        let qe_auth_data: Vec<u8> = (0u8..32).collect();

        let mut qe_report = ReportBody::zeroed();
        qe_report.cpu_svn = sgx_types::CpuSvn(self.params.pck_tcb);
        qe_report.attributes = Attributes {
            flags: Attributes::INIT | Attributes::PROVISION_KEY,
            xfrm: 0xe7,
        };
        qe_report.mr_enclave = MrEnclave(sha256(b"confkube testkit quoting enclave code"));
        qe_report.mr_signer = MrSigner(testkit_qe_mrsigner());
        qe_report.isv_prod_id = qe_prod_id;
        qe_report.isv_svn = qe_isv_svn;
        let mut rd = [0u8; 64];
        let mut bind = Vec::with_capacity(96);
        bind.extend_from_slice(&att_pub);
        bind.extend_from_slice(&qe_auth_data);
        rd.split_at_mut(32).0.copy_from_slice(&sha256(&bind));
        qe_report.report_data = ReportData(rd);
        let qe_report_signature = self.pck_key.sign(&qe_report.to_bytes())?;

        Ok((
            att,
            SignatureData {
                quote_signature: [0; 64],
                attestation_key: att_pub,
                qe_report,
                qe_report_signature,
                qe_auth_data,
                certification_data: CertificationData {
                    kind: cert_type::PCK_CERT_CHAIN,
                    data: self.pck_chain_pem().into_bytes(),
                },
            },
        ))
    }
}
