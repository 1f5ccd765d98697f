//! Instants and the clock.
//!
//! The earlier system mixed naive and aware timestamps and shifted expiry windows by the
//! server's time zone. Tollgate has exactly one representation of an instant: [`Timestamp`],
//! UTC milliseconds since the Unix epoch, stored as a 64-bit integer on both database
//! backends. No SQL ever calls `now()`: every query takes the current instant from a
//! [`Clock`], which is what lets tests move time (reminders, expiry, leases) without sleeping
//! and makes a database session's `TimeZone` irrelevant.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant with millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type, serde::Serialize)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down (what Telegram and subscription headers use).
    pub const fn as_unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub const fn from_unix_seconds(s: i64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }

    /// `self + d`, saturating instead of overflowing on absurd durations.
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// `self - d`, saturating.
    pub fn minus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }

    /// The time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

/// RFC 3339 in UTC (`2026-11-28T03:54:15.123Z`), computed without a calendar crate.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01: the inverse of [`civil_from_days`] (Howard
/// Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let (m, d) = (i64::from(m), i64::from(d));
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Where "now" comes from. Production uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// Shared handle to the process clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            // A wall clock before 1970 is a broken host; clamp rather than panic.
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock that only moves when told to: time travel for tests and simulations.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now_ms: Arc::new(AtomicI64::new(start.as_millis())),
        }
    }

    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set(&self, t: Timestamp) {
        self.now_ms.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now_ms.load(Ordering::SeqCst))
    }
}

/// Real time plus an offset that only grows when told: time travel for end-to-end tests,
/// where retries and pacing scheduled "a moment later" must still come due.
#[derive(Debug, Clone, Default)]
pub struct ShiftedClock {
    offset_ms: Arc<AtomicI64>,
}

impl ShiftedClock {
    pub fn new() -> Self {
        ShiftedClock::default()
    }

    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        SystemClock.now().plus(Duration::from_millis(
            self.offset_ms.load(Ordering::SeqCst).max(0) as u64,
        ))
    }
}

/// Real time plus an offset in milliseconds read from a file at every use: time travel shared
/// by several processes in end-to-end tests (`TOLLGATE_TEST_CLOCK_OFFSET_FILE`). The writer
/// replaces the file atomically (write, then rename); an unreadable or garbled file keeps the
/// last offset read, so time never jumps back because of a read.
#[derive(Debug)]
pub struct OffsetFileClock {
    path: PathBuf,
    last_ms: AtomicI64,
}

impl OffsetFileClock {
    pub fn new(path: PathBuf) -> Self {
        OffsetFileClock {
            path,
            last_ms: AtomicI64::new(0),
        }
    }

    /// Writes `offset` for every clock reading `path` (atomically, as they expect).
    pub fn write(path: &Path, offset: Duration) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, offset.as_millis().to_string())?;
        std::fs::rename(&tmp, path)
    }
}

impl Clock for OffsetFileClock {
    fn now(&self) -> Timestamp {
        let read = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok());
        let offset = match read {
            Some(ms) => {
                self.last_ms.store(ms, Ordering::SeqCst);
                ms
            }
            None => self.last_ms.load(Ordering::SeqCst),
        };
        Timestamp(SystemClock.now().0.saturating_add(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_convert_both_ways() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn displays_rfc3339_utc() {
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_000_000_123).to_string(),
            "2026-11-18T11:06:40.123Z"
        );
        // Leap day and pre-epoch instants.
        assert_eq!(
            Timestamp::from_unix_seconds(951_782_400).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn arithmetic_saturates_and_rounds_down() {
        let t = Timestamp::from_millis(1_500);
        assert_eq!(t.as_unix_seconds(), 1);
        assert_eq!(Timestamp::from_millis(-1).as_unix_seconds(), -1);
        assert_eq!(t.plus(Duration::from_secs(1)).as_millis(), 2_500);
        assert_eq!(t.minus(Duration::from_secs(2)).as_millis(), -500);
        assert_eq!(
            Timestamp::from_millis(i64::MAX - 1)
                .plus(Duration::MAX)
                .as_millis(),
            i64::MAX
        );
        assert_eq!(t.since(Timestamp::from_millis(2_000)), Duration::ZERO);
        assert_eq!(t.since(Timestamp::from_millis(500)), Duration::from_secs(1));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_millis(10));
        assert_eq!(c.now().as_millis(), 10);
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now().as_millis(), 15);
        c.set(Timestamp::from_millis(1));
        assert_eq!(c.now().as_millis(), 1);
    }

    #[test]
    fn offset_file_clock_follows_the_file_and_survives_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let c = OffsetFileClock::new(path.clone());
        let day = Duration::from_secs(86_400);
        let real = SystemClock.now();
        assert!(c.now().since(real) < day, "no file: no offset");
        OffsetFileClock::write(&path, day * 10).unwrap();
        let shifted = c.now();
        assert!(shifted.since(real) >= day * 10 && shifted.since(real) < day * 11);
        std::fs::write(&path, "garbage").unwrap();
        assert!(c.now() >= shifted, "a garbled file keeps the last offset");
    }

    #[test]
    fn shifted_clock_runs_and_jumps() {
        let c = ShiftedClock::new();
        let before = SystemClock.now();
        c.advance(Duration::from_secs(86_400));
        let shifted = c.now();
        assert!(shifted.since(before) >= Duration::from_secs(86_400));
        assert!(shifted.since(before) < Duration::from_secs(86_400 + 60));
    }
}
