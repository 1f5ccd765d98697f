//! Notification delivery: retries with growing delays, drop, delay, repeat; injected faults.

use std::time::Duration;

use payment_emulator::{ControlClient, FaultKind, Notification, NotificationState, Provider};
use serde_json::{Value, json};

use crate::common::{Receiver, emulator};
use crate::cryptopay::call;
use crate::yookassa::post;

fn small_invoice() -> Value {
    json!({"asset": "USDT", "amount": "2.5", "payload": "p"})
}

/// Creates an invoice through the API; its id.
async fn create_invoice(emulator: &payment_emulator::RunningPaymentEmulator) -> i64 {
    let (status, created) = call(emulator, "createInvoice", small_invoice()).await;
    assert_eq!(status, 200, "{created}");
    created["result"]["invoice_id"].as_i64().expect("id")
}

#[tokio::test]
async fn failed_webhooks_are_retried_with_growing_delays_until_200() {
    // Retries far apart in emulated time, so only the test's clock jumps trigger them.
    let mut config = payment_emulator::PaymentEmulatorConfig::default();
    config.webhooks.first_retry = Duration::from_secs(30);
    config.webhooks.max_retry = Duration::from_secs(600);
    let emulator = payment_emulator::PaymentEmulator::start(config)
        .await
        .expect("start");
    let hook = Receiver::of(&emulator, Provider::Cryptopay).await;
    hook.answer(500);
    let control = emulator.client();
    let id = create_invoice(&emulator).await;
    control.pay_invoice(id).await.expect("pay");
    let first = hook.wait_for(1).await;
    let notification = control
        .wait_for_notification(Duration::from_secs(5), |n| {
            n.attempts.len() == 1 && n.state == NotificationState::Pending
        })
        .await
        .expect("first attempt failed and is pending");
    assert_eq!(notification.attempts[0].status, Some(500));
    // Retries run on emulated time: 30 s after the first failure, then 60 s.
    control
        .advance_clock(Duration::from_secs(31))
        .await
        .expect("advance");
    hook.wait_for(2).await;
    let notification = control
        .wait_for_notification(Duration::from_secs(5), |n| {
            n.attempts.len() == 2 && n.state == NotificationState::Pending
        })
        .await
        .expect("second attempt failed");
    let gap = notification.next_attempt_at_ms.expect("scheduled") - notification.attempts[1].at_ms;
    assert!(
        (60_000..61_000).contains(&gap),
        "second retry after ~60 s, got {gap} ms"
    );
    hook.answer(200);
    control
        .advance_clock(Duration::from_secs(61))
        .await
        .expect("advance");
    let settled = control
        .wait_until_settled(notification.id, Duration::from_secs(5))
        .await
        .expect("settled");
    assert_eq!(settled.state, NotificationState::Delivered);
    assert_eq!(settled.attempts.len(), 3);
    let received = hook.received();
    assert!(
        received.iter().all(|r| r.body == first[0].body),
        "same bytes every time"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn dropped_delayed_and_repeated_notifications() {
    let emulator = emulator().await;
    let hook = Receiver::of(&emulator, Provider::Cryptopay).await;
    let control = emulator.client();
    control
        .drop_next_notifications(Some(Provider::Cryptopay), 1)
        .await
        .expect("rule");
    control
        .delay_next_notifications(None, 1, Duration::from_secs(60))
        .await
        .expect("rule");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = create_invoice(&emulator).await;
        control.pay_invoice(id).await.expect("pay");
        ids.push(id);
    }
    // The first is dropped, the second delayed, the third sent at once.
    hook.wait_for(1).await;
    let notes = control.notifications().await.expect("list");
    assert_eq!(notes.len(), 3);
    assert_eq!(notes[0].state, NotificationState::Dropped);
    assert_eq!(notes[1].state, NotificationState::Pending);
    let third: Value = serde_json::from_slice(&hook.received()[0].body).expect("json");
    assert_eq!(third["payload"]["invoice_id"], ids[2]);
    control
        .advance_clock(Duration::from_secs(61))
        .await
        .expect("advance");
    hook.wait_for(2).await;
    // A provider redelivering: the same bytes, the same signature, ten more times.
    let copies = control
        .repeat_notification(notes[2].id, 10)
        .await
        .expect("repeat");
    assert_eq!(copies.len(), 10);
    let received = hook.wait_for(12).await;
    let copies_received = received
        .iter()
        .filter(|r| r.body == received[0].body)
        .count();
    assert_eq!(copies_received, 11);
    // A dropped notification can still be sent on demand.
    control.deliver_now(notes[0].id).await.expect("deliver");
    hook.wait_for(13).await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn faults_fail_or_hang_the_next_calls() {
    let emulator = emulator().await;
    let control = emulator.client();
    control
        .fail_next("createInvoice", 2, FaultKind::ServerError)
        .await
        .expect("fault");
    for _ in 0..2 {
        let (status, body) = call(&emulator, "createInvoice", small_invoice()).await;
        assert_eq!(status, 500);
        assert_eq!(body["error"]["name"], "INTERNAL_ERROR");
    }
    assert!(
        control.invoices().await.expect("list").is_empty(),
        "nothing executed"
    );
    create_invoice(&emulator).await;

    // A hang longer than the client's deadline: the client is cut off, the call still executes.
    control
        .fail_next("createInvoice", 1, FaultKind::Hang { ms: 1500 })
        .await
        .expect("fault");
    let cut = reqwest::Client::new()
        .post(format!("{}/createInvoice", emulator.cryptopay_api_url()))
        .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
        .json(&json!({"asset": "USDT", "amount": "1"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(cut.is_err_and(|e| e.is_timeout()));
    control
        .wait_for_calls("createInvoice", 4, Duration::from_secs(5))
        .await
        .expect("the hung call completed");
    assert_eq!(
        control.invoices().await.expect("list").len(),
        2,
        "and executed"
    );

    // YooKassa: executed, then 500; the retry with the same key gets the same payment.
    control
        .fail_next("payments.create", 1, FaultKind::ServerErrorAfterExecuting)
        .await
        .expect("fault");
    let body = json!({"amount": {"value": "10.00", "currency": "RUB"}, "capture": true});
    let (status, error) = post(&emulator, "payments", "purchase-7", &body).await;
    assert_eq!(status, 500);
    assert_eq!(error["code"], "internal_server_error");
    let (_, retry) = post(&emulator, "payments", "purchase-7", &body).await;
    let payments = control.payments().await.expect("list");
    assert_eq!(payments.len(), 1, "one payment despite the retry");
    assert_eq!(retry["id"], json!(payments[0].id));

    let refused = control
        .fail_next("noSuchMethod", 1, FaultKind::ServerError)
        .await
        .expect_err("unknown method");
    assert!(refused.to_string().contains("unknown method"), "{refused}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn cryptopay_gives_up_after_17_attempts_and_yookassa_after_24_hours() {
    let emulator = emulator().await;
    let hook = Receiver::of(&emulator, Provider::Cryptopay).await;
    hook.answer(503);
    let control = emulator.client();
    control
        .set_webhook(Provider::Yookassa, Some(&hook.url))
        .await
        .expect("set");
    let id = create_invoice(&emulator).await;
    control.pay_invoice(id).await.expect("pay");
    // Retries are at most max_retry (60 s) apart in this configuration: jump past each.
    let gave_up = until_given_up(&control, Provider::Cryptopay, Duration::from_secs(61)).await;
    assert_eq!(gave_up.attempts.len(), 17);
    assert!(gave_up.attempts.iter().all(|a| a.status == Some(503)));

    // YooKassa: no attempt limit, a 24-hour window.
    let (_, payment) = post(
        &emulator,
        "payments",
        "window",
        &json!({"amount": {"value": "10.00", "currency": "RUB"}, "capture": true}),
    )
    .await;
    control
        .pay_payment(payment["id"].as_str().expect("id"))
        .await
        .expect("pay");
    let settled = until_given_up(&control, Provider::Yookassa, Duration::from_secs(3600)).await;
    let last = settled.attempts.last().expect("attempts").at_ms;
    assert!(
        last - settled.created_at_ms <= 24 * 3600 * 1000,
        "within 24 h"
    );
    assert!(
        settled.attempts.len() > 17,
        "{} attempts",
        settled.attempts.len()
    );
    emulator.shutdown().await;
}

/// `provider`'s notification once the emulator gave up on it, the emulated clock jumping `step`
/// whenever it waits for a retry (30 s of real time at most).
async fn until_given_up(
    control: &ControlClient,
    provider: Provider,
    step: Duration,
) -> Notification {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let note = control
            .notifications()
            .await
            .expect("list")
            .into_iter()
            .find(|n| n.provider == provider)
            .expect("queued");
        if note.state == NotificationState::GaveUp {
            return note;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never gave up: {note:?}"
        );
        if note.state == NotificationState::Pending && !note.attempts.is_empty() {
            control.advance_clock(step).await.expect("advance");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
