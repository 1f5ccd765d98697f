//! Telegram's HTML subset, checked before a broadcast is sent.
//!
//! A broadcast whose markup Telegram cannot parse would fail once per recipient, thousands of
//! `400`s after the admin pressed Send. So the text is parsed here, when it is typed, the way
//! Telegram parses `parse_mode=HTML` (the tags it knows, their attributes, the four named
//! entities and numeric ones, nesting), and refused with the parser's error; the visible
//! text's length is measured as Telegram measures it (UTF-16 code units).

/// Telegram's limit on a message's text after entities are parsed.
pub const MAX_TEXT_UNITS: usize = 4096;
/// Telegram's limit on a photo's caption after entities are parsed.
pub const MAX_CAPTION_UNITS: usize = 1024;

/// The tags Telegram accepts and the attributes each may carry.
const TAGS: &[(&str, &[&str])] = &[
    ("b", &[]),
    ("strong", &[]),
    ("i", &[]),
    ("em", &[]),
    ("u", &[]),
    ("ins", &[]),
    ("s", &[]),
    ("strike", &[]),
    ("del", &[]),
    ("tg-spoiler", &[]),
    ("span", &["class"]),
    ("a", &["href"]),
    ("code", &["class"]),
    ("pre", &[]),
    ("blockquote", &["expandable"]),
    ("tg-emoji", &["emoji-id"]),
];

/// What is wrong with a text, as Telegram would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HtmlError {
    /// The markup does not parse; the text names the place.
    Markup(String),
    /// Nothing visible is left.
    Empty,
    /// Longer than Telegram takes (in UTF-16 code units after parsing).
    TooLong { units: usize, max: usize },
}

impl std::fmt::Display for HtmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HtmlError::Markup(m) => write!(f, "Can't parse entities: {m}"),
            HtmlError::Empty => write!(f, "message text is empty"),
            HtmlError::TooLong { units, max } => {
                write!(f, "too long: {units} characters, at most {max}")
            }
        }
    }
}

/// Checks `input` as Telegram would parse a message's text with `parse_mode=HTML`; returns
/// the visible text's length in UTF-16 code units.
pub fn check(input: &str) -> Result<usize, HtmlError> {
    check_within(input, MAX_TEXT_UNITS)
}

/// [`check`] for a text of at most `max` units (a caption: [`MAX_CAPTION_UNITS`]).
pub fn check_within(input: &str, max: usize) -> Result<usize, HtmlError> {
    let bytes = input.as_bytes();
    let mut i = 0;
    let mut units = 0_usize;
    let mut visible = false;
    let mut open: Vec<(&str, usize)> = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'&' => {
                let (ch, used) = entity(&input[i..]).unwrap_or(('&', 1));
                units += ch.len_utf16();
                visible |= !ch.is_whitespace();
                i += used;
            }
            b'<' => {
                let begin = i;
                let Some(close) = input[i..].find('>') else {
                    return Err(markup(format!("Unclosed start tag at byte offset {begin}")));
                };
                let inside = &input[i + 1..i + close];
                i += close + 1;
                if let Some(name) = inside.strip_prefix('/') {
                    let name = name.trim_end().to_ascii_lowercase();
                    match open.pop() {
                        Some((expected, _)) if expected == name => {}
                        Some((expected, _)) => {
                            return Err(markup(format!(
                                "Unmatched end tag at byte offset {begin}, expected \"</{expected}>\", found \"</{name}>\""
                            )));
                        }
                        None => {
                            return Err(markup(format!(
                                "Unexpected end tag at byte offset {begin}"
                            )));
                        }
                    }
                    continue;
                }
                let (name, attributes) = inside
                    .split_once(|c: char| c.is_ascii_whitespace())
                    .unwrap_or((inside, ""));
                let name = name.trim_end_matches('/').to_ascii_lowercase();
                let Some((tag, allowed)) = TAGS.iter().find(|(t, _)| *t == name) else {
                    return Err(markup(format!(
                        "Unsupported start tag \"{name}\" at byte offset {begin}"
                    )));
                };
                check_attributes(tag, allowed, attributes, begin)?;
                open.push((tag, begin));
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or(' ');
                units += ch.len_utf16();
                visible |= !ch.is_whitespace();
                i += ch.len_utf8();
            }
        }
    }
    if let Some((tag, _)) = open.last() {
        return Err(markup(format!(
            "Can't find end tag corresponding to start tag \"{tag}\""
        )));
    }
    if !visible {
        return Err(HtmlError::Empty);
    }
    if units > max {
        return Err(HtmlError::TooLong { units, max });
    }
    Ok(units)
}

fn markup(text: String) -> HtmlError {
    HtmlError::Markup(text)
}

/// `name="value"` pairs (quotes ' or ", or none), each one the tag may carry; `<span>` only as
/// a spoiler, `<a>` with a link.
fn check_attributes(
    tag: &str,
    allowed: &[&str],
    mut rest: &str,
    begin: usize,
) -> Result<(), HtmlError> {
    let mut seen = Vec::new();
    loop {
        rest = rest.trim_start().trim_end_matches('/').trim_start();
        if rest.is_empty() {
            break;
        }
        let end = rest
            .find(|c: char| c == '=' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..end].to_ascii_lowercase();
        rest = rest[end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let Some(close) = after[1..].find(q) else {
                        return Err(markup(format!("Unclosed start tag at byte offset {begin}")));
                    };
                    (&after[1..1 + close], &after[close + 2..])
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = remaining;
            value.to_owned()
        } else {
            String::new()
        };
        if !allowed.contains(&name.as_str()) {
            return Err(markup(format!(
                "Tag \"{tag}\" must not have attribute \"{name}\" at byte offset {begin}"
            )));
        }
        seen.push((name, value));
    }
    let get = |n: &str| seen.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    match tag {
        "span" if get("class") != Some("tg-spoiler") => Err(markup(format!(
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
        ))),
        "a" => match get("href") {
            Some(href) if valid_href(href) => Ok(()),
            _ => Err(markup(format!(
                "Tag \"a\" needs a valid href (http, https or tg link) at byte offset {begin}"
            ))),
        },
        _ => Ok(()),
    }
}

fn valid_href(href: &str) -> bool {
    let href = href.trim();
    ["https://", "http://", "tg://"]
        .iter()
        .any(|p| href.len() > p.len() && href.to_ascii_lowercase().starts_with(p))
}

/// A character entity at the start of `s` (`&lt;`, `&#1234;`, `&#x1F600;`) and its length.
fn entity(s: &str) -> Option<(char, usize)> {
    let end = s.find(';')?;
    let body = &s[1..end];
    let ch = match body {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let number = body.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((ch, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegrams_tags_and_entities_pass() {
        assert_eq!(check("Hello"), Ok(5));
        assert_eq!(
            check("<b>New</b> server &amp; <i>lower</i> price &lt;3"),
            Ok(27)
        );
        assert!(check("<a href=\"https://example.com/x?a=1&b=2\">link</a>").is_ok());
        assert!(check("<span class=\"tg-spoiler\">s</span><tg-spoiler>t</tg-spoiler>").is_ok());
        assert!(check("<pre><code class=\"language-rust\">fn</code></pre>").is_ok());
        assert!(check("<blockquote expandable>q</blockquote> &#128512; &#x1F600;").is_ok());
        assert_eq!(check("😀"), Ok(2), "measured in UTF-16 code units");
        assert_eq!(check("a & b"), Ok(5), "a lone ampersand is text");
    }

    #[test]
    fn bad_markup_is_refused_with_the_place() {
        let cases = [
            (
                "<b>bold",
                "Can't find end tag corresponding to start tag \"b\"",
            ),
            (
                "<b>x</i>",
                "Unmatched end tag at byte offset 4, expected \"</b>\", found \"</i>\"",
            ),
            ("x</b>", "Unexpected end tag at byte offset 1"),
            (
                "<div>x</div>",
                "Unsupported start tag \"div\" at byte offset 0",
            ),
            ("a <b", "Unclosed start tag at byte offset 2"),
            (
                "<b class=\"x\">y</b>",
                "Tag \"b\" must not have attribute \"class\" at byte offset 0",
            ),
            (
                "<span>y</span>",
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0",
            ),
            (
                "<a href=\"javascript:x\">y</a>",
                "Tag \"a\" needs a valid href",
            ),
        ];
        for (input, want) in cases {
            match check(input) {
                Err(HtmlError::Markup(m)) => assert!(m.starts_with(want), "{input:?}: {m}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn empty_and_long_texts_are_refused() {
        assert_eq!(check(" <b> </b> "), Err(HtmlError::Empty));
        assert_eq!(check(&"x".repeat(4096)), Ok(4096));
        assert_eq!(
            check(&"x".repeat(4097)),
            Err(HtmlError::TooLong {
                units: 4097,
                max: 4096
            })
        );
        assert_eq!(check(&"&lt;".repeat(4096)), Ok(4096), "entities count once");
    }
}
