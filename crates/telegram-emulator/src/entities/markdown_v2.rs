//! `parse_mode=MarkdownV2`, parsed like tdlib's `parse_markdown_v2`.
//!
//! Why its own parser: MarkdownV2 reserves most punctuation, and a bot that forgets to escape a
//! `.` or a `-` gets `400 Bad Request` from Telegram. The emulator rejects the same texts with
//! the same error messages and byte offsets.

use super::{EntityKind, FormattedText, MessageEntity, PlainText, checked_link, is_space};

/// Bytes that start or end an entity outside code, and must otherwise be escaped.
const RESERVED: &[u8] = b"_*[]()~`>#+-=|{}.!\n";

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

fn unterminated_error(open: &MdOpen) -> String {
    format!(
        "Can't find end of {} entity at byte offset {}",
        open.kind.td_name(),
        open.byte_offset
    )
}

/// Parses MarkdownV2.
pub fn parse_markdown_v2(input: &str) -> Result<FormattedText, String> {
    let mut parser = MdParser {
        input,
        bytes: input.as_bytes(),
        i: 0,
        out: PlainText::with_capacity(input.len()),
        stack: Vec::new(),
        entities: Vec::new(),
        have_blockquote: false,
        can_start_blockquote: true,
    };
    while parser.i < parser.bytes.len() {
        let i = parser.i;
        let c = parser.bytes[i];
        if c == b'\\' && (1..=126).contains(&parser.at(i + 1)) {
            let escaped = parser.bytes[i + 1];
            parser.out.push(char::from(escaped));
            if escaped != b'\r' {
                parser.can_start_blockquote = escaped == b'\n';
            }
            parser.i += 2;
            continue;
        }
        if !parser.is_reserved(c) {
            parser.i += parser.out.push_char_at(input, i);
            if c != b'\r' {
                parser.can_start_blockquote = false;
            }
            continue;
        }
        if parser.ends_innermost(c) {
            parser.close_entity(c)?;
        } else {
            parser.open_entity(c)?;
        }
    }
    parser.finish()
}

/// The parse in progress: the input, the position in it, and what has been produced so far.
struct MdParser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    /// Byte offset of the next input byte.
    i: usize,
    out: PlainText,
    /// Entities opened and not yet closed, innermost last.
    stack: Vec<MdOpen>,
    entities: Vec<MessageEntity>,
    /// A block quotation is open (it is not nested: `>` lines continue it).
    have_blockquote: bool,
    /// At the start of a line, where `>` opens a block quotation.
    can_start_blockquote: bool,
}

impl MdParser<'_> {
    /// The byte at `i`, or 0 past the end (tdlib reads the string's terminating NUL).
    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    /// Whether `c` is markup here: inside code only a backquote is.
    fn is_reserved(&self, c: u8) -> bool {
        let in_code = matches!(
            self.stack.last().map(|o| o.kind),
            Some(MdKind::Code | MdKind::Pre | MdKind::PreCode)
        );
        if in_code {
            c == b'`'
        } else {
            RESERVED.contains(&c)
        }
    }

    /// Whether the reserved byte `c` at `self.i` ends the innermost open entity.
    fn ends_innermost(&self, c: u8) -> bool {
        let i = self.i;
        match self.stack.last() {
            None => false,
            Some(_) if self.have_blockquote && c == b'\n' && self.at(i + 1) != b'>' => true,
            Some(open) => match open.kind {
                MdKind::Bold => c == b'*',
                MdKind::Italic => c == b'_' && self.at(i + 1) != b'_',
                MdKind::Code => c == b'`',
                MdKind::Pre | MdKind::PreCode => {
                    c == b'`' && self.at(i + 1) == b'`' && self.at(i + 2) == b'`'
                }
                MdKind::TextUrl | MdKind::CustomEmoji => c == b']',
                MdKind::Underline => c == b'_' && self.at(i + 1) == b'_',
                MdKind::Strikethrough => c == b'~',
                MdKind::Spoiler => c == b'|' && self.at(i + 1) == b'|',
                MdKind::BlockQuote => false,
            },
        }
    }

    fn push_open(&mut self, kind: MdKind, argument: String, byte_offset: usize) {
        self.stack.push(MdOpen {
            kind,
            argument,
            utf16_start: self.out.utf16,
            byte_offset,
            out_start: self.out.text.len(),
        });
    }

    /// A line break in the text, after which `>` may open a block quotation.
    fn newline(&mut self) {
        self.out.push('\n');
        self.can_start_blockquote = true;
        self.i += 1;
    }

    /// Opens the entity whose markup starts with the reserved byte `c` at `self.i`, or fails
    /// when `c` starts none there.
    fn open_entity(&mut self, c: u8) -> Result<(), String> {
        let byte_offset = self.i;
        let next = self.at(self.i + 1);
        let kind = match c {
            b'_' if next == b'_' => {
                self.i += 1;
                MdKind::Underline
            }
            b'_' => MdKind::Italic,
            b'*' => MdKind::Bold,
            b'~' => MdKind::Strikethrough,
            b'|' if next == b'|' => {
                self.i += 1;
                MdKind::Spoiler
            }
            b'[' => MdKind::TextUrl,
            b'`' if next == b'`' && self.at(self.i + 2) == b'`' => {
                self.open_pre(byte_offset);
                return Ok(());
            }
            b'`' => MdKind::Code,
            b'!' if next == b'[' => {
                self.i += 1;
                MdKind::CustomEmoji
            }
            b'\n' => {
                self.newline();
                return Ok(());
            }
            b'>' if self.can_start_blockquote => {
                self.i += 1;
                if !self.have_blockquote {
                    self.have_blockquote = true;
                    self.push_open(MdKind::BlockQuote, String::new(), byte_offset);
                }
                return Ok(());
            }
            other => return Err(reserved_error(char::from(other))),
        };
        self.push_open(kind, String::new(), byte_offset);
        self.i += 1;
        Ok(())
    }

    /// Opens a ```` ``` ```` block at `self.i`, with the language written right after it if
    /// any; the line break that ends the opening line is not part of the text.
    fn open_pre(&mut self, byte_offset: usize) {
        let len = self.bytes.len();
        self.i += 3;
        let mut kind = MdKind::Pre;
        let mut argument = String::new();
        let mut language_end = self.i;
        while language_end < len
            && !is_space(self.bytes[language_end])
            && self.bytes[language_end] != b'`'
        {
            language_end += 1;
        }
        if self.i != language_end && language_end < len && self.bytes[language_end] != b'`' {
            kind = MdKind::PreCode;
            argument = self.input[self.i..language_end].to_owned();
            self.i = language_end;
        }
        let (here, next) = (self.at(self.i), self.at(self.i + 1));
        if here == b'\n' || here == b'\r' {
            let pair = (next == b'\n' || next == b'\r') && here != next;
            self.i += if pair { 2 } else { 1 };
        }
        self.push_open(kind, argument, byte_offset);
    }

    /// Closes the innermost open entity at the reserved byte `c` at `self.i`.
    fn close_entity(&mut self, c: u8) -> Result<(), String> {
        let Some(open) = self.stack.pop() else {
            return Err(reserved_error(char::from(c)));
        };
        if c == b'\n' && open.kind != MdKind::BlockQuote {
            return Err(unterminated_error(&open));
        }
        let mut skip = self.out.utf16 == open.utf16_start;
        let mut entity = MessageEntity::plain(EntityKind::Bold, open.utf16_start, 0);
        match open.kind {
            MdKind::Bold | MdKind::Italic | MdKind::Code | MdKind::Strikethrough => {
                entity.kind = match open.kind {
                    MdKind::Bold => EntityKind::Bold,
                    MdKind::Italic => EntityKind::Italic,
                    MdKind::Code => EntityKind::Code,
                    _ => EntityKind::Strikethrough,
                };
                self.i += 1;
            }
            MdKind::Underline | MdKind::Spoiler => {
                entity.kind = if open.kind == MdKind::Underline {
                    EntityKind::Underline
                } else {
                    EntityKind::Spoiler
                };
                self.i += 2;
            }
            MdKind::Pre | MdKind::PreCode => {
                entity.kind = EntityKind::Pre;
                if open.kind == MdKind::PreCode {
                    entity.language = Some(open.argument.clone());
                }
                self.i += 3;
            }
            MdKind::TextUrl => {
                entity.kind = EntityKind::TextLink;
                match checked_link(&self.text_url(&open)?) {
                    Some(url) => entity.url = Some(url),
                    None => skip = true,
                }
            }
            MdKind::CustomEmoji => match self.custom_emoji_id()? {
                Some(id) => {
                    entity.kind = EntityKind::CustomEmoji;
                    entity.custom_emoji_id = Some(id);
                }
                None => skip = true,
            },
            MdKind::BlockQuote => {
                // Ends at a newline that is not followed by '>'; the newline stays in the text.
                self.have_blockquote = false;
                if !skip {
                    self.entities.push(MessageEntity::plain(
                        EntityKind::Blockquote,
                        open.utf16_start,
                        self.out.utf16 - open.utf16_start,
                    ));
                }
                self.newline();
                return Ok(());
            }
        }
        entity.length = self.out.utf16 - open.utf16_start;
        if !skip {
            self.entities.push(entity);
        }
        Ok(())
    }

    /// The URL of a `[text](url)` whose `]` is at `self.i`; a link without `(url)` links to its
    /// own text.
    fn text_url(&mut self, open: &MdOpen) -> Result<String, String> {
        if self.at(self.i + 1) != b'(' {
            self.i += 1;
            return Ok(self.out.text[open.out_start..].to_owned());
        }
        let (url, next) = read_md_url(self.input, self.i + 2)?;
        self.i = next;
        Ok(url)
    }

    /// The id of a `![emoji](tg://emoji?id=…)` whose `]` is at `self.i`; `None` for a
    /// `tg://time` URL, which makes no entity here.
    fn custom_emoji_id(&mut self) -> Result<Option<String>, String> {
        if self.at(self.i + 1) != b'(' {
            return Err("The entity must contain a tg://emoji or tg://time URL".to_owned());
        }
        let (url, next) = read_md_url(self.input, self.i + 2)?;
        self.i = next;
        if let Some(id) = url.strip_prefix("tg://emoji?id=") {
            if id.parse::<i64>().map(|v| v == 0).unwrap_or(true) {
                return Err("Invalid tg://emoji or tg://time URL specified".to_owned());
            }
            Ok(Some(id.to_owned()))
        } else if url.starts_with("tg://time?") {
            Ok(None)
        } else {
            Err("Invalid tg://emoji or tg://time URL specified".to_owned())
        }
    }

    fn finish(mut self) -> Result<FormattedText, String> {
        let utf16 = self.out.utf16;
        if self.have_blockquote
            && let Some(open) = self.stack.last()
            && open.kind == MdKind::BlockQuote
        {
            if utf16 > open.utf16_start {
                self.entities.push(MessageEntity::plain(
                    EntityKind::Blockquote,
                    open.utf16_start,
                    utf16 - open.utf16_start,
                ));
            }
            self.stack.pop();
        }
        if let Some(open) = self.stack.last() {
            return Err(unterminated_error(open));
        }
        Ok(self.out.with_entities(self.entities))
    }
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
