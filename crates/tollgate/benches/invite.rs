//! The Invite screen of a referrer with 100,000 referrals, half of them paying (75,000
//! payments) and 50,000 rewards on their ledger, among 300,000 users — SQLite and PostgreSQL.
//! Target: under 100 ms.
//!
//! `cargo bench -p tollgate --bench invite` (`BENCH_BACKEND=sqlite|postgres` narrows it;
//! `BENCH_REFERRALS`, default 100000, scales the referrer's rows). Rows are seeded with
//! set-based SQL on a fresh, migrated database; the screen's reads (`referrals::summary`, what
//! the bot calls) and the reward's count alone (`referrals::paying`) run 11 times each and the
//! medians are printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use support::{database, median};
use tollgate::billing::referrals;
use tollgate::config::catalog::{ReferralLevel, ReferralSettings};
use tollgate::config::{DatabaseSettings, DatabaseUrl};
use tollgate::store::Db;
use tollgate::store::migrate::{self, MigrateTimeouts};
use tollgate::time::Timestamp;

const NOW: i64 = 1_800_000_000_000;
const RUNS: usize = 11;
const REFERRER: i64 = 1;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pg_admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pg_ok = PgConnection::connect(&pg_admin).await.is_ok();
    let only = std::env::var("BENCH_BACKEND").ok();
    let n: i64 = std::env::var("BENCH_REFERRALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let settings = ReferralSettings {
        levels: [(0, 10), (25, 25), (50, 45)]
            .into_iter()
            .map(|(paying_referrals, percent)| ReferralLevel {
                paying_referrals,
                percent,
            })
            .collect(),
    };
    for backend in ["sqlite", "postgres"] {
        if only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        if backend == "postgres" && !pg_ok {
            println!("postgres: SKIPPED ({pg_admin} unreachable)");
            continue;
        }
        let (url, _dir) = database(backend, &pg_admin, "invite").await;
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
            "{backend}: seeded a referrer with {n} referrals ({} paying, {} rewards) among {} users with {} payments in {:.0} s",
            n / 2,
            n / 2,
            3 * n + 1,
            3 * (n / 2 + n / 4),
            t.elapsed().as_secs_f64()
        );
        let summary = referrals::summary(&db, &settings, REFERRER, 5)
            .await
            .unwrap();
        assert_eq!((summary.invited, summary.paying), (n, n / 2));
        let screen_ms = timed(|| async {
            referrals::summary(&db, &settings, REFERRER, 5)
                .await
                .unwrap();
        })
        .await;
        let paying_ms = timed(|| async {
            referrals::paying(&db, REFERRER).await.unwrap();
        })
        .await;
        println!(
            "{backend}: Invite screen reads {screen_ms:.1} ms (the paying count alone {paying_ms:.1} ms), median of {RUNS}"
        );
    }
}

async fn timed<F, Fut>(mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    median(&mut samples)
}

/// User 1 refers users 2..=n+1; 2n more users are referred by nobody. Every second user pays
/// (captured payments for purchases), the first half of them twice; the referrer has a reward
/// per paying referral, and every user other ledger rows.
async fn seed(db: &Db, n: i64) {
    let series = match db {
        Db::Sqlite(_) => {
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {N})"
        }
        Db::Postgres(_) => "WITH s(i) AS (SELECT generate_series(0, {N} - 1)::BIGINT)",
    };
    let with = |count: i64| series.replace("{N}", &count.to_string());
    let pays = n / 2 + n / 4;
    let statements = [
        format!(
            "INSERT INTO users (id, first_name, language, referral_code, balance, created_at, last_seen_at)
             VALUES ({REFERRER}, 'Ann', 'en', 'ann', 0, {NOW}, {NOW})"
        ),
        format!(
            "{} INSERT INTO users (id, first_name, language, referral_code, referrer_id, balance, created_at, last_seen_at)
             SELECT 2 + i, 'U', 'en', 'r' || CAST(i AS TEXT), CASE WHEN i < {n} THEN {REFERRER} END, 0, {NOW} - i, {NOW} FROM s",
            with(3 * n)
        ),
        // Payments: every second referral once, every fourth once more; the others likewise.
        format!(
            "{} INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at, paid_at)
             SELECT 2 + (2 * i) % (3 * {n}), 'plan', 'm1', 30, 14900, 'RUB', 'card', 'paid', {NOW} - i, {NOW} - i + 3600000, {NOW} - i FROM s",
            with(3 * pays)
        ),
        format!(
            "{} INSERT INTO payments (purchase_id, user_id, provider, provider_payment_id, amount, currency, status, created_at)
             SELECT i + 1, 2 + (2 * i) % (3 * {n}), 'card', 'ch' || CAST(i AS TEXT), 14900, 'RUB', 'captured', {NOW} - i FROM s",
            with(3 * pays)
        ),
        // As payments set it (and migration 0015 started it): referred payers count as paying.
        "UPDATE users SET paying_since = paid.first_at
         FROM (SELECT user_id, MIN(created_at) AS first_at FROM payments
               WHERE status = 'captured' AND purchase_id IS NOT NULL GROUP BY user_id) AS paid
         WHERE users.id = paid.user_id AND users.referrer_id IS NOT NULL"
            .to_owned(),
        format!(
            "{} INSERT INTO balance_ledger (user_id, delta, balance_after, reason, reference, created_at)
             SELECT {REFERRER}, 1490, 1490 * (i + 1), 'referral_reward', 'referral:' || CAST(i AS TEXT), {NOW} - i FROM s",
            with(n / 2)
        ),
        format!(
            "{} INSERT INTO balance_ledger (user_id, delta, balance_after, reason, reference, created_at)
             SELECT 2 + i % (3 * {n}), 100, 100, 'topup', 'topup:' || CAST(i AS TEXT), {NOW} - i FROM s",
            with(3 * n)
        ),
    ];
    for sql in statements {
        match db {
            Db::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .map(drop)
                .unwrap(),
            Db::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .map(drop)
                .unwrap(),
        }
    }
    match db {
        Db::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(drop).unwrap(),
        Db::Postgres(p) => sqlx::query("ANALYZE").execute(p).await.map(drop).unwrap(),
    }
}
