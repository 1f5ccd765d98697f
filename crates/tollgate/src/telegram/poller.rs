//! Long polling: the intake when Tollgate has no public URL.
//!
//! Telegram allows one `getUpdates` caller per bot; a second one gets 409 and kicks the
//! first. So exactly one process in the deployment polls: the holder of a lease. It asks for
//! an explicit set of update types, stores each batch durably, and only then moves the
//! offset (the next call confirms the batch); a crash in between means a redelivery, which
//! the inbox's `update_id` key absorbs. 409s and network errors back off with jitter and
//! never end the process. When it starts polling it removes a webhook left from webhook
//! mode — without dropping pending updates (docs/reliability.md A6).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::api::{ApiError, BotApi};
use super::inbox::{InboxWriter, NewUpdate, Stored};
use super::metrics::{ModeLabels, PipelineMetrics};
use super::update::{ALLOWED_UPDATES, parse_head};
use crate::backoff::Backoff;
use crate::http::Readiness;
use crate::lease::{Keeper, Standing};
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::time::SharedClock;

pub const LEASE: &str = "telegram:poller";

/// Deadline of a `getUpdates` call: the long poll plus room for the network. The Bot API
/// server holds a repeated poll with the same offset for at least 3 s even when asked for
/// less, so short polls get that floor.
pub fn call_timeout(long_poll: Duration) -> Duration {
    let held = long_poll.max(Duration::from_secs(3));
    held + (held / 2).max(Duration::from_secs(2))
}

/// The poller lease outlives any one call; it is renewed before each call.
pub fn lease_ttl(long_poll: Duration) -> Duration {
    call_timeout(long_poll) + Duration::from_secs(2)
}

#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Long-poll timeout passed to `getUpdates` (Telegram caps it at 50 s).
    pub long_poll: Duration,
    pub limit: u32,
    pub lease_ttl: Duration,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            long_poll: Duration::from_secs(25),
            limit: 100,
            lease_ttl: Duration::from_secs(60),
        }
    }
}

pub struct Poller {
    db: Db,
    api: BotApi,
    writer: InboxWriter,
    clock: SharedClock,
    config: PollerConfig,
    holder: String,
    wake: Arc<Notify>,
    readiness: Arc<Readiness>,
    metrics: PipelineMetrics,
}

impl Poller {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        api: BotApi,
        writer: InboxWriter,
        clock: SharedClock,
        config: PollerConfig,
        holder: String,
        wake: Arc<Notify>,
        readiness: Arc<Readiness>,
        metrics: PipelineMetrics,
    ) -> Self {
        Poller {
            db,
            api,
            writer,
            clock,
            config,
            holder,
            wake,
            readiness,
            metrics,
        }
    }

    fn status(&self, state: &str, extra: serde_json::Value) {
        let mut v = json!({ "mode": "polling", "state": state });
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in more {
                obj.insert(k.clone(), x.clone());
            }
        }
        self.readiness.set_detail("intake", v);
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let beat = Duration::from_millis(500);
        // The lease must outlive the next long poll: renewed before every call.
        let mut keeper = Keeper::new(
            self.db.clone(),
            self.clock.clone(),
            LEASE,
            "polls Telegram for updates",
            self.holder.clone(),
            self.config.lease_ttl,
        )
        .renewing_every(Duration::ZERO);
        let mut offset: Option<i64> = None;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut webhook_checked = false;
        while !stop.is_cancelled() {
            hb.beat();
            let wait = match keeper.keep().await {
                Ok(Standing::Gained) => {
                    // A new term: check the webhook again and let Telegram say the offset.
                    webhook_checked = false;
                    offset = None;
                    None
                }
                Ok(Standing::Held) => None,
                Ok(Standing::Elsewhere) => {
                    self.status(
                        "standby",
                        json!({ "detail": "another process holds the poller lease" }),
                    );
                    Some(keeper.ttl() / 4)
                }
                Err(e) => {
                    self.status("waiting for database", json!({ "error": e.to_string() }));
                    tracing::warn!(error = %e, "cannot check the poller lease");
                    Some(backoff.fail())
                }
            };
            if let Some(wait) = wait {
                if !idle(wait, &hb, beat, &stop).await {
                    break;
                }
                continue;
            }

            if !webhook_checked {
                match self.remove_stale_webhook().await {
                    Ok(()) => webhook_checked = true,
                    Err(e) => {
                        let wait = backoff.fail();
                        // Readiness says why polling has not started (a proxy or Telegram
                        // unreachable, a rejected token), as it does for getUpdates.
                        let state = match &e {
                            ApiError::Unauthorized { .. } => "token rejected",
                            _ => "telegram unreachable",
                        };
                        self.status(state, json!({ "error": e.to_string() }));
                        tracing::warn!(error = %e, "cannot check for a webhook left from webhook mode");
                        if !idle(wait, &hb, beat, &stop).await {
                            break;
                        }
                        continue;
                    }
                }
            }

            let mut params = json!({
                "timeout": self.config.long_poll.as_secs(),
                "limit": self.config.limit,
                "allowed_updates": ALLOWED_UPDATES,
            });
            if let (Some(o), Some(obj)) = (offset, params.as_object_mut()) {
                obj.insert("offset".to_owned(), json!(o));
            }
            // The call is bounded (long poll + margin), so beating while it runs cannot hide
            // a wedge.
            let call = self.api.call_with_timeout::<_, Vec<serde_json::Value>>(
                "getUpdates",
                &params,
                call_timeout(self.config.long_poll),
            );
            tokio::pin!(call);
            let mut ticker = tokio::time::interval(beat);
            let result = loop {
                tokio::select! {
                    r = &mut call => break Some(r),
                    _ = ticker.tick() => hb.beat(),
                    _ = stop.cancelled() => break None,
                }
            };
            let Some(result) = result else { break };
            match result {
                Ok(updates) => {
                    backoff.succeed();
                    self.status("polling", json!({}));
                    if updates.is_empty() {
                        continue;
                    }
                    match self.store(updates).await {
                        Ok(next) => {
                            offset = next.or(offset);
                            self.wake.notify_one();
                        }
                        Err(e) => {
                            // Not stored: keep the offset so Telegram sends them again.
                            let wait = backoff.fail();
                            self.status("waiting for database", json!({ "error": e }));
                            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot store polled updates; they will be fetched again");
                            if !idle(wait, &hb, beat, &stop).await {
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    let wait = match &e {
                        ApiError::RetryAfter { retry_after } => Duration::from_secs(*retry_after),
                        // Telegram spaces repeated 409s at least 3 s apart; so do we.
                        ApiError::Conflict { .. } => backoff.fail().max(Duration::from_secs(3)),
                        _ => backoff.fail(),
                    };
                    let state = match &e {
                        ApiError::Conflict { .. } => "conflict",
                        ApiError::Unauthorized { .. } => "token rejected",
                        _ => "telegram unreachable",
                    };
                    self.status(state, json!({ "error": e.to_string() }));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "getUpdates failed; polling continues after a pause");
                    if !idle(wait, &hb, beat, &stop).await {
                        break;
                    }
                }
            }
        }
        // Hand the role over at once; the webhook registration is left alone (A7).
        keeper.release().await;
    }

    /// Stores a batch; returns the next offset.
    async fn store(&self, updates: Vec<serde_json::Value>) -> Result<Option<i64>, String> {
        let mut batch = Vec::with_capacity(updates.len());
        let mut max_id = None;
        for raw in updates {
            let text = raw.to_string();
            match parse_head(&text) {
                Ok(head) => {
                    max_id = max_id.max(Some(head.update_id));
                    batch.push(NewUpdate { head, raw: text });
                }
                Err(e) => {
                    tracing::error!(error = %e, "getUpdates returned something that is not an update; skipping it")
                }
            }
        }
        let outcomes = self
            .writer
            .store_all(batch)
            .await
            .map_err(|e| e.to_string())?;
        for o in outcomes {
            let counter = match o {
                Stored::New => self
                    .metrics
                    .received
                    .get_or_create(&ModeLabels { mode: "polling" })
                    .clone(),
                Stored::Duplicate => self.metrics.deduplicated.clone(),
            };
            counter.inc();
        }
        Ok(max_id.map(|m| m + 1))
    }

    /// Switching from webhook mode: delete the webhook (never dropping pending updates),
    /// since `getUpdates` is refused while one is set.
    async fn remove_stale_webhook(&self) -> Result<(), ApiError> {
        #[derive(Deserialize)]
        struct Info {
            #[serde(default)]
            url: String,
        }
        let info: Info = self.api.call("getWebhookInfo", &json!({})).await?;
        if !info.url.is_empty() {
            tracing::info!(
                "a webhook is registered but this deployment polls; deleting it (pending updates are kept)"
            );
            let _: bool = self
                .api
                .call("deleteWebhook", &json!({ "drop_pending_updates": false }))
                .await?;
        }
        Ok(())
    }
}

impl Component for Poller {
    fn name(&self) -> &'static str {
        "poller"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
