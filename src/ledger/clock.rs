//! The ledger's clock: wall-clock milliseconds that never go backwards.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The first wall-clock millisecond strictly after `floor`, waiting for it if needed (at most
/// about a millisecond in normal operation). If the system clock stepped backwards by more
/// than a second, returns `floor + 1` rather than stall: the ledger's clock never goes back.
pub fn after(floor: u64) -> u64 {
    let start = std::time::Instant::now();
    loop {
        let t = now_ms();
        if t > floor {
            return t;
        }
        if start.elapsed() > Duration::from_secs(1) {
            return floor + 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
