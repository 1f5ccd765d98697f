//! docs/product.md §5 Alerts: a condition alerts when it begins, at most once an hour while it
//! lasts, and once when it ends — across replicas and restarts (the table decides); and the
//! conditions themselves, end to end: a node's breaker open over a minute (a real agent
//! stopped), Telegram failing to deliver to the webhook (the emulator), the Stars provider
//! failing (the emulator's injected faults), through to the admin's chat.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use telegram_emulator::{FaultKind, NewUser};
use tollgate::alerts::{self, Alerts, Raised};
use tollgate::app::{self, AppOptions, Services};
use tollgate::bot::stars::{FAILURES_BEFORE_ALERT, PROVIDER_CONDITION, StarsReconciler};
use tollgate::config::Secret;
use tollgate::i18n::Texts;
use tollgate::jobs::monitor::{Monitor, MonitorContext, WEBHOOK_CONDITION, breaker_condition};
use tollgate::nodes::Registry;
use tollgate::store::Db;
use tollgate::telegram::api::BotApi;
use tollgate::time::{Clock, ManualClock, SharedClock, ShiftedClock, SystemClock};
use tollgate_node::testing::V2Ray;

use crate::common::bot::World;
use crate::common::nodes::{Stack, TestNode, catalog};
use crate::common::telegram::emulator;
use crate::common::wait_for;
use crate::db_test;

const ADMIN: i64 = 900;
const LIMIT: Duration = Duration::from_secs(30);

/// The alert messages queued for admin `admin` whose key contains `condition`, in order.
async fn alerts_to(db: &Db, admin: i64, condition: &str) -> Vec<String> {
    let like = format!("alert:cond:{condition}:%:{admin}");
    let rows: Vec<(String,)> = tollgate::on_db!(db, p => sqlx::query_as(
        "SELECT payload FROM outbox WHERE dedupe_key LIKE $1 ORDER BY id"
    ).bind(&like).fetch_all(p).await)
    .unwrap();
    rows.into_iter()
        .map(|(p,)| {
            serde_json::from_str::<serde_json::Value>(&p).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn manual_now() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(SystemClock.now());
    (c.clone(), Arc::new(c))
}

db_test!(async fn a_condition_alerts_when_it_begins_hourly_while_it_lasts_and_once_when_it_ends_across_replicas(t) {
    let (clock, _) = manual_now();
    let alerts = Alerts::new(vec![ADMIN, ADMIN + 1]);
    // Two replicas: two pools on one database.
    let (one, two) = (t.db.clone(), t.another_pool());
    let key = "test-condition";
    assert_eq!(alerts.raise(&one, key, "it broke", clock.now()).await.unwrap(), Raised::New);
    // The same moment on the other replica, ten minutes later, after a "restart": nothing.
    assert_eq!(alerts.raise(&two, key, "it broke", clock.now()).await.unwrap(), Raised::Quiet);
    clock.advance(Duration::from_secs(600));
    assert_eq!(alerts.raise(&two, key, "it broke", clock.now()).await.unwrap(), Raised::Quiet);
    clock.advance(Duration::from_secs(2940));
    assert_eq!(alerts.raise(&one, key, "it broke", clock.now()).await.unwrap(), Raised::Quiet, "59 minutes");
    assert_eq!(alerts_to(&t.db, ADMIN, key).await.len(), 1);
    clock.advance(Duration::from_secs(60));
    assert_eq!(alerts.raise(&two, key, "it broke again", clock.now()).await.unwrap(), Raised::Reminder);
    assert_eq!(alerts.raise(&one, key, "it broke", clock.now()).await.unwrap(), Raised::Quiet);
    let active = alerts::conditions::active(&t.db).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].text, "it broke again");

    // It ends: one "resolved" message, whichever replica sees it first.
    clock.advance(Duration::from_secs(120));
    assert!(alerts.resolve(&one, key, "it works", clock.now()).await.unwrap());
    assert!(!alerts.resolve(&two, key, "it works", clock.now()).await.unwrap());
    assert!(alerts::conditions::active(&t.db).await.unwrap().is_empty());
    let sent = alerts_to(&t.db, ADMIN, key).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0], "⚠️ it broke");
    assert!(sent[1].starts_with("⚠️ Still, since ") && sent[1].ends_with("it broke again"), "{sent:?}");
    assert_eq!(sent[2], "✅ Resolved after 62 min: it works");
    assert_eq!(alerts_to(&t.db, ADMIN + 1, key).await, sent, "every admin");
    // A resolved condition that returns is a new incident: alerted at once.
    clock.advance(Duration::from_secs(60));
    assert_eq!(alerts.raise(&two, key, "it broke", clock.now()).await.unwrap(), Raised::New);
    assert_eq!(alerts_to(&t.db, ADMIN, key).await.len(), 4);
    // Never raised: resolving sends nothing.
    assert!(!alerts.resolve(&one, "never-raised", "fine", clock.now()).await.unwrap());
    assert!(alerts_to(&t.db, ADMIN, "never-raised").await.is_empty());
});

db_test!(async fn a_breaker_open_over_a_minute_alerts_once_an_hour_and_resolves_when_the_agent_answers(t) {
    let Some(v2ray) = V2Ray::or_skip("a_breaker_open_over_a_minute_alerts") else { return };
    let mut a = TestNode::start(&v2ray, "a").await;
    let (clock, shared) = manual_now();
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), shared.clone(), |c| {
        c.breaker.failure_threshold = 3;
        c.breaker.cooldown = Duration::from_millis(200);
    });
    let context = MonitorContext {
        db: t.db.clone(),
        clock: shared,
        registry: stack.registry.clone(),
        alerts: Alerts::new(vec![ADMIN]),
        webhook_api: None,
    };
    let monitor = Monitor::new(context.clone());
    // Another replica, whose provisioning has not called the node: its breaker is closed.
    let elsewhere = Monitor::new(MonitorContext {
        registry: Arc::new(Registry::from_catalog(&catalog(&[&a], &[]), Duration::from_secs(2)).unwrap()),
        ..context
    });
    let key = breaker_condition("a");
    a.agent.stop().await;
    for user in 1..=10 {
        stack.grant(user, 30, clock.now()).await;
    }
    let running = stack.run_provisioning();
    stack.wake.wake();
    let opened = wait_for("a's breaker to open", LIMIT, || async {
        stack.registry.breaker_open_since("a")
    })
    .await;
    assert_eq!(opened, clock.now(), "opened on the test clock");
    // Open for less than a minute: no alert yet.
    clock.advance(Duration::from_secs(59));
    assert_eq!(monitor.check().await.unwrap(), 0);
    assert!(alerts_to(&t.db, ADMIN, &key).await.is_empty());
    clock.advance(Duration::from_secs(2));
    assert_eq!(monitor.check().await.unwrap(), 1);
    let sent = alerts_to(&t.db, ADMIN, &key).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("Node a: its agent keeps failing"), "{sent:?}");
    // The monitor's lease moves to a replica that has not called the node: it knows nothing,
    // so the condition neither ends nor alerts again.
    assert_eq!(elsewhere.check().await.unwrap(), 0);
    assert_eq!(alerts::conditions::active(&t.db).await.unwrap().len(), 1);
    // Still open: quiet within the hour, reminded after it.
    clock.advance(Duration::from_secs(1800));
    assert_eq!(monitor.check().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1800));
    assert_eq!(monitor.check().await.unwrap(), 1);
    assert_eq!(alerts_to(&t.db, ADMIN, &key).await.len(), 2);

    // The agent answers: the next probe closes the breaker, the monitor says it is over.
    a.agent.start_again().await.unwrap();
    wait_for("a's breaker to close", LIMIT, || async {
        stack.wake.wake();
        stack.registry.breaker_open_since("a").is_none().then_some(())
    })
    .await;
    assert_eq!(monitor.check().await.unwrap(), 1);
    assert_eq!(monitor.check().await.unwrap(), 0, "resolved once");
    let sent = alerts_to(&t.db, ADMIN, &key).await;
    assert_eq!(sent.len(), 3);
    assert!(sent[2].starts_with("✅ Resolved after 60 min: Node a: the agent answers again"), "{sent:?}");
    running.stop().await;
});

db_test!(async fn webhook_delivery_errors_reported_by_get_webhook_info_alert_and_resolve(t) {
    let emu = emulator(false).await;
    let tg = emu.client();
    let api = BotApi::new(&url::Url::parse(&emu.api_url()).unwrap(), &Secret::new(emu.token().to_owned())).unwrap();
    // A webhook nobody answers at: every delivery fails, and getWebhookInfo says so.
    let _: bool = api.call("setWebhook", &serde_json::json!({ "url": "http://127.0.0.1:9/telegram/webhook" })).await.unwrap();
    let (clock, shared) = manual_now();
    let registry = Arc::new(Registry::from_catalog(&catalog(&[], &[]), Duration::from_secs(2)).unwrap());
    let monitor = Monitor::new(MonitorContext {
        db: t.db.clone(),
        clock: shared,
        registry,
        alerts: Alerts::new(vec![ADMIN]),
        webhook_api: Some(api.clone()),
    });
    assert_eq!(monitor.check().await.unwrap(), 0, "no error yet");
    let user = tg.create_user(NewUser::new("Una")).await.unwrap();
    tg.send_text(user.id, "hello").await.unwrap();
    wait_for("a failed delivery", LIMIT, || async {
        let info: serde_json::Value = api.call("getWebhookInfo", &serde_json::json!({})).await.ok()?;
        info.get("last_error_date").is_some().then_some(())
    })
    .await;
    assert_eq!(monitor.check().await.unwrap(), 1);
    assert_eq!(monitor.check().await.unwrap(), 0, "once while it lasts");
    let sent = alerts_to(&t.db, ADMIN, WEBHOOK_CONDITION).await;
    assert!(sent[0].starts_with("⚠️ Telegram cannot deliver updates to the webhook: "), "{sent:?}");
    // Nine minutes on, the error is still recent: it lasts, quietly.
    clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(monitor.check().await.unwrap(), 0);
    // No error for ten minutes: our clock moves on, while Telegram's last error (still failing
    // in real time) keeps a date that is now eleven minutes old.
    clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(monitor.check().await.unwrap(), 1);
    let sent = alerts_to(&t.db, ADMIN, WEBHOOK_CONDITION).await;
    assert_eq!(sent.len(), 2);
    assert!(sent[1].contains("Telegram delivers updates to the webhook again"), "{sent:?}");
    emu.shutdown().await;
});

db_test!(async fn a_failing_stars_provider_alerts_the_admin_after_three_passes_and_says_when_it_answers_again(t) {
    let clock = ShiftedClock::new();
    let options = AppOptions { clock: Arc::new(clock.clone()), per_chat_interval: Duration::from_millis(10), ..AppOptions::default() };
    // The service's own reconciler runs once at start and then waits a day; the test drives
    // a second one, pass by pass.
    let captured: Arc<Mutex<Option<Services>>> = Arc::default();
    let keep = captured.clone();
    let env = [("STARS_RECONCILE_INTERVAL", "24h"), ("ADMIN_IDS", "100000001")];
    let Some(w) = World::launch(t, false, &env, options, move |s| {
        *keep.lock().unwrap() = Some(s.clone());
        app::bot(s)
    }).await else { return };
    let admin = w.tg.create_user(NewUser::new("Admin").language("en")).await.unwrap();
    assert_eq!(admin.id, 100000001);
    // Telegram lets a bot write only to users who started it.
    w.tg.send_text(admin.id, "/start").await.unwrap();
    w.screen(admin.id, "Choose an action below.").await;
    let services = captured.lock().unwrap().clone().unwrap();
    let reconciler = StarsReconciler::new(services, Arc::new(Texts::load().unwrap()));
    // The service's own first pass over (its lease released): this one reads the list.
    let first = wait_for("the Stars lease", LIMIT, || async { reconciler.run_once().await.unwrap() }).await;
    assert_eq!(first.provider_error, None);

    w.tg.inject_fault("getStarTransactions", FaultKind::ServerError, 10).await.unwrap();
    for pass in 1..=FAILURES_BEFORE_ALERT {
        let p = reconciler.run_once().await.unwrap().expect("the lease is free");
        assert!(p.provider_error.is_some(), "pass {pass}");
        let sent = alerts_to(&w.app.db, admin.id, PROVIDER_CONDITION).await.len();
        assert_eq!(sent, usize::from(pass == FAILURES_BEFORE_ALERT), "pass {pass}");
    }
    let alert = w.screen(admin.id, "Telegram Stars: getStarTransactions failed in 3 reconciliation passes in a row").await;
    assert!(alert.text.unwrap().starts_with("⚠️"));
    // Failing on: quiet within the hour.
    reconciler.run_once().await.unwrap();
    assert_eq!(alerts_to(&w.app.db, admin.id, PROVIDER_CONDITION).await.len(), 1);
    clock.advance(Duration::from_secs(3600));
    reconciler.run_once().await.unwrap();
    w.screen(admin.id, "Still, since").await;

    // Telegram answers again.
    w.tg.clear_faults().await.unwrap();
    let p = reconciler.run_once().await.unwrap().unwrap();
    assert_eq!(p.provider_error, None);
    w.screen(admin.id, "✅ Resolved after 60 min: Telegram Stars: getStarTransactions answers again").await;
    reconciler.run_once().await.unwrap();
    assert_eq!(alerts_to(&w.app.db, admin.id, PROVIDER_CONDITION).await.len(), 3);
    w.stop().await;
});
