//! Intel SGX DCAP ECDSA quotes, versions 3 and 4 (SGX body), parsed strictly and re-encoded
//! byte for byte.
//!
//! Layouts follow `sgx_quote_3.h` / `sgx_quote_4.h` of Intel's DCAP (see
//! `spec/dcap-attestation.md` §1). A v4 quote carries its QE report inside certification data of
//! type 6, with the PCK chain nested inside. Short input, inconsistent lengths and trailing bytes
//! are all errors: a quote is exactly what its length fields say.

use crate::ParseError;
use crate::reader::{Reader, Writer};
use crate::report::ReportBody;

/// Intel's QE vendor ID (`939A7233F79C4CA9940A0DB3957F0607`).
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];

/// Attestation key type 2: ECDSA-256 with P-256.
pub const ATT_KEY_TYPE_ECDSA_P256: u16 = 2;
/// TEE type of an SGX quote (v4 header).
pub const TEE_TYPE_SGX: u32 = 0;
/// TEE type of a TDX quote (v4 header).
pub const TEE_TYPE_TDX: u32 = 0x81;

/// Certification data types (`sgx_ql_cert_key_type_t`).
pub mod cert_type {
    /// PPID in clear + CPUSVN + PCESVN + PCEID.
    pub const PPID_CLEARTEXT: u16 = 1;
    /// PPID encrypted with RSA-2048-OAEP + CPUSVN + PCESVN + PCEID.
    pub const PPID_RSA2048_ENCRYPTED: u16 = 2;
    /// PPID encrypted with RSA-3072-OAEP + CPUSVN + PCESVN + PCEID.
    pub const PPID_RSA3072_ENCRYPTED: u16 = 3;
    /// The PCK leaf certificate.
    pub const PCK_CLEARTEXT: u16 = 4;
    /// The PCK certificate chain, PEM: leaf, Processor/Platform CA, root.
    pub const PCK_CERT_CHAIN: u16 = 5;
    /// QE report certification data (the outer type of v4 quotes).
    pub const QE_REPORT_CERTIFICATION_DATA: u16 = 6;
    /// Platform manifest.
    pub const PLATFORM_MANIFEST: u16 = 7;
}

/// The 48-byte quote header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteHeader {
    /// 3 or 4.
    pub version: u16,
    /// Attestation key type; 2 (ECDSA P-256) is the only one supported.
    pub att_key_type: u16,
    /// v4: the TEE type (0 = SGX). v3: `att_key_data_0`, reserved.
    pub tee_type: u32,
    /// QE SVN (reserved in the v4 C header, but Intel's QVL still reads it).
    pub qe_svn: u16,
    /// PCE SVN (same remark as `qe_svn`).
    pub pce_svn: u16,
    /// QE vendor ID; Intel's is [`INTEL_QE_VENDOR_ID`].
    pub qe_vendor_id: [u8; 16],
    /// User data (the first 16 bytes are the QE ID in Intel's QE).
    pub user_data: [u8; 20],
}

impl QuoteHeader {
    /// Encoded length.
    pub const LEN: usize = 48;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        Ok(Self {
            version: r.u16("header.version")?,
            att_key_type: r.u16("header.att_key_type")?,
            tee_type: r.u32("header.tee_type")?,
            qe_svn: r.u16("header.qe_svn")?,
            pce_svn: r.u16("header.pce_svn")?,
            qe_vendor_id: r.array("header.qe_vendor_id")?,
            user_data: r.array("header.user_data")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u16(self.version)
            .u16(self.att_key_type)
            .u32(self.tee_type)
            .u16(self.qe_svn)
            .u16(self.pce_svn)
            .bytes(&self.qe_vendor_id)
            .bytes(&self.user_data);
    }
}

/// Certification data: a type and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificationData {
    /// The type (see [`cert_type`]).
    pub kind: u16,
    /// The data, as declared by the size field.
    pub data: Vec<u8>,
}

/// The platform identity carried by certification data types 1–3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PpidPlatformInfo {
    /// The PPID, in clear (type 1) or encrypted (types 2, 3).
    pub ppid: Vec<u8>,
    /// The raw CPUSVN of the platform.
    pub cpu_svn: [u8; 16],
    /// The PCE SVN.
    pub pce_svn: u16,
    /// The PCE ID. Intel's QVL sample quote (`intel-qvl-synthetic`) ends after the PCE SVN, so
    /// an absent PCE ID is accepted and reported as `None`.
    pub pce_id: Option<[u8; 2]>,
}

impl CertificationData {
    /// The PEM text of the PCK chain, for type 5.
    pub fn pck_chain_pem(&self) -> Option<&[u8]> {
        (self.kind == cert_type::PCK_CERT_CHAIN).then_some(self.data.as_slice())
    }

    /// The PPID, CPUSVN, PCESVN and PCEID of types 1, 2 and 3 (`None` for other types).
    pub fn ppid_platform_info(&self) -> Option<Result<PpidPlatformInfo, ParseError>> {
        let ppid_len = match self.kind {
            cert_type::PPID_CLEARTEXT => 16,
            cert_type::PPID_RSA2048_ENCRYPTED => 256,
            cert_type::PPID_RSA3072_ENCRYPTED => 384,
            _ => return None,
        };
        let mut r = Reader::new(&self.data);
        Some((|| {
            let info = PpidPlatformInfo {
                ppid: r.take(ppid_len, "certification_data.ppid")?.to_vec(),
                cpu_svn: r.array("certification_data.cpu_svn")?,
                pce_svn: r.u16("certification_data.pce_svn")?,
                pce_id: match r.remaining() {
                    0 => None,
                    _ => Some(r.array("certification_data.pce_id")?),
                },
            };
            r.clone().finish()?;
            Ok(info)
        })())
    }

    fn read(r: &mut Reader<'_>, prefix: &'static str) -> Result<Self, ParseError> {
        let kind = r.u16(prefix)?;
        let size = r.u32(prefix)?;
        let data = r.take(size as usize, prefix)?.to_vec();
        Ok(Self { kind, data })
    }

    fn write(&self, w: &mut Writer) {
        w.u16(self.kind)
            .u32(len_u32(self.data.len()))
            .bytes(&self.data);
    }
}

/// The ECDSA signature data of a quote: the QE's endorsement of the attestation key and the
/// attestation key's signature over the quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureData {
    /// ECDSA P-256 signature (r‖s) over header ‖ body, by the attestation key.
    pub quote_signature: [u8; 64],
    /// The attestation public key, raw x‖y.
    pub attestation_key: [u8; 64],
    /// The Quoting Enclave's report.
    pub qe_report: ReportBody,
    /// ECDSA P-256 signature (r‖s) over the QE report, by the PCK key.
    pub qe_report_signature: [u8; 64],
    /// QE authentication data, hashed with the attestation key into the QE report data.
    pub qe_auth_data: Vec<u8>,
    /// Certification data: the PCK chain (type 5) or platform identity (types 1–3).
    pub certification_data: CertificationData,
}

impl SignatureData {
    fn read_qe_block(
        r: &mut Reader<'_>,
        quote_signature: [u8; 64],
        attestation_key: [u8; 64],
    ) -> Result<Self, ParseError> {
        let qe_report = ReportBody::read(r)?;
        let qe_report_signature = r.array("qe_report_signature")?;
        let auth_len = r.u16("qe_auth_data.size")?;
        let qe_auth_data = r.take(usize::from(auth_len), "qe_auth_data")?.to_vec();
        let certification_data = CertificationData::read(r, "certification_data")?;
        Ok(Self {
            quote_signature,
            attestation_key,
            qe_report,
            qe_report_signature,
            qe_auth_data,
            certification_data,
        })
    }

    fn write_qe_block(&self, w: &mut Writer) {
        self.qe_report.write(w);
        w.bytes(&self.qe_report_signature)
            .u16(len_u16(self.qe_auth_data.len()))
            .bytes(&self.qe_auth_data);
        self.certification_data.write(w);
    }
}

/// A parsed SGX DCAP quote (v3, or v4 with an SGX body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The header.
    pub header: QuoteHeader,
    /// The application enclave's report body.
    pub report: ReportBody,
    /// The signature data.
    pub signature: SignatureData,
}

impl Quote {
    /// Offset of `signature_data_len`: the quote signature covers `bytes[..SIGNED_LEN]`.
    pub const SIGNED_LEN: usize = QuoteHeader::LEN + ReportBody::LEN;

    /// Parses a whole SGX quote; the input must be exactly one quote.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let header = QuoteHeader::read(&mut r)?;
        match header.version {
            3 | 4 => {}
            v => return Err(ParseError::UnsupportedVersion(v)),
        }
        if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256 {
            return Err(ParseError::UnsupportedAttestationKeyType(
                header.att_key_type,
            ));
        }
        if header.version == 4 && header.tee_type != TEE_TYPE_SGX {
            return Err(ParseError::UnsupportedTeeType(header.tee_type));
        }
        let report = ReportBody::read(&mut r)?;
        let sig_len = r.u32("signature_data_len")?;
        let mut s = r.sub(sig_len as usize, "signature_data")?;
        r.finish()?;
        let signature = if header.version == 3 {
            let quote_signature = s.array("quote_signature")?;
            let attestation_key = s.array("attestation_key")?;
            SignatureData::read_qe_block(&mut s, quote_signature, attestation_key)?
        } else {
            read_v4_signature(&mut s)?
        };
        s.finish()?;
        Ok(Self {
            header,
            report,
            signature,
        })
    }

    /// Encodes the quote; `Quote::parse(b)?.to_bytes() == b` for every valid quote.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sig = if self.header.version == 3 {
            let mut sig =
                Writer::with_capacity(1024 + self.signature.certification_data.data.len());
            sig.bytes(&self.signature.quote_signature)
                .bytes(&self.signature.attestation_key);
            self.signature.write_qe_block(&mut sig);
            sig.into_vec()
        } else {
            write_v4_signature(&self.signature)
        };
        let mut w = Writer::with_capacity(Self::SIGNED_LEN + 4 + sig.len());
        self.header.write(&mut w);
        self.report.write(&mut w);
        w.u32(len_u32(sig.len())).bytes(&sig);
        w.into_vec()
    }

    /// The bytes the quote signature covers: header ‖ report body.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::SIGNED_LEN);
        self.header.write(&mut w);
        self.report.write(&mut w);
        w.into_vec()
    }
}

/// Reads v4/v5 signature data: signature, attestation key, then certification data of type 6
/// holding the QE report block (shared by SGX v4 and TDX quotes).
pub(crate) fn read_v4_signature(s: &mut Reader<'_>) -> Result<SignatureData, ParseError> {
    let quote_signature = s.array("quote_signature")?;
    let attestation_key = s.array("attestation_key")?;
    let kind = s.u16("certification_data.type")?;
    if kind != cert_type::QE_REPORT_CERTIFICATION_DATA {
        return Err(ParseError::UnexpectedCertificationDataType {
            expected: cert_type::QE_REPORT_CERTIFICATION_DATA,
            found: kind,
        });
    }
    let size = s.u32("certification_data.size")?;
    let mut inner = s.sub(size as usize, "certification_data")?;
    let sig = SignatureData::read_qe_block(&mut inner, quote_signature, attestation_key)?;
    inner.finish()?;
    Ok(sig)
}

/// The encoder twin of [`read_v4_signature`].
pub(crate) fn write_v4_signature(sig: &SignatureData) -> Vec<u8> {
    let mut inner = Writer::with_capacity(1024 + sig.certification_data.data.len());
    sig.write_qe_block(&mut inner);
    let mut w = Writer::with_capacity(134 + inner.len());
    w.bytes(&sig.quote_signature)
        .bytes(&sig.attestation_key)
        .u16(cert_type::QE_REPORT_CERTIFICATION_DATA)
        .u32(len_u32(inner.len()))
        .bytes(&inner.into_vec());
    w.into_vec()
}

/// A length that must fit the 32-bit size fields; the encoders are only given data that came
/// from a parse or from builders with small inputs, so saturating is unreachable in practice and
/// keeps the encoder total.
pub(crate) fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn len_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(version: u16) -> Quote {
        Quote {
            header: QuoteHeader {
                version,
                att_key_type: 2,
                tee_type: 0,
                qe_svn: 8,
                pce_svn: 13,
                qe_vendor_id: INTEL_QE_VENDOR_ID,
                user_data: [7; 20],
            },
            report: ReportBody::zeroed(),
            signature: SignatureData {
                quote_signature: [1; 64],
                attestation_key: [2; 64],
                qe_report: ReportBody::zeroed(),
                qe_report_signature: [3; 64],
                qe_auth_data: vec![4; 32],
                certification_data: CertificationData {
                    kind: 5,
                    data: b"-----BEGIN CERTIFICATE-----".to_vec(),
                },
            },
        }
    }

    #[test]
    fn v3_and_v4_round_trip() {
        for v in [3, 4] {
            let q = sample(v);
            let b = q.to_bytes();
            assert_eq!(Quote::parse(&b).unwrap(), q);
            assert_eq!(&b[..Quote::SIGNED_LEN], q.signed_bytes().as_slice());
        }
    }

    #[test]
    fn v3_layout_offsets() {
        let b = sample(3).to_bytes();
        // signature_data_len at 432, signature data at 436, QE auth size at 436 + 576.
        let sig_len = u32::from_le_bytes(b[432..436].try_into().unwrap()) as usize;
        assert_eq!(sig_len, b.len() - 436);
        assert_eq!(u16::from_le_bytes([b[436 + 576], b[436 + 577]]), 32);
        assert_eq!(u16::from_le_bytes([b[436 + 610], b[436 + 611]]), 5);
    }

    #[test]
    fn v4_outer_type_must_be_6() {
        let mut b = sample(4).to_bytes();
        b[436 + 128] = 5;
        assert_eq!(
            Quote::parse(&b),
            Err(ParseError::UnexpectedCertificationDataType {
                expected: 6,
                found: 5
            })
        );
    }

    #[test]
    fn header_rejections() {
        let mut b = sample(3).to_bytes();
        b[0] = 5;
        assert_eq!(Quote::parse(&b), Err(ParseError::UnsupportedVersion(5)));
        let mut b = sample(3).to_bytes();
        b[2] = 3;
        assert_eq!(
            Quote::parse(&b),
            Err(ParseError::UnsupportedAttestationKeyType(3))
        );
        let mut b = sample(4).to_bytes();
        b[4] = 0x81;
        assert_eq!(Quote::parse(&b), Err(ParseError::UnsupportedTeeType(0x81)));
    }

    #[test]
    fn trailing_and_truncated() {
        let mut b = sample(3).to_bytes();
        let n = b.len();
        b.push(0);
        assert_eq!(
            Quote::parse(&b),
            Err(ParseError::TrailingBytes {
                offset: n,
                count: 1
            })
        );
        b.truncate(n - 1);
        assert!(matches!(
            Quote::parse(&b),
            Err(ParseError::Truncated {
                field: "signature_data",
                offset: 436,
                ..
            })
        ));
    }

    #[test]
    fn inner_size_inconsistency_is_detected() {
        // Grow the certification data size by one without adding bytes: the declared size now
        // runs past the signature data.
        let mut b = sample(3).to_bytes();
        let off = 436 + 612;
        let size = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) + 1;
        b[off..off + 4].copy_from_slice(&size.to_le_bytes());
        assert!(matches!(
            Quote::parse(&b),
            Err(ParseError::Truncated {
                field: "certification_data",
                ..
            })
        ));
    }

    #[test]
    fn ppid_platform_info_type3() {
        let mut data = vec![9u8; 384];
        data.extend_from_slice(&[1; 16]);
        data.extend_from_slice(&12u16.to_le_bytes());
        data.extend_from_slice(&[0, 0]);
        let cd = CertificationData { kind: 3, data };
        let info = cd.ppid_platform_info().unwrap().unwrap();
        assert_eq!(
            (info.pce_svn, info.pce_id, info.cpu_svn),
            (12, Some([0, 0]), [1; 16])
        );
        let bad = CertificationData {
            kind: 3,
            data: vec![0; 10],
        };
        assert!(matches!(
            bad.ppid_platform_info(),
            Some(Err(ParseError::Truncated { .. }))
        ));
        assert_eq!(
            sample(3).signature.certification_data.ppid_platform_info(),
            None
        );
    }
}
