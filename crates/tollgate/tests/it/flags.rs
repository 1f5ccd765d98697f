//! docs/product.md §5, §7: runtime flags changed on a running deployment — `tollgate flags`
//! on the command line against the real binary, the console's API (audited, returns what it
//! replaced), `TOLLGATE_FLAG_<NAME>` seeds that never override an operator, and the
//! maintenance banner per language.

use std::sync::Arc;
use std::time::Duration;

use telegram_emulator::{ControlClient, MessageFilter, NewUser, TranscriptMessage};
use tollgate::admin::audit::{self, Actor, AuditFilter};
use tollgate::app::AppOptions;
use tollgate::config::Language;
use tollgate::flags::{self, BannerError, Flag, Source};
use tollgate::time::{Clock, ShiftedClock};

use crate::common::bot::{World, screen_after};
use crate::common::service::{Service, run_to_end};
use crate::common::telegram::{emulator, polling_env, with};
use crate::common::wait_for;
use crate::db_test;

const SCREEN: Duration = Duration::from_secs(30);

/// /buy → 1 month → Telegram Stars; returns the id of the /buy message (what answers it
/// comes after).
async fn buy_with_stars(tg: &ControlClient, user: i64) -> i64 {
    let asked = tg.send_text(user, "/buy").await.unwrap().message_id;
    let plans = screen_after(tg, user, asked, "Choose a plan").await;
    tg.press_button(
        user,
        plans.message_id,
        &plans.button_data("1 month").unwrap(),
    )
    .await
    .unwrap();
    let how = screen_after(tg, user, asked, "Choose how to pay").await;
    tg.press_button(
        user,
        how.message_id,
        &how.button_data("Telegram Stars").unwrap(),
    )
    .await
    .unwrap();
    asked
}

async fn invoice_after(tg: &ControlClient, user: i64, after: i64) -> TranscriptMessage {
    let filter = MessageFilter {
        kind: Some("invoice".into()),
        after_message_id: Some(after),
        ..MessageFilter::from_bot()
    };
    tg.wait_for_message(user, filter, SCREEN).await.unwrap()
}

db_test!(async fn flags_set_payments_off_on_a_running_service_refuses_the_next_purchase_without_a_restart(t) {
    let emu = emulator(false).await;
    let tg = emu.client();
    let env = with(polling_env(&t.url, &emu), &[
        ("OUTBOX_PER_CHAT_INTERVAL", "20ms"),
        // A fresh database starts with auto-renewal off, as a first production deploy may.
        ("TOLLGATE_FLAG_AUTO_RENEWAL", "off"),
    ]);
    let mut svc = Service::start(&env).await;
    let user = tg.create_user(NewUser::new("Pat").language("en")).await.unwrap().id;
    let started = tg.send_text(user, "/start").await.unwrap().message_id;
    screen_after(&tg, user, started, "Choose an action below.").await;

    // Payments on: the purchase gets its invoice.
    let asked = buy_with_stars(&tg, user).await;
    invoice_after(&tg, user, asked).await;

    // The listing: the seed, the defaults.
    let (status, out, err) = run_to_end(&["flags"], &env).await;
    assert!(status.success(), "{err}");
    let line = |name: &str| out.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} in {out}")).to_owned();
    assert!(line("payments").contains(" on ") && line("payments").ends_with("default"), "{out}");
    assert!(line("auto_renewal").contains(" off ") && line("auto_renewal").contains("environment seed ("), "{out}");
    assert_eq!(out.lines().count(), Flag::ALL.len(), "{out}");

    // Typos change nothing and say what is valid.
    let before = audit::latest(&t.db, AuditFilter::All, 100).await.unwrap().len();
    let (status, _, err) = run_to_end(&["flags", "set", "paymnts", "off"], &env).await;
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("\"paymnts\" is not a runtime flag") && err.contains("payments, trials, auto_renewal, broadcasts, maintenance"), "{err}");
    let (status, _, err) = run_to_end(&["flags", "set", "payments", "maybe"], &env).await;
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("\"maybe\" is not on or off") && err.contains("fix: use on or off"), "{err}");
    assert!(flags::get(&t.db, Flag::Payments).await.unwrap(), "still on");
    assert_eq!(audit::latest(&t.db, AuditFilter::All, 100).await.unwrap().len(), before);

    // The operator pauses payments from the command line; the running service applies it.
    let (status, out, err) = run_to_end(&["flags", "set", "payments", "off"], &env).await;
    assert!(status.success(), "{err}");
    assert!(out.contains("payments: on → off"), "{out}");
    let asked = buy_with_stars(&tg, user).await;
    screen_after(&tg, user, asked, "Payments are paused right now.").await;
    assert!(svc.is_running(), "no restart");

    let rows = audit::latest(&t.db, AuditFilter::All, 10).await.unwrap();
    let set = rows.iter().find(|r| r.subject.as_deref() == Some("payments")).expect("audited");
    assert_eq!((set.action.as_str(), set.actor, set.before.as_deref(), set.after.as_deref()), ("set-flag", None, Some("on"), Some("off")));
    let seeded = rows.iter().find(|r| r.subject.as_deref() == Some("auto_renewal")).expect("the seed is audited");
    assert_eq!((seeded.before.as_deref(), seeded.after.as_deref()), (Some("on"), Some("off")));
    assert!(seeded.reason.as_deref().unwrap().contains("TOLLGATE_FLAG_AUTO_RENEWAL"));

    let (_, out, _) = run_to_end(&["flags"], &env).await;
    let payments = out.lines().find(|l| l.starts_with("payments ")).unwrap();
    assert!(payments.contains(" off ") && payments.contains("database (command line, "), "{out}");

    // An operator's value outlives the seed: auto-renewal switched on, the service restarted
    // with the same TOLLGATE_FLAG_AUTO_RENEWAL=off keeps it on.
    let (status, _, err) = run_to_end(&["flags", "set", "auto_renewal", "on"], &env).await;
    assert!(status.success(), "{err}");
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(20)).await.success());
    let svc = Service::start(&env).await;
    wait_for("the restarted service logged its flags", SCREEN, || async {
        svc.log().contains("\"flag\":\"auto_renewal\"").then_some(())
    })
    .await;
    let s = flags::state(&t.db, Flag::AutoRenewal).await.unwrap();
    assert_eq!((s.value, s.source, s.changed_by), (true, Source::Database, Some(Actor::CommandLine)));
    // And payments back on: the purchase goes through again.
    let (status, _, _) = run_to_end(&["flags", "set", "PAYMENTS", "on"], &env).await;
    assert!(status.success());
    let asked = buy_with_stars(&tg, user).await;
    invoice_after(&tg, user, asked).await;
});

#[tokio::test]
async fn a_bad_flag_seed_is_a_configuration_error() {
    let env = with(
        crate::common::service::base_env("sqlite://data/never-opened.db"),
        &[
            ("TOLLGATE_FLAG_PAYMENTS", "maybe"),
            ("TOLLGATE_FLAG_TRIAL", "off"),
        ],
    );
    let (status, _, err) = run_to_end(&["check-config"], &env).await;
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("TOLLGATE_FLAG_PAYMENTS: \"maybe\" is not on or off"),
        "{err}"
    );
    assert!(
        err.contains("TOLLGATE_FLAG_TRIAL: names no runtime flag"),
        "{err}"
    );
    let env = with(
        crate::common::service::base_env("sqlite://data/never-opened.db"),
        &[("TOLLGATE_FLAG_PAYMENTS", "off")],
    );
    let (status, out, err) = run_to_end(&["check-config"], &env).await;
    assert!(status.success(), "{err}");
    assert!(
        out.contains("TOLLGATE_FLAG_PAYMENTS") && out.contains("off (seed"),
        "{out}"
    );
}

db_test!(async fn the_console_api_sets_flags_with_their_audit_row_and_returns_the_previous_value(t) {
    let clock = ShiftedClock::new();
    let db = &t.db;
    let mut tx = db.begin().await.unwrap();
    assert!(flags::set(&mut tx, Flag::Trials, false, Actor::Admin(42), clock.now()).await.unwrap(), "the default was on");
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(!flags::set(&mut tx, Flag::Trials, true, Actor::Admin(43), clock.now()).await.unwrap());
    // Rolled back: neither the change nor its audit row.
    tx.rollback().await.unwrap();
    assert!(!flags::get(db, Flag::Trials).await.unwrap());
    let s = flags::state(db, Flag::Trials).await.unwrap();
    assert_eq!((s.source, s.changed_by), (Source::Database, Some(Actor::Admin(42))));
    let rows = audit::latest(db, AuditFilter::By(42), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].subject.as_deref(), rows[0].before.as_deref(), rows[0].after.as_deref()), (Some("trials"), Some("on"), Some("off")));
    assert!(audit::latest(db, AuditFilter::By(43), 10).await.unwrap().is_empty());
    // What the bot reads with each sender agrees with what was stored.
    assert!(!flags::snapshot(db).await.unwrap().get(Flag::Trials));
    // The console's way: the change returns its audit entry, recorded with the confirmation's
    // request; a second press of one confirmation is rolled back, change and all.
    for press in 0..2 {
        let mut tx = db.begin().await.unwrap();
        let (before, entry) = flags::change(&mut tx, Flag::Maintenance, press == 0, Actor::Admin(44), clock.now()).await.unwrap();
        assert_eq!(before, press == 1, "press {press}");
        if audit::record(&mut tx, &entry.request("confirm:maintenance:7"), clock.now()).await.unwrap() {
            tx.commit().await.unwrap();
        } else {
            assert_eq!(press, 1, "only the second press is a repeat");
            tx.rollback().await.unwrap();
        }
    }
    assert!(flags::get(db, Flag::Maintenance).await.unwrap(), "the repeat changed nothing");
    assert_eq!(audit::latest(db, AuditFilter::By(44), 10).await.unwrap().len(), 1);
    // A seed where an operator set the flag is a no-op.
    assert!(flags::seed(db, &[(Flag::Trials, true), (Flag::Broadcasts, false)], clock.now()).await.unwrap() == [Flag::Broadcasts]);
    assert!(!flags::get(db, Flag::Trials).await.unwrap());
    assert_eq!(flags::state(db, Flag::Broadcasts).await.unwrap().source, Source::Seed);
    assert!(flags::seed(db, &[(Flag::Broadcasts, true)], clock.now()).await.unwrap().is_empty(), "seeds once");
    assert!(!flags::get(db, Flag::Broadcasts).await.unwrap());
});

db_test!(async fn the_maintenance_banner_is_stored_per_language_refused_when_too_long_and_shown_escaped(t) {
    let clock = ShiftedClock::new();
    let options = AppOptions { clock: Arc::new(clock.clone()), per_chat_interval: Duration::from_millis(10), ..AppOptions::default() };
    let Some(w) = World::start_with(t, false, &[], options).await else { return };
    let db = &w.app.db;

    // Refused texts store nothing and audit nothing.
    let mut tx = db.begin().await.unwrap();
    let e = flags::set_banner(&mut tx, Language::En, &"x".repeat(5_000), Actor::Admin(7), clock.now()).await.unwrap_err();
    assert!(matches!(e, BannerError::TooLong { chars: 5_000 }), "{e}");
    let e = flags::set_banner(&mut tx, Language::En, "  ", Actor::Admin(7), clock.now()).await.unwrap_err();
    assert!(matches!(e, BannerError::Empty), "{e}");
    tx.commit().await.unwrap();
    assert_eq!(flags::banner(db, Language::En).await.unwrap(), None);
    assert!(audit::latest(db, AuditFilter::By(7), 10).await.unwrap().is_empty());

    let mut tx = db.begin().await.unwrap();
    let previous = flags::set_banner(&mut tx, Language::En, "Upgrading <nodes> & back at 18:00", Actor::Admin(7), clock.now()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(previous, None);
    assert_eq!(flags::banner(db, Language::En).await.unwrap().as_deref(), Some("Upgrading <nodes> & back at 18:00"));
    assert_eq!(flags::banner(db, Language::Ru).await.unwrap(), None);
    let rows = audit::latest(db, AuditFilter::By(7), 10).await.unwrap();
    assert_eq!((rows.len(), rows[0].action.as_str(), rows[0].subject.as_deref()), (1, "set-banner", Some("maintenance-banner:en")));

    // Off: no banner at all, whatever is stored.
    let en = w.tg.create_user(NewUser::new("Ann").language("en")).await.unwrap().id;
    let sent = w.tg.send_text(en, "/start").await.unwrap().message_id;
    let menu = screen_after(&w.tg, en, sent, "Choose an action below.").await;
    assert!(!menu.text.as_deref().unwrap().contains("Upgrading"), "{:?}", menu.text);

    // On: the stored banner for English (escaped, so shown as written), the shipped one for
    // Russian, which has none.
    flags::set_committed(db, Flag::Maintenance, true, Actor::CommandLine, clock.now()).await.unwrap();
    let sent = w.tg.send_text(en, "/menu").await.unwrap().message_id;
    let menu = screen_after(&w.tg, en, sent, "Choose an action below.").await;
    assert!(menu.text.as_deref().unwrap().starts_with("Upgrading <nodes> & back at 18:00\n\n"), "{:?}", menu.text);
    let ru = w.tg.create_user(NewUser::new("Боря").language("ru")).await.unwrap().id;
    let sent = w.tg.send_text(ru, "/start").await.unwrap().message_id;
    let menu = screen_after(&w.tg, ru, sent, "Идут технические работы").await;
    assert!(!menu.text.as_deref().unwrap().contains("Upgrading"));
    w.stop().await;
});
