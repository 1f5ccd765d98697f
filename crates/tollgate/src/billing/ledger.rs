//! The balance and its ledger: every change has a reason and a unique reference.
//!
//! A change is one conditional `UPDATE` (`balance + delta >= 0`, so an overdraft is refused
//! by the database itself, under any race) and one ledger row whose `reference` is unique per
//! cause (`payment:42`, `renewal:7:1790000000000`), so a retried cause cannot apply twice: a
//! racing duplicate fails on the unique index and its transaction rolls back whole.

use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::users;
use crate::{on_db, on_tx};

use super::BillingError;

/// Why a balance changed (mirrors the ledger's CHECK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    TopUp,
    Purchase,
    Renewal,
    ReferralReward,
    Refund,
    Withdrawal,
    WithdrawalReturned,
    Admin,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TopUp => "topup",
            Reason::Purchase => "purchase",
            Reason::Renewal => "renewal",
            Reason::ReferralReward => "referral_reward",
            Reason::Refund => "refund",
            Reason::Withdrawal => "withdrawal",
            Reason::WithdrawalReturned => "withdrawal_returned",
            Reason::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::TopUp,
            Reason::Purchase,
            Reason::Renewal,
            Reason::ReferralReward,
            Reason::Refund,
            Reason::Withdrawal,
            Reason::WithdrawalReturned,
            Reason::Admin,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The text key naming this reason in the balance history.
    pub fn text_key(self) -> &'static str {
        match self {
            Reason::TopUp => "ledger-topup",
            Reason::Purchase => "ledger-purchase",
            Reason::Renewal => "ledger-renewal",
            Reason::ReferralReward => "ledger-referral",
            Reason::Refund => "ledger-refund",
            Reason::Withdrawal => "ledger-withdrawal",
            Reason::WithdrawalReturned => "ledger-withdrawal-returned",
            Reason::Admin => "ledger-admin",
        }
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub delta: i64,
    pub balance_after: i64,
    pub reason: Reason,
    pub reference: String,
    pub created_at: Timestamp,
}

/// Whether a change with `reference` was made.
pub async fn exists(tx: &mut Tx, reference: &str) -> Result<bool, BillingError> {
    let row: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id FROM balance_ledger WHERE reference = $1"
    ).bind(reference).fetch_optional(c).await)?;
    Ok(row.is_some())
}

/// Adds `delta` (minor units of the base currency; negative to debit) to the user's balance.
/// Returns the new balance, or `None` when a debit would make it negative (nothing changed).
/// A reference used before fails with [`BillingError::Raced`] — callers that may repeat a
/// cause check [`exists`] first.
pub async fn change(
    tx: &mut Tx,
    user_id: i64,
    delta: i64,
    reason: Reason,
    reference: &str,
    now: Timestamp,
) -> Result<Option<i64>, BillingError> {
    if delta == 0 {
        return Err(BillingError::Corrupt(format!(
            "a ledger change of 0 for {reference}"
        )));
    }
    let Some(after) = users::add_to_balance(tx, user_id, delta).await? else {
        return Ok(None);
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO balance_ledger (user_id, delta, balance_after, reason, reference, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(user_id).bind(delta).bind(after).bind(reason.as_str()).bind(reference).bind(now)
        .execute(c).await.map(|_| ()))
    .map_err(BillingError::from_db)?;
    Ok(Some(after))
}

/// The user's balance (0 for an unknown user), inside a transaction.
pub async fn balance_in(tx: &mut Tx, user_id: i64) -> Result<i64, BillingError> {
    Ok(users::balance_in(tx, user_id).await?.unwrap_or(0))
}

/// The user's last `limit` ledger rows, newest first.
pub async fn recent(db: &Db, user_id: i64, limit: i64) -> Result<Vec<Entry>, BillingError> {
    let rows: Vec<(i64, i64, String, String, Timestamp)> = on_db!(db, p => sqlx::query_as(
        "SELECT delta, balance_after, reason, reference, created_at FROM balance_ledger
         WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    ).bind(user_id).bind(limit).fetch_all(p).await)?;
    rows.into_iter()
        .map(|(delta, balance_after, reason, reference, created_at)| {
            Ok(Entry {
                delta,
                balance_after,
                reason: Reason::parse(&reason)
                    .ok_or_else(|| BillingError::Corrupt(format!("ledger reason {reason:?}")))?,
                reference,
                created_at,
            })
        })
        .collect()
}

/// The sum of the user's changes for `reason` (e.g. every referral reward: their earnings).
pub async fn total(db: &Db, user_id: i64, reason: Reason) -> Result<i64, BillingError> {
    let (sum,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) FROM balance_ledger WHERE user_id = $1 AND reason = $2"
    ).bind(user_id).bind(reason.as_str()).fetch_one(p).await)?;
    Ok(sum)
}

/// [`total`] in the caller's transaction.
pub async fn total_in(tx: &mut Tx, user_id: i64, reason: Reason) -> Result<i64, BillingError> {
    let (sum,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) FROM balance_ledger WHERE user_id = $1 AND reason = $2"
    ).bind(user_id).bind(reason.as_str()).fetch_one(c).await)?;
    Ok(sum)
}

/// The user's last `limit` changes for `reason`, newest first.
pub async fn recent_of(
    db: &Db,
    user_id: i64,
    reason: Reason,
    limit: i64,
) -> Result<Vec<Entry>, BillingError> {
    let rows: Vec<(i64, i64, String, Timestamp)> = on_db!(db, p => sqlx::query_as(
        "SELECT delta, balance_after, reference, created_at FROM balance_ledger
         WHERE user_id = $1 AND reason = $2 ORDER BY id DESC LIMIT $3"
    ).bind(user_id).bind(reason.as_str()).bind(limit).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|(delta, balance_after, reference, created_at)| Entry {
            delta,
            balance_after,
            reason,
            reference,
            created_at,
        })
        .collect())
}
