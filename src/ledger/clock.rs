//! The ledger's clock: milliseconds since the Unix epoch, read through [`Clock`] so that tests
//! and simulations can drive time by hand ([`ManualClock`]) instead of sleeping. The ledger
//! never hands out a time earlier than one it handed out before, whatever its clock says.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC, to the millisecond
/// (`2026-12-06T05:16:58.123Z`); a time after the year 9999 is shown as the number.
pub use crate::core::time::rfc3339;

/// `ms` as "RFC 3339 (ms)", the way every printed time reads.
pub fn both(ms: u64) -> String {
    crate::core::time::Both(ms).to_string()
}

/// Where a ledger reads the time: `issued_at` window checks, `integrated_at`, checkpoint
/// times and the default `at` of proofs.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// The first millisecond strictly after `floor`. The default waits for the clock to pass
    /// `floor` (at most about a millisecond in normal operation); if it stays behind for more
    /// than a second (a clock stepped backwards), returns `floor + 1` rather than stall.
    fn after(&self, floor: u64) -> u64 {
        let start = std::time::Instant::now();
        loop {
            let t = self.now_ms();
            if t > floor {
                return t;
            }
            if start.elapsed() > Duration::from_secs(1) {
                return floor + 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The system's wall clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// A clock that moves only when told to: clones share one time, so a test keeps a clone and
/// sets or advances the time of the ledger it gave the other one to.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn new(ms: u64) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(ms)))
    }

    /// A clock showing the system's time now (then moving only when told to).
    pub fn at_system_time() -> ManualClock {
        ManualClock::new(now_ms())
    }

    /// Sets the time (also backwards: the ledger's times still never go back).
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`; returns the new time.
    pub fn advance(&self, ms: u64) -> u64 {
        self.0.fetch_add(ms, Ordering::SeqCst) + ms
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Never waits (nothing would move the time): the clock's time if it is past `floor`,
    /// else `floor + 1`.
    fn after(&self, floor: u64) -> u64 {
        self.now_ms().max(floor + 1)
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// [`Clock::after`] on the system clock.
pub fn after(floor: u64) -> u64 {
    SystemClock.after(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::new(1_000);
        let shared = c.clone();
        assert_eq!(shared.now_ms(), 1_000);
        assert_eq!(c.advance(500), 1_500);
        assert_eq!(shared.now_ms(), 1_500);
        c.set(10);
        assert_eq!(shared.now_ms(), 10);
    }

    #[test]
    fn after_never_waits_on_a_manual_clock() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.after(999), 1_000);
        // Stopped at the floor or behind it: the next millisecond, at once.
        assert_eq!(c.after(1_000), 1_001);
        assert_eq!(c.after(5_000), 5_001);
    }

    #[test]
    fn system_clock_after_is_past_the_floor() {
        let now = SystemClock.now_ms();
        assert!(SystemClock.after(now) > now);
    }
}
