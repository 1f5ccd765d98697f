//! The notice timeline of every subscription: reminders before expiry (paid, gift, admin),
//! trial messages (onboarding, before the end, the end with an offer), and expiry itself —
//! access taken away on every node and one "expired" message (docs/product.md §4, §6; docs/reliability.md
//! D1, D3, D6, D8).
//!
//! Each subscription's current period has a fixed list of events computed from its kind,
//! `notice_from` (when the period's dates were last set) and `expires_at`. The row keeps how
//! many events are done (`notice_stage`) and when the next is due (`next_notice_at`, indexed),
//! so finding due work is an index range that is empty when nothing is due. Every grant,
//! renewal or refund resets the timeline (stage 0, due now): events that fell before the new
//! dates are skipped, so a renewal never leaves a stale reminder behind, and a grant shorter
//! than an offset never gets that reminder. Each subscription is one notice item
//! ([`notice_item`], one implementation for both backends, written with the APIs of the
//! modules that own the tables): a conditional update of its row — which locks it, the same
//! lock renewals take, so expiry and renewal are serialized —, then the expiry and the
//! message, an outbox row keyed by (subscription, period, event). Items go to the database in
//! chunks, one transaction each, redone item by item when one fails ([`Notices::chunk`]).
//! Reachability (`bot_blocked_at`) plays no part: a blocked user still expires (D6).

use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::access::{self, Kind, notice_timeline};
use crate::action::Action;
use crate::config::Language;
use crate::config::catalog::NotificationSettings;
use crate::i18n::{Arg, format};
use crate::on_db;
use crate::store::{Db, Tx};
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;
use crate::users;

use super::{IterationFuture, Job, JobContext};

/// Subscriptions handled per iteration at most (the rest wait for the next one).
const BATCH: i64 = 500;
/// Subscriptions with a due event, oldest first (`$1` now, `$2` batch), with every column
/// their notice is computed from: a range of the partial index `subscriptions_next_notice`,
/// empty when nothing is due (a test checks the plan on both backends).
pub const DUE_QUERY: &str =
    notice_timeline::notices_due_sql!(users::user_language_sql!("s.user_id"), " AS language");
/// A subscription whose notice failed comes due again after this long.
pub const ITEM_RETRY: Duration = Duration::from_secs(15 * 60);
/// Subscriptions per transaction: a chunk shares one commit (on SQLite, whose WAL frames then
/// carry each touched page once instead of once per subscription). SQLite's connection is
/// held meanwhile (a few ms), so the bot's updates still get their turns between chunks.
const CHUNK: usize = 25;
/// Chunks handled at once on PostgreSQL (rows are disjoint). Half the pool at most, so the
/// bot and the other jobs keep connections.
const POSTGRES_IN_FLIGHT: u32 = 4;

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

/// A due subscription as [`DUE_QUERY`] read it.
#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    user_id: i64,
    kind: String,
    starts_at: Timestamp,
    expires_at: Timestamp,
    revoked_at: Option<Timestamp>,
    vpn_uuid: Uuid,
    notice_stage: i32,
    notice_from: Option<Timestamp>,
    next_notice_at: Timestamp,
    language: String,
}

impl Due {
    /// The columns its step is computed from, which must still hold when it is applied.
    fn as_read(&self) -> notice_timeline::AsRead {
        notice_timeline::AsRead {
            id: self.id,
            vpn_uuid: self.vpn_uuid,
            notice_stage: self.notice_stage,
            next_notice_at: self.next_notice_at,
            expires_at: self.expires_at,
            notice_from: self.notice_from,
            revoked_at: self.revoked_at,
        }
    }
}

/// What handling one due subscription does, computed from its row before any write.
struct Step {
    stage: i32,
    next: Option<Timestamp>,
    /// The period ended: the key becomes unwanted on every node.
    expire: bool,
    message: Option<OutboxMessage>,
}

/// A subscription and how it went.
type Outcome<'a> = (&'a Due, anyhow::Result<Handled>);

/// How one subscription went.
enum Handled {
    /// Done; `true` when it expired.
    Done(bool),
    /// The row changed after it was read (another replica, a renewal…): nothing done.
    Changed,
}

/// One notice item, the same on both backends, in the caller's transaction: the timeline moves
/// on only if the row is still as read ([`notice_timeline::advance`], the item's lock and
/// re-check in one); only if it moved does an expiry take the key away on every node
/// ([`access::expire`]) and the message get queued ([`outbox::enqueue`], keyed by
/// subscription, period and event, so it is queued once however often this runs).
async fn notice_item(tx: &mut Tx, d: &Due, step: &Step, now: Timestamp) -> anyhow::Result<Handled> {
    if !notice_timeline::advance(tx, &d.as_read(), step.stage, step.next).await? {
        return Ok(Handled::Changed);
    }
    if step.expire {
        access::expire(tx, d.id, now).await?;
    }
    if let Some(message) = &step.message {
        outbox::enqueue(tx, message, now).await?;
    }
    Ok(Handled::Done(step.expire))
}

/// Reminders, trial messages and expiry (see the module docs).
pub struct Notices {
    ctx: JobContext,
}

impl Notices {
    pub fn new(ctx: JobContext) -> Notices {
        Notices { ctx }
    }

    /// Handles every subscription with a due event (up to a batch); returns how many.
    pub async fn run_batch(&self) -> anyhow::Result<u64> {
        self.run_batch_until(&CancellationToken::new()).await
    }

    /// [`Notices::run_batch`] that stops taking new subscriptions once `stop` is cancelled.
    ///
    /// Each subscription's step is computed from the row read by the batch query and applied
    /// only if the row is unchanged ([`notice_item`]); its effects commit only if it succeeds
    /// (docs/reliability.md C3, see [`Notices::chunk`]). PostgreSQL handles a few chunks at once;
    /// SQLite has one writer. A subscription that fails for a reason other than the database
    /// being unreachable (a bad row) does not hold up the others: it is put back by
    /// [`ITEM_RETRY`] and logged, the batch goes on, and the iteration ends in `error`.
    pub async fn run_batch_until(&self, stop: &CancellationToken) -> anyhow::Result<u64> {
        let now = self.ctx.clock.now();
        let due: Vec<Due> = on_db!(&self.ctx.db, p => sqlx::query_as(DUE_QUERY)
            .bind(now).bind(BATCH).fetch_all(p).await)?;
        let in_flight = match &self.ctx.db {
            Db::Sqlite(_) => 1,
            Db::Postgres(_) => (self.ctx.db.max_connections() / 2).clamp(1, POSTGRES_IN_FLIGHT),
        };
        let queue = std::sync::Mutex::new(due.iter());
        let next = || match stop.is_cancelled() {
            true => Vec::new(),
            false => queue
                .lock()
                .map(|mut q| q.by_ref().take(CHUNK).collect())
                .unwrap_or_default(),
        };
        let worker = || async {
            let mut out = Vec::new();
            loop {
                let items: Vec<&Due> = next();
                if items.is_empty() {
                    break;
                }
                let results = self.chunk(&items, now).await;
                let unavailable = results
                    .iter()
                    .any(|(_, r)| matches!(r, Err(e) if super::database_unavailable(e)));
                out.extend(results);
                if unavailable {
                    break;
                }
            }
            out
        };
        let workers = futures::future::join_all((0..in_flight).map(|_| worker())).await;
        self.tally(workers.into_iter().flatten(), now).await
    }

    /// Counts what a batch did, wakes who must follow its commits, and puts back the
    /// subscriptions that failed.
    async fn tally<'a>(
        &self,
        results: impl Iterator<Item = Outcome<'a>>,
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let mut handled = 0;
        let mut expired = false;
        let mut failed = Vec::new();
        let mut unavailable = None;
        for (d, r) in results {
            match r {
                Ok(Handled::Done(e)) => {
                    handled += 1;
                    expired |= e;
                }
                Ok(Handled::Changed) => {}
                Err(e) if super::database_unavailable(&e) => {
                    unavailable.get_or_insert(e);
                }
                Err(e) => {
                    tracing::warn!(job = "notices", subscription = d.id, error = %format!("{e:#}"),
                        retry_in = ?ITEM_RETRY, "cannot handle this subscription's notice; the others go on");
                    self.put_back(d, now).await;
                    failed.push(d.id);
                }
            }
        }
        if handled > 0 {
            self.ctx.outbox_wake.notify_one();
        }
        if expired {
            self.ctx.provisioning.wake();
        }
        if let Some(e) = unavailable {
            return Err(e);
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
    /// head of every batch. Best effort: if even this fails (or the row changed), it stays due.
    async fn put_back(&self, d: &Due, now: Timestamp) {
        let retry_at = now.plus(ITEM_RETRY);
        let r = async {
            let mut tx = self.ctx.db.begin().await?;
            notice_timeline::advance(&mut tx, &d.as_read(), d.notice_stage, Some(retry_at)).await?;
            tx.commit().await
        };
        if let Err(e) = r.await {
            tracing::warn!(job = "notices", subscription = d.id, error = %e, "cannot put the subscription back");
        }
    }

    /// A chunk of subscriptions, on either backend: all in one transaction when every item
    /// succeeds; when one fails, the chunk rolls back whole and each item is redone in its own
    /// transaction, so what commits is what one transaction per item would commit
    /// (docs/reliability.md C3) and a bad row costs its neighbours a retry, not their effects.
    async fn chunk<'a>(&self, items: &[&'a Due], now: Timestamp) -> Vec<Outcome<'a>> {
        let (steps, mut results) = self.steps(items, now);
        if steps.len() > 1 {
            match self.commit(&steps, now).await {
                Ok(chunk) => {
                    results.extend(chunk);
                    return results;
                }
                Err(e) if super::database_unavailable(&e) => {
                    results.push((steps[0].0, Err(e)));
                    return results;
                }
                Err(e) => {
                    tracing::debug!(job = "notices", error = %format!("{e:#}"), "a chunk failed; its items are redone one by one");
                }
            }
        }
        for step in &steps {
            match self.commit(std::slice::from_ref(step), now).await {
                Ok(one) => results.extend(one),
                Err(e) => {
                    let unavailable = super::database_unavailable(&e);
                    results.push((step.0, Err(e)));
                    if unavailable {
                        break;
                    }
                }
            }
        }
        results
    }

    /// `steps` in one transaction, committed only if every one succeeds. On PostgreSQL the
    /// commit does not wait for its WAL flush: the items are derived from their rows and redone
    /// if a crash loses them.
    async fn commit<'a>(
        &self,
        steps: &[(&'a Due, Step)],
        now: Timestamp,
    ) -> anyhow::Result<Vec<Outcome<'a>>> {
        let mut tx = self.ctx.db.begin().await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut **t)
                .await?;
        }
        let mut outcomes = Vec::with_capacity(steps.len());
        for (d, step) in steps {
            let handled = notice_item(&mut tx, d, step, now)
                .await
                .with_context(|| format!("subscription {}", d.id))?;
            outcomes.push((*d, Ok(handled)));
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// The [`Step`]s of `items`, and the failures of those whose step cannot be computed (a
    /// bad row).
    fn steps<'a>(
        &self,
        items: &[&'a Due],
        now: Timestamp,
    ) -> (Vec<(&'a Due, Step)>, Vec<Outcome<'a>>) {
        let mut steps = Vec::with_capacity(items.len());
        let mut failed = Vec::new();
        for d in items {
            match self.step(d, now) {
                Ok(step) => steps.push((*d, step)),
                Err(e) => failed.push((*d, Err(e))),
            }
        }
        (steps, failed)
    }

    /// What handling `d` at `now` does: the due events of its timeline are done at once, and
    /// of several messages due together (the job was down) only the latest is sent.
    fn step(&self, d: &Due, now: Timestamp) -> anyhow::Result<Step> {
        let kind = Kind::parse(&d.kind)
            .ok_or_else(|| anyhow::anyhow!("subscription {}: kind {:?}", d.id, d.kind))?;
        if d.revoked_at.is_some() {
            // A revoke took access away already and ends the timeline.
            return Ok(Step {
                stage: d.notice_stage,
                next: None,
                expire: false,
                message: None,
            });
        }
        let n = &self.ctx.catalog.notifications;
        let from = d.notice_from.unwrap_or(d.starts_at);
        let events = timeline(kind, d.starts_at, from, d.expires_at, n);
        let stage = usize::try_from(d.notice_stage)
            .unwrap_or(0)
            .min(events.len());
        let due: Vec<(Timestamp, Event)> = events[stage..]
            .iter()
            .take_while(|(at, _)| *at <= now)
            .copied()
            .collect();
        let lang = Language::parse(&d.language).unwrap_or(Language::En);
        let ends_now = due.iter().any(|(_, e)| *e == Event::Expired);
        // An expiry makes every earlier message moot.
        let to_send = due
            .iter()
            .rev()
            .find(|(_, e)| *e == Event::Expired || !ends_now);
        let message = to_send.and_then(|(_, event)| self.message(d, kind, *event, lang, now));
        let new_stage = stage + due.len();
        Ok(Step {
            stage: i32::try_from(new_stage).unwrap_or(i32::MAX),
            next: events.get(new_stage).map(|(at, _)| *at),
            expire: ends_now,
            message,
        })
    }

    fn message(
        &self,
        d: &Due,
        kind: Kind,
        event: Event,
        lang: Language,
        now: Timestamp,
    ) -> Option<OutboxMessage> {
        // "Ends in …, on …" (formatted only for the messages that say it).
        let when = || -> Vec<(&str, Arg)> {
            let offset = self.ctx.catalog.bot.utc_offset_minutes;
            vec![
                (
                    "left",
                    format::duration(&self.ctx.texts, lang, d.expires_at.since(now)).into(),
                ),
                (
                    "until",
                    Arg::Text(format::date_time(lang, d.expires_at, offset)),
                ),
            ]
        };
        let (key, args, button, label): (&str, Vec<(&str, Arg)>, Action, &str) = match event {
            Event::TrialOnboarding => (
                "trial-onboarding-text",
                vec![],
                Action::Connect,
                "btn-connect",
            ),
            Event::TrialEnding(_) => ("trial-ending-text", when(), Action::Buy, "btn-buy"),
            Event::Reminder(_) => ("reminder-text", when(), Action::Buy, "btn-renew"),
            Event::Expired if kind == Kind::Trial => {
                if !self.ctx.catalog.notifications.trial_ended_message {
                    return None;
                }
                ("trial-ended-text", vec![], Action::Buy, "btn-buy")
            }
            Event::Expired => ("expired-text", vec![], Action::Buy, "btn-renew"),
        };
        let text = self.ctx.texts.fmt(lang, key, &args);
        let markup = json!({ "inline_keyboard": [[{
            "text": self.ctx.texts.get(lang, label),
            "callback_data": button.encode(),
        }]] });
        let priority = if event == Event::Expired {
            Priority::Transactional
        } else {
            Priority::Reminder
        };
        Some(OutboxMessage::text(
            format!(
                "notice:{}:{}:{}",
                d.id,
                d.expires_at.as_millis(),
                event.key()
            ),
            d.user_id,
            priority,
            text,
            Some(markup),
        ))
    }
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
