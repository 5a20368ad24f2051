//! Times as people read them: RFC 3339 in UTC, printed beside the milliseconds the formats
//! carry.

pub use crate::ledger::clock::{both, rfc3339};

/// A time as typed on the command line: RFC 3339 / ISO 8601 (`2026-12-06T05:16:58Z`), a date
/// alone (its start in UTC), or milliseconds since the epoch. An integer below 10^11 can only be
/// seconds (before 1973 as milliseconds) and is refused, saying so.
pub fn parse(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s.parse().map_err(|e| format!("{s}: {e}"))?;
        if ms < 100_000_000_000 {
            return Err(format!(
                "{s} looks like seconds, not milliseconds since the epoch: write {s}000 or an \
                 RFC 3339 time such as 2026-12-06T05:16:58Z"
            ));
        }
        return Ok(ms);
    }
    let ts = if let Ok(t) = s.parse::<jiff::Timestamp>() {
        t
    } else if let Ok(d) = s.parse::<jiff::civil::Date>() {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| format!("{s}: {e}"))?
            .timestamp()
    } else {
        return Err(format!(
            "{s}: not a time: give RFC 3339 (2026-12-06T05:16:58Z), a date (2026-12-06, its \
             start in UTC) or milliseconds since the epoch"
        ));
    };
    u64::try_from(ts.as_millisecond()).map_err(|_| format!("{s}: before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_utc_to_the_millisecond() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_534_218_123), "2026-12-06T05:16:58.123Z");
        assert_eq!(both(1_000), "1970-01-01T00:00:01.000Z (1000)");
        assert_eq!(rfc3339(u64::MAX), format!("{} ms", u64::MAX));
    }

    #[test]
    fn parses_what_people_type() {
        assert_eq!(parse("2026-12-06T05:16:58Z"), Ok(1_796_534_218_000));
        assert_eq!(parse("2026-12-06T05:16:58.123Z"), Ok(1_796_534_218_123));
        assert_eq!(parse("2026-12-06"), Ok(1_796_515_200_000));
        assert_eq!(parse("1796534218123"), Ok(1_796_534_218_123));
        assert!(parse("1796534218")
            .unwrap_err()
            .contains("looks like seconds"));
        assert!(parse("yesterday").is_err());
    }
}
