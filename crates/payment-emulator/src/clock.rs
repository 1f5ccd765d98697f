//! Emulated time: the wall clock plus an offset the control API can advance.
//!
//! Why this exists: the providers' rules are stated in hours and days — an invoice expires after
//! `expires_in` seconds, a card payment is cancelled an hour after creation, notifications are
//! retried for 24 hours (YooKassa) or 3 days (Crypto Pay). A test advances this clock instead of
//! waiting; everything that waits on it wakes when it jumps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// The emulator's clock.
#[derive(Debug)]
pub struct Clock {
    offset_ms: AtomicI64,
    advanced: watch::Sender<i64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock at the real time.
    pub fn new() -> Self {
        let (advanced, _) = watch::channel(0);
        Self {
            offset_ms: AtomicI64::new(0),
            advanced,
        }
    }

    /// Emulated Unix time, milliseconds.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4))
            .unwrap_or(0);
        wall + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves emulated time forward and wakes its waiters. Returns the new time (ms).
    pub fn advance(&self, by: Duration) -> i64 {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        let offset = self.offset_ms.fetch_add(by_ms, Ordering::SeqCst) + by_ms;
        self.advanced.send_replace(offset);
        self.now_ms()
    }

    /// Changes whenever the clock is advanced.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.advanced.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let clock = Clock::new();
        let before = clock.now_ms();
        let after = clock.advance(Duration::from_secs(3600));
        assert!(after >= before + 3_600_000);
    }
}
