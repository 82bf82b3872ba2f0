//! Exact Kubernetes quantity arithmetic for EPC sizes and device counts.
//!
//! Kubernetes quantities (`resource.Quantity`) are decimal numbers with an optional suffix:
//! binary SI (`Ki`..`Ei`), decimal SI (`n`, `u`, `m`, `k`..`E`) or a decimal exponent (`e3`, `E-2`).
//! SGX resources are integers (bytes of EPC, or device counts), so this module parses a quantity
//! into an exact `u64` and refuses anything fractional, negative or too large, instead of
//! rounding the way the API server does for display.

use thiserror::Error;

/// 2^20 bytes: the unit of the `*_sgx_epc_mem_in_MiB` alias resources.
pub const MIB: u64 = 1 << 20;

/// Why a quantity string is not a usable SGX amount.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuantityError {
    /// The text does not follow the Kubernetes quantity grammar.
    #[error("is not a Kubernetes quantity")]
    Malformed,
    /// The value is below zero.
    #[error("is negative")]
    Negative,
    /// The value has a fractional part (for example `1.5`, `100m`, `0.1Ki`).
    #[error("is not a whole number")]
    NotIntegral,
    /// The value does not fit in 64 bits.
    #[error("is too large")]
    TooLarge,
}

/// Which kind of suffix a quantity carried; the MiB aliases accept only plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Suffix {
    /// No suffix, or only a decimal exponent (`10`, `1e1`).
    None,
    /// A binary SI suffix (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`).
    Binary,
    /// A decimal SI suffix (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`).
    Decimal,
}

/// A parsed quantity: its exact integral value and the suffix kind it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The exact value (bytes for EPC, a count for devices).
    pub value: u64,
    /// The suffix kind the text used.
    pub suffix: Suffix,
}

/// Longest digit run accepted; longer inputs are refused before any arithmetic.
const MAX_DIGITS: usize = 38;

/// Parses a Kubernetes quantity into an exact non-negative integer.
///
/// `"10Mi"` → 10485760, `"1e3"` → 1000, `"0.5Ki"` → 512, `"1.5"` → [`QuantityError::NotIntegral`].
pub fn parse(text: &str) -> Result<Parsed, QuantityError> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    let number_len = rest
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(rest.len());
    let (number, suffix_text) = rest.split_at(number_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(QuantityError::Malformed);
    }
    let digits = int_part.trim_start_matches('0').len() + frac_part.len();
    if digits > MAX_DIGITS {
        return Err(QuantityError::TooLarge);
    }
    let mut mantissa: u128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa * 10 + u128::from(b - b'0');
    }
    let (suffix, exp10, exp2) = parse_suffix(suffix_text)?;
    if mantissa == 0 {
        return Ok(Parsed { value: 0, suffix });
    }
    if negative {
        return Err(QuantityError::Negative);
    }
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| QuantityError::TooLarge)?;
    let exp10 = exp10 - frac_len;
    let scaled = mantissa
        .checked_mul(1u128 << exp2)
        .ok_or(QuantityError::TooLarge)?;
    let value = if exp10 >= 0 {
        let factor = pow10(exp10).ok_or(QuantityError::TooLarge)?;
        scaled.checked_mul(factor).ok_or(QuantityError::TooLarge)?
    } else {
        // A non-zero value below 10^39 cannot be divisible by a power of ten that overflows.
        let divisor = pow10(-exp10).ok_or(QuantityError::NotIntegral)?;
        if scaled % divisor != 0 {
            return Err(QuantityError::NotIntegral);
        }
        scaled / divisor
    };
    let value = u64::try_from(value).map_err(|_| QuantityError::TooLarge)?;
    Ok(Parsed { value, suffix })
}

fn pow10(exp: i64) -> Option<u128> {
    let exp = u32::try_from(exp).ok()?;
    10u128.checked_pow(exp)
}

/// Returns (suffix kind, decimal exponent, binary exponent).
fn parse_suffix(s: &str) -> Result<(Suffix, i64, u32), QuantityError> {
    let binary = |e: u32| Ok((Suffix::Binary, 0, e));
    let decimal = |e: i64| Ok((Suffix::Decimal, e, 0));
    match s {
        "" => Ok((Suffix::None, 0, 0)),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            let exp = s
                .strip_prefix('e')
                .or_else(|| s.strip_prefix('E'))
                .ok_or(QuantityError::Malformed)?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(QuantityError::Malformed);
            }
            let exp: i64 = exp.parse().map_err(|_| QuantityError::Malformed)?;
            Ok((Suffix::None, exp, 0))
        }
    }
}

/// Formats bytes the way Kubernetes writes a binary-SI quantity: the largest binary suffix that
/// divides the value exactly, else a plain integer (`10485760` → `10Mi`, `1500` → `1500`).
pub fn format_binary_si(value: u64) -> String {
    if value == 0 {
        return "0".to_owned();
    }
    for (shift, suffix) in [
        (60, "Ei"),
        (50, "Pi"),
        (40, "Ti"),
        (30, "Gi"),
        (20, "Mi"),
        (10, "Ki"),
    ] {
        if value.is_multiple_of(1u64 << shift) {
            return format!("{}{suffix}", value >> shift);
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_quantities() {
        let cases: &[(&str, u64, Suffix)] = &[
            ("0", 0, Suffix::None),
            ("10", 10, Suffix::None),
            ("+10", 10, Suffix::None),
            ("10.", 10, Suffix::None),
            ("10Mi", 10 * MIB, Suffix::Binary),
            ("0.5Ki", 512, Suffix::Binary),
            (".5Ki", 512, Suffix::Binary),
            ("98566144", 98_566_144, Suffix::None),
            ("1k", 1000, Suffix::Decimal),
            ("1.5k", 1500, Suffix::Decimal),
            ("1000m", 1, Suffix::Decimal),
            ("1e3", 1000, Suffix::None),
            ("1E3", 1000, Suffix::None),
            ("100e-2", 1, Suffix::None),
            ("15Ei", 15 << 60, Suffix::Binary),
            ("-0", 0, Suffix::None),
        ];
        for (text, value, suffix) in cases {
            assert_eq!(
                parse(text),
                Ok(Parsed {
                    value: *value,
                    suffix: *suffix
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_quantities() {
        let cases: &[(&str, QuantityError)] = &[
            ("", QuantityError::Malformed),
            ("-", QuantityError::Malformed),
            (".", QuantityError::Malformed),
            ("1.2.3", QuantityError::Malformed),
            ("10MiB", QuantityError::Malformed),
            ("10 Mi", QuantityError::Malformed),
            ("ten", QuantityError::Malformed),
            ("1e", QuantityError::Malformed),
            ("1e99999", QuantityError::Malformed),
            ("-10", QuantityError::Negative),
            ("-1Mi", QuantityError::Negative),
            ("1.5", QuantityError::NotIntegral),
            ("100m", QuantityError::NotIntegral),
            ("12e-1", QuantityError::NotIntegral),
            ("0.0001Mi", QuantityError::NotIntegral),
            ("1e-999", QuantityError::NotIntegral),
            ("16Ei", QuantityError::TooLarge),
            ("1e20", QuantityError::TooLarge),
            (
                "123456789012345678901234567890123456789",
                QuantityError::TooLarge,
            ),
        ];
        for (text, err) in cases {
            assert_eq!(parse(text), Err(err.clone()), "{text}");
        }
    }

    #[test]
    fn formats_binary_si() {
        assert_eq!(format_binary_si(0), "0");
        assert_eq!(format_binary_si(10 * MIB), "10Mi");
        assert_eq!(format_binary_si(98_566_144), "94Mi");
        assert_eq!(format_binary_si(1536), "1536");
        assert_eq!(format_binary_si(3072), "3Ki");
        assert_eq!(format_binary_si(1500), "1500");
        assert_eq!(format_binary_si(1 << 30), "1Gi");
        assert_eq!(format_binary_si(3 << 60), "3Ei");
    }
}
