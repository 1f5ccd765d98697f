//! docs/reliability.md C2 on SQLite: a commit is durable before anything acknowledges it. A webhook is
//! answered 200 after its commit and Telegram never resends an acknowledged update, so a
//! commit that a power cut could still take back would lose it (a card payment included).

use tollgate::store::Db;

use crate::common::TestDb;

#[tokio::test]
async fn sqlite_commits_are_on_disk_before_they_are_acknowledged() {
    let t = TestDb::sqlite().await;
    assert!(matches!(t.db, Db::Sqlite(_)), "a SQLite test database");
    // The writer, through a transaction: its commits are what intake acknowledges.
    let mut tx = t.db.begin().await.unwrap();
    let (sync,): (i64,) =
        tollgate::on_tx!(&mut tx, c => sqlx::query_as("PRAGMA synchronous").fetch_one(c).await)
            .unwrap();
    tx.commit().await.unwrap();
    // 2 is FULL: the WAL is synced at every commit (NORMAL, 1, syncs only at checkpoints).
    assert_eq!(sync, 2, "PRAGMA synchronous on the writer");
    let (mode,): (String,) =
        tollgate::on_db!(&t.db, p => sqlx::query_as("PRAGMA journal_mode").fetch_one(p).await)
            .unwrap();
    assert_eq!(mode, "wal");
}
