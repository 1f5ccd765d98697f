//! Telegram pipeline throughput: webhook intake and end-to-end echo, SQLite and PostgreSQL.
//!
//! `cargo bench -p tollgate --bench pipeline` — the service is the release `tollgate echo`
//! binary in its own process (webhook mode); this process is the load source and hosts the
//! Telegram emulator (limits off). Per backend and run:
//! - intake: 20,000 webhook POSTs from 64 concurrent keep-alive connections (throughput and
//!   ack latency), then an open loop of 1,000 POSTs/s for 5 s (ack latency at that rate);
//! - end to end: 10,000 users each send one message through the emulator, which delivers
//!   them by webhook; measured until the emulator has received all 10,000 echoes, with the
//!   service's RSS sampled meanwhile.
//!
//! Prints medians of the runs. PostgreSQL is skipped when `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) is unreachable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    Backends, RssSampler, WEBHOOK_SECRET, create_users, database, drain, env_or, free_port, median,
    percentile, send_each,
};

use telegram_emulator::{ControlClient, Emulator, EmulatorConfig, NewUser};
use tokio::sync::Semaphore;

const RUNS: usize = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    for backend in backends.each() {
        let mut intake_rate = Vec::new();
        let mut closed_p50 = Vec::new();
        let mut closed_p99 = Vec::new();
        let mut open_p50 = Vec::new();
        let mut open_p99 = Vec::new();
        let mut e2e_rate = Vec::new();
        let mut rss = Vec::new();
        let runs = env_or("BENCH_RUNS", RUNS);
        for run in 0..runs {
            let (db_url, _guard) =
                database(backend, &backends.pg_admin, &format!("bench_{run}")).await;
            let r = one_run(&db_url).await;
            intake_rate.push(r.intake_rate);
            closed_p50.push(r.closed_p50);
            closed_p99.push(r.closed_p99);
            open_p50.push(r.open_p50);
            open_p99.push(r.open_p99);
            e2e_rate.push(r.e2e_rate);
            rss.push(r.max_rss_mib);
            println!(
                "{backend} run {run}: intake {:.0}/s (p50 {:.2} ms, p99 {:.2} ms); at 1000/s p50 {:.2} ms, p99 {:.2} ms; end to end {:.0}/s; max RSS {:.1} MiB",
                r.intake_rate,
                r.closed_p50,
                r.closed_p99,
                r.open_p50,
                r.open_p99,
                r.e2e_rate,
                r.max_rss_mib
            );
        }
        println!(
            "{backend} MEDIANS over {runs} runs: intake {:.0} updates/s (ack p50 {:.2} ms, p99 {:.2} ms under full load); \
             ack at 1000 updates/s p50 {:.2} ms, p99 {:.2} ms; end to end {:.0} updates/s; max RSS {:.1} MiB",
            median(&mut intake_rate),
            median(&mut closed_p50),
            median(&mut closed_p99),
            median(&mut open_p50),
            median(&mut open_p99),
            median(&mut e2e_rate),
            median(&mut rss)
        );
    }
}

struct RunResult {
    intake_rate: f64,
    closed_p50: f64,
    closed_p99: f64,
    open_p50: f64,
    open_p99: f64,
    e2e_rate: f64,
    max_rss_mib: f64,
}

/// `n` new emulator users who started the bot.
async fn new_users(tg: &ControlClient, n: usize) -> Vec<i64> {
    create_users(tg, (0..n).map(|i| NewUser::new(format!("B{i}")).started())).await
}

fn update(update_id: i64, chat: i64) -> String {
    format!(
        r#"{{"update_id":{update_id},"message":{{"message_id":{update_id},"date":1800000000,"from":{{"id":{chat},"is_bot":false,"first_name":"B"}},"chat":{{"id":{chat},"type":"private","first_name":"B"}},"text":"load {update_id}"}}}}"#
    )
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> f64 {
    let start = Instant::now();
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    start.elapsed().as_secs_f64() * 1000.0
}

async fn one_run(db_url: &str) -> RunResult {
    let emu = Emulator::start(EmulatorConfig::without_rate_limits())
        .await
        .unwrap();
    let tg = emu.client();
    let port = free_port();
    let mut service = support::webhook_service("echo", &emu, db_url, port)
        .spawn()
        .unwrap();
    support::wait_webhook_ready(&emu, port).await;
    let pid = service.id().unwrap();
    let chats = new_users(&tg, 1000).await;
    let url = format!("http://127.0.0.1:{port}/telegram/webhook");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();

    // Closed loop: as fast as 64 connections go.
    let n = 20_000_usize;
    let sem = Arc::new(Semaphore::new(64));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), url.clone());
        let body = update(10_000_000 + i as i64, chats[i % chats.len()]);
        handles.push(tokio::spawn(async move {
            let ms = post(&client, &url, body).await;
            drop(permit);
            ms
        }));
    }
    let mut closed = Vec::with_capacity(n);
    for h in handles {
        closed.push(h.await.unwrap());
    }
    let intake_rate = n as f64 / start.elapsed().as_secs_f64();

    // Let the backlog drain so the open loop measures intake at a sustainable rate.
    drain(&tg, n as u64, Duration::from_secs(120), "echoes").await;

    // Open loop: 1,000 updates per second for 5 s.
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut handles = Vec::with_capacity(5000);
    for i in 0..5000_usize {
        ticker.tick().await;
        let (client, url) = (client.clone(), url.clone());
        let body = update(20_000_000 + i as i64, chats[i % chats.len()]);
        handles.push(tokio::spawn(async move { post(&client, &url, body).await }));
    }
    let mut open = Vec::with_capacity(5000);
    for h in handles {
        open.push(h.await.unwrap());
    }
    drain(&tg, (n + 5000) as u64, Duration::from_secs(120), "echoes").await;

    // End to end through the emulator: 10,000 users write once each.
    let users = new_users(&tg, 10_000).await;
    let sent_before = tg.counters().await.unwrap().messages_sent;
    let sampler = RssSampler::start(pid);
    let start = Instant::now();
    send_each(&tg, &users, "ping", 64).await;
    drain(
        &tg,
        sent_before + users.len() as u64,
        Duration::from_secs(300),
        "echoes",
    )
    .await;
    let e2e_rate = users.len() as f64 / start.elapsed().as_secs_f64();
    let max_rss_mib = sampler.stop();

    support::stop(&mut service, Duration::from_secs(30)).await;
    emu.shutdown().await;
    RunResult {
        intake_rate,
        closed_p50: percentile(&mut closed, 0.50),
        closed_p99: percentile(&mut closed, 0.99),
        open_p50: percentile(&mut open, 0.50),
        open_p99: percentile(&mut open, 0.99),
        e2e_rate,
        max_rss_mib,
    }
}
