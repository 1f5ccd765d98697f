//! docs/product.md §3.9, §4.5 and docs/reliability.md F1, F4, I: promo codes and personal discounts,
//! end to end through the emulator on both backends — a code's uses never overshoot however
//! many users take them at once, a use held by an unpaid purchase comes back when it expires, a
//! purchase paid after its code ran out or was disabled is honoured at its price, each refusal
//! has its own text and changes nothing, and admins create, list and disable codes and give
//! personal discounts from the console, audited.

use std::sync::Arc;
use std::time::Duration;

use telegram_emulator::control::types::{PaymentStatus, PressButton};
use telegram_emulator::{MessageFilter, NewUser, TranscriptMessage};
use tollgate::admin::Actor;
use tollgate::app::AppOptions;
use tollgate::billing::{self, promo};
use tollgate::domain::money::{Currency, Money};
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::{Clock, ShiftedClock, Timestamp};

use crate::common::bot::{World, handled};
use crate::common::wait_for;
use crate::db_test;

const ADMIN: i64 = 100_000_001;

fn fast(clock: &ShiftedClock) -> AppOptions {
    AppOptions {
        clock: Arc::new(clock.clone()),
        per_chat_interval: Duration::from_millis(10),
        handler_retry_base: Duration::from_millis(50),
        handler_max_attempts: 1000,
        ..AppOptions::default()
    }
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await).unwrap()
}

/// A code made as the importer or a test would (the console's way is tested below).
async fn code(db: &Db, text: &str, benefit: promo::Benefit, max_uses: Option<i64>, now: Timestamp) {
    code_with(db, text, benefit, max_uses, |_| {}, now).await;
}

async fn code_with(
    db: &Db,
    text: &str,
    benefit: promo::Benefit,
    max_uses: Option<i64>,
    edit: impl FnOnce(&mut promo::NewCode),
    now: Timestamp,
) {
    let mut new = promo::NewCode {
        code: promo::Code::parse(text).unwrap(),
        benefit,
        max_uses,
        starts_at: None,
        ends_at: None,
        first_purchase_only: false,
        plans: None,
    };
    edit(&mut new);
    let mut tx = db.begin().await.unwrap();
    assert!(
        promo::import_code(&mut tx, &new, 0, false, now)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}

async fn person(w: &World, id: i64, name: &str) -> i64 {
    w.tg.create_user(NewUser::new(name).language("en").id(id))
        .await
        .unwrap();
    w.tg.send_text(id, "/start").await.unwrap();
    w.screen(id, "Choose an action below.").await;
    id
}

/// The newest invoice in `user`'s chat after message `after`.
async fn invoice_after(w: &World, user: i64, after: Option<i64>) -> TranscriptMessage {
    let filter = MessageFilter {
        kind: Some("invoice".into()),
        after_message_id: after,
        ..MessageFilter::from_bot()
    };
    w.tg.wait_for_message(user, filter, Duration::from_secs(30))
        .await
        .unwrap()
}

/// /buy → "1 month" → Stars; the invoice.
async fn buy_month(w: &World, user: i64) -> TranscriptMessage {
    let before =
        w.tg.transcript(user)
            .await
            .unwrap()
            .messages
            .iter()
            .map(|m| m.message_id)
            .max();
    w.tg.send_text(user, "/buy").await.unwrap();
    let plans = w.screen(user, "Choose a plan").await;
    w.press(user, &plans, "1 month").await;
    let pay = w
        .screen_on(user, plans.message_id, "Choose how to pay")
        .await;
    w.press(user, &pay, "Telegram Stars").await;
    invoice_after(w, user, before).await
}

async fn used(db: &Db, code: &str) -> i64 {
    let list = promo::list(db, Currency::Rub, 100).await.unwrap();
    list.iter().find(|c| c.code == code).unwrap().used
}

db_test!(async fn five_hundred_users_taking_a_hundred_use_code_at_once_get_exactly_a_hundred_discounts(t) {
    let clock = ShiftedClock::new();
    let env = [("ADMIN_IDS", "100000001")];
    let Some(w) = World::start_with(t, false, &env, fast(&clock)).await else { return };
    let db = &w.app.db;
    code(db, "RUSH", promo::Benefit::Percent(20), Some(100), clock.now()).await;
    const USERS: i64 = 500;
    let ids: Vec<i64> = (0..USERS).map(|i| 300_000_000 + i).collect();
    for id in &ids {
        w.tg.create_user(NewUser::new("U").language("en").id(*id)).await.unwrap();
    }
    // Everyone arrives by the code's link at once: entering a code takes no use yet.
    let arrivals = ids.iter().map(|id| w.tg.send_text(*id, "/start promo_rush"));
    for sent in futures::future::join_all(arrivals).await {
        sent.unwrap();
    }
    wait_for("500 codes chosen", Duration::from_secs(120), || async {
        let n = count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE status = 'chosen'").await;
        (n == USERS).then_some(())
    })
    .await;
    wait_for("every answer sent", Duration::from_secs(120), || async {
        let open = count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE status = 'pending'").await;
        (open == 0).then_some(())
    })
    .await;
    let mut screens = Vec::new();
    for id in &ids {
        let m = w.screen(*id, "Code RUSH accepted").await;
        assert!(m.button_data("80 ⭐").is_some(), "{:?}", m.callback_buttons());
        screens.push((*id, m.message_id));
    }
    // … and everyone presses "Telegram Stars" for the month at the same moment.
    let presses = screens.iter().map(|(id, message)| {
        w.tg.press_button_with(PressButton {
            chat_id: *id,
            message_id: *message,
            callback_data: "pay:stars:m1".into(),
            wait_ms: Some(0),
            forged: true,
            ..Default::default()
        })
    });
    let updates: Vec<i64> = futures::future::join_all(presses)
        .await
        .into_iter()
        .map(|o| o.unwrap().update_id.unwrap())
        .collect();
    handled(db, &updates).await;

    // Exactly 100 purchases at the discount, each holding one use; nobody else was sold one.
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE promo_code = 'RUSH' AND amount = 80 AND list_amount = 100").await, 100);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases").await, 100);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE status = 'reserved'").await, 100);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE status = 'chosen'").await, 0, "the rest were told and forgotten");
    assert_eq!(used(db, "RUSH").await, 100);
    // What the users see, once the outbox has sent every answer (waited for in the database:
    // reading 500 transcripts is read once, not polled).
    wait_for("every answer sent", Duration::from_secs(120), || async {
        let open = count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE status = 'pending'").await;
        (open == 0).then_some(())
    })
    .await;
    let (mut discounted, mut refused) = (0, 0);
    for id in &ids {
        let t = w.tg.transcript(*id).await.unwrap();
        discounted += t.messages.iter().filter(|m| m.invoice.as_ref().is_some_and(|i| i.total_amount == 80)).count();
        refused += t.bot_messages().filter(|m| m.text.as_deref().is_some_and(|x| x.contains("This promo code has been used up."))).count();
    }
    assert_eq!((discounted, refused), (100, 400), "invoices at the discount, refusals");

    // Three of them pay: their uses are consumed, the count stays.
    let mut paid = 0;
    for id in ids.iter().copied() {
        if paid == 3 {
            break;
        }
        let t = w.tg.transcript(id).await.unwrap();
        if let Some(inv) = t.messages.iter().find(|m| m.invoice.is_some()) {
            let out = w.tg.pay_invoice(id, inv.message_id).await.unwrap();
            assert_eq!(out.status, PaymentStatus::Paid);
            w.screen(id, "Payment received").await;
            paid += 1;
        }
    }
    let (reserved, consumed) = on_db!(db, p => sqlx::query_as::<_, (i64, i64)>(
        "SELECT CAST(SUM(CASE WHEN status = 'reserved' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'consumed' THEN 1 ELSE 0 END) AS BIGINT) FROM promo_uses"
    ).fetch_one(p).await).unwrap();
    assert_eq!((reserved, consumed), (97, 3));
    assert_eq!(used(db, "RUSH").await, 100);

    // The admin's list says the same.
    w.tg.create_user(NewUser::new("Admin").language("en").id(ADMIN)).await.unwrap();
    w.tg.send_text(ADMIN, "/admin").await.unwrap();
    let home = w.screen(ADMIN, "Admin console").await;
    w.press(ADMIN, &home, "Promo codes").await;
    let list = w.screen_on(ADMIN, home.message_id, "RUSH").await;
    assert!(list.text.as_deref().unwrap().contains("used 100/100"), "{:?}", list.text);
    w.stop().await;
});

db_test!(async fn a_held_use_comes_back_when_its_purchase_expires_and_a_late_payment_keeps_its_price(t) {
    let clock = ShiftedClock::new();
    let Some(w) = World::start_with(t, false, &[], fast(&clock)).await else { return };
    let db = &w.app.db;
    code(db, "LAST", promo::Benefit::Percent(20), Some(1), clock.now()).await;
    let ann = person(&w, 200_000_001, "Ann").await;
    // Bob came by Ann's link: her reward is a share of what he actually pays.
    let code_of_ann = tollgate::users::get(db, ann).await.unwrap().unwrap().referral_code;
    let bob = 200_000_002;
    w.tg.create_user(NewUser::new("Bob").language("en").id(bob)).await.unwrap();
    w.tg.send_text(bob, &format!("/start ref_{code_of_ann}")).await.unwrap();
    w.screen(bob, "Choose an action below.").await;

    w.tg.send_text(ann, "/promo last").await.unwrap();
    w.screen(ann, "Code LAST accepted").await;
    let ann_invoice = buy_month(&w, ann).await;
    assert_eq!(ann_invoice.invoice.as_ref().unwrap().total_amount, 80);
    assert_eq!(used(db, "LAST").await, 1);
    // The only use is held: Bob cannot have it.
    w.tg.send_text(bob, "/promo LAST").await.unwrap();
    w.screen(bob, "This promo code has been used up.").await;

    // Ann never pays; her purchase expires and the use comes back to the code (and to her).
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(billing::expire_unpaid_purchases(db, clock.now(), 100).await.unwrap(), 1);
    assert_eq!(used(db, "LAST").await, 0);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE status = 'chosen'").await, 1);
    let out = w.tg.pay_invoice(ann, ann_invoice.message_id).await.unwrap();
    assert_eq!(out.status, PaymentStatus::Declined, "an expired invoice is closed");

    // Now Bob takes it, and Ann — still holding the code — finds it gone when she buys.
    w.tg.send_text(bob, "/promo LAST").await.unwrap();
    w.screen(bob, "Code LAST accepted").await;
    let bob_invoice = buy_month(&w, bob).await;
    assert_eq!(bob_invoice.invoice.as_ref().unwrap().total_amount, 80);
    w.tg.send_text(ann, "/buy").await.unwrap();
    let plans = w.screen(ann, "Choose a plan").await;
    w.press(ann, &plans, "1 month").await;
    let pay = w.screen_on(ann, plans.message_id, "Choose how to pay").await;
    assert!(pay.text.as_deref().unwrap().contains("With your discount"), "Ann still sees her code: {:?}", pay.text);
    w.press(ann, &pay, "Telegram Stars").await;
    let gone = w.screen_on(ann, pay.message_id, "This promo code has been used up.").await;
    assert!(gone.button_data("100 ⭐").is_some(), "the full price again: {:?}", gone.callback_buttons());
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE user_id = 200000001").await, 0);

    // The admin disables the code; Bob pays his invoice afterwards, at the price it was made for.
    let mut tx = db.begin().await.unwrap();
    let id = promo::list(db, Currency::Rub, 10).await.unwrap()[0].id;
    assert!(promo::disable(&mut tx, id, Actor::CommandLine, clock.now()).await.unwrap().is_some());
    tx.commit().await.unwrap();
    let out = w.tg.pay_invoice(bob, bob_invoice.message_id).await.unwrap();
    assert_eq!(out.status, PaymentStatus::Paid);
    w.screen(bob, "Payment received").await;
    let (amount, status): (i64, String) = on_db!(db, p => sqlx::query_as(
        "SELECT amount, status FROM purchases WHERE user_id = 200000002"
    ).fetch_one(p).await).unwrap();
    assert_eq!((amount, status.as_str()), (80, "paid"));
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE user_id = 200000002 AND status = 'consumed'").await, 1);
    assert_eq!(used(db, "LAST").await, 1);
    assert!(tollgate::access::subscription_for_user(db, bob).await.unwrap().unwrap().is_active(clock.now()));
    // 10 % of 149 ₽ at the 80 % Bob paid: 11.92 ₽.
    w.screen(ann, "A friend you invited paid").await;
    assert_eq!(tollgate::users::get(db, ann).await.unwrap().unwrap().balance, 1_192);
    w.stop().await;
});

db_test!(async fn a_balance_payment_charges_the_price_shown_and_consumes_the_use(t) {
    let clock = ShiftedClock::new();
    let Some(w) = World::start_with(t, false, &[], fast(&clock)).await else { return };
    let db = &w.app.db;
    code(db, "CASH", promo::Benefit::Credit(Money::new(20_000, Currency::Rub)), None, clock.now()).await;
    code(db, "FIFTH", promo::Benefit::Percent(20), Some(10), clock.now()).await;
    let kim = person(&w, 200_000_031, "Kim").await;
    w.tg.send_text(kim, "/promo cash").await.unwrap();
    w.screen(kim, "200 ₽ added to your balance").await;
    // The code typed after pressing 🎟 Promo code: a mistake, then the code.
    let before = w.last(kim).await.message_id;
    w.tg.send_text(kim, "/menu").await.unwrap();
    let menu = crate::common::bot::screen_after(&w.tg, kim, before, "Choose an action below.").await;
    w.press(kim, &menu, "Promo code").await;
    w.screen_on(kim, menu.message_id, "Send your code as a message").await;
    w.tg.send_text(kim, "fith").await.unwrap();
    w.screen(kim, "There is no such promo code.").await;
    w.tg.send_text(kim, "fifth").await.unwrap();
    let plans = w.screen(kim, "Code FIFTH accepted").await;
    assert!(plans.button_data("119.20 ₽ / 80 ⭐").is_some(), "{:?}", plans.callback_buttons());
    w.press(kim, &plans, "1 month").await;
    let pay = w.screen_on(kim, plans.message_id, "Choose how to pay").await;
    assert!(pay.text.as_deref().unwrap().contains("With your discount: 149 ₽ → 119.20 ₽"), "{:?}", pay.text);
    w.press(kim, &pay, "From balance · 119.20 ₽").await;
    w.screen(kim, "Subscription URL").await;
    assert_eq!(tollgate::users::get(db, kim).await.unwrap().unwrap().balance, 20_000 - 11_920);
    let (amount, list, code_used): (i64, Option<i64>, Option<String>) = on_db!(db, p => sqlx::query_as(
        "SELECT amount, list_amount, promo_code FROM purchases WHERE user_id = 200000031 AND status = 'paid'"
    ).fetch_one(p).await).unwrap();
    assert_eq!((amount, list, code_used.as_deref()), (11_920, Some(14_900), Some("FIFTH")));
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE user_id = 200000031 AND status = 'consumed'").await, 2);
    assert_eq!(used(db, "FIFTH").await, 1);
    // Once a code is accepted, plain text is ordinary text again.
    w.tg.send_text(kim, "fifth").await.unwrap();
    w.screen(kim, "I didn't get that").await;
    // The code is spent: the next plan costs the full price.
    let before = w.last(kim).await.message_id;
    w.tg.send_text(kim, "/buy").await.unwrap();
    let plans = crate::common::bot::screen_after(&w.tg, kim, before, "Choose a plan").await;
    assert!(plans.button_data("149 ₽ / 100 ⭐").is_some(), "{:?}", plans.callback_buttons());
    w.stop().await;
});

db_test!(async fn each_refusal_has_its_own_text_and_changes_nothing(t) {
    let clock = ShiftedClock::new();
    let Some(w) = World::start_with(t, false, &[], fast(&clock)).await else { return };
    let db = &w.app.db;
    let now = clock.now();
    let day = Duration::from_secs(86_400);
    code(db, "WEEK", promo::Benefit::Days(7), None, now).await;
    code(db, "GIFT", promo::Benefit::Credit(Money::new(10_000, Currency::Rub)), None, now).await;
    code(db, "ONCE", promo::Benefit::Days(1), Some(1), now).await;
    code(db, "HALF", promo::Benefit::Percent(50), None, now).await;
    code_with(db, "SOON", promo::Benefit::Percent(5), None, |c| c.starts_at = Some(now.plus(day)), now).await;
    code_with(db, "OLD", promo::Benefit::Percent(5), None, |c| c.ends_at = Some(now.minus(day)), now).await;
    code_with(db, "NEWBIE", promo::Benefit::Percent(30), None, |c| c.first_purchase_only = true, now).await;
    // The importer's way in is idempotent by code: a second run changes nothing.
    let again = promo::NewCode {
        code: promo::Code::parse("week").unwrap(),
        benefit: promo::Benefit::Days(30),
        max_uses: Some(1),
        starts_at: None,
        ends_at: None,
        first_purchase_only: false,
        plans: None,
    };
    let mut tx = db.begin().await.unwrap();
    assert!(!promo::import_code(&mut tx, &again, 5, true, now).await.unwrap());
    tx.commit().await.unwrap();
    let kim = person(&w, 200_000_011, "Kim").await;
    let lou = person(&w, 200_000_012, "Lou").await;

    // What works: free days at once, a credit at once, a discount for the next purchase.
    w.tg.send_text(kim, "/promo week").await.unwrap();
    w.screen(kim, "7 days added").await;
    let sub = tollgate::access::subscription_for_user(db, kim).await.unwrap().unwrap();
    assert_eq!(sub.kind, tollgate::access::Kind::Gift);
    w.tg.send_text(kim, "/promo Gift").await.unwrap();
    w.screen(kim, "added to your balance").await;
    assert_eq!(tollgate::users::get(db, kim).await.unwrap().unwrap().balance, 10_000);
    w.tg.send_text(lou, "/promo ONCE").await.unwrap();
    w.screen(lou, "1 day added").await;
    w.tg.send_text(kim, "/promo HALF").await.unwrap();
    w.screen(kim, "Code HALF accepted").await;
    // Lou pays once at full price: first-purchase codes are no longer for her.
    let inv = buy_month(&w, lou).await;
    assert_eq!(inv.invoice.as_ref().unwrap().total_amount, 100);
    w.tg.pay_invoice(lou, inv.message_id).await.unwrap();
    w.screen(lou, "Payment received").await;

    let snapshot = || async {
        let uses = count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses").await;
        let used = count(db, "SELECT CAST(SUM(used) AS BIGINT) FROM promo_codes").await;
        let ledger = count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger").await;
        let subs = count(db, "SELECT CAST(SUM(expires_at) AS BIGINT) FROM subscriptions").await;
        (uses, used, ledger, subs)
    };
    let before = snapshot().await;
    for (user, typed, text) in [
        (kim, "/promo NOPE", "There is no such promo code."),
        (kim, "/promo <b>x</b>", "There is no such promo code."),
        (kim, "/start promo_SOON", "This promo code is not valid yet."),
        (kim, "/promo old", "This promo code has expired."),
        (kim, "/promo ONCE", "This promo code has been used up."),
        (kim, "/promo week", "You have already used this promo code."),
        (kim, "/promo half", "This promo code is already applied to your next purchase."),
        (lou, "/promo NEWBIE", "This promo code is for a first purchase only."),
    ] {
        w.tg.send_text(user, typed).await.unwrap();
        let m = w.screen(user, text).await;
        assert!(m.text.as_deref().unwrap().contains("/promo CODE"), "{typed}: the Promo screen again");
    }
    assert_eq!(snapshot().await, before, "a refusal changes nothing");
    // Kim's chosen code is still hers, and the Buy screen shows it.
    let last = w.last(kim).await.message_id;
    w.tg.send_text(kim, "/buy").await.unwrap();
    let plans = crate::common::bot::screen_after(&w.tg, kim, last, "Code HALF: −50 %").await;
    assert!(plans.button_data("74.50").is_some(), "{:?}", plans.callback_buttons());
    w.stop().await;
});

// Many codes: the console's list pages through them, codes that can still be disabled first,
// so an old code in force is found and disabled even behind newer and disabled ones.
db_test!(async fn the_console_pages_through_many_codes_with_those_in_force_first(t) {
    let clock = ShiftedClock::new();
    let env = [("ADMIN_IDS", "100000001")];
    let Some(w) = World::start_with(t, false, &env, fast(&clock)).await else { return };
    let db = &w.app.db;
    let now = clock.now();
    for n in 1..=18 {
        code(db, &format!("C{n:02}"), promo::Benefit::Percent(10), None, now).await;
    }
    // The two newest are disabled: they go to the end.
    for c in promo::list(db, Currency::Rub, 2).await.unwrap() {
        let mut tx = db.begin().await.unwrap();
        assert!(promo::disable(&mut tx, c.id, Actor::CommandLine, now).await.unwrap().is_some());
        tx.commit().await.unwrap();
    }
    w.tg.create_user(NewUser::new("Admin").language("en").id(ADMIN)).await.unwrap();
    w.tg.send_text(ADMIN, "/admin").await.unwrap();
    let home = w.screen(ADMIN, "Admin console").await;
    w.press(ADMIN, &home, "Promo codes").await;
    let first = w.screen_on(ADMIN, home.message_id, "1–15 of 18").await;
    let text = first.text.clone().unwrap();
    assert!(text.contains("C16") && text.contains("C02") && !text.contains("C01") && !text.contains("C18"), "{text}");
    assert!(first.button_data("Newer").is_none(), "{:?}", first.callback_buttons());
    w.press(ADMIN, &first, "Older").await;
    let second = w.screen_on(ADMIN, home.message_id, "16–18 of 18").await;
    let text = second.text.clone().unwrap();
    assert!(text.contains("C01") && text.contains("C18") && text.contains("C17") && !text.contains("C16"), "{text}");
    assert!(second.button_data("Older").is_none(), "{:?}", second.callback_buttons());
    // Only the code in force has a Disable button here.
    let disables: Vec<_> = second.callback_buttons().into_iter().filter(|(l, _)| l.contains("Disable")).collect();
    assert_eq!(disables.len(), 1, "{disables:?}");
    w.press(ADMIN, &second, "Disable C01").await;
    let confirm = w.screen_on(ADMIN, home.message_id, "Disable promo code").await;
    w.press(ADMIN, &confirm, "Confirm").await;
    w.screen_on(ADMIN, home.message_id, "Promo code disabled.").await;
    let disabled = count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_codes WHERE disabled_at IS NOT NULL").await;
    assert_eq!(disabled, 3);
    // A forged page past the end shows no codes and a way back.
    w.forge(ADMIN, home.message_id, "a:pr:p:9").await;
    let past = w.screen_on(ADMIN, home.message_id, "0–0 of 18").await;
    assert!(past.button_data("Newer").is_some(), "{:?}", past.callback_buttons());
    w.stop().await;
});

db_test!(async fn admins_create_list_and_disable_codes_and_give_personal_discounts_audited(t) {
    let clock = ShiftedClock::new();
    let env = [("ADMIN_IDS", "100000001")];
    let Some(w) = World::start_with(t, false, &env, fast(&clock)).await else { return };
    let db = &w.app.db;
    w.tg.create_user(NewUser::new("Admin").language("en").id(ADMIN)).await.unwrap();
    let kim = person(&w, 200_000_021, "Kim").await;

    w.tg.send_text(ADMIN, "/admin").await.unwrap();
    let home = w.screen(ADMIN, "Admin console").await;
    w.press(ADMIN, &home, "Promo codes").await;
    let list = w.screen_on(ADMIN, home.message_id, "No promo codes yet.").await;
    w.press(ADMIN, &list, "New code").await;
    w.screen_on(ADMIN, list.message_id, "Send the new code").await;
    // Each mistake is named; the question stays open.
    for (typed, says) in [
        ("SPRING half 20", "«half» is not a kind"),
        ("SPRING percent 120", "«120» is not a valid value"),
        ("SPRING percent 20 plans=m9", "There is no plan «m9»"),
        ("SPRING percent 20 until=2027-02-30", "«until=2027-02-30» is not understood"),
    ] {
        w.tg.send_text(ADMIN, typed).await.unwrap();
        w.screen(ADMIN, says).await;
    }
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_codes").await, 0);
    w.tg.send_text(ADMIN, "spring percent 20 uses=50 until=2099-12-31 plans=m1,m3").await.unwrap();
    let confirm = w.screen(ADMIN, "Create promo code SPRING").await;
    w.press(ADMIN, &confirm, "Confirm").await;
    let list = w.screen_on(ADMIN, confirm.message_id, "Promo code created.").await;
    let text = list.text.clone().unwrap();
    assert!(text.contains("SPRING") && text.contains("used 0/50") && text.contains("m1, m3"), "{text}");

    // Kim enters it; then the admin gives her a personal 30 %: the better one applies.
    w.tg.send_text(kim, "/promo SPRING").await.unwrap();
    w.screen(kim, "Code SPRING accepted").await;
    w.forge(ADMIN, list.message_id, &format!("a:u:{kim}")).await;
    let card = w.screen_on(ADMIN, list.message_id, "200000021").await;
    w.press(ADMIN, &card, "Discount").await;
    w.screen_on(ADMIN, card.message_id, "Send the personal discount").await;
    w.tg.send_text(ADMIN, "130").await.unwrap();
    w.screen(ADMIN, "Send a percent from 0 to 99").await;
    w.tg.send_text(ADMIN, "30 2099-01-31").await.unwrap();
    let confirm = w.screen(ADMIN, "personal discount of 30 % until").await;
    w.press(ADMIN, &confirm, "Confirm").await;
    let card = w.screen_on(ADMIN, confirm.message_id, "Personal discount saved.").await;
    assert!(card.text.as_deref().unwrap().contains("Personal discount 30 %"));
    w.screen(kim, "You have a personal discount of 30 %").await;
    w.tg.send_text(kim, "/buy").await.unwrap();
    let plans = w.screen(kim, "Your personal discount: −30 %").await;
    // 30 % beats the code's 20 % (149 ₽ → 104.30 ₽, 100 ⭐ → 70 ⭐).
    assert!(plans.button_data("104.30").is_some() && plans.button_data("70 ⭐").is_some(), "{:?}", plans.callback_buttons());

    // The admin disables the code: the list says so, and nobody can enter it any more.
    w.tg.send_text(ADMIN, "/admin").await.unwrap();
    let home = w.screen(ADMIN, "Admin console").await;
    w.press(ADMIN, &home, "Promo codes").await;
    let list = w.screen_on(ADMIN, home.message_id, "SPRING").await;
    w.press(ADMIN, &list, "Disable SPRING").await;
    let confirm = w.screen_on(ADMIN, list.message_id, "Disable promo code").await;
    w.press(ADMIN, &confirm, "Confirm").await;
    let list = w.screen_on(ADMIN, confirm.message_id, "Promo code disabled.").await;
    assert!(list.text.as_deref().unwrap().contains("⚪️"), "{:?}", list.text);
    assert!(list.button_data("Disable SPRING").is_none());
    let lou = person(&w, 200_000_022, "Lou").await;
    w.tg.send_text(lou, "/promo spring").await.unwrap();
    w.screen(lou, "This promo code has expired.").await;

    for action in ["create-promo", "disable-promo", "set-discount"] {
        let n = on_db!(db, p => sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = $1 AND actor = 100000001"
        ).bind(action).fetch_one(p).await).unwrap();
        assert_eq!(n, 1, "{action}");
    }
    w.stop().await;
});

db_test!(async fn auto_renewal_gets_the_personal_discount_but_never_the_promo_code(t) {
    use tollgate::access::{Grant, Kind};
    use tollgate::jobs::JobContext;
    use tollgate::jobs::renewal::AutoRenewal;
    use tollgate::time::ManualClock;
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(t0);
    let (app, s, emu) = crate::jobs_month::services(t, &clock).await;
    let p = crate::jobs_month::Person { id: 1, auto_renew: true, balance: 14_900, blocked: false };
    crate::jobs_month::person(&s, &p, Some(Grant::days(Kind::Paid, 30, Some("m1"))), t0).await;
    code(&s.db, "HALF", promo::Benefit::Percent(50), None, t0).await;
    let mut tx = s.db.begin().await.unwrap();
    let entered = promo::redeem(&mut tx, s.registry.enabled(), Currency::Rub, 1, "half", t0).await.unwrap();
    assert!(entered.is_ok(), "{entered:?}");
    let personal = Some(promo::Personal { percent: 20, until: None });
    promo::set_personal(&mut tx, 1, personal, Actor::CommandLine, t0).await.unwrap();
    tx.commit().await.unwrap();
    // Twelve hours before the expiry the renewal charges 149 ₽ less 20 %, not less 50 %.
    clock.set(t0.plus(Duration::from_secs(30 * 86_400 - 12 * 3600)));
    let texts = Arc::new(tollgate::i18n::Texts::load().unwrap());
    AutoRenewal::new(JobContext::of(&s, texts)).run_batch().await.unwrap();
    assert_eq!(tollgate::users::get(&s.db, 1).await.unwrap().unwrap().balance, 14_900 - 11_920);
    let (amount, list, code_used): (i64, Option<i64>, Option<String>) = on_db!(&s.db, p => sqlx::query_as(
        "SELECT amount, list_amount, promo_code FROM purchases WHERE user_id = 1"
    ).fetch_one(p).await).unwrap();
    assert_eq!((amount, list, code_used), (11_920, Some(14_900), None));
    assert_eq!(count(&s.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE status = 'chosen'").await, 1, "the code waits for a purchase by hand");
    assert_eq!(used(&s.db, "HALF").await, 0);
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});
