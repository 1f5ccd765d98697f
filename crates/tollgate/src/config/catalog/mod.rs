//! The catalog: what is sold, for how much, and where access lives (a TOML file).
//!
//! The file is deserialized strictly (`deny_unknown_fields`: a misspelt key is an error, not
//! a silently ignored setting) into `Raw*` shapes, then converted into typed values —
//! money in minor units, durations, closed enums — with every problem collected and named by
//! its key path (`plans[1].prices.RUB`). After that, no code re-checks the catalog.
//!
//! One module per section of the file, each with its raw shape, its typed value and its
//! conversion; this module holds the whole and reads the sections in file order.

mod apps;
mod balance;
mod bot;
mod check;
mod cryptopay;
mod discounts;
mod feed;
mod language;
mod link;
mod nodes;
mod notifications;
mod plans;
mod referral;
#[cfg(test)]
mod testing;
mod yookassa;

use serde::{Deserialize, Serialize};

pub use apps::{ClientApp, Platform};
pub use balance::{BalanceSettings, StarsPackage};
pub use bot::BotSettings;
pub use cryptopay::CryptoPayCatalog;
pub use discounts::DiscountSettings;
pub use feed::FeedSettings;
pub use language::{Language, Localized};
pub use link::{LinkDefinition, Security, Transport};
pub use nodes::NodeDefinition;
pub use notifications::NotificationSettings;
pub use plans::{Plan, TrialSettings};
pub use referral::{ReferralLevel, ReferralSettings};
pub use yookassa::YooKassaCatalog;

use super::env::Env;
use super::{ConfigError, ConfigErrors};
use check::Check;

/// Exactly what the file may contain, section by section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    bot: bot::RawBot,
    trial: plans::RawTrial,
    plans: Vec<plans::RawPlan>,
    balance: balance::RawBalance,
    referral: referral::RawReferral,
    #[serde(default)]
    discounts: discounts::RawDiscounts,
    notifications: notifications::RawNotifications,
    feed: feed::RawFeed,
    #[serde(default)]
    apps: Vec<apps::RawApp>,
    #[serde(default)]
    nodes: Vec<nodes::RawNode>,
    #[serde(default)]
    cryptopay: Option<cryptopay::RawCryptoPay>,
    #[serde(default)]
    yookassa: Option<yookassa::RawYooKassa>,
}

/// The validated catalog: what the rest of the service uses.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub bot: BotSettings,
    pub trial: TrialSettings,
    pub plans: Vec<Plan>,
    pub balance: BalanceSettings,
    pub referral: ReferralSettings,
    pub discounts: DiscountSettings,
    pub notifications: NotificationSettings,
    pub feed: FeedSettings,
    pub apps: Vec<ClientApp>,
    pub nodes: Vec<NodeDefinition>,
    pub cryptopay: CryptoPayCatalog,
    pub yookassa: YooKassaCatalog,
}

/// Parses and validates catalog text. `file` names the source in error messages; `env`
/// resolves node agent tokens (secrets stay in the environment, not in the file).
pub fn parse_catalog(text: &str, file: &str, env: &Env) -> Result<Catalog, ConfigErrors> {
    let raw: RawCatalog = toml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            file,
            e.to_string().trim_end().to_owned(),
            "fix the line shown; every key is documented in README.md (Configuration reference) and config/tollgate.example.toml",
        )])
    })?;
    let mut c = Check {
        file,
        errors: Vec::new(),
    };
    // Sections in file order, so problems are listed in the order an operator reads them.
    let bot = bot::parse_bot(&mut c, raw.bot);
    let trial = plans::parse_trial(&mut c, &raw.trial);
    let plans = plans::parse_plans(&mut c, &raw.plans, &bot);
    let balance = balance::parse_balance(&mut c, &raw.balance, bot.base_currency);
    let referral = referral::parse_referral(&mut c, &raw.referral);
    let discounts = discounts::parse_discounts(&raw.discounts);
    let notifications = notifications::parse_notifications(&mut c, &raw.notifications);
    let feed = feed::parse_feed(&mut c, raw.feed);
    let apps = apps::parse_apps(&mut c, &raw.apps);
    let nodes = nodes::parse_nodes(&mut c, &raw.nodes, env);
    let cryptopay = cryptopay::parse_cryptopay(&mut c, raw.cryptopay.as_ref());
    let yookassa = yookassa::parse_yookassa(&mut c, raw.yookassa.as_ref());

    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    Ok(Catalog {
        bot,
        trial,
        plans,
        balance,
        referral,
        discounts,
        notifications,
        feed,
        apps,
        nodes,
        cryptopay,
        yookassa,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::testing::{EXAMPLE, parse};
    use crate::domain::money::Currency;

    #[test]
    fn the_shipped_example_is_valid_and_holds_the_product_defaults() {
        let cat = parse(EXAMPLE).unwrap();
        assert_eq!(cat.bot.base_currency, Currency::Rub);
        assert!(
            !cat.yookassa.receipts,
            "54-FZ receipts are off unless turned on"
        );
        assert_eq!(cat.yookassa.vat_code, 1);
        assert_eq!(cat.yookassa.tax_system_code, None);
        assert_eq!(cat.trial.days, 3);
        let days: Vec<u32> = cat.plans.iter().map(|p| p.days).collect();
        assert_eq!(days, [30, 90, 180, 365]);
        let rub: Vec<i64> = cat
            .plans
            .iter()
            .map(|p| p.prices[&Currency::Rub].minor)
            .collect();
        assert_eq!(rub, [14_900, 39_900, 74_900, 139_900]);
        let xtr: Vec<i64> = cat
            .plans
            .iter()
            .map(|p| p.prices[&Currency::Xtr].minor)
            .collect();
        assert_eq!(xtr, [100, 270, 500, 900]);
        let packs: Vec<i64> = cat.balance.topup_packages.iter().map(|m| m.minor).collect();
        assert_eq!(packs, [25_000, 75_000, 150_000]);
        assert_eq!(cat.balance.custom_topup_min.minor, 10_000);
        assert_eq!(cat.balance.custom_topup_max.minor, 10_000_000);
        assert_eq!(cat.balance.withdrawal_min.minor, 50_000);
        let levels: Vec<(u32, u32)> = cat
            .referral
            .levels
            .iter()
            .map(|l| (l.paying_referrals, l.percent))
            .collect();
        assert_eq!(levels, [(0, 10), (25, 25), (50, 45)]);
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(
            cat.notifications.reminders_before_expiry,
            [h(72), h(24), h(3)]
        );
        assert_eq!(cat.notifications.trial_onboarding_after_start, h(6));
        assert_eq!(cat.notifications.trial_reminders_before_end, [h(24), h(3)]);
        assert!(cat.notifications.trial_ended_message);
        assert!(
            cat.nodes.is_empty(),
            "the example ships its node commented out"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let text = EXAMPLE.replacen("[trial]\ndays = 3", "[trial]\ndays = 3\nlength = 4", 1);
        assert_ne!(text, EXAMPLE, "the replacement must hit");
        let e = parse(&text).unwrap_err();
        assert!(e.contains("unknown field `length`"), "{e}");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn semantic_problems_are_named_by_key_path() {
        let cases: &[(&str, &str, &str)] = &[
            ("days = 3", "days = 0", "trial.days"),
            (
                "base_currency = \"RUB\"",
                "base_currency = \"RUBX\"",
                "bot.base_currency",
            ),
            (
                "utc_offset = \"+03:00\"",
                "utc_offset = \"3\"",
                "bot.utc_offset",
            ),
            (
                "\"72h\"",
                "\"72x\"",
                "notifications.reminders_before_expiry[0]",
            ),
            (
                "{ paying_referrals = 25, percent = 25 }",
                "{ paying_referrals = 0, percent = 25 }",
                "referral.levels[1].paying_referrals",
            ),
            ("id = \"m1\"", "id = \"M 1\"", "plans[0].id"),
            ("en = \"1 month\"", "de = \"1 Monat\"", "plans[0].title.de"),
            (
                "custom_topup_min = \"100\"",
                "custom_topup_min = \"1000000\"",
                "balance.custom_topup_min",
            ),
            ("vat_code = 1", "vat_code = 13", "yookassa.vat_code"),
            (
                "vat_code = 1",
                "vat_code = 11\ntax_system_code = 7",
                "yookassa.tax_system_code",
            ),
        ];
        for (from, to, key) in cases {
            let text = EXAMPLE.replacen(from, to, 1);
            assert_ne!(text, EXAMPLE, "replacement {from:?} must hit");
            let e = parse(&text).unwrap_err();
            assert!(e.contains(key), "{key}: {e}");
            assert!(e.contains("fix:"), "{e}");
        }
    }
}
