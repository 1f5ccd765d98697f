//! Emulated time: the wall clock plus an offset that the control API can advance.
//!
//! Why this exists: Telegram's rules that matter for reliability are stated in seconds that a test
//! cannot afford to wait for — a callback query goes stale after 150 s, a pre-checkout query must
//! be answered within 10 s, a webhook retry waits up to 120 s, a message update lives 24 h. All of
//! those are measured on this clock, so a test advances it instead of sleeping. Everything that
//! waits on emulated time also wakes up when the clock jumps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// The emulator's clock. Cheap to read from any thread.
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
    /// A clock that starts at the real time.
    pub fn new() -> Self {
        let (advanced, _) = watch::channel(0);
        Self {
            offset_ms: AtomicI64::new(0),
            advanced,
        }
    }

    /// Emulated Unix time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        wall_clock_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Emulated Unix time in whole seconds (what `date` fields carry).
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// How far emulated time is ahead of the wall clock, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves emulated time forward and wakes everything waiting on it. Returns the new time (ms).
    pub fn advance(&self, by: Duration) -> i64 {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        let offset = self.offset_ms.fetch_add(by_ms, Ordering::SeqCst) + by_ms;
        self.advanced.send_replace(offset);
        self.now_ms()
    }

    /// A receiver that changes whenever the clock is advanced.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.advanced.subscribe()
    }

    /// Sleeps until emulated time reaches `deadline_ms` (also when the clock is advanced past it).
    pub async fn sleep_until(&self, deadline_ms: i64) {
        let mut advanced = self.subscribe();
        loop {
            let now = self.now_ms();
            if now >= deadline_ms {
                return;
            }
            let wait = Duration::from_millis(u64::try_from(deadline_ms - now).unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                changed = advanced.changed() => {
                    if changed.is_err() {
                        // The clock is gone (emulator dropped); fall back to plain sleeping.
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    /// Real time left until emulated time reaches `deadline_ms` (zero if already past).
    pub fn real_duration_until(&self, deadline_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(deadline_ms - self.now_ms()).unwrap_or(0))
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let clock = Clock::new();
        let before = clock.now_secs();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_secs() >= before + 3600);
        assert_eq!(clock.offset_ms(), 3_600_000);
    }

    #[tokio::test]
    async fn sleep_until_wakes_on_advance() {
        let clock = std::sync::Arc::new(Clock::new());
        let deadline = clock.now_ms() + 3_600_000;
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(deadline).await })
        };
        clock.advance(Duration::from_secs(3601));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke up")
            .expect("no panic");
    }
}
