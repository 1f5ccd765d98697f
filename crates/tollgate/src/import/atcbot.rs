//! `tollgate import atcbot --from postgres://…`: users, balances, active subscriptions with
//! their VPN UUIDs, referrers, trials and auto-renew choices from the earlier bot's
//! PostgreSQL database (its shape: docs/operating.md, "Switching from the earlier bot").
//!
//! The rules, and why:
//! - **Nobody loses a key.** An active subscription (`status = 'active'`, `expires_at` in the
//!   future, a UUID) keeps its UUID and its expiry, so the `vless://` link the user already has
//!   works as soon as `tollgate-node` serves the same inbound. Rows without a UUID (activation
//!   pending or failed), expired ones and UUIDs that are not UUIDs are reported, not guessed.
//! - **Nobody loses money.** `users.balance` is the truth (the earlier bot's transaction log
//!   does not always add up to it; disagreements are reported): one opening ledger entry per
//!   user with a balance, referenced `import:atcbot:<telegram id>`, so it is made once.
//! - **Running it twice changes nothing.** A user already in this database is left exactly as
//!   they are, with their balance and subscription; everything is keyed by Telegram id.
//! - **No mixing by accident.** A database with users who are not in the source is refused
//!   unless `--merge`.
//! - **The source is read defensively**: columns that only some installations have are looked
//!   up first; timestamps, naive (`TIMESTAMP`, written as UTC) or not, become UTC instants in
//!   SQL (`EXTRACT(EPOCH …)` takes a naive value as UTC whatever the session's zone).
//! - Languages this catalog does not ship fall back to its first language. Referrers must
//!   exist and must have joined before the user (the order of the source's `users.id`), which
//!   keeps referrals acyclic as registration does.
//! - Writes go in chunks of [`CHUNK`] users, one transaction each; a chunk that fails is
//!   redone user by user, so one bad row costs its neighbours a retry, not their import.
//!
//! - **Money still owed stays owed.** A pending withdrawal (its amount already debited in the
//!   earlier bot, so `users.balance` no longer holds it) becomes a pending request here, keyed
//!   `atcbot:<its id>`, for an admin to pay or reject like any other; a rejection returns it.
//! - **Live promo codes** (active, not deleted, not expired) keep their percent, limit, uses
//!   and end; **personal discounts** (`user_discounts`, VIP = 30 %) come with their user.
//!
//! A user's withdrawals and discount are written with the user, in the same transaction, so a
//! user who was here already is left as they are — their withdrawal is reported, to settle by
//! hand — and a second run writes nothing.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, bail};
use futures::TryStreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::Report;
use crate::access::{self, Imported, Kind};
use crate::admin::audit::{self, Actor};
use crate::billing::ledger::{self, Reason};
use crate::billing::promo::{self, Benefit, Code, NewCode, Personal};
use crate::billing::withdrawals;
use crate::config::Language;
use crate::config::catalog::Catalog;
use crate::domain::money::{Currency, Money};
use crate::nodes::EnabledNodes;
use crate::store::Db;
use crate::time::Timestamp;
use crate::users::{self, ImportedUser};

/// Users per write transaction.
pub const CHUNK: usize = 500;

/// What the earlier bot's VIP status was worth: 30 % off, with no end.
const VIP_PERCENT: i64 = 30;

/// How an import runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print what would happen; write nothing.
    pub dry_run: bool,
    /// Import even though this database has users who are not in the source.
    pub merge: bool,
    /// The catalog plan imported paid subscriptions renew on (auto-renewal needs a plan);
    /// none: imported subscriptions have no plan until the user buys one.
    pub renew_plan: Option<String>,
}

/// A user of the earlier bot, as read.
#[derive(Debug, Clone)]
struct OldUser {
    telegram_id: i64,
    username: Option<String>,
    language: Option<String>,
    created_ms: Option<i64>,
    balance: i64,
    referrer: Option<i64>,
    trial_used_ms: Option<i64>,
    reachable: Option<bool>,
    referral_code: Option<String>,
}

/// A subscription row of the earlier bot, as read.
#[derive(Debug, Clone)]
struct OldSubscription {
    telegram_id: i64,
    expires_ms: Option<i64>,
    uuid: Option<String>,
    status: Option<String>,
    source: Option<String>,
    auto_renew: Option<bool>,
    activation: Option<String>,
}

/// A pending withdrawal of the earlier bot: money already debited there and still owed.
#[derive(Debug, Clone)]
struct OldWithdrawal {
    /// The source's row id when it has one (the import's key), else its position.
    id: i64,
    telegram_id: i64,
    amount: i64,
    requisites: Option<String>,
    created_ms: Option<i64>,
}

/// A live promo code of the earlier bot (a percent off the next purchase).
#[derive(Debug, Clone)]
struct OldPromo {
    code: String,
    percent: i64,
    max_uses: Option<i64>,
    used: i64,
    expires_ms: Option<i64>,
}

/// A personal discount of the earlier bot (`user_discounts`, or VIP: 30 %).
#[derive(Debug, Clone)]
struct OldDiscount {
    telegram_id: i64,
    percent: i64,
    expires_ms: Option<i64>,
}

/// A promo code as it will be created, with the uses it had.
struct PlannedCode {
    new: NewCode,
    used: i64,
}

/// Everything one user brings.
struct Planned {
    user: ImportedUser,
    balance: i64,
    referrer: Option<i64>,
    subscription: Option<PlannedSubscription>,
    withdrawals: Vec<OldWithdrawal>,
    discount: Option<Personal>,
}

struct PlannedSubscription {
    kind: Kind,
    expires_at: Timestamp,
    uuid: Uuid,
}

/// Connects to the earlier bot's database (read only by convention: only `SELECT`s run).
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .context("cannot connect to the earlier bot's database given with --from (check the URL, the password and that the server accepts connections from here)")
}

/// Imports from `source` into `target`. See the module doc for the rules.
pub async fn run(
    source: &PgPool,
    target: &Db,
    catalog: &Catalog,
    nodes: &EnabledNodes,
    options: &Options,
    now: Timestamp,
) -> anyhow::Result<Report> {
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    if catalog.bot.base_currency != Currency::Rub {
        bail!(
            "the earlier bot keeps balances in RUB kopecks, but this catalog's base_currency is {}: \
             set base_currency = \"RUB\" in the catalog before importing (balances are never converted)",
            catalog.bot.base_currency.code()
        );
    }
    if let Some(plan) = &options.renew_plan
        && !catalog.plans.iter().any(|p| &p.id == plan)
    {
        let ids: Vec<&str> = catalog.plans.iter().map(|p| p.id.as_str()).collect();
        bail!(
            "--renew-plan {plan:?} is not a plan of the catalog; its plans: {}",
            ids.join(", ")
        );
    }
    let users_cols = columns(source, "users").await?;
    if users_cols.is_empty() {
        bail!(
            "the database given with --from has no users table: is it the earlier bot's database?"
        );
    }
    for needed in ["telegram_id", "balance"] {
        if !users_cols.contains(needed) {
            bail!(
                "the earlier bot's users table has no {needed} column: this importer knows its last audited shape only"
            );
        }
    }
    let old_users = read_users(source, &users_cols).await?;
    let subs_cols = columns(source, "subscriptions").await?;
    let old_subs = if subs_cols.contains("telegram_id") && subs_cols.contains("expires_at") {
        read_subscriptions(source, &subs_cols).await?
    } else {
        report
            .notes
            .push("the source has no subscriptions table: no access is imported".to_owned());
        Vec::new()
    };
    notes_on_what_stays(source, &old_users, &mut report).await?;
    report.users_read = old_users.len() as u64;
    let old_withdrawals = read_withdrawals(source).await?;
    let old_discounts = read_discounts(source, now).await?;
    let codes = plan_promos(&read_promos(source, now).await?, &mut report);

    let mut planned = plan(&old_users, &old_subs, catalog, now, &mut report);
    attach(
        &mut planned,
        old_withdrawals,
        old_discounts,
        now,
        &mut report,
    );

    let present: HashSet<i64> = match users::ids(target).await {
        Ok(ids) => ids.into_iter().collect(),
        Err(_) if options.dry_run => {
            report.notes.push(
                "this database has no schema yet (a dry run does not migrate it): counted as empty"
                    .to_owned(),
            );
            HashSet::new()
        }
        Err(e) => {
            return Err(anyhow::Error::from(e)
                .context("cannot read this database's users (has `tollgate migrate` run?)"));
        }
    };
    let source_ids: HashSet<i64> = old_users.iter().map(|u| u.telegram_id).collect();
    let strangers: Vec<i64> = present
        .iter()
        .filter(|id| !source_ids.contains(id))
        .copied()
        .collect();
    if !strangers.is_empty() && !options.merge {
        let mut sample = strangers.clone();
        sample.sort_unstable();
        sample.truncate(5);
        bail!(
            "this database already has {} users who are not in the earlier bot's database (e.g. {:?}): \
             importing would mix two bots' users. Import into a fresh database, or pass --merge to add the \
             earlier bot's users beside them (users already here are left as they are)",
            strangers.len(),
            sample
        );
    }

    if options.dry_run {
        for p in &planned {
            if present.contains(&p.user.id) {
                report.users_present += 1;
                skip_left_alone(p, &mut report);
                continue;
            }
            report.users_created += 1;
            count_planned(p, &mut report);
        }
        for c in &codes {
            // A database without a schema yet has no codes.
            if !promo::exists(target, &c.new.code).await.unwrap_or(false) {
                report.promo_codes_created += 1;
            }
        }
        return Ok(report);
    }

    // Users this database had when the run started are left as they are, without a statement:
    // a repeated run reads and plans, and writes nothing.
    let (here, to_write): (Vec<&Planned>, Vec<&Planned>) =
        planned.iter().partition(|p| present.contains(&p.user.id));
    report.users_present += here.len() as u64;
    for p in &here {
        skip_left_alone(p, &mut report);
    }
    for chunk in to_write.chunks(CHUNK) {
        let outcome = write_chunk(target, chunk, nodes, options, now).await;
        match outcome {
            Ok(tally) => tally.add_to(&mut report),
            Err(_) => {
                // Redo one by one: what commits is what one transaction per user commits.
                for p in chunk {
                    match write_chunk(target, std::slice::from_ref(p), nodes, options, now).await {
                        Ok(tally) => tally.add_to(&mut report),
                        Err(e) => report.skip(format!("user {}", p.user.id), format!("{e:#}")),
                    }
                }
            }
        }
    }
    let mut tx = target.begin().await?;
    for code in &codes {
        let created = promo::import_code(&mut tx, &code.new, code.used, false, now)
            .await
            .with_context(|| format!("cannot import promo code {}", code.new.code.as_str()))?;
        if created {
            report.promo_codes_created += 1;
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// A user who was here before the run keeps what they have: what the earlier bot still owed
/// them is reported, not merged into their account.
fn skip_left_alone(p: &Planned, report: &mut Report) {
    for w in &p.withdrawals {
        report.skip(
            format!("withdrawal {} of {}", w.id, p.user.id),
            format!(
                "the user was here before this import and is left as they are; {} kopecks are still owed: settle them by hand",
                w.amount
            ),
        );
    }
}

fn count_planned(p: &Planned, report: &mut Report) {
    if p.balance > 0 {
        report.balances_opened += 1;
        report.balance_total += p.balance;
    }
    if p.subscription.is_some() {
        report.subscriptions_created += 1;
    }
    if p.referrer.is_some() {
        report.referrers_set += 1;
    }
    if p.user.auto_renew {
        report.auto_renew_on += 1;
    }
    report.withdrawals_created += p.withdrawals.len() as u64;
    report.withdrawal_total += p.withdrawals.iter().map(|w| w.amount).sum::<i64>();
    if p.discount.is_some() {
        report.discounts_set += 1;
    }
}

/// What one committed chunk did, and what it skipped.
#[derive(Default)]
struct Tally {
    report: Report,
}

impl Tally {
    fn add_to(self, report: &mut Report) {
        let t = self.report;
        report.users_created += t.users_created;
        report.users_present += t.users_present;
        report.balances_opened += t.balances_opened;
        report.balance_total += t.balance_total;
        report.subscriptions_created += t.subscriptions_created;
        report.subscriptions_present += t.subscriptions_present;
        report.referrers_set += t.referrers_set;
        report.auto_renew_on += t.auto_renew_on;
        report.withdrawals_created += t.withdrawals_created;
        report.withdrawal_total += t.withdrawal_total;
        report.discounts_set += t.discounts_set;
        report.skipped.extend(t.skipped);
    }
}

/// One transaction: each user of the chunk with their balance, subscription and referrer.
async fn write_chunk(
    db: &Db,
    chunk: &[&Planned],
    nodes: &EnabledNodes,
    options: &Options,
    now: Timestamp,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let r = &mut tally.report;
    let mut tx = db.begin().await?;
    for p in chunk {
        let Some(code) = users::import(&mut tx, &p.user, now).await? else {
            r.users_present += 1;
            continue;
        };
        r.users_created += 1;
        if let Some(wanted) = p.user.referral_code.as_deref().filter(|w| *w != code) {
            r.skip(
                format!("referral code of {}", p.user.id),
                format!("{wanted:?} belongs to another user here; the user gets {code:?} and their old links credit nobody"),
            );
        }
        if p.user.auto_renew {
            r.auto_renew_on += 1;
        }
        if p.balance > 0 {
            let reference = format!("import:atcbot:{}", p.user.id);
            if !ledger::exists(&mut tx, &reference).await? {
                ledger::change(
                    &mut tx,
                    p.user.id,
                    p.balance,
                    Reason::Admin,
                    &reference,
                    now,
                )
                .await?;
                r.balances_opened += 1;
                r.balance_total += p.balance;
            }
        }
        for w in &p.withdrawals {
            let created_at = Timestamp::from_millis(
                w.created_ms.unwrap_or(now.as_millis()).min(now.as_millis()),
            );
            let created = withdrawals::import_pending(
                &mut tx,
                p.user.id,
                Money::new(w.amount, Currency::Rub),
                w.requisites.as_deref().unwrap_or(""),
                created_at,
                &format!("atcbot:{}", w.id),
            )
            .await?;
            if created {
                r.withdrawals_created += 1;
                r.withdrawal_total += w.amount;
            }
        }
        if let Some(discount) = p.discount {
            let entry =
                promo::set_personal(&mut tx, p.user.id, Some(discount), Actor::CommandLine, now)
                    .await?
                    .reason("tollgate import atcbot");
            audit::record(&mut tx, &entry, now).await?;
            r.discounts_set += 1;
        }
        if let Some(referrer) = p.referrer {
            if users::set_imported_referrer(&mut tx, p.user.id, referrer).await? {
                r.referrers_set += 1;
            } else {
                r.skip(
                    format!("referrer of {}", p.user.id),
                    format!("{referrer} was not imported; the user has no referrer"),
                );
            }
        }
        if let Some(s) = &p.subscription {
            let plan = match s.kind {
                Kind::Paid => options.renew_plan.as_deref(),
                _ => None,
            };
            let imported = access::import_subscription(
                &mut tx,
                nodes,
                p.user.id,
                s.kind,
                plan,
                p.user.created_at,
                s.expires_at,
                s.uuid,
                now,
            )
            .await?;
            match imported {
                Imported::Created(_) => r.subscriptions_created += 1,
                Imported::Exists(_) => r.subscriptions_present += 1,
                Imported::UuidTaken => r.skip(
                    format!("subscription of {}", p.user.id),
                    format!(
                        "VPN UUID {} belongs to another subscription here; the user keeps their balance but not this key",
                        s.uuid
                    ),
                ),
            }
        }
    }
    tx.commit().await?;
    Ok(tally)
}

/// Turns the source's rows into what each user brings, reporting every row it cannot take.
fn plan(
    old_users: &[OldUser],
    old_subs: &[OldSubscription],
    catalog: &Catalog,
    now: Timestamp,
    report: &mut Report,
) -> Vec<Planned> {
    let languages = &catalog.bot.languages;
    let fallback = languages.first().copied().unwrap_or(Language::En);
    // Position in the source's order of registration: a referrer must come before.
    let position: HashMap<i64, usize> = old_users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.telegram_id, i))
        .collect();
    let mut by_user: HashMap<i64, &OldSubscription> = HashMap::new();
    for s in old_subs {
        if !position.contains_key(&s.telegram_id) {
            report.skip(
                format!("subscription of {}", s.telegram_id),
                "no such user in the earlier bot's users table",
            );
            continue;
        }
        if by_user.insert(s.telegram_id, s).is_some() {
            report.skip(
                format!("subscription of {}", s.telegram_id),
                "a second subscription row for the same user; the last one read is taken",
            );
        }
    }
    let mut usernames: HashMap<String, i64> = HashMap::new();
    let mut uuids: HashSet<Uuid> = HashSet::new();
    let mut unknown_languages: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::with_capacity(old_users.len());
    let mut seen: HashSet<i64> = HashSet::new();
    for (i, u) in old_users.iter().enumerate() {
        let id = u.telegram_id;
        if id <= 0 {
            report.skip(format!("user {id}"), "not a Telegram user id");
            continue;
        }
        if !seen.insert(id) {
            report.skip(
                format!("user {id}"),
                "a second row with the same telegram_id",
            );
            continue;
        }
        if u.balance < 0 {
            report.skip(
                format!("user {id}"),
                format!("balance {} is negative", u.balance),
            );
            continue;
        }
        let language = match u
            .language
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            None => fallback,
            Some(code) => {
                let chosen = users::initial_language(Some(code), languages);
                let primary = code
                    .split(['-', '_'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if !languages.iter().any(|l| l.code() == primary) {
                    *unknown_languages.entry(code.to_owned()).or_default() += 1;
                }
                chosen
            }
        };
        if let Some(name) = u.username.as_deref().filter(|n| !n.is_empty()) {
            let key = name.to_ascii_lowercase();
            if let Some(other) = usernames.insert(key, id) {
                report.notes.push(format!(
                    "users {other} and {id} share the username @{name}; both are imported (usernames are not keys)"
                ));
            }
        }
        let referrer = match u.referrer.filter(|r| *r != 0) {
            None => None,
            Some(r) if r == id => {
                report.skip(format!("referrer of {id}"), "the user names themselves");
                None
            }
            Some(r) => match position.get(&r) {
                None => {
                    report.skip(
                        format!("referrer of {id}"),
                        format!("{r} is not a user of the earlier bot"),
                    );
                    None
                }
                Some(&at) if at > i => {
                    report.skip(
                        format!("referrer of {id}"),
                        format!("{r} joined after the user; referrals must point to earlier users"),
                    );
                    None
                }
                Some(_) => Some(r),
            },
        };
        let sub = by_user.get(&id).copied();
        let created_at =
            Timestamp::from_millis(u.created_ms.unwrap_or(now.as_millis()).min(now.as_millis()));
        let trial_source = sub.is_some_and(|s| s.source.as_deref() == Some("trial"));
        let trial_used_at = u
            .trial_used_ms
            .map(Timestamp::from_millis)
            .or(trial_source.then_some(created_at));
        let subscription = sub.and_then(|s| planned_subscription(s, now, &mut uuids, report));
        let referral_code = u
            .referral_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if let Some(code) = referral_code.filter(|c| !users::is_referral_code(c)) {
            report.skip(
                format!("referral code of {id}"),
                format!("{code:?} cannot be a ref_<code> link here (at most 60 of A-Z a-z 0-9 _ -); the user gets a new code"),
            );
        }
        out.push(Planned {
            user: ImportedUser {
                id,
                username: u.username.clone().filter(|n| !n.is_empty()),
                language,
                auto_renew: sub.and_then(|s| s.auto_renew).unwrap_or(false),
                trial_used_at,
                bot_blocked_at: (u.reachable == Some(false)).then_some(now),
                created_at,
                referral_code: referral_code
                    .filter(|c| users::is_referral_code(c))
                    .map(str::to_owned),
            },
            balance: u.balance,
            referrer,
            subscription,
            withdrawals: Vec::new(),
            discount: None,
        });
    }
    let mut unknown: Vec<_> = unknown_languages.into_iter().collect();
    unknown.sort();
    for (code, n) in unknown {
        report.notes.push(format!(
            "{n} users have the language {code:?}, which this catalog does not ship: they get {}",
            fallback.code()
        ));
    }
    out
}

/// The live codes that can be codes here (each one it cannot take reported).
fn plan_promos(old: &[OldPromo], report: &mut Report) -> Vec<PlannedCode> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for p in old {
        let what = format!("promo code {:?}", p.code);
        let Some(code) = Code::parse(&p.code) else {
            report.skip(
                what,
                format!(
                    "a code here is 3–{} letters, digits, - or _; create a replacement in the console",
                    promo::MAX_CODE_LEN
                ),
            );
            continue;
        };
        if !seen.insert(code.as_str().to_owned()) {
            report.skip(
                what,
                "the same code (compared case-insensitively) is live twice; the first one read is taken",
            );
            continue;
        }
        let Some(percent) = u32::try_from(p.percent)
            .ok()
            .filter(|v| (1..=99).contains(v))
        else {
            report.skip(
                what,
                format!("{} % is not a discount from 1 to 99 %", p.percent),
            );
            continue;
        };
        let used = p.used.max(0);
        if let Some(max) = p.max_uses {
            if max <= 0 {
                report.skip(what, format!("max_uses {max} allows no use"));
                continue;
            }
            if used >= max {
                report.skip(what, format!("used up ({used} of {max} uses)"));
                continue;
            }
        }
        out.push(PlannedCode {
            new: NewCode {
                code,
                benefit: Benefit::Percent(percent),
                max_uses: p.max_uses,
                starts_at: None,
                ends_at: p.expires_ms.map(Timestamp::from_millis),
                first_purchase_only: false,
                plans: None,
            },
            used,
        });
    }
    out
}

/// Gives each planned user their pending withdrawals and personal discount, reporting the rows
/// whose user is not imported or whose values cannot be taken.
fn attach(
    planned: &mut [Planned],
    old_withdrawals: Vec<OldWithdrawal>,
    old_discounts: Vec<OldDiscount>,
    now: Timestamp,
    report: &mut Report,
) {
    let at: HashMap<i64, usize> = planned
        .iter()
        .enumerate()
        .map(|(i, p)| (p.user.id, i))
        .collect();
    for w in old_withdrawals {
        let what = format!("withdrawal {} of {}", w.id, w.telegram_id);
        let Some(&i) = at.get(&w.telegram_id) else {
            report.skip(
                what,
                format!(
                    "the user is not imported; {} kopecks are still owed: settle them by hand",
                    w.amount
                ),
            );
            continue;
        };
        if w.amount <= 0 {
            report.skip(what, format!("amount {} is not money owed", w.amount));
            continue;
        }
        planned[i].withdrawals.push(w);
    }
    for d in old_discounts {
        let what = format!("personal discount of {}", d.telegram_id);
        let Some(&i) = at.get(&d.telegram_id) else {
            report.skip(what, "the user is not imported");
            continue;
        };
        let Some(percent) = u32::try_from(d.percent)
            .ok()
            .filter(|v| (1..=99).contains(v))
        else {
            report.skip(
                what,
                format!("{} % is not a discount from 1 to 99 %", d.percent),
            );
            continue;
        };
        let until = d.expires_ms.map(Timestamp::from_millis);
        if until.is_some_and(|t| t <= now) {
            continue;
        }
        let p = &mut planned[i];
        // user_discounts is read first; a VIP row only fills in where it has none.
        if p.discount.is_none() {
            p.discount = Some(Personal { percent, until });
        }
    }
}

/// The subscription a row becomes, or `None` with the reason reported.
fn planned_subscription(
    s: &OldSubscription,
    now: Timestamp,
    uuids: &mut HashSet<Uuid>,
    report: &mut Report,
) -> Option<PlannedSubscription> {
    let what = format!("subscription of {}", s.telegram_id);
    if s.status.as_deref().is_some_and(|st| st != "active") {
        report.skip(
            what,
            format!("status {:?}: not active", s.status.as_deref().unwrap_or("")),
        );
        return None;
    }
    let Some(expires_ms) = s.expires_ms else {
        report.skip(what, "no expiry date");
        return None;
    };
    let expires_at = Timestamp::from_millis(expires_ms);
    if expires_at <= now {
        report.skip(what, format!("expired at {expires_at}"));
        return None;
    }
    if let Some(activation) = s.activation.as_deref().filter(|a| *a != "active") {
        report.skip(
            what,
            format!("activation {activation:?}: the earlier bot never gave this user a key; grant them days by hand"),
        );
        return None;
    }
    let Some(text) = s.uuid.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        report.skip(
            what,
            "no VPN UUID (NULL): no key to keep; grant them days by hand",
        );
        return None;
    };
    let Ok(uuid) = Uuid::parse_str(text) else {
        report.skip(what, format!("{text:?} is not a UUID"));
        return None;
    };
    if !uuids.insert(uuid) {
        report.skip(
            what,
            format!("VPN UUID {uuid} is used by another subscription of the earlier bot"),
        );
        return None;
    }
    let kind = match s.source.as_deref() {
        Some("trial") => Kind::Trial,
        Some("admin") => Kind::Admin,
        Some("game_strike") => Kind::Gift,
        _ => Kind::Paid,
    };
    Some(PlannedSubscription {
        kind,
        expires_at,
        uuid,
    })
}

/// The columns `table` has in the source's current schema (empty: no such table).
async fn columns(source: &PgPool, table: &str) -> anyhow::Result<HashSet<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(source)
    .await
    .with_context(|| format!("cannot read the columns of the earlier bot's {table} table"))?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// `CAST(EXTRACT(EPOCH FROM col) * 1000 AS BIGINT)` when the column exists, else NULL.
fn millis(cols: &HashSet<String>, col: &str) -> String {
    if cols.contains(col) {
        format!("CAST(EXTRACT(EPOCH FROM {col}) * 1000 AS BIGINT)")
    } else {
        "CAST(NULL AS BIGINT)".to_owned()
    }
}

fn text(cols: &HashSet<String>, col: &str) -> String {
    if cols.contains(col) {
        format!("CAST({col} AS TEXT)")
    } else {
        "CAST(NULL AS TEXT)".to_owned()
    }
}

async fn read_users(source: &PgPool, cols: &HashSet<String>) -> anyhow::Result<Vec<OldUser>> {
    let referrer = match (cols.contains("referrer_id"), cols.contains("referred_by")) {
        (true, true) => "CAST(COALESCE(referrer_id, referred_by) AS BIGINT)",
        (true, false) => "CAST(referrer_id AS BIGINT)",
        (false, true) => "CAST(referred_by AS BIGINT)",
        (false, false) => "CAST(NULL AS BIGINT)",
    };
    let reachable = if cols.contains("is_reachable") {
        "CAST(is_reachable AS BOOLEAN)"
    } else {
        "CAST(NULL AS BOOLEAN)"
    };
    let order = if cols.contains("id") {
        "id"
    } else {
        "telegram_id"
    };
    let sql = format!(
        "SELECT CAST(telegram_id AS BIGINT), {}, {}, {}, CAST(balance AS BIGINT), {referrer}, {}, {reachable}, {}
         FROM users ORDER BY {order}",
        text(cols, "username"),
        text(cols, "language"),
        millis(cols, "created_at"),
        millis(cols, "trial_used_at"),
        text(cols, "referral_code"),
    );
    // Streamed: a row is kept only as the fields read from it.
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(source);
    let mut users = Vec::new();
    while let Some(r) = rows
        .try_next()
        .await
        .context("cannot read the earlier bot's users")?
    {
        let user = (|| {
            Ok::<_, sqlx::Error>(OldUser {
                telegram_id: r.try_get(0)?,
                username: r.try_get(1)?,
                language: r.try_get(2)?,
                created_ms: r.try_get(3)?,
                balance: r.try_get(4)?,
                referrer: r.try_get(5)?,
                trial_used_ms: r.try_get(6)?,
                reachable: r.try_get(7)?,
                referral_code: r.try_get(8)?,
            })
        })()
        .context("an earlier bot's user row has an unexpected type")?;
        users.push(user);
    }
    Ok(users)
}

async fn read_subscriptions(
    source: &PgPool,
    cols: &HashSet<String>,
) -> anyhow::Result<Vec<OldSubscription>> {
    let auto_renew = if cols.contains("auto_renew") {
        "CAST(auto_renew AS BOOLEAN)"
    } else {
        "CAST(NULL AS BOOLEAN)"
    };
    let sql = format!(
        "SELECT CAST(telegram_id AS BIGINT), {}, {}, {}, {}, {auto_renew}, {} FROM subscriptions ORDER BY telegram_id",
        millis(cols, "expires_at"),
        text(cols, "uuid"),
        text(cols, "status"),
        text(cols, "source"),
        text(cols, "activation_status"),
    );
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(source);
    let mut subscriptions = Vec::new();
    while let Some(r) = rows
        .try_next()
        .await
        .context("cannot read the earlier bot's subscriptions")?
    {
        let subscription = (|| {
            Ok::<_, sqlx::Error>(OldSubscription {
                telegram_id: r.try_get(0)?,
                expires_ms: r.try_get(1)?,
                uuid: r.try_get(2)?,
                status: r.try_get(3)?,
                source: r.try_get(4)?,
                auto_renew: r.try_get(5)?,
                activation: r.try_get(6)?,
            })
        })()
        .context("an earlier bot's subscription row has an unexpected type")?;
        subscriptions.push(subscription);
    }
    Ok(subscriptions)
}

/// Notes on what the source holds that is not imported as it is: ledgers that disagree with
/// balances.
async fn notes_on_what_stays(
    source: &PgPool,
    old_users: &[OldUser],
    report: &mut Report,
) -> anyhow::Result<()> {
    if columns(source, "balance_transactions")
        .await?
        .contains("amount")
    {
        let sums: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT CAST(user_id AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT)
             FROM balance_transactions GROUP BY user_id",
        )
        .fetch_all(source)
        .await
        .context("cannot read the earlier bot's balance_transactions")?;
        let sums: HashMap<i64, i64> = sums.into_iter().collect();
        let differ: Vec<String> = old_users
            .iter()
            .filter(|u| sums.get(&u.telegram_id).copied().unwrap_or(0) != u.balance)
            .map(|u| {
                format!(
                    "{} (balance {}, transactions {})",
                    u.telegram_id,
                    u.balance,
                    sums.get(&u.telegram_id).copied().unwrap_or(0)
                )
            })
            .collect();
        if !differ.is_empty() {
            let shown: Vec<&str> = differ.iter().take(20).map(String::as_str).collect();
            report.notes.push(format!(
                "{} users' balances differ from the sum of their balance_transactions; users.balance is taken: {}{}",
                differ.len(),
                shown.join(", "),
                if differ.len() > 20 { ", …" } else { "" }
            ));
        }
    }
    Ok(())
}

/// Pending withdrawals (`status = 'pending'`): money the earlier bot debited and still owes.
async fn read_withdrawals(source: &PgPool) -> anyhow::Result<Vec<OldWithdrawal>> {
    let cols = columns(source, "withdrawal_requests").await?;
    if !["telegram_id", "amount", "status"]
        .iter()
        .all(|c| cols.contains(*c))
    {
        return Ok(Vec::new());
    }
    let (id, order) = if cols.contains("id") {
        ("CAST(id AS BIGINT)", "id")
    } else {
        ("CAST(NULL AS BIGINT)", "telegram_id")
    };
    let sql = format!(
        "SELECT {id}, CAST(telegram_id AS BIGINT), CAST(amount AS BIGINT), {}, {}
         FROM withdrawal_requests WHERE status = 'pending' ORDER BY {order}",
        text(&cols, "requisites"),
        millis(&cols, "created_at"),
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(source)
        .await
        .context("cannot read the earlier bot's withdrawal_requests")?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let w = (|| {
            Ok::<_, sqlx::Error>(OldWithdrawal {
                id: r.try_get::<Option<i64>, _>(0)?.unwrap_or(i as i64 + 1),
                telegram_id: r.try_get::<Option<i64>, _>(1)?.unwrap_or(0),
                amount: r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
                requisites: r.try_get(3)?,
                created_ms: r.try_get(4)?,
            })
        })()
        .context("an earlier bot's withdrawal row has an unexpected type")?;
        out.push(w);
    }
    Ok(out)
}

/// Live promo codes: active, not deleted, not expired at `now`.
async fn read_promos(source: &PgPool, now: Timestamp) -> anyhow::Result<Vec<OldPromo>> {
    let cols = columns(source, "promo_codes").await?;
    if !cols.contains("code") || !cols.contains("discount_percent") {
        return Ok(Vec::new());
    }
    let mut live = Vec::new();
    if cols.contains("is_active") {
        live.push("is_active".to_owned());
    }
    if cols.contains("deleted_at") {
        live.push("deleted_at IS NULL".to_owned());
    }
    let expires = millis(&cols, "expires_at");
    live.push(format!("({expires} IS NULL OR {expires} > $1)"));
    let used = if cols.contains("used_count") {
        "CAST(COALESCE(used_count, 0) AS BIGINT)"
    } else {
        "CAST(0 AS BIGINT)"
    };
    let sql = format!(
        "SELECT CAST(code AS TEXT), CAST(discount_percent AS BIGINT), {}, {used}, {expires}
         FROM promo_codes WHERE {} ORDER BY code",
        if cols.contains("max_uses") {
            "CAST(max_uses AS BIGINT)"
        } else {
            "CAST(NULL AS BIGINT)"
        },
        live.join(" AND "),
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now.as_millis())
        .fetch_all(source)
        .await
        .context("cannot read the earlier bot's promo_codes")?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let p = (|| {
            Ok::<_, sqlx::Error>(OldPromo {
                code: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                percent: r.try_get::<Option<i64>, _>(1)?.unwrap_or(0),
                max_uses: r.try_get(2)?,
                used: r.try_get(3)?,
                expires_ms: r.try_get(4)?,
            })
        })()
        .context("an earlier bot's promo code row has an unexpected type")?;
        out.push(p);
    }
    Ok(out)
}

/// Personal discounts: `user_discounts` rows still running at `now`, and VIPs (`vip_users`,
/// 30 % with no end) where the user has no `user_discounts` row. Both tables are optional.
async fn read_discounts(source: &PgPool, now: Timestamp) -> anyhow::Result<Vec<OldDiscount>> {
    let mut out: Vec<OldDiscount> = Vec::new();
    let cols = columns(source, "user_discounts").await?;
    if cols.contains("telegram_id") && cols.contains("discount_percent") {
        let expires = millis(&cols, "expires_at");
        let sql = format!(
            "SELECT CAST(telegram_id AS BIGINT), CAST(discount_percent AS BIGINT), {expires}
             FROM user_discounts WHERE {expires} IS NULL OR {expires} > $1 ORDER BY telegram_id"
        );
        let rows: Vec<(Option<i64>, Option<i64>, Option<i64>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now.as_millis())
                .fetch_all(source)
                .await
                .context("cannot read the earlier bot's user_discounts")?;
        out.extend(
            rows.into_iter()
                .map(|(id, percent, expires_ms)| OldDiscount {
                    telegram_id: id.unwrap_or(0),
                    percent: percent.unwrap_or(0),
                    expires_ms,
                }),
        );
    }
    if columns(source, "vip_users").await?.contains("telegram_id") {
        let vips: Vec<(Option<i64>,)> = sqlx::query_as(
            "SELECT CAST(telegram_id AS BIGINT) FROM vip_users ORDER BY telegram_id",
        )
        .fetch_all(source)
        .await
        .context("cannot read the earlier bot's vip_users")?;
        let personal: HashSet<i64> = out.iter().map(|d| d.telegram_id).collect();
        out.extend(
            vips.into_iter()
                .filter_map(|(id,)| id)
                .filter(|id| !personal.contains(id))
                .map(|telegram_id| OldDiscount {
                    telegram_id,
                    percent: VIP_PERCENT,
                    expires_ms: None,
                }),
        );
    }
    Ok(out)
}
