//! The console's money figures: revenue by provider and currency, trial → paid conversion.
//! A period's revenue is a range of `payments_captured` (a covering index), so it reads only
//! that period's captured payments; all-time revenue would read every
//! payment (about 2 s for 3,000,000 on SQLite), so it is kept as running totals
//! (`revenue_totals`) changed in the transaction of each payment and refund.

use super::BillingError;
use crate::on_db;
use crate::store::{Db, DeferredWrite, Tx};
use crate::time::Timestamp;

/// Money captured through one provider in one currency (minor units).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Revenue {
    pub provider: String,
    pub currency: String,
    pub amount: i64,
    pub payments: i64,
}

/// Captured, not refunded, since `since` (all time with `None`: the running totals), by
/// provider and currency.
pub async fn revenue_since(
    db: &Db,
    since: Option<Timestamp>,
) -> Result<Vec<Revenue>, BillingError> {
    let Some(since) = since else {
        return Ok(on_db!(db, p => sqlx::query_as(
            "SELECT provider, currency, amount, payments FROM revenue_totals
             WHERE payments > 0 ORDER BY provider, currency")
            .fetch_all(p).await)?);
    };
    Ok(on_db!(db, p => sqlx::query_as(
        "SELECT provider, currency, CAST(SUM(amount) AS BIGINT) AS amount,
                CAST(COUNT(*) AS BIGINT) AS payments
         FROM payments WHERE status = 'captured' AND created_at >= $1
         GROUP BY provider, currency ORDER BY provider, currency")
        .bind(since).fetch_all(p).await)?)
}

/// Adds a payment captured (`sign` = 1) or takes one refunded (`sign` = -1) to the running
/// totals, in the payment's transaction. On SQLite the write travels with the transaction's
/// next statement; on PostgreSQL it locks the provider's and currency's row until commit, so
/// concurrent payments in one currency commit one after another (each holds it for the rest of
/// its transaction, a few milliseconds).
pub(super) async fn count(
    tx: &mut Tx,
    provider: &str,
    currency: &str,
    amount: i64,
    sign: i64,
) -> Result<(), sqlx::Error> {
    tx.defer(
        DeferredWrite::new(
            "INSERT INTO revenue_totals (provider, currency, amount, payments) VALUES ($1, $2, $3, $4)
             ON CONFLICT (provider, currency) DO UPDATE SET amount = revenue_totals.amount + excluded.amount,
                 payments = revenue_totals.payments + excluded.payments",
        )
        .bind(provider.to_owned())
        .bind(currency.to_owned())
        .bind(amount * sign)
        .bind(sign),
    )
    .await
}

/// Of the users who took their trial since `since`, how many have paid (a captured payment
/// for a purchase) — the trial → paid conversion.
pub async fn trial_payers_since(db: &Db, since: Timestamp) -> Result<i64, BillingError> {
    // From the (few) recent trials to each one's payments by index, never the other way round.
    const SQL: &str = concat!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (",
        crate::users::trial_started_since_sql!("$1"),
        ") t WHERE EXISTS (SELECT 1 FROM payments p
                  WHERE p.user_id = t.id AND p.status = 'captured' AND p.purchase_id IS NOT NULL)"
    );
    Ok(on_db!(db, p => sqlx::query_scalar(SQL).bind(since).fetch_one(p).await)?)
}
