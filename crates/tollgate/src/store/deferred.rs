//! Writes whose outcome the transaction does not read: on SQLite they are sent together with
//! the transaction's next statement.
//!
//! Every statement on SQLite's one writing connection is a round trip to the connection's
//! thread and back, and those round trips are what limits the bot's purchases and the
//! pipeline's end-to-end rate (BENCHMARKS.md). Some writes return nothing their caller needs —
//! queueing a message whose duplicate is ignored, noting a notice that is owed. Such a write, a
//! [`DeferredWrite`] passed to [`Tx::defer`], waits in the transaction and is sent in front of
//! the transaction's next statement (or with its `COMMIT`) in the same round trip, so it costs
//! no round trip of its own. Statements keep their order: a later read in the transaction sees
//! the write. On PostgreSQL a deferred write runs at once, like any statement. A write whose
//! row count the caller reads goes through [`Tx::execute`] instead, which runs it now.
//!
//! The price: an error of the write is reported by the statement it travelled with (or the
//! commit), and the transaction then commits nothing, as for any failed statement. So
//! deferring is for writes whose failure can only mean "this transaction fails": no
//! `RETURNING`, no rows affected read, no error handled on its own.

use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Encode, Postgres, Sqlite, Type};

use super::Tx;

/// A write whose outcome is not read, to be sent with the transaction's next statement
/// ([`Tx::defer`]) or run now ([`Tx::execute`]): its SQL (`$N` parameters, no `RETURNING`)
/// and values.
pub struct DeferredWrite {
    pub(super) sql: &'static str,
    pub(super) values: Vec<Box<dyn Value>>,
}

impl DeferredWrite {
    pub fn new(sql: &'static str) -> DeferredWrite {
        debug_assert!(
            !sql.to_ascii_uppercase().contains("RETURNING"),
            "a deferred write returns no rows: {sql}"
        );
        DeferredWrite {
            sql,
            values: Vec::new(),
        }
    }

    /// The next parameter's value (`$1` first), as `sqlx::query(…).bind` takes it.
    pub fn bind<T: Value>(mut self, value: T) -> DeferredWrite {
        self.values.push(Box::new(value));
        self
    }
}

impl std::fmt::Debug for DeferredWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredWrite")
            .field("sql", &self.sql)
            .field("values", &self.values.len())
            .finish()
    }
}

/// A value that binds on both backends, kept until the statement is sent.
pub trait Value: Send + Sync + 'static {
    fn add_to_sqlite(&self, args: &mut SqliteArguments) -> Result<(), BoxDynError>;
    fn add_to_postgres(&self, args: &mut PgArguments) -> Result<(), BoxDynError>;
}

impl<T> Value for T
where
    T: Clone + Send + Sync + 'static,
    T: for<'q> Encode<'q, Sqlite> + Type<Sqlite>,
    T: for<'q> Encode<'q, Postgres> + Type<Postgres>,
{
    fn add_to_sqlite(&self, args: &mut SqliteArguments) -> Result<(), BoxDynError> {
        args.add(self.clone())
    }

    fn add_to_postgres(&self, args: &mut PgArguments) -> Result<(), BoxDynError> {
        args.add(self.clone())
    }
}

impl Tx {
    /// Runs `write` in this transaction: on PostgreSQL now, on SQLite with the transaction's
    /// next statement or its commit (see the module's doc).
    pub async fn defer(&mut self, write: DeferredWrite) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.defer(write).await,
            Tx::Postgres(_) => self.execute(write).await.map(drop),
        }
    }

    /// Runs `write` now, after the writes waiting before it, and returns how many rows it
    /// changed: for a caller that reads that count, which a waiting write cannot report.
    pub async fn execute(&mut self, write: DeferredWrite) -> Result<u64, sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.execute_now(write).await,
            Tx::Postgres(t) => {
                let mut args = PgArguments::default();
                for v in &write.values {
                    v.add_to_postgres(&mut args).map_err(sqlx::Error::Encode)?;
                }
                let done = sqlx::query_with(write.sql, args).execute(&mut **t).await?;
                Ok(done.rows_affected())
            }
        }
    }
}

/// `sql` with every `$N` parameter outside quotes renumbered to `$(N + offset)`: where a
/// deferred write stands in a text whose first `offset` values belong to other statements.
pub(super) fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        out.push(c);
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') => {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                match digits.parse::<usize>() {
                    Ok(n) => out.push_str(&(n + offset).to_string()),
                    Err(_) => out.push_str(&digits),
                }
            }
            (None, _) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_outside_quotes_only() {
        assert_eq!(
            renumber(
                "UPDATE t SET a = $1, b = '$2', \"$3\" = $12 WHERE c = $2",
                3
            ),
            "UPDATE t SET a = $4, b = '$2', \"$3\" = $15 WHERE c = $5"
        );
        assert_eq!(
            renumber("SELECT 'it''s $1', $1", 1),
            "SELECT 'it''s $1', $2"
        );
        assert_eq!(renumber("SELECT $1", 0), "SELECT $1");
    }
}
