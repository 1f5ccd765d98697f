//! Every in-memory collection is bounded: transcripts keep the newest messages, the pending update
//! queue drops (and counts) the oldest when full.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_error, call, config_without_limits, ok, start, started_user};
use serde_json::json;

#[tokio::test]
async fn transcripts_keep_the_newest_messages() {
    let mut config = config_without_limits();
    config.limits.transcript_messages_per_chat = 20;
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, 1, "Chatty").await;
    for i in 0..50 {
        ok(&call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 1, "text": format!("m{i}")}),
        )
        .await);
    }
    let transcript = control.transcript(1).await.unwrap();
    assert_eq!(transcript.messages.len(), 20);
    assert_eq!(transcript.messages[0].text.as_deref(), Some("m30"));
    // A forgotten message can no longer be edited.
    assert_error(
        &call(
            &emulator,
            "editMessageText",
            json!({"chat_id": 1, "message_id": 1, "text": "x"}),
        )
        .await,
        400,
        "Bad Request: message to edit not found",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_full_update_queue_drops_the_oldest() {
    let mut config = config_without_limits();
    config.limits.max_pending_updates = 10;
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, 2, "Flood").await;
    let mut last = 0;
    for i in 0..15 {
        last = control
            .send_text(2, &format!("u{i}"))
            .await
            .unwrap()
            .update_id
            .unwrap();
    }
    let updates = ok(&call(&emulator, "getUpdates", json!({})).await);
    let updates = updates.as_array().unwrap();
    assert_eq!(updates.len(), 10);
    assert_eq!(updates[9]["update_id"], json!(last));
    assert_eq!(
        control.counters().await.unwrap().updates_dropped_overflow,
        5
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_user_directory_is_capped() {
    let mut config = config_without_limits();
    config.limits.max_users = 3;
    let emulator = start(config).await;
    let control = emulator.client();
    for id in 1..=3 {
        started_user(&control, id, "U").await;
    }
    let full = control
        .create_user(telegram_emulator::NewUser::new("Extra"))
        .await
        .unwrap_err();
    assert!(full.to_string().contains("max_users"), "{full}");
    emulator.shutdown().await;
}
