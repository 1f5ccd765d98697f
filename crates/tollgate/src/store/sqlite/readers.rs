//! Statements that only read run on `query_only` connections next to the writer.
//!
//! A `SELECT` run on the [`SqliteDb`] itself (not in a transaction) is sent to one of
//! [`READERS`] connections of its own, opened `query_only`: in WAL mode a reader sees every
//! transaction committed before it starts and never waits for the writer, so reads made
//! through the pool (a pre-checkout's checks, the access and connect screens) no longer queue
//! for the one connection that every write needs (BENCHMARKS.md, "Reads beside the writer": two readers next to the writer).
//! What a transaction reads stays in the transaction, on the writer. Until the writer has
//! connected (and so created the file), reads use it too.

use std::sync::atomic::Ordering;

use sqlx::{ConnectOptions, Error};

use super::SqliteDb;
use super::connection::SqliteGuard;
use super::transaction::Sent;

/// How many read-only connections run reads next to the writer: reads are short, and the
/// machines the service is sized for have two cores.
pub const READERS: usize = 2;

impl SqliteDb {
    /// A read-only connection for a statement that only reads: a free one, else the next in
    /// turn once it is free (at most the acquire timeout); the writer until it has connected.
    pub(super) async fn acquire_read(&self) -> Result<SqliteGuard, Error> {
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
    pub(super) async fn acquire_for(&self, sent: &Sent) -> Result<SqliteGuard, Error> {
        if reads_only(sent.sql.as_str()) {
            self.acquire_read().await
        } else {
            self.acquire().await
        }
    }
}

/// Whether `sql` is one `SELECT` (a trailing `;` allowed), which cannot write: such a
/// statement may run on a reader. Anything else, or a `;` inside (even in a string), stays on
/// the writer.
pub(super) fn reads_only(sql: &str) -> bool {
    let sql = sql.trim().trim_end_matches(';');
    sql.get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
        && !sql.contains(';')
}
