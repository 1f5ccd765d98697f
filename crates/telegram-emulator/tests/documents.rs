//! `sendDocument` through a real client library (teloxide uploads multipart): the answer carries
//! a `file_id` that can be sent again, the bytes are kept as uploaded, and the size limits answer
//! with Telegram's texts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{start, started_user};
use telegram_emulator::RunningEmulator;
use teloxide::prelude::*;
use teloxide::types::InputFile;
use teloxide::{ApiError, RequestError};

const USER: i64 = 5151;

fn bot_for(emulator: &RunningEmulator) -> Bot {
    Bot::new(emulator.token()).set_api_url(url::Url::parse(&emulator.api_url()).unwrap())
}

#[tokio::test]
async fn an_uploaded_document_gets_a_file_id_and_keeps_its_bytes() {
    let emulator = start(common::config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, USER, "Admin").await;
    let bot = bot_for(&emulator);
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let message = bot
        .send_document(
            ChatId(USER),
            InputFile::memory(bytes.clone()).file_name("tollgate-backup.db.gz"),
        )
        .caption("backup")
        .await
        .unwrap();
    let document = message.document().expect("a document message");
    assert_eq!(document.file_name.as_deref(), Some("tollgate-backup.db.gz"));
    assert_eq!(document.file.size, 200_000);
    assert_eq!(
        document
            .mime_type
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("application/gzip")
    );
    assert_eq!(message.caption(), Some("backup"));
    let file_id = document.file.id.to_string();
    assert!(!file_id.is_empty());

    // The transcript shows it and the control API serves the very bytes.
    let transcript = control.transcript(USER).await.unwrap();
    let shown = transcript.messages.last().unwrap();
    assert_eq!(shown.kind, "document");
    let info = shown.document.as_ref().unwrap();
    assert_eq!(info.file_id, file_id);
    assert_eq!(info.file_size, 200_000);
    assert_eq!(control.file(&file_id).await.unwrap().as_ref(), &bytes[..]);

    // The file id can be sent again.
    let again = bot
        .send_document(ChatId(USER), InputFile::file_id(document.file.id.clone()))
        .await
        .unwrap();
    assert_eq!(again.document().unwrap().file.id.to_string(), file_id);
    emulator.shutdown().await;
}

#[tokio::test]
async fn documents_above_the_limits_are_refused_with_telegrams_texts() {
    let mut config = common::config_without_limits();
    config.limits.max_document_bytes = 100_000;
    let emulator = start(config).await;
    started_user(&emulator.client(), USER, "Admin").await;
    let bot = bot_for(&emulator);

    // Above the bots' document limit: 400 "file is too big".
    let error = bot
        .send_document(
            ChatId(USER),
            InputFile::memory(vec![7u8; 100_001]).file_name("big.gz"),
        )
        .await
        .unwrap_err();
    match error {
        RequestError::Api(ApiError::Unknown(text)) => {
            assert_eq!(text, "Bad Request: file is too big");
        }
        other => panic!("expected file is too big, got {other:?}"),
    }
    // Exactly the limit is accepted.
    bot.send_document(
        ChatId(USER),
        InputFile::memory(vec![7u8; 100_000]).file_name("ok.gz"),
    )
    .await
    .unwrap();

    // A body above the server's 50 MB: 413 "Request Entity Too Large", the status a client sees
    // from Telegram's front.
    let error = bot
        .send_document(
            ChatId(USER),
            InputFile::memory(vec![0u8; (50 << 20) + 1]).file_name("huge.gz"),
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("Request Entity Too Large"), "{text}");

    // No document at all.
    let response = common::call(
        &emulator,
        "sendDocument",
        serde_json::json!({"chat_id": USER}),
    )
    .await;
    common::assert_error(
        &response,
        400,
        "Bad Request: there is no document in the request",
    );
    emulator.shutdown().await;
}
