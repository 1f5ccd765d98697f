//! The control API: users, buttons and callback answers, blocking, waiting for messages, fault
//! injection, emulated time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, call, config_without_limits, ok, start, started_user};
use serde_json::json;
use telegram_emulator::control::types::PressButton;
use telegram_emulator::{ControlError, FaultKind, MessageFilter, NewUser};

const WAIT: Duration = Duration::from_secs(10);
const KEYBOARD: &str = r#"{"inline_keyboard":[[{"text":"Renew","callback_data":"renew"},{"text":"Help","callback_data":"help"}]]}"#;

#[tokio::test]
async fn users_are_validated() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    let user = control
        .create_user(
            NewUser::new("Ада")
                .last_name("Л")
                .username("ada_l")
                .language("ru")
                .premium(),
        )
        .await
        .unwrap();
    assert!(user.id > 0);
    assert_eq!(user.language_code.as_deref(), Some("ru"));
    let duplicate = control
        .create_user(NewUser::new("Again").id(user.id))
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, ControlError::Rejected { status: 409, .. }),
        "{duplicate}"
    );
    let bad = control
        .create_user(NewUser::new("X").username("a b"))
        .await
        .unwrap_err();
    assert!(
        matches!(bad, ControlError::Rejected { status: 400, .. }),
        "{bad}"
    );
    assert_eq!(control.users().await.unwrap().len(), 1);
    // The user object the bot sees.
    control.send_text(user.id, "hi").await.unwrap();
    let updates = ok(&call(&emulator, "getUpdates", json!({})).await);
    assert_eq!(
        updates[0]["message"]["from"],
        json!({"id": user.id, "is_bot": false, "first_name": "Ада", "last_name": "Л", "username": "ada_l", "language_code": "ru", "is_premium": true})
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn pressing_buttons_and_answers() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 7, "Presser").await;
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 7, "text": "Your plan", "reply_markup": KEYBOARD}),
    )
    .await);
    let message_id = sent["message_id"].as_i64().unwrap();

    // A bot that answers the query it receives.
    let bot = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        tokio::spawn(async move {
            loop {
                let updates = client
                    .bot_call(&token, "getUpdates", &json!({"timeout": 5}))
                    .await
                    .unwrap();
                if let Some(query) = updates
                    .result()
                    .as_array()
                    .unwrap()
                    .iter()
                    .find_map(|u| u.get("callback_query"))
                {
                    assert_eq!(query["data"], json!("renew"));
                    assert_eq!(query["message"]["message_id"], json!(message_id));
                    assert_eq!(query["from"]["id"], json!(7));
                    assert!(query["chat_instance"].as_str().is_some());
                    let answer = client
                        .bot_call(&token, "answerCallbackQuery", &json!({"callback_query_id": query["id"], "text": "Renewed!", "show_alert": true}))
                        .await
                        .unwrap();
                    assert_eq!(answer.result(), &json!(true));
                    let again = client
                        .bot_call(
                            &token,
                            "answerCallbackQuery",
                            &json!({"callback_query_id": query["id"]}),
                        )
                        .await
                        .unwrap();
                    return again;
                }
            }
        })
    };
    let outcome = control.press_button(7, message_id, "renew").await.unwrap();
    let answer = outcome.answer.unwrap();
    assert_eq!(answer.text, "Renewed!");
    assert!(answer.show_alert);
    assert_error(
        &bot.await.unwrap(),
        400,
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
    );
    let missing = control
        .press_button(7, message_id, "nope")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ControlError::Rejected { status: 400, .. }),
        "{missing}"
    );
    // A modified client can still send data no button carries; the bot must cope.
    let forged = control
        .press_button_with(PressButton {
            chat_id: 7,
            message_id,
            callback_data: "nope".into(),
            wait_ms: Some(0),
            forged: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(forged.update_id.is_some());
    emulator.shutdown().await;
}

#[tokio::test]
async fn callback_queries_go_stale_after_150_emulated_seconds() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 8, "Late").await;
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 8, "text": "menu", "reply_markup": KEYBOARD}),
    )
    .await);
    let outcome = control
        .press_button_with(PressButton {
            chat_id: 8,
            message_id: sent["message_id"].as_i64().unwrap(),
            callback_data: "help".into(),
            wait_ms: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(outcome.answer.is_none());
    control.advance_time(151.0).await.unwrap();
    assert_error(
        &call(
            &emulator,
            "answerCallbackQuery",
            json!({"callback_query_id": outcome.callback_query_id}),
        )
        .await,
        400,
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn blocking_sends_my_chat_member_updates() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 9, "Blocker").await;
    control.block_bot(9).await.unwrap();
    control.unblock_bot(9).await.unwrap();
    let updates = ok(&call(&emulator, "getUpdates", json!({})).await);
    let blocked = &updates[0]["my_chat_member"];
    assert_eq!(blocked["chat"]["id"], json!(9));
    assert_eq!(blocked["from"]["id"], json!(9));
    assert_eq!(blocked["old_chat_member"]["status"], json!("member"));
    assert_eq!(blocked["new_chat_member"]["status"], json!("kicked"));
    assert_eq!(blocked["new_chat_member"]["until_date"], json!(0));
    assert_eq!(blocked["new_chat_member"]["user"]["is_bot"], json!(true));
    let unblocked = &updates[1]["my_chat_member"];
    assert_eq!(unblocked["old_chat_member"]["status"], json!("kicked"));
    assert_eq!(unblocked["new_chat_member"]["status"], json!("member"));
    // A blocked user cannot write to the bot.
    control.block_bot(9).await.unwrap();
    assert!(control.send_text(9, "hello?").await.is_err());
    assert!(control.transcript(9).await.unwrap().blocked);
    emulator.shutdown().await;
}

#[tokio::test]
async fn wait_for_message_long_polls_with_a_deadline() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 10, "Waiter").await;
    let first = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 10, "text": "Welcome"}),
    )
    .await);
    let sender = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client
                .bot_call(
                    &token,
                    "sendMessage",
                    &json!({"chat_id": 10, "text": "Choose a plan", "reply_markup": KEYBOARD}),
                )
                .await
                .unwrap()
        })
    };
    let found = control
        .wait_for_message(
            10,
            MessageFilter::from_bot()
                .has_keyboard(true)
                .after(first["message_id"].as_i64().unwrap()),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(found.text.as_deref(), Some("Choose a plan"));
    assert_eq!(found.button_data("Renew").as_deref(), Some("renew"));
    sender.await.unwrap();
    // Waiting for an edit.
    let editor = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        let id = found.message_id;
        tokio::spawn(async move {
            client
                .bot_call(
                    &token,
                    "editMessageText",
                    &json!({"chat_id": 10, "message_id": id, "text": "Plan chosen"}),
                )
                .await
                .unwrap()
        })
    };
    let edited = control
        .wait_for_message(
            10,
            MessageFilter::from_bot()
                .text_contains("chosen")
                .edited_more_than(0),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(edited.message_id, found.message_id);
    assert!(!edited.has_keyboard());
    editor.await.unwrap();
    let started = Instant::now();
    let error = control
        .wait_for_message(
            10,
            MessageFilter::from_bot().text_contains("never"),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ControlError::Rejected { status: 408, .. }),
        "{error}"
    );
    assert!(started.elapsed() >= Duration::from_millis(190));
    emulator.shutdown().await;
}

#[tokio::test]
async fn injected_faults() {
    let mut config = config_without_limits();
    config.hang_duration = Duration::from_millis(300);
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, 11, "Faulty").await;
    let send = json!({"chat_id": 11, "text": "x"});

    control
        .inject_fault("sendMessage", FaultKind::ServerError, 2)
        .await
        .unwrap();
    for _ in 0..2 {
        let failed = call(&emulator, "sendMessage", send.clone()).await;
        assert_error(&failed, 500, "Internal Server Error");
    }
    ok(&call(&emulator, "sendMessage", send.clone()).await);

    control
        .inject_fault(
            "sendmessage",
            FaultKind::TooManyRequests { retry_after: 7 },
            1,
        )
        .await
        .unwrap();
    let limited = call(&emulator, "sendMessage", send.clone()).await;
    assert_error(&limited, 429, "Too Many Requests: retry after 7");
    assert_eq!(limited.body["parameters"]["retry_after"], json!(7));

    control
        .inject_fault("*", FaultKind::BadGateway, 1)
        .await
        .unwrap();
    let gateway = call(&emulator, "getMe", json!({})).await;
    assert_eq!(gateway.status, 502);
    assert_eq!(
        gateway.body,
        serde_json::Value::Null,
        "an HTML page, not JSON"
    );

    control
        .inject_fault("sendMessage", FaultKind::DropConnection, 1)
        .await
        .unwrap();
    let dropped = control
        .bot_call(emulator.token(), "sendMessage", &send)
        .await;
    assert!(
        matches!(dropped, Err(ControlError::Transport(_))),
        "{dropped:?}"
    );

    control
        .inject_fault("getMe", FaultKind::Hang, 1)
        .await
        .unwrap();
    let client = emulator.client();
    let token = emulator.token().to_owned();
    let hung = tokio::time::timeout(
        Duration::from_millis(100),
        client.bot_call(&token, "getMe", &json!({})),
    )
    .await;
    assert!(hung.is_err(), "a hung call does not answer");
    // Nothing was executed by the faulty calls.
    let transcript = control.transcript(11).await.unwrap();
    assert_eq!(transcript.messages.len(), 1);

    control
        .inject_fault("deleteMessage", FaultKind::ServerError, 5)
        .await
        .unwrap();
    control.clear_faults().await.unwrap();
    ok(&call(
        &emulator,
        "deleteMessage",
        json!({"chat_id": 11, "message_id": 1}),
    )
    .await);
    let unknown = control
        .inject_fault("launchRocket", FaultKind::ServerError, 1)
        .await
        .unwrap_err();
    assert!(matches!(
        unknown,
        ControlError::Rejected { status: 400, .. }
    ));
    let counters = control.counters().await.unwrap();
    assert_eq!(counters.faults_fired, 6);
    assert_eq!(
        counters.responses_5xx, 5,
        "2 server errors, 1 bad gateway, 1 drop, 1 hang"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn emulated_time_drives_dates() {
    let emulator = start(config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, 12, "Timer").await;
    let before = control.emulated_now().await.unwrap();
    let after = control.advance_time(30.0 * 86_400.0).await.unwrap();
    assert!(after >= before + 30 * 86_400);
    let sent = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": 12, "text": "in a month"}),
    )
    .await);
    assert!(sent["date"].as_i64().unwrap() >= after);
    assert!(control.advance_time(-1.0).await.is_err());
    emulator.shutdown().await;
}

#[tokio::test]
async fn multiple_bots_are_separate() {
    let mut config = config_without_limits();
    config
        .bots
        .push(telegram_emulator::BotConfig::new("7000000002:second").username("second_bot"));
    let emulator = start(config).await;
    let control = emulator.client();
    let second = control.for_bot("second_bot");
    started_user(&control, 13, "Both").await;
    second.send_text(13, "/start").await.unwrap();
    let updates = ok(&call(&emulator, "getUpdates", json!({})).await);
    assert_eq!(updates, json!([]), "the default bot got nothing");
    let updates = control
        .bot_call("7000000002:second", "getUpdates", &json!({}))
        .await
        .unwrap();
    assert_eq!(updates.result()[0]["message"]["text"], json!("/start"));
    assert_eq!(control.bots().await.unwrap().len(), 2);
    emulator.shutdown().await;
}
