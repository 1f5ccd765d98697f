//! Conformance of the message methods: envelopes, parameter forms, validation and the exact error
//! descriptions and status codes of the real Bot API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_error, call, config, config_without_limits, ok, start, started_user};
use serde_json::json;
use telegram_emulator::NewUser;
use telegram_emulator::files::TINY_PNG;

const MARKUP: &str = r#"{"inline_keyboard":[[{"text":"Buy","callback_data":"buy:1"}]]}"#;

#[tokio::test]
async fn get_me_unknown_token_and_unknown_method() {
    let emulator = start(config()).await;
    let me = ok(&call(&emulator, "getMe", json!({})).await);
    assert_eq!(me["is_bot"], json!(true));
    assert_eq!(me["username"], json!(emulator.bot_username()));
    assert!(me["id"].as_i64().unwrap() > 0);
    // Method names are case-insensitive.
    ok(&call(&emulator, "GETME", json!({})).await);

    let client = emulator.client();
    let bad = client
        .bot_call("123:wrong", "getMe", &json!({}))
        .await
        .unwrap();
    assert_error(&bad, 401, "Unauthorized");
    assert_eq!(
        bad.body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let unknown = call(&emulator, "sendTelepathy", json!({})).await;
    assert_error(&unknown, 404, "Not Found");
    let counters = client.counters().await.unwrap();
    assert_eq!(counters.unknown_method_calls, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn send_message_accepts_query_form_json_and_multipart() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 10, "Ann").await;
    let url = format!("/bot{}/sendMessage", emulator.token());

    // JSON body (chat_id as a number).
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 10, "text": "json"}),
    )
    .await);
    assert_eq!(sent["text"], json!("json"));
    assert_eq!(
        sent["chat"],
        json!({"id": 10, "first_name": "Ann", "type": "private"})
    );
    assert_eq!(sent["from"]["is_bot"], json!(true));
    assert!(sent["date"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(sent["message_id"], json!(1));

    // Form body with a JSON-encoded reply_markup.
    let form = format!(
        "chat_id=10&text=form&reply_markup={}",
        MARKUP
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace(':', "%3A")
    );
    let response = control
        .bot_call_raw(
            emulator.token(),
            "sendMessage",
            form.into_bytes(),
            "application/x-www-form-urlencoded",
        )
        .await
        .unwrap();
    let sent = ok(&response);
    assert_eq!(
        sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        json!("buy:1")
    );

    // Query string (GET-style parameters) with an empty body.
    let response = control
        .bot_call_raw(
            emulator.token(),
            "sendMessage?chat_id=10&text=query",
            Vec::new(),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(ok(&response)["text"], json!("query"));

    // Multipart text fields.
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n10\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nmultipart\r\n--{boundary}--\r\n"
    );
    let response = control
        .bot_call_raw(
            emulator.token(),
            "sendMessage",
            body.into_bytes(),
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .await
        .unwrap();
    assert_eq!(ok(&response)["text"], json!("multipart"));
    assert!(url.contains("sendMessage"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn send_message_validation_errors() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 11, "Bob").await;

    assert_error(
        &call(&emulator, "sendMessage", json!({"chat_id": 11})).await,
        400,
        "Bad Request: message text is empty",
    );
    assert_error(
        &call(&emulator, "sendMessage", json!({"text": "hi"})).await,
        400,
        "Bad Request: chat_id is empty",
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 999_999, "text": "hi"}),
        )
        .await,
        400,
        "Bad Request: chat not found",
    );
    // Malformed JSON is ignored like the real server does: the call then lacks its parameters.
    let malformed = control
        .bot_call_raw(
            emulator.token(),
            "sendMessage",
            b"{not json".to_vec(),
            "application/json",
        )
        .await
        .unwrap();
    assert_error(&malformed, 400, "Bad Request: message text is empty");
    // 4096 characters are fine, 4097 are too long (characters, not bytes).
    let long = "ж".repeat(4096);
    ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 11, "text": long}),
    )
    .await);
    let too_long = "ж".repeat(4097);
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 11, "text": too_long}),
        )
        .await,
        400,
        "Bad Request: message is too long",
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 11, "text": "<b> </b>", "parse_mode": "HTML"}),
        )
        .await,
        400,
        "Bad Request: text must be non-empty",
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 11, "text": "x", "parse_mode": "Klingon"}),
        )
        .await,
        400,
        "Bad Request: unsupported parse_mode",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn entity_parsing_and_errors() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 12, "Cy").await;

    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 12, "text": "<b>Plan</b> <i>30 days</i> — <a href=\"https://example.org\">terms</a>", "parse_mode": "HTML"}),
    )
    .await);
    assert_eq!(sent["text"], json!("Plan 30 days — terms"));
    assert_eq!(
        sent["entities"],
        json!([
            {"type": "bold", "offset": 0, "length": 4},
            {"type": "italic", "offset": 5, "length": 7},
            {"type": "text_link", "offset": 15, "length": 5, "url": "https://example.org"}
        ])
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 12, "text": "<b>unclosed", "parse_mode": "HTML"}),
        )
        .await,
        400,
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"",
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 12, "text": "a <br> b", "parse_mode": "HTML"}),
        )
        .await,
        400,
        "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 2",
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 12, "text": "Price: 1.50", "parse_mode": "MarkdownV2"}),
        )
        .await,
        400,
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'",
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 12, "text": "*bold", "parse_mode": "MarkdownV2"}),
        )
        .await,
        400,
        "Bad Request: can't parse entities: Can't find end of Bold entity at byte offset 0",
    );
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 12, "text": "*Pay* ~old~ \\.", "parse_mode": "MarkdownV2"}),
    )
    .await);
    assert_eq!(sent["text"], json!("Pay old ."));
    // Explicit entities are used when there is no parse mode.
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 12, "text": "hello", "entities": [{"type": "underline", "offset": 0, "length": 5}]}),
    )
    .await);
    assert_eq!(
        sent["entities"],
        json!([{"type": "underline", "offset": 0, "length": 5}])
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn reply_markup_validation() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 13, "Di").await;
    let data_65 = "x".repeat(65);
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 13, "text": "t", "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": data_65}]]}}),
        )
        .await,
        400,
        "Bad Request: BUTTON_DATA_INVALID",
    );
    let data_64 = "x".repeat(64);
    ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 13, "text": "t", "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": data_64}]]}}),
    )
    .await);
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 13, "text": "t", "reply_markup": {"inline_keyboard": [[{"text": "a"}]]}}),
        )
        .await,
        400,
        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
    );
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 13, "text": "t", "reply_markup": "{oops"}),
        )
        .await,
        400,
        "Bad Request: can't parse reply keyboard markup JSON object",
    );
    // A reply keyboard is not part of the Message but is shown to the user.
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 13, "text": "menu", "reply_markup": {"keyboard": [["Plans", "Help"]], "resize_keyboard": true}}),
    )
    .await);
    assert!(sent.get("reply_markup").is_none());
    let transcript = control.transcript(13).await.unwrap();
    assert_eq!(
        transcript.reply_keyboard.unwrap()["keyboard"][0][1]["text"],
        json!("Help")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn blocked_and_not_started_users_get_403() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    control
        .create_user(NewUser::new("Never").id(14))
        .await
        .unwrap();
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 14, "text": "hi"}),
        )
        .await,
        403,
        "Forbidden: bot can't initiate conversation with a user",
    );
    control.send_text(14, "/start").await.unwrap();
    ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 14, "text": "hi"}),
    )
    .await);
    control.block_bot(14).await.unwrap();
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 14, "text": "hi"}),
        )
        .await,
        403,
        "Forbidden: bot was blocked by the user",
    );
    assert_error(
        &call(
            &emulator,
            "sendChatAction",
            json!({"chat_id": 14, "action": "typing"}),
        )
        .await,
        403,
        "Forbidden: bot was blocked by the user",
    );
    control.unblock_bot(14).await.unwrap();
    ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 14, "text": "welcome back"}),
    )
    .await);
    emulator.shutdown().await;
}

#[tokio::test]
async fn edits_follow_telegram_rules() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 15, "Ed").await;
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 15, "text": "v1", "reply_markup": MARKUP}),
    )
    .await);
    let id = sent["message_id"].clone();

    // Same text and same keyboard: not modified.
    assert_error(
        &call(
            &emulator,
            "editMessageText",
            json!({"chat_id": 15, "message_id": id, "text": "v1", "reply_markup": MARKUP}),
        )
        .await,
        400,
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
    );
    // Same text without reply_markup removes the keyboard: that is a modification.
    let edited = ok(&call(
        &emulator,
        "editMessageText",
        json!({"chat_id": 15, "message_id": id, "text": "v1"}),
    )
    .await);
    assert!(edited.get("reply_markup").is_none());
    assert!(edited["edit_date"].as_i64().is_some());
    let edited = ok(&call(
        &emulator,
        "editMessageReplyMarkup",
        json!({"chat_id": 15, "message_id": id, "reply_markup": MARKUP}),
    )
    .await);
    assert_eq!(
        edited["reply_markup"]["inline_keyboard"][0][0]["text"],
        json!("Buy")
    );
    assert_error(
        &call(
            &emulator,
            "editMessageReplyMarkup",
            json!({"chat_id": 15, "message_id": id, "reply_markup": MARKUP}),
        )
        .await,
        400,
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
    );
    assert_error(
        &call(
            &emulator,
            "editMessageText",
            json!({"chat_id": 15, "message_id": 9999, "text": "x"}),
        )
        .await,
        400,
        "Bad Request: message to edit not found",
    );
    assert_error(
        &call(&emulator, "editMessageText", json!({"text": "x"})).await,
        400,
        "Bad Request: message identifier is not specified",
    );
    assert_error(
        &call(
            &emulator,
            "editMessageCaption",
            json!({"chat_id": 15, "message_id": id, "caption": "c"}),
        )
        .await,
        400,
        "Bad Request: there is no caption in the message to edit",
    );
    // The user's own message cannot be edited by the bot.
    let user_message = control.send_text(15, "mine").await.unwrap();
    assert_error(
        &call(
            &emulator,
            "editMessageText",
            json!({"chat_id": 15, "message_id": user_message.message_id, "text": "x"}),
        )
        .await,
        400,
        "Bad Request: message can't be edited",
    );
    let transcript = control.transcript(15).await.unwrap();
    let first = &transcript.messages[0];
    assert_eq!(first.edit_count, 2);
    assert!(first.has_keyboard());
    emulator.shutdown().await;
}

#[tokio::test]
async fn delete_message_rules() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 16, "Del").await;
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 16, "text": "bye"}),
    )
    .await);
    let id = sent["message_id"].clone();
    assert_error(
        &call(&emulator, "deleteMessage", json!({"message_id": id})).await,
        400,
        "Bad Request: chat identifier is not specified",
    );
    assert_eq!(
        ok(&call(
            &emulator,
            "deleteMessage",
            json!({"chat_id": 16, "message_id": id})
        )
        .await),
        json!(true)
    );
    assert_error(
        &call(
            &emulator,
            "deleteMessage",
            json!({"chat_id": 16, "message_id": id}),
        )
        .await,
        400,
        "Bad Request: message to delete not found",
    );
    assert_error(
        &call(
            &emulator,
            "editMessageText",
            json!({"chat_id": 16, "message_id": id, "text": "x"}),
        )
        .await,
        400,
        "Bad Request: message to edit not found",
    );
    // Older than 48 hours: can't be deleted.
    let old = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 16, "text": "old"}),
    )
    .await);
    control.advance_time(48.0 * 3600.0 + 1.0).await.unwrap();
    assert_error(
        &call(
            &emulator,
            "deleteMessage",
            json!({"chat_id": 16, "message_id": old["message_id"]}),
        )
        .await,
        400,
        "Bad Request: message can't be deleted",
    );
    assert!(control.transcript(16).await.unwrap().messages[0].deleted);
    emulator.shutdown().await;
}

#[tokio::test]
async fn photos_upload_reuse_and_caption_limits() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 17, "Pic").await;
    let boundary = "b0undary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n17\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nyour QR\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"qr.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(TINY_PNG);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = control
        .bot_call_raw(
            emulator.token(),
            "sendPhoto",
            body,
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .await
        .unwrap();
    let sent = ok(&response);
    assert_eq!(sent["caption"], json!("your QR"));
    let size = &sent["photo"][0];
    assert_eq!(
        (size["width"].clone(), size["height"].clone()),
        (json!(1), json!(1))
    );
    let file_id = size["file_id"].as_str().unwrap().to_owned();
    assert_eq!(control.file(&file_id).await.unwrap().as_ref(), TINY_PNG);

    // Resending by file_id.
    let again = ok(&call(
        &emulator,
        "sendPhoto",
        json!({"chat_id": 17, "photo": file_id}),
    )
    .await);
    assert_eq!(again["photo"][0]["file_unique_id"], size["file_unique_id"]);
    assert_error(
        &call(
            &emulator,
            "sendPhoto",
            json!({"chat_id": 17, "photo": "no-such-file"}),
        )
        .await,
        400,
        "Bad Request: wrong file identifier/HTTP URL specified",
    );
    assert_error(
        &call(&emulator, "sendPhoto", json!({"chat_id": 17})).await,
        400,
        "Bad Request: there is no photo in the request",
    );
    assert_error(
        &call(
            &emulator,
            "sendPhoto",
            json!({"chat_id": 17, "photo": file_id, "caption": "c".repeat(1025)}),
        )
        .await,
        400,
        "Bad Request: message caption is too long",
    );
    // Bytes that are not an image.
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n17\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"x.png\"\r\n\r\nnot an image\r\n--{boundary}--\r\n").as_bytes(),
    );
    let response = control
        .bot_call_raw(
            emulator.token(),
            "sendPhoto",
            body,
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .await
        .unwrap();
    assert_error(&response, 400, "Bad Request: IMAGE_PROCESS_FAILED");
    // Captions can be edited.
    let edited = ok(&call(
        &emulator,
        "editMessageCaption",
        json!({"chat_id": 17, "message_id": again["message_id"], "caption": "<b>new</b>", "parse_mode": "HTML"}),
    )
    .await);
    assert_eq!(edited["caption_entities"][0]["type"], json!("bold"));
    assert_error(
        &call(
            &emulator,
            "editMessageText",
            json!({"chat_id": 17, "message_id": again["message_id"], "text": "x"}),
        )
        .await,
        400,
        "Bad Request: there is no text in the message to edit",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn chat_action_and_commands() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 18, "Act").await;
    assert_eq!(
        ok(&call(
            &emulator,
            "sendChatAction",
            json!({"chat_id": 18, "action": "typing"})
        )
        .await),
        json!(true)
    );
    assert_error(
        &call(
            &emulator,
            "sendChatAction",
            json!({"chat_id": 18, "action": "dancing"}),
        )
        .await,
        400,
        "Bad Request: wrong parameter action in request",
    );
    let transcript = control.transcript(18).await.unwrap();
    assert_eq!(transcript.last_action.unwrap().action, "typing");

    let commands = json!([{"command": "start", "description": "Start"}, {"command": "plans", "description": "Plans"}]);
    assert_eq!(
        ok(&call(&emulator, "setMyCommands", json!({"commands": commands})).await),
        json!(true)
    );
    assert_eq!(
        ok(&call(&emulator, "getMyCommands", json!({})).await),
        commands
    );
    assert_eq!(
        control.bots().await.unwrap()[0].commands,
        commands.as_array().unwrap().clone()
    );
    let ru = json!([{"command": "start", "description": "Начать"}]);
    ok(&call(
        &emulator,
        "setMyCommands",
        json!({"commands": ru, "language_code": "ru"}),
    )
    .await);
    assert_eq!(
        ok(&call(&emulator, "getMyCommands", json!({"language_code": "ru"})).await),
        ru
    );
    assert_error(
        &call(
            &emulator,
            "setMyCommands",
            json!({"commands": [{"command": "Bad-Command", "description": "x"}]}),
        )
        .await,
        400,
        "Bad Request: BOT_COMMAND_INVALID",
    );
    ok(&call(&emulator, "deleteMyCommands", json!({})).await);
    assert_eq!(
        ok(&call(&emulator, "getMyCommands", json!({})).await),
        json!([])
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn replies_and_groups() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 19, "Gus").await;
    let user_message = control.send_text(19, "question").await.unwrap();
    let reply = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 19, "text": "answer", "reply_parameters": {"message_id": user_message.message_id}}),
    )
    .await);
    assert_eq!(reply["reply_to_message"]["text"], json!("question"));
    assert_error(
        &call(
            &emulator,
            "sendMessage",
            json!({"chat_id": 19, "text": "x", "reply_parameters": {"message_id": 777}}),
        )
        .await,
        400,
        "Bad Request: message to be replied not found",
    );
    let group = control.create_group("VPN fans", &[19]).await.unwrap();
    assert!(group.id < 0);
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": group.id, "text": "hello group"}),
    )
    .await);
    assert_eq!(sent["chat"]["type"], json!("group"));
    assert_eq!(sent["chat"]["title"], json!("VPN fans"));
    let in_group = control
        .send_text_in(group.id, 19, "/plans@bot")
        .await
        .unwrap();
    assert_eq!(in_group.chat_id, group.id);
    emulator.shutdown().await;
}
