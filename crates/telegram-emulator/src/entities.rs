//! Message entities: HTML, MarkdownV2 and legacy Markdown parsing, explicit `entities`, and the
//! `bot_command` entities Telegram attaches to commands.
//!
//! Why this exists: a bot that sends malformed HTML gets `400 Bad Request: can't parse entities:
//! …` from Telegram and the user sees nothing. A test double that accepts any markup hides that
//! bug. The parsers below follow the rules of tdlib's `parse_html` / `parse_markdown_v2` /
//! `parse_markdown` (which the Bot API server calls) and reproduce their error messages, including
//! byte offsets. Offsets and lengths of entities are in UTF-16 code units, as in the Bot API.

use serde::Serialize;
use serde_json::Value;

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
        let entities = explicit_entities(text, entities_json)?;
        FormattedText {
            text: text.to_owned(),
            entities,
        }
    };
    Ok(trim_formatted(parsed))
}

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

/// Length of `s` in UTF-16 code units.
pub fn utf16_len(s: &str) -> u32 {
    u32::try_from(s.encode_utf16().count()).unwrap_or(u32::MAX)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_command_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
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

/// The `entities` / `caption_entities` parameter (used when no parse mode is given). Unknown
/// entity types are skipped, as TBA does; malformed JSON is ignored, as TBA does.
fn explicit_entities(text: &str, json: &str) -> Result<Vec<MessageEntity>, String> {
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

// ---------------------------------------------------------------------------------------------
// HTML

const HTML_TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "tg-time",
    "span",
    "pre",
    "code",
    "blockquote",
];

struct OpenTag {
    name: String,
    argument: String,
    utf16_start: u32,
    out_start: usize,
}

fn is_html_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// Decodes `&lt;`, `&gt;`, `&amp;`, `&quot;` and numeric references at the start of `s`.
/// Returns the character and the number of bytes consumed.
fn decode_html_entity(s: &str) -> Option<(char, usize)> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'&') {
        return None;
    }
    let end = bytes.iter().take(12).position(|b| *b == b';')?;
    let body = &s[1..end];
    let ch = if let Some(number) = body.strip_prefix('#') {
        let code = if let Some(hex) = number
            .strip_prefix('x')
            .or_else(|| number.strip_prefix('X'))
        {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            number.parse::<u32>().ok()?
        };
        if code == 0 {
            return None;
        }
        char::from_u32(code)?
    } else {
        match body {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            _ => return None,
        }
    };
    Some((ch, end + 1))
}

/// Parses Telegram's HTML subset.
pub fn parse_html(input: &str) -> Result<FormattedText, String> {
    let bytes = input.as_bytes();
    let len = bytes.len();
    let mut out = String::with_capacity(len);
    let mut utf16: u32 = 0;
    let mut stack: Vec<OpenTag> = Vec::new();
    let mut entities: Vec<MessageEntity> = Vec::new();
    let at = |i: usize| -> u8 { bytes.get(i).copied().unwrap_or(0) };
    let mut i = 0;
    while i < len {
        let c = bytes[i];
        if c == b'&'
            && let Some((ch, consumed)) = decode_html_entity(&input[i..])
        {
            out.push(ch);
            utf16 += u32::try_from(ch.len_utf16()).unwrap_or(1);
            i += consumed;
            continue;
        }
        if c != b'<' {
            let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            utf16 += u32::try_from(ch.len_utf16()).unwrap_or(1);
            i += ch.len_utf8();
            continue;
        }
        let begin = i;
        i += 1;
        if at(i) != b'/' {
            // A start tag.
            let name_start = i;
            while i < len && !is_html_space(bytes[i]) && bytes[i] != b'>' {
                i += 1;
            }
            if i >= len {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            let tag = input[name_start..i].to_ascii_lowercase();
            if !HTML_TAGS.contains(&tag.as_str()) {
                return Err(format!(
                    "Unsupported start tag \"{tag}\" at byte offset {begin}"
                ));
            }
            let mut argument = String::new();
            while at(i) != b'>' {
                while i < len && is_html_space(bytes[i]) {
                    i += 1;
                }
                if at(i) == b'>' {
                    break;
                }
                let attr_start = i;
                while i < len
                    && !is_html_space(bytes[i])
                    && !matches!(bytes[i], b'=' | b'>' | b'/' | b'"' | b'\'')
                {
                    i += 1;
                }
                let attr_name = &input[attr_start..i];
                if attr_name.is_empty() {
                    return Err(format!(
                        "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                while i < len && is_html_space(bytes[i]) {
                    i += 1;
                }
                if at(i) != b'=' {
                    if i >= len {
                        return Err(format!(
                            "Unclosed start tag \"{tag}\" at byte offset {begin}"
                        ));
                    }
                    if tag == "blockquote" && attr_name == "expandable" {
                        argument = "1".to_owned();
                    }
                    continue;
                }
                i += 1;
                while i < len && is_html_space(bytes[i]) {
                    i += 1;
                }
                if i >= len {
                    return Err(format!(
                        "Unclosed start tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                let value;
                if bytes[i] != b'\'' && bytes[i] != b'"' {
                    let token_start = i;
                    while i < len
                        && (bytes[i].is_ascii_alphanumeric()
                            || bytes[i] == b'.'
                            || bytes[i] == b'-')
                    {
                        i += 1;
                    }
                    value = input[token_start..i].to_ascii_lowercase();
                    if i < len && !is_html_space(bytes[i]) && bytes[i] != b'>' {
                        return Err(format!(
                            "Unexpected end of name token at byte offset {token_start}"
                        ));
                    }
                } else {
                    let quote = bytes[i];
                    i += 1;
                    let mut decoded = String::new();
                    while i < len && bytes[i] != quote {
                        if bytes[i] == b'&'
                            && let Some((ch, consumed)) = decode_html_entity(&input[i..])
                        {
                            decoded.push(ch);
                            i += consumed;
                            continue;
                        }
                        let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
                        decoded.push(ch);
                        i += ch.len_utf8();
                    }
                    if i < len {
                        i += 1;
                    }
                    value = decoded;
                }
                if i >= len {
                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                }
                match (tag.as_str(), attr_name) {
                    ("a", "href") | ("tg-emoji", "emoji-id") | ("tg-time", "format") => {
                        argument = value;
                    }
                    ("code", "class") => {
                        if let Some(language) = value.strip_prefix("language-") {
                            argument = language.to_owned();
                        }
                    }
                    ("span", "class") => {
                        if let Some(class) = value.strip_prefix("tg-") {
                            argument = class.to_owned();
                        }
                    }
                    ("blockquote", "expandable") => argument = "1".to_owned(),
                    _ => {}
                }
            }
            if tag == "span" && argument != "spoiler" {
                return Err(format!(
                    "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                ));
            }
            i += 1; // past '>'
            stack.push(OpenTag {
                name: tag,
                argument,
                utf16_start: utf16,
                out_start: out.len(),
            });
        } else {
            // An end tag.
            if stack.is_empty() {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            }
            i += 1;
            let name_start = i;
            while i < len && !is_html_space(bytes[i]) && bytes[i] != b'>' {
                i += 1;
            }
            let end_name = input[name_start..i].to_ascii_lowercase();
            while i < len && is_html_space(bytes[i]) {
                i += 1;
            }
            if at(i) != b'>' {
                return Err(format!("Unclosed end tag at byte offset {begin}"));
            }
            i += 1;
            let Some(open) = stack.pop() else {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            };
            if !end_name.is_empty() && end_name != open.name {
                return Err(format!(
                    "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_name}>\"",
                    open.name
                ));
            }
            if utf16 > open.utf16_start {
                close_html_entity(&open, utf16, &out, &mut entities)?;
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.name
        ));
    }
    for entity in &mut entities {
        if entity.kind == EntityKind::Code {
            entity.language = None;
        }
    }
    sort_entities(&mut entities);
    Ok(FormattedText {
        text: out,
        entities,
    })
}

fn close_html_entity(
    open: &OpenTag,
    utf16_end: u32,
    out: &str,
    entities: &mut Vec<MessageEntity>,
) -> Result<(), String> {
    let offset = open.utf16_start;
    let length = utf16_end - offset;
    let kind = match open.name.as_str() {
        "i" | "em" => EntityKind::Italic,
        "b" | "strong" => EntityKind::Bold,
        "s" | "strike" | "del" => EntityKind::Strikethrough,
        "u" | "ins" => EntityKind::Underline,
        "tg-spoiler" | "span" => EntityKind::Spoiler,
        "tg-time" => return Ok(()),
        "tg-emoji" => {
            let valid = open
                .argument
                .parse::<i64>()
                .map(|id| id != 0)
                .unwrap_or(false);
            if !valid {
                return Err("Invalid custom emoji identifier specified".to_owned());
            }
            let mut entity = MessageEntity::plain(EntityKind::CustomEmoji, offset, length);
            entity.custom_emoji_id = Some(open.argument.clone());
            entities.push(entity);
            return Ok(());
        }
        "a" => {
            let url = if open.argument.is_empty() {
                out[open.out_start..].to_owned()
            } else {
                open.argument.clone()
            };
            if let Some(url) = checked_link(&url) {
                let mut entity = MessageEntity::plain(EntityKind::TextLink, offset, length);
                entity.url = Some(url);
                entities.push(entity);
            }
            return Ok(());
        }
        "pre" => {
            if let Some(last) = entities.last_mut()
                && last.kind == EntityKind::Code
                && last.offset == offset
                && last.length == length
                && last.language.is_some()
            {
                last.kind = EntityKind::Pre;
                return Ok(());
            }
            EntityKind::Pre
        }
        "code" => {
            let language = (!open.argument.is_empty()).then(|| open.argument.clone());
            if let Some(last) = entities.last_mut()
                && last.kind == EntityKind::Pre
                && last.offset == offset
                && last.length == length
                && language.is_some()
            {
                last.language = language;
                return Ok(());
            }
            let mut entity = MessageEntity::plain(EntityKind::Code, offset, length);
            entity.language = language;
            entities.push(entity);
            return Ok(());
        }
        "blockquote" => {
            if open.argument.is_empty() {
                EntityKind::Blockquote
            } else {
                EntityKind::ExpandableBlockquote
            }
        }
        _ => return Ok(()),
    };
    entities.push(MessageEntity::plain(kind, offset, length));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MarkdownV2

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MdKind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    Pre,
    PreCode,
    TextUrl,
    CustomEmoji,
    BlockQuote,
}

impl MdKind {
    /// tdlib's name of the entity type, used in error messages.
    fn td_name(self) -> &'static str {
        match self {
            Self::Bold => "Bold",
            Self::Italic => "Italic",
            Self::Underline => "Underline",
            Self::Strikethrough => "Strikethrough",
            Self::Spoiler => "Spoiler",
            Self::Code => "Code",
            Self::Pre => "Pre",
            Self::PreCode => "PreCode",
            Self::TextUrl => "TextUrl",
            Self::CustomEmoji => "CustomEmoji",
            Self::BlockQuote => "BlockQuote",
        }
    }
}

struct MdOpen {
    kind: MdKind,
    argument: String,
    utf16_start: u32,
    byte_offset: usize,
    out_start: usize,
}

fn reserved_error(c: char) -> String {
    format!("Character '{c}' is reserved and must be escaped with the preceding '\\'")
}

/// Parses MarkdownV2.
pub fn parse_markdown_v2(input: &str) -> Result<FormattedText, String> {
    const RESERVED: &[u8] = b"_*[]()~`>#+-=|{}.!\n";
    let bytes = input.as_bytes();
    let len = bytes.len();
    let at = |i: usize| -> u8 { bytes.get(i).copied().unwrap_or(0) };
    let mut out = String::with_capacity(len);
    let mut utf16: u32 = 0;
    let mut stack: Vec<MdOpen> = Vec::new();
    let mut entities = Vec::new();
    let mut have_blockquote = false;
    let mut can_start_blockquote = true;
    let mut i = 0;
    while i < len {
        let c = bytes[i];
        if c == b'\\' && (1..=126).contains(&at(i + 1)) {
            let escaped = bytes[i + 1];
            out.push(char::from(escaped));
            utf16 += 1;
            if escaped != b'\r' {
                can_start_blockquote = escaped == b'\n';
            }
            i += 2;
            continue;
        }
        let in_code = matches!(
            stack.last().map(|o| o.kind),
            Some(MdKind::Code | MdKind::Pre | MdKind::PreCode)
        );
        let is_reserved = if in_code {
            c == b'`'
        } else {
            RESERVED.contains(&c)
        };
        if !is_reserved {
            let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            utf16 += u32::try_from(ch.len_utf16()).unwrap_or(1);
            if c != b'\r' {
                can_start_blockquote = false;
            }
            i += ch.len_utf8();
            continue;
        }
        let is_end = match stack.last() {
            None => false,
            Some(_) if have_blockquote && c == b'\n' && at(i + 1) != b'>' => true,
            Some(open) => match open.kind {
                MdKind::Bold => c == b'*',
                MdKind::Italic => c == b'_' && at(i + 1) != b'_',
                MdKind::Code => c == b'`',
                MdKind::Pre | MdKind::PreCode => {
                    c == b'`' && at(i + 1) == b'`' && at(i + 2) == b'`'
                }
                MdKind::TextUrl | MdKind::CustomEmoji => c == b']',
                MdKind::Underline => c == b'_' && at(i + 1) == b'_',
                MdKind::Strikethrough => c == b'~',
                MdKind::Spoiler => c == b'|' && at(i + 1) == b'|',
                MdKind::BlockQuote => false,
            },
        };
        if !is_end {
            let byte_offset = i;
            let mut argument = String::new();
            let kind = match c {
                b'_' if at(i + 1) == b'_' => {
                    i += 1;
                    MdKind::Underline
                }
                b'_' => MdKind::Italic,
                b'*' => MdKind::Bold,
                b'~' => MdKind::Strikethrough,
                b'|' if at(i + 1) == b'|' => {
                    i += 1;
                    MdKind::Spoiler
                }
                b'[' => MdKind::TextUrl,
                b'`' if at(i + 1) == b'`' && at(i + 2) == b'`' => {
                    i += 3;
                    let mut kind = MdKind::Pre;
                    let mut language_end = i;
                    while language_end < len
                        && !is_html_space(bytes[language_end])
                        && bytes[language_end] != b'`'
                    {
                        language_end += 1;
                    }
                    if i != language_end && language_end < len && bytes[language_end] != b'`' {
                        kind = MdKind::PreCode;
                        argument = input[i..language_end].to_owned();
                        i = language_end;
                    }
                    if at(i) == b'\n' || at(i) == b'\r' {
                        let pair = (at(i + 1) == b'\n' || at(i + 1) == b'\r') && at(i) != at(i + 1);
                        i += if pair { 2 } else { 1 };
                    }
                    stack.push(MdOpen {
                        kind,
                        argument,
                        utf16_start: utf16,
                        byte_offset,
                        out_start: out.len(),
                    });
                    continue;
                }
                b'`' => MdKind::Code,
                b'!' if at(i + 1) == b'[' => {
                    i += 1;
                    MdKind::CustomEmoji
                }
                b'\n' => {
                    out.push('\n');
                    utf16 += 1;
                    can_start_blockquote = true;
                    i += 1;
                    continue;
                }
                b'>' if can_start_blockquote => {
                    i += 1;
                    if have_blockquote {
                        continue;
                    }
                    have_blockquote = true;
                    stack.push(MdOpen {
                        kind: MdKind::BlockQuote,
                        argument,
                        utf16_start: utf16,
                        byte_offset,
                        out_start: out.len(),
                    });
                    continue;
                }
                other => return Err(reserved_error(char::from(other))),
            };
            stack.push(MdOpen {
                kind,
                argument,
                utf16_start: utf16,
                byte_offset,
                out_start: out.len(),
            });
            i += 1;
            continue;
        }
        // The end of the innermost entity.
        let Some(open) = stack.pop() else {
            return Err(reserved_error(char::from(c)));
        };
        if c == b'\n' && open.kind != MdKind::BlockQuote {
            return Err(format!(
                "Can't find end of {} entity at byte offset {}",
                open.kind.td_name(),
                open.byte_offset
            ));
        }
        let mut skip = utf16 == open.utf16_start;
        let mut entity = MessageEntity::plain(EntityKind::Bold, open.utf16_start, 0);
        match open.kind {
            MdKind::Bold | MdKind::Italic | MdKind::Code | MdKind::Strikethrough => {
                entity.kind = match open.kind {
                    MdKind::Bold => EntityKind::Bold,
                    MdKind::Italic => EntityKind::Italic,
                    MdKind::Code => EntityKind::Code,
                    _ => EntityKind::Strikethrough,
                };
                i += 1;
            }
            MdKind::Underline | MdKind::Spoiler => {
                entity.kind = if open.kind == MdKind::Underline {
                    EntityKind::Underline
                } else {
                    EntityKind::Spoiler
                };
                i += 2;
            }
            MdKind::Pre | MdKind::PreCode => {
                entity.kind = EntityKind::Pre;
                if open.kind == MdKind::PreCode {
                    entity.language = Some(open.argument.clone());
                }
                i += 3;
            }
            MdKind::TextUrl => {
                entity.kind = EntityKind::TextLink;
                let url = if at(i + 1) != b'(' {
                    i += 1;
                    out[open.out_start..].to_owned()
                } else {
                    let (url, next) = read_md_url(input, i + 2)?;
                    i = next;
                    url
                };
                match checked_link(&url) {
                    Some(url) => entity.url = Some(url),
                    None => skip = true,
                }
            }
            MdKind::CustomEmoji => {
                if at(i + 1) != b'(' {
                    return Err("The entity must contain a tg://emoji or tg://time URL".to_owned());
                }
                let (url, next) = read_md_url(input, i + 2)?;
                i = next;
                if let Some(id) = url.strip_prefix("tg://emoji?id=") {
                    if id.parse::<i64>().map(|v| v == 0).unwrap_or(true) {
                        return Err("Invalid tg://emoji or tg://time URL specified".to_owned());
                    }
                    entity.kind = EntityKind::CustomEmoji;
                    entity.custom_emoji_id = Some(id.to_owned());
                } else if url.starts_with("tg://time?") {
                    skip = true;
                } else {
                    return Err("Invalid tg://emoji or tg://time URL specified".to_owned());
                }
            }
            MdKind::BlockQuote => {
                // Ends at a newline that is not followed by '>'; the newline stays in the text.
                entity.kind = EntityKind::Blockquote;
                have_blockquote = false;
                skip = utf16 == open.utf16_start;
                entity.length = utf16 - open.utf16_start;
                if !skip {
                    entities.push(entity);
                }
                out.push('\n');
                utf16 += 1;
                can_start_blockquote = true;
                i += 1;
                continue;
            }
        }
        entity.length = utf16 - open.utf16_start;
        if !skip {
            entities.push(entity);
        }
    }
    if have_blockquote
        && let Some(open) = stack.last()
        && open.kind == MdKind::BlockQuote
    {
        if utf16 > open.utf16_start {
            entities.push(MessageEntity::plain(
                EntityKind::Blockquote,
                open.utf16_start,
                utf16 - open.utf16_start,
            ));
        }
        stack.pop();
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end of {} entity at byte offset {}",
            open.kind.td_name(),
            open.byte_offset
        ));
    }
    sort_entities(&mut entities);
    Ok(FormattedText {
        text: out,
        entities,
    })
}

/// Reads a MarkdownV2 URL starting at `start` (just after `(`) up to `)`, honouring `\` escapes.
/// Returns the URL and the index after the `)`.
fn read_md_url(input: &str, start: usize) -> Result<(String, usize), String> {
    let bytes = input.as_bytes();
    let mut url = String::new();
    let mut i = start;
    while i < bytes.len() && bytes[i] != b')' {
        if bytes[i] == b'\\' && bytes.get(i + 1).is_some_and(|b| (1..=126).contains(b)) {
            url.push(char::from(bytes[i + 1]));
            i += 2;
            continue;
        }
        let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
        url.push(ch);
        i += ch.len_utf8();
    }
    if i >= bytes.len() {
        return Err(format!("Can't find end of a URL at byte offset {start}"));
    }
    Ok((url, i + 1))
}

// ---------------------------------------------------------------------------------------------
// Legacy Markdown

/// Parses legacy Markdown (`parse_mode=Markdown`): `*bold*`, `_italic_`, `` `code` ``,
/// ```` ```pre``` ````, `[text](url)`, no nesting.
pub fn parse_markdown_legacy(input: &str) -> Result<FormattedText, String> {
    let bytes = input.as_bytes();
    let len = bytes.len();
    let mut out = String::with_capacity(len);
    let mut utf16: u32 = 0;
    let mut entities = Vec::new();
    let push_str = |out: &mut String, utf16: &mut u32, s: &str| {
        out.push_str(s);
        *utf16 += utf16_len(s);
    };
    let mut i = 0;
    while i < len {
        let c = bytes[i];
        if c == b'\\' && matches!(bytes.get(i + 1), Some(b'_' | b'*' | b'`' | b'[')) {
            push_str(&mut out, &mut utf16, &input[i + 1..i + 2]);
            i += 2;
            continue;
        }
        if !matches!(c, b'_' | b'*' | b'`' | b'[') {
            let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            utf16 += u32::try_from(ch.len_utf16()).unwrap_or(1);
            i += ch.len_utf8();
            continue;
        }
        let begin = i;
        let start16 = utf16;
        let unterminated =
            || format!("Can't find end of the entity starting at byte offset {begin}");
        if c == b'`' && input[i..].starts_with("```") {
            i += 3;
            let mut language = None;
            let language_end = input[i..]
                .find(|ch: char| ch.is_whitespace() || ch == '`')
                .map_or(len, |p| i + p);
            if language_end > i && bytes.get(language_end) == Some(&b'\n') {
                language = Some(input[i..language_end].to_owned());
                i = language_end + 1;
            }
            let Some(end) = input[i..].find("```") else {
                return Err(unterminated());
            };
            push_str(&mut out, &mut utf16, &input[i..i + end]);
            i += end + 3;
            if utf16 > start16 {
                let mut entity = MessageEntity::plain(EntityKind::Pre, start16, utf16 - start16);
                entity.language = language;
                entities.push(entity);
            }
            continue;
        }
        let end_char = if c == b'[' { b']' } else { c };
        i += 1;
        let Some(rel_end) = bytes[i..].iter().position(|b| *b == end_char) else {
            return Err(unterminated());
        };
        push_str(&mut out, &mut utf16, &input[i..i + rel_end]);
        i += rel_end + 1;
        let kind = match c {
            b'*' => EntityKind::Bold,
            b'_' => EntityKind::Italic,
            b'`' => EntityKind::Code,
            _ => EntityKind::TextLink,
        };
        let mut entity = MessageEntity::plain(kind, start16, utf16 - start16);
        if kind == EntityKind::TextLink {
            if bytes.get(i) != Some(&b'(') {
                continue;
            }
            let Some(rel_close) = bytes[i..].iter().position(|b| *b == b')') else {
                return Err(unterminated());
            };
            let url = &input[i + 1..i + rel_close];
            i += rel_close + 1;
            match checked_link(url) {
                Some(url) => entity.url = Some(url),
                None => continue,
            }
        }
        if entity.length > 0 {
            entities.push(entity);
        }
    }
    sort_entities(&mut entities);
    Ok(FormattedText {
        text: out,
        entities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(f: &FormattedText) -> Vec<(&'static str, u32, u32)> {
        f.entities
            .iter()
            .map(|e| (e.kind.api_name(), e.offset, e.length))
            .collect()
    }

    #[test]
    fn html_basic_tags() {
        let f = parse_html("<b>bold</b> and <i>it</i> &lt;3").unwrap();
        assert_eq!(f.text, "bold and it <3");
        assert_eq!(kinds(&f), vec![("bold", 0, 4), ("italic", 9, 2)]);
    }

    #[test]
    fn html_link_and_pre_code() {
        let f = parse_html(
            r#"<a href="https://t.me/x">go</a> <pre><code class="language-rust">fn</code></pre>"#,
        )
        .unwrap();
        assert_eq!(f.text, "go fn");
        assert_eq!(f.entities[0].url.as_deref(), Some("https://t.me/x"));
        assert_eq!(f.entities[1].kind, EntityKind::Pre);
        assert_eq!(f.entities[1].language.as_deref(), Some("rust"));
    }

    #[test]
    fn html_errors_match_tdlib() {
        assert_eq!(
            parse_html("<foo>x</foo>").unwrap_err(),
            "Unsupported start tag \"foo\" at byte offset 0"
        );
        assert_eq!(
            parse_html("ab<b>x").unwrap_err(),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert_eq!(
            parse_html("<b>x</i>").unwrap_err(),
            "Unmatched end tag at byte offset 4, expected \"</b>\", found \"</i>\""
        );
        assert_eq!(
            parse_html("x</b>").unwrap_err(),
            "Unexpected end tag at byte offset 1"
        );
        assert_eq!(
            parse_html("x <b").unwrap_err(),
            "Unclosed start tag at byte offset 2"
        );
        assert_eq!(
            parse_html("<span>x</span>").unwrap_err(),
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"
        );
    }

    #[test]
    fn html_utf16_offsets() {
        let f = parse_html("😀 <b>ж</b>").unwrap();
        assert_eq!(kinds(&f), vec![("bold", 3, 1)]);
    }

    #[test]
    fn markdown_v2_entities() {
        let f = parse_markdown_v2("*bold* _it_ __u__ ~s~ ||sp|| `c` [link](https://x.org) \\.")
            .unwrap();
        assert_eq!(f.text, "bold it u s sp c link .");
        let names: Vec<_> = f.entities.iter().map(|e| e.kind.api_name()).collect();
        assert_eq!(
            names,
            vec![
                "bold",
                "italic",
                "underline",
                "strikethrough",
                "spoiler",
                "code",
                "text_link"
            ]
        );
    }

    #[test]
    fn markdown_v2_errors_match_tdlib() {
        assert_eq!(
            parse_markdown_v2("Price: 5.00").unwrap_err(),
            "Character '.' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(
            parse_markdown_v2("a *bold").unwrap_err(),
            "Can't find end of Bold entity at byte offset 2"
        );
        assert_eq!(
            parse_markdown_v2("[x](https://a.b").unwrap_err(),
            "Can't find end of a URL at byte offset 4"
        );
    }

    #[test]
    fn markdown_v2_pre_with_language() {
        let f = parse_markdown_v2("```rust\nfn main() {}\n```").unwrap();
        assert_eq!(f.text, "fn main() {}\n");
        assert_eq!(f.entities[0].language.as_deref(), Some("rust"));
    }

    #[test]
    fn markdown_v2_blockquote() {
        let f = parse_markdown_v2(">quoted\nplain").unwrap();
        assert_eq!(f.text, "quoted\nplain");
        assert_eq!(kinds(&f), vec![("blockquote", 0, 6)]);
    }

    #[test]
    fn legacy_markdown() {
        let f = parse_markdown_legacy("*b* _i_ `c` [t](http://x.y)").unwrap();
        assert_eq!(f.text, "b i c t");
        assert_eq!(f.entities.len(), 4);
        assert_eq!(
            parse_markdown_legacy("a *b").unwrap_err(),
            "Can't find end of the entity starting at byte offset 2"
        );
    }

    #[test]
    fn format_text_prefixes_parse_errors_and_trims() {
        assert_eq!(
            format_text("<x>", "HTML", "").unwrap_err(),
            "Can't parse entities: Unsupported start tag \"x\" at byte offset 0"
        );
        assert_eq!(
            format_text("x", "klingon", "").unwrap_err(),
            "Unsupported parse_mode"
        );
        let f = format_text("  <b> hi</b>  ", "HTML", "").unwrap();
        assert_eq!(f.text, "hi");
        assert_eq!(kinds(&f), vec![("bold", 0, 2)]);
    }

    #[test]
    fn bot_commands_are_detected() {
        let found = detect_bot_commands("/start payload");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].offset, found[0].length), (0, 6));
        let found = detect_bot_commands("hi /help@my_bot now, not a/b");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].offset, found[0].length), (3, 12));
        assert!(detect_bot_commands("no commands").is_empty());
    }

    #[test]
    fn explicit_entities_are_validated() {
        let f = format_text(
            "hello",
            "",
            r#"[{"type":"bold","offset":0,"length":5},{"type":"future","offset":0,"length":1}]"#,
        )
        .unwrap();
        assert_eq!(kinds(&f), vec![("bold", 0, 5)]);
        assert_eq!(
            format_text("hello", "", r#"[{"offset":0,"length":5}]"#).unwrap_err(),
            "Can't parse MessageEntity: Can't find field \"type\""
        );
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_input() {
        // Deterministic pseudo-random strings over an alphabet full of markup and multi-byte
        // characters: every parser must return Ok or Err, never panic.
        let rng = crate::rng::Rng::new(99);
        let alphabet: Vec<char> = "<>/&;#x*_~|`[]()!\\.- abcbB\n\r\t\"'=ж😀é"
            .chars()
            .collect();
        for _ in 0..20_000 {
            let len = usize::try_from(rng.range_inclusive(0, 24)).unwrap();
            let text: String = (0..len)
                .map(|_| alphabet[usize::try_from(rng.next_u64()).unwrap() % alphabet.len()])
                .collect();
            for mode in ["HTML", "MarkdownV2", "Markdown", ""] {
                let _ = format_text(&text, mode, "");
            }
            let _ = detect_bot_commands(&text);
        }
        for text in [
            "<a href=",
            "<a href='x",
            "&#",
            "&#x110000;",
            "<b a=b",
            "```",
            "``` x",
            "![x](",
            "[x](y\\",
            ">",
        ] {
            for mode in ["HTML", "MarkdownV2", "Markdown"] {
                let _ = format_text(text, mode, "");
            }
        }
    }
}
