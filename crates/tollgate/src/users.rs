//! Users: people who started the bot, keyed by their Telegram id.
//!
//! This module owns the `users` table. A user is registered on first contact, in the
//! transaction of the update that brought them, with the language Telegram reports and —
//! on that first start only — the referrer of a `ref_<code>` deep link. Because the referrer
//! must already exist when the referee is created, a referral cycle cannot form, and a
//! user cannot refer themselves.
//!
//! Reachability: a 403 from Telegram marks the user as having blocked the bot, and any
//! update from the user clears it. Reachability only affects delivery; it never gates money
//! or access (docs/reliability.md D6).

use std::sync::LazyLock;

use rand::Rng;

use crate::access::{self, AccessError, Subscription};
use crate::admin::prompts::{self, Pending};
pub use crate::audience::Audience;
use crate::config::Language;
use crate::domain::receipt_contact::ReceiptContact;
use crate::flags::{self, Snapshot};
use crate::store::{Db, DeferredWrite, Failure, Tx, classify};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// SQL fragments of the `users` table that other owners' queries embed, so that every text
/// naming this table lives in this module. Each argument is SQL text (a column such as
/// `"s.user_id"` or a placeholder such as `"$1"`).
///
/// The language of user `$id` (a scalar subquery).
macro_rules! user_language_sql {
    ($id:literal) => {
        concat!("(SELECT language FROM users WHERE id = ", $id, ")")
    };
}
/// Whether user `$id` has auto-renewal set to `$on`.
macro_rules! user_auto_renew_sql {
    ($id:literal, $on:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM users WHERE id = ",
            $id,
            " AND auto_renew = ",
            $on,
            ")"
        )
    };
}
/// Whether user `$id` is marked as having blocked the bot.
macro_rules! user_blocked_sql {
    ($id:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM users WHERE id = ",
            $id,
            " AND bot_blocked_at IS NOT NULL)"
        )
    };
}
/// The ids of the users who took their trial at or after `$since`.
macro_rules! trial_started_since_sql {
    ($since:literal) => {
        concat!("SELECT id FROM users WHERE trial_used_at >= ", $since)
    };
}
pub(crate) use {
    trial_started_since_sql, user_auto_renew_sql, user_blocked_sql, user_language_sql,
};

/// The sender of an update, as Telegram describes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TelegramUser {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
    pub language: String,
    pub referral_code: String,
    pub referrer_id: Option<i64>,
    pub balance: i64,
    pub auto_renew: bool,
    pub trial_used_at: Option<Timestamp>,
    pub bot_blocked_at: Option<Timestamp>,
    pub banned_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl User {
    /// The user's language, or `fallback` if the stored one is no longer shipped.
    pub fn language_or(&self, fallback: Language) -> Language {
        Language::parse(&self.language).unwrap_or(fallback)
    }
}

const USER_COLUMNS: &str = "id, first_name, username, language, referral_code, referrer_id, balance, auto_renew, trial_used_at, bot_blocked_at, banned_at, created_at";

/// The language a new user starts with: Telegram's `language_code` when we ship it,
/// otherwise the operator's first language.
pub fn initial_language(language_code: Option<&str>, languages: &[Language]) -> Language {
    let fallback = languages.first().copied().unwrap_or(Language::En);
    let Some(code) = language_code else {
        return fallback;
    };
    let primary = code
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Language::parse(&primary)
        .filter(|l| languages.contains(l))
        .unwrap_or(fallback)
}

/// A fresh referral code: 8 characters of `a-z0-9` (36⁸ ≈ 2.8·10¹² codes).
fn new_referral_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A user seen in this update: registered now (`created`) or known before.
#[derive(Debug, Clone)]
pub struct Touched {
    pub user: User,
    pub created: bool,
}

/// Registers the sender on first contact, otherwise refreshes their names and last-seen
/// time, in the caller's transaction. A user who writes is reachable again.
pub async fn touch(
    tx: &mut Tx,
    from: &TelegramUser,
    languages: &[Language],
    now: Timestamp,
) -> Result<Touched, sqlx::Error> {
    let select = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let existing: Option<User> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
        .bind(from.id).fetch_optional(c).await)?;
    if existing.is_some() {
        refresh(tx, from, now).await?;
        let user: User = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
            .bind(from.id).fetch_one(c).await)?;
        return Ok(Touched {
            user,
            created: false,
        });
    }
    let language = initial_language(from.language_code.as_deref(), languages);
    // A code collision (rare) is retried with a new code; anything else is an error.
    for _ in 0..5 {
        let code = new_referral_code();
        let inserted = on_tx!(tx, c => sqlx::query(
            "INSERT INTO users (id, first_name, last_name, username, language_code, language, referral_code,
                 created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (id) DO NOTHING"
        ).bind(from.id).bind(&from.first_name).bind(&from.last_name).bind(&from.username)
            .bind(&from.language_code).bind(language.code()).bind(&code).bind(now)
            .execute(c).await.map(|r| r.rows_affected()));
        match inserted {
            Ok(_) => break,
            Err(e) if classify(&e) == Failure::UniqueViolation => continue,
            Err(e) => return Err(e),
        }
    }
    let user: User = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(from.id).fetch_one(c).await)?;
    Ok(Touched {
        user,
        created: true,
    })
}

/// The outcome of [`register`].
#[derive(Debug, Clone)]
pub enum Registered {
    /// Created by this call.
    New(User),
    /// Someone registered them a moment earlier (a race): the caller treats them as known.
    Known(User),
}

/// Registers a user on first contact in one statement, in the caller's transaction: the
/// row, the language Telegram reports, a fresh referral code, and the referrer whose code is
/// `referral_code` (a `ref_<code>` start payload; unknown codes set none). A user cannot
/// refer themselves (their row does not exist when the code is looked up), and a referrer
/// is only ever set here, on creation.
pub async fn register(
    tx: &mut Tx,
    from: &TelegramUser,
    languages: &[Language],
    referral_code: Option<&str>,
    now: Timestamp,
) -> Result<Registered, sqlx::Error> {
    let language = initial_language(from.language_code.as_deref(), languages);
    let insert = format!(
        "INSERT INTO users (id, first_name, last_name, username, language_code, language, referral_code,
             referrer_id, created_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7,
             (SELECT r.id FROM users r WHERE r.referral_code = $8), $9, $9)
         ON CONFLICT DO NOTHING
         RETURNING {USER_COLUMNS}"
    );
    // Any conflict inserts nothing (no error, so a PostgreSQL transaction stays usable): the
    // user exists already, or — rarely — the new referral code is taken and another is drawn.
    for _ in 0..5 {
        let code = new_referral_code();
        let created: Option<User> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(insert.clone()))
            .bind(from.id).bind(&from.first_name).bind(&from.last_name).bind(&from.username)
            .bind(&from.language_code).bind(language.code()).bind(&code).bind(referral_code)
            .bind(now).fetch_optional(c).await)?;
        if let Some(user) = created {
            return Ok(Registered::New(user));
        }
        if let Some(user) = get_in(tx, from.id).await? {
            return Ok(Registered::Known(user));
        }
    }
    Err(sqlx::Error::Protocol(
        "could not draw an unused referral code in 5 tries".into(),
    ))
}

/// A user brought over from an earlier bot by `tollgate import`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedUser {
    pub id: i64,
    pub username: Option<String>,
    pub language: Language,
    pub auto_renew: bool,
    pub trial_used_at: Option<Timestamp>,
    /// When the earlier bot found the user unreachable (blocked the bot).
    pub bot_blocked_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// The code of the user's `ref_<code>` links in the earlier bot, kept so that links
    /// already shared go on crediting them (see [`is_referral_code`]).
    pub referral_code: Option<String>,
}

/// Whether `code` can be a referral code: `ref_<code>` must be a valid `/start` payload
/// (at most 64 characters of `A-Z a-z 0-9 _ -`).
pub fn is_referral_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 60
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Registers an imported user in the caller's transaction, with their earlier referral code
/// when it is valid and free here (else a fresh one) and no referrer yet
/// ([`set_imported_referrer`] follows once every user is in). Returns the code given, or
/// `None`, changing nothing, when the user exists already (a second run, or someone who
/// started this bot before the import).
pub async fn import(
    tx: &mut Tx,
    user: &ImportedUser,
    now: Timestamp,
) -> Result<Option<String>, sqlx::Error> {
    // Their name is not in the earlier bot's database: the username (or the id) stands in
    // until their first update here refreshes it.
    let first_name = user
        .username
        .clone()
        .unwrap_or_else(|| format!("user {}", user.id));
    let kept = user.referral_code.clone().filter(|c| is_referral_code(c));
    for attempt in 0..6 {
        let code = match (attempt, &kept) {
            (0, Some(code)) => code.clone(),
            (0, None) => continue,
            _ => new_referral_code(),
        };
        let created: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
            "INSERT INTO users (id, first_name, username, language, referral_code, auto_renew,
                 trial_used_at, bot_blocked_at, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT DO NOTHING
             RETURNING id"
        ).bind(user.id).bind(&first_name).bind(&user.username).bind(user.language.code())
            .bind(&code).bind(user.auto_renew).bind(user.trial_used_at).bind(user.bot_blocked_at)
            .bind(user.created_at.min(now)).bind(now).fetch_optional(c).await)?;
        if created.is_some() {
            return Ok(Some(code));
        }
        if get_in(tx, user.id).await?.is_some() {
            return Ok(None);
        }
    }
    Err(sqlx::Error::Protocol(
        "could not draw an unused referral code in 5 tries".into(),
    ))
}

/// Sets an imported user's referrer, when the user has none and the referrer is registered.
/// The importer orders users so that a referrer always came first, which keeps referrals
/// acyclic as registration does. Returns whether it was set.
pub async fn set_imported_referrer(
    tx: &mut Tx,
    user_id: i64,
    referrer_id: i64,
) -> Result<bool, sqlx::Error> {
    if user_id == referrer_id {
        return Ok(false);
    }
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE users SET referrer_id = $2
         WHERE id = $1 AND referrer_id IS NULL AND EXISTS (SELECT 1 FROM users r WHERE r.id = $2)"
    ).bind(user_id).bind(referrer_id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Every registered user's id (for the importer's check that the database holds nobody else).
pub async fn ids(db: &Db) -> Result<Vec<i64>, sqlx::Error> {
    on_db!(db, p => sqlx::query_scalar("SELECT id FROM users ORDER BY id").fetch_all(p).await)
}

/// `user` as [`refresh`] leaves them: the bot reads a known sender without a write and runs
/// [`refresh`] in the transaction that handles the update.
pub fn refreshed(mut user: User, from: &TelegramUser) -> User {
    user.first_name.clone_from(&from.first_name);
    user.username.clone_from(&from.username);
    user.bot_blocked_at = None;
    user
}

/// The write half of [`touch`] for a known user: names, last-seen time, reachable again.
/// Nothing is read back, so on SQLite it travels with the transaction's next statement.
pub async fn refresh(tx: &mut Tx, from: &TelegramUser, now: Timestamp) -> Result<(), sqlx::Error> {
    tx.defer(
        DeferredWrite::new(
            "UPDATE users SET first_name = $2, last_name = $3, username = $4, language_code = $5,
                 last_seen_at = $6, bot_blocked_at = NULL
             WHERE id = $1",
        )
        .bind(from.id)
        .bind(from.first_name.clone())
        .bind(from.last_name.clone())
        .bind(from.username.clone())
        .bind(from.language_code.clone())
        .bind(now),
    )
    .await
}

/// Records the referrer of a user created in this transaction, from a `ref_<code>` start
/// payload. Returns the referrer's id when one was set. Unknown codes and self-referral are
/// ignored; a user's referrer is never changed later.
pub async fn set_referrer(
    tx: &mut Tx,
    user_id: i64,
    code: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let referrer: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT id FROM users WHERE referral_code = $1"
    ).bind(code).fetch_optional(c).await)?;
    let Some(referrer) = referrer.filter(|r| *r != user_id) else {
        return Ok(None);
    };
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE users SET referrer_id = $2 WHERE id = $1 AND referrer_id IS NULL"
    ).bind(user_id).bind(referrer).execute(c).await.map(|r| r.rows_affected()))?;
    Ok((n == 1).then_some(referrer))
}

pub async fn get(db: &Db, user_id: i64) -> Result<Option<User>, sqlx::Error> {
    let select = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(user_id).fetch_optional(p).await)
}

pub async fn get_in(tx: &mut Tx, user_id: i64) -> Result<Option<User>, sqlx::Error> {
    let select = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(user_id).fetch_optional(c).await)
}

/// A user's row, every flag, their subscription and their pending question, read together.
#[derive(sqlx::FromRow)]
struct SenderRow {
    #[sqlx(flatten)]
    user: User,
    flag_0: Option<String>,
    flag_1: Option<String>,
    flag_2: Option<String>,
    flag_3: Option<String>,
    flag_4: Option<String>,
    #[sqlx(flatten)]
    subscription: access::Joined,
    #[sqlx(flatten)]
    question: prompts::Joined,
}

/// The sender of an update as the bot first reads them ([`sender`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Sender {
    pub user: User,
    /// Every runtime flag at that moment.
    pub flags: Snapshot,
    pub subscription: Option<Subscription>,
    /// The question their next text answers, if one is stored (`admin::prompts`).
    pub question: Option<Pending>,
}

/// The user with the flags of that moment, their subscription and their pending question, in
/// one statement through the pool (on SQLite, a reader next to the writer): the screens an
/// update shows need the first three, the pre-checkout gate checks the user and the flags, and
/// an update that leaves a question forgets it (bot::receipt). `None` when the user is not
/// registered.
pub async fn sender(db: &Db, user_id: i64) -> Result<Option<Sender>, AccessError> {
    let [k0, k1, k2, k3, k4] = flags::keys();
    let row: Option<SenderRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sender_select()))
        .bind(user_id).bind(&k0).bind(&k1).bind(&k2).bind(&k3).bind(&k4)
        .fetch_optional(p).await)?;
    row.map(SenderRow::into_sender).transpose()
}

/// The one `SELECT` of [`sender`].
fn sender_select() -> &'static str {
    static SELECT: LazyLock<String> = LazyLock::new(|| {
        let user = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {user}, {}, {}, {} FROM users u {} {} WHERE u.id = $1",
            flags::columns_sql(2),
            access::JOINED_COLUMNS,
            prompts::JOINED_COLUMNS,
            access::JOIN_SUBSCRIPTION_OF_USER,
            prompts::JOIN_QUESTION_OF_USER
        )
    });
    SELECT.as_str()
}

impl SenderRow {
    fn into_sender(self) -> Result<Sender, AccessError> {
        Ok(Sender {
            flags: flags::snapshot_from([
                self.flag_0,
                self.flag_1,
                self.flag_2,
                self.flag_3,
                self.flag_4,
            ]),
            subscription: self.subscription.subscription()?,
            question: self.question.pending(),
            user: self.user,
        })
    }
}

pub async fn set_language(
    tx: &mut Tx,
    user_id: i64,
    language: Language,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query("UPDATE users SET language = $2 WHERE id = $1")
        .bind(user_id).bind(language.code()).execute(c).await.map(|_| ()))
}

/// The email or phone (digits) the user's 54-FZ receipts go to, if they gave one.
pub async fn receipt_contact(db: &Db, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(Option<String>,)> = on_db!(db, p => sqlx::query_as(
        "SELECT receipt_contact FROM users WHERE id = $1")
        .bind(user_id).fetch_optional(p).await)?;
    Ok(row.and_then(|(c,)| c))
}

/// Keeps the contact the user's receipts go to (parsed at the edge).
pub async fn set_receipt_contact(
    tx: &mut Tx,
    user_id: i64,
    contact: &ReceiptContact,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query("UPDATE users SET receipt_contact = $2 WHERE id = $1")
        .bind(user_id).bind(contact.as_str()).execute(c).await.map(|_| ()))
}

/// Forgets the user's receipt contact: their next YooKassa payment asks for one again.
pub async fn remove_receipt_contact(tx: &mut Tx, user_id: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query("UPDATE users SET receipt_contact = NULL WHERE id = $1")
        .bind(user_id).execute(c).await.map(|_| ()))
}

pub async fn set_auto_renew(tx: &mut Tx, user_id: i64, on: bool) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query("UPDATE users SET auto_renew = $2 WHERE id = $1")
        .bind(user_id).bind(on).execute(c).await.map(|_| ()))
}

/// Takes the user's one trial. False when it was taken before (a conditional update, so two
/// racing attempts cannot both succeed).
pub async fn take_trial(tx: &mut Tx, user_id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE users SET trial_used_at = $2 WHERE id = $1 AND trial_used_at IS NULL"
    ).bind(user_id).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Adds `delta` to the user's balance unless that would make it negative (the column's
/// `CHECK` refuses it under any race as well): the new balance, or `None` when nothing changed.
/// Only `billing::ledger` calls it, together with the ledger row that says why.
pub async fn add_to_balance(
    tx: &mut Tx,
    user_id: i64,
    delta: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let after: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "UPDATE users SET balance = balance + $2 WHERE id = $1 AND balance + $2 >= 0 RETURNING balance"
    ).bind(user_id).bind(delta).fetch_optional(c).await)?;
    Ok(after.map(|(b,)| b))
}

/// The user's balance, inside a transaction (`None` for an unknown user).
pub async fn balance_in(tx: &mut Tx, user_id: i64) -> Result<Option<i64>, sqlx::Error> {
    on_tx!(tx, c => sqlx::query_scalar("SELECT balance FROM users WHERE id = $1").bind(user_id).fetch_optional(c).await)
}

/// Records that sends to this user fail with 403 (blocked, deactivated).
pub async fn mark_bot_blocked(db: &Db, user_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    on_db!(db, p => sqlx::query(
        "UPDATE users SET bot_blocked_at = $2 WHERE id = $1 AND bot_blocked_at IS NULL"
    ).bind(user_id).bind(now).execute(p).await.map(|_| ()))
}

/// The user wrote again (or unblocked the bot): deliver to them again.
///
/// Called for every update, so it reads first and writes only for a blocked user (a write
/// statement takes SQLite's write lock even when it matches nothing).
pub async fn clear_bot_blocked(db: &Db, user_id: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    if bot_blocked_at(db, user_id).await?.is_none() {
        return Ok(());
    }
    on_db!(db, p => sqlx::query(
        "UPDATE users SET bot_blocked_at = NULL, last_seen_at = $2 WHERE id = $1 AND bot_blocked_at IS NOT NULL"
    ).bind(user_id).bind(now).execute(p).await.map(|_| ()))
}

/// When the user was last found to have blocked the bot, if they have.
pub async fn bot_blocked_at(db: &Db, user_id: i64) -> Result<Option<Timestamp>, sqlx::Error> {
    let v: Option<Option<Timestamp>> = on_db!(db, p => sqlx::query_scalar(
        "SELECT bot_blocked_at FROM users WHERE id = $1"
    ).bind(user_id).fetch_optional(p).await)?;
    Ok(v.flatten())
}

/// Users whose @username is `name` (without the `@`, any case), newest first: usernames move
/// between accounts, so one name may match several rows (at most `limit`).
pub async fn by_username(db: &Db, name: &str, limit: i64) -> Result<Vec<User>, sqlx::Error> {
    // The matches first (an index lookup), then their order: ordered in one statement,
    // PostgreSQL may walk every user by creation date looking for the name.
    let select = format!(
        "WITH named AS MATERIALIZED (
             SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1) AND username IS NOT NULL)
         SELECT {USER_COLUMNS} FROM named ORDER BY created_at DESC LIMIT $2"
    );
    on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(name).bind(limit).fetch_all(p).await)
}

/// Bans (`on`) or unbans the user in the caller's transaction. Returns the user's previous
/// `banned_at` (`None` inside when they were not banned), or `None` for an unknown user.
pub async fn set_banned(
    tx: &mut Tx,
    user_id: i64,
    on: bool,
    now: Timestamp,
) -> Result<Option<Option<Timestamp>>, sqlx::Error> {
    let before: Option<Option<Timestamp>> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT banned_at FROM users WHERE id = $1").bind(user_id).fetch_optional(c).await)?;
    if before.is_some() {
        let at = on.then_some(now);
        on_tx!(tx, c => sqlx::query("UPDATE users SET banned_at = $2 WHERE id = $1")
            .bind(user_id).bind(at).execute(c).await.map(|_| ()))?;
    }
    Ok(before)
}

/// How many users `referrer` referred who pay (`paying_since` set: billing decides when).
pub async fn paying_referral_count(db: &Db, referrer: i64) -> Result<i64, sqlx::Error> {
    on_db!(db, p => sqlx::query_scalar(PAYING_REFERRALS).bind(referrer).fetch_one(p).await)
}

/// [`paying_referral_count`] in the caller's transaction.
pub async fn paying_referral_count_in(tx: &mut Tx, referrer: i64) -> Result<i64, sqlx::Error> {
    on_tx!(tx, c => sqlx::query_scalar(PAYING_REFERRALS).bind(referrer).fetch_one(c).await)
}

const PAYING_REFERRALS: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE referrer_id = $1 AND paying_since IS NOT NULL";

/// Marks the user paying from `now`; true when they were not before (their first payment).
pub async fn mark_paying(tx: &mut Tx, user_id: i64, now: Timestamp) -> Result<bool, sqlx::Error> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE users SET paying_since = $2 WHERE id = $1 AND paying_since IS NULL")
        .bind(user_id).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Marks the user not paying (a refund left them no payment).
pub async fn clear_paying(tx: &mut Tx, user_id: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE users SET paying_since = NULL WHERE id = $1 AND paying_since IS NOT NULL")
        .bind(user_id).execute(c).await.map(|_| ()))
}

/// How many users this user referred.
pub async fn referral_count(db: &Db, user_id: i64) -> Result<i64, sqlx::Error> {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE referrer_id = $1").bind(user_id).fetch_one(p).await)
}

/// The console's user counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserStats {
    pub total: i64,
    pub new_today: i64,
    pub new_7d: i64,
    pub new_30d: i64,
    /// Marked as having blocked the bot.
    pub unreachable: i64,
    /// Took their trial in the last 30 days.
    pub trials_30d: i64,
}

/// [`UserStats`] as of `now`, "today" starting at `day_start`; index ranges each
/// (`users_created`, `users_unreachable`, `users_trial`) except the total.
pub async fn stats(
    db: &Db,
    now: Timestamp,
    day_start: Timestamp,
) -> Result<UserStats, sqlx::Error> {
    const DAY: i64 = 86_400_000;
    let at = |days: i64| Timestamp::from_millis(now.as_millis() - days * DAY);
    let (total, new_today, new_7d, new_30d, unreachable, trials_30d): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = on_db!(db, p => sqlx::query_as(
        "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM users),
                (SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE created_at >= $1),
                (SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE created_at >= $2),
                (SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE created_at >= $3),
                (SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE bot_blocked_at IS NOT NULL),
                (SELECT CAST(COUNT(*) AS BIGINT) FROM users WHERE trial_used_at >= $3)")
        .bind(day_start).bind(at(7)).bind(at(30)).fetch_one(p).await)?;
    Ok(UserStats {
        total,
        new_today,
        new_7d,
        new_30d,
        unreachable,
        trials_30d,
    })
}

/// The statements of an audience: its users after `$1` in id order, at most `$2` (`page`), or
/// how many there are after `$1` (`count`); `$3` now, `$4` a language. Every statement names
/// every parameter (PostgreSQL must know each one's type). `[$cond]`: the audience's condition
/// on the user row `u` (SQL text, possibly another owner's fragment).
macro_rules! audience_sql {
    (page, [$($cond:tt)+]) => {
        concat!(
            "SELECT u.id FROM users u WHERE u.id > $1 AND u.bot_blocked_at IS NULL AND u.banned_at IS NULL
               AND CAST($3 AS BIGINT) IS NOT NULL AND CAST($4 AS TEXT) IS NOT NULL AND (",
            $($cond)+,
            ") ORDER BY u.id LIMIT $2"
        )
    };
    (count, [$($cond:tt)+]) => {
        concat!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM users u WHERE u.id > $1 AND u.bot_blocked_at IS NULL
               AND u.banned_at IS NULL AND CAST($2 AS BIGINT) IS NOT NULL
               AND CAST($3 AS BIGINT) IS NOT NULL AND CAST($4 AS TEXT) IS NOT NULL AND (",
            $($cond)+,
            ")"
        )
    };
}

/// Both statements of an audience whose condition is `[$cond]`.
macro_rules! audience_statements {
    ([$($cond:tt)+]) => {
        (audience_sql!(page, [$($cond)+]), audience_sql!(count, [$($cond)+]))
    };
}

/// The page and count statements of an audience.
fn audience_statements_of(audience: Audience) -> (&'static str, &'static str) {
    use crate::access::user_subscription_sql as sub;
    match audience {
        Audience::All => audience_statements!(["true"]),
        Audience::Active => {
            audience_statements!([sub!("s.revoked_at IS NULL AND s.expires_at > $3")])
        }
        Audience::Expired => audience_statements!([
            sub!("true"),
            " AND NOT ",
            sub!("s.revoked_at IS NULL AND s.expires_at > $3")
        ]),
        Audience::TrialUnpaid => audience_statements!([
            "u.trial_used_at IS NOT NULL AND NOT ",
            sub!("s.kind = 'paid'")
        ]),
        Audience::NoTrial => audience_statements!(["u.trial_used_at IS NULL"]),
        Audience::Language(_) => audience_statements!(["u.language = $4"]),
    }
}

/// The next `limit` users of `audience` after user id `after`, in id order (a broadcast's
/// recipients, read a page at a time from where it stopped).
pub async fn audience_page(
    db: &Db,
    audience: Audience,
    after: i64,
    limit: i64,
    now: Timestamp,
) -> Result<Vec<i64>, sqlx::Error> {
    let (page, _) = audience_statements_of(audience);
    on_db!(db, p => sqlx::query_scalar(page)
        .bind(after).bind(limit).bind(now.as_millis()).bind(audience.language_code())
        .fetch_all(p).await)
}

/// How many users `audience` holds now.
pub async fn audience_count(
    db: &Db,
    audience: Audience,
    now: Timestamp,
) -> Result<i64, sqlx::Error> {
    let (_, count) = audience_statements_of(audience);
    on_db!(db, p => sqlx::query_scalar(count)
        .bind(0_i64).bind(0_i64).bind(now.as_millis()).bind(audience.language_code())
        .fetch_one(p).await)
}
