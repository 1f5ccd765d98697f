//! The SQLite connection's own tests: hand-over, transactions, readers and checkpoints.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Arguments, ConnectOptions, Error, Executor, SqliteConnection};

use super::checkpoint::{CHECKPOINT_BACKSTOP, CHECKPOINT_INTERVAL};
use super::readers::reads_only;
use super::transaction::{MOST_DEFERRED, Sent};
use super::{SqliteDb, SqliteTx};
use crate::store::{DeferredWrite, Tx};

fn db(dir: &tempfile::TempDir, timeout: Duration) -> SqliteDb {
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("t.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    SqliteDb::new(options, timeout)
}

/// A second, independent connection to the same file.
async fn another(dir: &tempfile::TempDir) -> tokio::sync::Mutex<SqliteConnection> {
    let conn = SqliteConnectOptions::new()
        .filename(dir.path().join("t.db"))
        .connect()
        .await
        .unwrap();
    tokio::sync::Mutex::new(conn)
}

async fn sum(conn: &mut SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(SUM(x), 0) FROM t")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// A database in `dir` with an empty table `t (x INTEGER)`.
async fn with_table(dir: &tempfile::TempDir) -> SqliteDb {
    let db = db(dir, Duration::from_secs(5));
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&db)
        .await
        .unwrap();
    db
}

async fn count(db: &SqliteDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn connects_on_first_use_and_runs_statements() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir, Duration::from_secs(5));
    assert_eq!((db.size(), db.num_idle()), (0, 0), "nothing opened yet");
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&db)
        .await
        .unwrap();
    let rows = sqlx::query("INSERT INTO t VALUES (1), (2) RETURNING x")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(count(&db).await, 2);
    assert_eq!((db.size(), db.num_idle()), (1, 1));
}

/// A transaction that writes row 1 of `t` and is dropped without commit or rollback.
async fn write_then_drop(db: &SqliteDb) {
    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut tx)
        .await
        .unwrap();
    drop(tx);
}

#[tokio::test]
async fn a_dropped_or_aborted_transaction_rolls_back_before_the_next_holder() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    write_then_drop(&db).await;
    assert_eq!(count(&db).await, 0, "dropped: rolled back");

    // A task killed while its transaction is open.
    let (inserted, wait) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("INSERT INTO t VALUES (2)")
                .execute(&mut tx)
                .await
                .unwrap();
            let _ = inserted.send(());
            std::future::pending::<()>().await;
        }
    });
    wait.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(count(&db).await, 0, "aborted: rolled back");

    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t VALUES (3)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        count(&db).await,
        1,
        "the next transaction works and commits"
    );
}

#[tokio::test]
async fn a_transactions_begin_and_commit_travel_with_its_statements() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    sqlx::query("INSERT INTO t VALUES (1), (2), (3)")
        .execute(&db)
        .await
        .unwrap();
    // A transaction with no statement sends nothing and leaves nothing open.
    db.begin_with("BEGIN IMMEDIATE")
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    // The first statement carries the BEGIN; what it reports is its own (BEGIN's "rows
    // affected" would be the 3 of the insert above).
    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let r = sqlx::query("UPDATE t SET x = 10 WHERE x = 1")
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    let x: i64 = sqlx::query_scalar("SELECT x FROM t WHERE x = 10")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(x, 10, "the transaction sees its own write");
    let other = another(&dir).await;
    assert_eq!(
        sum(&mut *other.lock().await).await,
        6,
        "not visible outside before the commit"
    );
    let rows = tx
        .commit_with(sqlx::query("UPDATE t SET x = 20 WHERE x = 2 RETURNING x"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "commit_with returns its statement's rows");
    assert_eq!(sum(&mut *other.lock().await).await, 33, "both committed");
    // A transaction whose only statement is sent with its BEGIN and COMMIT.
    let rows = db
        .begin_with("BEGIN IMMEDIATE")
        .await
        .unwrap()
        .commit_with(sqlx::query("UPDATE t SET x = x + 1 RETURNING x"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(sum(&mut *other.lock().await).await, 36);
    // A failing last statement commits nothing, and the connection goes on.
    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t VALUES (100)")
        .execute(&mut tx)
        .await
        .unwrap();
    let e = tx
        .commit_with(sqlx::query("INSERT INTO missing VALUES (1)"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no such table"), "{e}");
    assert_eq!(count(&db).await, 3, "nothing of it committed");
    assert_eq!(sum(&mut *other.lock().await).await, 36);
}

#[tokio::test]
async fn an_abandoned_transaction_lets_other_connections_write_without_waiting_for_ours() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    write_then_drop(&db).await;
    // Nothing uses `db` from here on: the rollback must still happen, or the other
    // connection's write would wait for the write lock and time out.
    let other = another(&dir).await;
    let mut other = other.lock().await;
    sqlx::query("PRAGMA busy_timeout = 5000")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(sum(&mut other).await, 2, "ours rolled back, theirs written");
}

#[tokio::test]
async fn the_wal_is_copied_back_beside_the_connection_not_by_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir, Duration::from_secs(5));
    let threshold: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(threshold, i64::from(CHECKPOINT_BACKSTOP));
    sqlx::query("CREATE TABLE b (x BLOB)")
        .execute(&db)
        .await
        .unwrap();
    // About 2,000 pages: past SQLite's default threshold, short of the backstop, so only
    // the checkpointer copies them into the database file.
    for _ in 0..20 {
        let tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
        tx.commit_with(sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
             INSERT INTO b SELECT randomblob(4000) FROM n",
        ))
        .await
        .unwrap();
    }
    let file = dir.path().join("t.db");
    let mut size = 0;
    for _ in 0..100 {
        size = std::fs::metadata(&file).unwrap().len();
        if size >= 8_000_000 {
            break;
        }
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
    }
    assert!(
        size >= 8_000_000,
        "the database file holds {size} bytes after 10 s"
    );
}

#[tokio::test]
async fn a_held_connection_makes_others_time_out_and_close_refuses_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir, Duration::from_millis(200));
    let held = db.acquire().await.unwrap();
    assert_eq!(db.num_idle(), 0);
    let e = db.acquire().await.unwrap_err();
    assert!(matches!(e, Error::PoolTimedOut), "{e}");
    drop(held);
    assert!(db.acquire().await.is_ok(), "free again once let go");
    db.close().await;
    let e = sqlx::query("SELECT 1").execute(&db).await.unwrap_err();
    assert!(matches!(e, Error::PoolClosed), "{e}");
}

/// Queues an insert of each `(x, ahead)` into `t` — in the fast lane when `ahead` — in
/// that order while the connection is held, lets it go, and returns the order the inserts
/// got the connection in.
async fn order_of_turns(db: &SqliteDb, inserts: &[(i64, bool)]) -> Vec<i64> {
    let first = db.acquire().await.unwrap();
    let mut tasks = Vec::new();
    for &(x, ahead) in inserts {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = if ahead {
                db.acquire_ahead().await.unwrap()
            } else {
                db.acquire().await.unwrap()
            };
            let r = sqlx::query("INSERT INTO t VALUES ($1)")
                .bind(x)
                .execute(&mut *conn)
                .await;
            conn.check(r).unwrap();
        }));
        // On this single-threaded runtime, yielding lets the new task run until it
        // waits on the lock, before the next one is spawned.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
    }
    drop(first);
    for t in tasks {
        t.await.unwrap();
    }
    sqlx::query_scalar("SELECT x FROM t ORDER BY rowid")
        .fetch_all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn waiting_tasks_get_the_connection_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    let inserts: Vec<(i64, bool)> = (0..5).map(|x| (x, false)).collect();
    assert_eq!(order_of_turns(&db, &inserts).await, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn the_fast_lane_waits_for_the_holder_and_one_queued_task_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    let inserts = [(0, false), (1, false), (2, false), (100, true), (3, false)];
    assert_eq!(
        order_of_turns(&db, &inserts).await,
        [0, 100, 1, 2, 3],
        "the fast lane passes every ordinary task but the one already at the connection"
    );
}

#[test]
fn only_a_lone_select_counts_as_reading_only() {
    assert!(reads_only("SELECT x FROM t WHERE x = $1"));
    assert!(reads_only("  select count(*) from t;\n"));
    assert!(!reads_only("INSERT INTO t VALUES (1) RETURNING x"));
    assert!(!reads_only("UPDATE t SET x = 2 RETURNING x"));
    assert!(!reads_only(
        "WITH d AS (DELETE FROM t RETURNING x) SELECT * FROM d"
    ));
    assert!(!reads_only("SELECT 1; DELETE FROM t"));
    assert!(!reads_only("PRAGMA wal_checkpoint(PASSIVE)"));
    assert!(!reads_only("SELEC"));
}

#[tokio::test]
async fn a_select_reads_beside_an_open_transaction_and_sees_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir, Duration::from_millis(300));
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&db)
        .await
        .unwrap();
    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&mut tx)
        .await
        .unwrap();
    // The writer is held by `tx`: on it, these would time out.
    assert_eq!(sum(&mut db.acquire_read().await.unwrap()).await, 1);
    let (a, b) = tokio::join!(count(&db), count(&db));
    assert_eq!(
        (a, b),
        (1, 1),
        "two reads at once, neither waiting for the writer"
    );
    // From another task: this one holds `tx`, and waiting for itself would panic.
    let e = tokio::spawn({
        let db = db.clone();
        async move { sqlx::query("SELECT COUNT(*) FROM t").execute(&db).await }
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(e, Error::PoolTimedOut),
        "a statement executed goes to the writer: {e}"
    );
    tx.commit().await.unwrap();
    assert_eq!(count(&db).await, 2, "a read after the commit sees it");
    let e = sqlx::query("INSERT INTO t VALUES (3)")
        .execute(&mut *db.acquire_read().await.unwrap())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("readonly"),
        "a reader cannot write: {e}"
    );
    db.close().await;
    let e = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t")
        .fetch_one(&db)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PoolClosed), "{e}");
}

/// The SQLite transaction inside `tx`.
fn on_sqlite(tx: &mut Tx) -> &mut SqliteTx {
    match tx {
        Tx::Sqlite(t) => t,
        Tx::Postgres(_) => unreachable!("a SQLite database begins SQLite transactions"),
    }
}

fn deferred_insert(x: i64) -> DeferredWrite {
    DeferredWrite::new("INSERT INTO t VALUES ($1)").bind(x)
}

#[test]
fn a_waiting_write_travels_after_the_begin_with_its_parameters_renumbered() {
    let query = sqlx::query("UPDATE t SET x = $1 WHERE x = $2")
        .bind(5_i64)
        .bind(6_i64);
    let deferred = [
        deferred_insert(7),
        DeferredWrite::new("DELETE FROM t WHERE x = $1;").bind(8_i64),
    ];
    let sent = Sent::new(query, Some("BEGIN IMMEDIATE"), &deferred, ";\nCOMMIT").unwrap();
    assert_eq!(
        sent.sql.as_str(),
        "BEGIN IMMEDIATE;\nINSERT INTO t VALUES ($3);\nDELETE FROM t WHERE x = $4;\n\
         UPDATE t SET x = $1 WHERE x = $2;\nCOMMIT"
    );
    assert_eq!(sent.arguments.map(|a| a.len()), Some(4));
    assert_eq!(sent.lead, 3, "the BEGIN and two writes go in front");
}

#[tokio::test]
async fn waiting_writes_run_in_order_before_the_next_statement_and_commit_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
    tx.defer(deferred_insert(1)).await.unwrap();
    tx.defer(deferred_insert(2)).await.unwrap();
    let t = on_sqlite(&mut tx);
    assert_eq!(
        t.deferred.len(),
        2,
        "nothing is sent before the next statement"
    );
    // The next statement sees both rows and reports only its own effect and rows.
    let changed = sqlx::query("UPDATE t SET x = x + 10 WHERE x = 1")
        .execute(&mut *t)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    tx.defer(deferred_insert(3)).await.unwrap();
    let t = on_sqlite(&mut tx);
    let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
        .fetch_all(&mut *t)
        .await
        .unwrap();
    assert_eq!(rows, vec![2, 3, 11]);
    tx.defer(deferred_insert(4)).await.unwrap();
    let t = on_sqlite(&mut tx);
    // A statement dropped before it was sent takes nothing with it.
    drop((&mut *t).fetch_many(sqlx::query("SELECT 1")));
    assert_eq!(t.deferred.len(), 1, "the write still waits");
    let first: Option<i64> = sqlx::query_scalar("SELECT MAX(x) FROM t")
        .fetch_optional(&mut *t)
        .await
        .unwrap();
    assert_eq!(first, Some(11));
    // A write left waiting at the end commits with the COMMIT.
    tx.defer(deferred_insert(5)).await.unwrap();
    assert_eq!(count(&db).await, 0, "nothing is visible before the commit");
    tx.commit().await.unwrap();
    assert_eq!(count(&db).await, 5);

    // A transaction of waiting writes only, more than travel in one text.
    let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
    for x in 0..(3 * MOST_DEFERRED as i64 + 1) {
        tx.defer(deferred_insert(100 + x)).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(count(&db).await, 5 + 3 * MOST_DEFERRED as i64 + 1);

    // Rolled back, waiting writes are dropped.
    let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
    tx.defer(deferred_insert(9)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&db).await, 5 + 3 * MOST_DEFERRED as i64 + 1);
}

#[tokio::test]
async fn a_failing_waiting_write_fails_the_statement_it_travels_with_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
    let t = on_sqlite(&mut tx);
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut *t)
        .await
        .unwrap();
    tx.defer(DeferredWrite::new("INSERT INTO missing VALUES ($1)").bind(2_i64))
        .await
        .unwrap();
    let e = tx.commit().await.unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert_eq!(
        count(&db).await,
        0,
        "the transaction's insert is rolled back"
    );

    // The same through the next statement: it fails, and it did not run.
    let mut tx = Tx::Sqlite(db.begin_with("BEGIN IMMEDIATE").await.unwrap());
    tx.defer(DeferredWrite::new("INSERT INTO missing VALUES ($1)").bind(2_i64))
        .await
        .unwrap();
    let t = on_sqlite(&mut tx);
    let e = sqlx::query("INSERT INTO t VALUES (3)")
        .execute(&mut *t)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    drop(tx);
    sqlx::query("INSERT INTO t VALUES (4)")
        .execute(&db)
        .await
        .unwrap();
    let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows, vec![4], "the dropped transaction was rolled back");
}

#[cfg(debug_assertions)]
#[tokio::test]
#[should_panic(expected = "waited for the SQLite writer while it holds a transaction on it")]
async fn a_task_waiting_for_its_own_transaction_panics_in_debug_builds_instead_of_timing_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir, Duration::from_millis(200));
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&db)
        .await
        .unwrap();
    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut tx)
        .await
        .unwrap();
    // Would wait for `tx`, which waits for this task.
    let _ = sqlx::query("INSERT INTO t VALUES (2)").execute(&db).await;
}

#[tokio::test]
async fn after_its_transaction_ends_a_task_may_use_the_database_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    let tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    tx.commit_with(sqlx::query("INSERT INTO t VALUES (1)"))
        .await
        .unwrap();
    write_then_drop(&db).await;
    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t VALUES (3)")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    sqlx::query("INSERT INTO t VALUES (4)")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        count(&db).await,
        2,
        "committed, then written after each end"
    );
}

#[tokio::test]
async fn futures_of_one_task_may_wait_for_each_others_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_table(&dir).await;
    let mut tx = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut tx)
        .await
        .unwrap();
    let commit = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.commit().await.unwrap();
    };
    let write = async {
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&db)
            .await
            .unwrap();
    };
    tokio::join!(commit, write);
    assert_eq!(
        count(&db).await,
        2,
        "the write waited for the commit, no panic"
    );
}
