//! The inbox: every update Telegram delivered, stored before it is acknowledged.
//!
//! `update_id` is the primary key, so a redelivery is stored once and handled once
//! (docs/reliability.md B2). Rows are claimed by dispatchers on any replica with per-chat ordering:
//! only the oldest pending update of a chat can be claimed, so one update per chat is in
//! flight and chats proceed in `update_id` order. A claim expires (`claimed_until`), so an
//! update held by a process that died is taken again. Failures retry with backoff and end in
//! `dead` with their error (B5); updates that cannot be understood end in `failed`.
//!
//! Writes from intake go through [`InboxWriter`], which commits concurrent arrivals in one
//! transaction (group commit) and answers each caller only after that commit: the webhook's
//! 200 means "durable" (B1).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::outbox::{self, OutboxMessage};
use super::update::UpdateHead;
use crate::store::{self, Db, Tx};
use crate::time::{SharedClock, Timestamp};
use crate::users;
use crate::{on_db, on_tx};

/// An update as stored.
#[derive(Debug, Clone)]
pub struct NewUpdate {
    pub head: UpdateHead,
    pub raw: String,
}

/// Whether a stored update was new or a redelivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

/// SQLite reads the batch from a JSON array of `[update_id, chat_key, kind, payload]`.
/// (`WHERE true` resolves the parser ambiguity of `ON CONFLICT` after `SELECT … FROM`.)
const INSERT_MANY_SQLITE: &str = "INSERT INTO tg_inbox (update_id, chat_key, kind, payload, status, attempts, next_attempt_at, received_at)
     SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, 'pending', 0, $2, $2
     FROM json_each($1) AS j WHERE true
     ON CONFLICT (update_id) DO NOTHING
     RETURNING update_id";

/// PostgreSQL stores a whole batch in one statement (one round trip instead of one per row).
const INSERT_MANY_POSTGRES: &str = "INSERT INTO tg_inbox (update_id, chat_key, kind, payload, status, attempts, next_attempt_at, received_at)
     SELECT u.id, u.chat, u.kind, u.payload, 'pending', 0, $5, $5
     FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[]) AS u(id, chat, kind, payload)
     ON CONFLICT (update_id) DO NOTHING
     RETURNING update_id";

/// Stores updates in one transaction; returns, per update, whether it was new.
pub async fn store_batch(
    db: &Db,
    updates: &[NewUpdate],
    now: Timestamp,
) -> Result<Vec<Stored>, sqlx::Error> {
    let ids: Vec<i64> = updates.iter().map(|u| u.head.update_id).collect();
    let inserted: Vec<i64> = match db {
        Db::Postgres(p) => {
            let chats: Vec<Option<i64>> = updates.iter().map(|u| u.head.chat_key).collect();
            let kinds: Vec<&str> = updates.iter().map(|u| u.head.kind.as_str()).collect();
            let payloads: Vec<&str> = updates.iter().map(|u| u.raw.as_str()).collect();
            sqlx::query_scalar(INSERT_MANY_POSTGRES)
                .bind(&ids)
                .bind(&chats)
                .bind(&kinds)
                .bind(&payloads)
                .bind(now)
                .fetch_all(p)
                .await?
        }
        // SQLite: the batch travels as one JSON array, so the whole batch is one statement
        // (each statement is a round trip to the connection's worker thread). The webhook's
        // 200 waits for it, so it goes ahead of the queued handlers and sends
        // (`store::sqlite`).
        Db::Sqlite(s) => {
            let rows: Vec<serde_json::Value> = updates
                .iter()
                .map(|u| serde_json::json!([u.head.update_id, u.head.chat_key, u.head.kind, u.raw]))
                .collect();
            let batch = serde_json::Value::Array(rows).to_string();
            let mut conn = s.acquire_ahead().await?;
            let r = sqlx::query_scalar(INSERT_MANY_SQLITE)
                .bind(batch)
                .bind(now)
                .fetch_all(&mut *conn)
                .await;
            conn.check(r)?
        }
    };
    let mut fresh: std::collections::HashSet<i64> = inserted.into_iter().collect();
    // A batch can hold the same update twice (a redelivery racing the original): only its
    // first occurrence counts as new.
    Ok(ids
        .iter()
        .map(|id| {
            if fresh.remove(id) {
                Stored::New
            } else {
                Stored::Duplicate
            }
        })
        .collect())
}

/// A claimed update, ready for a handler.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub update_id: i64,
    pub chat_key: Option<i64>,
    pub kind: String,
    pub payload: String,
    /// Attempts including this one.
    pub attempts: i32,
    /// The chat is a user we have marked as having blocked the bot (read with the claim, so
    /// noticing that they are back costs nothing for everyone else).
    pub sender_blocked: bool,
}

/// The updates a claim takes, written once for both backends' claims: due, not held by a live
/// claim, heads of their chats (no earlier pending update of the same chat), oldest first,
/// at most `$2`.
macro_rules! due_updates {
    () => {
        "
    SELECT i.update_id FROM tg_inbox i
    WHERE i.status = 'pending' AND i.next_attempt_at <= $1
      AND (i.claimed_until IS NULL OR i.claimed_until <= $1)
      AND (i.chat_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM tg_inbox j
          WHERE j.chat_key = i.chat_key AND j.status = 'pending' AND j.update_id < i.update_id))
    ORDER BY i.update_id
    LIMIT $2"
    };
}

const CLAIM_SQLITE: &str = concat!(
    "
UPDATE tg_inbox SET claimed_by = $3, claimed_until = $4, attempts = attempts + 1
WHERE update_id IN (",
    due_updates!(),
    ")
RETURNING update_id, chat_key, kind, payload, attempts,
    ",
    users::user_blocked_sql!("tg_inbox.chat_key"),
    " AS sender_blocked"
);

/// The same claim on PostgreSQL. `SKIP LOCKED` lets replicas claim concurrently without
/// waiting on each other's rows. The rows are chosen in a CTE, which runs once: with
/// `WHERE … IN (SELECT … SKIP LOCKED)` PostgreSQL may re-run the subquery and claim more
/// rows than asked for. The update finds the chosen rows by primary key (`= ANY(ARRAY(…))`):
/// joined to the CTE, a plan made while the table was small hashes it and reads the whole
/// table on every claim once it has grown (`store::statistics`).
const CLAIM_POSTGRES: &str = concat!(
    "
WITH due AS (",
    due_updates!(),
    "
    FOR UPDATE SKIP LOCKED)
UPDATE tg_inbox SET claimed_by = $3, claimed_until = $4, attempts = tg_inbox.attempts + 1
WHERE tg_inbox.update_id = ANY(ARRAY(SELECT update_id FROM due))
RETURNING tg_inbox.update_id, tg_inbox.chat_key, tg_inbox.kind, tg_inbox.payload, tg_inbox.attempts,
    ",
    users::user_blocked_sql!("tg_inbox.chat_key"),
    " AS sender_blocked"
);

/// Claims up to `limit` due updates (heads of their chats) for `worker` until `until`.
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
    rows.sort_by_key(|r| r.update_id);
    Ok(rows)
}

/// Marks claimed updates handled, in one statement. An update its handler already completed
/// (with [`complete_and_commit`]) is left as it is.
pub async fn complete_all(
    db: &Db,
    update_ids: &[i64],
    worker: &str,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    match db {
        Db::Sqlite(p) => {
            let ids = serde_json::Value::from(update_ids).to_string();
            sqlx::query(
                "UPDATE tg_inbox SET status = 'done', finished_at = $3, claimed_by = NULL, claimed_until = NULL
                 WHERE update_id IN (SELECT j.value FROM json_each($1) AS j)
                   AND claimed_by = $2 AND status = 'pending'",
            )
            .bind(ids)
            .bind(worker)
            .bind(now)
            .execute(p)
            .await?;
        }
        Db::Postgres(p) => {
            sqlx::query(
                "UPDATE tg_inbox SET status = 'done', finished_at = $3, claimed_by = NULL, claimed_until = NULL
                 WHERE update_id = ANY($1) AND claimed_by = $2 AND status = 'pending'",
            )
            .bind(update_ids)
            .bind(worker)
            .bind(now)
            .execute(p)
            .await?;
        }
    }
    Ok(())
}

const COMPLETE: &str =
    "UPDATE tg_inbox SET status = 'done', finished_at = $2, claimed_by = NULL, claimed_until = NULL
     WHERE update_id = $1 AND status = 'pending'";

/// Marks an update handled as the last statement of its handler's transaction, and commits:
/// its effects and its completion commit together (on SQLite in one round trip).
pub async fn complete_and_commit(
    tx: Tx,
    update_id: i64,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Sqlite(t) => t
            .commit_with(sqlx::query(COMPLETE).bind(update_id).bind(now))
            .await
            .map(|_| ()),
        Tx::Postgres(mut t) => {
            sqlx::query(COMPLETE)
                .bind(update_id)
                .bind(now)
                .execute(&mut *t)
                .await?;
            t.commit().await
        }
    }
}

/// Queues `reply` (if any) and marks the update handled, for a handler with no other writes,
/// in one transaction (on SQLite one round trip to the connection). A message whose dedupe key
/// is queued already stays as it is.
pub async fn complete_replying(
    db: &Db,
    update_id: i64,
    reply: Option<&OutboxMessage>,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    if let Some(msg) = reply {
        outbox::enqueue(&mut tx, msg, now).await?;
    }
    complete_and_commit(tx, update_id, now).await
}

/// Schedules a retry after a failed attempt.
pub async fn retry_later(
    db: &Db,
    update_id: i64,
    worker: &str,
    error: &str,
    next_attempt_at: Timestamp,
) -> Result<bool, sqlx::Error> {
    let n = on_db!(db, p => sqlx::query(
        "UPDATE tg_inbox SET next_attempt_at = $3, last_error = $4, claimed_by = NULL, claimed_until = NULL
         WHERE update_id = $1 AND claimed_by = $2 AND status = 'pending'"
    ).bind(update_id).bind(worker).bind(next_attempt_at).bind(store::clip(error, 2000)).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Terminal failure: `dead` after exhausting retries, `failed` when it can never succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    Dead,
    Failed,
}

/// Ends an update in a terminal failure state, keeping its error, in the caller's
/// transaction (so an admin alert can be queued atomically with it).
pub async fn finish_failed(
    tx: &mut Tx,
    update_id: i64,
    worker: &str,
    state: Terminal,
    error: &str,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let status = match state {
        Terminal::Dead => "dead",
        Terminal::Failed => "failed",
    };
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE tg_inbox SET status = $3, last_error = $4, finished_at = $5, claimed_by = NULL, claimed_until = NULL
         WHERE update_id = $1 AND claimed_by = $2 AND status = 'pending'"
    ).bind(update_id).bind(worker).bind(status).bind(store::clip(error, 2000)).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Gives claims back (graceful shutdown): the updates become claimable at once elsewhere.
pub async fn release(db: &Db, update_ids: &[i64], worker: &str) -> Result<(), sqlx::Error> {
    for id in update_ids {
        on_db!(db, p => sqlx::query(
            "UPDATE tg_inbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts - 1
             WHERE update_id = $1 AND claimed_by = $2 AND status = 'pending' AND attempts > 0"
        ).bind(*id).bind(worker).execute(p).await.map(|_| ()))?;
    }
    Ok(())
}

/// Deletes finished rows older than `cutoff`, at most `batch` per call; returns how many.
pub async fn prune(db: &Db, cutoff: Timestamp, batch: i64) -> Result<u64, sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "DELETE FROM tg_inbox WHERE update_id IN (
             SELECT update_id FROM tg_inbox WHERE status <> 'pending' AND finished_at < $1 LIMIT $2)"
    ).bind(cutoff).bind(batch).execute(p).await.map(|r| r.rows_affected()))
}

/// Depth and age of the backlog, by status (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Depth {
    pub pending: i64,
    pub oldest_pending: Option<Timestamp>,
    pub dead: i64,
    pub failed: i64,
}

pub async fn depth(db: &Db) -> Result<Depth, sqlx::Error> {
    let (pending, oldest): (i64, Option<Timestamp>) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT), MIN(received_at) FROM tg_inbox WHERE status = 'pending'"
    ).fetch_one(p).await)?;
    let (dead, failed): (i64, i64) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT)
         FROM tg_inbox WHERE status IN ('dead', 'failed')"
    ).fetch_one(p).await)?;
    Ok(Depth {
        pending,
        oldest_pending: oldest,
        dead,
        failed,
    })
}

/// The state of one update (tests and the admin's dead-letter view).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Row {
    pub update_id: i64,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

pub async fn get(db: &Db, update_id: i64) -> Result<Option<Row>, sqlx::Error> {
    on_db!(db, p => sqlx::query_as(
        "SELECT update_id, status, attempts, last_error FROM tg_inbox WHERE update_id = $1"
    ).bind(update_id).fetch_optional(p).await)
}

/// An update that ended as a dead letter (the admin's view).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetter {
    pub update_id: i64,
    pub kind: String,
    pub chat_key: Option<i64>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub finished_at: Option<Timestamp>,
}

/// How many updates are dead letters, and the latest `limit` of them.
pub async fn dead_letters(db: &Db, limit: i64) -> Result<(i64, Vec<DeadLetter>), sqlx::Error> {
    let count: i64 = on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status = 'dead'").fetch_one(p).await)?;
    let rows = on_db!(db, p => sqlx::query_as(
        "SELECT update_id, kind, chat_key, attempts, last_error, finished_at FROM tg_inbox
         WHERE status = 'dead' ORDER BY finished_at DESC, update_id DESC LIMIT $1")
        .bind(limit).fetch_all(p).await)?;
    Ok((count, rows))
}

/// Puts a dead letter back in the queue, due now, with a fresh budget of attempts. `false`
/// when it is not (or no longer) a dead letter.
pub async fn redrive(tx: &mut Tx, update_id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE tg_inbox SET status = 'pending', attempts = 0, next_attempt_at = $2, finished_at = NULL,
                claimed_by = NULL, claimed_until = NULL
         WHERE update_id = $1 AND status = 'dead'")
        .bind(update_id).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Gives a dead letter up for good (`failed`, its error kept): it leaves the dead-letter
/// list and is pruned with the other finished updates. `false` when it is not a dead letter.
pub async fn discard(tx: &mut Tx, update_id: i64) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE tg_inbox SET status = 'failed' WHERE update_id = $1 AND status = 'dead'")
        .bind(update_id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Why an update could not be stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the database did not store the update: {0}")]
    Database(String),
    #[error("storing the update took longer than {0:?}")]
    Timeout(Duration),
    #[error("the inbox writer has stopped")]
    Stopped,
}

struct Pending {
    update: NewUpdate,
    done: oneshot::Sender<Result<Stored, StoreError>>,
}

/// Group commit for intake: concurrent callers' updates share one transaction.
#[derive(Clone)]
pub struct InboxWriter {
    queue: mpsc::Sender<Pending>,
    timeout: Duration,
}

/// Most updates committed in one transaction.
const MAX_BATCH: usize = 512;

/// Batches in flight at once on PostgreSQL. While one commits, the next is collected and
/// stored alongside it, so an arrival waits for at most a commit already under way rather than
/// for it and the batch queued behind it (the ack latency of BENCHMARKS.md). Order within
/// a chat is unaffected: Telegram has one update of a chat in flight at a time. SQLite has
/// one writer, so one batch at a time there.
const POSTGRES_WRITERS: usize = 2;

impl InboxWriter {
    /// Starts the writer tasks; they run until every handle is dropped.
    pub fn spawn(db: Db, clock: SharedClock, timeout: Duration) -> InboxWriter {
        let (queue, rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        let writers = match &db {
            Db::Sqlite(_) => 1,
            Db::Postgres(_) => POSTGRES_WRITERS,
        };
        // One writer collects a batch while the others store theirs.
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            let (db, clock, rx) = (db.clone(), clock.clone(), rx.clone());
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                loop {
                    let received = rx.lock().await.recv_many(&mut batch, MAX_BATCH).await;
                    if received == 0 {
                        break;
                    }
                    let updates: Vec<NewUpdate> = batch.iter().map(|p| p.update.clone()).collect();
                    match store_batch(&db, &updates, clock.now()).await {
                        Ok(outcomes) => {
                            for (p, o) in batch.drain(..).zip(outcomes) {
                                let _ = p.done.send(Ok(o));
                            }
                        }
                        Err(e) => {
                            let msg = e.to_string();
                            for p in batch.drain(..) {
                                let _ = p.done.send(Err(StoreError::Database(msg.clone())));
                            }
                        }
                    }
                }
            });
        }
        InboxWriter { queue, timeout }
    }

    /// Stores one update durably, or says why not, within the writer's deadline.
    pub async fn store(&self, update: NewUpdate) -> Result<Stored, StoreError> {
        let (done, rx) = oneshot::channel();
        let work = async {
            self.queue
                .send(Pending { update, done })
                .await
                .map_err(|_| StoreError::Stopped)?;
            rx.await.map_err(|_| StoreError::Stopped)?
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }

    /// Stores a batch (the poller's `getUpdates` result) in one transaction.
    pub async fn store_all(&self, updates: Vec<NewUpdate>) -> Result<Vec<Stored>, StoreError> {
        let mut waits = Vec::with_capacity(updates.len());
        for update in updates {
            waits.push(self.store(update));
        }
        futures::future::join_all(waits).await.into_iter().collect()
    }
}
