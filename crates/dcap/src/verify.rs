//! The verification algorithm (spec §2.3, with this project's stricter rules of DESIGN.md §4),
//! split into the part that depends only on collateral (cacheable), the part that depends on the
//! platform's PCK chain (cacheable per collateral), and the per-quote checks.

use crate::anchor::TrustAnchor;
use crate::collateral::Collateral;
use crate::error::{
    CertRole, CertificateWindow, CertificationDataError, Chain, ChainError, CollateralItem,
    CrlError, FmspcDiffers, ItemWindow, KeyBinding, LevelNotFound, NotYetValid, PceIdMismatch,
    QeMismatch, QeReportSignature, QuoteSignature, Revoked, RevokedLevel, SignedItem,
    SignedItemError, UnsupportedQuote, VerifyError,
};
use crate::tcb::{QeIdentity, TcbInfo, TcbStatus};
use crate::x509::{Cert, Crl, PckExtension, parse_pem_chain, parse_pem_chain_with, verify_fixed};
use aws_lc_rs::digest;
use sgx_types::quote::{INTEL_QE_VENDOR_ID, cert_type};
use sgx_types::{Quote, QuoteHeader, ReportBody, SignatureData};

/// Verification options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Verify collateral that carries no CRLs; the result then says revocation was not checked.
    pub allow_missing_crls: bool,
}

impl VerifyOptions {
    /// Options with `allow_missing_crls` set as given.
    pub fn allow_missing_crls(mut self, allow: bool) -> Self {
        self.allow_missing_crls = allow;
        self
    }
}

/// A quote that passed every check. Only the verifier constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedQuote {
    header: QuoteHeader,
    report: ReportBody,
    tcb_status: TcbStatus,
    platform_tcb_status: TcbStatus,
    qe_tcb_status: TcbStatus,
    advisory_ids: Vec<String>,
    fmspc: [u8; 6],
    pce_id: [u8; 2],
    sgx_type: u8,
    tcb_date: Option<String>,
    tcb_evaluation_data_number: Option<u32>,
    revocation_checked: bool,
    collateral_valid_from: i64,
    collateral_valid_until: i64,
}

impl VerifiedQuote {
    /// The quote header.
    pub fn header(&self) -> &QuoteHeader {
        &self.header
    }
    /// The application enclave's report body (MRENCLAVE, MRSIGNER, attributes, report data...).
    pub fn report(&self) -> &ReportBody {
        &self.report
    }
    /// The final TCB status: the platform's merged with the QE's.
    pub fn tcb_status(&self) -> TcbStatus {
        self.tcb_status
    }
    /// The platform's TCB status alone.
    pub fn platform_tcb_status(&self) -> TcbStatus {
        self.platform_tcb_status
    }
    /// The QE's TCB status.
    pub fn qe_tcb_status(&self) -> TcbStatus {
        self.qe_tcb_status
    }
    /// Advisory IDs: the platform level's, then the QE level's not already present.
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
    /// SGX type from the PCK certificate (0 Standard, 1 Scalable, 2 Scalable with integrity).
    pub fn sgx_type(&self) -> u8 {
        self.sgx_type
    }
    /// The matched platform TCB level's date.
    pub fn tcb_date(&self) -> Option<&str> {
        self.tcb_date.as_deref()
    }
    /// The TCB info's evaluation data number.
    pub fn tcb_evaluation_data_number(&self) -> Option<u32> {
        self.tcb_evaluation_data_number
    }
    /// Whether CRLs were checked (false only with `allow_missing_crls` and CRL-less collateral).
    pub fn revocation_checked(&self) -> bool {
        self.revocation_checked
    }
    /// Start of the window in which every collateral item is valid (Unix seconds).
    pub fn collateral_valid_from(&self) -> i64 {
        self.collateral_valid_from
    }
    /// End of that window: the earliest expiration of any item (Unix seconds).
    pub fn collateral_valid_until(&self) -> i64 {
        self.collateral_valid_until
    }
    /// Whether the enclave is a debug enclave (reported; policy decides).
    pub fn debug(&self) -> bool {
        self.report.attributes.debug()
    }
}

/// The intersection of validity windows seen so far, checked against `now` as it narrows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) from: i64,
    pub(crate) until: i64,
    now: i64,
}

impl Window {
    fn new(now: i64) -> Self {
        Self {
            from: i64::MIN,
            until: i64::MAX,
            now,
        }
    }

    fn contains(&self, now: i64) -> bool {
        self.from <= now && now <= self.until
    }

    /// A collateral item (CRL, TCB info, QE identity) valid from `start` to `end`.
    fn item(&mut self, item: CollateralItem, start: i64, end: i64) -> Result<(), VerifyError> {
        if self.now < start {
            return Err(VerifyError::CollateralNotYetValid(NotYetValid::Item {
                item,
                valid_from: start,
                now: self.now,
            }));
        }
        if self.now > end {
            return Err(VerifyError::CollateralExpired(ItemWindow {
                item,
                next_update: end,
                now: self.now,
            }));
        }
        self.from = self.from.max(start);
        self.until = self.until.min(end);
        Ok(())
    }

    fn cert(&mut self, chain: Chain, c: &Cert) -> Result<(), VerifyError> {
        if self.now > c.not_after {
            return Err(VerifyError::CertificateExpired(CertificateWindow {
                chain,
                subject: c.subject_cn.clone(),
                not_after: c.not_after,
                now: self.now,
            }));
        }
        if self.now < c.not_before {
            return Err(VerifyError::CollateralNotYetValid(
                NotYetValid::Certificate {
                    chain,
                    subject: c.subject_cn.clone(),
                    not_before: c.not_before,
                    now: self.now,
                },
            ));
        }
        self.from = self.from.max(c.not_before);
        self.until = self.until.min(c.not_after);
        Ok(())
    }

    fn crl(&mut self, item: CollateralItem, crl: &Crl) -> Result<(), VerifyError> {
        let next = crl
            .next_update
            .ok_or(VerifyError::CrlMissing(CrlError::NoNextUpdate { item }))?;
        self.item(item, crl.this_update, next)
    }
}

/// Certificate signatures already checked in this verification (certificate DER, signer key):
/// the same root appears in four chains and the TCB signer and PCK CA in two, so each distinct
/// signature is verified once.
/// It also keeps the certificates parsed so far, so each distinct one is parsed once.
#[derive(Debug, Clone, Default)]
pub(crate) struct SigMemo {
    verified: Vec<(Vec<u8>, Vec<u8>)>,
    certs: Vec<Cert>,
}

impl SigMemo {
    fn signed_by(&mut self, c: &Cert, key: &[u8]) -> bool {
        if self.verified.iter().any(|(d, k)| *d == c.der && k == key) {
            return true;
        }
        let ok = c.signed_by(key);
        if ok {
            self.verified.push((c.der.clone(), key.to_vec()));
        }
        ok
    }

    fn parse_chain(&mut self, pem: &[u8]) -> Result<Vec<Cert>, crate::x509::X509Error> {
        parse_pem_chain_with(pem, &mut self.certs)
    }
}

/// Checks a root certificate from a chain against the anchor. Trust is in the anchor's key
/// (spec §2.1: two Intel root certificates share it), as RFC 5280 treats a trust anchor: the
/// root must carry that key and name itself as issuer; its self-signature adds nothing to the
/// decision (every certificate and CRL below it must still verify with the anchor's key), so it
/// is not checked.
fn check_root(root: &Cert, anchor: &TrustAnchor, chain: Chain) -> Result<(), VerifyError> {
    if root.public_key != anchor.public_key() {
        return Err(VerifyError::UntrustedRoot(ChainError::NotTheAnchor {
            chain,
            root: root.subject_cn.clone(),
            anchor: anchor.label().to_string(),
        }));
    }
    if root.issuer_raw != root.subject_raw {
        return Err(VerifyError::UntrustedRoot(ChainError::NotSelfIssued {
            chain,
            root: root.subject_cn.clone(),
        }));
    }
    Ok(())
}

/// Intel QVL's certificate name rules (QVL `CertVerification/X509Constants` `SGX_*_CN_PHRASE`,
/// checked by `BaseVerifier::commonNameContains` in `PckCertVerifier`, `TCBSigningChain` and
/// `QuoteVerifier`): a certificate's subject common name must *contain* the phrase of its role,
/// so private PKIs that follow the rule (`CN=Synthetic SGX TCB Signing`) verify as in QVL.
pub(crate) mod cn_phrase {
    /// The root of every chain.
    pub(crate) const ROOT_CA: &str = "SGX Root CA";
    /// The PCK CA (Processor or Platform) and the PCK CRL issuer.
    pub(crate) const INTERMEDIATE_CA: &str = "CA";
    /// The PCK leaf.
    pub(crate) const PCK: &str = "SGX PCK Certificate";
    /// The signer of TCB info and QE identity.
    pub(crate) const TCB_SIGNING: &str = "SGX TCB Signing";
}

/// QVL's name rule for one certificate of a chain. A wrong name is a chain problem
/// (`untrusted-root`; QVL `STATUS_SGX_*_MISSING` / `STATUS_INVALID_PCK_CERT`), never a
/// signature problem.
fn check_name(
    c: &Cert,
    role: CertRole,
    phrase: &'static str,
    chain: Chain,
) -> Result<(), VerifyError> {
    if c.subject_cn.contains(phrase) {
        return Ok(());
    }
    Err(VerifyError::UntrustedRoot(ChainError::Name {
        chain,
        role,
        common_name: c.subject_cn.clone(),
        phrase,
    }))
}

fn check_issued(
    child: &Cert,
    issuer: &Cert,
    chain: Chain,
    memo: &mut SigMemo,
) -> Result<(), VerifyError> {
    if child.issuer_raw != issuer.subject_raw || !memo.signed_by(child, &issuer.public_key) {
        return Err(VerifyError::UntrustedRoot(ChainError::NotSignedBy {
            chain,
            subject: child.subject_cn.clone(),
            issuer: issuer.subject_cn.clone(),
        }));
    }
    Ok(())
}

/// Parses an issuer chain (signer, root) that must end at the anchor. Some PCS responses omit
/// the root from the PCK CRL issuer chain; then `known_root` (the root of another chain, already
/// checked against the anchor) stands in for it.
fn anchored_pair(
    pem: &str,
    anchor: &TrustAnchor,
    chain: Chain,
    signer_name: Option<(CertRole, &'static str)>,
    w: &mut Window,
    known_root: Option<&Cert>,
    memo: &mut SigMemo,
) -> Result<(Cert, Cert), VerifyError> {
    let mut certs = memo
        .parse_chain(pem.as_bytes())
        .map_err(|source| VerifyError::UntrustedRoot(ChainError::Unreadable { chain, source }))?;
    let (signer, root) = match (certs.len(), known_root) {
        (2, _) => {
            let root = certs.pop();
            (certs.pop(), root)
        }
        (1, Some(root)) => (certs.pop(), Some(root.clone())),
        (n, _) => {
            return Err(VerifyError::UntrustedRoot(ChainError::Length {
                chain,
                found: n,
                expected: "2 (signer, root)",
            }));
        }
    };
    let (Some(signer), Some(root)) = (signer, root) else {
        return Err(VerifyError::UntrustedRoot(ChainError::Empty { chain }));
    };
    check_root(&root, anchor, chain)?;
    check_name(&root, CertRole::Root, cn_phrase::ROOT_CA, chain)?;
    if let Some((role, phrase)) = signer_name {
        check_name(&signer, role, phrase, chain)?;
    }
    check_issued(&signer, &root, chain, memo)?;
    w.cert(chain, &root)?;
    w.cert(chain, &signer)?;
    Ok((signer, root))
}

/// Everything that depends only on the collateral, the anchor and the options.
#[derive(Debug)]
pub(crate) struct VerifiedCollateral {
    pub(crate) tcb_info: TcbInfo,
    pub(crate) qe_identity: QeIdentity,
    root_crl: Option<Crl>,
    /// The PCK CRL and the CA that issued it.
    pck_crl: Option<(Crl, Cert)>,
    pub(crate) window: Window,
    memo: SigMemo,
}

impl VerifiedCollateral {
    /// Whether both CRLs are present (and were checked).
    pub(crate) fn revocation_checked(&self) -> bool {
        self.root_crl.is_some() && self.pck_crl.is_some()
    }
}

pub(crate) fn verify_collateral(
    c: &Collateral,
    now: i64,
    anchor: &TrustAnchor,
    opts: &VerifyOptions,
) -> Result<VerifiedCollateral, VerifyError> {
    let doc = c.document();
    let mut w = Window::new(now);
    let mut memo = SigMemo::default();
    let missing: Vec<&str> = [
        ("root_ca_crl", c.root_ca_crl.is_empty()),
        ("pck_crl", c.pck_crl.is_empty()),
    ]
    .into_iter()
    .filter_map(|(n, m)| m.then_some(n))
    .collect();
    if !missing.is_empty() && !opts.allow_missing_crls {
        return Err(VerifyError::CrlMissing(CrlError::Absent { missing }));
    }

    // TCB info: chain to the anchor, signer not revoked, signature over the exact text, window.
    let (tcb_signer, root) = anchored_pair(
        &doc.tcb_info_issuer_chain,
        anchor,
        Chain::TcbInfoIssuer,
        None,
        &mut w,
        None,
        &mut memo,
    )?;

    let root_crl = if c.root_ca_crl.is_empty() {
        None
    } else {
        let crl = Crl::from_der(&c.root_ca_crl).map_err(|source| {
            VerifyError::CrlMissing(CrlError::Unreadable {
                item: CollateralItem::RootCaCrl,
                source,
            })
        })?;
        if crl.issuer_raw != root.subject_raw || !crl.signed_by(anchor.public_key()) {
            return Err(VerifyError::UntrustedRoot(ChainError::RootCrlNotSigned {
                anchor: anchor.label().to_string(),
            }));
        }
        w.crl(CollateralItem::RootCaCrl, &crl)?;
        Some(crl)
    };

    let tcb_info = verify_signed_json(
        &tcb_signer,
        root_crl.as_ref(),
        &doc.tcb_info,
        &c.tcb_info_signature,
        SignedItem::TcbInfo,
    )
    .and_then(|()| {
        TcbInfo::parse(&doc.tcb_info)
            .map_err(|e| VerifyError::TcbLevelNotFound(LevelNotFound::Unusable { source: e }))
    })?;
    w.item(
        CollateralItem::TcbInfo,
        tcb_info.issue_date,
        tcb_info.next_update,
    )?;

    let (qe_signer, _) = anchored_pair(
        &doc.qe_identity_issuer_chain,
        anchor,
        Chain::QeIdentityIssuer,
        None,
        &mut w,
        None,
        &mut memo,
    )?;
    let qe_identity = verify_signed_json(
        &qe_signer,
        root_crl.as_ref(),
        &doc.qe_identity,
        &c.qe_identity_signature,
        SignedItem::QeIdentity,
    )
    .and_then(|()| {
        QeIdentity::parse(&doc.qe_identity)
            .map_err(|e| VerifyError::QeIdentityMismatch(QeMismatch::Unusable { source: e }))
    })?;
    w.item(
        CollateralItem::QeIdentity,
        qe_identity.issue_date,
        qe_identity.next_update,
    )?;

    let pck_crl = if c.pck_crl.is_empty() {
        None
    } else {
        let (ca, _) = anchored_pair(
            &doc.pck_crl_issuer_chain,
            anchor,
            Chain::PckCrlIssuer,
            Some((CertRole::PckCrlIssuer, cn_phrase::INTERMEDIATE_CA)),
            &mut w,
            Some(&root),
            &mut memo,
        )?;
        if root_crl.as_ref().is_some_and(|r| r.revokes(&ca)) {
            return Err(VerifyError::PckRevoked(Revoked::PckCa {
                ca: ca.subject_cn.clone(),
            }));
        }
        let crl = Crl::from_der(&c.pck_crl).map_err(|source| {
            VerifyError::CrlMissing(CrlError::Unreadable {
                item: CollateralItem::PckCrl,
                source,
            })
        })?;
        if crl.issuer_raw != ca.subject_raw || !crl.signed_by(&ca.public_key) {
            return Err(VerifyError::UntrustedRoot(ChainError::PckCrlNotSigned {
                ca: ca.subject_cn.clone(),
            }));
        }
        w.crl(CollateralItem::PckCrl, &crl)?;
        Some((crl, ca))
    };

    Ok(VerifiedCollateral {
        tcb_info,
        qe_identity,
        root_crl,
        pck_crl,
        window: w,
        memo,
    })
}

fn verify_signed_json(
    signer: &Cert,
    root_crl: Option<&Crl>,
    text: &str,
    signature: &[u8],
    item: SignedItem,
) -> Result<(), VerifyError> {
    let fail = |e| match item {
        SignedItem::TcbInfo => VerifyError::TcbInfoSignatureInvalid(e),
        SignedItem::QeIdentity => VerifyError::QeIdentitySignatureInvalid(e),
    };
    let signer_cn = || signer.subject_cn.clone();
    if root_crl.is_some_and(|crl| crl.revokes(signer)) {
        return Err(fail(SignedItemError::SignerRevoked {
            item,
            signer: signer_cn(),
        }));
    }
    if signature.len() != 64 || !verify_fixed(&signer.public_key, text.as_bytes(), signature) {
        return Err(fail(SignedItemError::Signature {
            item,
            signer: signer_cn(),
        }));
    }
    // QVL checks the name before the signature; checked after it here, a wrong signer key
    // stays a signature failure (as the shared expected results say) and a valid signature
    // by a certificate that is not a TCB Signing certificate is a chain failure.
    let chain = match item {
        SignedItem::TcbInfo => Chain::TcbInfoIssuer,
        SignedItem::QeIdentity => Chain::QeIdentityIssuer,
    };
    check_name(signer, CertRole::TcbSigning, cn_phrase::TCB_SIGNING, chain)
}

/// What a verified PCK chain says about the platform.
#[derive(Debug)]
pub(crate) struct VerifiedPck {
    pub(crate) leaf_key: Vec<u8>,
    pub(crate) ext: PckExtension,
    pub(crate) window: Window,
}

/// The PCK chain's shape: leaf, CA, root; the root carries the anchor's key; QVL's name rules;
/// each certificate signed by the next.
fn check_pck_chain<'c>(
    certs: &'c [Cert],
    anchor: &TrustAnchor,
    memo: &mut SigMemo,
) -> Result<[&'c Cert; 3], VerifyError> {
    const CHAIN: Chain = Chain::PckCertificate;
    let [leaf, ca, root] = certs else {
        return Err(VerifyError::UntrustedRoot(ChainError::Length {
            chain: CHAIN,
            found: certs.len(),
            expected: "3 (PCK, CA, root)",
        }));
    };
    check_root(root, anchor, CHAIN)?;
    check_name(root, CertRole::Root, cn_phrase::ROOT_CA, CHAIN)?;
    check_name(ca, CertRole::PckCa, cn_phrase::INTERMEDIATE_CA, CHAIN)?;
    check_name(leaf, CertRole::Pck, cn_phrase::PCK, CHAIN)?;
    check_issued(ca, root, CHAIN, memo)?;
    check_issued(leaf, ca, CHAIN, memo)?;
    Ok([leaf, ca, root])
}

pub(crate) fn verify_pck_chain(
    pem: &[u8],
    coll: &VerifiedCollateral,
    now: i64,
    anchor: &TrustAnchor,
) -> Result<VerifiedPck, VerifyError> {
    const CHAIN: Chain = Chain::PckCertificate;
    let mut memo = coll.memo.clone();
    let certs = memo.parse_chain(pem).map_err(|source| {
        VerifyError::UnsupportedCertificationData(CertificationDataError::Unreadable {
            chain: CHAIN,
            source,
        })
    })?;
    let [leaf, ca, root] = check_pck_chain(&certs, anchor, &mut memo)?;
    let mut w = coll.window;
    w.now = now;
    for c in [root, ca, leaf] {
        w.cert(CHAIN, c)?;
    }
    if coll.root_crl.as_ref().is_some_and(|crl| crl.revokes(ca)) {
        return Err(VerifyError::PckRevoked(Revoked::PckCa {
            ca: ca.subject_cn.clone(),
        }));
    }
    if let Some((crl, crl_ca)) = &coll.pck_crl {
        if crl_ca.subject_raw != ca.subject_raw || crl_ca.public_key != ca.public_key {
            return Err(VerifyError::CrlMissing(CrlError::OtherCa {
                crl_issuer: crl_ca.subject_cn.clone(),
                pck_issuer: ca.subject_cn.clone(),
            }));
        }
        if crl.revokes(leaf) {
            return Err(VerifyError::PckRevoked(Revoked::Pck {
                serial: leaf.serial.clone(),
            }));
        }
    }
    let ext = leaf
        .sgx_extension
        .as_deref()
        .ok_or(crate::x509::X509Error::NoSgxExtension)
        .and_then(PckExtension::parse)
        .map_err(|source| VerifyError::UntrustedRoot(ChainError::PckUnusable { source }))?;
    Ok(VerifiedPck {
        leaf_key: leaf.public_key.clone(),
        ext,
        window: w,
    })
}

/// The PCK chain of a quote: from certification data type 5, or for types 1–4 from the
/// collateral's out-of-band `pck_certificate_chain`.
pub(crate) fn pck_chain_source<'a>(
    sig: &'a SignatureData,
    c: &'a Collateral,
) -> Result<&'a [u8], VerifyError> {
    let cd = &sig.certification_data;
    match cd.kind {
        cert_type::PCK_CERT_CHAIN => Ok(&cd.data),
        cert_type::PPID_CLEARTEXT
        | cert_type::PPID_RSA2048_ENCRYPTED
        | cert_type::PPID_RSA3072_ENCRYPTED
        | cert_type::PCK_CLEARTEXT => c
            .document()
            .pck_certificate_chain
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::as_bytes)
            .ok_or_else(|| {
                VerifyError::UnsupportedCertificationData(CertificationDataError::NoPckChain {
                    kind: cd.kind,
                })
            }),
        other => Err(VerifyError::UnsupportedCertificationData(
            CertificationDataError::Unsupported { kind: other },
        )),
    }
}

/// For certification data types 1–3: the platform identity in the quote must be the PCK's.
fn check_platform_identity(sig: &SignatureData, ext: &PckExtension) -> Result<(), VerifyError> {
    let cd = &sig.certification_data;
    let Some(info) = cd.ppid_platform_info() else {
        return Ok(());
    };
    let info = info.map_err(|e| {
        VerifyError::UnsupportedCertificationData(CertificationDataError::PlatformInfo {
            kind: cd.kind,
            source: e,
        })
    })?;
    if let Some(pce_id) = info.pce_id
        && pce_id != ext.pce_id
    {
        return Err(VerifyError::PceidMismatch(
            PceIdMismatch::CertificationData {
                quote: pce_id,
                pck: ext.pce_id,
            },
        ));
    }
    if cd.kind == cert_type::PPID_CLEARTEXT && info.ppid != ext.ppid {
        return Err(VerifyError::UnsupportedCertificationData(
            CertificationDataError::OtherPlatform,
        ));
    }
    Ok(())
}

/// Lets the cache skip the QE report signature when these exact QE report bytes and signature
/// were already verified with this PCK key.
pub(crate) type QeReportVerified<'a> = &'a dyn Fn(&[u8], &[u8; 64]) -> bool;
/// Records a fresh QE report verification.
pub(crate) type OnQeReportVerified<'a> = &'a dyn Fn(&[u8], &[u8; 64]);

/// The checks every DCAP quote gets, whatever its TEE, given verified collateral and PCK chain:
/// FMSPC and PCE-ID, the platform identity of certification data types 1-3, the QE report
/// signature, the attestation-key binding, the QE identity, and the quote signature over
/// `signed`. Returns the QE's TCB level.
pub(crate) fn verify_signed_quote<'c>(
    signed: &[u8],
    header: &QuoteHeader,
    sig: &SignatureData,
    coll: &'c VerifiedCollateral,
    pck: &VerifiedPck,
    qe_report_verified: QeReportVerified<'_>,
    on_qe_report_verified: OnQeReportVerified<'_>,
) -> Result<&'c crate::tcb::QeTcbLevel, VerifyError> {
    let tcb = &coll.tcb_info;
    let ext = &pck.ext;
    if ext.fmspc != tcb.fmspc {
        return Err(VerifyError::FmspcMismatch(FmspcDiffers {
            pck: ext.fmspc,
            tcb_info: tcb.fmspc,
        }));
    }
    if ext.pce_id != tcb.pce_id {
        return Err(VerifyError::PceidMismatch(PceIdMismatch::TcbInfo {
            pck: ext.pce_id,
            tcb_info: tcb.pce_id,
        }));
    }
    check_platform_identity(sig, ext)?;

    let qe_report = sig.qe_report.to_bytes();
    if !qe_report_verified(&qe_report, &sig.qe_report_signature) {
        if !verify_fixed(&pck.leaf_key, &qe_report, &sig.qe_report_signature) {
            return Err(VerifyError::QeReportSignatureInvalid(QeReportSignature));
        }
        on_qe_report_verified(&qe_report, &sig.qe_report_signature);
    }

    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&sig.attestation_key);
    ctx.update(&sig.qe_auth_data);
    let binding = ctx.finish();
    let (lo, hi) = sig.qe_report.report_data.0.split_at(32);
    if lo != binding.as_ref() || hi.iter().any(|&b| b != 0) {
        let mut expected = binding.as_ref().to_vec();
        expected.resize(64, 0);
        return Err(VerifyError::AttestationKeyBindingMismatch(KeyBinding {
            found: sig.qe_report.report_data.0.to_vec(),
            expected,
        }));
    }

    let qe_tcb = check_qe_identity(header, sig, &coll.qe_identity)?;

    let mut att_key = [0u8; 65];
    att_key[0] = 4;
    if let Some(dst) = att_key.get_mut(1..) {
        dst.copy_from_slice(&sig.attestation_key);
    }
    if !verify_fixed(&att_key, signed, &sig.quote_signature) {
        return Err(VerifyError::QuoteSignatureInvalid(QuoteSignature));
    }
    Ok(qe_tcb)
}

/// The per-quote checks of an SGX quote, given verified collateral and PCK chain.
pub(crate) fn verify_quote_with(
    raw: &[u8],
    q: &Quote,
    coll: &VerifiedCollateral,
    pck: &VerifiedPck,
    qe_report_verified: QeReportVerified<'_>,
    on_qe_report_verified: OnQeReportVerified<'_>,
) -> Result<VerifiedQuote, VerifyError> {
    if coll.tcb_info.tdx.is_some() {
        return Err(VerifyError::TcbLevelNotFound(LevelNotFound::WrongTee {
            tcb_info: "TDX (id \"TDX\")",
            needs: "this quote is SGX",
        }));
    }
    if coll.qe_identity.id != "QE" {
        return Err(VerifyError::QeIdentityMismatch(QeMismatch::Id {
            found: coll.qe_identity.id.clone(),
            needs: "an SGX quote needs the \"QE\" identity",
        }));
    }
    let signed = raw.get(..Quote::SIGNED_LEN).unwrap_or_default();
    let qe_tcb = verify_signed_quote(
        signed,
        &q.header,
        &q.signature,
        coll,
        pck,
        qe_report_verified,
        on_qe_report_verified,
    )?;
    let tcb = &coll.tcb_info;
    let ext = &pck.ext;

    let level = tcb
        .match_level(&ext.tcb_comp_svn, ext.pce_svn)
        .ok_or_else(|| {
            VerifyError::TcbLevelNotFound(LevelNotFound::Platform {
                tcb_info: "TCB info",
                tcb_components: ext.tcb_comp_svn,
                pce_svn: ext.pce_svn,
            })
        })?;
    let status = TcbStatus::merge_with_qe(level.status, qe_tcb.status);
    if status == TcbStatus::Revoked {
        let who = if level.status == TcbStatus::Revoked {
            "the platform's TCB level"
        } else {
            "the QE's TCB level"
        };
        return Err(VerifyError::TcbRevoked(RevokedLevel { who }));
    }
    let mut advisory_ids = level.advisory_ids.clone();
    for a in &qe_tcb.advisory_ids {
        if !advisory_ids.contains(a) {
            advisory_ids.push(a.clone());
        }
    }
    Ok(VerifiedQuote {
        header: q.header.clone(),
        report: q.report.clone(),
        tcb_status: status,
        platform_tcb_status: level.status,
        qe_tcb_status: qe_tcb.status,
        advisory_ids,
        fmspc: ext.fmspc,
        pce_id: ext.pce_id,
        sgx_type: ext.sgx_type,
        tcb_date: level.tcb_date.clone(),
        tcb_evaluation_data_number: tcb.tcb_evaluation_data_number,
        revocation_checked: coll.root_crl.is_some() && coll.pck_crl.is_some(),
        collateral_valid_from: pck.window.from,
        collateral_valid_until: pck.window.until,
    })
}

fn check_qe_identity<'a>(
    header: &QuoteHeader,
    sig: &SignatureData,
    id: &'a QeIdentity,
) -> Result<&'a crate::tcb::QeTcbLevel, VerifyError> {
    let r = &sig.qe_report;
    if header.qe_vendor_id != INTEL_QE_VENDOR_ID {
        return Err(VerifyError::QeIdentityMismatch(QeMismatch::VendorId {
            found: header.qe_vendor_id,
        }));
    }
    if r.mr_signer.0 != id.mrsigner {
        return Err(VerifyError::QeIdentityMismatch(QeMismatch::MrSigner {
            found: r.mr_signer.0,
            expected: id.mrsigner,
        }));
    }
    if r.isv_prod_id != id.isv_prod_id {
        return Err(VerifyError::QeIdentityMismatch(QeMismatch::IsvProdId {
            found: r.isv_prod_id,
            expected: id.isv_prod_id,
        }));
    }
    let masked = |field: &'static str, value: &[u8], expected: &[u8], mask: &[u8]| {
        if value
            .iter()
            .zip(mask)
            .map(|(v, m)| v & m)
            .eq(expected.iter().copied())
        {
            return Ok(());
        }
        Err(VerifyError::QeIdentityMismatch(QeMismatch::Masked {
            field,
            found: value.to_vec(),
            expected: expected.to_vec(),
            mask: mask.to_vec(),
        }))
    };
    masked(
        "MISCSELECT",
        &r.misc_select.to_le_bytes(),
        &id.miscselect,
        &id.miscselect_mask,
    )?;
    masked(
        "ATTRIBUTES",
        &r.attributes.to_bytes(),
        &id.attributes,
        &id.attributes_mask,
    )?;
    id.match_level(r.isv_svn)
        .ok_or_else(|| VerifyError::TcbLevelNotFound(LevelNotFound::Qe { isv_svn: r.isv_svn }))
}

impl Window {
    pub(crate) fn valid_at(&self, now: i64) -> bool {
        self.contains(now)
    }
}

/// Which collateral a quote needs: the FMSPC in its PCK certificate and the CA that issued it.
/// Read without verifying anything, to select collateral before verification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PckPlatform {
    /// FMSPC of the PCK certificate.
    pub fmspc: [u8; 6],
    /// PCE-ID of the PCK certificate.
    pub pce_id: [u8; 2],
    /// True when the PCK CA is the Platform CA (its CRL is `pckcrl?ca=platform`), false for the
    /// Processor CA.
    pub platform_ca: bool,
    /// True for a TDX quote: its TCB info and QE identity come from the TDX PCS API
    /// (`tdx/certification/v4/tcb`, `.../qe/identity`).
    pub tdx: bool,
}

/// Reads the platform identity of a quote with a type-5 PCK chain (see [`PckPlatform`]),
/// without checking any signature.
pub fn pck_platform(quote: &[u8]) -> Result<PckPlatform, VerifyError> {
    pck_platform_impl(quote, None)
}

/// Like [`pck_platform`], but first checks that the PCK chain is leaf, CA and root, linked by
/// signatures, with the root's key equal to the anchor's: a service can then look collateral up
/// only for platforms the anchor vouches for (a forged quote cannot make it fetch collateral for
/// arbitrary FMSPCs). Costs three ECDSA verifications; cache the result by chain bytes.
pub fn pck_platform_anchored(
    quote: &[u8],
    anchor: &TrustAnchor,
) -> Result<PckPlatform, VerifyError> {
    pck_platform_impl(quote, Some(anchor))
}

fn pck_platform_impl(
    quote: &[u8],
    anchor: Option<&TrustAnchor>,
) -> Result<PckPlatform, VerifyError> {
    let q = sgx_types::DcapQuote::parse(quote)?;
    let cd = match &q {
        sgx_types::DcapQuote::Tdx(t) => &t.signature.certification_data,
        sgx_types::DcapQuote::Sgx(s) => &s.signature.certification_data,
        _ => {
            return Err(VerifyError::UnsupportedQuoteVersion(
                UnsupportedQuote::UnknownTee,
            ));
        }
    };
    if cd.kind != cert_type::PCK_CERT_CHAIN {
        return Err(VerifyError::UnsupportedCertificationData(
            CertificationDataError::NotType5 { kind: cd.kind },
        ));
    }
    let certs = parse_pem_chain(&cd.data).map_err(|e| {
        VerifyError::UnsupportedCertificationData(CertificationDataError::Unreadable {
            chain: Chain::PckCertificate,
            source: e,
        })
    })?;
    let (Some(leaf), Some(ca)) = (certs.first(), certs.get(1)) else {
        return Err(VerifyError::UntrustedRoot(ChainError::Length {
            chain: Chain::PckCertificate,
            found: certs.len(),
            expected: "at least 2 (PCK, CA)",
        }));
    };
    if let Some(anchor) = anchor {
        check_pck_chain(&certs, anchor, &mut SigMemo::default())?;
    }
    let ext = leaf
        .sgx_extension
        .as_deref()
        .ok_or(crate::x509::X509Error::NoSgxExtension)
        .and_then(PckExtension::parse)
        .map_err(|source| VerifyError::UntrustedRoot(ChainError::PckUnusable { source }))?;
    Ok(PckPlatform {
        fmspc: ext.fmspc,
        pce_id: ext.pce_id,
        platform_ca: ca.subject_cn.contains("Platform"),
        tdx: matches!(q, sgx_types::DcapQuote::Tdx(_)),
    })
}
