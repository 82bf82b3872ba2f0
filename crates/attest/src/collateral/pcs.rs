//! PCS response shapes shared by the PCCS client and the offline PCS-shaped bundle: the signed
//! `{"tcbInfo":…,"signature":…}` bodies, CRL bodies (DER, PEM or PCCS hex), issuer-chain header
//! values (URL-encoded PEM), and the assembly into a checked [`dcap::Collateral`].

use std::collections::BTreeMap;

use dcap::{Collateral, QeIdentity, QuoteCollateralV3, TcbInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use serde_json::value::RawValue;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::{PlatformId, SourceError};

fn invalid(location: &str, reason: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        location: location.to_string(),
        reason: reason.into(),
    }
}

/// Cuts the signed object (`tcbInfo` or `enclaveIdentity`) out of a PCS body byte for byte, and
/// returns it with the hex signature.
pub fn split_signed_body(
    body: &[u8],
    object: &'static str,
    location: &str,
) -> Result<(String, String), SourceError> {
    let map: BTreeMap<String, &RawValue> = serde_json::from_slice(body).map_err(|e| {
        invalid(
            location,
            format!("not a PCS {{\"{object}\":…,\"signature\":…}} body: {e}"),
        )
    })?;
    let signed = map
        .get(object)
        .ok_or_else(|| invalid(location, format!("the body has no \"{object}\" member")))?;
    let text = signed.get();
    if !text.starts_with('{') {
        return Err(invalid(
            location,
            format!("\"{object}\" is not a JSON object"),
        ));
    }
    let signature = map
        .get("signature")
        .ok_or_else(|| invalid(location, "the body has no \"signature\" member"))?;
    let signature: String = serde_json::from_str(signature.get())
        .map_err(|_| invalid(location, "\"signature\" is not a JSON string"))?;
    if signature.len() != 128 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            location,
            format!(
                "\"signature\" is not 64 bytes of hex (r‖s): {} characters",
                signature.len()
            ),
        ));
    }
    Ok((text.to_string(), signature.to_ascii_lowercase()))
}

/// A CRL body as DER: accepts DER, PEM (`X509 CRL`) and hex of DER (PCCS `rootcacrl`), and
/// checks that the result parses as a CRL.
pub fn crl_der(body: &[u8], location: &str) -> Result<Vec<u8>, SourceError> {
    let trimmed = body.trim_ascii();
    let der = if trimmed.first() == Some(&0x30) {
        trimmed.to_vec()
    } else if trimmed.starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::from_pem_slice(trimmed)
            .map_err(|e| invalid(location, format!("not a PEM X509 CRL: {e}")))?
            .as_ref()
            .to_vec()
    } else if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_hexdigit) {
        hex::decode(trimmed).map_err(|e| invalid(location, format!("not a hex CRL: {e}")))?
    } else {
        return Err(invalid(
            location,
            "the CRL is neither DER, PEM nor hex of DER",
        ));
    };
    crl_next_update(&der).map_err(|e| invalid(location, e))?;
    Ok(der)
}

/// The nextUpdate of a DER CRL, as Unix seconds.
fn crl_next_update(der: &[u8]) -> Result<Option<i64>, String> {
    match CertificateRevocationList::from_der(der) {
        Ok(([], crl)) => Ok(crl.next_update().map(|t| t.timestamp())),
        Ok(_) => Err("trailing bytes after the DER CRL".into()),
        Err(e) => Err(format!("not a DER CRL: {e}")),
    }
}

/// An issuer chain from a header value or file: URL-encoded or plain PEM. Returns the PEM text
/// as sent (not re-encoded) after checking that it holds one or more X.509 certificates.
pub fn chain_pem(raw: &[u8], location: &str) -> Result<String, SourceError> {
    // PEM has no '%': decoding plain PEM is the identity, so both forms take one path. A '+'
    // stays a '+' (base64), as Intel's encodeURIComponent-style encoding expects.
    // The text is kept as sent (a trailing newline included): it is compared byte for byte.
    let text = percent_encoding::percent_decode(raw)
        .decode_utf8()
        .map_err(|_| invalid(location, "the URL-decoded issuer chain is not UTF-8"))?
        .into_owned();
    if !text.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
        return Err(invalid(
            location,
            "the issuer chain is not a (URL-encoded) PEM certificate chain",
        ));
    }
    let mut n = 0usize;
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let cert =
            cert.map_err(|e| invalid(location, format!("the issuer chain is not PEM: {e}")))?;
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
            invalid(
                location,
                format!("certificate {} of the issuer chain: {e}", n + 1),
            )
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(invalid(location, "the issuer chain holds no certificate"));
    }
    Ok(text)
}

/// The parts of a PCS-shaped collateral set, each already decoded.
pub(crate) struct Parts {
    pub(crate) tcb: (String, String),
    pub(crate) tcb_chain: String,
    pub(crate) qe: (String, String),
    pub(crate) qe_chain: String,
    pub(crate) pck_crl: Vec<u8>,
    pub(crate) pck_crl_chain: String,
    pub(crate) root_ca_crl: Vec<u8>,
    pub(crate) pck_certificate_chain: Option<String>,
}

/// Builds the collateral from PCS parts and checks it (see [`check`]).
pub(crate) fn assemble(
    parts: Parts,
    id: &PlatformId,
    tcb_location: &str,
    qe_location: &str,
) -> Result<Collateral, SourceError> {
    let doc = QuoteCollateralV3 {
        pck_crl_issuer_chain: parts.pck_crl_chain,
        root_ca_crl: hex::encode(&parts.root_ca_crl),
        pck_crl: hex::encode(&parts.pck_crl),
        tcb_info_issuer_chain: parts.tcb_chain,
        tcb_info: parts.tcb.0,
        tcb_info_signature: parts.tcb.1,
        qe_identity_issuer_chain: parts.qe_chain,
        qe_identity: parts.qe.0,
        qe_identity_signature: parts.qe.1,
        pck_certificate_chain: parts.pck_certificate_chain,
    };
    let c = Collateral::from_document(doc).map_err(|e| invalid(tcb_location, e.to_string()))?;
    check(&c, id, tcb_location, qe_location)?;
    Ok(c)
}

/// Checks what a source must: the TCB info and QE identity parse, the TCB info is for `id`'s
/// FMSPC, and every CRL parses. Returns the earliest nextUpdate.
pub(crate) fn check(
    c: &Collateral,
    id: &PlatformId,
    tcb_location: &str,
    qe_location: &str,
) -> Result<i64, SourceError> {
    let doc = c.document();
    let tcb = TcbInfo::parse(&doc.tcb_info)
        .map_err(|e| invalid(tcb_location, format!("TCB info: {e}")))?;
    if tcb.fmspc != id.fmspc {
        return Err(invalid(
            tcb_location,
            format!(
                "the TCB info is for FMSPC {}, not {}",
                hex::encode(tcb.fmspc),
                id.fmspc_hex()
            ),
        ));
    }
    if tcb.tdx.is_some() != id.tdx {
        let (want, got) = if id.tdx {
            ("TDX", "SGX")
        } else {
            ("SGX", "TDX")
        };
        return Err(invalid(
            tcb_location,
            format!("the TCB info is {got} TCB info; {id} needs {want} TCB info"),
        ));
    }
    let qe = QeIdentity::parse(&doc.qe_identity)
        .map_err(|e| invalid(qe_location, format!("QE identity: {e}")))?;
    let mut earliest = tcb.next_update.min(qe.next_update);
    for (field, hex_der) in [("root_ca_crl", &doc.root_ca_crl), ("pck_crl", &doc.pck_crl)] {
        if hex_der.is_empty() {
            continue;
        }
        let der = hex::decode(hex_der.trim())
            .map_err(|e| invalid(tcb_location, format!("{field}: {e}")))?;
        if let Some(next) =
            crl_next_update(&der).map_err(|e| invalid(tcb_location, format!("{field}: {e}")))?
        {
            earliest = earliest.min(next);
        }
    }
    Ok(earliest)
}

/// The earliest nextUpdate (Unix seconds) of the TCB info, the QE identity and the CRLs: the
/// instant until which the collateral may be cached. Errors when a part does not parse.
pub fn collateral_next_update(c: &Collateral) -> Result<i64, SourceError> {
    let doc = c.document();
    let (fmspc, tdx) = TcbInfo::parse(&doc.tcb_info)
        .map(|t| (t.fmspc, t.tdx.is_some()))
        .map_err(|e| invalid("the collateral document", format!("TCB info: {e}")))?;
    check(
        c,
        &PlatformId::new(fmspc, super::PckCaType::Processor).with_tdx(tdx),
        "the collateral document",
        "the collateral document",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_body_is_cut_byte_for_byte() {
        let body = format!(
            "{{ \"signature\" : \"AB{}\",\n \"tcbInfo\":{{\"b\": 1,  \"a\":[ 2 ]}}}}",
            "0".repeat(126)
        );
        let body = body.as_bytes();
        let (text, sig) = split_signed_body(body, "tcbInfo", "u").unwrap();
        assert_eq!(text, r#"{"b": 1,  "a":[ 2 ]}"#);
        assert_eq!(&sig[..4], "ab00");
    }

    #[test]
    fn signed_body_errors() {
        let e = |b: &[u8]| {
            split_signed_body(b, "tcbInfo", "U")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(b"nope"),
            "invalid collateral from U: not a PCS {\"tcbInfo\":…,\"signature\":…} body: expected \
             ident at line 1 column 2"
        );
        assert_eq!(
            e(br#"{"signature":"00"}"#),
            "invalid collateral from U: the body has no \"tcbInfo\" member"
        );
        assert_eq!(
            e(br#"{"tcbInfo":[1]}"#),
            "invalid collateral from U: \"tcbInfo\" is not a JSON object"
        );
        assert_eq!(
            e(br#"{"tcbInfo":{}}"#),
            "invalid collateral from U: the body has no \"signature\" member"
        );
        assert_eq!(
            e(br#"{"tcbInfo":{},"signature":5}"#),
            "invalid collateral from U: \"signature\" is not a JSON string"
        );
        assert_eq!(
            e(br#"{"tcbInfo":{},"signature":"0g"}"#),
            "invalid collateral from U: \"signature\" is not 64 bytes of hex (r‖s): 2 characters"
        );
    }

    #[test]
    fn crl_and_chain_errors() {
        assert_eq!(
            crl_der(b"hello", "U").unwrap_err().to_string(),
            "invalid collateral from U: the CRL is neither DER, PEM nor hex of DER"
        );
        assert_eq!(
            crl_der(b"3000", "U").unwrap_err().to_string(),
            "invalid collateral from U: not a DER CRL: Parsing requires 1 bytes/chars"
        );
        assert_eq!(
            crl_der(b"-----BEGIN X509 CRL-----\n-----END X509 CRL-----", "U")
                .unwrap_err()
                .to_string(),
            "invalid collateral from U: not a DER CRL: Parsing requires 1 bytes/chars"
        );
        assert_eq!(
            chain_pem(b"%ZZgarbage", "H").unwrap_err().to_string(),
            "invalid collateral from H: the issuer chain is not a (URL-encoded) PEM certificate \
             chain"
        );
        assert_eq!(
            chain_pem(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "H"
            )
            .unwrap_err()
            .to_string(),
            "invalid collateral from H: certificate 1 of the issuer chain: Parsing Error: \
             Der(UnexpectedTag { expected: Some(Tag(16)), actual: Tag(0) })"
        );
    }
}
