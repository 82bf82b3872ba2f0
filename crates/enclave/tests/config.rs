#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! `Enclave.config.xml` (issue 12 item 3) and the JSON signing config (REVIEW §1.2): real
//! vector files, comments, CDATA, white space, duplicates, overflow, unknown elements; every
//! error asserted with its exact message (element and line).

use enclave::config::{
    ConfigError, EnclaveConfig, signing_fields_from_json, signing_fields_from_text,
};
use enclave::sdk_gen::SdkConfig;

fn err(xml: &str) -> String {
    EnclaveConfig::parse(xml).unwrap_err().to_string()
}

#[test]
fn real_vector_configs_with_comments() {
    let Some(enchecap) = testdata::read("enclaves/enchecap-sample-enclave/Enclave.config.xml")
    else {
        return;
    };
    let swiss = testdata::read("enclaves/swisstronik-enclave/Enclave.config.xml").unwrap();
    let c = EnclaveConfig::parse(std::str::from_utf8(&enchecap).unwrap()).unwrap();
    assert_eq!(
        c.sdk_config().unwrap(),
        SdkConfig {
            tcs_num: 10,
            tcs_max_num: 10,
            tcs_min_pool: 1,
            tcs_policy: 1,
            stack_max_size: 0x40000,
            stack_min_size: 0x2000,
            heap_max_size: 0x100000,
            heap_min_size: 0x1000,
            heap_init_size: 0x100000,
            misc_select: 0,
        }
    );
    let f = c.signing_fields();
    assert_eq!(
        (f.isvprodid, f.isvsvn, f.miscselect, f.miscmask),
        (Some(0), Some(0), Some(0), Some(0xffff_ffff))
    );
    assert_eq!(f.attributemask_flags, None, "DisableDebug is 0");
    let c = EnclaveConfig::parse(std::str::from_utf8(&swiss).unwrap()).unwrap();
    assert_eq!(c.sdk_config().unwrap().tcs_num, 1);
    assert_eq!(c.get("StackMaxSize"), Some(0x40000));
}

#[test]
fn a_commented_out_setting_does_not_count() {
    // The string-search reader took the first <HeapMaxSize>, inside the comment.
    let c = EnclaveConfig::parse(
        "<EnclaveConfiguration>\n  <!-- <HeapMaxSize>0x900000</HeapMaxSize> -->\n  \
         <HeapMaxSize>0x100000</HeapMaxSize>\n  <!-- <UserRegionSize>0x1000</UserRegionSize> -->\n\
         </EnclaveConfiguration>",
    )
    .unwrap();
    assert_eq!(c.get("HeapMaxSize"), Some(0x100000));
    assert_eq!(c.sdk_config().unwrap().heap_max_size, 0x100000);
}

#[test]
fn cdata_entities_and_white_space() {
    let c = EnclaveConfiguration(
        "<ProdID><![CDATA[0x12]]></ProdID>\n<ISVSVN>&#x33;</ISVSVN>\n<TCSNum>  4</TCSNum>\n<MiscMask>+017</MiscMask>",
    );
    assert_eq!(c.get("ProdID"), Some(0x12));
    assert_eq!(c.get("ISVSVN"), Some(3));
    assert_eq!(
        c.get("TCSNum"),
        Some(4),
        "strtoull skips leading white space"
    );
    assert_eq!(
        c.get("MiscMask"),
        Some(0o17),
        "0-prefix is octal, as strtoull base 0"
    );
    // Trailing white space leaves *end != '\0' in sgx_sign: refused there, refused here.
    assert_eq!(
        err("<EnclaveConfiguration>\n<ProdID>5 </ProdID></EnclaveConfiguration>"),
        "line 2: <ProdID> value \"5 \" is not a number (decimal, 0x-hex or 0-octal, no sign, nothing after the digits)"
    );
}

#[allow(non_snake_case)]
fn EnclaveConfiguration(inner: &str) -> EnclaveConfig {
    EnclaveConfig::parse(&format!(
        "<EnclaveConfiguration>\n{inner}\n</EnclaveConfiguration>"
    ))
    .unwrap()
}

#[test]
fn every_error_names_element_and_line() {
    assert_eq!(
        err("<EnclaveConfiguration>\n<ProdID>70000</ProdID>\n</EnclaveConfiguration>"),
        "line 2: <ProdID> is 70000 (0x11170), outside 0x0..=0xffff"
    );
    assert!(matches!(
        EnclaveConfig::parse("<EnclaveConfiguration><ProdID>70000</ProdID></EnclaveConfiguration>"),
        Err(ConfigError::OutOfRange {
            line: 1,
            element: "ProdID",
            value: 70000,
            min: 0,
            max: 0xffff
        })
    ));
    assert_eq!(
        err("<EnclaveConfiguration>\n\n<MiscMask>0x100000000</MiscMask></EnclaveConfiguration>"),
        "line 3: <MiscMask> is 4294967296 (0x100000000), outside 0x0..=0xffffffff"
    );
    assert_eq!(
        err(
            "<EnclaveConfiguration>\n<ProdID>1</ProdID>\n<ISVSVN>1</ISVSVN>\n<ProdID>2</ProdID>\n</EnclaveConfiguration>"
        ),
        "line 4: <ProdID> is given twice (first on line 2)"
    );
    assert_eq!(
        err("<EnclaveConfiguration>\n<ProdId>1</ProdId></EnclaveConfiguration>"),
        "line 2: unknown element <ProdId> (not an Enclave.config.xml setting sgx_sign knows)"
    );
    assert_eq!(
        err("<EnclaveConfiguration><TCSNum>ten</TCSNum></EnclaveConfiguration>"),
        "line 1: <TCSNum> value \"ten\" is not a number (decimal, 0x-hex or 0-octal, no sign, nothing after the digits)"
    );
    assert_eq!(
        err("<EnclaveConfiguration><ISVSVN>-1</ISVSVN></EnclaveConfiguration>"),
        "line 1: <ISVSVN> value \"-1\" is not a number (decimal, 0x-hex or 0-octal, no sign, nothing after the digits)"
    );
    assert_eq!(
        err("<EnclaveConfiguration><TCSNum>0</TCSNum></EnclaveConfiguration>"),
        "line 1: <TCSNum> is 0 (0x0), outside 0x1..=0xffffffff"
    );
    assert_eq!(
        err("<EnclaveConfiguration>\n <ProdID/></EnclaveConfiguration>"),
        "line 2: <ProdID> has no value"
    );
    assert_eq!(
        err("<EnclaveConfiguration><ProdID><!-- x -->1</ProdID></EnclaveConfiguration>"),
        "line 1: <ProdID> has no value"
    );
    assert_eq!(
        err("<EnclaveConfiguration><ProdID id=\"1\">1</ProdID></EnclaveConfiguration>"),
        "line 1: <ProdID> has attributes; sgx_sign accepts none"
    );
    assert_eq!(
        err("<EnclaveConfiguration><ProdID>1<x/></ProdID></EnclaveConfiguration>"),
        "line 1: <ProdID> contains elements; a setting holds a number"
    );
    assert_eq!(
        err("<EnclaveConfiguration>text<ProdID>1</ProdID></EnclaveConfiguration>"),
        "line 1: <EnclaveConfiguration> holds text; only setting elements belong there"
    );
    assert_eq!(
        err("<!-- c -->\n<Enclave><ProdID>1</ProdID></Enclave>"),
        "line 2: the root element is <Enclave>, expected <EnclaveConfiguration>"
    );
    let e =
        EnclaveConfig::parse("<EnclaveConfiguration><TCSNum>3</EnclaveConfiguration>").unwrap_err();
    assert!(matches!(e, ConfigError::Xml(_)));
    assert_eq!(e.to_string(), "not well-formed XML");
    assert_eq!(
        std::error::Error::source(&e).unwrap().to_string(),
        "expected 'TCSNum' tag, not 'EnclaveConfiguration' at 1:32"
    );
}

#[test]
fn signing_fields_from_xml() {
    let f = EnclaveConfig::parse(
        "<EnclaveConfiguration><ProdID>5</ProdID><ISVSVN>2</ISVSVN><MiscSelect>1</MiscSelect>\
         <MiscMask>0xFFFFFFFF</MiscMask><DisableDebug>1</DisableDebug></EnclaveConfiguration>",
    )
    .unwrap()
    .signing_fields();
    assert_eq!(f.isvprodid, Some(5));
    assert_eq!(f.isvsvn, Some(2));
    assert_eq!(f.miscselect, Some(1));
    assert_eq!(f.miscmask, Some(0xffff_ffff));
    assert_eq!(f.attributemask_flags, Some(0xff00_ffff_ffff_ffff));
    assert!(signing_fields_from_text("<ProdID>x</ProdID>").is_err());
    let f = EnclaveConfiguration(
        "<ReleaseType>1</ReleaseType><IntelSigned>1</IntelSigned><ProvisionKey>1</ProvisionKey>\
         <ISVFAMILYID_L>0x0102</ISVFAMILYID_L><ISVFAMILYID_H>0xff</ISVFAMILYID_H>",
    )
    .signing_fields();
    assert_eq!(f.header_type, Some(1 << 31));
    assert_eq!(f.vendor, Some(0x8086));
    assert_eq!(f.attributes_flags, Some(0x4 | 0x10));
    let mut id = [0u8; 16];
    id[0] = 2;
    id[1] = 1;
    id[8] = 0xff;
    assert_eq!(f.isvfamilyid, Some(id));
}

#[test]
fn sdk_config_from_xml() {
    let c = EnclaveConfiguration(
        "<TCSNum>10</TCSNum><TCSPolicy>1</TCSPolicy>\
         <StackMaxSize>0x40000</StackMaxSize><HeapMaxSize>0x100000</HeapMaxSize>\
         <MiscSelect>3</MiscSelect><MiscMask>0xFFFFFFFE</MiscMask>",
    )
    .sdk_config()
    .unwrap();
    assert_eq!(
        c,
        SdkConfig {
            tcs_num: 10,
            tcs_max_num: 10,
            heap_init_size: 0x100000,
            misc_select: 2,
            ..SdkConfig::default()
        }
    );
    let e = EnclaveConfiguration("<UserRegionSize>0x1000</UserRegionSize>")
        .sdk_config()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 2: <UserRegionSize> is not supported when generating metadata; sign with Intel sgx_sign"
    );
    // The default value is harmless.
    assert!(
        EnclaveConfiguration("<UserRegionSize>0</UserRegionSize>")
            .sdk_config()
            .is_ok_and(|c| c == SdkConfig::default())
    );
}

#[test]
fn json_config() {
    let f = signing_fields_from_json(
        r#"{"isvprodid": 3, "isvsvn": "0x2", "date": "20250101",
            "attributes": {"flags": "0x6"}, "debug_signed": true}"#,
    )
    .unwrap();
    assert_eq!(f.isvprodid, Some(3));
    assert_eq!(f.isvsvn, Some(2));
    assert_eq!(f.date, Some(0x2025_0101));
    assert_eq!(f.attributes_flags, Some(6));
    assert_eq!(f.header_type, Some(1 << 31));
    let f =
        signing_fields_from_json(r#"{"date": 20210312, "attributemask": {"xfrm": 27}}"#).unwrap();
    assert_eq!(
        (f.date, f.attributemask_xfrm),
        (Some(0x2021_0312), Some(27))
    );
    let e = signing_fields_from_json(r#"{"isvprodd": 1}"#).unwrap_err();
    assert_eq!(e.to_string(), "invalid JSON signing config");
    let src = |e: &ConfigError| std::error::Error::source(e).unwrap().to_string();
    assert_eq!(
        src(&e),
        "unknown field `isvprodd`, expected one of `isvprodid`, `isvsvn`, `date`, `vendor`, \
         `swdefined`, `miscselect`, `miscmask`, `attributes`, `attributemask`, `debug_signed` \
         at line 1 column 11"
    );
    let e = signing_fields_from_json(r#"{"isvsvn": 70000}"#).unwrap_err();
    assert_eq!(src(&e), "70000 does not fit in 16 bits at line 1 column 17");
    let e = signing_fields_from_json(r#"{"attributes": {"flag": 1}}"#).unwrap_err();
    assert!(
        src(&e).starts_with("unknown field `flag`, expected `flags` or `xfrm`"),
        "{}",
        src(&e)
    );
    let e = signing_fields_from_json(r#"{"date": "2025-13-01"}"#).unwrap_err();
    assert!(
        src(&e).starts_with("date \"20251301\": use YYYYMMDD"),
        "{}",
        src(&e)
    );
    let e = signing_fields_from_json(r#"{"debug_signed": 1}"#).unwrap_err();
    assert!(
        src(&e).starts_with("invalid type: integer `1`, expected a boolean"),
        "{}",
        src(&e)
    );
}
