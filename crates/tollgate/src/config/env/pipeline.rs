//! Tuning of the Telegram pipeline: the outbox's send rate, the webhook's connections, the
//! handler deadline, long polling, the watchdog, and how long the inbox and the outbox keep
//! their rows.

use std::time::Duration;

use super::reader::{Reader, duration_between};
use crate::config::duration::format_duration;

/// Telegram redelivers an unacknowledged update for up to 24 hours; a handled update's inbox
/// row must outlive that window, or a late redelivery would be taken for a new update.
const MIN_INBOX_RETENTION: Duration = Duration::from_secs(25 * 3600);

/// Tuning of the Telegram pipeline.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub outbox_rate: f64,
    /// Least time between two messages to one chat.
    pub outbox_per_chat_interval: Duration,
    pub webhook_max_connections: u32,
    pub handler_deadline: Duration,
    pub poll_timeout: Duration,
    pub watchdog_timeout: Duration,
    pub inbox_retention: Duration,
    pub outbox_retention: Duration,
}

pub(super) fn read_pipeline(r: &mut Reader<'_>) -> Option<PipelineSettings> {
    let show = |d: &Duration| format_duration(*d);
    let outbox_rate = r.read(
        "OUTBOX_RATE",
        Some("25"),
        "set OUTBOX_RATE to messages per second from 1 to 100000, e.g. 25 (Telegram allows about 30; paid broadcasts 1000; a local Bot API server or benchmark more)",
        |t| match t.parse::<f64>() {
            Ok(v) if (1.0..=100_000.0).contains(&v) => Ok(v),
            _ => Err(format!("{t:?} is not a rate from 1 to 100000 messages per second")),
        },
        |v| v.to_string(),
    );
    let outbox_per_chat_interval = r.read(
        "OUTBOX_PER_CHAT_INTERVAL",
        Some("1s"),
        "use a duration between 0s and 10s, e.g. 1s (Telegram allows about one message per second per chat; less only against a local Bot API server or the emulator)",
        duration_between(Duration::ZERO, Duration::from_secs(10)),
        show,
    );
    let webhook_max_connections = r.read(
        "WEBHOOK_MAX_CONNECTIONS",
        Some("40"),
        "set WEBHOOK_MAX_CONNECTIONS to a number from 1 to 100 (Telegram's range), e.g. 40",
        |t| match t.parse::<u32>() {
            Ok(v) if (1..=100).contains(&v) => Ok(v),
            _ => Err(format!("{t:?} is not a number from 1 to 100")),
        },
        u32::to_string,
    );
    let handler_deadline = r.read(
        "HANDLER_DEADLINE",
        Some("30s"),
        "use a duration between 1s and 10m, e.g. 30s",
        duration_between(Duration::from_secs(1), Duration::from_secs(600)),
        show,
    );
    let poll_timeout = r.read(
        "POLL_TIMEOUT",
        Some("25s"),
        "use a duration between 1s and 50s (Telegram's cap), e.g. 25s",
        duration_between(Duration::from_secs(1), Duration::from_secs(50)),
        show,
    );
    let watchdog_timeout = r.read(
        "WATCHDOG_TIMEOUT",
        Some("30s"),
        "use a duration between 1s and 10m, e.g. 30s",
        duration_between(Duration::from_secs(1), Duration::from_secs(600)),
        show,
    );
    let inbox_retention = r.read(
        "INBOX_RETENTION",
        Some("7d"),
        "use a duration between 25h and 365d, e.g. 7d: Telegram may redeliver an update for 24 h, and a shorter retention would handle a redelivered update twice",
        duration_between(MIN_INBOX_RETENTION, Duration::from_secs(365 * 86_400)),
        show,
    );
    let outbox_retention = r.read(
        "OUTBOX_RETENTION",
        Some("30d"),
        "use a duration between 1h and 365d, e.g. 30d",
        duration_between(Duration::from_secs(3600), Duration::from_secs(365 * 86_400)),
        show,
    );
    Some(PipelineSettings {
        outbox_rate: outbox_rate?,
        outbox_per_chat_interval: outbox_per_chat_interval?,
        webhook_max_connections: webhook_max_connections?,
        handler_deadline: handler_deadline?,
        poll_timeout: poll_timeout?,
        watchdog_timeout: watchdog_timeout?,
        inbox_retention: inbox_retention?,
        outbox_retention: outbox_retention?,
    })
}
