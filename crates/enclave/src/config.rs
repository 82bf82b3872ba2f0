//! Signing configuration: Intel's `Enclave.config.xml` (what `sgx_sign` reads) and confkube's
//! JSON signing config, both turned into [`SigningFields`] (SIGSTRUCT values) and, for
//! metadata generation, [`SdkConfig`] (the layout).
//!
//! `Enclave.config.xml` is parsed with `roxmltree` (comments, CDATA, entities and
//! well-formedness handled by a real XML parser) and then checked the way `sgx_sign`'s
//! `parse_metadata_file` / `traverser_parameter` do (intel/linux-sgx
//! `sdk/sign_tool/SignTool/manage_metadata.cpp` and the parameter table in `sign_tool.cpp`,
//! SDK 2.1x):
//!
//! * the root element is `<EnclaveConfiguration>` without text or attributes;
//! * each child is one of the elements `sgx_sign` knows, at most once, without attributes;
//! * its value is the element's first child, a text node, read like `strtoull(text, &end, 0)`
//!   with `*end == '\0'`: optional leading white space and `+`, then decimal, `0x` hex or
//!   `0`-prefixed octal, nothing after the digits; a `-` anywhere is refused, as is a value
//!   outside the element's range (no silent narrowing: `<ProdID>70000</ProdID>` is an error).
//!
//! Every error names the element and its line.

use crate::sdk_gen::SdkConfig;
use crate::sigstruct::{SigningFields, date_from_ymd, flags};
use serde::{Deserialize, Deserializer};

/// Why a signing configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not well-formed XML.
    #[error("not well-formed XML")]
    Xml(#[source] roxmltree::Error),
    /// The root element is not `<EnclaveConfiguration>`.
    #[error("line {line}: the root element is <{found}>, expected <EnclaveConfiguration>")]
    Root {
        /// Line of the root element.
        line: u32,
        /// Its name.
        found: String,
    },
    /// Text or attributes where `sgx_sign` accepts none.
    #[error("line {line}: <{element}> {what}")]
    Malformed {
        /// Line of the element.
        line: u32,
        /// The element.
        element: String,
        /// What is wrong.
        what: &'static str,
    },
    /// An element `sgx_sign` does not know.
    #[error(
        "line {line}: unknown element <{element}> (not an Enclave.config.xml setting sgx_sign knows)"
    )]
    UnknownElement {
        /// Line of the element.
        line: u32,
        /// The element.
        element: String,
    },
    /// An element given twice.
    #[error("line {line}: <{element}> is given twice (first on line {first_line})")]
    Duplicate {
        /// Line of the second occurrence.
        line: u32,
        /// The element.
        element: &'static str,
        /// Line of the first occurrence.
        first_line: u32,
    },
    /// A value that is not a number as `sgx_sign` reads numbers.
    #[error(
        "line {line}: <{element}> value {text:?} is not a number (decimal, 0x-hex or 0-octal, no sign, nothing after the digits)"
    )]
    BadNumber {
        /// Line of the element.
        line: u32,
        /// The element.
        element: &'static str,
        /// The text found.
        text: String,
    },
    /// A value outside the element's range.
    #[error("line {line}: <{element}> is {value} ({value:#x}), outside {min:#x}..={max:#x}")]
    OutOfRange {
        /// Line of the element.
        line: u32,
        /// The element.
        element: &'static str,
        /// The value.
        value: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// A setting metadata generation cannot reproduce.
    #[error(
        "line {line}: <{element}> is not supported when generating metadata; sign with Intel sgx_sign"
    )]
    Unsupported {
        /// Line of the element.
        line: u32,
        /// The element.
        element: &'static str,
    },
    /// The JSON signing config is malformed (unknown key, wrong type, value out of range).
    #[error("invalid JSON signing config")]
    Json(#[source] serde_json::Error),
}

/// One `Enclave.config.xml` element: name, smallest and largest value `sgx_sign` accepts.
struct Param {
    name: &'static str,
    min: u64,
    max: u64,
}

const fn p(name: &'static str, min: u64, max: u64) -> Param {
    Param { name, min, max }
}

/// `ENCLAVE_MAX_SIZE_64 / 2`, the largest size `sgx_sign` accepts.
const MAX_SIZE: u64 = 0x1f_ffff_ffff / 2;
/// `STACK_SIZE_MIN`.
const STACK_SIZE_MIN: u64 = 0x2000;

/// The elements `sgx_sign` (SDK 2.1x) knows, with its ranges.
const PARAMS: [Param; 35] = [
    p("ProdID", 0, 0xffff),
    p("ISVSVN", 0, 0xffff),
    p("ReleaseType", 0, 1),
    p("IntelSigned", 0, 1),
    p("ProvisionKey", 0, 1),
    p("LaunchKey", 0, 1),
    p("DisableDebug", 0, 1),
    p("HW", 0, 0x10),
    p("TCSNum", 1, 0xffff_ffff),
    p("TCSMaxNum", 1, 0xffff_ffff),
    p("TCSMinPool", 0, 0xffff_ffff),
    p("TCSPolicy", 0, 1),
    p("StackMaxSize", STACK_SIZE_MIN, MAX_SIZE),
    p("StackMinSize", STACK_SIZE_MIN, MAX_SIZE),
    p("HeapMaxSize", 0, MAX_SIZE),
    p("HeapMinSize", 0, MAX_SIZE),
    p("HeapInitSize", 0, MAX_SIZE),
    p("ReservedMemMaxSize", 0, MAX_SIZE),
    p("ReservedMemMinSize", 0, MAX_SIZE),
    p("ReservedMemInitSize", 0, MAX_SIZE),
    p("ReservedMemExecutable", 0, 1),
    p("MiscSelect", 0, 0xffff_ffff),
    p("MiscMask", 0, 0xffff_ffff),
    p("EnableKSS", 0, 1),
    p("ISVFAMILYID_H", 0, u64::MAX),
    p("ISVFAMILYID_L", 0, u64::MAX),
    p("ISVEXTPRODID_H", 0, u64::MAX),
    p("ISVEXTPRODID_L", 0, u64::MAX),
    p("EnclaveImageAddress", 0x1000, u64::MAX),
    p("ELRangeStartAddress", 0, u64::MAX),
    p("ELRangeSize", 0x1000, u64::MAX),
    p("PKRU", 0, 2),
    p("AMX", 0, 2),
    p("UserRegionSize", 0, MAX_SIZE),
    p("AEXNotify", 0, 1),
];

/// Elements that change the layout, XFRM or KSS identity beyond what [`crate::sdk_gen`]
/// reproduces: refused for generation unless they hold their default 0.
const NOT_GENERATED: [&str; 17] = [
    "ReservedMemMaxSize",
    "ReservedMemMinSize",
    "ReservedMemInitSize",
    "ReservedMemExecutable",
    "UserRegionSize",
    "EnableKSS",
    "ISVEXTPRODID_H",
    "ISVEXTPRODID_L",
    "ISVFAMILYID_H",
    "ISVFAMILYID_L",
    "EnclaveImageAddress",
    "ELRangeStartAddress",
    "ELRangeSize",
    "AEXNotify",
    "PKRU",
    "AMX",
    "HW",
];

/// A parsed `Enclave.config.xml`: the elements given, in document order, with their lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclaveConfig {
    values: Vec<(&'static str, u64, u32)>,
}

impl EnclaveConfig {
    /// Parses and checks `Enclave.config.xml` text as `sgx_sign` does.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let doc = roxmltree::Document::parse(text).map_err(ConfigError::Xml)?;
        let line = |n: roxmltree::Node| doc.text_pos_at(n.range().start).row;
        let root = doc.root_element();
        if root.tag_name().name() != "EnclaveConfiguration" || root.tag_name().namespace().is_some()
        {
            return Err(ConfigError::Root {
                line: line(root),
                found: root.tag_name().name().to_string(),
            });
        }
        let malformed = |n: roxmltree::Node, what| ConfigError::Malformed {
            line: line(n),
            element: n.tag_name().name().to_string(),
            what,
        };
        if root.attributes().len() != 0 {
            return Err(malformed(root, "has attributes; sgx_sign accepts none"));
        }
        let mut values: Vec<(&'static str, u64, u32)> = Vec::new();
        for child in root.children() {
            if child.is_text() {
                if child.text().is_some_and(|t| !t.trim().is_empty()) {
                    return Err(ConfigError::Malformed {
                        line: line(child),
                        element: "EnclaveConfiguration".into(),
                        what: "holds text; only setting elements belong there",
                    });
                }
                continue;
            }
            if !child.is_element() {
                continue; // comments and processing instructions
            }
            let name = child.tag_name().name();
            let l = line(child);
            let param = PARAMS
                .iter()
                .find(|p| p.name == name && child.tag_name().namespace().is_none())
                .ok_or_else(|| ConfigError::UnknownElement {
                    line: l,
                    element: name.to_string(),
                })?;
            if child.attributes().len() != 0 {
                return Err(malformed(child, "has attributes; sgx_sign accepts none"));
            }
            if let Some(&(_, _, first_line)) = values.iter().find(|(n, _, _)| *n == param.name) {
                return Err(ConfigError::Duplicate {
                    line: l,
                    element: param.name,
                    first_line,
                });
            }
            // sgx_sign reads the element's first child, which must be text (tinyxml2 GetText).
            let first = child.first_child();
            let text = match first {
                Some(t) if t.is_text() => t.text().unwrap_or_default(),
                _ => return Err(malformed(child, "has no value")),
            };
            if child.children().any(|c| c.is_element()) {
                return Err(malformed(
                    child,
                    "contains elements; a setting holds a number",
                ));
            }
            let value = strtoull(text).ok_or_else(|| ConfigError::BadNumber {
                line: l,
                element: param.name,
                text: text.to_string(),
            })?;
            if value < param.min || value > param.max {
                return Err(ConfigError::OutOfRange {
                    line: l,
                    element: param.name,
                    value,
                    min: param.min,
                    max: param.max,
                });
            }
            values.push((param.name, value, l));
        }
        Ok(Self { values })
    }

    /// The value of element `name`, if given.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, v, _)| v)
    }

    fn u32_of(&self, name: &str) -> Option<u32> {
        // Every 32-bit element's range is checked at parse time.
        self.get(name).and_then(|v| u32::try_from(v).ok())
    }

    fn u16_of(&self, name: &str) -> Option<u16> {
        self.get(name).and_then(|v| u16::try_from(v).ok())
    }

    /// The SIGSTRUCT fields the file sets, as `sgx_sign`'s `fill_enclave_css` does: ProdID,
    /// ISVSVN, MiscSelect (masked with MiscMask), MiscMask, ReleaseType (TYPE bit 31),
    /// IntelSigned (vendor 0x8086), HW (SWDEFINED), DisableDebug (DEBUG is checked by the
    /// mask), ProvisionKey/LaunchKey/EnableKSS (attributes), ISVFAMILYID/ISVEXTPRODID.
    /// Elements not given leave the field unset.
    pub fn signing_fields(&self) -> SigningFields {
        let misc_mask = self.u32_of("MiscMask");
        let mut f = SigningFields {
            isvprodid: self.u16_of("ProdID"),
            isvsvn: self.u16_of("ISVSVN"),
            miscselect: self
                .u32_of("MiscSelect")
                .map(|s| s & misc_mask.unwrap_or(u32::MAX)),
            miscmask: misc_mask,
            header_type: self
                .get("ReleaseType")
                .map(|r| if r & 1 != 0 { 1 << 31 } else { 0 }),
            vendor: self
                .get("IntelSigned")
                .map(|v| if v == 1 { 0x8086 } else { 0 }),
            swdefined: self.u32_of("HW"),
            ..Default::default()
        };
        if self.get("DisableDebug") == Some(1) {
            f.attributemask_flags = Some(!0x00ff_0000_0000_0000);
        }
        let extra = [
            ("ProvisionKey", flags::PROVISION_KEY),
            ("LaunchKey", flags::EINITTOKEN_KEY),
            ("EnableKSS", flags::KSS),
        ]
        .iter()
        .filter(|(n, _)| self.get(n) == Some(1))
        .fold(0, |acc, (_, b)| acc | b);
        if extra != 0 {
            f.attributes_flags = Some(flags::MODE64BIT | extra);
        }
        let id = |h: &str, l: &str| -> Option<[u8; 16]> {
            if self.get(h).is_none() && self.get(l).is_none() {
                return None;
            }
            let mut b = [0u8; 16];
            let (lo, hi) = b.split_at_mut(8);
            lo.copy_from_slice(&self.get(l).unwrap_or(0).to_le_bytes());
            hi.copy_from_slice(&self.get(h).unwrap_or(0).to_le_bytes());
            Some(b)
        };
        f.isvfamilyid = id("ISVFAMILYID_H", "ISVFAMILYID_L");
        f.isvextprodid = id("ISVEXTPRODID_H", "ISVEXTPRODID_L");
        f
    }

    /// The layout settings for [`crate::sdk_gen::generate`]; settings it cannot reproduce
    /// (reserved memory, user region, KSS, ELRANGE, AEX-Notify, PKRU/AMX, HW) are refused by
    /// name and line unless they hold 0.
    pub fn sdk_config(&self) -> Result<SdkConfig, ConfigError> {
        if let Some(&(element, _, line)) = self
            .values
            .iter()
            .find(|(n, v, _)| *v != 0 && NOT_GENERATED.contains(n))
        {
            return Err(ConfigError::Unsupported { line, element });
        }
        let d = SdkConfig::default();
        let tcs_num = self.u32_of("TCSNum").unwrap_or(d.tcs_num);
        let heap_max_size = self.get("HeapMaxSize").unwrap_or(d.heap_max_size);
        Ok(SdkConfig {
            tcs_num,
            tcs_max_num: self.u32_of("TCSMaxNum").unwrap_or(tcs_num),
            tcs_min_pool: self.u32_of("TCSMinPool").unwrap_or(d.tcs_min_pool),
            tcs_policy: self.u32_of("TCSPolicy").unwrap_or(d.tcs_policy),
            stack_max_size: self.get("StackMaxSize").unwrap_or(d.stack_max_size),
            stack_min_size: self.get("StackMinSize").unwrap_or(d.stack_min_size),
            heap_max_size,
            heap_min_size: self.get("HeapMinSize").unwrap_or(d.heap_min_size),
            heap_init_size: self.get("HeapInitSize").unwrap_or(heap_max_size),
            misc_select: self.u32_of("MiscSelect").unwrap_or(d.misc_select)
                & self.u32_of("MiscMask").unwrap_or(u32::MAX),
        })
    }
}

/// `strtoull(text, &end, 0)` with `*end == '\0'` and no `-`: the numbers `sgx_sign` accepts.
fn strtoull(text: &str) -> Option<u64> {
    if text.contains('-') {
        return None;
    }
    // strtoull skips leading isspace() and one '+'.
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let t = t.strip_prefix('+').unwrap_or(t);
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (t.get(1..)?, 8)
    } else {
        (t, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// A DATE given as `YYYYMMDD` (or `YYYY-MM-DD`), or `0` for none, as SIGSTRUCT DATE
/// (BCD-like hex, see [`date_from_ymd`]).
pub fn parse_date(s: &str) -> Result<u32, String> {
    let s = s.trim().replace('-', "");
    if s == "0" {
        return Ok(0);
    }
    let bad = || format!("date {s:?}: use YYYYMMDD (e.g. 20260131) or 0");
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    match (n(0..4), n(4..6), n(6..8)) {
        (Some(y), Some(m), Some(d)) => date_from_ymd(y, m, d).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// A decimal or `0x`-hex number (`_` separators allowed), as confkube's flags and JSON take.
pub fn parse_number(s: &str) -> Result<u64, String> {
    let s = s.trim().replace('_', "");
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a number (decimal or 0x-hex): {e}"))
}

/// A JSON number or `"0x…"`/decimal string that fits `T`.
fn num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error as _;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        U(u64),
        S(String),
    }
    let Some(n) = Option::<N>::deserialize(d)? else {
        return Ok(None);
    };
    let v = match n {
        N::U(v) => v,
        N::S(s) => parse_number(&s).map_err(D::Error::custom)?,
    };
    let bits = std::mem::size_of::<T>() * 8;
    T::try_from(v)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{v} does not fit in {bits} bits")))
}

fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        U(u64),
        S(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::U(v)) => parse_date(&v.to_string())
            .map(Some)
            .map_err(D::Error::custom),
        Some(N::S(s)) => parse_date(&s).map(Some).map_err(D::Error::custom),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AttributesJson {
    #[serde(default, deserialize_with = "num")]
    flags: Option<u64>,
    #[serde(default, deserialize_with = "num")]
    xfrm: Option<u64>,
}

/// confkube's JSON signing config (docs/enclave.md): every key optional, unknown keys refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningConfigJson {
    #[serde(default, deserialize_with = "num")]
    isvprodid: Option<u16>,
    #[serde(default, deserialize_with = "num")]
    isvsvn: Option<u16>,
    #[serde(default, deserialize_with = "date")]
    date: Option<u32>,
    #[serde(default, deserialize_with = "num")]
    vendor: Option<u32>,
    #[serde(default, deserialize_with = "num")]
    swdefined: Option<u32>,
    #[serde(default, deserialize_with = "num")]
    miscselect: Option<u32>,
    #[serde(default, deserialize_with = "num")]
    miscmask: Option<u32>,
    #[serde(default)]
    attributes: Option<AttributesJson>,
    #[serde(default)]
    attributemask: Option<AttributesJson>,
    #[serde(default)]
    debug_signed: Option<bool>,
}

/// Parses confkube's JSON signing config.
pub fn signing_fields_from_json(text: &str) -> Result<SigningFields, ConfigError> {
    let j: SigningConfigJson = serde_json::from_str(text).map_err(ConfigError::Json)?;
    let a = j.attributes.unwrap_or_default();
    let m = j.attributemask.unwrap_or_default();
    Ok(SigningFields {
        header_type: j.debug_signed.map(|d| if d { 1 << 31 } else { 0 }),
        vendor: j.vendor,
        date: j.date,
        swdefined: j.swdefined,
        miscselect: j.miscselect,
        miscmask: j.miscmask,
        attributes_flags: a.flags,
        attributes_xfrm: a.xfrm,
        attributemask_flags: m.flags,
        attributemask_xfrm: m.xfrm,
        isvprodid: j.isvprodid,
        isvsvn: j.isvsvn,
        isvfamilyid: None,
        isvextprodid: None,
    })
}

/// A signing config file's text: `Enclave.config.xml` when it starts with `<`, JSON otherwise.
pub fn signing_fields_from_text(text: &str) -> Result<SigningFields, ConfigError> {
    if text.trim_start().starts_with('<') {
        EnclaveConfig::parse(text).map(|c| c.signing_fields())
    } else {
        signing_fields_from_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_strtoull_reads_them() {
        assert_eq!(strtoull("0x10"), Some(16));
        assert_eq!(strtoull("0X1f"), Some(31));
        assert_eq!(strtoull("42"), Some(42));
        assert_eq!(strtoull("010"), Some(8));
        assert_eq!(strtoull("0"), Some(0));
        assert_eq!(strtoull("  +7"), Some(7));
        assert_eq!(strtoull("08"), None);
        assert_eq!(strtoull("0x"), None);
        assert_eq!(strtoull("7 "), None);
        assert_eq!(strtoull("-1"), None);
        assert_eq!(strtoull(""), None);
        assert_eq!(strtoull("18446744073709551616"), None);
        assert_eq!(strtoull("0xFFFFFFFFFFFFFFFF"), Some(u64::MAX));
    }

    #[test]
    fn flag_number_and_date_parsers() {
        assert_eq!(parse_number("0x10"), Ok(16));
        assert_eq!(parse_number("42"), Ok(42));
        assert_eq!(parse_number("1_000"), Ok(1000));
        assert!(parse_number("zz").is_err());
        assert_eq!(parse_date("20210312"), Ok(0x2021_0312));
        assert_eq!(parse_date("2021-03-12"), Ok(0x2021_0312));
        assert_eq!(parse_date("0"), Ok(0));
        assert_eq!(
            parse_date("2021031"),
            Err("date \"2021031\": use YYYYMMDD (e.g. 20260131) or 0".to_string())
        );
        assert_eq!(
            parse_date("20211301"),
            Err("date \"20211301\": use YYYYMMDD (e.g. 20260131) or 0".to_string())
        );
    }
}
