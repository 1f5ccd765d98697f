//! Telegram's flood limits as token buckets.
//!
//! Why this exists: the earlier system melted down under 429 floods. Code that sends faster than
//! ~1 message/s to a chat, ~30 messages/s overall or 20/min to a group must see the same
//! `429 Too Many Requests: retry after N` it would see in production, so its back-off is tested.
//! Buckets refill continuously on the real monotonic clock (rates are about real throughput, not
//! emulated calendar time).

use std::time::Instant;

/// A refilling token bucket. A full bucket allows `burst` sends at once; afterwards one send per
/// `1 / rate` seconds.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(burst: f64) -> Self {
        Self {
            tokens: burst,
            updated: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant, rate_per_sec: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate_per_sec).min(burst);
        self.updated = now;
    }

    /// Seconds to wait before one token is available (0 when one is available now).
    pub fn wait_secs(&mut self, now: Instant, rate_per_sec: f64, burst: f64) -> f64 {
        self.refill(now, rate_per_sec, burst);
        if self.tokens >= 1.0 {
            0.0
        } else {
            (1.0 - self.tokens) / rate_per_sec
        }
    }

    /// Takes one token; call only after `wait_secs` returned 0.
    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// The `retry_after` Telegram would announce for a wait of `secs` (whole seconds, at least 1).
pub fn retry_after_secs(secs: f64) -> u32 {
    let rounded = secs.ceil();
    if rounded < 1.0 {
        1
    } else if rounded > f64::from(u32::MAX) {
        u32::MAX
    } else {
        // Truncation is exact here: `rounded` is a whole number in range.
        rounded as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(3.0);
        bucket.updated = start;
        for _ in 0..3 {
            assert_eq!(bucket.wait_secs(start, 1.0, 3.0), 0.0);
            bucket.take();
        }
        let wait = bucket.wait_secs(start, 1.0, 3.0);
        assert!((wait - 1.0).abs() < 1e-9);
        assert_eq!(retry_after_secs(wait), 1);
        let later = start + Duration::from_millis(1000);
        assert_eq!(bucket.wait_secs(later, 1.0, 3.0), 0.0);
    }

    #[test]
    fn group_rate_gives_multi_second_retry() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(20.0);
        bucket.updated = start;
        for _ in 0..20 {
            bucket.take();
        }
        let wait = bucket.wait_secs(start, 20.0 / 60.0, 20.0);
        assert_eq!(retry_after_secs(wait), 3);
    }
}
