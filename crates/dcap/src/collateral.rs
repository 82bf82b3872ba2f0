//! Collateral in the dcap-qvl `QuoteCollateralV3` JSON encoding (spec §6.3): PEM chains, hex DER
//! CRLs, the exact signed `tcbInfo` / `enclaveIdentity` text, and hex r‖s signatures.
//!
//! Decoding checks only the encoding (JSON, hex); every statement the collateral makes is checked
//! by the verifier. The signed texts are kept byte for byte: re-serializing them would break their
//! signatures.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

/// Why a collateral document could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CollateralError {
    /// Not JSON of the `QuoteCollateralV3` shape (serde_json's error, shown in the message).
    #[error("collateral is not QuoteCollateralV3 JSON: {0}")]
    Json(crate::x509::ParseCause),
    /// A hex field does not decode.
    #[error("collateral field {field} is not valid hex: {error}")]
    Hex {
        /// The JSON field.
        field: &'static str,
        /// What is wrong (shown in the message).
        error: hex::FromHexError,
    },
}

/// The JSON document, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteCollateralV3 {
    /// PEM: the PCK CRL issuer (Processor/Platform CA) and the root.
    pub pck_crl_issuer_chain: String,
    /// Hex of the DER root CA CRL; empty when absent.
    pub root_ca_crl: String,
    /// Hex of the DER PCK CRL; empty when absent.
    pub pck_crl: String,
    /// PEM: TCB Signing certificate and root.
    pub tcb_info_issuer_chain: String,
    /// The exact signed `tcbInfo` object text.
    pub tcb_info: String,
    /// Hex r‖s.
    pub tcb_info_signature: String,
    /// PEM: TCB Signing certificate and root.
    pub qe_identity_issuer_chain: String,
    /// The exact signed `enclaveIdentity` object text.
    pub qe_identity: String,
    /// Hex r‖s.
    pub qe_identity_signature: String,
    /// PEM: an out-of-band PCK chain, for quotes whose certification data carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pck_certificate_chain: Option<String>,
}

/// Decoded collateral: the document plus its binary fields, and a content digest that keys the
/// verified-collateral cache.
#[derive(Debug, Clone)]
pub struct Collateral {
    doc: QuoteCollateralV3,
    pub(crate) root_ca_crl: Vec<u8>,
    pub(crate) pck_crl: Vec<u8>,
    pub(crate) tcb_info_signature: Vec<u8>,
    pub(crate) qe_identity_signature: Vec<u8>,
    digest: [u8; 32],
}

fn unhex(field: &'static str, s: &str) -> Result<Vec<u8>, CollateralError> {
    hex::decode(s.trim()).map_err(|error| CollateralError::Hex { field, error })
}

impl Collateral {
    /// Decodes the JSON text.
    pub fn from_json(text: &[u8]) -> Result<Self, CollateralError> {
        let doc: QuoteCollateralV3 =
            serde_json::from_slice(text).map_err(|e| CollateralError::Json(e.into()))?;
        Self::from_document(doc)
    }

    /// Decodes an already-deserialized document.
    pub fn from_document(doc: QuoteCollateralV3) -> Result<Self, CollateralError> {
        let root_ca_crl = unhex("root_ca_crl", &doc.root_ca_crl)?;
        let pck_crl = unhex("pck_crl", &doc.pck_crl)?;
        let tcb_info_signature = unhex("tcb_info_signature", &doc.tcb_info_signature)?;
        let qe_identity_signature = unhex("qe_identity_signature", &doc.qe_identity_signature)?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        for part in [
            doc.pck_crl_issuer_chain.as_bytes(),
            &root_ca_crl,
            &pck_crl,
            doc.tcb_info_issuer_chain.as_bytes(),
            doc.tcb_info.as_bytes(),
            &tcb_info_signature,
            doc.qe_identity_issuer_chain.as_bytes(),
            doc.qe_identity.as_bytes(),
            &qe_identity_signature,
            doc.pck_certificate_chain
                .as_deref()
                .unwrap_or("")
                .as_bytes(),
        ] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        Ok(Self {
            doc,
            root_ca_crl,
            pck_crl,
            tcb_info_signature,
            qe_identity_signature,
            digest,
        })
    }

    /// The JSON document.
    pub fn document(&self) -> &QuoteCollateralV3 {
        &self.doc
    }

    /// Encodes as `QuoteCollateralV3` JSON.
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings cannot fail.
        serde_json::to_string_pretty(&self.doc).unwrap_or_default()
    }

    /// SHA-256 over every field: equal digests mean equal collateral.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> QuoteCollateralV3 {
        QuoteCollateralV3 {
            pck_crl_issuer_chain: String::new(),
            root_ca_crl: "3000".into(),
            pck_crl: String::new(),
            tcb_info_issuer_chain: String::new(),
            tcb_info: "{}".into(),
            tcb_info_signature: "00".into(),
            qe_identity_issuer_chain: String::new(),
            qe_identity: "{}".into(),
            qe_identity_signature: "00".into(),
            pck_certificate_chain: None,
        }
    }

    #[test]
    fn json_round_trip_and_digest() {
        let c = Collateral::from_document(doc()).unwrap();
        let back = Collateral::from_json(c.to_json().as_bytes()).unwrap();
        assert_eq!(back.document(), c.document());
        assert_eq!(back.digest(), c.digest());
        let mut d = doc();
        d.tcb_info = "{ }".into();
        assert_ne!(Collateral::from_document(d).unwrap().digest(), c.digest());
    }

    #[test]
    fn bad_encodings_are_named() {
        let mut d = doc();
        d.pck_crl = "zz".into();
        assert_eq!(
            Collateral::from_document(d).unwrap_err().to_string(),
            "collateral field pck_crl is not valid hex: Invalid character 'z' at position 0"
        );
        let e = Collateral::from_json(b"{\"tcb_info\": 1}").unwrap_err();
        assert!(matches!(e, CollateralError::Json(_)), "{e}");
        let e = Collateral::from_json(b"not json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "collateral is not QuoteCollateralV3 JSON: expected ident at line 1 column 2"
        );
    }
}
