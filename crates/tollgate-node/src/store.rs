//! The agent's local state: the users it must keep on the core, and their traffic totals.
//!
//! Why SQLite: the user set has to survive agent restarts (a core restart drops every user
//! added through the API, and the agent puts them back from here), and traffic totals are
//! money-adjacent numbers that must not be lost between collections. One file, WAL journal,
//! `synchronous=NORMAL` (a power cut may lose the last few commits, never corrupts) and a
//! single connection: writes are serialized in sqlx's queue instead of fighting over SQLite's
//! lock, which keeps a burst of puts fast and free of `SQLITE_BUSY`.
//!
//! Uniqueness is enforced by the schema: `email` is the key and `uuid_key` (the UUID as the
//! core identifies it, see [`crate::validate::uuid_key`]) is `UNIQUE`, so one email ↔ one
//! UUID holds even under concurrent requests.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use uuid::Uuid;

use crate::validate::{Email, Flow, UserSpec, uuid_key};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    email          TEXT    NOT NULL PRIMARY KEY,
    uuid           TEXT    NOT NULL,
    uuid_key       TEXT    NOT NULL UNIQUE,
    flow           TEXT    NOT NULL,
    level          INTEGER NOT NULL CHECK (level >= 0),
    uplink_bytes   INTEGER NOT NULL DEFAULT 0 CHECK (uplink_bytes >= 0),
    downlink_bytes INTEGER NOT NULL DEFAULT 0 CHECK (downlink_bytes >= 0),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
PRAGMA user_version = 1;
";

const SELECT_BY_EMAIL: &str =
    "SELECT email, uuid, flow, level, uplink_bytes, downlink_bytes FROM users WHERE email = ?";
const SELECT_BY_UUID_KEY: &str =
    "SELECT email, uuid, flow, level, uplink_bytes, downlink_bytes FROM users WHERE uuid_key = ?";
const SELECT_ALL: &str =
    "SELECT email, uuid, flow, level, uplink_bytes, downlink_bytes FROM users ORDER BY email";

/// A user as stored, with its traffic totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUser {
    pub spec: UserSpec,
    pub uplink_bytes: u64,
    pub downlink_bytes: u64,
}

/// A storage failure, with what was being done.
#[derive(Debug)]
pub struct StoreError {
    context: String,
    source: Option<sqlx::Error>,
}

impl StoreError {
    fn new(context: impl Into<String>, source: sqlx::Error) -> Self {
        StoreError {
            context: context.into(),
            source: Some(source),
        }
    }

    fn corrupt(context: impl Into<String>) -> Self {
        StoreError {
            context: context.into(),
            source: None,
        }
    }

    /// True if the failure is a UNIQUE / PRIMARY KEY violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(&self.source, Some(sqlx::Error::Database(db)) if db.is_unique_violation())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// Inserts and deletes applied together by [`Store::apply_batch`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Emails to delete (done first, so their UUIDs are free for the inserts).
    pub delete: Vec<Email>,
    /// Rows to insert, with the traffic totals they carry over.
    pub insert: Vec<StoredUser>,
}

/// The state database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the state file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let context = || format!("open the state file {}", path.display());
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| StoreError::new(context(), e))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::new(context(), e))?;
        let store = Store {
            pool,
            path: path.to_path_buf(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::new("read the state file's schema version", e))?;
        match version {
            0 => {
                sqlx::raw_sql(SCHEMA)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::new("create the state file's schema", e))?;
                Ok(())
            }
            SCHEMA_VERSION => Ok(()),
            newer => Err(StoreError::corrupt(format!(
                "the state file {} has schema version {newer}, newer than this agent understands ({SCHEMA_VERSION}); run a newer tollgate-node",
                self.path.display()
            ))),
        }
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user with this email.
    pub async fn get(&self, email: &Email) -> Result<Option<StoredUser>, StoreError> {
        let row = sqlx::query(SELECT_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new(format!("read user {email}"), e))?;
        row.map(|r| decode(&r)).transpose()
    }

    /// The user holding this UUID (as the core identifies it).
    pub async fn holder_of(&self, uuid: &Uuid) -> Result<Option<StoredUser>, StoreError> {
        let row = sqlx::query(SELECT_BY_UUID_KEY)
            .bind(uuid_key(uuid))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new(format!("look up uuid {uuid}"), e))?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Every user, sorted by email.
    pub async fn all(&self) -> Result<Vec<StoredUser>, StoreError> {
        let rows = sqlx::query(SELECT_ALL)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::new("list users", e))?;
        rows.iter().map(decode).collect()
    }

    /// How many users there are.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::new("count users", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Inserts a new user with zero traffic. A taken email or UUID is a unique violation.
    pub async fn insert(&self, spec: &UserSpec) -> Result<(), StoreError> {
        let user = StoredUser {
            spec: spec.clone(),
            uplink_bytes: 0,
            downlink_bytes: 0,
        };
        insert_row(&self.pool, &user, now_unix())
            .await
            .map_err(|e| StoreError::new(format!("store user {}", spec.email), e))
    }

    /// Changes the uuid/flow/level of an existing user, keeping its traffic totals.
    pub async fn update(&self, spec: &UserSpec) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET uuid = ?, uuid_key = ?, flow = ?, level = ?, updated_at = ? WHERE email = ?",
        )
        .bind(spec.uuid.hyphenated().to_string())
        .bind(uuid_key(&spec.uuid))
        .bind(spec.flow.as_str())
        .bind(i64::from(spec.level))
        .bind(now_unix())
        .bind(spec.email.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new(format!("update user {}", spec.email), e))?;
        Ok(())
    }

    /// Deletes a user; true if it existed.
    pub async fn delete(&self, email: &Email) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE email = ?")
            .bind(email.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new(format!("delete user {email}"), e))?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes some users and inserts others in one transaction (deletes first).
    pub async fn apply_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.delete.is_empty() && batch.insert.is_empty() {
            return Ok(());
        }
        let context = || {
            format!(
                "apply {} deletions and {} insertions",
                batch.delete.len(),
                batch.insert.len()
            )
        };
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| StoreError::new(context(), e))?;
        for email in &batch.delete {
            sqlx::query("DELETE FROM users WHERE email = ?")
                .bind(email.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::new(context(), e))?;
        }
        let now = now_unix();
        for user in &batch.insert {
            insert_row(&mut *tx, user, now).await.map_err(|e| {
                StoreError::new(format!("{}: user {}", context(), user.spec.email), e)
            })?;
        }
        tx.commit().await.map_err(|e| StoreError::new(context(), e))
    }

    /// Adds traffic deltas to the totals of the users that exist, in one transaction.
    /// Returns how many users were updated; deltas of unknown emails are dropped.
    pub async fn add_traffic(&self, deltas: &[(String, u64, u64)]) -> Result<u64, StoreError> {
        if deltas.is_empty() {
            return Ok(0);
        }
        let context = || format!("add traffic of {} users", deltas.len());
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| StoreError::new(context(), e))?;
        let mut updated = 0;
        for (email, up, down) in deltas {
            let done = sqlx::query(
                "UPDATE users SET uplink_bytes = uplink_bytes + ?, downlink_bytes = downlink_bytes + ? WHERE email = ?",
            )
            .bind(clamp_i64(*up))
            .bind(clamp_i64(*down))
            .bind(email)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::new(context(), e))?;
            updated += done.rows_affected();
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::new(context(), e))?;
        Ok(updated)
    }

    /// Closes the pool (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_row<'e, E>(executor: E, user: &StoredUser, now: i64) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO users (email, uuid, uuid_key, flow, level, uplink_bytes, downlink_bytes, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(user.spec.email.as_str())
    .bind(user.spec.uuid.hyphenated().to_string())
    .bind(uuid_key(&user.spec.uuid))
    .bind(user.spec.flow.as_str())
    .bind(i64::from(user.spec.level))
    .bind(clamp_i64(user.uplink_bytes))
    .bind(clamp_i64(user.downlink_bytes))
    .bind(now)
    .bind(now)
    .execute(executor)
    .await
    .map(drop)
}

fn decode(row: &SqliteRow) -> Result<StoredUser, StoreError> {
    let get_err = |e| StoreError::new("decode a stored user", e);
    let email: String = row.try_get("email").map_err(get_err)?;
    let uuid: String = row.try_get("uuid").map_err(get_err)?;
    let flow: String = row.try_get("flow").map_err(get_err)?;
    let level: i64 = row.try_get("level").map_err(get_err)?;
    let up: i64 = row.try_get("uplink_bytes").map_err(get_err)?;
    let down: i64 = row.try_get("downlink_bytes").map_err(get_err)?;
    let corrupt = |what: String| StoreError::corrupt(format!("stored user {email}: {what}"));
    Ok(StoredUser {
        spec: UserSpec {
            uuid: Uuid::try_parse(&uuid).map_err(|e| corrupt(format!("bad uuid {uuid:?}: {e}")))?,
            flow: Flow::parse(&flow).map_err(corrupt)?,
            level: u32::try_from(level).map_err(|_| corrupt(format!("bad level {level}")))?,
            email: Email::from_trusted(email.clone()),
        },
        uplink_bytes: u64::try_from(up).unwrap_or(0),
        downlink_bytes: u64::try_from(down).unwrap_or(0),
    })
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(email: &str, uuid: &str) -> UserSpec {
        UserSpec::parse(email, uuid, "", 0).unwrap()
    }

    #[tokio::test]
    async fn users_round_trip_and_uniqueness_holds() {
        let dir = tempfile_dir();
        let store = Store::open(&dir.join("state.db")).await.unwrap();
        let alice = spec("alice@x", "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9");
        store.insert(&alice).await.unwrap();
        assert_eq!(store.get(&alice.email).await.unwrap().unwrap().spec, alice);

        // Same email again, or alice's uuid (even differing only in bytes 6-7) for bob: refused.
        assert!(
            store
                .insert(&alice)
                .await
                .unwrap_err()
                .is_unique_violation()
        );
        let bob = spec("bob@x", "86dc2c8c-6d69-11ff-b0e4-8f4ce621feb9");
        assert!(store.insert(&bob).await.unwrap_err().is_unique_violation());
        assert_eq!(
            store
                .holder_of(&bob.uuid)
                .await
                .unwrap()
                .unwrap()
                .spec
                .email,
            alice.email
        );

        assert_eq!(
            store
                .add_traffic(&[("alice@x".into(), 5, 7), ("ghost@x".into(), 1, 1)])
                .await
                .unwrap(),
            1
        );
        store
            .add_traffic(&[("alice@x".into(), 1, 1)])
            .await
            .unwrap();
        let stored = store.get(&alice.email).await.unwrap().unwrap();
        assert_eq!((stored.uplink_bytes, stored.downlink_bytes), (6, 8));

        // A uuid swap between two users works in one batch: deletes go first.
        let carol = spec("carol@x", "11111111-2222-4333-8444-555555555555");
        store.insert(&carol).await.unwrap();
        let batch = Batch {
            delete: vec![alice.email.clone(), carol.email.clone()],
            insert: vec![
                StoredUser {
                    spec: UserSpec {
                        uuid: carol.uuid,
                        ..alice.clone()
                    },
                    uplink_bytes: 6,
                    downlink_bytes: 8,
                },
                StoredUser {
                    spec: UserSpec {
                        uuid: alice.uuid,
                        ..carol.clone()
                    },
                    uplink_bytes: 0,
                    downlink_bytes: 0,
                },
            ],
        };
        store.apply_batch(&batch).await.unwrap();
        assert_eq!(
            store.get(&alice.email).await.unwrap().unwrap().spec.uuid,
            carol.uuid
        );
        assert_eq!(
            store
                .get(&alice.email)
                .await
                .unwrap()
                .unwrap()
                .downlink_bytes,
            8
        );
        assert_eq!(store.count().await.unwrap(), 2);
        store.close().await;

        // The file survives a reopen.
        let reopened = Store::open(&dir.join("state.db")).await.unwrap();
        assert_eq!(reopened.all().await.unwrap().len(), 2);
        assert!(reopened.delete(&alice.email).await.unwrap());
        assert!(!reopened.delete(&alice.email).await.unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_missing_directory_is_a_clear_error() {
        let err = Store::open(Path::new("/nonexistent-dir-for-tollgate/state.db"))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("open the state file /nonexistent-dir-for-tollgate/state.db"),
            "{err}"
        );
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tollgate-store-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
