//! A write transaction on the writer, and the statements that travel together in it.
//!
//! A transaction's `BEGIN IMMEDIATE` travels with its first statement, and
//! [`SqliteTx::commit_with`] sends a last statement and the `COMMIT` together: every
//! statement is a round trip to the connection's thread and back, and a purchase is seven
//! transactions (BENCHMARKS.md). Writes whose outcome the transaction does not read wait in it
//! and travel in front of its next statement ([`DeferredWrite`]). [`Sent`] builds the text that
//! carries them all.
//!
//! sqlx does not see these transactions (its own transaction depth stays 0), so rolling back
//! is ours: see [`SqliteTx`].

use std::sync::atomic::Ordering;

use futures::StreamExt;
use futures::future::{self, BoxFuture};
use futures::stream::{self, BoxStream};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArguments, SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo,
};
use sqlx::{
    Arguments, AssertSqlSafe, Either, Error, Execute, Executor, SqlSafeStr, SqlStr, Sqlite,
    SqliteConnection,
};

use super::SqliteDb;
use super::connection::SqliteGuard;
use super::self_wait::TxOwnerMark;
use crate::store::deferred::{self, DeferredWrite};

impl SqliteDb {
    /// A write transaction that begins with `statement` (`BEGIN IMMEDIATE`), sent with its
    /// first statement; dropping it without [`SqliteTx::commit`] rolls it back.
    pub async fn begin_with(&self, statement: &'static str) -> Result<SqliteTx, Error> {
        let conn = self.acquire().await?;
        Ok(SqliteTx {
            _owner: self.inner.tx_owner.mark(),
            conn: Some(conn),
            begin: statement,
            begun: false,
            deferred: Vec::new(),
        })
    }

    /// `query` as a write transaction of its own (`BEGIN IMMEDIATE`, the statement and
    /// `COMMIT` in one round trip to the connection's thread), its rows read as `T`: for a
    /// statement that reads and then writes, such as a claim.
    pub async fn write_rows<'q, T, E>(&self, query: E) -> Result<Vec<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow>,
        E: 'q + Execute<'q, Sqlite>,
    {
        let tx = self.begin_with("BEGIN IMMEDIATE").await?;
        let rows = tx.commit_with(query).await?;
        rows.iter().map(T::from_row).collect()
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
    /// Marks this task as the transaction's holder (debug builds; see `self_wait`). First, so
    /// that it is cleared before the connection is let go.
    _owner: TxOwnerMark,
    /// Taken out only by `finish`, which consumes the transaction.
    conn: Option<SqliteGuard>,
    begin: &'static str,
    /// A statement carrying the `BEGIN` was sent (or is on its way): the transaction may be
    /// open on the connection.
    begun: bool,
    /// Writes waiting for the next statement ([`DeferredWrite`]).
    pub(super) deferred: Vec<DeferredWrite>,
}

impl SqliteTx {
    pub async fn commit(mut self) -> Result<(), Error> {
        if !self.deferred.is_empty() {
            // The waiting writes and the `COMMIT`, in one round trip.
            return self.send_last(sqlx::query("COMMIT"), "").await.map(|_| ());
        }
        if !self.begun {
            return self.finish(Ok(()));
        }
        let r = sqlx::query("COMMIT").execute(self.connection()).await;
        self.finish(r.map(|_| ()))
    }

    /// Runs `query` (one or more statements), then commits, in one round trip to the
    /// connection's thread, and returns the rows `query` returned. When `query` fails, nothing
    /// is committed. A transaction whose only statement this is costs one round trip in all.
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
        let sent = match Sent::new(
            query,
            (!self.begun).then_some(self.begin),
            &self.deferred,
            end,
        ) {
            Ok(sent) => sent,
            Err(e) => return self.finish(Err(e)).map(|()| Vec::new()),
        };
        self.deferred.clear();
        self.begun = true;
        match self.connection().fetch_all(sent).await {
            Ok(rows) => self.finish(Ok(())).map(|()| rows),
            Err(e) => self.finish(Err(e)).map(|()| Vec::new()),
        }
    }

    /// Keeps `write` for the transaction's next statement (see [`DeferredWrite`]). A transaction
    /// that queues many (a job's loop) sends them every [`MOST_DEFERRED`], so that one text
    /// stays well inside SQLite's limits on its length and parameters.
    pub(in crate::store) async fn defer(&mut self, write: DeferredWrite) -> Result<(), Error> {
        self.deferred.push(write);
        if self.deferred.len() < MOST_DEFERRED {
            return Ok(());
        }
        let Some(last) = self.deferred.pop() else {
            return Ok(());
        };
        self.execute_now(last).await.map(drop)
    }

    /// Runs `write` now, with the writes waiting before it in front; the rows it changed.
    pub(in crate::store) async fn execute_now(
        &mut self,
        write: DeferredWrite,
    ) -> Result<u64, Error> {
        let mut args = SqliteArguments::default();
        for value in &write.values {
            value.add_to_sqlite(&mut args).map_err(Error::Encode)?;
        }
        let done = self.execute(sqlx::query_with(write.sql, args)).await?;
        Ok(done.rows_affected())
    }

    pub async fn rollback(mut self) -> Result<(), Error> {
        self.deferred.clear();
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
/// ([`DeferredWrite`]) after that, a `COMMIT` after it (its last) — and its arguments. `$N`
/// parameters are numbered across a multi-statement text: the query keeps its numbers, and
/// each waiting write's values are appended to the query's, its parameters renumbered to
/// match. `lead` counts the statements in front, whose results the caller does not see.
pub(super) struct Sent {
    pub(super) sql: SqlStr,
    pub(super) arguments: Option<SqliteArguments>,
    persistent: bool,
    pub(super) lead: usize,
}

impl Sent {
    pub(super) fn new<'q, E: Execute<'q, Sqlite>>(
        mut query: E,
        begin: Option<&str>,
        deferred: &[DeferredWrite],
        end: &str,
    ) -> Result<Sent, Error> {
        let mut arguments = query.take_arguments().map_err(Error::Encode)?;
        let persistent = query.persistent();
        let sql = query.sql();
        let lead = usize::from(begin.is_some()) + deferred.len();
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
        if !deferred.is_empty() {
            let args = arguments.get_or_insert_with(SqliteArguments::default);
            for write in deferred {
                text.push_str(&deferred::renumber(
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
pub(super) const MOST_DEFERRED: usize = 32;

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
        let sent = match Sent::new(
            query,
            (!self.begun).then_some(self.begin),
            &self.deferred,
            "",
        ) {
            Ok(sent) => sent,
            Err(e) => return Box::pin(stream::once(future::ready(Err(e)))),
        };
        let SqliteTx {
            conn,
            begun,
            deferred,
            ..
        } = self;
        // Marked when the statement is sent, with the waiting writes: on the stream's first
        // poll (a stream dropped unpolled sent nothing, and the writes still wait).
        let mark = stream::once(async move {
            *begun = true;
            deferred.clear();
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
        let sent = Sent::new(
            query,
            (!self.begun).then_some(self.begin),
            &self.deferred,
            "",
        );
        Box::pin(async move {
            let sent = sent?;
            self.deferred.clear();
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
