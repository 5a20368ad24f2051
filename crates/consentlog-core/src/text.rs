//! The strict textual forms shared by the formats (docs/FORMAT.md §1): names (controllers,
//! purposes, log origins) and canonical decimal numbers.

/// Why a name (controller, purpose or origin) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than `max` bytes.
    #[error("{what} must be 1-{max} bytes, got {len}")]
    Length {
        /// What the name is for ("controller", "purpose", "origin").
        what: String,
        /// Its length in bytes.
        len: usize,
        /// The most bytes allowed.
        max: usize,
    },
    /// A character outside `[a-z0-9._:/-]`.
    #[error("{what} has character {c:?} outside [a-z0-9._:/-]")]
    Character {
        /// What the name is for.
        what: String,
        /// The first character refused.
        c: char,
    },
}

/// `s` is 1 to `max` bytes of `[a-z0-9._:/-]`; `what` names it in the error.
pub fn check_name_len(what: &str, s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() || s.len() > max {
        return Err(NameError::Length {
            what: what.to_string(),
            len: s.len(),
            max,
        });
    }
    if let Some(c) = s
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | ':' | '/' | '-'))
    {
        return Err(NameError::Character {
            what: what.to_string(),
            c,
        });
    }
    Ok(())
}

/// Why a decimal number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// Empty, a character other than `0-9`, or a leading zero.
    NotDecimal,
    /// More than `u64::MAX`.
    OutOfRange,
}

/// Parses a canonical decimal `u64`: ASCII digits only, no sign, no leading zero (except `0`
/// itself).
pub fn parse_decimal(s: &str) -> Result<u64, DecimalError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(DecimalError::NotDecimal);
    }
    s.parse().map_err(|_| DecimalError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name_len("purpose", "ai-training", 128), Ok(()));
        let e = check_name_len("controller", "", 128).unwrap_err();
        assert_eq!(
            e,
            NameError::Length {
                what: "controller".into(),
                len: 0,
                max: 128
            }
        );
        assert_eq!(e.to_string(), "controller must be 1-128 bytes, got 0");
        let e = check_name_len("origin", &"a".repeat(256), 255).unwrap_err();
        assert_eq!(e.to_string(), "origin must be 1-255 bytes, got 256");
        let e = check_name_len("purpose", "Ads", 128).unwrap_err();
        assert_eq!(
            e,
            NameError::Character {
                what: "purpose".into(),
                c: 'A'
            }
        );
        assert_eq!(
            e.to_string(),
            "purpose has character 'A' outside [a-z0-9._:/-]"
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("0"), Ok(0));
        assert_eq!(parse_decimal("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_decimal("18446744073709551616"),
            Err(DecimalError::OutOfRange)
        );
        for bad in ["", "01", "+1", "-1", " 1", "1.0", "1e3"] {
            assert_eq!(parse_decimal(bad), Err(DecimalError::NotDecimal), "{bad:?}");
        }
    }
}
