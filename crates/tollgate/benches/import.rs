//! `tollgate import atcbot` of a large earlier-bot database: time and peak RSS of the release
//! binary, into SQLite and into PostgreSQL, then the repeated run (which must change nothing).
//!
//! `cargo bench -p tollgate --bench import` (`BENCH_BACKEND=sqlite|postgres` narrows it;
//! `BENCH_USERS`, default 100000, sizes the source). The source is a fresh PostgreSQL database
//! with the earlier bot's tables (`tests/fixtures/atcbot_schema.sql`), seeded with set-based
//! SQL: every user with a balance and a ledger row, 70 % with an active subscription and its
//! UUID, 10 % expired, a third referred by an earlier user, languages the catalog ships and
//! some it does not. The binary runs as operators run it; `VmHWM` is sampled until it exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};
use support::{Backends, database, env_or, peak_rss_mib, tollgate_bin};

const SCHEMA: &str = include_str!("../tests/fixtures/atcbot_schema.sql");

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let pg_admin = &backends.pg_admin;
    if !backends.postgres_reachable() {
        println!("import: SKIPPED ({pg_admin} unreachable; the source is always PostgreSQL)");
        return;
    }
    let users: i64 = env_or("BENCH_USERS", 100_000);
    let (source, _) = database("postgres", pg_admin, "import_source").await;
    let t = Instant::now();
    seed(&source, users).await;
    println!(
        "source: {users} users seeded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for backend in backends.each() {
        let (target, _dir) = database(backend, pg_admin, "import_target").await;
        for pass in ["first", "repeated"] {
            let (secs, peak, out) = import(&source, &target).await;
            let summary = out
                .lines()
                .filter(|l| l.contains("users read") || l.contains("opening balances"))
                .collect::<Vec<_>>()
                .join(" | ");
            println!(
                "{backend}: {pass} import of {users} users: {secs:.1} s, peak RSS {peak:.1} MiB — {summary}"
            );
        }
    }
}

/// Runs the release binary's import and returns (seconds, peak RSS in MiB, its stdout).
async fn import(source: &str, target: &str) -> (f64, f64, String) {
    let start = Instant::now();
    let mut child = tokio::process::Command::new(tollgate_bin())
        .args(["import", "atcbot", "--from", source, "--renew-plan", "m1"])
        .env_clear()
        .env("BOT_TOKEN", "4242:BENCH-token_ThatMustNeverBeLogged0123")
        .env("DATABASE_URL", target)
        .env("TOLLGATE_CONFIG", support::CATALOG)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text)
            .await
            .unwrap();
        text
    });
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak = peak.max(peak_rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "import failed");
    (secs, peak, reader.await.unwrap())
}

async fn seed(url: &str, users: i64) {
    let mut c = PgConnection::connect(url).await.unwrap();
    c.execute(sqlx::AssertSqlSafe(SCHEMA)).await.unwrap();
    let statements = [
        format!(
            "INSERT INTO users (telegram_id, username, language, balance, referrer_id, created_at, trial_used_at)
             SELECT 100000000 + i, 'user' || i, (ARRAY['ru','en','de','kk'])[1 + i % 4], (i % 500) * 100,
                    CASE WHEN i % 3 = 0 AND i > 1 THEN 100000000 + i / 2 END,
                    now() - make_interval(days => 400) + make_interval(secs => i),
                    CASE WHEN i % 5 = 0 THEN (now() - interval '200 days')::timestamp END
             FROM generate_series(1, {users}) AS i"
        ),
        format!(
            "INSERT INTO subscriptions (telegram_id, expires_at, uuid, status, source, auto_renew, activation_status)
             SELECT 100000000 + i,
                    CASE WHEN i % 10 < 7 THEN now() + make_interval(days => 1 + i % 90) ELSE now() - interval '3 days' END,
                    CASE WHEN i % 10 < 8 THEN gen_random_uuid()::text END,
                    CASE WHEN i % 10 < 7 THEN 'active' ELSE 'expired' END,
                    CASE WHEN i % 7 = 0 THEN 'trial' ELSE 'payment' END, i % 4 = 0, 'active'
             FROM generate_series(1, {users}) AS i WHERE i % 10 <> 9"
        ),
        "INSERT INTO balance_transactions (user_id, amount, type)
         SELECT telegram_id, balance, 'topup' FROM users WHERE balance > 0"
            .to_owned(),
    ];
    for s in statements {
        c.execute(sqlx::AssertSqlSafe(s)).await.unwrap();
    }
    c.close().await.unwrap();
}
