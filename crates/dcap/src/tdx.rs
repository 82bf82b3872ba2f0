//! TDX quote verification (Intel QVL `QuoteVerifier::verify` TDX steps, `TdxModuleCheck.cpp`,
//! `TcbLevelCheck.cpp`, `TDRelaunchCheck.cpp`; `spec/dcap-attestation.md` §2.3 step 7, §3).
//!
//! A TDX quote shares everything up to the quote signature with an SGX v4 quote (PCK chain, QE
//! report, attestation-key binding, QE identity, here id "TD_QE"), so those checks are the
//! SGX verifier's ([`crate::verify`]). What is TDX-only lives here:
//!
//! 1. the TCB info must be `id: "TDX"` (version 3) and the QE identity `TD_QE` (version 2/3);
//! 2. **TDX module identity**: with `tee_tcb_svn[1]` (the module's major version) > 0 the
//!    module is the `tdxModuleIdentities` entry `TDX_<version as 2 hex digits>` (missing →
//!    `tdx-module-mismatch`), else the top-level `tdxModule`. MRSIGNER_SEAM must equal its
//!    `mrsigner`, and SEAM_ATTRIBUTES must be zero and equal its `attributes` (QVL compares the
//!    bytes without the mask; so does this verifier);
//! 3. **TCB level**: the first level whose SGX components and PCESVN the PCK certificate
//!    reaches *and* whose `tdxtcbcomponents` the quote's `tee_tcb_svn` reaches (from index 2
//!    when `tee_tcb_svn[1] > 0`, since the module is then judged by its identity); none →
//!    `tcb-level-not-found`;
//! 4. **module TCB level**: with a module identity, its first level with
//!    `isvsvn <= tee_tcb_svn[0]` (none → `tcb-level-not-found`); without one, UpToDate;
//! 5. **status**: the TDX level's status converged with the module's (OutOfDate/Revoked as for
//!    the QE, QVL `convergeTcbStatusWithTdxModuleStatus`), then for TD report 1.5 bodies the
//!    relaunch check (TDRelaunchAdvised…), then converged with the QE's; Revoked →
//!    `tcb-revoked`. Advisory IDs: the TDX level's, then the module level's, then the QE
//!    level's, each once.
//!
//! The module identity and TCB checks run after the signatures, so a forged quote fails on a
//! signature code first.

use crate::anchor::TrustAnchor;
use crate::cache::Verifier;
use crate::collateral::Collateral;
use crate::error::{LevelNotFound, QeMismatch, RevokedLevel, TdxModuleError, VerifyError};
use crate::tcb::{JsonField, TcbInfo, TcbJsonError, TcbLevel, TcbStatus, fixed_hex, status};
use crate::verify::{
    OnQeReportVerified, QeReportVerified, VerifiedCollateral, VerifiedPck, VerifiedQuote,
    pck_chain_source, verify_signed_quote,
};
use serde::Deserialize;
use sgx_types::td::TdBody;
use sgx_types::{DcapQuote, QuoteHeader, TdReport10, TdxQuote};

/// The top-level `tdxModule` of a TDX TCB info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxModule {
    /// MRSIGNER of the TDX module (48 bytes).
    pub mrsigner: [u8; 48],
    /// Expected SEAM attributes.
    pub attributes: [u8; 8],
    /// Their mask.
    pub attributes_mask: [u8; 8],
}

/// One TCB level of a TDX module identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxModuleTcbLevel {
    /// Minimum module ISVSVN (`tee_tcb_svn[0]`).
    pub isv_svn: u8,
    /// The level's date.
    pub tcb_date: Option<String>,
    /// UpToDate, OutOfDate or Revoked.
    pub status: TcbStatus,
    /// Advisory IDs.
    pub advisory_ids: Vec<String>,
}

/// One entry of `tdxModuleIdentities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxModuleIdentity {
    /// `TDX_<major version, 2 hex digits>`, e.g. `TDX_01`.
    pub id: String,
    /// The module's identity (MRSIGNER, attributes, mask).
    pub module: TdxModule,
    /// Levels, highest first.
    pub levels: Vec<TdxModuleTcbLevel>,
}

/// The TDX module part of a TDX TCB info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxModuleInfo {
    /// `tdxModule`.
    pub module: TdxModule,
    /// `tdxModuleIdentities`, when the TCB info has them.
    pub identities: Option<Vec<TdxModuleIdentity>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawTdxModule {
    mrsigner: String,
    attributes: String,
    attributes_mask: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawTdxModuleIdentity {
    id: String,
    mrsigner: String,
    attributes: String,
    attributes_mask: String,
    tcb_levels: Vec<RawModuleLevel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawModuleLevel {
    tcb: RawModuleTcb,
    tcb_date: Option<String>,
    tcb_status: String,
    #[serde(rename = "advisoryIDs", default)]
    advisory_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawModuleTcb {
    isvsvn: u8,
}

/// Statuses a TDX module TCB level may state (QVL `VALID_MODULE_TCB_STATUSES`).
const MODULE_STATUSES: [TcbStatus; 3] = [
    TcbStatus::UpToDate,
    TcbStatus::OutOfDate,
    TcbStatus::Revoked,
];

impl TdxModule {
    fn from_raw(what: &'static str, r: &RawTdxModule) -> Result<Self, TcbJsonError> {
        Self::parts(what, &r.mrsigner, &r.attributes, &r.attributes_mask)
    }

    fn parts(
        what: &'static str,
        mrsigner: &str,
        attr: &str,
        mask: &str,
    ) -> Result<Self, TcbJsonError> {
        let f = |name: &'static str| JsonField {
            parent: Some(what),
            name,
        };
        Ok(Self {
            mrsigner: fixed_hex(f("mrsigner"), mrsigner)?,
            attributes: fixed_hex(f("attributes"), attr)?,
            attributes_mask: fixed_hex(f("attributesMask"), mask)?,
        })
    }
}

impl TdxModuleInfo {
    pub(crate) fn from_raw(
        module: Option<RawTdxModule>,
        identities: Option<Vec<RawTdxModuleIdentity>>,
    ) -> Result<Self, TcbJsonError> {
        let module = module.ok_or(TcbJsonError::Missing {
            within: "TDX TCB info",
            field: "tdxModule",
        })?;
        let identities = identities
            .map(|ids| {
                ids.into_iter()
                    .map(|i| {
                        let levels = i
                            .tcb_levels
                            .into_iter()
                            .map(|l| {
                                let st = status(&l.tcb_status)?;
                                if !MODULE_STATUSES.contains(&st) {
                                    return Err(TcbJsonError::StatusNotAllowed {
                                        status: st,
                                        level: "a TDX module identity",
                                    });
                                }
                                Ok(TdxModuleTcbLevel {
                                    isv_svn: l.tcb.isvsvn,
                                    tcb_date: l.tcb_date,
                                    status: st,
                                    advisory_ids: l.advisory_ids,
                                })
                            })
                            .collect::<Result<_, _>>()?;
                        Ok(TdxModuleIdentity {
                            module: TdxModule::parts(
                                "tdxModuleIdentities",
                                &i.mrsigner,
                                &i.attributes,
                                &i.attributes_mask,
                            )?,
                            id: i.id,
                            levels,
                        })
                    })
                    .collect::<Result<Vec<_>, TcbJsonError>>()
            })
            .transpose()?;
        Ok(Self {
            module: TdxModule::from_raw("tdxModule", &module)?,
            identities,
        })
    }

    /// The identity `TDX_<version>` (QVL `findTdxModuleIdentity`; ids compare case-blind).
    pub fn identity(&self, version: u8) -> Option<&TdxModuleIdentity> {
        let want = format!("TDX_{version:02X}");
        self.identities
            .as_deref()?
            .iter()
            .find(|i| i.id.eq_ignore_ascii_case(&want))
    }
}

impl TcbInfo {
    /// The first level the platform's PCK TCB and the TD's `tee_tcb_svn` reach (QVL
    /// `matchTcbLevels` for TDX). `Err(true)` when no level matches the PCK TCB at all,
    /// `Err(false)` when some does but none also matches `tee_tcb_svn`.
    pub fn match_tdx_level(
        &self,
        comps: &[u8; 16],
        pce_svn: u16,
        tee_tcb_svn: &[u8; 16],
    ) -> Result<&TcbLevel, bool> {
        let start = if tee_tcb_svn.get(1).is_some_and(|&v| v > 0) {
            2
        } else {
            0
        };
        let mut sgx_matched = false;
        for l in &self.levels {
            let sgx_ok =
                pce_svn >= l.pce_svn && comps.iter().zip(&l.sgx_components).all(|(p, l)| p >= l);
            if !sgx_ok {
                continue;
            }
            sgx_matched = true;
            let Some(tdx) = &l.tdx_components else {
                continue;
            };
            let tdx_ok = tee_tcb_svn.iter().zip(tdx).skip(start).all(|(q, l)| q >= l);
            if tdx_ok {
                return Ok(l);
            }
        }
        Err(!sgx_matched)
    }
}

/// A TDX quote that passed every check. Only the verifier constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTdxQuote {
    header: QuoteHeader,
    body: TdBody,
    trailing_zero_bytes: usize,
    tcb_status: TcbStatus,
    platform_tcb_status: TcbStatus,
    sgx_tcb_status: TcbStatus,
    qe_tcb_status: TcbStatus,
    tdx_module_tcb_status: TcbStatus,
    tdx_module_identity: Option<String>,
    advisory_ids: Vec<String>,
    fmspc: [u8; 6],
    pce_id: [u8; 2],
    tcb_date: Option<String>,
    tcb_evaluation_data_number: Option<u32>,
    revocation_checked: bool,
    collateral_valid_from: i64,
    collateral_valid_until: i64,
}

impl VerifiedTdxQuote {
    /// The quote header.
    pub fn header(&self) -> &QuoteHeader {
        &self.header
    }
    /// The TD body (1.0, 1.5 or 1.5 ex).
    pub fn body(&self) -> &TdBody {
        &self.body
    }
    /// The TD report fields every body has (MRTD, RTMRs, attributes, report data...).
    pub fn report(&self) -> &TdReport10 {
        self.body.report()
    }
    /// Zero bytes that followed the signature data in the quote.
    pub fn trailing_zero_bytes(&self) -> usize {
        self.trailing_zero_bytes
    }
    /// The final TCB status: platform (TDX level), TDX module and QE converged.
    pub fn tcb_status(&self) -> TcbStatus {
        self.tcb_status
    }
    /// The matched TDX TCB level's status alone.
    pub fn platform_tcb_status(&self) -> TcbStatus {
        self.platform_tcb_status
    }
    /// The status of the first level matching the PCK TCB alone (QVL's "SGX TCB level").
    pub fn sgx_tcb_status(&self) -> TcbStatus {
        self.sgx_tcb_status
    }
    /// The TD QE's TCB status.
    pub fn qe_tcb_status(&self) -> TcbStatus {
        self.qe_tcb_status
    }
    /// The TDX module's TCB status (UpToDate when the module version is 0: no module identity
    /// applies, as in QVL).
    pub fn tdx_module_tcb_status(&self) -> TcbStatus {
        self.tdx_module_tcb_status
    }
    /// The module identity used (`TDX_01`...), if any.
    pub fn tdx_module_identity(&self) -> Option<&str> {
        self.tdx_module_identity.as_deref()
    }
    /// Advisory IDs: the TDX level's, then the module level's, then the QE level's.
    pub fn advisory_ids(&self) -> &[String] {
        &self.advisory_ids
    }
    /// The platform's FMSPC.
    pub fn fmspc(&self) -> [u8; 6] {
        self.fmspc
    }
    /// The platform's PCE-ID.
    pub fn pce_id(&self) -> [u8; 2] {
        self.pce_id
    }
    /// The matched TDX TCB level's date.
    pub fn tcb_date(&self) -> Option<&str> {
        self.tcb_date.as_deref()
    }
    /// The TCB info's evaluation data number.
    pub fn tcb_evaluation_data_number(&self) -> Option<u32> {
        self.tcb_evaluation_data_number
    }
    /// Whether CRLs were checked.
    pub fn revocation_checked(&self) -> bool {
        self.revocation_checked
    }
    /// Start of the window in which every collateral item is valid (Unix seconds).
    pub fn collateral_valid_from(&self) -> i64 {
        self.collateral_valid_from
    }
    /// End of that window (Unix seconds).
    pub fn collateral_valid_until(&self) -> i64 {
        self.collateral_valid_until
    }
    /// Whether the TD is a debug TD (reported; policy decides).
    pub fn debug(&self) -> bool {
        self.report().td_attributes.debug()
    }
}

/// A verified quote of either TEE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedDcapQuote {
    /// An SGX enclave.
    Sgx(Box<VerifiedQuote>),
    /// A TDX trust domain.
    Tdx(Box<VerifiedTdxQuote>),
}

impl VerifiedDcapQuote {
    /// The final TCB status.
    pub fn tcb_status(&self) -> TcbStatus {
        match self {
            Self::Sgx(v) => v.tcb_status(),
            Self::Tdx(v) => v.tcb_status(),
        }
    }
    /// The advisory IDs.
    pub fn advisory_ids(&self) -> &[String] {
        match self {
            Self::Sgx(v) => v.advisory_ids(),
            Self::Tdx(v) => v.advisory_ids(),
        }
    }
    /// The 64 bytes of report data.
    pub fn report_data(&self) -> &[u8; 64] {
        match self {
            Self::Sgx(v) => &v.report().report_data.0,
            Self::Tdx(v) => &v.report().report_data.0,
        }
    }
    /// Whether CRLs were checked.
    pub fn revocation_checked(&self) -> bool {
        match self {
            Self::Sgx(v) => v.revocation_checked(),
            Self::Tdx(v) => v.revocation_checked(),
        }
    }
    /// "sgx" or "tdx".
    pub fn tee(&self) -> &'static str {
        match self {
            Self::Sgx(_) => "sgx",
            Self::Tdx(_) => "tdx",
        }
    }
    /// Whether the enclave or TD is debuggable.
    pub fn debug(&self) -> bool {
        match self {
            Self::Sgx(v) => v.debug(),
            Self::Tdx(v) => v.debug(),
        }
    }
    /// The platform's FMSPC.
    pub fn fmspc(&self) -> [u8; 6] {
        match self {
            Self::Sgx(v) => v.fmspc(),
            Self::Tdx(v) => v.fmspc(),
        }
    }
    /// End of the collateral validity window (Unix seconds).
    pub fn collateral_valid_until(&self) -> i64 {
        match self {
            Self::Sgx(v) => v.collateral_valid_until(),
            Self::Tdx(v) => v.collateral_valid_until(),
        }
    }
}

fn converge(platform: TcbStatus, other: TcbStatus) -> TcbStatus {
    // QVL's convergence with the TDX module status has the same table as with the QE status.
    TcbStatus::merge_with_qe(platform, other)
}

fn not_found(d: LevelNotFound) -> VerifyError {
    VerifyError::TcbLevelNotFound(d)
}

/// The per-quote checks of a TDX quote, given verified collateral and PCK chain.
pub(crate) fn verify_tdx_quote_with(
    raw: &[u8],
    q: &TdxQuote,
    coll: &VerifiedCollateral,
    pck: &VerifiedPck,
    qe_report_verified: QeReportVerified<'_>,
    on_qe_report_verified: OnQeReportVerified<'_>,
) -> Result<VerifiedTdxQuote, VerifyError> {
    let tcb = &coll.tcb_info;
    let Some(tdx) = &tcb.tdx else {
        return Err(not_found(LevelNotFound::WrongTee {
            tcb_info: "SGX",
            needs: "a TDX quote needs TDX TCB info (id \"TDX\", version 3, from the PCS \
                    tdx/certification/v4/tcb endpoint)",
        }));
    };
    if coll.qe_identity.id != "TD_QE" {
        return Err(VerifyError::QeIdentityMismatch(QeMismatch::Id {
            found: coll.qe_identity.id.clone(),
            needs: "a TDX quote needs the \"TD_QE\" identity (PCS \
                    tdx/certification/v4/qe/identity)",
        }));
    }
    // The parse is strict, so the raw prefix is exactly the encoded signed region.
    let signed = raw.get(..q.signed_len()).unwrap_or_default();
    let qe_tcb = verify_signed_quote(
        signed,
        &q.header,
        &q.signature,
        coll,
        pck,
        qe_report_verified,
        on_qe_report_verified,
    )?;

    let r = q.body.report();
    let tee = &r.tee_tcb_svn;
    let module_version = tee.get(1).copied().unwrap_or(0);
    let module_svn = tee.first().copied().unwrap_or(0);
    let identity = if module_version > 0 {
        if tdx.identities.is_none() {
            return Err(VerifyError::TdxModuleMismatch(
                TdxModuleError::NoIdentities {
                    version: module_version,
                },
            ));
        }
        Some(tdx.identity(module_version).ok_or_else(|| {
            VerifyError::TdxModuleMismatch(TdxModuleError::NoIdentity {
                version: module_version,
                field: "",
            })
        })?)
    } else {
        None
    };
    let expected = identity.map_or(&tdx.module, |i| &i.module);
    let which = identity.map_or("tdxModule", |i| i.id.as_str());
    if r.mr_signer_seam.0 != expected.mrsigner {
        return Err(VerifyError::TdxModuleMismatch(
            TdxModuleError::MrSignerSeam {
                which: which.to_string(),
                found: r.mr_signer_seam.0.to_vec(),
                expected: expected.mrsigner.to_vec(),
            },
        ));
    }
    if r.seam_attributes.iter().any(|&b| b != 0) || r.seam_attributes != expected.attributes {
        return Err(VerifyError::TdxModuleMismatch(
            TdxModuleError::SeamAttributes {
                which: which.to_string(),
                found: r.seam_attributes.to_vec(),
                expected: expected.attributes.to_vec(),
            },
        ));
    }

    let ext = &pck.ext;
    let level = tcb
        .match_tdx_level(&ext.tcb_comp_svn, ext.pce_svn, tee)
        .map_err(|no_sgx| {
            if no_sgx {
                not_found(LevelNotFound::Platform {
                    tcb_info: "TDX TCB info",
                    tcb_components: ext.tcb_comp_svn,
                    pce_svn: ext.pce_svn,
                })
            } else {
                not_found(LevelNotFound::TdxTeeTcbSvn {
                    tee_tcb_svn: *tee,
                    from_index_2: module_version > 0,
                })
            }
        })?;
    let sgx_status = tcb
        .match_level(&ext.tcb_comp_svn, ext.pce_svn)
        .map_or(level.status, |l| l.status);

    let module_level = match identity {
        Some(i) => Some(
            i.levels
                .iter()
                .find(|l| module_svn >= l.isv_svn)
                .ok_or_else(|| {
                    not_found(LevelNotFound::TdxModule {
                        identity: i.id.clone(),
                        isv_svn: module_svn,
                    })
                })?,
        ),
        None => None,
    };
    let module_status = module_level.map_or(TcbStatus::UpToDate, |l| l.status);
    let mut status = converge(level.status, module_status);
    if status == TcbStatus::Revoked {
        let who = if level.status == TcbStatus::Revoked {
            "the platform's TDX TCB level"
        } else {
            "the TDX module's TCB level"
        };
        return Err(VerifyError::TcbRevoked(RevokedLevel { who }));
    }
    if let Some(f) = q.body.td15() {
        status = relaunch_check(
            &f.tee_tcb_svn2,
            tcb,
            tdx,
            sgx_status,
            status,
            module_status,
            qe_tcb.status,
        )?;
    }
    let status = TcbStatus::merge_with_qe(status, qe_tcb.status);
    if status == TcbStatus::Revoked {
        return Err(VerifyError::TcbRevoked(RevokedLevel {
            who: "the TD QE's TCB level",
        }));
    }

    let mut advisory_ids = level.advisory_ids.clone();
    for a in module_level
        .iter()
        .flat_map(|l| &l.advisory_ids)
        .chain(&qe_tcb.advisory_ids)
    {
        if !advisory_ids.contains(a) {
            advisory_ids.push(a.clone());
        }
    }
    Ok(VerifiedTdxQuote {
        trailing_zero_bytes: q.trailing_zero_bytes,
        header: q.header.clone(),
        body: q.body.clone(),
        tcb_status: status,
        platform_tcb_status: level.status,
        sgx_tcb_status: sgx_status,
        qe_tcb_status: qe_tcb.status,
        tdx_module_tcb_status: module_status,
        tdx_module_identity: identity.map(|i| i.id.clone()),
        advisory_ids,
        fmspc: ext.fmspc,
        pce_id: ext.pce_id,
        tcb_date: level.tcb_date.clone(),
        tcb_evaluation_data_number: tcb.tcb_evaluation_data_number,
        revocation_checked: coll.revocation_checked(),
        collateral_valid_from: pck.window.from,
        collateral_valid_until: pck.window.until,
    })
}

/// QVL `checkForRelaunch`: a TD report 1.5 whose TDX TCB is out of date only because its module
/// was updated while it ran (TEE_TCB_SVN2 reaches the latest level) is "relaunch advised".
fn relaunch_check(
    svn2: &[u8; 16],
    tcb: &TcbInfo,
    tdx: &TdxModuleInfo,
    sgx_status: TcbStatus,
    tdx_status: TcbStatus,
    module_status: TcbStatus,
    qe_status: TcbStatus,
) -> Result<TcbStatus, VerifyError> {
    use TcbStatus::*;
    let qe_ok = !matches!(
        qe_status,
        OutOfDate | OutOfDateConfigurationNeeded | Revoked
    );
    let sgx_ok = matches!(
        sgx_status,
        UpToDate | SwHardeningNeeded | ConfigurationNeeded | ConfigurationAndSwHardeningNeeded
    );
    let tdx_ood = matches!(tdx_status, OutOfDate | OutOfDateConfigurationNeeded);
    if !(qe_ok && sgx_ok && tdx_ood && module_status == OutOfDate) {
        return Ok(tdx_status);
    }
    let latest = tcb
        .levels
        .first()
        .and_then(|l| l.tdx_components)
        .ok_or_else(|| {
            not_found(LevelNotFound::NoLevels {
                what: "the TDX TCB info".into(),
            })
        })?;
    let at = |a: &[u8; 16], i: usize| a.get(i).copied().unwrap_or(0);
    let module_ok = if at(svn2, 1) == 0 {
        at(svn2, 0) >= at(&latest, 0)
    } else {
        let v = at(svn2, 1);
        let id2 = tdx.identity(v).ok_or_else(|| {
            VerifyError::TdxModuleMismatch(TdxModuleError::NoIdentity {
                version: v,
                field: "TEE_TCB_SVN2 ",
            })
        })?;
        let top = id2.levels.first().ok_or_else(|| {
            not_found(LevelNotFound::NoLevels {
                what: format!("TDX module identity {}", id2.id),
            })
        })?;
        at(svn2, 0) >= top.isv_svn
    };
    if module_ok && at(svn2, 2) >= at(&latest, 2) {
        if sgx_status.configuration_needed() || tdx_status.configuration_needed() {
            return Ok(TdRelaunchAdvisedConfigurationNeeded);
        }
        return Ok(TdRelaunchAdvised);
    }
    Ok(tdx_status)
}

/// A quote parsed once, kept with its exact bytes, to verify any number of times (against
/// different collateral, at different times) without parsing it again. Only
/// [`ParsedQuote::parse`] builds one, so the parsed fields are always those of the bytes the
/// signature is checked over. Verifying it is never cached as a verdict: every
/// [`Verifier::verify_parsed`] call checks the quote's own signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuote {
    raw: Vec<u8>,
    quote: DcapQuote,
}

impl ParsedQuote {
    /// Parses `bytes` as a quote of either TEE (the same strict parse as
    /// [`Verifier::verify_dcap`], with the same errors).
    pub fn parse(bytes: Vec<u8>) -> Result<Self, VerifyError> {
        let quote = DcapQuote::parse(&bytes)?;
        Ok(Self { raw: bytes, quote })
    }

    /// The quote bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The parsed quote.
    pub fn quote(&self) -> &DcapQuote {
        &self.quote
    }

    /// The bytes' size plus the parsed copy's, roughly: for callers that bound a cache by
    /// memory.
    pub fn size_hint(&self) -> usize {
        let sig = match &self.quote {
            DcapQuote::Sgx(q) => &q.signature,
            DcapQuote::Tdx(q) => &q.signature,
            _ => return 2 * self.raw.len(),
        };
        self.raw.len()
            + std::mem::size_of::<DcapQuote>()
            + 1024
            + sig.certification_data.data.len()
            + sig.qe_auth_data.len()
    }
}

impl Verifier {
    /// Verifies a TDX quote (raw bytes) against TDX collateral at `now` (Unix seconds),
    /// trusting only `anchor`. Shares the collateral and PCK caches with [`Verifier::verify`].
    pub fn verify_tdx(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedTdxQuote, VerifyError> {
        let q = TdxQuote::parse(quote)?;
        self.verify_parsed_tdx(quote, &q, collateral, now, anchor)
    }

    fn verify_parsed_tdx(
        &self,
        raw: &[u8],
        q: &TdxQuote,
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedTdxQuote, VerifyError> {
        self.with_verified(
            q,
            |q, c| pck_chain_source(&q.signature, c),
            collateral,
            now,
            anchor,
            |q, coll, pck, seen, record| verify_tdx_quote_with(raw, q, coll, pck, seen, record),
        )
    }

    /// Verifies a quote of either TEE: TDX quotes (v4/v5, TEE type 0x81) as
    /// [`Verifier::verify_tdx`], everything else as [`Verifier::verify`].
    pub fn verify_dcap(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedDcapQuote, VerifyError> {
        self.verify_dcap_quote(quote, &DcapQuote::parse(quote)?, collateral, now, anchor)
    }

    /// [`Verifier::verify_dcap`] of a quote parsed before: the same checks (every one that
    /// concerns the quote itself, its signature included, runs on each call), without the
    /// parse.
    pub fn verify_parsed(
        &self,
        quote: &ParsedQuote,
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedDcapQuote, VerifyError> {
        self.verify_dcap_quote(&quote.raw, &quote.quote, collateral, now, anchor)
    }

    fn verify_dcap_quote(
        &self,
        raw: &[u8],
        q: &DcapQuote,
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedDcapQuote, VerifyError> {
        match q {
            DcapQuote::Tdx(q) => self
                .verify_parsed_tdx(raw, q, collateral, now, anchor)
                .map(|v| VerifiedDcapQuote::Tdx(Box::new(v))),
            DcapQuote::Sgx(q) => self
                .verify_parsed_sgx(raw, q, collateral, now, anchor)
                .map(|v| VerifiedDcapQuote::Sgx(Box::new(v))),
            // A layout this verifier does not know yet: the SGX parser names what it refuses.
            _ => self
                .verify(raw, collateral, now, anchor)
                .map(|v| VerifiedDcapQuote::Sgx(Box::new(v))),
        }
    }
}

/// Verifies one quote of either TEE with no cache and default options (CRLs required).
pub fn verify_dcap(
    quote: &[u8],
    collateral: &Collateral,
    now: i64,
    anchor: &TrustAnchor,
) -> Result<VerifiedDcapQuote, VerifyError> {
    Verifier::uncached(crate::VerifyOptions::default()).verify_dcap(quote, collateral, now, anchor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(sgx: u8, pce: u16, tdx: [u8; 16], status: TcbStatus) -> TcbLevel {
        TcbLevel {
            sgx_components: [sgx; 16],
            tdx_components: Some(tdx),
            pce_svn: pce,
            tcb_date: None,
            status,
            advisory_ids: vec![],
        }
    }

    fn info(levels: Vec<TcbLevel>) -> TcbInfo {
        TcbInfo {
            version: 3,
            tdx: None,
            issue_date: 0,
            next_update: 0,
            fmspc: [0; 6],
            pce_id: [0; 2],
            tcb_evaluation_data_number: None,
            levels,
        }
    }

    #[test]
    fn tdx_level_matching_follows_qvl() {
        let mut hi = [0u8; 16];
        hi[0] = 5;
        hi[2] = 3;
        let mut lo = [0u8; 16];
        lo[0] = 3;
        lo[2] = 2;
        let t = info(vec![
            level(4, 13, hi, TcbStatus::UpToDate),
            level(2, 5, lo, TcbStatus::OutOfDate),
        ]);
        let pck_hi = [4u8; 16];
        // Module version 0: index 0 counts.
        let mut tee = [0u8; 16];
        tee[0] = 4;
        tee[2] = 3;
        assert_eq!(
            t.match_tdx_level(&pck_hi, 13, &tee).map(|l| l.status),
            Ok(TcbStatus::OutOfDate)
        );
        // Module version 1: indices 0 and 1 are skipped.
        tee[1] = 1;
        assert_eq!(
            t.match_tdx_level(&pck_hi, 13, &tee).map(|l| l.status),
            Ok(TcbStatus::UpToDate)
        );
        // PCK below every level, or tee_tcb_svn below every level.
        assert_eq!(
            t.match_tdx_level(&[1; 16], 13, &tee).map(|l| l.status),
            Err(true)
        );
        tee[2] = 1;
        assert_eq!(
            t.match_tdx_level(&pck_hi, 13, &tee).map(|l| l.status),
            Err(false)
        );
    }

    #[test]
    fn module_identity_lookup_is_case_blind() {
        let m = TdxModule {
            mrsigner: [0; 48],
            attributes: [0; 8],
            attributes_mask: [0xff; 8],
        };
        let i = TdxModuleInfo {
            module: m.clone(),
            identities: Some(vec![TdxModuleIdentity {
                id: "tdx_0a".into(),
                module: m,
                levels: vec![],
            }]),
        };
        assert_eq!(i.identity(10).map(|i| i.id.as_str()), Some("tdx_0a"));
        assert_eq!(i.identity(1), None);
    }

    #[test]
    fn relaunch_is_advised_only_when_svn2_reaches_the_latest_level() {
        use TcbStatus::*;
        let mut top = [0u8; 16];
        top[0] = 5;
        top[2] = 3;
        let t = info(vec![level(4, 13, top, UpToDate)]);
        let tdx = TdxModuleInfo {
            module: TdxModule {
                mrsigner: [0; 48],
                attributes: [0; 8],
                attributes_mask: [0xff; 8],
            },
            identities: Some(vec![]),
        };
        let mut svn2 = [0u8; 16];
        svn2[0] = 5;
        svn2[2] = 3;
        let run = |svn2: &[u8; 16], sgx, tdx_s, module, qe| {
            relaunch_check(svn2, &t, &tdx, sgx, tdx_s, module, qe)
        };
        assert_eq!(
            run(&svn2, UpToDate, OutOfDate, OutOfDate, UpToDate),
            Ok(TdRelaunchAdvised)
        );
        assert_eq!(
            run(&svn2, ConfigurationNeeded, OutOfDate, OutOfDate, UpToDate),
            Ok(TdRelaunchAdvisedConfigurationNeeded)
        );
        assert_eq!(
            run(&svn2, UpToDate, OutOfDate, UpToDate, UpToDate),
            Ok(OutOfDate)
        );
        assert_eq!(
            run(&svn2, UpToDate, OutOfDate, OutOfDate, OutOfDate),
            Ok(OutOfDate)
        );
        let mut low = svn2;
        low[2] = 2;
        assert_eq!(
            run(&low, UpToDate, OutOfDate, OutOfDate, UpToDate),
            Ok(OutOfDate)
        );
        let mut v1 = svn2;
        v1[1] = 1;
        assert_eq!(
            run(&v1, UpToDate, OutOfDate, OutOfDate, UpToDate)
                .unwrap_err()
                .code(),
            "tdx-module-mismatch"
        );
    }
}
