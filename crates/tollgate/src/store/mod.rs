//! Storage: one business-logic API over SQLite and PostgreSQL.
//!
//! sqlx's `Any` driver cannot carry UUIDs, JSON or timestamps (see
//! docs/design.md §6), so the two backends are typed behind [`Db`] (SQLite's one
//! shared writing connection with its readers, [`sqlite::SqliteDb`], and a PostgreSQL pool),
//! and the
//! macros [`on_db!`](crate::on_db) / [`on_tx!`](crate::on_tx) run one SQL text (`$N`
//! placeholders, `RETURNING`, `ON CONFLICT`) on either. The few real differences — how a
//! write transaction starts, row claiming with `SKIP LOCKED`, DDL — live in this module and
//! in [`migrate`], nowhere else.
//!
//! Every connection acquire is bounded by the acquire timeout, and PostgreSQL
//! sessions carry a server-side `statement_timeout` (docs/reliability.md A3, C4).
//!
//! One rule the types do not carry: never use the [`Db`] while holding a [`Tx`] from it. On
//! SQLite the transaction holds the one writing connection, so the task would wait for itself
//! until the acquire timeout; run the statement in the transaction, or read before it begins.
//! Debug builds, and so every test, panic with a message naming this rule when a task that
//! holds a SQLite transaction has waited for the writer until the acquire timeout, that is for
//! itself (`store/sqlite/self_wait.rs`); release builds do not check.

pub mod deferred;
pub mod migrate;
pub mod sqlite;
pub mod statistics;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Transaction};

pub use deferred::DeferredWrite;
pub use sqlite::{SqliteDb, SqliteTx};

use crate::config::{DatabaseSettings, DatabaseUrl};

/// SQLite waits this long for the single writer lock before reporting "database is locked".
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Either backend: SQLite's one shared writing connection (with its readers) or a PostgreSQL
/// pool. Cloning is cheap.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// An open transaction of either backend. Dropping it without [`Tx::commit`] rolls back.
#[derive(Debug)]
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`.
///
/// The body is compiled once per backend, so binds and decodes are type-checked for both.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's executor (`&mut SqliteTx`, or
/// `&mut PgConnection`).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $conn = &mut *t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// Which backend; for the few statements that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl Db {
    /// Builds the pool without connecting: a database that is down at boot must not stop the
    /// process from starting (docs/reliability.md A9); the first query reports it instead.
    pub fn connect_lazy(settings: &DatabaseSettings) -> Result<Db, sqlx::Error> {
        match &settings.url {
            DatabaseUrl::Sqlite { path } => {
                ensure_parent_dir(path)?;
                let options = sqlite_options(path);
                // SQLite has one writer. Contending connections wait in SQLite's busy
                // handler (sleeps of up to 100 ms each) and starve under load; one
                // connection makes every statement queue fairly in the process instead.
                // Consequence: never use the database while holding a `Tx` on it (debug
                // builds panic when a task waits for itself, see the module's doc). Not a pool
                // of one: see `store::sqlite` for what that cost.
                Ok(Db::Sqlite(SqliteDb::new(options, settings.acquire_timeout)))
            }
            DatabaseUrl::Postgres { url } => {
                let options = postgres_options(url.expose(), settings.statement_timeout)?;
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .min_connections(0)
                    .acquire_timeout(settings.acquire_timeout)
                    // No ping per acquire (it doubles every round trip): a connection broken by
                    // a network cut fails its next statement, is discarded, and the caller's
                    // retry gets a fresh one.
                    .test_before_acquire(false)
                    .idle_timeout(Some(Duration::from_secs(300)))
                    .connect_lazy_with(options);
                Ok(Db::Postgres(pool))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a transaction that may write.
    ///
    /// SQLite takes the write lock up front (`BEGIN IMMEDIATE`, sent with the transaction's
    /// first statement, see [`SqliteTx`]): a deferred transaction that reads, then writes,
    /// fails with `SQLITE_BUSY` under concurrency instead of waiting.
    ///
    /// Safe to cancel at any point (a handler cut at its deadline, a job past its hard
    /// deadline, a shutdown): no transaction is left open on the connection. On PostgreSQL
    /// sqlx counts a transaction only once BEGIN's reply is read; a caller cancelled while
    /// waiting for it would hand the connection back to the pool inside a transaction nobody
    /// owns, and every later statement on that connection would run in it, holding its locks
    /// and never committed. So the begin runs to its end on a task of its own: when the caller
    /// is gone by then, the transaction is dropped there and rolls back. (On SQLite a
    /// transaction cancelled at any point leaves its rollback owed, run before anything else.)
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => {
                let pool = p.clone();
                match tokio::spawn(async move { pool.begin().await }).await {
                    Ok(begun) => Tx::Postgres(begun?),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Only when the runtime is shutting down.
                    Err(e) => return Err(sqlx::Error::Io(std::io::Error::other(e))),
                }
            }
        })
    }

    /// A trivial round trip, used by readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Connections currently open and idle, for metrics.
    pub fn pool_state(&self) -> (u32, usize) {
        on_db!(self, p => (p.size(), p.num_idle()))
    }

    pub fn max_connections(&self) -> u32 {
        match self {
            Db::Sqlite(_) => 1,
            Db::Postgres(p) => p.options().get_max_connections(),
        }
    }

    /// How many tasks may work on the database at once: the pool size on PostgreSQL, the
    /// configured budget on SQLite (whose single connection queues their statements).
    pub fn concurrency_budget(&self, settings: &DatabaseSettings) -> u32 {
        match self {
            Db::Sqlite(_) => settings.max_connections,
            Db::Postgres(p) => p.options().get_max_connections(),
        }
    }

    /// Claims rows of a work queue with one statement per backend that follows the queues'
    /// claim convention (`$1` now, `$2` limit, `$3` worker, `$4` claimed until) and returns
    /// the claimed rows. On SQLite the statement reads then writes, so it is its own
    /// `BEGIN IMMEDIATE` transaction, sent with its `COMMIT` in one round trip
    /// ([`SqliteDb::write_rows`]); on PostgreSQL it is one statement (`FOR UPDATE SKIP
    /// LOCKED` inside).
    pub async fn claim<T>(
        &self,
        sqlite: &'static str,
        postgres: &'static str,
        now: crate::time::Timestamp,
        limit: i64,
        worker: &str,
        until: crate::time::Timestamp,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        match self {
            Db::Sqlite(p) => {
                p.write_rows(
                    sqlx::query(sqlite)
                        .bind(now)
                        .bind(limit)
                        .bind(worker)
                        .bind(until),
                )
                .await
            }
            Db::Postgres(p) => {
                sqlx::query_as(postgres)
                    .bind(now)
                    .bind(limit)
                    .bind(worker)
                    .bind(until)
                    .fetch_all(p)
                    .await
            }
        }
    }

    pub async fn close(&self) {
        on_db!(self, p => p.close().await)
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.rollback().await,
            Tx::Postgres(t) => t.rollback().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

fn ensure_parent_dir(path: &Path) -> Result<(), sqlx::Error> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)
        }
        _ => Ok(()),
    }
}

fn sqlite_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before it is acknowledged. A webhook is answered 200 after
        // its commit, and Telegram does not resend an update it saw acknowledged, so a commit
        // that a power cut could still take back (NORMAL in WAL mode) would lose a payment.
        // Intake's group commit pays the one fsync for a whole batch (BENCHMARKS.md).
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        // Every statement the service runs stays prepared (sqlx's default keeps 100): a
        // transaction's first statement is cached again with its BEGIN in front, and one that
        // ends a transaction with its COMMIT behind (`store::sqlite`).
        .statement_cache_capacity(512)
}

fn postgres_options(
    url: &str,
    statement_timeout: Duration,
) -> Result<PgConnectOptions, sqlx::Error> {
    let ms = statement_timeout.as_millis().to_string();
    Ok(PgConnectOptions::from_str(url)?
        .application_name("tollgate")
        .options([
            ("statement_timeout", ms.as_str()),
            ("lock_timeout", ms.as_str()),
            ("idle_in_transaction_session_timeout", "60000"),
        ]))
}

/// What kind of failure a database error is, for deciding between retry, reject and alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    UniqueViolation,
    CheckViolation,
    ForeignKeyViolation,
    NotNullViolation,
    /// The database could not be reached or is overloaded: retry later.
    Unavailable,
    Other,
}

/// Classifies an error the same way on both backends.
pub fn classify(e: &sqlx::Error) -> Failure {
    use sqlx::error::ErrorKind;
    match e {
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => Failure::UniqueViolation,
            ErrorKind::CheckViolation => Failure::CheckViolation,
            ErrorKind::ForeignKeyViolation => Failure::ForeignKeyViolation,
            ErrorKind::NotNullViolation => Failure::NotNullViolation,
            _ => {
                let code = db.code().unwrap_or_default();
                // SQLite BUSY/LOCKED (and their extended codes end in 5/6 in the low byte);
                // PostgreSQL connection exceptions (08), shutdown (57P0x), cancel/timeout
                // (57014), lock timeout (55P03), serialization/deadlock (40001/40P01).
                let sqlite_busy = code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
                let pg_transient = code.starts_with("08")
                    || code.starts_with("57P0")
                    || matches!(
                        code.as_ref(),
                        "57014" | "55P03" | "40001" | "40P01" | "53300"
                    );
                if sqlite_busy || pg_transient {
                    Failure::Unavailable
                } else {
                    Failure::Other
                }
            }
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Failure::Unavailable,
        _ => Failure::Other,
    }
}

/// Failures that mean the configuration is wrong rather than the database being down:
/// retrying cannot help, so startup stops and says what to fix (docs/reliability.md A10).
pub fn misconfiguration(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01") | Some("28000") => Some(
                "PostgreSQL rejected the credentials in DATABASE_URL; fix the user name or password"
                    .to_owned(),
            ),
            Some("3D000") => Some(
                "the database named in DATABASE_URL does not exist; create it (createdb) or fix the name"
                    .to_owned(),
            ),
            // SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_NOTADB
            Some("14") | Some("8") | Some("26") => Some(format!(
                "the SQLite file in DATABASE_URL cannot be used ({}); check the path and its permissions",
                db.message()
            )),
            _ => None,
        },
        sqlx::Error::Configuration(c) => Some(format!("DATABASE_URL is not usable: {c}")),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "cannot create the SQLite file or its folder ({io}); check DATABASE_URL and permissions"
        )),
        _ => None,
    }
}
/// `text` cut to at most `max` bytes at a character boundary, with "…" when cut: for error
/// texts kept in a row (a node call's, an update's last error), which must stay bounded.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
