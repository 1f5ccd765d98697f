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

use std::time::Instant;

use support::{Backends, database, env_or, median_ms, migrated, numbers, pool_settings, seed_with};
use tollgate::billing::referrals;
use tollgate::config::catalog::{ReferralLevel, ReferralSettings};
use tollgate::store::Db;
use tollgate::time::Timestamp;

const NOW: i64 = 1_800_000_000_000;
const RUNS: usize = 11;
const REFERRER: i64 = 1;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let n: i64 = env_or("BENCH_REFERRALS", 100_000);
    let settings = ReferralSettings {
        levels: [(0, 10), (25, 25), (50, 45)]
            .into_iter()
            .map(|(paying_referrals, percent)| ReferralLevel {
                paying_referrals,
                percent,
            })
            .collect(),
    };
    for backend in backends.each() {
        let (url, _dir) = database(backend, &backends.pg_admin, "invite").await;
        let db = migrated(&pool_settings(&url, 8), Timestamp::from_millis(NOW)).await;
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
        let screen_ms = median_ms(RUNS, || async {
            referrals::summary(&db, &settings, REFERRER, 5)
                .await
                .unwrap();
        })
        .await;
        let paying_ms = median_ms(RUNS, || async {
            referrals::paying(&db, REFERRER).await.unwrap();
        })
        .await;
        println!(
            "{backend}: Invite screen reads {screen_ms:.1} ms (the paying count alone {paying_ms:.1} ms), median of {RUNS}"
        );
    }
}

/// User 1 refers users 2..=n+1; 2n more users are referred by nobody. Every second user pays
/// (captured payments for purchases), the first half of them twice; the referrer has a reward
/// per paying referral, and every user other ledger rows.
async fn seed(db: &Db, n: i64) {
    let with = |count: i64| numbers(db, count);
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
    seed_with(db, statements).await;
}
