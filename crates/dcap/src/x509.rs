//! The X.509 facts the verifier needs, extracted once into owned values: certificates, CRLs,
//! the PCK certificate's SGX extension, and signature checks with the workspace's crypto
//! backend (aws-lc-rs). Parsing is x509-parser's; no path-building library is used because DCAP
//! chains have a fixed shape and must be checked against DCAP's rules (§2.3 of the spec),
//! not web PKI rules.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use std::collections::HashSet;
use x509_parser::der_parser::ber::{BerObject, BerObjectContent};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// ecdsa-with-SHA256.
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// The error of a parsing library (x509-parser, der-parser), kept as the error object (its
/// type and its own sources), shared so that errors stay cheap to clone. Two causes are equal
/// when their messages are.
#[derive(Clone)]
pub struct ParseCause(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ParseCause {
    fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(e))
    }

    /// The library's error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl From<serde_json::Error> for ParseCause {
    fn from(e: serde_json::Error) -> Self {
        Self::new(e)
    }
}

impl std::fmt::Debug for ParseCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for ParseCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl PartialEq for ParseCause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ParseCause {}

impl std::error::Error for ParseCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Why a certificate, CRL, PEM chain or the PCK certificate's SGX extension could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    /// Not a DER certificate.
    #[error("not a DER X.509 certificate")]
    Certificate(#[source] ParseCause),
    /// Bytes after the certificate.
    #[error("trailing bytes after the certificate")]
    CertificateTrailing,
    /// The signed part is not inside the certificate's bytes.
    #[error("TBS outside the certificate")]
    TbsOutside,
    /// A PEM block that does not decode.
    #[error("invalid PEM")]
    Pem(#[source] ParseCause),
    /// Not a DER CRL.
    #[error("not a DER CRL")]
    Crl(#[source] ParseCause),
    /// Bytes after the CRL.
    #[error("trailing bytes after the CRL")]
    CrlTrailing,
    /// The leaf has no SGX extension (OID 1.2.840.113741.1.13.1).
    #[error("no SGX extension")]
    NoSgxExtension,
    /// The SGX extension is not DER.
    #[error("SGX extension is not DER")]
    ExtensionDer(#[source] ParseCause),
    /// Bytes after the SGX extension.
    #[error("SGX extension: trailing bytes")]
    ExtensionTrailing,
    /// A part of the SGX extension has the wrong ASN.1 type.
    #[error("SGX extension: {what} is not {expected}")]
    ExtensionType {
        /// The part (`entry`, `TCB`, `PPID`, …).
        what: &'static str,
        /// The type it must have (`a SEQUENCE`, `an OCTET STRING`, …).
        expected: &'static str,
    },
    /// An entry that is not an (OID, value) pair.
    #[error("SGX extension: entry is not an (OID, value) pair")]
    ExtensionEntry,
    /// A fixed-size value with the wrong size.
    #[error("SGX extension: {what} has {found} bytes, not {expected}")]
    ExtensionLength {
        /// The value.
        what: &'static str,
        /// Its size.
        found: usize,
        /// The size it must have.
        expected: usize,
    },
    /// An integer above its range.
    #[error("SGX extension: {what} = {value} exceeds {max}")]
    ExtensionRange {
        /// The value.
        what: &'static str,
        /// Found.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A required entry is absent.
    #[error("SGX extension: no {what}")]
    ExtensionMissing {
        /// The entry.
        what: &'static str,
    },
    /// A TCB component SVN is absent.
    #[error("SGX extension: no TCB component {index}")]
    ExtensionComponentMissing {
        /// 1 to 16.
        index: usize,
    },
}

/// A certificate, reduced to what DCAP verification uses.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub(crate) der: Vec<u8>,
    pub(crate) subject_raw: Vec<u8>,
    pub(crate) issuer_raw: Vec<u8>,
    pub(crate) subject_cn: String,
    pub(crate) serial: Vec<u8>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    /// SEC1 uncompressed P-256 point.
    pub(crate) public_key: Vec<u8>,
    tbs: std::ops::Range<usize>,
    signature: Vec<u8>,
    sig_alg: String,
    /// The raw value of the SGX extension, when present.
    pub(crate) sgx_extension: Option<Vec<u8>>,
}

fn subrange(outer: &[u8], inner: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len()).then_some(start..end)
}

impl Cert {
    pub(crate) fn from_der(der: Vec<u8>) -> Result<Self, X509Error> {
        let (rest, c) = X509Certificate::from_der(&der)
            .map_err(|e| X509Error::Certificate(ParseCause::new(e)))?;
        if !rest.is_empty() {
            return Err(X509Error::CertificateTrailing);
        }
        let tbs_bytes: &[u8] = c.tbs_certificate.as_ref();
        let tbs = subrange(&der, tbs_bytes).ok_or(X509Error::TbsOutside)?;
        let subject_cn = c
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        // OID 1.2.840.113741.1.13.1, DER content octets.
        const SGX_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01];
        let sgx_extension = c
            .extensions()
            .iter()
            .find(|e| e.oid.as_bytes() == SGX_OID)
            .map(|e| e.value.to_vec());
        let out = Self {
            subject_raw: c.subject().as_raw().to_vec(),
            issuer_raw: c.issuer().as_raw().to_vec(),
            subject_cn,
            serial: c.raw_serial().to_vec(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
            public_key: c.public_key().subject_public_key.data.to_vec(),
            signature: c.signature_value.data.to_vec(),
            sig_alg: c.signature_algorithm.algorithm.to_id_string(),
            sgx_extension,
            tbs,
            der: Vec::new(),
        };
        Ok(Self { der, ..out })
    }

    /// Whether `issuer_key` (SEC1 P-256) signed this certificate with ECDSA-SHA256.
    pub(crate) fn signed_by(&self, issuer_key: &[u8]) -> bool {
        self.sig_alg == OID_ECDSA_SHA256
            && self
                .der
                .get(self.tbs.clone())
                .is_some_and(|tbs| verify_asn1(issuer_key, tbs, &self.signature))
    }
}

/// Splits PEM text into certificates, in order. Text outside PEM blocks is ignored; anything
/// inside a CERTIFICATE block that is not a certificate is an error.
pub(crate) fn parse_pem_chain(text: &[u8]) -> Result<Vec<Cert>, X509Error> {
    parse_pem_chain_with(text, &mut Vec::new())
}

/// Like [`parse_pem_chain`], reusing certificates already parsed (`seen`, compared by DER) and
/// adding the new ones: the Intel root appears in four chains of one collateral document.
pub(crate) fn parse_pem_chain_with(
    text: &[u8],
    seen: &mut Vec<Cert>,
) -> Result<Vec<Cert>, X509Error> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text) {
        let pem = pem.map_err(|e| X509Error::Pem(ParseCause::new(e)))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        if let Some(c) = seen.iter().find(|c| c.der == pem.contents) {
            out.push(c.clone());
            continue;
        }
        let c = Cert::from_der(pem.contents)?;
        seen.push(c.clone());
        out.push(c);
    }
    Ok(out)
}

/// A CRL, reduced to what DCAP verification uses.
#[derive(Debug, Clone)]
pub(crate) struct Crl {
    pub(crate) issuer_raw: Vec<u8>,
    pub(crate) this_update: i64,
    pub(crate) next_update: Option<i64>,
    revoked: HashSet<Vec<u8>>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
    sig_alg: String,
}

impl Crl {
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, X509Error> {
        let (rest, c) = CertificateRevocationList::from_der(der)
            .map_err(|e| X509Error::Crl(ParseCause::new(e)))?;
        if !rest.is_empty() {
            return Err(X509Error::CrlTrailing);
        }
        let tbs: &[u8] = c.tbs_cert_list.as_ref();
        Ok(Self {
            issuer_raw: c.issuer().as_raw().to_vec(),
            this_update: c.last_update().timestamp(),
            next_update: c.next_update().map(|t| t.timestamp()),
            revoked: c
                .iter_revoked_certificates()
                .map(|r| normalize_serial(r.raw_serial()).to_vec())
                .collect(),
            tbs: tbs.to_vec(),
            signature: c.signature_value.data.to_vec(),
            sig_alg: c.signature_algorithm.algorithm.to_id_string(),
        })
    }

    pub(crate) fn signed_by(&self, issuer_key: &[u8]) -> bool {
        self.sig_alg == OID_ECDSA_SHA256 && verify_asn1(issuer_key, &self.tbs, &self.signature)
    }

    pub(crate) fn revokes(&self, cert: &Cert) -> bool {
        self.revoked.contains(normalize_serial(&cert.serial))
    }
}

/// Serials compare as integers: drop DER's leading zero octets.
fn normalize_serial(s: &[u8]) -> &[u8] {
    let nz = s.iter().position(|&b| b != 0).unwrap_or(s.len());
    s.get(nz..).unwrap_or_default()
}

fn verify_asn1(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, key)
        .verify(msg, sig)
        .is_ok()
}

/// Verifies a raw r‖s ECDSA P-256 SHA-256 signature with a SEC1 public key.
pub(crate) fn verify_fixed(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key)
        .verify(msg, sig)
        .is_ok()
}

/// The SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PckExtension {
    /// PPID (16 bytes).
    pub ppid: Vec<u8>,
    /// SGX TCB component SVNs 1..16.
    pub tcb_comp_svn: [u8; 16],
    /// PCE SVN.
    pub pce_svn: u16,
    /// Raw CPUSVN.
    pub cpu_svn: [u8; 16],
    /// PCE-ID (2 bytes).
    pub pce_id: [u8; 2],
    /// FMSPC (6 bytes).
    pub fmspc: [u8; 6],
    /// SGX type: 0 Standard, 1 Scalable, 2 Scalable with integrity.
    pub sgx_type: u8,
}

fn ber_seq<'a, 'b>(
    o: &'b BerObject<'a>,
    what: &'static str,
) -> Result<&'b [BerObject<'a>], X509Error> {
    match &o.content {
        BerObjectContent::Sequence(items) => Ok(items),
        _ => Err(X509Error::ExtensionType {
            what,
            expected: "a SEQUENCE",
        }),
    }
}

fn ber_oid_pair<'a, 'b>(o: &'b BerObject<'a>) -> Result<(String, &'b BerObject<'a>), X509Error> {
    match ber_seq(o, "entry")? {
        [oid, value] => {
            let oid = oid.as_oid().map_err(|_| X509Error::ExtensionType {
                what: "entry",
                expected: "an (OID, value) pair with an OID",
            })?;
            Ok((oid.to_id_string(), value))
        }
        _ => Err(X509Error::ExtensionEntry),
    }
}

fn ber_bytes<const N: usize>(o: &BerObject<'_>, what: &'static str) -> Result<[u8; N], X509Error> {
    let b = o.as_slice().map_err(|_| X509Error::ExtensionType {
        what,
        expected: "an OCTET STRING",
    })?;
    b.try_into().map_err(|_| X509Error::ExtensionLength {
        what,
        found: b.len(),
        expected: N,
    })
}

fn ber_uint(o: &BerObject<'_>, what: &'static str, max: u64) -> Result<u64, X509Error> {
    let v = match &o.content {
        BerObjectContent::Integer(_) => o.as_u64(),
        BerObjectContent::Enum(v) => Ok(*v),
        _ => {
            return Err(X509Error::ExtensionType {
                what,
                expected: "an INTEGER",
            });
        }
    }
    .map_err(|_| X509Error::ExtensionType {
        what,
        expected: "a small unsigned integer",
    })?;
    if v > max {
        return Err(X509Error::ExtensionRange {
            what,
            value: v,
            max,
        });
    }
    Ok(v)
}

impl PckExtension {
    /// Parses the DER value of the SGX extension.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, X509Error> {
        let (rest, top) = x509_parser::der_parser::parse_der(der)
            .map_err(|e| X509Error::ExtensionDer(ParseCause::new(e)))?;
        if !rest.is_empty() {
            return Err(X509Error::ExtensionTrailing);
        }
        let mut ppid = None;
        let mut tcb = None;
        let mut pce_id = None;
        let mut fmspc = None;
        let mut sgx_type = None;
        for item in ber_seq(&top, "extension")? {
            let (oid, value) = ber_oid_pair(item)?;
            match oid.strip_prefix("1.2.840.113741.1.13.1.") {
                Some("1") => ppid = Some(ber_bytes::<16>(value, "PPID")?.to_vec()),
                Some("2") => tcb = Some(Self::parse_tcb(value)?),
                Some("3") => pce_id = Some(ber_bytes::<2>(value, "PCE-ID")?),
                Some("4") => fmspc = Some(ber_bytes::<6>(value, "FMSPC")?),
                Some("5") => sgx_type = Some(ber_uint(value, "SGX type", 2)? as u8),
                _ => {} // PlatformInstanceID, Configuration, future entries
            }
        }
        let missing = |what| X509Error::ExtensionMissing { what };
        let (tcb_comp_svn, pce_svn, cpu_svn) = tcb.ok_or_else(|| missing("TCB entry"))?;
        Ok(Self {
            ppid: ppid.ok_or_else(|| missing("PPID"))?,
            tcb_comp_svn,
            pce_svn,
            cpu_svn,
            pce_id: pce_id.ok_or_else(|| missing("PCE-ID"))?,
            fmspc: fmspc.ok_or_else(|| missing("FMSPC"))?,
            sgx_type: sgx_type.unwrap_or(0),
        })
    }

    fn parse_tcb(value: &BerObject<'_>) -> Result<([u8; 16], u16, [u8; 16]), X509Error> {
        let mut comps: [Option<u8>; 16] = [None; 16];
        let mut pce_svn = None;
        let mut cpu_svn = None;
        for item in ber_seq(value, "TCB")? {
            let (oid, v) = ber_oid_pair(item)?;
            let Some(idx) = oid
                .strip_prefix("1.2.840.113741.1.13.1.2.")
                .and_then(|s| s.parse::<usize>().ok())
            else {
                continue;
            };
            match idx {
                1..=16 => {
                    if let Some(slot) = comps.get_mut(idx - 1) {
                        *slot = Some(ber_uint(v, "TCB component SVN", 255)? as u8);
                    }
                }
                17 => pce_svn = Some(ber_uint(v, "PCESVN", 65535)? as u16),
                18 => cpu_svn = Some(ber_bytes::<16>(v, "CPUSVN")?),
                _ => {}
            }
        }
        let mut out = [0u8; 16];
        for (i, (slot, c)) in out.iter_mut().zip(comps).enumerate() {
            *slot = c.ok_or(X509Error::ExtensionComponentMissing { index: i + 1 })?;
        }
        Ok((
            out,
            pce_svn.ok_or(X509Error::ExtensionMissing { what: "PCESVN" })?,
            cpu_svn.ok_or(X509Error::ExtensionMissing { what: "CPUSVN" })?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_as_integers() {
        assert_eq!(normalize_serial(&[0, 0, 1, 2]), &[1, 2]);
        assert_eq!(normalize_serial(&[0]), &[] as &[u8]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Cert::from_der(vec![0x30, 0x03, 1, 2]).is_err());
        assert!(Crl::from_der(&[0x30]).is_err());
        assert!(PckExtension::parse(&[0x04, 0x01, 0x00]).is_err());
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_pem_chain(pem).is_err());
        assert_eq!(parse_pem_chain(b"no pem here").map(|v| v.len()), Ok(0));
    }
}
