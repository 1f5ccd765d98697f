//! Logging settings (`LOG_FORMAT`, `RUST_LOG`): readable on their own, before anything else,
//! so that every later error can be logged.

use super::Env;
use super::reader::Reader;
use crate::config::ConfigErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

/// Reads logging settings; usable before anything else so that errors can be logged.
pub fn log_settings(env: &Env) -> Result<LogSettings, ConfigErrors> {
    let mut r = Reader::new(env);
    let log = read_log(&mut r);
    match (log, r.errors.is_empty()) {
        (Some(log), true) => Ok(log),
        _ => Err(ConfigErrors(r.errors)),
    }
}

pub(super) fn read_log(r: &mut Reader<'_>) -> Option<LogSettings> {
    let format = r.read(
        "LOG_FORMAT",
        Some("text"),
        "set LOG_FORMAT=text for people or LOG_FORMAT=json for log collectors",
        |t| match t {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format")),
        },
        |f| match f {
            LogFormat::Text => "text".to_owned(),
            LogFormat::Json => "json".to_owned(),
        },
    );
    let filter = r.read(
        "RUST_LOG",
        Some("info"),
        "use a tracing filter such as info, warn or tollgate=debug,sqlx=warn",
        |t| {
            tracing_subscriber::EnvFilter::try_new(t)
                .map(|_| t.to_owned())
                .map_err(|e| format!("{t:?} is not a log filter ({e})"))
        },
        Clone::clone,
    );
    Some(LogSettings {
        format: format?,
        filter: filter?,
    })
}
