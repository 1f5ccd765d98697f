//! docs/reliability.md C8: instants are UTC whatever the database session's time zone.

use std::time::Duration;

use tollgate::lease;
use tollgate::store::Db;
use tollgate::time::Timestamp;

use crate::common::{TestDb, pg_pool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_utc_session_reads_and_writes_the_same_instants() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let kolkata = Db::Postgres(pg_pool(&t.url, Some("Asia/Kolkata")));
    let utc = Db::Postgres(pg_pool(&t.url, Some("UTC")));
    let zone = |db: Db| async move {
        let Db::Postgres(p) = db else { unreachable!() };
        sqlx::query_scalar::<_, String>("SHOW TimeZone")
            .fetch_one(&p)
            .await
            .unwrap()
    };
    assert_eq!(zone(kolkata.clone()).await, "Asia/Kolkata");
    assert_eq!(
        zone(t.db.clone()).await,
        crate::common::PG_TEST_TIME_ZONE,
        "the harness runs non-UTC sessions"
    );

    // Written in +05:30, read in UTC and in -03:30: the same instant, and the same decisions.
    let now = Timestamp::from_millis(1_795_000_000_123);
    let l = lease::acquire(&kolkata, "tz", "holder", Duration::from_secs(60), now)
        .await
        .unwrap()
        .unwrap();
    for db in [&utc, &t.db] {
        let seen = lease::current_holder(db, "tz", now).await.unwrap().unwrap();
        assert_eq!(seen.expires_at, l.expires_at);
        assert_eq!(seen.expires_at.as_millis(), 1_795_000_060_123);
        assert!(
            lease::current_holder(db, "tz", now.plus(Duration::from_secs(60)))
                .await
                .unwrap()
                .is_none()
        );
    }
}
