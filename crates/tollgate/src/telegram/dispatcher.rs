//! The dispatcher: claims stored updates and runs the handler on each, outside any request.
//!
//! Any number of replicas dispatch from the same inbox: claims are row-level (see `inbox`),
//! one update per chat in flight, chats in `update_id` order. Concurrency is derived from
//! the pool size with a share kept back for intake and workers, so handlers cannot starve
//! the pool (docs/reliability.md B4). Each update has a deadline; failures retry with backoff and
//! end in a dead-letter state with their error and an admin alert, after which the chat
//! moves on (B5). Delivery to handlers is at least once (a crash between a handler's commit
//! and the completion mark re-runs it), so handlers make their effects idempotent with keys
//! derived from `update_id` — or commit them together with [`inbox::complete_and_commit`].
//!
//! A payment (`update::PAYMENT`) is never dead-lettered: money was taken, and giving up would
//! leave it taken with nothing given, the earlier system's worst failure. Past the retry
//! budget it is tried again every [`PAYMENT_RETRY_CAP`] at most, for as long as it takes (a
//! database that refuses writes for an hour), and the admins are told once. Its chat waits
//! behind it meanwhile, which is the order the user expects: what they paid for first. A
//! payment update that can never be understood ends `failed` like any other, with an alert.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::api::BotApi;
use super::inbox::{self, Claimed, Terminal};
use super::update;
use crate::alerts::Alerts;
use crate::backoff::Backoff;
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::telegram::metrics::PipelineMetrics;
use crate::time::{SharedClock, Timestamp};
use crate::users;

/// The longest wait between two attempts of a payment past the retry budget.
pub const PAYMENT_RETRY_CAP: Duration = Duration::from_secs(60);

/// Why a handler did not finish an update.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (database or Telegram unavailable …).
    #[error("{0}")]
    Retry(String),
    /// Can never work (the update cannot be understood): recorded as failed, not retried.
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    /// Database errors are retried: an outage passes, and even a violated constraint is
    /// better dead-lettered with its error than dropped.
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Retry(format!("database: {e}"))
    }
}

/// What a handler gets besides the update.
#[derive(Clone)]
pub struct HandlerContext {
    pub db: Db,
    pub api: BotApi,
    pub clock: SharedClock,
    /// Wake the outbox sender after queuing messages.
    pub outbox_wake: Arc<Notify>,
}

/// How a handler finished an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The dispatcher marks the update done.
    Done,
    /// The handler already marked it done in its own transaction (with
    /// [`inbox::complete_and_commit`]), together with its effects.
    MarkedInTransaction,
}

/// The bot's logic plugs in here.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        update: Arc<Claimed>,
        ctx: HandlerContext,
    ) -> impl Future<Output = Result<Handled, HandlerError>> + Send;
}

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Updates handled at once by this process.
    pub concurrency: usize,
    /// Longest a handler may take on one update.
    pub deadline: Duration,
    /// Attempts before an update is dead-lettered.
    pub max_attempts: i32,
    /// How often to look for work when nothing woke us.
    pub poll_interval: Duration,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
}

impl DispatcherConfig {
    /// Concurrency from the pool: keep a quarter (at least 2 connections) for intake, the
    /// outbox and workers.
    pub fn for_pool(max_connections: u32) -> DispatcherConfig {
        let reserved = (max_connections / 4).max(2);
        DispatcherConfig {
            concurrency: max_connections.saturating_sub(reserved).max(1) as usize,
            deadline: Duration::from_secs(30),
            max_attempts: 5,
            poll_interval: Duration::from_millis(250),
            retry_base: Duration::from_secs(2),
        }
    }
}

pub struct Dispatcher<H> {
    handler: Arc<H>,
    ctx: HandlerContext,
    config: DispatcherConfig,
    worker: String,
    wake: Arc<Notify>,
    alerts: Alerts,
    metrics: PipelineMetrics,
}

impl<H: Handler> Dispatcher<H> {
    pub fn new(
        handler: Arc<H>,
        ctx: HandlerContext,
        config: DispatcherConfig,
        worker: String,
        wake: Arc<Notify>,
        alerts: Alerts,
        metrics: PipelineMetrics,
    ) -> Self {
        Dispatcher {
            handler,
            ctx,
            config,
            worker,
            wake,
            alerts,
            metrics,
        }
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        // Updates being handled here. A claim that expires while its handler still runs must
        // not be claimed and handled a second time by this same process.
        let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Mark>();
        // Outcomes not yet written (the database was unavailable): written before any new
        // claim, so a short outage neither loses an outcome nor strands a claim until expiry.
        let mut pending: Vec<Mark> = Vec::new();
        let mut tasks = JoinSet::new();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let beat_every = Duration::from_millis(500);
        // Claimed updates waiting for a handler slot. Claiming a few rounds ahead keeps the
        // database round trips per update low; an update whose claim would run out before
        // its handler could finish is let go instead (it is claimed again later).
        let mut queue: VecDeque<(Claimed, Timestamp)> = VecDeque::new();
        let window = self.config.concurrency * 4;
        let margin = (self.config.deadline / 4).max(Duration::from_secs(2));
        while !stop.is_cancelled() {
            hb.beat();
            while tasks.try_join_next().is_some() {}
            while let Ok(mark) = done_rx.try_recv() {
                pending.push(mark);
            }
            if !pending.is_empty()
                && let Err(e) = self.record(&mut pending).await
            {
                let wait = backoff.fail();
                tracing::warn!(error = %e, unrecorded = pending.len(), retry_in_ms = wait.as_millis() as u64, "cannot record update outcomes yet");
                if !idle(wait, &hb, beat_every, &stop).await {
                    break;
                }
                continue;
            }

            // Start what the handler slots allow.
            while permits.available_permits() > 0 {
                let Some((update, until)) = queue.pop_front() else {
                    break;
                };
                let now = self.ctx.clock.now();
                if now.plus(self.config.deadline) > until {
                    if let Ok(mut s) = in_flight.lock() {
                        s.remove(&update.update_id);
                    }
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    queue.push_front((update, until));
                    break;
                };
                let me = self.clone();
                let in_flight = in_flight.clone();
                let done = done_tx.clone();
                tasks.spawn(async move {
                    let id = update.update_id;
                    let mark = me.process(Arc::new(update)).await;
                    let _ = done.send(mark);
                    if let Ok(mut s) = in_flight.lock() {
                        s.remove(&id);
                    }
                    drop(permit);
                });
            }

            // Refill the queue when it runs low.
            let outstanding = in_flight.lock().map(|s| s.len()).unwrap_or(window);
            let room = window.saturating_sub(outstanding);
            let mut claimed_any = false;
            if queue.len() < self.config.concurrency && room > 0 {
                let now = self.ctx.clock.now();
                let until = now.plus(self.config.deadline + margin);
                match inbox::claim(&self.ctx.db, &self.worker, room as i64, now, until).await {
                    Ok(claimed) => {
                        backoff.succeed();
                        for update in claimed {
                            let fresh = in_flight
                                .lock()
                                .map(|mut s| s.insert(update.update_id))
                                .unwrap_or(false);
                            if fresh {
                                claimed_any = true;
                                queue.push_back((update, until));
                            }
                        }
                    }
                    Err(e) => {
                        let wait = backoff.fail();
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot claim updates");
                        if !idle(wait, &hb, beat_every, &stop).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            if claimed_any && permits.available_permits() > 0 {
                continue;
            }
            // Wait for a handler to finish, intake to wake us, or poll (other replicas'
            // intake cannot wake us).
            let idle_wait = if outstanding == 0 && queue.is_empty() {
                self.config.poll_interval
            } else {
                beat_every
            };
            tokio::select! {
                Some(mark) = done_rx.recv() => pending.push(mark),
                _ = self.wake.notified(), if room > 0 => {}
                _ = tokio::time::sleep(idle_wait) => {}
                _ = stop.cancelled() => break,
            }
        }
        // Graceful stop: let handlers finish briefly, record what finished, give the rest
        // back (A7).
        let grace = tokio::time::sleep(Duration::from_secs(3));
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut grace => {
                    tasks.abort_all();
                    break;
                }
            }
        }
        while let Ok(mark) = done_rx.try_recv() {
            pending.push(mark);
        }
        if let Err(e) = self.record(&mut pending).await {
            tracing::warn!(error = %e, "could not record every outcome at shutdown; those updates run again after their claims expire");
        }
        let left: Vec<i64> = in_flight
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if let Err(e) = inbox::release(&self.ctx.db, &left, &self.worker).await {
            tracing::warn!(error = %e, "could not release claims at shutdown; they expire on their own");
        }
    }

    /// Runs the handler on one update and says what should be recorded.
    async fn process(&self, update: Arc<Claimed>) -> Mark {
        if update.sender_blocked || update.kind == "my_chat_member" {
            note_reachability(&self.ctx.db, &update, &self.ctx.clock).await;
        }
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.config.deadline,
            self.handler.handle(update.clone(), self.ctx.clone()),
        )
        .await;
        self.metrics
            .handler_duration
            .get_or_create(&super::metrics::KindLabels {
                kind: update.kind.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        let error = match result {
            Ok(Ok(Handled::Done)) => return Mark::Done { update },
            Ok(Ok(Handled::MarkedInTransaction)) => return Mark::AlreadyDone,
            Ok(Err(e)) => e,
            Err(_) => HandlerError::Retry(format!(
                "the handler exceeded its deadline of {} ms",
                self.config.deadline.as_millis()
            )),
        };
        self.metrics.failed.inc();
        let pays = update.kind == update::PAYMENT;
        match error {
            HandlerError::Permanent(reason) => Mark::Terminal {
                update,
                state: Terminal::Failed,
                reason,
            },
            HandlerError::Retry(r) if update.attempts >= self.config.max_attempts && !pays => {
                let reason = format!(
                    "gave up after {} attempts; last error: {r}",
                    update.attempts
                );
                Mark::Terminal {
                    update,
                    state: Terminal::Dead,
                    reason,
                }
            }
            HandlerError::Retry(reason) => {
                let cap = if pays {
                    PAYMENT_RETRY_CAP
                } else {
                    Duration::from_secs(300)
                };
                let mut b = Backoff::new(self.config.retry_base, cap);
                for _ in 1..update.attempts {
                    b.fail();
                }
                let delay = b.fail();
                let over_budget = pays && update.attempts >= self.config.max_attempts;
                if over_budget {
                    tracing::error!(update_id = update.update_id, attempt = update.attempts, error = %reason, "a payment keeps failing; it is retried until it succeeds");
                } else {
                    tracing::warn!(update_id = update.update_id, attempt = update.attempts, error = %reason, "update failed; will retry");
                }
                let alert = over_budget.then(|| {
                    format!(
                        "⚠️ Payment update {} has failed {} times; it is retried every {} s at most until it is applied, never dropped.\nLast error: {}",
                        update.update_id,
                        update.attempts,
                        PAYMENT_RETRY_CAP.as_secs(),
                        reason
                    )
                });
                Mark::Retry {
                    update,
                    reason,
                    delay,
                    alert,
                }
            }
        }
    }

    /// Writes outcomes in order (successes in one transaction); stops at the first database
    /// error, keeping what is not written yet.
    async fn record(&self, pending: &mut Vec<Mark>) -> Result<(), sqlx::Error> {
        let db = &self.ctx.db;
        let already = pending
            .iter()
            .filter(|m| matches!(m, Mark::AlreadyDone))
            .count();
        self.metrics.processed.inc_by(already as u64);
        pending.retain(|m| !matches!(m, Mark::AlreadyDone));
        let done: Vec<i64> = pending
            .iter()
            .filter_map(|m| match m {
                Mark::Done { update } => Some(update.update_id),
                _ => None,
            })
            .collect();
        // In slices, so one transaction never holds SQLite's only connection for long.
        for chunk in done.chunks(RECORD_CHUNK) {
            inbox::complete_all(db, chunk, &self.worker, self.ctx.clock.now()).await?;
            self.metrics.processed.inc_by(chunk.len() as u64);
            pending.retain(
                |m| !matches!(m, Mark::Done { update } if chunk.contains(&update.update_id)),
            );
        }
        while let Some(mark) = pending.first() {
            let now = self.ctx.clock.now();
            match mark {
                Mark::Done { .. } | Mark::AlreadyDone => {}
                Mark::Retry {
                    update,
                    reason,
                    delay,
                    alert,
                } => {
                    // Once per update: the alert's key makes the later attempts' no-ops.
                    if let Some(text) = alert {
                        let key = format!("payment-stuck:{}", update.update_id);
                        self.alerts.queue(db, &key, text, now).await?;
                        self.ctx.outbox_wake.notify_one();
                    }
                    inbox::retry_later(
                        db,
                        update.update_id,
                        &self.worker,
                        reason,
                        now.plus(*delay),
                    )
                    .await?;
                }
                Mark::Terminal {
                    update,
                    state,
                    reason,
                } => {
                    let mut tx = db.begin().await?;
                    let moved = inbox::finish_failed(
                        &mut tx,
                        update.update_id,
                        &self.worker,
                        *state,
                        reason,
                        now,
                    )
                    .await?;
                    if moved && *state == Terminal::Failed && update.kind == update::PAYMENT {
                        let text = format!(
                            "⚠️ Payment update {} cannot be understood, so it was not applied: money may have been taken with nothing given. Find the charge in the update and settle it by hand (/payment <charge id>).\nError: {}",
                            update.update_id, reason
                        );
                        self.alerts
                            .queue_in(&mut tx, &format!("failed:{}", update.update_id), &text, now)
                            .await?;
                    }
                    if moved && *state == Terminal::Dead {
                        let text = format!(
                            "⚠️ Update {} ({}) was dead-lettered after {} attempts.\nLast error: {}",
                            update.update_id, update.kind, update.attempts, reason
                        );
                        self.alerts
                            .queue_in(&mut tx, &format!("dead:{}", update.update_id), &text, now)
                            .await?;
                    }
                    tx.commit().await?;
                    if moved && *state == Terminal::Dead {
                        self.metrics.dead_lettered.inc();
                        self.ctx.outbox_wake.notify_one();
                        tracing::error!(update_id = update.update_id, kind = %update.kind, error = %reason, "update dead-lettered");
                    } else if moved {
                        tracing::warn!(update_id = update.update_id, kind = %update.kind, error = %reason, "update recorded as failed");
                    }
                }
            }
            pending.remove(0);
        }
        Ok(())
    }
}

/// Most outcomes written per transaction.
const RECORD_CHUNK: usize = 64;

/// What to record about a handled update.
enum Mark {
    Done {
        update: Arc<Claimed>,
    },
    /// Nothing left to record (the handler's transaction did it); counted as processed.
    AlreadyDone,
    Retry {
        update: Arc<Claimed>,
        reason: String,
        delay: Duration,
        /// For admins, queued before the retry is recorded.
        alert: Option<String>,
    },
    Terminal {
        update: Arc<Claimed>,
        state: Terminal,
        reason: String,
    },
}

impl<H: Handler> Component for Dispatcher<H> {
    fn name(&self) -> &'static str {
        "dispatcher"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}

/// Any update from a user shows they can be reached again; `my_chat_member` says so
/// explicitly in both directions. Delivery state only — it never gates anything else.
async fn note_reachability(db: &Db, update: &Claimed, clock: &SharedClock) {
    #[derive(serde::Deserialize)]
    struct From {
        id: i64,
    }
    #[derive(serde::Deserialize)]
    struct WithFrom {
        from: From,
    }
    #[derive(serde::Deserialize)]
    struct Member {
        status: String,
    }
    #[derive(serde::Deserialize)]
    struct ChatMember {
        from: From,
        new_chat_member: Member,
    }
    #[derive(serde::Deserialize)]
    struct Head {
        message: Option<WithFrom>,
        callback_query: Option<WithFrom>,
        pre_checkout_query: Option<WithFrom>,
        my_chat_member: Option<ChatMember>,
    }
    let Ok(head) = serde_json::from_str::<Head>(&update.payload) else {
        return;
    };
    let now = clock.now();
    let result = if let Some(m) = head.my_chat_member {
        if matches!(m.new_chat_member.status.as_str(), "kicked" | "left") {
            users::mark_bot_blocked(db, m.from.id, now).await
        } else {
            users::clear_bot_blocked(db, m.from.id, now).await
        }
    } else if let Some(from) = head
        .message
        .or(head.callback_query)
        .or(head.pre_checkout_query)
        .map(|w| w.from)
    {
        users::clear_bot_blocked(db, from.id, now).await
    } else {
        Ok(())
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not update reachability");
    }
}
