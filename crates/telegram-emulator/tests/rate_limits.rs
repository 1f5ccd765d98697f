//! Telegram's flood limits: 429 onset at the configured rates, `retry_after`, paid broadcasts,
//! and switching the limits off. Rates are configured slow enough that the onset does not depend
//! on how fast the test machine is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    assert_error, call, config, config_without_limits, ok, start, started_user, wait_until,
};
use serde_json::json;
use telegram_emulator::BotApiResponse;

fn retry_after(response: &BotApiResponse) -> u64 {
    assert_eq!(response.status, 429, "{:?}", response.body);
    let n = response.body["parameters"]["retry_after"].as_u64().unwrap();
    assert_eq!(
        response.description(),
        format!("Too Many Requests: retry after {n}")
    );
    assert_eq!(
        response.retry_after,
        Some(u32::try_from(n).unwrap()),
        "Retry-After header"
    );
    n
}

#[tokio::test]
async fn per_chat_limit_allows_a_burst_then_429() {
    let mut config = config();
    config.rate_limits.per_chat_per_sec = 0.2;
    config.rate_limits.per_chat_burst = 3.0;
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, 1, "One").await;
    started_user(&control, 2, "Two").await;
    for i in 0..3 {
        ok(&call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 1, "text": format!("m{i}")}),
        )
        .await);
    }
    let limited = call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 1, "text": "m3"}),
    )
    .await;
    assert_eq!(retry_after(&limited), 5);
    // Other chats are not affected; the limited message was not stored.
    ok(&call(&emulator, "sendMessage", json!({"chat_id": 2, "text": "x"})).await);
    assert_eq!(control.transcript(1).await.unwrap().messages.len(), 3);
    let counters = control.counters().await.unwrap();
    assert_eq!(counters.responses_429, 1);
    assert_eq!(counters.messages_sent, 4);
    emulator.shutdown().await;
}

#[tokio::test]
async fn sending_again_after_retry_after_succeeds() {
    let mut config = config();
    config.rate_limits.per_chat_per_sec = 20.0;
    config.rate_limits.per_chat_burst = 1.0;
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, 3, "Three").await;
    ok(&call(&emulator, "sendMessage", json!({"chat_id": 3, "text": "a"})).await);
    let limited = call(&emulator, "sendMessage", json!({"chat_id": 3, "text": "b"})).await;
    assert_eq!(retry_after(&limited), 1);
    wait_until(Duration::from_secs(5), || async {
        let again = call(&emulator, "sendMessage", json!({"chat_id": 3, "text": "b"})).await;
        (again.status == 200).then_some(())
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn global_limit_across_chats_and_paid_broadcast() {
    let mut config = config();
    config.rate_limits.global_per_sec = 0.5;
    config.rate_limits.global_burst = 5.0;
    config.rate_limits.paid_broadcast_per_sec = 1000.0;
    let emulator = start(config).await;
    let control = emulator.client();
    for id in 10..20 {
        started_user(&control, id, "Many").await;
    }
    for id in 10..15 {
        ok(&call(
            &emulator,
            "sendMessage",
            json!({"chat_id": id, "text": "news"}),
        )
        .await);
    }
    let limited = call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 15, "text": "news"}),
    )
    .await;
    assert_eq!(retry_after(&limited), 2);
    // allow_paid_broadcast uses the 1000/s budget instead.
    for id in 15..20 {
        ok(&call(
            &emulator,
            "sendMessage",
            json!({"chat_id": id, "text": "news", "allow_paid_broadcast": true}),
        )
        .await);
    }
    assert_eq!(control.counters().await.unwrap().paid_broadcast_messages, 5);
    emulator.shutdown().await;
}

#[tokio::test]
async fn twenty_messages_per_minute_to_a_group() {
    let emulator = start(config()).await;
    let control = emulator.client();
    started_user(&control, 40, "Member").await;
    let group = control.create_group("Chatty", &[40]).await.unwrap();
    for i in 0..20 {
        ok(&call(
            &emulator,
            "sendMessage",
            json!({"chat_id": group.id, "text": format!("g{i}")}),
        )
        .await);
    }
    let limited = call(
        &emulator,
        "sendMessage",
        json!({"chat_id": group.id, "text": "g20"}),
    )
    .await;
    assert_eq!(
        retry_after(&limited),
        3,
        "one message per 3 s refills a 20/min bucket"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn invoices_and_photos_count_too() {
    let mut config = config();
    config.rate_limits.per_chat_per_sec = 0.1;
    config.rate_limits.per_chat_burst = 1.0;
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, 41, "Buyer").await;
    ok(&call(
        &emulator,
        "sendInvoice",
        json!({"chat_id": 41, "title": "Plan", "description": "30 days", "payload": "p1", "currency": "XTR", "prices": [{"label": "Plan", "amount": 100}]}),
    )
    .await);
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 41, "text": "x"}),
        )
        .await,
        429,
        "Too Many Requests: retry after 10",
    );
    // Edits and chat actions are not flood-limited here.
    ok(&call(
        &emulator,
        "sendChatAction",
        json!({"chat_id": 41, "action": "typing"}),
    )
    .await);
    emulator.shutdown().await;
}

#[tokio::test]
async fn limits_can_be_switched_off() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 42, "Bench").await;
    for i in 0..300 {
        ok(&call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 42, "text": format!("n{i}")}),
        )
        .await);
    }
    assert_eq!(control.counters().await.unwrap().responses_429, 0);
    emulator.shutdown().await;
}
