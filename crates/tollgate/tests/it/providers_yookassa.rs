//! docs/reliability.md F2, F3, F5, F13: YooKassa end to end against the payment emulator — a
//! notification is only a hint (the payment is fetched and only `succeeded` applies), the
//! reconciler finds lost ones, creation failures retry with the same idempotence key, and an
//! admin refunds through the API from the payment's card.

use std::time::Duration;

use payment_emulator::{CancelOptions, FaultKind, NotificationState, Provider};
use telegram_emulator::TranscriptMessage;
use tollgate::access;
use tollgate::time::{Clock, ShiftedClock};

use crate::common::payments::shop_options;
use crate::common::payments::{ADMIN, Shop, count, messages_with, url_button};
use crate::common::wait_for;
use crate::db_test;

const PAYMENTS: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE provider = 'yookassa'";
const CONFIRMED: &str = "Payment received";
const METHOD: &str = "YooKassa";

/// The emulator's payment for the user's latest purchase.
async fn payment_of(shop: &Shop, user: i64) -> payment_emulator::Payment {
    let purchase = shop.latest_purchase(user).await;
    let found: Vec<_> = shop
        .ctl
        .payments()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| {
            p.metadata.get("purchase_id").map(String::as_str) == Some(purchase.to_string().as_str())
        })
        .collect();
    assert_eq!(found.len(), 1, "one payment per purchase: {found:?}");
    found.into_iter().next().unwrap()
}

/// `user` buys a month through YooKassa and pays; returns once the payment is recorded (the
/// first YooKassa payment of the test) and the month is theirs.
async fn paid_month(shop: &Shop, user: i64, clock: &ShiftedClock) -> payment_emulator::Payment {
    shop.choose(user, "1 month", METHOD).await;
    let p = payment_of(shop, user).await;
    shop.ctl.pay_payment(&p.id).await.unwrap();
    wait_for("the payment", Duration::from_secs(20), || async {
        (count(shop.db(), PAYMENTS).await == 1).then_some(())
    })
    .await;
    assert_eq!(days_left(shop, user, clock).await, Some(29));
    p
}

async fn days_left(shop: &Shop, user: i64, clock: &ShiftedClock) -> Option<i64> {
    let sub = access::subscription_for_user(shop.db(), user)
        .await
        .unwrap()?;
    Some((sub.expires_at.as_millis() - clock.now().as_millis()) / 86_400_000)
}

// F2, F5: the page is YooKassa's confirmation URL for a payment captured at once; its
// notification is answered 200 only once the fetched, succeeded payment is stored; ten copies
// apply nothing more.
db_test!(async fn a_yookassa_payment_applies_once_when_the_api_says_succeeded(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let ann = shop.user(300_001, "Ann").await;
    let page = shop.choose(ann, "1 month", METHOD).await;
    let p = payment_of(&shop, ann).await;
    assert_eq!(url_button(&page, "Pay"), p.confirmation.as_ref().and_then(|c| c.confirmation_url.clone()));
    assert_eq!((p.amount.value.as_str(), p.amount.currency.as_str()), ("149.00", "RUB"));
    shop.ctl.pay_payment(&p.id).await.unwrap();
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| n.object_id == p.id && n.event == "payment.succeeded").await.unwrap();
    let n = shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(n.state, NotificationState::Delivered);
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    assert_eq!(days_left(&shop, ann, &clock).await, Some(29));
    for id in shop.ctl.repeat_notification(n.id, 10).await.unwrap() {
        let c = shop.ctl.wait_until_settled(id, Duration::from_secs(20)).await.unwrap();
        assert_eq!(c.state, NotificationState::Delivered);
    }
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    assert_eq!(days_left(&shop, ann, &clock).await, Some(29));
    shop.w.screen(ann, CONFIRMED).await;
    assert_eq!(messages_with(&shop.w, ann, CONFIRMED).await, 1);
    shop.stop().await;
});

// F5: YooKassa's notifications carry no signature. One that says `succeeded` for a payment the
// API says is pending applies nothing; a cancelled payment's closes the invoice and applies
// nothing.
db_test!(async fn a_yookassa_notification_for_a_payment_that_did_not_succeed_applies_nothing(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let bob = shop.user(300_002, "Bob").await;
    shop.choose(bob, "1 month", METHOD).await;
    let p = payment_of(&shop, bob).await;
    let forged = serde_json::json!({
        "type": "notification", "event": "payment.succeeded",
        "object": { "id": p.id, "status": "succeeded", "paid": true,
                    "amount": { "value": "149.00", "currency": "RUB" },
                    "metadata": p.metadata },
    });
    let status = reqwest::Client::new().post(shop.hook("yookassa")).json(&forged).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 200, "stored: the API says pending");
    let unknown = serde_json::json!({ "type": "notification", "event": "payment.succeeded", "object": { "id": "no-such-payment" } });
    let status = reqwest::Client::new().post(shop.hook("yookassa")).json(&unknown).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 400);
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    assert_eq!(days_left(&shop, bob, &clock).await, None);

    shop.ctl.cancel_payment(&p.id, &CancelOptions::default()).await.unwrap();
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| n.object_id == p.id && n.event == "payment.canceled").await.unwrap();
    let n = shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(n.state, NotificationState::Delivered);
    assert_eq!(count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM provider_invoices WHERE status = 'closed'").await, 1);
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    shop.stop().await;
});

// F5: a notification from outside YooKassa's addresses is refused with 403 before anything is
// fetched; behind a trusted proxy the sender is the address the proxy appended, never one the
// sender wrote into X-Forwarded-For itself.
db_test!(async fn yookassa_notifications_are_taken_only_from_its_addresses(t) {
    let clock = ShiftedClock::new();
    // The emulator sends from 127.0.0.1, a trusted proxy here (the default), without the header.
    let env = [("YOOKASSA_POLL_INTERVAL", "1h"), ("YOOKASSA_NOTIFY_FROM", "185.71.76.0/27")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let cid = shop.user(300_003, "Cid").await;
    shop.choose(cid, "1 month", METHOD).await;
    let p = payment_of(&shop, cid).await;
    let fetches = || async { shop.ctl.calls().await.unwrap().get("payments.get").copied().unwrap_or(0) };
    let before = fetches().await;
    shop.ctl.pay_payment(&p.id).await.unwrap();
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| {
        n.object_id == p.id && n.event == "payment.succeeded" && !n.attempts.is_empty()
    }).await.unwrap();
    assert_eq!(n.attempts[0].status, Some(403), "{n:?}");
    let post = |forwarded: &'static str| {
        let body = n.body.clone();
        let url = shop.hook("yookassa");
        async move {
            reqwest::Client::new().post(url).header("content-type", "application/json")
                .header("x-forwarded-for", forwarded).body(body).send().await.unwrap().status().as_u16()
        }
    };
    // A stranger who writes one of YooKassa's addresses first is named by what the proxy appended.
    assert_eq!(post("185.71.76.5, 203.0.113.7").await, 403);
    assert_eq!(fetches().await, before, "nothing fetched for a refused notification");
    assert_eq!(count(shop.db(), PAYMENTS).await, 0);
    assert_eq!(days_left(&shop, cid, &clock).await, None);
    // Through the proxy from YooKassa's address: fetched, stored, applied.
    assert_eq!(post("185.71.76.5").await, 200);
    assert_eq!(fetches().await, before + 1);
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    assert_eq!(days_left(&shop, cid, &clock).await, Some(29));
    shop.stop().await;
});

// A page is asked about before it is shown again: a payment the bank declined, whose
// notification was lost, is not offered again (a new purchase gets a new page), and one paid
// meanwhile, notification lost too, is settled by the press.
db_test!(async fn a_declined_page_is_not_shown_again_and_one_paid_meanwhile_is_settled(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let dee = shop.user(300_004, "Dee").await;
    shop.choose(dee, "1 month", METHOD).await;
    let declined = payment_of(&shop, dee).await;
    let first = shop.latest_purchase(dee).await;
    // Pressed again while it is payable, or while YooKassa cannot say (down, then hanging
    // past the call's deadline): the same page, nothing new made.
    let page_url = declined.confirmation.as_ref().and_then(|c| c.confirmation_url.clone());
    let same = shop.choose(dee, "1 month", METHOD).await;
    assert_eq!(url_button(&same, "Pay"), page_url);
    shop.ctl.fail_next("payments.get", 1, FaultKind::ServerError).await.unwrap();
    let same = shop.choose(dee, "1 month", METHOD).await;
    assert_eq!(url_button(&same, "Pay"), page_url);
    shop.ctl.fail_next("payments.get", 1, FaultKind::Hang { ms: 2500 }).await.unwrap();
    let same = shop.choose(dee, "1 month", METHOD).await;
    assert_eq!(url_button(&same, "Pay"), page_url);
    assert_eq!(shop.latest_purchase(dee).await, first);

    shop.ctl.drop_next_notifications(Some(Provider::Yookassa), 1).await.unwrap();
    shop.ctl.cancel_payment(&declined.id, &CancelOptions::default()).await.unwrap();
    let page = shop.choose(dee, "1 month", METHOD).await;
    assert_ne!(shop.latest_purchase(dee).await, first, "a new purchase");
    let fresh = payment_of(&shop, dee).await;
    assert_ne!(fresh.id, declined.id);
    assert_eq!(url_button(&page, "Pay"), fresh.confirmation.as_ref().and_then(|c| c.confirmation_url.clone()));
    assert_eq!(count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM provider_invoices WHERE status = 'closed'").await, 1);

    shop.ctl.drop_next_notifications(Some(Provider::Yookassa), 1).await.unwrap();
    shop.ctl.pay_payment(&fresh.id).await.unwrap();
    let paid = shop.choose(dee, "1 month", METHOD).await;
    assert!(paid.text.as_deref().unwrap_or_default().contains("The confirmation is on its way"), "{:?}", paid.text);
    assert_eq!(count(shop.db(), PAYMENTS).await, 1);
    assert_eq!(days_left(&shop, dee, &clock).await, Some(29));
    assert_eq!(shop.ctl.payments().await.unwrap().len(), 2, "no third page");
    shop.stop().await;
});

// F3: a notification that never comes: the reconciler's growing intervals find the payment.
db_test!(async fn a_lost_yookassa_notification_is_found_by_the_reconciler(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "200ms")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let cid = shop.user(300_003, "Cid").await;
    shop.choose(cid, "1 month", METHOD).await;
    let p = payment_of(&shop, cid).await;
    shop.ctl.drop_next_notifications(Some(Provider::Yookassa), 1).await.unwrap();
    // Checked at 200 ms, 200 ms, 400 ms, 600 ms… after opening: paid a second later, found
    // within the next interval.
    tokio::time::sleep(Duration::from_secs(1)).await;
    shop.ctl.pay_payment(&p.id).await.unwrap();
    let paid_at = tokio::time::Instant::now();
    wait_for("the reconciler records the payment", Duration::from_secs(20), || async {
        (count(shop.db(), PAYMENTS).await == 1).then_some(())
    }).await;
    assert!(paid_at.elapsed() < Duration::from_secs(3), "{:?}", paid_at.elapsed());
    shop.w.screen(cid, CONFIRMED).await;
    assert_eq!(days_left(&shop, cid, &clock).await, Some(29));
    let checks = count(shop.db(), "SELECT CAST(checks AS BIGINT) FROM provider_invoices").await;
    assert!(checks >= 2, "the intervals grew over {checks} checks");
    shop.stop().await;
});

// F3: a payment YooKassa refuses to show (404: gone, or the shop's keys changed) hides nothing
// else from the reconciler: it is left out of the pass and goes to the back of the queue, and
// another user's payment whose notification was lost is still found.
db_test!(async fn a_payment_yookassa_refuses_to_show_does_not_stop_the_reconciler(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "200ms")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let dot = shop.user(300_011, "Dot").await;
    let eli = shop.user(300_012, "Eli").await;
    shop.choose(dot, "1 month", METHOD).await;
    shop.choose(eli, "1 month", METHOD).await;
    let p = payment_of(&shop, eli).await;
    // Dot's stored id is one YooKassa does not know, and it is always due first.
    let dots = shop.latest_purchase(dot).await;
    tollgate::on_db!(shop.db(), c => sqlx::query(
        "UPDATE provider_invoices SET external_id = 'gone-payment', next_check_at = 0 WHERE purchase_id = $1")
        .bind(dots).execute(c).await.map(drop)).unwrap();
    shop.ctl.drop_next_notifications(Some(Provider::Yookassa), 1).await.unwrap();
    shop.ctl.pay_payment(&p.id).await.unwrap();
    wait_for("the reconciler records Eli's payment", Duration::from_secs(20), || async {
        (count(shop.db(), PAYMENTS).await == 1).then_some(())
    }).await;
    shop.w.screen(eli, CONFIRMED).await;
    assert_eq!(days_left(&shop, eli, &clock).await, Some(29));
    assert_eq!(days_left(&shop, dot, &clock).await, None);
    shop.stop().await;
});

// F13: YooKassa answering 500 after making the payment, or hanging: "try again", and the retry
// carries the same Idempotence-Key, so there is still one payment.
db_test!(async fn yookassa_down_or_hanging_at_creation_makes_no_second_payment(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let dan = shop.user(300_004, "Dan").await;
    shop.ctl.fail_next("payments.create", 1, FaultKind::ServerErrorAfterExecuting).await.unwrap();
    let screen = shop.choose(dan, "1 month", METHOD).await;
    assert!(screen.text.as_deref().unwrap().contains("did not answer"), "{:?}", screen.text);
    assert_eq!(shop.ctl.payments().await.unwrap().len(), 1, "made, but answered 500");
    let screen = shop.choose(dan, "1 month", METHOD).await;
    assert!(url_button(&screen, "Pay").is_some(), "{:?}", screen.text);
    assert_eq!(shop.ctl.payments().await.unwrap().len(), 1, "the same payment, by its key");
    assert_eq!(count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases").await, 1);

    shop.ctl.fail_next("payments.create", 1, FaultKind::Hang { ms: 2500 }).await.unwrap();
    let started = tokio::time::Instant::now();
    let screen = shop.choose(dan, "3 months", METHOD).await;
    assert!(screen.text.as_deref().unwrap().contains("did not answer"), "{:?}", screen.text);
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    wait_for("the hung call's payment", Duration::from_secs(20), || async {
        (shop.ctl.payments().await.unwrap().len() == 2).then_some(())
    }).await;
    let screen = shop.choose(dan, "3 months", METHOD).await;
    assert!(url_button(&screen, "Pay").is_some(), "{:?}", screen.text);
    assert_eq!(shop.ctl.payments().await.unwrap().len(), 2);
    shop.stop().await;
});

// An admin refunds a YooKassa payment from its card: the refund goes through the API (once,
// by its key), the days go back, the admin's action is audited.
db_test!(async fn an_admin_refunds_a_yookassa_payment_from_its_card(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let admin = shop.user(ADMIN, "Admin").await;
    let eve = shop.user(300_005, "Eve").await;
    let p = paid_month(&shop, eve, &clock).await;
    shop.w.tg.send_text(admin, &format!("/payment {}", p.id)).await.unwrap();
    let card = shop.w.screen(admin, "Applied to purchase").await;
    shop.w.press(admin, &card, "Refund").await;
    let confirm = shop.w.screen_on(admin, card.message_id, "Refund payment").await;
    shop.w.press(admin, &confirm, "Confirm").await;
    shop.w.screen_on(admin, card.message_id, "Refunded.").await;
    let refunds = shop.ctl.refunds().await.unwrap();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!((refunds[0].payment_id.as_str(), refunds[0].amount.value.as_str()), (p.id.as_str(), "149.00"));
    assert_eq!(count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'refunded'").await, 1);
    assert!(days_left(&shop, eve, &clock).await.unwrap_or(0) <= 0, "the days went back");
    let audited = count(shop.db(), "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = 'refund'").await;
    assert_eq!(audited, 1);
    shop.stop().await;
});

// F1: a refund made in YooKassa's dashboard, not through the bot: its notification makes the
// bot fetch the payment, and one refunded in full is reversed once (the days go back, the user
// is told); copies of the notification change nothing more. A partial refund is left to the
// operator. With both notifications lost, whatever fetches the payment next records it
// refunded.
db_test!(async fn a_refund_made_in_the_yookassa_dashboard_takes_the_days_back_once(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let dashboard_refund = |payment: String, value: &'static str, key: &'static str| {
        let url = format!("{}/refunds", shop.pay.yookassa_api_url());
        let (id, secret) = (shop.pay.yookassa_shop_id().to_owned(), shop.pay.yookassa_secret_key().to_owned());
        async move {
            reqwest::Client::new().post(url).basic_auth(id, Some(secret)).header("Idempotence-Key", key)
                .json(&serde_json::json!({ "payment_id": payment, "amount": { "value": value, "currency": "RUB" } }))
                .send().await.unwrap().status().as_u16()
        }
    };
    let refunded = "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE status = 'refunded'";
    let admin = shop.user(ADMIN, "Admin").await;
    let fay = shop.user(300_005, "Fay").await;
    let p = paid_month(&shop, fay, &clock).await;

    // Part of it back: nothing reversed here; the admins are told, once.
    assert_eq!(dashboard_refund(p.id.clone(), "49.00", "dashboard-1").await, 200);
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |n| n.event == "refund.succeeded").await.unwrap();
    assert_eq!(shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap().state, NotificationState::Delivered);
    assert_eq!(count(shop.db(), refunded).await, 0);
    assert_eq!(days_left(&shop, fay, &clock).await, Some(29));
    let alert = shop.w.screen(admin, "was partly refunded at the provider").await;
    assert!(alert.text.as_deref().unwrap_or_default().contains("4900 of 14900"), "{:?}", alert.text);
    let copy = shop.ctl.repeat_notification(n.id, 1).await.unwrap()[0];
    shop.ctl.wait_until_settled(copy, Duration::from_secs(20)).await.unwrap();
    assert_eq!(messages_with(&shop.w, admin, "was partly refunded").await, 1);

    // The rest back: refunded in full, reversed once.
    assert_eq!(dashboard_refund(p.id.clone(), "100.00", "dashboard-2").await, 200);
    let n = shop.ctl.wait_for_notification(Duration::from_secs(20), |m| m.event == "refund.succeeded" && m.id != n.id && m.repeat_of.is_none()).await.unwrap();
    assert_eq!(shop.ctl.wait_until_settled(n.id, Duration::from_secs(20)).await.unwrap().state, NotificationState::Delivered);
    assert_eq!(count(shop.db(), refunded).await, 1);
    assert!(days_left(&shop, fay, &clock).await.unwrap_or(0) <= 0, "the days went back");
    let told = messages_with(&shop.w, fay, "refunded").await;
    assert!(told >= 1, "the user is told");
    for id in shop.ctl.repeat_notification(n.id, 3).await.unwrap() {
        assert_eq!(shop.ctl.wait_until_settled(id, Duration::from_secs(20)).await.unwrap().state, NotificationState::Delivered);
    }
    assert_eq!(count(shop.db(), refunded).await, 1);
    assert_eq!(messages_with(&shop.w, fay, "refunded").await, told);

    // Paid and refunded in full while neither notification reached the bot: whatever reports
    // the payment next ("I paid" here; the reconciler likewise) records it refunded, and the
    // days it would have bought are not left behind.
    let gus = shop.user(300_006, "Gus").await;
    let page = shop.choose(gus, "1 month", METHOD).await;
    let q = payment_of(&shop, gus).await;
    shop.ctl.drop_next_notifications(Some(Provider::Yookassa), 2).await.unwrap();
    shop.ctl.pay_payment(&q.id).await.unwrap();
    assert_eq!(dashboard_refund(q.id.clone(), "149.00", "dashboard-3").await, 200);
    shop.w.press(gus, &page, "I paid").await;
    wait_for("the refunded payment recorded", Duration::from_secs(20), || async {
        (count(shop.db(), refunded).await == 2).then_some(())
    }).await;
    assert!(days_left(&shop, gus, &clock).await.unwrap_or(0) <= 0, "no days from a refunded payment");
    shop.stop().await;
});

// Fiat top-ups through either provider: a catalog package or a typed amount (each bad input
// with its own answer) credits the balance once; the referrer earns a share of money paid in
// through a provider, and nothing when the balance is spent.
db_test!(async fn fiat_top_ups_credit_the_balance_and_reward_the_referrer_for_money_paid_in(t) {
    use telegram_emulator::NewUser;
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h"), ("CRYPTOPAY_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let (w, db) = (&shop.w, shop.db());
    let ann = shop.user(300_010, "Ann").await;
    let code = tollgate::users::get(db, ann).await.unwrap().unwrap().referral_code;
    let bob = w.tg.create_user(NewUser::new("Bob").id(300_011).language("en")).await.unwrap().id;
    w.tg.send_text(bob, &format!("/start ref_{code}")).await.unwrap();
    w.screen(bob, "Choose an action below.").await;
    let balance = |u: i64| async move { tollgate::users::get(db, u).await.unwrap().unwrap().balance };

    // A package from the balance screen, through YooKassa.
    w.tg.send_text(bob, "/balance").await.unwrap();
    let screen = w.screen(bob, "/topup").await;
    w.press(bob, &screen, "➕ 250").await;
    let choose = w.screen_on(bob, screen.message_id, "choose how to pay").await;
    w.press(bob, &choose, METHOD).await;
    let page = w.screen_on(bob, screen.message_id, "payment page").await;
    assert!(url_button(&page, "Pay").is_some());
    let p = payment_of(&shop, bob).await;
    assert_eq!(p.amount.value, "250.00");
    shop.ctl.pay_payment(&p.id).await.unwrap();
    wait_for("Bob's top-up", Duration::from_secs(20), || async { (balance(bob).await == 25_000).then_some(()) }).await;
    w.screen(bob, "added to your balance").await;
    wait_for("Ann's reward", Duration::from_secs(20), || async { (balance(ann).await == 2_500).then_some(()) }).await;

    // A typed amount: bad ones answered each in its way, nothing created.
    for (typed, answer) in [
        ("/topup", "Send the amount after the command"),
        ("/topup lots", "is not an amount"),
        ("/topup 1.234", "more than two digits"),
        ("/topup 50", "below the smallest top-up"),
        ("/topup 1000000", "above the largest top-up"),
    ] {
        w.tg.send_text(bob, typed).await.unwrap();
        w.screen(bob, answer).await;
    }
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM purchases").await, 1);
    // 500,50 is meant as 500.50; paid in crypto.
    w.tg.send_text(bob, "/topup 500,50").await.unwrap();
    let choose = w.screen(bob, "by 500").await;
    w.press(bob, &choose, "Crypto").await;
    w.screen_on(bob, choose.message_id, "payment page").await;
    let (purchase,): (i64,) = tollgate::on_db!(db, p => sqlx::query_as("SELECT MAX(id) FROM purchases").fetch_one(p).await).unwrap();
    let inv = shop.ctl.invoices().await.unwrap().into_iter()
        .find(|i| i.payload.as_deref() == Some(tollgate::billing::invoice_payload(purchase).as_str())).unwrap();
    assert_eq!(inv.amount, "500.50");
    shop.ctl.pay_invoice(inv.invoice_id).await.unwrap();
    wait_for("the crypto top-up", Duration::from_secs(20), || async { (balance(bob).await == 75_050).then_some(()) }).await;
    wait_for("Ann's second reward", Duration::from_secs(20), || async { (balance(ann).await == 7_505).then_some(()) }).await;

    // Spending the balance on a plan rewards nobody.
    w.tg.send_text(bob, "/buy").await.unwrap();
    let plans = w.screen(bob, "Choose a plan").await;
    w.press(bob, &plans, "1 month").await;
    let pay = w.screen_on(bob, plans.message_id, "Choose how to pay").await;
    w.press(bob, &pay, "From balance").await;
    wait_for("the plan paid from the balance", Duration::from_secs(20), || async { (balance(bob).await == 60_150).then_some(()) }).await;
    assert!(access::subscription_for_user(db, bob).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(balance(ann).await, 7_505, "no reward for spending the balance");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE reason = 'referral_reward'").await, 2);
    shop.stop().await;
});

const RECEIPT_ASK: &str = "For the receipt required by law";

/// The user's stored receipt contact.
async fn receipt_contact(shop: &Shop, user: i64) -> Option<String> {
    tollgate::users::receipt_contact(shop.db(), user)
        .await
        .unwrap()
}

/// A shop whose catalog turns YooKassa receipts on (VAT 22 %, the simplified tax system on
/// income), against an emulated shop with fiscalization on (which refuses a payment without a
/// valid receipt).
async fn fiscal_shop(t: &crate::common::TestDb, clock: &ShiftedClock) -> Option<Shop> {
    let mut config = payment_emulator::PaymentEmulatorConfig::default();
    config.yookassa.fiscalization_enabled = true;
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Shop { w, pay, ctl } = Shop::start_on(t, &env, shop_options(clock), config).await?;
    let w = w
        .restart(shop_options(clock), |c| {
            c.replacen("receipts = false", "receipts = true", 1)
                .replacen("vat_code = 1 ", "vat_code = 11\ntax_system_code = 2\n# ", 1)
        })
        .await;
    Some(Shop { w, pay, ctl })
}

// Issue 25 (54-FZ): with receipts on, the first YooKassa purchase asks for the contact once; a
// bad answer gets its reason and stores nothing; a good one is kept (a phone as digits) and
// the payment is made with its receipt (the fiscal emulator refuses one without); the next
// purchase does not ask again.
db_test!(async fn yookassa_receipts_ask_for_the_contact_once_and_keep_it(t) {
    let clock = ShiftedClock::new();
    let Some(shop) = fiscal_shop(t, &clock).await else { return };
    let w = &shop.w;
    let ann = shop.user(300_101, "Ann").await;
    receipt_question_before_paying(&shop, ann, "1 month").await;
    assert!(shop.ctl.payments().await.unwrap().is_empty(), "nothing is paid before the contact");

    for (typed, reason) in [
        ("ann@example", "This is not an email address"),
        ("+7 900 12", "This is not a phone number"),
    ] {
        w.tg.send_text(ann, typed).await.unwrap();
        let m = w.screen(ann, reason).await;
        assert!(m.text.as_deref().unwrap_or_default().contains(RECEIPT_ASK), "the question stays open");
        assert_eq!(receipt_contact(&shop, ann).await, None);
        assert!(shop.ctl.payments().await.unwrap().is_empty());
    }

    w.tg.send_text(ann, "+7 (900) 123-45-67").await.unwrap();
    let page = w.screen(ann, "Receipts will go to 79001234567").await;
    assert!(page.text.as_deref().unwrap_or_default().contains("payment page"), "{:?}", page.text);
    assert_eq!(receipt_contact(&shop, ann).await.as_deref(), Some("79001234567"));
    let p = payment_of(&shop, ann).await;
    assert_eq!(p.receipt_registration.as_deref(), Some("pending"), "the payment carries a receipt");
    let receipt = shop.ctl.payment_receipt(&p.id).await.unwrap().expect("a receipt");
    assert_eq!(receipt["customer"], serde_json::json!({ "phone": "79001234567" }));
    assert_eq!(receipt["items"][0]["vat_code"], serde_json::json!(11));
    assert_eq!(receipt["tax_system_code"], serde_json::json!(2));
    assert_eq!((p.amount.value.as_str(), p.amount.currency.as_str()), ("149.00", "RUB"));

    // A second purchase: straight to its payment page, with a receipt, no question.
    let asked = messages_with(w, ann, RECEIPT_ASK).await;
    assert_eq!(asked, 3, "the question, and again under each refusal");
    let page = shop.choose(ann, "3 months", METHOD).await;
    assert!(page.text.as_deref().unwrap_or_default().contains("payment page"), "{:?}", page.text);
    let p = payment_of(&shop, ann).await;
    assert_eq!(p.amount.value, "399.00");
    assert_eq!(p.receipt_registration.as_deref(), Some("pending"));
    let receipt = shop.ctl.payment_receipt(&p.id).await.unwrap().expect("a receipt");
    assert_eq!(receipt["customer"]["phone"], "79001234567");
    assert_eq!(messages_with(w, ann, RECEIPT_ASK).await, asked, "not asked again");
    shop.stop().await;
});

// Receipts off (the default): no question, no receipt, nothing stored.
db_test!(async fn yookassa_without_receipts_asks_nothing(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let bob = shop.user(300_102, "Bob").await;
    let page = shop.choose(bob, "1 month", METHOD).await;
    assert!(page.text.as_deref().unwrap_or_default().contains("payment page"), "{:?}", page.text);
    let p = payment_of(&shop, bob).await;
    assert_eq!(p.receipt_registration, None);
    assert_eq!(shop.ctl.payment_receipt(&p.id).await.unwrap(), None);
    assert_eq!(messages_with(&shop.w, bob, RECEIPT_ASK).await, 0);
    assert_eq!(receipt_contact(&shop, bob).await, None);
    shop.stop().await;
});

// A fiat top-up through YooKassa asks the same way, and an email is kept as typed.
db_test!(async fn a_yookassa_top_up_asks_for_the_receipt_contact_too(t) {
    let clock = ShiftedClock::new();
    let Some(shop) = fiscal_shop(t, &clock).await else { return };
    let w = &shop.w;
    let cid = shop.user(300_103, "Cid").await;
    w.tg.send_text(cid, "/topup 500").await.unwrap();
    let choose = w.screen(cid, "by 500").await;
    w.press(cid, &choose, METHOD).await;
    w.screen(cid, RECEIPT_ASK).await;
    w.tg.send_text(cid, "cid@example.com").await.unwrap();
    let page = w.screen(cid, "Receipts will go to cid@example.com").await;
    assert!(page.text.as_deref().unwrap_or_default().contains("payment page"), "{:?}", page.text);
    assert_eq!(receipt_contact(&shop, cid).await.as_deref(), Some("cid@example.com"));
    let p = payment_of(&shop, cid).await;
    assert_eq!(p.amount.value, "500.00");
    let receipt = shop.ctl.payment_receipt(&p.id).await.unwrap().expect("a receipt");
    assert_eq!(receipt["customer"], serde_json::json!({ "email": "cid@example.com" }));
    shop.stop().await;
});

const RECEIPT_CHANGE_ASK: &str = "Send the email or phone number your receipts should go to";
const NO_CONTACT: &str = "No email or phone for receipts yet";
const NOT_UNDERSTOOD: &str = "I didn't get that";

/// The user's stored questions (what their next text answers), of any kind.
async fn questions(shop: &Shop, user: i64) -> i64 {
    tollgate::on_db!(shop.db(), p => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM admin_prompts WHERE admin_id = $1").bind(user).fetch_one(p).await)
    .unwrap()
}

/// Sends `text` as `user` and waits for the bot's answer containing `needle`, newer than
/// anything the bot said before.
async fn answer_to(shop: &Shop, user: i64, text: &str, needle: &str) -> TranscriptMessage {
    let before = shop.w.last(user).await.message_id;
    shop.w.tg.send_text(user, text).await.unwrap();
    crate::common::bot::screen_after(&shop.w.tg, user, before, needle).await
}

/// /buy → `plan` → YooKassa by a user without a receipt contact: the question's screen.
async fn receipt_question_before_paying(shop: &Shop, user: i64, plan: &str) -> TranscriptMessage {
    let plans = answer_to(shop, user, "/buy", "Choose a plan").await;
    shop.w.press(user, &plans, plan).await;
    let pay = shop
        .w
        .screen_on(user, plans.message_id, "Choose how to pay")
        .await;
    shop.w.press(user, &pay, METHOD).await;
    shop.w.screen_on(user, pay.message_id, RECEIPT_ASK).await
}

/// /receipt, showing `shown`, → ✏️ (Change, or Enter when none is set): the question for a
/// new contact.
async fn receipt_change_question(shop: &Shop, user: i64, shown: &str) -> TranscriptMessage {
    let screen = answer_to(shop, user, "/receipt", shown).await;
    shop.w.press(user, &screen, "✏️").await;
    shop.w
        .screen_on(user, screen.message_id, RECEIPT_CHANGE_ASK)
        .await
}

/// `user`'s next text after leaving a receipt question is an ordinary message: not kept as
/// a contact, and no question waits for one.
async fn not_taken_as_a_contact(shop: &Shop, user: i64) {
    answer_to(shop, user, "someone@example.com", NOT_UNDERSTOOD).await;
    assert_eq!(
        receipt_contact(shop, user).await,
        None,
        "not taken as a contact"
    );
    assert_eq!(questions(shop, user).await, 0);
}

/// `user`'s card, as `admin` finds it in the console.
async fn user_card(shop: &Shop, admin: i64, user: i64) -> String {
    let home = answer_to(shop, admin, "/admin", "Admin console").await;
    shop.w.press(admin, &home, "Find a user").await;
    shop.w
        .screen_on(admin, home.message_id, "Send the user's Telegram id")
        .await;
    let card = answer_to(shop, admin, &user.to_string(), "Balance:").await;
    card.text.unwrap_or_default()
}

// A contact given with a typo is changed on the Receipts screen (/receipt): a bad answer is
// refused with its reason and keeps the old one; a good one replaces it, and the next
// YooKassa payment's receipt goes to the new contact without asking.
db_test!(async fn a_changed_receipt_contact_is_the_one_the_next_payment_carries(t) {
    let clock = ShiftedClock::new();
    let Some(shop) = fiscal_shop(t, &clock).await else { return };
    let w = &shop.w;
    let ann = shop.user(300_111, "Ann").await;
    receipt_question_before_paying(&shop, ann, "1 month").await;
    answer_to(&shop, ann, "ann@exmaple.com", "Receipts will go to ann@exmaple.com").await;
    let first = payment_of(&shop, ann).await;
    let receipt = shop.ctl.payment_receipt(&first.id).await.unwrap().expect("a receipt");
    assert_eq!(receipt["customer"]["email"], "ann@exmaple.com");

    receipt_change_question(&shop, ann, "go to ann@exmaple.com").await;
    for (typed, reason) in [("ann@example", "This is not an email address"), ("12345", "This is not a phone number")] {
        let m = answer_to(&shop, ann, typed, reason).await;
        assert!(m.text.as_deref().unwrap_or_default().contains(RECEIPT_CHANGE_ASK), "the question stays open: {:?}", m.text);
        assert_eq!(receipt_contact(&shop, ann).await.as_deref(), Some("ann@exmaple.com"), "the old contact is kept");
    }
    let m = answer_to(&shop, ann, "+7 (900) 123-45-67", "Receipts will go to 79001234567").await;
    assert!(m.text.as_deref().unwrap_or_default().contains("go to 79001234567."), "the Receipts screen with the new one: {:?}", m.text);
    assert_eq!(receipt_contact(&shop, ann).await.as_deref(), Some("79001234567"));
    assert_eq!(questions(&shop, ann).await, 0, "answered");

    let asked = messages_with(w, ann, RECEIPT_ASK).await;
    let page = shop.choose(ann, "3 months", METHOD).await;
    assert!(page.text.as_deref().unwrap_or_default().contains("payment page"), "{:?}", page.text);
    let p = payment_of(&shop, ann).await;
    assert_ne!(p.id, first.id);
    let receipt = shop.ctl.payment_receipt(&p.id).await.unwrap().expect("a receipt");
    assert_eq!(receipt["customer"], serde_json::json!({ "phone": "79001234567" }));
    assert_eq!(messages_with(w, ann, RECEIPT_ASK).await, asked, "not asked again");
    shop.stop().await;
});

// Leaving a receipt question — its Back button, another button, a command — forgets it: the
// next text is an ordinary message, not a contact. Remove forgets the contact, and the next
// YooKassa payment asks again.
db_test!(async fn leaving_the_receipt_question_forgets_it_and_remove_makes_the_next_payment_ask(t) {
    let clock = ShiftedClock::new();
    let Some(shop) = fiscal_shop(t, &clock).await else { return };
    let w = &shop.w;
    let bob = shop.user(300_112, "Bob").await;

    // The purchase's question, left with Back: the plan list.
    let ask = receipt_question_before_paying(&shop, bob, "1 month").await;
    assert_eq!(questions(&shop, bob).await, 1);
    w.press(bob, &ask, "Back").await;
    w.screen_on(bob, ask.message_id, "Choose a plan").await;
    not_taken_as_a_contact(&shop, bob).await;
    assert!(shop.ctl.payments().await.unwrap().is_empty());

    // 💰 Balance → 🧾 Receipts → Enter, left with Back.
    let balance = answer_to(&shop, bob, "/balance", "Balance").await;
    w.press(bob, &balance, "Receipts").await;
    let screen = w.screen_on(bob, balance.message_id, NO_CONTACT).await;
    w.press(bob, &screen, "Enter an email or phone").await;
    let ask = w.screen_on(bob, screen.message_id, RECEIPT_CHANGE_ASK).await;
    w.press(bob, &ask, "Back").await;
    w.screen_on(bob, ask.message_id, NO_CONTACT).await;
    not_taken_as_a_contact(&shop, bob).await;

    // Left with another button (Menu) and with a command.
    let ask = receipt_change_question(&shop, bob, NO_CONTACT).await;
    w.press(bob, &ask, "Menu").await;
    w.screen_on(bob, ask.message_id, "Choose an action below.").await;
    not_taken_as_a_contact(&shop, bob).await;
    receipt_change_question(&shop, bob, NO_CONTACT).await;
    answer_to(&shop, bob, "/menu", "Choose an action below.").await;
    not_taken_as_a_contact(&shop, bob).await;

    // Entered, then removed: the screen says so, and the next YooKassa payment asks again.
    receipt_change_question(&shop, bob, NO_CONTACT).await;
    let saved = answer_to(&shop, bob, "bob@example.com", "Receipts will go to bob@example.com").await;
    assert_eq!(receipt_contact(&shop, bob).await.as_deref(), Some("bob@example.com"));
    w.press(bob, &saved, "Remove").await;
    let removed = w.screen_on(bob, saved.message_id, "Removed").await;
    assert!(removed.text.as_deref().unwrap_or_default().contains(NO_CONTACT), "{:?}", removed.text);
    assert_eq!(receipt_contact(&shop, bob).await, None);
    let asked = messages_with(w, bob, RECEIPT_ASK).await;
    receipt_question_before_paying(&shop, bob, "1 month").await;
    assert_eq!(messages_with(w, bob, RECEIPT_ASK).await, asked + 1, "asked again");
    assert!(shop.ctl.payments().await.unwrap().is_empty(), "nothing is paid before the contact");
    shop.stop().await;
});

// The admin's user card shows the receipt contact, escaped in the card's HTML (`&` is the one
// sign an address may hold that HTML gives a meaning to).
db_test!(async fn the_admin_user_card_shows_the_receipt_contact(t) {
    let clock = ShiftedClock::new();
    let Some(shop) = fiscal_shop(t, &clock).await else { return };
    let admin = shop.user(ADMIN, "Admin").await;
    let cid = shop.user(300_113, "Cid").await;
    let none = user_card(&shop, admin, cid).await;
    assert!(none.contains(&cid.to_string()) && !none.contains("Receipts to"), "none set: {none:?}");

    receipt_change_question(&shop, cid, NO_CONTACT).await;
    answer_to(&shop, cid, "cid&co@example.com", "Receipts will go to cid&co@example.com").await;
    let set = user_card(&shop, admin, cid).await;
    assert!(set.contains("Receipts to: cid&co@example.com"), "{set:?}");
    shop.stop().await;
});

// Receipts off: /receipt says this shop sends none, and the balance has no Receipts button.
db_test!(async fn with_receipts_off_the_receipt_command_says_none_are_sent(t) {
    let clock = ShiftedClock::new();
    let env = [("YOOKASSA_POLL_INTERVAL", "1h")];
    let Some(shop) = Shop::start(t, &env, shop_options(&clock)).await else { return };
    let dan = shop.user(300_114, "Dan").await;
    let m = answer_to(&shop, dan, "/receipt", "This shop does not send receipts").await;
    assert!(m.button_data("✏️").is_none(), "{:?}", m.callback_buttons());
    let balance = answer_to(&shop, dan, "/balance", "Balance").await;
    assert!(balance.button_data("Receipts").is_none(), "{:?}", balance.callback_buttons());
    shop.stop().await;
});
