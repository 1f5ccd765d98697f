//! `[trial]` and `[[plans]]`: what is sold — the free trial's length and each plan's id,
//! length, prices (the base currency, optionally Telegram Stars) and texts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::bot::BotSettings;
use super::check::{Check, RawAmount};
use super::language::Localized;
use crate::domain::money::{Currency, Money};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrial {
    days: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    id: String,
    days: i64,
    prices: BTreeMap<String, RawAmount>,
    title: BTreeMap<String, String>,
    #[serde(default)]
    description: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialSettings {
    pub days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub id: String,
    pub days: u32,
    /// Price per currency; always contains the base currency.
    #[serde(serialize_with = "ser_prices")]
    pub prices: BTreeMap<Currency, Money>,
    pub title: Localized,
    pub description: Localized,
}

impl Plan {
    pub fn price(&self, currency: Currency) -> Option<Money> {
        self.prices.get(&currency).copied()
    }
}

fn ser_prices<S: serde::Serializer>(
    p: &BTreeMap<Currency, Money>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(c, m)| (c.code(), m.format_major())))
}

pub(super) fn parse_trial(c: &mut Check<'_>, raw: &RawTrial) -> TrialSettings {
    TrialSettings {
        days: c.int_in("trial.days", raw.days, 1, 365).unwrap_or(1),
    }
}

/// Converts `[[plans]]`; prices are read in the bot's base currency and XTR only.
pub(super) fn parse_plans(c: &mut Check<'_>, raw: &[RawPlan], bot: &BotSettings) -> Vec<Plan> {
    let base_currency = bot.base_currency;
    let languages = &bot.languages;
    if raw.is_empty() {
        c.fail(
            "plans",
            "no plan is defined",
            "add at least one [[plans]] table (see config/tollgate.example.toml)",
        );
    }
    let mut plan_ids = BTreeSet::new();
    let mut plans = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let key = format!("plans[{i}]");
        let id_ok = (1..=32).contains(&p.id.len())
            && p.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            c.fail(
                &format!("{key}.id"),
                format!("{:?} is not a plan id", p.id),
                "use 1-32 characters of a-z 0-9 - _ (ids are stored with purchases; never rename a sold plan)",
            );
        } else if !plan_ids.insert(p.id.clone()) {
            c.fail(
                &format!("{key}.id"),
                format!("{:?} is used twice", p.id),
                "give every plan its own id",
            );
        }
        let days = c
            .int_in(&format!("{key}.days"), p.days, 1, 3650)
            .unwrap_or(1);
        let mut prices = BTreeMap::new();
        for (code, amount) in &p.prices {
            let pkey = format!("{key}.prices.{code}");
            match code.parse::<Currency>() {
                Ok(cur) if cur == base_currency || cur == Currency::Xtr => {
                    if let Some(m) = c.amount(&pkey, amount, cur) {
                        prices.insert(cur, m);
                    }
                }
                Ok(cur) => c.fail(
                    &pkey,
                    format!("{cur} is neither the base currency ({base_currency}) nor XTR"),
                    format!("price plans in {base_currency} and optionally XTR (Telegram Stars)"),
                ),
                Err(e) => c.fail(
                    &pkey,
                    e.to_string(),
                    "use a currency code such as RUB or XTR",
                ),
            }
        }
        if !p.prices.contains_key(base_currency.code()) {
            c.fail(
                &format!("{key}.prices.{}", base_currency.code()),
                "is missing: every plan needs a price in the base currency",
                format!(
                    "add {} = \"149\" to the plan's prices",
                    base_currency.code()
                ),
            );
        }
        let title = c.localized(&format!("{key}.title"), &p.title, languages, true);
        let description = c.localized(
            &format!("{key}.description"),
            &p.description,
            languages,
            false,
        );
        plans.push(Plan {
            id: p.id.clone(),
            days,
            prices,
            title,
            description,
        });
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::super::testing::{EXAMPLE, parse};

    #[test]
    fn money_must_be_exact() {
        let text = EXAMPLE.replacen("RUB = \"149\"", "RUB = 149.5", 1);
        assert_ne!(text, EXAMPLE);
        let e = parse(&text).unwrap_err();
        assert!(e.contains("plans[0].prices.RUB in test.toml"), "{e}");
        assert!(e.contains("floating-point"), "{e}");

        let text = EXAMPLE.replacen("RUB = \"149\"", "RUB = \"149.001\"", 1);
        let e = parse(&text).unwrap_err();
        assert!(e.contains("more decimal places"), "{e}");
    }
}
