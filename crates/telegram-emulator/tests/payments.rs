//! The Stars payment flow (invoice rules, pre-checkout handshake within 10 s, successful_payment,
//! refunds once, Star transactions), invoice links, subscriptions and card payments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{assert_error, call, config_without_limits, ok, start, started_user};
use serde_json::{Value, json};
use telegram_emulator::{PaymentStatus, RunningEmulator};

const WAIT: Duration = Duration::from_secs(10);

fn stars_invoice(chat_id: i64) -> Value {
    json!({
        "chat_id": chat_id,
        "title": "VPN 30 days",
        "description": "Unlimited traffic, 3 devices",
        "payload": "purchase:42",
        "currency": "XTR",
        "prices": [{"label": "30 days", "amount": 100}]
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// Polls getUpdates (as a bot would) until an update of `kind` arrives; confirms what it read.
async fn next_update(emulator: &RunningEmulator, offset: &mut i64, kind: &str) -> Value {
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        let updates = ok(&call(
            emulator,
            "getUpdates",
            json!({"offset": *offset, "timeout": 1}),
        )
        .await);
        let mut found = None;
        for update in updates.as_array().unwrap() {
            *offset = update["update_id"].as_i64().unwrap() + 1;
            if found.is_none() && update.get(kind).is_some() {
                found = Some(update[kind].clone());
            }
        }
        if let Some(found) = found {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no {kind} update within {WAIT:?}"
        );
    }
}

#[tokio::test]
async fn invoice_rules() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 1, "Rules").await;
    let stars = stars_invoice(1);
    assert_error(
        &call(
            &emulator,
            "sendInvoice",
            with(stars.clone(), json!({"provider_token": "123:TEST:x"})),
        )
        .await,
        400,
        "Bad Request: STARS_INVOICE_INVALID",
    );
    assert_error(
        &call(
            &emulator,
            "sendInvoice",
            with(
                stars.clone(),
                json!({"prices": [{"label": "a", "amount": 50}, {"label": "b", "amount": 50}]}),
            ),
        )
        .await,
        400,
        "Bad Request: STARS_INVOICE_INVALID",
    );
    assert_error(
        &call(
            &emulator,
            "sendInvoice",
            with(stars.clone(), json!({"payload": "p".repeat(129)})),
        )
        .await,
        400,
        "Bad Request: INVOICE_PAYLOAD_INVALID",
    );
    ok(&call(
        &emulator,
        "sendInvoice",
        with(stars.clone(), json!({"payload": "p".repeat(128)})),
    )
    .await);
    assert_error(
        &call(
            &emulator,
            "sendInvoice",
            with(stars.clone(), json!({"payload": ""})),
        )
        .await,
        400,
        "Bad Request: parameter \"payload\" is required",
    );
    assert_error(
        &call(
            &emulator,
            "sendInvoice",
            with(stars.clone(), json!({"prices": []})),
        )
        .await,
        400,
        "Bad Request: there must be at least one price",
    );
    assert_error(
        &call(
            &emulator,
            "sendInvoice",
            with(stars.clone(), json!({"currency": "RUB"})),
        )
        .await,
        400,
        "Bad Request: PAYMENT_PROVIDER_INVALID",
    );
    assert_error(
        &call(
            &emulator,
            "sendInvoice",
            with(stars.clone(), json!({"reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "x"}]]}})),
        )
        .await,
        400,
        "Bad Request: REPLY_MARKUP_BUY_EMPTY",
    );
    let sent = ok(&call(&emulator, "sendInvoice", stars).await);
    assert_eq!(
        sent["invoice"],
        json!({"title": "VPN 30 days", "description": "Unlimited traffic, 3 devices", "start_parameter": "", "currency": "XTR", "total_amount": 100})
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn stars_payment_refund_and_transactions() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 2, "Payer").await;
    let invoice = ok(&call(&emulator, "sendInvoice", stars_invoice(2)).await);
    let message_id = invoice["message_id"].as_i64().unwrap();

    let payment = {
        let control = control.clone();
        tokio::spawn(async move { control.pay_invoice(2, message_id).await.unwrap() })
    };
    let mut offset = 0;
    let query = next_update(&emulator, &mut offset, "pre_checkout_query").await;
    assert_eq!(query["from"]["id"], json!(2));
    assert_eq!(query["currency"], json!("XTR"));
    assert_eq!(query["total_amount"], json!(100));
    assert_eq!(query["invoice_payload"], json!("purchase:42"));
    assert_eq!(
        ok(&call(
            &emulator,
            "answerPreCheckoutQuery",
            json!({"pre_checkout_query_id": query["id"], "ok": true})
        )
        .await),
        json!(true)
    );
    let outcome = payment.await.unwrap();
    assert_eq!(outcome.status, PaymentStatus::Paid);
    let charge = outcome.telegram_payment_charge_id.clone().unwrap();

    let message = next_update(&emulator, &mut offset, "message").await;
    let paid = &message["successful_payment"];
    assert_eq!(paid["currency"], json!("XTR"));
    assert_eq!(paid["total_amount"], json!(100));
    assert_eq!(paid["invoice_payload"], json!("purchase:42"));
    assert_eq!(paid["telegram_payment_charge_id"], json!(charge));
    assert_eq!(paid["provider_payment_charge_id"], json!(""));
    assert_eq!(message["from"]["id"], json!(2));

    // Answering twice is rejected; an invoice message is paid once.
    assert_error(
        &call(
            &emulator,
            "answerPreCheckoutQuery",
            json!({"pre_checkout_query_id": query["id"], "ok": true}),
        )
        .await,
        400,
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
    );
    let transcript = control.transcript(2).await.unwrap();
    let invoice_message = transcript
        .messages
        .iter()
        .find(|m| m.kind == "invoice")
        .unwrap();
    assert_eq!(
        invoice_message
            .invoice
            .as_ref()
            .unwrap()
            .paid_by_charge
            .as_deref(),
        Some(charge.as_str())
    );
    assert!(control.pay_invoice(2, message_id).await.is_err());

    let transactions = ok(&call(&emulator, "getStarTransactions", json!({})).await);
    assert_eq!(transactions["transactions"][0]["id"], json!(charge));
    assert_eq!(transactions["transactions"][0]["amount"], json!(100));
    assert_eq!(
        transactions["transactions"][0]["source"]["type"],
        json!("user")
    );
    assert_eq!(
        transactions["transactions"][0]["source"]["transaction_type"],
        json!("invoice_payment")
    );
    assert_eq!(
        transactions["transactions"][0]["source"]["user"]["id"],
        json!(2)
    );
    assert_eq!(
        transactions["transactions"][0]["source"]["invoice_payload"],
        json!("purchase:42")
    );
    assert_eq!(
        ok(&call(&emulator, "getMyStarBalance", json!({})).await),
        json!({"amount": 100})
    );

    // Refund once; the second time Telegram says it is already refunded.
    assert_eq!(
        ok(&call(
            &emulator,
            "refundStarPayment",
            json!({"user_id": 2, "telegram_payment_charge_id": charge})
        )
        .await),
        json!(true)
    );
    assert_error(
        &call(
            &emulator,
            "refundStarPayment",
            json!({"user_id": 2, "telegram_payment_charge_id": charge}),
        )
        .await,
        400,
        "Bad Request: CHARGE_ALREADY_REFUNDED",
    );
    assert_error(
        &call(
            &emulator,
            "refundStarPayment",
            json!({"user_id": 2, "telegram_payment_charge_id": "stxNOPE"}),
        )
        .await,
        400,
        "Bad Request: CHARGE_NOT_FOUND",
    );
    let refund = next_update(&emulator, &mut offset, "message").await;
    assert_eq!(
        refund["refunded_payment"]["telegram_payment_charge_id"],
        json!(charge)
    );
    assert_eq!(refund["refunded_payment"]["total_amount"], json!(100));
    let transactions = ok(&call(&emulator, "getStarTransactions", json!({})).await);
    assert_eq!(
        transactions["transactions"][1]["receiver"]["user"]["id"],
        json!(2)
    );
    // Chronological by default (as documented); newest first when the control API says so,
    // with offset and limit applied to that order.
    control
        .set_star_transactions_newest_first(true)
        .await
        .unwrap();
    let newest_first = ok(&call(&emulator, "getStarTransactions", json!({})).await);
    assert!(newest_first["transactions"][0]["receiver"].is_object());
    assert!(newest_first["transactions"][1]["source"].is_object());
    let second = ok(&call(
        &emulator,
        "getStarTransactions",
        json!({"offset": 1, "limit": 1}),
    )
    .await);
    assert_eq!(second["transactions"].as_array().map(Vec::len), Some(1));
    assert!(second["transactions"][0]["source"].is_object());
    control
        .set_star_transactions_newest_first(false)
        .await
        .unwrap();
    let chronological = ok(&call(&emulator, "getStarTransactions", json!({})).await);
    assert!(chronological["transactions"][0]["source"].is_object());
    assert_eq!(
        ok(&call(&emulator, "getMyStarBalance", json!({})).await),
        json!({"amount": 0})
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn unanswered_pre_checkout_fails_the_payment() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 3, "Waiter").await;
    let invoice = ok(&call(&emulator, "sendInvoice", stars_invoice(3)).await);
    let message_id = invoice["message_id"].as_i64().unwrap();
    let payment = {
        let control = control.clone();
        tokio::spawn(async move { control.pay_invoice(3, message_id).await.unwrap() })
    };
    let mut offset = 0;
    let query = next_update(&emulator, &mut offset, "pre_checkout_query").await;
    // The bot is too slow: 10 s of emulated time pass without an answer.
    control.advance_time(11.0).await.unwrap();
    let outcome = payment.await.unwrap();
    assert_eq!(outcome.status, PaymentStatus::Timeout);
    assert_eq!(outcome.telegram_payment_charge_id, None);
    assert_error(
        &call(
            &emulator,
            "answerPreCheckoutQuery",
            json!({"pre_checkout_query_id": query["id"], "ok": true}),
        )
        .await,
        400,
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
    );
    let transcript = control.transcript(3).await.unwrap();
    assert!(
        transcript
            .messages
            .iter()
            .all(|m| m.kind != "successful_payment")
    );
    assert_eq!(
        ok(&call(&emulator, "getStarTransactions", json!({})).await),
        json!({"transactions": []})
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn declined_pre_checkout_needs_an_error_message() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 4, "Decline").await;
    let invoice = ok(&call(&emulator, "sendInvoice", stars_invoice(4)).await);
    let message_id = invoice["message_id"].as_i64().unwrap();
    let payment = {
        let control = control.clone();
        tokio::spawn(async move { control.pay_invoice(4, message_id).await.unwrap() })
    };
    let mut offset = 0;
    let query = next_update(&emulator, &mut offset, "pre_checkout_query").await;
    assert_error(
        &call(
            &emulator,
            "answerPreCheckoutQuery",
            json!({"pre_checkout_query_id": query["id"], "ok": false}),
        )
        .await,
        400,
        "Bad Request: parameter \"error_message\" is required",
    );
    ok(&call(
        &emulator,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": query["id"], "ok": false, "error_message": "Plan no longer available"}),
    )
    .await);
    let outcome = payment.await.unwrap();
    assert_eq!(outcome.status, PaymentStatus::Declined);
    assert_eq!(
        outcome.error_message.as_deref(),
        Some("Plan no longer available")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn invoice_links_subscriptions_and_card_payments() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 5, "Linker").await;
    let link_params = json!({
        "title": "Monthly", "description": "Auto-renewing", "payload": "sub:1", "currency": "XTR",
        "prices": [{"label": "Month", "amount": 250}], "subscription_period": 2_592_000
    });
    let link = ok(&call(&emulator, "createInvoiceLink", link_params.clone()).await);
    let link = link.as_str().unwrap().to_owned();
    assert!(link.starts_with("https://t.me/$"), "{link}");
    assert_error(
        &call(
            &emulator,
            "createInvoiceLink",
            with(link_params.clone(), json!({"subscription_period": 86_400})),
        )
        .await,
        400,
        "Bad Request: SUBSCRIPTION_PERIOD_INVALID",
    );

    let payment = {
        let control = control.clone();
        let link = link.clone();
        tokio::spawn(async move { control.pay_invoice_link(5, &link).await.unwrap() })
    };
    let mut offset = 0;
    let query = next_update(&emulator, &mut offset, "pre_checkout_query").await;
    assert_eq!(query["invoice_payload"], json!("sub:1"));
    ok(&call(
        &emulator,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": query["id"], "ok": true}),
    )
    .await);
    assert_eq!(payment.await.unwrap().status, PaymentStatus::Paid);
    let message = next_update(&emulator, &mut offset, "message").await;
    let paid = &message["successful_payment"];
    assert_eq!(paid["is_recurring"], json!(true));
    assert_eq!(paid["is_first_recurring"], json!(true));
    assert_eq!(
        paid["subscription_expiration_date"].as_i64().unwrap() - message["date"].as_i64().unwrap(),
        2_592_000
    );
    let transactions = ok(&call(&emulator, "getStarTransactions", json!({})).await);
    assert_eq!(
        transactions["transactions"][0]["source"]["subscription_period"],
        json!(2_592_000)
    );

    // A card invoice through the configured provider.
    let card = ok(&call(
        &emulator,
        "sendInvoice",
        json!({
            "chat_id": 5, "title": "VPN", "description": "30 days", "payload": "card:9", "currency": "RUB",
            "provider_token": telegram_emulator::config::DEFAULT_PROVIDER_TOKEN,
            "prices": [{"label": "Plan", "amount": 29_900}, {"label": "Discount", "amount": -5_000}]
        }),
    )
    .await);
    assert_eq!(card["invoice"]["total_amount"], json!(24_900));
    let payment = {
        let control = control.clone();
        let id = card["message_id"].as_i64().unwrap();
        tokio::spawn(async move { control.pay_invoice(5, id).await.unwrap() })
    };
    let query = next_update(&emulator, &mut offset, "pre_checkout_query").await;
    assert_eq!(query["currency"], json!("RUB"));
    ok(&call(
        &emulator,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": query["id"], "ok": true}),
    )
    .await);
    let outcome = payment.await.unwrap();
    assert_eq!(outcome.status, PaymentStatus::Paid);
    assert!(!outcome.provider_payment_charge_id.unwrap().is_empty());
    let message = next_update(&emulator, &mut offset, "message").await;
    assert_eq!(message["successful_payment"]["currency"], json!("RUB"));
    // Card payments are not Star transactions.
    let transactions = ok(&call(&emulator, "getStarTransactions", json!({})).await);
    assert_eq!(transactions["transactions"].as_array().unwrap().len(), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn abandoning_an_invoice_tells_the_bot_nothing() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 6, "Browser").await;
    let invoice = ok(&call(&emulator, "sendInvoice", stars_invoice(6)).await);
    control
        .abandon_invoice(6, invoice["message_id"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(control.counters().await.unwrap().updates_created, 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn subscription_renewals_and_cancellation() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 7, "Subscriber").await;
    let link = ok(&call(
        &emulator,
        "createInvoiceLink",
        json!({"title": "Monthly", "description": "VPN", "payload": "sub:7", "currency": "XTR",
               "prices": [{"label": "Month", "amount": 300}], "subscription_period": 2_592_000}),
    )
    .await);
    let payment = {
        let control = control.clone();
        let link = link.as_str().unwrap().to_owned();
        tokio::spawn(async move { control.pay_invoice_link(7, &link).await.unwrap() })
    };
    let mut offset = 0;
    let query = next_update(&emulator, &mut offset, "pre_checkout_query").await;
    ok(&call(
        &emulator,
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": query["id"], "ok": true}),
    )
    .await);
    let first = payment.await.unwrap().telegram_payment_charge_id.unwrap();
    let first_message = next_update(&emulator, &mut offset, "message").await;
    let first_expiry = first_message["successful_payment"]["subscription_expiration_date"]
        .as_i64()
        .unwrap();

    // A month later Telegram charges the next period by itself: no pre-checkout query.
    control.advance_time(2_592_000.0).await.unwrap();
    let renewal = control.renew_subscription(&first).await.unwrap();
    assert_eq!(renewal.status, PaymentStatus::Paid);
    let renewed = next_update(&emulator, &mut offset, "message").await;
    let paid = &renewed["successful_payment"];
    assert_eq!(paid["is_recurring"], json!(true));
    assert!(paid.get("is_first_recurring").is_none());
    assert_eq!(
        paid["subscription_expiration_date"].as_i64().unwrap(),
        first_expiry + 2_592_000
    );
    assert_ne!(paid["telegram_payment_charge_id"], json!(first));

    // The bot cancels the extension: no further renewals.
    assert_eq!(
        ok(&call(
            &emulator,
            "editUserStarSubscription",
            json!({"user_id": 7, "telegram_payment_charge_id": first, "is_canceled": true})
        )
        .await),
        json!(true)
    );
    assert!(control.renew_subscription(&first).await.is_err());
    assert_error(
        &call(
            &emulator,
            "editUserStarSubscription",
            json!({"user_id": 8, "telegram_payment_charge_id": first, "is_canceled": true}),
        )
        .await,
        400,
        "Bad Request: CHARGE_NOT_FOUND",
    );
    let transactions = ok(&call(&emulator, "getStarTransactions", json!({})).await);
    assert_eq!(transactions["transactions"].as_array().unwrap().len(), 2);
    assert_eq!(
        ok(&call(&emulator, "getMyStarBalance", json!({})).await),
        json!({"amount": 600})
    );
    emulator.shutdown().await;
}
