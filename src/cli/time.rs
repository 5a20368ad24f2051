//! Times as people read them: RFC 3339 in UTC, printed beside the milliseconds the formats
//! carry.

/// `ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC, to the millisecond
/// (`2026-12-06T05:16:58.123Z`); a value outside the calendar's range is shown as the number.
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `ms` as "RFC 3339 (ms)", the way every printed time reads.
pub fn both(ms: u64) -> String {
    format!("{} ({ms})", rfc3339(ms))
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
}
