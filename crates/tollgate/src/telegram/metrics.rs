//! Metrics of the Telegram pipeline (docs/design.md §5): updates in, handled, failed and
//! dead-lettered; backlog depth and age; sends by outcome; 429s; handler latency; the
//! webhook's own view from `getWebhookInfo`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::latency::latency_histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug)]
pub struct PipelineMetrics {
    pub received: Family<ModeLabels, Counter>,
    pub deduplicated: Counter,
    pub processed: Counter,
    pub failed: Counter,
    pub dead_lettered: Counter,
    pub handler_duration: Family<KindLabels, Histogram>,
    pub inbox_depth: Gauge,
    pub inbox_oldest_age_seconds: Gauge,
    pub inbox_dead: Gauge,
    pub outbox_depth: Gauge,
    pub outbox_oldest_age_seconds: Gauge,
    pub sends: Family<OutcomeLabels, Counter>,
    pub rate_limited: Counter,
    pub webhook_pending_updates: Gauge,
    pub webhook_last_error_timestamp_seconds: Gauge,
}

impl PipelineMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = PipelineMetrics {
            received: Family::default(),
            deduplicated: Counter::default(),
            processed: Counter::default(),
            failed: Counter::default(),
            dead_lettered: Counter::default(),
            handler_duration: Family::new_with_constructor(latency_histogram),
            inbox_depth: Gauge::default(),
            inbox_oldest_age_seconds: Gauge::default(),
            inbox_dead: Gauge::default(),
            outbox_depth: Gauge::default(),
            outbox_oldest_age_seconds: Gauge::default(),
            sends: Family::default(),
            rate_limited: Counter::default(),
            webhook_pending_updates: Gauge::default(),
            webhook_last_error_timestamp_seconds: Gauge::default(),
        };
        let r = registry;
        r.register(
            "updates_received",
            "Updates stored by intake, by mode (webhook, polling)",
            m.received.clone(),
        );
        r.register(
            "updates_deduplicated",
            "Redelivered updates recognised by update_id and not stored again",
            m.deduplicated.clone(),
        );
        r.register(
            "updates_processed",
            "Updates handled successfully",
            m.processed.clone(),
        );
        r.register(
            "updates_failed",
            "Failed handler attempts (retried or terminal)",
            m.failed.clone(),
        );
        r.register(
            "updates_dead_lettered",
            "Updates given up on after their last attempt",
            m.dead_lettered.clone(),
        );
        r.register(
            "handler_duration_seconds",
            "Handler latency by update type",
            m.handler_duration.clone(),
        );
        r.register(
            "inbox_depth",
            "Pending updates in the inbox",
            m.inbox_depth.clone(),
        );
        r.register(
            "inbox_oldest_age_seconds",
            "Age of the oldest pending update",
            m.inbox_oldest_age_seconds.clone(),
        );
        r.register(
            "inbox_dead",
            "Dead-lettered updates kept in the inbox",
            m.inbox_dead.clone(),
        );
        r.register(
            "outbox_depth",
            "Messages waiting in the outbox",
            m.outbox_depth.clone(),
        );
        r.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest waiting message",
            m.outbox_oldest_age_seconds.clone(),
        );
        r.register(
            "telegram_sends",
            "Outbox send attempts by outcome",
            m.sends.clone(),
        );
        r.register(
            "telegram_rate_limited",
            "429 answers from Telegram",
            m.rate_limited.clone(),
        );
        r.register(
            "webhook_pending_update_count",
            "pending_update_count from getWebhookInfo",
            m.webhook_pending_updates.clone(),
        );
        r.register(
            "webhook_last_error_timestamp_seconds",
            "last_error_date from getWebhookInfo (0 = none)",
            m.webhook_last_error_timestamp_seconds.clone(),
        );
        m
    }
}
