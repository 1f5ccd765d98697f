//! The admin console on a big deployment: the stats screen and finding a user (with their
//! card) among 1,000,000 users, 500,000 subscriptions, 3,000,000 payments and 5,000,000 ledger
//! rows — SQLite and PostgreSQL. Target: each under 300 ms.
//!
//! `cargo bench -p tollgate --bench console` (`BENCH_BACKEND=sqlite|postgres` narrows it;
//! `BENCH_USERS`, default 1000000, scales every table with it). Rows are seeded with set-based
//! SQL on a fresh, migrated database; each screen's statements (the same functions the console
//! calls) run 11 times and the median is printed, with the query plans of the heaviest reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use support::{database, median};
use tollgate::billing::{ledger, review, stats};
use tollgate::config::{DatabaseSettings, DatabaseUrl};
use tollgate::store::Db;
use tollgate::store::migrate::{self, MigrateTimeouts};
use tollgate::telegram::outbox;
use tollgate::time::Timestamp;
use tollgate::{access, users};

const NOW: i64 = 1_800_000_000_000;
const D: i64 = 86_400_000;
const RUNS: usize = 11;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pg_admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pg_ok = PgConnection::connect(&pg_admin).await.is_ok();
    let only = std::env::var("BENCH_BACKEND").ok();
    let n: i64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    for backend in ["sqlite", "postgres"] {
        if only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        if backend == "postgres" && !pg_ok {
            println!("postgres: SKIPPED ({pg_admin} unreachable)");
            continue;
        }
        let (url, _dir) = database(backend, &pg_admin, "console").await;
        let db = Db::connect_lazy(&DatabaseSettings {
            url: DatabaseUrl::parse(&url).unwrap(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(600),
        })
        .unwrap();
        migrate::run(&db, Timestamp::from_millis(NOW), MigrateTimeouts::default())
            .await
            .unwrap();
        let t = Instant::now();
        seed(&db, n).await;
        println!(
            "{backend}: seeded {n} users, {} subscriptions, {} payments, {} ledger rows in {:.0} s",
            n / 2,
            3 * n,
            5 * n,
            t.elapsed().as_secs_f64()
        );
        let now = Timestamp::from_millis(NOW);
        let day_start = Timestamp::from_millis(NOW - NOW % D);
        let ago = |days: i64| Timestamp::from_millis(NOW - days * D);

        // As the stats screen reads: its independent reads at once, then the revenue periods.
        let stats_ms = timed(|| async {
            tokio::try_join!(
                users::stats(&db, now, day_start),
                async {
                    access::active_by_kind(&db, now)
                        .await
                        .map_err(|_| sqlx::Error::RowNotFound)
                },
                async {
                    stats::trial_payers_since(&db, ago(30))
                        .await
                        .map_err(|_| sqlx::Error::RowNotFound)
                },
                async {
                    review::awaiting(&db)
                        .await
                        .map_err(|_| sqlx::Error::RowNotFound)
                },
                outbox::count_keyed_since(&db, "renewed:", ago(30)),
                outbox::count_keyed_since(&db, "renew-short:", ago(30)),
            )
            .unwrap();
            for since in [Some(day_start), Some(ago(7)), Some(ago(30)), None] {
                stats::revenue_since(&db, since).await.unwrap();
            }
        })
        .await;
        let all_time_ms = timed(|| async {
            stats::revenue_since(&db, None).await.unwrap();
        })
        .await;
        let parts = [
            (
                "users",
                timed(|| async { users::stats(&db, now, day_start).await.map(drop).unwrap() })
                    .await,
            ),
            (
                "active by kind",
                timed(|| async { access::active_by_kind(&db, now).await.map(drop).unwrap() }).await,
            ),
            (
                "trial payers",
                timed(|| async {
                    stats::trial_payers_since(&db, ago(30))
                        .await
                        .map(drop)
                        .unwrap()
                })
                .await,
            ),
            (
                "kept for review",
                timed(|| async { review::awaiting(&db).await.map(drop).unwrap() }).await,
            ),
            (
                "revenue 30 d",
                timed(|| async {
                    stats::revenue_since(&db, Some(ago(30)))
                        .await
                        .map(drop)
                        .unwrap()
                })
                .await,
            ),
            ("all-time revenue", all_time_ms),
        ];
        let parts: Vec<String> = parts.iter().map(|(w, ms)| format!("{w} {ms:.1}")).collect();
        let (uuid, token) = key_of(&db, 1_000_000 + n / 2).await;
        let id = 1_000_000 + n / 3;
        let name = format!("User{}", n / 3);
        let finds = [
            (
                "id",
                timed(|| async { users::get(&db, id).await.unwrap().map(drop).unwrap() }).await,
            ),
            (
                "@username",
                timed(|| async {
                    assert_eq!(users::by_username(&db, &name, 10).await.unwrap().len(), 1)
                })
                .await,
            ),
            (
                "UUID",
                timed(|| async {
                    access::by_vpn_uuid(&db, uuid)
                        .await
                        .unwrap()
                        .map(drop)
                        .unwrap()
                })
                .await,
            ),
            (
                "token",
                timed(|| async {
                    access::by_token(&db, &token)
                        .await
                        .unwrap()
                        .map(drop)
                        .unwrap()
                })
                .await,
            ),
        ];
        let find_ms = finds.iter().map(|(_, ms)| ms).sum::<f64>();
        let finds: Vec<String> = finds.iter().map(|(w, ms)| format!("{w} {ms:.1}")).collect();
        let card_ms = timed(|| async {
            let id = 1_000_000 + n / 2;
            users::get(&db, id).await.unwrap().unwrap();
            access::subscription_for_user(&db, id).await.unwrap();
            users::referral_count(&db, id).await.unwrap();
            ledger::recent(&db, id, 5).await.unwrap();
            review::of_user(&db, id, 5).await.unwrap();
        })
        .await;
        println!(
            "{backend}: stats screen {stats_ms:.1} ms (parts, ms: {}), find a user {find_ms:.1} ms ({}), user card {card_ms:.1} ms (medians of {RUNS})",
            parts.join(", "),
            finds.join(", ")
        );
        for (what, sql) in [
            (
                "revenue in 30 d",
                "SELECT provider, currency, SUM(amount), COUNT(*) FROM payments WHERE status = 'captured' AND created_at >= 1797408000000 GROUP BY provider, currency",
            ),
            (
                "new users in 30 d",
                "SELECT COUNT(*) FROM users WHERE created_at >= 1797408000000",
            ),
            (
                "username",
                "SELECT id FROM users WHERE lower(username) = lower('User5') AND username IS NOT NULL",
            ),
        ] {
            println!("{backend}: plan of {what}: {}", plan(&db, sql).await);
        }
    }
}

async fn timed<F, Fut>(f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await; // warm the cache once
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(&mut samples)
}

async fn key_of(db: &Db, user: i64) -> (uuid::Uuid, String) {
    let s = access::subscription_for_user(db, user)
        .await
        .unwrap()
        .unwrap();
    let token = match db {
        Db::Sqlite(p) => sqlx::query_scalar("SELECT token FROM subscriptions WHERE id = $1")
            .bind(s.id)
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Postgres(p) => sqlx::query_scalar("SELECT token FROM subscriptions WHERE id = $1")
            .bind(s.id)
            .fetch_one(p)
            .await
            .unwrap(),
    };
    (s.vpn_uuid, token)
}

async fn plan(db: &Db, sql: &str) -> String {
    match db {
        Db::Sqlite(p) => {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(p)
                    .await
                    .unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
        }
        Db::Postgres(p) => {
            let rows: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                    .fetch_all(p)
                    .await
                    .unwrap();
            rows.into_iter()
                .map(|r| r.0.trim().to_owned())
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

/// Users `1_000_000 + i` for `i` in `0..n`, one per minute back from NOW (a trial every third,
/// unreachable every fiftieth); a subscription for every second; three payments per user
/// (each with its purchase, one in a hundred refunded) and five ledger rows per user, spread
/// over the same period.
async fn seed(db: &Db, n: i64) {
    let (series, uuid, token, text) = match db {
        Db::Sqlite(_) => (
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {N})",
            "randomblob(16)",
            "printf('%024d', i)",
            "CAST(i AS TEXT)",
        ),
        Db::Postgres(_) => (
            "WITH s(i) AS (SELECT generate_series(0, {N} - 1)::BIGINT)",
            "gen_random_uuid()",
            "lpad(i::text, 24, '0')",
            "i::text",
        ),
    };
    let month_ago = NOW - 30 * D;
    let with = |count: i64| series.replace("{N}", &count.to_string());
    let statements = [
        format!(
            "{} INSERT INTO users (id, first_name, username, language, referral_code, balance, auto_renew, trial_used_at, bot_blocked_at, created_at, last_seen_at)
             SELECT 1000000 + i, 'U', 'User' || {text}, 'en', 'r' || {text}, 0, (i % 7 = 0),
                    CASE WHEN i % 3 = 0 THEN {NOW} - i * 60000 END,
                    CASE WHEN i % 50 = 0 THEN {NOW} END, {NOW} - i * 60000, {NOW} FROM s",
            with(n)
        ),
        format!(
            "{} INSERT INTO subscriptions (user_id, kind, plan_id, starts_at, expires_at, vpn_uuid, token, created_at, updated_at)
             SELECT 1000000 + i * 2, CASE i % 4 WHEN 0 THEN 'trial' WHEN 1 THEN 'paid' WHEN 2 THEN 'gift' ELSE 'admin' END,
                    'm1', {month_ago}, {NOW} + ((i % 60) - 20) * {D}, {uuid}, {token}, {NOW}, {NOW} FROM s",
            with(n / 2)
        ),
        format!(
            "{} INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at, paid_at)
             SELECT 1000000 + i % {n}, 'plan', 'm1', 30, 100 + i % 1000, 'RUB', CASE i % 2 WHEN 0 THEN 'stars' ELSE 'card' END,
                    'paid', {NOW} - i * 20000, {NOW} - i * 20000 + 3600000, {NOW} - i * 20000 FROM s",
            with(3 * n)
        ),
        format!(
            "{} INSERT INTO payments (purchase_id, user_id, provider, provider_payment_id, amount, currency, status, created_at)
             SELECT i + 1, 1000000 + i % {n}, CASE i % 2 WHEN 0 THEN 'stars' ELSE 'card' END, 'ch' || {text}, 100 + i % 1000,
                    CASE i % 2 WHEN 0 THEN 'XTR' ELSE 'RUB' END, CASE WHEN i % 100 = 0 THEN 'refunded' ELSE 'captured' END,
                    {NOW} - i * 20000 FROM s",
            with(3 * n)
        ),
        format!(
            "{} INSERT INTO balance_ledger (user_id, delta, balance_after, reason, reference, created_at)
             SELECT 1000000 + i % {n}, 100, 100, 'topup', 'ref' || {text}, {NOW} - i * 12000 FROM s",
            with(5 * n)
        ),
    ];
    for sql in statements {
        match db {
            Db::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .unwrap(),
            Db::Postgres(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(p)
                    .await
                    .unwrap();
                continue;
            }
        };
    }
    match db {
        Db::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(drop).unwrap(),
        Db::Postgres(p) => sqlx::query("ANALYZE").execute(p).await.map(drop).unwrap(),
    }
}
