//! Backups and restores: `tollgate backup FILE`, `tollgate restore FILE`, and what the
//! `backups` job sends.
//!
//! Why this shape: a backup that is not consistent, or that cannot be restored by the binary
//! that will read it, is found out on the worst day. So a SQLite backup is one read
//! transaction (`VACUUM INTO` from a connection of its own, [`SqliteDb::copy_into`]): it
//! holds every commit made before it started, none half, and it runs while the service runs
//! without stopping its writer. Every copy is checked before it is called a backup, and again
//! before it replaces a database: it opens, `PRAGMA integrity_check` says `ok`, and its
//! migration history is one this binary accepts (the rules of `store::migrate`; a copy from a
//! newer binary is refused, an older one is migrated at the next start). A restore never
//! replaces a database that a running service holds (its leases are live) unless told to, and
//! keeps the database it replaces beside it. PostgreSQL has `pg_dump`/`pg_restore` and
//! providers' snapshots; `backup` runs `pg_dump` where it is installed and says how otherwise.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::store::migrate::{self, verify_history};
use crate::store::{Backend, Db, SqliteDb};
use crate::time::Timestamp;

/// The MIME type of a compressed backup.
pub const GZIP_MIME: &str = "application/gzip";

/// What a checked copy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The last migration it has applied (0 for an empty database).
    pub schema_version: i64,
    /// This binary's last migration: a copy below it is migrated at the next start.
    pub binary_version: i64,
    /// Size of the database file in bytes (uncompressed).
    pub bytes: u64,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, integrity ok, schema version {} (this binary: {})",
            self.bytes, self.schema_version, self.binary_version
        )
    }
}

/// Whether `path` names a gzip-compressed file (by its name).
pub fn is_gzip_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// A sibling of `path` for work in progress: same folder (so a rename is atomic), hidden,
/// unique to this process.
fn partial(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

/// Takes a consistent copy of the running SQLite database into `dest` (gzip-compressed when
/// `dest` ends in `.gz`), checks it, and only then gives it its name.
pub async fn backup_sqlite(
    db: &SqliteDb,
    source: &Path,
    dest: &Path,
) -> anyhow::Result<CopyReport> {
    if !source.exists() {
        bail!(
            "there is no database at {} to back up; check DATABASE_URL (the service creates the file on its first start)",
            source.display()
        );
    }
    if dest.exists() {
        bail!(
            "{} exists already; choose a new file name (a backup never overwrites one)",
            dest.display()
        );
    }
    let copy = partial(dest, "copy");
    let _ = std::fs::remove_file(&copy);
    let result = async {
        db.copy_into(&copy).await.with_context(|| {
            format!(
                "cannot copy the database into {} (is its folder writable, with room for a copy?)",
                copy.display()
            )
        })?;
        let report = check_copy(&copy).await?;
        if is_gzip_name(dest) {
            let packed = partial(dest, "gz");
            let (from, to) = (copy.clone(), packed.clone());
            tokio::task::spawn_blocking(move || gzip_file(&from, &to))
                .await
                .map_err(|e| anyhow!("the compression task failed: {e}"))??;
            std::fs::rename(&packed, dest)
                .with_context(|| format!("cannot name the backup {}", dest.display()))?;
        } else {
            std::fs::rename(&copy, dest)
                .with_context(|| format!("cannot name the backup {}", dest.display()))?;
        }
        Ok(report)
    }
    .await;
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_file(partial(dest, "gz"));
    result
}

/// A consistent copy of the running SQLite database, checked and gzip-compressed, in memory
/// (what the `backups` job sends). The uncompressed copy lives in a temporary folder until
/// this returns.
pub async fn sqlite_gzipped(db: &SqliteDb) -> anyhow::Result<(Vec<u8>, CopyReport)> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder for the backup")?;
    let copy = dir.path().join("tollgate.db");
    db.copy_into(&copy)
        .await
        .context("cannot copy the database into a temporary folder (is there room for a copy?)")?;
    let report = check_copy(&copy).await?;
    let bytes = tokio::task::spawn_blocking(move || gzip_bytes(&copy))
        .await
        .map_err(|e| anyhow!("the compression task failed: {e}"))??;
    Ok((bytes, report))
}

/// `pg_dump` in its custom format into `dest`, or an error saying how to back up without it.
pub async fn backup_postgres(url: &str, dest: &Path) -> anyhow::Result<()> {
    if dest.exists() {
        bail!(
            "{} exists already; choose a new file name (a backup never overwrites one)",
            dest.display()
        );
    }
    let output = tokio::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(dest)
        .arg("--dbname")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "pg_dump is not installed here; install PostgreSQL's client tools (Debian: apt-get install postgresql-client) \
             or run `pg_dump --format=custom --file FILE \"$DATABASE_URL\"` where they are, or use your provider's backups"
        ),
        Err(e) => Err(anyhow!("cannot run pg_dump: {e}")),
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!(
            "pg_dump failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// Checks a SQLite copy: it opens read-only, `PRAGMA integrity_check` says `ok`, and its
/// migration history is accepted by this binary.
pub async fn check_copy(path: &Path) -> anyhow::Result<CopyReport> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut conn = options
        .connect()
        .await
        .with_context(|| format!("{} does not open as a SQLite database", path.display()))?;
    let result = async {
        let problems: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .with_context(|| format!("{} is not a SQLite database", path.display()))?;
        if problems.len() != 1 || problems[0].0 != "ok" {
            let listed: Vec<String> = problems.into_iter().take(5).map(|p| p.0).collect();
            bail!(
                "{} fails PRAGMA integrity_check: {}; use another backup",
                path.display(),
                listed.join("; ")
            );
        }
        let history = migrate::sqlite_file_history(&mut conn).await.map_err(|_| {
            anyhow!(
                "{} has no schema_migrations table: it is not a Tollgate database",
                path.display()
            )
        })?;
        verify_history(Backend::Sqlite, &history)
            .map_err(|e| anyhow!("{} cannot be used by this binary: {e}", path.display()))?;
        Ok(CopyReport {
            schema_version: history.last().map_or(0, |h| h.0),
            binary_version: migrate::latest_version(Backend::Sqlite),
            bytes,
        })
    }
    .await;
    let _ = conn.close().await;
    result
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    pub copy: CopyReport,
    /// Where the database that was replaced now is (`None` when there was none).
    pub kept: Option<PathBuf>,
}

/// Replaces the SQLite database of `settings` with the backup `source` (plain or `.gz`),
/// after checking the backup and that no running service holds the database (unless
/// `force`). The replaced database, with its WAL, is kept beside it.
pub async fn restore_sqlite(
    settings: &DatabaseSettings,
    source: &Path,
    force: bool,
    now: Timestamp,
) -> anyhow::Result<RestoreReport> {
    let DatabaseUrl::Sqlite { path: target } = &settings.url else {
        bail!(
            "DATABASE_URL is PostgreSQL; restore a pg_dump file with `pg_restore --clean --if-exists --no-owner --dbname \"$DATABASE_URL\" FILE` while the service is stopped"
        );
    };
    if !source.exists() {
        bail!("there is no backup at {}", source.display());
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the database's folder {}", dir.display()))?;
    }
    // The backup is unpacked (or copied) next to the target, so the final step is a rename.
    let staged = partial(target, "restore");
    let _ = std::fs::remove_file(&staged);
    let (from, to) = (source.to_path_buf(), staged.clone());
    tokio::task::spawn_blocking(move || {
        if is_gzip_file(&from)? {
            gunzip_file(&from, &to)
        } else {
            std::fs::copy(&from, &to)
                .map(drop)
                .map_err(anyhow::Error::from)
        }
    })
    .await
    .map_err(|e| anyhow!("the unpacking task failed: {e}"))?
    .with_context(|| {
        format!(
            "cannot unpack {} next to {}",
            source.display(),
            target.display()
        )
    })?;
    let result = async {
        let copy = check_copy(&staged).await?;
        if target.exists() && !force {
            refuse_if_held(settings, target, now).await?;
        }
        let kept = if target.exists() {
            let suffix = format!("before-restore-{}", now.as_unix_seconds());
            let kept = target.with_file_name(format!(
                "{}.{suffix}",
                target.file_name().map_or_else(
                    || "tollgate.db".into(),
                    |n| n.to_string_lossy().into_owned()
                )
            ));
            for ext in ["", "-wal", "-shm"] {
                let from = PathBuf::from(format!("{}{ext}", target.display()));
                if from.exists() {
                    let to = PathBuf::from(format!("{}{ext}", kept.display()));
                    std::fs::rename(&from, &to).with_context(|| {
                        format!("cannot move {} aside to {}", from.display(), to.display())
                    })?;
                }
            }
            Some(kept)
        } else {
            None
        };
        std::fs::rename(&staged, target)
            .with_context(|| format!("cannot put the backup in place at {}", target.display()))?;
        Ok(RestoreReport { copy, kept })
    }
    .await;
    let _ = std::fs::remove_file(&staged);
    result
}

/// Refuses when the database at `target` has live leases: a service runs on it.
async fn refuse_if_held(
    settings: &DatabaseSettings,
    target: &Path,
    now: Timestamp,
) -> anyhow::Result<()> {
    let db =
        Db::connect_lazy(settings).with_context(|| format!("cannot open {}", target.display()))?;
    let live = crate::lease::live(&db, now).await;
    db.close().await;
    match live {
        Ok(held) if !held.is_empty() => {
            let who: Vec<String> = held.iter().map(|(n, h)| format!("{n} by {h}")).collect();
            bail!(
                "the database {} is in use: a running service holds its leases ({}). Stop the service \
                 (systemctl stop tollgate, or docker compose stop tollgate) and run restore again; a service that \
                 was killed leaves its leases for up to two minutes. --force replaces the database anyway",
                target.display(),
                who.join(", ")
            )
        }
        // No lease table (not a Tollgate database, or an empty one): nothing runs on it.
        _ => Ok(()),
    }
}

fn is_gzip_file(path: &Path) -> anyhow::Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = std::fs::File::open(path)?;
    Ok(file.read(&mut magic)? == 2 && magic == [0x1f, 0x8b])
}

fn gzip_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut input = std::fs::File::open(from)?;
    let output = std::fs::File::create(to)?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    std::io::copy(&mut input, &mut encoder)?;
    let file = encoder.finish()?;
    file.sync_all()?;
    Ok(())
}

fn gzip_bytes(from: &Path) -> anyhow::Result<Vec<u8>> {
    let mut input = std::fs::File::open(from)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::copy(&mut input, &mut encoder)?;
    Ok(encoder.finish()?)
}

fn gunzip_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let input = std::fs::File::open(from)?;
    let mut decoder = flate2::read::GzDecoder::new(input);
    let mut output = std::fs::File::create(to)?;
    std::io::copy(&mut decoder, &mut output)?;
    output.flush()?;
    output.sync_all()?;
    Ok(())
}

/// Unpacks gzip bytes (tests and tools reading what the job sent).
pub fn gunzip_bytes(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}
