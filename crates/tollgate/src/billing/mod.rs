//! Money: purchase → payment → effect, exactly once (docs/design.md §3.3, docs/reliability.md F).
//!
//! - A [`Purchase`] row (what, price snapshot, provider, TTL) is written before any invoice
//!   exists; its id is the invoice payload (F7).
//! - The gate is at invoice and pre-checkout time ([`check_pre_checkout`]): flags, price,
//!   ownership, bans. After the provider captured money nothing gates it any more (F1, F4).
//! - [`finalize`] is the one function every path calls (the `successful_payment` handler,
//!   the Stars reconciler): in the caller's transaction it inserts the payment (unique per
//!   provider charge id, so a redelivery finds it and does nothing), applies the effect,
//!   credits the referrer, and queues exactly one confirmation (F8).
//! - Balance changes go through [`ledger`] with a unique reference per cause; the
//!   `balance >= 0` constraint makes overdrafts impossible even under races.

pub mod cursors;
pub mod ledger;
pub mod promo;
pub mod providers;
pub mod referrals;
pub mod refund;
pub mod review;
pub mod stats;
pub mod unmatched;
pub mod withdrawals;

use std::time::Duration;

use crate::access::{self, Grant, Kind, Subscription};
use crate::config::Language;
use crate::config::catalog::{Catalog, Plan};
use crate::domain::money::{Currency, Money};
use crate::i18n::{Arg, Texts, format};
use crate::nodes::EnabledNodes;
use crate::store::{Db, DeferredWrite, Failure, Tx, classify};
use crate::telegram::outbox::{self, OutboxMessage, Priority};
use crate::time::Timestamp;
use crate::users::User;
use crate::{on_db, on_tx};

pub use ledger::Reason;

/// How long an invoice stays payable. A payment that arrives later is still honoured (F1);
/// only new pre-checkouts are refused, and housekeeping marks the row expired.
pub const PURCHASE_TTL: Duration = Duration::from_secs(3600);

/// Who takes the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Stars,
    Card,
    Balance,
    /// Crypto Pay (@CryptoBot), outside Telegram's payments ([`providers::cryptopay`]).
    Crypto,
    /// YooKassa (cards, SBP), outside Telegram's payments ([`providers::yookassa`]).
    YooKassa,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stars => "stars",
            Provider::Card => "card",
            Provider::Balance => "balance",
            Provider::Crypto => "crypto",
            Provider::YooKassa => "yookassa",
        }
    }

    fn parse(s: &str) -> Option<Provider> {
        [
            Provider::Stars,
            Provider::Card,
            Provider::Balance,
            Provider::Crypto,
            Provider::YooKassa,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// What a purchase buys (docs/reliability.md F9: a closed set, mirrored by the table's CHECK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Days of access on a plan.
    Plan { plan_id: String, days: u32 },
    /// Money on the balance, in the base currency.
    TopUp { credit: Money },
}

/// Where a purchase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Paid,
    Expired,
    Cancelled,
    Refunded,
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "paid" => Status::Paid,
            "expired" => Status::Expired,
            "cancelled" => Status::Cancelled,
            "refunded" => Status::Refunded,
            _ => return None,
        })
    }
}

/// An intent to pay, stored before any invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub id: i64,
    pub user_id: i64,
    pub item: Item,
    /// The price snapshot, in the currency the provider charges.
    pub price: Money,
    pub provider: Provider,
    pub status: Status,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub paid_at: Option<Timestamp>,
    /// The catalog's price when the purchase was sold at a discount ([`promo::quote`]).
    pub list_price: Option<Money>,
    /// The promo code whose use the purchase holds.
    pub promo_code: Option<String>,
}

/// Failures of the money paths.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Access(#[from] access::AccessError),
    /// A concurrent transaction did the same thing first; retrying finds its result.
    #[error("a concurrent change won the race; retry")]
    Raced,
    /// Stored data that our own code could not have written.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl BillingError {
    fn from_db(e: sqlx::Error) -> BillingError {
        match classify(&e) {
            Failure::UniqueViolation => BillingError::Raced,
            _ => BillingError::Database(e),
        }
    }
}

#[derive(sqlx::FromRow)]
struct PurchaseRow {
    id: i64,
    user_id: i64,
    kind: String,
    plan_id: Option<String>,
    days: Option<i64>,
    amount: i64,
    currency: String,
    credit_amount: Option<i64>,
    provider: String,
    status: String,
    created_at: Timestamp,
    expires_at: Timestamp,
    paid_at: Option<Timestamp>,
    list_amount: Option<i64>,
    promo_code: Option<String>,
}

/// The columns of [`PurchaseRow`], as a literal for `concat!` (queries stay static strings).
macro_rules! purchase_columns {
    () => {
        "id, user_id, kind, plan_id, CAST(days AS BIGINT) AS days, amount, currency, credit_amount, provider, status, created_at, expires_at, paid_at, list_amount, promo_code"
    };
}

impl PurchaseRow {
    fn into_purchase(self, base: Currency) -> Result<Purchase, BillingError> {
        let corrupt = |what: &str| BillingError::Corrupt(format!("purchase {}: {what}", self.id));
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|_| corrupt("unknown currency"))?;
        Ok(Purchase {
            id: self.id,
            user_id: self.user_id,
            item: item_of(
                self.id,
                &self.kind,
                self.plan_id,
                self.days,
                self.credit_amount,
                base,
            )?,
            price: Money::new(self.amount, currency),
            provider: Provider::parse(&self.provider).ok_or_else(|| corrupt("provider"))?,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            paid_at: self.paid_at,
            list_price: self.list_amount.map(|m| Money::new(m, currency)),
            promo_code: self.promo_code,
        })
    }
}

/// What purchase `id` sells, from its `kind` and the columns that go with it.
fn item_of(
    id: i64,
    kind: &str,
    plan_id: Option<String>,
    days: Option<i64>,
    credit_amount: Option<i64>,
    base: Currency,
) -> Result<Item, BillingError> {
    let corrupt = |what: &str| BillingError::Corrupt(format!("purchase {id}: {what}"));
    match (kind, plan_id, days, credit_amount) {
        ("plan", Some(plan_id), Some(days), None) => Ok(Item::Plan {
            plan_id,
            days: u32::try_from(days).map_err(|_| corrupt("days"))?,
        }),
        ("topup", None, None, Some(credit)) => Ok(Item::TopUp {
            credit: Money::new(credit, base),
        }),
        _ => Err(corrupt("kind and columns disagree")),
    }
}

/// A payment as its insert returns it: its id and the purchase it matched, with what that
/// purchase sells (read in the same statement: a purchase's item never changes).
#[derive(sqlx::FromRow)]
struct InsertedPayment {
    id: i64,
    purchase_id: Option<i64>,
    kind: Option<String>,
    plan_id: Option<String>,
    days: Option<i64>,
    credit_amount: Option<i64>,
    promo_code: Option<String>,
    amount: Option<i64>,
    list_amount: Option<i64>,
}

/// Stores a pending purchase; its id goes into the invoice payload.
pub async fn create_purchase(
    tx: &mut Tx,
    user_id: i64,
    item: &Item,
    price: Money,
    provider: Provider,
    now: Timestamp,
) -> Result<Purchase, BillingError> {
    insert_purchase(tx, user_id, item, price, None, provider, "pending", now).await
}

/// Stores a pending purchase of a plan at the price `quote` gives (the one price computation,
/// [`promo::quote`]): a code's use is taken first and then held by the purchase. `Ok(Err(_))`
/// when the quote's code cannot be used any more: it is forgotten and nothing is stored; the
/// caller shows why and the prices without it.
pub async fn create_plan_purchase(
    tx: &mut Tx,
    user_id: i64,
    item: &Item,
    quote: &promo::Quote,
    provider: Provider,
    now: Timestamp,
) -> Result<Result<Purchase, promo::Refusal>, BillingError> {
    if let Some(chosen) = &quote.promo
        && !promo::take(tx, chosen, now).await?
    {
        let why = promo::why_not(tx, chosen, now).await?;
        promo::forget(tx, user_id, chosen.code_id).await?;
        return Ok(Err(why));
    }
    let discount = (quote.discounted() || quote.promo.is_some()).then_some(Discount {
        list: quote.list,
        promo_code: quote.promo.as_ref().map(|c| c.code.clone()),
    });
    let purchase = insert_purchase(
        tx,
        user_id,
        item,
        quote.price,
        discount.as_ref(),
        provider,
        "pending",
        now,
    )
    .await?;
    if let Some(chosen) = &quote.promo {
        promo::hold(tx, user_id, chosen.code_id, purchase.id, now).await?;
    }
    Ok(Ok(purchase))
}

/// What a purchase sold at a discount keeps of it.
struct Discount {
    list: Money,
    promo_code: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn insert_purchase(
    tx: &mut Tx,
    user_id: i64,
    item: &Item,
    price: Money,
    discount: Option<&Discount>,
    provider: Provider,
    status: &str,
    now: Timestamp,
) -> Result<Purchase, BillingError> {
    let (kind, plan_id, days, credit, base) = match item {
        Item::Plan { plan_id, days } => (
            "plan",
            Some(plan_id.clone()),
            Some(i64::from(*days)),
            None,
            price.currency,
        ),
        Item::TopUp { credit } => ("topup", None, None, Some(credit.minor), credit.currency),
    };
    let paid_at = (status == "paid").then_some(now);
    const SQL: &str = concat!(
        "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, credit_amount, provider, status, created_at, expires_at, paid_at, list_amount, promo_code)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ",
        purchase_columns!()
    );
    let row: PurchaseRow = on_tx!(tx, c => sqlx::query_as(SQL)
        .bind(user_id).bind(kind).bind(plan_id).bind(days).bind(price.minor)
        .bind(price.currency.code()).bind(credit).bind(provider.as_str()).bind(status)
        .bind(now).bind(now.plus(PURCHASE_TTL)).bind(paid_at)
        .bind(discount.map(|d| d.list.minor)).bind(discount.and_then(|d| d.promo_code.clone()))
        .fetch_one(c).await)?;
    row.into_purchase(base)
}

const SELECT_PURCHASE: &str = concat!(
    "SELECT ",
    purchase_columns!(),
    " FROM purchases WHERE id = $1"
);

/// A purchase by id.
pub async fn purchase(db: &Db, base: Currency, id: i64) -> Result<Option<Purchase>, BillingError> {
    let row: Option<PurchaseRow> =
        on_db!(db, p => sqlx::query_as(SELECT_PURCHASE).bind(id).fetch_optional(p).await)?;
    row.map(|r| r.into_purchase(base)).transpose()
}

async fn purchase_in(
    tx: &mut Tx,
    base: Currency,
    id: i64,
) -> Result<Option<Purchase>, BillingError> {
    let row: Option<PurchaseRow> =
        on_tx!(tx, c => sqlx::query_as(SELECT_PURCHASE).bind(id).fetch_optional(c).await)?;
    row.map(|r| r.into_purchase(base)).transpose()
}

/// The invoice payload of a purchase (1–128 bytes, never shown to the user).
pub fn invoice_payload(purchase_id: i64) -> String {
    format!("purchase:{purchase_id}")
}

/// The purchase id in an invoice payload; anything else is `None`.
pub fn parse_payload(payload: &str) -> Option<i64> {
    let digits = payload.strip_prefix("purchase:")?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|id| *id > 0)
}

/// Why a pre-checkout is refused; each has a text the user sees in Telegram's payment form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No such purchase (a forged or foreign payload, a plan that left the catalog).
    Unknown,
    NotYours,
    /// The amount or currency differs from the purchase, or the plan's price changed since.
    Price,
    /// Payments are switched off.
    Disabled,
    Banned,
    /// Already paid, expired or cancelled.
    Closed,
}

impl Rejection {
    pub fn text_key(self) -> &'static str {
        match self {
            Rejection::Unknown => "reject-unknown",
            Rejection::NotYours => "reject-not-yours",
            Rejection::Price => "reject-price",
            Rejection::Disabled => "reject-disabled",
            Rejection::Banned => "reject-banned",
            Rejection::Closed => "reject-closed",
        }
    }
}

/// A pre-checkout query, as far as the gate cares.
#[derive(Debug, Clone)]
pub struct Checkout<'a> {
    pub user_id: i64,
    pub currency: &'a str,
    pub total_amount: i64,
    pub payload: &'a str,
}

/// The gate before money moves (F4): `Ok(())` lets Telegram charge. `user` is the payer's
/// row as the caller read it (`None`: not registered).
pub async fn check_pre_checkout(
    db: &Db,
    catalog: &Catalog,
    q: &Checkout<'_>,
    payments_on: bool,
    user: Option<&User>,
    now: Timestamp,
) -> Result<Result<(), Rejection>, BillingError> {
    if !payments_on {
        return Ok(Err(Rejection::Disabled));
    }
    let base = catalog.bot.base_currency;
    let Some(p) = parse_payload(q.payload) else {
        return Ok(Err(Rejection::Unknown));
    };
    let Some(p) = purchase(db, base, p).await? else {
        return Ok(Err(Rejection::Unknown));
    };
    if p.user_id != q.user_id {
        return Ok(Err(Rejection::NotYours));
    }
    if user.is_some_and(|u| u.id == q.user_id && u.banned_at.is_some()) {
        return Ok(Err(Rejection::Banned));
    }
    if p.status != Status::Pending || p.expires_at <= now {
        return Ok(Err(Rejection::Closed));
    }
    if p.price.currency.code() != q.currency || p.price.minor != q.total_amount {
        return Ok(Err(Rejection::Price));
    }
    // A promo price stands while the purchase holds the code's use: a newer invoice took it
    // over, or it was given back, and this invoice is closed.
    if p.promo_code.is_some() && !promo::holds(db, p.id).await? {
        return Ok(Err(Rejection::Closed));
    }
    // A discounted purchase is checked against the catalog by its price before discounts.
    let listed = p.list_price.unwrap_or(p.price);
    // The catalog may have changed since the invoice was drawn.
    let current = match &p.item {
        Item::Plan { plan_id, days } => {
            let Some(plan) = catalog.plans.iter().find(|pl| &pl.id == plan_id) else {
                return Ok(Err(Rejection::Unknown));
            };
            (plan.days == *days)
                .then(|| plan.price(p.price.currency))
                .flatten()
                .map(|current| if current == listed { p.price } else { current })
        }
        Item::TopUp { credit } => catalog
            .balance
            .stars_packages
            .iter()
            .find(|pk| pk.stars == p.price.minor && pk.credit == *credit)
            .map(|_| p.price)
            .filter(|_| p.price.currency == Currency::Xtr),
    };
    if current != Some(p.price) {
        return Ok(Err(Rejection::Price));
    }
    Ok(Ok(()))
}

/// Money a provider reports as captured.
#[derive(Debug, Clone)]
pub struct Captured {
    /// `Stars` or `Card` (money from outside; never `Balance`).
    pub provider: Provider,
    /// `telegram_payment_charge_id`: unique per provider.
    pub charge_id: String,
    pub user_id: i64,
    /// As the provider reports it (F6).
    pub currency: String,
    pub total_amount: i64,
    pub payload: String,
    /// The provider's own record, kept for audits.
    pub raw: Option<String>,
}

/// What [`finalize`] needs besides the transaction.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub texts: &'a Texts,
    pub nodes: &'a EnabledNodes,
    /// Admins told about payments that need a human.
    pub admins: &'a [i64],
}

impl Context<'_> {
    fn lang(&self, user: Option<&User>) -> Language {
        let fallback = self.catalog.bot.fallback_language();
        user.map_or(fallback, |u| u.language_or(fallback))
    }

    fn until(&self, lang: Language, t: Timestamp) -> String {
        format::date_time(lang, t, self.catalog.bot.utc_offset_minutes)
    }
}

/// What a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Days of access: the subscription after them.
    Access {
        subscription: Subscription,
        purchase_id: i64,
    },
    /// Money on the balance.
    Credit {
        purchase_id: i64,
        amount: Money,
        balance_after: i64,
    },
    /// The payment matches no purchase of this user, or pays too little: kept, and a human
    /// looks at it (F6).
    Review { reason: String },
}

/// The result of [`finalize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finalized {
    /// The first delivery: the payment is recorded and its effect applied.
    Applied { payment_id: i64, effect: Effect },
    /// Seen before: nothing happened.
    Duplicate { payment_id: i64 },
}

impl Finalized {
    pub fn access_changed(&self) -> bool {
        matches!(
            self,
            Finalized::Applied {
                effect: Effect::Access { .. },
                ..
            }
        )
    }
}

/// Records a captured payment and applies it, once (docs/design.md §3.3). Honours payments for
/// purchases that expired or were superseded meanwhile (F1). Queues the user's confirmation
/// (and a referrer's reward notice) in the same transaction (F8). `user` is the payer's row as
/// the caller read it (`None`: not registered); only what never changes after registration is
/// used (the id, the referrer) besides the language of the texts.
///
/// The common case is one statement before the effect (each statement a round trip to SQLite's
/// one connection, or a round trip to PostgreSQL): the payment is stored with the purchase it
/// pays for, found in the same statement only when it matches, and returns what that purchase
/// sells; marking the purchase paid, which nothing reads back, travels with the effect's first
/// statement on SQLite.
pub async fn finalize(
    tx: &mut Tx,
    ctx: &Context<'_>,
    pay: &Captured,
    user: Option<&User>,
    now: Timestamp,
) -> Result<Finalized, BillingError> {
    let base = ctx.catalog.bot.base_currency;
    // The purchase this payment is for: the payload's, when it is the payer's, priced in the
    // currency paid, and paid in full (overpaying is accepted; underpaying is not, F6).
    let payload_id = parse_payload(&pay.payload).filter(|_| user.is_some());
    let inserted: Option<InsertedPayment> = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO payments (purchase_id, user_id, provider, provider_payment_id, amount, currency, status, raw, created_at, invoice_payload)
         VALUES ((SELECT id FROM purchases WHERE id = $8 AND user_id = $1 AND currency = $5 AND amount <= $4),
                 $1, $2, $3, $4, $5, 'captured', $6, $7, $9)
         ON CONFLICT (provider, provider_payment_id) DO NOTHING
         RETURNING id, purchase_id,
             (SELECT p.kind FROM purchases p WHERE p.id = payments.purchase_id) AS kind,
             (SELECT p.plan_id FROM purchases p WHERE p.id = payments.purchase_id) AS plan_id,
             (SELECT CAST(p.days AS BIGINT) FROM purchases p WHERE p.id = payments.purchase_id) AS days,
             (SELECT p.credit_amount FROM purchases p WHERE p.id = payments.purchase_id) AS credit_amount,
             (SELECT p.promo_code FROM purchases p WHERE p.id = payments.purchase_id) AS promo_code,
             (SELECT p.amount FROM purchases p WHERE p.id = payments.purchase_id) AS amount,
             (SELECT p.list_amount FROM purchases p WHERE p.id = payments.purchase_id) AS list_amount"
    ).bind(pay.user_id).bind(pay.provider.as_str()).bind(&pay.charge_id).bind(pay.total_amount)
        .bind(&pay.currency).bind(&pay.raw).bind(now).bind(payload_id).bind(&pay.payload).fetch_optional(c).await)
    .map_err(BillingError::from_db)?;
    let Some(inserted) = inserted else {
        let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
            "SELECT id FROM payments WHERE provider = $1 AND provider_payment_id = $2"
        ).bind(pay.provider.as_str()).bind(&pay.charge_id).fetch_one(c).await)?;
        return Ok(Finalized::Duplicate { payment_id: id });
    };
    let payment_id = inserted.id;
    stats::count(
        tx,
        pay.provider.as_str(),
        &pay.currency,
        pay.total_amount,
        1,
    )
    .await?;
    let Some(purchase_id) = inserted.purchase_id else {
        let lang = ctx.lang(user);
        let reason = review_reason(tx, base, pay, user).await?;
        tracing::error!(payment_id, charge = %pay.charge_id, %reason, "payment needs a manual review");
        let text = ctx.texts.get(lang, "payment-needs-review");
        queue(tx, &format!("pay:{payment_id}"), pay.user_id, text, now).await?;
        for admin in ctx.admins {
            let text = format!(
                "⚠️ Payment {} ({} {} from user {}) needs review: {}\nApply or refund it: /payment {}",
                pay.charge_id, pay.total_amount, pay.currency, pay.user_id, reason, pay.charge_id
            );
            queue(
                tx,
                &format!("pay-review:{payment_id}:{admin}"),
                *admin,
                text,
                now,
            )
            .await?;
        }
        return Ok(Finalized::Applied {
            payment_id,
            effect: Effect::Review { reason },
        });
    };
    let item = item_of(
        purchase_id,
        inserted.kind.as_deref().unwrap_or_default(),
        inserted.plan_id,
        inserted.days,
        inserted.credit_amount,
        base,
    )?;
    let applied = Applied {
        payment_id,
        purchase_id,
        item: &item,
        payer: pay.user_id,
        user,
        confirmation: format!("pay:{payment_id}"),
        promo_code: inserted.promo_code,
        paid_share: inserted.amount.zip(inserted.list_amount),
    };
    let effect = apply(tx, ctx, &applied, now).await?;
    Ok(Finalized::Applied { payment_id, effect })
}

/// A payment tied to the purchase it pays for, about to take effect.
struct Applied<'a> {
    payment_id: i64,
    purchase_id: i64,
    item: &'a Item,
    /// Who paid, and gets what the purchase sells.
    payer: i64,
    /// The payer's row (language, referrer), as the caller read it.
    user: Option<&'a User>,
    /// The dedupe key of the payer's confirmation.
    confirmation: String,
    /// The promo code whose use the purchase holds: consumed now.
    promo_code: Option<String>,
    /// (price, price before discounts) of a purchase sold at a discount: the referral reward
    /// is a share of what was actually paid.
    paid_share: Option<(i64, i64)>,
}

/// What every applied payment does, in the caller's transaction: the purchase marked paid,
/// the days or the credit, one confirmation, the referrer's reward. The one path of
/// [`finalize`] and of an admin's Apply of a payment kept for review ([`review`]).
async fn apply(
    tx: &mut Tx,
    ctx: &Context<'_>,
    a: &Applied<'_>,
    now: Timestamp,
) -> Result<Effect, BillingError> {
    let base = ctx.catalog.bot.base_currency;
    let lang = ctx.lang(a.user);
    let (payment_id, purchase_id) = (a.payment_id, a.purchase_id);
    // Paid whatever it was before: money was taken (F1). A refunded purchase stays refunded.
    // Nothing here reads the outcome, so on SQLite it travels with the next statement.
    tx.defer(
        DeferredWrite::new(
            "UPDATE purchases SET
                status = CASE WHEN status = 'refunded' THEN status ELSE 'paid' END,
                paid_at = CASE WHEN status = 'refunded' THEN paid_at ELSE COALESCE(paid_at, $2) END
             WHERE id = $1",
        )
        .bind(purchase_id)
        .bind(now),
    )
    .await?;
    if let Some(code) = &a.promo_code {
        promo::consume(tx, a.payer, code, purchase_id, now).await?;
    }
    let (effect, text, base_value) = match a.item {
        Item::Plan { plan_id, days } => {
            let grant = Grant::days(Kind::Paid, *days, Some(plan_id));
            let granted = access::grant_or_extend(tx, ctx.nodes, a.payer, &grant, now).await?;
            access::notices::expect(tx, &granted.subscription, now).await?;
            let until = ctx.until(lang, granted.subscription.expires_at);
            let text = ctx
                .texts
                .fmt(lang, "payment-confirmed", &[("until", Arg::Text(until))]);
            // The referral reward is a share of what the plan costs in the base currency.
            let value = ctx
                .catalog
                .plans
                .iter()
                .find(|p| &p.id == plan_id)
                .and_then(|p| p.price(base))
                .map(|v| match a.paid_share {
                    Some((paid, list)) if list > 0 => {
                        let share = i128::from(v.minor) * i128::from(paid) / i128::from(list);
                        Money::new(i64::try_from(share).unwrap_or(v.minor), v.currency)
                    }
                    _ => v,
                });
            (
                Effect::Access {
                    subscription: granted.subscription,
                    purchase_id,
                },
                text,
                value,
            )
        }
        Item::TopUp { credit } => {
            let after = ledger::change(
                tx,
                a.payer,
                credit.minor,
                Reason::TopUp,
                &format!("payment:{payment_id}"),
                now,
            )
            .await?
            .ok_or_else(|| BillingError::Corrupt(format!("top-up {payment_id} credited twice")))?;
            let text = ctx.texts.fmt(
                lang,
                "topup-confirmed",
                &[
                    ("amount", format::money(lang, *credit).into()),
                    (
                        "balance",
                        format::money(lang, Money::new(after, base)).into(),
                    ),
                ],
            );
            (
                Effect::Credit {
                    purchase_id,
                    amount: *credit,
                    balance_after: after,
                },
                text,
                Some(*credit),
            )
        }
    };
    queue(tx, &a.confirmation, a.payer, text, now).await?;
    if let Some(referrer) = a.user.and_then(|u| u.referrer_id) {
        referrals::reward(tx, ctx, referrer, a.payer, base_value, payment_id, now).await?;
    }
    tracing::info!(
        payment_id,
        purchase = purchase_id,
        user = a.payer,
        "payment applied"
    );
    Ok(effect)
}

/// Why a payment matched no purchase, for the review (the rare path: one more read).
async fn review_reason(
    tx: &mut Tx,
    base: Currency,
    pay: &Captured,
    user: Option<&User>,
) -> Result<String, BillingError> {
    let purchase = match parse_payload(&pay.payload) {
        Some(id) => purchase_in(tx, base, id).await?,
        None => None,
    };
    Ok(match &purchase {
        None => format!("payload {:?} names no purchase", pay.payload),
        Some(p) if p.user_id != pay.user_id => format!(
            "purchase {} belongs to user {}, paid by {}",
            p.id, p.user_id, pay.user_id
        ),
        Some(p) if p.price.currency.code() != pay.currency => format!(
            "purchase {} is priced in {}, paid in {}",
            p.id, p.price.currency, pay.currency
        ),
        Some(p) if pay.total_amount < p.price.minor => format!(
            "purchase {} costs {}, paid {}",
            p.id, p.price.minor, pay.total_amount
        ),
        Some(_) if user.is_none() => format!("user {} is not registered", pay.user_id),
        // Not reached: a purchase that passes every check above is matched by `finalize`.
        Some(p) => format!("purchase {} did not match the payment", p.id),
    })
}

async fn queue(
    tx: &mut Tx,
    key: &str,
    chat_id: i64,
    text: String,
    now: Timestamp,
) -> Result<(), BillingError> {
    let msg = OutboxMessage::text(key, chat_id, Priority::Transactional, text, None);
    outbox::enqueue(tx, &msg, now).await?;
    Ok(())
}

/// The result of paying a plan from the balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalancePaid {
    Paid {
        subscription: Subscription,
        purchase_id: i64,
        balance_after: i64,
        /// What was charged (after discounts).
        price: Money,
    },
    /// This reference was paid before (a double tap, a retried renewal): nothing happened.
    AlreadyPaid,
    /// Not enough money; nothing happened.
    Short { balance: i64, price: i64 },
    /// The user's promo code cannot be used any more (it is forgotten); nothing was charged.
    PromoRefused(promo::Refusal),
}

/// A plan bought with balance money: by whom, why, and the once-only reference.
#[derive(Debug, Clone, Copy)]
pub struct BalanceCharge<'a> {
    pub user_id: i64,
    pub plan: &'a Plan,
    /// `Purchase` for a button, `Renewal` for auto-renewal.
    pub reason: Reason,
    /// Unique per cause, e.g. one per pay button, one per renewal period.
    pub reference: &'a str,
}

/// Pays `plan` from the user's balance in the caller's transaction: the debit (unique per
/// `reference`, e.g. one per pay button or per renewal period), a paid purchase row, and the
/// days. The balance can never go negative, and one reference is never paid twice, however
/// many transactions race. The price is [`promo::quote`]'s: a purchase gets the user's
/// personal discount or promo code; an auto-renewal the personal discount only.
pub async fn pay_plan_from_balance(
    tx: &mut Tx,
    nodes: &EnabledNodes,
    base: Currency,
    charge: &BalanceCharge<'_>,
    now: Timestamp,
) -> Result<BalancePaid, BillingError> {
    pay_plan_from_balance_with(tx, nodes, base, false, charge, now).await
}

/// [`pay_plan_from_balance`] with the catalog's `[discounts] stack` setting.
pub async fn pay_plan_from_balance_with(
    tx: &mut Tx,
    nodes: &EnabledNodes,
    base: Currency,
    stack: bool,
    charge: &BalanceCharge<'_>,
    now: Timestamp,
) -> Result<BalancePaid, BillingError> {
    let BalanceCharge {
        user_id,
        plan,
        reason,
        reference,
    } = *charge;
    if ledger::exists(tx, reference).await? {
        return Ok(BalancePaid::AlreadyPaid);
    }
    let mut offer = promo::offer_in(tx, base, user_id, now).await?;
    if reason != Reason::Purchase {
        offer.chosen = None;
    }
    let Some(quote) = promo::quote(plan, base, base, &offer, stack) else {
        return Err(BillingError::Corrupt(format!(
            "plan {} has no {base} price",
            plan.id
        )));
    };
    let price = quote.price;
    if let Some(chosen) = &quote.promo
        && !promo::take(tx, chosen, now).await?
    {
        let why = promo::why_not(tx, chosen, now).await?;
        promo::forget(tx, user_id, chosen.code_id).await?;
        return Ok(BalancePaid::PromoRefused(why));
    }
    let Some(balance_after) =
        ledger::change(tx, user_id, -price.minor, reason, reference, now).await?
    else {
        if let Some(chosen) = &quote.promo {
            promo::untake(tx, chosen).await?;
        }
        let balance = ledger::balance_in(tx, user_id).await?;
        return Ok(BalancePaid::Short {
            balance,
            price: price.minor,
        });
    };
    let item = Item::Plan {
        plan_id: plan.id.clone(),
        days: plan.days,
    };
    let discount = (quote.discounted() || quote.promo.is_some()).then_some(Discount {
        list: quote.list,
        promo_code: quote.promo.as_ref().map(|c| c.code.clone()),
    });
    let purchase = insert_purchase(
        tx,
        user_id,
        &item,
        price,
        discount.as_ref(),
        Provider::Balance,
        "paid",
        now,
    )
    .await?;
    if let Some(chosen) = &quote.promo {
        promo::hold(tx, user_id, chosen.code_id, purchase.id, now).await?;
        promo::consume(tx, user_id, &chosen.code, purchase.id, now).await?;
    }
    let grant = Grant::days(Kind::Paid, plan.days, Some(&plan.id));
    let granted = access::grant_or_extend(tx, nodes, user_id, &grant, now).await?;
    Ok(BalancePaid::Paid {
        subscription: granted.subscription,
        purchase_id: purchase.id,
        balance_after,
        price,
    })
}

/// Marks pending purchases past their TTL expired (never a paid one) and gives back the
/// promo code uses they held, in one transaction; returns how many.
pub async fn expire_unpaid_purchases(
    db: &Db,
    now: Timestamp,
    batch: i64,
) -> Result<u64, BillingError> {
    let mut tx = db.begin().await?;
    let expired: Vec<(i64, Option<String>)> = on_tx!(&mut tx, c => sqlx::query_as(
        "UPDATE purchases SET status = 'expired'
         WHERE id IN (SELECT id FROM purchases WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2)
           AND status = 'pending'
         RETURNING id, promo_code"
    ).bind(now).bind(batch).fetch_all(c).await)?;
    for (id, _) in expired.iter().filter(|(_, code)| code.is_some()) {
        promo::release(&mut tx, *id, now).await?;
    }
    tx.commit().await?;
    Ok(expired.len() as u64)
}

/// Deletes unpaid purchases that expired before `cutoff`, at most `batch` per call; returns
/// how many. A purchase any payment points at is kept (it is history), so only intents nobody
/// paid go; a payment arriving for one after this is kept for review like any unknown payload.
pub async fn prune_expired_purchases(
    db: &Db,
    cutoff: Timestamp,
    batch: i64,
) -> Result<u64, BillingError> {
    let n = on_db!(db, p => sqlx::query(
        "DELETE FROM purchases WHERE id IN (
             SELECT id FROM purchases pu WHERE status = 'expired' AND expires_at < $1
               AND NOT EXISTS (SELECT 1 FROM payments pa WHERE pa.purchase_id = pu.id)
             ORDER BY expires_at LIMIT $2)
           AND status = 'expired'"
    ).bind(cutoff).bind(batch).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_nothing_else_parses() {
        assert_eq!(parse_payload(&invoice_payload(42)), Some(42));
        for bad in [
            "",
            "purchase:",
            "purchase:0",
            "purchase:-1",
            "purchase:1x",
            "purchase: 1",
            "purchase:1234567890123456789",
            "Purchase:1",
            "42",
        ] {
            assert_eq!(parse_payload(bad), None, "{bad:?}");
        }
    }
}
