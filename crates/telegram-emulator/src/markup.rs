//! `reply_markup`: inline keyboards, reply keyboards, keyboard removal and force-reply.
//!
//! Why this exists: keyboards are how a Telegram bot is driven, so the emulator must (a) reject
//! the markup Telegram rejects, with the same words (`BUTTON_DATA_INVALID` for callback data over
//! 64 bytes, "Text buttons are unallowed in the inline keyboard", …), (b) keep the normalised
//! keyboard so a test or the web page can press its buttons, and (c) compare keyboards exactly
//! for the "message is not modified" rule of edits.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

/// Maximum `callback_data` size in bytes.
pub const MAX_CALLBACK_DATA_BYTES: usize = 64;

/// What an inline button does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ButtonAction {
    /// Opens a URL.
    Url(String),
    /// Sends a callback query with this data.
    Callback(String),
    /// The Pay button of an invoice.
    Pay,
    /// Opens a Web App.
    WebApp(String),
    /// Logs in with a URL.
    LoginUrl(String),
    /// Switches to inline mode in another chat.
    SwitchInlineQuery(String),
    /// Switches to inline mode in the current chat.
    SwitchInlineQueryCurrentChat(String),
    /// Switches to inline mode in a chosen chat (kept as sent).
    SwitchInlineQueryChosenChat(Value),
    /// Copies a text to the clipboard.
    CopyText(String),
    /// Launches a game.
    CallbackGame,
}

/// One inline keyboard button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineButton {
    /// The label.
    pub text: String,
    /// What pressing it does.
    pub action: ButtonAction,
}

impl Serialize for InlineButton {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("text", &self.text)?;
        match &self.action {
            ButtonAction::Url(url) => map.serialize_entry("url", url)?,
            ButtonAction::Callback(data) => map.serialize_entry("callback_data", data)?,
            ButtonAction::Pay => map.serialize_entry("pay", &true)?,
            ButtonAction::WebApp(url) => {
                map.serialize_entry("web_app", &serde_json::json!({ "url": url }))?;
            }
            ButtonAction::LoginUrl(url) => {
                map.serialize_entry("login_url", &serde_json::json!({ "url": url }))?;
            }
            ButtonAction::SwitchInlineQuery(q) => map.serialize_entry("switch_inline_query", q)?,
            ButtonAction::SwitchInlineQueryCurrentChat(q) => {
                map.serialize_entry("switch_inline_query_current_chat", q)?;
            }
            ButtonAction::SwitchInlineQueryChosenChat(v) => {
                map.serialize_entry("switch_inline_query_chosen_chat", v)?;
            }
            ButtonAction::CopyText(text) => {
                map.serialize_entry("copy_text", &serde_json::json!({ "text": text }))?;
            }
            ButtonAction::CallbackGame => {
                map.serialize_entry("callback_game", &serde_json::json!({}))?;
            }
        }
        map.end()
    }
}

/// An inline keyboard attached to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InlineKeyboard {
    /// Rows of buttons.
    pub inline_keyboard: Vec<Vec<InlineButton>>,
}

impl InlineKeyboard {
    /// Whether any button sends exactly this callback data.
    pub fn has_callback(&self, data: &str) -> bool {
        self.buttons()
            .any(|b| matches!(&b.action, ButtonAction::Callback(d) if d == data))
    }

    /// All buttons, row by row.
    pub fn buttons(&self) -> impl Iterator<Item = &InlineButton> {
        self.inline_keyboard.iter().flatten()
    }

    /// The first button, if it is a Pay button (sendInvoice's rule).
    pub fn first_is_pay(&self) -> bool {
        self.buttons()
            .next()
            .is_some_and(|b| b.action == ButtonAction::Pay)
    }
}

/// A parsed `reply_markup` parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyMarkup {
    /// Buttons under the message.
    Inline(InlineKeyboard),
    /// A custom keyboard replacing the user's keyboard (kept as normalised JSON).
    Keyboard(Value),
    /// Removes the custom keyboard.
    Remove,
    /// Asks the user to reply.
    ForceReply(Value),
}

impl ReplyMarkup {
    /// The inline keyboard, if this is one.
    pub fn into_inline(self) -> Option<InlineKeyboard> {
        match self {
            Self::Inline(k) => Some(k),
            _ => None,
        }
    }
}

/// Parses the `reply_markup` argument like TBA's `get_reply_markup`. `Ok(None)` when absent or
/// empty (an empty inline keyboard counts as no markup). Errors are TBA status messages.
pub fn parse_reply_markup(raw: &str) -> Result<Option<ReplyMarkup>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return Err("Can't parse reply keyboard markup JSON object".to_owned());
    };
    let Value::Object(object) = value else {
        return Err("Object expected as reply markup".to_owned());
    };
    if let Some(keyboard) = object.get("keyboard") {
        let rows = keyboard
            .as_array()
            .ok_or_else(|| "Field \"keyboard\" must be of type Array".to_owned())?;
        let mut normalized_rows = Vec::with_capacity(rows.len());
        for row in rows {
            let buttons = row
                .as_array()
                .ok_or_else(|| "Field \"keyboard\" must be an Array of Arrays".to_owned())?;
            let mut normalized = Vec::with_capacity(buttons.len());
            for button in buttons {
                normalized.push(
                    keyboard_button(button)
                        .map_err(|e| format!("Can't parse keyboard button: {e}"))?,
                );
            }
            normalized_rows.push(Value::Array(normalized));
        }
        if !normalized_rows
            .iter()
            .all(|r| r.as_array().is_some_and(Vec::is_empty))
        {
            let mut out = Map::new();
            out.insert("keyboard".to_owned(), Value::Array(normalized_rows));
            for flag in [
                "resize_keyboard",
                "one_time_keyboard",
                "is_persistent",
                "selective",
            ] {
                if object.get(flag).and_then(Value::as_bool) == Some(true) {
                    out.insert(flag.to_owned(), Value::Bool(true));
                }
            }
            if let Some(Value::String(p)) = object.get("input_field_placeholder") {
                out.insert(
                    "input_field_placeholder".to_owned(),
                    Value::String(p.clone()),
                );
            }
            return Ok(Some(ReplyMarkup::Keyboard(Value::Object(out))));
        }
    }
    if let Some(keyboard) = object.get("inline_keyboard") {
        let rows = keyboard
            .as_array()
            .ok_or_else(|| "Field \"inline_keyboard\" must be of type Array".to_owned())?;
        let mut parsed_rows = Vec::with_capacity(rows.len());
        for row in rows {
            let buttons = row.as_array().ok_or_else(|| {
                "Field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays"
                    .to_owned()
            })?;
            let mut parsed = Vec::with_capacity(buttons.len());
            for button in buttons {
                parsed.push(
                    inline_button(button)
                        .map_err(|e| format!("Can't parse inline keyboard button: {e}"))?,
                );
            }
            if !parsed.is_empty() {
                parsed_rows.push(parsed);
            }
        }
        if !parsed_rows.is_empty() {
            for button in parsed_rows.iter().flatten() {
                if let ButtonAction::Callback(data) = &button.action
                    && data.len() > MAX_CALLBACK_DATA_BYTES
                {
                    return Err("BUTTON_DATA_INVALID".to_owned());
                }
            }
            return Ok(Some(ReplyMarkup::Inline(InlineKeyboard {
                inline_keyboard: parsed_rows,
            })));
        }
    }
    let flag = |name: &str| object.get(name).and_then(Value::as_bool) == Some(true);
    if flag("remove_keyboard") || flag("hide_keyboard") {
        return Ok(Some(ReplyMarkup::Remove));
    }
    if flag("force_reply") || flag("force_reply_keyboard") {
        let mut out = Map::new();
        out.insert("force_reply".to_owned(), Value::Bool(true));
        if let Some(Value::String(p)) = object.get("input_field_placeholder") {
            out.insert(
                "input_field_placeholder".to_owned(),
                Value::String(p.clone()),
            );
        }
        return Ok(Some(ReplyMarkup::ForceReply(Value::Object(out))));
    }
    Ok(None)
}

fn string_field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("Field \"{name}\" must be of type String")),
    }
}

fn required_text(object: &Map<String, Value>) -> Result<String, String> {
    match string_field(object, "text")? {
        Some(text) => Ok(text.to_owned()),
        None => Err("Can't find field \"text\"".to_owned()),
    }
}

fn inline_button(value: &Value) -> Result<InlineButton, String> {
    let Value::Object(object) = value else {
        return Err("InlineKeyboardButton must be an Object".to_owned());
    };
    let text = required_text(object)?;
    let nested_string = |field: &str, inner: &str| -> Result<String, String> {
        match object.get(field) {
            Some(Value::Object(o)) => match o.get(inner) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("Field \"{inner}\" must be of type String")),
                None => Err(format!("Can't find field \"{inner}\"")),
            },
            _ => Err(format!("Field \"{field}\" must be of type Object")),
        }
    };
    let action = if let Some(url) = string_field(object, "url")?.filter(|u| !u.is_empty()) {
        if url.chars().any(char::is_whitespace) {
            return Err("BUTTON_URL_INVALID".to_owned());
        }
        ButtonAction::Url(url.to_owned())
    } else if let Some(data) = string_field(object, "callback_data")?.filter(|d| !d.is_empty()) {
        ButtonAction::Callback(data.to_owned())
    } else if object.contains_key("callback_game") {
        ButtonAction::CallbackGame
    } else if object.contains_key("pay") {
        ButtonAction::Pay
    } else if object.contains_key("switch_inline_query") {
        ButtonAction::SwitchInlineQuery(
            string_field(object, "switch_inline_query")?
                .unwrap_or_default()
                .to_owned(),
        )
    } else if let Some(v) = object.get("switch_inline_query_chosen_chat") {
        ButtonAction::SwitchInlineQueryChosenChat(v.clone())
    } else if object.contains_key("switch_inline_query_current_chat") {
        ButtonAction::SwitchInlineQueryCurrentChat(
            string_field(object, "switch_inline_query_current_chat")?
                .unwrap_or_default()
                .to_owned(),
        )
    } else if object.contains_key("login_url") {
        ButtonAction::LoginUrl(nested_string("login_url", "url")?)
    } else if object.contains_key("web_app") {
        ButtonAction::WebApp(nested_string("web_app", "url")?)
    } else if object.contains_key("copy_text") {
        ButtonAction::CopyText(nested_string("copy_text", "text")?)
    } else {
        return Err("Text buttons are unallowed in the inline keyboard".to_owned());
    };
    Ok(InlineButton { text, action })
}

fn keyboard_button(value: &Value) -> Result<Value, String> {
    match value {
        Value::String(text) => Ok(serde_json::json!({ "text": text })),
        Value::Object(object) => {
            let text = required_text(object)?;
            let mut out = object.clone();
            out.insert("text".to_owned(), Value::String(text));
            Ok(Value::Object(out))
        }
        _ => Err("KeyboardButton must be a String or an Object".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_keyboard_round_trip() {
        let markup = parse_reply_markup(
            r#"{"inline_keyboard":[[{"text":"Buy","callback_data":"buy:1"},{"text":"Site","url":"https://x.org"}]]}"#,
        )
        .unwrap()
        .unwrap();
        let ReplyMarkup::Inline(keyboard) = markup else {
            panic!("inline expected")
        };
        assert!(keyboard.has_callback("buy:1"));
        assert_eq!(
            serde_json::to_value(&keyboard).unwrap(),
            serde_json::json!({"inline_keyboard":[[{"text":"Buy","callback_data":"buy:1"},{"text":"Site","url":"https://x.org"}]]})
        );
    }

    #[test]
    fn callback_data_over_64_bytes_is_rejected() {
        let data = "x".repeat(65);
        let raw = format!(r#"{{"inline_keyboard":[[{{"text":"a","callback_data":"{data}"}}]]}}"#);
        assert_eq!(parse_reply_markup(&raw).unwrap_err(), "BUTTON_DATA_INVALID");
        let data = "x".repeat(64);
        let raw = format!(r#"{{"inline_keyboard":[[{{"text":"a","callback_data":"{data}"}}]]}}"#);
        assert!(parse_reply_markup(&raw).is_ok());
    }

    #[test]
    fn text_only_inline_button_is_rejected() {
        assert_eq!(
            parse_reply_markup(r#"{"inline_keyboard":[[{"text":"a"}]]}"#).unwrap_err(),
            "Can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        );
        assert_eq!(
            parse_reply_markup(r#"{"inline_keyboard":[[{"callback_data":"a"}]]}"#).unwrap_err(),
            "Can't parse inline keyboard button: Can't find field \"text\""
        );
        assert_eq!(
            parse_reply_markup("{not json").unwrap_err(),
            "Can't parse reply keyboard markup JSON object"
        );
    }

    #[test]
    fn reply_keyboard_and_removal() {
        let markup =
            parse_reply_markup(r#"{"keyboard":[["A",{"text":"B"}]],"resize_keyboard":true}"#)
                .unwrap()
                .unwrap();
        assert!(matches!(markup, ReplyMarkup::Keyboard(_)));
        assert_eq!(
            parse_reply_markup(r#"{"remove_keyboard":true}"#).unwrap(),
            Some(ReplyMarkup::Remove)
        );
        assert_eq!(
            parse_reply_markup(r#"{"inline_keyboard":[]}"#).unwrap(),
            None
        );
    }
}
