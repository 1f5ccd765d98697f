//! The `backups` job's settings: how often the SQLite database is copied and sent, compressed,
//! to an admin chat (`BACKUP_INTERVAL`), and which chat (`BACKUP_CHAT_ID`, else the first of
//! `ADMIN_IDS`).
//!
//! Why a chat: a single-server SQLite deployment often has nowhere else to keep a copy; a
//! Telegram chat of the admins is off the machine and costs nothing. The job is off unless
//! `BACKUP_INTERVAL` is set. PostgreSQL deployments back up with `pg_dump` or their
//! provider's snapshots instead, so the variable is refused there rather than ignored.

use std::time::Duration;

use super::DatabaseSettings;
use super::reader::{Reader, duration_between};
use crate::config::duration::format_duration;

/// Where and how often backups are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    pub interval: Duration,
    pub chat_id: i64,
}

pub(super) fn read_backups(
    r: &mut Reader<'_>,
    admin_ids: Option<&[i64]>,
    database: Option<&DatabaseSettings>,
) -> Option<BackupSettings> {
    let interval = r.read(
        "BACKUP_INTERVAL",
        None,
        "use a duration between 1s and 30d, e.g. 1d, or unset BACKUP_INTERVAL to send no backups",
        duration_between(Duration::from_secs(1), Duration::from_secs(30 * 86_400)),
        |d: &Duration| format_duration(*d),
    );
    let chat = r.read(
        "BACKUP_CHAT_ID",
        None,
        "set BACKUP_CHAT_ID to the numeric id of the chat that receives backups (a user id, or a group's negative id), or unset it to use the first of ADMIN_IDS",
        |t| {
            t.parse::<i64>()
                .ok()
                .filter(|id| *id != 0)
                .ok_or_else(|| format!("{t:?} is not a Telegram chat id"))
        },
        i64::to_string,
    );
    let interval = interval?;
    if database.is_some_and(|d| !d.url.is_sqlite()) {
        r.fail(
            "BACKUP_INTERVAL",
            "is set, but DATABASE_URL is PostgreSQL: the backups job sends SQLite copies only".to_owned(),
            "unset BACKUP_INTERVAL and back PostgreSQL up with pg_dump (`tollgate backup FILE` runs it) or your provider's snapshots",
        );
        return None;
    }
    let chat_id = match (chat, admin_ids.and_then(|ids| ids.first().copied())) {
        (Some(chat), _) => chat,
        (None, Some(admin)) => admin,
        (None, None) => {
            r.fail(
                "BACKUP_CHAT_ID",
                "is not set, and ADMIN_IDS names nobody: BACKUP_INTERVAL needs a chat to send backups to".to_owned(),
                "set BACKUP_CHAT_ID to the admins' chat id, or put your Telegram user id first in ADMIN_IDS",
            );
            return None;
        }
    };
    Some(BackupSettings { interval, chat_id })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::env::deployment;
    use crate::config::env::testing::{env, errors};

    #[test]
    fn backups_are_off_unless_an_interval_is_set_and_go_to_the_first_admin() {
        let (d, _) = deployment(&env(&[("ADMIN_IDS", "11,22")])).unwrap();
        assert_eq!(d.backup, None);
        let (d, _) =
            deployment(&env(&[("ADMIN_IDS", "11,22"), ("BACKUP_INTERVAL", "1d")])).unwrap();
        let b = d.backup.unwrap();
        assert_eq!((b.interval, b.chat_id), (Duration::from_secs(86_400), 11));
        let (d, _) = deployment(&env(&[
            ("ADMIN_IDS", "11"),
            ("BACKUP_INTERVAL", "6h"),
            ("BACKUP_CHAT_ID", "-100123"),
        ]))
        .unwrap();
        assert_eq!(d.backup.unwrap().chat_id, -100_123);
    }

    #[test]
    fn backups_without_a_chat_or_on_postgres_are_refused_with_a_fix() {
        let e = errors(&[("BACKUP_INTERVAL", "1d")]);
        assert!(e.contains("BACKUP_CHAT_ID") && e.contains("fix:"), "{e}");
        let e = errors(&[
            ("BACKUP_INTERVAL", "1d"),
            ("ADMIN_IDS", "1"),
            ("DATABASE_URL", "postgres://u@db/x"),
        ]);
        assert!(
            e.contains("BACKUP_INTERVAL") && e.contains("pg_dump"),
            "{e}"
        );
        let e = errors(&[("BACKUP_INTERVAL", "0s"), ("ADMIN_IDS", "1")]);
        assert!(e.contains("outside"), "{e}");
        let e = errors(&[("BACKUP_CHAT_ID", "abc")]);
        assert!(e.contains("not a Telegram chat id"), "{e}");
    }
}
