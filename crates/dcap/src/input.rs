//! What a user passes as a quote: raw bytes, or hex or base64 text of them. Input that is
//! plainly something else (JSON such as an attestation request, PEM such as a PCK chain, other
//! text) is refused with a message saying what it looks like, so a caller can report a usage
//! error instead of a verification failure.

use base64::Engine as _;

/// Why an input is not a quote (nor hex or base64 text of one). The messages name the input
/// `QUOTE`, as the command line does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteInputError {
    /// The input is empty (or only whitespace).
    #[error("QUOTE is empty — pass the quote bytes, or hex or base64 text of them")]
    Empty,
    /// The input is JSON: often an attestation request, whose `quote` field holds the quote.
    #[error(
        "QUOTE looks like JSON (an attestation request?) — pass the quote bytes, or use the \
         base64 text of its \"quote\" field (jq -r .quote {example} | confkube quote verify - …)"
    )]
    Json {
        /// `FILE` placeholder used in the message's example.
        example: &'static str,
    },
    /// The input is PEM (a certificate or key, not a quote).
    #[error(
        "QUOTE looks like PEM ({label}) — pass the quote bytes, or hex or base64 text of them; \
         certificates belong in --collateral or --root-ca"
    )]
    Pem {
        /// The PEM label (`CERTIFICATE`, `X509 CRL`, …).
        label: String,
    },
    /// Text that is neither hex nor base64.
    #[error(
        "QUOTE is text but neither hex nor base64 (it starts with {start:?}) — pass the quote \
         bytes, or hex or base64 text of them"
    )]
    Text {
        /// The first characters of the text.
        start: String,
    },
}

/// Decodes a quote given as raw bytes, or as hex (optionally `0x`-prefixed, any whitespace) or
/// base64 text (standard or URL-safe alphabet, padded or not, line breaks allowed). Input that
/// is not text is returned unchanged for the verifier to judge; text that is JSON, PEM or
/// neither encoding is an error.
pub fn decode_quote_input(bytes: &[u8]) -> Result<Vec<u8>, QuoteInputError> {
    let Some(text) = as_text(bytes) else {
        return Ok(bytes.to_vec());
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(QuoteInputError::Empty);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Err(QuoteInputError::Json { example: "FILE" });
    }
    if let Some(rest) = trimmed.strip_prefix("-----BEGIN ") {
        let label = rest.split("-----").next().unwrap_or_default().to_string();
        return Err(QuoteInputError::Pem { label });
    }
    let compact: String = trimmed
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let hex_body = compact.strip_prefix("0x").unwrap_or(&compact);
    if hex_body.len().is_multiple_of(2)
        && hex_body.bytes().all(|b| b.is_ascii_hexdigit())
        && let Ok(b) = hex::decode(hex_body)
    {
        return Ok(b);
    }
    // Base64 encoders break lines but never put spaces inside one.
    let one_word_per_line = trimmed.lines().all(|l| !l.trim().contains([' ', '\t']));
    if one_word_per_line {
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        if let Some(b) = engines.iter().find_map(|e| e.decode(&compact).ok()) {
            return Ok(b);
        }
    }
    Err(QuoteInputError::Text {
        start: trimmed.chars().take(24).collect(),
    })
}

/// The input as text, when it is UTF-8 without control characters other than whitespace. A
/// raw quote is never text: its header starts with the version as a little-endian `u16`
/// (bytes `03 00`, `04 00` or `05 00`).
fn as_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars()
        .all(|c| !c.is_control() || c.is_ascii_whitespace())
        .then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_detected() {
        let raw = vec![3u8, 0, 2, 0, 0xff, 0x10];
        assert_eq!(decode_quote_input(&raw), Ok(raw.clone()));
        assert_eq!(decode_quote_input(b"03000200ff10\n"), Ok(raw.clone()));
        assert_eq!(decode_quote_input(b"0x03000200FF10"), Ok(raw.clone()));
        assert_eq!(decode_quote_input(b"03 00 02 00\nff 10"), Ok(raw.clone()));
        assert_eq!(decode_quote_input(b"AwACAP8Q"), Ok(raw.clone()));
        assert_eq!(decode_quote_input(b"AwAC\nAP8Q\n"), Ok(raw.clone()));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff, 0xfe]);
        assert_eq!(
            decode_quote_input(url.as_bytes()),
            Ok(vec![0xfb, 0xff, 0xfe])
        );
        // Raw bytes that happen to be UTF-8 but hold control characters are raw.
        assert_eq!(decode_quote_input(&[3, 0, 2, 0]), Ok(vec![3, 0, 2, 0]));
    }

    #[test]
    fn other_inputs_are_named() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"quote": "AwACAA", "runtimeData": {"data": "", "dataType": "Binary"}}"#,
                "QUOTE looks like JSON (an attestation request?) — pass the quote bytes, or use \
                 the base64 text of its \"quote\" field (jq -r .quote FILE | confkube quote \
                 verify - …)",
            ),
            (
                b"  [1, 2]\n",
                "QUOTE looks like JSON (an attestation request?) — pass the quote bytes, or use \
                 the base64 text of its \"quote\" field (jq -r .quote FILE | confkube quote \
                 verify - …)",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                "QUOTE looks like PEM (CERTIFICATE) — pass the quote bytes, or hex or base64 \
                 text of them; certificates belong in --collateral or --root-ca",
            ),
            (
                b"hello world\n",
                "QUOTE is text but neither hex nor base64 (it starts with \"hello world\") — \
                 pass the quote bytes, or hex or base64 text of them",
            ),
            (
                b"not*base64",
                "QUOTE is text but neither hex nor base64 (it starts with \"not*base64\") — \
                 pass the quote bytes, or hex or base64 text of them",
            ),
            (
                b" \n\t",
                "QUOTE is empty — pass the quote bytes, or hex or base64 text of them",
            ),
        ];
        for (input, want) in cases {
            let e = decode_quote_input(input).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        assert_eq!(
            decode_quote_input(b"-----BEGIN X509 CRL-----\n"),
            Err(QuoteInputError::Pem {
                label: "X509 CRL".into()
            })
        );
    }
}
