//! Message entities: HTML, MarkdownV2 and legacy Markdown parsing, explicit `entities`, and the
//! `bot_command` entities Telegram attaches to commands.
//!
//! Why this exists: a bot that sends malformed HTML gets `400 Bad Request: can't parse entities:
//! …` from Telegram and the user sees nothing. A test double that accepts any markup hides that
//! bug. The parsers follow the rules of tdlib's `parse_html` / `parse_markdown_v2` /
//! `parse_markdown` (which the Bot API server calls) and reproduce their error messages, including
//! byte offsets. Offsets and lengths of entities are in UTF-16 code units, as in the Bot API.
//!
//! One file per way a text gets its entities: `html`, `markdown_v2`, `markdown` (legacy),
//! `explicit` (the `entities` parameter when no parse mode is given) and `commands` (the
//! `bot_command` entities Telegram detects by itself). This file holds what they share: the
//! entity types, [`format_text`] (TBA's choice between them, and its trimming), the UTF-16
//! length helpers and tdlib's entity order.

mod commands;
mod explicit;
mod html;
mod markdown;
mod markdown_v2;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::Value;

pub use commands::{detect_bot_commands, with_detected_commands};
pub use html::parse_html;
pub use markdown::parse_markdown_legacy;
pub use markdown_v2::parse_markdown_v2;

/// The type of an entity, serialised as the Bot API's `type` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// `@username`
    Mention,
    /// `#hashtag`
    Hashtag,
    /// `$USD`
    Cashtag,
    /// `/start@bot`
    BotCommand,
    /// `https://telegram.org`
    Url,
    /// `user@example.com`
    Email,
    /// `+1-212-555-0123`
    PhoneNumber,
    /// bank card number
    BankCardNumber,
    /// bold text
    Bold,
    /// italic text
    Italic,
    /// underlined text
    Underline,
    /// strikethrough text
    Strikethrough,
    /// spoiler
    Spoiler,
    /// block quotation
    Blockquote,
    /// collapsed-by-default block quotation
    ExpandableBlockquote,
    /// monowidth string
    Code,
    /// monowidth block
    Pre,
    /// clickable text URL
    TextLink,
    /// mention of a user without username
    TextMention,
    /// custom emoji
    CustomEmoji,
}

impl EntityKind {
    /// The Bot API name.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Mention => "mention",
            Self::Hashtag => "hashtag",
            Self::Cashtag => "cashtag",
            Self::BotCommand => "bot_command",
            Self::Url => "url",
            Self::Email => "email",
            Self::PhoneNumber => "phone_number",
            Self::BankCardNumber => "bank_card_number",
            Self::Bold => "bold",
            Self::Italic => "italic",
            Self::Underline => "underline",
            Self::Strikethrough => "strikethrough",
            Self::Spoiler => "spoiler",
            Self::Blockquote => "blockquote",
            Self::ExpandableBlockquote => "expandable_blockquote",
            Self::Code => "code",
            Self::Pre => "pre",
            Self::TextLink => "text_link",
            Self::TextMention => "text_mention",
            Self::CustomEmoji => "custom_emoji",
        }
    }

    fn from_api_name(name: &str) -> Option<Self> {
        Some(match name {
            "mention" => Self::Mention,
            "hashtag" => Self::Hashtag,
            "cashtag" => Self::Cashtag,
            "bot_command" => Self::BotCommand,
            "url" => Self::Url,
            "email" => Self::Email,
            "phone_number" => Self::PhoneNumber,
            "bank_card_number" => Self::BankCardNumber,
            "bold" => Self::Bold,
            "italic" => Self::Italic,
            "underline" => Self::Underline,
            "strikethrough" => Self::Strikethrough,
            "spoiler" => Self::Spoiler,
            "blockquote" => Self::Blockquote,
            "expandable_blockquote" => Self::ExpandableBlockquote,
            "code" => Self::Code,
            "pre" => Self::Pre,
            "text_link" => Self::TextLink,
            "text_mention" => Self::TextMention,
            "custom_emoji" => Self::CustomEmoji,
            _ => return None,
        })
    }

    /// tdlib's sort priority (lower sorts first among entities with equal offset and length).
    fn priority(self) -> u8 {
        match self {
            Self::Blockquote | Self::ExpandableBlockquote => 0,
            Self::Pre => 11,
            Self::Code => 20,
            Self::TextLink | Self::TextMention => 49,
            Self::Bold => 90,
            Self::Italic => 91,
            Self::Underline => 92,
            Self::Strikethrough => 93,
            Self::Spoiler => 94,
            Self::CustomEmoji => 99,
            _ => 50,
        }
    }
}

impl Serialize for EntityKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.api_name())
    }
}

/// One entity of a message text or caption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageEntity {
    /// The entity type.
    #[serde(rename = "type")]
    pub kind: EntityKind,
    /// Offset in UTF-16 code units.
    pub offset: u32,
    /// Length in UTF-16 code units.
    pub length: u32,
    /// For `text_link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `pre`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// For `custom_emoji`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_emoji_id: Option<String>,
    /// For `text_mention` (the user object as sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Value>,
}

impl MessageEntity {
    fn plain(kind: EntityKind, offset: u32, length: u32) -> Self {
        Self {
            kind,
            offset,
            length,
            url: None,
            language: None,
            custom_emoji_id: None,
            user: None,
        }
    }
}

/// A text with its entities, after parsing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormattedText {
    /// The plain text.
    pub text: String,
    /// Entities sorted like tdlib sorts them.
    pub entities: Vec<MessageEntity>,
}

impl FormattedText {
    /// Length in Unicode code points (what Telegram's 4096 / 1024 limits count).
    pub fn char_len(&self) -> usize {
        self.text.chars().count()
    }
}

/// Parses `text` according to `parse_mode` (or the explicit `entities` JSON when no parse mode is
/// given), like TBA's `get_formatted_text`. Errors are TBA status messages, e.g.
/// `"Can't parse entities: Unsupported start tag \"foo\" at byte offset 0"`; the caller turns
/// them into `Bad Request: …`.
pub fn format_text(
    text: &str,
    parse_mode: &str,
    entities_json: &str,
) -> Result<FormattedText, String> {
    if text.len() > (1 << 15) {
        return Err("Text is too long".to_owned());
    }
    let mode = parse_mode.to_ascii_lowercase();
    let parsed = if !text.is_empty() && !mode.is_empty() && mode != "none" {
        let result = match mode.as_str() {
            "html" => parse_html(text),
            "markdownv2" => parse_markdown_v2(text),
            "markdown" => parse_markdown_legacy(text),
            _ => return Err("Unsupported parse_mode".to_owned()),
        };
        result.map_err(|e| format!("Can't parse entities: {e}"))?
    } else {
        let entities = explicit::explicit_entities(text, entities_json)?;
        FormattedText {
            text: text.to_owned(),
            entities,
        }
    };
    Ok(trim_formatted(parsed))
}

/// Length of `s` in UTF-16 code units.
pub fn utf16_len(s: &str) -> u32 {
    u32::try_from(s.encode_utf16().count()).unwrap_or(u32::MAX)
}

/// The plain text a parser has produced so far, with its length in UTF-16 code units: where
/// the next entity starts.
struct PlainText {
    text: String,
    utf16: u32,
}

impl PlainText {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            utf16: 0,
        }
    }

    fn push(&mut self, ch: char) {
        self.text.push(ch);
        self.utf16 += u32::try_from(ch.len_utf16()).unwrap_or(1);
    }

    fn push_str(&mut self, s: &str) {
        self.text.push_str(s);
        self.utf16 += utf16_len(s);
    }

    /// Copies the character that starts at byte `i` of `input`; returns its length in bytes.
    fn push_char_at(&mut self, input: &str, i: usize) -> usize {
        let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
        self.push(ch);
        ch.len_utf8()
    }

    /// The parsed text with its entities in tdlib's order.
    fn with_entities(self, mut entities: Vec<MessageEntity>) -> FormattedText {
        sort_entities(&mut entities);
        FormattedText {
            text: self.text,
            entities,
        }
    }
}

/// tdlib's `is_space`: the ASCII white space the parsers skip between tokens.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

fn sort_entities(entities: &mut [MessageEntity]) {
    entities.sort_by(|a, b| {
        a.offset
            .cmp(&b.offset)
            .then(b.length.cmp(&a.length))
            .then(a.kind.priority().cmp(&b.kind.priority()))
    });
}

/// Removes leading and trailing whitespace like tdlib's `fix_formatted_text` and clips entities.
fn trim_formatted(formatted: FormattedText) -> FormattedText {
    let FormattedText { text, mut entities } = formatted;
    let trimmed_start = text.trim_start();
    let removed_front = utf16_len(&text[..text.len() - trimmed_start.len()]);
    let trimmed = trimmed_start.trim_end();
    if trimmed.len() == text.len() {
        entities.retain(|e| e.length > 0);
        sort_entities(&mut entities);
        return FormattedText { text, entities };
    }
    let new_len = utf16_len(trimmed);
    let mut kept = Vec::with_capacity(entities.len());
    for mut entity in entities {
        let start = entity.offset.saturating_sub(removed_front);
        let end = (entity.offset + entity.length)
            .saturating_sub(removed_front)
            .min(new_len);
        if end > start {
            entity.offset = start;
            entity.length = end - start;
            kept.push(entity);
        }
    }
    sort_entities(&mut kept);
    FormattedText {
        text: trimmed.to_owned(),
        entities: kept,
    }
}

/// tdlib's link check, simplified: URLs with a scheme must use an allowed one; a URL without a
/// scheme gets `http://`. `None` drops the entity (as tdlib does for bad links).
fn checked_link(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.chars().any(char::is_whitespace) {
        return None;
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let allowed = ["http", "https", "tg", "ton", "tonsite"];
            (allowed.contains(&scheme.as_str()) && !rest.is_empty()).then(|| url.to_owned())
        }
        None if url.starts_with("tg:") || url.starts_with("mailto:") => Some(url.to_owned()),
        None => Some(format!("http://{url}")),
    }
}
