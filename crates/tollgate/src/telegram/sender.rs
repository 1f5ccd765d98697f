//! The outbox sender: delivers queued messages at Telegram's pace.
//!
//! The earlier bot flooded Telegram and ignored 429s. Here one sender in the whole
//! deployment (it holds a lease) paces every send against one global rate (default 25/s),
//! keeps at least a second between two messages to the same chat, and sends the most urgent
//! messages first. A 429 pauses all sending for `retry_after`; 5xx, timeouts and network
//! errors retry with backoff; a 403 marks the recipient blocked (their other messages fail
//! the same way while the rest go on); other 4xx fail at once with Telegram's reason. Every
//! attempt's outcome is recorded (RELIABILITY G3, D6).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::{BotApi, Disposition};
use super::metrics::{OutcomeLabels, PipelineMetrics};
use super::outbox::{self, Claimed, Outcome};
use crate::backoff::Backoff;
use crate::lease::{self, Lease};
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::time::SharedClock;
use crate::users;

/// Name of the lease that makes this sender the only one.
pub const LEASE: &str = "telegram:outbox-sender";

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Messages per second across all chats.
    pub rate_per_second: f64,
    /// Least time between two messages to one chat.
    pub per_chat_interval: Duration,
    /// Attempts before a message fails for good (429s do not count).
    pub max_attempts: i32,
    /// First retry delay after a 5xx/timeout; doubles per attempt.
    pub retry_base: Duration,
    /// Sends in flight at once (Telegram latency must not cap the rate).
    pub concurrency: usize,
    /// Look for work this often when nothing woke us.
    pub poll_interval: Duration,
    pub lease_ttl: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            rate_per_second: 25.0,
            per_chat_interval: Duration::from_secs(1),
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            concurrency: 16,
            poll_interval: Duration::from_millis(250),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

/// Shared pacing state: the next free global slot and each chat's last send.
struct Pace {
    next_slot: Instant,
    paused_until: Instant,
    last_per_chat: HashMap<i64, Instant>,
}

pub struct OutboxSender {
    db: Db,
    api: BotApi,
    clock: SharedClock,
    config: SenderConfig,
    holder: String,
    wake: Arc<Notify>,
    metrics: PipelineMetrics,
}

impl OutboxSender {
    pub fn new(
        db: Db,
        api: BotApi,
        clock: SharedClock,
        config: SenderConfig,
        holder: String,
        wake: Arc<Notify>,
        metrics: PipelineMetrics,
    ) -> Self {
        OutboxSender {
            db,
            api,
            clock,
            config,
            holder,
            wake,
            metrics,
        }
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let interval = Duration::from_secs_f64(1.0 / self.config.rate_per_second.max(0.001));
        let pace = Arc::new(Mutex::new(Pace {
            next_slot: Instant::now(),
            paused_until: Instant::now(),
            last_per_chat: HashMap::new(),
        }));
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let mut tasks = JoinSet::new();
        let mut held: Option<Lease> = None;
        let mut lease_checked = Instant::now() - Duration::from_secs(3600);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let beat = Duration::from_millis(500);
        // Claim about one second of sending at a time, so urgent messages wait at most that.
        let batch = (self.config.rate_per_second.ceil() as i64).clamp(1, 500);

        while !stop.is_cancelled() {
            hb.beat();
            while tasks.try_join_next().is_some() {}

            // Hold the lease; renew at a third of its life.
            if held.is_none() || lease_checked.elapsed() > self.config.lease_ttl / 3 {
                let now = self.clock.now();
                let result = match &held {
                    Some(l) => lease::renew(&self.db, l, self.config.lease_ttl, now).await,
                    None => {
                        lease::acquire(&self.db, LEASE, &self.holder, self.config.lease_ttl, now)
                            .await
                    }
                };
                match result {
                    Ok(Some(l)) => {
                        if held.is_none() {
                            tracing::info!(token = l.token, "this process now sends the outbox");
                        }
                        held = Some(l);
                        lease_checked = Instant::now();
                    }
                    Ok(None) => {
                        if held.take().is_some() {
                            tracing::warn!(
                                "lost the outbox-sender lease; another process sends now"
                            );
                            // Let in-flight sends finish; claim nothing more.
                            while tasks.join_next().await.is_some() {}
                        }
                        if !idle(self.config.lease_ttl / 3, &hb, beat, &stop).await {
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        let wait = backoff.fail();
                        tracing::warn!(error = %e, "cannot check the outbox-sender lease");
                        // Without a renewal the lease may lapse: stop sending until it is confirmed.
                        held = None;
                        if !idle(wait, &hb, beat, &stop).await {
                            break;
                        }
                        continue;
                    }
                }
            }

            let free = permits.available_permits() as i64;
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {}
                    _ = tokio::time::sleep(beat) => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            let now = self.clock.now();
            let claimed = match outbox::claim(
                &self.db,
                &self.holder,
                batch.min(free),
                now,
                now.plus(Duration::from_secs(60)),
            )
            .await
            {
                Ok(c) => {
                    backoff.succeed();
                    c
                }
                Err(e) => {
                    let wait = backoff.fail();
                    tracing::warn!(error = %e, "cannot claim outbox messages");
                    if !idle(wait, &hb, beat, &stop).await {
                        break;
                    }
                    continue;
                }
            };
            if claimed.is_empty() {
                let notified = self.wake.notified();
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }

            for msg in claimed {
                // Per-chat spacing: a chat that just got a message waits its turn in the table.
                let slot = {
                    let Ok(mut p) = pace.lock() else { break };
                    let now_i = Instant::now();
                    p.last_per_chat
                        .retain(|_, t| now_i.duration_since(*t) < self.config.per_chat_interval);
                    if let Some(last) = p.last_per_chat.get(&msg.chat_id) {
                        Err(*last + self.config.per_chat_interval)
                    } else {
                        let slot = p.next_slot.max(p.paused_until).max(now_i);
                        p.next_slot = slot + interval;
                        p.last_per_chat.insert(msg.chat_id, slot);
                        Ok(slot)
                    }
                };
                let slot = match slot {
                    Ok(s) => s,
                    Err(ready_at) => {
                        let wait = ready_at.saturating_duration_since(Instant::now());
                        let at = self.clock.now().plus(wait);
                        if let Err(e) = outbox::defer(&self.db, msg.id, &self.holder, at).await {
                            tracing::warn!(error = %e, "cannot defer a message; its claim will expire");
                        }
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let me = self.clone();
                let pace = pace.clone();
                tasks.spawn(async move {
                    tokio::time::sleep_until(slot).await;
                    // A 429 that arrived after this slot was given out still applies.
                    let paused = pace.lock().map(|p| p.paused_until).unwrap_or(slot);
                    if paused > Instant::now() {
                        tokio::time::sleep_until(paused).await;
                    }
                    me.send(msg, &pace).await;
                    drop(permit);
                });
            }
        }
        while tasks.join_next().await.is_some() {}
        if let Some(l) = held {
            let _ = lease::release(&self.db, &l, self.clock.now()).await;
        }
    }

    async fn send(&self, msg: Claimed, pace: &Mutex<Pace>) {
        let result = self.api.call_json(&msg.method, &msg.payload).await;
        let now = self.clock.now();
        let outcome = match result {
            Ok(value) => Outcome::Sent {
                message_id: value.get("message_id").and_then(serde_json::Value::as_i64),
            },
            Err(e) if e.is_not_modified() => Outcome::Sent { message_id: None },
            Err(e) => match e.disposition() {
                Disposition::Wait(d) => {
                    self.metrics.rate_limited.inc();
                    if let Ok(mut p) = pace.lock() {
                        let until = Instant::now() + d;
                        if until > p.paused_until {
                            p.paused_until = until;
                        }
                        p.next_slot = p.next_slot.max(until);
                    }
                    tracing::warn!(
                        retry_after_s = d.as_secs(),
                        "Telegram asked to slow down; pausing all sends"
                    );
                    Outcome::Retry {
                        at: now.plus(d),
                        reason: e.to_string(),
                        http_status: Some(429),
                        rate_limited: true,
                    }
                }
                Disposition::Retry if msg.attempts < self.config.max_attempts => {
                    let mut b = Backoff::new(self.config.retry_base, Duration::from_secs(600));
                    for _ in 1..msg.attempts {
                        b.fail();
                    }
                    Outcome::Retry {
                        at: now.plus(b.fail()),
                        reason: e.to_string(),
                        http_status: e.http_status(),
                        rate_limited: false,
                    }
                }
                Disposition::Retry => Outcome::Failed {
                    reason: format!("gave up after {} attempts: {e}", msg.attempts),
                    http_status: e.http_status(),
                },
                Disposition::Blocked => {
                    if let Err(err) = users::mark_bot_blocked(&self.db, msg.chat_id, now).await {
                        tracing::warn!(error = %err, "cannot mark the user blocked");
                    }
                    Outcome::Blocked {
                        reason: e.description().to_owned(),
                    }
                }
                Disposition::Fail => Outcome::Failed {
                    reason: e.to_string(),
                    http_status: e.http_status(),
                },
            },
        };
        let label = match &outcome {
            Outcome::Sent { .. } => "sent",
            Outcome::Retry {
                rate_limited: true, ..
            } => "rate_limited",
            Outcome::Retry { .. } => "retry",
            Outcome::Blocked { .. } => "blocked",
            Outcome::Failed { .. } => "failed",
        };
        self.metrics
            .sends
            .get_or_create(&OutcomeLabels { outcome: label })
            .inc();
        if let Outcome::Failed { reason, .. } = &outcome {
            tracing::warn!(outbox_id = msg.id, chat_id = msg.chat_id, method = %msg.method, %reason, "message failed permanently");
        }
        match outbox::finish_attempt(&self.db, msg.id, &self.holder, &outcome, now).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                outbox_id = msg.id,
                "claim lost before the attempt was recorded"
            ),
            Err(e) => {
                tracing::warn!(outbox_id = msg.id, error = %e, "cannot record the attempt; the claim will expire and the message may be sent again")
            }
        }
    }
}

impl Component for OutboxSender {
    fn name(&self) -> &'static str {
        "outbox-sender"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
