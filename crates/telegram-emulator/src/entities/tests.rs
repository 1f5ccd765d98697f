//! Unit tests of the parsers: entities, UTF-16 offsets and tdlib's error texts for each parse
//! mode, and that no input makes a parser panic.

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
    let f =
        parse_markdown_v2("*bold* _it_ __u__ ~s~ ||sp|| `c` [link](https://x.org) \\.").unwrap();
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
