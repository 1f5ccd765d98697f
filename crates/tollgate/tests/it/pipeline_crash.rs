//! docs/reliability.md A5, A6, B1, B2, C2: kill -9 at random moments under a steady stream of
//! updates, in both intake modes and on both backends; two processes on one database.
//!
//! What must hold afterwards: every update Telegram created was stored and handled, each
//! has exactly one effect (its echo row in the outbox, keyed by update id), and each chat
//! saw its echoes in order with nothing missing. A kill between Telegram accepting a send
//! and the send being recorded can repeat that one message (the Bot API has no idempotency
//! key); such repeats can only be adjacent and are bounded by the number of kills.

use std::time::Duration;

use rand::Rng;
use telegram_emulator::{ControlClient, NewUser, RunningEmulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tollgate::on_db;
use tollgate::store::Db;

use crate::common::TestDb;
use crate::common::service::{Service, http_client};
use crate::common::telegram::{
    bot_texts, emulator, free_port, polling_env, wait_reply, webhook_env, with,
};
use crate::db_test;

const KILLS: usize = 20;
const USERS: usize = 6;

/// Users writing numbered messages round-robin until stopped; returns what each sent.
fn stream(
    tg: ControlClient,
    users: Vec<i64>,
    stop: CancellationToken,
) -> JoinHandle<Vec<Vec<String>>> {
    tokio::spawn(async move {
        let mut sent = vec![Vec::new(); users.len()];
        let mut n = 0usize;
        while !stop.is_cancelled() {
            let i = n % users.len();
            let text = format!("u{i} m{}", sent[i].len());
            tg.send_text(users[i], &text).await.expect("user sends");
            sent[i].push(text);
            n += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.cancelled() => {}
            }
        }
        sent
    })
}

async fn users(tg: &ControlClient) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..USERS {
        let mut u = NewUser::new(format!("User{i}"));
        u.started = true;
        ids.push(tg.create_user(u).await.unwrap().id);
    }
    ids
}

/// Runs the kill loop, then one last service that drains, and checks the invariants.
async fn kill_and_verify(t: &TestDb, emu: &RunningEmulator, env: Vec<(String, String)>) {
    let tg = emu.client();
    let ids = users(&tg).await;
    let stop = CancellationToken::new();
    let producer = stream(tg.clone(), ids.clone(), stop.clone());
    for _ in 0..KILLS {
        let mut svc = Service::start_command("echo", &env).await;
        // A random moment in the service's life: booting, polling, handling or sending.
        let life = rand::rng().random_range(100..1500);
        tokio::time::sleep(Duration::from_millis(life)).await;
        svc.signal("KILL");
        let status = svc.wait_exit(Duration::from_secs(10)).await;
        assert!(!status.success(), "killed, not exited");
    }
    stop.cancel();
    let sent = producer.await.unwrap();

    let mut svc = Service::start_command("echo", &env).await;
    for (i, user) in ids.iter().enumerate() {
        if let Some(last) = sent[i].last() {
            wait_reply(&tg, *user, &format!("echo: {last}")).await;
        }
    }
    let repeats = echoes_in_order(&tg, &ids, &sent).await;
    assert!(
        repeats <= KILLS,
        "{repeats} repeated sends for {KILLS} kills"
    );

    let total: usize = sent.iter().map(Vec::len).sum();
    let (echoes, unfinished) = effects(&t.db).await;
    assert_eq!(echoes, total as i64, "exactly one effect per update");
    assert_eq!(unfinished, 0, "every stored update is handled");
    let c = tg.counters().await.unwrap();
    assert_eq!(c.updates_dropped(), 0, "Telegram dropped nothing: {c:?}");
    assert!(c.updates_created >= total as u64);
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
    eprintln!("{KILLS} kills, {total} updates, {repeats} repeated sends");
}

/// (echo rows in the outbox, inbox rows not done)
async fn effects(db: &Db) -> (i64, i64) {
    let echoes: i64 = on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE 'echo:%'"
    ).fetch_one(p).await)
    .unwrap();
    let unfinished: i64 = on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status <> 'done'"
    ).fetch_one(p).await)
    .unwrap();
    (echoes, unfinished)
}

fn crash_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    // Short deadlines so claims held by killed processes come back quickly.
    with(
        env,
        &[
            ("HANDLER_DEADLINE", "2s"),
            ("RUST_LOG", "warn,tollgate::app=info"),
        ],
    )
}

db_test!(async fn kill_9_in_webhook_mode_loses_and_repeats_nothing(t) {
    let emu = emulator(false).await;
    let port = free_port();
    kill_and_verify(t, &emu, crash_env(webhook_env(&t.url, &emu, port))).await;
    emu.shutdown().await;
});

db_test!(async fn kill_9_in_polling_mode_loses_and_repeats_nothing(t) {
    let emu = emulator(false).await;
    kill_and_verify(t, &emu, crash_env(polling_env(&t.url, &emu))).await;
    emu.shutdown().await;
});

async fn processed(svc: &Service) -> u64 {
    let text = http_client()
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tollgate_updates_processed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn poller_pid(db: &Db) -> Option<i32> {
    let holder: Option<String> = on_db!(db, p => sqlx::query_scalar(
        "SELECT holder FROM leases WHERE name = 'telegram:poller'"
    ).fetch_optional(p).await)
    .unwrap();
    holder?.split(':').nth(1)?.parse().ok()
}

/// Two processes on one PostgreSQL database: one polls at a time, both dispatch, and when
/// the poller is killed the other takes over; nothing is handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_work_and_one_polls() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let emu = emulator(false).await;
    let tg = emu.client();
    let env = crash_env(polling_env(&t.url, &emu));
    let mut a = Service::start_command("echo", &env).await;
    let mut b = Service::start_command("echo", &env).await;
    let ids = users(&tg).await;
    let stop = CancellationToken::new();
    let producer = stream(tg.clone(), ids.clone(), stop.clone());
    // Intake runs through whoever polls; the other process only dispatches.
    crate::common::wait_for("updates to be handled", Duration::from_secs(60), || {
        let (a, b) = (&a, &b);
        async move { (processed(a).await + processed(b).await >= 10).then_some(()) }
    })
    .await;
    assert_eq!(
        tg.counters().await.unwrap().responses_409,
        0,
        "never two pollers at once"
    );

    // Kill whichever polls; the other takes the lease over and intake goes on.
    let pid = poller_pid(&t.db)
        .await
        .expect("someone holds the poller lease");
    let (victim, survivor) = if a.pid() == pid {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let victim_handled = processed(victim).await;
    victim.signal("KILL");
    victim.wait_exit(Duration::from_secs(10)).await;
    crate::common::wait_for("the lease to move", Duration::from_secs(60), || {
        let db = t.db.clone();
        let want = survivor.pid();
        async move { (poller_pid(&db).await == Some(want)).then_some(()) }
    })
    .await;
    // The stream goes on through the survivor alone for a while.
    let before = processed(survivor).await;
    crate::common::wait_for(
        "the survivor to handle more",
        Duration::from_secs(60),
        || {
            let s = &*survivor;
            async move { (processed(s).await >= before + 5).then_some(()) }
        },
    )
    .await;
    stop.cancel();
    let sent = producer.await.unwrap();
    for (i, user) in ids.iter().enumerate() {
        if let Some(last) = sent[i].last() {
            wait_reply(&tg, *user, &format!("echo: {last}")).await;
        }
    }
    let total: usize = sent.iter().map(Vec::len).sum();
    let repeats = echoes_in_order(&tg, &ids, &sent).await;
    assert!(
        repeats <= 1,
        "only the killed process's in-flight send may repeat: {repeats}"
    );
    // Both processes handled updates: the work is not owned by the poller.
    assert!(victim_handled > 0 && processed(survivor).await > 0);
    let (echoes, unfinished) = effects(&t.db).await;
    assert_eq!((echoes, unfinished), (total as i64, 0));
    let c = tg.counters().await.unwrap();
    assert_eq!(c.responses_409, 0, "no 409 storm at the takeover: {c:?}");
    assert_eq!(c.updates_dropped(), 0);
    survivor.signal("TERM");
    assert!(survivor.wait_exit(Duration::from_secs(15)).await.success());
    emu.shutdown().await;
}

/// Checks that every user got the echo of each message they sent, in order, and returns how
/// many echoes came twice in a row (a send whose result a kill lost may be repeated).
async fn echoes_in_order(tg: &ControlClient, ids: &[i64], sent: &[Vec<String>]) -> usize {
    let mut repeats = 0;
    for (i, user) in ids.iter().enumerate() {
        let texts = bot_texts(tg, *user).await;
        let mut collapsed: Vec<String> = Vec::new();
        for text in texts {
            if collapsed.last() == Some(&text) {
                repeats += 1;
            } else {
                collapsed.push(text);
            }
        }
        let want: Vec<String> = sent[i].iter().map(|m| format!("echo: {m}")).collect();
        assert_eq!(collapsed, want, "user {i}: every echo, in order");
    }
    repeats
}
