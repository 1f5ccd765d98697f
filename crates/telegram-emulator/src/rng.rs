//! A small seeded random number generator (SplitMix64).
//!
//! Why this exists: ids (callback query ids, charge ids, file ids) and the random 60–120 s cap of
//! the webhook backoff need randomness, and tests need it reproducible. A lock-free counter-based
//! generator is enough for that and keeps the crate free of an RNG dependency.

use std::sync::atomic::{AtomicU64, Ordering};

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Thread-safe, seeded, non-cryptographic random numbers.
#[derive(Debug)]
pub struct Rng {
    state: AtomicU64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniformly distributed number in `lo..=hi` (`lo` if the range is empty).
    pub fn range_inclusive(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        lo + self.next_u64() % span
    }

    /// `len` random characters of the URL-safe alphabet Telegram uses in file ids and tokens.
    pub fn token(&self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(len);
        let mut bits = 0u64;
        let mut left = 0;
        for _ in 0..len {
            if left == 0 {
                bits = self.next_u64();
                left = 10;
            }
            out.push(char::from(ALPHABET[(bits & 63) as usize]));
            bits >>= 6;
            left -= 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let a = Rng::new(42);
        let b = Rng::new(42);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn range_stays_inside() {
        let rng = Rng::new(7);
        for _ in 0..1000 {
            let v = rng.range_inclusive(60, 120);
            assert!((60..=120).contains(&v));
        }
        assert_eq!(rng.range_inclusive(90, 90), 90);
    }

    #[test]
    fn token_has_requested_length_and_alphabet() {
        let rng = Rng::new(1);
        let t = rng.token(33);
        assert_eq!(t.len(), 33);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
