//! A caller cancelled in the middle of a transaction — a handler cut at its deadline, a job
//! past its hard deadline, a component restarted by the watchdog, a shutdown — must leave no
//! transaction open on the connection it used. Otherwise the next task's statements run
//! inside a transaction nobody owns: they hold their row locks and are never committed
//! (docs/reliability.md A3, A7, C3). Found in CI: a notice row of `jobs_month`'s killed instances
//! stayed locked for minutes. And under a storm of failing, abandoned and cancelled work every
//! connection comes back idle (C4).

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use tollgate::config::{DatabaseSettings, DatabaseUrl};
use tollgate::store::{Db, Tx};
use tollgate::{on_db, on_tx};

use crate::common::{settings, wait_for};
use crate::db_test;

/// Polls `fut` `polls` times, letting the runtime move its I/O on between polls, then drops
/// it unless it finished: a caller cancelled at that point.
async fn cancel_after<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..polls {
        if let Poll::Ready(v) = futures::poll!(fut.as_mut()) {
            return Some(v);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// Polls `fut` once, lets the database answer, then drops it without reading the answer:
/// a caller cancelled after its statement ran but before it saw the result.
async fn cancel_unread<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    if let Poll::Ready(v) = futures::poll!(fut.as_mut()) {
        return Some(v);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    None
}

/// Writes `key` outside any explicit transaction, through `db`.
async fn write(db: &Db, key: &str) {
    on_db!(db, p => sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, 'v', 0)"
    ).bind(key).execute(p).await.map(|_| ()))
    .unwrap();
}

/// Writes `key` inside the transaction `tx`.
async fn write_in(tx: &mut Tx, key: &str) {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, 'v', 0)"
    ).bind(key).execute(c).await.map(|_| ()))
    .unwrap();
}

/// Whether `key` is committed, as another connection sees it.
async fn committed(db: &Db, key: &str) -> bool {
    let n: i64 = on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM settings WHERE key = $1"
    ).bind(key).fetch_one(p).await)
    .unwrap();
    n == 1
}

db_test!(async fn a_transaction_cancelled_at_any_point_leaves_none_open(t) {
    // The subject has one connection, so every write below uses the connection the
    // cancelled transaction used; `t.db` is the observer on other connections.
    let url = DatabaseUrl::parse(&t.url).unwrap();
    let subject = Db::connect_lazy(&DatabaseSettings { max_connections: 1, ..settings(url) }).unwrap();
    write(&subject, "warm-up").await;

    // A transaction's start: its begin and first statement (on SQLite the BEGIN travels with
    // that statement; on PostgreSQL it is a round trip of its own).
    let start = |key: String| {
        let subject = subject.clone();
        async move {
            let mut tx = subject.begin().await.unwrap();
            write_in(&mut tx, &key).await;
            tx
        }
    };
    let mut cancelled = [0_usize; 2];
    for polls in 1..=8 {
        for round in 0..10 {
            // Cancelled while starting; never committed either way.
            let inside = format!("started-{polls}-{round}");
            match cancel_after(start(inside.clone()), polls).await {
                Some(tx) => drop(tx),
                None => cancelled[0] += 1,
            }
            let key = format!("after-start-{polls}-{round}");
            write(&subject, &key).await;
            assert!(
                committed(&t.db, &key).await,
                "a write after a start cancelled at poll {polls} is not committed: \
                 the connection was handed on inside a transaction"
            );
            assert!(!committed(&t.db, &inside).await, "a transaction never committed is in");

            // Cancelled while committing: the transaction's own write may or may not be
            // in, but the next caller's is, and on its own.
            let mut tx = subject.begin().await.unwrap();
            let inside = format!("inside-{polls}-{round}");
            write_in(&mut tx, &inside).await;
            if cancel_after(tx.commit(), polls).await.is_none() {
                cancelled[1] += 1;
            }
            let key = format!("after-commit-{polls}-{round}");
            write(&subject, &key).await;
            assert!(
                committed(&t.db, &key).await,
                "a write after a commit cancelled at poll {polls} is not committed"
            );
        }
    }
    // Cancelled after the database ran the start, before the caller read that.
    let mut unread = 0;
    for round in 0..20 {
        let inside = format!("unread-start-{round}");
        match cancel_unread(start(inside.clone())).await {
            Some(tx) => drop(tx),
            None => unread += 1,
        }
        let key = format!("after-unread-start-{round}");
        write(&subject, &key).await;
        assert!(
            committed(&t.db, &key).await,
            "a write after a start whose answer was never read is not committed"
        );
        assert!(!committed(&t.db, &inside).await, "a transaction never committed is in");
        // And the connection still starts transactions.
        let mut tx = subject.begin().await.unwrap();
        let inside = format!("inside-unread-{round}");
        write_in(&mut tx, &inside).await;
        tx.commit().await.unwrap();
        assert!(committed(&t.db, &inside).await);
    }
    // The loops did cancel calls on their way, or they proved nothing. How many of each kind
    // finished within their polls instead depends on the threads' timing (a commit on SQLite's
    // connection thread often does), so only the total is held to a floor.
    let total = cancelled[0] + cancelled[1] + unread;
    assert!(
        total >= 10,
        "cancellations (start, commit, unread start): {cancelled:?}, {unread}"
    );
    subject.close().await;
});

// docs/reliability.md C4: under a storm of failing, abandoned and cancelled work, every connection
// comes back to the pool idle and outside any transaction, and the pool serves a burst after.
db_test!(async fn failures_and_cancellations_leave_every_connection_back_and_idle(t) {
    const CONNECTIONS: u32 = 4;
    let url = DatabaseUrl::parse(&t.url).unwrap();
    let subject = Db::connect_lazy(&DatabaseSettings {
        max_connections: CONNECTIONS,
        ..settings(url)
    })
    .unwrap();
    write(&subject, "taken").await;

    // Six kinds of trouble, 40 of each, 16 at a time.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..240_usize {
        let (db, gate) = (subject.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let key = format!("storm-{i}");
            match i % 6 {
                // A unique violation inside a transaction, which is then dropped.
                0 => {
                    let mut tx = db.begin().await.unwrap();
                    let r = on_tx!(&mut tx, c => sqlx::query(
                        "INSERT INTO settings (key, value, updated_at) VALUES ('taken', 'v', 0)"
                    ).execute(c).await.map(|_| ()));
                    assert!(r.is_err(), "the duplicate key is refused");
                }
                // A statement the database cannot run, inside a transaction.
                1 => {
                    let mut tx = db.begin().await.unwrap();
                    let r = on_tx!(&mut tx, c => sqlx::query("SELECT * FROM no_such_table")
                        .execute(c).await.map(|_| ()));
                    assert!(r.is_err());
                    tx.rollback().await.unwrap();
                }
                // A transaction that writes and is abandoned.
                2 => {
                    let mut tx = db.begin().await.unwrap();
                    write_in(&mut tx, &key).await;
                }
                // A begin and a statement cancelled on their way.
                3 => {
                    let _ = cancel_after(db.begin(), 1 + i % 3).await;
                    let _ = cancel_after(write(&db, &key), 1 + i % 3).await;
                }
                // A failing statement outside any transaction.
                4 => {
                    let r = on_db!(&db, p => sqlx::query("SELECT * FROM no_such_table")
                        .execute(p).await.map(|_| ()));
                    assert!(r.is_err());
                }
                // Work that succeeds.
                _ => {
                    let mut tx = db.begin().await.unwrap();
                    write_in(&mut tx, &key).await;
                    tx.commit().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    // Every connection is back and idle (a release finishes on a task of its own).
    let db = &subject;
    wait_for("every connection back in the pool", Duration::from_secs(10), move || async move {
        let (size, idle) = db.pool_state();
        ((1..=CONNECTIONS).contains(&size) && idle == size as usize).then_some(())
    })
    .await;
    if let Db::Postgres(p) = &t.db {
        let open: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_stat_activity
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(p)
        .await
        .unwrap();
        assert_eq!(open, 0, "no session is left inside a transaction");
    }
    // Abandoned work left nothing; successful work is all there.
    for i in 0..240_usize {
        let key = format!("storm-{i}");
        match i % 6 {
            2 => assert!(!committed(&t.db, &key).await, "{key} was abandoned"),
            5 => assert!(committed(&t.db, &key).await, "{key} was committed"),
            _ => {}
        }
    }
    // And the pool serves a burst of twice its size, each write committed on its own.
    let burst = (0..2 * CONNECTIONS).map(|i| {
        let db = subject.clone();
        async move { write(&db, &format!("burst-{i}")).await }
    });
    tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(burst))
        .await
        .expect("the pool serves a burst after the storm");
    for i in 0..2 * CONNECTIONS {
        assert!(committed(&t.db, &format!("burst-{i}")).await);
    }
    subject.close().await;
});
