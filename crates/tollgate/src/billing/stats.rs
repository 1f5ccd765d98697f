//! The console's money figures: revenue by provider and currency, trial → paid conversion,
//! payments kept for review. Index ranges of `payments_captured` (a covering index), so a
//! period's revenue reads only that period's captured payments.

use super::BillingError;
use crate::store::Db;
use crate::time::Timestamp;
use crate::{on_db, users};

/// Money captured through one provider in one currency (minor units).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Revenue {
    pub provider: String,
    pub currency: String,
    pub amount: i64,
    pub payments: i64,
}

/// Captured, not refunded, since `since` (all time with `None`), by provider and currency.
pub async fn revenue_since(
    db: &Db,
    since: Option<Timestamp>,
) -> Result<Vec<Revenue>, BillingError> {
    let since = since.unwrap_or(Timestamp::from_millis(i64::MIN));
    Ok(on_db!(db, p => sqlx::query_as(
        "SELECT provider, currency, CAST(SUM(amount) AS BIGINT) AS amount,
                CAST(COUNT(*) AS BIGINT) AS payments
         FROM payments WHERE status = 'captured' AND created_at >= $1
         GROUP BY provider, currency ORDER BY provider, currency")
        .bind(since).fetch_all(p).await)?)
}

/// Of the users who took their trial since `since`, how many have paid (a captured payment
/// for a purchase) — the trial → paid conversion.
pub async fn trial_payers_since(db: &Db, since: Timestamp) -> Result<i64, BillingError> {
    const SQL: &str = concat!(
        "SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM payments
         WHERE status = 'captured' AND purchase_id IS NOT NULL AND user_id IN (",
        users::trial_started_since_sql!("$1"),
        ")"
    );
    Ok(on_db!(db, p => sqlx::query_scalar(SQL).bind(since).fetch_one(p).await)?)
}

/// Captured payments kept for review and not yet settled.
pub async fn kept_for_review(db: &Db) -> Result<i64, BillingError> {
    Ok(on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE purchase_id IS NULL AND status = 'captured'")
        .fetch_one(p).await)?)
}
