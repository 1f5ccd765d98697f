//! The `entities` / `caption_entities` parameter: a bot that sends no parse mode may list its
//! entities as JSON. TBA validates them with its own error texts, skips the ones it cannot use
//! and ignores malformed JSON; this module does the same, so a bot's mistakes show here as
//! they would against Telegram.

use serde_json::Value;

use super::{EntityKind, MessageEntity, checked_link, utf16_len};

/// The `entities` / `caption_entities` parameter (used when no parse mode is given). Unknown
/// entity types are skipped, as TBA does; malformed JSON is ignored, as TBA does.
pub(super) fn explicit_entities(text: &str, json: &str) -> Result<Vec<MessageEntity>, String> {
    if json.is_empty() {
        return Ok(Vec::new());
    }
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(json) else {
        return Ok(Vec::new());
    };
    let text_len = utf16_len(text);
    let mut entities = Vec::new();
    for item in items {
        let Value::Object(object) = item else {
            return Err("Can't parse MessageEntity: expected an Object".to_owned());
        };
        let field_int = |name: &str| -> Result<u32, String> {
            match object.get(name) {
                None => Err(format!(
                    "Can't parse MessageEntity: Can't find field \"{name}\""
                )),
                Some(Value::Number(n)) => Ok(n
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(u32::MAX)),
                Some(Value::String(s)) => s.parse::<u32>().map_err(|_| {
                    format!("Can't parse MessageEntity: Field \"{name}\" must be a valid Number")
                }),
                Some(_) => Err(format!(
                    "Can't parse MessageEntity: Field \"{name}\" must be a Number"
                )),
            }
        };
        let kind_name = match object.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(
                    "Can't parse MessageEntity: Field \"type\" must be of type String".to_owned(),
                );
            }
            None => return Err("Can't parse MessageEntity: Can't find field \"type\"".to_owned()),
        };
        if kind_name.is_empty() {
            return Err("Can't parse MessageEntity: Type is not specified".to_owned());
        }
        let offset = field_int("offset")?;
        let length = field_int("length")?;
        let Some(kind) = EntityKind::from_api_name(&kind_name) else {
            continue;
        };
        if length == 0 || offset >= text_len || offset.saturating_add(length) > text_len {
            continue;
        }
        let string_field = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
        let mut entity = MessageEntity::plain(kind, offset, length);
        match kind {
            EntityKind::TextLink => {
                let Some(url) = string_field("url").and_then(|u| checked_link(&u)) else {
                    continue;
                };
                entity.url = Some(url);
            }
            EntityKind::Pre => entity.language = string_field("language").filter(|l| !l.is_empty()),
            EntityKind::CustomEmoji => entity.custom_emoji_id = string_field("custom_emoji_id"),
            EntityKind::TextMention => entity.user = object.get("user").cloned(),
            _ => {}
        }
        entities.push(entity);
    }
    Ok(entities)
}
