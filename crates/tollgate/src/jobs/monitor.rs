//! The alert monitor (job `alert-monitor`, every 15 s, one replica at a time): looks at the
//! conditions no other component is in a position to judge over time and reports them to
//! the alert conditions (`alerts::conditions`), which alert once when a condition begins, at
//! most hourly while it lasts, and once when it ends.
//!
//! - **A node's circuit breaker open longer than [`BREAKER_ALERT_AFTER`]**: a breaker opens
//!   and closes with single calls (a blip is not worth an admin's attention); one open for a
//!   minute means the node is down. Breakers live in each process's provisioning workers;
//!   the monitor reads those of the replica holding its lease (every replica runs a worker
//!   per node, so each sees every node). It ends when this replica has seen the node answer
//!   since it was raised, not merely when this replica's breaker is closed: after the lease
//!   moves, a replica that has not called the node yet has a closed breaker and knows
//!   nothing. A node out of service is not called: its condition ends.
//! - **Webhook delivery errors** (webhook mode): `getWebhookInfo`'s `last_error_date` within
//!   [`WEBHOOK_ERROR_WINDOW`] means Telegram is failing to deliver updates to us now; the
//!   condition ends once no error is that recent (Telegram keeps the last error's date after
//!   it recovers, so recency is the signal).
//!
//! The other conditions are reported where they are observed: the Stars reconciler's failing
//! passes (`bot::stars`), reconcile's refused removals (`nodes::reconcile`). Events that happen
//! once (a payment kept for review, a dead letter) alert once where they happen.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{IterationFuture, Job};
use crate::alerts::{Alerts, Raised};
use crate::nodes::Registry;
use crate::store::Db;
use crate::telegram::api::BotApi;
use crate::time::{SharedClock, Timestamp};

/// How long a breaker stays open before the admins hear of it.
pub const BREAKER_ALERT_AFTER: Duration = Duration::from_secs(60);
/// How recent Telegram's last webhook delivery error must be for the condition to hold.
pub const WEBHOOK_ERROR_WINDOW: Duration = Duration::from_secs(600);

/// What the monitor looks at.
#[derive(Clone)]
pub struct MonitorContext {
    pub db: Db,
    pub clock: SharedClock,
    pub registry: Arc<Registry>,
    pub alerts: Alerts,
    /// The Bot API in webhook mode (None in polling mode: no webhook to watch).
    pub webhook_api: Option<BotApi>,
}

pub struct Monitor {
    c: MonitorContext,
}

#[derive(Debug, Deserialize)]
struct WebhookInfo {
    #[serde(default)]
    pending_update_count: i64,
    last_error_date: Option<i64>,
    last_error_message: Option<String>,
}

/// The condition of `node`'s breaker.
pub fn breaker_condition(node: &str) -> String {
    format!("node-breaker:{node}")
}

pub const WEBHOOK_CONDITION: &str = "webhook-errors";

impl Monitor {
    pub fn new(c: MonitorContext) -> Monitor {
        Monitor { c }
    }

    /// One look at every condition; returns how many alerts it sent.
    pub async fn check(&self) -> anyhow::Result<u64> {
        let mut sent = self.breakers().await?;
        sent += self.webhook().await?;
        Ok(sent)
    }

    async fn breakers(&self) -> anyhow::Result<u64> {
        let c = &self.c;
        let mut sent = 0;
        for node in c.registry.catalog_enabled_nodes() {
            let now = c.clock.now();
            let key = breaker_condition(&node.name);
            let open_since = c
                .registry
                .breaker_open_since(&node.name)
                .filter(|_| c.registry.is_enabled(&node.name));
            match open_since {
                Some(since) if now.since(since) >= BREAKER_ALERT_AFTER => {
                    let text = format!(
                        "Node {}: its agent keeps failing; provisioning has stopped calling it since {since} \
                         (circuit breaker open, one probe per cooldown). Its users' changes wait until it answers: \
                         check the agent and its V2Ray/Xray core.",
                        node.name
                    );
                    sent +=
                        u64::from(c.alerts.raise(&c.db, &key, &text, now).await? != Raised::Quiet);
                }
                // Open for less than a minute: not yet worth an alert, and not over either.
                Some(_) => {}
                None if !c.registry.is_enabled(&node.name) => {
                    let text = format!(
                        "Node {}: taken out of service; the service no longer calls it.",
                        node.name
                    );
                    sent += u64::from(c.alerts.resolve(&c.db, &key, &text, now).await?);
                }
                None => {
                    let Some(answered) = c.registry.last_answered(&node.name) else {
                        continue;
                    };
                    let text = format!(
                        "Node {}: the agent answers again (circuit breaker closed).",
                        node.name
                    );
                    sent += u64::from(
                        c.alerts
                            .resolve_seen(&c.db, &key, &text, answered, now)
                            .await?,
                    );
                }
            }
        }
        Ok(sent)
    }

    async fn webhook(&self) -> anyhow::Result<u64> {
        let c = &self.c;
        let Some(api) = &c.webhook_api else {
            return Ok(0);
        };
        let info: WebhookInfo = match api.call("getWebhookInfo", &json!({})).await {
            Ok(info) => info,
            Err(e) => {
                // Telegram unreachable says nothing about deliveries; the registrar reports it
                // in /readyz. Leave the condition as it is.
                tracing::debug!(error = %e, "cannot read getWebhookInfo for the alert monitor");
                return Ok(0);
            }
        };
        let now = c.clock.now();
        let recent = info
            .last_error_date
            .map(Timestamp::from_unix_seconds)
            .filter(|at| now.since(*at) < WEBHOOK_ERROR_WINDOW);
        Ok(match recent {
            Some(at) => {
                let text = format!(
                    "Telegram cannot deliver updates to the webhook: {} (last error at {at}; {} updates waiting). \
                     Check PUBLIC_URL, the TLS certificate and that this service answers at WEBHOOK_PATH.",
                    info.last_error_message.as_deref().unwrap_or("no message"),
                    info.pending_update_count
                );
                u64::from(
                    c.alerts.raise(&c.db, WEBHOOK_CONDITION, &text, now).await? != Raised::Quiet,
                )
            }
            None => {
                let text = "Telegram delivers updates to the webhook again (no error in the last 10 minutes).";
                u64::from(
                    c.alerts
                        .resolve(&c.db, WEBHOOK_CONDITION, text, now)
                        .await?,
                )
            }
        })
    }
}

impl Job for Monitor {
    fn name(&self) -> &'static str {
        "alert-monitor"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(15)
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn singleton(&self) -> bool {
        true
    }

    fn run_once(&self) -> IterationFuture<'_> {
        Box::pin(self.check())
    }
}
