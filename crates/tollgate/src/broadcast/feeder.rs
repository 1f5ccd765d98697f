//! The broadcast feeder: queues a broadcast's recipients as the outbox drains, and keeps the
//! admin's progress message up to date.
//!
//! One feeder in the deployment holds the lease; a second replica's would only find the
//! cursor moved (its chunk is rolled back), so a lease lost mid-chunk cannot queue anyone
//! twice either, and the dedupe key is the last guard. The outbox holds at most a few seconds
//! of a broadcast at a time ([`FeederConfig::backlog_seconds`]): replies are never queued
//! behind it, a cancel has little to delete, and turning the `broadcasts` flag off stops the
//! feeding within that time, with the cursor kept for when it is turned on again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Broadcast, Status};
use crate::action::{Action, AdminAction, Op};
use crate::backoff::Backoff;
use crate::config::Language;
use crate::flags::{self, Flag};
use crate::i18n::{Arg, Texts};
use crate::lease::{Keeper, Standing};
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::telegram::outbox::{self, KeyedCounts, OutboxMessage, Priority};
use crate::time::{SharedClock, Timestamp};
use crate::users;

/// Name of the lease that makes this feeder the only one.
pub const LEASE: &str = "broadcast:feeder";

#[derive(Debug, Clone)]
pub struct FeederConfig {
    /// The outbox's global rate (`OUTBOX_RATE`): a free broadcast's pace at best.
    pub free_rate: f64,
    /// The paid broadcast rate.
    pub paid_rate: f64,
    /// How many seconds of sending are kept queued.
    pub backlog_seconds: f64,
    /// Most recipients queued in one transaction.
    pub chunk: i64,
    /// The progress message is edited at most this often.
    pub progress_every: Duration,
    pub lease_ttl: Duration,
}

impl Default for FeederConfig {
    fn default() -> Self {
        FeederConfig {
            free_rate: 25.0,
            paid_rate: 1000.0,
            backlog_seconds: 2.0,
            chunk: 500,
            progress_every: Duration::from_secs(3),
            lease_ttl: Duration::from_secs(10),
        }
    }
}

pub struct Feeder {
    db: Db,
    clock: SharedClock,
    texts: Arc<Texts>,
    config: FeederConfig,
    holder: String,
    outbox_wake: Arc<Notify>,
    fallback: Language,
}

/// What the feeder saw of the broadcast it feeds, for the next progress line's rate.
struct Seen {
    id: i64,
    done: i64,
    at: Instant,
    last_progress: Option<Instant>,
    rate: f64,
}

/// What one step found.
enum Step {
    /// More to do at once.
    Busy,
    /// Nothing to queue now.
    Idle,
}

impl Feeder {
    pub fn new(
        db: Db,
        clock: SharedClock,
        texts: Arc<Texts>,
        config: FeederConfig,
        holder: String,
        outbox_wake: Arc<Notify>,
        fallback: Language,
    ) -> Self {
        Feeder {
            db,
            clock,
            texts,
            config,
            holder,
            outbox_wake,
            fallback,
        }
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let mut keeper = Keeper::new(
            self.db.clone(),
            self.clock.clone(),
            LEASE,
            "feeds broadcasts",
            self.holder.clone(),
            self.config.lease_ttl,
        );
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let beat = Duration::from_millis(500);
        let mut seen: Option<Seen> = None;
        while !stop.is_cancelled() {
            hb.beat();
            let wait = match keeper.keep().await {
                Ok(Standing::Gained | Standing::Held) => None,
                Ok(Standing::Elsewhere) => Some(keeper.ttl() / 3),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the broadcast feeder lease");
                    Some(backoff.fail())
                }
            };
            if let Some(wait) = wait {
                if !idle(wait, &hb, beat, &stop).await {
                    break;
                }
                continue;
            }
            let wait = match self.step(&mut seen).await {
                Ok(Step::Busy) => {
                    backoff.succeed();
                    Duration::from_millis(20)
                }
                Ok(Step::Idle) => {
                    backoff.succeed();
                    IDLE_POLL
                }
                Err(e) => {
                    tracing::warn!(error = %e, "broadcast feeder step failed; retrying");
                    backoff.fail()
                }
            };
            if !idle(wait, &hb, beat, &stop).await {
                break;
            }
        }
        keeper.release().await;
    }

    /// Queues the next chunk of the broadcast being sent when the outbox has room, finishes
    /// it when everyone was queued and nothing is left to send, and edits its progress.
    async fn step(&self, seen: &mut Option<Seen>) -> Result<Step, sqlx::Error> {
        let Some(b) = super::sending(&self.db).await? else {
            *seen = None;
            return Ok(Step::Idle);
        };
        let now = self.clock.now();
        let prefix = super::key_prefix(b.id);
        let paused = !flags::get(&self.db, Flag::Broadcasts).await?;
        let progress_due = match seen {
            Some(s) if s.id == b.id => s
                .last_progress
                .is_none_or(|t| t.elapsed() >= self.config.progress_every),
            _ => true,
        };
        // The counts read the broadcast's whole key range: only for the progress and the end.
        if progress_due {
            let counts = outbox::count_keyed(&self.db, &prefix).await?;
            self.progress(&b, counts, seen, paused, now).await?;
        }
        if paused {
            return Ok(Step::Idle);
        }
        let rate = if b.paid {
            self.config.paid_rate
        } else {
            self.config.free_rate
        };
        let target = ((rate * self.config.backlog_seconds).ceil() as i64).max(1);
        let backlog = outbox::broadcast_backlog(&self.db).await?;
        if backlog >= target {
            return Ok(Step::Idle);
        }
        let want = (target - backlog).min(self.config.chunk);
        let page = users::audience_page(&self.db, b.audience, b.after_user, want, now).await?;
        let Some(last) = page.last().copied() else {
            // Messages whose sender died mid-call are not sent again (they may have been).
            let lapsed =
                Timestamp::from_millis(now.as_millis() - UNCERTAIN_AFTER.as_millis() as i64);
            let given_up = outbox::give_up_uncertain(&self.db, &prefix, lapsed, now).await?;
            if given_up > 0 {
                tracing::warn!(
                    broadcast = b.id,
                    messages = given_up,
                    "broadcast messages whose sending process died during the call are not sent again"
                );
                return Ok(Step::Busy);
            }
            let counts = outbox::count_keyed(&self.db, &prefix).await?;
            if counts.pending == 0 {
                if super::finish(&self.db, b.id, counts, now).await? {
                    tracing::info!(
                        broadcast = b.id,
                        sent = counts.sent,
                        failed = counts.failed,
                        blocked = counts.blocked,
                        "broadcast done"
                    );
                    let done = Broadcast {
                        status: Status::Done,
                        ..b
                    };
                    self.progress(&done, counts, seen, false, now).await?;
                }
                return Ok(Step::Busy);
            }
            return Ok(Step::Idle);
        };
        let messages: Vec<OutboxMessage> = page.iter().map(|u| b.message_to(*u)).collect();
        let mut tx = self.db.begin().await?;
        // The cursor first: it locks the row, so a cancel waits for this chunk and then
        // deletes it, or this chunk finds the broadcast cancelled and is rolled back.
        let n = i64::try_from(page.len()).unwrap_or(i64::MAX);
        if !super::advance(&mut tx, b.id, b.after_user, last, n).await? {
            tx.rollback().await?;
            return Ok(Step::Busy);
        }
        outbox::enqueue_all(&mut tx, &messages, now).await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(Step::Busy)
    }

    /// Edits the admin's progress message (sent when the broadcast was started) with what
    /// the outbox says now.
    async fn progress(
        &self,
        b: &Broadcast,
        counts: KeyedCounts,
        seen: &mut Option<Seen>,
        paused: bool,
        now: Timestamp,
    ) -> Result<(), sqlx::Error> {
        let done = counts.sent + counts.failed + counts.blocked;
        let at = Instant::now();
        let (rate, base_done, base_at) = match seen.as_ref() {
            Some(s) if s.id == b.id => {
                let secs = at.duration_since(s.at).as_secs_f64();
                if secs >= 0.5 {
                    ((done - s.done) as f64 / secs, done, at)
                } else {
                    (s.rate, s.done, s.at)
                }
            }
            _ => (0.0, done, at),
        };
        *seen = Some(Seen {
            id: b.id,
            done: base_done,
            at: base_at,
            last_progress: Some(at),
            rate,
        });
        let n = b.progress_n + 1;
        super::note_progress(&self.db, b.id, counts, n).await?;
        let Some(shown) = outbox::get_by_key(&self.db, &super::progress_key(b.id, 0))
            .await?
            .and_then(|r| r.message_id)
        else {
            // The progress message itself is not out yet; the next step tries again.
            return Ok(());
        };
        let lang = users::get(&self.db, b.created_by)
            .await?
            .map_or(self.fallback, |u| u.language_or(self.fallback));
        let text = progress_text(&self.texts, lang, b, counts, rate, paused);
        let mut params = serde_json::json!({
            "chat_id": b.created_by,
            "message_id": shown,
            "text": text,
            "parse_mode": "HTML",
        });
        if b.status == Status::Sending
            && let Some(o) = params.as_object_mut()
        {
            o.insert(
                "reply_markup".into(),
                cancel_markup(&self.texts, lang, b.id),
            );
        }
        let edit = OutboxMessage {
            dedupe_key: super::progress_key(b.id, n),
            chat_id: b.created_by,
            priority: Priority::Transactional,
            method: "editMessageText".into(),
            params,
        };
        let mut tx = self.db.begin().await?;
        outbox::enqueue(&mut tx, &edit, now).await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(())
    }
}

/// The progress of `b` as the admin reads it: sent, failed, blocked, remaining, rate, ETA.
pub fn progress_text(
    texts: &Texts,
    lang: Language,
    b: &Broadcast,
    counts: KeyedCounts,
    rate: f64,
    paused: bool,
) -> String {
    let done = counts.sent + counts.failed + counts.blocked;
    let remaining = (b.recipients - done).max(counts.pending).max(0);
    let state = match b.status {
        Status::Sending if paused => "bc-state-paused",
        Status::Sending => "bc-state-sending",
        Status::Done => "bc-state-done",
        Status::Cancelled => "bc-state-cancelled",
        Status::Draft => "bc-state-draft",
    };
    let eta = if b.status == Status::Sending && rate > 0.0 {
        let secs = (remaining as f64 / rate).ceil() as i64;
        format!("{}:{:02}", secs / 60, secs % 60)
    } else {
        "—".to_owned()
    };
    texts.fmt(
        lang,
        "bc-progress",
        &[
            ("id", b.id.into()),
            ("state", Arg::Text(texts.get(lang, state))),
            ("sent", counts.sent.into()),
            ("failed", counts.failed.into()),
            ("blocked", counts.blocked.into()),
            ("remaining", remaining.into()),
            ("rate", Arg::Text(format!("{rate:.1}"))),
            ("eta", Arg::Text(eta)),
        ],
    )
}

/// The progress message's Cancel button.
pub fn cancel_markup(texts: &Texts, lang: Language, id: i64) -> serde_json::Value {
    serde_json::json!({ "inline_keyboard": [[{
        "text": texts.get(lang, "bc-btn-cancel"),
        "callback_data": Action::Admin(AdminAction::Confirm(Op::BroadcastCancel(id))).encode(),
    }]] })
}

/// How long after its claim lapsed a message whose call was started counts as cut by a crash.
const UNCERTAIN_AFTER: Duration = Duration::from_secs(5);

/// How often the feeder looks for a broadcast to feed when there is none.
const IDLE_POLL: Duration = Duration::from_millis(500);

impl Component for Feeder {
    fn name(&self) -> &'static str {
        "broadcast-feeder"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}
