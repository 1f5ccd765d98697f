//! Runtime flags: switches an operator flips without a restart, and the maintenance banner.
//!
//! Flags live in the `settings` table and are read where they gate something (each worker
//! iteration, each invoice), never cached for the life of the process, so a change made by
//! the console or `tollgate flags set` on any replica applies at the next use everywhere. A
//! flag that was never set has its default; `TOLLGATE_FLAG_<NAME>` seeds a row at start only
//! where none exists ([`seed`]), so it never undoes an operator's later choice. At start every
//! flag is logged once with its value and source, so the log of a boot says exactly what the
//! service was allowed to do.
//!
//! Every change made for an operator ([`set`], [`set_banner`], a seed) writes its audit row
//! in the same transaction.

mod banner;

use crate::admin::audit::{self, Actor, AuditAction, AuditEntry};
use crate::store::{Backend, Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

pub use self::banner::{
    BANNER_MAX_CHARS, BannerError, banner, banner_in, change_banner, check_banner, set_banner,
};
pub use crate::domain::flag::{Flag, parse_switch, switch_word};

fn key(flag: Flag) -> String {
    format!("flag.{}", flag.name())
}

/// Where a flag's current value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Never stored: the flag's built-in default.
    Default,
    /// Stored at start from `TOLLGATE_FLAG_<NAME>` on a database that had no value.
    Seed,
    /// Set by an operator (the console or the command line).
    Database,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Seed => "environment seed",
            Source::Database => "database",
        }
    }
}

/// A flag as an operator sees it: value, source, and when and by whom it was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagState {
    pub flag: Flag,
    pub value: bool,
    pub source: Source,
    /// When the stored value was written (None for [`Source::Default`]).
    pub changed_at: Option<Timestamp>,
    /// Who wrote it ([`Source::Database`] only).
    pub changed_by: Option<Actor>,
}

/// A stored row's value: only "true" and "false" count as set. Only this module writes these
/// rows; anything else is treated as unset rather than guessed.
fn stored(value: Option<&str>) -> Option<bool> {
    match value {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

fn stored_text(on: bool) -> &'static str {
    if on { "true" } else { "false" }
}

/// Reads one flag.
pub async fn get(db: &Db, flag: Flag) -> Result<bool, sqlx::Error> {
    Ok(state(db, flag).await?.value)
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
    let keys = keys();
    let rows: Vec<(String, String)> = on_db!(db, p => sqlx::query_as(SNAPSHOT)
        .bind(&keys[0]).bind(&keys[1]).bind(&keys[2]).bind(&keys[3]).bind(&keys[4])
        .fetch_all(p).await)?;
    Ok(snapshot_of(&keys, rows))
}

/// [`snapshot`] inside the caller's transaction.
pub async fn snapshot_in(tx: &mut Tx) -> Result<Snapshot, sqlx::Error> {
    let keys = keys();
    let rows: Vec<(String, String)> = on_tx!(tx, c => sqlx::query_as(SNAPSHOT)
        .bind(&keys[0]).bind(&keys[1]).bind(&keys[2]).bind(&keys[3]).bind(&keys[4])
        .fetch_all(c).await)?;
    Ok(snapshot_of(&keys, rows))
}

/// The settings keys of [`Flag::ALL`], in order: the parameters of a statement that reads the
/// flags together with something else (such as the sender's row, `users::sender`).
pub fn keys() -> [String; Flag::ALL.len()] {
    Flag::ALL.map(key)
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
        if let Some(v) = stored(Some(&value)) {
            values[i] = v;
        }
    }
    Snapshot(values)
}

type StateRow = (String, Timestamp, Option<i64>, Option<String>);

fn state_of(flag: Flag, row: Option<StateRow>) -> FlagState {
    let default = FlagState {
        flag,
        value: flag.default_value(),
        source: Source::Default,
        changed_at: None,
        changed_by: None,
    };
    let Some((value, at, by, origin)) = row else {
        return default;
    };
    let Some(value) = stored(Some(&value)) else {
        return default;
    };
    let seeded = origin.as_deref() == Some("seed");
    FlagState {
        flag,
        value,
        source: if seeded {
            Source::Seed
        } else {
            Source::Database
        },
        changed_at: Some(at),
        changed_by: (!seeded).then(|| by.map_or(Actor::CommandLine, Actor::Admin)),
    }
}

const STATE: &str = "SELECT value, updated_at, updated_by, origin FROM settings WHERE key = $1";

/// One flag with its source.
pub async fn state(db: &Db, flag: Flag) -> Result<FlagState, sqlx::Error> {
    let row: Option<StateRow> = on_db!(db, p => sqlx::query_as(STATE)
        .bind(key(flag)).fetch_optional(p).await)?;
    Ok(state_of(flag, row))
}

/// Every flag with its value and source, in [`Flag::ALL`] order.
pub async fn all(db: &Db) -> Result<Vec<FlagState>, sqlx::Error> {
    let mut out = Vec::with_capacity(Flag::ALL.len());
    for flag in Flag::ALL {
        out.push(state(db, flag).await?);
    }
    Ok(out)
}

/// The stored row of `key`, locked on PostgreSQL until the caller's transaction ends (SQLite
/// has one writer: the transaction holds it), so a concurrent change waits and its audit row
/// names the value this one left.
pub(super) async fn locked_value(tx: &mut Tx, key: &str) -> Result<Option<String>, sqlx::Error> {
    let sql = match tx.backend() {
        Backend::Sqlite => "SELECT value FROM settings WHERE key = $1",
        Backend::Postgres => "SELECT value FROM settings WHERE key = $1 FOR UPDATE",
    };
    on_tx!(tx, c => sqlx::query_scalar(sql).bind(key).fetch_optional(c).await)
}

pub(super) async fn write(
    tx: &mut Tx,
    key: &str,
    value: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO settings (key, value, updated_at, updated_by, origin)
         VALUES ($1, $2, $3, $4, 'operator')
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
             updated_by = excluded.updated_by, origin = excluded.origin"
    ).bind(key).bind(value).bind(now).bind(actor.admin_id()).execute(c).await.map(|_| ()))
}

/// Sets `flag` to `on` for `actor` in the caller's transaction, with its audit row (before →
/// after, also when they are equal: the operator's action is the evidence). Returns the value
/// it had. Applies at the next use of the flag, on every replica.
pub async fn set(
    tx: &mut Tx,
    flag: Flag,
    on: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let (previous, entry) = change(tx, flag, on, actor, now).await?;
    audit::record(tx, &entry, now).await?;
    Ok(previous)
}

/// [`set`] without recording: returns the value it had and the audit entry that describes the
/// change, for a caller that records it itself in the same transaction (the console adds the
/// confirmation's `request`, so a repeated press is rolled back).
pub async fn change(
    tx: &mut Tx,
    flag: Flag,
    on: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<(bool, AuditEntry), sqlx::Error> {
    let k = key(flag);
    let previous = stored(locked_value(tx, &k).await?.as_deref()).unwrap_or(flag.default_value());
    write(tx, &k, stored_text(on), actor, now).await?;
    let entry = AuditEntry::new(actor, AuditAction::SetFlag)
        .subject(flag.name())
        .change(switch_word(previous), switch_word(on));
    Ok((previous, entry))
}

/// [`change`] for a caller that builds its own audit entry (the console's flag screen): the
/// value it had. `by` is the admin's Telegram id (None for the command line).
pub async fn set_in(
    tx: &mut Tx,
    flag: Flag,
    value: bool,
    by: Option<i64>,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let actor = by.map_or(Actor::CommandLine, Actor::Admin);
    Ok(change(tx, flag, value, actor, now).await?.0)
}

/// [`set`] in a transaction of its own.
pub async fn set_committed(
    db: &Db,
    flag: Flag,
    on: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let previous = set(&mut tx, flag, on, actor, now).await?;
    tx.commit().await?;
    Ok(previous)
}

/// Stores each `TOLLGATE_FLAG_<NAME>` value whose flag has no row yet (a fresh database), with
/// an audit row saying so; a flag an operator (or an earlier seed) stored keeps its value.
/// Returns the flags seeded now. Safe on every start of every replica: the insert is a no-op
/// where a row exists.
pub async fn seed(
    db: &Db,
    seeds: &[(Flag, bool)],
    now: Timestamp,
) -> Result<Vec<Flag>, sqlx::Error> {
    let mut seeded = Vec::new();
    if seeds.is_empty() {
        return Ok(seeded);
    }
    let mut tx = db.begin().await?;
    for (flag, on) in seeds {
        let inserted = on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO settings (key, value, updated_at, updated_by, origin)
             VALUES ($1, $2, $3, NULL, 'seed') ON CONFLICT (key) DO NOTHING"
        ).bind(key(*flag)).bind(stored_text(*on)).bind(now).execute(c).await
            .map(|r| r.rows_affected()))?;
        if inserted == 0 {
            continue;
        }
        let entry = AuditEntry::new(Actor::CommandLine, AuditAction::SetFlag)
            .subject(flag.name())
            .change(switch_word(flag.default_value()), switch_word(*on))
            .reason(format!("{} on a database without a value", flag.env_var()));
        audit::record(&mut tx, &entry, now).await?;
        seeded.push(*flag);
    }
    tx.commit().await?;
    Ok(seeded)
}

/// One line for an operator: `payments      off  database (command line, 2026-12-07T10:00:00.000Z)`.
pub fn describe(s: &FlagState) -> String {
    let mut line = format!(
        "{:<13} {:<4} {}",
        s.flag.name(),
        switch_word(s.value),
        s.source.name()
    );
    let who = match s.changed_by {
        Some(Actor::Admin(id)) => Some(format!("admin {id}")),
        Some(Actor::CommandLine) => Some("command line".to_owned()),
        None => None,
    };
    match (who, s.changed_at) {
        (Some(who), Some(at)) => line.push_str(&format!(" ({who}, {at})")),
        (None, Some(at)) => line.push_str(&format!(" ({at})")),
        _ => {}
    }
    line
}

/// One startup line per flag: `runtime flag flag=payments value=true source=default`.
pub async fn log_all(db: &Db) -> Result<(), sqlx::Error> {
    for s in all(db).await? {
        tracing::info!(
            flag = s.flag.name(),
            value = s.value,
            source = s.source.name(),
            changed_at = s.changed_at.map(|t| t.to_string()),
            "runtime flag"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_says_where_the_value_comes_from() {
        let at = Timestamp::from_millis(5);
        let s = state_of(Flag::Payments, None);
        assert_eq!((s.value, s.source), (true, Source::Default));
        let s = state_of(
            Flag::Payments,
            Some(("false".into(), at, None, Some("seed".into()))),
        );
        assert_eq!(
            (s.value, s.source, s.changed_by),
            (false, Source::Seed, None)
        );
        let s = state_of(
            Flag::Payments,
            Some(("false".into(), at, Some(7), Some("operator".into()))),
        );
        assert_eq!(s.changed_by, Some(Actor::Admin(7)));
        let s = state_of(Flag::Payments, Some(("false".into(), at, None, None)));
        assert_eq!(
            (s.source, s.changed_by),
            (Source::Database, Some(Actor::CommandLine))
        );
        let s = state_of(Flag::Maintenance, Some(("garbage".into(), at, None, None)));
        assert_eq!((s.value, s.source), (false, Source::Default));
    }
}
