//! Intel TDX quotes: v4 with a TD report 1.0, v5 with a TD report 1.0, 1.5 or 1.5 "ex" body,
//! parsed strictly and re-encoded byte for byte.
//!
//! Layouts follow Intel DCAP `sgx_quote_4.h` / `sgx_quote_5.h` (`sgx_report2_body_t`,
//! `sgx_report2_body_v1_5_t`; `spec/dcap-attestation.md` §1.2). The signature data is the v4
//! layout shared with SGX v4 quotes (certification data type 6 wrapping the QE report and the
//! nested PCK chain).
//!
//! **Trailing bytes.** Real TDX quote files carry zero padding after the signature data (the
//! dcap-qvl sample has 70 bytes): trailing bytes are accepted only when every one is zero, and
//! their count is kept in [`TdxQuote::trailing_zero_bytes`]; a non-zero trailing byte is
//! [`ParseError::NonZeroTrailingBytes`]. The encoder writes the padding back, so
//! `TdxQuote::parse(b)?.to_bytes() == b`.

use crate::ParseError;
use crate::quote::{
    ATT_KEY_TYPE_ECDSA_P256, QuoteHeader, SignatureData, TEE_TYPE_TDX, len_u32, read_v4_signature,
    write_v4_signature,
};
use crate::reader::{Reader, Writer};
use crate::report::ReportData;
use std::fmt;

macro_rules! measurement {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; 48]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = 48;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 48] {
                &self.0
            }

            /// Lowercase hex of the raw bytes.
            pub fn to_hex(&self) -> String {
                crate::to_hex(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

measurement!(
    /// A SHA-384 measurement register of a TD report (MRTD, RTMRn, MRSEAM, MRCONFIGID, ...).
    Measurement
);

/// TD attributes (`TDATTRIBUTES`, 8 bytes, little-endian bit field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TdAttributes(pub u64);

impl TdAttributes {
    /// DEBUG: the TD runs in debug mode; its state is visible to the host.
    pub const DEBUG: u64 = 1 << 0;
    /// SEPT_VE_DISABLE: EPT violations are not turned into #VE for the TD.
    pub const SEPT_VE_DISABLE: u64 = 1 << 28;
    /// PKS: protection keys for supervisor pages.
    pub const PKS: u64 = 1 << 30;
    /// KL: key locker.
    pub const KL: u64 = 1 << 31;
    /// PERFMON: the TD may use the performance monitoring unit.
    pub const PERFMON: u64 = 1 << 63;

    /// Whether the DEBUG bit is set.
    pub fn debug(&self) -> bool {
        self.0 & Self::DEBUG != 0
    }

    /// The 8 bytes in report order.
    pub fn to_bytes(&self) -> [u8; 8] {
        self.0.to_le_bytes()
    }
}

/// The TD report 1.0 body (`sgx_report2_body_t`, 584 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdReport10 {
    /// TEE_TCB_SVN: [0] TDX module ISVSVN, [1] TDX module version (major), [2] late microcode...
    pub tee_tcb_svn: [u8; 16],
    /// MRSEAM: measurement of the TDX module.
    pub mr_seam: Measurement,
    /// MRSIGNER_SEAM: signer of the TDX module (zero for Intel's).
    pub mr_signer_seam: Measurement,
    /// SEAM_ATTRIBUTES (zero for production TDX modules).
    pub seam_attributes: [u8; 8],
    /// TD_ATTRIBUTES.
    pub td_attributes: TdAttributes,
    /// XFAM: the TD's extended feature mask.
    pub xfam: u64,
    /// MRTD: the initial measurement of the TD.
    pub mr_td: Measurement,
    /// MRCONFIGID: software-defined configuration ID.
    pub mr_config_id: Measurement,
    /// MROWNER: software-defined owner ID.
    pub mr_owner: Measurement,
    /// MROWNERCONFIG: software-defined owner configuration.
    pub mr_owner_config: Measurement,
    /// RTMR0..3: runtime measurement registers.
    pub rt_mr: [Measurement; 4],
    /// Report data chosen by the TD.
    pub report_data: ReportData,
}

impl TdReport10 {
    /// Encoded length.
    pub const LEN: usize = 584;

    fn read(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        Ok(Self {
            tee_tcb_svn: r.array("td_report.tee_tcb_svn")?,
            mr_seam: Measurement(r.array("td_report.mr_seam")?),
            mr_signer_seam: Measurement(r.array("td_report.mr_signer_seam")?),
            seam_attributes: r.array("td_report.seam_attributes")?,
            td_attributes: TdAttributes(r.u64("td_report.td_attributes")?),
            xfam: r.u64("td_report.xfam")?,
            mr_td: Measurement(r.array("td_report.mr_td")?),
            mr_config_id: Measurement(r.array("td_report.mr_config_id")?),
            mr_owner: Measurement(r.array("td_report.mr_owner")?),
            mr_owner_config: Measurement(r.array("td_report.mr_owner_config")?),
            rt_mr: [
                Measurement(r.array("td_report.rt_mr0")?),
                Measurement(r.array("td_report.rt_mr1")?),
                Measurement(r.array("td_report.rt_mr2")?),
                Measurement(r.array("td_report.rt_mr3")?),
            ],
            report_data: ReportData(r.array("td_report.report_data")?),
        })
    }

    fn write(&self, w: &mut Writer) {
        w.bytes(&self.tee_tcb_svn)
            .bytes(&self.mr_seam.0)
            .bytes(&self.mr_signer_seam.0)
            .bytes(&self.seam_attributes)
            .u64(self.td_attributes.0)
            .u64(self.xfam)
            .bytes(&self.mr_td.0)
            .bytes(&self.mr_config_id.0)
            .bytes(&self.mr_owner.0)
            .bytes(&self.mr_owner_config.0);
        for m in &self.rt_mr {
            w.bytes(&m.0);
        }
        w.bytes(&self.report_data.0);
    }

    /// A report with every field zero: a starting point for builders and tests.
    pub fn zeroed() -> Self {
        let z = Measurement([0; 48]);
        Self {
            tee_tcb_svn: [0; 16],
            mr_seam: z,
            mr_signer_seam: z,
            seam_attributes: [0; 8],
            td_attributes: TdAttributes(0),
            xfam: 0,
            mr_td: z,
            mr_config_id: z,
            mr_owner: z,
            mr_owner_config: z,
            rt_mr: [z; 4],
            report_data: ReportData([0; 64]),
        }
    }
}

/// The fields TD report 1.5 (`sgx_report2_body_v1_5_t`, 648 bytes) appends to 1.0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdReport15Fields {
    /// TEE_TCB_SVN2: the TCB SVN of the TDX module after a TD-preserving update.
    pub tee_tcb_svn2: [u8; 16],
    /// MRSERVICETD: the measurement of the service TDs bound to this TD.
    pub mr_service_td: Measurement,
}

/// Length of the body-type-4 extension after the TD report 1.5 fields.
pub const TD15_EX_EXTENSION_LEN: usize = 237;

/// A TD body: what the TD is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TdBody {
    /// TD report 1.0 (v4, or v5 body type 2).
    Td10(TdReport10),
    /// TD report 1.5 (v5 body type 3).
    Td15(TdReport10, TdReport15Fields),
    /// TD report 1.5 "ex" (v5 body type 4, 885 bytes, parsed by dcap-qvl 0.7.1): the 1.5
    /// report, then 237 more bytes (VMID at their offset 0, TD_ID at 1..33). They are covered by
    /// the quote signature and kept verbatim; no verification rule reads them.
    Td15Ex(
        TdReport10,
        TdReport15Fields,
        Box<[u8; TD15_EX_EXTENSION_LEN]>,
    ),
}

/// v5 body types (`sgx_quote5_t.type`).
pub mod body_type {
    /// SGX enclave report.
    pub const SGX_ENCLAVE: u16 = 1;
    /// TD report 1.0.
    pub const TD_REPORT_10: u16 = 2;
    /// TD report 1.5.
    pub const TD_REPORT_15: u16 = 3;
    /// TD report 1.5 "ex" (dcap-qvl's name).
    pub const TD_REPORT_15_EX: u16 = 4;
}

impl TdBody {
    /// The TD report 1.0 fields every body has.
    pub fn report(&self) -> &TdReport10 {
        match self {
            Self::Td10(r) | Self::Td15(r, _) | Self::Td15Ex(r, _, _) => r,
        }
    }

    /// The TD report 1.5 fields (bodies 1.5 and 1.5 ex).
    pub fn td15(&self) -> Option<&TdReport15Fields> {
        match self {
            Self::Td10(_) => None,
            Self::Td15(_, f) | Self::Td15Ex(_, f, _) => Some(f),
        }
    }

    /// The v5 body type of this body.
    pub fn body_type(&self) -> u16 {
        match self {
            Self::Td10(_) => body_type::TD_REPORT_10,
            Self::Td15(..) => body_type::TD_REPORT_15,
            Self::Td15Ex(..) => body_type::TD_REPORT_15_EX,
        }
    }

    /// The encoded length of this body.
    pub fn len(&self) -> usize {
        match self {
            Self::Td10(_) => TdReport10::LEN,
            Self::Td15(..) => TdReport10::LEN + 64,
            Self::Td15Ex(..) => TdReport10::LEN + 64 + TD15_EX_EXTENSION_LEN,
        }
    }

    /// Always false: a body has fixed fields.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn expected_len(kind: u16) -> Option<usize> {
        match kind {
            body_type::TD_REPORT_10 => Some(TdReport10::LEN),
            body_type::TD_REPORT_15 => Some(TdReport10::LEN + 64),
            body_type::TD_REPORT_15_EX => Some(TdReport10::LEN + 64 + TD15_EX_EXTENSION_LEN),
            _ => None,
        }
    }

    fn read(kind: u16, r: &mut Reader<'_>) -> Result<Self, ParseError> {
        let base = TdReport10::read(r)?;
        if kind == body_type::TD_REPORT_10 {
            return Ok(Self::Td10(base));
        }
        let f = TdReport15Fields {
            tee_tcb_svn2: r.array("td_report.tee_tcb_svn2")?,
            mr_service_td: Measurement(r.array("td_report.mr_service_td")?),
        };
        if kind == body_type::TD_REPORT_15 {
            return Ok(Self::Td15(base, f));
        }
        Ok(Self::Td15Ex(
            base,
            f,
            Box::new(r.array("td_report.td15_ex_extension")?),
        ))
    }

    fn write(&self, w: &mut Writer) {
        self.report().write(w);
        if let Some(f) = self.td15() {
            w.bytes(&f.tee_tcb_svn2).bytes(&f.mr_service_td.0);
        }
        if let Self::Td15Ex(_, _, ext) = self {
            w.bytes(ext.as_slice());
        }
    }
}

/// A parsed TDX DCAP quote (v4 or v5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxQuote {
    /// The header (version 4 or 5, TEE type 0x81).
    pub header: QuoteHeader,
    /// The TD body.
    pub body: TdBody,
    /// The signature data.
    pub signature: SignatureData,
    /// How many zero bytes followed the signature data.
    pub trailing_zero_bytes: usize,
}

impl TdxQuote {
    /// Parses a whole TDX quote. Trailing bytes after the signature data are accepted only when
    /// all are zero.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let header = QuoteHeader::read(&mut r)?;
        match header.version {
            4 | 5 => {}
            v => return Err(ParseError::UnsupportedVersion(v)),
        }
        if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256 {
            return Err(ParseError::UnsupportedAttestationKeyType(
                header.att_key_type,
            ));
        }
        if header.tee_type != TEE_TYPE_TDX {
            return Err(ParseError::UnsupportedTeeType(header.tee_type));
        }
        let body = if header.version == 4 {
            TdBody::read(body_type::TD_REPORT_10, &mut r)?
        } else {
            let kind = r.u16("body.type")?;
            let size = r.u32("body.size")?;
            let Some(expected) = TdBody::expected_len(kind) else {
                return Err(ParseError::UnsupportedBodyType(kind));
            };
            if usize::try_from(size).ok() != Some(expected) {
                return Err(ParseError::BodySizeMismatch {
                    body_type: kind,
                    declared: size,
                    expected,
                });
            }
            let mut b = r.sub(expected, "body")?;
            let body = TdBody::read(kind, &mut b)?;
            b.finish()?;
            body
        };
        let sig_len = r.u32("signature_data_len")?;
        let mut s = r.sub(sig_len as usize, "signature_data")?;
        let trailing_at = r.offset();
        let rest = r.take(r.remaining(), "trailing bytes")?;
        if let Some(i) = rest.iter().position(|&b| b != 0) {
            return Err(ParseError::NonZeroTrailingBytes {
                offset: trailing_at.saturating_add(i),
                count: rest.len(),
            });
        }
        let signature = read_v4_signature(&mut s)?;
        s.finish()?;
        Ok(Self {
            header,
            body,
            signature,
            trailing_zero_bytes: rest.len(),
        })
    }

    /// Length of the signed region: header ‖ body (v4), header ‖ type ‖ size ‖ body (v5).
    pub fn signed_len(&self) -> usize {
        let prefix = if self.header.version == 4 { 0 } else { 6 };
        QuoteHeader::LEN + prefix + self.body.len()
    }

    /// The bytes the quote signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.signed_len());
        self.write_signed(&mut w);
        w.into_vec()
    }

    fn write_signed(&self, w: &mut Writer) {
        self.header.write(w);
        if self.header.version != 4 {
            w.u16(self.body.body_type()).u32(len_u32(self.body.len()));
        }
        self.body.write(w);
    }

    /// Encodes the quote, trailing zero padding included; `TdxQuote::parse(b)?.to_bytes() == b`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sig = write_v4_signature(&self.signature);
        let mut w = Writer::with_capacity(self.signed_len() + 4 + sig.len());
        self.write_signed(&mut w);
        w.u32(len_u32(sig.len())).bytes(&sig);
        w.bytes(&vec![0u8; self.trailing_zero_bytes]);
        w.into_vec()
    }
}

/// A DCAP quote of either TEE.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DcapQuote {
    /// An SGX quote (v3, or v4 with TEE type 0).
    Sgx(Box<crate::Quote>),
    /// A TDX quote (v4 or v5 with TEE type 0x81).
    Tdx(Box<TdxQuote>),
}

impl DcapQuote {
    /// Parses a quote, choosing the layout from its header: TEE type 0x81 in a v4/v5 header is
    /// TDX, anything else goes to the SGX parser (which refuses what it does not know).
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let version = r.u16("header.version")?;
        let _ = r.u16("header.att_key_type")?;
        let tee = r.u32("header.tee_type")?;
        if matches!(version, 4 | 5) && tee == TEE_TYPE_TDX {
            return TdxQuote::parse(bytes).map(|q| Self::Tdx(Box::new(q)));
        }
        crate::Quote::parse(bytes).map(|q| Self::Sgx(Box::new(q)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quote::{CertificationData, INTEL_QE_VENDOR_ID};
    use crate::report::ReportBody;

    fn sample(version: u16, body: TdBody) -> TdxQuote {
        TdxQuote {
            header: QuoteHeader {
                version,
                att_key_type: 2,
                tee_type: TEE_TYPE_TDX,
                qe_svn: 0,
                pce_svn: 0,
                qe_vendor_id: INTEL_QE_VENDOR_ID,
                user_data: [7; 20],
            },
            body,
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
            trailing_zero_bytes: 0,
        }
    }

    fn td15() -> TdReport15Fields {
        TdReport15Fields {
            tee_tcb_svn2: [9; 16],
            mr_service_td: Measurement([8; 48]),
        }
    }

    fn bodies() -> Vec<(u16, TdBody)> {
        let mut r = TdReport10::zeroed();
        r.mr_td = Measurement([0xaa; 48]);
        r.tee_tcb_svn = [3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        vec![
            (4, TdBody::Td10(r.clone())),
            (5, TdBody::Td10(r.clone())),
            (5, TdBody::Td15(r.clone(), td15())),
            (5, TdBody::Td15Ex(r, td15(), Box::new([5; 237]))),
        ]
    }

    #[test]
    fn every_body_round_trips_with_its_signed_length() {
        for (v, body) in bodies() {
            let mut q = sample(v, body);
            let b = q.to_bytes();
            assert_eq!(TdxQuote::parse(&b).unwrap(), q);
            assert_eq!(&b[..q.signed_len()], q.signed_bytes().as_slice());
            q.trailing_zero_bytes = 70;
            let b = q.to_bytes();
            assert_eq!(TdxQuote::parse(&b).unwrap(), q);
            assert_eq!(DcapQuote::parse(&b).unwrap(), DcapQuote::Tdx(Box::new(q)));
        }
    }

    #[test]
    fn layout_offsets() {
        let (_, body) = bodies().remove(0);
        let b = sample(4, body).to_bytes();
        // MRTD at 48 + 136, signature_data_len at 632.
        assert_eq!(b[48 + 136], 0xaa);
        let sig_len = u32::from_le_bytes(b[632..636].try_into().unwrap()) as usize;
        assert_eq!(sig_len, b.len() - 636);
        let (_, body) = bodies().remove(3);
        let q = sample(5, body);
        let b = q.to_bytes();
        assert_eq!(u16::from_le_bytes([b[48], b[49]]), 4);
        assert_eq!(u32::from_le_bytes(b[50..54].try_into().unwrap()), 885);
        assert_eq!(q.signed_len(), 48 + 6 + 885);
    }

    #[test]
    fn non_zero_trailing_byte_is_malformed() {
        let (_, body) = bodies().remove(0);
        let mut b = sample(4, body).to_bytes();
        let n = b.len();
        b.extend_from_slice(&[0, 0, 1, 0]);
        assert_eq!(
            TdxQuote::parse(&b),
            Err(ParseError::NonZeroTrailingBytes {
                offset: n + 2,
                count: 4
            })
        );
    }

    #[test]
    fn header_and_body_rejections() {
        let (_, body) = bodies().remove(2);
        let good = sample(5, body).to_bytes();
        let mut b = good.clone();
        b[48] = 1;
        assert_eq!(TdxQuote::parse(&b), Err(ParseError::UnsupportedBodyType(1)));
        let mut b = good.clone();
        b[48] = 9;
        assert_eq!(TdxQuote::parse(&b), Err(ParseError::UnsupportedBodyType(9)));
        let mut b = good.clone();
        b[50] = 0x89; // 648 = 0x288 -> 0x289
        assert_eq!(
            TdxQuote::parse(&b),
            Err(ParseError::BodySizeMismatch {
                body_type: 3,
                declared: 649,
                expected: 648
            })
        );
        let mut b = good.clone();
        b[0] = 6;
        assert_eq!(TdxQuote::parse(&b), Err(ParseError::UnsupportedVersion(6)));
        let mut b = good.clone();
        b[2] = 3;
        assert_eq!(
            TdxQuote::parse(&b),
            Err(ParseError::UnsupportedAttestationKeyType(3))
        );
        let mut b = good.clone();
        b[4] = 0;
        assert_eq!(TdxQuote::parse(&b), Err(ParseError::UnsupportedTeeType(0)));
        assert!(matches!(
            TdxQuote::parse(&good[..700]),
            Err(ParseError::Truncated { .. })
        ));
    }

    #[test]
    fn real_quotes_parse_and_re_encode() {
        for (name, version, kind, trailing) in [
            ("tdx_quote", 4, 2, 70),
            ("tdx_quote_outdated", 5, 3, 0),
            ("tdx_quote_td15ex", 5, 4, 0),
        ] {
            let Some(b) = testdata::read(&format!("dcap/tdx/dcap-qvl/{name}")) else {
                return;
            };
            let q = TdxQuote::parse(&b).unwrap();
            assert_eq!(
                (
                    q.header.version,
                    q.body.body_type(),
                    q.trailing_zero_bytes,
                    q.signature.certification_data.kind
                ),
                (version, kind, trailing, 5),
                "{name}"
            );
            assert_eq!(q.to_bytes(), b, "{name}");
            assert_eq!(q.body.report().td_attributes.0, 0x1000_0000, "{name}");
        }
        let Some(b) = testdata::read("dcap/tdx/dcap-qvl/tdx_quote") else {
            return;
        };
        let q = TdxQuote::parse(&b).unwrap();
        assert_eq!(
            q.body.report().mr_td.to_hex(),
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
        );
    }
}
