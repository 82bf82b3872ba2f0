//! The 384-byte SGX report body (`sgx_report_body_t`) and its field newtypes.

use crate::ParseError;
use crate::reader::{Reader, Writer};
use std::fmt;

macro_rules! byte_newtype {
    ($(#[$m:meta])* $name:ident, $n:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $n;

            /// The raw bytes, in report byte order.
            pub fn as_bytes(&self) -> &[u8; $n] {
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

        impl From<[u8; $n]> for $name {
            fn from(b: [u8; $n]) -> Self {
                Self(b)
            }
        }
    };
}

byte_newtype!(
    /// MRENCLAVE: the SHA-256 measurement of the enclave's contents.
    MrEnclave, 32
);
byte_newtype!(
    /// MRSIGNER: SHA-256 of the enclave signer's RSA modulus (little-endian).
    MrSigner, 32
);
byte_newtype!(
    /// The 64 bytes of user data an enclave binds into its report.
    ReportData, 64
);
byte_newtype!(
    /// The CPU security version number (16 bytes).
    CpuSvn, 16
);
byte_newtype!(
    /// CONFIGID (64 bytes, KSS).
    ConfigId, 64
);
byte_newtype!(
    /// ISV extended product ID / family ID (16 bytes, KSS).
    IsvExtId, 16
);

/// SECS.ATTRIBUTES: flags and XFRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// Attribute flags (bit 1 is DEBUG).
    pub flags: u64,
    /// The XSAVE feature request mask.
    pub xfrm: u64,
}

impl Attributes {
    /// INIT: the enclave has been initialised.
    pub const INIT: u64 = 1 << 0;
    /// DEBUG: the enclave can be debugged; its secrets are not secret.
    pub const DEBUG: u64 = 1 << 1;
    /// MODE64BIT: a 64-bit enclave.
    pub const MODE64BIT: u64 = 1 << 2;
    /// PROVISIONKEY: may request the provisioning key.
    pub const PROVISION_KEY: u64 = 1 << 4;
    /// EINITTOKENKEY: may request the launch key.
    pub const EINITTOKEN_KEY: u64 = 1 << 5;
    /// KSS: key separation and sharing.
    pub const KSS: u64 = 1 << 7;
    /// AEXNOTIFY: asynchronous exit notification.
    pub const AEX_NOTIFY: u64 = 1 << 10;

    /// Whether the DEBUG flag is set.
    pub fn debug(&self) -> bool {
        self.flags & Self::DEBUG != 0
    }

    /// The 16 bytes in report order (flags then xfrm, little-endian).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        let (f, x) = b.split_at_mut(8);
        f.copy_from_slice(&self.flags.to_le_bytes());
        x.copy_from_slice(&self.xfrm.to_le_bytes());
        b
    }

    /// From the 16 bytes in report order.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let mut f = [0u8; 8];
        let mut x = [0u8; 8];
        let (bf, bx) = b.split_at(8);
        f.copy_from_slice(bf);
        x.copy_from_slice(bx);
        Self {
            flags: u64::from_le_bytes(f),
            xfrm: u64::from_le_bytes(x),
        }
    }
}

/// The SGX report body (`sgx_report_body_t`, 384 bytes): what an enclave is.
///
/// Reserved fields are kept so that encoding is byte-identical to the parsed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportBody {
    /// CPUSVN of the platform when the report was made.
    pub cpu_svn: CpuSvn,
    /// MISCSELECT.
    pub misc_select: u32,
    /// Reserved (12 bytes).
    pub reserved1: [u8; 12],
    /// ISV extended product ID.
    pub isv_ext_prod_id: IsvExtId,
    /// Attributes (flags, XFRM).
    pub attributes: Attributes,
    /// MRENCLAVE.
    pub mr_enclave: MrEnclave,
    /// Reserved (32 bytes).
    pub reserved2: [u8; 32],
    /// MRSIGNER.
    pub mr_signer: MrSigner,
    /// Reserved (32 bytes).
    pub reserved3: [u8; 32],
    /// CONFIGID.
    pub config_id: ConfigId,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// CONFIGSVN.
    pub config_svn: u16,
    /// Reserved (42 bytes).
    pub reserved4: [u8; 42],
    /// ISV family ID.
    pub isv_family_id: IsvExtId,
    /// Report data chosen by the enclave.
    pub report_data: ReportData,
}

impl ReportBody {
    /// Encoded length.
    pub const LEN: usize = 384;

    /// Reads a report body from the reader (exactly 384 bytes).
    pub fn read(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        Ok(Self {
            cpu_svn: CpuSvn(r.array("report.cpu_svn")?),
            misc_select: r.u32("report.misc_select")?,
            reserved1: r.array("report.reserved1")?,
            isv_ext_prod_id: IsvExtId(r.array("report.isv_ext_prod_id")?),
            attributes: Attributes::from_bytes(r.array("report.attributes")?),
            mr_enclave: MrEnclave(r.array("report.mr_enclave")?),
            reserved2: r.array("report.reserved2")?,
            mr_signer: MrSigner(r.array("report.mr_signer")?),
            reserved3: r.array("report.reserved3")?,
            config_id: ConfigId(r.array("report.config_id")?),
            isv_prod_id: r.u16("report.isv_prod_id")?,
            isv_svn: r.u16("report.isv_svn")?,
            config_svn: r.u16("report.config_svn")?,
            reserved4: r.array("report.reserved4")?,
            isv_family_id: IsvExtId(r.array("report.isv_family_id")?),
            report_data: ReportData(r.array("report.report_data")?),
        })
    }

    /// Parses exactly 384 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let body = Self::read(&mut r)?;
        r.finish()?;
        Ok(body)
    }

    /// Appends the 384 encoded bytes.
    pub fn write(&self, w: &mut Writer) {
        w.bytes(&self.cpu_svn.0)
            .u32(self.misc_select)
            .bytes(&self.reserved1)
            .bytes(&self.isv_ext_prod_id.0)
            .bytes(&self.attributes.to_bytes())
            .bytes(&self.mr_enclave.0)
            .bytes(&self.reserved2)
            .bytes(&self.mr_signer.0)
            .bytes(&self.reserved3)
            .bytes(&self.config_id.0)
            .u16(self.isv_prod_id)
            .u16(self.isv_svn)
            .u16(self.config_svn)
            .bytes(&self.reserved4)
            .bytes(&self.isv_family_id.0)
            .bytes(&self.report_data.0);
    }

    /// The 384 encoded bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::LEN);
        self.write(&mut w);
        w.into_vec()
    }

    /// A report body with every field zero: a starting point for builders and tests.
    pub fn zeroed() -> Self {
        Self {
            cpu_svn: CpuSvn([0; 16]),
            misc_select: 0,
            reserved1: [0; 12],
            isv_ext_prod_id: IsvExtId([0; 16]),
            attributes: Attributes { flags: 0, xfrm: 0 },
            mr_enclave: MrEnclave([0; 32]),
            reserved2: [0; 32],
            mr_signer: MrSigner([0; 32]),
            reserved3: [0; 32],
            config_id: ConfigId([0; 64]),
            isv_prod_id: 0,
            isv_svn: 0,
            config_svn: 0,
            reserved4: [0; 42],
            isv_family_id: IsvExtId([0; 16]),
            report_data: ReportData([0; 64]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_offsets_follow_sgx_report_h() {
        let mut b = vec![0u8; 384];
        b[16] = 0x11; // misc_select
        b[48] = 0x07; // attributes.flags: INIT|DEBUG|MODE64BIT
        b[64] = 0xaa; // mr_enclave
        b[128] = 0xbb; // mr_signer
        b[256] = 0x01; // isv_prod_id
        b[258] = 0x02; // isv_svn
        b[320] = 0xcc; // report_data
        let r = ReportBody::parse(&b).unwrap();
        assert_eq!(r.misc_select, 0x11);
        assert!(r.attributes.debug());
        assert_eq!(r.mr_enclave.0[0], 0xaa);
        assert_eq!(r.mr_signer.0[0], 0xbb);
        assert_eq!((r.isv_prod_id, r.isv_svn), (1, 2));
        assert_eq!(r.report_data.0[0], 0xcc);
        assert_eq!(r.to_bytes(), b);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(matches!(
            ReportBody::parse(&[0u8; 383]),
            Err(ParseError::Truncated {
                field: "report.report_data",
                ..
            })
        ));
        assert_eq!(
            ReportBody::parse(&[0u8; 385]),
            Err(ParseError::TrailingBytes {
                offset: 384,
                count: 1
            })
        );
    }
}
