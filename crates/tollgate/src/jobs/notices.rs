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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use uuid::Uuid;

use crate::access::Kind;
use crate::action::Action;
use crate::config::Language;
use crate::config::catalog::NotificationSettings;
use crate::i18n::{Arg, Texts, format};
use crate::nodes::membership::retire_keys_sql;
use crate::on_db;
use crate::services::Services;
use crate::store::{Db, SqliteDb};
use crate::telegram::outbox::{OutboxMessage, Priority};
use crate::time::{SharedClock, Timestamp};

use super::{IterationFuture, Job};

/// Subscriptions handled per iteration at most (the rest wait for the next one).
const BATCH: i64 = 500;
/// Subscriptions with a due event, oldest first (`$1` now, `$2` batch), with every column
/// their notice is computed from: a range of the partial index `subscriptions_next_notice`,
/// empty when nothing is due (a test checks the plan on both backends).
pub const DUE_QUERY: &str =
    "SELECT s.id, s.user_id, s.kind, s.starts_at, s.expires_at, s.revoked_at, s.vpn_uuid,
            s.notice_stage, s.notice_from, s.next_notice_at, u.language
     FROM subscriptions s JOIN users u ON u.id = s.user_id
     WHERE s.next_notice_at IS NOT NULL AND s.next_notice_at <= $1
     ORDER BY s.next_notice_at LIMIT $2";
/// A subscription whose notice failed comes due again after this long.
pub const ITEM_RETRY: Duration = Duration::from_secs(15 * 60);
/// Subscriptions per call to SQLite's connection ([`items_sqlite`]): a chunk shares one
/// hand-off and one commit, whose WAL frames then carry each touched page once instead of
/// once per subscription. The connection is held meanwhile (a few ms), so the bot's updates
/// still get their turns between chunks. Only this size and single items are sent, so the
/// connection caches the statements of two texts, not of every size.
const CHUNK_SQLITE: usize = 25;

/// `n` items of [`ITEM_SQLITE`] in one text, item `k`'s parameters renumbered to
/// `$(16k+1)`–`$(16k+16)`.
fn items_sqlite(n: usize) -> String {
    let mut out = String::with_capacity(ITEM_SQLITE.len() * n);
    for k in 0..n {
        let mut rest = ITEM_SQLITE;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let number: usize = rest[..digits].parse().unwrap_or(0);
            out.push_str(&(16 * k + number).to_string());
            rest = &rest[digits..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// Chunks handled at once on PostgreSQL (rows are disjoint). Half the pool at most, so the
/// bot and the other jobs keep connections.
const POSTGRES_IN_FLIGHT: u32 = 4;

/// The row is still exactly as read by [`DUE_QUERY`] (`$1` id, `$2` key, `$3` stage, `$4`
/// next, `$5` expiry, `$6` notice_from, `$7` revoked_at).
macro_rules! unchanged_sql {
    () => {
        "id = $1 AND vpn_uuid = $2 AND notice_stage = $3 AND next_notice_at = $4
           AND expires_at = $5 AND notice_from IS NOT DISTINCT FROM $6
           AND revoked_at IS NOT DISTINCT FROM $7"
    };
}

/// Moves a subscription's timeline on (new stage `$8`, next `$9`) — only if the row is
/// unchanged ([`unchanged_sql`]). This conditional update is the item's lock and re-check in
/// one: a replica that did the item first, a renewal, a refund, a revoke or a new key changes
/// one of those columns, and then nothing here happens (the row, if still due, comes back in
/// a later batch with fresh values). SQLite: the `BEGIN IMMEDIATE` transaction holds the
/// write lock already.
macro_rules! advance_sql {
    () => {
        concat!(
            "UPDATE subscriptions SET notice_stage = $8, next_notice_at = $9 WHERE ",
            unchanged_sql!()
        )
    };
}

/// SQLite does an item's three statements in one call to its connection's thread (parameters
/// as [`bind_item`] binds them), inside a `BEGIN IMMEDIATE` transaction: each call is a hand-off
/// between threads, which costs more here than the statements. The update returns the id when
/// it matched; the membership change runs only if it did (`changes()` is the count of the
/// statement before), the message only if the row now carries the new stage (else a replica
/// queued the same message already, and the dedupe key keeps it once).
const ITEM_SQLITE: &str = concat!(
    advance_sql!(),
    " RETURNING id;\n",
    retire_keys_sql!("$1", "$2", "$10", "TRUE"),
    " AND $11 AND changes() = 1;
     INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status, attempts, next_attempt_at, created_at)
     SELECT $12, $13, $14, $15, $16, 'pending', 0, $10, $10
     WHERE $12 IS NOT NULL
       AND EXISTS (SELECT 1 FROM subscriptions WHERE id = $1 AND notice_stage = $8 AND next_notice_at IS $9)
     ON CONFLICT (dedupe_key) DO NOTHING;"
);

/// Binds the parameters of [`ITEM_SQLITE`] for a [`Due`] row, its [`Step`] and `now`: the row
/// as read (`$1` id, `$2` key, `$3` stage, `$4` next, `$5` expiry, `$6` notice_from, `$7`
/// revoked_at), the step (`$8` stage, `$9` next), `$10` now, `$11` whether it expires, and
/// the message (`$12` dedupe key, NULL for none, `$13` chat, `$14` priority, `$15` method,
/// `$16` parameters).
macro_rules! bind_item {
    ($q:expr, $d:expr, $step:expr, $now:expr) => {{
        let m = $step.message.as_ref();
        $q.bind($d.id)
            .bind($d.vpn_uuid)
            .bind($d.notice_stage)
            .bind($d.next_notice_at)
            .bind($d.expires_at)
            .bind($d.notice_from)
            .bind($d.revoked_at)
            .bind($step.stage)
            .bind($step.next)
            .bind($now)
            .bind($step.expire)
            .bind(m.map(|m| m.dedupe_key.as_str()))
            .bind(m.map(|m| m.chat_id))
            .bind(m.map(|m| m.priority.as_i16()))
            .bind(m.map(|m| m.method.as_str()))
            .bind(m.map(|m| m.params.to_string()))
    }};
}

/// PostgreSQL does a chunk of items in one call of `notice_items` (migration 0007), each
/// item in its own subtransaction — a savepoint, so one item's error rolls back that item only
/// and comes back as its outcome (RELIABILITY C3). Per item it does what [`ITEM_SQLITE`] does,
/// except that a row locked by someone else (a renewal in progress, a transaction of a killed
/// process not yet rolled back) is skipped rather than waited for: it stays due and comes back
/// in a later batch. Parameters are arrays, one element per item (see [`Notices::chunk_postgres`]).
const NOTICE_ITEMS_CALL: &str = "SELECT item_id, outcome FROM notice_items($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
/// Items per `notice_items` call. Each item's subtransaction takes a subtransaction id, and
/// PostgreSQL keeps up to 64 of a transaction's in shared memory (beyond that, other sessions'
/// snapshots look them up on disk), so a chunk stays below that.
const CHUNK_POSTGRES: usize = 50;

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

/// What handling one due subscription does, computed from its row before any write.
struct Step {
    stage: i32,
    next: Option<Timestamp>,
    /// The period ended: the key becomes unwanted on every node.
    expire: bool,
    message: Option<OutboxMessage>,
}

/// A subscription's id and how it went.
type Outcome = (i64, anyhow::Result<Handled>);

/// How one subscription went.
enum Handled {
    /// Done; `true` when it expired.
    Done(bool),
    /// The row changed after it was read (another replica, a renewal…): nothing done.
    Changed,
}

/// What a batch worker keeps for all its subscriptions: on PostgreSQL a pooled connection
/// (sqlx pings a connection every time it goes back to the pool, a second round trip per
/// subscription); SQLite's one connection is taken per subscription, so the bot's updates
/// get their turns between a batch's items.
enum Held {
    Sqlite(SqliteDb),
    Postgres(PoolConnection<Postgres>),
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
    /// Each subscription's step is computed from the row read by the batch query and applied
    /// only if the row is unchanged ([`advance_sql`]); its effects commit only if it succeeds
    /// (RELIABILITY C3): on PostgreSQL each item of a chunk has its own savepoint, on SQLite a
    /// chunk in which one item fails is redone one transaction per item. PostgreSQL handles a
    /// few chunks at once; SQLite has one writer. A subscription that fails for
    /// a reason other than the database being unreachable (a bad row) does not hold up the
    /// others: it is put back by [`ITEM_RETRY`] and logged, the batch goes on, and the
    /// iteration ends in `error`.
    pub async fn run_batch_until(&self, stop: &CancellationToken) -> anyhow::Result<u64> {
        let now = self.clock.now();
        let due: Vec<Due> = on_db!(&self.db, p => sqlx::query_as(DUE_QUERY)
            .bind(now).bind(BATCH).fetch_all(p).await)?;
        let in_flight = match &self.db {
            Db::Sqlite(_) => 1,
            Db::Postgres(_) => {
                let pool = self
                    .db
                    .concurrency_budget(&self.s.config.deployment.database);
                (pool / 2).clamp(1, POSTGRES_IN_FLIGHT) as usize
            }
        };
        let per_call = match &self.db {
            Db::Sqlite(_) => CHUNK_SQLITE,
            Db::Postgres(_) => CHUNK_POSTGRES,
        };
        let queue = std::sync::Mutex::new(due.into_iter());
        let next = || match stop.is_cancelled() {
            true => Vec::new(),
            false => queue
                .lock()
                .map(|mut q| q.by_ref().take(per_call).collect())
                .unwrap_or_default(),
        };
        // Each worker keeps what `Held` says for the whole batch.
        let worker = || async {
            let mut out = Vec::new();
            let mut conn = self.held().await?;
            loop {
                let items = next();
                if items.is_empty() {
                    break;
                }
                let results = match &mut conn {
                    Held::Sqlite(db) => self.chunk_sqlite(db, &items, now).await,
                    Held::Postgres(c) => match self.chunk_postgres(c, &items, now).await {
                        Ok(results) => results,
                        // The call failed as a whole: with the database unreachable the batch
                        // stops (the chunk stays due); otherwise each item is failed with the
                        // call's error.
                        Err(e)
                            if crate::store::classify(&e) == crate::store::Failure::Unavailable =>
                        {
                            out.push((items[0].id, Err(e.into())));
                            break;
                        }
                        Err(e) => {
                            let e = format!("{e:#}");
                            items
                                .iter()
                                .map(|d| (d.id, Err(anyhow::anyhow!("{e}"))))
                                .collect()
                        }
                    },
                };
                let unavailable = results
                    .iter()
                    .any(|(_, r)| matches!(r, Err(e) if super::database_unavailable(e)));
                out.extend(results);
                if unavailable {
                    break;
                }
            }
            Ok(out)
        };
        let workers = futures::future::join_all((0..in_flight).map(|_| worker())).await;
        let mut handled = 0;
        let mut expired = false;
        let mut failed = Vec::new();
        let mut unavailable = None;
        for w in workers {
            let results = match w {
                Ok(results) => results,
                Err(e) => {
                    unavailable.get_or_insert(e);
                    continue;
                }
            };
            for (id, r) in results {
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
                        tracing::warn!(job = "notices", subscription = id, error = %format!("{e:#}"),
                            retry_in = ?ITEM_RETRY, "cannot handle this subscription's notice; the others go on");
                        self.put_back(id, now).await;
                        failed.push(id);
                    }
                }
            }
        }
        if handled > 0 {
            self.s.outbox_wake.notify_one();
        }
        if expired {
            self.s.provisioning.wake();
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

    /// What a batch worker holds for its batch ([`Held`]).
    async fn held(&self) -> anyhow::Result<Held> {
        Ok(match &self.db {
            Db::Sqlite(p) => Held::Sqlite(p.clone()),
            Db::Postgres(p) => Held::Postgres(p.acquire().await?),
        })
    }

    /// A chunk of subscriptions on SQLite: all in one transaction when the chunk is full
    /// ([`CHUNK_SQLITE`]) and every item succeeds; when one fails, the chunk rolls back whole
    /// and each item is redone in its own transaction, so what commits is what one transaction
    /// per item would commit (RELIABILITY C3) and a bad row costs its neighbours a retry, not
    /// their effects. A chunk of any other size goes item by item.
    async fn chunk_sqlite(&self, db: &SqliteDb, items: &[Due], now: Timestamp) -> Vec<Outcome> {
        let (steps, mut results) = self.steps(items, now);
        if steps.len() == CHUNK_SQLITE {
            static CHUNK_TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let text = CHUNK_TEXT.get_or_init(|| items_sqlite(CHUNK_SQLITE));
            match self.commit_sqlite(db, text, &steps, now).await {
                Ok(chunk) => {
                    results.extend(chunk);
                    return results;
                }
                Err(e) if super::database_unavailable(&e) => {
                    results.push((steps[0].0.id, Err(e)));
                    return results;
                }
                Err(e) => {
                    tracing::debug!(job = "notices", error = %format!("{e:#}"), "a chunk failed; its items are redone one by one");
                }
            }
        }
        for step in steps {
            let id = step.0.id;
            let one = std::slice::from_ref(&step);
            let r = self.commit_sqlite(db, ITEM_SQLITE, one, now).await;
            match r {
                Ok(chunk) => results.extend(chunk),
                Err(e) => {
                    let unavailable = super::database_unavailable(&e);
                    results.push((id, Err(e)));
                    if unavailable {
                        break;
                    }
                }
            }
        }
        results
    }

    /// `steps` in one SQLite transaction: their `BEGIN`, items (`text`: as many copies of
    /// [`ITEM_SQLITE`] as steps, see [`items_sqlite`]) and `COMMIT` in one hand-off. An item
    /// whose row changed since it was read matched nothing and wrote nothing: the key change
    /// needs the advance's row, and the message needs the row in its new state, which only
    /// this step (or another instance's identical one, whose message has the same dedupe key)
    /// puts it in.
    async fn commit_sqlite(
        &self,
        db: &SqliteDb,
        text: &str,
        steps: &[(&Due, Step)],
        now: Timestamp,
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for (d, step) in steps {
            query = bind_item!(query, d, step, now);
        }
        let moved: Vec<(i64,)> = db.write_rows(query).await?;
        let moved: std::collections::HashSet<i64> = moved.into_iter().map(|(id,)| id).collect();
        Ok(steps
            .iter()
            .map(|(d, step)| {
                let handled = match moved.contains(&d.id) {
                    true => Handled::Done(step.expire),
                    false => Handled::Changed,
                };
                (d.id, Ok(handled))
            })
            .collect())
    }

    /// A chunk of subscriptions on PostgreSQL in one call ([`NOTICE_ITEMS_CALL`]), each in its own
    /// subtransaction; returns each one's outcome, or the call's error (then nothing of the
    /// chunk was committed).
    async fn chunk_postgres(
        &self,
        conn: &mut PoolConnection<Postgres>,
        items: &[Due],
        now: Timestamp,
    ) -> Result<Vec<Outcome>, sqlx::Error> {
        let (steps, mut results) = self.steps(items, now);
        if steps.is_empty() {
            return Ok(results);
        }
        // One array per parameter, an element per item.
        macro_rules! column {
            ($f:expr) => {
                steps.iter().map($f).collect::<Vec<_>>()
            };
        }
        let outcomes: HashMap<i64, String> = sqlx::query_as(NOTICE_ITEMS_CALL)
            .bind(now)
            .bind(column!(|(d, _)| d.id))
            .bind(column!(|(d, _)| d.vpn_uuid))
            .bind(column!(|(d, _)| d.notice_stage))
            .bind(column!(|(d, _)| d.next_notice_at))
            .bind(column!(|(d, _)| d.expires_at))
            .bind(column!(|(d, _)| d.notice_from))
            .bind(column!(|(d, _)| d.revoked_at))
            .bind(column!(|(_, s)| s.stage))
            .bind(column!(|(_, s)| s.next))
            .bind(column!(|(_, s)| s.expire))
            .bind(column!(|(_, s)| s
                .message
                .as_ref()
                .map(|m| m.dedupe_key.clone())))
            .bind(column!(|(_, s)| s.message.as_ref().map(|m| m.chat_id)))
            .bind(column!(|(_, s)| s
                .message
                .as_ref()
                .map(|m| m.priority.as_i16())))
            .bind(column!(|(_, s)| s
                .message
                .as_ref()
                .map(|m| m.method.clone())))
            .bind(column!(|(_, s)| s
                .message
                .as_ref()
                .map(|m| m.params.to_string())))
            .fetch_all(&mut **conn)
            .await?
            .into_iter()
            .collect();
        for (d, s) in &steps {
            let r = match outcomes.get(&d.id).map(String::as_str) {
                Some("done") => Ok(Handled::Done(s.expire)),
                Some("changed") => Ok(Handled::Changed),
                Some(failed) => Err(anyhow::anyhow!("subscription {}: {failed}", d.id)),
                None => Err(anyhow::anyhow!(
                    "subscription {}: no outcome returned",
                    d.id
                )),
            };
            results.push((d.id, r));
        }
        Ok(results)
    }

    /// The [`Step`]s of `items`, and the failures of those whose step cannot be computed (a
    /// bad row).
    fn steps<'a>(&self, items: &'a [Due], now: Timestamp) -> (Vec<(&'a Due, Step)>, Vec<Outcome>) {
        let mut steps = Vec::with_capacity(items.len());
        let mut failed = Vec::new();
        for d in items {
            match self.step(d, now) {
                Ok(step) => steps.push((d, step)),
                Err(e) => failed.push((d.id, Err(e))),
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
        let n = &self.s.config.catalog.notifications;
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
            let offset = self.s.config.catalog.bot.utc_offset_minutes;
            vec![
                (
                    "left",
                    format::duration(&self.texts, lang, d.expires_at.since(now)).into(),
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
                if !self.s.config.catalog.notifications.trial_ended_message {
                    return None;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter numbers of `sql` and its text without them.
    fn parameters(sql: &str) -> (Vec<usize>, String) {
        let mut numbers = Vec::new();
        let mut text = String::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            numbers.push(rest[..digits].parse().unwrap());
            rest = &rest[digits..];
        }
        text.push_str(rest);
        (numbers, text)
    }

    #[test]
    fn a_chunks_items_have_parameters_of_their_own() {
        assert_eq!(items_sqlite(1), format!("{ITEM_SQLITE}\n"));
        let (one, one_text) = parameters(ITEM_SQLITE);
        let three = items_sqlite(3);
        let (numbers, text) = parameters(&three);
        // The same statements three times, item k's parameters moved up by 16 k.
        assert_eq!(text, format!("{one_text}\n").repeat(3));
        let expected: Vec<usize> = (0..3)
            .flat_map(|k| one.iter().map(move |n| 16 * k + n))
            .collect();
        assert_eq!(numbers, expected);
        assert_eq!(one.iter().max(), Some(&16), "bind_item binds 16 parameters");
    }
}
