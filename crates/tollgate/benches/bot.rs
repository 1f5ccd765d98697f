//! Bot throughput end to end: /start → menu and the full Stars purchase flow, SQLite and
//! PostgreSQL, and the service's memory with 10,000 registered users.
//!
//! `cargo bench -p tollgate --bench bot` — the service is the release `tollgate run` binary
//! (the real bot) in its own process, in webhook mode, with the example catalog
//! (`config/tollgate.example.toml`, no nodes); this process is the load source and hosts the
//! Telegram emulator (limits off). The outbox sends up to 100,000 messages/s
//! (`OUTBOX_RATE`) and keeps no spacing between two messages to one chat
//! (`OUTBOX_PER_CHAT_INTERVAL=0s`; production keeps Telegram's 1 s), so the figures measure
//! the service, not Telegram's pacing. Per backend and run:
//! - /start: 10,000 users (created beforehand, `started`, language `en`) each send "/start",
//!   64 at a time; measured from the first send until the emulator has received every menu
//!   (counted by the emulator's `messages_sent`; the number of messages one /start produces is
//!   measured first with a probe user, and a sample of chats is checked for the menu after).
//!   The service's RSS is sampled meanwhile; these users stay registered for the rest.
//! - purchase: 2,000 of those users each go through "/buy" → plan button `plan:m1` →
//!   "Telegram Stars" `pay:stars:m1` → the invoice → pay → "Payment received", every step
//!   waiting for the bot's answer before the next; 128 users in flight. Purchases per second
//!   are completed flows over the elapsed time; flow latency percentiles are printed too.
//! - idle RSS: 2 s after the purchases, with 10,000 registered users and 2,000 paid ones.
//!
//! After each phase the service's `/metrics` handler timings (mean per update type) are
//! printed, to show where the time goes. `BENCH_RUNS` (default 3) and `BENCH_BACKEND`
//! (`sqlite` or `postgres`) narrow the work; `BENCH_USERS` and `BENCH_PURCHASES` change the
//! sizes. Diagnostics: `BENCH_SERVICE_LOG` is the service's `RUST_LOG` (default `warn`; e.g.
//! `warn,sqlx::query=debug` lists every statement), `BENCH_DATABASE_MAX_CONNECTIONS` its
//! `DATABASE_MAX_CONNECTIONS`, and `BENCH_KEEP_DB=<path>` keeps a copy of a SQLite run's
//! database (its inbox and outbox timestamps show where updates waited). Prints medians of the runs. PostgreSQL is skipped when `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) is unreachable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    Backends, RssSampler, create_users, database, drain, env_or, free_port, median, percentile,
    rss_mib, send_each,
};

use telegram_emulator::{
    ControlClient, Emulator, EmulatorConfig, MessageFilter, NewUser, RunningEmulator,
};
use tokio::process::Child;
use tokio::sync::Semaphore;

const RUNS: usize = 3;
const USERS: usize = 10_000;
const PURCHASES: usize = 2_000;
const START_CONCURRENCY: usize = 64;
const FLOW_CONCURRENCY: usize = 128;
const MENU: &str = "Choose an action below.";
const STEP_DEADLINE: Duration = Duration::from_secs(110);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let runs = env_or("BENCH_RUNS", RUNS);
    let users = env_or("BENCH_USERS", USERS);
    let purchases = env_or("BENCH_PURCHASES", PURCHASES).min(users);
    for backend in backends.each() {
        let mut start_rate = Vec::new();
        let mut buy_rate = Vec::new();
        let mut buy_p50 = Vec::new();
        let mut buy_p99 = Vec::new();
        let mut max_rss = Vec::new();
        let mut idle_rss = Vec::new();
        for run in 0..runs {
            let (db_url, _guard) =
                database(backend, &backends.pg_admin, &format!("botbench_{run}")).await;
            let r = one_run(&db_url, users, purchases).await;
            // Diagnostics: keep the SQLite database of the run (its queue timestamps).
            if let (Some(dir), Ok(to)) = (&_guard, std::env::var("BENCH_KEEP_DB")) {
                for ext in ["", "-wal", "-shm"] {
                    let _ = std::fs::copy(
                        dir.path().join(format!("bench.db{ext}")),
                        format!("{to}{ext}"),
                    );
                }
            }
            println!(
                "{backend} run {run}: /start → menu {:.0}/s ({users} users, {} message(s) each); \
                 purchases {:.0}/s ({purchases} flows, p50 {:.0} ms, p99 {:.0} ms per flow); \
                 RSS max {:.1} MiB, idle {:.1} MiB",
                r.start_rate,
                r.per_start,
                r.buy_rate,
                r.buy_p50,
                r.buy_p99,
                r.max_rss_mib,
                r.idle_rss_mib
            );
            start_rate.push(r.start_rate);
            buy_rate.push(r.buy_rate);
            buy_p50.push(r.buy_p50);
            buy_p99.push(r.buy_p99);
            max_rss.push(r.max_rss_mib);
            idle_rss.push(r.idle_rss_mib);
        }
        println!(
            "{backend} MEDIANS over {runs} runs: /start → menu {:.0}/s; purchases {:.0}/s \
             (flow p50 {:.0} ms, p99 {:.0} ms); RSS max {:.1} MiB, idle after load {:.1} MiB \
             ({users} registered users)",
            median(&mut start_rate),
            median(&mut buy_rate),
            median(&mut buy_p50),
            median(&mut buy_p99),
            median(&mut max_rss),
            median(&mut idle_rss)
        );
    }
}

struct RunResult {
    start_rate: f64,
    per_start: u64,
    buy_rate: f64,
    buy_p50: f64,
    buy_p99: f64,
    max_rss_mib: f64,
    idle_rss_mib: f64,
}

async fn start_service(emu: &RunningEmulator, db_url: &str, port: u16) -> Child {
    let child = support::webhook_service("run", emu, db_url, port)
        .env("OUTBOX_PER_CHAT_INTERVAL", "0s")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .envs(
            std::env::var("BENCH_DATABASE_MAX_CONNECTIONS")
                .ok()
                .map(|n| ("DATABASE_MAX_CONNECTIONS", n)),
        )
        .spawn()
        .unwrap();
    support::wait_webhook_ready(emu, port).await;
    child
}

/// `n` new emulator users who started the bot, language `en`.
async fn new_users(tg: &ControlClient, n: usize) -> Vec<i64> {
    let users = (0..n).map(|i| NewUser::new(format!("B{i}")).language("en").started());
    create_users(tg, users).await
}

/// CPU seconds (user + system) used so far by process `pid` (`self` for this process).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks; 100 per second on Linux.
    f.iter().sum::<f64>() / 100.0
}

/// Where the CPU went during a phase: the service and this process (emulator + load).
struct CpuMark {
    at: Instant,
    service: f64,
    load: f64,
}

impl CpuMark {
    fn now(pid: u32) -> Self {
        CpuMark {
            at: Instant::now(),
            service: cpu_seconds(&pid.to_string()),
            load: cpu_seconds("self"),
        }
    }

    fn report(&self, phase: &str, pid: u32) {
        let wall = self.at.elapsed().as_secs_f64();
        let service = cpu_seconds(&pid.to_string()) - self.service;
        let load = cpu_seconds("self") - self.load;
        eprintln!(
            "  {phase}: {wall:.1} s wall; CPU service {service:.1} s ({:.0} % of one core), \
             emulator + load {load:.1} s ({:.0} %)",
            service / wall * 100.0,
            load / wall * 100.0
        );
    }
}

fn bot() -> MessageFilter {
    MessageFilter::from_bot()
}

/// Waits for the bot's message in `chat` matching `filter`.
async fn wait(tg: &ControlClient, chat: i64, filter: MessageFilter, what: &str) -> i64 {
    match tg.wait_for_message(chat, filter, STEP_DEADLINE).await {
        Ok(m) => m.message_id,
        Err(e) => {
            let t = tg.transcript(chat).await.unwrap();
            panic!(
                "chat {chat}: no {what} ({e}); bot said: {:#?}",
                t.messages
                    .iter()
                    .filter(|m| m.from_bot)
                    .map(|m| (m.message_id, m.kind.clone(), m.text.clone()))
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// One user's purchase, each step waiting for the bot's answer; returns its duration in ms.
async fn purchase(tg: &ControlClient, user: i64) -> f64 {
    let start = Instant::now();
    tg.send_text(user, "/buy").await.unwrap();
    let plans = MessageFilter {
        callback_data: Some("plan:m1".into()),
        ..bot()
    };
    let m = wait(tg, user, plans, "plan list").await;
    tg.press_button(user, m, "plan:m1").await.unwrap();
    let methods = MessageFilter {
        callback_data: Some("pay:stars:m1".into()),
        ..bot()
    };
    let m = wait(tg, user, methods, "payment methods").await;
    tg.press_button(user, m, "pay:stars:m1").await.unwrap();
    let invoice = wait(tg, user, bot().kind("invoice"), "invoice").await;
    let paid = tg.pay_invoice(user, invoice).await.unwrap();
    assert_eq!(
        paid.status,
        telegram_emulator::control::types::PaymentStatus::Paid,
        "chat {user}: {paid:?}"
    );
    wait(
        tg,
        user,
        bot().text_contains("Payment received"),
        "payment confirmation",
    )
    .await;
    start.elapsed().as_secs_f64() * 1000.0
}

async fn one_run(db_url: &str, n_users: usize, n_purchases: usize) -> RunResult {
    let emu = Emulator::start(EmulatorConfig::without_rate_limits())
        .await
        .unwrap();
    let tg = emu.client();
    let port = free_port();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let mut service = start_service(&emu, db_url, port).await;
    let pid = service.id().unwrap();

    // How many messages one /start produces (a new user's menu), from a probe user.
    let probe = new_users(&tg, 1).await[0];
    let before = tg.counters().await.unwrap().messages_sent;
    tg.send_text(probe, "/start").await.unwrap();
    wait(&tg, probe, bot().text_contains(MENU), "menu").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_start = tg.counters().await.unwrap().messages_sent - before;
    assert!(per_start >= 1);

    let users = new_users(&tg, n_users).await;
    let handler_before = handler_times(&metrics_url).await;

    // /start → menu for every user.
    let sampler = RssSampler::start(pid);
    let sent_before = tg.counters().await.unwrap().messages_sent;
    let cpu = CpuMark::now(pid);
    let start = Instant::now();
    send_each(&tg, &users, "/start", START_CONCURRENCY).await;
    drain(
        &tg,
        sent_before + per_start * users.len() as u64,
        Duration::from_secs(600),
        "messages",
    )
    .await;
    let start_rate = users.len() as f64 / start.elapsed().as_secs_f64();
    cpu.report("/start", pid);
    // The count matched; check that what arrived are menus, in a sample of chats.
    for u in users.iter().step_by((users.len() / 50).max(1)) {
        wait(&tg, *u, bot().text_contains(MENU), "menu").await;
    }
    let handler_mid = handler_times(&metrics_url).await;
    print_handler_delta("/start", &handler_before, &handler_mid);

    // The full purchase, many users at once, each one's steps in order.
    let cpu = CpuMark::now(pid);
    let start = Instant::now();
    let sem = Arc::new(Semaphore::new(FLOW_CONCURRENCY));
    let mut handles = Vec::with_capacity(n_purchases);
    for u in users.iter().copied().take(n_purchases) {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let tg = tg.clone();
        handles.push(tokio::spawn(async move {
            let ms = purchase(&tg, u).await;
            drop(permit);
            ms
        }));
    }
    let mut flows = Vec::with_capacity(n_purchases);
    for h in handles {
        flows.push(h.await.unwrap());
    }
    let buy_rate = n_purchases as f64 / start.elapsed().as_secs_f64();
    cpu.report("purchase", pid);
    let handler_after = handler_times(&metrics_url).await;
    print_handler_delta("purchase", &handler_mid, &handler_after);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let max_rss_mib = sampler.stop();
    let idle_rss_mib = rss_mib(pid);
    let max_rss_mib = max_rss_mib.max(idle_rss_mib);

    support::stop(&mut service, Duration::from_secs(30)).await;
    emu.shutdown().await;
    RunResult {
        start_rate,
        per_start,
        buy_rate,
        buy_p50: percentile(&mut flows, 0.50),
        buy_p99: percentile(&mut flows, 0.99),
        max_rss_mib,
        idle_rss_mib,
    }
}

/// `(sum of seconds, count)` of `tollgate_handler_duration_seconds` per label set.
async fn handler_times(url: &str) -> BTreeMap<String, (f64, f64)> {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("tollgate_handler_duration_seconds_") else {
            continue;
        };
        let (name, value) = rest.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or(0.0);
        if let Some(labels) = name.strip_prefix("sum") {
            out.entry(labels.to_owned()).or_default().0 = value;
        } else if let Some(labels) = name.strip_prefix("count") {
            out.entry(labels.to_owned()).or_default().1 = value;
        }
    }
    out
}

fn print_handler_delta(
    phase: &str,
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
) {
    for (labels, (sum, count)) in after {
        let (s0, c0) = before.get(labels).copied().unwrap_or_default();
        let n = count - c0;
        if n > 0.0 {
            eprintln!(
                "  {phase}: handler {labels}: {n:.0} updates, mean {:.2} ms, busy {:.1} s",
                (sum - s0) / n * 1000.0,
                sum - s0
            );
        }
    }
}
