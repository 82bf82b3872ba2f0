//! SIGSTRUCT (1808 bytes, SDM Vol. 3D §38.13; arch.h `enclave_css_t`): strict parse, its encode
//! twin, the 256 signed bytes, signing through [`SigstructSigner`], attaching an external
//! signature (HSM flow), verification of the RSA signature and q1/q2, and MRSIGNER.
//!
//! All integers are little-endian; MODULUS, SIGNATURE, Q1 and Q2 are little-endian integers
//! (OpenSSL's big-endian output reversed). Reserved bytes are kept verbatim so that encode is
//! the exact inverse of parse.

use crate::key::{KEY_BYTES, KeyError, RsaPublicKey, SGX_EXPONENT};
use crate::{Digest32, Mrenclave, Mrsigner, sha256};
use sgx_types::reader::Reader;

/// Size of a SIGSTRUCT.
pub const SIGSTRUCT_SIZE: usize = 1808;
/// Bytes signed: `SIGSTRUCT[0..128] ‖ SIGSTRUCT[900..1028]`.
pub const SIGNED_DATA_SIZE: usize = 256;
/// The fixed HEADER at offset 0.
pub const HEADER: [u8; 12] = [6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0];
/// The fixed HEADER2 at offset 24.
pub const HEADER2: [u8; 16] = [1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0];

/// SECS attribute flags used by signers.
pub mod flags {
    /// Enclave initialised (set by EINIT; never in SIGSTRUCT).
    pub const INIT: u64 = 0x1;
    /// Debug enclave.
    pub const DEBUG: u64 = 0x2;
    /// 64-bit enclave.
    pub const MODE64BIT: u64 = 0x4;
    /// Access to the provisioning key.
    pub const PROVISION_KEY: u64 = 0x10;
    /// Access to the EINITTOKEN key.
    pub const EINITTOKEN_KEY: u64 = 0x20;
    /// Key separation and sharing.
    pub const KSS: u64 = 0x80;
    /// AEX-Notify.
    pub const AEX_NOTIFY: u64 = 0x400;
}

/// SECS.ATTRIBUTES: flags and XFRM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Attribute flags (bit 1 DEBUG, bit 2 MODE64BIT, ...).
    pub flags: u64,
    /// XSAVE feature request mask.
    pub xfrm: u64,
}

/// Why bytes are not a SIGSTRUCT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigstructError {
    /// Not exactly 1808 bytes.
    #[error("a SIGSTRUCT is 1808 bytes, got {len}")]
    WrongLength {
        /// The length given.
        len: usize,
    },
    /// HEADER or HEADER2 differ from the constants the SDM fixes.
    #[error("SIGSTRUCT {field} at offset {offset} is not the fixed value (not a SIGSTRUCT?)")]
    BadHeader {
        /// `HEADER` or `HEADER2`.
        field: &'static str,
        /// Offset of the field.
        offset: usize,
    },
    /// Signed data that is not 256 bytes (gendata output).
    #[error("signed data is 256 bytes (SIGSTRUCT header ‖ body), got {len}")]
    WrongSignedDataLength {
        /// The length given.
        len: usize,
    },
}

/// Why signing or attaching a signature failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signer's backend failed.
    #[error("signing failed: {0}")]
    Backend(String),
    /// An external signature that is not 384 bytes.
    #[error("an RSA-3072 signature is 384 bytes, got {len}")]
    WrongSignatureLength {
        /// The length given.
        len: usize,
    },
    /// The signature does not verify with the key over the signed data.
    #[error(
        "the signature does not verify with this key over this SIGSTRUCT's header and body (wrong key, wrong data, or a little-endian signature where big-endian is expected)"
    )]
    SignatureInvalid,
}

/// Why a SIGSTRUCT does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The embedded modulus is not a valid SGX key.
    #[error("embedded key")]
    Key(#[source] KeyError),
    /// EXPONENT field is not 3.
    #[error("EXPONENT field is {value}, SGX requires 3")]
    Exponent {
        /// The value found.
        value: u32,
    },
    /// The RSA signature does not verify.
    #[error("the RSA signature does not verify")]
    SignatureInvalid,
    /// Q1/Q2 do not match the signature.
    #[error("Q1/Q2 do not match the signature and modulus")]
    Q1Q2Invalid,
}

/// A signer for SIGSTRUCTs: a key file now, an HSM or KMS later.
pub trait SigstructSigner {
    /// The public key (3072 bits, e = 3) that verifies this signer's signatures.
    fn public_key(&self) -> &RsaPublicKey;
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `msg`; the signature big-endian.
    fn sign_pkcs1_sha256(&self, msg: &[u8]) -> Result<[u8; KEY_BYTES], SignError>;
}

/// Field values a signer sets; `None` keeps the current value (re-signing keeps everything
/// not overridden, so re-signing with the same key reproduces the SIGSTRUCT byte for byte).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningFields {
    /// TYPE (bit 31: debug-signed).
    pub header_type: Option<u32>,
    /// MODULE_VENDOR.
    pub vendor: Option<u32>,
    /// DATE as BCD hex (see [`date_from_ymd`]).
    pub date: Option<u32>,
    /// SWDEFINED.
    pub swdefined: Option<u32>,
    /// MISCSELECT.
    pub miscselect: Option<u32>,
    /// MISCMASK.
    pub miscmask: Option<u32>,
    /// ATTRIBUTES.flags.
    pub attributes_flags: Option<u64>,
    /// ATTRIBUTES.xfrm.
    pub attributes_xfrm: Option<u64>,
    /// ATTRIBUTEMASK.flags.
    pub attributemask_flags: Option<u64>,
    /// ATTRIBUTEMASK.xfrm.
    pub attributemask_xfrm: Option<u64>,
    /// ISVPRODID.
    pub isvprodid: Option<u16>,
    /// ISVSVN.
    pub isvsvn: Option<u16>,
    /// ISVFAMILYID (KSS).
    pub isvfamilyid: Option<[u8; 16]>,
    /// ISVEXTPRODID (KSS).
    pub isvextprodid: Option<[u8; 16]>,
}

impl SigningFields {
    /// `self` with every field set in `over` replaced (command-line flags over a file).
    pub fn merge(&self, over: &SigningFields) -> SigningFields {
        fn pick<T: Copy>(base: Option<T>, over: Option<T>) -> Option<T> {
            over.or(base)
        }
        SigningFields {
            header_type: pick(self.header_type, over.header_type),
            vendor: pick(self.vendor, over.vendor),
            date: pick(self.date, over.date),
            swdefined: pick(self.swdefined, over.swdefined),
            miscselect: pick(self.miscselect, over.miscselect),
            miscmask: pick(self.miscmask, over.miscmask),
            attributes_flags: pick(self.attributes_flags, over.attributes_flags),
            attributes_xfrm: pick(self.attributes_xfrm, over.attributes_xfrm),
            attributemask_flags: pick(self.attributemask_flags, over.attributemask_flags),
            attributemask_xfrm: pick(self.attributemask_xfrm, over.attributemask_xfrm),
            isvprodid: pick(self.isvprodid, over.isvprodid),
            isvsvn: pick(self.isvsvn, over.isvsvn),
            isvfamilyid: pick(self.isvfamilyid, over.isvfamilyid),
            isvextprodid: pick(self.isvextprodid, over.isvextprodid),
        }
    }

    /// Overwrites the set fields in `s` (the signature becomes stale; sign afterwards).
    pub fn apply(&self, s: &mut Sigstruct) {
        fn set<T: Copy>(dst: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *dst = v;
            }
        }
        set(&mut s.header_type, self.header_type);
        set(&mut s.vendor, self.vendor);
        set(&mut s.date, self.date);
        set(&mut s.swdefined, self.swdefined);
        set(&mut s.miscselect, self.miscselect);
        set(&mut s.miscmask, self.miscmask);
        set(&mut s.attributes.flags, self.attributes_flags);
        set(&mut s.attributes.xfrm, self.attributes_xfrm);
        set(&mut s.attributemask.flags, self.attributemask_flags);
        set(&mut s.attributemask.xfrm, self.attributemask_xfrm);
        set(&mut s.isvprodid, self.isvprodid);
        set(&mut s.isvsvn, self.isvsvn);
        set(&mut s.isvfamilyid, self.isvfamilyid);
        set(&mut s.isvextprodid, self.isvextprodid);
    }
}

/// DATE encoding: year, month and day written as decimal digits read as hex
/// (2021-03-12 → 0x20210312), as `sgx_sign`, Fortanix and Gramine store it. `None` when out
/// of range.
pub fn date_from_ymd(year: u32, month: u32, day: u32) -> Option<u32> {
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    u32::from_str_radix(&format!("{year:04}{month:02}{day:02}"), 16).ok()
}

/// A parsed SIGSTRUCT. Field names follow the SDM; reserved bytes are kept for exact encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sigstruct {
    /// TYPE (Intel's name for bytes 12..16); bit 31 = debug-signed (`sgx_sign` ReleaseType).
    pub header_type: u32,
    /// MODULE_VENDOR: 0x8086 for Intel, 0 otherwise.
    pub vendor: u32,
    /// DATE, yyyymmdd as hex digits (2021-03-12 → 0x20210312).
    pub date: u32,
    /// SWDEFINED / HW_VERSION (non-zero only for launch enclaves).
    pub swdefined: u32,
    /// Bytes 44..128.
    pub reserved1: [u8; 84],
    /// MODULUS, little-endian.
    pub modulus: [u8; KEY_BYTES],
    /// EXPONENT.
    pub exponent: u32,
    /// SIGNATURE, little-endian.
    pub signature: [u8; KEY_BYTES],
    /// MISCSELECT.
    pub miscselect: u32,
    /// MISCMASK.
    pub miscmask: u32,
    /// Bytes 908..912 (Fortanix reads CET attributes here).
    pub reserved2: [u8; 4],
    /// ISVFAMILYID (KSS).
    pub isvfamilyid: [u8; 16],
    /// ATTRIBUTES.
    pub attributes: Attributes,
    /// ATTRIBUTEMASK.
    pub attributemask: Attributes,
    /// ENCLAVEHASH: the expected MRENCLAVE.
    pub enclavehash: [u8; 32],
    /// Bytes 992..1008.
    pub reserved3: [u8; 16],
    /// ISVEXTPRODID (KSS).
    pub isvextprodid: [u8; 16],
    /// ISVPRODID.
    pub isvprodid: u16,
    /// ISVSVN.
    pub isvsvn: u16,
    /// Bytes 1028..1040.
    pub reserved4: [u8; 12],
    /// Q1, little-endian.
    pub q1: [u8; KEY_BYTES],
    /// Q2, little-endian.
    pub q2: [u8; KEY_BYTES],
}

impl Sigstruct {
    /// An unsigned SIGSTRUCT for `enclavehash` with the Intel SDK's usual values: vendor 0,
    /// date 0, ATTRIBUTES MODE64BIT/XFRM 0x3, ATTRIBUTEMASK `!DEBUG`/`0xffffffffffffff1b`,
    /// MISCSELECT 0, MISCMASK 0xffffffff, ISVPRODID/ISVSVN 0.
    pub fn new(enclavehash: Mrenclave) -> Self {
        Self {
            header_type: 0,
            vendor: 0,
            date: 0,
            swdefined: 0,
            reserved1: [0; 84],
            modulus: [0; KEY_BYTES],
            exponent: 0,
            signature: [0; KEY_BYTES],
            miscselect: 0,
            miscmask: 0xffff_ffff,
            reserved2: [0; 4],
            isvfamilyid: [0; 16],
            attributes: Attributes {
                flags: flags::MODE64BIT,
                xfrm: 0x3,
            },
            attributemask: Attributes {
                flags: !flags::DEBUG,
                xfrm: 0xffff_ffff_ffff_ff1b,
            },
            enclavehash: enclavehash.0,
            reserved3: [0; 16],
            isvextprodid: [0; 16],
            isvprodid: 0,
            isvsvn: 0,
            reserved4: [0; 12],
            q1: [0; KEY_BYTES],
            q2: [0; KEY_BYTES],
        }
    }

    /// Parses exactly 1808 bytes; HEADER and HEADER2 must be the fixed values.
    pub fn parse(b: &[u8]) -> Result<Self, SigstructError> {
        if b.len() != SIGSTRUCT_SIZE {
            return Err(SigstructError::WrongLength { len: b.len() });
        }
        let short = || SigstructError::WrongLength { len: b.len() };
        let mut r = Reader::new(b);
        let head: [u8; 128] = r.array("header").map_err(|_| short())?;
        let modulus = r.array("modulus").map_err(|_| short())?;
        let exponent = r.u32("exponent").map_err(|_| short())?;
        let signature = r.array("signature").map_err(|_| short())?;
        let body: [u8; 128] = r.array("body").map_err(|_| short())?;
        let reserved4 = r.array("reserved4").map_err(|_| short())?;
        let q1 = r.array("q1").map_err(|_| short())?;
        let q2 = r.array("q2").map_err(|_| short())?;
        r.finish().map_err(|_| short())?;
        let mut s = Self::from_parts(&head, &body)?;
        s.modulus = modulus;
        s.exponent = exponent;
        s.signature = signature;
        s.reserved4 = reserved4;
        s.q1 = q1;
        s.q2 = q2;
        Ok(s)
    }

    /// Rebuilds an unsigned SIGSTRUCT from the 256 signed bytes (the `gendata` output).
    pub fn from_signed_data(data: &[u8]) -> Result<Self, SigstructError> {
        if data.len() != SIGNED_DATA_SIZE {
            return Err(SigstructError::WrongSignedDataLength { len: data.len() });
        }
        let mut r = Reader::new(data);
        let short = |_| SigstructError::WrongSignedDataLength { len: data.len() };
        let head: [u8; 128] = r.array("header").map_err(short)?;
        let body: [u8; 128] = r.array("body").map_err(short)?;
        Self::from_parts(&head, &body)
    }

    fn from_parts(head: &[u8; 128], body: &[u8; 128]) -> Result<Self, SigstructError> {
        if head.get(0..12) != Some(&HEADER[..]) {
            return Err(SigstructError::BadHeader {
                field: "HEADER",
                offset: 0,
            });
        }
        if head.get(24..40) != Some(&HEADER2[..]) {
            return Err(SigstructError::BadHeader {
                field: "HEADER2",
                offset: 24,
            });
        }
        // Strict sequential reads over the two fixed 128-byte halves (cannot run short).
        let mut h = Reader::new(head);
        let bad = |_| SigstructError::WrongSignedDataLength { len: 0 };
        h.take(12, "HEADER").map_err(bad)?;
        let header_type = h.u32("TYPE").map_err(bad)?;
        let vendor = h.u32("MODULE_VENDOR").map_err(bad)?;
        let date = h.u32("DATE").map_err(bad)?;
        h.take(16, "HEADER2").map_err(bad)?;
        let swdefined = h.u32("SWDEFINED").map_err(bad)?;
        let reserved1 = h.array("reserved1").map_err(bad)?;
        h.finish().map_err(bad)?;
        let mut r = Reader::new(body);
        let miscselect = r.u32("MISCSELECT").map_err(bad)?;
        let miscmask = r.u32("MISCMASK").map_err(bad)?;
        let reserved2 = r.array("reserved2").map_err(bad)?;
        let isvfamilyid = r.array("ISVFAMILYID").map_err(bad)?;
        let attributes = Attributes {
            flags: r.u64("ATTRIBUTES.flags").map_err(bad)?,
            xfrm: r.u64("ATTRIBUTES.xfrm").map_err(bad)?,
        };
        let attributemask = Attributes {
            flags: r.u64("ATTRIBUTEMASK.flags").map_err(bad)?,
            xfrm: r.u64("ATTRIBUTEMASK.xfrm").map_err(bad)?,
        };
        let enclavehash = r.array("ENCLAVEHASH").map_err(bad)?;
        let reserved3 = r.array("reserved3").map_err(bad)?;
        let isvextprodid = r.array("ISVEXTPRODID").map_err(bad)?;
        let isvprodid = r.u16("ISVPRODID").map_err(bad)?;
        let isvsvn = r.u16("ISVSVN").map_err(bad)?;
        r.finish().map_err(bad)?;
        Ok(Self {
            header_type,
            vendor,
            date,
            swdefined,
            reserved1,
            modulus: [0; KEY_BYTES],
            exponent: 0,
            signature: [0; KEY_BYTES],
            miscselect,
            miscmask,
            reserved2,
            isvfamilyid,
            attributes,
            attributemask,
            enclavehash,
            reserved3,
            isvextprodid,
            isvprodid,
            isvsvn,
            reserved4: [0; 12],
            q1: [0; KEY_BYTES],
            q2: [0; KEY_BYTES],
        })
    }

    /// Encodes the 1808 bytes (the exact inverse of [`Sigstruct::parse`]).
    pub fn encode(&self) -> [u8; SIGSTRUCT_SIZE] {
        let mut b = [0u8; SIGSTRUCT_SIZE];
        let d = self.signed_data();
        b[..128].copy_from_slice(&d[..128]);
        b[900..1028].copy_from_slice(&d[128..]);
        b[128..512].copy_from_slice(&self.modulus);
        b[512..516].copy_from_slice(&self.exponent.to_le_bytes());
        b[516..900].copy_from_slice(&self.signature);
        b[1028..1040].copy_from_slice(&self.reserved4);
        b[1040..1424].copy_from_slice(&self.q1);
        b[1424..1808].copy_from_slice(&self.q2);
        b
    }

    /// The 256 bytes that are signed: HEADER part (0..128) ‖ BODY part (900..1028).
    pub fn signed_data(&self) -> [u8; SIGNED_DATA_SIZE] {
        let mut d = [0u8; SIGNED_DATA_SIZE];
        d[0..12].copy_from_slice(&HEADER);
        d[12..16].copy_from_slice(&self.header_type.to_le_bytes());
        d[16..20].copy_from_slice(&self.vendor.to_le_bytes());
        d[20..24].copy_from_slice(&self.date.to_le_bytes());
        d[24..40].copy_from_slice(&HEADER2);
        d[40..44].copy_from_slice(&self.swdefined.to_le_bytes());
        d[44..128].copy_from_slice(&self.reserved1);
        d[128..132].copy_from_slice(&self.miscselect.to_le_bytes());
        d[132..136].copy_from_slice(&self.miscmask.to_le_bytes());
        d[136..140].copy_from_slice(&self.reserved2);
        d[140..156].copy_from_slice(&self.isvfamilyid);
        d[156..164].copy_from_slice(&self.attributes.flags.to_le_bytes());
        d[164..172].copy_from_slice(&self.attributes.xfrm.to_le_bytes());
        d[172..180].copy_from_slice(&self.attributemask.flags.to_le_bytes());
        d[180..188].copy_from_slice(&self.attributemask.xfrm.to_le_bytes());
        d[188..220].copy_from_slice(&self.enclavehash);
        d[220..236].copy_from_slice(&self.reserved3);
        d[236..252].copy_from_slice(&self.isvextprodid);
        d[252..254].copy_from_slice(&self.isvprodid.to_le_bytes());
        d[254..256].copy_from_slice(&self.isvsvn.to_le_bytes());
        d
    }

    /// ENCLAVEHASH as a digest.
    pub fn enclavehash(&self) -> Mrenclave {
        Digest32(self.enclavehash)
    }

    /// MRSIGNER: SHA-256 of MODULUS exactly as stored (little-endian).
    pub fn mrsigner(&self) -> Mrsigner {
        Digest32(sha256(&self.modulus))
    }

    /// Signs with `signer`: fills MODULUS, EXPONENT, SIGNATURE, Q1 and Q2.
    pub fn sign(&mut self, signer: &dyn SigstructSigner) -> Result<(), SignError> {
        let sig = signer.sign_pkcs1_sha256(&self.signed_data())?;
        self.attach_signature(signer.public_key(), &sig)
    }

    /// Attaches an externally produced big-endian signature (HSM flow, `catsig`) after
    /// verifying it over this SIGSTRUCT's signed data.
    pub fn attach_signature(
        &mut self,
        key: &RsaPublicKey,
        signature_be: &[u8],
    ) -> Result<(), SignError> {
        if signature_be.len() != KEY_BYTES {
            return Err(SignError::WrongSignatureLength {
                len: signature_be.len(),
            });
        }
        if !key.verify_pkcs1_sha256(&self.signed_data(), signature_be) {
            return Err(SignError::SignatureInvalid);
        }
        let (q1, q2) = key.q1_q2(signature_be);
        self.modulus = key.modulus_le();
        self.exponent = SGX_EXPONENT;
        let mut sig = [0u8; KEY_BYTES];
        sig.copy_from_slice(signature_be);
        sig.reverse();
        self.signature = sig;
        self.q1 = q1;
        self.q2 = q2;
        Ok(())
    }

    /// The embedded public key.
    pub fn public_key(&self) -> Result<RsaPublicKey, VerifyError> {
        if self.exponent != SGX_EXPONENT {
            return Err(VerifyError::Exponent {
                value: self.exponent,
            });
        }
        RsaPublicKey::from_le_modulus(&self.modulus).map_err(VerifyError::Key)
    }

    /// Verifies the RSA signature and Q1/Q2 against the embedded key.
    pub fn verify(&self) -> Result<(), VerifyError> {
        let key = self.public_key()?;
        let mut sig_be = self.signature;
        sig_be.reverse();
        if !key.verify_pkcs1_sha256(&self.signed_data(), &sig_be) {
            return Err(VerifyError::SignatureInvalid);
        }
        let (q1, q2) = key.q1_q2(&sig_be);
        if q1 != self.q1 || q2 != self.q2 {
            return Err(VerifyError::Q1Q2Invalid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors() {
        assert_eq!(
            Sigstruct::parse(&[0; 10]),
            Err(SigstructError::WrongLength { len: 10 })
        );
        let mut b = Sigstruct::new(Digest32([1; 32])).encode();
        assert!(Sigstruct::parse(&b).is_ok_and(|s| s.enclavehash == [1; 32]));
        b[25] = 7;
        let e = Sigstruct::parse(&b).unwrap_err();
        assert_eq!(
            e,
            SigstructError::BadHeader {
                field: "HEADER2",
                offset: 24
            }
        );
        assert_eq!(
            e.to_string(),
            "SIGSTRUCT HEADER2 at offset 24 is not the fixed value (not a SIGSTRUCT?)"
        );
        b[0] = 0;
        assert_eq!(
            Sigstruct::parse(&b),
            Err(SigstructError::BadHeader {
                field: "HEADER",
                offset: 0
            })
        );
        assert_eq!(
            Sigstruct::from_signed_data(&[0; 255]),
            Err(SigstructError::WrongSignedDataLength { len: 255 })
        );
    }

    #[test]
    fn every_byte_round_trips() {
        // Reserved areas included: parse -> encode is the identity on any valid SIGSTRUCT.
        let mut b = Sigstruct::new(Digest32([3; 32])).encode();
        for (i, x) in b.iter_mut().enumerate() {
            if !(0..12).contains(&i) && !(24..40).contains(&i) {
                *x = (i % 251) as u8;
            }
        }
        assert_eq!(Sigstruct::parse(&b).unwrap().encode(), b);
    }

    #[test]
    fn dates_and_fields() {
        assert_eq!(date_from_ymd(2021, 3, 12), Some(0x2021_0312));
        assert_eq!(date_from_ymd(2021, 13, 1), None);
        let mut s = Sigstruct::new(Digest32([0; 32]));
        let f = SigningFields {
            isvprodid: Some(7),
            date: Some(0x2026_0101),
            ..Default::default()
        };
        f.apply(&mut s);
        assert_eq!((s.isvprodid, s.isvsvn, s.date), (7, 0, 0x2026_0101));
    }

    #[test]
    fn unsigned_does_not_verify() {
        let s = Sigstruct::new(Digest32([0; 32]));
        assert!(matches!(
            s.verify(),
            Err(VerifyError::Exponent { value: 0 })
        ));
        let mut s2 = s.clone();
        s2.exponent = 3;
        assert!(matches!(
            s2.verify(),
            Err(VerifyError::Key(KeyError::WrongKeySize { bits: 0 }))
        ));
    }
}
