//! The WAL is copied back into the database from a connection of its own, not by the writer.
//!
//! SQLite copies the WAL back into the database (a checkpoint, with its `fsync`) inside
//! whichever commit crosses `wal_autocheckpoint`; on the one shared connection every task
//! queued behind that commit waited for it, and a webhook's 200 with them. A task of the
//! [`SqliteDb`](super::SqliteDb) runs a `PASSIVE` checkpoint from a connection of its own
//! every [`CHECKPOINT_INTERVAL`] (it never waits for the writer), so the WAL stays short; the
//! writer's own threshold is raised to [`CHECKPOINT_BACKSTOP`] pages and only matters when
//! that task falls behind.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::Inner;

/// How often the checkpointer copies the WAL back into the database.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The WAL size, in pages, at which the shared connection checkpoints by itself (SQLite's
/// default is 1,000): only when the checkpointer falls behind.
pub const CHECKPOINT_BACKSTOP: u32 = 10_000;

/// Starts the checkpointer, unless it already runs: called when the writer connects.
pub(super) fn start_once(db: &Arc<Inner>) {
    if !db.checkpointing.swap(true, Ordering::AcqRel) {
        tokio::spawn(checkpoint_alongside(Arc::downgrade(db), db.options.clone()));
    }
}

/// Runs a `PASSIVE` checkpoint every [`CHECKPOINT_INTERVAL`] from a connection of its own
/// until the database is closed or dropped (see the module doc). A failure is logged and the
/// connection opened afresh next time; the shared connection's backstop keeps the WAL bounded
/// meanwhile.
async fn checkpoint_alongside(db: Weak<Inner>, options: SqliteConnectOptions) {
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
