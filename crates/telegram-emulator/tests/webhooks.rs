//! Conformance of webhooks: registration, getWebhookInfo, the secret header, Telegram's retry
//! schedule, Retry-After, lifetimes, per-chat ordering and max_connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Receiver, Reply, assert_error, call, config, config_without_limits, ok, pending, set_webhook,
    start, started_user, wait_until,
};
use serde_json::json;
use telegram_emulator::control::types::PressButton;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn registration_and_webhook_info() {
    let emulator = start(config_without_limits()).await;
    let set = set_webhook(
        &emulator,
        "http://127.0.0.1:9/hook",
        json!({"secret_token": "Abc_123-x", "max_connections": 7}),
    )
    .await;
    assert_eq!(ok(&set), json!(true));
    assert_eq!(set.body["description"], json!("Webhook was set"));
    let again = set_webhook(
        &emulator,
        "http://127.0.0.1:9/hook",
        json!({"secret_token": "Abc_123-x", "max_connections": 7}),
    )
    .await;
    assert_eq!(again.body["description"], json!("Webhook is already set"));
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert_eq!(
        info,
        json!({
            "url": "http://127.0.0.1:9/hook",
            "has_custom_certificate": false,
            "pending_update_count": 0,
            "max_connections": 7,
            "ip_address": "127.0.0.1"
        })
    );
    assert_error(
        &set_webhook(
            &emulator,
            "http://127.0.0.1:9/other",
            json!({"secret_token": "x".repeat(257)}),
        )
        .await,
        400,
        "Bad Request: secret token is too long",
    );
    assert_error(
        &set_webhook(
            &emulator,
            "http://127.0.0.1:9/other",
            json!({"secret_token": "no spaces"}),
        )
        .await,
        400,
        "Bad Request: secret token contains unallowed characters",
    );
    assert_error(
        &set_webhook(&emulator, "ftp://127.0.0.1/x", json!({})).await,
        400,
        "Bad Request: invalid webhook URL specified",
    );
    let deleted = call(&emulator, "deleteWebhook", json!({})).await;
    assert_eq!(
        deleted.body["description"],
        json!("Webhook is already deleted"),
        "the failed setWebhook removed it"
    );
    ok(&set_webhook(&emulator, "http://127.0.0.1:9/hook", json!({})).await);
    assert_eq!(
        call(&emulator, "deleteWebhook", json!({})).await.body["description"],
        json!("Webhook was deleted")
    );
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert_eq!(info["url"], json!(""));
    assert!(info.get("max_connections").is_none());
    emulator.shutdown().await;
}

#[tokio::test]
async fn set_webhook_is_limited_to_once_per_second() {
    let emulator = start(config()).await;
    ok(&set_webhook(&emulator, "http://127.0.0.1:9/a", json!({})).await);
    let second = set_webhook(&emulator, "http://127.0.0.1:9/b", json!({})).await;
    assert_error(&second, 429, "Too Many Requests: retry after 1");
    assert_eq!(second.body["parameters"], json!({"retry_after": 1}));
    assert_eq!(second.retry_after, Some(1));
    emulator.shutdown().await;
}

#[tokio::test]
async fn delivers_with_the_secret_header() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 21, "Web").await;
    let receiver = Receiver::ok().await;
    ok(&set_webhook(
        &emulator,
        &receiver.url(),
        json!({"secret_token": "s3cret"}),
    )
    .await);
    let sent = control.send_text(21, "/start campaign_7").await.unwrap();
    let received = receiver.wait_for(1, WAIT).await;
    let request = &received[0];
    assert_eq!(request.headers["x-telegram-bot-api-secret-token"], "s3cret");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.update_id(), sent.update_id.unwrap());
    assert_eq!(request.text(), Some("/start campaign_7"));
    assert_eq!(
        request.update["message"]["entities"],
        json!([{"type": "bot_command", "offset": 0, "length": 6}])
    );
    wait_until(WAIT, || async {
        let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
        (info["pending_update_count"] == json!(0)).then_some(())
    })
    .await;
    let counters = control.counters().await.unwrap();
    assert_eq!(counters.updates_delivered_webhook, 1);
    assert_eq!(counters.webhook_failures, 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn retry_schedule_is_immediate_then_doubling_then_capped() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 22, "Retry").await;
    let receiver = Receiver::start(|_, _| Reply::Status(500)).await;
    ok(&set_webhook(&emulator, &receiver.url(), json!({})).await);
    let update_id = control
        .send_text(22, "hello")
        .await
        .unwrap()
        .update_id
        .unwrap();

    // The first retry is immediate.
    receiver.wait_for(2, WAIT).await;
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert_eq!(
        info["last_error_message"],
        json!("Wrong response from the webhook: 500 Internal Server Error")
    );
    assert!(info["last_error_date"].as_i64().unwrap() > 0);
    assert_eq!(info["pending_update_count"], json!(1));

    // Then 2, 4, 8, 16, 32 seconds, then the cap (configured to exactly 60 s here).
    let mut attempts = 2;
    for expected_delay in [2, 4, 8, 16, 32, 60, 60] {
        let update = wait_until(WAIT, || async {
            pending(&control, update_id)
                .await
                .filter(|u| u.fail_count == attempts && !u.in_flight)
        })
        .await;
        assert_eq!(
            update.delay_secs, expected_delay,
            "after {attempts} failures"
        );
        let now = control.time().await.unwrap().now_ms;
        let wait_ms = update.next_attempt_at_ms - now;
        assert!(
            wait_ms > i64::from(expected_delay) * 1000 - 2000
                && wait_ms <= i64::from(expected_delay) * 1000,
            "next attempt in {wait_ms} ms, expected about {expected_delay} s"
        );
        control
            .advance_time(f64::from(expected_delay))
            .await
            .unwrap();
        attempts += 1;
        receiver.wait_for(attempts as usize, WAIT).await;
    }
    let counters = control.counters().await.unwrap();
    assert_eq!(counters.webhook_retries, u64::from(attempts) - 1);
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.update_id() == update_id)
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn retry_after_header_is_honoured_and_capped() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 23, "Later").await;
    let receiver =
        Receiver::start(
            |update, attempt| match (update["message"]["text"].as_str(), attempt) {
                (Some("short"), 0) => Reply::RetryAfter(429, 30),
                (Some("long"), 0) => Reply::RetryAfter(503, 5000),
                _ => Reply::Status(200),
            },
        )
        .await;
    ok(&set_webhook(&emulator, &receiver.url(), json!({})).await);
    let short = control
        .send_text(23, "short")
        .await
        .unwrap()
        .update_id
        .unwrap();
    let update = wait_until(WAIT, || async {
        pending(&control, short).await.filter(|u| u.fail_count == 1)
    })
    .await;
    let now = control.time().await.unwrap().now_ms;
    let wait_ms = update.next_attempt_at_ms - now;
    assert!(
        (28_000..=30_000).contains(&wait_ms),
        "Retry-After 30 replaces the immediate retry: {wait_ms}"
    );
    control.advance_time(30.0).await.unwrap();
    receiver.wait_for(2, WAIT).await;
    wait_until(WAIT, || async {
        pending(&control, short).await.is_none().then_some(())
    })
    .await;

    let long = control
        .send_text(23, "long")
        .await
        .unwrap()
        .update_id
        .unwrap();
    let update = wait_until(WAIT, || async {
        pending(&control, long).await.filter(|u| u.fail_count == 1)
    })
    .await;
    let now = control.time().await.unwrap().now_ms;
    let wait_ms = update.next_attempt_at_ms - now;
    assert!(
        (3_598_000..=3_600_000).contains(&wait_ms),
        "capped at 3600 s: {wait_ms}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn updates_are_dropped_when_their_lifetime_ends() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 24, "Drop").await;
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 24, "text": "menu", "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "x"}]]}}),
    )
    .await);
    let receiver = Receiver::start(|_, _| Reply::Status(502)).await;
    ok(&set_webhook(&emulator, &receiver.url(), json!({})).await);
    let press = control
        .press_button_with(PressButton {
            chat_id: 24,
            message_id: sent["message_id"].as_i64().unwrap(),
            callback_data: "x".into(),
            wait_ms: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    let update_id = press.update_id.unwrap();
    // Follow the schedule until the next attempt would fall after the 150 s lifetime.
    let mut failures = 0;
    loop {
        let next = wait_until(WAIT, || async {
            match pending(&control, update_id).await {
                None => Some(None),
                Some(u) if u.fail_count > failures && !u.in_flight => Some(Some(u)),
                Some(_) => None,
            }
        })
        .await;
        let Some(update) = next else { break };
        failures = update.fail_count;
        assert!(failures < 20, "dropped in time");
        let now = control.time().await.unwrap().now_ms;
        let wait = (update.next_attempt_at_ms - now).max(0) as f64 / 1000.0;
        control.advance_time(wait + 0.01).await.unwrap();
    }
    let counters = control.counters().await.unwrap();
    assert_eq!(counters.updates_dropped_expired, 1);
    // 2 + 2+4+8+16+32+60 = 122 s of retries; the next 60 s would pass 150 s.
    assert_eq!(failures, 7);
    assert_eq!(receiver.received().len(), 8);
    emulator.shutdown().await;
}

#[tokio::test]
async fn one_update_in_flight_per_chat_under_retries() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 25, "First").await;
    started_user(&control, 26, "Second").await;
    let receiver =
        Receiver::start(
            |update, attempt| match (update["message"]["text"].as_str(), attempt) {
                (Some("A1"), 0 | 1) => Reply::Status(500),
                _ => Reply::Status(200),
            },
        )
        .await;
    // Queue everything first, then register the webhook.
    let a1 = control
        .send_text(25, "A1")
        .await
        .unwrap()
        .update_id
        .unwrap();
    control.send_text(25, "A2").await.unwrap();
    control.send_text(26, "C").await.unwrap();
    ok(&set_webhook(&emulator, &receiver.url(), json!({})).await);

    // A1 fails twice and waits 2 s; C (another chat) goes through meanwhile; A2 must wait.
    wait_until(WAIT, || async {
        let a1_waiting = pending(&control, a1)
            .await
            .is_some_and(|u| u.fail_count == 2 && !u.in_flight);
        let c_done = receiver.received().iter().any(|r| r.text() == Some("C"));
        (a1_waiting && c_done).then_some(())
    })
    .await;
    assert!(
        !receiver.received().iter().any(|r| r.text() == Some("A2")),
        "A2 was sent while A1 of the same chat was not delivered"
    );
    control.advance_time(2.0).await.unwrap();
    let received = receiver.wait_for(5, WAIT).await;
    let chat_25: Vec<_> = received
        .iter()
        .filter(|r| r.update["message"]["chat"]["id"] == json!(25))
        .map(|r| r.text().unwrap().to_owned())
        .collect();
    assert_eq!(chat_25, vec!["A1", "A1", "A1", "A2"]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn max_connections_bounds_parallel_deliveries() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    let held_so_far = Arc::new(AtomicUsize::new(0));
    let counter = held_so_far.clone();
    let receiver = Receiver::start(move |_, _| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::Hold
        } else {
            Reply::Status(200)
        }
    })
    .await;
    for id in 31..35 {
        started_user(&control, id, "Par").await;
        control.send_text(id, "hi").await.unwrap();
    }
    ok(&set_webhook(&emulator, &receiver.url(), json!({"max_connections": 2})).await);
    wait_until(WAIT, || async { (receiver.held() == 2).then_some(()) }).await;
    let in_flight = control
        .pending_updates()
        .await
        .unwrap()
        .iter()
        .filter(|u| u.in_flight)
        .count();
    assert_eq!(in_flight, 2);
    assert_eq!(control.counters().await.unwrap().webhook_attempts, 2);
    receiver.release_all();
    receiver.wait_for(4, WAIT).await;
    wait_until(WAIT, || async {
        (control.counters().await.unwrap().updates_delivered_webhook == 4).then_some(())
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_slow_endpoint_times_out_and_gets_a_duplicate() {
    let mut config = config_without_limits();
    config.webhook.response_timeout = Duration::from_millis(300);
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, 27, "Slow").await;
    let receiver = Receiver::start(|_, attempt| {
        if attempt == 0 {
            Reply::Slow(Duration::from_secs(2))
        } else {
            Reply::Status(200)
        }
    })
    .await;
    ok(&set_webhook(&emulator, &receiver.url(), json!({})).await);
    let update_id = control
        .send_text(27, "slow")
        .await
        .unwrap()
        .update_id
        .unwrap();
    let received = receiver.wait_for(2, WAIT).await;
    assert!(
        received.iter().all(|r| r.update_id() == update_id),
        "the same update twice"
    );
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert_eq!(info["last_error_message"], json!("Read timeout expired"));
    wait_until(WAIT, || async {
        (control.counters().await.unwrap().updates_delivered_webhook == 1).then_some(())
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn unreachable_endpoint_and_drop_pending_updates() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 28, "Down").await;
    let receiver = Receiver::ok().await;
    control.set_webhook_unreachable(true).await.unwrap();
    ok(&set_webhook(&emulator, &receiver.url(), json!({})).await);
    let first = control
        .send_text(28, "one")
        .await
        .unwrap()
        .update_id
        .unwrap();
    wait_until(WAIT, || async {
        pending(&control, first).await.filter(|u| u.fail_count >= 2)
    })
    .await;
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert_eq!(info["last_error_message"], json!("Connection refused"));
    assert!(receiver.received().is_empty());

    // Reachable again: the update arrives once its backoff is over.
    control.set_webhook_unreachable(false).await.unwrap();
    control.advance_time(2.0).await.unwrap();
    receiver.wait_for(1, WAIT).await;
    wait_until(WAIT, || async {
        pending(&control, first).await.is_none().then_some(())
    })
    .await;

    // drop_pending_updates discards the queue, and the counters show it.
    control.set_webhook_unreachable(true).await.unwrap();
    for text in ["a", "b", "c"] {
        control.send_text(28, text).await.unwrap();
    }
    ok(&set_webhook(
        &emulator,
        &receiver.url(),
        json!({"drop_pending_updates": true}),
    )
    .await);
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert_eq!(info["pending_update_count"], json!(0));
    assert_eq!(
        control.counters().await.unwrap().updates_dropped_by_request,
        3
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_method_in_the_webhook_answer_is_executed() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 29, "Reply").await;
    let receiver = Receiver::start(|update, _| {
        let chat = update["message"]["chat"]["id"].clone();
        Reply::Json(json!({"method": "sendMessage", "chat_id": chat, "text": "pong"}))
    })
    .await;
    ok(&set_webhook(&emulator, &receiver.url(), json!({})).await);
    control.send_text(29, "ping").await.unwrap();
    let reply = control
        .wait_for_message(
            29,
            telegram_emulator::MessageFilter::from_bot().text_contains("pong"),
            WAIT,
        )
        .await
        .unwrap();
    assert!(reply.from_bot);
    assert_eq!(control.counters().await.unwrap().webhook_reply_methods, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn https_urls_are_accepted_but_not_deliverable() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 30, "Tls").await;
    ok(&set_webhook(&emulator, "https://bot.example.org/hook", json!({})).await);
    let update_id = control.send_text(30, "x").await.unwrap().update_id.unwrap();
    wait_until(WAIT, || async {
        pending(&control, update_id)
            .await
            .filter(|u| u.fail_count >= 1)
    })
    .await;
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert!(
        info["last_error_message"]
            .as_str()
            .unwrap()
            .contains("HTTPS")
    );
    emulator.shutdown().await;
}
