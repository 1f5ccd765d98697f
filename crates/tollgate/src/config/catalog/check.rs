//! The validation kit every catalog section uses: one collector of problems, each named by
//! its key path in the file, and the checks several sections share (money, durations, bounded
//! numbers, localized texts). Sections report through it so one run lists every problem.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::language::{Language, Localized};
use crate::config::ConfigError;
use crate::config::duration::{format_duration, parse_duration};
use crate::domain::money::{Currency, Money};

/// A price is a string in major units ("149.50") or a whole number (149). Floats are refused
/// because they cannot hold every decimal amount exactly.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawAmount {
    Int(i64),
    Text(String),
    Float(f64),
}

/// Collects problems; `file` names the catalog in every key.
pub(super) struct Check<'a> {
    pub(super) file: &'a str,
    pub(super) errors: Vec<ConfigError>,
}

impl Check<'_> {
    pub(super) fn fail(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError::new(
            &format!("{} in {}", key, self.file),
            problem.into(),
            &fix.into(),
        ));
    }

    pub(super) fn amount(
        &mut self,
        key: &str,
        raw: &RawAmount,
        currency: Currency,
    ) -> Option<Money> {
        let text = match raw {
            RawAmount::Int(i) if *i >= 0 => i.to_string(),
            RawAmount::Int(i) => {
                self.fail(
                    key,
                    format!("{i} is negative"),
                    "prices and amounts are positive",
                );
                return None;
            }
            RawAmount::Text(t) => t.clone(),
            RawAmount::Float(f) => {
                self.fail(
                    key,
                    format!("{f} is a floating-point number, which cannot hold money exactly"),
                    format!("write it as a string, e.g. {key} = \"{f}\""),
                );
                return None;
            }
        };
        match Money::parse_major(&text, currency) {
            Ok(m) if m.minor > 0 => Some(m),
            Ok(_) => {
                self.fail(key, "is zero", "use an amount greater than zero");
                None
            }
            Err(e) => {
                self.fail(key, e.to_string(), format!("e.g. {key} = \"149.00\""));
                None
            }
        }
    }

    pub(super) fn duration(&mut self, key: &str, text: &str, max: Duration) -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.fail(key, "is zero", "use a positive duration such as \"24h\"");
                None
            }
            Ok(d) if d > max => {
                self.fail(
                    key,
                    format!("{text:?} is longer than {}", format_duration(max)),
                    "use a shorter duration",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.fail(key, e, "e.g. \"72h\" or \"3d\"");
                None
            }
        }
    }

    pub(super) fn int_in(&mut self, key: &str, v: i64, lo: i64, hi: i64) -> Option<u32> {
        if (lo..=hi).contains(&v) {
            u32::try_from(v).ok()
        } else {
            self.fail(
                key,
                format!("{v} is outside {lo}..={hi}"),
                format!("use a whole number from {lo} to {hi}"),
            );
            None
        }
    }

    pub(super) fn localized(
        &mut self,
        key: &str,
        map: &BTreeMap<String, String>,
        languages: &[Language],
        required: bool,
    ) -> Localized {
        let mut out = BTreeMap::new();
        for (code, text) in map {
            match Language::parse(code) {
                Some(l) if languages.contains(&l) => {
                    if text.trim().is_empty() {
                        self.fail(&format!("{key}.{code}"), "is empty", "write the text");
                    }
                    out.insert(l, text.clone());
                }
                _ => self.fail(
                    &format!("{key}.{code}"),
                    format!("{code:?} is not one of bot.languages"),
                    format!(
                        "use one of: {}",
                        languages
                            .iter()
                            .map(|l| l.code())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        if required || !map.is_empty() {
            for l in languages {
                if !out.contains_key(l) && !map.contains_key(l.code()) {
                    self.fail(
                        &format!("{key}.{}", l.code()),
                        "is missing",
                        "give the text in every language of bot.languages",
                    );
                }
            }
        }
        Localized(out)
    }
}
