//! The one SQLite connection, shared by the whole process without a pool.
//!
//! SQLite has one writer, so the service keeps one connection and queues every task's work on
//! it (see [`Db::connect_lazy`](super::Db::connect_lazy)). sqlx's pool of one connection did
//! that, at a price paid on every checkout: the release spawns a task and pings the
//! connection's worker thread, two more thread hand-offs between one task's work and the next
//! while the connection sits idle — measured as the bot's and the pipeline's limit
//! (BENCHMARKS.md). Here a checkout is a fair (FIFO) async lock around the connection:
//! releasing it wakes the next task, nothing else.
//!
//! What the pool gave and this keeps: the acquire timeout (`PoolTimedOut`), connecting
//! lazily (a missing database does not stop the process from starting), a fresh connection
//! after the old one broke, `PoolClosed` after [`SqliteDb::close`], and a transaction that is
//! dropped without a commit rolls back before the next task's statements run.
//!
//! A transaction's `BEGIN IMMEDIATE` travels with its first statement, and
//! [`SqliteTx::commit_with`] sends a last statement and the `COMMIT` together: every statement
//! is a hand-off to the connection's thread and back, about 100 µs each on a loaded 2-core
//! machine, and a purchase is seven transactions (BENCHMARKS.md). sqlx does not see these
//! transactions (its own transaction depth stays 0), so rolling back is ours: see
//! [`SqliteTx`].
//!
//! Checkpoints run beside the connection, not on it. SQLite copies the WAL back into the
//! database (a checkpoint, with its `fsync`) inside whichever commit crosses
//! `wal_autocheckpoint`; on the one shared connection every task queued behind that commit
//! waited for it, and a webhook's 200 with them. A task of the [`SqliteDb`] runs a `PASSIVE`
//! checkpoint from a connection of its own every [`CHECKPOINT_INTERVAL`] (it never waits for
//! the writer), so the WAL stays short; the connection's own threshold is raised to
//! [`CHECKPOINT_BACKSTOP`] pages and only matters when that task falls behind.
//!
//! One lane jumps the queue: [`SqliteDb::acquire_ahead`], for intake's group commit. A
//! webhook's 200 waits for that commit, and Telegram waits for the 200; behind every handler
//! and sender task already queued, the ack's latency grew with the work in flight (the ack p99
//! of BENCHMARKS.md). Ordinary tasks pass a turnstile before they queue for the connection, so
//! at most one of them is ever waiting there: a task in the fast lane waits for the holder and
//! that one task, never for the whole queue, and ordinary tasks still get the connection in
//! arrival order between intake's commits.
//!
//! Statements that only read go beside the writer. A `SELECT` run on the [`SqliteDb`] itself
//! (not in a transaction) is sent to one of [`READERS`] connections of its own, opened
//! `query_only`: in WAL mode a reader sees every transaction committed before it starts and
//! never waits for the writer, so reads made through the pool (a pre-checkout's checks, the
//! access and connect screens) no longer queue for the one connection that every write needs
//! (BENCHMARKS.md, "Reads beside the writer"). What a transaction reads stays in the transaction, on the writer. Until the
//! writer has connected (and so created the file), reads use it too.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{self, BoxFuture};
use futures::stream::{self, BoxStream};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteQueryResult, SqliteRow, SqliteStatement,
    SqliteTypeInfo,
};
use sqlx::{
    Arguments, AssertSqlSafe, ConnectOptions, Connection, Either, Error, Execute, Executor,
    SqlSafeStr, SqlStr, Sqlite, SqliteConnection,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::later::{self, Later};

/// The process's SQLite database: one connection behind a FIFO lock. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: SqliteConnectOptions,
    acquire_timeout: Duration,
    /// `None` until the first use, and again after the connection broke.
    slot: Arc<Mutex<Option<SqliteConnection>>>,
    /// The read-only connections, each like `slot`; see the module's doc.
    readers: Vec<Arc<Mutex<Option<SqliteConnection>>>>,
    /// Where a read waits when every reader is busy: each in turn.
    next_reader: AtomicUsize,
    /// Held by the one ordinary task waiting for `slot`; see the module's doc.
    turnstile: Mutex<()>,
    /// A transaction was dropped while open: the next holder rolls it back first.
    rollback_owed: AtomicBool,
    connected: AtomicBool,
    closed: AtomicBool,
    /// The checkpointer task was started (with the first connection).
    checkpointing: AtomicBool,
}

/// How many read-only connections run reads beside the writer: reads are short, and the
/// machines the service is sized for have two cores.
pub const READERS: usize = 2;

/// How often the checkpointer copies the WAL back into the database.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The WAL size, in pages, at which the shared connection checkpoints by itself (SQLite's
/// default is 1,000): only when the checkpointer falls behind.
pub const CHECKPOINT_BACKSTOP: u32 = 10_000;

impl SqliteDb {
    /// Does not connect: the first use does.
    pub fn new(options: SqliteConnectOptions, acquire_timeout: Duration) -> SqliteDb {
        SqliteDb {
            inner: Arc::new(Inner {
                options,
                acquire_timeout,
                slot: Arc::new(Mutex::new(None)),
                readers: (0..READERS).map(|_| Arc::new(Mutex::new(None))).collect(),
                next_reader: AtomicUsize::new(0),
                turnstile: Mutex::new(()),
                rollback_owed: AtomicBool::new(false),
                connected: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                checkpointing: AtomicBool::new(false),
            }),
        }
    }

    /// The connection, once every task queued before this one is done with it (at most the
    /// acquire timeout), connecting first if needed.
    pub async fn acquire(&self) -> Result<SqliteGuard, Error> {
        self.acquire_in(Lane::Queue).await
    }

    /// The connection as soon as its holder and at most one queued ordinary task are done
    /// with it: for work whose caller is waiting on the other end of a request (intake).
    pub async fn acquire_ahead(&self) -> Result<SqliteGuard, Error> {
        self.acquire_in(Lane::Ahead).await
    }

    async fn acquire_in(&self, lane: Lane) -> Result<SqliteGuard, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        let wait = async {
            let _turn = match lane {
                Lane::Queue => Some(self.inner.turnstile.lock().await),
                Lane::Ahead => None,
            };
            self.inner.slot.clone().lock_owned().await
        };
        let mut slot = tokio::time::timeout(self.inner.acquire_timeout, wait)
            .await
            .map_err(|_| Error::PoolTimedOut)?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        if slot.is_none() {
            let mut conn = self.inner.options.connect().await?;
            let backstop = format!("PRAGMA wal_autocheckpoint = {CHECKPOINT_BACKSTOP}");
            sqlx::query(AssertSqlSafe(backstop))
                .execute(&mut conn)
                .await?;
            *slot = Some(conn);
            if !self.inner.checkpointing.swap(true, Ordering::AcqRel) {
                tokio::spawn(checkpoint_beside(
                    Arc::downgrade(&self.inner),
                    self.inner.options.clone(),
                ));
            }
            self.inner.connected.store(true, Ordering::Release);
            // A new connection has no transaction to roll back.
            self.inner.rollback_owed.store(false, Ordering::Release);
        }
        let mut conn = SqliteGuard {
            slot,
            db: self.inner.clone(),
        };
        if self.inner.rollback_owed.swap(false, Ordering::AcqRel) {
            // Owed again if this is cancelled before it is done.
            let owed = Owed(&self.inner.rollback_owed);
            let r = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            std::mem::forget(owed);
            match r {
                // "no transaction is active": the statement that would have begun it failed
                // or never ran, or its COMMIT went through after all.
                Ok(_) | Err(Error::Database(_)) => {}
                Err(e) => return Err(conn.after(e)),
            }
        }
        Ok(conn)
    }

    /// A read-only connection for a statement that only reads: a free one, else the next in
    /// turn once it is free (at most the acquire timeout); the writer until it has connected.
    async fn acquire_read(&self) -> Result<SqliteGuard, Error> {
        if !self.inner.connected.load(Ordering::Acquire) {
            return self.acquire().await;
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        let readers = &self.inner.readers;
        let free = readers.iter().find_map(|r| r.clone().try_lock_owned().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => {
                let turn = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
                let wait = readers[turn].clone().lock_owned();
                tokio::time::timeout(self.inner.acquire_timeout, wait)
                    .await
                    .map_err(|_| Error::PoolTimedOut)?
            }
        };
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        if slot.is_none() {
            let options = self.inner.options.clone().pragma("query_only", "ON");
            *slot = Some(options.connect().await?);
        }
        Ok(SqliteGuard {
            slot,
            db: self.inner.clone(),
        })
    }

    /// The connection for `sent` outside a transaction: a reader when it only reads.
    async fn acquire_for(&self, sent: &Sent) -> Result<SqliteGuard, Error> {
        if reads_only(sent.sql.as_str()) {
            self.acquire_read().await
        } else {
            self.acquire().await
        }
    }

    /// A write transaction that begins with `statement` (`BEGIN IMMEDIATE`), sent with its
    /// first statement; dropping it without [`SqliteTx::commit`] rolls it back.
    pub async fn begin_with(&self, statement: &'static str) -> Result<SqliteTx, Error> {
        Ok(SqliteTx {
            conn: Some(self.acquire().await?),
            begin: statement,
            begun: false,
            later: Vec::new(),
        })
    }

    /// `query` as a write transaction of its own (`BEGIN IMMEDIATE`, the statement and
    /// `COMMIT` in one hand-off), its rows read as `T`: for a statement that reads and then
    /// writes, such as a claim.
    pub async fn write_rows<'q, T, E>(&self, query: E) -> Result<Vec<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow>,
        E: 'q + Execute<'q, Sqlite>,
    {
        let tx = self.begin_with("BEGIN IMMEDIATE").await?;
        let rows = tx.commit_with(query).await?;
        rows.iter().map(T::from_row).collect()
    }

    /// 1 when the connection is open, else 0.
    pub fn size(&self) -> u32 {
        u32::from(self.inner.connected.load(Ordering::Acquire))
    }

    /// 1 when the connection is open and no task holds it, else 0.
    pub fn num_idle(&self) -> usize {
        usize::from(
            self.inner.connected.load(Ordering::Acquire) && self.inner.slot.try_lock().is_ok(),
        )
    }

    /// Closes the connection once the task holding it lets go; later uses get `PoolClosed`.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let conn = self.inner.slot.lock().await.take();
        self.inner.connected.store(false, Ordering::Release);
        if let Some(conn) = conn {
            let _ = conn.close().await;
        }
        for reader in &self.inner.readers {
            if let Some(conn) = reader.lock().await.take() {
                let _ = conn.close().await;
            }
        }
    }
}

/// Whether `sql` is one `SELECT` (a trailing `;` allowed), which cannot write: such a
/// statement may run on a reader. Anything else, or a `;` inside (even in a string), stays on
/// the writer.
fn reads_only(sql: &str) -> bool {
    let sql = sql.trim().trim_end_matches(';');
    sql.get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
        && !sql.contains(';')
}

/// Runs a `PASSIVE` checkpoint every [`CHECKPOINT_INTERVAL`] from a connection of its own
/// until the database is closed or dropped (see the module doc). A failure is logged and the
/// connection opened afresh next time; the shared connection's backstop keeps the WAL bounded
/// meanwhile.
async fn checkpoint_beside(db: Weak<Inner>, options: SqliteConnectOptions) {
    let mut conn: Option<SqliteConnection> = None;
    loop {
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        match db.upgrade() {
            Some(inner) if !inner.closed.load(Ordering::Acquire) => {}
            _ => break,
        }
        if conn.is_none() {
            match options.connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the checkpoint connection; the WAL grows until it can");
                    continue;
                }
            }
        }
        if let Some(c) = &mut conn
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut *c)
                .await
        {
            tracing::warn!(error = %e, "a WAL checkpoint failed; trying again");
            conn = None;
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

#[derive(Clone, Copy)]
enum Lane {
    Queue,
    Ahead,
}

/// Sets the rollback flag again when dropped: a rollback that did not finish is still owed.
struct Owed<'a>(&'a AtomicBool);

impl Drop for Owed<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The connection while one task holds it.
pub struct SqliteGuard {
    slot: OwnedMutexGuard<Option<SqliteConnection>>,
    db: Arc<Inner>,
}

impl SqliteGuard {
    /// Passes `e` on; a connection that failed in a way it cannot recover from (its thread
    /// gone, its file unreadable) is dropped so that the next task connects afresh.
    fn after(mut self, e: Error) -> Error {
        if matches!(e, Error::WorkerCrashed | Error::Io(_) | Error::Protocol(_)) {
            *self.slot = None;
            // Only the writer's loss makes reads fall back to it until it reconnects.
            if Arc::ptr_eq(OwnedMutexGuard::mutex(&self.slot), &self.db.slot) {
                self.db.connected.store(false, Ordering::Release);
            }
        }
        e
    }

    /// `r`, the outcome of a statement run on this connection, after [`SqliteGuard::after`]
    /// looked at its error.
    pub fn check<T>(self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|e| self.after(e))
    }
}

impl Deref for SqliteGuard {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Provably set: `acquire` fills the slot before handing out the guard, and only
        // `after`, which consumes the guard, empties it.
        #[allow(clippy::expect_used)]
        self.slot
            .as_ref()
            .expect("a guard always holds a connection")
    }
}

impl DerefMut for SqliteGuard {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        #[allow(clippy::expect_used)]
        self.slot
            .as_mut()
            .expect("a guard always holds a connection")
    }
}

impl std::fmt::Debug for SqliteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteGuard")
    }
}

/// A write transaction on the connection, which stays held until the transaction ends.
///
/// Nothing is sent when it starts: its `BEGIN` goes in front of its first statement, and a
/// transaction that ran no statement ends without a round trip. [`SqliteTx::commit_with`]
/// sends the last statement and `COMMIT` as one. Run statements with `&mut tx` as the
/// executor (`on_tx!` does).
///
/// Rolling back is ours, as sqlx does not know of the transaction: [`SqliteTx::rollback`]
/// sends `ROLLBACK`; a transaction dropped while open (an error returned early, a task
/// cancelled) leaves the rollback owed, which the connection's next holder runs before anything
/// else, and a task is spawned to be that holder at once, so that the write lock is not kept
/// for whoever comes next.
#[derive(Debug)]
pub struct SqliteTx {
    /// Taken out only by `finish`, which consumes the transaction.
    conn: Option<SqliteGuard>,
    begin: &'static str,
    /// A statement carrying the `BEGIN` was sent (or is on its way): the transaction may be
    /// open on the connection.
    begun: bool,
    /// Writes waiting for the next statement ([`Later`]).
    later: Vec<Later>,
}

impl SqliteTx {
    pub async fn commit(mut self) -> Result<(), Error> {
        if !self.later.is_empty() {
            // The waiting writes and the `COMMIT`, in one hand-off.
            return self.send_last(sqlx::query("COMMIT"), "").await.map(|_| ());
        }
        if !self.begun {
            return self.finish(Ok(()));
        }
        let r = sqlx::query("COMMIT").execute(self.connection()).await;
        self.finish(r.map(|_| ()))
    }

    /// Runs `query` (one or more statements), then commits, in one hand-off to the
    /// connection's thread, and returns the rows `query` returned. When `query` fails, nothing
    /// is committed. A transaction whose only statement this is costs one hand-off in all.
    pub async fn commit_with<'q, E>(self, query: E) -> Result<Vec<SqliteRow>, Error>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        self.send_last(query, ";\nCOMMIT").await
    }

    /// Sends `query` followed by `end` (which commits), with the `BEGIN` and the waiting
    /// writes in front when they are owed.
    async fn send_last<'q, E>(mut self, query: E, end: &str) -> Result<Vec<SqliteRow>, Error>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        let sent = match Sent::new(query, (!self.begun).then_some(self.begin), &self.later, end) {
            Ok(sent) => sent,
            Err(e) => return self.finish(Err(e)).map(|()| Vec::new()),
        };
        self.later.clear();
        self.begun = true;
        match self.connection().fetch_all(sent).await {
            Ok(rows) => self.finish(Ok(())).map(|()| rows),
            Err(e) => self.finish(Err(e)).map(|()| Vec::new()),
        }
    }

    /// Keeps `write` for the transaction's next statement (see [`Later`]). A transaction
    /// that queues many (a job's loop) sends them every [`MOST_LATER`], so that one text
    /// stays well inside SQLite's limits on its length and parameters.
    pub(super) async fn defer(&mut self, write: Later) -> Result<(), Error> {
        self.later.push(write);
        if self.later.len() < MOST_LATER {
            return Ok(());
        }
        let Some(last) = self.later.pop() else {
            return Ok(());
        };
        self.execute_now(last).await.map(drop)
    }

    /// Runs `write` now, with the writes waiting before it in front; the rows it changed.
    pub(super) async fn execute_now(&mut self, write: Later) -> Result<u64, Error> {
        let mut args = SqliteArguments::default();
        for value in &write.values {
            value.add_to_sqlite(&mut args).map_err(Error::Encode)?;
        }
        let done = self.execute(sqlx::query_with(write.sql, args)).await?;
        Ok(done.rows_affected())
    }

    pub async fn rollback(mut self) -> Result<(), Error> {
        self.later.clear();
        if !self.begun {
            return self.finish(Ok(()));
        }
        let r = match sqlx::query("ROLLBACK").execute(self.connection()).await {
            // The statement that would have begun it failed or never ran.
            Err(Error::Database(_)) => Ok(()),
            r => r.map(|_| ()),
        };
        self.finish(r)
    }

    fn connection(&mut self) -> &mut SqliteConnection {
        // Provably set: only `finish`, which consumes the transaction, takes it out.
        #[allow(clippy::expect_used)]
        self.conn
            .as_mut()
            .expect("an open transaction holds its connection")
    }

    /// Lets the connection go after a commit or rollback that ended as `r`; when that failed,
    /// the transaction may still be open, and its rollback is owed.
    fn finish(mut self, r: Result<(), Error>) -> Result<(), Error> {
        if r.is_ok() {
            self.begun = false;
        }
        self.release();
        match self.conn.take() {
            Some(conn) => conn.check(r),
            None => r,
        }
    }

    /// Owes the rollback of a transaction that may be open, and spawns its next holder.
    fn release(&mut self) {
        let Some(conn) = &self.conn else { return };
        if !self.begun {
            return;
        }
        self.begun = false;
        conn.db.rollback_owed.store(true, Ordering::Release);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let db = SqliteDb {
                inner: conn.db.clone(),
            };
            runtime.spawn(async move {
                // Taking the connection runs the rollback; a failure is the next holder's.
                let _ = db.acquire().await;
            });
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        self.release();
    }
}

/// A query as it is sent in a transaction: its text with what travels with it — the
/// transaction's `BEGIN` in front (its first statement), the writes waiting for it
/// ([`Later`]) after that, a `COMMIT` after it (its last) — and its arguments. `$N`
/// parameters are numbered across a multi-statement text: the query keeps its numbers, and
/// each waiting write's values are appended to the query's, its parameters renumbered to
/// match. `lead` counts the statements in front, whose results the caller does not see.
struct Sent {
    sql: SqlStr,
    arguments: Option<SqliteArguments>,
    persistent: bool,
    lead: usize,
}

impl Sent {
    fn new<'q, E: Execute<'q, Sqlite>>(
        mut query: E,
        begin: Option<&str>,
        later: &[Later],
        end: &str,
    ) -> Result<Sent, Error> {
        let mut arguments = query.take_arguments().map_err(Error::Encode)?;
        let persistent = query.persistent();
        let sql = query.sql();
        let lead = usize::from(begin.is_some()) + later.len();
        if lead == 0 && end.is_empty() {
            return Ok(Sent {
                sql,
                arguments,
                persistent,
                lead,
            });
        }
        let mut text = String::new();
        if let Some(begin) = begin {
            text.push_str(begin);
            text.push_str(";\n");
        }
        if !later.is_empty() {
            let args = arguments.get_or_insert_with(SqliteArguments::default);
            for write in later {
                text.push_str(&later::renumber(
                    write.sql.trim_end_matches([';', ' ', '\n']),
                    args.len(),
                ));
                text.push_str(";\n");
                for value in &write.values {
                    value.add_to_sqlite(args).map_err(Error::Encode)?;
                }
            }
        }
        text.push_str(sql.as_str());
        text.push_str(end);
        Ok(Sent {
            sql: AssertSqlSafe(text).into_sql_str(),
            arguments,
            persistent,
            lead,
        })
    }
}

impl<'q> Execute<'q, Sqlite> for Sent {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&SqliteStatement> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<SqliteArguments>, BoxDynError> {
        Ok(self.arguments.take())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Most writes that wait for a transaction's next statement.
const MOST_LATER: usize = 32;

/// Statements in the transaction. The first carries the `BEGIN`, whose own result is left out
/// of what the caller sees (its "rows affected" would be the previous statement's).
impl<'c> Executor<'c> for &'c mut SqliteTx {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let sent = match Sent::new(query, (!self.begun).then_some(self.begin), &self.later, "") {
            Ok(sent) => sent,
            Err(e) => return Box::pin(stream::once(future::ready(Err(e)))),
        };
        let SqliteTx {
            conn, begun, later, ..
        } = self;
        // Marked when the statement is sent, with the waiting writes: on the stream's first
        // poll (a stream dropped unpolled sent nothing, and the writes still wait).
        let mark = stream::once(async move {
            *begun = true;
            later.clear();
            None::<Result<Either<SqliteQueryResult, SqliteRow>, Error>>
        })
        .filter_map(future::ready);
        #[allow(clippy::expect_used)]
        let conn: &'c mut SqliteConnection = conn
            .as_mut()
            .expect("an open transaction holds its connection");
        // The statements in front end with a result each (they return no rows).
        let mut lead = sent.lead;
        let results = conn.fetch_many(sent).filter(move |item| {
            let in_front = lead > 0 && matches!(item, Ok(Either::Left(_)));
            if in_front {
                lead -= 1;
            }
            future::ready(!in_front)
        });
        Box::pin(mark.chain(results))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let sent = Sent::new(query, (!self.begun).then_some(self.begin), &self.later, "");
        Box::pin(async move {
            let sent = sent?;
            self.later.clear();
            self.begun = true;
            self.connection().fetch_optional(sent).await
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, Error>>
    where
        'c: 'e,
    {
        self.connection().prepare_with(sql, parameters)
    }
}

/// Each call holds the connection for one statement (or one multi-statement query), as
/// `&SqlitePool` did: a reader for a `SELECT` that is fetched, else the writer. Streams are
/// read to the end before the connection is let go: the service's queries return bounded
/// results.
impl<'c> Executor<'c> for &'c SqliteDb {
    type Database = Sqlite;

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<SqliteQueryResult, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        Box::pin(async move {
            let mut conn = self.acquire().await?;
            let r = (&mut *conn).execute(query).await;
            conn.check(r)
        })
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<SqliteRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        Box::pin(async move {
            let sent = Sent::new(query, None, &[], "")?;
            let mut conn = self.acquire_for(&sent).await?;
            let r = (&mut *conn).fetch_all(sent).await;
            conn.check(r)
        })
    }

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let all = async move {
            let sent = match Sent::new(query, None, &[], "") {
                Ok(sent) => sent,
                Err(e) => return vec![Err(e)],
            };
            let mut conn = match self.acquire_for(&sent).await {
                Ok(c) => c,
                Err(e) => return vec![Err(e)],
            };
            let mut items: Vec<Result<_, Error>> = (&mut *conn).fetch_many(sent).collect().await;
            if let Some(Err(e)) = items.pop_if(|last| last.is_err()) {
                items.push(Err(conn.after(e)));
            }
            items
        };
        Box::pin(stream::once(all).flat_map(stream::iter))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        Box::pin(async move {
            let sent = Sent::new(query, None, &[], "")?;
            let mut conn = self.acquire_for(&sent).await?;
            let r = (&mut *conn).fetch_optional(sent).await;
            conn.check(r)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            let mut conn = self.acquire().await?;
            let r = (&mut *conn).prepare_with(sql, parameters).await;
            conn.check(r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Tx;
    use sqlx::sqlite::SqliteJournalMode;

    fn db(dir: &tempfile::TempDir, timeout: Duration) -> SqliteDb {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        SqliteDb::new(options, timeout)
    }

    /// A second, independent connection to the same file.
    async fn another(dir: &tempfile::TempDir) -> tokio::sync::Mutex<SqliteConnection> {
        let conn = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .connect()
            .await
            .unwrap();
        tokio::sync::Mutex::new(conn)
    }

    async fn sum(conn: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar("SELECT COALESCE(SUM(x), 0) FROM t")
            .fetch_one(conn)
            .await
            .unwrap()
    }

    /// A database in `dir` with an empty table `t (x INTEGER)`.
    async fn with_table(dir: &tempfile::TempDir) -> SqliteDb {
        let db = db(dir, Duration::from_secs(5));
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&db)
            .await
            .unwrap();
        db
    }

    async fn count(db: &SqliteDb) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(db)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn connects_on_first_use_and_runs_statements() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir, Duration::from_secs(5));
        assert_eq!((db.size(), db.num_idle()), (0, 0), "nothing opened yet");
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&db)
            .await
            .unwrap();
        let rows = sqlx::query("INSERT INTO t VALUES (1), (2) RETURNING x")
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(count(&db).await, 2);
        assert_eq!((db.size(), db.num_idle()), (1, 1));
    }

    /// A transaction that writes row 1 of `t` and is dropped without commit or rollback.
    async fn write_then_drop(db: &SqliteDb) {
        let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut tx)
            .await
            .unwrap();
        drop(tx);
    }

    #[tokio::test]
    async fn a_dropped_or_aborted_transaction_rolls_back_before_the_next_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_table(&dir).await;
        write_then_drop(&db).await;
        assert_eq!(count(&db).await, 0, "dropped: rolled back");

        // A task killed while its transaction is open.
        let (inserted, wait) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let db = db.clone();
            async move {
                let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
                sqlx::query("INSERT INTO t VALUES (2)")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                let _ = inserted.send(());
                std::future::pending::<()>().await;
            }
        });
        wait.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(count(&db).await, 0, "aborted: rolled back");

        let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            count(&db).await,
            1,
            "the next transaction works and commits"
        );
    }

    #[tokio::test]
    async fn a_transactions_begin_and_commit_travel_with_its_statements() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_table(&dir).await;
        sqlx::query("INSERT INTO t VALUES (1), (2), (3)")
            .execute(&db)
            .await
            .unwrap();
        // A transaction with no statement sends nothing and leaves nothing open.
        db.begin_with("BEGIN IMMEDIATE")
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        // The first statement carries the BEGIN; what it reports is its own (BEGIN's "rows
        // affected" would be the 3 of the insert above).
        let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let r = sqlx::query("UPDATE t SET x = 10 WHERE x = 1")
            .execute(&mut tx)
            .await
            .unwrap();
        assert_eq!(r.rows_affected(), 1);
        let x: i64 = sqlx::query_scalar("SELECT x FROM t WHERE x = 10")
            .fetch_one(&mut tx)
            .await
            .unwrap();
        assert_eq!(x, 10, "the transaction sees its own write");
        let other = another(&dir).await;
        assert_eq!(
            sum(&mut *other.lock().await).await,
            6,
            "not visible outside before the commit"
        );
        let rows = tx
            .commit_with(sqlx::query("UPDATE t SET x = 20 WHERE x = 2 RETURNING x"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "commit_with returns its statement's rows");
        assert_eq!(sum(&mut *other.lock().await).await, 33, "both committed");
        // A transaction whose only statement is sent with its BEGIN and COMMIT.
        let rows = db
            .begin_with("BEGIN IMMEDIATE")
            .await
            .unwrap()
            .commit_with(sqlx::query("UPDATE t SET x = x + 1 RETURNING x"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(sum(&mut *other.lock().await).await, 36);
        // A failing last statement commits nothing, and the connection goes on.
        let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t VALUES (100)")
            .execute(&mut tx)
            .await
            .unwrap();
        let e = tx
            .commit_with(sqlx::query("INSERT INTO missing VALUES (1)"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no such table"), "{e}");
        assert_eq!(count(&db).await, 3, "nothing of it committed");
        assert_eq!(sum(&mut *other.lock().await).await, 36);
    }

    #[tokio::test]
    async fn an_abandoned_transaction_lets_other_connections_write_without_waiting_for_ours() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_table(&dir).await;
        write_then_drop(&db).await;
        // Nothing uses `db` from here on: the rollback must still happen, or the other
        // connection's write would wait for the write lock and time out.
        let other = another(&dir).await;
        let mut other = other.lock().await;
        sqlx::query("PRAGMA busy_timeout = 5000")
            .execute(&mut *other)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *other)
            .await
            .unwrap();
        assert_eq!(sum(&mut other).await, 2, "ours rolled back, theirs written");
    }

    #[tokio::test]
    async fn the_wal_is_copied_back_beside_the_connection_not_by_its_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir, Duration::from_secs(5));
        let threshold: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(threshold, i64::from(CHECKPOINT_BACKSTOP));
        sqlx::query("CREATE TABLE b (x BLOB)")
            .execute(&db)
            .await
            .unwrap();
        // About 2,000 pages: past SQLite's default threshold, short of the backstop, so only
        // the checkpointer copies them into the database file.
        for _ in 0..20 {
            let tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
            tx.commit_with(sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
                 INSERT INTO b SELECT randomblob(4000) FROM n",
            ))
            .await
            .unwrap();
        }
        let file = dir.path().join("t.db");
        let mut size = 0;
        for _ in 0..100 {
            size = std::fs::metadata(&file).unwrap().len();
            if size >= 8_000_000 {
                break;
            }
            tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        }
        assert!(
            size >= 8_000_000,
            "the database file holds {size} bytes after 10 s"
        );
    }

    #[tokio::test]
    async fn a_held_connection_makes_others_time_out_and_close_refuses_new_work() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir, Duration::from_millis(200));
        let held = db.acquire().await.unwrap();
        assert_eq!(db.num_idle(), 0);
        let e = db.acquire().await.unwrap_err();
        assert!(matches!(e, Error::PoolTimedOut), "{e}");
        drop(held);
        assert!(db.acquire().await.is_ok(), "free again once let go");
        db.close().await;
        let e = sqlx::query("SELECT 1").execute(&db).await.unwrap_err();
        assert!(matches!(e, Error::PoolClosed), "{e}");
    }

    /// Queues an insert of each `(x, ahead)` into `t` — in the fast lane when `ahead` — in
    /// that order while the connection is held, lets it go, and returns the order the inserts
    /// got the connection in.
    async fn order_of_turns(db: &SqliteDb, inserts: &[(i64, bool)]) -> Vec<i64> {
        let first = db.acquire().await.unwrap();
        let mut tasks = Vec::new();
        for &(x, ahead) in inserts {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = if ahead {
                    db.acquire_ahead().await.unwrap()
                } else {
                    db.acquire().await.unwrap()
                };
                let r = sqlx::query("INSERT INTO t VALUES ($1)")
                    .bind(x)
                    .execute(&mut *conn)
                    .await;
                conn.check(r).unwrap();
            }));
            // On this single-threaded runtime, yielding lets the new task run until it
            // waits on the lock, before the next one is spawned.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        sqlx::query_scalar("SELECT x FROM t ORDER BY rowid")
            .fetch_all(db)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn waiting_tasks_get_the_connection_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_table(&dir).await;
        let inserts: Vec<(i64, bool)> = (0..5).map(|x| (x, false)).collect();
        assert_eq!(order_of_turns(&db, &inserts).await, [0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn the_fast_lane_waits_for_the_holder_and_one_queued_task_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_table(&dir).await;
        let inserts = [(0, false), (1, false), (2, false), (100, true), (3, false)];
        assert_eq!(
            order_of_turns(&db, &inserts).await,
            [0, 100, 1, 2, 3],
            "the fast lane passes every ordinary task but the one already at the connection"
        );
    }

    #[test]
    fn only_a_lone_select_counts_as_reading_only() {
        assert!(reads_only("SELECT x FROM t WHERE x = $1"));
        assert!(reads_only("  select count(*) from t;\n"));
        assert!(!reads_only("INSERT INTO t VALUES (1) RETURNING x"));
        assert!(!reads_only("UPDATE t SET x = 2 RETURNING x"));
        assert!(!reads_only(
            "WITH d AS (DELETE FROM t RETURNING x) SELECT * FROM d"
        ));
        assert!(!reads_only("SELECT 1; DELETE FROM t"));
        assert!(!reads_only("PRAGMA wal_checkpoint(PASSIVE)"));
        assert!(!reads_only("SELEC"));
    }

    #[tokio::test]
    async fn a_select_reads_beside_an_open_transaction_and_sees_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir, Duration::from_millis(300));
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&db)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&db)
            .await
            .unwrap();
        let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut tx)
            .await
            .unwrap();
        // The writer is held by `tx`: on it, these would time out.
        assert_eq!(sum(&mut db.acquire_read().await.unwrap()).await, 1);
        let (a, b) = tokio::join!(count(&db), count(&db));
        assert_eq!(
            (a, b),
            (1, 1),
            "two reads at once, neither waiting for the writer"
        );
        let e = sqlx::query("SELECT COUNT(*) FROM t")
            .execute(&db)
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::PoolTimedOut),
            "a statement executed goes to the writer: {e}"
        );
        tx.commit().await.unwrap();
        assert_eq!(count(&db).await, 2, "a read after the commit sees it");
        let e = sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *db.acquire_read().await.unwrap())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("readonly"),
            "a reader cannot write: {e}"
        );
        db.close().await;
        let e = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t")
            .fetch_one(&db)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::PoolClosed), "{e}");
    }

    /// The SQLite transaction inside `tx`.
    fn on_sqlite(tx: &mut Tx) -> &mut SqliteTx {
        match tx {
            Tx::Sqlite(t) => t,
            Tx::Postgres(_) => unreachable!("a SQLite database begins SQLite transactions"),
        }
    }

    fn later_insert(x: i64) -> Later {
        Later::new("INSERT INTO t VALUES ($1)").bind(x)
    }

    #[test]
    fn a_waiting_write_travels_after_the_begin_with_its_parameters_renumbered() {
        let query = sqlx::query("UPDATE t SET x = $1 WHERE x = $2")
            .bind(5_i64)
            .bind(6_i64);
        let later = [
            later_insert(7),
            Later::new("DELETE FROM t WHERE x = $1;").bind(8_i64),
        ];
        let sent = Sent::new(query, Some("BEGIN IMMEDIATE"), &later, ";\nCOMMIT").unwrap();
        assert_eq!(
            sent.sql.as_str(),
            "BEGIN IMMEDIATE;\nINSERT INTO t VALUES ($3);\nDELETE FROM t WHERE x = $4;\n\
             UPDATE t SET x = $1 WHERE x = $2;\nCOMMIT"
        );
        assert_eq!(sent.arguments.map(|a| a.len()), Some(4));
        assert_eq!(sent.lead, 3, "the BEGIN and two writes go in front");
    }

    #[tokio::test]
    async fn waiting_writes_run_in_order_before_the_next_statement_and_commit_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_table(&dir).await;
        let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
        tx.later(later_insert(1)).await.unwrap();
        tx.later(later_insert(2)).await.unwrap();
        let t = on_sqlite(&mut tx);
        assert_eq!(
            t.later.len(),
            2,
            "nothing is sent before the next statement"
        );
        // The next statement sees both rows and reports only its own effect and rows.
        let changed = sqlx::query("UPDATE t SET x = x + 10 WHERE x = 1")
            .execute(&mut *t)
            .await
            .unwrap();
        assert_eq!(changed.rows_affected(), 1);
        tx.later(later_insert(3)).await.unwrap();
        let t = on_sqlite(&mut tx);
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&mut *t)
            .await
            .unwrap();
        assert_eq!(rows, vec![2, 3, 11]);
        tx.later(later_insert(4)).await.unwrap();
        let t = on_sqlite(&mut tx);
        // A statement dropped before it was sent takes nothing with it.
        drop((&mut *t).fetch_many(sqlx::query("SELECT 1")));
        assert_eq!(t.later.len(), 1, "the write still waits");
        let first: Option<i64> = sqlx::query_scalar("SELECT MAX(x) FROM t")
            .fetch_optional(&mut *t)
            .await
            .unwrap();
        assert_eq!(first, Some(11));
        // A write left waiting at the end commits with the COMMIT.
        tx.later(later_insert(5)).await.unwrap();
        assert_eq!(count(&db).await, 0, "nothing is visible before the commit");
        tx.commit().await.unwrap();
        assert_eq!(count(&db).await, 5);

        // A transaction of waiting writes only, more than travel in one text.
        let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
        for x in 0..(3 * MOST_LATER as i64 + 1) {
            tx.later(later_insert(100 + x)).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(count(&db).await, 5 + 3 * MOST_LATER as i64 + 1);

        // Rolled back, waiting writes are dropped.
        let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
        tx.later(later_insert(9)).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&db).await, 5 + 3 * MOST_LATER as i64 + 1);
    }

    #[tokio::test]
    async fn a_failing_waiting_write_fails_the_statement_it_travels_with_and_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_table(&dir).await;
        let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
        let t = on_sqlite(&mut tx);
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *t)
            .await
            .unwrap();
        tx.later(Later::new("INSERT INTO missing VALUES ($1)").bind(2_i64))
            .await
            .unwrap();
        let e = tx.commit().await.unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        assert_eq!(
            count(&db).await,
            0,
            "the transaction's insert is rolled back"
        );

        // The same through the next statement: it fails, and it did not run.
        let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
        tx.later(Later::new("INSERT INTO missing VALUES ($1)").bind(2_i64))
            .await
            .unwrap();
        let t = on_sqlite(&mut tx);
        let e = sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *t)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        drop(tx);
        sqlx::query("INSERT INTO t VALUES (4)")
            .execute(&db)
            .await
            .unwrap();
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t")
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(rows, vec![4], "the dropped transaction was rolled back");
    }
}
