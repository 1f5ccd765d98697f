//! Payments a provider outside Telegram reports paid that name no purchase of this bot: an
//! invoice another app made with the same Crypto Pay token (the earlier bot, still taking
//! payments after the switch), a YooKassa payment whose metadata is not ours.
//!
//! Such money has no payer here, so `finalize` cannot record it (a payment row belongs to a
//! user). It must not end only in a log line either: it is kept in `unmatched_payments`, once
//! per provider payment however often it is reported, and the admins are alerted when it is
//! first seen. An admin then settles it from the console — refunded through the provider
//! where the provider can (YooKassa), or marked settled outside the bot (refunded in the
//! provider's dashboard, credited to someone by hand) — by one conditional update, so two
//! admins settle it once.

use super::{BillingError, Provider};
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// How an admin settled an unmatched payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Given back through the provider's API from the console.
    Refunded,
    /// Settled outside the bot; the admin says so.
    Settled,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Refunded => "refunded",
            Resolution::Settled => "settled",
        }
    }

    fn parse(s: &str) -> Option<Resolution> {
        [Resolution::Refunded, Resolution::Settled]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// A kept unmatched payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub id: i64,
    pub provider: Provider,
    /// The provider's id (Crypto Pay's invoice id, YooKassa's payment id).
    pub external_id: String,
    /// As the provider states it: minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    /// The provider's record of the payment (what it names, who paid).
    pub raw: String,
    pub seen_at: Timestamp,
    /// `None` while it waits for an admin; else how, when and by whom it was settled.
    pub resolved: Option<(Resolution, Timestamp, Option<i64>)>,
}

/// What the provider said of the payment, as [`keep`] stores it.
#[derive(Debug, Clone, Copy)]
pub struct Reported<'a> {
    pub provider: Provider,
    pub external_id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub raw: &'a str,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    provider: String,
    external_id: String,
    amount: i64,
    currency: String,
    raw: String,
    seen_at: Timestamp,
    resolution: Option<String>,
    resolved_at: Option<Timestamp>,
    resolved_by: Option<i64>,
}

const SELECT: &str = "SELECT id, provider, external_id, amount, currency, raw, seen_at, resolution,
    resolved_at, resolved_by FROM unmatched_payments";

impl Row {
    fn into_unmatched(self) -> Result<Unmatched, BillingError> {
        let corrupt =
            |what: &str| BillingError::Corrupt(format!("unmatched payment {}: {what}", self.id));
        let provider = Provider::parse(&self.provider).ok_or_else(|| corrupt("provider"))?;
        let resolved = match (self.resolution.as_deref(), self.resolved_at) {
            (None, _) => None,
            (Some(r), Some(at)) => Some((
                Resolution::parse(r).ok_or_else(|| corrupt("resolution"))?,
                at,
                self.resolved_by,
            )),
            (Some(_), None) => return Err(corrupt("resolved without a time")),
        };
        Ok(Unmatched {
            id: self.id,
            provider,
            external_id: self.external_id,
            amount: self.amount,
            currency: self.currency,
            raw: self.raw,
            seen_at: self.seen_at,
            resolved,
        })
    }
}

/// Keeps a reported unmatched payment in `tx`. `true` the first time it is reported (the
/// caller alerts the admins in the same transaction), `false` when it is kept already.
pub async fn keep(tx: &mut Tx, paid: Reported<'_>, now: Timestamp) -> Result<bool, BillingError> {
    let inserted = on_tx!(tx, c => sqlx::query(
        "INSERT INTO unmatched_payments (provider, external_id, amount, currency, raw, seen_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, external_id) DO NOTHING")
        .bind(paid.provider.as_str()).bind(paid.external_id).bind(paid.amount)
        .bind(paid.currency).bind(paid.raw).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(inserted == 1)
}

/// One kept payment by its id.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Unmatched>, BillingError> {
    let sql = format!("{SELECT} WHERE id = $1");
    let row: Option<Row> =
        on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)?;
    row.map(Row::into_unmatched).transpose()
}

/// The kept payments with this provider id (one per provider at most).
pub async fn by_external(db: &Db, external_id: &str) -> Result<Vec<Unmatched>, BillingError> {
    let sql = format!("{SELECT} WHERE external_id = $1 ORDER BY id");
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(external_id).fetch_all(p).await)?;
    rows.into_iter().map(Row::into_unmatched).collect()
}

/// How many wait for an admin.
pub async fn waiting(db: &Db) -> Result<i64, BillingError> {
    let (count,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM unmatched_payments WHERE resolution IS NULL"
    ).fetch_one(p).await)?;
    Ok(count)
}

/// The newest `limit` of those waiting for an admin.
pub async fn open(db: &Db, limit: i64) -> Result<Vec<Unmatched>, BillingError> {
    let sql = format!("{SELECT} WHERE resolution IS NULL ORDER BY seen_at DESC, id DESC LIMIT $1");
    let rows: Vec<Row> =
        on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(p).await)?;
    rows.into_iter().map(Row::into_unmatched).collect()
}

/// Settles a kept payment in `tx`, once: `false` when it was settled already (another admin,
/// a double tap), and then nothing changes.
pub async fn resolve(
    tx: &mut Tx,
    id: i64,
    resolution: Resolution,
    admin: i64,
    now: Timestamp,
) -> Result<bool, BillingError> {
    let changed = on_tx!(tx, c => sqlx::query(
        "UPDATE unmatched_payments SET resolution = $2, resolved_at = $3, resolved_by = $4
         WHERE id = $1 AND resolution IS NULL")
        .bind(id).bind(resolution.as_str()).bind(now).bind(admin)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(changed == 1)
}
