//! How often background jobs run: the Stars reconciler's period, the interval the notice
//! and auto-renewal jobs may be told to use instead of their own, and the test clock's
//! offset file (time travel shared by several processes in tests).

use std::path::PathBuf;
use std::time::Duration;

use super::reader::{Reader, duration_between};
use crate::config::duration::format_duration;

pub(super) struct JobTimings {
    pub(super) stars_reconcile_interval: Option<Duration>,
    pub(super) jobs_interval: Option<Duration>,
    pub(super) test_clock_offset_file: Option<PathBuf>,
}

pub(super) fn read_jobs(r: &mut Reader<'_>) -> JobTimings {
    let stars_reconcile_interval = r.read(
        "STARS_RECONCILE_INTERVAL",
        Some("5m"),
        "use a duration between 10s and 24h, e.g. 5m",
        duration_between(Duration::from_secs(10), Duration::from_secs(86_400)),
        |d: &Duration| format_duration(*d),
    );
    let jobs_interval = r.read(
        "JOBS_INTERVAL",
        None,
        "use a duration between 50ms and 1h, e.g. 30s, or unset it to keep each job's own",
        duration_between(Duration::from_millis(50), Duration::from_secs(3_600)),
        |d: &Duration| format_duration(*d),
    );
    let test_clock_offset_file = r.read(
        "TOLLGATE_TEST_CLOCK_OFFSET_FILE",
        None,
        "unset TOLLGATE_TEST_CLOCK_OFFSET_FILE (it is for tests), or give a file path",
        |t| Ok(PathBuf::from(t)),
        |p| p.display().to_string(),
    );
    JobTimings {
        stars_reconcile_interval,
        jobs_interval,
        test_clock_offset_file,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::env::deployment;
    use crate::config::env::testing::env;

    #[test]
    fn jobs_keep_their_own_interval_unless_told() {
        let (d, _) = deployment(&env(&[])).unwrap();
        assert_eq!((d.jobs_interval, d.test_clock_offset_file), (None, None));
        let (d, _) = deployment(&env(&[
            ("JOBS_INTERVAL", "50ms"),
            ("TOLLGATE_TEST_CLOCK_OFFSET_FILE", "/tmp/offset"),
        ]))
        .unwrap();
        assert_eq!(d.jobs_interval, Some(Duration::from_millis(50)));
        assert_eq!(d.test_clock_offset_file, Some(PathBuf::from("/tmp/offset")));
    }
}
