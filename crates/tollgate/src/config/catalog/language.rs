//! Languages the bot ships texts in, and text given in each of them (`Localized`): the
//! catalog's titles and descriptions and the bot's own texts are chosen by these.

use std::collections::BTreeMap;

use serde::Serialize;

/// Languages with shipped texts. The first one in `bot.languages` is the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Ru,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Ru];

    pub const fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ru => "ru",
        }
    }

    pub fn parse(code: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.code() == code)
    }
}

/// Text in every shipped language of this deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Localized(pub BTreeMap<Language, String>);

impl Localized {
    /// The text in `lang`, or in the fallback language (validation guarantees all exist).
    pub fn get(&self, lang: Language) -> &str {
        self.0
            .get(&lang)
            .or_else(|| self.0.values().next())
            .map(String::as_str)
            .unwrap_or_default()
    }
}
