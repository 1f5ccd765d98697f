//! The outbox: messages to send, written in the transaction of the change that caused them.
//!
//! A confirmation sent after commit can be lost; one sent before commit can announce
//! something that then rolled back. Writing the message as a row in the same transaction
//! makes "the change happened" and "the user will be told" one fact (docs/reliability.md G1). The
//! `dedupe_key` is unique, so one logical notification is one row however often the code
//! that produces it runs (G2). The sender (see `sender`) delivers rows in priority order,
//! one chat at a time in order, and records every attempt's outcome.

use serde_json::Value;
use sqlx::Row as _;

use crate::store::{Db, DeferredWrite, SqliteTx, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// Delivery priority: lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Payment confirmations, replies, access ready, alerts.
    Transactional = 0,
    /// Reminders and other scheduled notices.
    Reminder = 1,
    /// Admin broadcasts: they take what the others leave of the budget.
    Broadcast = 2,
}

impl Priority {
    pub fn as_i16(self) -> i16 {
        self as i16
    }

    pub fn from_i16(v: i16) -> Priority {
        match v {
            0 => Priority::Transactional,
            1 => Priority::Reminder,
            _ => Priority::Broadcast,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Priority::Transactional => "transactional",
            Priority::Reminder => "reminder",
            Priority::Broadcast => "broadcast",
        }
    }
}

/// A message to queue: one Bot API call with its JSON parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// Unique per logical notification, e.g. `reminder:{subscription}:{period_end}:24h`.
    pub dedupe_key: String,
    pub chat_id: i64,
    pub priority: Priority,
    /// Bot API method, e.g. `sendMessage`.
    pub method: String,
    /// The method's parameters (must include `chat_id` where the method needs it).
    pub params: Value,
}

impl OutboxMessage {
    /// A `sendMessage` with `text` (HTML parse mode) and optional `reply_markup`.
    pub fn text(
        dedupe_key: impl Into<String>,
        chat_id: i64,
        priority: Priority,
        text: impl Into<String>,
        reply_markup: Option<Value>,
    ) -> OutboxMessage {
        let mut params = serde_json::json!({
            "chat_id": chat_id,
            "text": text.into(),
            "parse_mode": "HTML",
            "link_preview_options": { "is_disabled": true },
        });
        if let (Some(markup), Some(obj)) = (reply_markup, params.as_object_mut()) {
            obj.insert("reply_markup".to_owned(), markup);
        }
        OutboxMessage {
            dedupe_key: dedupe_key.into(),
            chat_id,
            priority,
            method: "sendMessage".to_owned(),
            params,
        }
    }
}

impl OutboxMessage {
    /// A broadcast sent with `allow_paid_broadcast` (Telegram's paid limit, not the free one).
    pub fn is_paid_broadcast(&self) -> bool {
        self.priority == Priority::Broadcast
            && self.params.get("allow_paid_broadcast") == Some(&Value::Bool(true))
    }
}

/// The insert of a batch: the messages in order, each skipped when its dedupe key is queued
/// already. The two backends batch differently, so the text is written once per backend.
/// SQLite: `$1` a JSON array of `[dedupe_key, chat_id, priority, method, payload,
/// paid_broadcast]`, `$2` now (`WHERE true` resolves the parser ambiguity of `ON CONFLICT`
/// after `SELECT … FROM`).
const ENQUEUE_SQLITE: &str = "
INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, paid_broadcast, status, attempts, next_attempt_at, created_at)
SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, 'pending', 0, $2, $2
FROM json_each($1) AS j WHERE true ORDER BY j.key
ON CONFLICT (dedupe_key) DO NOTHING";

/// PostgreSQL: the columns as arrays `$1`–`$5` (keys, chats, priorities, methods, payloads),
/// `$6` now, `$7` paid broadcast.
const ENQUEUE_POSTGRES: &str = "
INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, paid_broadcast, status, attempts, next_attempt_at, created_at)
SELECT m.dedupe_key, m.chat_id, m.priority, m.method, m.payload, m.paid, 'pending', 0, $6, $6
FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::SMALLINT[], $4::TEXT[], $5::TEXT[], $7::BOOLEAN[]) WITH ORDINALITY
    AS m(dedupe_key, chat_id, priority, method, payload, paid, n)
ORDER BY m.n
ON CONFLICT (dedupe_key) DO NOTHING";

/// Queues `messages` in the caller's transaction, in order; one whose dedupe key was queued
/// before stays as it is (this one is not queued again). The one way rows enter the outbox.
/// Nothing is read back, so on SQLite the insert travels with the transaction's next
/// statement ([`DeferredWrite`]); on PostgreSQL it is one statement for the whole batch.
pub async fn enqueue_all(
    tx: &mut Tx,
    messages: &[OutboxMessage],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Sqlite(_) => {
            let batch: Vec<Value> = messages
                .iter()
                .map(|m| {
                    serde_json::json!([
                        m.dedupe_key,
                        m.chat_id,
                        m.priority.as_i16(),
                        m.method,
                        m.params.to_string(),
                        i32::from(m.is_paid_broadcast())
                    ])
                })
                .collect();
            let batch = Value::Array(batch).to_string();
            tx.defer(DeferredWrite::new(ENQUEUE_SQLITE).bind(batch).bind(now))
                .await
        }
        Tx::Postgres(c) => {
            let mut keys = Vec::with_capacity(messages.len());
            let mut chats = Vec::with_capacity(messages.len());
            let mut priorities = Vec::with_capacity(messages.len());
            let mut methods = Vec::with_capacity(messages.len());
            let mut payloads = Vec::with_capacity(messages.len());
            let mut paid = Vec::with_capacity(messages.len());
            for m in messages {
                paid.push(m.is_paid_broadcast());
                keys.push(m.dedupe_key.as_str());
                chats.push(m.chat_id);
                priorities.push(m.priority.as_i16());
                methods.push(m.method.as_str());
                payloads.push(m.params.to_string());
            }
            sqlx::query(ENQUEUE_POSTGRES)
                .bind(keys)
                .bind(chats)
                .bind(priorities)
                .bind(methods)
                .bind(payloads)
                .bind(now)
                .bind(paid)
                .execute(&mut **c)
                .await
                .map(drop)
        }
    }
}

/// Queues one message ([`enqueue_all`] of one).
pub async fn enqueue(tx: &mut Tx, msg: &OutboxMessage, now: Timestamp) -> Result<(), sqlx::Error> {
    enqueue_all(tx, std::slice::from_ref(msg), now).await
}

/// A claimed message, ready to send.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub chat_id: i64,
    pub priority: i16,
    pub method: String,
    pub payload: String,
    pub attempts: i32,
    /// Other messages to this chat were waiting when this one was claimed.
    pub more_in_chat: bool,
    /// A paid broadcast's message (paced on the paid clock).
    pub paid_broadcast: bool,
}

/// Which rows one claim takes. Replies and notices (the urgent lane) are claimed apart from
/// broadcasts, so the sender can keep broadcasts' lookahead short: a reply then waits behind
/// at most a fraction of a second of broadcast messages, never behind seconds of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Transactional messages and reminders.
    Urgent,
    /// Broadcasts within Telegram's free limit (they share the global rate).
    Broadcast,
    /// Broadcasts with `allow_paid_broadcast` (their own, higher, rate).
    PaidBroadcast,
}

/// The messages a claim takes, written once for both backends' claims: heads of each chat's
/// queue, most urgent first, at most `$2`. A chat's later messages wait until its earlier ones
/// are sent or failed, so a chat sees them in order.
macro_rules! due_messages {
    ($lane:literal) => {
        concat!(
            "
    SELECT o.id FROM outbox o
    WHERE o.status = 'pending' AND o.next_attempt_at <= $1 AND ",
            $lane,
            "
      AND (o.claimed_until IS NULL OR o.claimed_until <= $1)
      AND NOT EXISTS (
          SELECT 1 FROM outbox e
          WHERE e.chat_id = o.chat_id AND e.status = 'pending'
            AND (e.priority < o.priority OR (e.priority = o.priority AND e.id < o.id)))
    ORDER BY o.priority, o.next_attempt_at, o.id
    LIMIT $2"
        )
    };
}

/// The claim statements of one lane (`$lane`: its condition on `o`).
macro_rules! claims {
    ($sqlite:ident, $postgres:ident, $lane:literal) => {
        const $sqlite: &str = concat!(
            "
UPDATE outbox SET claimed_by = $3, claimed_until = $4, attempts = attempts + 1
WHERE id IN (",
            due_messages!($lane),
            ")
RETURNING id, chat_id, priority, method, payload, attempts, paid_broadcast,
    EXISTS (SELECT 1 FROM outbox m WHERE m.chat_id = outbox.chat_id AND m.status = 'pending' AND m.id <> outbox.id) AS more_in_chat"
        );
        /// The same on PostgreSQL; rows are chosen once in a CTE (see `inbox::CLAIM_POSTGRES`).
        const $postgres: &str = concat!(
            "
WITH due AS (",
            due_messages!($lane),
            "
    FOR UPDATE SKIP LOCKED)
UPDATE outbox SET claimed_by = $3, claimed_until = $4, attempts = outbox.attempts + 1
WHERE outbox.id = ANY(ARRAY(SELECT id FROM due))
RETURNING outbox.id, outbox.chat_id, outbox.priority, outbox.method, outbox.payload, outbox.attempts, outbox.paid_broadcast,
    EXISTS (SELECT 1 FROM outbox m WHERE m.chat_id = outbox.chat_id AND m.status = 'pending' AND m.id <> outbox.id) AS more_in_chat"
        );
    };
}
claims!(CLAIM_SQLITE, CLAIM_POSTGRES, "true");
claims!(CLAIM_URGENT_SQLITE, CLAIM_URGENT_POSTGRES, "o.priority < 2");
// A broadcast message whose call was started and never finished (its process died) may have
// been sent: it is not claimed again (`give_up_uncertain` ends it).
claims!(
    CLAIM_BROADCAST_SQLITE,
    CLAIM_BROADCAST_POSTGRES,
    "o.priority = 2 AND o.paid_broadcast = FALSE AND o.call_started_at IS NULL"
);
claims!(
    CLAIM_PAID_SQLITE,
    CLAIM_PAID_POSTGRES,
    "o.priority = 2 AND o.paid_broadcast = TRUE AND o.call_started_at IS NULL"
);

/// Claims up to `limit` due messages of every lane, most urgent first.
pub async fn claim(
    db: &Db,
    worker: &str,
    limit: i64,
    now: Timestamp,
    until: Timestamp,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut rows: Vec<Claimed> = db
        .claim(CLAIM_SQLITE, CLAIM_POSTGRES, now, limit, worker, until)
        .await?;
    rows.sort_by_key(|r| (r.priority, r.id));
    Ok(rows)
}

/// Claims up to `limit` due messages of one lane, most urgent first.
pub async fn claim_lane(
    db: &Db,
    lane: Lane,
    worker: &str,
    limit: i64,
    now: Timestamp,
    until: Timestamp,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let (sqlite, postgres) = match lane {
        Lane::Urgent => (CLAIM_URGENT_SQLITE, CLAIM_URGENT_POSTGRES),
        Lane::Broadcast => (CLAIM_BROADCAST_SQLITE, CLAIM_BROADCAST_POSTGRES),
        Lane::PaidBroadcast => (CLAIM_PAID_SQLITE, CLAIM_PAID_POSTGRES),
    };
    let mut rows: Vec<Claimed> = db
        .claim(sqlite, postgres, now, limit, worker, until)
        .await?;
    rows.sort_by_key(|r| (r.priority, r.id));
    Ok(rows)
}

/// Records that the calls of claimed broadcast messages `ids` start now, before they are
/// made; returns the ids still there to send (a cancelled broadcast's messages are deleted,
/// claimed or not). One statement for the batch.
pub async fn start_calls(
    db: &Db,
    worker: &str,
    ids: &[i64],
    now: Timestamp,
) -> Result<Vec<i64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let started: Vec<i64> = match &mut tx {
        Tx::Sqlite(c) => {
            sqlx::query_scalar(
                "UPDATE outbox SET call_started_at = $3
                 WHERE id IN (SELECT value FROM json_each($1)) AND claimed_by = $2 AND status = 'pending'
                 RETURNING id",
            )
            .bind(serde_json::Value::from(ids.to_vec()).to_string())
            .bind(worker)
            .bind(now)
            .fetch_all(&mut *c)
            .await?
        }
        Tx::Postgres(c) => {
            sqlx::query_scalar(
                "UPDATE outbox SET call_started_at = $3
                 WHERE id = ANY($1) AND claimed_by = $2 AND status = 'pending'
                 RETURNING id",
            )
            .bind(ids)
            .bind(worker)
            .bind(now)
            .fetch_all(&mut **c)
            .await?
        }
    };
    tx.commit().await?;
    Ok(started)
}

/// Ends the broadcast messages (keys starting with `prefix`) whose call was started by a
/// process whose claim lapsed before `lapsed_before` without an outcome (it died mid-call):
/// they may have been sent, so they are failed, never sent again. Returns how many.
pub async fn give_up_uncertain(
    db: &Db,
    prefix: &str,
    lapsed_before: Timestamp,
    now: Timestamp,
) -> Result<u64, sqlx::Error> {
    let end = prefix_end(prefix);
    on_db!(db, p => sqlx::query(
        "UPDATE outbox SET status = 'failed', finished_at = $4, claimed_by = NULL, claimed_until = NULL,
             last_error = 'not sent again: the process sending it stopped during the call, which may have delivered it'
         WHERE dedupe_key >= $1 AND dedupe_key < $2 AND status = 'pending'
           AND call_started_at IS NOT NULL AND claimed_until < $3")
        .bind(prefix).bind(end).bind(lapsed_before).bind(now)
        .execute(p).await.map(|r| r.rows_affected()))
}

/// Deletes the unsent messages whose key starts with `prefix` (claimed ones too), in the
/// caller's transaction: a cancelled broadcast. Returns how many.
pub async fn delete_pending_keyed(tx: &mut Tx, prefix: &str) -> Result<u64, sqlx::Error> {
    let end = prefix_end(prefix);
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM outbox WHERE dedupe_key >= $1 AND dedupe_key < $2 AND status = 'pending'")
        .bind(prefix).bind(end).execute(c).await.map(|r| r.rows_affected()))
}

/// How many messages whose key starts with `prefix` are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyedCounts {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub blocked: i64,
}

pub async fn count_keyed(db: &Db, prefix: &str) -> Result<KeyedCounts, sqlx::Error> {
    let end = prefix_end(prefix);
    let rows: Vec<(String, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT status, CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key >= $1 AND dedupe_key < $2
         GROUP BY status")
        .bind(prefix).bind(&end).fetch_all(p).await)?;
    let mut c = KeyedCounts::default();
    for (status, n) in rows {
        match status.as_str() {
            "pending" => c.pending = n,
            "sent" => c.sent = n,
            "failed" => c.failed = n,
            "blocked" => c.blocked = n,
            _ => {}
        }
    }
    Ok(c)
}

/// Broadcast messages waiting to be sent (the feeder keeps this backlog short).
pub async fn broadcast_backlog(db: &Db) -> Result<i64, sqlx::Error> {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE status = 'pending' AND priority = 2")
        .fetch_one(p).await)
}

/// The first string after every string that starts with `prefix` (a key range's end).
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_owned();
    let last = end.pop().map_or(char::MAX, |c| {
        char::from_u32(c as u32 + 1).unwrap_or(char::MAX)
    });
    end.push(last);
    end
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        message_id: Option<i64>,
    },
    /// Try again at the given time (5xx, timeout, network, 429).
    Retry {
        at: Timestamp,
        reason: String,
        http_status: Option<u16>,
        rate_limited: bool,
    },
    /// The recipient blocked the bot (403).
    Blocked {
        reason: String,
    },
    /// Permanently refused (400 …) or out of attempts.
    Failed {
        reason: String,
        http_status: Option<u16>,
    },
}

impl Outcome {
    /// The outcome as recorded and counted: sent, rate_limited, retry, blocked, failed.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "sent",
            Outcome::Retry {
                rate_limited: true, ..
            } => "rate_limited",
            Outcome::Retry { .. } => "retry",
            Outcome::Blocked { .. } => "blocked",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// One attempt to record.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub id: i64,
    pub chat_id: i64,
    /// From the claim: the chat has further messages, which must now wait their turn.
    pub more_in_chat: bool,
    pub outcome: &'a Outcome,
}

/// Records attempts and moves their messages to their next states, all in one transaction.
/// Returns, per attempt, false when its claim was lost (that message is left unchanged).
///
/// A sent message holds back the rest of its chat until `now + chat_spacing`, so claims
/// skip that chat instead of claiming and putting back.
///
/// The batch is written with a fixed number of statements, not two or three per message:
/// the state changes in one `UPDATE … FROM` over the batch (returning the ids whose claim
/// still held), their attempt rows in one `INSERT … SELECT`, and the per-chat spacing in one
/// `UPDATE`. On SQLite every statement is a round trip to the one connection's thread, and on
/// PostgreSQL a round trip, so the sender's bookkeeping no longer grows with its rate. A batch
/// that names one message twice (never produced by the sender) is written row by row, in
/// order, as before.
pub async fn finish_attempts(
    db: &Db,
    worker: &str,
    attempts: &[Attempt<'_>],
    now: Timestamp,
    chat_spacing: std::time::Duration,
) -> Result<Vec<bool>, sqlx::Error> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = std::collections::HashSet::with_capacity(attempts.len());
    if !attempts.iter().all(|a| seen.insert(a.id)) {
        return finish_attempts_one_by_one(db, worker, attempts, now, chat_spacing).await;
    }
    let rows: Vec<AttemptRow<'_>> = attempts
        .iter()
        .map(|a| AttemptRow::new(a.outcome, now))
        .collect();
    let not_before = now.plus(chat_spacing);
    let mut tx = match db.begin().await? {
        Tx::Sqlite(c) => {
            return finish_attempts_sqlite(c, worker, attempts, &rows, now, not_before).await;
        }
        Tx::Postgres(c) => c,
    };
    let updated: Vec<i64> = {
        let ids: Vec<i64> = attempts.iter().map(|a| a.id).collect();
        let statuses: Vec<&str> = rows.iter().map(|r| r.status).collect();
        let nexts: Vec<Option<Timestamp>> = rows.iter().map(|r| r.next).collect();
        let errors: Vec<Option<&str>> = rows.iter().map(|r| r.error).collect();
        let message_ids: Vec<Option<i64>> = rows.iter().map(|r| r.message_id).collect();
        let finished: Vec<Option<Timestamp>> = rows.iter().map(|r| r.finished).collect();
        let undo: Vec<i32> = rows.iter().map(|r| i32::from(r.undo_attempt)).collect();
        sqlx::query_scalar(FINISH_POSTGRES)
            .bind(&ids)
            .bind(&statuses)
            .bind(&nexts)
            .bind(&errors)
            .bind(&message_ids)
            .bind(&finished)
            .bind(&undo)
            .bind(worker)
            .fetch_all(&mut *tx)
            .await?
    };
    let updated: std::collections::HashSet<i64> = updated.into_iter().collect();
    let kept: Vec<bool> = attempts.iter().map(|a| updated.contains(&a.id)).collect();
    let recorded: Vec<(&Attempt<'_>, &AttemptRow<'_>)> = attempts
        .iter()
        .zip(&rows)
        .zip(&kept)
        .filter(|(_, k)| **k)
        .map(|(ar, _)| ar)
        .collect();
    let mut spaced: Vec<i64> = recorded
        .iter()
        .filter(|(a, _)| a.more_in_chat && matches!(a.outcome, Outcome::Sent { .. }))
        .map(|(a, _)| a.chat_id)
        .collect();
    spaced.sort_unstable();
    spaced.dedup();
    if !recorded.is_empty() {
        let ids: Vec<i64> = recorded.iter().map(|(a, _)| a.id).collect();
        let labels: Vec<&str> = recorded.iter().map(|(a, _)| a.outcome.label()).collect();
        let statuses: Vec<Option<i32>> = recorded
            .iter()
            .map(|(_, r)| r.http_status.map(i32::from))
            .collect();
        let errors: Vec<Option<&str>> = recorded.iter().map(|(_, r)| r.error).collect();
        sqlx::query(ATTEMPTS_POSTGRES)
            .bind(&ids)
            .bind(&labels)
            .bind(&statuses)
            .bind(&errors)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    if !spaced.is_empty() {
        sqlx::query(SPACING_POSTGRES)
            .bind(&spaced)
            .bind(not_before)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(kept)
}

/// [`finish_attempts`] on SQLite: the attempt records, the spacing and the state changes
/// are one text, sent with the transaction's `BEGIN` and `COMMIT` in one round trip. Which
/// claims still held is decided by the database there: the records and the spacing are
/// written for the messages still claimed by `worker`, before the state change lets them go.
async fn finish_attempts_sqlite(
    tx: SqliteTx,
    worker: &str,
    attempts: &[Attempt<'_>],
    rows: &[AttemptRow<'_>],
    now: Timestamp,
    not_before: Timestamp,
) -> Result<Vec<bool>, sqlx::Error> {
    let batch = serde_json::Value::Array(
        attempts
            .iter()
            .zip(rows)
            .map(|(a, r)| {
                serde_json::json!([
                    a.id,
                    r.status,
                    r.next,
                    r.error,
                    r.message_id,
                    r.finished,
                    i32::from(r.undo_attempt),
                    a.outcome.label(),
                    r.http_status.map(i32::from)
                ])
            })
            .collect(),
    )
    .to_string();
    let spaced: Vec<i64> = attempts
        .iter()
        .filter(|a| a.more_in_chat && matches!(a.outcome, Outcome::Sent { .. }))
        .map(|a| a.id)
        .collect();
    let spaced = serde_json::Value::from(spaced).to_string();
    let returned = tx
        .commit_with(
            sqlx::query(FINISH_ALL_SQLITE)
                .bind(batch)
                .bind(worker)
                .bind(spaced)
                .bind(not_before)
                .bind(now),
        )
        .await?;
    let updated = returned
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<std::collections::HashSet<i64>, _>>()?;
    Ok(attempts.iter().map(|a| updated.contains(&a.id)).collect())
}

/// `$1`: the batch, a JSON array of `[id, status, next_attempt_at, last_error, message_id,
/// finished_at, undo_attempt, outcome, http_status]` per attempt, recorded at `$5`; `$3`: a
/// JSON array of the ids whose chat waits for the spacing (their message was sent and more
/// are queued), until `$4`. Only rows `$2` still holds are recorded or changed; returns their
/// ids.
const FINISH_ALL_SQLITE: &str = "
INSERT INTO outbox_attempts (outbox_id, attempted_at, outcome, http_status, detail)
SELECT j.value ->> 0, $5, j.value ->> 7, j.value ->> 8, j.value ->> 3
FROM json_each($1) AS j JOIN outbox o ON o.id = j.value ->> 0
WHERE o.claimed_by = $2 AND o.status = 'pending'
ORDER BY j.key;
UPDATE outbox SET next_attempt_at = $4
WHERE chat_id IN (SELECT o.chat_id FROM json_each($3) AS j JOIN outbox o ON o.id = j.value
                  WHERE o.claimed_by = $2 AND o.status = 'pending')
  AND status = 'pending' AND next_attempt_at < $4
  AND id NOT IN (SELECT j.value ->> 0 FROM json_each($1) AS j);
UPDATE outbox SET status = b.status, next_attempt_at = COALESCE(b.next_at, outbox.next_attempt_at),
    last_error = b.error, message_id = COALESCE(b.message_id, outbox.message_id),
    finished_at = b.finished, claimed_by = NULL, claimed_until = NULL, call_started_at = NULL,
    attempts = outbox.attempts - b.undo
FROM (SELECT j.value ->> 0 AS id, j.value ->> 1 AS status, j.value ->> 2 AS next_at,
             j.value ->> 3 AS error, j.value ->> 4 AS message_id, j.value ->> 5 AS finished,
             j.value ->> 6 AS undo
      FROM json_each($1) AS j) AS b
WHERE outbox.id = b.id AND outbox.claimed_by = $2 AND outbox.status = 'pending'
RETURNING outbox.id";

const FINISH_POSTGRES: &str = "
UPDATE outbox SET status = b.status, next_attempt_at = COALESCE(b.next_at, outbox.next_attempt_at),
    last_error = b.error, message_id = COALESCE(b.message_id, outbox.message_id),
    finished_at = b.finished, claimed_by = NULL, claimed_until = NULL, call_started_at = NULL,
    attempts = outbox.attempts - b.undo
FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::INTEGER[])
    AS b(id, status, next_at, error, message_id, finished, undo)
WHERE outbox.id = b.id AND outbox.claimed_by = $8 AND outbox.status = 'pending'
RETURNING outbox.id";

/// `[outbox_id, outcome, http_status, detail]` per recorded attempt, in batch order.
const ATTEMPTS_POSTGRES: &str = "
INSERT INTO outbox_attempts (outbox_id, attempted_at, outcome, http_status, detail)
SELECT a.id, $5, a.outcome, a.http_status, a.detail
FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::INTEGER[], $4::TEXT[]) WITH ORDINALITY
    AS a(id, outcome, http_status, detail, n)
ORDER BY a.n";

/// The chats whose head was just sent: their other messages wait for the spacing.
const SPACING_POSTGRES: &str = "
UPDATE outbox SET next_attempt_at = $2
WHERE chat_id = ANY($1::BIGINT[]) AND status = 'pending' AND next_attempt_at < $2";

/// What one attempt writes into its message's row and its attempt record.
struct AttemptRow<'a> {
    status: &'static str,
    next: Option<Timestamp>,
    error: Option<&'a str>,
    message_id: Option<i64>,
    http_status: Option<u16>,
    /// A 429 does not count as an attempt: the claim's increment is taken back.
    undo_attempt: bool,
    finished: Option<Timestamp>,
}

impl<'a> AttemptRow<'a> {
    fn new(outcome: &'a Outcome, now: Timestamp) -> AttemptRow<'a> {
        let (status, next, error, message_id, http_status, undo_attempt) = match outcome {
            Outcome::Sent { message_id } => ("sent", None, None, *message_id, Some(200_u16), false),
            // A 429 is Telegram asking us to wait, not a failure of this message.
            Outcome::Retry {
                at,
                reason,
                http_status,
                rate_limited,
            } => (
                "pending",
                Some(*at),
                Some(reason.as_str()),
                None,
                *http_status,
                *rate_limited,
            ),
            Outcome::Blocked { reason } => (
                "blocked",
                None,
                Some(reason.as_str()),
                None,
                Some(403),
                false,
            ),
            Outcome::Failed {
                reason,
                http_status,
            } => (
                "failed",
                None,
                Some(reason.as_str()),
                None,
                *http_status,
                false,
            ),
        };
        let finished = if status == "pending" { None } else { Some(now) };
        AttemptRow {
            status,
            next,
            error,
            message_id,
            http_status,
            undo_attempt,
            finished,
        }
    }
}

/// The row-by-row form of [`finish_attempts`], for a batch that names a message twice.
async fn finish_attempts_one_by_one(
    db: &Db,
    worker: &str,
    attempts: &[Attempt<'_>],
    now: Timestamp,
    chat_spacing: std::time::Duration,
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut kept = Vec::with_capacity(attempts.len());
    for Attempt {
        id,
        chat_id,
        more_in_chat,
        outcome,
    } in attempts
    {
        let ok = finish_attempt_in(&mut tx, *id, worker, outcome, now).await?;
        if ok && *more_in_chat && matches!(outcome, Outcome::Sent { .. }) {
            let not_before = now.plus(chat_spacing);
            on_tx!(&mut tx, c => sqlx::query(
                "UPDATE outbox SET next_attempt_at = $2
                 WHERE chat_id = $1 AND status = 'pending' AND next_attempt_at < $2"
            ).bind(*chat_id).bind(not_before).execute(c).await.map(|_| ()))?;
        }
        kept.push(ok);
    }
    tx.commit().await?;
    Ok(kept)
}

async fn finish_attempt_in(
    tx: &mut Tx,
    id: i64,
    worker: &str,
    outcome: &Outcome,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let r = AttemptRow::new(outcome, now);
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE outbox SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at), last_error = $5,
             message_id = COALESCE($6, message_id), finished_at = $7, claimed_by = NULL, claimed_until = NULL,
             call_started_at = NULL,
             attempts = attempts - $8
         WHERE id = $1 AND claimed_by = $2 AND status = 'pending'"
    ).bind(id).bind(worker).bind(r.status).bind(r.next).bind(r.error).bind(r.message_id).bind(r.finished)
        .bind(i32::from(r.undo_attempt)).execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Ok(false);
    }
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO outbox_attempts (outbox_id, attempted_at, outcome, http_status, detail) VALUES ($1, $2, $3, $4, $5)"
    ).bind(id).bind(now).bind(outcome.label()).bind(r.http_status.map(i32::from)).bind(r.error)
        .execute(c).await.map(|_| ()))?;
    Ok(true)
}

/// Puts a claimed message back until `at` without counting the attempt (the chat is not
/// ready for another message yet).
pub async fn defer(db: &Db, id: i64, worker: &str, at: Timestamp) -> Result<(), sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = $3, attempts = attempts - 1
         WHERE id = $1 AND claimed_by = $2 AND status = 'pending' AND attempts > 0"
    ).bind(id).bind(worker).bind(at).execute(p).await.map(|_| ()))
}

/// Gives claims back at shutdown; the attempt is not counted.
pub async fn release(db: &Db, ids: &[i64], worker: &str) -> Result<(), sqlx::Error> {
    for id in ids {
        on_db!(db, p => sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts - 1
             WHERE id = $1 AND claimed_by = $2 AND status = 'pending' AND attempts > 0"
        ).bind(*id).bind(worker).execute(p).await.map(|_| ()))?;
    }
    Ok(())
}

/// Deletes finished messages (and their attempts) older than `cutoff`, at most `batch`.
pub async fn prune(db: &Db, cutoff: Timestamp, batch: i64) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM outbox_attempts WHERE outbox_id IN (
             SELECT id FROM outbox WHERE status <> 'pending' AND finished_at < $1 LIMIT $2)"
    ).bind(cutoff).bind(batch).execute(c).await.map(|_| ()))?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox WHERE status <> 'pending' AND finished_at < $1 LIMIT $2)"
    ).bind(cutoff).bind(batch).execute(c).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(n)
}

/// Backlog size and the age of its oldest due row.
pub async fn depth(db: &Db) -> Result<(i64, Option<Timestamp>), sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), MIN(created_at) FROM outbox WHERE status = 'pending'"
    ).fetch_one(p).await)
}

/// The state of one message (tests, admin views).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub dedupe_key: String,
    pub chat_id: i64,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub message_id: Option<i64>,
}

/// How many messages whose key starts with `prefix` were queued since `since` (a range of the
/// unique key's index: the console counts auto-renewals and balance-short notices this way).
pub async fn count_keyed_since(
    db: &Db,
    prefix: &str,
    since: Timestamp,
) -> Result<i64, sqlx::Error> {
    // Every key of a kind is `<prefix>…`; the range ends before the prefix's next string.
    let end = prefix_end(prefix);
    on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key >= $1 AND dedupe_key < $2 AND created_at >= $3")
        .bind(prefix).bind(end).bind(since).fetch_one(p).await)
}

pub async fn get_by_key(db: &Db, dedupe_key: &str) -> Result<Option<Row>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT id, dedupe_key, chat_id, status, attempts, last_error, message_id FROM outbox WHERE dedupe_key = $1"
    ).bind(dedupe_key).fetch_optional(p).await)
}

/// Outcomes of every attempt of one message, oldest first.
pub async fn attempts(db: &Db, id: i64) -> Result<Vec<(String, Option<i32>)>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT outcome, http_status FROM outbox_attempts WHERE outbox_id = $1 ORDER BY id"
    ).bind(id).fetch_all(p).await)
}
