//! `[balance]`: the in-bot balance — top-up packages and the custom top-up range in the base
//! currency, the Telegram Stars packages that credit it, and the withdrawal minimum.

use serde::{Deserialize, Serialize};

use super::check::{Check, RawAmount};
use crate::domain::money::{Currency, Money};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBalance {
    topup_packages: Vec<RawAmount>,
    custom_topup_min: RawAmount,
    custom_topup_max: RawAmount,
    #[serde(default)]
    stars_packages: Vec<RawStarsPackage>,
    withdrawal_min: RawAmount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStarsPackage {
    stars: i64,
    credit: RawAmount,
}

#[derive(Debug, Clone, Serialize)]
pub struct StarsPackage {
    pub stars: i64,
    #[serde(serialize_with = "ser_money")]
    pub credit: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct BalanceSettings {
    #[serde(serialize_with = "ser_money_list")]
    pub topup_packages: Vec<Money>,
    #[serde(serialize_with = "ser_money")]
    pub custom_topup_min: Money,
    #[serde(serialize_with = "ser_money")]
    pub custom_topup_max: Money,
    pub stars_packages: Vec<StarsPackage>,
    #[serde(serialize_with = "ser_money")]
    pub withdrawal_min: Money,
}

fn ser_money<S: serde::Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&m.to_string())
}
fn ser_money_list<S: serde::Serializer>(m: &[Money], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(Money::to_string))
}

/// Converts `[balance]`; every amount is in the base currency.
pub(super) fn parse_balance(
    c: &mut Check<'_>,
    b: &RawBalance,
    base_currency: Currency,
) -> BalanceSettings {
    let mut topup_packages = Vec::new();
    for (i, a) in b.topup_packages.iter().enumerate() {
        if let Some(m) = c.amount(&format!("balance.topup_packages[{i}]"), a, base_currency) {
            topup_packages.push(m);
        }
    }
    let one = Money::new(1, base_currency);
    let custom_topup_min = c
        .amount(
            "balance.custom_topup_min",
            &b.custom_topup_min,
            base_currency,
        )
        .unwrap_or(one);
    let custom_topup_max = c
        .amount(
            "balance.custom_topup_max",
            &b.custom_topup_max,
            base_currency,
        )
        .unwrap_or(one);
    if custom_topup_min.minor > custom_topup_max.minor {
        c.fail(
            "balance.custom_topup_min",
            format!("{custom_topup_min} is above custom_topup_max ({custom_topup_max})"),
            "make custom_topup_min the smaller one",
        );
    }
    let stars_packages = parse_stars_packages(c, &b.stars_packages, base_currency);
    let withdrawal_min = c
        .amount("balance.withdrawal_min", &b.withdrawal_min, base_currency)
        .unwrap_or(one);
    BalanceSettings {
        topup_packages,
        custom_topup_min,
        custom_topup_max,
        stars_packages,
        withdrawal_min,
    }
}

/// `balance.stars_packages`: how many Stars buy how much balance credit.
fn parse_stars_packages(
    c: &mut Check<'_>,
    raw: &[RawStarsPackage],
    base_currency: Currency,
) -> Vec<StarsPackage> {
    let mut stars_packages = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = format!("balance.stars_packages[{i}]");
        let stars = c.int_in(&format!("{key}.stars"), s.stars, 1, 100_000);
        let credit = c.amount(&format!("{key}.credit"), &s.credit, base_currency);
        if let (Some(stars), Some(credit)) = (stars, credit) {
            stars_packages.push(StarsPackage {
                stars: i64::from(stars),
                credit,
            });
        }
    }
    stars_packages
}
