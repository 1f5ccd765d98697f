//! docs/reliability.md D6, G1, G3: the outbox sender paces one global rate and 1/s per chat, pauses
//! as Telegram says on 429, retries 5xx, fails 400s with the reason, marks blocked users and
//! goes on with everyone else, and records every attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use telegram_emulator::{Emulator, EmulatorConfig, FaultKind, NewUser, RunningEmulator};
use tollgate::app::AppOptions;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::telegram::echo::EchoHandler;
use tollgate::telegram::outbox::{self, OutboxMessage, Priority};
use tollgate::time::{Clock, SystemClock, Timestamp};
use tollgate::users;

use crate::common::telegram::{in_process, polling_env, wait_reply, with};
use crate::common::{TestDb, wait_for};
use crate::db_test;

async fn started_users(emu: &RunningEmulator, n: usize) -> Vec<i64> {
    let tg = emu.client();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let mut u = NewUser::new(format!("U{i}"));
        u.started = true;
        ids.push(tg.create_user(u).await.unwrap().id);
    }
    ids
}

async fn enqueue_all(db: &Db, messages: &[OutboxMessage]) {
    let now = SystemClock.now();
    for chunk in messages.chunks(500) {
        let mut tx = db.begin().await.unwrap();
        for m in chunk {
            outbox::enqueue(&mut tx, m, now).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
}

async fn statuses(db: &Db) -> Vec<(String, i64)> {
    on_db!(db, p => sqlx::query_as(
        "SELECT status, CAST(COUNT(*) AS BIGINT) FROM outbox GROUP BY status ORDER BY status"
    ).fetch_all(p).await)
    .unwrap()
}

async fn wait_all_finished(db: &Db, deadline: Duration) {
    wait_for("the outbox to drain", deadline, || {
        let db = db.clone();
        async move {
            let pending: i64 = on_db!(&db, p => sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE status = 'pending'"
            ).fetch_one(p).await)
            .unwrap();
            (pending == 0).then_some(())
        }
    })
    .await;
}

/// 2,000 messages to 200 chats: zero 429s, and the achieved rate within 5 % of the
/// configured one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_messages_to_two_hundred_chats_at_the_configured_rate() {
    let t = TestDb::sqlite().await;
    let mut config = EmulatorConfig::default();
    // Telegram-like limits scaled so the test takes 20 s: 120/s global, 1/s per chat.
    config.rate_limits.global_per_sec = 120.0;
    config.rate_limits.global_burst = 120.0;
    let emu = Emulator::start(config).await.unwrap();
    let chats = started_users(&emu, 200).await;
    let messages: Vec<OutboxMessage> = (0..2000)
        .map(|k| {
            OutboxMessage::text(
                format!("bulk:{k}"),
                chats[k % 200],
                Priority::Broadcast,
                format!("news {k}"),
                None,
            )
        })
        .collect();
    enqueue_all(&t.db, &messages).await;
    let env = with(polling_env(&t.url, &emu), &[("OUTBOX_RATE", "100")]);
    let started = Instant::now();
    let app = in_process(&env, Arc::new(EchoHandler), AppOptions::default()).await;
    wait_all_finished(&t.db, Duration::from_secs(90)).await;
    let took = started.elapsed();

    assert_eq!(statuses(&t.db).await, [("sent".to_owned(), 2000)]);
    let c = emu.client().counters().await.unwrap();
    assert_eq!(c.responses_429, 0, "no 429 at all: {c:?}");
    let (first, last): (Timestamp, Timestamp) = on_db!(&t.db, p => sqlx::query_as(
        "SELECT MIN(finished_at), MAX(finished_at) FROM outbox"
    ).fetch_one(p).await)
    .unwrap();
    let rate = 1999.0 / (last.as_millis() - first.as_millis()) as f64 * 1000.0;
    assert!(
        (95.0..=105.0).contains(&rate),
        "achieved {rate:.1} msg/s, configured 100 (took {took:?})"
    );
    // Per chat: ten messages, never two within a second.
    let per_chat: Vec<(i64, Timestamp)> = on_db!(&t.db, p => sqlx::query_as(
        "SELECT chat_id, finished_at FROM outbox ORDER BY chat_id, finished_at"
    ).fetch_all(p).await)
    .unwrap();
    for pair in per_chat.windows(2) {
        if pair[0].0 == pair[1].0 {
            let gap = pair[1].1.as_millis() - pair[0].1.as_millis();
            assert!(
                gap >= 900,
                "chat {} got two messages {gap} ms apart",
                pair[0].0
            );
        }
    }
    eprintln!("2000 messages in {took:?}: {rate:.1} msg/s");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
}

db_test!(async fn a_429_pauses_all_sending_and_loses_nothing(t) {
    let emu = Emulator::start(EmulatorConfig::without_rate_limits()).await.unwrap();
    let tg = emu.client();
    let chats = started_users(&emu, 10).await;
    let env = polling_env(&t.url, &emu);
    let app = in_process(&env, Arc::new(EchoHandler), AppOptions::default()).await;
    tg.inject_fault("sendMessage", FaultKind::TooManyRequests { retry_after: 2 }, 3).await.unwrap();
    let messages: Vec<OutboxMessage> = (0..20)
        .map(|k| OutboxMessage::text(format!("m:{k}"), chats[k % 10], Priority::Reminder, format!("note {k}"), None))
        .collect();
    let started = Instant::now();
    enqueue_all(&t.db, &messages).await;
    wait_all_finished(&t.db, Duration::from_secs(60)).await;
    assert!(started.elapsed() >= Duration::from_secs(2), "the pause was honoured");
    assert_eq!(statuses(&t.db).await, [("sent".to_owned(), 20)]);
    let c = tg.counters().await.unwrap();
    assert_eq!(c.responses_429, 3, "only the injected 429s: the sender did not hammer");
    assert_eq!(c.calls.get("sendMessage"), Some(&23), "20 messages + 3 refused attempts");
    // A rate-limited attempt is recorded but does not count against the message.
    let limited: Vec<(i64, i32)> = on_db!(&t.db, p => sqlx::query_as(
        "SELECT o.id, o.attempts FROM outbox o JOIN outbox_attempts a ON a.outbox_id = o.id WHERE a.outcome = 'rate_limited'"
    ).fetch_all(p).await).unwrap();
    assert_eq!(limited.len(), 3);
    for (id, attempts) in limited {
        assert_eq!(attempts, 1, "message {id}");
        let outcomes = outbox::attempts(&t.db, id).await.unwrap();
        assert_eq!(outcomes.last().unwrap().0, "sent");
    }
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

db_test!(async fn server_errors_retry_bad_requests_fail_and_blocked_users_are_marked(t) {
    let emu = Emulator::start(EmulatorConfig::without_rate_limits()).await.unwrap();
    let tg = emu.client();
    let chats = started_users(&emu, 3).await;
    let (blocker, other) = (chats[0], chats[1]);
    // The blocking user is registered with us, so the block can be recorded.
    on_db!(&t.db, p => sqlx::query(
        "INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at) VALUES ($1, 'B', 'en', 'rb', 0, 0)"
    ).bind(blocker).execute(p).await.map(|_| ())).unwrap();
    tg.block_bot(blocker).await.unwrap();
    let options = AppOptions { send_retry_base: Duration::from_millis(100), ..AppOptions::default() };
    let app = in_process(&polling_env(&t.url, &emu), Arc::new(EchoHandler), options).await;
    // The next two sends fail with 500 and 502.
    tg.inject_fault("sendMessage", FaultKind::ServerError, 1).await.unwrap();
    tg.inject_fault("sendMessage", FaultKind::BadGateway, 1).await.unwrap();
    // Alone in the outbox, so both faults hit it.
    enqueue_all(&t.db, &[OutboxMessage::text("flaky", other, Priority::Transactional, "third time lucky", None)]).await;
    wait_all_finished(&t.db, Duration::from_secs(30)).await;
    let mut messages = Vec::new();
    for k in 0..3 {
        messages.push(OutboxMessage::text(format!("to-blocker:{k}"), blocker, Priority::Transactional, "hello?", None));
    }
    messages.push(OutboxMessage::text("bad-html", chats[2], Priority::Transactional, "<b>unclosed", None));
    for k in 0..3 {
        messages.push(OutboxMessage::text(format!("after:{k}"), other, Priority::Transactional, format!("after {k}"), None));
    }
    enqueue_all(&t.db, &messages).await;
    wait_all_finished(&t.db, Duration::from_secs(60)).await;

    let flaky = outbox::get_by_key(&t.db, "flaky").await.unwrap().unwrap();
    assert_eq!(flaky.status, "sent");
    let outcomes: Vec<String> = outbox::attempts(&t.db, flaky.id).await.unwrap().into_iter().map(|a| a.0).collect();
    assert_eq!(outcomes, ["retry", "retry", "sent"], "each attempt recorded");
    for k in 0..3 {
        let m = outbox::get_by_key(&t.db, &format!("to-blocker:{k}")).await.unwrap().unwrap();
        assert_eq!(m.status, "blocked");
        assert_eq!(m.last_error.as_deref(), Some("Forbidden: bot was blocked by the user"));
    }
    assert!(users::bot_blocked_at(&t.db, blocker).await.unwrap().is_some());
    let bad = outbox::get_by_key(&t.db, "bad-html").await.unwrap().unwrap();
    assert_eq!((bad.status.as_str(), bad.attempts), ("failed", 1));
    assert!(bad.last_error.unwrap().contains("can't parse entities"));
    for k in 0..3 {
        assert_eq!(outbox::get_by_key(&t.db, &format!("after:{k}")).await.unwrap().unwrap().status, "sent");
    }
    // Writing again makes the user reachable again (D6).
    tg.unblock_bot(blocker).await.unwrap();
    tg.send_text(blocker, "I'm back").await.unwrap();
    wait_reply(&tg, blocker, "echo: I'm back").await;
    assert_eq!(users::bot_blocked_at(&t.db, blocker).await.unwrap(), None);
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});
