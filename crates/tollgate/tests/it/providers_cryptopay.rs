//! docs/reliability.md F10–F13: Crypto Pay end to end against the payment emulator — the
//! payment page, the signed webhook (once however often, refused when forged), the watcher
//! that finds lost webhooks, an API that fails or hangs at creation, late and underpaid
//! payments.

use std::time::Duration;

use payment_emulator::{FaultKind, InvoiceStatus, NotificationState, PayOptions, Provider};
use tollgate::access;
use tollgate::time::ShiftedClock;

use crate::common::payments::shop_options;
use crate::common::payments::{ADMIN, Shop, count, messages_with, url_button};
use crate::common::wait_for;
use crate::db_test;

const PAYMENTS: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE provider = 'crypto'";
const CONFIRMED: &str = "Payment received";

/// The emulator's invoice for the user's latest purchase.
async fn invoice_of(shop: &Shop, user: i64) -> payment_emulator::Invoice {
    let purchase = shop.latest_purchase(user).await;
    let payload = tollgate::billing::invoice_payload(purchase);
    let found: Vec<_> = shop
        .ctl
        .invoices()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.payload.as_deref() == Some(payload.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "one invoice per purchase: {found:?}");
    found.into_iter().next().unwrap()
}

async fn days_left(shop: &Shop, user: i64, clock: &ShiftedClock) -> i64 {
    use tollgate::time::Clock;
    let sub = access::subscription_for_user(shop.db(), user)
        .await
        .unwrap()
        .unwrap();
    (sub.expires_at.as_millis() - clock.now().as_millis()) / 86_400_000
}

// F10, F11: the "Pay" page is the invoice's, priced in the catalog's fiat with the purchase in
// its payload; the signed webhook applies it once; ten more copies change nothing.
db_test!(async fn a_crypto_payment_applies_once_however_often_its_webhook_arrives(t) {
    let clock = ShiftedClock::new();
    // The watcher is slow here: the webhook alone does it.
    let env = [("CRYPTOPAY_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let ann = shop.user(200_001, "Ann").await;
    let page = shop.choose(ann, "1 month", "Crypto").await;
    let url = url_button(&page, "Pay").expect("a Pay URL button");
    assert!(page.button_data("I paid").is_some(), "{:?}", page.reply_markup);
    let inv = invoice_of(&shop, ann).await;
    assert_eq!((inv.currency_type.as_str(), inv.fiat.as_deref(), inv.amount.as_str()), ("fiat", Some("RUB"), "149.00"));
    assert_eq!(inv.accepted_assets.as_deref(), Some(&["USDT".to_owned()][..]));
    assert_eq!(url, inv.bot_invoice_url);

    shop.ctl.pay_invoice(inv.invoice_id).await.unwrap();
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| n.object_id == inv.invoice_id.to_string()).await.unwrap();
    let n = shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(n.state, NotificationState::Delivered);
    // 200 only after the commit: the payment is there when the webhook is answered.
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    assert_eq!(days_left(&shop, ann, &clock).await, 29);
    shop.w.screen(ann, CONFIRMED).await;

    let copies = shop.ctl.repeat_notification(n.id, 10).await.unwrap();
    for id in copies {
        let c = shop.ctl.wait_until_settled(id, Duration::from_secs(20)).await.unwrap();
        assert_eq!(c.state, NotificationState::Delivered, "{c:?}");
    }
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    assert_eq!(days_left(&shop, ann, &clock).await, 29);
    assert_eq!(messages_with(&shop.w, ann, CONFIRMED).await, 1);
    shop.stop().await;
});

// F12: a webhook that never comes is found by the watcher within its interval; a webhook
// arriving while the watcher settles the same invoice applies nothing twice.
db_test!(async fn a_lost_webhook_is_found_by_the_watcher_and_a_racing_one_applies_once(t) {
    let clock = ShiftedClock::new();
    let env = [("CRYPTOPAY_POLL_INTERVAL", "300ms")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let bob = shop.user(200_002, "Bob").await;
    shop.choose(bob, "1 month", "Crypto").await;
    let inv = invoice_of(&shop, bob).await;
    shop.ctl.drop_next_notifications(Some(Provider::Cryptopay), 1).await.unwrap();
    let paid_at = tokio::time::Instant::now();
    shop.ctl.pay_invoice(inv.invoice_id).await.unwrap();
    wait_for("the watcher records the payment", Duration::from_secs(20), || async {
        (count(shop.db(), PAYMENTS).await == 1).then_some(())
    }).await;
    // Within one interval (and the pass's own time).
    assert!(paid_at.elapsed() < Duration::from_secs(3), "{:?}", paid_at.elapsed());
    shop.w.screen(bob, CONFIRMED).await;
    let n = shop.ctl.notifications().await.unwrap().into_iter()
        .find(|n| n.object_id == inv.invoice_id.to_string()).unwrap();
    assert_eq!(n.state, NotificationState::Dropped);
    // The lost webhook delivered after all, and again: nothing more happens.
    shop.ctl.deliver_now(n.id).await.unwrap();
    shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap();

    // Webhook and watcher at the same moment: Cid pays while the watcher polls every 300 ms
    // and the webhook comes at once.
    let cid = shop.user(200_003, "Cid").await;
    shop.choose(cid, "1 month", "Crypto").await;
    let inv = invoice_of(&shop, cid).await;
    shop.ctl.pay_invoice(inv.invoice_id).await.unwrap();
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| n.object_id == inv.invoice_id.to_string()).await.unwrap();
    shop.ctl.repeat_notification(n.id, 3).await.unwrap();
    wait_for("Cid's payment", Duration::from_secs(20), || async {
        (count(shop.db(), PAYMENTS).await == 2).then_some(())
    }).await;
    // Two passes of the watcher later, still one payment, one confirmation each.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(count(shop.db(), PAYMENTS).await, 2);
    assert_eq!(days_left(&shop, bob, &clock).await, 29);
    assert_eq!(days_left(&shop, cid, &clock).await, 29);
    shop.w.screen(cid, CONFIRMED).await;
    assert_eq!(messages_with(&shop.w, bob, CONFIRMED).await, 1);
    assert_eq!(messages_with(&shop.w, cid, CONFIRMED).await, 1);
    let invoices = count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM provider_invoices WHERE status = 'paid'").await;
    assert_eq!(invoices, 2);
    shop.stop().await;
});

// F11: a webhook whose signature is missing or made with another key is refused with 401 and
// changes nothing; the same body correctly signed is accepted.
db_test!(async fn a_forged_crypto_webhook_is_refused_with_401_and_changes_nothing(t) {
    let clock = ShiftedClock::new();
    let env = [("CRYPTOPAY_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let dan = shop.user(200_004, "Dan").await;
    shop.choose(dan, "1 month", "Crypto").await;
    let inv = invoice_of(&shop, dan).await;
    let body = serde_json::json!({
        "update_id": 1,
        "update_type": "invoice_paid",
        "request_date": "2026-12-07T00:00:00.000Z",
        "payload": {
            "invoice_id": inv.invoice_id, "hash": inv.hash, "currency_type": "fiat", "fiat": "RUB",
            "amount": "149.00", "status": "paid", "payload": inv.payload,
            "bot_invoice_url": inv.bot_invoice_url, "created_at": inv.created_at,
        },
    }).to_string();
    let http = reqwest::Client::new();
    let post = |sig: Option<String>| {
        let req = http.post(shop.hook("cryptopay")).header("content-type", "application/json").body(body.clone());
        let req = match sig { Some(s) => req.header("crypto-pay-api-signature", s), None => req };
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let forged = payment_emulator::cryptopay_signature("999:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", body.as_bytes());
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some(forged)).await, 401);
    assert_eq!(post(Some("zz".into())).await, 401);
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    assert!(access::subscription_for_user(shop.db(), dan).await.unwrap().is_none());
    // The emulator still has it open: nothing was paid.
    assert_eq!(shop.ctl.invoice(inv.invoice_id).await.unwrap().status, InvoiceStatus::Active);
    // Signed with the app's token, the same bytes are accepted (the invoice is not paid at
    // the provider, but the signed update says it is: a provider's word).
    let good = payment_emulator::cryptopay_signature(shop.pay.cryptopay_token(), body.as_bytes());
    assert_eq!(post(Some(good)).await, 200);
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    shop.stop().await;
});

// F13: Crypto Pay failing or hanging at createInvoice: the user reads "try again" within the
// call's deadline, the purchase waits, and the retry makes no second invoice — also when the
// hung call made one after all.
db_test!(async fn crypto_pay_down_or_hanging_asks_to_try_again_without_a_second_invoice(t) {
    let clock = ShiftedClock::new();
    let env = [("CRYPTOPAY_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let eve = shop.user(200_005, "Eve").await;
    let purchases = "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases";

    shop.ctl.fail_next("createInvoice", 1, FaultKind::ServerError).await.unwrap();
    let screen = shop.choose(eve, "1 month", "Crypto").await;
    assert!(screen.text.as_deref().unwrap().contains("did not answer"), "{:?}", screen.text);
    assert!(shop.ctl.invoices().await.unwrap().is_empty());
    assert_eq!(count(shop.db(), purchases).await, 1);
    let screen = shop.choose(eve, "1 month", "Crypto").await;
    assert!(url_button(&screen, "Pay").is_some(), "{:?}", screen.text);
    assert_eq!(shop.ctl.invoices().await.unwrap().len(), 1);
    assert_eq!(count(shop.db(), purchases).await, 1);
    // Pressed again while payable: the same page, no new invoice.
    shop.choose(eve, "1 month", "Crypto").await;
    assert_eq!(shop.ctl.invoices().await.unwrap().len(), 1);

    // Hanging past the 1 s deadline: cut, "try again"; the emulator makes the invoice anyway.
    shop.ctl.fail_next("createInvoice", 1, FaultKind::Hang { ms: 2500 }).await.unwrap();
    let started = tokio::time::Instant::now();
    let screen = shop.choose(eve, "3 months", "Crypto").await;
    assert!(screen.text.as_deref().unwrap().contains("did not answer"), "{:?}", screen.text);
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    wait_for("the hung call's invoice", Duration::from_secs(20), || async {
        (shop.ctl.invoices().await.unwrap().len() == 2).then_some(())
    }).await;
    let screen = shop.choose(eve, "3 months", "Crypto").await;
    assert!(url_button(&screen, "Pay").is_some(), "{:?}", screen.text);
    assert_eq!(shop.ctl.invoices().await.unwrap().len(), 2, "the retry found the hung call's invoice");
    assert_eq!(count(shop.db(), purchases).await, 2);
    shop.stop().await;
});

// F1, F6: a payment that comes after its purchase expired is honoured; one that pays less than
// the purchase costs is kept for review with an admin alert, and gives nothing.
db_test!(async fn a_late_crypto_payment_is_honoured_and_an_underpaid_one_is_kept_for_review(t) {
    let clock = ShiftedClock::new();
    let env = [("CRYPTOPAY_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let admin = shop.user(ADMIN, "Admin").await;
    let fay = shop.user(200_006, "Fay").await;
    shop.choose(fay, "1 month", "Crypto").await;
    let inv = invoice_of(&shop, fay).await;
    shop.ctl.delay_next_notifications(Some(Provider::Cryptopay), 1, Duration::from_secs(7200)).await.unwrap();
    shop.ctl.pay_invoice(inv.invoice_id).await.unwrap();
    // Our purchase expires meanwhile (two hours later here).
    clock.advance(Duration::from_secs(7200));
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| n.object_id == inv.invoice_id.to_string()).await.unwrap();
    shop.ctl.deliver_now(n.id).await.unwrap();
    shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    assert_eq!(days_left(&shop, fay, &clock).await, 29);
    shop.w.screen(fay, CONFIRMED).await;

    let gus = shop.user(200_007, "Gus").await;
    shop.choose(gus, "1 month", "Crypto").await;
    let inv = invoice_of(&shop, gus).await;
    let less = PayOptions { amount: Some("100.00".into()), ..PayOptions::default() };
    shop.ctl.pay_invoice_with(inv.invoice_id, &less).await.unwrap();
    shop.w.screen(gus, "needs a manual check").await;
    let alert = shop.w.screen(admin, "needs review").await;
    assert!(alert.text.as_deref().unwrap().contains(&inv.invoice_id.to_string()), "{:?}", alert.text);
    assert!(access::subscription_for_user(shop.db(), gus).await.unwrap().is_none());
    let kept = count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE provider = 'crypto' AND purchase_id IS NULL").await;
    assert_eq!(kept, 1);
    shop.stop().await;
});

// The watcher withdraws (deleteInvoice) an open invoice whose purchase expired, so nobody pays
// for an offer that ended; "I paid" on it says so.
db_test!(async fn the_watcher_deletes_the_invoice_of_an_expired_purchase(t) {
    let clock = ShiftedClock::new();
    let env = [("CRYPTOPAY_POLL_INTERVAL", "200ms")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let hal = shop.user(200_008, "Hal").await;
    let page = shop.choose(hal, "1 month", "Crypto").await;
    let inv = invoice_of(&shop, hal).await;
    // "I paid" before paying: not yet, the page stays.
    shop.w.press(hal, &page, "I paid").await;
    shop.w.screen(hal, "has not arrived yet").await;
    clock.advance(Duration::from_secs(3601));
    wait_for("the invoice deleted", Duration::from_secs(20), || async {
        shop.ctl.invoice(inv.invoice_id).await.is_err().then_some(())
    }).await;
    wait_for("the invoice closed", Duration::from_secs(20), || async {
        (count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM provider_invoices WHERE status = 'closed'").await == 1).then_some(())
    }).await;
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    shop.stop().await;
});

// A page is asked about before it is shown again: an invoice that expired at Crypto Pay, or
// that was deleted there (by the operator in @CryptoBot), before the watcher's next pass is not
// offered again; the press makes a new purchase with a new invoice.
db_test!(async fn a_crypto_page_that_ended_at_the_provider_is_not_shown_again(t) {
    let clock = ShiftedClock::new();
    let env = [("CRYPTOPAY_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let ivy = shop.user(200_009, "Ivy").await;
    shop.choose(ivy, "1 month", "Crypto").await;
    let first = invoice_of(&shop, ivy).await;
    shop.ctl.expire_invoice(first.invoice_id).await.unwrap();
    let page = shop.choose(ivy, "1 month", "Crypto").await;
    let second = invoice_of(&shop, ivy).await;
    assert_ne!(second.invoice_id, first.invoice_id, "a new purchase, a new invoice");
    assert_eq!(url_button(&page, "Pay"), Some(second.bot_invoice_url.clone()));

    let deleted: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/deleteInvoice", shop.pay.cryptopay_api_url()))
        .header("Crypto-Pay-API-Token", shop.pay.cryptopay_token())
        .json(&serde_json::json!({ "invoice_id": second.invoice_id }))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(deleted["result"], serde_json::json!(true), "{deleted}");
    let page = shop.choose(ivy, "1 month", "Crypto").await;
    let third = invoice_of(&shop, ivy).await;
    assert_ne!(third.invoice_id, second.invoice_id);
    assert_eq!(url_button(&page, "Pay"), Some(third.bot_invoice_url.clone()));
    assert_eq!(count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM provider_invoices WHERE status = 'closed'").await, 2);
    assert_eq!(count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases").await, 3);
    shop.stop().await;
});

// F1, F8: `tollgate run` killed -9 while Crypto Pay webhooks of paid invoices arrive — between
// the provider's confirmation and our commit — five times; after the last restart every paid
// invoice is applied exactly once (one payment, 30 days, one confirmation queued).
db_test!(async fn killed_9_amid_crypto_webhooks_every_paid_invoice_applies_once_after_restart(t) {
    use crate::common::service::Service;
    use crate::common::telegram::{emulator, free_port, polling_env, with};
    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 4;
    let emu = emulator(false).await;
    let pay = payment_emulator::PaymentEmulator::start(payment_emulator::PaymentEmulatorConfig::default()).await.unwrap();
    let ctl = pay.client();
    let port = free_port();
    let api = pay.cryptopay_api_url();
    let env = with(polling_env(&t.url, &emu), &[
        ("PORT", &port.to_string()),
        ("CRYPTOPAY_TOKEN", pay.cryptopay_token()),
        ("CRYPTOPAY_API_URL", &api),
        ("CRYPTOPAY_POLL_INTERVAL", "500ms"),
        ("RUST_LOG", "warn,tollgate::app=info"),
    ]);
    ctl.set_webhook(Provider::Cryptopay, Some(&format!("http://127.0.0.1:{port}/payments/cryptopay"))).await.unwrap();
    // The service's first life migrates; then the purchases and their open invoices, as the
    // bot leaves them when it shows the payment pages.
    let mut svc = Service::start(&env).await;
    wait_for("migrated", Duration::from_secs(30), || async {
        crate::common::service::http_client().get(svc.url("/readyz")).send().await.ok()
            .filter(|r| r.status().is_success()).map(drop)
    }).await;
    let db = &t.db;
    let now = tollgate::time::SystemClock.now();
    let http = reqwest::Client::new();
    let mut invoices = Vec::new();
    for i in 0..(ROUNDS * PER_ROUND) as i64 {
        let user = 400_000 + i;
        tollgate::on_db!(db, p => sqlx::query(
            "INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at) VALUES ($1, 'U', 'en', $2, $3, $3)"
        ).bind(user).bind(format!("k{user}")).bind(now).execute(p).await.map(drop)).unwrap();
        let purchase: i64 = tollgate::on_db!(db, p => sqlx::query_scalar(
            "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at)
             VALUES ($1, 'plan', 'm1', 30, 14900, 'RUB', 'crypto', 'pending', $2, $3) RETURNING id"
        ).bind(user).bind(now).bind(now.plus(Duration::from_secs(3600))).fetch_one(p).await).unwrap();
        let v: serde_json::Value = http.post(format!("{api}/createInvoice"))
            .header("Crypto-Pay-API-Token", pay.cryptopay_token())
            .json(&serde_json::json!({"currency_type": "fiat", "fiat": "RUB", "amount": "149.00",
                "payload": tollgate::billing::invoice_payload(purchase), "expires_in": 3600}))
            .send().await.unwrap().json().await.unwrap();
        let invoice = v["result"]["invoice_id"].as_i64().unwrap();
        tollgate::on_db!(db, p => sqlx::query(
            "INSERT INTO provider_invoices (purchase_id, provider, external_id, url, status, created_at, next_check_at)
             VALUES ($1, 'crypto', $2, 'http://x', 'open', $3, $4)"
        ).bind(purchase).bind(invoice.to_string()).bind(now).bind(now.plus(Duration::from_secs(3600))).execute(p).await.map(drop)).unwrap();
        invoices.push((user, invoice));
    }
    use tollgate::time::Clock;
    for round in invoices.chunks(PER_ROUND) {
        for (_, invoice) in round {
            ctl.pay_invoice(*invoice).await.unwrap();
        }
        // Killed while those webhooks are being verified, stored and finalized.
        tokio::time::sleep(Duration::from_millis(15)).await;
        svc.signal("KILL");
        assert!(!svc.wait_exit(Duration::from_secs(10)).await.success(), "killed, not exited");
        svc = Service::start(&env).await;
    }
    let n = invoices.len() as i64;
    wait_for("every paid invoice applied", Duration::from_secs(60), || async {
        (count(db, PAYMENTS).await == n).then_some(())
    }).await;
    // Nothing more comes: the watcher and the redelivered webhooks find them all done.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(db, PAYMENTS).await, n);
    let clock = tollgate::time::SystemClock;
    for (user, invoice) in &invoices {
        let rows: Vec<(Option<i64>,)> = tollgate::on_db!(db, p => sqlx::query_as(
            "SELECT purchase_id FROM payments WHERE provider = 'crypto' AND provider_payment_id = $1"
        ).bind(invoice.to_string()).fetch_all(p).await).unwrap();
        assert_eq!(rows.len(), 1, "invoice {invoice}");
        assert!(rows[0].0.is_some(), "tied to its purchase");
        let sub = access::subscription_for_user(db, *user).await.unwrap().unwrap();
        let days = (sub.expires_at.as_millis() - clock.now().as_millis()) as f64 / 86_400_000.0;
        assert!((29.0..=30.0).contains(&days), "user {user}: {days} days, one extension");
        let confirmations: i64 = tollgate::on_db!(db, p => sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE chat_id = $1 AND payload LIKE '%Payment received%'"
        ).bind(user).fetch_one(p).await).unwrap();
        assert_eq!(confirmations, 1, "user {user}: one confirmation");
    }
    svc.signal("TERM");
    svc.wait_exit(Duration::from_secs(20)).await;
    pay.shutdown().await;
    emu.shutdown().await;
});
