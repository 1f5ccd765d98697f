//! The catalog: what is sold, for how much, and where access lives (a TOML file).
//!
//! The file is deserialized strictly (`deny_unknown_fields`: a misspelt key is an error, not
//! a silently ignored setting) into `Raw*` shapes, then converted into typed values —
//! money in minor units, durations, closed enums — with every problem collected and named by
//! its key path (`plans[1].prices.RUB`). After that, no code re-checks the catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::duration::{format_duration, parse_duration};
use super::env::Env;
use super::secret::Secret;
use super::{ConfigError, ConfigErrors};
use crate::domain::money::{Currency, Money};

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

// ---------------------------------------------------------------------------------------
// Raw shapes: exactly what the file may contain.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    bot: RawBot,
    trial: RawTrial,
    plans: Vec<RawPlan>,
    balance: RawBalance,
    referral: RawReferral,
    notifications: RawNotifications,
    feed: RawFeed,
    #[serde(default)]
    apps: Vec<RawApp>,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    name: String,
    base_currency: String,
    languages: Vec<String>,
    support: String,
    utc_offset: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrial {
    days: i64,
}

/// A price is a string in major units ("149.50") or a whole number (149). Floats are refused
/// because they cannot hold every decimal amount exactly.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAmount {
    Int(i64),
    Text(String),
    Float(f64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    id: String,
    days: i64,
    prices: BTreeMap<String, RawAmount>,
    title: BTreeMap<String, String>,
    #[serde(default)]
    description: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBalance {
    topup_packages: Vec<RawAmount>,
    custom_topup_min: RawAmount,
    custom_topup_max: RawAmount,
    #[serde(default)]
    stars_packages: Vec<RawStarsPackage>,
    withdrawal_min: RawAmount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStarsPackage {
    stars: i64,
    credit: RawAmount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReferral {
    levels: Vec<RawReferralLevel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReferralLevel {
    paying_referrals: i64,
    percent: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    reminders_before_expiry: Vec<String>,
    trial_onboarding_after_start: String,
    trial_reminders_before_end: Vec<String>,
    trial_ended_message: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    title: String,
    update_interval_hours: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    platform: String,
    name: String,
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    country: String,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    agent_url: String,
    agent_token_env: String,
    #[serde(default)]
    agent_cert_sha256: Option<String>,
    #[serde(default)]
    allow_plaintext: bool,
    link: RawLink,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    host: String,
    port: i64,
    security: String,
    #[serde(default)]
    sni: Option<String>,
    #[serde(default)]
    fp: Option<String>,
    #[serde(default)]
    alpn: Option<String>,
    #[serde(default)]
    pbk: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    spx: Option<String>,
    #[serde(default)]
    flow: Option<String>,
    transport: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    ws_host: Option<String>,
    #[serde(default)]
    service_name: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Typed catalog: what the rest of the service uses.
// ---------------------------------------------------------------------------------------

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

#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub bot: BotSettings,
    pub trial: TrialSettings,
    pub plans: Vec<Plan>,
    pub balance: BalanceSettings,
    pub referral: ReferralSettings,
    pub notifications: NotificationSettings,
    pub feed: FeedSettings,
    pub apps: Vec<ClientApp>,
    pub nodes: Vec<NodeDefinition>,
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

#[derive(Debug, Clone, Serialize)]
pub struct ReferralLevel {
    pub paying_referrals: u32,
    pub percent: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReferralSettings {
    /// Sorted by `paying_referrals`, the first at 0.
    pub levels: Vec<ReferralLevel>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationSettings {
    /// Sorted longest first.
    #[serde(serialize_with = "ser_durations")]
    pub reminders_before_expiry: Vec<Duration>,
    #[serde(serialize_with = "ser_duration")]
    pub trial_onboarding_after_start: Duration,
    #[serde(serialize_with = "ser_durations")]
    pub trial_reminders_before_end: Vec<Duration>,
    pub trial_ended_message: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedSettings {
    pub title: String,
    pub update_interval_hours: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Android,
    Ios,
    Windows,
    Macos,
    Linux,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientApp {
    pub platform: Platform,
    pub name: String,
    pub url: Url,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeDefinition {
    pub name: String,
    pub country: String,
    pub enabled: bool,
    pub agent_url: Url,
    pub agent_token_env: String,
    #[serde(skip)]
    pub agent_token: Secret<String>,
    /// The agent's certificate, pinned: the service accepts exactly this one (https only).
    pub agent_cert_sha256: Option<tollgate_node::CertFingerprint>,
    /// The operator accepts plain HTTP to an agent off this host (a tunnel, a private link).
    pub allow_plaintext: bool,
    pub link: LinkDefinition,
}

/// The one definition a node's user entries and its share links are both derived from.
#[derive(Debug, Clone, Serialize)]
pub struct LinkDefinition {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Empty, or `xtls-rprx-vision` (needs tls/reality over tcp).
    pub flow: String,
    pub transport: Transport,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Security {
    None,
    Tls {
        sni: Option<String>,
        fp: Option<String>,
        alpn: Option<String>,
    },
    Reality {
        sni: String,
        fp: String,
        pbk: String,
        sid: String,
        spx: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Ws { path: String, host: Option<String> },
    Grpc { service_name: String },
    Httpupgrade { path: String, host: Option<String> },
}

fn ser_currency<S: serde::Serializer>(c: &Currency, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.code())
}
fn ser_money<S: serde::Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&m.to_string())
}
fn ser_money_list<S: serde::Serializer>(m: &[Money], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(Money::to_string))
}
fn ser_prices<S: serde::Serializer>(
    p: &BTreeMap<Currency, Money>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(c, m)| (c.code(), m.format_major())))
}
fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}
fn ser_durations<S: serde::Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(d.iter().map(|d| format_duration(*d)))
}

// ---------------------------------------------------------------------------------------
// Conversion with collected errors.
// ---------------------------------------------------------------------------------------

struct Check<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    fn fail(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError::new(
            &format!("{} in {}", key, self.file),
            problem.into(),
            &fix.into(),
        ));
    }

    fn amount(&mut self, key: &str, raw: &RawAmount, currency: Currency) -> Option<Money> {
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

    fn duration(&mut self, key: &str, text: &str, max: Duration) -> Option<Duration> {
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

    fn int_in(&mut self, key: &str, v: i64, lo: i64, hi: i64) -> Option<u32> {
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

    fn localized(
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

    // bot
    let base_currency = match raw.bot.base_currency.parse::<Currency>() {
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
    for (i, code) in raw.bot.languages.iter().enumerate() {
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
    if raw.bot.languages.is_empty() {
        c.fail(
            "bot.languages",
            "is empty",
            "e.g. languages = [\"en\", \"ru\"]",
        );
    }
    if raw.bot.name.trim().is_empty() {
        c.fail("bot.name", "is empty", "give the bot's display name");
    }
    if raw.bot.support.trim().is_empty() {
        c.fail(
            "bot.support",
            "is empty",
            "give a @username or an https:// link where users get help",
        );
    }
    let utc_offset_minutes = match parse_utc_offset(&raw.bot.utc_offset) {
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
    let bot = BotSettings {
        name: raw.bot.name,
        base_currency,
        languages: languages.clone(),
        support: raw.bot.support,
        utc_offset_minutes,
    };

    let trial = TrialSettings {
        days: c.int_in("trial.days", raw.trial.days, 1, 365).unwrap_or(1),
    };

    // plans
    if raw.plans.is_empty() {
        c.fail(
            "plans",
            "no plan is defined",
            "add at least one [[plans]] table (see config/tollgate.example.toml)",
        );
    }
    let mut plan_ids = BTreeSet::new();
    let mut plans = Vec::new();
    for (i, p) in raw.plans.iter().enumerate() {
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
        let title = c.localized(&format!("{key}.title"), &p.title, &languages, true);
        let description = c.localized(
            &format!("{key}.description"),
            &p.description,
            &languages,
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

    // balance
    let b = &raw.balance;
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
    let mut stars_packages = Vec::new();
    for (i, s) in b.stars_packages.iter().enumerate() {
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
    let withdrawal_min = c
        .amount("balance.withdrawal_min", &b.withdrawal_min, base_currency)
        .unwrap_or(one);
    let balance = BalanceSettings {
        topup_packages,
        custom_topup_min,
        custom_topup_max,
        stars_packages,
        withdrawal_min,
    };

    // referral
    let mut levels: Vec<ReferralLevel> = Vec::new();
    for (i, l) in raw.referral.levels.iter().enumerate() {
        let key = format!("referral.levels[{i}]");
        let paying = c.int_in(
            &format!("{key}.paying_referrals"),
            l.paying_referrals,
            0,
            1_000_000,
        );
        let percent = c.int_in(&format!("{key}.percent"), l.percent, 0, 100);
        if let (Some(paying_referrals), Some(percent)) = (paying, percent) {
            if let Some(prev) = levels.last() {
                if paying_referrals <= prev.paying_referrals {
                    c.fail(
                        &format!("{key}.paying_referrals"),
                        format!("{paying_referrals} does not increase over the previous level"),
                        "list levels in increasing order of paying_referrals",
                    );
                }
            } else if paying_referrals != 0 {
                c.fail(
                    &format!("{key}.paying_referrals"),
                    "the first level must start at 0",
                    "set paying_referrals = 0 on the first level",
                );
            }
            levels.push(ReferralLevel {
                paying_referrals,
                percent,
            });
        }
    }
    if raw.referral.levels.is_empty() {
        c.fail(
            "referral.levels",
            "is empty",
            "add a level such as { paying_referrals = 0, percent = 10 } (percent 0 disables rewards)",
        );
    }

    // notifications
    let month = Duration::from_secs(30 * 86_400);
    let n = &raw.notifications;
    let mut reminders = Vec::new();
    for (i, t) in n.reminders_before_expiry.iter().enumerate() {
        if let Some(d) = c.duration(
            &format!("notifications.reminders_before_expiry[{i}]"),
            t,
            month,
        ) {
            if reminders.contains(&d) {
                c.fail(
                    &format!("notifications.reminders_before_expiry[{i}]"),
                    format!("{t:?} is listed twice"),
                    "list each offset once",
                );
            }
            reminders.push(d);
        }
    }
    reminders.sort_by(|a, b| b.cmp(a));
    let trial_onboarding_after_start = c
        .duration(
            "notifications.trial_onboarding_after_start",
            &n.trial_onboarding_after_start,
            month,
        )
        .unwrap_or(Duration::from_secs(1));
    let mut trial_reminders = Vec::new();
    for (i, t) in n.trial_reminders_before_end.iter().enumerate() {
        if let Some(d) = c.duration(
            &format!("notifications.trial_reminders_before_end[{i}]"),
            t,
            month,
        ) {
            trial_reminders.push(d);
        }
    }
    trial_reminders.sort_by(|a, b| b.cmp(a));
    trial_reminders.dedup();
    let notifications = NotificationSettings {
        reminders_before_expiry: reminders,
        trial_onboarding_after_start,
        trial_reminders_before_end: trial_reminders,
        trial_ended_message: n.trial_ended_message,
    };

    // feed
    if raw.feed.title.trim().is_empty() || raw.feed.title.chars().count() > 25 {
        c.fail(
            "feed.title",
            format!("{:?} must have 1-25 characters", raw.feed.title),
            "client apps show at most 25 characters; shorten it",
        );
    }
    let feed = FeedSettings {
        title: raw.feed.title,
        update_interval_hours: c
            .int_in(
                "feed.update_interval_hours",
                raw.feed.update_interval_hours,
                1,
                168,
            )
            .unwrap_or(12),
    };

    // apps
    let mut apps = Vec::new();
    for (i, a) in raw.apps.iter().enumerate() {
        let key = format!("apps[{i}]");
        let platform = match a.platform.as_str() {
            "android" => Some(Platform::Android),
            "ios" => Some(Platform::Ios),
            "windows" => Some(Platform::Windows),
            "macos" => Some(Platform::Macos),
            "linux" => Some(Platform::Linux),
            other => {
                c.fail(
                    &format!("{key}.platform"),
                    format!("{other:?} is not a platform"),
                    "use android, ios, windows, macos or linux",
                );
                None
            }
        };
        let url = match Url::parse(&a.url) {
            Ok(u) if u.scheme() == "https" => Some(u),
            _ => {
                c.fail(
                    &format!("{key}.url"),
                    format!("{:?} is not an https URL", a.url),
                    "link the app's store or download page with https://",
                );
                None
            }
        };
        if a.name.trim().is_empty() {
            c.fail(&format!("{key}.name"), "is empty", "give the app's name");
        }
        if let (Some(platform), Some(url)) = (platform, url) {
            apps.push(ClientApp {
                platform,
                name: a.name.clone(),
                url,
            });
        }
    }

    // nodes
    let mut node_names = BTreeSet::new();
    let mut nodes = Vec::new();
    for (i, n) in raw.nodes.iter().enumerate() {
        let key = format!("nodes[{i}]");
        let name_ok = (1..=32).contains(&n.name.len())
            && n.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            c.fail(
                &format!("{key}.name"),
                format!("{:?} is not a node name", n.name),
                "use 1-32 characters of a-z 0-9 - (memberships are stored under it; never rename a live node)",
            );
        } else if !node_names.insert(n.name.clone()) {
            c.fail(
                &format!("{key}.name"),
                format!("{:?} is used twice", n.name),
                "give every node its own name",
            );
        }
        if n.country.len() != 2 || !n.country.bytes().all(|b| b.is_ascii_uppercase()) {
            c.fail(
                &format!("{key}.country"),
                format!("{:?} is not a two-letter country code", n.country),
                "use an ISO 3166 code in capitals, e.g. \"NL\"",
            );
        }
        let agent_url = match Url::parse(&n.agent_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            _ => {
                c.fail(
                    &format!("{key}.agent_url"),
                    format!("{:?} is not an http(s) URL", n.agent_url),
                    "give the tollgate-node agent's address, e.g. \"https://10.0.0.5:9090\"",
                );
                None
            }
        };
        let agent_cert_sha256 = match &n.agent_cert_sha256 {
            Some(text) => match tollgate_node::CertFingerprint::parse(text) {
                Ok(fingerprint) => Some(fingerprint),
                Err(problem) => {
                    c.fail(
                        &format!("{key}.agent_cert_sha256"),
                        problem,
                        "copy the line `tollgate-node fingerprint` prints on the node (or the one its log shows at start)",
                    );
                    None
                }
            },
            None => None,
        };
        if let Some(url) = &agent_url {
            check_agent_transport(
                &mut c,
                &key,
                url,
                n.agent_cert_sha256.is_some(),
                n.allow_plaintext,
            );
        }
        // The agent's own rule (tollgate_node::Token), so a token this catalog accepts is
        // one the agent can be installed with; the message never contains the token.
        let token = match env.get(&n.agent_token_env) {
            Some(t) => match tollgate_node::Token::new(t) {
                Ok(_) => Some(Secret::new(t.to_owned())),
                Err(problem) => {
                    c.fail(
                        &format!("{key}.agent_token_env"),
                        format!("the variable {}: {problem}", n.agent_token_env),
                        "use the long random token the agent was installed with",
                    );
                    None
                }
            },
            None => {
                c.fail(
                    &format!("{key}.agent_token_env"),
                    format!("the environment variable {:?} is not set", n.agent_token_env),
                    format!(
                        "export {}=<the node agent's token> (tokens are secrets and live in the environment, not in the file)",
                        n.agent_token_env
                    ),
                );
                None
            }
        };
        let link = parse_link(&mut c, &format!("{key}.link"), &n.link);
        if let (Some(agent_url), Some(agent_token), Some(link)) = (agent_url, token, link) {
            nodes.push(NodeDefinition {
                name: n.name.clone(),
                country: n.country.clone(),
                enabled: n.enabled,
                agent_url,
                agent_token_env: n.agent_token_env.clone(),
                agent_token,
                agent_cert_sha256,
                allow_plaintext: n.allow_plaintext,
                link,
            });
        }
    }

    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    Ok(Catalog {
        bot,
        trial,
        plans,
        balance,
        referral: ReferralSettings { levels },
        notifications,
        feed,
        apps,
        nodes,
    })
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

/// The agent channel carries the token and every user's key: plain HTTP is refused unless it
/// stays on this host or the node says `allow_plaintext = true` (a tunnel, a private link);
/// a pin only makes sense over https.
fn check_agent_transport(
    c: &mut Check<'_>,
    key: &str,
    url: &Url,
    pinned: bool,
    allow_plaintext: bool,
) {
    if url.scheme() != "http" {
        return;
    }
    if pinned {
        c.fail(
            &format!("{key}.agent_cert_sha256"),
            format!(
                "a certificate is pinned, but agent_url {:?} is plain http",
                url.as_str()
            ),
            "use https:// in agent_url (the agent serves TLS unless started with --plaintext)",
        );
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback && !allow_plaintext {
        c.fail(
            &format!("{key}.agent_url"),
            format!(
                "{:?} is plain http to another host: the agent token and every user's key would cross the network in clear text",
                url.as_str()
            ),
            "use https:// with agent_cert_sha256 = \"…\" (the line `tollgate-node fingerprint` prints on the node); only if the path is already private (a tunnel), set allow_plaintext = true on this node",
        );
    }
}

fn parse_link(c: &mut Check<'_>, key: &str, l: &RawLink) -> Option<LinkDefinition> {
    let before = c.errors.len();
    if l.host.trim().is_empty() || l.host.contains(['/', ' ', '@', '?', '#']) {
        c.fail(
            &format!("{key}.host"),
            format!("{:?} is not a host name or IP", l.host),
            "e.g. host = \"nl1.example.com\"",
        );
    }
    let port = match u16::try_from(l.port) {
        Ok(p) if p > 0 => p,
        _ => {
            c.fail(
                &format!("{key}.port"),
                format!("{} is not a port", l.port),
                "use 1-65535, usually 443",
            );
            0
        }
    };
    let fingerprints = [
        "chrome",
        "firefox",
        "safari",
        "ios",
        "android",
        "edge",
        "360",
        "qq",
        "random",
        "randomized",
    ];
    let check_fp = |c: &mut Check<'_>, fp: &Option<String>| {
        if let Some(f) = fp
            && !fingerprints.contains(&f.as_str())
        {
            c.fail(
                &format!("{key}.fp"),
                format!("{f:?} is not a uTLS fingerprint"),
                format!("use one of {}", fingerprints.join(", ")),
            );
        }
    };
    let security = match l.security.as_str() {
        "none" => {
            for (field, v) in [
                ("sni", &l.sni),
                ("pbk", &l.pbk),
                ("sid", &l.sid),
                ("fp", &l.fp),
            ] {
                if v.is_some() {
                    c.fail(
                        &format!("{key}.{field}"),
                        "is set but security is \"none\"",
                        "remove it or choose security = \"tls\" or \"reality\"",
                    );
                }
            }
            Some(Security::None)
        }
        "tls" => {
            check_fp(c, &l.fp);
            if l.pbk.is_some() || l.sid.is_some() {
                c.fail(
                    &format!("{key}.pbk"),
                    "pbk/sid belong to REALITY, not TLS",
                    "remove them or use security = \"reality\"",
                );
            }
            Some(Security::Tls {
                sni: l.sni.clone(),
                fp: l.fp.clone(),
                alpn: l.alpn.clone(),
            })
        }
        "reality" => {
            check_fp(c, &l.fp);
            let sni = l.sni.clone().unwrap_or_default();
            if sni.is_empty() {
                c.fail(
                    &format!("{key}.sni"),
                    "is required for REALITY",
                    "set sni to one of the inbound's realitySettings.serverNames",
                );
            }
            let pbk = l.pbk.clone().unwrap_or_default();
            let pbk_ok = pbk.len() == 43
                && pbk
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !pbk_ok {
                c.fail(
                    &format!("{key}.pbk"),
                    format!("{pbk:?} is not a REALITY public key"),
                    "use the 43-character base64url public key printed by `xray x25519`",
                );
            }
            let sid = l.sid.clone().unwrap_or_default();
            if sid.len() > 16
                || !sid.len().is_multiple_of(2)
                || !sid.bytes().all(|b| b.is_ascii_hexdigit())
            {
                c.fail(
                    &format!("{key}.sid"),
                    format!("{sid:?} is not a REALITY short id"),
                    "use an even number (0-16) of hex digits from the inbound's shortIds",
                );
            }
            Some(Security::Reality {
                sni,
                fp: l.fp.clone().unwrap_or_else(|| "chrome".to_owned()),
                pbk,
                sid,
                spx: l.spx.clone(),
            })
        }
        other => {
            c.fail(
                &format!("{key}.security"),
                format!("{other:?} is not a security mode"),
                "use \"none\", \"tls\" or \"reality\"",
            );
            None
        }
    };
    let transport = match l.transport.as_str() {
        "tcp" => Some(Transport::Tcp),
        "ws" | "httpupgrade" => {
            let path = l.path.clone().unwrap_or_default();
            if !path.starts_with('/') {
                c.fail(
                    &format!("{key}.path"),
                    format!("{path:?} is not an absolute path"),
                    "set path = \"/your-path\" as in the inbound's settings",
                );
            }
            if l.transport == "ws" {
                Some(Transport::Ws {
                    path,
                    host: l.ws_host.clone(),
                })
            } else {
                Some(Transport::Httpupgrade {
                    path,
                    host: l.ws_host.clone(),
                })
            }
        }
        "grpc" => {
            let service_name = l.service_name.clone().unwrap_or_default();
            if service_name.is_empty() {
                c.fail(
                    &format!("{key}.service_name"),
                    "is required for grpc",
                    "set service_name as in the inbound's grpcSettings",
                );
            }
            Some(Transport::Grpc { service_name })
        }
        other => {
            c.fail(
                &format!("{key}.transport"),
                format!("{other:?} is not a supported transport"),
                "use tcp, ws, grpc or httpupgrade",
            );
            None
        }
    };
    let flow = l.flow.clone().unwrap_or_default();
    match flow.as_str() {
        "" => {}
        "xtls-rprx-vision" => {
            let secure = matches!(
                security,
                Some(Security::Tls { .. } | Security::Reality { .. })
            );
            if !secure || !matches!(transport, Some(Transport::Tcp)) {
                c.fail(
                    &format!("{key}.flow"),
                    "xtls-rprx-vision needs security tls or reality over tcp",
                    "remove flow or use tcp with tls/reality",
                );
            }
        }
        other => c.fail(
            &format!("{key}.flow"),
            format!("{other:?} is not a flow"),
            "use \"\" or \"xtls-rprx-vision\"",
        ),
    }
    if c.errors.len() != before {
        return None;
    }
    Some(LinkDefinition {
        host: l.host.clone(),
        port,
        security: security?,
        flow,
        transport: transport?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = include_str!("../../../../config/tollgate.example.toml");

    fn parse(text: &str) -> Result<Catalog, String> {
        parse_catalog(text, "test.toml", &Env::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_shipped_example_is_valid_and_holds_the_product_defaults() {
        let cat = parse(EXAMPLE).unwrap();
        assert_eq!(cat.bot.base_currency, Currency::Rub);
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
        ];
        for (from, to, key) in cases {
            let text = EXAMPLE.replacen(from, to, 1);
            assert_ne!(text, EXAMPLE, "replacement {from:?} must hit");
            let e = parse(&text).unwrap_err();
            assert!(e.contains(key), "{key}: {e}");
            assert!(e.contains("fix:"), "{e}");
        }
    }

    fn with_node(link: &str, env: &Env) -> Result<Catalog, String> {
        with_agent("agent_url = \"http://127.0.0.1:9090\"", link, env)
    }

    /// The example with one node whose agent lines are `agent` (agent_url and the rest).
    fn with_agent(agent: &str, link: &str, env: &Env) -> Result<Catalog, String> {
        let text = format!(
            "{EXAMPLE}\n[[nodes]]\nname = \"nl-1\"\ncountry = \"NL\"\n{agent}\nagent_token_env = \"NODE_NL_1_TOKEN\"\nlink = {{ {link} }}\n"
        );
        parse_catalog(&text, "test.toml", env).map_err(|e| e.to_string())
    }

    const PLAIN_LINK: &str = "host = \"h\", port = 443, security = \"none\", transport = \"tcp\"";
    const PIN: &str = "96:83:18:FF:8E:52:13:40:1E:DD:4C:8D:8C:07:B9:93:A6:EC:A0:E9:13:8A:93:5E:64:76:40:85:FA:B7:AF:EA";

    fn token_env() -> Env {
        Env::from_pairs([(
            "NODE_NL_1_TOKEN",
            "0123456789abcdef-0123456789abcdef-secret",
        )])
    }

    #[test]
    fn plain_http_to_another_host_is_refused_unless_the_node_allows_it() {
        let env = token_env();
        for url in [
            "http://10.0.0.5:9090",
            "http://node.example.com:9090",
            "http://[2001:db8::5]:9090",
        ] {
            let e = with_agent(&format!("agent_url = \"{url}\""), PLAIN_LINK, &env).unwrap_err();
            assert!(
                e.contains("nodes[0].agent_url")
                    && e.contains("clear text")
                    && e.contains("agent_cert_sha256")
                    && e.contains("allow_plaintext = true"),
                "{url}: {e}"
            );
        }
        // Loopback stays plain (an agent on the same host); so does an explicit opt-in.
        for url in [
            "http://127.0.0.1:9090",
            "http://localhost:9090",
            "http://[::1]:9090",
        ] {
            with_agent(&format!("agent_url = \"{url}\""), PLAIN_LINK, &env).unwrap();
        }
        let cat = with_agent(
            "agent_url = \"http://10.0.0.5:9090\"\nallow_plaintext = true",
            PLAIN_LINK,
            &env,
        )
        .unwrap();
        assert!(cat.nodes[0].allow_plaintext);
        // https needs no opt-in.
        with_agent("agent_url = \"https://10.0.0.5:9090\"", PLAIN_LINK, &env).unwrap();
    }

    #[test]
    fn a_pinned_certificate_takes_either_form_and_refuses_a_malformed_one() {
        let env = token_env();
        let pinned = |value: &str| {
            with_agent(
                &format!("agent_url = \"https://10.0.0.5:9090\"\nagent_cert_sha256 = \"{value}\""),
                PLAIN_LINK,
                &env,
            )
        };
        let expected = tollgate_node::CertFingerprint::parse(PIN).unwrap();
        for form in [
            PIN.to_owned(),
            PIN.to_lowercase(),
            PIN.replace(':', ""),
            PIN.replace(':', "").to_lowercase(),
        ] {
            let cat = pinned(&form).unwrap();
            assert_eq!(cat.nodes[0].agent_cert_sha256, Some(expected), "{form}");
        }
        let report = toml::to_string(&pinned(PIN).unwrap()).unwrap();
        assert!(report.contains(PIN), "{report}");

        let e = pinned("AB:CD").unwrap_err();
        assert!(
            e.contains("nodes[0].agent_cert_sha256") && e.contains("32 pairs"),
            "{e}"
        );
        assert!(e.contains("tollgate-node fingerprint"), "{e}");
        let e = pinned(&PIN.replace("EA", "EZ")).unwrap_err();
        assert!(e.contains("not a hex byte"), "{e}");

        // A pin over plain http can never be checked.
        let e = with_agent(
            &format!("agent_url = \"http://127.0.0.1:9090\"\nagent_cert_sha256 = \"{PIN}\""),
            PLAIN_LINK,
            &env,
        )
        .unwrap_err();
        assert!(
            e.contains("nodes[0].agent_cert_sha256") && e.contains("https://"),
            "{e}"
        );
    }

    #[test]
    fn nodes_resolve_tokens_from_the_environment() {
        let link = "host = \"nl1.example.com\", port = 443, security = \"reality\", sni = \"www.example.com\", pbk = \"Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw\", sid = \"6ba85179e30d4fc2\", fp = \"chrome\", flow = \"xtls-rprx-vision\", transport = \"tcp\"";
        let e = with_node(link, &Env::default()).unwrap_err();
        assert!(e.contains("NODE_NL_1_TOKEN"), "{e}");
        let env = Env::from_pairs([(
            "NODE_NL_1_TOKEN",
            "0123456789abcdef-0123456789abcdef-secret",
        )]);
        let cat = with_node(link, &env).unwrap();
        assert_eq!(
            cat.nodes[0].agent_token.expose(),
            "0123456789abcdef-0123456789abcdef-secret"
        );
        let report = toml::to_string(&cat).unwrap();
        assert!(!report.contains("0123456789abcdef-0123456789abcdef-secret"));
        // The agent refuses tokens under 32 characters; so does the catalog, without echoing it.
        let short = Env::from_pairs([("NODE_NL_1_TOKEN", "short-but-16-chars")]);
        let e = with_node(link, &short).unwrap_err();
        assert!(
            e.contains("nodes[0].agent_token_env") && e.contains("at least 32"),
            "{e}"
        );
        assert!(!e.contains("short-but-16-chars"), "{e}");
    }

    #[test]
    fn link_definitions_cannot_ask_for_what_the_server_lacks() {
        let env = Env::from_pairs([(
            "NODE_NL_1_TOKEN",
            "0123456789abcdef-0123456789abcdef-secret",
        )]);
        let e = with_node("host = \"h\", port = 443, security = \"none\", flow = \"xtls-rprx-vision\", transport = \"tcp\"", &env).unwrap_err();
        assert!(e.contains("nodes[0].link.flow"), "{e}");
        let e = with_node("host = \"h\", port = 443, security = \"reality\", sni = \"s\", pbk = \"short\", sid = \"xyz\", transport = \"tcp\"", &env).unwrap_err();
        assert!(
            e.contains("nodes[0].link.pbk") && e.contains("nodes[0].link.sid"),
            "{e}"
        );
        let e = with_node(
            "host = \"h\", port = 443, security = \"none\", transport = \"ws\"",
            &env,
        )
        .unwrap_err();
        assert!(e.contains("nodes[0].link.path"), "{e}");
        with_node("host = \"h\", port = 8443, security = \"tls\", sni = \"h\", transport = \"ws\", path = \"/v\"", &env).unwrap();
    }
}
