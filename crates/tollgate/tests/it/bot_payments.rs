//! docs/reliability.md F1, F4, F6–F9, D8 and docs/product.md §3.4, §3.7, §4: money, end to end through the
//! emulator — Stars and card invoices, the pre-checkout gate, duplicates, late payments,
//! a crash between pre-checkout and payment, lost updates, refunds, top-ups, the balance.

use std::sync::Arc;
use std::time::Duration;

use telegram_emulator::control::types::PaymentStatus;
use telegram_emulator::{FaultKind, MessageFilter, NewUser, TranscriptMessage};
use tollgate::app::AppOptions;
use tollgate::billing::{self, BalanceCharge, BalancePaid, Item, Provider, Reason, ledger};
use tollgate::domain::money::{Currency, Money};
use tollgate::flags::{self, Flag};
use tollgate::store::Db;
use tollgate::telegram::inbox::{self, NewUpdate};
use tollgate::telegram::update::parse_head;
use tollgate::time::{Clock, ShiftedClock, SystemClock};
use tollgate::{access, lease, on_db, users};

use crate::common::bot::{Gate, World, double_tap, handled};
use crate::common::{TestDb, wait_for};
use crate::db_test;
use tokio::time::Instant;

const DAY: Duration = Duration::from_secs(86_400);

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

/// A new English-speaking user who has pressed START and seen the menu.
async fn started(w: &World, name: &str) -> telegram_emulator::User {
    let user =
        w.tg.create_user(NewUser::new(name).language("en"))
            .await
            .unwrap();
    w.tg.send_text(user.id, "/start").await.unwrap();
    w.screen(user.id, "Choose an action below.").await;
    user
}

/// /buy → the plan → "Telegram Stars": returns the invoice message.
async fn stars_invoice(w: &World, user: i64, plan_label: &str) -> TranscriptMessage {
    plan_invoice(w, user, plan_label, "Telegram Stars").await
}

/// /buy → the plan → the way to pay (`method_label`): returns the invoice message.
async fn plan_invoice(
    w: &World,
    user: i64,
    plan_label: &str,
    method_label: &str,
) -> TranscriptMessage {
    w.tg.send_text(user, "/buy").await.unwrap();
    let plans = w.screen(user, "Choose a plan").await;
    w.press(user, &plans, plan_label).await;
    let pay = w.screen(user, "Choose how to pay").await;
    w.press(user, &pay, method_label).await;
    invoice(w, user).await
}

async fn invoice(w: &World, user: i64) -> TranscriptMessage {
    let filter = MessageFilter {
        kind: Some("invoice".into()),
        ..MessageFilter::from_bot()
    };
    let t = w.tg.transcript(user).await.unwrap();
    let after = t
        .messages
        .iter()
        .filter(|m| m.invoice.is_some())
        .map(|m| m.message_id)
        .max();
    w.tg.wait_for_message(
        user,
        MessageFilter {
            after_message_id: after,
            ..filter
        },
        Duration::from_secs(20),
    )
    .await
    .unwrap()
}

async fn expires_at(db: &Db, user: i64) -> tollgate::time::Timestamp {
    access::subscription_for_user(db, user)
        .await
        .unwrap()
        .unwrap()
        .expires_at
}

fn days_between(a: tollgate::time::Timestamp, b: tollgate::time::Timestamp) -> f64 {
    (b.as_millis() - a.as_millis()) as f64 / 86_400_000.0
}

db_test!(async fn a_stars_purchase_extends_access_once_however_often_the_payment_arrives(t) {
    let clock = ShiftedClock::new();
    let Some(w) = World::start_with(t, false, &[], fast(&clock)).await else { return };
    let tg = &w.tg;
    let ann = started(&w, "Ann").await;
    let code = users::get(&w.app.db, ann.id).await.unwrap().unwrap().referral_code;
    let bob = tg.create_user(NewUser::new("Bob").language("en")).await.unwrap();
    tg.send_text(bob.id, &format!("/start ref_{code}")).await.unwrap();
    w.screen(bob.id, "Choose an action below.").await;

    // The purchase row exists before the invoice (F7), with the price snapshot.
    let inv = stars_invoice(&w, bob.id, "1 month").await;
    let info = inv.invoice.clone().unwrap();
    assert_eq!((info.currency.as_str(), info.total_amount), ("XTR", 100));
    let purchase_id = billing::parse_payload(&info.payload).expect("our payload");
    let p = billing::purchase(&w.app.db, tollgate::domain::money::Currency::Rub, purchase_id).await.unwrap().unwrap();
    assert_eq!(p.status, billing::Status::Pending);
    assert_eq!(p.price.minor, 100);

    let before = SystemClock.now();
    let paid = tg.pay_invoice(bob.id, inv.message_id).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Paid);
    w.screen(bob.id, "Payment received").await;
    w.screen(bob.id, "Subscription URL").await;
    let until = expires_at(&w.app.db, bob.id).await;
    assert!((days_between(before, until) - 30.0).abs() < 0.01, "30 days: {until}");
    // The referrer gets 10 % of the plan's base price (149 RUB → 14.90 RUB).
    w.screen(ann.id, "A friend you invited paid").await;
    assert_eq!(users::get(&w.app.db, ann.id).await.unwrap().unwrap().balance, 1490);

    // Telegram delivers the same payment again, as a new update: nothing more happens.
    let (payload,): (String,) = on_db!(&w.app.db, p => sqlx::query_as(
        "SELECT payload FROM tg_inbox WHERE payload LIKE '%successful_payment%'"
    ).fetch_one(p).await).unwrap();
    let mut again: serde_json::Value = serde_json::from_str(&payload).unwrap();
    again["update_id"] = serde_json::json!(again["update_id"].as_i64().unwrap() + 1_000_000);
    let raw = again.to_string();
    let head = parse_head(&raw).unwrap();
    inbox::store_batch(&w.app.db, &[NewUpdate { head, raw }], clock.now()).await.unwrap();
    let start = tokio::time::Instant::now();
    while count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status <> 'done'").await > 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "the redelivery was never handled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(expires_at(&w.app.db, bob.id).await, until, "one extension");
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await, 1);
    let confirmations = tg.transcript(bob.id).await.unwrap().bot_messages()
        .filter(|m| m.text.as_deref().is_some_and(|t| t.contains("Payment received"))).count();
    assert_eq!(confirmations, 1, "one confirmation (F8)");
    assert_eq!(users::get(&w.app.db, ann.id).await.unwrap().unwrap().balance, 1490, "one reward");

    // Renewal extends from the current end, same key (docs/product.md §3.4).
    let key = access::subscription_for_user(&w.app.db, bob.id).await.unwrap().unwrap().vpn_uuid;
    let inv = stars_invoice(&w, bob.id, "3 months").await;
    tg.pay_invoice(bob.id, inv.message_id).await.unwrap();
    let start = tokio::time::Instant::now();
    while expires_at(&w.app.db, bob.id).await == until {
        assert!(start.elapsed() < Duration::from_secs(20), "the renewal never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let renewed = access::subscription_for_user(&w.app.db, bob.id).await.unwrap().unwrap();
    assert!((days_between(until, renewed.expires_at) - 90.0).abs() < 0.001);
    assert_eq!(renewed.vpn_uuid, key, "same key");
    w.stop().await;
});

/// Makes the database refuse every insert into `table` (a fault injected for one table: the
/// ledger, a payment's last write; the payments, money's first), with `why` as the error.
async fn refuse_inserts(db: &Db, table: &str, why: &str) {
    match db {
        Db::Sqlite(p) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TRIGGER {table}_down BEFORE INSERT ON {table}
                 BEGIN SELECT RAISE(ABORT, '{why}'); END"
            )))
            .execute(p)
            .await
            .unwrap();
        }
        Db::Postgres(p) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE FUNCTION {table}_down() RETURNS trigger AS $$
                 BEGIN RAISE EXCEPTION '{why}'; END $$ LANGUAGE plpgsql"
            )))
            .execute(p)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TRIGGER {table}_down BEFORE INSERT ON {table}
                 FOR EACH ROW EXECUTE FUNCTION {table}_down()"
            )))
            .execute(p)
            .await
            .unwrap();
        }
    }
}

/// Takes back [`refuse_inserts`].
async fn accept_inserts(db: &Db, table: &str) {
    let sql = match db {
        Db::Sqlite(_) => format!("DROP TRIGGER {table}_down"),
        Db::Postgres(_) => format!("DROP TRIGGER {table}_down ON {table}"),
    };
    on_db!(db, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(p).await.map(drop))
        .unwrap();
}

// docs/reliability.md C2: a payment is one business operation. When its last write fails, nothing it
// wrote before stays (the payment, the purchase's status, the subscription, its row for the
// node, the owed notice, the confirmation); the update is retried, and once the fault is gone
// the payment is applied exactly once.
db_test!(async fn a_payment_whose_last_write_fails_leaves_nothing_and_is_applied_once_on_retry(t) {
    let clock = ShiftedClock::new();
    let Some(w) = World::start_with(t, true, &[], fast(&clock)).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    let ann = started(&w, "Ann").await;
    let code = users::get(db, ann.id).await.unwrap().unwrap().referral_code;
    let bob = tg.create_user(NewUser::new("Bob").language("en")).await.unwrap();
    tg.send_text(bob.id, &format!("/start ref_{code}")).await.unwrap();
    w.screen(bob.id, "Choose an action below.").await;
    let inv = stars_invoice(&w, bob.id, "1 month").await;

    refuse_inserts(db, "balance_ledger", "ledger down (injected)").await;
    assert_eq!(tg.pay_invoice(bob.id, inv.message_id).await.unwrap().status, PaymentStatus::Paid);
    // The payment's update fails on the reward, and is retried.
    let failed_at = wait_for("two failed attempts of the payment", Duration::from_secs(20), || async {
        let row: Option<(i64, Option<String>)> = on_db!(db, p => sqlx::query_as(
            "SELECT CAST(attempts AS BIGINT), last_error FROM tg_inbox WHERE payload LIKE '%successful_payment%'"
        ).fetch_optional(p).await).unwrap();
        row.filter(|(attempts, _)| *attempts >= 2)
    })
    .await;
    assert!(failed_at.1.as_deref().unwrap_or_default().contains("ledger down"), "{failed_at:?}");
    for (what, sql) in [
        ("payments", "SELECT CAST(COUNT(*) AS BIGINT) FROM payments"),
        ("paid purchases", "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE status <> 'pending'"),
        ("subscriptions", "SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions"),
        ("node rows", "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships"),
        ("owed notices", "SELECT CAST(COUNT(*) AS BIGINT) FROM access_notices"),
        ("ledger rows", "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger"),
        ("confirmations", "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE 'pay:%'"),
    ] {
        assert_eq!(count(db, sql).await, 0, "{what} of a payment that failed");
    }
    assert_eq!(users::get(db, ann.id).await.unwrap().unwrap().balance, 0);
    let said = |m: &TranscriptMessage| m.text.as_deref().is_some_and(|t| t.contains("Payment received"));
    assert_eq!(tg.transcript(bob.id).await.unwrap().bot_messages().filter(|m| said(m)).count(), 0);

    // The fault is gone: the next attempt applies the payment, once.
    accept_inserts(db, "balance_ledger").await;
    w.screen(bob.id, "Payment received").await;
    w.screen(ann.id, "A friend you invited paid").await;
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await, 1);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE status = 'paid'").await, 1);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger").await, 1);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM access_notices").await, 1);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE desired = 'present'").await, 1);
    assert_eq!(users::get(db, ann.id).await.unwrap().unwrap().balance, 1490);
    let sub = access::subscription_for_user(db, bob.id).await.unwrap().unwrap();
    assert!((days_between(clock.now(), sub.expires_at) - 30.0).abs() < 0.01, "30 days: {}", sub.expires_at);
    assert_eq!(tg.transcript(bob.id).await.unwrap().bot_messages().filter(|m| said(m)).count(), 1);
    w.stop().await;
});

db_test!(async fn the_pre_checkout_gate_refuses_changed_prices_paused_payments_and_closed_invoices(t) {
    let clock = ShiftedClock::new();
    let Some(w) = World::start_with(t, false, &[], fast(&clock)).await else { return };
    let tg = &w.tg;
    let eve = started(&w, "Eve").await;

    // Payments switched off after the invoice was sent.
    let inv = stars_invoice(&w, eve.id, "1 month").await;
    tollgate::flags::set_committed(&w.app.db, tollgate::flags::Flag::Payments, false, tollgate::admin::audit::Actor::CommandLine, clock.now()).await.unwrap();
    let out = tg.pay_invoice(eve.id, inv.message_id).await.unwrap();
    assert_eq!(out.status, PaymentStatus::Declined);
    assert_eq!(out.error_message.as_deref(), Some("Payments are paused right now. You have not been charged."));
    tollgate::flags::set_committed(&w.app.db, tollgate::flags::Flag::Payments, true, tollgate::admin::audit::Actor::CommandLine, clock.now()).await.unwrap();

    // An invoice left open past its purchase's lifetime is closed.
    let inv = stars_invoice(&w, eve.id, "1 month").await;
    clock.advance(Duration::from_secs(2 * 3600));
    let out = tg.pay_invoice(eve.id, inv.message_id).await.unwrap();
    assert_eq!(out.status, PaymentStatus::Declined);
    assert_eq!(out.error_message.as_deref(), Some("This invoice has expired. Please create a new one from the menu."));

    // The operator changes the price and restarts: the old invoice is refused.
    let inv = stars_invoice(&w, eve.id, "1 month").await;
    let w = w
        .restart(fast(&clock), |c| c.replacen("prices = { RUB = \"149\", XTR = \"100\" }", "prices = { RUB = \"149\", XTR = \"120\" }", 1))
        .await;
    let out = w.tg.pay_invoice(eve.id, inv.message_id).await.unwrap();
    assert_eq!(out.status, PaymentStatus::Declined);
    assert_eq!(out.error_message.as_deref(), Some("The price has changed since this invoice was made. Please open the menu and buy again."));
    // Nothing was recorded for the refused ones; no access was granted.
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await, 0);
    assert!(access::subscription_for_user(&w.app.db, eve.id).await.unwrap().is_none());
    w.stop().await;
});

db_test!(async fn a_payment_is_finalized_after_its_purchase_expired_and_after_a_restart(t) {
    let clock = ShiftedClock::new();
    let gate = Gate::default();
    let Some(w) = World::start_gated(t, &[], fast(&clock), gate.clone()).await else { return };
    let tg = &w.tg;
    let kim = started(&w, "Kim").await;

    // Pre-checkout answered, then the process never gets to the payment …
    gate.hold();
    let inv = stars_invoice(&w, kim.id, "1 month").await;
    assert_eq!(tg.pay_invoice(kim.id, inv.message_id).await.unwrap().status, PaymentStatus::Paid);
    // … for two hours, long enough for the purchase to expire …
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(billing::expire_unpaid_purchases(&w.app.db, clock.now(), 100).await.unwrap(), 1);
    assert!(access::subscription_for_user(&w.app.db, kim.id).await.unwrap().is_none());
    // … and is replaced by a new one (a deploy). The payment is honoured (F1).
    let w = w.restart(fast(&clock), |c| c).await;
    w.screen(kim.id, "Payment received").await;
    let sub = access::subscription_for_user(&w.app.db, kim.id).await.unwrap().unwrap();
    assert!(sub.is_active(clock.now()));
    let (status,): (String,) = on_db!(&w.app.db, p => sqlx::query_as("SELECT status FROM purchases").fetch_one(p).await).unwrap();
    assert_eq!(status, "paid");
    w.stop().await;
});

/// docs/reliability.md F3: Lea's payment updates are lost, one after the other, each after the last
/// was recovered; the reconciler finds each in `getStarTransactions` and applies it once, with
/// one confirmation — whichever end of the list Telegram puts the new payment at.
async fn lost_updates_one_after_another(t: &TestDb, newest_first: bool) {
    let clock = ShiftedClock::new();
    let gate = Gate::default();
    let env = [("STARS_RECONCILE_INTERVAL", "10s")];
    let Some(w) = World::start_gated(t, &env, fast(&clock), gate.clone()).await else {
        return;
    };
    let tg = &w.tg;
    tg.set_star_transactions_newest_first(newest_first)
        .await
        .unwrap();
    let lea = tg
        .create_user(NewUser::new("Lea").language("ru"))
        .await
        .unwrap();
    tg.send_text(lea.id, "/start").await.unwrap();
    w.screen(lea.id, "Выберите действие ниже.").await;
    gate.lose();
    let mut confirmed = None;
    for paid in 1..=2 {
        tg.send_text(lea.id, "/buy").await.unwrap();
        let plans = w.screen(lea.id, "Выберите тариф").await;
        w.press(lea.id, &plans, "1 месяц").await;
        let pay = w.screen(lea.id, "Выберите способ оплаты").await;
        w.press(lea.id, &pay, "Telegram Stars").await;
        let inv = invoice(&w, lea.id).await;
        assert_eq!(
            tg.pay_invoice(lea.id, inv.message_id).await.unwrap().status,
            PaymentStatus::Paid
        );
        // The update is gone; within a reconcile interval the payment is found and applied.
        let filter = MessageFilter {
            text_contains: Some("Оплата получена".into()),
            after_message_id: confirmed,
            ..MessageFilter::from_bot()
        };
        let confirmation = tg
            .wait_for_message(lea.id, filter, Duration::from_secs(40))
            .await
            .unwrap();
        assert!(confirmation.text.unwrap().contains("Доступ активен до"));
        confirmed = Some(confirmation.message_id);
        assert!(
            access::subscription_for_user(&w.app.db, lea.id)
                .await
                .unwrap()
                .unwrap()
                .is_active(clock.now())
        );
        assert_eq!(
            count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await,
            paid
        );
    }
    let confirmations = tg
        .transcript(lea.id)
        .await
        .unwrap()
        .bot_messages()
        .filter(|m| {
            m.text
                .as_deref()
                .is_some_and(|t| t.contains("Оплата получена"))
        })
        .count();
    assert_eq!(confirmations, 2);
    w.stop().await;
}

db_test!(async fn a_lost_payment_update_is_finalized_by_reconciliation(t) {
    lost_updates_one_after_another(t, false).await;
});

db_test!(async fn a_lost_payment_update_is_finalized_by_reconciliation_when_telegram_lists_newest_first(t) {
    lost_updates_one_after_another(t, true).await;
});

/// A Stars top-up of 100 ⭐ → 150 RUB bought without the menu (a purchase and an invoice link
/// as the bot makes them), paid `n` times by each of `users`, a user's payments one after
/// another, the users at once.
async fn top_ups(w: &World, clock: &ShiftedClock, users: &[i64], n: usize) {
    let token = w.emu.token().to_owned();
    let pay = |user: i64| {
        let token = token.clone();
        async move {
            for _ in 0..n {
                let mut tx = w.app.db.begin().await.unwrap();
                let item = Item::TopUp {
                    credit: Money::new(15_000, Currency::Rub),
                };
                let price = Money::new(100, Currency::Xtr);
                let purchase = billing::create_purchase(
                    &mut tx,
                    user,
                    &item,
                    price,
                    Provider::Stars,
                    clock.now(),
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                let link =
                    w.tg.bot_call(
                        &token,
                        "createInvoiceLink",
                        &serde_json::json!({
                            "title": "Balance top-up",
                            "description": "150 RUB added to your balance.",
                            "payload": billing::invoice_payload(purchase.id),
                            "currency": "XTR",
                            "prices": [{ "label": "Top-up", "amount": 100 }],
                        }),
                    )
                    .await
                    .unwrap();
                let link = link.result().as_str().expect("an invoice link").to_owned();
                let out = w.tg.pay_invoice_link(user, &link).await.unwrap();
                assert_eq!(out.status, PaymentStatus::Paid, "{out:?}");
            }
        }
    };
    futures::future::join_all(users.iter().map(|u| pay(*u))).await;
}

async fn wait_for_payments(db: &Db, n: i64) {
    wait_for(
        &format!("{n} payments recorded"),
        Duration::from_secs(60),
        || async {
            (count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await == n).then_some(())
        },
    )
    .await;
}

/// docs/reliability.md F3: more than a page of payments arrives between two passes, every update lost;
/// the next pass applies each once, with one confirmation, whichever end of the list is the new
/// one. The history before them is more than a page and spans hours, so a chronological list
/// is only met at its tail and a newest-first one only at its head.
async fn lost_updates_beyond_a_page(t: &TestDb, newest_first: bool) {
    const HELD_BY: &str = "the test, between two passes";
    let clock = ShiftedClock::new();
    let gate = Gate::default();
    let env = [("STARS_RECONCILE_INTERVAL", "10s")];
    let Some(w) = World::start_gated(t, &env, fast(&clock), gate.clone()).await else {
        return;
    };
    let (tg, db) = (&w.tg, &w.app.db);
    tg.set_star_transactions_newest_first(newest_first)
        .await
        .unwrap();
    let mut users = Vec::new();
    for name in ["Ada", "Bo", "Cy"] {
        let u = tg
            .create_user(NewUser::new(name).language("en"))
            .await
            .unwrap();
        tg.send_text(u.id, "/start").await.unwrap();
        w.screen(u.id, "Choose an action below.").await;
        users.push(u.id);
    }
    gate.lose();
    // The history: a page of payments, two hours later a few more; passes record them all.
    top_ups(&w, &clock, &users, 34).await;
    tg.advance_time(7200.0).await.unwrap();
    top_ups(&w, &clock, &users, 4).await;
    wait_for_payments(db, 114).await;
    // No pass runs while 150 more payments arrive, two hours later again.
    let held = wait_for(
        "the reconciler's lease",
        Duration::from_secs(30),
        || async {
            lease::acquire(
                db,
                "stars-reconcile",
                HELD_BY,
                Duration::from_secs(600),
                clock.now(),
            )
            .await
            .unwrap()
        },
    )
    .await;
    tg.advance_time(7200.0).await.unwrap();
    top_ups(&w, &clock, &users, 50).await;
    assert_eq!(
        count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await,
        114
    );
    assert!(lease::release(db, &held, clock.now()).await.unwrap());
    wait_for_payments(db, 264).await;

    assert_eq!(
        count(
            db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE purchase_id IS NOT NULL"
        )
        .await,
        264
    );
    assert_eq!(
        count(
            db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE status = 'paid'"
        )
        .await,
        264
    );
    for user in &users {
        assert_eq!(
            users::get(db, *user).await.unwrap().unwrap().balance,
            88 * 15_000
        );
        wait_for(
            "one confirmation per payment",
            Duration::from_secs(60),
            || async {
                let confirmations = tg
                    .transcript(*user)
                    .await
                    .ok()?
                    .bot_messages()
                    .filter(|m| {
                        m.text
                            .as_deref()
                            .is_some_and(|t| t.contains("added to your balance"))
                    })
                    .count();
                assert!(
                    confirmations <= 88,
                    "{confirmations} confirmations of 88 payments"
                );
                (confirmations == 88).then_some(())
            },
        )
        .await;
    }
    w.stop().await;
}

db_test!(async fn more_than_a_page_of_lost_payments_since_the_last_pass_are_all_applied_once(t) {
    lost_updates_beyond_a_page(t, false).await;
});

db_test!(async fn more_than_a_page_of_lost_payments_since_the_last_pass_are_all_applied_once_when_telegram_lists_newest_first(t) {
    lost_updates_beyond_a_page(t, true).await;
});

// docs/reliability.md A3 for the payment provider (Telegram Stars): a `getStarTransactions` and a
// `refundStarPayment` that Telegram never answers are cut at the call deadline, and tried
// again: the lost payment is still recovered, the refund still made, each exactly once.
db_test!(async fn hanging_provider_calls_are_cut_at_the_deadline_and_tried_again(t) {
    const CALL_TIMEOUT: Duration = Duration::from_secs(2);
    let clock = ShiftedClock::new();
    let gate = Gate::default();
    let env = [("STARS_RECONCILE_INTERVAL", "10s"), ("ADMIN_IDS", "100000001")];
    let options = AppOptions { telegram_call_timeout: CALL_TIMEOUT, ..fast(&clock) };
    let Some(w) = World::start_gated(t, &env, options, gate.clone()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    let admin = tg.create_user(NewUser::new("Admin").language("en")).await.unwrap();
    assert_eq!(admin.id, 100000001);
    let eva = started(&w, "Eva").await;

    // The payment's update is lost, and the next list of Stars transactions hangs.
    gate.lose();
    let inv = stars_invoice(&w, eva.id, "1 month").await;
    tg.inject_fault("getStarTransactions", FaultKind::Hang, 1).await.unwrap();
    let paid = tg.pay_invoice(eva.id, inv.message_id).await.unwrap();
    let charge = paid.telegram_payment_charge_id.unwrap();
    let fired = |n: u64| async move {
        wait_for("the hang to be hit", Duration::from_secs(30), || async {
            (tg.counters().await.ok()?.faults_fired >= n).then_some(Instant::now())
        })
        .await
    };
    let hung = fired(1).await;
    w.screen(eva.id, "Payment received").await;
    // The reconciler lists one call at a time: a later list was only made because the hung
    // one was cut.
    let lists = tg.counters().await.unwrap().calls.get("getStarTransactions").copied();
    assert!(lists >= Some(2), "the hung list and a later one: {lists:?} calls");
    assert!(hung.elapsed() >= CALL_TIMEOUT, "the hanging list was waited out, not refused");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await, 1);

    // The refund call hangs: cut, and the admin's command is handled again.
    tg.inject_fault("refundStarPayment", FaultKind::Hang, 1).await.unwrap();
    tg.send_text(admin.id, &format!("/refund {charge}")).await.unwrap();
    let hung = fired(2).await;
    w.screen(admin.id, "Refund of").await;
    assert!(hung.elapsed() >= CALL_TIMEOUT, "the hanging refund was waited out, not refused");
    assert!(
        hung.elapsed() < Duration::from_secs(15),
        "cut by the call deadline, not by the handler's (30 s): {:?}",
        hung.elapsed()
    );
    w.screen(eva.id, "Your payment was refunded").await;
    let (attempts,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(attempts AS BIGINT) FROM tg_inbox WHERE payload LIKE '%/refund%'"
    ).fetch_one(p).await).unwrap();
    assert_eq!(attempts, 2, "cut once, then done");
    let counters = tg.counters().await.unwrap();
    assert_eq!(counters.calls.get("refundStarPayment"), Some(&2), "{counters:?}");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'refunded'").await, 1);
    let refunded = tg.transcript(eva.id).await.unwrap().bot_messages()
        .filter(|m| m.text.as_deref().is_some_and(|t| t.contains("refunded"))).count();
    assert_eq!(refunded, 1);
    assert!(!access::subscription_for_user(db, eva.id).await.unwrap().unwrap().is_active(clock.now()));
    w.stop().await;
});

db_test!(async fn stars_top_ups_credit_the_balance_and_a_refund_takes_back_what_it_bought(t) {
    let clock = ShiftedClock::new();
    // The first emulated user is the admin.
    let env = [("ADMIN_IDS", "100000001")];
    let Some(w) = World::start_with(t, false, &env, fast(&clock)).await else { return };
    let tg = &w.tg;
    let admin = tg.create_user(NewUser::new("Admin").language("en")).await.unwrap();
    assert_eq!(admin.id, 100000001);
    let max = started(&w, "Max").await;

    // Top up 100 Stars → 150 RUB on the balance; the history shows it.
    tg.send_text(max.id, "/balance").await.unwrap();
    let bal = w.screen(max.id, "Balance:").await;
    assert!(bal.text.as_deref().unwrap().contains("No transactions yet."));
    w.press(max.id, &bal, "⭐ 100").await;
    let inv = invoice(&w, max.id).await;
    assert_eq!(inv.invoice.as_ref().unwrap().total_amount, 100);
    tg.pay_invoice(max.id, inv.message_id).await.unwrap();
    w.screen(max.id, "added to your balance").await;
    assert_eq!(users::get(&w.app.db, max.id).await.unwrap().unwrap().balance, 15_000);
    tg.send_text(max.id, "/balance").await.unwrap();
    w.screen(max.id, "top-up").await;

    // A plan bought with Stars, then refunded by the admin: the days go back.
    let inv = stars_invoice(&w, max.id, "1 month").await;
    let charge = tg.pay_invoice(max.id, inv.message_id).await.unwrap().telegram_payment_charge_id.unwrap();
    w.screen(max.id, "Payment received").await;
    assert!(access::subscription_for_user(&w.app.db, max.id).await.unwrap().unwrap().is_active(clock.now()));

    tg.send_text(max.id, &format!("/refund {charge}")).await.unwrap();
    w.screen(max.id, "This command is for admins.").await;
    tg.send_text(admin.id, "/start").await.unwrap();
    tg.send_text(admin.id, "/refund").await.unwrap();
    w.screen(admin.id, "Usage: /refund").await;
    tg.send_text(admin.id, "/refund no-such-charge").await.unwrap();
    w.screen(admin.id, "No payment with charge id no-such-charge").await;
    tg.send_text(admin.id, &format!("/refund {charge}")).await.unwrap();
    w.screen(admin.id, "Refund of").await;
    w.screen(max.id, "Your payment was refunded").await;
    let sub = access::subscription_for_user(&w.app.db, max.id).await.unwrap().unwrap();
    assert!(!sub.is_active(clock.now()), "30 of 30 days taken back");
    // Again: Telegram says CHARGE_ALREADY_REFUNDED; nothing changes twice.
    tg.send_text(admin.id, &format!("/refund {charge}")).await.unwrap();
    let start = tokio::time::Instant::now();
    while tg.transcript(admin.id).await.unwrap().bot_messages().filter(|m| m.text.as_deref().is_some_and(|t| t.contains("Refund of"))).count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refunds = tg.transcript(max.id).await.unwrap().bot_messages().filter(|m| m.text.as_deref().is_some_and(|t| t.contains("refunded"))).count();
    assert_eq!(refunds, 1);
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'refunded'").await, 1);

    // Pay a plan from the balance (149 of 150 RUB): one transaction, one debit.
    tg.send_text(max.id, "/buy").await.unwrap();
    let plans = w.screen(max.id, "Choose a plan").await;
    w.press(max.id, &plans, "1 month").await;
    let pay = w.screen(max.id, "Choose how to pay").await;
    w.press(max.id, &pay, "From balance").await;
    w.screen(max.id, "from your balance").await;
    assert_eq!(users::get(&w.app.db, max.id).await.unwrap().unwrap().balance, 100);
    // The same pay button again: already paid, nothing debited.
    let data = pay.button_data("From balance").expect("the balance button");
    w.forge(max.id, pay.message_id, &data).await;
    w.screen(max.id, "Access").await;
    assert_eq!(users::get(&w.app.db, max.id).await.unwrap().unwrap().balance, 100);
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE reason = 'purchase'").await, 1);
    // The console's all-time revenue, kept as running totals, agrees with the payments after
    // the top-ups and the refund.
    let totals = billing::stats::revenue_since(&w.app.db, None).await.unwrap();
    let summed: Vec<(String, String, i64, i64)> = on_db!(&w.app.db, p => sqlx::query_as(
        "SELECT provider, currency, CAST(SUM(amount) AS BIGINT), CAST(COUNT(*) AS BIGINT) FROM payments
         WHERE status = 'captured' GROUP BY provider, currency ORDER BY provider, currency"
    ).fetch_all(p).await).unwrap();
    assert!(!summed.is_empty());
    let totals: Vec<(String, String, i64, i64)> = totals.into_iter().map(|r| (r.provider, r.currency, r.amount, r.payments)).collect();
    assert_eq!(totals, summed);
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'refunded'").await, 1, "the refund is part of what was summed");
    w.stop().await;
});

async fn ledger_rows(db: &Db, user: i64, reason: &str) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE user_id = $1 AND reason = $2"
    ).bind(user).bind(reason).fetch_one(p).await)
    .unwrap()
}

// F10: one press is one purchase, however often it arrives; a purchase chosen again is
// another. Every screen edits the same message, so the message cannot tell them apart: the
// button carries the update that drew its pay screen.
db_test!(async fn the_same_plan_bought_twice_from_one_message_is_paid_twice_and_a_double_tap_once(t) {
    let clock = ShiftedClock::new();
    let Some(w) = World::start_with(t, false, &[], fast(&clock)).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    let max = started(&w, "Max").await;
    // 500 RUB: three months at 149 and 53 left.
    let mut tx = db.begin().await.unwrap();
    ledger::change(&mut tx, max.id, 500 * 100, Reason::Admin, "seed", clock.now()).await.unwrap();
    tx.commit().await.unwrap();

    tg.send_text(max.id, "/buy").await.unwrap();
    let plans = w.screen(max.id, "Choose a plan").await;
    let msg = plans.message_id;
    w.press(max.id, &plans, "1 month").await;
    let pay = w.screen_on(max.id, msg, "Choose how to pay").await;
    w.press(max.id, &pay, "From balance").await;
    let paid = w.screen_on(max.id, msg, "from your balance").await;
    let first = expires_at(db, max.id).await;
    assert_eq!(users::get(db, max.id).await.unwrap().unwrap().balance, 500 * 100 - 149 * 100);

    // Menu → Buy → 1 month → From balance again, on the same message: a second purchase.
    let choose_again = |from: TranscriptMessage| {
        let w = &w;
        async move {
            w.press(max.id, &from, "Menu").await;
            let menu = w.screen_on(max.id, msg, "Choose an action below.").await;
            w.press(max.id, &menu, "Buy / Renew").await;
            let plans = w.screen_on(max.id, msg, "Choose a plan").await;
            w.press(max.id, &plans, "1 month").await;
            w.screen_on(max.id, msg, "Choose how to pay").await
        }
    };
    let pay = choose_again(paid).await;
    w.press(max.id, &pay, "From balance").await;
    let paid = w.screen_on(max.id, msg, "from your balance").await;
    assert_eq!(users::get(db, max.id).await.unwrap().unwrap().balance, 500 * 100 - 2 * 149 * 100, "debited twice");
    assert_eq!(ledger_rows(db, max.id, "purchase").await, 2);
    assert_eq!(expires_at(db, max.id).await, first.plus(DAY * 30), "extended twice");

    // A double tap: the third pay screen's button pressed twice before the first press is
    // handled, then the press delivered once more under a new update id.
    let pay = choose_again(paid).await;
    let data = pay.button_data("From balance").expect("the balance button");
    handled(db, &double_tap(tg, max.id, msg, &data).await).await;
    let (raw,): (String,) = on_db!(db, p => sqlx::query_as(
        "SELECT payload FROM tg_inbox WHERE payload LIKE '%pay:bal:%' ORDER BY update_id DESC LIMIT 1"
    ).fetch_one(p).await).unwrap();
    assert!(raw.contains(&data), "{raw}");
    let mut again: serde_json::Value = serde_json::from_str(&raw).unwrap();
    again["update_id"] = serde_json::json!(again["update_id"].as_i64().unwrap() + 1_000_000);
    let redelivered = again["update_id"].as_i64().unwrap();
    let raw = again.to_string();
    let head = parse_head(&raw).unwrap();
    inbox::store_batch(db, &[NewUpdate { head, raw }], clock.now()).await.unwrap();
    handled(db, &[redelivered]).await;
    assert_eq!(users::get(db, max.id).await.unwrap().unwrap().balance, 500 * 100 - 3 * 149 * 100, "one debit for the double tap");
    assert_eq!(ledger_rows(db, max.id, "purchase").await, 3);
    assert_eq!(expires_at(db, max.id).await, first.plus(DAY * 60), "one extension for the double tap");
    w.stop().await;
});

db_test!(async fn card_payments_take_the_same_path(t) {
    let clock = ShiftedClock::new();
    let env = [("PAYMENT_PROVIDER_TOKEN", telegram_emulator::config::DEFAULT_PROVIDER_TOKEN)];
    let Some(w) = World::start_with(t, false, &env, fast(&clock)).await else { return };
    let tg = &w.tg;
    let ola = tg.create_user(NewUser::new("Ola").language("en")).await.unwrap();
    let inv = plan_invoice(&w, ola.id, "1 month", "Card").await;
    let info = inv.invoice.clone().unwrap();
    assert_eq!((info.currency.as_str(), info.total_amount), ("RUB", 14_900));
    // The provider token reached Telegram but was never stored (the sender fills it in).
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE payload LIKE '%emulator-provider-token%'").await, 0);
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE method = 'sendInvoice' AND payload LIKE '%$PAYMENT_PROVIDER_TOKEN%'").await, 1);
    assert_eq!(tg.pay_invoice(ola.id, inv.message_id).await.unwrap().status, PaymentStatus::Paid);
    w.screen(ola.id, "Payment received").await;
    assert_eq!(count(&w.app.db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE provider = 'card' AND currency = 'RUB' AND amount = 14900").await, 1);
    w.stop().await;
});

// Two balance payments racing in separate transactions: the balance never goes negative,
// one reference is never paid twice.
db_test!(async fn racing_balance_payments_never_overdraw_or_pay_twice(t) {
    let db = &t.db;
    let now = SystemClock.now();
    let catalog = crate::common::nodes::catalog(&[], &[]);
    let plan = catalog.plans.iter().find(|p| p.id == "m1").unwrap().clone();
    let base = catalog.bot.base_currency;
    let nodes = Arc::new(tollgate::nodes::EnabledNodes::new(Vec::<String>::new()));
    let from = users::TelegramUser { id: 7, is_bot: false, first_name: "Sam".into(), last_name: None, username: None, language_code: None };
    let mut tx = db.begin().await.unwrap();
    users::touch(&mut tx, &from, &catalog.bot.languages, now).await.unwrap();
    // Enough for one month, not two.
    ledger::change(&mut tx, 7, 200 * 100, Reason::Admin, "seed", now).await.unwrap();
    tx.commit().await.unwrap();

    async fn attempt(db: Db, nodes: Arc<tollgate::nodes::EnabledNodes>, plan: tollgate::config::catalog::Plan, base: tollgate::domain::money::Currency, reference: String) -> &'static str {
        for _ in 0..50 {
            let mut tx = db.begin().await.unwrap();
            let charge = BalanceCharge { user_id: 7, plan: &plan, reason: Reason::Purchase, reference: &reference };
            match billing::pay_plan_from_balance(&mut tx, &nodes, base, &charge, SystemClock.now()).await {
                Ok(r) => {
                    tx.commit().await.unwrap();
                    return match r {
                        BalancePaid::Paid { .. } => "paid",
                        BalancePaid::AlreadyPaid => "already",
                        BalancePaid::Short { .. } => "short",
                        BalancePaid::PromoRefused(_) => "refused",
                    };
                }
                Err(billing::BillingError::Raced) => continue,
                Err(billing::BillingError::Database(e)) if tollgate::store::classify(&e) == tollgate::store::Failure::Unavailable => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no outcome after 50 tries")
    }
    // Different buttons: one is paid, the other is short.
    let a = tokio::spawn(attempt(db.clone(), nodes.clone(), plan.clone(), base, "r:a".into()));
    let b = tokio::spawn(attempt(db.clone(), nodes.clone(), plan.clone(), base, "r:b".into()));
    let mut outcomes = vec![a.await.unwrap(), b.await.unwrap()];
    outcomes.sort();
    assert_eq!(outcomes, ["paid", "short"]);
    assert_eq!(users::get(db, 7).await.unwrap().unwrap().balance, 200 * 100 - 149 * 100);
    // The same button tapped four times at once, with money for all: paid once.
    let mut tx = db.begin().await.unwrap();
    ledger::change(&mut tx, 7, 1000 * 100, Reason::Admin, "seed-2", now).await.unwrap();
    tx.commit().await.unwrap();
    let tasks: Vec<_> = (0..4).map(|_| tokio::spawn(attempt(db.clone(), nodes.clone(), plan.clone(), base, "r:same".into()))).collect();
    let mut paid = 0;
    for t in tasks {
        if t.await.unwrap() == "paid" {
            paid += 1;
        }
    }
    assert_eq!(paid, 1);
    assert_eq!(users::get(db, 7).await.unwrap().unwrap().balance, 1051 * 100 - 149 * 100);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE reason = 'purchase'").await, 2);
    let sub = access::subscription_for_user(db, 7).await.unwrap().unwrap();
    assert!((days_between(now, sub.expires_at) - 60.0).abs() < 0.01, "two months bought in all");
});

// Renewal math at the boundaries: `max(expires_at, now) + days`, same key.
db_test!(async fn renewal_extends_from_the_later_of_expiry_and_now(t) {
    let db = &t.db;
    let catalog = crate::common::nodes::catalog(&[], &[]);
    let nodes = Arc::new(tollgate::nodes::EnabledNodes::new(Vec::<String>::new()));
    let plan = catalog.plans.iter().find(|p| p.id == "m1").unwrap().clone();
    let now = SystemClock.now();
    for (user, offset_ms) in [(11_i64, 5 * 86_400_000_i64), (12, -1), (13, -90 * 86_400_000)] {
        let from = users::TelegramUser { id: user, is_bot: false, first_name: "R".into(), last_name: None, username: None, language_code: None };
        let mut tx = db.begin().await.unwrap();
        users::touch(&mut tx, &from, &catalog.bot.languages, now).await.unwrap();
        ledger::change(&mut tx, user, 149 * 100, Reason::Admin, &format!("seed:{user}"), now).await.unwrap();
        // A first month, bought long ago enough that it ends at now + offset.
        let start = tollgate::time::Timestamp::from_millis(now.as_millis() + offset_ms - 30 * 86_400_000);
        let grant = access::Grant::days(access::Kind::Paid, 30, Some("m1"));
        access::grant_or_extend(&mut tx, &nodes, user, &grant, start).await.unwrap();
        tx.commit().await.unwrap();
        let before = access::subscription_for_user(db, user).await.unwrap().unwrap();
        assert_eq!(before.expires_at.as_millis(), now.as_millis() + offset_ms);
        let mut tx = db.begin().await.unwrap();
        let charge = BalanceCharge { user_id: user, plan: &plan, reason: Reason::Purchase, reference: &format!("renew:{user}") };
        let r = billing::pay_plan_from_balance(&mut tx, &nodes, catalog.bot.base_currency, &charge, now).await.unwrap();
        tx.commit().await.unwrap();
        let BalancePaid::Paid { subscription, .. } = r else { panic!("{r:?}") };
        let base = if offset_ms > 0 { before.expires_at } else { now };
        assert_eq!(subscription.expires_at, base.plus(DAY * 30), "user {user}");
        assert_eq!(subscription.vpn_uuid, before.vpn_uuid, "same key for user {user}");
    }
});

// F6: a payment that names no purchase of its payer, or pays less than the price, is kept
// and put in front of a human — never applied, never lost.
db_test!(async fn underpaid_or_foreign_payments_are_kept_for_review_not_applied(t) {
    let db = &t.db;
    let catalog = crate::common::nodes::catalog(&[], &[]);
    let texts = tollgate::i18n::Texts::load().unwrap();
    let nodes = tollgate::nodes::EnabledNodes::new(Vec::<String>::new());
    let now = SystemClock.now();
    let mut tx = db.begin().await.unwrap();
    for id in [21_i64, 22] {
        let from = users::TelegramUser { id, is_bot: false, first_name: "P".into(), last_name: None, username: None, language_code: None };
        users::touch(&mut tx, &from, &catalog.bot.languages, now).await.unwrap();
    }
    let item = billing::Item::Plan { plan_id: "m1".into(), days: 30 };
    let price = tollgate::domain::money::Money::new(100, tollgate::domain::money::Currency::Xtr);
    let p = billing::create_purchase(&mut tx, 21, &item, price, billing::Provider::Stars, now).await.unwrap();
    tx.commit().await.unwrap();
    let ctx = billing::Context { catalog: &catalog, texts: &texts, nodes: &nodes, admins: &[99] };
    let payload = billing::invoice_payload(p.id);
    let cases = [
        ("under", 21, 99, "XTR", payload.clone(), "costs 100, paid 99"),
        ("foreign", 22, 100, "XTR", payload.clone(), "belongs to user 21, paid by 22"),
        ("forged", 21, 100, "XTR", "purchase:999999".to_owned(), "names no purchase"),
        ("currency", 21, 100, "USD", payload.clone(), "priced in XTR, paid in USD"),
    ];
    for (charge, user, amount, currency, payload, reason) in cases {
        let pay = billing::Captured { provider: billing::Provider::Stars, charge_id: charge.into(), user_id: user, currency: currency.into(), total_amount: amount, payload, raw: None };
        let mut tx = db.begin().await.unwrap();
        let payer = users::get_in(&mut tx, user).await.unwrap();
        let f = billing::finalize(&mut tx, &ctx, &pay, payer.as_ref(), now).await.unwrap();
        tx.commit().await.unwrap();
        let billing::Finalized::Applied { effect: billing::Effect::Review { reason: why }, .. } = &f else { panic!("{charge}: {f:?}") };
        assert!(why.contains(reason), "{charge}: the review says {why:?}");
    }
    // The payer's own purchase, paid in full, from a payer the caller found no row for:
    // reviewed too.
    let pay = billing::Captured { provider: billing::Provider::Stars, charge_id: "unregistered".into(), user_id: 21, currency: "XTR".into(), total_amount: 100, payload: payload.clone(), raw: None };
    let mut tx = db.begin().await.unwrap();
    let f = billing::finalize(&mut tx, &ctx, &pay, None, now).await.unwrap();
    tx.commit().await.unwrap();
    let billing::Finalized::Applied { effect: billing::Effect::Review { reason: why }, .. } = &f else { panic!("unregistered: {f:?}") };
    assert!(why.contains("user 21 is not registered"), "the review says {why:?}");
    assert!(access::subscription_for_user(db, 21).await.unwrap().is_none());
    assert!(access::subscription_for_user(db, 22).await.unwrap().is_none());
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await, 5, "every payment kept");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE purchase_id IS NOT NULL").await, 0, "none tied to the purchase");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE chat_id = 99").await, 5, "the admin hears of each");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE status = 'pending'").await, 1, "the purchase stays unpaid");
    // An overpayment is accepted, tied to its purchase, which is paid.
    let pay = billing::Captured { provider: billing::Provider::Stars, charge_id: "over".into(), user_id: 21, currency: "XTR".into(), total_amount: 150, payload, raw: None };
    let mut tx = db.begin().await.unwrap();
    let payer = users::get_in(&mut tx, 21).await.unwrap();
    let f = billing::finalize(&mut tx, &ctx, &pay, payer.as_ref(), now).await.unwrap();
    tx.commit().await.unwrap();
    assert!(f.access_changed(), "{f:?}");
    let tied: Option<i64> = on_db!(db, c => sqlx::query_scalar("SELECT purchase_id FROM payments WHERE provider_payment_id = 'over'").fetch_one(c).await).unwrap();
    assert_eq!(tied, Some(p.id), "the overpayment pays the purchase");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE status = 'paid' AND paid_at IS NOT NULL").await, 1, "the purchase is paid");
});

db_test!(async fn the_sender_flags_and_subscription_are_read_together_as_stored(t) {
    let db = &t.db;
    let now = SystemClock.now();
    let languages = crate::common::nodes::catalog(&[], &[]).bot.languages;
    assert_eq!(users::sender(db, 8).await.unwrap(), None, "not registered");
    let mut tx = db.begin().await.unwrap();
    let from = users::TelegramUser { id: 8, is_bot: false, first_name: "Flo".into(), last_name: None, username: None, language_code: None };
    users::touch(&mut tx, &from, &languages, now).await.unwrap();
    tx.commit().await.unwrap();
    flags::set_committed(db, Flag::Payments, false, tollgate::admin::audit::Actor::CommandLine, now).await.unwrap();
    flags::set_committed(db, Flag::Maintenance, true, tollgate::admin::audit::Actor::CommandLine, now).await.unwrap();

    let read = users::sender(db, 8).await.unwrap().unwrap();
    assert_eq!(users::sender(db, 9).await.unwrap(), None);
    assert_eq!(Some(read.user), users::get(db, 8).await.unwrap());
    assert_eq!(read.subscription, None, "no subscription yet");
    assert_eq!(read.flags, flags::snapshot(db).await.unwrap());
    let values: Vec<(Flag, bool)> = Flag::ALL.iter().map(|f| (*f, read.flags.get(*f))).collect();
    assert_eq!(
        values,
        vec![
            (Flag::Payments, false),
            (Flag::Trials, true),
            (Flag::AutoRenewal, true),
            (Flag::Broadcasts, true),
            (Flag::Maintenance, true),
        ],
        "set flags as stored, the others at their defaults"
    );

    // With a subscription (a plan's, so every nullable column is set but `revoked_at`), and
    // then revoked (all set).
    let nodes = tollgate::nodes::EnabledNodes::default();
    let mut tx = db.begin().await.unwrap();
    let grant = access::Grant::days(access::Kind::Paid, 30, Some("m1"));
    let granted = access::grant_or_extend(&mut tx, &nodes, 8, &grant, now).await.unwrap();
    tx.commit().await.unwrap();
    let stored = access::subscription_for_user(db, 8).await.unwrap();
    assert_eq!(stored.as_ref(), Some(&granted.subscription));
    assert_eq!(users::sender(db, 8).await.unwrap().unwrap().subscription, stored);
    let mut tx = db.begin().await.unwrap();
    let revoked = access::revoke(&mut tx, granted.subscription.id, now).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    tx.commit().await.unwrap();
    assert_eq!(users::sender(db, 8).await.unwrap().unwrap().subscription, Some(revoked));

    // The pending question comes along (what a button or a command leaves), and goes with it.
    assert_eq!(read.question, None, "no question yet");
    let mut tx = db.begin().await.unwrap();
    tollgate::admin::prompts::ask(&mut tx, 8, "rc:edit", now).await.unwrap();
    tx.commit().await.unwrap();
    let asked = tollgate::admin::prompts::pending(db, 8, now).await.unwrap();
    assert!(asked.is_some());
    assert_eq!(users::sender(db, 8).await.unwrap().unwrap().question, asked);
    let mut tx = db.begin().await.unwrap();
    tollgate::admin::prompts::clear(&mut tx, 8).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(users::sender(db, 8).await.unwrap().unwrap().question, None);
});

// F1, B5: money taken is never given up on. With the default retry budget (5 attempts), a
// Stars and a card payment whose finalization fails for longer than that stay pending — not
// dead-lettered — the admins are told once each, and both are applied exactly once when the
// fault clears.
db_test!(async fn a_payment_failing_past_the_retry_budget_is_never_dead_lettered_and_applied_once_after(t) {
    let clock = ShiftedClock::new();
    let env = [
        ("PAYMENT_PROVIDER_TOKEN", telegram_emulator::config::DEFAULT_PROVIDER_TOKEN),
        ("ADMIN_IDS", "100000001"),
    ];
    let options = AppOptions {
        clock: Arc::new(clock.clone()),
        per_chat_interval: Duration::from_millis(10),
        handler_retry_base: Duration::from_millis(50),
        ..AppOptions::default()
    };
    assert_eq!(options.handler_max_attempts, 5, "the default budget");
    let Some(w) = World::start_with(t, false, &env, options).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    let admin = tg.create_user(NewUser::new("Admin").language("en")).await.unwrap();
    assert_eq!(admin.id, 100000001);
    tg.send_text(admin.id, "/start").await.unwrap();
    w.screen(admin.id, "Choose an action below.").await;
    let sam = tg.create_user(NewUser::new("Sam").language("en")).await.unwrap();
    let ola = tg.create_user(NewUser::new("Ola").language("en")).await.unwrap();
    let stars = stars_invoice(&w, sam.id, "1 month").await;
    let card = plan_invoice(&w, ola.id, "1 month", "Card").await;

    refuse_inserts(db, "payments", "payments refused (injected)").await;
    assert_eq!(tg.pay_invoice(sam.id, stars.message_id).await.unwrap().status, PaymentStatus::Paid);
    assert_eq!(tg.pay_invoice(ola.id, card.message_id).await.unwrap().status, PaymentStatus::Paid);
    // Both go past the budget of 5 and are still pending, never dead.
    wait_for("both payments past the retry budget", Duration::from_secs(60), || async {
        let rows: Vec<(String, i64, Option<String>)> = on_db!(db, p => sqlx::query_as(
            "SELECT status, CAST(attempts AS BIGINT), last_error FROM tg_inbox WHERE kind = 'payment'"
        ).fetch_all(p).await).unwrap();
        for (status, _, error) in &rows {
            assert_eq!(status, "pending", "a payment left the inbox while failing: {rows:?}");
            // A claim's first attempt has no error yet; every failure is the injected one.
            assert!(error.as_deref().is_none_or(|e| e.contains("payments refused")), "{rows:?}");
        }
        (rows.len() == 2 && rows.iter().all(|(_, attempts, _)| *attempts >= 7)).then_some(())
    })
    .await;
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status = 'dead'").await, 0);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await, 0);
    // One alert per payment, however many attempts followed.
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE 'alert:payment-stuck:%'").await, 2);
    w.screen(admin.id, "it is retried every 60 s at most until it is applied").await;

    // The fault clears: each is applied once, with one confirmation.
    accept_inserts(db, "payments").await;
    w.screen(sam.id, "Payment received").await;
    w.screen(ola.id, "Payment received").await;
    wait_for("both payment updates done", Duration::from_secs(30), || async {
        (count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE kind = 'payment' AND status = 'done'").await == 2).then_some(())
    })
    .await;
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments").await, 2);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE status = 'paid'").await, 2);
    for user in [sam.id, ola.id] {
        let sub = access::subscription_for_user(db, user).await.unwrap().unwrap();
        assert!((days_between(clock.now(), sub.expires_at) - 30.0).abs() < 0.01, "30 days for {user}: {}", sub.expires_at);
        let said = tg.transcript(user).await.unwrap().bot_messages()
            .filter(|m| m.text.as_deref().is_some_and(|t| t.contains("Payment received"))).count();
        assert_eq!(said, 1, "one confirmation for {user}");
    }
    w.stop().await;
});

// F6, H2: a payment that can never apply on its own is kept for review, and an admin settles it
// from Telegram: `/payment <charge id>` shows it; Apply gives the payer what the named purchase
// sells (once, however often pressed); Refund gives Stars back. Nobody else can do either.
db_test!(async fn an_admin_applies_or_refunds_a_payment_kept_for_review_from_telegram(t) {
    let clock = ShiftedClock::new();
    let env = [("ADMIN_IDS", "100000001")];
    let gate = Gate::default();
    let Some(w) = World::start_gated(t, &env, fast(&clock), gate.clone()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    let admin = tg.create_user(NewUser::new("Admin").language("en")).await.unwrap();
    assert_eq!(admin.id, 100000001);
    tg.send_text(admin.id, "/start").await.unwrap();
    w.screen(admin.id, "Choose an action below.").await;
    // Pays `inv`; while its payment waits behind the gate, the purchase's price snapshot is
    // raised, so the payment that arrives pays too little for it.
    let underpay = |inv: TranscriptMessage, user: i64| {
        let (w, gate) = (&w, gate.clone());
        async move {
            let purchase = billing::parse_payload(&inv.invoice.clone().unwrap().payload).unwrap();
            gate.hold();
            let charge = w.tg.pay_invoice(user, inv.message_id).await.unwrap().telegram_payment_charge_id.unwrap();
            on_db!(&w.app.db, p => sqlx::query("UPDATE purchases SET amount = 500 WHERE id = $1").bind(purchase).execute(p).await.map(drop)).unwrap();
            gate.open();
            (purchase, charge)
        }
    };
    let kim = started(&w, "Kim").await;

    // Kim's invoice, paid while the price snapshot says more than was paid: underpaid.
    let inv = stars_invoice(&w, kim.id, "1 month").await;
    let (purchase_id, charge) = underpay(inv, kim.id).await;
    w.screen(kim.id, "it needs a manual check").await;
    let alert = w.screen(admin.id, "needs review").await;
    assert!(alert.text.as_deref().unwrap().contains(&format!("/payment {charge}")), "{:?}", alert.text);
    assert!(access::subscription_for_user(db, kim.id).await.unwrap().is_none());

    // Not for users: the command and a forged Apply both change nothing.
    tg.send_text(kim.id, &format!("/payment {charge}")).await.unwrap();
    w.screen(kim.id, "This command is for admins.").await;
    let (payment_id,): (i64,) = on_db!(db, p => sqlx::query_as("SELECT id FROM payments").fetch_one(p).await).unwrap();
    let menu = w.last(kim.id).await;
    w.forge(kim.id, menu.message_id, &format!("adm:pay:apply:{payment_id}")).await;
    wait_for("the forged press handled", Duration::from_secs(20), || async {
        (count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status <> 'done'").await == 0).then_some(())
    })
    .await;
    assert!(access::subscription_for_user(db, kim.id).await.unwrap().is_none(), "a forged Apply applied");

    // The admin: usage, unknown, then the payment with Apply and Refund.
    tg.send_text(admin.id, "/payment").await.unwrap();
    w.screen(admin.id, "Usage: /payment").await;
    tg.send_text(admin.id, "/payment nope").await.unwrap();
    w.screen(admin.id, "No payment with charge id nope").await;
    tg.send_text(admin.id, &format!("/payment {charge}")).await.unwrap();
    let card = w.screen(admin.id, "Kept for review").await;
    let text = card.text.clone().unwrap();
    assert!(text.contains(&charge) && text.contains("costs 500, paid 100"), "{text}");
    let apply = card.button_data("Apply to purchase").expect("an Apply button");
    assert!(card.button_data("Refund").is_some(), "a Refund button");
    // Pressed twice at once: applied once.
    handled(db, &double_tap(tg, admin.id, card.message_id, &apply).await).await;
    w.screen(kim.id, "Payment received").await;
    let sub = access::subscription_for_user(db, kim.id).await.unwrap().unwrap();
    assert!((days_between(clock.now(), sub.expires_at) - 30.0).abs() < 0.01, "30 days: {}", sub.expires_at);
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases WHERE status = 'paid'").await, 1);
    let tied: Option<i64> = on_db!(db, p => sqlx::query_scalar("SELECT purchase_id FROM payments").fetch_one(p).await).unwrap();
    assert_eq!(tied, Some(purchase_id));
    let said = tg.transcript(kim.id).await.unwrap().bot_messages()
        .filter(|m| m.text.as_deref().is_some_and(|t| t.contains("Payment received"))).count();
    assert_eq!(said, 1, "one confirmation");
    let settled = w.screen_on(admin.id, card.message_id, "Applied to purchase").await;
    assert!(settled.button_data("Apply to purchase").is_none(), "no Apply once applied");

    // A second kept payment, refunded: Stars go back, nothing is granted.
    let inv = stars_invoice(&w, kim.id, "1 month").await;
    let until = expires_at(db, kim.id).await;
    let (_, charge) = underpay(inv, kim.id).await;
    wait_for("the second payment's alert", Duration::from_secs(20), || async {
        let t = tg.transcript(admin.id).await.unwrap();
        t.bot_messages().any(|m| m.text.as_deref().is_some_and(|x| x.contains(&charge) && x.contains("needs review"))).then_some(())
    })
    .await;
    tg.send_text(admin.id, &format!("/payment {charge}")).await.unwrap();
    let card = wait_for("the second payment's screen", Duration::from_secs(20), || async {
        let t = tg.transcript(admin.id).await.unwrap();
        t.bot_messages().filter(|m| m.text.as_deref().is_some_and(|x| x.contains(&charge) && x.contains("Kept for review"))).last().cloned()
    })
    .await;
    // Refund asks first; Confirm refunds, with the admin's audit row.
    w.press(admin.id, &card, "Refund").await;
    let confirm = w.screen_on(admin.id, card.message_id, "Refund payment").await;
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'refunded'").await, 0, "refunded before the confirmation");
    w.press(admin.id, &confirm, "Confirm").await;
    w.screen_on(admin.id, card.message_id, "Refunded.").await;
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'refunded'").await, 1);
    let audited: i64 = on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE actor = $1 AND target_user = $2 AND action IN ('apply-payment', 'refund')"
    ).bind(admin.id).bind(kim.id).fetch_one(p).await).unwrap();
    assert_eq!(audited, 2, "the Apply and the Refund are in the audit log");
    // Telegram has it refunded: asking again is refused as already done.
    let again = tg.bot_call(w.emu.token(), "refundStarPayment", &serde_json::json!({ "user_id": kim.id, "telegram_payment_charge_id": charge })).await.unwrap();
    assert!(again.body.to_string().contains("CHARGE_ALREADY_REFUNDED"), "{:?}", again.body);
    assert_eq!(expires_at(db, kim.id).await, until, "a refunded review payment grants nothing");
    w.stop().await;
});
