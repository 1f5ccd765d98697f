//! Backups and restores (docs/operating.md, "Backups and restore"): `tollgate backup` taken
//! while a load writes holds every update acknowledged before it started and passes the checks;
//! `tollgate restore` refuses what it must (a database in use, a copy from a newer binary, a
//! file that is not a database) and keeps what it replaces; the `backups` job sends the copy
//! through the emulator's `sendDocument`, and Telegram's size refusal is retried, not lost.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use telegram_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use tokio_util::sync::CancellationToken;
use tollgate::app::AppOptions;
use tollgate::telegram::echo::EchoHandler;

use crate::common::service::{Service, base_env, http_client, run_to_end};
use crate::common::telegram::{
    WEBHOOK_SECRET, emulator, free_port, in_process, polling_env, started_user, wait_registered,
    webhook_env, with,
};
use crate::common::{TestDb, wait_for};
use crate::db_test;

fn update(update_id: i64, chat: i64) -> String {
    serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 1_800_000_000,
            "from": { "id": chat, "is_bot": false, "first_name": "Load" },
            "chat": { "id": chat, "type": "private", "first_name": "Load" },
            "text": "load"
        }
    })
    .to_string()
}

/// Posts updates to the webhook from `writers` tasks until `stop`; every update id answered
/// 200 (stored, per the webhook's contract) is pushed to `acked`.
fn load(
    url: String,
    writers: i64,
    acked: Arc<Mutex<Vec<i64>>>,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let client = http_client();
                // Bounded: at most 20,000 updates per writer.
                for i in 0..20_000i64 {
                    if stop.is_cancelled() {
                        break;
                    }
                    let id = 1_000_000 + w * 100_000 + i;
                    let status = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
                        .body(update(id, 7_000 + w * 10 + i % 10))
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    if matches!(status, Ok(200)) {
                        acked.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect()
}

/// The update ids a SQLite database file holds in `tg_inbox`.
async fn stored_ids_sqlite(path: &Path) -> Vec<i64> {
    let mut c = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let ids = sqlx::query_scalar("SELECT update_id FROM tg_inbox")
        .fetch_all(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    ids
}

fn sqlite_path(t: &TestDb) -> PathBuf {
    PathBuf::from(t.url.trim_start_matches("sqlite://"))
}

db_test!(async fn a_backup_under_load_holds_every_acknowledged_update(t) {
    let emu = emulator(false).await;
    let port = free_port();
    let app = in_process(&webhook_env(&t.url, &emu, port), Arc::new(EchoHandler), AppOptions::default()).await;
    wait_registered(&emu, port).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let url = format!("http://127.0.0.1:{port}/telegram/webhook");
    let writers = load(url, 4, acked.clone(), stop.clone());
    wait_for("the load to be under way", Duration::from_secs(30), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 300).then_some(()) }
    })
    .await;
    // Everything acknowledged before the backup starts must be in it.
    let before: Vec<i64> = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(&t.url);
    if t.is_postgres() {
        let dump = dir.path().join("tollgate.dump");
        let (status, out, err) = run_to_end(&["backup", dump.to_str().unwrap()], &env).await;
        assert!(status.success(), "backup failed: {out}{err}");
        assert!(out.contains("pg_restore"), "{out}");
        let during = acked.lock().unwrap().len();
        stop.cancel();
        for w in writers {
            w.await.unwrap();
        }
        assert!(during > before.len(), "the load wrote while the backup ran");
        // Restore the dump into a fresh database and look.
        let fresh = TestDb::postgres_with(false).await.unwrap();
        let restored = std::process::Command::new("pg_restore")
            .args(["--no-owner", "--dbname", &fresh.url, dump.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
        let pool = crate::common::pg_pool(&fresh.url, None);
        let ids: Vec<i64> = sqlx::query_scalar("SELECT update_id FROM tg_inbox").fetch_all(&pool).await.unwrap();
        let ids: std::collections::HashSet<i64> = ids.into_iter().collect();
        let missing: Vec<&i64> = before.iter().filter(|id| !ids.contains(id)).collect();
        assert!(missing.is_empty(), "{} acknowledged updates missing from the dump", missing.len());
        pool.close().await;
    } else {
        let file = dir.path().join("tollgate-backup.db.gz");
        let (status, out, err) = run_to_end(&["backup", file.to_str().unwrap()], &env).await;
        assert!(status.success(), "backup failed: {out}{err}");
        assert!(out.contains("integrity ok"), "{out}");
        let during = acked.lock().unwrap().len();
        // The copy: unpacked, it opens, passes integrity_check and knows its migrations.
        let bytes = std::fs::read(&file).unwrap();
        let plain = dir.path().join("plain.db");
        std::fs::write(&plain, tollgate::backup::gunzip_bytes(&bytes).unwrap()).unwrap();
        let report = tollgate::backup::check_copy(&plain).await.unwrap();
        assert_eq!(report.schema_version, report.binary_version);
        let ids: std::collections::HashSet<i64> = stored_ids_sqlite(&plain).await.into_iter().collect();
        let missing: Vec<&i64> = before.iter().filter(|id| !ids.contains(id)).collect();
        assert!(missing.is_empty(), "{} acknowledged updates missing from the backup", missing.len());

        // A restore over the running service's database is refused…
        let (status, _, err) = run_to_end(&["restore", file.to_str().unwrap()], &env).await;
        assert!(!status.success());
        assert!(err.contains("is in use") && err.contains("Stop the service"), "{err}");
        stop.cancel();
        for w in writers {
            w.await.unwrap();
        }
        assert!(during > before.len(), "the load wrote while the backup ran");
        app.shutdown().await.unwrap();
        t.db.close().await;
        // …and done once it is stopped: the backup is in place, the old database kept.
        let (status, out, err) = run_to_end(&["restore", file.to_str().unwrap()], &env).await;
        assert!(status.success(), "restore failed: {out}{err}");
        let kept = out
            .lines()
            .find_map(|l| l.strip_prefix("the database it replaced is kept at "))
            .map(PathBuf::from)
            .expect("the kept database is named");
        assert!(kept.exists());
        let restored: std::collections::HashSet<i64> =
            stored_ids_sqlite(&sqlite_path(t)).await.into_iter().collect();
        assert_eq!(restored, ids, "the restored database is the backup");
        let newer: std::collections::HashSet<i64> = stored_ids_sqlite(&kept).await.into_iter().collect();
        assert!(newer.len() >= restored.len());
        return;
    }
    app.shutdown().await.unwrap();
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_newer_schema_and_files_that_are_not_databases() {
    let t = TestDb::sqlite().await;
    let env = base_env(&t.url);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let (status, out, err) = run_to_end(&["backup", copy.to_str().unwrap()], &env).await;
    assert!(status.success(), "{out}{err}");
    // The same file again is never overwritten.
    let (status, _, err) = run_to_end(&["backup", copy.to_str().unwrap()], &env).await;
    assert!(!status.success() && err.contains("exists already"), "{err}");

    // A copy made by a newer binary (a migration this one does not know).
    let newer = dir.path().join("newer.db");
    std::fs::copy(&copy, &newer).unwrap();
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", newer.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'from_the_future', 'x', 0)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let target = dir.path().join("target").join("tollgate.db");
    let target_env = base_env(&format!("sqlite://{}", target.display()));
    let (status, _, err) = run_to_end(&["restore", newer.to_str().unwrap()], &target_env).await;
    assert!(!status.success());
    assert!(
        err.contains("cannot be used by this binary") && err.contains("9999"),
        "{err}"
    );
    assert!(!target.exists(), "nothing was put in place");

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database, just some bytes that are long enough........................................................................................").unwrap();
    let (status, _, err) = run_to_end(&["restore", junk.to_str().unwrap()], &target_env).await;
    assert!(!status.success());
    assert!(
        err.contains("not a SQLite database") || err.contains("does not open"),
        "{err}"
    );
    assert!(!target.exists());

    // The good copy restores into an empty place.
    let (status, out, err) = run_to_end(&["restore", copy.to_str().unwrap()], &target_env).await;
    assert!(status.success(), "{out}{err}");
    assert!(tollgate::backup::check_copy(&target).await.is_ok());

    // PostgreSQL: restore says how instead.
    let pg_env = base_env("postgres://postgres@127.0.0.1:5432/whatever");
    let (status, _, err) = run_to_end(&["restore", copy.to_str().unwrap()], &pg_env).await;
    assert!(!status.success() && err.contains("pg_restore"), "{err}");
}

/// `tollgate run` polling `emu`, sending a backup every second to an admin who started the bot.
async fn backing_up_to_an_admin(t: &TestDb, emu: &RunningEmulator) -> (Service, i64) {
    let admin = started_user(emu, "Admin").await;
    let env = with(
        polling_env(&t.url, emu),
        &[("ADMIN_IDS", &admin.to_string()), ("BACKUP_INTERVAL", "1s")],
    );
    (Service::start(&env).await, admin)
}

async fn emulator_with_document_limit(limit: usize) -> RunningEmulator {
    let mut config = EmulatorConfig::without_rate_limits();
    config.limits.max_document_bytes = limit;
    Emulator::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backups_job_sends_a_checked_compressed_copy_to_the_admin() {
    let t = TestDb::sqlite().await;
    let emu = emulator(false).await;
    let tg = emu.client();
    let (mut svc, admin) = backing_up_to_an_admin(&t, &emu).await;
    let document = wait_for(
        "a backup document in the admin's chat",
        Duration::from_secs(30),
        || {
            let tg = tg.clone();
            async move {
                let t = tg.transcript(admin).await.ok()?;
                t.messages
                    .into_iter()
                    .find_map(|m| m.document.map(|d| (d, m.text)))
            }
        },
    )
    .await;
    let (info, caption) = document;
    assert!(
        info.file_name.starts_with("tollgate-") && info.file_name.ends_with(".db.gz"),
        "{info:?}"
    );
    assert_eq!(info.mime_type, "application/gzip");
    assert!(caption.unwrap_or_default().contains("tollgate restore"));
    let bytes = tg.file(&info.file_id).await.unwrap();
    assert_eq!(bytes.len() as u64, info.file_size);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("sent.db");
    std::fs::write(&plain, tollgate::backup::gunzip_bytes(&bytes).unwrap()).unwrap();
    let report = tollgate::backup::check_copy(&plain).await.unwrap();
    assert_eq!(report.schema_version, report.binary_version);
    // One replica sends each time: the job is a singleton under its lease.
    assert!(
        svc.log().contains("\"job\":\"backups\""),
        "the job logs its iterations"
    );
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_telegram_refuses_as_too_big_is_retried_and_logged() {
    let t = TestDb::sqlite().await;
    let emu = emulator_with_document_limit(1_000).await;
    let tg = emu.client();
    let (mut svc, admin) = backing_up_to_an_admin(&t, &emu).await;
    wait_for(
        "two failed backup iterations",
        Duration::from_secs(30),
        || {
            let log = svc.log();
            async move {
                let failures = log
                    .lines()
                    .filter(|l| {
                        l.contains("ITERATION_END")
                            && l.contains("\"job\":\"backups\"")
                            && l.contains("\"outcome\":\"error\"")
                    })
                    .count();
                (failures >= 2 && log.contains("file is too big")).then_some(())
            }
        },
    )
    .await;
    let transcript = tg.transcript(admin).await.unwrap();
    assert!(transcript.messages.iter().all(|m| m.kind != "document"));
    assert!(svc.is_running());
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}
