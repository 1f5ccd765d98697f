//! `parse_mode=HTML`: Telegram's HTML subset, parsed like tdlib's `parse_html`.
//!
//! Why its own parser: the bot sends most of its screens as HTML, and Telegram rejects a
//! message whose markup it cannot parse. The error texts and byte offsets are tdlib's, so a
//! test sees the `400` a real bot would get.

use super::{EntityKind, FormattedText, MessageEntity, PlainText, checked_link, is_space};

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

/// Parses Telegram's HTML subset.
pub fn parse_html(input: &str) -> Result<FormattedText, String> {
    let mut parser = HtmlParser {
        input,
        bytes: input.as_bytes(),
        i: 0,
        out: PlainText::with_capacity(input.len()),
        stack: Vec::new(),
        entities: Vec::new(),
    };
    while parser.i < parser.bytes.len() {
        let i = parser.i;
        let c = parser.bytes[i];
        if c == b'&'
            && let Some((ch, consumed)) = decode_html_entity(&input[i..])
        {
            parser.out.push(ch);
            parser.i += consumed;
            continue;
        }
        if c != b'<' {
            parser.i += parser.out.push_char_at(input, i);
            continue;
        }
        parser.i += 1;
        if parser.at(parser.i) != b'/' {
            parser.start_tag(i)?;
        } else {
            parser.end_tag(i)?;
        }
    }
    parser.finish()
}

/// The parse in progress: the input, the position in it, and what has been produced so far.
struct HtmlParser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    /// Byte offset of the next input byte.
    i: usize,
    out: PlainText,
    /// Tags opened and not yet closed, innermost last.
    stack: Vec<OpenTag>,
    entities: Vec<MessageEntity>,
}

impl<'a> HtmlParser<'a> {
    /// The byte at `i`, or 0 past the end (tdlib reads the string's terminating NUL).
    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    fn skip_spaces(&mut self) {
        while self.i < self.bytes.len() && is_space(self.bytes[self.i]) {
            self.i += 1;
        }
    }

    /// Reads a start tag whose `<` is at `begin`; `self.i` is just after it.
    fn start_tag(&mut self, begin: usize) -> Result<(), String> {
        let len = self.bytes.len();
        let name_start = self.i;
        while self.i < len && !is_space(self.bytes[self.i]) && self.bytes[self.i] != b'>' {
            self.i += 1;
        }
        if self.i >= len {
            return Err(format!("Unclosed start tag at byte offset {begin}"));
        }
        let tag = self.input[name_start..self.i].to_ascii_lowercase();
        if !HTML_TAGS.contains(&tag.as_str()) {
            return Err(format!(
                "Unsupported start tag \"{tag}\" at byte offset {begin}"
            ));
        }
        let mut argument = String::new();
        while self.at(self.i) != b'>' {
            let Some((name, value)) = self.attribute(&tag, begin)? else {
                break;
            };
            apply_attribute(&tag, name, value, &mut argument);
        }
        if tag == "span" && argument != "spoiler" {
            return Err(format!(
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
            ));
        }
        self.i += 1; // past '>'
        self.stack.push(OpenTag {
            name: tag,
            argument,
            utf16_start: self.out.utf16,
            out_start: self.out.text.len(),
        });
        Ok(())
    }

    /// Reads one attribute of the start tag `tag` (at `begin`): its name and, unless it is a
    /// bare name, its value. `None` when only spaces were left before the tag's `>`.
    fn attribute(
        &mut self,
        tag: &str,
        begin: usize,
    ) -> Result<Option<(&'a str, Option<String>)>, String> {
        let len = self.bytes.len();
        self.skip_spaces();
        if self.at(self.i) == b'>' {
            return Ok(None);
        }
        let name_start = self.i;
        while self.i < len
            && !is_space(self.bytes[self.i])
            && !matches!(self.bytes[self.i], b'=' | b'>' | b'/' | b'"' | b'\'')
        {
            self.i += 1;
        }
        let input = self.input;
        let name = &input[name_start..self.i];
        if name.is_empty() {
            return Err(format!(
                "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
            ));
        }
        self.skip_spaces();
        if self.at(self.i) != b'=' {
            if self.i >= len {
                return Err(format!(
                    "Unclosed start tag \"{tag}\" at byte offset {begin}"
                ));
            }
            return Ok(Some((name, None)));
        }
        self.i += 1;
        self.skip_spaces();
        if self.i >= len {
            return Err(format!(
                "Unclosed start tag \"{tag}\" at byte offset {begin}"
            ));
        }
        let value = self.attribute_value()?;
        if self.i >= len {
            return Err(format!("Unclosed start tag at byte offset {begin}"));
        }
        Ok(Some((name, Some(value))))
    }

    /// Reads an attribute's value at `self.i`: a quoted string (character references decoded)
    /// or a bare token of letters, digits, `.` and `-` (lowercased).
    fn attribute_value(&mut self) -> Result<String, String> {
        let len = self.bytes.len();
        let quote = self.bytes[self.i];
        if quote != b'\'' && quote != b'"' {
            let token_start = self.i;
            while self.i < len
                && (self.bytes[self.i].is_ascii_alphanumeric()
                    || self.bytes[self.i] == b'.'
                    || self.bytes[self.i] == b'-')
            {
                self.i += 1;
            }
            if self.i < len && !is_space(self.bytes[self.i]) && self.bytes[self.i] != b'>' {
                return Err(format!(
                    "Unexpected end of name token at byte offset {token_start}"
                ));
            }
            return Ok(self.input[token_start..self.i].to_ascii_lowercase());
        }
        self.i += 1;
        let mut decoded = String::new();
        while self.i < len && self.bytes[self.i] != quote {
            if self.bytes[self.i] == b'&'
                && let Some((ch, consumed)) = decode_html_entity(&self.input[self.i..])
            {
                decoded.push(ch);
                self.i += consumed;
                continue;
            }
            let ch = self.input[self.i..].chars().next().unwrap_or('\u{fffd}');
            decoded.push(ch);
            self.i += ch.len_utf8();
        }
        if self.i < len {
            self.i += 1;
        }
        Ok(decoded)
    }

    /// Reads an end tag whose `<` is at `begin`; `self.i` is at its `/`.
    fn end_tag(&mut self, begin: usize) -> Result<(), String> {
        let len = self.bytes.len();
        if self.stack.is_empty() {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        }
        self.i += 1;
        let name_start = self.i;
        while self.i < len && !is_space(self.bytes[self.i]) && self.bytes[self.i] != b'>' {
            self.i += 1;
        }
        let end_name = self.input[name_start..self.i].to_ascii_lowercase();
        self.skip_spaces();
        if self.at(self.i) != b'>' {
            return Err(format!("Unclosed end tag at byte offset {begin}"));
        }
        self.i += 1;
        let Some(open) = self.stack.pop() else {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        };
        if !end_name.is_empty() && end_name != open.name {
            return Err(format!(
                "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_name}>\"",
                open.name
            ));
        }
        if self.out.utf16 > open.utf16_start {
            close_html_entity(&open, self.out.utf16, &self.out.text, &mut self.entities)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<FormattedText, String> {
        if let Some(open) = self.stack.last() {
            return Err(format!(
                "Can't find end tag corresponding to start tag \"{}\"",
                open.name
            ));
        }
        for entity in &mut self.entities {
            if entity.kind == EntityKind::Code {
                entity.language = None;
            }
        }
        Ok(self.out.with_entities(self.entities))
    }
}

/// What the attribute `name` (with `value`, if it has one) of the start tag `tag` gives the
/// entity: a link's URL, a custom emoji's id, a code block's language, a span's class, or
/// whether a blockquote is expandable. Attributes Telegram does not know are ignored.
fn apply_attribute(tag: &str, name: &str, value: Option<String>, argument: &mut String) {
    match (tag, name, value) {
        ("blockquote", "expandable", _) => *argument = "1".to_owned(),
        (_, _, None) => {}
        ("a", "href", Some(value))
        | ("tg-emoji", "emoji-id", Some(value))
        | ("tg-time", "format", Some(value)) => *argument = value,
        ("code", "class", Some(value)) => {
            if let Some(language) = value.strip_prefix("language-") {
                *argument = language.to_owned();
            }
        }
        ("span", "class", Some(value)) => {
            if let Some(class) = value.strip_prefix("tg-") {
                *argument = class.to_owned();
            }
        }
        _ => {}
    }
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

/// Adds the entity of the tag `open`, closed when the text had reached `utf16_end`. `<pre>` and
/// `<code class="language-…">` around the same text make one `pre` entity with its language.
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
