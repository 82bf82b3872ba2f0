//! TDX: TCB info (`id: "TDX"`, with `tdxtcbcomponents`, `tdxModule`, `tdxModuleIdentities`),
//! the TD_QE identity (ISVPRODID 2), and TDX quotes (v4 TD 1.0, v5 TD 1.0/1.5/1.5 ex) signed
//! end to end by the same PKI as the SGX quotes.
//!
//! Levels: each [`LevelSpec`](crate::LevelSpec) gives every SGX *and* TDX component the same
//! SVN, so a TD with `tee_tcb_svn[2..] = [svn; 14]` (module version > 0) or
//! `tee_tcb_svn = [svn; 16]` (version 0) selects the level of that SVN.

use crate::{CollateralParams, QeLevelSpec, Testkit, TestkitError, rfc3339, sha256};
use dcap::{QuoteCollateralV3, TcbStatus};
use sgx_types::td::{TD15_EX_EXTENSION_LEN, TdBody};
use sgx_types::{Measurement, ReportData, TdAttributes, TdReport10, TdReport15Fields, TdxQuote};

/// One entry of `tdxModuleIdentities`: the module of major version `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxModuleSpec {
    /// Major version (`tee_tcb_svn[1]`); the id is `TDX_<version, 2 hex digits>`.
    pub version: u8,
    /// Its MRSIGNER (48 bytes).
    pub mrsigner: [u8; 48],
    /// Levels, highest first: (minimum ISVSVN, status, advisory IDs).
    pub levels: Vec<QeLevelSpec>,
}

/// The standard modules: `TDX_01` with ISVSVN 5 UpToDate, 3 OutOfDate, 1 Revoked; MRSIGNER
/// zero, as Intel's.
pub fn standard_tdx_modules() -> Vec<TdxModuleSpec> {
    vec![TdxModuleSpec {
        version: 1,
        mrsigner: [0; 48],
        levels: vec![
            QeLevelSpec {
                isv_svn: 5,
                status: TcbStatus::UpToDate,
                advisory_ids: vec![],
            },
            QeLevelSpec {
                isv_svn: 3,
                status: TcbStatus::OutOfDate,
                advisory_ids: vec!["TESTKIT-SA-MODULE-00001".into()],
            },
            QeLevelSpec {
                isv_svn: 1,
                status: TcbStatus::Revoked,
                advisory_ids: vec!["TESTKIT-SA-MODULE-00002".into()],
            },
        ],
    }]
}

/// What the TDX parts of the collateral say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxCollateralParams {
    /// `tdxModule.mrsigner`.
    pub module_mrsigner: [u8; 48],
    /// `tdxModule.attributes`.
    pub module_attributes: [u8; 8],
    /// `tdxModuleIdentities` (`None` leaves the field out).
    pub modules: Option<Vec<TdxModuleSpec>>,
}

impl Default for TdxCollateralParams {
    fn default() -> Self {
        Self {
            module_mrsigner: [0; 48],
            module_attributes: [0; 8],
            modules: Some(standard_tdx_modules()),
        }
    }
}

/// What the TDX quote says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxQuoteParams {
    /// 4 or 5.
    pub version: u16,
    /// v5 body type: 2 (TD 1.0), 3 (TD 1.5), 4 (TD 1.5 ex). v4 is always TD 1.0.
    pub body_type: u16,
    /// TEE_TCB_SVN: [0] module ISVSVN, [1] module version, [2..] TDX components.
    pub tee_tcb_svn: [u8; 16],
    /// TEE_TCB_SVN2 (TD 1.5 bodies).
    pub tee_tcb_svn2: [u8; 16],
    /// MRSIGNER_SEAM.
    pub mr_signer_seam: [u8; 48],
    /// SEAM_ATTRIBUTES.
    pub seam_attributes: [u8; 8],
    /// MRTD.
    pub mr_td: [u8; 48],
    /// RTMR0..3.
    pub rtmr: [[u8; 48]; 4],
    /// MRCONFIGID.
    pub mr_config_id: [u8; 48],
    /// Report data.
    pub report_data: [u8; 64],
    /// Set TD_ATTRIBUTES.DEBUG.
    pub debug: bool,
    /// XFAM.
    pub xfam: u64,
    /// The TD QE's ISVSVN (selects the QE level).
    pub qe_isv_svn: u16,
    /// Zero padding after the signature data.
    pub trailing_zero_bytes: usize,
}

fn sha384ish(label: &[u8]) -> [u8; 48] {
    let mut out = [0u8; 48];
    let a = sha256(label);
    let b = sha256(&a);
    out.iter_mut()
        .zip(a.iter().chain(b.iter()))
        .for_each(|(o, i)| *o = *i);
    out
}

impl Default for TdxQuoteParams {
    fn default() -> Self {
        let mut tee = [10u8; 16];
        tee[0] = 5;
        tee[1] = 1;
        Self {
            version: 4,
            body_type: 2,
            tee_tcb_svn: tee,
            tee_tcb_svn2: tee,
            mr_signer_seam: [0; 48],
            seam_attributes: [0; 8],
            mr_td: sha384ish(b"confkube testkit TD"),
            rtmr: [
                sha384ish(b"rtmr0"),
                sha384ish(b"rtmr1"),
                sha384ish(b"rtmr2"),
                sha384ish(b"rtmr3"),
            ],
            mr_config_id: [0; 48],
            report_data: [0; 64],
            debug: false,
            xfam: 0x0006_02e7,
            qe_isv_svn: 8,
            trailing_zero_bytes: 0,
        }
    }
}

impl Testkit {
    /// The signed `tcbInfo` text (v3, TDX) for these levels and modules.
    pub fn tdx_tcb_info_text(
        &self,
        p: &CollateralParams,
        t: &TdxCollateralParams,
    ) -> Result<String, TestkitError> {
        let levels: Vec<serde_json::Value> = p
            .tcb_levels
            .iter()
            .map(|l| {
                let comps: Vec<_> = (0..16).map(|_| serde_json::json!({"svn": l.svn})).collect();
                serde_json::json!({
                    "tcb": {"sgxtcbcomponents": comps, "pcesvn": l.pce_svn, "tdxtcbcomponents": comps},
                    "tcbDate": "2024-01-01T00:00:00Z",
                    "tcbStatus": l.status.as_str(),
                    "advisoryIDs": l.advisory_ids,
                })
            })
            .collect();
        let mut v = serde_json::json!({
            "id": "TDX",
            "version": 3,
            "issueDate": rfc3339(p.issue_date)?,
            "nextUpdate": rfc3339(p.next_update)?,
            "fmspc": hex::encode_upper(self.params.fmspc),
            "pceId": hex::encode_upper(self.params.pce_id),
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tdxModule": {
                "mrsigner": hex::encode_upper(t.module_mrsigner),
                "attributes": hex::encode_upper(t.module_attributes),
                "attributesMask": "FFFFFFFFFFFFFFFF",
            },
            "tcbLevels": levels,
        });
        if let (Some(mods), Some(o)) = (&t.modules, v.as_object_mut()) {
            let ids: Vec<serde_json::Value> = mods
                .iter()
                .map(|m| {
                    let levels: Vec<_> = m
                        .levels
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
                    serde_json::json!({
                        "id": format!("TDX_{:02X}", m.version),
                        "mrsigner": hex::encode_upper(m.mrsigner),
                        "attributes": "0000000000000000",
                        "attributesMask": "FFFFFFFFFFFFFFFF",
                        "tcbLevels": levels,
                    })
                })
                .collect();
            o.insert("tdxModuleIdentities".into(), ids.into());
        }
        Ok(v.to_string())
    }

    /// The signed `enclaveIdentity` text of the TD QE (id "TD_QE", version 2, ISVPRODID 2).
    pub fn td_qe_identity_text(&self, p: &CollateralParams) -> Result<String, TestkitError> {
        let sgx = self.qe_identity_text(p)?;
        Ok(sgx
            .replacen("\"id\":\"QE\"", "\"id\":\"TD_QE\"", 1)
            .replacen("\"isvprodid\":1", "\"isvprodid\":2", 1))
    }

    /// Complete TDX collateral in the `QuoteCollateralV3` encoding.
    pub fn tdx_collateral(
        &self,
        p: &CollateralParams,
        t: &TdxCollateralParams,
    ) -> Result<QuoteCollateralV3, TestkitError> {
        self.collateral_with(
            p,
            self.tdx_tcb_info_text(p, t)?,
            self.td_qe_identity_text(p)?,
        )
    }

    /// A TDX quote signed end to end: certification data type 6 wrapping the QE report and
    /// type 5 with this PKI's PCK chain.
    pub fn tdx_quote(&self, q: &TdxQuoteParams) -> Result<Vec<u8>, TestkitError> {
        let (att, signature) = self.signed_qe_block(q.qe_isv_svn, 2)?;
        let mut r = TdReport10::zeroed();
        r.tee_tcb_svn = q.tee_tcb_svn;
        r.mr_seam = Measurement(sha384ish(b"confkube testkit TDX module"));
        r.mr_signer_seam = Measurement(q.mr_signer_seam);
        r.seam_attributes = q.seam_attributes;
        r.td_attributes = TdAttributes(
            TdAttributes::SEPT_VE_DISABLE | if q.debug { TdAttributes::DEBUG } else { 0 },
        );
        r.xfam = q.xfam;
        r.mr_td = Measurement(q.mr_td);
        r.mr_config_id = Measurement(q.mr_config_id);
        r.mr_owner = Measurement(sha384ish(b"owner"));
        r.mr_owner_config = Measurement(sha384ish(b"owner config"));
        r.rt_mr = q.rtmr.map(Measurement);
        r.report_data = ReportData(q.report_data);
        let f = TdReport15Fields {
            tee_tcb_svn2: q.tee_tcb_svn2,
            mr_service_td: Measurement([0; 48]),
        };
        let body = match (q.version, q.body_type) {
            (5, 3) => TdBody::Td15(r, f),
            (5, 4) => TdBody::Td15Ex(r, f, Box::new([0x5a; TD15_EX_EXTENSION_LEN])),
            _ => TdBody::Td10(r),
        };
        let mut quote = TdxQuote {
            header: self.header(q.version, sgx_types::quote::TEE_TYPE_TDX, q.qe_isv_svn),
            body,
            signature,
            trailing_zero_bytes: q.trailing_zero_bytes,
        };
        quote.signature.quote_signature = att.sign(&quote.signed_bytes())?;
        Ok(quote.to_bytes())
    }
}
