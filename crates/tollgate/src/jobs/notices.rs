//! The notice timeline of every subscription: reminders before expiry (paid, gift, admin),
//! trial messages (onboarding, before the end, the end with an offer), and expiry itself —
//! access taken away on every node and one "expired" message (PRODUCT §4, §6; RELIABILITY
//! D1, D3, D6, D8).
//!
//! Each subscription's current period has a fixed list of events computed from its kind,
//! `notice_from` (when the period's dates were last set) and `expires_at`. The row keeps how
//! many events are done (`notice_stage`) and when the next is due (`next_notice_at`, indexed),
//! so finding due work is an index range that is empty when nothing is due. Every grant,
//! renewal or refund resets the timeline (stage 0, due now): events that fell before the new
//! dates are skipped, so a renewal never leaves a stale reminder behind, and a grant shorter
//! than an offset never gets that reminder. Each subscription is handled in its own
//! transaction that locks the row — the same lock renewals take, so expiry and renewal are
//! serialized — and its messages are outbox rows keyed by (subscription, period, event).
//! Reachability (`bot_blocked_at`) plays no part: a blocked user still expires (D6).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::access::{self, ExpireOutcome, Kind};
use crate::app::Services;
use crate::bot::action::Action;
use crate::config::Language;
use crate::config::catalog::NotificationSettings;
use crate::i18n::{Arg, Texts, format};
use crate::store::{Db, Tx};
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::{SharedClock, Timestamp};
use crate::{on_db, on_tx};

use super::{IterationFuture, Job};

/// Subscriptions handled per iteration at most (the rest wait for the next one).
const BATCH: i64 = 500;
/// Subscriptions with a due event, oldest first (`$1` now, `$2` batch): a range of the
/// partial index `subscriptions_next_notice`, empty when nothing is due (a test checks the
/// plan on both backends).
pub const DUE_QUERY: &str =
    "SELECT id FROM subscriptions WHERE next_notice_at IS NOT NULL AND next_notice_at <= $1
     ORDER BY next_notice_at LIMIT $2";
/// A subscription whose notice failed comes due again after this long.
pub const ITEM_RETRY: Duration = Duration::from_secs(15 * 60);

/// One event of a period's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    TrialOnboarding,
    /// A trial's "ends in …", at this offset before the end.
    TrialEnding(Duration),
    /// A paid/gift/admin reminder at this offset before expiry.
    Reminder(Duration),
    Expired,
}

impl Event {
    fn key(self) -> String {
        match self {
            Event::TrialOnboarding => "onboarding".into(),
            Event::TrialEnding(o) => format!("trial-ending-{}", o.as_secs()),
            Event::Reminder(o) => format!("reminder-{}", o.as_secs()),
            Event::Expired => "expired".into(),
        }
    }
}

/// The events of one period, in time order; the last is always the expiry.
pub fn timeline(
    kind: Kind,
    starts_at: Timestamp,
    notice_from: Timestamp,
    expires_at: Timestamp,
    n: &NotificationSettings,
) -> Vec<(Timestamp, Event)> {
    let mut events = Vec::new();
    if kind == Kind::Trial {
        events.push((
            starts_at.plus(n.trial_onboarding_after_start),
            Event::TrialOnboarding,
        ));
        for o in &n.trial_reminders_before_end {
            events.push((expires_at.minus(*o), Event::TrialEnding(*o)));
        }
    } else {
        for o in &n.reminders_before_expiry {
            events.push((expires_at.minus(*o), Event::Reminder(*o)));
        }
    }
    // Only events of this period that come after its dates were set, and before its end.
    events.retain(|(at, _)| *at >= notice_from && *at < expires_at);
    events.sort_by_key(|(at, _)| *at);
    events.push((expires_at, Event::Expired));
    events
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    user_id: i64,
    kind: String,
    starts_at: Timestamp,
    expires_at: Timestamp,
    revoked_at: Option<Timestamp>,
    notice_stage: i32,
    notice_from: Option<Timestamp>,
    language: String,
}

/// Reminders, trial messages and expiry (see the module docs).
pub struct Notices {
    db: Db,
    clock: SharedClock,
    texts: Arc<Texts>,
    s: Services,
}

impl Notices {
    pub fn new(s: Services, texts: Arc<Texts>) -> Notices {
        Notices {
            db: s.db.clone(),
            clock: s.clock.clone(),
            texts,
            s,
        }
    }

    /// Handles every subscription with a due event (up to a batch); returns how many.
    pub async fn run_batch(&self) -> anyhow::Result<u64> {
        self.run_batch_until(&CancellationToken::new()).await
    }

    /// [`Notices::run_batch`] that stops taking new subscriptions once `stop` is cancelled.
    ///
    /// A subscription whose transaction fails for a reason other than the database being
    /// unreachable (a bad row) does not hold up the others: it is rolled back, put back by
    /// [`ITEM_RETRY`] and logged, the batch goes on, and the iteration ends in `error`.
    pub async fn run_batch_until(&self, stop: &CancellationToken) -> anyhow::Result<u64> {
        let now = self.clock.now();
        let due: Vec<(i64,)> = on_db!(&self.db, p => sqlx::query_as(DUE_QUERY)
            .bind(now).bind(BATCH).fetch_all(p).await)?;
        let mut handled = 0;
        let mut expired = false;
        let mut failed = Vec::new();
        for (id,) in due {
            if stop.is_cancelled() {
                break;
            }
            let mut tx = self.db.begin().await?;
            if let Tx::Postgres(t) = &mut tx {
                // Everything this transaction does is derived from the subscription row and
                // done again if lost, so it need not wait for its WAL flush: a crash can only
                // undo the last moments' notices as a whole (never half of one), and the next
                // iteration redoes them. This takes one disk flush per item off an expiry wave.
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut **t)
                    .await?;
            }
            match self.one(&mut tx, id, now).await {
                Ok(Some(e)) => {
                    tx.commit().await?;
                    handled += 1;
                    expired |= e;
                }
                Ok(None) => drop(tx),
                Err(e) => {
                    drop(tx);
                    if super::database_unavailable(&e) {
                        return Err(e);
                    }
                    tracing::warn!(job = "notices", subscription = id, error = %format!("{e:#}"),
                        retry_in = ?ITEM_RETRY, "cannot handle this subscription's notice; the others go on");
                    self.put_back(id, now).await;
                    failed.push(id);
                }
            }
        }
        if handled > 0 {
            self.s.outbox_wake.notify_one();
        }
        if expired {
            self.s.provisioning.wake();
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{} subscription(s) failed and were put back (ids {failed:?}); {handled} handled",
                failed.len()
            );
        }
        Ok(handled)
    }

    /// After a failure: the subscription comes due again in [`ITEM_RETRY`] instead of at the
    /// head of every batch. Best effort: if even this fails, it stays due.
    async fn put_back(&self, id: i64, now: Timestamp) {
        let retry_at = now.plus(ITEM_RETRY);
        let r = on_db!(&self.db, p => sqlx::query(
            "UPDATE subscriptions SET next_notice_at = $2 WHERE id = $1 AND next_notice_at <= $3"
        ).bind(id).bind(retry_at).bind(now).execute(p).await.map(|r| r.rows_affected()));
        if let Err(e) = r {
            tracing::warn!(job = "notices", subscription = id, error = %e, "cannot put the subscription back");
        }
    }

    /// One subscription, in `tx`. `None`: nothing to do (another replica took it, or it is
    /// no longer due); `Some(expired)` otherwise.
    async fn one(&self, tx: &mut Tx, id: i64, now: Timestamp) -> anyhow::Result<Option<bool>> {
        // Lock the row (PostgreSQL; SQLite's transaction holds the write lock already) and
        // re-check that it is still due: a replica may have done it meanwhile.
        let lock = match tx {
            Tx::Postgres(_) => " FOR UPDATE OF s SKIP LOCKED",
            Tx::Sqlite(_) => "",
        };
        let sql = format!(
            "SELECT s.id, s.user_id, s.kind, s.starts_at, s.expires_at, s.revoked_at, s.notice_stage, s.notice_from, u.language
             FROM subscriptions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.next_notice_at IS NOT NULL AND s.next_notice_at <= $2{lock}"
        );
        let row: Option<Row> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(now).fetch_optional(c).await)?;
        let Some(r) = row else {
            return Ok(None);
        };
        let kind = Kind::parse(&r.kind)
            .ok_or_else(|| anyhow::anyhow!("subscription {id}: kind {:?}", r.kind))?;
        if r.revoked_at.is_some() {
            set_next(tx, id, r.notice_stage, None).await?;
            return Ok(Some(false));
        }
        let n = &self.s.config.catalog.notifications;
        let from = r.notice_from.unwrap_or(r.starts_at);
        let events = timeline(kind, r.starts_at, from, r.expires_at, n);
        let stage = usize::try_from(r.notice_stage)
            .unwrap_or(0)
            .min(events.len());
        let due: Vec<(Timestamp, Event)> = events[stage..]
            .iter()
            .take_while(|(at, _)| *at <= now)
            .copied()
            .collect();
        let lang = Language::parse(&r.language).unwrap_or(Language::En);
        let mut expired = false;
        let ends_now = due.iter().any(|(_, e)| *e == Event::Expired);
        // Of several messages due at once (the job was down), only the latest still makes
        // sense; an expiry makes every earlier one moot.
        let to_send = due
            .iter()
            .rev()
            .find(|(_, e)| *e == Event::Expired || !ends_now);
        if let Some((_, event)) = to_send {
            if *event == Event::Expired {
                match access::expire(tx, id, now).await? {
                    ExpireOutcome::Expired { .. } => expired = true,
                    // Renewed under our feet is impossible (we hold the lock); be safe anyway.
                    other => {
                        tracing::warn!(subscription = id, ?other, "expiry found nothing to do")
                    }
                }
            }
            self.message(tx, &r, kind, *event, lang, now).await?;
        }
        let new_stage = stage + due.len();
        let next = events.get(new_stage).map(|(at, _)| *at);
        set_next(tx, id, i32::try_from(new_stage).unwrap_or(i32::MAX), next).await?;
        Ok(Some(expired))
    }

    async fn message(
        &self,
        tx: &mut Tx,
        r: &Row,
        kind: Kind,
        event: Event,
        lang: Language,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let offset = self.s.config.catalog.bot.utc_offset_minutes;
        let until = format::date_time(lang, r.expires_at, offset);
        let left = format::duration(&self.texts, lang, r.expires_at.since(now));
        let (key, args, button, label): (&str, Vec<(&str, Arg)>, Action, &str) = match event {
            Event::TrialOnboarding => (
                "trial-onboarding-text",
                vec![],
                Action::Connect,
                "btn-connect",
            ),
            Event::TrialEnding(_) => (
                "trial-ending-text",
                vec![("left", left.into()), ("until", Arg::Text(until))],
                Action::Buy,
                "btn-buy",
            ),
            Event::Reminder(_) => (
                "reminder-text",
                vec![("left", left.into()), ("until", Arg::Text(until))],
                Action::Buy,
                "btn-renew",
            ),
            Event::Expired if kind == Kind::Trial => {
                if !self.s.config.catalog.notifications.trial_ended_message {
                    return Ok(());
                }
                ("trial-ended-text", vec![], Action::Buy, "btn-buy")
            }
            Event::Expired => ("expired-text", vec![], Action::Buy, "btn-renew"),
        };
        let text = self.texts.fmt(lang, key, &args);
        let markup = json!({ "inline_keyboard": [[{
            "text": self.texts.get(lang, label),
            "callback_data": button.encode(),
        }]] });
        let priority = if event == Event::Expired {
            Priority::Transactional
        } else {
            Priority::Reminder
        };
        let msg = OutboxMessage::text(
            format!(
                "notice:{}:{}:{}",
                r.id,
                r.expires_at.as_millis(),
                event.key()
            ),
            r.user_id,
            priority,
            text,
            Some(markup),
        );
        outbox::enqueue(tx, &msg, now).await?;
        Ok(())
    }
}

async fn set_next(
    tx: &mut Tx,
    id: i64,
    stage: i32,
    next: Option<Timestamp>,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE subscriptions SET notice_stage = $2, next_notice_at = $3 WHERE id = $1"
    ).bind(id).bind(stage).bind(next).execute(c).await.map(|_| ()))
}

impl Job for Notices {
    fn name(&self) -> &'static str {
        "notices"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn run_once(&self) -> IterationFuture<'_> {
        Box::pin(self.run_batch())
    }

    fn run_once_until_stopped(&self, stop: CancellationToken) -> IterationFuture<'_> {
        Box::pin(async move { self.run_batch_until(&stop).await })
    }
}
