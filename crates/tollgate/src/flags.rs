//! Runtime flags: switches an operator flips without a restart.
//!
//! Flags live in the `settings` table and are read where they gate something (each worker
//! iteration, each invoice), never cached for the life of the process. A flag that was never
//! set has its default. At start every flag is logged once with its value and source, so the
//! log of a boot says exactly what the service was allowed to do.

use std::fmt;

use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// New invoices and pre-checkout approvals (captured payments are always finalized).
    Payments,
    /// Free trials for new users.
    Trials,
    /// Auto-renewal from balance.
    AutoRenewal,
    /// Admin broadcasts.
    Broadcasts,
    /// Show the maintenance banner to users.
    Maintenance,
}

impl Flag {
    pub const ALL: [Flag; 5] = [
        Flag::Payments,
        Flag::Trials,
        Flag::AutoRenewal,
        Flag::Broadcasts,
        Flag::Maintenance,
    ];

    /// The name used in the settings table, logs and the admin menu.
    pub const fn name(self) -> &'static str {
        match self {
            Flag::Payments => "payments",
            Flag::Trials => "trials",
            Flag::AutoRenewal => "auto_renewal",
            Flag::Broadcasts => "broadcasts",
            Flag::Maintenance => "maintenance",
        }
    }

    pub const fn default_value(self) -> bool {
        !matches!(self, Flag::Maintenance)
    }

    fn key(self) -> String {
        format!("flag.{}", self.name())
    }

    pub fn parse(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a flag's current value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Database,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Database => "database",
        }
    }
}

/// Reads one flag.
pub async fn get(db: &Db, flag: Flag) -> Result<bool, sqlx::Error> {
    Ok(get_with_source(db, flag).await?.0)
}

/// Every flag's value at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot([bool; Flag::ALL.len()]);

impl Snapshot {
    pub fn get(&self, flag: Flag) -> bool {
        Flag::ALL
            .iter()
            .position(|f| *f == flag)
            .and_then(|i| self.0.get(i).copied())
            .unwrap_or(flag.default_value())
    }
}

const SNAPSHOT: &str = "SELECT key, value FROM settings WHERE key IN ($1, $2, $3, $4, $5)";

/// Reads every flag in one statement, for a screen that shows several (still read per use,
/// never kept beyond it).
pub async fn snapshot(db: &Db) -> Result<Snapshot, sqlx::Error> {
    let keys = Flag::ALL.map(Flag::key);
    let rows: Vec<(String, String)> = on_db!(db, p => sqlx::query_as(SNAPSHOT)
        .bind(&keys[0]).bind(&keys[1]).bind(&keys[2]).bind(&keys[3]).bind(&keys[4])
        .fetch_all(p).await)?;
    Ok(snapshot_of(&keys, rows))
}

/// [`snapshot`] inside the caller's transaction.
pub async fn snapshot_in(tx: &mut Tx) -> Result<Snapshot, sqlx::Error> {
    let keys = Flag::ALL.map(Flag::key);
    let rows: Vec<(String, String)> = on_tx!(tx, c => sqlx::query_as(SNAPSHOT)
        .bind(&keys[0]).bind(&keys[1]).bind(&keys[2]).bind(&keys[3]).bind(&keys[4])
        .fetch_all(c).await)?;
    Ok(snapshot_of(&keys, rows))
}

/// The settings keys of [`Flag::ALL`], in order: the parameters of a statement that reads the
/// flags together with something else (such as the sender's row, `users::sender`).
pub fn keys() -> [String; Flag::ALL.len()] {
    Flag::ALL.map(Flag::key)
}

/// The stored values of [`keys`] as columns `flag_0`, `flag_1`, … of another owner's
/// statement (so the `settings` table's text stays here), the keys bound from placeholder
/// `$first` on. Read them back with [`snapshot_from`].
pub fn columns_sql(first: usize) -> String {
    (0..Flag::ALL.len())
        .map(|i| {
            format!(
                "(SELECT value FROM settings WHERE key = ${}) AS flag_{i}",
                first + i
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The snapshot of the stored values of [`keys`], in order (`None`: never set).
pub fn snapshot_from(values: [Option<String>; Flag::ALL.len()]) -> Snapshot {
    let keys = keys();
    let rows = keys
        .iter()
        .zip(values)
        .filter_map(|(k, v)| Some((k.clone(), v?)))
        .collect();
    snapshot_of(&keys, rows)
}

fn snapshot_of(keys: &[String], rows: Vec<(String, String)>) -> Snapshot {
    let mut values = Flag::ALL.map(Flag::default_value);
    for (key, value) in rows {
        let Some(i) = keys.iter().position(|k| *k == key) else {
            continue;
        };
        // As in `get_with_source`: only "true" and "false" count as set.
        match value.as_str() {
            "true" => values[i] = true,
            "false" => values[i] = false,
            _ => {}
        }
    }
    Snapshot(values)
}

pub async fn get_with_source(db: &Db, flag: Flag) -> Result<(bool, Source), sqlx::Error> {
    let value: Option<String> = on_db!(db, p => sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = $1"
    ).bind(flag.key()).fetch_optional(p).await)?;
    Ok(match value.as_deref() {
        Some("true") => (true, Source::Database),
        Some("false") => (false, Source::Database),
        // Only `set` writes these rows; anything else is treated as unset rather than guessed.
        _ => (flag.default_value(), Source::Default),
    })
}

/// Sets a flag; `by` is the admin's Telegram id (None for the system).
pub async fn set(
    db: &Db,
    flag: Flag,
    value: bool,
    by: Option<i64>,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let text = if value { "true" } else { "false" };
    on_db!(db, p => sqlx::query(
        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
             updated_by = excluded.updated_by"
    ).bind(flag.key()).bind(text).bind(now).bind(by).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Sets a flag in the caller's transaction (a console change, with its audit row); returns
/// the value it had.
pub async fn set_in(
    tx: &mut Tx,
    flag: Flag,
    value: bool,
    by: Option<i64>,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let before: Option<String> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = $1").bind(flag.key()).fetch_optional(c).await)?;
    let before = match before.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => flag.default_value(),
    };
    let text = if value { "true" } else { "false" };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
             updated_by = excluded.updated_by"
    ).bind(flag.key()).bind(text).bind(now).bind(by).execute(c).await.map(|_| ()))?;
    Ok(before)
}

/// Every flag with its value and source.
pub async fn all(db: &Db) -> Result<Vec<(Flag, bool, Source)>, sqlx::Error> {
    let mut out = Vec::with_capacity(Flag::ALL.len());
    for flag in Flag::ALL {
        let (value, source) = get_with_source(db, flag).await?;
        out.push((flag, value, source));
    }
    Ok(out)
}

/// One startup line per flag: `runtime flag flag=payments value=true source=default`.
pub async fn log_all(db: &Db) -> Result<(), sqlx::Error> {
    for (flag, value, source) in all(db).await? {
        tracing::info!(
            flag = flag.name(),
            value,
            source = source.name(),
            "runtime flag"
        );
    }
    Ok(())
}
