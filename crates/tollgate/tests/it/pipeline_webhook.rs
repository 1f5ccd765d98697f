//! docs/reliability.md A6, A7, B1, B2: webhook intake stores before it acknowledges, deduplicates,
//! answers 503 when it cannot store, and registration never drops or deletes anything.

use std::sync::Arc;
use std::time::Duration;

use telegram_emulator::{NewUser, RunningEmulator};
use tollgate::app::{AppOptions, RunningApp};
use tollgate::telegram::echo::EchoHandler;
use tollgate::telegram::inbox;

use crate::common::proxy::TcpProxy;
use crate::common::service::http_client;
use crate::common::telegram::{
    WEBHOOK_SECRET, bot_texts, emulator, free_port, in_process, polling_env, wait_registered,
    wait_reply, webhook_env, with,
};
use crate::common::{TestDb, pg_admin_url, wait_for};
use crate::db_test;

async fn start_webhook(t: &TestDb, emu: &RunningEmulator, port: u16) -> RunningApp {
    let app = in_process(
        &webhook_env(&t.url, emu, port),
        Arc::new(EchoHandler),
        AppOptions::default(),
    )
    .await;
    wait_registered(emu, port).await;
    app
}

fn crafted_update(update_id: i64, chat: i64, text: &str) -> String {
    serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 1_800_000_000,
            "from": { "id": chat, "is_bot": false, "first_name": "Ann" },
            "chat": { "id": chat, "type": "private", "first_name": "Ann" },
            "text": text
        }
    })
    .to_string()
}

db_test!(async fn webhook_checks_the_secret_and_size_and_stores_each_update_once(t) {
    let emu = emulator(true).await;
    let port = free_port();
    let app = start_webhook(t, &emu, port).await;
    let tg = emu.client();
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    // Ann writes first: a bot cannot start a conversation (403).
    tg.send_text(ann.id, "hi").await.unwrap();
    wait_reply(&tg, ann.id, "echo: hi").await;
    let url = format!("http://127.0.0.1:{port}/telegram/webhook");
    let post = |secret: Option<&'static str>, body: String| {
        let mut r = http_client().post(&url).header("content-type", "application/json").body(body);
        if let Some(s) = secret {
            r = r.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };

    // Wrong or missing secret: 401 and nothing stored.
    assert_eq!(post(None, crafted_update(900_001, ann.id, "x")).await, 401);
    assert_eq!(post(Some("wrong-secret"), crafted_update(900_001, ann.id, "x")).await, 401);
    assert_eq!(inbox::get(&t.db, 900_001).await.unwrap(), None);
    // Oversized: 413 before anything is parsed.
    let big = crafted_update(900_002, ann.id, &"x".repeat(300 * 1024));
    assert_eq!(post(Some(WEBHOOK_SECRET), big).await, 413);
    assert_eq!(inbox::get(&t.db, 900_002).await.unwrap(), None);
    // Not an update: 400 with the reason, nothing stored.
    assert_eq!(post(Some(WEBHOOK_SECRET), "{\"hello\":1}".to_owned()).await, 400);

    // The same update twice: stored once, handled once.
    let dup = crafted_update(900_003, ann.id, "twice");
    assert_eq!(post(Some(WEBHOOK_SECRET), dup.clone()).await, 200);
    assert_eq!(post(Some(WEBHOOK_SECRET), dup).await, 200);
    wait_reply(&tg, ann.id, "echo: twice").await;
    // A real message through Telegram after it: its echo arriving proves the first was sent.
    tg.send_text(ann.id, "after").await.unwrap();
    wait_reply(&tg, ann.id, "echo: after").await;
    let texts = bot_texts(&tg, ann.id).await;
    assert_eq!(texts, ["echo: hi", "echo: twice", "echo: after"], "one echo per update");
    let row = inbox::get(&t.db, 900_003).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("done", 1));
    let metrics = http_client().get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tollgate_updates_deduplicated_total 1"), "{metrics}");
    assert!(metrics.contains("tollgate_updates_received_total{mode=\"webhook\"} 3"), "{metrics}");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

/// The database goes away while Telegram delivers: 503s, Telegram retries, and after the
/// database returns every update is handled exactly once, in order per chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_database_means_503_then_every_update_once() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let pg = url::Url::parse(&pg_admin_url()).unwrap();
    let proxy = TcpProxy::start(
        format!("127.0.0.1:{}", pg.port().unwrap_or(5432))
            .parse()
            .unwrap(),
    )
    .await;
    let mut db_url = url::Url::parse(&t.url).unwrap();
    db_url.set_host(Some("127.0.0.1")).unwrap();
    db_url.set_port(Some(proxy.addr.port())).unwrap();
    let emu = emulator(true).await;
    let port = free_port();
    let env = with(
        webhook_env(db_url.as_str(), &emu, port),
        &[("DATABASE_ACQUIRE_TIMEOUT", "1s")],
    );
    let app = in_process(&env, Arc::new(EchoHandler), AppOptions::default()).await;
    wait_registered(&emu, port).await;
    let tg = emu.client();
    let mut users = Vec::new();
    for name in ["Ann", "Bob", "Cy"] {
        let u = tg.create_user(NewUser::new(name)).await.unwrap();
        tg.send_text(u.id, "hi").await.unwrap();
        wait_reply(&tg, u.id, "echo: hi").await;
        users.push(u.id);
    }

    proxy.cut();
    for n in 0..5 {
        for u in &users {
            tg.send_text(*u, &format!("m{n}")).await.unwrap();
        }
    }
    // Deliveries fail with 503 while the database is gone.
    wait_for("webhook failures", Duration::from_secs(30), || {
        let tg = tg.clone();
        async move { (tg.counters().await.ok()?.webhook_failures >= 3).then_some(()) }
    })
    .await;
    let info = tg
        .bot_call(emu.token(), "getWebhookInfo", &serde_json::json!({}))
        .await
        .unwrap();
    let last = info.result()["last_error_message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(last.contains("503"), "Telegram saw 503s: {last}");

    proxy.restore();
    for u in &users {
        wait_reply(&tg, *u, "echo: m4").await;
    }
    for u in &users {
        let texts = bot_texts(&tg, *u).await;
        let want: Vec<String> = std::iter::once("echo: hi".to_owned())
            .chain((0..5).map(|n| format!("echo: m{n}")))
            .collect();
        assert_eq!(texts, want, "chat {u}: every update once, in order");
    }
    assert_eq!(tg.counters().await.unwrap().updates_dropped(), 0);
    app.shutdown().await.unwrap();
    emu.shutdown().await;
}

db_test!(async fn registration_is_done_once_and_survives_restarts_and_shutdowns(t) {
    let emu = emulator(true).await;
    let tg = emu.client();
    let port = free_port();
    let app = start_webhook(t, &emu, port).await;
    app.shutdown().await.unwrap();
    // A second start with the same settings does not register again; shutdowns never delete.
    let app = start_webhook(t, &emu, port).await;
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    wait_for("the registrar to compare settings", Duration::from_secs(20), || {
        let readyz = readyz.clone();
        async move {
            let body: serde_json::Value = http_client().get(readyz).send().await.ok()?.json().await.ok()?;
            (body["components"]["intake"]["state"] == "registered").then_some(())
        }
    })
    .await;
    app.shutdown().await.unwrap();
    let c = tg.counters().await.unwrap();
    assert_eq!(c.calls.get("setWebhook"), Some(&1), "{:?}", c.calls);
    assert_eq!(c.calls.get("deleteWebhook"), None, "shutdown never deletes the webhook");
    assert!(!tg.bots().await.unwrap()[0].webhook_url.is_empty());

    // While no service runs, updates queue at Telegram. Switching to polling deletes the
    // webhook without dropping them, and handles them all.
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    for n in 0..3 {
        tg.send_text(ann.id, &format!("queued {n}")).await.unwrap();
    }
    let app = in_process(&polling_env(&t.url, &emu), Arc::new(EchoHandler), AppOptions::default()).await;
    wait_reply(&tg, ann.id, "echo: queued 2").await;
    assert_eq!(bot_texts(&tg, ann.id).await, ["echo: queued 0", "echo: queued 1", "echo: queued 2"]);
    let c = tg.counters().await.unwrap();
    assert_eq!(c.calls.get("deleteWebhook"), Some(&1));
    assert_eq!(c.updates_dropped(), 0, "nothing dropped on the switch: {c:?}");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});
