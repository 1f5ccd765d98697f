//! Conformance of getUpdates: offsets, limits, long polling, allowed_updates, lifetimes and the
//! two 409 conflicts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, call, config, ok, start, started_user};
use serde_json::{Value, json};

async fn wait_for_long_poll(control: &telegram_emulator::ControlClient) {
    common::wait_until(Duration::from_secs(5), || async {
        control.bots().await.unwrap()[0]
            .long_poll_waiting
            .then_some(())
    })
    .await;
}

fn ids(updates: &Value) -> Vec<i64> {
    updates
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["update_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn offset_confirms_and_limit_bounds() {
    let emulator = start(config()).await;
    let control = emulator.client();
    started_user(&control, 1, "A").await;
    let mut update_ids = Vec::new();
    for text in ["one", "two", "three"] {
        update_ids.push(control.send_text(1, text).await.unwrap().update_id.unwrap());
    }
    assert!(
        update_ids.windows(2).all(|w| w[1] == w[0] + 1),
        "sequential ids"
    );

    let all = ok(&call(&emulator, "getUpdates", json!({})).await);
    assert_eq!(ids(&all), update_ids);
    let first = &all[0];
    assert_eq!(first["message"]["text"], json!("one"));
    assert_eq!(first["message"]["from"]["id"], json!(1));
    assert_eq!(first["message"]["chat"]["type"], json!("private"));

    // Unconfirmed updates are returned again; `limit` bounds the batch.
    let limited = ok(&call(
        &emulator,
        "getUpdates",
        json!({"offset": update_ids[0], "limit": 2}),
    )
    .await);
    assert_eq!(ids(&limited), update_ids[..2].to_vec());
    // offset = last + 1 confirms everything before it.
    let rest = ok(&call(&emulator, "getUpdates", json!({"offset": update_ids[2]})).await);
    assert_eq!(ids(&rest), vec![update_ids[2]]);
    let counters = control.counters().await.unwrap();
    assert_eq!(counters.updates_confirmed, 2);
    let none = ok(&call(
        &emulator,
        "getUpdates",
        json!({"offset": update_ids[2] + 1}),
    )
    .await);
    assert_eq!(none, json!([]));
    assert_eq!(control.counters().await.unwrap().updates_dropped(), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn negative_offset_keeps_only_the_newest() {
    let emulator = start(config()).await;
    let control = emulator.client();
    started_user(&control, 2, "B").await;
    let mut last = 0;
    for i in 0..5 {
        last = control
            .send_text(2, &format!("m{i}"))
            .await
            .unwrap()
            .update_id
            .unwrap();
    }
    let newest = ok(&call(&emulator, "getUpdates", json!({"offset": -2})).await);
    assert_eq!(ids(&newest), vec![last - 1, last]);
    assert_eq!(
        control.counters().await.unwrap().updates_dropped_by_request,
        3
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn long_poll_wakes_up_on_a_new_update() {
    let emulator = start(config()).await;
    let control = emulator.client();
    started_user(&control, 3, "C").await;
    let started = Instant::now();
    let poll = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        tokio::spawn(async move {
            client
                .bot_call(&token, "getUpdates", &json!({"timeout": 30}))
                .await
                .unwrap()
        })
    };
    // Send once the poll is waiting (the poller slot is visible through a conflict-free state:
    // just wait until the emulator counted the getUpdates call).
    wait_for_long_poll(&control).await;
    control.send_text(3, "wake up").await.unwrap();
    let response = poll.await.unwrap();
    let updates = ok(&response);
    assert_eq!(updates[0]["message"]["text"], json!("wake up"));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "woken up, not timed out"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn long_poll_times_out_empty() {
    let emulator = start(config()).await;
    let started = Instant::now();
    let empty = ok(&call(&emulator, "getUpdates", json!({"timeout": 1})).await);
    assert_eq!(empty, json!([]));
    assert!(started.elapsed() >= Duration::from_millis(900));
    emulator.shutdown().await;
}

#[tokio::test]
async fn second_poller_terminates_the_first_with_409() {
    let emulator = start(config()).await;
    let control = emulator.client();
    let first = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        tokio::spawn(async move {
            client
                .bot_call(&token, "getUpdates", &json!({"timeout": 30}))
                .await
                .unwrap()
        })
    };
    wait_for_long_poll(&control).await;
    let second = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        tokio::spawn(async move {
            client
                .bot_call(&token, "getUpdates", &json!({"timeout": 2, "offset": 5}))
                .await
                .unwrap()
        })
    };
    let first = first.await.unwrap();
    assert_error(
        &first,
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    );
    let second = second.await.unwrap();
    assert_eq!(ok(&second), json!([]));
    assert_eq!(control.counters().await.unwrap().responses_409, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn get_updates_while_webhook_is_set_is_409() {
    let emulator = start(config()).await;
    ok(&common::set_webhook(&emulator, "http://127.0.0.1:9/hook", json!({})).await);
    assert_error(
        &call(&emulator, "getUpdates", json!({})).await,
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    );
    ok(&call(&emulator, "deleteWebhook", json!({})).await);
    ok(&call(&emulator, "getUpdates", json!({})).await);
    emulator.shutdown().await;
}

#[tokio::test]
async fn set_webhook_terminates_a_waiting_poll() {
    let emulator = start(config()).await;
    let control = emulator.client();
    let poll = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        tokio::spawn(async move {
            client
                .bot_call(&token, "getUpdates", &json!({"timeout": 30}))
                .await
                .unwrap()
        })
    };
    wait_for_long_poll(&control).await;
    ok(&common::set_webhook(&emulator, "http://127.0.0.1:9/hook", json!({})).await);
    assert_error(
        &poll.await.unwrap(),
        409,
        "Conflict: terminated by setWebhook request",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn repeated_409s_are_spaced() {
    let mut config = config();
    config.conflict_spacing = Duration::from_millis(400);
    let emulator = start(config).await;
    ok(&common::set_webhook(&emulator, "http://127.0.0.1:9/hook", json!({})).await);
    let started = Instant::now();
    assert_eq!(call(&emulator, "getUpdates", json!({})).await.status, 409);
    assert_eq!(call(&emulator, "getUpdates", json!({})).await.status, 409);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "second 409 held back"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn allowed_updates_filter_and_persist() {
    let emulator = start(config()).await;
    let control = emulator.client();
    started_user(&control, 4, "D").await;
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 4, "text": "menu", "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "x"}]]}}),
    )
    .await);
    // Only messages from now on.
    ok(&call(
        &emulator,
        "getUpdates",
        json!({"allowed_updates": ["message"]}),
    )
    .await);
    let press = control
        .press_button_with(telegram_emulator::control::types::PressButton {
            chat_id: 4,
            message_id: sent["message_id"].as_i64().unwrap(),
            callback_data: "x".into(),
            wait_ms: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(press.update_id, None, "callback_query filtered out");
    // The setting persists when getUpdates does not specify it.
    let message = control.send_text(4, "hi").await.unwrap();
    let updates = ok(&call(&emulator, "getUpdates", json!({})).await);
    assert_eq!(ids(&updates), vec![message.update_id.unwrap()]);
    assert_eq!(control.counters().await.unwrap().updates_filtered, 1);
    let info = ok(&call(&emulator, "getWebhookInfo", json!({})).await);
    assert_eq!(info["allowed_updates"], json!(["message"]));
    emulator.shutdown().await;
}

#[tokio::test]
async fn callback_updates_expire_after_150_seconds() {
    let emulator = start(config()).await;
    let control = emulator.client();
    started_user(&control, 5, "E").await;
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 5, "text": "menu", "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "x"}]]}}),
    )
    .await);
    let press = control
        .press_button_with(telegram_emulator::control::types::PressButton {
            chat_id: 5,
            message_id: sent["message_id"].as_i64().unwrap(),
            callback_data: "x".into(),
            wait_ms: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    let message = control.send_text(5, "still here tomorrow").await.unwrap();
    control.advance_time(151.0).await.unwrap();
    let updates = ok(&call(&emulator, "getUpdates", json!({})).await);
    assert_eq!(ids(&updates), vec![message.update_id.unwrap()]);
    assert_eq!(control.counters().await.unwrap().updates_dropped_expired, 1);
    assert!(press.update_id.is_some());
    // Messages live 24 hours.
    control.advance_time(86_400.0).await.unwrap();
    let updates = ok(&call(&emulator, "getUpdates", json!({"offset": 1})).await);
    assert_eq!(updates, json!([]));
    assert_eq!(control.counters().await.unwrap().updates_dropped_expired, 2);
    emulator.shutdown().await;
}
