//! The one SQLite writing connection, shared by the whole process without a pool, and the
//! read-only connections next to it.
//!
//! SQLite has one writer, so the service keeps one writing connection and queues every task's
//! work on it (see [`Db::connect_lazy`](super::Db::connect_lazy)). Every statement on it is a
//! round trip to the connection's thread and back, about 100 µs each on a loaded 2-core
//! machine, and those round trips are what limits the bot's purchases and the pipeline's
//! end-to-end rate (BENCHMARKS.md). Each part below saves some of them:
//!
//! - [`connection`]: taking the writer is a fair (FIFO) async lock, not a pool checkout, with
//!   a fast lane for intake's group commit;
//! - [`transaction`]: a transaction's `BEGIN` travels with its first statement, its `COMMIT`
//!   with its last, and writes whose outcome it does not read with its next statement
//!   ([`DeferredWrite`](super::DeferredWrite));
//! - [`readers`]: a lone `SELECT` outside a transaction runs on a `query_only` reader next to
//!   the writer, so it never waits for the writer;
//! - [`checkpoint`]: the WAL is copied back into the database by a connection of its own, not
//!   inside whichever commit crosses the threshold.
//!
//! What the pool gave and this keeps: the acquire timeout (`PoolTimedOut`), connecting
//! lazily (a missing database does not stop the process from starting), a fresh connection
//! after the old one broke, `PoolClosed` after [`SqliteDb::close`], and a transaction that is
//! dropped without a commit rolls back before the next task's statements run.
//!
//! The rule this layout imposes: never use the database while holding a transaction on it;
//! the writer would wait for itself until the acquire timeout. Debug builds (and so the tests)
//! then panic with a message naming the rule instead of returning `PoolTimedOut`
//! ([`self_wait`]); release builds do not check.

mod checkpoint;
mod connection;
mod readers;
mod self_wait;
mod transaction;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo,
};
use sqlx::{Connection, Either, Error, Execute, Executor, SqlStr, Sqlite, SqliteConnection};
use tokio::sync::Mutex;

pub use checkpoint::{CHECKPOINT_BACKSTOP, CHECKPOINT_INTERVAL};
pub use connection::SqliteGuard;
pub use readers::READERS;
pub use transaction::SqliteTx;

use transaction::Sent;

/// The process's SQLite database: one writing connection behind a FIFO lock, and its
/// readers. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: SqliteConnectOptions,
    acquire_timeout: Duration,
    /// The writer: `None` until the first use, and again after the connection broke.
    slot: Arc<Mutex<Option<SqliteConnection>>>,
    /// The read-only connections, each like `slot`; see [`readers`].
    readers: Vec<Arc<Mutex<Option<SqliteConnection>>>>,
    /// Where a read waits when every reader is busy: each in turn.
    next_reader: AtomicUsize,
    /// Held by the one ordinary task waiting for `slot`; see [`connection`].
    turnstile: Mutex<()>,
    /// A transaction was dropped while open: the next holder rolls it back first.
    rollback_owed: AtomicBool,
    connected: AtomicBool,
    closed: AtomicBool,
    /// The checkpointer task was started (with the first connection).
    checkpointing: AtomicBool,
    /// Who holds the writer's transaction, in debug builds; see [`self_wait`].
    tx_owner: self_wait::TxOwner,
}

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
                tx_owner: self_wait::TxOwner::new(),
            }),
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

    /// Copies the database into a new file `dest` with `VACUUM INTO`, from a connection of its
    /// own: the copy is one read transaction, so it holds every commit made before it started
    /// and none half, and in WAL mode it never waits for the writer nor makes it wait. `dest`
    /// must not exist.
    pub async fn copy_into(&self, dest: &std::path::Path) -> Result<(), Error> {
        use sqlx::ConnectOptions;
        let mut conn = self.inner.options.connect().await?;
        let dest = dest.to_string_lossy().into_owned();
        let result = sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        result.map(drop)
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
