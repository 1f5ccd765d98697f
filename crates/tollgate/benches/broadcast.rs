//! A paid broadcast to 100,000 users against the emulator with Telegram's flood limits on
//! (paid broadcasts 1,000/s, one message a second per chat), SQLite and PostgreSQL. Targets:
//! the achieved rate within 5 % of 1,000/s, zero 429 answers; reported with the service's peak
//! RSS and the time from Send (the broadcast's start committed) to the first message.
//!
//! `cargo bench -p tollgate --bench broadcast` (`BENCH_BACKEND=sqlite|postgres` narrows it,
//! `BENCH_RECIPIENTS` changes the 100,000). Users are created in the emulator and imported
//! into a fresh database; the release `tollgate run` is started as a child process; the
//! broadcast is started as the console's Send does (`broadcast::start` in a transaction), and
//! the emulator's paid-broadcast counter is sampled until every recipient has it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    Backends, create_users, database, env_or, free_port, migrated, peak_rss_mib, pool_settings,
};
use telegram_emulator::{Emulator, EmulatorConfig, NewUser};
use tollgate::broadcast::{self, Content, Status};
use tollgate::config::Language;
use tollgate::time::{Clock, SystemClock};
use tollgate::users::{self, Audience, ImportedUser};

const ADMIN: i64 = 100_000_001;
const FIRST: i64 = 500_000_001;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let n: i64 = env_or("BENCH_RECIPIENTS", 100_000);
    for backend in backends.each() {
        one_run(backend, &backends.pg_admin, n).await;
    }
}

async fn one_run(backend: &str, pg_admin: &str, n: i64) {
    let (url, _dir) = database(backend, pg_admin, "broadcast").await;
    // Telegram's limits as they are: 30/s free, 1,000/s paid, 1/s per chat.
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let tg = emu.client();
    let db = migrated(&pool_settings(&url, 4), SystemClock.now()).await;
    let t = Instant::now();
    let users = (FIRST..FIRST + n).map(|id| NewUser {
        id: Some(id),
        first_name: format!("U{id}"),
        started: true,
        ..NewUser::default()
    });
    create_users(&tg, users).await;
    let now = SystemClock.now();
    for chunk in (FIRST..FIRST + n).collect::<Vec<_>>().chunks(1000) {
        let mut tx = db.begin().await.unwrap();
        for id in chunk {
            let user = ImportedUser {
                id: *id,
                username: None,
                language: Language::En,
                auto_renew: false,
                trial_used_at: None,
                bot_blocked_at: None,
                referral_code: None,
                created_at: now,
            };
            users::import(&mut tx, &user, now).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    println!(
        "{backend}: {n} users in the emulator and the database in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    let port = free_port();
    let mut child = support::service("run", &emu, &url, port)
        .env("POLL_TIMEOUT", "1s")
        .env("ADMIN_IDS", ADMIN.to_string())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    support::wait_ready(&format!("127.0.0.1:{port}"), || async { true }).await;

    // Send, as the console does it: the draft started in one transaction.
    let content =
        Content::parse("<b>Benchmark</b>: a new node\n---\nOpen | https://example.com/").unwrap();
    let mut tx = db.begin().await.unwrap();
    let id = broadcast::create_draft(&mut tx, ADMIN, &content, SystemClock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(
        broadcast::start(&mut tx, id, Audience::All, true, n, SystemClock.now())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let sent_at = Instant::now();
    let mut first = None;
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    loop {
        let c = tg.counters().await.unwrap();
        let at = Instant::now();
        if first.is_none() && c.paid_broadcast_messages > 0 {
            first = Some(at.duration_since(sent_at));
        }
        samples.push((at, c.paid_broadcast_messages));
        if c.paid_broadcast_messages >= n as u64 {
            break;
        }
        assert!(
            sent_at.elapsed() < Duration::from_secs(600),
            "not done in 10 minutes: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counters = tg.counters().await.unwrap();
    // The rate over the steady part: from the first message to the last.
    let start = samples.iter().find(|(_, v)| *v > 0).unwrap();
    let end = samples.last().unwrap();
    let rate = (end.1 - start.1) as f64 / end.0.duration_since(start.0).as_secs_f64();
    let rss = peak_rss_mib(pid);
    let done = loop {
        let b = broadcast::get(&db, id).await.unwrap().unwrap();
        if b.status == Status::Done {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "{backend}: {n} paid messages at {rate:.0}/s ({:+.1} % of 1000/s), {} answered 429, \
         first message {:.0} ms after Send, service peak RSS {rss:.0} MiB; recorded sent {} failed {} blocked {}",
        (rate - 1000.0) / 10.0,
        counters.responses_429,
        first.unwrap().as_secs_f64() * 1000.0,
        done.sent,
        done.failed,
        done.blocked
    );
    support::stop(&mut child, Duration::from_secs(20)).await;
    emu.shutdown().await;
}
