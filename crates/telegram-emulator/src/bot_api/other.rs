//! Query answers, bot commands and invoice links.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ApiOk;
use crate::error::{ApiError, text};
use crate::params::Params;
use crate::queries::{CallbackAnswer, PreCheckoutAnswer};
use crate::state::{BotState, CommandSet, MAX_COMMAND_SETS, lock};

/// `answerCallbackQuery`: once, within the query's lifetime (150 s of emulated time).
pub fn answer_callback_query(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let id = params.arg("callback_query_id");
    let answer = CallbackAnswer {
        text: params.arg("text").to_owned(),
        show_alert: params.bool_arg("show_alert"),
        url: Some(params.arg("url").to_owned()).filter(|u| !u.is_empty()),
        cache_time: params.int_arg("cache_time", 0, 0, 24 * 30 * 3600),
    };
    let now = bot.shared.clock.now_ms();
    let lifetime_ms = i64::from(bot.shared.config.callback_query_lifetime_secs) * 1000;
    lock(&bot.queries)
        .answer_callback(id, answer, now, lifetime_ms)
        .map_err(|_| ApiError::bad_request_static(text::QUERY_TOO_OLD))?;
    Ok(ApiOk::r#true())
}

/// `answerPreCheckoutQuery`: once, within 10 s (emulated) of the query.
pub fn answer_pre_checkout_query(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let id = params.arg("pre_checkout_query_id");
    let answer = if params.bool_arg("ok") {
        PreCheckoutAnswer::Ok
    } else {
        PreCheckoutAnswer::Declined(params.required("error_message")?.to_owned())
    };
    let now = bot.shared.clock.now_ms();
    lock(&bot.queries)
        .answer_pre_checkout(id, answer, now)
        .map_err(|_| ApiError::bad_request_static(text::QUERY_TOO_OLD))?;
    Ok(ApiOk::r#true())
}

/// `createInvoiceLink`.
pub fn create_invoice_link(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let invoice = crate::payments::parse_invoice(bot, params, true)?;
    let slug = bot.shared.rng.token(22);
    let link = format!("https://t.me/${slug}");
    lock(&bot.payments).add_link(
        slug,
        Arc::new(invoice),
        bot.shared.config.limits.max_invoice_links,
    );
    Ok(ApiOk::json(Value::from(link).to_string()))
}

const SCOPE_TYPES: &[&str] = &[
    "default",
    "all_private_chats",
    "all_group_chats",
    "all_chat_administrators",
    "chat",
    "chat_administrators",
    "chat_member",
];

/// The `scope` parameter, normalised (`{"type":"default"}` when absent).
fn command_scope(params: &Params) -> Result<Value, ApiError> {
    let raw = params.arg("scope");
    if raw.is_empty() {
        return Ok(json!({"type": "default"}));
    }
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(raw) else {
        return Err(ApiError::bad_request(
            "can't parse BotCommandScope JSON object",
        ));
    };
    let Some(kind) = object.get("type").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("Can't find field \"type\""));
    };
    if !SCOPE_TYPES.contains(&kind) {
        return Err(ApiError::bad_request("unsupported bot command scope type"));
    }
    Ok(Value::Object(object))
}

fn parse_commands(raw: &str) -> Result<Vec<Value>, ApiError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return Err(ApiError::bad_request("can't parse commands JSON object"));
    };
    let Value::Array(items) = value else {
        return Err(ApiError::bad_request("expected an Array of BotCommand"));
    };
    if items.len() > 100 {
        return Err(ApiError::bad_request("BOT_COMMANDS_TOO_MUCH"));
    }
    let mut commands = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(object) = item else {
            return Err(ApiError::bad_request(
                "can't parse BotCommand: expected an Object",
            ));
        };
        let field = |name: &str| -> Result<String, ApiError> {
            match object.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(ApiError::bad_request(format!(
                    "can't parse BotCommand: Field \"{name}\" must be of type String"
                ))),
                None => Err(ApiError::bad_request(format!(
                    "can't parse BotCommand: Can't find field \"{name}\""
                ))),
            }
        };
        let command = field("command")?;
        let description = field("description")?;
        let command = command.strip_prefix('/').unwrap_or(&command).to_owned();
        let valid = (1..=32).contains(&command.len())
            && command
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
        }
        let description_len = description.chars().count();
        if !(1..=256).contains(&description_len) {
            return Err(ApiError::bad_request("BOT_COMMAND_DESCRIPTION_INVALID"));
        }
        commands.push(json!({"command": command, "description": description}));
    }
    Ok(commands)
}

/// `setMyCommands`.
pub fn set_my_commands(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let commands = parse_commands(params.arg("commands"))?;
    let scope = command_scope(params)?;
    let language_code = params.arg("language_code").to_owned();
    let mut sets = lock(&bot.commands);
    sets.retain(|s| !(s.scope == scope && s.language_code == language_code));
    if !commands.is_empty() {
        if sets.len() >= MAX_COMMAND_SETS {
            return Err(ApiError::bad_request("too many command scopes"));
        }
        sets.push(CommandSet {
            scope,
            language_code,
            commands,
        });
    }
    Ok(ApiOk::r#true())
}

/// `getMyCommands`.
pub fn get_my_commands(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let scope = command_scope(params)?;
    let language_code = params.arg("language_code");
    let sets = lock(&bot.commands);
    let commands = sets
        .iter()
        .find(|s| s.scope == scope && s.language_code == language_code)
        .map(|s| s.commands.clone())
        .unwrap_or_default();
    Ok(ApiOk::value(&Value::Array(commands)))
}

/// `deleteMyCommands`.
pub fn delete_my_commands(bot: &Arc<BotState>, params: &Params) -> Result<ApiOk, ApiError> {
    let scope = command_scope(params)?;
    let language_code = params.arg("language_code");
    lock(&bot.commands).retain(|s| !(s.scope == scope && s.language_code == language_code));
    Ok(ApiOk::r#true())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_validation() {
        assert!(parse_commands(r#"[{"command":"start","description":"Start"}]"#).is_ok());
        assert_eq!(
            parse_commands(r#"[{"command":"Start!","description":"x"}]"#)
                .unwrap_err()
                .description,
            "Bad Request: BOT_COMMAND_INVALID"
        );
        assert_eq!(
            parse_commands(r#"[{"command":"start","description":""}]"#)
                .unwrap_err()
                .description,
            "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"
        );
    }
}
