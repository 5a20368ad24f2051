//! What only crash.rs needs: its settings from the environment, a seedable generator of kill
//! timings and request mixes, and an HTTP agent whose timeouts notice a killed server quickly.

use std::time::Duration;

use super::http::{try_send, Resp};

/// Sleeps `ms`: the load a server is under between two kills (not a wait for anything).
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// An environment variable as a number, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// A small, seedable pseudo-random generator (xorshift64*), so a failing run can be
/// repeated with CONSENTLOG_CRASH_SEED.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

/// An HTTP agent that reports every status as a response, with short timeouts (a killed
/// server must show up as a transport error quickly).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(2)))
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// [`try_send`], panicking on a transport failure.
#[track_caller]
pub fn send(agent: &ureq::Agent, method: &str, url: &str, auth: Option<&str>) -> Resp {
    try_send(agent, method, url, auth, None)
        .unwrap_or_else(|e| panic!("{method} {url}: transport error {e}"))
}
