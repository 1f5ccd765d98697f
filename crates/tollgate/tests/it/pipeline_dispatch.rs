//! docs/reliability.md A1, A2, B3, B5, D3: the dispatcher cuts hanging handlers, retries, dead-letters
//! with an alert and moves on; unparseable updates are recorded; an idle service stays up;
//! a wedged component is restarted in place with an admin alert.

use std::sync::Arc;
use std::time::Duration;

use telegram_emulator::{MessageFilter, NewUser};
use tokio_util::sync::CancellationToken;
use tollgate::app::AppOptions;
use tollgate::supervisor::{Component, Heartbeat, RunFuture};
use tollgate::telegram::dispatcher::{Handled, Handler, HandlerContext, HandlerError};
use tollgate::telegram::echo::EchoHandler;
use tollgate::telegram::inbox::{self, Claimed, NewUpdate};
use tollgate::telegram::update::parse_head;
use tollgate::time::{Clock, SystemClock};

use crate::common::service::http_client;
use crate::common::telegram::{bot_texts, emulator, in_process, polling_env, wait_reply, with};
use crate::common::{TestDb, wait_for};
use crate::db_test;

/// Echoes, except that a message saying "hang" never finishes.
struct HangOnCue;

impl Handler for HangOnCue {
    async fn handle(
        &self,
        update: Arc<Claimed>,
        ctx: HandlerContext,
    ) -> Result<Handled, HandlerError> {
        if update.payload.contains("\"text\":\"hang\"") {
            std::future::pending::<()>().await;
        }
        EchoHandler.handle(update, ctx).await
    }
}

async fn readyz(addr: std::net::SocketAddr) -> serde_json::Value {
    http_client()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    http_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

db_test!(async fn a_hanging_handler_is_cut_retried_dead_lettered_and_its_chat_continues(t) {
    let emu = emulator(true).await;
    let tg = emu.client();
    let mut admin = NewUser::new("Admin");
    admin.started = true;
    let admin = tg.create_user(admin).await.unwrap();
    let env = with(
        polling_env(&t.url, &emu),
        &[("HANDLER_DEADLINE", "1s"), ("ADMIN_IDS", &admin.id.to_string())],
    );
    let options = AppOptions {
        handler_retry_base: Duration::from_millis(100),
        handler_max_attempts: 3,
        ..AppOptions::default()
    };
    let app = in_process(&env, Arc::new(HangOnCue), options).await;
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    tg.send_text(ann.id, "hang").await.unwrap();
    tg.send_text(ann.id, "after").await.unwrap();

    wait_reply(&tg, ann.id, "echo: after").await;
    assert_eq!(bot_texts(&tg, ann.id).await, ["echo: after"]);
    let dead = wait_for("the dead letter", Duration::from_secs(10), || {
        let db = t.db.clone();
        async move {
            let rows: Vec<(i64, String, i32, Option<String>)> = tollgate::on_db!(&db, p => sqlx::query_as(
                "SELECT update_id, status, attempts, last_error FROM tg_inbox WHERE status = 'dead'"
            ).fetch_all(p).await).unwrap();
            rows.into_iter().next()
        }
    })
    .await;
    assert_eq!(dead.2, 3, "three attempts, each cut at the deadline");
    let error = dead.3.unwrap();
    assert!(error.contains("exceeded its deadline of 1000 ms"), "{error}");
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    // The admin hears about it.
    tg.wait_for_message(
        admin.id,
        MessageFilter { text_contains: Some("dead-lettered".into()), ..MessageFilter::from_bot() },
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let m = metrics(app.addr).await;
    assert!(m.contains("tollgate_updates_dead_lettered_total 1"), "{m}");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

db_test!(async fn updates_that_cannot_be_understood_are_recorded_not_dropped(t) {
    let emu = emulator(true).await;
    let app = in_process(&polling_env(&t.url, &emu), Arc::new(EchoHandler), AppOptions::default()).await;
    // A type Tollgate does not ask for, and a known type with a broken shape.
    let raws = [
        r#"{"update_id":777001,"poll":{"id":"p","question":"?","options":[]}}"#,
        r#"{"update_id":777002,"message":{"chat":"oops"}}"#,
    ];
    let updates: Vec<NewUpdate> = raws
        .iter()
        .map(|r| NewUpdate { head: parse_head(r).unwrap(), raw: (*r).to_owned() })
        .collect();
    inbox::store_batch(&t.db, &updates, SystemClock.now()).await.unwrap();
    for id in [777_001, 777_002] {
        let row = wait_for("a recorded failure", Duration::from_secs(10), || {
            let db = t.db.clone();
            async move { inbox::get(&db, id).await.unwrap().filter(|r| r.status == "failed") }
        })
        .await;
        assert_eq!(row.attempts, 1, "not retried: it can never succeed");
        assert!(row.last_error.unwrap().contains("unsupported update type"));
    }
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

/// An idle bot is healthy: nothing is restarted for lack of traffic, even across a long
/// stretch of Telegram's time, and the bot still answers afterwards (A1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_stays_up_and_healthy() {
    let t = TestDb::sqlite().await;
    let emu = emulator(true).await;
    let tg = emu.client();
    let env = with(polling_env(&t.url, &emu), &[("WATCHDOG_TIMEOUT", "2s")]);
    let app = in_process(&env, Arc::new(EchoHandler), AppOptions::default()).await;
    let polls_before = tg
        .counters()
        .await
        .unwrap()
        .calls
        .get("getUpdates")
        .copied()
        .unwrap_or(0);
    // Six watchdog periods without a single update while Telegram's clock runs two days ahead.
    for _ in 0..12 {
        tg.advance_time(4.0 * 3600.0).await.unwrap();
        assert_eq!(
            http_client()
                .get(format!("http://{}/healthz", app.addr))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let body = readyz(app.addr).await;
    assert_eq!(body["status"], "ready", "{body}");
    for name in ["poller", "dispatcher", "outbox-sender", "housekeeping"] {
        let c = &body["components"][name];
        assert_eq!(c["restarts"], 0, "{name}: {body}");
        assert_eq!(c["running"], true, "{name}: {body}");
    }
    let polls_after = tg
        .counters()
        .await
        .unwrap()
        .calls
        .get("getUpdates")
        .copied()
        .unwrap_or(0);
    assert!(
        polls_after > polls_before + 3,
        "polling went on: {polls_before} → {polls_after}"
    );
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    tg.send_text(ann.id, "still there?").await.unwrap();
    wait_reply(&tg, ann.id, "echo: still there?").await;
    app.shutdown().await.unwrap();
    emu.shutdown().await;
}

/// Beats for a moment, then stops beating without ending: wedged.
struct Wedges;

impl Component for Wedges {
    fn name(&self) -> &'static str {
        "test-wedge"
    }
    fn stall_after(&self) -> Duration {
        Duration::from_millis(500)
    }
    fn run(self: Arc<Self>, hb: Heartbeat, _stop: CancellationToken) -> RunFuture {
        Box::pin(async move {
            hb.beat();
            std::future::pending::<()>().await;
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_component_is_restarted_in_place_and_admins_are_told() {
    let t = TestDb::sqlite().await;
    let emu = emulator(true).await;
    let tg = emu.client();
    let mut admin = NewUser::new("Admin");
    admin.started = true;
    let admin = tg.create_user(admin).await.unwrap();
    let env = with(
        polling_env(&t.url, &emu),
        &[("ADMIN_IDS", &admin.id.to_string())],
    );
    let options = AppOptions {
        extra_components: vec![Arc::new(Wedges)],
        ..AppOptions::default()
    };
    let app = in_process(&env, Arc::new(EchoHandler), options).await;
    tg.wait_for_message(
        admin.id,
        MessageFilter {
            text_contains: Some("test-wedge was restarted".into()),
            ..MessageFilter::from_bot()
        },
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let m = metrics(app.addr).await;
    let restarts: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_component_restarts{component=\"test-wedge\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(restarts >= 1, "{m}");
    // The rest of the service is untouched and the process keeps serving.
    let body = readyz(app.addr).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["components"]["dispatcher"]["restarts"], 0);
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    tg.send_text(ann.id, "hi").await.unwrap();
    wait_reply(&tg, ann.id, "echo: hi").await;
    let alerts: i64 = tollgate::on_db!(&t.db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE 'alert:restart:test-wedge:%' AND status = 'sent'"
    ).fetch_one(p).await).unwrap();
    assert!(alerts >= 1, "the alert went through the outbox");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
}
