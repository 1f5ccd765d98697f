//! `[bot]`: who the bot is to its users — name, base currency, languages, support contact
//! and the UTC offset dates are shown in.

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::language::Language;
use crate::domain::money::Currency;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBot {
    name: String,
    base_currency: String,
    languages: Vec<String>,
    support: String,
    utc_offset: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BotSettings {
    pub name: String,
    #[serde(serialize_with = "ser_currency")]
    pub base_currency: Currency,
    pub languages: Vec<Language>,
    pub support: String,
    /// Offset from UTC used when rendering dates for users, in minutes.
    pub utc_offset_minutes: i32,
}

impl BotSettings {
    /// The language for users whose own is unknown or no longer shipped: the first listed.
    pub fn fallback_language(&self) -> Language {
        self.languages.first().copied().unwrap_or(Language::En)
    }
}

fn ser_currency<S: serde::Serializer>(c: &Currency, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.code())
}

/// Converts `[bot]`; every other section is read against its currency and languages.
pub(super) fn parse_bot(c: &mut Check<'_>, raw: RawBot) -> BotSettings {
    let base_currency = match raw.base_currency.parse::<Currency>() {
        Ok(Currency::Xtr) => {
            c.fail(
                "bot.base_currency",
                "XTR cannot be the base currency",
                "use the fiat currency of the balance, e.g. \"RUB\"",
            );
            Currency::Rub
        }
        Ok(cur) => cur,
        Err(e) => {
            c.fail(
                "bot.base_currency",
                e.to_string(),
                "e.g. base_currency = \"RUB\"",
            );
            Currency::Rub
        }
    };
    let mut languages = Vec::new();
    for (i, code) in raw.languages.iter().enumerate() {
        match Language::parse(code) {
            Some(l) if !languages.contains(&l) => languages.push(l),
            Some(_) => c.fail(
                &format!("bot.languages[{i}]"),
                format!("{code:?} is listed twice"),
                "list each language once",
            ),
            None => c.fail(
                &format!("bot.languages[{i}]"),
                format!("{code:?} has no shipped texts"),
                "use \"en\" and/or \"ru\"",
            ),
        }
    }
    if raw.languages.is_empty() {
        c.fail(
            "bot.languages",
            "is empty",
            "e.g. languages = [\"en\", \"ru\"]",
        );
    }
    if raw.name.trim().is_empty() {
        c.fail("bot.name", "is empty", "give the bot's display name");
    }
    if raw.support.trim().is_empty() {
        c.fail(
            "bot.support",
            "is empty",
            "give a @username or an https:// link where users get help",
        );
    }
    let utc_offset_minutes = match parse_utc_offset(&raw.utc_offset) {
        Ok(m) => m,
        Err(e) => {
            c.fail(
                "bot.utc_offset",
                e,
                "e.g. utc_offset = \"+03:00\" or \"+00:00\"",
            );
            0
        }
    };
    BotSettings {
        name: raw.name,
        base_currency,
        languages,
        support: raw.support,
        utc_offset_minutes,
    }
}

fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let bad = || format!("{text:?} is not a UTC offset like \"+03:00\"");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}
