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
//! dropped without a commit rolls back before the next task's statements run (the rollback is
//! queued on the connection's thread ahead of them).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTransactionManager,
    SqliteTypeInfo,
};
use sqlx::{
    ConnectOptions, Connection, Either, Error, Execute, Executor, SqlSafeStr, SqlStr, Sqlite,
    SqliteConnection,
};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{Mutex, OwnedMutexGuard};

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
    connected: AtomicBool,
    closed: AtomicBool,
}

impl SqliteDb {
    /// Does not connect: the first use does.
    pub fn new(options: SqliteConnectOptions, acquire_timeout: Duration) -> SqliteDb {
        SqliteDb {
            inner: Arc::new(Inner {
                options,
                acquire_timeout,
                slot: Arc::new(Mutex::new(None)),
                connected: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The connection, once every task queued before this one is done with it (at most the
    /// acquire timeout), connecting first if needed.
    pub async fn acquire(&self) -> Result<SqliteGuard, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        let wait = self.inner.slot.clone().lock_owned();
        let mut slot = tokio::time::timeout(self.inner.acquire_timeout, wait)
            .await
            .map_err(|_| Error::PoolTimedOut)?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        if slot.is_none() {
            *slot = Some(self.inner.options.connect().await?);
            self.inner.connected.store(true, Ordering::Release);
        }
        Ok(SqliteGuard {
            slot,
            db: self.inner.clone(),
        })
    }

    /// A write transaction opened with `statement` (`BEGIN IMMEDIATE`); dropping it without
    /// [`SqliteTx::commit`] rolls it back.
    pub async fn begin_with(&self, statement: &'static str) -> Result<SqliteTx, Error> {
        let mut conn = self.acquire().await?;
        let begun =
            SqliteTransactionManager::begin(&mut conn, Some(statement.into_sql_str())).await;
        match begun {
            Ok(()) => Ok(SqliteTx {
                conn: Some(conn),
                open: true,
            }),
            Err(e) => Err(conn.after(e)),
        }
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
            self.db.connected.store(false, Ordering::Release);
        }
        e
    }

    fn check<T>(self, r: Result<T, Error>) -> Result<T, Error> {
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

/// An open transaction on the connection; the connection stays held until it ends.
#[derive(Debug)]
pub struct SqliteTx {
    /// Taken out only by `commit` and `rollback`, which consume the transaction.
    conn: Option<SqliteGuard>,
    open: bool,
}

impl SqliteTx {
    pub async fn commit(mut self) -> Result<(), Error> {
        let r = SqliteTransactionManager::commit(&mut self).await;
        self.finish(r)
    }

    pub async fn rollback(mut self) -> Result<(), Error> {
        let r = SqliteTransactionManager::rollback(&mut self).await;
        self.finish(r)
    }

    fn finish(mut self, r: Result<(), Error>) -> Result<(), Error> {
        self.open = false;
        match self.conn.take() {
            Some(conn) => conn.check(r),
            None => r,
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open
            && let Some(conn) = &mut self.conn
        {
            // Queued on the connection's thread ahead of whatever the next holder sends.
            SqliteTransactionManager::start_rollback(conn);
        }
    }
}

impl Deref for SqliteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Provably set: only `finish`, which consumes the transaction, takes it out.
        #[allow(clippy::expect_used)]
        self.conn
            .as_ref()
            .expect("an open transaction holds its connection")
    }
}

impl DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        #[allow(clippy::expect_used)]
        self.conn
            .as_mut()
            .expect("an open transaction holds its connection")
    }
}

/// Each call holds the connection for one statement (or one multi-statement query), as
/// `&SqlitePool` did. Streams are read to the end before the connection is let go: the
/// service's queries return bounded results.
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
            let mut conn = self.acquire().await?;
            let r = (&mut *conn).fetch_all(query).await;
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
            let mut conn = match self.acquire().await {
                Ok(c) => c,
                Err(e) => return vec![Err(e)],
            };
            let mut items: Vec<Result<_, Error>> = (&mut *conn).fetch_many(query).collect().await;
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
            let mut conn = self.acquire().await?;
            let r = (&mut *conn).fetch_optional(query).await;
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
    use sqlx::sqlite::SqliteJournalMode;

    fn db(dir: &tempfile::TempDir, timeout: Duration) -> SqliteDb {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        SqliteDb::new(options, timeout)
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

    #[tokio::test]
    async fn a_dropped_or_aborted_transaction_rolls_back_before_the_next_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir, Duration::from_secs(5));
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&db)
            .await
            .unwrap();
        let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        drop(tx);
        assert_eq!(count(&db).await, 0, "dropped: rolled back");

        // A task killed while its transaction is open.
        let (inserted, wait) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let db = db.clone();
            async move {
                let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
                sqlx::query("INSERT INTO t VALUES (2)")
                    .execute(&mut *tx)
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
            .execute(&mut *tx)
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

    #[tokio::test]
    async fn waiting_tasks_get_the_connection_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir, Duration::from_secs(5));
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&db)
            .await
            .unwrap();
        let first = db.acquire().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..5_i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                sqlx::query("INSERT INTO t VALUES ($1)")
                    .bind(i)
                    .execute(&db)
                    .await
                    .unwrap();
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
        let order: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY rowid")
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
}
