//! Times for people: milliseconds since the Unix epoch (what every format carries) shown as
//! RFC 3339 in UTC beside the number, computed here without a calendar library (the core reads
//! no clock and has no time zone).

use std::fmt;

/// `ms` as RFC 3339 in UTC to the millisecond (`2026-12-06T05:16:58.123Z`); a time after the
/// year 9999 is shown as the number (`… ms`).
pub fn rfc3339(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    if y > 9999 {
        return format!("{ms} ms");
    }
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// A time shown as "RFC 3339 (ms)", the way every time printed for people reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Both(pub u64);

impl fmt::Display for Both {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", rfc3339(self.0), self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_534_218_123), "2026-12-06T05:16:58.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(946_684_799_999), "1999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "253402300800000 ms");
        assert_eq!(rfc3339(u64::MAX), format!("{} ms", u64::MAX));
        assert_eq!(Both(1_000).to_string(), "1970-01-01T00:00:01.000Z (1000)");
    }
}
