//! PostgreSQL's statistics of the queue tables follow their backlog (`store::statistics`):
//! a burst of rows gets the table analyzed within seconds instead of autovacuum's minute,
//! small changes do not, and analyzes of one table are spaced. SQLite has nothing to do.

use std::time::Duration;

use tollgate::store::{Db, statistics};

use crate::common::wait_for;
use crate::db_test;

/// Queues `n` pending messages numbered from `from` in one statement, and has the session
/// report the change to the cumulative statistics at once (otherwise a backend may wait
/// up to ten idle seconds to report).
async fn queue_messages(db: &Db, from: i64, n: i64) {
    let Db::Postgres(p) = db else {
        unreachable!("PostgreSQL only")
    };
    let mut c = p.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status, attempts, next_attempt_at, created_at)
         SELECT 'burst:' || x, x, 1, 'sendMessage', '{}', 'pending', 0, 0, 0
         FROM generate_series(CAST($1 AS BIGINT), CAST($1 + $2 - 1 AS BIGINT)) AS x",
    )
    .bind(from)
    .bind(n)
    .execute(&mut *c)
    .await
    .unwrap();
}

/// What PostgreSQL's cumulative statistics say about the outbox: rows changed since the
/// last analyze, and whether it was ever analyzed by anyone.
async fn outbox_stats(db: &Db) -> (i64, bool) {
    let Db::Postgres(p) = db else {
        unreachable!("PostgreSQL only")
    };
    sqlx::query_as(
        "SELECT n_mod_since_analyze, last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL
         FROM pg_stat_user_tables WHERE relname = 'outbox' AND schemaname = current_schema()",
    )
    .fetch_one(p)
    .await
    .unwrap()
}

db_test!(
    async fn a_burst_of_queued_messages_gets_the_outbox_analyzed(t) {
        if !t.is_postgres() {
            // SQLite plans by rule; nothing is ever analyzed.
            assert_eq!(statistics::refresh(&t.db).await.unwrap(), Vec::<String>::new());
            return;
        }
        // Only the service analyzes here, so what happens is its doing.
        let Db::Postgres(p) = &t.db else { unreachable!() };
        sqlx::query("ALTER TABLE outbox SET (autovacuum_enabled = false)")
            .execute(p)
            .await
            .unwrap();
        // A few rows are not worth an analyze, however long we wait for them to be counted.
        queue_messages(&t.db, 1, 100).await;
        wait_for("100 changes counted", Duration::from_secs(30), || async {
            (outbox_stats(&t.db).await.0 >= 100).then_some(())
        })
        .await;
        assert_eq!(statistics::refresh(&t.db).await.unwrap(), Vec::<String>::new());
        assert_eq!(outbox_stats(&t.db).await, (100, false), "nothing analyzed yet");

        // A burst is: the planner learns the table's new size within the wait.
        queue_messages(&t.db, 1_000, statistics::CHANGES).await;
        let analyzed = wait_for("the outbox analyzed", Duration::from_secs(30), || async {
            let done = statistics::refresh(&t.db).await.unwrap();
            (!done.is_empty()).then_some(done)
        })
        .await;
        assert_eq!(analyzed, vec!["outbox".to_owned()]);
        let reltuples: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'outbox' AND relkind = 'r'")
                .fetch_one(p)
                .await
                .unwrap();
        assert_eq!(reltuples as i64, statistics::CHANGES + 100);

        // Another burst right away waits for the spacing.
        queue_messages(&t.db, 100_000, statistics::CHANGES).await;
        wait_for("the second burst counted", Duration::from_secs(30), || async {
            (outbox_stats(&t.db).await.0 >= statistics::CHANGES).then_some(())
        })
        .await;
        assert_eq!(
            statistics::refresh(&t.db).await.unwrap(),
            Vec::<String>::new(),
            "analyzed again within {:?}",
            statistics::MIN_INTERVAL
        );
    }
);
