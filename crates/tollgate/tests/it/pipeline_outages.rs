//! docs/reliability.md A2, A3, G3 with Telegram misbehaving: unreachable (a TCP proxy in front of the
//! emulator's Bot API is cut) and hanging (the emulator's `FaultKind::Hang`).
//!
//! - Readiness depends on the database only: with the Bot API unreachable `/readyz` stays 200
//!   and its body says what intake sees; webhook intake keeps storing and handling; what was
//!   queued meanwhile is delivered, once, when Telegram is back.
//! - A hanging call is cut by the per-call deadline, retried, and delivered once; the sender
//!   and the poller go on meanwhile.
//! - C1: no transaction stays open while a call to Telegram hangs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use telegram_emulator::{
    ControlClient, Emulator, EmulatorConfig, FaultKind, NewUser, RunningEmulator,
};
use tollgate::app::{AppOptions, RunningApp};
use tollgate::store::{Db, Tx};
use tollgate::telegram::echo::EchoHandler;
use tollgate::telegram::outbox::{self, OutboxMessage, Priority};
use tollgate::time::{Clock, SystemClock};
use tollgate::{on_db, on_tx};

use crate::common::proxy::TcpProxy;
use crate::common::service::http_client;
use crate::common::telegram::{
    bot_texts, emulator, free_port, in_process, polling_env, wait_registered, wait_reply,
    webhook_env, with,
};
use crate::common::wait_for;
use crate::db_test;

async fn readyz(addr: SocketAddr) -> (u16, serde_json::Value) {
    let r = http_client()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("/readyz answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// `/readyz` must be 200 at every look; returns the body once `want` holds for it.
async fn ready_until(
    addr: SocketAddr,
    what: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let want = &want;
    wait_for(what, Duration::from_secs(30), move || async move {
        let (status, body) = readyz(addr).await;
        assert_eq!(status, 200, "readiness must not follow Telegram: {body}");
        assert_eq!(body["status"], "ready", "{body}");
        want(&body).then_some(body)
    })
    .await
}

async fn started_user(tg: &ControlClient, name: &str) -> i64 {
    let mut u = NewUser::new(name);
    u.started = true;
    tg.create_user(u).await.unwrap().id
}

async fn enqueue(db: &Db, messages: &[OutboxMessage]) {
    let mut tx = db.begin().await.unwrap();
    for m in messages {
        outbox::enqueue(&mut tx, m, SystemClock.now())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Outcome and detail of every attempt of the message with `key`, oldest first.
async fn attempt_log(db: &Db, key: &str) -> Vec<(String, Option<String>)> {
    on_db!(db, p => sqlx::query_as(
        "SELECT a.outcome, a.detail FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id
         WHERE o.dedupe_key = $1 ORDER BY a.id"
    ).bind(key).fetch_all(p).await)
    .unwrap()
}

/// Waits until the message with `key` has at least `n` recorded attempts that failed because
/// Telegram could not be reached; it must still be pending.
async fn wait_failed_attempts(db: &Db, key: &str, n: usize) {
    wait_for(
        &format!("{n} failed attempts of {key}"),
        Duration::from_secs(20),
        move || async move {
            let log = attempt_log(db, key).await;
            for (outcome, detail) in &log {
                assert_eq!(outcome, "retry", "{log:?}");
                let detail = detail.as_deref().unwrap_or_default();
                assert!(detail.contains("cannot reach Telegram"), "{log:?}");
            }
            (log.len() >= n).then_some(())
        },
    )
    .await;
    let row = outbox::get_by_key(db, key).await.unwrap().unwrap();
    assert_eq!(row.status, "pending", "still waiting to be sent: {row:?}");
}

/// The Bot API as seen through a proxy the test can cut.
fn through(proxy: &TcpProxy) -> String {
    format!("http://{}", proxy.addr)
}

fn fast_retries() -> AppOptions {
    AppOptions {
        // 8 attempts: about 32 s of backoff before a message would give up.
        send_retry_base: Duration::from_millis(250),
        ..AppOptions::default()
    }
}

db_test!(async fn with_telegram_unreachable_readiness_stays_up_and_queued_messages_go_out_after(t) {
    let emu = emulator(true).await;
    let tg = emu.client();
    let proxy = TcpProxy::start(emu.addr()).await;
    let env = with(polling_env(&t.url, &emu), &[("TELEGRAM_API_URL", &through(&proxy))]);
    let app = in_process(&env, Arc::new(EchoHandler), fast_retries()).await;
    let ann = started_user(&tg, "Ann").await;
    tg.send_text(ann, "before").await.unwrap();
    wait_reply(&tg, ann, "echo: before").await;
    ready_until(app.addr, "intake polling", |b| b["components"]["intake"]["state"] == "polling").await;

    proxy.cut();
    // Readiness stays 200 while the body tells what intake sees.
    let body = ready_until(app.addr, "intake to report Telegram unreachable", |b| {
        b["components"]["intake"]["state"] == "telegram unreachable"
    })
    .await;
    let intake = &body["components"]["intake"];
    assert_eq!(intake["mode"], "polling", "{body}");
    assert!(intake["error"].as_str().unwrap().contains("cannot reach Telegram"), "{body}");
    // Meanwhile Ann writes (it waits at Telegram) and the service queues a message.
    tg.send_text(ann, "during").await.unwrap();
    enqueue(&t.db, &[OutboxMessage::text("a2:queued", ann, Priority::Transactional, "queued while away", None)]).await;
    wait_failed_attempts(&t.db, "a2:queued", 2).await;
    ready_until(app.addr, "still ready", |_| true).await;
    assert_eq!(bot_texts(&tg, ann).await, ["echo: before"], "nothing got through the cut");

    proxy.restore();
    wait_reply(&tg, ann, "queued while away").await;
    wait_reply(&tg, ann, "echo: during").await;
    ready_until(app.addr, "intake polling again", |b| b["components"]["intake"]["state"] == "polling").await;
    let mut texts = bot_texts(&tg, ann).await;
    texts.sort();
    assert_eq!(texts, ["echo: before", "echo: during", "queued while away"], "each exactly once");
    let log = attempt_log(&t.db, "a2:queued").await;
    assert_eq!(log.last().unwrap().0, "sent", "{log:?}");
    assert_eq!(log.iter().filter(|(o, _)| o == "sent").count(), 1, "{log:?}");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

async fn inbox_states(db: &Db, chat: i64) -> Vec<(String, i32)> {
    on_db!(db, p => sqlx::query_as(
        "SELECT status, attempts FROM tg_inbox WHERE chat_key = $1 ORDER BY update_id"
    ).bind(chat).fetch_all(p).await)
    .unwrap()
}

db_test!(async fn with_the_bot_api_unreachable_webhook_intake_still_stores_and_handles(t) {
    let emu = emulator(true).await;
    let tg = emu.client();
    let proxy = TcpProxy::start(emu.addr()).await;
    let port = free_port();
    let env = with(webhook_env(&t.url, &emu, port), &[("TELEGRAM_API_URL", &through(&proxy))]);
    let options = AppOptions {
        webhook_check_every: Duration::from_millis(300),
        ..fast_retries()
    };
    let app = in_process(&env, Arc::new(EchoHandler), options).await;
    wait_registered(&emu, port).await;
    ready_until(app.addr, "intake registered", |b| b["components"]["intake"]["state"] == "registered").await;
    let ann = started_user(&tg, "Ann").await;
    tg.send_text(ann, "hi").await.unwrap();
    wait_reply(&tg, ann, "echo: hi").await;
    // The emulator has the reply before its answer is back through the proxy: cut only once
    // the sender recorded it as sent, or the cut fails that call and the reply is sent again.
    let db = &t.db;
    wait_for("the reply to hi recorded as sent", Duration::from_secs(10), move || async move {
        let pending: i64 = on_db!(db, p => sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE chat_id = $1 AND status = 'pending'"
        ).bind(ann).fetch_one(p).await)
        .unwrap();
        (pending == 0).then_some(())
    })
    .await;

    // Our calls to Telegram fail; Telegram's deliveries to us still arrive.
    proxy.cut();
    for k in 0..3 {
        tg.send_text(ann, &format!("w{k}")).await.unwrap();
    }
    wait_for("the three updates stored and handled", Duration::from_secs(20), move || async move {
        let states = inbox_states(db, ann).await;
        (states.len() == 4 && states.iter().all(|s| s == &("done".to_owned(), 1))).then_some(())
    })
    .await;
    // Their replies are queued; the first of the chat keeps failing to reach Telegram.
    let head_key = on_db!(&t.db, p => sqlx::query_scalar::<_, String>(
        "SELECT dedupe_key FROM outbox WHERE chat_id = $1 AND status = 'pending' ORDER BY id LIMIT 1"
    ).bind(ann).fetch_one(p).await)
    .unwrap();
    wait_failed_attempts(&t.db, &head_key, 2).await;
    let pending: i64 = on_db!(&t.db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE chat_id = $1 AND status = 'pending'"
    ).bind(ann).fetch_one(p).await)
    .unwrap();
    assert_eq!(pending, 3, "one reply per stored update, waiting");
    // Readiness stays 200 while the body tells what the registration check sees.
    let body = ready_until(app.addr, "intake to report Telegram unreachable", |b| {
        b["components"]["intake"]["state"] == "telegram unreachable"
    })
    .await;
    assert_eq!(body["components"]["intake"]["mode"], "webhook", "{body}");
    assert!(body["components"]["intake"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert_eq!(bot_texts(&tg, ann).await, ["echo: hi"], "nothing got through the cut");

    proxy.restore();
    ready_until(app.addr, "intake registered again", |b| b["components"]["intake"]["state"] == "registered").await;
    wait_reply(&tg, ann, "echo: w2").await;
    assert_eq!(bot_texts(&tg, ann).await, ["echo: hi", "echo: w0", "echo: w1", "echo: w2"], "each once, in order");
    let c = tg.counters().await.unwrap();
    assert_eq!(c.updates_dropped(), 0, "{c:?}");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

/// An echo service in polling mode whose calls to Telegram are cut after `call_timeout` and
/// whose failed sends are retried after 200 ms.
async fn echo_cutting_calls_at(
    t: &crate::common::TestDb,
    emu: &RunningEmulator,
    call_timeout: Duration,
) -> RunningApp {
    let options = AppOptions {
        telegram_call_timeout: call_timeout,
        send_retry_base: Duration::from_millis(200),
        ..AppOptions::default()
    };
    in_process(&polling_env(&t.url, emu), Arc::new(EchoHandler), options).await
}

/// Waits until the emulator has fired `n` injected faults in all.
async fn faults_fired(tg: &ControlClient, n: u64, what: &str) {
    wait_for(what, Duration::from_secs(10), || async {
        (tg.counters().await.ok()?.faults_fired >= n).then_some(())
    })
    .await;
}

db_test!(async fn a_hanging_send_is_cut_at_the_call_deadline_retried_and_delivered_once(t) {
    const CALL_TIMEOUT: Duration = Duration::from_secs(3);
    let emu = Emulator::start(EmulatorConfig::without_rate_limits()).await.unwrap();
    let tg = emu.client();
    let (a, b, c) = (started_user(&tg, "A").await, started_user(&tg, "B").await, started_user(&tg, "C").await);
    let app = echo_cutting_calls_at(t, &emu, CALL_TIMEOUT).await;

    // The next sendMessage is held by Telegram without an answer (for 300 s).
    tg.inject_fault("sendMessage", FaultKind::Hang, 1).await.unwrap();
    let started = Instant::now();
    enqueue(&t.db, &[OutboxMessage::text("hang:a", a, Priority::Transactional, "to A", None)]).await;
    faults_fired(&tg, 1, "the send to A to hang").await;
    // Other chats are not held up by it.
    enqueue(&t.db, &[
        OutboxMessage::text("hang:b", b, Priority::Transactional, "to B", None),
        OutboxMessage::text("hang:c", c, Priority::Transactional, "to C", None),
    ])
    .await;
    wait_reply(&tg, b, "to B").await;
    wait_reply(&tg, c, "to C").await;
    assert!(
        attempt_log(&t.db, "hang:a").await.is_empty(),
        "B and C were delivered while the call to A was still hanging"
    );

    wait_reply(&tg, a, "to A").await;
    assert!(started.elapsed() >= CALL_TIMEOUT, "the hung call was waited out, not refused");
    let db = &t.db;
    wait_for("the send to be recorded", Duration::from_secs(10), move || async move {
        (outbox::get_by_key(db, "hang:a").await.unwrap()?.status == "sent").then_some(())
    })
    .await;
    let log = attempt_log(&t.db, "hang:a").await;
    let outcomes: Vec<&str> = log.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["retry", "sent"], "{log:?}");
    let cut = log[0].1.as_deref().unwrap_or_default();
    assert!(cut.contains("did not answer within 3s"), "cut by the call deadline: {cut}");
    for (chat, text) in [(a, "to A"), (b, "to B"), (c, "to C")] {
        assert_eq!(bot_texts(&tg, chat).await, [text], "delivered exactly once");
    }
    let counters = tg.counters().await.unwrap();
    assert_eq!(counters.calls.get("sendMessage"), Some(&4), "the hung call, its retry, B and C: {counters:?}");

    // A hanging long poll is cut too (its own deadline: long poll + 2 s), and polling goes on.
    tg.inject_fault("getUpdates", FaultKind::Hang, 1).await.unwrap();
    faults_fired(&tg, 2, "a getUpdates to hang").await;
    tg.send_text(a, "still polling?").await.unwrap();
    wait_reply(&tg, a, "echo: still polling?").await;
    let (_, body) = readyz(app.addr).await;
    for name in ["poller", "outbox-sender"] {
        assert_eq!(body["components"][name]["restarts"], 0, "{name} was never wedged: {body}");
    }
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

/// Transactions of this database open for longer than `age` (PostgreSQL), or whether a write
/// transaction cannot start within `age` (SQLite: the service's transactions all take the
/// write lock, so one held across a call would keep this one out).
async fn transactions_older_than(db: &Db, age: Duration) -> Vec<String> {
    match db {
        Db::Postgres(p) => sqlx::query_scalar(
            "SELECT CONCAT(state, ' since ', now() - xact_start, ': ', left(query, 120))
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND xact_start < now() - make_interval(secs => $1)",
        )
        .bind(age.as_secs_f64())
        .fetch_all(p)
        .await
        .unwrap(),
        // A statement makes the transaction take the write lock (`BEGIN IMMEDIATE`).
        Db::Sqlite(_) => match tokio::time::timeout(age, take_write_lock(db)).await {
            Ok(Ok(())) => Vec::new(),
            Ok(Err(e)) => vec![format!("cannot begin: {e}")],
            Err(_) => vec![format!("the write lock is held for over {age:?}")],
        },
    }
}

/// Begins a write transaction and runs a statement in it, which takes SQLite's write lock;
/// returns the transaction.
async fn write_transaction(db: &Db) -> Result<Tx, sqlx::Error> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query("SELECT 1").execute(c).await.map(|_| ()))?;
    Ok(tx)
}

async fn take_write_lock(db: &Db) -> Result<(), sqlx::Error> {
    write_transaction(db).await?.commit().await
}

// docs/reliability.md C1: no transaction is held across a call to Telegram. While the sender's
// `sendMessage` and then the poller's `getUpdates` hang, no transaction of the service stays
// open (PostgreSQL: none older than a second; SQLite: the write lock is free), and what hung
// is delivered once afterwards.
db_test!(async fn no_transaction_stays_open_while_a_telegram_call_hangs(t) {
    const CALL_TIMEOUT: Duration = Duration::from_secs(6);
    const OPEN: Duration = Duration::from_secs(1);
    let emu = Emulator::start(EmulatorConfig::without_rate_limits()).await.unwrap();
    let tg = emu.client();
    let a = started_user(&tg, "A").await;
    let app = echo_cutting_calls_at(t, &emu, CALL_TIMEOUT).await;
    // The look sees a transaction held that long (the test's own, here).
    let held = write_transaction(&t.db).await.unwrap();
    tokio::time::sleep(OPEN + Duration::from_millis(500)).await;
    let seen = transactions_older_than(&t.another_pool(), OPEN).await;
    assert!(!seen.is_empty(), "the look must see a held transaction");
    held.rollback().await.unwrap();

    // The bot answers before the faults, so every component has run.
    tg.send_text(a, "hello").await.unwrap();
    wait_reply(&tg, a, "echo: hello").await;

    tg.inject_fault("sendMessage", FaultKind::Hang, 1).await.unwrap();
    enqueue(&t.db, &[OutboxMessage::text("hang:a", a, Priority::Transactional, "to A", None)]).await;
    faults_fired(&tg, 1, "the send to A to hang").await;
    let hung = Instant::now();
    // Let the hang outlast the age looked for; the call is cut only at CALL_TIMEOUT.
    tokio::time::sleep(OPEN + Duration::from_millis(500)).await;
    let open = transactions_older_than(&t.db, OPEN).await;
    assert!(hung.elapsed() < CALL_TIMEOUT, "the look happened during the hang");
    assert!(open.is_empty(), "transactions open across a hanging sendMessage: {open:?}");
    wait_reply(&tg, a, "to A").await;

    tg.inject_fault("getUpdates", FaultKind::Hang, 1).await.unwrap();
    faults_fired(&tg, 2, "a getUpdates to hang").await;
    let hung = Instant::now();
    tokio::time::sleep(OPEN + Duration::from_millis(500)).await;
    let open = transactions_older_than(&t.db, OPEN).await;
    // POLL_TIMEOUT is 1 s in `polling_env`.
    let poll_deadline = tollgate::telegram::poller::call_timeout(Duration::from_secs(1));
    assert!(hung.elapsed() < poll_deadline, "the look happened during the hang");
    assert!(open.is_empty(), "transactions open across a hanging getUpdates: {open:?}");
    tg.send_text(a, "after").await.unwrap();
    wait_reply(&tg, a, "echo: after").await;
    assert_eq!(bot_texts(&tg, a).await, ["echo: hello", "to A", "echo: after"], "each once");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});
