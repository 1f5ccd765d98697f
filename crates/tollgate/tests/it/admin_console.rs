//! docs/product.md §5: the admin console, end to end through the emulator on both backends —
//! invisible to users (forged console buttons change nothing), each operation confirmed, carried
//! out once however often its confirmation is pressed, audited in its own transaction, and told
//! to the user; typed input parsed at the edge with a specific answer for each mistake.

use std::time::Duration;

use telegram_emulator::{NewUser, TranscriptMessage};
use tollgate::access;
use tollgate::app::AppOptions;
use tollgate::flags::{self, Flag};
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::{Clock, SystemClock};

use crate::common::bot::{World, double_tap, handled};
use crate::common::wait_for;
use crate::db_test;

const ADMIN: i64 = 100_000_001;
const ADMIN_2: i64 = 100_000_002;
const ADMINS: &str = "100000001,100000002";
/// Users are created with ids of their own: the emulator's first automatic id is an admin's.
const KIM: i64 = 200_000_001;

async fn person(
    w: &World,
    name: &str,
    id: Option<i64>,
    lang: &str,
    menu: &str,
) -> telegram_emulator::User {
    let mut new = NewUser::new(name)
        .language(lang)
        .username(format!("{}_u", name.to_lowercase()));
    if let Some(id) = id {
        new = new.id(id);
    }
    let user = w.tg.create_user(new).await.unwrap();
    w.tg.send_text(user.id, "/start").await.unwrap();
    w.screen(user.id, menu).await;
    user
}

async fn scalar(db: &Db, sql: &'static str, arg: i64) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).bind(arg).fetch_one(p).await).unwrap()
}

async fn audited(db: &Db, action: &'static str, user: i64) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = $1 AND target_user = $2"
    ).bind(action).bind(user).fetch_one(p).await)
    .unwrap()
}

/// Every update stored so far is handled.
async fn settled(db: &Db) {
    wait_for("every update handled", Duration::from_secs(30), || async {
        let open = on_db!(db, p => sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status = 'pending'"
        ).fetch_one(p).await)
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
}

/// Waits until `n` updates of `chat` are handled in all.
async fn handled_in_chat(db: &Db, chat: i64, n: i64) {
    wait_for(&format!("{n} updates of {chat} handled"), Duration::from_secs(30), || async {
        let done = scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE chat_key = $1 AND status <> 'pending'", chat).await;
        (done >= n).then_some(())
    })
    .await;
}

/// Presses `label` on `m` and waits for the same message to show `needle`.
async fn step(
    w: &World,
    chat: i64,
    m: &TranscriptMessage,
    label: &str,
    needle: &str,
) -> TranscriptMessage {
    w.press(chat, m, label).await;
    w.screen_on(chat, m.message_id, needle).await
}

/// The button `label` of `m` pressed twice at once (a double tap), both presses handled.
async fn tap_twice(w: &World, chat: i64, m: &TranscriptMessage, label: &str) {
    let data = m.button_data(label).expect("the button");
    handled(
        &w.app.db,
        &double_tap(&w.tg, chat, m.message_id, &data).await,
    )
    .await;
}

fn said(t: &telegram_emulator::Transcript, needle: &str) -> usize {
    t.bot_messages()
        .filter(|m| m.text.as_deref().is_some_and(|x| x.contains(needle)))
        .count()
}

db_test!(async fn the_console_is_invisible_to_users_and_their_forged_console_buttons_change_nothing(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = &w.app.db;
    let kim = person(&w, "Kim", Some(KIM), "en", "Choose an action below.").await;
    // `/admin` is answered exactly as an unknown command is.
    w.tg.send_text(kim.id, "/nosuchcommand").await.unwrap();
    let unknown = w.screen(kim.id, "I didn't get that").await;
    w.tg.send_text(kim.id, "/admin").await.unwrap();
    let admin_reply = wait_for("the reply to /admin", Duration::from_secs(30), || async {
        let t = w.tg.transcript(kim.id).await.unwrap();
        t.bot_messages().last().filter(|m| m.message_id > unknown.message_id).cloned()
    })
    .await;
    assert_eq!(admin_reply.text, unknown.text);
    assert_eq!(admin_reply.callback_buttons(), unknown.callback_buttons());
    // Forged console buttons: answered as data that is no action at all.
    let stale = w.forge(kim.id, unknown.message_id, "nonsense").await;
    for data in [
        "a".to_owned(),
        "a:st".to_owned(),
        format!("a:u:{}", kim.id),
        format!("a:d:bn:{}:5", kim.id),
        format!("a:d:gr:{}:30:1:5", kim.id),
        "a:d:fl:payments:0:5".to_owned(),
        format!("a:d:dr:{}", unknown.message_id),
        "adm:pay:refund:1".to_owned(),
    ] {
        let outcome = w.forge(kim.id, unknown.message_id, &data).await;
        assert_eq!(
            outcome.answer.as_ref().map(|a| a.text.clone()),
            stale.answer.as_ref().map(|a| a.text.clone()),
            "{data}"
        );
    }
    settled(db).await;
    assert!(access::subscription_for_user(db, kim.id).await.unwrap().is_none(), "a forged grant granted");
    assert!(tollgate::users::get(db, kim.id).await.unwrap().unwrap().banned_at.is_none(), "a forged ban banned");
    assert!(flags::get(db, Flag::Payments).await.unwrap(), "a forged flag change changed it");
    assert_eq!(scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE $1 = $1", 0).await, 0);
    let t = w.tg.transcript(kim.id).await.unwrap();
    assert_eq!(said(&t, "Admin console") + said(&t, "Stats") + said(&t, "Find a user"), 0, "the console showed itself");
    w.stop().await;
});

db_test!(async fn an_admin_finds_a_user_and_grants_reissues_revokes_bans_and_unbans_once_each_with_audit_rows(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = &w.app.db;
    let admin = person(&w, "Boss", Some(ADMIN), "en", "Choose an action below.").await;
    let kim = person(&w, "Kim", Some(KIM), "en", "Choose an action below.").await;
    w.tg.send_text(admin.id, "/admin").await.unwrap();
    let home = w.screen(admin.id, "Admin console").await;
    let ask = step(&w, admin.id, &home, "Find a user", "Send the user's Telegram id").await;
    // Not a user: a specific answer, the question stays open.
    w.tg.send_text(admin.id, "two words").await.unwrap();
    w.screen(admin.id, "That is not a Telegram id").await;
    w.tg.send_text(admin.id, "999999").await.unwrap();
    w.screen(admin.id, "Nobody matches 999999").await;
    w.tg.send_text(admin.id, "@KIM_U").await.unwrap();
    let card = w.screen(admin.id, &format!("{}", kim.id)).await;
    assert!(card.text.as_deref().unwrap().contains("No subscription."), "{:?}", card.text);
    let _ = ask;

    // Grant: a bad number is refused and changes nothing; 30 is confirmed, told, done once.
    let ask = step(&w, admin.id, &card, "Grant days", "How many days").await;
    let _ = ask;
    for bad in ["abc", "0", "3651", "-5"] {
        w.tg.send_text(admin.id, bad).await.unwrap();
        wait_for("the refusal", Duration::from_secs(30), || async {
            let t = w.tg.transcript(admin.id).await.unwrap();
            (said(&t, "Send a whole number of days from 1 to 3650") >= 1).then_some(())
        })
        .await;
    }
    settled(db).await;
    assert!(access::subscription_for_user(db, kim.id).await.unwrap().is_none());
    w.tg.send_text(admin.id, "30").await.unwrap();
    let confirm = w.screen(admin.id, "Grant 30 days to user").await;
    tap_twice(&w, admin.id, &confirm, "Grant and tell").await;
    let card = w.screen_on(admin.id, confirm.message_id, "Days granted.").await;
    settled(db).await;
    let sub = access::subscription_for_user(db, kim.id).await.unwrap().unwrap();
    let days = (sub.expires_at.as_millis() - SystemClock.now().as_millis()) as f64 / 86_400_000.0;
    assert!((days - 30.0).abs() < 0.1, "granted once: {days} days");
    assert_eq!(audited(db, "grant-days", kim.id).await, 1);
    w.screen(kim.id, "Support granted you 30 days").await;

    // Reissue: a new key, told.
    let confirm = step(&w, admin.id, &card, "Reissue key", "Issue a new key").await;
    let card = step(&w, admin.id, &confirm, "Confirm", "New key issued.").await;
    let fresh = access::subscription_for_user(db, kim.id).await.unwrap().unwrap();
    assert_ne!(fresh.vpn_uuid, sub.vpn_uuid);
    w.screen(kim.id, "Support issued you a new key").await;

    // Revoke: access ends now, told.
    let confirm = step(&w, admin.id, &card, "Revoke access", "Revoke the access").await;
    let card = step(&w, admin.id, &confirm, "Confirm", "Access revoked.").await;
    assert!(access::subscription_for_user(db, kim.id).await.unwrap().unwrap().revoked_at.is_some());
    w.screen(kim.id, "Your access was ended by support").await;

    // Ban: one short message, then no service; unban restores nothing by itself.
    let confirm = step(&w, admin.id, &card, "Ban", "Ban user").await;
    let card = step(&w, admin.id, &confirm, "Confirm", "User banned.").await;
    w.screen(kim.id, "Your account has been blocked").await;
    let before = w.tg.transcript(kim.id).await.unwrap().bot_messages().count();
    let updates = scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE chat_key = $1", kim.id).await;
    w.tg.send_text(kim.id, "/start").await.unwrap();
    w.tg.send_text(kim.id, "/buy").await.unwrap();
    handled_in_chat(db, kim.id, updates + 2).await;
    assert_eq!(w.tg.transcript(kim.id).await.unwrap().bot_messages().count(), before, "a banned user was answered");
    let confirm = step(&w, admin.id, &card, "Unban", "Unban user").await;
    let card = step(&w, admin.id, &confirm, "Confirm", "User unbanned.").await;
    w.tg.send_text(kim.id, "/start").await.unwrap();
    wait_for("the menu after the unban", Duration::from_secs(30), || async {
        let t = w.tg.transcript(kim.id).await.unwrap();
        (t.bot_messages().count() > before).then_some(())
    })
    .await;
    assert!(access::subscription_for_user(db, kim.id).await.unwrap().unwrap().revoked_at.is_some(), "unban restored access");

    // Every operation once in the audit log, by this admin, and on the user's audit screen.
    for action in ["grant-days", "reissue", "revoke", "ban", "unban"] {
        assert_eq!(audited(db, action, kim.id).await, 1, "{action}");
    }
    assert_eq!(scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE actor = $1", ADMIN).await, 5);
    let log = step(&w, admin.id, &card, "Audit of this user", "about user").await;
    let text = log.text.unwrap();
    for action in ["grant-days", "reissue", "revoke", "ban", "unban"] {
        assert!(text.contains(action), "{action} in {text}");
    }
    // The service never changes an audit row.
    let update = on_db!(db, p => sqlx::query("UPDATE audit_log SET reason = 'x'").execute(p).await.map(drop));
    assert!(update.is_err(), "an audit row was changed");
    w.stop().await;
});

db_test!(async fn two_admins_adjust_one_balance_at_once_and_both_apply_in_russian(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = &w.app.db;
    let menu_ru = "Выберите действие";
    let one = person(&w, "Anna", Some(ADMIN), "ru", menu_ru).await;
    let two = person(&w, "Boris", Some(ADMIN_2), "ru", menu_ru).await;
    let kim = person(&w, "Kim", Some(KIM), "en", "Choose an action below.").await;
    // Opens Kim's card in the console and asks for a balance change.
    let ask_balance = |admin: i64| {
        let w = &w;
        async move {
            w.tg.send_text(admin, "/admin").await.unwrap();
            let home = w.screen(admin, "Консоль администратора").await;
            step(w, admin, &home, "Найти пользователя", "Пришлите Telegram id").await;
            w.tg.send_text(admin, &KIM.to_string()).await.unwrap();
            let card = w.screen(admin, "Баланс:").await;
            step(w, admin, &card, "Изменить баланс", "Пришлите изменение").await;
        }
    };
    let typed = |admin: i64, text: &'static str| {
        let w = &w;
        async move {
            w.tg.send_text(admin, text).await.unwrap();
            wait_for("the confirmation", Duration::from_secs(30), || async {
                let t = w.tg.transcript(admin).await.unwrap();
                t.bot_messages()
                    .filter(|m| m.text.as_deref().is_some_and(|x| x.contains("Изменить баланс пользователя") && x.ends_with(text.split_once(' ').map_or(text, |r| r.1))))
                    .last()
                    .cloned()
            })
            .await
        }
    };
    // Mistakes first: each refused with its own reason, nothing stored.
    ask_balance(two.id).await;
    for (bad, answer) in [
        ("abc причина", "Пришлите сумму"),
        ("+0 причина", "не может быть нулевым"),
        ("+10", "нужна причина"),
        ("-30 много", "станет отрицательным"),
    ] {
        w.tg.send_text(two.id, bad).await.unwrap();
        w.screen(two.id, answer).await;
    }
    settled(db).await;
    assert_eq!(tollgate::users::get(db, kim.id).await.unwrap().unwrap().balance, 0, "a refused input changed the balance");
    // Admin one credits 100; then one credits 20 and two debits 30, both confirmed at the same
    // moment, each button pressed twice.
    ask_balance(one.id).await;
    let first = typed(one.id, "+100 компенсация").await;
    assert_eq!(tollgate::users::get(db, kim.id).await.unwrap().unwrap().balance, 0, "changed before the confirmation");
    step(&w, one.id, &first, "Подтвердить", "Баланс изменён").await;
    ask_balance(one.id).await;
    let a = typed(one.id, "+20 бонус").await;
    ask_balance(two.id).await;
    let b = typed(two.id, "-30 ошибка").await;
    tokio::join!(tap_twice(&w, one.id, &a, "Подтвердить"), tap_twice(&w, two.id, &b, "Подтвердить"));
    let balance = tollgate::users::get(db, kim.id).await.unwrap().unwrap().balance;
    assert_eq!(balance, 9_000, "+100, +20 and −30, once each");
    let ledger = scalar(db, "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) FROM balance_ledger WHERE user_id = $1", kim.id).await;
    assert_eq!(ledger, balance, "the ledger and the balance agree");
    assert_eq!(audited(db, "adjust-balance", kim.id).await, 3);
    let mut reasons: Vec<(i64, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT actor, reason FROM audit_log WHERE target_user = $1").bind(kim.id).fetch_all(p).await).unwrap();
    reasons.sort();
    assert_eq!(reasons, [(ADMIN, "бонус".to_owned()), (ADMIN, "компенсация".to_owned()), (ADMIN_2, "ошибка".to_owned())]);
    // Kim is told each change in English, with its reason.
    w.screen(kim.id, "Your balance was changed by +").await;
    wait_for("both notices", Duration::from_secs(30), || async {
        let t = w.tg.transcript(kim.id).await.unwrap();
        (said(&t, "Your balance was changed") == 3).then_some(())
    })
    .await;
    w.stop().await;
});

db_test!(async fn flags_stats_and_dead_letters_from_the_console_apply_at_once_and_are_audited(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = &w.app.db;
    let admin = person(&w, "Boss", Some(ADMIN), "en", "Choose an action below.").await;
    let kim = person(&w, "Kim", Some(KIM), "en", "Choose an action below.").await;
    w.tg.send_text(admin.id, "/admin").await.unwrap();
    let home = w.screen(admin.id, "Admin console").await;
    let stats = step(&w, admin.id, &home, "Stats", "Users: 2").await;
    assert!(stats.text.as_deref().unwrap().contains("Payments kept for review: 0"), "{:?}", stats.text);

    // Payments off from the console: the next purchase attempt is refused, no restart.
    let home = step(&w, admin.id, &stats, "Console", "Admin console").await;
    let flags_screen = step(&w, admin.id, &home, "Flags", "Flags").await;
    let confirm = step(&w, admin.id, &flags_screen, "Turn payments off", "Turn flag payments off?").await;
    assert!(flags::get(db, Flag::Payments).await.unwrap(), "changed before the confirmation");
    let flags_screen = step(&w, admin.id, &confirm, "Confirm", "Flag changed.").await;
    assert!(!flags::get(db, Flag::Payments).await.unwrap());
    assert_eq!(scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE actor = $1 AND action = 'set-flag'", ADMIN).await, 1);
    w.tg.send_text(kim.id, "/buy").await.unwrap();
    let plans = w.screen(kim.id, "Choose a plan").await;
    w.press(kim.id, &plans, "1 month").await;
    let pay = w.screen(kim.id, "Choose how to pay").await;
    w.press(kim.id, &pay, "Telegram Stars").await;
    w.screen(kim.id, "Payments are paused").await;
    let _ = flags_screen;

    // A dead letter (an update that exhausted its attempts): listed with its error, redriven
    // back to the queue once confirmed, and then handled.
    let update_id = 777_000_001_i64;
    let payload = serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": 9_999, "date": 1_700_000_000,
            "chat": { "id": kim.id, "type": "private" },
            "from": { "id": kim.id, "is_bot": false, "first_name": "Kim" },
            "text": "/help"
        }
    })
    .to_string();
    let now = SystemClock.now();
    on_db!(db, p => sqlx::query(
        "INSERT INTO tg_inbox (update_id, chat_key, kind, payload, status, attempts, next_attempt_at, received_at, last_error, finished_at)
         VALUES ($1, $2, 'message', $3, 'dead', 5, $4, $4, 'handler failed: boom', $4)"
    ).bind(update_id).bind(kim.id).bind(&payload).bind(now).execute(p).await.map(drop)).unwrap();
    w.tg.send_text(admin.id, "/admin").await.unwrap();
    let home = w.screen(admin.id, "Admin console").await;
    let dead = step(&w, admin.id, &home, "Dead letters", "Dead letters: 1").await;
    assert!(dead.text.as_deref().unwrap().contains("handler failed: boom"), "{:?}", dead.text);
    let confirm = step(&w, admin.id, &dead, "Redrive", "back in the queue?").await;
    let after = step(&w, admin.id, &confirm, "Confirm", "Back in the queue.").await;
    assert!(after.text.as_deref().unwrap().contains("Dead letters: 0"), "{:?}", after.text);
    w.screen(kim.id, "How it works").await;
    let status: String = on_db!(db, p => sqlx::query_scalar("SELECT status FROM tg_inbox WHERE update_id = $1").bind(update_id).fetch_one(p).await).unwrap();
    assert_eq!(status, "done");
    assert_eq!(scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE actor = $1 AND action = 'redrive'", ADMIN).await, 1);

    // Another dead letter, discarded: it leaves the list for good and is never handled.
    let discarded = update_id + 1;
    let payload = payload.replace(&update_id.to_string(), &discarded.to_string());
    on_db!(db, p => sqlx::query(
        "INSERT INTO tg_inbox (update_id, chat_key, kind, payload, status, attempts, next_attempt_at, received_at, last_error, finished_at)
         VALUES ($1, $2, 'message', $3, 'dead', 5, $4, $4, 'handler failed: bang', $4)"
    ).bind(discarded).bind(kim.id).bind(&payload).bind(now).execute(p).await.map(drop)).unwrap();
    let home = step(&w, admin.id, &after, "Console", "Admin console").await;
    let dead = step(&w, admin.id, &home, "Dead letters", "Dead letters: 1").await;
    let confirm = step(&w, admin.id, &dead, "Discard", "for good?").await;
    let after = step(&w, admin.id, &confirm, "Confirm", "Discarded.").await;
    assert!(after.text.as_deref().unwrap().contains("Dead letters: 0"), "{:?}", after.text);
    let status: String = on_db!(db, p => sqlx::query_scalar("SELECT status FROM tg_inbox WHERE update_id = $1").bind(discarded).fetch_one(p).await).unwrap();
    assert_eq!(status, "failed");
    assert_eq!(scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE actor = $1 AND action = 'discard'", ADMIN).await, 1);

    // The audit log lists all three, newest first.
    let home = step(&w, admin.id, &after, "Console", "Admin console").await;
    let log = step(&w, admin.id, &home, "Audit log", "Audit log").await;
    let text = log.text.unwrap();
    let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("{what} in {text}"));
    assert!(at("discard") < at("redrive") && at("redrive") < at("set-flag"), "{text}");
    w.stop().await;
});

db_test!(async fn every_console_screen_reads_in_both_languages_and_leads_back(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    for (id, lang, home_title, menu) in [
        (ADMIN, "en", "Admin console", "Choose an action below."),
        (ADMIN_2, "ru", "Консоль администратора", "Выберите действие"),
    ] {
        person(&w, "Admin", Some(id), lang, menu).await;
        w.tg.send_text(id, "/admin").await.unwrap();
        let home = w.screen(id, home_title).await;
        let places: Vec<(String, String)> = home
            .callback_buttons()
            .into_iter()
            .filter(|(_, data)| data.starts_with("a:"))
            .collect();
        assert_eq!(places.len(), 10, "{lang}: {places:?}");
        for (label, data) in places {
            w.tg.press_button(id, home.message_id, &data).await.unwrap();
            // The place: the message no longer shows the console's own buttons.
            let screen = wait_for(&format!("{lang}: {label}"), Duration::from_secs(30), || async {
                let t = w.tg.transcript(id).await.unwrap();
                t.bot_messages()
                    .find(|m| m.message_id == home.message_id && m.button_data("").is_some() && !m.callback_buttons().iter().any(|(_, d)| d == "a:st"))
                    .cloned()
            })
            .await;
            let text = screen.text.clone().unwrap();
            // Every text found in the language's file, none left as a key or an English text.
            assert!(!text.contains("adm-"), "{lang}: {label}: {text}");
            if lang == "ru" {
                assert!(!text.contains("Admin console") && !text.contains("Send the"), "{lang}: {label}: {text}");
            }
            // A way back: the console (or Cancel, which leads there).
            let back = screen
                .callback_buttons()
                .into_iter()
                .any(|(_, d)| d == "a" || d == "a:x");
            assert!(back, "{lang}: {label} has no way back: {:?}", screen.callback_buttons());
            let data = screen
                .callback_buttons()
                .into_iter()
                .find(|(_, d)| d == "a" || d == "a:x")
                .map(|(_, d)| d)
                .unwrap();
            w.tg.press_button(id, screen.message_id, &data).await.unwrap();
            wait_for(&format!("{lang}: back from {label}"), Duration::from_secs(30), || async {
                let t = w.tg.transcript(id).await.unwrap();
                t.bot_messages()
                    .find(|m| m.message_id == home.message_id && m.callback_buttons().iter().any(|(_, d)| d == "a:st"))
                    .map(drop)
            })
            .await;
        }
    }
    w.stop().await;
});

db_test!(async fn nodes_are_switched_and_reconciled_and_the_banner_set_from_the_console(t) {
    let Some(w) = World::start_with(t, true, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = &w.app.db;
    let admin = person(&w, "Boss", Some(ADMIN), "en", "Choose an action below.").await;
    let kim = person(&w, "Kim", Some(KIM), "en", "Choose an action below.").await;
    w.tg.send_text(admin.id, "/admin").await.unwrap();
    let home = w.screen(admin.id, "Admin console").await;
    let nodes = step(&w, admin.id, &home, "Nodes", "nl-1").await;
    assert!(nodes.text.as_deref().unwrap().contains("enabled"), "{:?}", nodes.text);
    // Out of service and back, each confirmed and audited.
    let confirm = step(&w, admin.id, &nodes, "Disable nl-1", "Disable node nl-1?").await;
    let nodes = step(&w, admin.id, &confirm, "Confirm", "Node disabled").await;
    assert!(nodes.text.as_deref().unwrap().contains("nl-1</b>: disabled") || nodes.text.as_deref().unwrap().contains("nl-1: disabled"), "{:?}", nodes.text);
    let confirm = step(&w, admin.id, &nodes, "Enable nl-1", "Enable node nl-1?").await;
    let nodes = step(&w, admin.id, &confirm, "Confirm", "Node enabled").await;
    for action in ["node-disabled", "node-enabled"] {
        let n = on_db!(db, p => sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE actor = $1 AND action = $2"
        ).bind(ADMIN).bind(action).fetch_one(p).await).unwrap();
        assert_eq!(n, 1, "{action}");
    }
    // Reconcile now: requested, then run by the replica holding the node's lease.
    let confirm = step(&w, admin.id, &nodes, "Reconcile nl-1", "Reconcile node nl-1 now?").await;
    let nodes = step(&w, admin.id, &confirm, "Confirm", "Reconcile requested").await;
    wait_for("the requested pass", Duration::from_secs(30), || async {
        let passes = tollgate::nodes::reconcile::last_passes(db).await.unwrap();
        passes.iter().any(|p| p.node == "nl-1" && p.finished_at.is_some() && p.requested_at.is_none()).then_some(())
    })
    .await;
    let home = step(&w, admin.id, &nodes, "Console", "Admin console").await;

    // The banner: too long is refused with its length and stores nothing (4,096 characters,
    // the longest message Telegram carries; `flags::check_banner` refuses longer ones too);
    // then set, and shown.
    let flags_screen = step(&w, admin.id, &home, "Flags", "Flags").await;
    step(&w, admin.id, &flags_screen, "Maintenance banner (en)", "maintenance banner's text").await;
    w.tg.send_text(admin.id, &"x".repeat(4096)).await.unwrap();
    w.screen(admin.id, "this one has 4096").await;
    assert_eq!(flags::banner(db, tollgate::config::Language::En).await.unwrap(), None);
    w.tg.send_text(admin.id, "Servers move tonight <b>22:00</b>").await.unwrap();
    let confirm = w.screen(admin.id, "Set the maintenance banner for en").await;
    let flags_screen = step(&w, admin.id, &confirm, "Confirm", "Banner saved.").await;
    let confirm = step(&w, admin.id, &flags_screen, "Turn maintenance on", "Turn flag maintenance on?").await;
    step(&w, admin.id, &confirm, "Confirm", "Flag changed.").await;
    w.tg.send_text(kim.id, "/start").await.unwrap();
    // Shown as text, escaped: the markup is the admin's words, not Telegram's.
    w.screen(kim.id, "Servers move tonight <b>22:00</b>").await;
    w.stop().await;
});
