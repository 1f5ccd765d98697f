//! Drives the emulator with teloxide's own `Bot` (pointed at it with `set_api_url`) through every
//! method the emulator serves, so the JSON shapes and error texts are proven against a real client
//! library: results and updates must parse into teloxide's types (no `UpdateKind::Error`), and
//! errors must map to teloxide's `ApiError` variants, which match descriptions exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Receiver, start, started_user};
use telegram_emulator::files::TINY_PNG;
use telegram_emulator::{PaymentStatus, RunningEmulator};
use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, ChatAction, ChatMemberKind, InlineKeyboardButton, InlineKeyboardMarkup, InputFile,
    LabeledPrice, MessageEntityKind, ParseMode, TransactionPartner, Update, UpdateKind,
};
use teloxide::{ApiError, RequestError};

const USER: i64 = 4242;

fn bot_for(emulator: &RunningEmulator) -> Bot {
    Bot::new(emulator.token()).set_api_url(url::Url::parse(&emulator.api_url()).unwrap())
}

/// Polls until one update arrives; fails on updates teloxide could not parse.
async fn next_update(bot: &Bot, offset: &mut i32) -> Update {
    for _ in 0..10 {
        let updates = bot.get_updates().offset(*offset).timeout(2).await.unwrap();
        if let Some(update) = updates.into_iter().next() {
            *offset = i32::try_from(update.id.0).unwrap() + 1;
            assert!(
                !matches!(update.kind, UpdateKind::Error(_)),
                "teloxide could not parse {update:?}"
            );
            return update;
        }
    }
    panic!("no update arrived");
}

#[tokio::test]
async fn every_method_through_teloxide() {
    let emulator = start(common::config_without_limits()).await;
    let control = emulator.client();
    let bot = bot_for(&emulator);
    let chat = ChatId(USER);

    // getMe
    let me = bot.get_me().await.unwrap();
    assert_eq!(me.username(), emulator.bot_username());
    assert!(me.user.is_bot);

    // A user starts the bot with a deep link: getUpdates yields a parsed Message with a command.
    started_user(&control, USER, "Tele").await;
    control.send_text(USER, "/start promo_5").await.unwrap();
    let mut offset = 0;
    let update = next_update(&bot, &mut offset).await;
    let UpdateKind::Message(start_message) = update.kind else {
        panic!("message expected")
    };
    assert_eq!(start_message.text(), Some("/start promo_5"));
    assert_eq!(
        start_message.entities().unwrap()[0].kind,
        MessageEntityKind::BotCommand
    );
    assert_eq!(start_message.from.as_ref().unwrap().id, UserId(USER as u64));
    assert_eq!(
        start_message
            .from
            .as_ref()
            .unwrap()
            .language_code
            .as_deref(),
        Some("en")
    );

    // setMyCommands
    bot.set_my_commands([
        BotCommand::new("start", "Start"),
        BotCommand::new("plans", "Plans"),
    ])
    .await
    .unwrap();

    // sendChatAction, sendMessage with HTML and an inline keyboard
    bot.send_chat_action(chat, ChatAction::Typing)
        .await
        .unwrap();
    let keyboard = InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback("Buy", "buy:30"),
        InlineKeyboardButton::callback("Help", "help"),
    ]]);
    let menu = bot
        .send_message(chat, "<b>Plans</b> for you")
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard.clone())
        .await
        .unwrap();
    assert_eq!(menu.text(), Some("Plans for you"));
    assert_eq!(menu.entities().unwrap()[0].kind, MessageEntityKind::Bold);
    assert_eq!(menu.reply_markup(), Some(&keyboard));
    assert_eq!(menu.chat.id, chat);

    // The user presses a button: a CallbackQuery with the message; answerCallbackQuery.
    let press = {
        let control = control.clone();
        let id = i64::from(menu.id.0);
        tokio::spawn(async move { control.press_button(USER, id, "buy:30").await.unwrap() })
    };
    let update = next_update(&bot, &mut offset).await;
    let UpdateKind::CallbackQuery(query) = update.kind else {
        panic!("callback query expected")
    };
    assert_eq!(query.data.as_deref(), Some("buy:30"));
    assert_eq!(query.regular_message().unwrap().id, menu.id);
    bot.answer_callback_query(query.id.clone())
        .text("Added to cart")
        .await
        .unwrap();
    assert_eq!(press.await.unwrap().answer.unwrap().text, "Added to cart");

    // editMessageText, editMessageReplyMarkup; "not modified" maps to teloxide's variant.
    let edited = bot
        .edit_message_text(chat, menu.id, "Choose a period")
        .await
        .unwrap();
    assert!(edited.edit_date().is_some());
    assert!(edited.reply_markup().is_none());
    let edited = bot
        .edit_message_reply_markup(chat, menu.id)
        .reply_markup(keyboard.clone())
        .await
        .unwrap();
    assert_eq!(edited.reply_markup(), Some(&keyboard));
    let not_modified = bot
        .edit_message_reply_markup(chat, menu.id)
        .reply_markup(keyboard.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            not_modified,
            RequestError::Api(ApiError::MessageNotModified)
        ),
        "{not_modified:?}"
    );

    // sendPhoto (multipart upload), editMessageCaption, deleteMessage
    let photo = bot
        .send_photo(chat, InputFile::memory(TINY_PNG).file_name("qr.png"))
        .caption("Your QR code")
        .await
        .unwrap();
    assert_eq!(photo.photo().unwrap()[0].width, 1);
    assert_eq!(photo.caption(), Some("Your QR code"));
    let recaptioned = bot
        .edit_message_caption(chat, photo.id)
        .caption("Scan me")
        .await
        .unwrap();
    assert_eq!(recaptioned.caption(), Some("Scan me"));
    bot.delete_message(chat, photo.id).await.unwrap();
    let gone = bot.delete_message(chat, photo.id).await.unwrap_err();
    assert!(
        matches!(gone, RequestError::Api(ApiError::MessageToDeleteNotFound)),
        "{gone:?}"
    );

    // sendInvoice (Stars) and the payment flow: PreCheckoutQuery, answerPreCheckoutQuery,
    // SuccessfulPayment, refundStarPayment, getStarTransactions.
    let invoice = bot
        .send_invoice(
            chat,
            "VPN 30 days",
            "Unlimited",
            "purchase:7",
            "XTR",
            [LabeledPrice::new("30 days", 150)],
        )
        .await
        .unwrap();
    assert_eq!(invoice.invoice().unwrap().total_amount, 150);
    let payment = {
        let control = control.clone();
        let id = i64::from(invoice.id.0);
        tokio::spawn(async move { control.pay_invoice(USER, id).await.unwrap() })
    };
    let update = next_update(&bot, &mut offset).await;
    let UpdateKind::PreCheckoutQuery(pre_checkout) = update.kind else {
        panic!("pre-checkout query expected")
    };
    assert_eq!(pre_checkout.invoice_payload, "purchase:7");
    assert_eq!(pre_checkout.total_amount, 150);
    bot.answer_pre_checkout_query(pre_checkout.id.clone(), true)
        .await
        .unwrap();
    assert_eq!(payment.await.unwrap().status, PaymentStatus::Paid);
    let update = next_update(&bot, &mut offset).await;
    let UpdateKind::Message(paid) = update.kind else {
        panic!("successful payment message expected")
    };
    let successful = paid.successful_payment().unwrap().clone();
    assert_eq!(successful.currency, "XTR");
    assert_eq!(successful.invoice_payload, "purchase:7");
    let transactions = bot.get_star_transactions().await.unwrap();
    assert_eq!(transactions.transactions.len(), 1);
    assert_eq!(
        transactions.transactions[0].id,
        successful.telegram_payment_charge_id
    );
    let Some(TransactionPartner::User(partner)) = &transactions.transactions[0].source else {
        panic!("user partner expected")
    };
    assert_eq!(partner.user.id, UserId(USER as u64));
    bot.refund_star_payment(
        UserId(USER as u64),
        successful.telegram_payment_charge_id.clone(),
    )
    .await
    .unwrap();
    let again = bot
        .refund_star_payment(
            UserId(USER as u64),
            successful.telegram_payment_charge_id.clone(),
        )
        .await
        .unwrap_err();
    assert!(
        format!("{again:?}").contains("CHARGE_ALREADY_REFUNDED"),
        "{again:?}"
    );
    let update = next_update(&bot, &mut offset).await;
    assert!(
        matches!(update.kind, UpdateKind::Message(_)),
        "refunded_payment message parses"
    );

    // createInvoiceLink
    let link = bot
        .create_invoice_link(
            "Top up",
            "100 stars",
            "topup:1",
            "XTR",
            [LabeledPrice::new("Stars", 100)],
        )
        .await
        .unwrap();
    assert!(link.starts_with("https://t.me/$"));

    // The user blocks the bot: MyChatMember, then BotBlocked on send.
    control.block_bot(USER).await.unwrap();
    let update = next_update(&bot, &mut offset).await;
    let UpdateKind::MyChatMember(member) = update.kind else {
        panic!("my_chat_member expected")
    };
    assert!(matches!(
        member.new_chat_member.kind,
        ChatMemberKind::Banned(_)
    ));
    let blocked = bot.send_message(chat, "hello?").await.unwrap_err();
    assert!(
        matches!(blocked, RequestError::Api(ApiError::BotBlocked)),
        "{blocked:?}"
    );
    let unknown = bot.send_message(ChatId(1), "x").await.unwrap_err();
    assert!(
        matches!(unknown, RequestError::Api(ApiError::ChatNotFound)),
        "{unknown:?}"
    );
    let bad_html = bot
        .send_message(ChatId(USER), "<b>x")
        .parse_mode(ParseMode::Html)
        .await
        .unwrap_err();
    assert!(
        matches!(bad_html, RequestError::Api(ApiError::CantParseEntities(_))),
        "{bad_html:?}"
    );

    // setWebhook / getWebhookInfo / deleteWebhook, and a webhook body parsed as a teloxide Update.
    control.unblock_bot(USER).await.unwrap();
    let receiver = Receiver::ok().await;
    bot.set_webhook(url::Url::parse(&receiver.url()).unwrap())
        .secret_token("teloxide_secret".to_owned())
        .max_connections(5)
        .await
        .unwrap();
    let conflict = bot.get_updates().await.unwrap_err();
    assert!(
        format!("{conflict:?}").contains("webhook is active"),
        "{conflict:?}"
    );
    let received = receiver.wait_for(1, Duration::from_secs(10)).await;
    let update: Update = serde_json::from_str(&received[0].raw).unwrap();
    assert!(received[0].raw.starts_with("{\"update_id\":"));
    assert!(
        matches!(update.kind, UpdateKind::MyChatMember(_)),
        "{update:?}"
    );
    // Pitfall worth knowing: teloxide 0.17 parses an Update from text (from_str / from_slice)
    // but not through serde_json::from_value, which yields UpdateKind::Error.
    let via_value: Update = serde_json::from_value(received[0].update.clone()).unwrap();
    assert!(matches!(via_value.kind, UpdateKind::Error(_)));
    let info = bot.get_webhook_info().await.unwrap();
    assert_eq!(info.url.unwrap().as_str(), receiver.url());
    assert_eq!(info.max_connections, Some(5));
    bot.delete_webhook().await.unwrap();
    assert!(bot.get_webhook_info().await.unwrap().url.is_none());
    emulator.shutdown().await;
}

#[tokio::test]
async fn teloxide_sees_flood_limits_as_retry_after() {
    let mut config = common::config();
    config.rate_limits.per_chat_per_sec = 0.2;
    config.rate_limits.per_chat_burst = 1.0;
    let emulator = start(config).await;
    let control = emulator.client();
    started_user(&control, USER, "Flood").await;
    let bot = bot_for(&emulator);
    bot.send_message(ChatId(USER), "one").await.unwrap();
    let limited = bot.send_message(ChatId(USER), "two").await.unwrap_err();
    let RequestError::RetryAfter(seconds) = limited else {
        panic!("RetryAfter expected, got {limited:?}")
    };
    assert_eq!(seconds.seconds(), 5);
    emulator.shutdown().await;
}

#[tokio::test]
async fn stale_callback_answer_and_teloxides_literal() {
    // teloxide's InvalidQueryId literal says "query id" while the Bot API server says "query ID",
    // so teloxide reports the stale-callback error as ApiError::Unknown with the server's text.
    let emulator = start(common::config_without_limits()).await;
    let control = emulator.client();
    started_user(&control, USER, "Stale").await;
    let bot = bot_for(&emulator);
    let keyboard = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Go", "go")]]);
    let menu = bot
        .send_message(ChatId(USER), "menu")
        .reply_markup(keyboard)
        .await
        .unwrap();
    let outcome = control
        .press_button_with(telegram_emulator::control::types::PressButton {
            chat_id: USER,
            message_id: i64::from(menu.id.0),
            callback_data: "go".into(),
            wait_ms: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    control.advance_time(151.0).await.unwrap();
    let stale = bot
        .answer_callback_query(teloxide::types::CallbackQueryId(outcome.callback_query_id))
        .await
        .unwrap_err();
    let RequestError::Api(ApiError::Unknown(text)) = stale else {
        panic!("unexpected {stale:?}")
    };
    assert_eq!(
        text,
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    );
    emulator.shutdown().await;
}
