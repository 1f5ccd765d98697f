//! Job throughput: an expiry wave, the "anything due?" scan over a million subscriptions, and
//! how an iteration's cost scales with the due rows — SQLite and PostgreSQL.
//!
//! `cargo bench -p tollgate --bench jobs` (`BENCH_BACKEND=sqlite|postgres` narrows it;
//! `BENCH_WAVE`, default 100000, and `BENCH_SCAN`, default 1000000, size it;
//! `BENCH_DATABASE_MAX_CONNECTIONS` sets the pool, and so how many items run at once on
//! PostgreSQL). The service's
//! parts run in this process on a fresh database with a fixed clock; rows are seeded with
//! set-based SQL; `Notices::run_batch` (one transaction per subscription, 500 per call) is
//! called until nothing is due.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;
use support::{Backends, count, database, env_or, median, query_plan, start_app};

use tollgate::app::{self, AppOptions, Services};
use tollgate::jobs::JobContext;
use tollgate::jobs::notices::{self, Notices};
use tollgate::store::Db;
use tollgate::time::{ManualClock, Timestamp};

const NOW: i64 = 1_800_000_000_000;
const H: i64 = 3_600_000;
const D: i64 = 24 * H;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let wave: i64 = env_or("BENCH_WAVE", 100_000);
    let scan: i64 = env_or("BENCH_SCAN", 1_000_000);
    for backend in backends.each() {
        // 1. The expiry wave.
        let (url, _dir) = database(backend, &backends.pg_admin, "jobs_wave").await;
        let (s, app, emu) = services(&url).await;
        seed(&s.db, wave, "expired").await;
        let notices = Notices::new(JobContext::of(
            &s,
            Arc::new(tollgate::i18n::Texts::load().unwrap()),
        ));
        let start = Instant::now();
        let mut iterations = 0;
        let mut per_iteration = Vec::new();
        loop {
            let t = Instant::now();
            let n = notices.run_batch().await.unwrap();
            if n == 0 {
                break;
            }
            iterations += 1;
            per_iteration.push((n, t.elapsed().as_secs_f64() * 1000.0));
        }
        let total = start.elapsed().as_secs_f64();
        let queued = count(&s.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox").await;
        let left = count(
            &s.db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE next_notice_at IS NOT NULL",
        )
        .await;
        assert_eq!((queued, left), (wave, 0), "every expiry handled once");
        let mut ms: Vec<f64> = per_iteration.iter().map(|(_, m)| *m).collect();
        println!(
            "{backend}: expiry wave of {wave}: {total:.1} s ({:.0} µs per subscription), {iterations} iterations of ≤500, iteration median {:.0} ms; {queued} messages queued",
            total * 1e6 / wave as f64,
            median(&mut ms)
        );
        app.shutdown().await.unwrap();
        emu.shutdown().await;

        // 2. The scan when nothing is due, then 3. growing numbers of due rows among them.
        let (url, _dir2) = database(backend, &backends.pg_admin, "jobs_scan").await;
        let (s, app, emu) = services(&url).await;
        let t = Instant::now();
        seed(&s.db, scan, "future").await;
        println!(
            "{backend}: seeded {scan} subscriptions in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let notices = Notices::new(JobContext::of(
            &s,
            Arc::new(tollgate::i18n::Texts::load().unwrap()),
        ));
        let mut scans = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            assert_eq!(notices.run_batch().await.unwrap(), 0);
            scans.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "{backend}: nothing due among {scan}: run_batch median {:.2} ms (max {:.2} ms)",
            median(&mut scans.clone()),
            scans.iter().cloned().fold(0.0, f64::max)
        );
        println!(
            "{backend}: plan of the due query: {}",
            query_plan(&s.db, notices::DUE_QUERY, &[NOW, 500]).await
        );
        let mut made_due = 0;
        for due in [1_000_i64, 10_000, 50_000] {
            let from = made_due;
            made_due += due;
            make_due(&s.db, from, made_due).await;
            let t = Instant::now();
            let mut handled = 0;
            let mut iterations = 0;
            loop {
                let n = notices.run_batch().await.unwrap();
                if n == 0 {
                    break;
                }
                handled += n;
                iterations += 1;
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{backend}: {due} due among {scan}: {secs:.2} s, {handled} handled in {iterations} iterations, {:.0} µs per item",
                secs * 1e6 / handled.max(1) as f64
            );
        }
        app.shutdown().await.unwrap();
        emu.shutdown().await;
    }
}

/// The service in this process at NOW on a manual clock (the pool `BENCH_DATABASE_MAX_CONNECTIONS`
/// when set).
async fn services(
    url: &str,
) -> (
    Services,
    app::RunningApp,
    telegram_emulator::RunningEmulator,
) {
    let settings = std::env::var("BENCH_DATABASE_MAX_CONNECTIONS")
        .map(|n| ("DATABASE_MAX_CONNECTIONS".to_owned(), n))
        .into_iter()
        .collect();
    let options = AppOptions {
        clock: Arc::new(ManualClock::new(Timestamp::from_millis(NOW))),
        ..AppOptions::default()
    };
    start_app(url, settings, options).await
}

/// `n` users with one paid subscription each: "expired" (only the expiry is due: dates set
/// 2 h ago, ended 1 h ago) or "future" (next event in 10 days).
async fn seed(db: &Db, n: i64, what: &str) {
    let (expires, from, next) = if what == "expired" {
        (NOW - H, NOW - 2 * H, NOW - H)
    } else {
        (NOW + 30 * D, NOW, NOW + 10 * D)
    };
    match db {
        Db::Sqlite(p) => {
            sqlx::query(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1)
                 INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at)
                 SELECT x, 'u', 'en', 'r' || x, 0, 0 FROM c",
            )
            .bind(n)
            .execute(p)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO subscriptions (user_id, kind, plan_id, starts_at, expires_at, vpn_uuid, token, created_at, updated_at, notice_stage, notice_from, next_notice_at)
                 SELECT id, 'paid', 'm1', $2, $1, randomblob(16), printf('%024d', id), $2, $2, 0, $2, $3 FROM users",
            )
            .bind(expires)
            .bind(from)
            .bind(next)
            .execute(p)
            .await
            .unwrap();
        }
        Db::Postgres(pool) => {
            // Seeding a million rows takes longer than the service's statement timeout.
            let mut tx = pool.begin().await.unwrap();
            let p = &mut *tx;
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut *p)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at)
                 SELECT x, 'u', 'en', 'r' || x, 0, 0 FROM generate_series(1, $1) AS x",
            )
            .bind(n)
            .execute(&mut *p)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO subscriptions (user_id, kind, plan_id, starts_at, expires_at, vpn_uuid, token, created_at, updated_at, notice_stage, notice_from, next_notice_at)
                 SELECT id, 'paid', 'm1', $2, $1, gen_random_uuid(), lpad(id::text, 24, '0'), $2, $2, 0, $2, $3 FROM users",
            )
            .bind(expires)
            .bind(from)
            .bind(next)
            .execute(&mut *p)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            // Settle the seed the way a production table is settled by the time its rows
            // fall due (and as pgbench does after loading): vacuumed (hint bits set, no
            // autovacuum of the seed competing with the measurement), analyzed, and
            // checkpointed (the seed's WAL cannot force a checkpoint mid-measurement).
            // A million rows take longer than the service's statement timeout.
            let mut c = pool.acquire().await.unwrap();
            for sql in [
                "SET statement_timeout = 0",
                "VACUUM ANALYZE users",
                "VACUUM ANALYZE subscriptions",
                "CHECKPOINT",
                "RESET statement_timeout",
            ] {
                sqlx::query(sql).execute(&mut *c).await.unwrap();
            }
        }
    }
}

/// Users `from+1 ..= to` expired an hour ago (only their expiry is due).
async fn make_due(db: &Db, from: i64, to: i64) {
    let sql = "UPDATE subscriptions SET expires_at = $1, notice_from = $2, next_notice_at = $1, notice_stage = 0
               WHERE user_id > $3 AND user_id <= $4";
    tollgate::on_db!(db, p => sqlx::query(sql).bind(NOW - H).bind(NOW - 2 * H).bind(from).bind(to).execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
}
