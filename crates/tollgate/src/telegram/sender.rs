//! The outbox sender: delivers queued messages at Telegram's pace.
//!
//! The earlier bot flooded Telegram and ignored 429s. Here one sender in the whole
//! deployment (it holds a lease) paces every send against one global rate (default 25/s),
//! keeps at least a second between two messages to the same chat, and sends the most urgent
//! messages first. Broadcasts take what replies leave: they are claimed in lanes of their own
//! with a short lookahead, so a reply queued behind them waits a fraction of a second; paid
//! broadcasts (`allow_paid_broadcast`) run on a clock of their own at Telegram's paid rate.
//! Before a broadcast message's call the sender records that the call starts (in batches):
//! a cancelled broadcast's message is then found deleted and not sent, and a message whose
//! call a crash cut is never sent a second time (docs/reliability.md G9).
//! A 429 pauses all sending for `retry_after`; 5xx, timeouts and network
//! errors retry with backoff; a 403 marks the recipient blocked (their other messages fail
//! the same way while the rest go on); other 4xx fail at once with Telegram's reason. Every
//! attempt's outcome is recorded (docs/reliability.md G3, D6).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::{ApiError, BotApi, Disposition};
use super::metrics::{OutcomeLabels, PipelineMetrics};
use super::outbox::{self, Attempt, Claimed, Lane, Outcome};
use crate::backoff::Backoff;
use crate::lease::{Keeper, Standing};
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
    /// Messages per second of paid broadcasts (`allow_paid_broadcast`; Telegram: up to 1000),
    /// on top of `rate_per_second`.
    pub paid_broadcast_rate: f64,
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
    /// `PAYMENT_PROVIDER_TOKEN`, put into card invoices at send time so the secret is never
    /// stored in outbox rows (see [`PROVIDER_TOKEN_PLACEHOLDER`]).
    pub provider_token: Option<crate::config::Secret<String>>,
}

/// What a queued `sendInvoice` carries as `provider_token` for a card invoice; the sender
/// replaces it with the configured token.
pub const PROVIDER_TOKEN_PLACEHOLDER: &str = "$PAYMENT_PROVIDER_TOKEN";

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            rate_per_second: 25.0,
            paid_broadcast_rate: 1000.0,
            per_chat_interval: Duration::from_secs(1),
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            concurrency: 16,
            poll_interval: Duration::from_millis(250),
            lease_ttl: Duration::from_secs(10),
            provider_token: None,
        }
    }
}

/// Shared pacing state: the next free global slot and each chat's last send.
struct Pace {
    next_slot: Instant,
    /// The paid broadcasts' clock.
    paid_next_slot: Instant,
    paused_until: Instant,
    last_per_chat: HashMap<i64, Instant>,
}

/// What the send loop shares with the send tasks it starts.
struct Sending {
    /// Time between two global send slots.
    interval: Duration,
    /// Time between two paid broadcast slots.
    paid_interval: Duration,
    pace: Arc<Mutex<Pace>>,
    permits: Arc<Semaphore>,
    /// Messages being sent by this process: a claim that expires during a long 429 pause
    /// must not be claimed and sent a second time. Each with its lane.
    in_flight: Arc<Mutex<HashMap<i64, Lane>>>,
    done_tx: mpsc::UnboundedSender<(Claimed, Outcome)>,
    /// Broadcast messages about to be called, to the writer of their call starts; the answer
    /// says whether to call.
    intents: mpsc::UnboundedSender<(i64, oneshot::Sender<bool>)>,
    tasks: JoinSet<()>,
}

impl Sending {
    fn new(
        config: &SenderConfig,
        done_tx: mpsc::UnboundedSender<(Claimed, Outcome)>,
        intents: mpsc::UnboundedSender<(i64, oneshot::Sender<bool>)>,
    ) -> Self {
        Sending {
            interval: Duration::from_secs_f64(1.0 / config.rate_per_second.max(0.001)),
            paid_interval: Duration::from_secs_f64(1.0 / config.paid_broadcast_rate.max(0.001)),
            pace: Arc::new(Mutex::new(Pace {
                next_slot: Instant::now(),
                paid_next_slot: Instant::now(),
                paused_until: Instant::now(),
                last_per_chat: HashMap::new(),
            })),
            permits: Arc::new(Semaphore::new(config.concurrency)),
            in_flight: Arc::default(),
            done_tx,
            intents,
            tasks: JoinSet::new(),
        }
    }
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
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Claimed, Outcome)>();
        let (intents_tx, intents_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(self.clone().write_call_starts(intents_rx));
        let mut sending = Sending::new(&self.config, done_tx, intents_tx);
        // Attempt outcomes not yet written (database unavailable): written before any new
        // claim, so a sent message is never sent again because its record was lost.
        let mut pending: Vec<(Claimed, Outcome)> = Vec::new();
        let mut keeper = Keeper::new(
            self.db.clone(),
            self.clock.clone(),
            LEASE,
            "sends the outbox",
            self.holder.clone(),
            self.config.lease_ttl,
        );
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let beat = Duration::from_millis(500);
        // Claim about one second of sending at a time, so urgent messages wait at most that.
        let batch = (self.config.rate_per_second.ceil() as i64).clamp(1, 128);
        // Free broadcasts: a quarter of a second of the global rate ahead; paid ones: half a
        // second of theirs (their own clock, so nothing else waits behind them).
        let broadcast_cap = ((self.config.rate_per_second / 4.0).ceil() as i64).clamp(1, 128);
        let paid_cap = ((self.config.paid_broadcast_rate / 2.0).ceil() as i64).clamp(2, 2000);
        // When each lane may be claimed again; an empty broadcast lane is looked at less
        // often (the feeder wakes the sender when it queues).
        let mut next_poll = [Instant::now(); 3];
        let idle_poll = [
            self.config.poll_interval,
            BROADCAST_IDLE_POLL,
            BROADCAST_IDLE_POLL,
        ];

        while !stop.is_cancelled() {
            hb.beat();
            while sending.tasks.try_join_next().is_some() {}
            while let Ok(done) = done_rx.try_recv() {
                pending.push(done);
            }
            if !pending.is_empty()
                && let Err(e) = self.record(&mut pending).await
            {
                let wait = backoff.fail();
                tracing::warn!(error = %e, unrecorded = pending.len(), "cannot record send attempts yet");
                if !idle(wait, &hb, beat, &stop).await {
                    break;
                }
                continue;
            }

            // Claim nothing without the lease (renewed at a third of its life).
            let wait = match keeper.keep().await {
                Ok(Standing::Gained | Standing::Held) => None,
                Ok(Standing::Elsewhere) => Some(keeper.ttl() / 3),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the outbox-sender lease");
                    Some(backoff.fail())
                }
            };
            if let Some(wait) = wait {
                if !idle(wait, &hb, beat, &stop).await {
                    break;
                }
                continue;
            }

            // During a 429 pause nothing new is claimed; claimed messages wait in their tasks.
            let paused_for = sending
                .pace
                .lock()
                .map(|p| p.paused_until.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            if !paused_for.is_zero() {
                tokio::select! {
                    Some(done) = done_rx.recv() => pending.push(done),
                    _ = tokio::time::sleep(paused_for.min(beat)) => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            // Each lane keeps its own lookahead claimed: urgent messages about two seconds,
            // broadcasts little enough that a reply behind them still goes out at once.
            let outstanding = sending
                .in_flight
                .lock()
                .map(|s| {
                    let mut n = [0_i64; 3];
                    for lane in s.values() {
                        n[lane_index(*lane)] += 1;
                    }
                    n
                })
                .unwrap_or([i64::MAX; 3]);
            let now_i = Instant::now();
            let mut claimed = Vec::new();
            let mut failed = None;
            for (lane, cap) in [
                (Lane::Urgent, 2 * batch),
                (Lane::Broadcast, broadcast_cap),
                (Lane::PaidBroadcast, paid_cap),
            ] {
                let i = lane_index(lane);
                let out = outstanding[i];
                // The paid lane refills in halves, so it is not claimed after every send.
                let due = if lane == Lane::PaidBroadcast {
                    out <= cap / 2
                } else {
                    out < cap
                };
                if !due || now_i < next_poll[i] {
                    continue;
                }
                let room = (cap - out).min(if lane == Lane::Urgent { batch } else { cap });
                let now = self.clock.now();
                let until = now.plus(CLAIM_TTL);
                match outbox::claim_lane(&self.db, lane, &self.holder, room, now, until).await {
                    Ok(c) => {
                        // A short claim drained the lane: look again after a while (a wake
                        // brings it forward); a full one may have left more.
                        next_poll[i] = if (c.len() as i64) < room {
                            now_i + idle_poll[i]
                        } else {
                            now_i
                        };
                        claimed.extend(c);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                let wait = backoff.fail();
                tracing::warn!(error = %e, "cannot claim outbox messages");
                if !idle(wait, &hb, beat, &stop).await {
                    break;
                }
                continue;
            }
            backoff.succeed();
            if claimed.is_empty() {
                let soonest = next_poll
                    .iter()
                    .min()
                    .copied()
                    .unwrap_or(now_i)
                    .max(now_i + Duration::from_millis(5));
                let wait = soonest.saturating_duration_since(now_i).min(beat);
                tokio::select! {
                    _ = self.wake.notified() => next_poll = [Instant::now(); 3],
                    Some(done) = done_rx.recv() => pending.push(done),
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            claimed.sort_by_key(|r| (r.priority, r.id));
            self.start_sends(&mut sending, claimed).await;
        }
        // Let claimed sends finish (the supervisor bounds this), then record them.
        while sending.tasks.join_next().await.is_some() {}
        while let Ok(done) = done_rx.try_recv() {
            pending.push(done);
        }
        if let Err(e) = self.record(&mut pending).await {
            tracing::warn!(error = %e, "could not record every send at shutdown; those messages may be sent again");
        }
        drop(sending);
        let _ = writer.await;
        keeper.release().await;
    }

    /// Gives each claimed message its slot on the global clock and a task that sends it
    /// then; a chat that just got a message has it deferred instead.
    async fn start_sends(self: &Arc<Self>, sending: &mut Sending, claimed: Vec<Claimed>) {
        for msg in claimed {
            let lane = lane_of(&msg);
            let fresh = sending
                .in_flight
                .lock()
                .map(|mut s| s.insert(msg.id, lane).is_none())
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            // Per-chat spacing: a chat that just got a message waits its turn in the table.
            let slot = {
                let Ok(mut p) = sending.pace.lock() else {
                    break;
                };
                let now_i = Instant::now();
                let spacing = self.config.per_chat_interval;
                p.last_per_chat
                    .retain(|_, t| now_i.saturating_duration_since(*t) < spacing);
                if let Some(last) = p.last_per_chat.get(&msg.chat_id) {
                    Err(*last + spacing)
                } else if lane == Lane::PaidBroadcast {
                    let slot = p.paid_next_slot.max(p.paused_until).max(now_i);
                    p.paid_next_slot = slot + sending.paid_interval;
                    p.last_per_chat.insert(msg.chat_id, slot);
                    Ok(slot)
                } else {
                    let slot = p.next_slot.max(p.paused_until).max(now_i);
                    p.next_slot = slot + sending.interval;
                    p.last_per_chat.insert(msg.chat_id, slot);
                    Ok(slot)
                }
            };
            let slot = match slot {
                Ok(s) => s,
                Err(ready_at) => {
                    if let Ok(mut s) = sending.in_flight.lock() {
                        s.remove(&msg.id);
                    }
                    let wait = ready_at.saturating_duration_since(Instant::now());
                    let at = self.clock.now().plus(wait);
                    if let Err(e) = outbox::defer(&self.db, msg.id, &self.holder, at).await {
                        tracing::warn!(error = %e, "cannot defer a message; its claim will expire");
                    }
                    continue;
                }
            };
            let me = self.clone();
            let pace = sending.pace.clone();
            let done = sending.done_tx.clone();
            let in_flight = sending.in_flight.clone();
            let permits = sending.permits.clone();
            let intents = sending.intents.clone();
            sending.tasks.spawn(async move {
                tokio::time::sleep_until(slot).await;
                // A 429 that arrived after this slot was given out still applies.
                let paused = pace.lock().map(|p| p.paused_until).unwrap_or(slot);
                if paused > Instant::now() {
                    tokio::time::sleep_until(paused).await;
                }
                // Bounded calls in flight; pacing already spaced them.
                let Ok(permit) = permits.acquire_owned().await else {
                    return;
                };
                let id = msg.id;
                // A broadcast message's call start is recorded first; one a cancel deleted
                // since the claim is not sent.
                if lane != Lane::Urgent {
                    let (answer, asked) = oneshot::channel();
                    let go = intents.send((id, answer)).is_ok() && asked.await.unwrap_or(false);
                    if !go {
                        drop(permit);
                        if let Ok(mut s) = in_flight.lock() {
                            s.remove(&id);
                        }
                        return;
                    }
                }
                let outcome = me.send(&msg, &pace).await;
                drop(permit);
                let _ = done.send((msg, outcome));
                if let Ok(mut s) = in_flight.lock() {
                    s.remove(&id);
                }
            });
        }
    }

    /// Writes the call starts of broadcast messages, gathered for a few milliseconds into one
    /// statement, and answers each: call it (its start is recorded) or not (deleted by a
    /// cancel, or the database unavailable: its claim lapses and it is claimed again).
    async fn write_call_starts(
        self: Arc<Self>,
        mut asks: mpsc::UnboundedReceiver<(i64, oneshot::Sender<bool>)>,
    ) {
        while let Some(first) = asks.recv().await {
            let mut batch = vec![first];
            let gather = tokio::time::sleep(CALL_START_GATHER);
            tokio::pin!(gather);
            loop {
                tokio::select! {
                    more = asks.recv() => match more {
                        Some(m) => batch.push(m),
                        None => break,
                    },
                    _ = &mut gather => break,
                }
            }
            let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            let started = match outbox::start_calls(&self.db, &self.holder, &ids, self.clock.now())
                .await
            {
                Ok(s) => s.into_iter().collect::<std::collections::HashSet<i64>>(),
                Err(e) => {
                    tracing::warn!(error = %e, messages = ids.len(), "cannot record broadcast call starts; those messages wait for their claims to lapse");
                    Default::default()
                }
            };
            for (id, answer) in batch {
                let _ = answer.send(started.contains(&id));
            }
        }
    }

    /// One Bot API call; the outcome says what to record.
    async fn send(&self, msg: &Claimed, pace: &Mutex<Pace>) -> Outcome {
        let result = match self.call(&msg.method, &msg.payload).await {
            // A screen that can no longer be edited (too old, deleted, a photo) is sent anew.
            Err(e) if msg.method == "editMessageText" && e.is_uneditable() => {
                match resend_of_edit(&msg.payload) {
                    Some(params) => self.call("sendMessage", &params).await,
                    None => Err(e),
                }
            }
            other => other,
        };
        let now = self.clock.now();
        match result {
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
                Disposition::Blocked => Outcome::Blocked {
                    reason: e.description().to_owned(),
                },
                Disposition::Fail => Outcome::Failed {
                    reason: e.to_string(),
                    http_status: e.http_status(),
                },
            },
        }
    }

    /// One Bot API call from an outbox row. A `sendPhoto` whose `photo` is `{"qr": text}`
    /// uploads a QR code of `text` rendered here (the outbox stores intent, not image bytes).
    async fn call(&self, method: &str, payload: &str) -> Result<serde_json::Value, ApiError> {
        if method == "sendPhoto"
            && let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(payload)
            && let Some(text) = fields
                .get("photo")
                .and_then(|p| p.get("qr"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        {
            let png = crate::qr::png(&text).map_err(|e| ApiError::BadRequest {
                code: 400,
                description: format!("cannot render the QR code: {e}"),
            })?;
            fields.remove("photo");
            return self.api.send_photo_bytes(&fields, "qr.png", png).await;
        }
        if method == "sendInvoice" && payload.contains(PROVIDER_TOKEN_PLACEHOLDER) {
            let Some(token) = &self.config.provider_token else {
                return Err(ApiError::BadRequest {
                    code: 400,
                    description: "a card invoice was queued but PAYMENT_PROVIDER_TOKEN is not set"
                        .into(),
                });
            };
            let mut params: serde_json::Value =
                serde_json::from_str(payload).map_err(|e| ApiError::BadRequest {
                    code: 400,
                    description: format!("queued invoice is not JSON: {e}"),
                })?;
            params["provider_token"] = serde_json::Value::String(token.expose().clone());
            return self.api.call_json(method, &params.to_string()).await;
        }
        self.api.call_json(method, payload).await
    }

    /// Writes the attempt outcomes in one transaction; on a database error keeps them all.
    async fn record(&self, pending: &mut Vec<(Claimed, Outcome)>) -> Result<(), sqlx::Error> {
        if pending.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        for (msg, outcome) in pending.iter() {
            if let Outcome::Blocked { .. } = outcome {
                users::mark_bot_blocked(&self.db, msg.chat_id, now).await?;
            }
        }
        let attempts: Vec<Attempt<'_>> = pending
            .iter()
            .map(|(m, o)| Attempt {
                id: m.id,
                chat_id: m.chat_id,
                more_in_chat: m.more_in_chat,
                outcome: o,
            })
            .collect();
        // In slices, so one transaction never holds SQLite's only connection for long.
        let mut kept = Vec::with_capacity(attempts.len());
        for chunk in attempts.chunks(RECORD_CHUNK) {
            let k = outbox::finish_attempts(
                &self.db,
                &self.holder,
                chunk,
                now,
                self.config.per_chat_interval,
            )
            .await;
            match k {
                Ok(k) => kept.extend(k),
                Err(e) => {
                    // Keep what was not written; what was is done.
                    pending.drain(..kept.len());
                    return Err(e);
                }
            }
        }
        for ((msg, outcome), kept) in pending.iter().zip(kept) {
            if !kept {
                tracing::warn!(
                    outbox_id = msg.id,
                    "claim lost before the attempt was recorded"
                );
            }
            self.metrics
                .sends
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.label(),
                })
                .inc();
            if let Outcome::Failed { reason, .. } = outcome {
                tracing::warn!(outbox_id = msg.id, chat_id = msg.chat_id, method = %msg.method, %reason, "message failed permanently");
            }
        }
        pending.clear();
        Ok(())
    }
}

/// The `sendMessage` parameters that show what an `editMessageText` would have shown.
fn resend_of_edit(payload: &str) -> Option<String> {
    let mut params: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(payload).ok()?;
    params.remove("message_id");
    params.remove("inline_message_id");
    Some(serde_json::Value::Object(params).to_string())
}

/// The lane a claimed message came from.
fn lane_of(msg: &Claimed) -> Lane {
    match (msg.priority >= 2, msg.paid_broadcast) {
        (false, _) => Lane::Urgent,
        (true, false) => Lane::Broadcast,
        (true, true) => Lane::PaidBroadcast,
    }
}

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Urgent => 0,
        Lane::Broadcast => 1,
        Lane::PaidBroadcast => 2,
    }
}

/// How long call starts are gathered into one statement.
const CALL_START_GATHER: Duration = Duration::from_millis(3);

/// How often an empty broadcast lane is looked at without a wake.
const BROADCAST_IDLE_POLL: Duration = Duration::from_secs(2);

/// Most attempts recorded per transaction.
const RECORD_CHUNK: usize = 64;

/// How long a claimed message stays reserved (a send takes at most the 10 s call timeout
/// plus pacing; in-flight ids guard longer 429 pauses).
const CLAIM_TTL: Duration = Duration::from_secs(15);

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
