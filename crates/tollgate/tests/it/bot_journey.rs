//! docs/product.md §3, docs/reliability.md B3, D8, H3, I: what a user does with the bot, end to end through
//! the emulator — registration, language, referral, trial, connect, and every button.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use telegram_emulator::{MessageFilter, NewUser};
use tollgate::app::AppOptions;
use tollgate::config::Language;
use tollgate::i18n::{message_ids, source};
use tollgate::time::ShiftedClock;
use tollgate::users;

use crate::common::TestDb;
use crate::common::bot::World;
use crate::common::service::http_client;
use crate::db_test;

fn fast() -> AppOptions {
    AppOptions {
        per_chat_interval: Duration::from_millis(10),
        ..AppOptions::default()
    }
}

db_test!(async fn a_new_user_arrives_by_referral_in_their_language_takes_the_trial_and_connects(t) {
    let clock = ShiftedClock::new();
    let options = AppOptions { clock: Arc::new(clock.clone()), ..fast() };
    let Some(w) = World::start_with(t, true, &[], options).await else { return };
    let tg = &w.tg;

    // The referrer, in English.
    let ann = tg.create_user(NewUser::new("Ann").language("en")).await.unwrap();
    tg.send_text(ann.id, "/start").await.unwrap();
    w.screen(ann.id, "Choose an action below.").await;
    let code = users::get(&w.app.db, ann.id).await.unwrap().unwrap().referral_code;

    // A Russian-speaking newcomer with Ann's link.
    let boris = tg.create_user(NewUser::new("Борис").language("ru")).await.unwrap();
    tg.send_text(boris.id, &format!("/start ref_{code}")).await.unwrap();
    let menu = w.screen(boris.id, "Выберите действие ниже.").await;
    let stored = users::get(&w.app.db, boris.id).await.unwrap().unwrap();
    assert_eq!(stored.referrer_id, Some(ann.id));
    assert_eq!(stored.language, "ru");

    // The trial: access at once, nodes in a moment, then "ready".
    w.press(boris.id, &menu, "Пробный период").await;
    let connect = w.screen(boris.id, "Пробный период включён").await;
    let text = connect.text.clone().unwrap();
    assert!(text.contains("Ссылка на подписку"), "{text}");
    assert!(text.contains("vless://"), "{text}");
    let qr = tg
        .wait_for_message(boris.id, MessageFilter { kind: Some("photo".into()), ..MessageFilter::from_bot() }, Duration::from_secs(20))
        .await
        .unwrap();
    let photo = qr.photo.clone().unwrap();
    let png = tg.file(&photo.file_id).await.unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    w.screen(boris.id, "Доступ готов. Откройте").await;
    let node = w.node.as_ref().unwrap();
    assert_eq!(node.users().await.len(), 1, "provisioned on the node");

    // The subscription URL on the screen works.
    let url = text
        .split_whitespace()
        .find(|s| s.starts_with(&format!("http://127.0.0.1:{}/sub/", w.port)))
        .unwrap()
        .to_owned();
    let feed = http_client().get(&url).send().await.unwrap();
    assert_eq!(feed.status(), 200);
    let body = feed.text().await.unwrap();
    let links = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body.trim()).unwrap()).unwrap();
    assert!(links.starts_with("vless://"), "{links}");

    // A second trial is refused: while active, and after it ran out.
    let menu = tg.send_text(boris.id, "/menu").await.unwrap();
    let _ = menu;
    let menu = w.last(boris.id).await;
    assert!(menu.button_data("Пробный период").is_none(), "no trial button once used");
    w.forge(boris.id, menu.message_id, "trial").await;
    w.screen(boris.id, "У вас уже есть доступ").await;
    clock.advance(Duration::from_secs(4 * 86_400));
    tg.send_text(boris.id, "/menu").await.unwrap();
    let menu = w.screen(boris.id, "Доступ закончился").await;
    w.forge(boris.id, menu.message_id, "trial").await;
    w.screen(boris.id, "Вы уже использовали пробный период").await;
    w.stop().await;
});

db_test!(async fn forged_stale_and_old_buttons_do_nothing_harmful(t) {
    let Some(w) = World::start_with(t, false, &[], fast()).await else { return };
    let tg = &w.tg;
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    tg.send_text(ann.id, "/start").await.unwrap();
    let menu = w.screen(ann.id, "Choose an action below.").await;
    for forged in ["plan:../../etc", "pay:stars:", "topup:stars:9999", "user:1:grant", "trial;drop table users", "lang:xx"] {
        let outcome = w.forge(ann.id, menu.message_id, forged).await;
        let answer = outcome.answer.expect("answered at once");
        assert_eq!(answer.text, "This button is no longer active.", "{forged}");
    }
    // Nothing changed: no subscription, trial unused, the menu untouched.
    let user = users::get(&w.app.db, ann.id).await.unwrap().unwrap();
    assert_eq!(user.trial_used_at, None);
    assert!(tollgate::access::subscription_for_user(&w.app.db, ann.id).await.unwrap().is_none());
    // A plan that left the catalog since the button was drawn: a polite note, nothing sold.
    w.forge(ann.id, menu.message_id, "plan:discontinued").await;
    w.screen(ann.id, "This plan is no longer available").await;
    // A button from an old message (now the plan list) still does what it says.
    let old = menu.message_id;
    tg.send_text(ann.id, "/menu").await.unwrap();
    w.screen(ann.id, "Choose an action below.").await;
    let before = tg.transcript(ann.id).await.unwrap().messages.len();
    tg.press_button(ann.id, old, "menu").await.unwrap();
    let start = tokio::time::Instant::now();
    loop {
        let t = tg.transcript(ann.id).await.unwrap();
        let m = t.messages.iter().find(|m| m.message_id == old).unwrap();
        if m.text.as_deref().is_some_and(|x| x.contains("Choose an action below.")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the old message still shows {:?}", m.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tg.transcript(ann.id).await.unwrap().messages.len(), before, "nothing new was sent");
    w.stop().await;
});

/// Message ids that must never show up in what users see.
fn key_names() -> BTreeSet<String> {
    message_ids(source(Language::En)).into_iter().collect()
}

/// Presses every button reachable from the menu, in both languages: each answers, shows a
/// screen, and no screen shows a raw key name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_button_of_every_screen_works_in_both_languages() {
    let t = TestDb::sqlite().await;
    let Some(w) = World::start_with(&t, false, &[], fast()).await else {
        return;
    };
    let tg = &w.tg;
    let keys = key_names();
    for (lang, name) in [("en", "Eve"), ("ru", "Ева")] {
        let user = tg
            .create_user(NewUser::new(name).language(lang))
            .await
            .unwrap();
        let mut seen: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<Vec<String>> = VecDeque::from([vec![]]);
        let mut pressed = 0;
        'paths: while let Some(path) = queue.pop_front() {
            if let Some(last) = path.last()
                && !seen.insert(last.clone())
            {
                continue;
            }
            // Replay the path from a fresh menu; every press edits the same message.
            let before = tg.transcript(user.id).await.unwrap().messages.len();
            tg.send_text(user.id, "/menu").await.unwrap();
            let start = tokio::time::Instant::now();
            let menu = loop {
                let t = tg.transcript(user.id).await.unwrap();
                // The new menu: a late QR photo or notice of an earlier path is not it.
                if let Some(m) = t
                    .messages
                    .iter()
                    .skip(before)
                    .rfind(|m| m.from_bot && m.photo.is_none() && m.button_data("❓").is_some())
                {
                    break m.clone();
                }
                assert!(start.elapsed() < Duration::from_secs(20), "no menu");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let mut current = menu.clone();
            for data in &path {
                // A button that is gone (the trial, once taken) ends this path: the state
                // it led from no longer exists.
                if !current.callback_buttons().iter().any(|(_, d)| d == data) {
                    continue 'paths;
                }
                let edits = current.edit_count;
                let outcome = tg
                    .press_button(user.id, current.message_id, data)
                    .await
                    .unwrap();
                assert!(outcome.answer.is_some(), "{data}: the press was answered");
                pressed += 1;
                let start = tokio::time::Instant::now();
                current = loop {
                    let t = tg.transcript(user.id).await.unwrap();
                    let m = t
                        .messages
                        .iter()
                        .find(|m| m.message_id == current.message_id)
                        .unwrap()
                        .clone();
                    if m.edit_count > edits {
                        break m;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "{data}: no screen after the press"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
            }
            let text = current.text.clone().unwrap_or_default();
            for word in text.split(|c: char| c.is_whitespace() || c == ':' || c == ',' || c == '.')
            {
                assert!(!keys.contains(word), "{lang}: raw key {word:?} in {text:?}");
            }
            if path.len() < 3 {
                for (_, data) in current.callback_buttons() {
                    if !seen.contains(&data) && !data.starts_with("lang:") {
                        let mut next = path.clone();
                        next.push(data);
                        queue.push_back(next);
                    }
                }
            }
        }
        assert!(pressed >= 15, "{lang}: pressed only {pressed} buttons");
        for expected in [
            "trial",
            "buy",
            "access",
            "balance",
            "help",
            "support",
            "lang",
            "connect",
            "reissue",
            "autorenew:on",
        ] {
            assert!(
                seen.contains(expected),
                "{lang}: never reached {expected}: {seen:?}"
            );
        }
    }
    w.stop().await;
}

/// docs/reliability.md B3: a press is answered before the work it asks for. With `subscriptions`
/// locked by the test (PostgreSQL: `LOCK TABLE … IN ACCESS EXCLUSIVE MODE` in a transaction
/// it holds), a press of "My access" is answered while its screen cannot be drawn, and the
/// screen follows once the lock goes. SQLite has no lock short of its one write lock, which
/// would hold up the update's intake and claim as well, so this runs on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_is_answered_while_the_work_it_asks_for_waits() {
    const ACCESS_NONE: &str = "Take the free trial or choose a plan";
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let Some(w) = World::start_with(&t, false, &[], fast()).await else {
        return;
    };
    let tg = &w.tg;
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    tg.send_text(ann.id, "/start").await.unwrap();
    let menu = w.screen(ann.id, "Choose an action below.").await;

    let mut lock = t.db.begin().await.unwrap();
    tollgate::on_tx!(&mut lock, c => sqlx::query("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE")
        .execute(c).await.map(|_| ()))
    .unwrap();
    let outcome = tg
        .press_button(ann.id, menu.message_id, "access")
        .await
        .unwrap();
    assert!(
        outcome.answer.is_some(),
        "the press is answered while its work waits"
    );
    let shown = tg.transcript(ann.id).await.unwrap();
    assert!(
        !shown
            .bot_messages()
            .any(|m| m.text.as_deref().is_some_and(|x| x.contains(ACCESS_NONE))),
        "the access screen cannot be drawn while subscriptions are locked"
    );
    lock.rollback().await.unwrap();
    w.screen(ann.id, ACCESS_NONE).await;
    w.stop().await;
}

// The sender is read before the update's transaction opens (on SQLite on a reader next to the
// writer), so what keeps a screen from showing what the user just changed is that one chat's
// updates are handled in order and each read sees the commits before it. A language is chosen
// and /buy sent at once, without waiting for the button's answer, four times over: every plan
// list is in the language chosen just before it.
db_test!(async fn a_language_chosen_shows_in_the_very_next_update(t) {
    let Some(w) = World::start_with(t, false, &[], fast()).await else { return };
    let tg = &w.tg;
    let ann = tg.create_user(NewUser::new("Ann").language("en")).await.unwrap();
    tg.send_text(ann.id, "/start").await.unwrap();
    w.screen(ann.id, "Choose an action below.").await;
    let plan_lists = |messages: &[telegram_emulator::TranscriptMessage]| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m.from_bot)
            .filter_map(|m| m.text.clone())
            .filter(|x| x.contains("Choose a plan") || x.contains("Выберите тариф"))
            .collect()
    };
    let rounds = [("🇷🇺 Русский", "Выберите тариф"), ("🇬🇧 English", "Choose a plan")];
    for (round, (label, heading)) in rounds.iter().cycle().take(4).enumerate() {
        tg.send_text(ann.id, "/language").await.unwrap();
        let start = tokio::time::Instant::now();
        let languages = loop {
            let last = w.last(ann.id).await;
            if last.button_data(label).is_some() {
                break last;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no language screen: {:?}", last.text);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Not waiting for the answer: /buy is queued while the choice is still handled.
        let data = languages.button_data(label).unwrap();
        tg.press_button_with(telegram_emulator::control::types::PressButton {
            chat_id: ann.id,
            message_id: languages.message_id,
            callback_data: data,
            wait_ms: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
        tg.send_text(ann.id, "/buy").await.unwrap();
        let start = tokio::time::Instant::now();
        let lists = loop {
            let lists = plan_lists(&tg.transcript(ann.id).await.unwrap().messages);
            if lists.len() > round {
                break lists;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no plan list for round {round}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(lists.len(), round + 1, "one plan list per /buy");
        assert!(lists[round].contains(heading), "round {round}: chose {label}, the plan list says {:?}", lists[round]);
    }
    w.stop().await;
});
