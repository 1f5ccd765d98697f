//! Refunds: money goes back, and so does what it bought.
//!
//! The provider is asked first (outside any transaction); then [`apply_refund`] reverses the
//! effect in one transaction — days taken back from the subscription, or the credited amount
//! taken back from the balance (as far as it is still there) — marks payment and purchase
//! refunded and tells the user. It is idempotent on the payment's status, so the admin's
//! command, a retried update and Telegram's `refunded_payment` message all converge.

use crate::access;
use crate::domain::money::Money;
use crate::i18n::{Arg, format};
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::users;
use crate::{on_db, on_tx};

use super::{BillingError, Context, Item, Provider, Reason, ledger, purchase_in, queue};

/// A stored payment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PaymentRecord {
    pub id: i64,
    pub purchase_id: Option<i64>,
    pub user_id: i64,
    pub amount: i64,
    pub currency: String,
    pub status: String,
}

/// The payment with this provider charge id, if we know it.
pub async fn payment_by_charge(
    db: &Db,
    provider: Provider,
    charge_id: &str,
) -> Result<Option<PaymentRecord>, BillingError> {
    let row = on_db!(db, p => sqlx::query_as(
        "SELECT id, purchase_id, user_id, amount, currency, status FROM payments
         WHERE provider = $1 AND provider_payment_id = $2"
    ).bind(provider.as_str()).bind(charge_id).fetch_optional(p).await)?;
    Ok(row)
}

/// What a refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refunded {
    /// Reversed now. `taken_back` is what left the balance (top-ups), if anything.
    Applied {
        payment_id: i64,
        user_id: i64,
        taken_back: Option<Money>,
    },
    /// Reversed before: nothing happened.
    AlreadyRefunded,
    /// No such payment.
    Unknown,
}

/// Reverses a refunded payment's effect, once.
pub async fn apply_refund(
    tx: &mut Tx,
    ctx: &Context<'_>,
    provider: Provider,
    charge_id: &str,
    now: Timestamp,
) -> Result<Refunded, BillingError> {
    let row: Option<PaymentRecord> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id, purchase_id, user_id, amount, currency, status FROM payments
         WHERE provider = $1 AND provider_payment_id = $2"
    ).bind(provider.as_str()).bind(charge_id).fetch_optional(c).await)?;
    let Some(payment) = row else {
        return Ok(Refunded::Unknown);
    };
    // The status flip is the once-only gate: a racing second refund changes no row. Its
    // purchase is read from the flipped row, not the read above: an admin's Apply of a kept
    // payment may have attached one in between (PostgreSQL runs them side by side).
    let flipped: Option<Option<i64>> = on_tx!(tx, c => sqlx::query_scalar(
        "UPDATE payments SET status = 'refunded', refunded_at = $2 WHERE id = $1 AND status = 'captured'
         RETURNING purchase_id"
    ).bind(payment.id).bind(now).fetch_optional(c).await)?;
    let Some(purchase_id) = flipped else {
        return Ok(Refunded::AlreadyRefunded);
    };
    super::stats::count(tx, provider.as_str(), &payment.currency, payment.amount, -1).await?;
    super::referrals::refunded(tx, payment.user_id).await?;
    let base = ctx.catalog.bot.base_currency;
    let user = users::get_in(tx, payment.user_id).await?;
    let lang = ctx.lang(user.as_ref());
    let purchase = match purchase_id {
        Some(id) => purchase_in(tx, base, id).await?,
        None => None,
    };
    let mut taken_back = None;
    if let Some(p) = &purchase {
        on_tx!(tx, c => sqlx::query("UPDATE purchases SET status = 'refunded' WHERE id = $1")
            .bind(p.id).execute(c).await.map(|_| ()))?;
        let text = match &p.item {
            Item::Plan { days, .. } => {
                let sub = access::subscription_for_user_in(tx, payment.user_id).await?;
                let until = match sub {
                    Some(s) => access::shorten(tx, s.id, *days, now).await?.expires_at,
                    None => now,
                };
                ctx.texts.fmt(
                    lang,
                    "refund-done-user",
                    &[("until", Arg::Text(ctx.until(lang, until)))],
                )
            }
            Item::TopUp { credit } => {
                // What was spent already cannot be taken back; the rest is.
                let balance = ledger::balance_in(tx, payment.user_id).await?;
                let take = credit.minor.min(balance);
                let after = if take > 0 {
                    ledger::change(
                        tx,
                        payment.user_id,
                        -take,
                        Reason::Refund,
                        &format!("refund:{}", payment.id),
                        now,
                    )
                    .await?
                    .unwrap_or(balance)
                } else {
                    balance
                };
                taken_back = Some(Money::new(take, base));
                ctx.texts.fmt(
                    lang,
                    "refund-done-user-topup",
                    &[
                        ("amount", format::money(lang, *credit).into()),
                        (
                            "balance",
                            format::money(lang, Money::new(after, base)).into(),
                        ),
                    ],
                )
            }
        };
        queue(
            tx,
            &format!("refund:{}", payment.id),
            payment.user_id,
            text,
            now,
        )
        .await?;
    }
    tracing::info!(payment = payment.id, charge = charge_id, "payment refunded");
    Ok(Refunded::Applied {
        payment_id: payment.id,
        user_id: payment.user_id,
        taken_back,
    })
}
