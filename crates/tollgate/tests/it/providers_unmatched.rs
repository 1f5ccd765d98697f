//! docs/reliability.md F6: a provider reports paid a payment that names no purchase of this
//! bot (an invoice another app made with the same Crypto Pay token, a YooKassa payment whose
//! metadata is not ours). There is no payer to credit, so it is kept for review once, however
//! often it is reported, the admins are alerted once, and an admin settles it from the
//! console — refunded through YooKassa, or marked settled outside the bot — once.

use std::time::Duration;

use payment_emulator::NotificationState;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::ShiftedClock;

use crate::common::bot::{double_tap, handled};
use crate::common::payments::{ADMIN, Shop, count, messages_with, shop_options, url_button};
use crate::common::wait_for;
use crate::db_test;

const UNMATCHED: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM unmatched_payments";
const OPEN: &str =
    "SELECT CAST(COUNT(*) AS BIGINT) FROM unmatched_payments WHERE resolution IS NULL";
const PAYMENTS: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM payments";
const ALERT: &str = "was paid but names no purchase";

/// The resolution, resolver and time of the kept payment with this provider id.
async fn resolution(db: &Db, external: &str) -> (Option<String>, Option<i64>, Option<i64>) {
    on_db!(db, p => sqlx::query_as(
        "SELECT resolution, resolved_by, resolved_at FROM unmatched_payments WHERE external_id = $1")
        .bind(external).fetch_one(p).await)
    .unwrap()
}

async fn audited(db: &Db, action: &str) -> i64 {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = $1")
        .bind(action).fetch_one(p).await)
    .unwrap()
}

// A Crypto Pay invoice another app made with the same token is paid: its signed webhook,
// delivered four times, keeps it once and alerts once; nothing is credited. An admin finds it
// by its id, marks it settled (a double tap settles once, audited once), and a user's
// `/payment` learns nothing.
db_test!(async fn a_paid_crypto_invoice_naming_no_purchase_is_kept_once_and_settled_by_an_admin(t) {
    let clock = ShiftedClock::new();
    let env = [("CRYPTOPAY_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let admin = shop.user(ADMIN, "Admin").await;
    let ann = shop.user(400_001, "Ann").await;
    // The earlier bot, still running on the same Crypto Pay app, invoices its own customer.
    let invoice = another_apps_invoice(&shop, "250.00", "earlier-bot:order:77").await;
    shop.ctl.pay_invoice(invoice).await.unwrap();
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| n.object_id == invoice.to_string()).await.unwrap();
    let n = shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap();
    // Answered 200 once it is kept: the provider stops delivering.
    assert_eq!(n.state, NotificationState::Delivered, "{n:?}");
    assert_eq!(count(shop.db(), UNMATCHED).await, 1);
    for copy in shop.ctl.repeat_notification(n.id, 3).await.unwrap() {
        let c = shop.ctl.wait_until_settled(copy, Duration::from_secs(20)).await.unwrap();
        assert_eq!(c.state, NotificationState::Delivered, "{c:?}");
    }
    assert_eq!(count(shop.db(), UNMATCHED).await, 1, "kept once however often reported");
    assert_eq!(count(shop.db(), PAYMENTS).await, 0, "nobody is credited");
    let alert = shop.w.screen(admin, ALERT).await;
    assert!(alert.text.as_deref().unwrap().contains(&format!("/payment {invoice}")), "{:?}", alert.text);
    assert_eq!(messages_with(&shop.w, admin, ALERT).await, 1, "alerted once");
    let (raw,): (String,) = on_db!(shop.db(), p => sqlx::query_as(
        "SELECT raw FROM unmatched_payments WHERE external_id = $1").bind(invoice.to_string()).fetch_one(p).await).unwrap();
    assert!(raw.contains("earlier-bot:order:77"), "the provider's record is kept: {raw}");

    // A user asking about it learns nothing.
    shop.w.tg.send_text(ann, &format!("/payment {invoice}")).await.unwrap();
    let refused = shop.w.screen(ann, "for admins").await;
    assert!(!refused.text.as_deref().unwrap().contains("250"), "{:?}", refused.text);

    // The admin opens it by its id: no refund from the bot for Crypto Pay, only "settled".
    shop.w.tg.send_text(admin, &format!("/payment {invoice}")).await.unwrap();
    let card = shop.w.screen(admin, "Unmatched payment").await;
    let text = card.text.clone().unwrap();
    assert!(text.contains("Waiting for a decision") && text.contains("earlier-bot:order:77"), "{text}");
    assert!(card.button_data("Refund").is_none(), "{:?}", card.callback_buttons());
    shop.w.press(admin, &card, "Mark settled").await;
    let confirm = shop.w.screen_on(admin, card.message_id, "settled outside the bot?").await;
    let data = confirm.button_data("Confirm").unwrap();
    let presses = double_tap(&shop.w.tg, admin, confirm.message_id, &data).await;
    handled(shop.db(), &presses).await;
    shop.w.screen_on(admin, card.message_id, "Marked settled outside the bot by admin").await;
    let (how, by, at) = resolution(shop.db(), &invoice.to_string()).await;
    assert_eq!((how.as_deref(), by), (Some("settled"), Some(ADMIN)));
    assert!(at.is_some());
    assert_eq!(audited(shop.db(), "settle-unmatched").await, 1, "one audit row for a double tap");
    assert_eq!(count(shop.db(), OPEN).await, 0);
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    // A webhook copy after it was settled keeps nothing new and alerts nobody.
    let late = shop.ctl.repeat_notification(n.id, 1).await.unwrap();
    shop.ctl.wait_until_settled(late[0], Duration::from_secs(20)).await.unwrap();
    assert_eq!(count(shop.db(), UNMATCHED).await, 1);
    assert_eq!(resolution(shop.db(), &invoice.to_string()).await.0.as_deref(), Some("settled"));
    assert_eq!(messages_with(&shop.w, admin, ALERT).await, 1);

    // Another deployment on the same account names its own purchase with a number one of
    // ours has: not the invoice we stored for it, not its price, so not Ann's money.
    shop.choose(ann, "1 month", "Crypto").await;
    let ours = shop.latest_purchase(ann).await;
    let theirs = another_apps_invoice(&shop, "250.00", &tollgate::billing::invoice_payload(ours)).await;
    shop.ctl.pay_invoice(theirs).await.unwrap();
    wait_for("the other deployment's payment kept", Duration::from_secs(20), || async {
        (count(shop.db(), UNMATCHED).await == 2).then_some(())
    }).await;
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    assert!(tollgate::access::subscription_for_user(shop.db(), ann).await.unwrap().is_none());

    // The other app prices in an asset (no purchase of ours is): its open invoice in the list
    // hides nothing from the search a new page makes first, and its paid one is kept too.
    let asset = another_apps_invoice_in(&shop, serde_json::json!({
        "currency_type": "crypto", "asset": "USDT", "amount": "3.5", "payload": "earlier-bot:order:78",
    })).await;
    let page = shop.choose(ann, "3 months", "Crypto").await;
    assert!(url_button(&page, "Pay").is_some(), "{:?}", page.text);
    shop.ctl.pay_invoice(asset).await.unwrap();
    wait_for("the asset-priced payment kept", Duration::from_secs(20), || async {
        (count(shop.db(), UNMATCHED).await == 3).then_some(())
    }).await;
    shop.w.tg.send_text(admin, &format!("/payment {asset}")).await.unwrap();
    let card = shop.w.screen(admin, &format!("payment {asset}: ? USDT")).await;
    assert!(card.text.as_deref().unwrap().contains("3.5"), "the provider's figure is on the card: {:?}", card.text);
    shop.stop().await;
});

/// An invoice made with our Crypto Pay token by another app: `amount` RUB, its own payload.
async fn another_apps_invoice(shop: &Shop, amount: &str, payload: &str) -> i64 {
    another_apps_invoice_in(
        shop,
        serde_json::json!({
            "currency_type": "fiat", "fiat": "RUB", "amount": amount, "payload": payload,
        }),
    )
    .await
}

/// An invoice made with our Crypto Pay token by another app, with these `createInvoice`
/// parameters.
async fn another_apps_invoice_in(shop: &Shop, params: serde_json::Value) -> i64 {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/createInvoice", shop.pay.cryptopay_api_url()))
        .header("Crypto-Pay-API-Token", shop.pay.cryptopay_token())
        .json(&params)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["result"]["invoice_id"]
        .as_i64()
        .expect("an invoice id")
}

// A YooKassa payment whose metadata names no purchase of ours succeeds: the notification (a
// hint, re-fetched) keeps it; the admin finds it under /admin → To review and refunds it
// through YooKassa, once; the console's counts follow.
db_test!(async fn a_yookassa_payment_naming_no_purchase_is_refunded_from_the_review_list(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let admin = shop.user(ADMIN, "Admin").await;
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/payments", shop.pay.yookassa_api_url()))
        .basic_auth(shop.pay.yookassa_shop_id(), Some(shop.pay.yookassa_secret_key()))
        .header("Idempotence-Key", "another-shop-order-5")
        .json(&serde_json::json!({
            "amount": { "value": "390.00", "currency": "RUB" },
            "capture": true,
            "confirmation": { "type": "redirect", "return_url": "https://example.com/done" },
            "metadata": { "order": "legacy-5" },
        }))
        .send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_str().expect("a payment id").to_owned();
    shop.ctl.pay_payment(&id).await.unwrap();
    wait_for("the unmatched payment kept", Duration::from_secs(20), || async {
        (count(shop.db(), UNMATCHED).await == 1).then_some(())
    }).await;
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    shop.w.screen(admin, ALERT).await;

    shop.w.tg.send_text(admin, "/admin").await.unwrap();
    let home = shop.w.screen(admin, "Admin console").await;
    shop.w.press(admin, &home, "To review").await;
    let list = shop.w.screen_on(admin, home.message_id, "name no purchase of this bot: 1").await;
    assert!(list.text.as_deref().unwrap().contains("kept for review: 0"), "{:?}", list.text);
    shop.w.press(admin, &list, "yookassa").await;
    let card = shop.w.screen_on(admin, home.message_id, "Unmatched payment").await;
    assert!(card.text.as_deref().unwrap().contains(&id), "{:?}", card.text);
    shop.w.press(admin, &card, "Refund through the provider").await;
    let confirm = shop.w.screen_on(admin, home.message_id, "to whoever paid it?").await;
    shop.w.press(admin, &confirm, "Confirm").await;
    shop.w.screen_on(admin, home.message_id, "Refunded through the provider by admin").await;
    let refunds = shop.ctl.refunds().await.unwrap();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!((refunds[0].payment_id.as_str(), refunds[0].amount.value.as_str()), (id.as_str(), "390.00"));
    assert_eq!(resolution(shop.db(), &id).await.0.as_deref(), Some("refunded"));
    assert_eq!(audited(shop.db(), "refund").await, 1);
    // The press replayed (the button is gone from the screen): settled already, no second
    // refund.
    let data = confirm.button_data("Confirm").unwrap();
    shop.w.forge(admin, confirm.message_id, &data).await;
    shop.w.screen_on(admin, home.message_id, "already").await;
    assert_eq!(shop.ctl.refunds().await.unwrap().len(), 1);
    assert_eq!(audited(shop.db(), "refund").await, 1);
    // Back on the list: nothing waits.
    shop.w.tg.send_text(admin, "/admin").await.unwrap();
    let home = shop.w.screen(admin, "Admin console").await;
    shop.w.press(admin, &home, "To review").await;
    shop.w.screen_on(admin, home.message_id, "name no purchase of this bot: 0").await;
    shop.stop().await;
});
