//! The `backups` job: every `BACKUP_INTERVAL`, a consistent copy of the SQLite database,
//! checked and gzip-compressed, is sent to the admins' chat with `sendDocument`.
//!
//! Why through Telegram: a one-server SQLite deployment has its data on one disk; the admins'
//! chat is somewhere else, costs nothing, and keeps every copy with its date. The copy is
//! taken with `backup::sqlite_gzipped` (one read transaction beside the writer, checked before
//! it is sent), so the bot keeps answering while it runs. One replica sends (a singleton), and
//! a copy over Telegram's 50 MB limit for bots fails the iteration with what to do instead,
//! rather than being split or sent somewhere else unasked. A failed send is retried by the
//! runner's backoff like any job's failure; nothing is written to the database.

use std::time::Duration;

use anyhow::bail;

use crate::backup;
use crate::store::{Db, SqliteDb};
use crate::telegram::api::BotApi;
use crate::time::SharedClock;

use super::{IterationFuture, Job};

/// Telegram's limit on a file a bot uploads (50 MB).
pub const TELEGRAM_UPLOAD_LIMIT: usize = 50 << 20;

/// Longest an upload may take (a 50 MB file over a slow link or a proxy).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Backups {
    db: SqliteDb,
    api: BotApi,
    clock: SharedClock,
    chat_id: i64,
    interval: Duration,
}

impl Backups {
    /// The job for `db`; `None` on PostgreSQL (the configuration refuses `BACKUP_INTERVAL`
    /// there, so this is only a guard).
    pub fn new(
        db: &Db,
        api: BotApi,
        clock: SharedClock,
        chat_id: i64,
        interval: Duration,
    ) -> Option<Backups> {
        match db {
            Db::Sqlite(db) => Some(Backups {
                db: db.clone(),
                api,
                clock,
                chat_id,
                interval,
            }),
            Db::Postgres(_) => None,
        }
    }

    async fn send_one(&self) -> anyhow::Result<u64> {
        let (bytes, report) = backup::sqlite_gzipped(&self.db).await?;
        if bytes.len() > TELEGRAM_UPLOAD_LIMIT {
            bail!(
                "the compressed backup is {} MB, over Telegram's 50 MB limit for bots: take backups with \
                 `tollgate backup FILE` to storage of your own and unset BACKUP_INTERVAL",
                bytes.len() >> 20
            );
        }
        let now = self.clock.now();
        // `2026-12-07T10:15:03.123Z` → `tollgate-2026-12-07T10-15-03Z.db.gz`
        let stamp = now.to_string();
        let stamp = format!("{}Z", stamp.get(..19).unwrap_or(&stamp).replace(':', "-"));
        let name = format!("tollgate-{stamp}.db.gz");
        let caption = format!(
            "Tollgate backup {now}: schema {}, {} bytes uncompressed. Restore with `tollgate restore {name}`.",
            report.schema_version, report.bytes
        );
        let size = bytes.len();
        self.api
            .send_document_bytes(
                self.chat_id,
                &name,
                backup::GZIP_MIME,
                bytes,
                &caption,
                UPLOAD_TIMEOUT,
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot send the backup to chat {}: {e}", self.chat_id))?;
        tracing::info!(chat = self.chat_id, file = %name, bytes = size, "backup sent");
        Ok(1)
    }
}

impl Job for Backups {
    fn name(&self) -> &'static str {
        "backups"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn deadline(&self) -> Duration {
        UPLOAD_TIMEOUT + Duration::from_secs(300)
    }

    fn singleton(&self) -> bool {
        true
    }

    fn run_once(&self) -> IterationFuture<'_> {
        Box::pin(self.send_one())
    }
}
