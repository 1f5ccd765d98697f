//! What the process itself needs: where the catalog file is and how long shutdown may take.

use std::path::PathBuf;
use std::time::Duration;

use super::reader::Reader;
use crate::config::duration::{format_duration, parse_duration};

/// `TOLLGATE_CONFIG` and `SHUTDOWN_TIMEOUT`.
pub(super) fn read_process(r: &mut Reader<'_>) -> (Option<PathBuf>, Option<Duration>) {
    let config_path = r.read(
        "TOLLGATE_CONFIG",
        Some("tollgate.toml"),
        "set TOLLGATE_CONFIG to the path of the catalog file",
        |t| Ok(PathBuf::from(t)),
        |p| p.display().to_string(),
    );
    let shutdown_timeout = r.read(
        "SHUTDOWN_TIMEOUT",
        Some("25s"),
        "use a duration between 1s and 10m, e.g. 25s (keep it below your orchestrator's kill timeout)",
        |t| {
            let d = parse_duration(t)?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
                return Err(format!("{t:?} is outside 1s..10m"));
            }
            Ok(d)
        },
        |d| format_duration(*d),
    );
    (config_path, shutdown_timeout)
}
