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

use std::time::Instant;

use support::{
    Backends, database, env_or, median_ms, migrated, numbers, pool_settings, query_plan, seed_with,
};
use tollgate::billing::{ledger, review, stats};
use tollgate::store::Db;
use tollgate::telegram::outbox;
use tollgate::time::Timestamp;
use tollgate::{access, users};

const NOW: i64 = 1_800_000_000_000;
const D: i64 = 86_400_000;
const RUNS: usize = 11;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let n: i64 = env_or("BENCH_USERS", 1_000_000);
    for backend in backends.each() {
        let (url, _dir) = database(backend, &backends.pg_admin, "console").await;
        let db = migrated(&pool_settings(&url, 8), Timestamp::from_millis(NOW)).await;
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
            println!(
                "{backend}: plan of {what}: {}",
                query_plan(&db, sql, &[]).await
            );
        }
    }
}

/// The median of `RUNS` timed calls after one that warms the cache.
async fn timed<F, Fut>(f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await;
    median_ms(RUNS, f).await
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

/// Users `1_000_000 + i` for `i` in `0..n`, one per minute back from NOW (a trial every third,
/// unreachable every fiftieth); a subscription for every second; three payments per user
/// (each with its purchase, one in a hundred refunded) and five ledger rows per user, spread
/// over the same period.
async fn seed(db: &Db, n: i64) {
    let (uuid, token, text) = match db {
        Db::Sqlite(_) => ("randomblob(16)", "printf('%024d', i)", "CAST(i AS TEXT)"),
        Db::Postgres(_) => ("gen_random_uuid()", "lpad(i::text, 24, '0')", "i::text"),
    };
    let month_ago = NOW - 30 * D;
    let with = |count: i64| numbers(db, count);
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
    seed_with(db, statements).await;
}
