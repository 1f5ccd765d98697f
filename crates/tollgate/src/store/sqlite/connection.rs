//! Taking the one writing connection, and handing it over to the next task.
//!
//! sqlx's pool of one connection queued tasks too, at a price paid on every checkout: the
//! release spawns a task and pings the connection's worker thread, two more round trips to
//! that thread between one task's work and the next while the connection sits idle —
//! measured as the bot's and the pipeline's limit (BENCHMARKS.md). Here a checkout is a fair
//! (FIFO) async lock around the connection: releasing it wakes the next task, nothing else.
//!
//! One lane jumps the queue: [`SqliteDb::acquire_ahead`], for intake's group commit. A
//! webhook's 200 waits for that commit, and Telegram waits for the 200; behind every handler
//! and sender task already queued, the ack's latency grew with the work in flight (the ack p99
//! of BENCHMARKS.md). Ordinary tasks pass a turnstile before they queue for the connection, so
//! at most one of them is ever waiting there: a task in the fast lane waits for the holder and
//! that one task, never for the whole queue, and ordinary tasks still get the connection in
//! arrival order between intake's commits.
//!
//! A transaction dropped while open leaves its rollback owed (see
//! [`SqliteTx`](super::SqliteTx)): whoever takes the connection next runs it before anything
//! else.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{AssertSqlSafe, ConnectOptions, Error, SqliteConnection};
use tokio::sync::OwnedMutexGuard;

use super::checkpoint::{self, CHECKPOINT_BACKSTOP};
use super::{Inner, SqliteDb};

impl SqliteDb {
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
        let mut slot = match tokio::time::timeout(self.inner.acquire_timeout, wait).await {
            Ok(slot) => slot,
            Err(_) => {
                // Debug builds: a wait for this task's own transaction panics instead.
                self.inner.tx_owner.check_not_held_here();
                return Err(Error::PoolTimedOut);
            }
        };
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
            checkpoint::start_once(&self.inner);
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
            let owed = RollbackOwed(&self.inner.rollback_owed);
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
}

#[derive(Clone, Copy)]
enum Lane {
    Queue,
    Ahead,
}

/// Sets the rollback flag again when dropped: a rollback that did not finish is still owed.
struct RollbackOwed<'a>(&'a AtomicBool);

impl Drop for RollbackOwed<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A connection (the writer or a reader) while one task holds it.
pub struct SqliteGuard {
    pub(super) slot: OwnedMutexGuard<Option<SqliteConnection>>,
    pub(super) db: Arc<Inner>,
}

impl SqliteGuard {
    /// Passes `e` on; a connection that failed in a way it cannot recover from (its thread
    /// gone, its file unreadable) is dropped so that the next task connects afresh.
    pub(super) fn after(mut self, e: Error) -> Error {
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
