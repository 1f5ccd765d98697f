//! docs/product.md §3.8, §4: the Invite screen and the referral reward through the emulator on
//! both backends — the link and its Share button, the referrer told when a friend starts the
//! bot and when one first pays, and the screen's counts and level equal to what the next
//! reward pays, across level boundaries.

use std::sync::Arc;
use std::time::Duration;

use telegram_emulator::{NewUser, TranscriptMessage};
use tollgate::app::AppOptions;
use tollgate::billing::{Reason, ledger, referrals};
use tollgate::config::Language;
use tollgate::domain::money::{Currency, Money};
use tollgate::i18n::format;
use tollgate::store::Db;
use tollgate::time::ShiftedClock;
use tollgate::users;

use crate::common::bot::World;
use crate::common::wait_for;
use crate::db_test;

const ANN: i64 = 300_000_001;

fn rub(minor: i64) -> String {
    format::money(Language::En, Money::new(minor, Currency::Rub))
}

fn fast() -> AppOptions {
    AppOptions {
        clock: Arc::new(ShiftedClock::new()),
        per_chat_interval: Duration::from_millis(10),
        handler_retry_base: Duration::from_millis(50),
        ..AppOptions::default()
    }
}

/// Levels close together: 10 % from 0 paying referrals, 25 % from 2, 45 % from 3.
fn near_levels(catalog: String) -> String {
    let edited = catalog
        .replace(
            "{ paying_referrals = 25, percent = 25 }",
            "{ paying_referrals = 2, percent = 25 }",
        )
        .replace(
            "{ paying_referrals = 50, percent = 45 }",
            "{ paying_referrals = 3, percent = 45 }",
        );
    assert_ne!(edited, catalog, "the example catalog's levels moved");
    edited
}

async fn started(w: &World, name: &str, id: i64, start: &str) -> i64 {
    let user =
        w.tg.create_user(NewUser::new(name).id(id).language("en"))
            .await
            .unwrap();
    w.tg.send_text(user.id, start).await.unwrap();
    w.screen(user.id, "Choose an action below.").await;
    user.id
}

/// The referrer's Invite screen, fresh (sent after `/invite`).
async fn invite(w: &World, user: i64) -> TranscriptMessage {
    let before = w.last(user).await.message_id;
    w.tg.send_text(user, "/invite").await.unwrap();
    wait_for("the Invite screen", Duration::from_secs(30), || async {
        let t = w.tg.transcript(user).await.unwrap();
        t.bot_messages()
            .filter(|m| m.message_id > before)
            .find(|m| {
                m.text
                    .as_deref()
                    .is_some_and(|x| x.contains("Invite friends"))
            })
            .cloned()
    })
    .await
}

/// Buys one month with Stars and waits for the payer's confirmation.
async fn pays(w: &World, user: i64) {
    let before = w.last(user).await.message_id;
    w.tg.send_text(user, "/buy").await.unwrap();
    let plans = crate::common::bot::screen_after(&w.tg, user, before, "Choose a plan").await;
    w.press(user, &plans, "1 month").await;
    let pay = w
        .screen_on(user, plans.message_id, "Choose how to pay")
        .await;
    w.press(user, &pay, "Telegram Stars").await;
    let invoice = wait_for("the invoice", Duration::from_secs(30), || async {
        let t = w.tg.transcript(user).await.unwrap();
        t.messages
            .iter()
            .filter(|m| m.invoice.is_some() && m.message_id > pay.message_id)
            .map(|m| m.message_id)
            .max()
    })
    .await;
    w.tg.pay_invoice(user, invoice).await.unwrap();
    crate::common::bot::screen_after(&w.tg, user, invoice, "Payment received").await;
}

/// `(text, url)` of every link button of `m`.
fn url_buttons(m: &TranscriptMessage) -> Vec<(String, String)> {
    let rows = m
        .reply_markup
        .as_ref()
        .and_then(|k| k.get("inline_keyboard"))
        .and_then(|r| r.as_array());
    rows.into_iter()
        .flatten()
        .filter_map(|r| r.as_array())
        .flatten()
        .filter_map(|b| {
            Some((
                b.get("text")?.as_str()?.to_owned(),
                b.get("url")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn count_said(t: &telegram_emulator::Transcript, needle: &str) -> usize {
    t.bot_messages()
        .filter(|m| m.text.as_deref().is_some_and(|x| x.contains(needle)))
        .count()
}

/// Waits until the referrer holds `n` reward rows; returns them, oldest first.
async fn rewards(db: &Db, user: i64, n: usize) -> Vec<i64> {
    wait_for(&format!("{n} rewards"), Duration::from_secs(30), || async {
        let rows = ledger::recent_of(db, user, Reason::ReferralReward, 100)
            .await
            .unwrap();
        (rows.len() == n).then(|| rows.iter().rev().map(|e| e.delta).collect::<Vec<_>>())
    })
    .await
}

db_test!(async fn the_invite_screen_counts_and_level_are_what_the_next_reward_pays_across_level_boundaries(t) {
    // Ann is an admin too, to refund a friend's payment at the end.
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", "300000001")], fast()).await else { return };
    let w = w.restart(fast(), near_levels).await;
    let db = w.app.db.clone();
    started(&w, "Ann", ANN, "/start").await;
    let code = users::get(&db, ANN).await.unwrap().unwrap().referral_code;

    // Before anyone came: the link, its Share button, zero counts, the first level.
    let screen = invite(&w, ANN).await;
    let text = screen.text.clone().unwrap();
    assert!(text.contains("https://t.me/") && text.contains(&format!("?start=ref_{code}")), "{text}");
    assert!(text.contains("Invited: 0 · paying: 0"), "{text}");
    assert!(text.contains("You earn 10% of what your friends pay."), "{text}");
    assert!(text.contains("2 more paying friends and you earn 25%."), "{text}");
    let share = url_buttons(&screen).into_iter().find(|(label, _)| label.contains("Share")).map(|(_, u)| u);
    let share = share.expect("a Share button");
    assert!(share.starts_with("https://t.me/share/url?url=https%3A%2F%2Ft.me%2F"), "{share}");
    assert!(share.contains(&format!("ref_{code}")), "{share}");

    // Three friends start the bot through the link: Ann hears of each, once.
    let friends = [("Bob", 300_000_002), ("Cid", 300_000_003), ("Dan", 300_000_004)];
    for (name, id) in friends {
        started(&w, name, id, &format!("/start ref_{code}")).await;
        w.screen(ANN, &format!("{name} started the bot with your invite link")).await;
    }
    // A friend starting again is no news.
    w.tg.send_text(friends[0].1, &format!("/start ref_{code}")).await.unwrap();
    w.screen(friends[0].1, "Choose an action below.").await;

    // Who pays in which order, and the level each payment should earn at (149 ₽ a month):
    // Bob first (1 paying → 10 %), Cid (2 → 25 %), Bob again (still 2 → 25 %), Dan (3 → 45 %).
    let plan = 14_900;
    let steps = [
        (friends[0].1, 1, 10, Some((1, 25))),
        (friends[1].1, 2, 25, Some((1, 45))),
        (friends[0].1, 2, 25, Some((1, 45))),
        (friends[2].1, 3, 45, None),
    ];
    let mut earned = 0;
    for (i, (payer, paying, percent, next)) in steps.into_iter().enumerate() {
        // What the screen says before this payment is what the next reward uses when the
        // payer already counts; a new payer moves the count first, as the reward does.
        pays(&w, payer).await;
        let got = rewards(&db, ANN, i + 1).await;
        let reward = *got.last().unwrap();
        assert_eq!(reward, plan * percent / 100, "payment {i}: {percent} % of the plan");
        earned += reward;
        let counted = referrals::paying(&db, ANN).await.unwrap();
        assert_eq!(counted, paying, "payment {i}");
        let screen = invite(&w, ANN).await;
        let text = screen.text.unwrap();
        assert!(text.contains(&format!("Invited: 3 · paying: {paying}")), "payment {i}: {text}");
        assert!(text.contains(&format!("You earn {percent}% of what your friends pay.")), "payment {i}: {text}");
        match next {
            Some((more, p)) => {
                let friend = if more == 1 { "friend" } else { "friends" };
                assert!(text.contains(&format!("{more} more paying {friend} and you earn {p}%.")), "payment {i}: {text}");
            }
            None => assert!(text.contains("You are at the top level."), "payment {i}: {text}"),
        }
        assert!(text.contains(&format!("Earned in total: {}", rub(earned))), "payment {i}: {text}");
        assert!(text.contains(&format!("+{}", rub(reward))), "payment {i}: the latest reward listed: {text}");
    }
    // Bob's renewal was paid at the level Cid's payment had reached, as the screen said then.
    assert_eq!(rewards(&db, ANN, 4).await, vec![1_490, 3_725, 3_725, 6_705]);
    assert_eq!(users::get(&db, ANN).await.unwrap().unwrap().balance, earned);

    // Ann was told: one "started" per friend, one "first payment" per paying friend (with the
    // count and share it brought), and the renewal's reward as an ordinary reward.
    let t = w.tg.transcript(ANN).await.unwrap();
    for (name, _) in friends {
        assert_eq!(count_said(&t, &format!("{name} started the bot")), 1, "{name}");
    }
    assert_eq!(count_said(&t, "paid for the first time"), 3);
    assert_eq!(count_said(&t, "Paying friends: 1 · your share: 10%"), 1);
    assert_eq!(count_said(&t, "Paying friends: 2 · your share: 25%"), 1);
    assert_eq!(count_said(&t, "Paying friends: 3 · your share: 45%"), 1);
    assert_eq!(count_said(&t, &format!("A friend you invited paid — {} added", rub(3_725))), 2);

    // Dan's only payment refunded: Dan no longer counts, and the screen says so.
    let dan = friends[2].1;
    let charge: String = tollgate::on_db!(&db, p => sqlx::query_scalar(
        "SELECT provider_payment_id FROM payments WHERE user_id = $1"
    ).bind(dan).fetch_one(p).await).unwrap();
    w.tg.send_text(ANN, &format!("/refund {charge}")).await.unwrap();
    w.screen(dan, "Your payment was refunded").await;
    assert_eq!(referrals::paying(&db, ANN).await.unwrap(), 2);
    let text = invite(&w, ANN).await.text.unwrap();
    assert!(text.contains("Invited: 3 · paying: 2"), "{text}");
    assert!(text.contains("You earn 25% of what your friends pay."), "{text}");
    w.stop().await;
});
