//! The `bot_command` entities Telegram attaches by itself to every message text, whatever its
//! parse mode: the bot's dispatcher recognises commands by them, so the emulator must place
//! them where Telegram does (and not inside code or links).

use super::{EntityKind, FormattedText, MessageEntity, sort_entities, utf16_len};

/// Entities Telegram detects by itself in any message text. The emulator detects bot commands
/// only (mentions, hashtags and URLs are not auto-detected).
pub fn detect_bot_commands(text: &str) -> Vec<MessageEntity> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut search_from = 0;
    while let Some(rel) = bytes[search_from..].iter().position(|b| *b == b'/') {
        let slash = search_from + rel;
        search_from = slash + 1;
        if slash > 0 {
            let prev = text[..slash].chars().next_back().unwrap_or(' ');
            if is_word_char(prev) || prev == '/' || prev == '<' || prev == '>' {
                continue;
            }
        }
        let mut end = slash + 1;
        while end < bytes.len() && is_command_byte(bytes[end]) {
            end += 1;
        }
        let command_len = end - slash - 1;
        if !(1..=64).contains(&command_len) {
            continue;
        }
        if end < bytes.len() && bytes[end] == b'@' {
            let mut mention_end = end + 1;
            while mention_end < bytes.len() && is_command_byte(bytes[mention_end]) {
                mention_end += 1;
            }
            let mention_len = mention_end - end - 1;
            if !(3..=32).contains(&mention_len) {
                continue;
            }
            end = mention_end;
        }
        let next = text[end..].chars().next().unwrap_or(' ');
        if is_word_char(next) || next == '/' || next == '<' || next == '>' {
            continue;
        }
        found.push(MessageEntity::plain(
            EntityKind::BotCommand,
            utf16_len(&text[..slash]),
            utf16_len(&text[slash..end]),
        ));
        search_from = end;
    }
    found
}

/// Adds auto-detected entities to `formatted`, skipping ones that overlap existing entities of
/// code-like types, and keeps tdlib's order.
pub fn with_detected_commands(mut formatted: FormattedText) -> FormattedText {
    let detected = detect_bot_commands(&formatted.text);
    for entity in detected {
        let start = entity.offset;
        let end = entity.offset + entity.length;
        let inside_code = formatted.entities.iter().any(|e| {
            matches!(
                e.kind,
                EntityKind::Code | EntityKind::Pre | EntityKind::TextLink | EntityKind::Url
            ) && e.offset < end
                && start < e.offset + e.length
        });
        if !inside_code {
            formatted.entities.push(entity);
        }
    }
    sort_entities(&mut formatted.entities);
    formatted
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_command_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
