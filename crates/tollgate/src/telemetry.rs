//! Logging with `tracing`: human-readable text by default, JSON for log collectors.
//!
//! Logs go to stderr so command output (`check-config`) stays clean on stdout. Secrets are
//! wrapped in [`Secret`](crate::config::Secret), whose `Debug` and `Display` print `***`,
//! so a field that carries one cannot leak it.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Returns an error if one is installed already.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    }
    .map_err(|e| e.to_string())
}
