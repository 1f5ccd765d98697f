//! Schema migrations, embedded in the binary.
//!
//! The earlier system ran ~130 inline `ALTER`s at startup (4.5 minutes of hanging), migrated
//! without a lock, and silently skipped a migration that reused a number. Here:
//! - schema changes exist only as numbered files under `migrations/<backend>/`, compiled
//!   into the binary; both backends have the same versions (a unit test checks it);
//! - each applied migration's SHA-256 is recorded, and a file changed after it was applied
//!   stops startup with the migration's name;
//! - migrations run in one transaction under a lock: on PostgreSQL a namespaced advisory
//!   lock with server-side `lock_timeout`/`statement_timeout`, on SQLite the write lock of
//!   `BEGIN IMMEDIATE`. A second process waits, then finds nothing left to do;
//! - a database that holds a version this binary does not know is refused, and so is a gap.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Backend, Db, Failure, Tx, classify};
use crate::on_tx;
use crate::time::Timestamp;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.sql.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn file_name(&self) -> String {
        format!("{:04}_{}.sql", self.version, self.name)
    }
}

macro_rules! migrations {
    ($backend:literal: $( $version:literal $name:literal ),* $(,)?) => {
        &[ $( Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../migrations/", $backend, "/", stringify!($version), "_", $name, ".sql")),
        } ),* ]
    };
}

/// Every migration, in order, once: each backend has a file per version with the same name
/// (`migrations/<backend>/<version>_<name>.sql`). A new migration is one line here and two
/// files.
macro_rules! every_migration {
    ($backend:literal) => {
        migrations!($backend:
            0001 "initial",
            0002 "access",
            0003 "billing",
            0004 "bot",
            0005 "jobs",
            0006 "inbox_pending",
            0007 "notice_items",
            0008 "purchase_pruning",
            0009 "payment_payload",
            0010 "drop_notice_items",
            0011 "admin",
            0012 "operations",
            0014 "promo",
            0015 "withdrawals",
            0016 "broadcasts",
            0017 "payment_providers",
            0018 "receipt_contact",
            0019 "unmatched_payments",
        )
    };
}

/// SQLite migrations in order.
#[allow(clippy::zero_prefixed_literal)] // versions are written as in the file names
pub static SQLITE: &[Migration] = every_migration!("sqlite");

/// PostgreSQL migrations in order; the same versions and names as [`SQLITE`].
#[allow(clippy::zero_prefixed_literal)]
pub static POSTGRES: &[Migration] = every_migration!("postgres");

pub fn for_backend(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// The schema version this binary expects.
pub fn latest_version(backend: Backend) -> i64 {
    for_backend(backend).last().map_or(0, |m| m.version)
}

/// Advisory lock key of the migration lock: (namespace, key). The namespace is Tollgate's
/// own, so the lock cannot collide with another application's advisory locks (docs/reliability.md C7).
pub const ADVISORY_NAMESPACE: i32 = 0x7467_6174; // "tgat"
pub const ADVISORY_KEY_MIGRATE: i32 = 1;

/// How long to wait for another process's migration lock, and for each statement.
#[derive(Debug, Clone, Copy)]
pub struct MigrateTimeouts {
    pub lock: Duration,
    pub statement: Duration,
}

impl Default for MigrateTimeouts {
    fn default() -> Self {
        MigrateTimeouts {
            lock: Duration::from_secs(60),
            statement: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "migration {file} was changed after it was applied (recorded checksum {recorded}, this binary has {expected}); \
         restore the original file: applied migrations must never be edited — add a new migration instead"
    )]
    ChecksumMismatch {
        file: String,
        recorded: String,
        expected: String,
    },
    #[error(
        "the database has migration {version} ({name}), which this binary does not know; \
         it was migrated by a newer release: deploy that release (or newer) instead of this one"
    )]
    UnknownVersion { version: i64, name: String },
    #[error(
        "migration {file} is missing from the database although later ones are applied; \
         the schema is inconsistent: restore the database from a backup taken before the gap"
    )]
    Gap { file: String },
    #[error("applying migration {file} failed: {source}")]
    Apply {
        file: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database error while migrating: {0}")]
    Database(#[from] sqlx::Error),
}

impl MigrateError {
    /// True when waiting and retrying may succeed (the database is down or the lock is held).
    pub fn is_transient(&self) -> bool {
        match self {
            MigrateError::Database(e) => super::classify(e) == super::Failure::Unavailable,
            _ => false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<String>,
    pub current_version: i64,
}

impl fmt::Display for MigrateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            write!(f, "schema is current at version {}", self.current_version)
        } else {
            write!(
                f,
                "applied {} migration(s): {}; schema is at version {}",
                self.applied.len(),
                self.applied.join(", "),
                self.current_version
            )
        }
    }
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The migration transaction. Several processes opening a brand-new SQLite file at once race
/// to switch it to WAL, and the losers get "database is locked" at once instead of waiting
/// (the switch bypasses the busy timeout): they try again for a while, as the busy timeout
/// would have done.
async fn begin_locked(db: &Db) -> Result<Tx, sqlx::Error> {
    let mut tries = 0;
    loop {
        match db.begin().await {
            Err(e)
                if matches!(db, Db::Sqlite(_))
                    && classify(&e) == Failure::Unavailable
                    && tries < 100 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Applies every pending migration of the binary, under the lock, in one transaction.
pub async fn run(
    db: &Db,
    now: Timestamp,
    timeouts: MigrateTimeouts,
) -> Result<MigrateReport, MigrateError> {
    run_set(db, for_backend(db.backend()), now, timeouts).await
}

/// [`run`] with an explicit migration set; tests use it to simulate edited files.
pub async fn run_set(
    db: &Db,
    set: &[Migration],
    now: Timestamp,
    timeouts: MigrateTimeouts,
) -> Result<MigrateReport, MigrateError> {
    let mut tx = begin_locked(db).await?;
    if let Tx::Postgres(t) = &mut tx {
        let lock_ms = timeouts.lock.as_millis().to_string();
        let stmt_ms = timeouts.statement.as_millis().to_string();
        // SET LOCAL lasts until the end of this transaction only.
        sqlx::query("SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)")
            .bind(&lock_ms)
            .bind(&stmt_ms)
            .execute(&mut **t)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(ADVISORY_NAMESPACE)
            .bind(ADVISORY_KEY_MIGRATE)
            .execute(&mut **t)
            .await?;
    }
    on_tx!(&mut tx, c => sqlx::query(CREATE_TABLE).execute(c).await.map(|r| r.rows_affected()))?;
    let applied: Vec<(i64, String, String)> = on_tx!(&mut tx, c => sqlx::query_as(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
    ).fetch_all(c).await)?;

    verify(set, &applied)?;

    let mut report = MigrateReport {
        applied: Vec::new(),
        current_version: applied.last().map_or(0, |a| a.0),
    };
    for m in set.iter().skip(applied.len()) {
        on_tx!(&mut tx, c => sqlx::raw_sql(m.sql).execute(c).await.map(|r| r.rows_affected()))
            .map_err(|source| MigrateError::Apply {
                file: m.file_name(),
                source,
            })?;
        on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)"
        ).bind(m.version).bind(m.name).bind(m.checksum()).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
        report.applied.push(m.file_name());
        report.current_version = m.version;
    }
    tx.commit().await?;
    Ok(report)
}

/// Migrations whose comments were reworded after release (to cite the project's own docs,
/// `docs/…`), as (checksum of the text now, checksum of the text before): a database that
/// applied the earlier text has the same schema, so its record is accepted. Pinned to the text
/// now: any further edit, of a statement or a comment, is refused like any other.
const REWORDED: &[(&str, &str)] = &[
    // postgres/0001_initial.sql
    (
        "9be58d9e7a31937ce7b2b1a1e4fc9e9edbdf860140737ad00d7859d70dc10434",
        "9032e80889347c4f480ed4487743b4f3de80bd818e552a3d99c7d9feec4fde5d",
    ),
    // postgres/0002_access.sql
    (
        "123a82cb55969d648d3d9e43b5b1910123ba6c227c931ed02e4233f32901802e",
        "da97e0eba504ccce223a0e7cc11eecd6f3f56561dbab43f2aa9ec34a2be6346a",
    ),
    // postgres/0003_billing.sql
    (
        "946899df065429625faee6fc0bcc1c152e8832277a7145ca45a10ef38224a804",
        "5ef4fcf740924e517ef597435bcab03557e9e7e2b3ddce12ba1af601ed5265ef",
    ),
    // postgres/0005_jobs.sql
    (
        "b9a27bb33f5abef3966353323f76f1fed72645ef0a70d1ee5617ad4fab04b045",
        "f0e2c558dc7d1c3792a7dd27fb1e30bfea81c5afaac70d1c04e36e647210760b",
    ),
    // postgres/0007_notice_items.sql
    (
        "fd1fcf218bc0ea94aea08296cf49a8f48c6cee037c1babe722174da3b295908c",
        "adc7523f89b36435c165d4e531475713736c1fcef7588b03b4d64e9ae169aba3",
    ),
    // sqlite/0001_initial.sql
    (
        "f098f2ebb780f59c4d1572facbdb1bfa4d4c7100ceb1cbe86383a25ec5133e78",
        "66d372a36ceffa4d758dec42792a1c00c8b4f09c40f7e4532f50d333c4883049",
    ),
    // sqlite/0002_access.sql
    (
        "dbc567c59fdd7ce82d42387001b29fcf8a0d7a8f385edfdb15ab783dd836e9a3",
        "4fd3dc0cc99c0a7ddedddc0473229804bf53952184ac6c5d9f54b3f4d068455a",
    ),
    // sqlite/0003_billing.sql
    (
        "8a30b98c678bdc5b2d7decb9b7018deeecffed07c63e262095e6ad553bee42ee",
        "f05057a21c3931b7110379c6f2e0808303dff4f1140c3cb20c7e0adf90f12679",
    ),
    // sqlite/0005_jobs.sql
    (
        "9402f5458c9fdf05e03773ebb47a507de220c7065fd671b8ba780ed627bc5f97",
        "fb91976043f2740c2b55b1db4a852688e1ec517db2f084586ab9e31dda761817",
    ),
];

/// Whether `recorded` is the checksum `m` had before its comments were reworded.
fn reworded(m: &Migration, recorded: &str) -> bool {
    let now = m.checksum();
    REWORDED
        .iter()
        .any(|(current, before)| *current == now && *before == recorded)
}

/// Checks the recorded history against the binary's set: same prefix, same checksums.
fn verify(set: &[Migration], applied: &[(i64, String, String)]) -> Result<(), MigrateError> {
    for (i, (version, name, checksum)) in applied.iter().enumerate() {
        let Some(m) = set.iter().find(|m| m.version == *version) else {
            return Err(MigrateError::UnknownVersion {
                version: *version,
                name: name.clone(),
            });
        };
        if m.checksum() != *checksum && !reworded(m, checksum) {
            return Err(MigrateError::ChecksumMismatch {
                file: m.file_name(),
                recorded: checksum.clone(),
                expected: m.checksum(),
            });
        }
        // The i-th applied migration must be the i-th of the binary: no gaps.
        if set.get(i).map(|s| s.version) != Some(*version) {
            let missing = set
                .get(i)
                .map_or_else(|| "?".to_owned(), Migration::file_name);
            return Err(MigrateError::Gap { file: missing });
        }
    }
    Ok(())
}

/// The migration history recorded in a SQLite file opened on its own (a backup being checked),
/// as (version, name, checksum) in version order.
pub async fn sqlite_file_history(
    conn: &mut sqlx::SqliteConnection,
) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        .fetch_all(conn)
        .await
}

/// Checks a recorded migration history (`version, name, checksum` rows of
/// `schema_migrations`, e.g. a backup's) against this binary's migrations for `backend`: every
/// version known, checksums equal, no gaps. The same rules as at start.
pub fn verify_history(
    backend: Backend,
    applied: &[(i64, String, String)],
) -> Result<(), MigrateError> {
    verify(for_backend(backend), applied)
}

/// Schema state as readiness sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    Current,
    Behind { database: i64, binary: i64 },
    Ahead { database: i64, binary: i64 },
}

/// Compares the database's schema version with the binary's (one cheap query).
pub async fn schema_state(db: &Db) -> Result<SchemaState, sqlx::Error> {
    let (max, count): (i64, i64) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT), CAST(COUNT(*) AS BIGINT) FROM schema_migrations"
    ).fetch_one(p).await)?;
    let set = for_backend(db.backend());
    let binary = latest_version(db.backend());
    Ok(if max > binary {
        SchemaState::Ahead {
            database: max,
            binary,
        }
    } else if max < binary || usize::try_from(count).ok() != Some(set.len()) {
        SchemaState::Behind {
            database: max,
            binary,
        }
    } else {
        SchemaState::Current
    })
}

use crate::on_db;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_unique_increasing_and_equal_across_backends() {
        for set in [SQLITE, POSTGRES] {
            assert!(!set.is_empty());
            for pair in set.windows(2) {
                assert!(
                    pair[0].version < pair[1].version,
                    "{} must come before {}",
                    pair[0].file_name(),
                    pair[1].file_name()
                );
            }
        }
        let names = |s: &[Migration]| s.iter().map(Migration::file_name).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
    }

    #[test]
    fn every_file_on_disk_is_embedded() {
        for (backend, set) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/").to_owned() + backend;
            let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            on_disk.sort();
            let embedded: Vec<String> = set.iter().map(Migration::file_name).collect();
            assert_eq!(
                on_disk, embedded,
                "{dir}: add new files to the list in migrate.rs"
            );
        }
    }

    fn m(version: i64, sql: &'static str) -> Migration {
        Migration {
            version,
            name: "x",
            sql,
        }
    }

    #[test]
    fn each_reworded_migration_is_one_of_the_set_and_its_earlier_record_is_accepted() {
        for (now, before) in REWORDED {
            let m = SQLITE
                .iter()
                .chain(POSTGRES)
                .find(|m| m.checksum() == *now)
                .unwrap_or_else(|| panic!("no migration has the text of {now}: a stale entry"));
            assert!(reworded(m, before));
            let applied = [(m.version, m.name.to_owned(), (*before).to_owned())];
            let set: Vec<Migration> = [SQLITE, POSTGRES]
                .into_iter()
                .find(|set| set.iter().any(|x| x.checksum() == *now))
                .unwrap()
                .iter()
                .copied()
                .filter(|x| x.version <= m.version)
                .collect();
            // Every earlier version recorded as it is now, this one with its earlier text.
            let mut history: Vec<(i64, String, String)> = set
                .iter()
                .filter(|x| x.version < m.version)
                .map(|x| (x.version, x.name.to_owned(), x.checksum()))
                .collect();
            history.extend(applied);
            assert!(verify(&set, &history).is_ok(), "{}", m.file_name());
            // Another text than these two is still refused.
            assert!(!reworded(m, "0000"));
        }
    }

    #[test]
    fn verify_detects_edits_unknown_versions_and_gaps() {
        let set = [m(1, "a"), m(2, "b"), m(3, "c")];
        let rec = |v: i64, sql: &'static str| (v, "x".to_owned(), m(v, sql).checksum());
        assert!(verify(&set, &[rec(1, "a"), rec(2, "b")]).is_ok());
        assert!(matches!(
            verify(&set, &[rec(1, "a"), rec(2, "B")]),
            Err(MigrateError::ChecksumMismatch { ref file, .. }) if file == "0002_x.sql"
        ));
        assert!(matches!(
            verify(&set, &[rec(1, "a"), rec(7, "z")]),
            Err(MigrateError::UnknownVersion { version: 7, .. })
        ));
        assert!(matches!(
            verify(&set, &[rec(1, "a"), rec(3, "c")]),
            Err(MigrateError::Gap { ref file }) if file == "0002_x.sql"
        ));
    }
}
