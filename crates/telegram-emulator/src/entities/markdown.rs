//! `parse_mode=Markdown`, the legacy Markdown Telegram still accepts, parsed like tdlib's
//! `parse_markdown`: no nesting, few characters to escape, and an error only for an entity
//! that is never closed.

use super::{EntityKind, FormattedText, MessageEntity, PlainText, checked_link};
/// Parses legacy Markdown (`parse_mode=Markdown`): `*bold*`, `_italic_`, `` `code` ``,
/// ```` ```pre``` ````, `[text](url)`, no nesting.
pub fn parse_markdown_legacy(input: &str) -> Result<FormattedText, String> {
    let bytes = input.as_bytes();
    let len = bytes.len();
    let mut out = PlainText::with_capacity(len);
    let mut entities = Vec::new();
    let mut i = 0;
    while i < len {
        let c = bytes[i];
        if c == b'\\' && matches!(bytes.get(i + 1), Some(b'_' | b'*' | b'`' | b'[')) {
            out.push_str(&input[i + 1..i + 2]);
            i += 2;
            continue;
        }
        if !matches!(c, b'_' | b'*' | b'`' | b'[') {
            i += out.push_char_at(input, i);
            continue;
        }
        let begin = i;
        let start16 = out.utf16;
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
            out.push_str(&input[i..i + end]);
            i += end + 3;
            if out.utf16 > start16 {
                let mut entity =
                    MessageEntity::plain(EntityKind::Pre, start16, out.utf16 - start16);
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
        out.push_str(&input[i..i + rel_end]);
        i += rel_end + 1;
        let kind = match c {
            b'*' => EntityKind::Bold,
            b'_' => EntityKind::Italic,
            b'`' => EntityKind::Code,
            _ => EntityKind::TextLink,
        };
        let mut entity = MessageEntity::plain(kind, start16, out.utf16 - start16);
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
    Ok(out.with_entities(entities))
}
