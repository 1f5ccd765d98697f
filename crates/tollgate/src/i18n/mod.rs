//! Texts in the user's language (Fluent), and formatting of dates, money and durations.
//!
//! The earlier bot showed Russian text in an English session because texts were picked in
//! many places. Here every user-visible string is a Fluent message in `locales/<lang>.ftl`,
//! looked up by key with the user's [`Language`]; a test fails when any key is missing in
//! any shipped language, or when a file has a key the code does not know. Messages are
//! Telegram HTML: plain-text arguments are escaped here, so a user's name can never inject
//! markup; arguments that are HTML on purpose are marked [`Arg::Html`].

pub mod format;

/// Escapes text for Telegram's HTML parse mode.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod button_names;

use std::collections::BTreeMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

use crate::config::Language;

/// Embedded translation files, one per shipped language.
pub fn source(lang: Language) -> &'static str {
    match lang {
        Language::En => include_str!("../../locales/en.ftl"),
        Language::Ru => include_str!("../../locales/ru.ftl"),
    }
}

/// An argument of a message.
pub enum Arg {
    /// Plain text, escaped for HTML.
    Text(String),
    /// Trusted HTML, built by our own code from escaped parts.
    Html(String),
    /// A number (drives plural forms).
    Num(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<i32> for Arg {
    fn from(n: i32) -> Self {
        Arg::Num(i64::from(n))
    }
}

impl From<usize> for Arg {
    fn from(n: usize) -> Self {
        Arg::Num(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Num(n)
    }
}

impl From<u32> for Arg {
    fn from(n: u32) -> Self {
        Arg::Num(i64::from(n))
    }
}

/// Every shipped language's messages.
pub struct Texts {
    bundles: BTreeMap<Language, FluentBundle<FluentResource>>,
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Texts")
            .field("languages", &self.bundles.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Texts {
    /// Parses every shipped language; a broken file is a startup error naming the line.
    pub fn load() -> Result<Texts, String> {
        let mut bundles = BTreeMap::new();
        for lang in Language::ALL {
            let resource =
                FluentResource::try_new(source(lang).to_owned()).map_err(|(_, errors)| {
                    format!("locales/{}.ftl does not parse: {errors:?}", lang.code())
                })?;
            let id: unic_langid::LanguageIdentifier = lang
                .code()
                .parse()
                .map_err(|e| format!("bad language id {}: {e}", lang.code()))?;
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // Unicode isolation marks would show up as stray characters in Telegram.
            bundle.set_use_isolating(false);
            bundle.add_resource(resource).map_err(|e| {
                format!("locales/{}.ftl has duplicate messages: {e:?}", lang.code())
            })?;
            bundles.insert(lang, bundle);
        }
        Ok(Texts { bundles })
    }

    /// The message `key` without arguments.
    pub fn get(&self, lang: Language, key: &str) -> String {
        self.fmt(lang, key, &[])
    }

    /// The message `key` with `args`. A missing key falls back to English, then to the key
    /// itself (never a panic; the completeness test keeps this from happening).
    pub fn fmt(&self, lang: Language, key: &str, args: &[(&str, Arg)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (name, arg) in args {
            let value = match arg {
                Arg::Text(t) => FluentValue::from(escape_html(t)),
                Arg::Html(h) => FluentValue::from(h.clone()),
                Arg::Num(n) => FluentValue::from(*n),
            };
            fluent_args.set(*name, value);
        }
        for l in [lang, Language::En] {
            let Some(bundle) = self.bundles.get(&l) else {
                continue;
            };
            let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
            if !errors.is_empty() {
                tracing::warn!(
                    key,
                    language = l.code(),
                    ?errors,
                    "text has formatting errors"
                );
            }
            return text.into_owned();
        }
        tracing::error!(key, "no text for this key in any language");
        key.to_owned()
    }
}

/// The message ids defined in a Fluent source (for the completeness tests).
pub fn message_ids(source: &str) -> Vec<String> {
    let Ok(resource) = FluentResource::try_new(source.to_owned()) else {
        return Vec::new();
    };
    resource
        .entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(lang: Language) -> std::collections::BTreeSet<String> {
        message_ids(source(lang)).into_iter().collect()
    }

    #[test]
    fn every_language_has_exactly_the_same_keys() {
        let en = ids(Language::En);
        assert!(en.len() > 100, "{}", en.len());
        for lang in Language::ALL {
            let other = ids(lang);
            let missing: Vec<_> = en.difference(&other).collect();
            let extra: Vec<_> = other.difference(&en).collect();
            assert!(missing.is_empty(), "{}.ftl lacks {missing:?}", lang.code());
            assert!(
                extra.is_empty(),
                "{}.ftl has keys English lacks: {extra:?}",
                lang.code()
            );
        }
    }

    /// Every key the code asks for exists (keys are string literals passed to `get`, `fmt`,
    /// `tf`, `t` and `button`); every key of the files is used somewhere.
    #[test]
    fn the_code_and_the_files_agree_on_keys() {
        let mut used = std::collections::BTreeSet::new();
        let roots = [concat!(env!("CARGO_MANIFEST_DIR"), "/src")];
        let mut stack: Vec<std::path::PathBuf> = roots.iter().map(Into::into).collect();
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if ids(Language::En).contains(piece) {
                        used.insert(piece.to_owned());
                    }
                }
            }
        }
        let en = ids(Language::En);
        let unused: Vec<_> = en.difference(&used).collect();
        assert!(unused.is_empty(), "keys no code uses: {unused:?}");
        let texts = Texts::load().unwrap();
        for key in &en {
            for lang in Language::ALL {
                let text = texts.get(lang, key);
                assert_ne!(
                    &text,
                    key,
                    "{key} renders as its own name in {}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn arguments_are_escaped_unless_marked_html() {
        let texts = Texts::load().unwrap();
        let text = texts.fmt(
            Language::En,
            "support-text",
            &[("contact", "<b>x</b> & co".into())],
        );
        assert!(text.contains("&lt;b&gt;x&lt;/b&gt; &amp; co"), "{text}");
        let html = texts.fmt(
            Language::En,
            "menu-text",
            &[
                ("bot", "Bot".into()),
                ("status", Arg::Html("<i>ok</i>".into())),
            ],
        );
        assert!(html.contains("<i>ok</i>"), "{html}");
        // Plural forms follow each language's rules.
        assert!(
            texts
                .fmt(Language::Ru, "duration-days", &[("n", Arg::Num(22))])
                .ends_with("22 дня")
        );
        assert!(
            texts
                .fmt(Language::Ru, "duration-days", &[("n", Arg::Num(25))])
                .ends_with("25 дней")
        );
        assert!(
            texts
                .fmt(Language::En, "duration-days", &[("n", Arg::Num(1))])
                .ends_with("1 day")
        );
    }
}
