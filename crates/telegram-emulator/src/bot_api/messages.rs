//! Methods that create or change messages: send, edit, delete, chat actions, invoices.
//!
//! Validation follows the real server's order (TBA checks text and markup before it resolves the
//! chat; tdlib checks lengths after), so that the first error reported for a bad call is the one
//! Telegram would report.

use std::sync::Arc;

use serde_json::Value;

use super::ApiOk;
use crate::entities::{FormattedText, format_text, with_detected_commands};
use crate::error::{ApiError, text};
use crate::markup::{InlineKeyboard, ReplyMarkup, parse_reply_markup};
use crate::model::{Content, Document, PhotoSize};
use crate::params::Params;
use crate::state::{BotState, ChatState, lock};

/// Maximum text length in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Maximum caption length in characters.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Bots may delete messages in private chats for 48 hours.
const DELETE_WINDOW_SECS: i64 = 48 * 3600;

fn status(message: String) -> ApiError {
    ApiError::from_status_message(&message)
}

/// Reads `reply_markup`: an inline keyboard for the message, and/or a change of the user's
/// custom keyboard (`Some(None)` removes it).
fn reply_markup(
    params: &Params,
) -> Result<(Option<InlineKeyboard>, Option<Option<Value>>), ApiError> {
    Ok(
        match parse_reply_markup(params.arg("reply_markup")).map_err(status)? {
            None | Some(ReplyMarkup::ForceReply(_)) => (None, None),
            Some(ReplyMarkup::Inline(keyboard)) => (Some(keyboard), None),
            Some(ReplyMarkup::Keyboard(keyboard)) => (None, Some(Some(keyboard))),
            Some(ReplyMarkup::Remove) => (None, Some(None)),
        },
    )
}

/// Edits accept only inline keyboards.
fn edit_markup(params: &Params) -> Result<Option<InlineKeyboard>, ApiError> {
    match parse_reply_markup(params.arg("reply_markup")).map_err(status)? {
        None => Ok(None),
        Some(ReplyMarkup::Inline(keyboard)) => Ok(Some(keyboard)),
        Some(_) => Err(ApiError::bad_request("inline keyboard expected")),
    }
}

/// `reply_parameters` or the legacy `reply_to_message_id`.
fn reply_target(params: &Params) -> Result<Option<(i64, bool)>, ApiError> {
    let raw = params.arg("reply_parameters");
    if !raw.is_empty() {
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(raw) else {
            return Err(ApiError::bad_request(
                "can't parse reply parameters JSON object",
            ));
        };
        let message_id = match object.get("message_id") {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(Value::String(s)) => crate::params::lenient_int(s),
            _ => 0,
        };
        let allow = object
            .get("allow_sending_without_reply")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        return Ok((message_id > 0).then_some((message_id, allow)));
    }
    let id = params.int_arg("reply_to_message_id", 0, 0, i64::MAX);
    Ok((id > 0).then(|| (id, params.bool_arg("allow_sending_without_reply"))))
}

/// Parses the message text (TBA's `get_input_message_text`).
fn message_text(params: &Params) -> Result<FormattedText, ApiError> {
    let raw = params.arg("text");
    if raw.is_empty() {
        return Err(ApiError::bad_request_static(text::TEXT_EMPTY));
    }
    format_text(raw, params.arg("parse_mode"), params.arg("entities")).map_err(status)
}

/// tdlib's checks after the chat is known: non-empty after trimming, at most 4096 characters.
/// tdlib rewrites the server's `MESSAGE_TOO_LONG` only for new messages; edits get it raw.
fn checked_text(formatted: FormattedText, editing: bool) -> Result<FormattedText, ApiError> {
    if formatted.text.is_empty() {
        return Err(ApiError::bad_request("text must be non-empty"));
    }
    if formatted.char_len() > MAX_TEXT_CHARS {
        return Err(if editing {
            ApiError::bad_request("MESSAGE_TOO_LONG")
        } else {
            ApiError::bad_request_static(text::TEXT_TOO_LONG)
        });
    }
    Ok(with_detected_commands(formatted))
}

fn caption(params: &Params) -> Result<Option<FormattedText>, ApiError> {
    let raw = params.arg("caption");
    if raw.is_empty() {
        return Ok(None);
    }
    let formatted = format_text(
        raw,
        params.arg("parse_mode"),
        params.arg("caption_entities"),
    )
    .map_err(status)?;
    Ok((!formatted.text.is_empty()).then_some(formatted))
}

fn checked_caption(
    caption: Option<FormattedText>,
    editing: bool,
) -> Result<Option<FormattedText>, ApiError> {
    match caption {
        Some(c) if c.char_len() > MAX_CAPTION_CHARS && editing => {
            Err(ApiError::bad_request("MEDIA_CAPTION_TOO_LONG"))
        }
        Some(c) if c.char_len() > MAX_CAPTION_CHARS => {
            Err(ApiError::bad_request_static(text::CAPTION_TOO_LONG))
        }
        Some(c) => Ok(Some(with_detected_commands(c))),
        None => Ok(None),
    }
}

fn sent(bot: &BotState, chat: &ChatState, record: &crate::model::MessageRecord) -> ApiOk {
    ApiOk::json(bot.message_json(chat, record))
}

/// `sendMessage`.
pub fn send_message(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let formatted = message_text(params)?;
    let reply_to = reply_target(params)?;
    let (inline, keyboard) = reply_markup(params)?;
    let chat = bot.target_chat(params.arg("chat_id"))?;
    let formatted = checked_text(formatted, false)?;
    let record = bot.store_bot_message(
        &chat,
        Content::Text(formatted),
        inline,
        keyboard,
        reply_to,
        params.bool_arg("allow_paid_broadcast"),
    )?;
    Ok(sent(bot, &chat, &record))
}

/// `sendPhoto`.
pub fn send_photo(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let shared = &bot.shared;
    let photo_arg = params.arg("photo");
    let upload = params.file("photo").or_else(|| {
        photo_arg
            .strip_prefix("attach://")
            .and_then(|name| params.file(name))
    });
    let file = match upload {
        Some(upload) => shared
            .files
            .store_upload(&shared.rng, upload.data.clone())
            .ok_or_else(|| ApiError::bad_request_static(text::IMAGE_PROCESS_FAILED))?,
        None if photo_arg.is_empty() => {
            return Err(ApiError::bad_request("there is no photo in the request"));
        }
        None if photo_arg.starts_with("http://") || photo_arg.starts_with("https://") => {
            shared.files.store_url(&shared.rng, photo_arg)
        }
        None => shared
            .files
            .get(photo_arg)
            .ok_or_else(|| ApiError::bad_request_static(text::WRONG_FILE_ID))?,
    };
    let size = PhotoSize {
        file_id: file.file_id.clone(),
        file_unique_id: file.file_unique_id.clone(),
        width: file.width,
        height: file.height,
        file_size: (!file.data.is_empty()).then_some(file.data.len() as u64),
    };
    send_captioned(bot, params, |caption| Content::Photo {
        sizes: vec![size],
        caption,
    })
}

/// The rest of a media send once its file is resolved, in the real server's order: caption,
/// reply target and markup are checked before the chat is resolved, lengths after.
fn send_captioned(
    bot: &Arc<BotState>,
    params: &Params,
    content: impl FnOnce(Option<FormattedText>) -> Content,
) -> Result<ApiOk, ApiError> {
    let caption = caption(params)?;
    let reply_to = reply_target(params)?;
    let (inline, keyboard) = reply_markup(params)?;
    let chat = bot.target_chat(params.arg("chat_id"))?;
    let caption = checked_caption(caption, false)?;
    let record = bot.store_bot_message(
        &chat,
        content(caption),
        inline,
        keyboard,
        reply_to,
        params.bool_arg("allow_paid_broadcast"),
    )?;
    Ok(sent(bot, &chat, &record))
}

/// `sendDocument`: a multipart upload (the part named `document`, or `attach://<name>`) or the
/// `file_id` of a document sent before. Uploads above `limits.max_document_bytes` are refused
/// with Telegram's "file is too big".
pub fn send_document(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let shared = &bot.shared;
    let document_arg = params.arg("document");
    let upload = params.file("document").or_else(|| {
        document_arg
            .strip_prefix("attach://")
            .and_then(|name| params.file(name))
    });
    let (file, file_name) = match upload {
        Some(upload) => {
            if upload.data.len() > shared.config.limits.max_document_bytes {
                return Err(ApiError::bad_request_static(text::FILE_TOO_BIG));
            }
            let file = shared
                .files
                .store_document(&shared.rng, upload.data.clone());
            (file, upload.file_name.clone())
        }
        None if document_arg.is_empty() => {
            return Err(ApiError::bad_request_static(text::NO_DOCUMENT));
        }
        None => {
            let file = shared
                .files
                .get(document_arg)
                .ok_or_else(|| ApiError::bad_request_static(text::WRONG_FILE_ID))?;
            (file, "document".to_owned())
        }
    };
    let document = Document {
        file_id: file.file_id.clone(),
        file_unique_id: file.file_unique_id.clone(),
        mime_type: mime_of(&file_name).to_owned(),
        file_name,
        file_size: file.data.len() as u64,
    };
    send_captioned(bot, params, |caption| Content::Document {
        document,
        caption,
    })
}

/// The MIME type Telegram reports for a document, from its file name's extension.
fn mime_of(file_name: &str) -> &'static str {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".gz") {
        "application/gzip"
    } else if lower.ends_with(".txt") {
        "text/plain"
    } else if lower.ends_with(".json") {
        "application/json"
    } else if lower.ends_with(".zip") {
        "application/zip"
    } else {
        "application/octet-stream"
    }
}

/// `sendInvoice`.
pub fn send_invoice(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let invoice = crate::payments::parse_invoice(bot, params, false)?;
    let reply_to = reply_target(params)?;
    let (inline, _) = reply_markup(params)?;
    if let Some(keyboard) = &inline
        && !keyboard.first_is_pay()
    {
        return Err(ApiError::bad_request("REPLY_MARKUP_BUY_EMPTY"));
    }
    let chat = bot.target_chat(params.arg("chat_id"))?;
    let record = bot.store_bot_message(
        &chat,
        Content::Invoice(Arc::new(invoice)),
        inline,
        None,
        reply_to,
        params.bool_arg("allow_paid_broadcast"),
    )?;
    Ok(sent(bot, &chat, &record))
}

/// Which message an edit targets; inline messages are not emulated.
fn edit_target(bot: &BotState, params: &Params) -> Result<(Arc<ChatState>, i64), ApiError> {
    let chat_id = params.arg("chat_id");
    let message_id = params.int_arg("message_id", 0, i64::MIN, i64::MAX);
    if chat_id.is_empty() && message_id == 0 {
        if params.arg("inline_message_id").is_empty() {
            return Err(ApiError::bad_request_static(text::MESSAGE_ID_NOT_SPECIFIED));
        }
        // The emulator has no inline mode, so no inline message exists.
        return Err(ApiError::bad_request("MESSAGE_ID_INVALID"));
    }
    let chat = bot.target_chat(chat_id)?;
    if message_id <= 0 {
        return Err(ApiError::bad_request_static(text::EDIT_NOT_FOUND));
    }
    Ok((chat, message_id))
}

/// Applies `change` to a bot message, enforcing the edit rules, and returns the edited message.
fn edit(
    bot: &Arc<BotState>,
    chat: &ChatState,
    message_id: i64,
    change: impl FnOnce(
        &crate::model::MessageRecord,
    ) -> Result<(Content, Option<InlineKeyboard>), ApiError>,
) -> Result<ApiOk, ApiError> {
    let now = bot.shared.clock.now_secs();
    let (index, current) = {
        let inner = lock(&chat.inner);
        if inner.blocked {
            return Err(ApiError::forbidden(text::BOT_BLOCKED));
        }
        inner
            .find(message_id)
            .ok_or_else(|| ApiError::bad_request_static(text::EDIT_NOT_FOUND))?
    };
    if !current.sender.is_bot() {
        return Err(ApiError::bad_request_static(text::CANT_EDIT));
    }
    let (content, markup) = change(&current)?;
    if same_content(&current.content, &content) && current.reply_markup == markup {
        return Err(ApiError::bad_request_static(text::NOT_MODIFIED));
    }
    let mut edited = (*current).clone();
    edited.content = content;
    edited.reply_markup = markup;
    edited.edit_date = Some(now);
    edited.edit_count += 1;
    let edited = Arc::new(edited);
    bot.replace_message(chat, index, edited.clone());
    Ok(sent(bot, chat, &edited))
}

fn same_content(a: &Content, b: &Content) -> bool {
    match (a, b) {
        (Content::Text(a), Content::Text(b)) => a == b,
        (
            Content::Photo {
                sizes: sa,
                caption: ca,
            },
            Content::Photo {
                sizes: sb,
                caption: cb,
            },
        ) => sa == sb && ca == cb,
        (Content::Invoice(a), Content::Invoice(b)) => a == b,
        _ => false,
    }
}

/// `editMessageText`.
pub fn edit_message_text(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let formatted = message_text(params)?;
    let markup = edit_markup(params)?;
    let (chat, message_id) = edit_target(bot, params)?;
    let formatted = checked_text(formatted, true)?;
    edit(bot, &chat, message_id, |current| match &current.content {
        Content::Text(_) => Ok((Content::Text(formatted), markup)),
        _ => Err(ApiError::bad_request_static(text::NO_TEXT_TO_EDIT)),
    })
}

/// `editMessageCaption`.
pub fn edit_message_caption(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let markup = edit_markup(params)?;
    let caption = caption(params)?;
    let (chat, message_id) = edit_target(bot, params)?;
    let caption = checked_caption(caption, true)?;
    edit(bot, &chat, message_id, |current| match &current.content {
        Content::Photo { sizes, .. } => Ok((
            Content::Photo {
                sizes: sizes.clone(),
                caption,
            },
            markup,
        )),
        _ => Err(ApiError::bad_request_static(text::NO_CAPTION_TO_EDIT)),
    })
}

/// `editMessageReplyMarkup`.
pub fn edit_message_reply_markup(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let markup = edit_markup(params)?;
    let (chat, message_id) = edit_target(bot, params)?;
    edit(bot, &chat, message_id, |current| {
        Ok((current.content.clone(), markup))
    })
}

/// `deleteMessage`.
pub fn delete_message(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let chat_id = params.arg("chat_id");
    if chat_id.is_empty() {
        return Err(ApiError::bad_request_static(text::CHAT_ID_NOT_SPECIFIED));
    }
    let message_id = params.int_arg("message_id", 0, i64::MIN, i64::MAX);
    if message_id == 0 {
        return Err(ApiError::bad_request_static(text::MESSAGE_ID_NOT_SPECIFIED));
    }
    let chat = bot.target_chat(chat_id)?;
    let (index, current) = lock(&chat.inner)
        .find(message_id)
        .ok_or_else(|| ApiError::bad_request_static(text::DELETE_NOT_FOUND))?;
    let now = bot.shared.clock.now_secs();
    let is_group = chat.private_user().is_none();
    if now - current.date > DELETE_WINDOW_SECS || (is_group && !current.sender.is_bot()) {
        return Err(ApiError::bad_request_static(text::CANT_DELETE));
    }
    let mut deleted = (*current).clone();
    deleted.deleted = true;
    bot.replace_message(&chat, index, Arc::new(deleted));
    Ok(ApiOk::r#true())
}

const CHAT_ACTIONS: &[&str] = &[
    "cancel",
    "typing",
    "record_video",
    "upload_video",
    "record_audio",
    "record_voice",
    "upload_audio",
    "upload_voice",
    "upload_photo",
    "upload_document",
    "choose_sticker",
    "pick_up_location",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// `sendChatAction`.
pub fn send_chat_action(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let action = params.arg("action").to_owned();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request("wrong parameter action in request"));
    }
    let chat = bot.target_chat(params.arg("chat_id"))?;
    {
        let inner = lock(&chat.inner);
        BotState::check_writable(&chat, &inner)?;
    }
    let now = bot.shared.clock.now_secs();
    bot.touch(&chat, |inner| {
        inner.last_action = (action != "cancel").then(|| (action.clone(), now));
    });
    Ok(ApiOk::r#true())
}
