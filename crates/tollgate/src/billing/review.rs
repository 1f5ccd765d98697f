//! Payments kept for review: money captured that matched no purchase (an unknown payload,
//! another user's purchase, another currency, too little), and the admin's way to settle one.
//!
//! `finalize` never guesses: such a payment is stored untied (`purchase_id` NULL), the payer is
//! told a human will look at it and the admins are alerted with the charge id. An admin then
//! opens it with `/payment <charge id>` and either applies it — the payer gets what the purchase
//! its payload names sells, through the same [`super::apply`] as every payment — or refunds
//! it (`super::refund`). A captured payment therefore ends applied or refunded, never only in
//! a log or a dead letter.

use crate::time::Timestamp;
use crate::users;
use crate::{on_db, on_tx};

use super::{
    Applied, BillingError, Captured, Context, Effect, Provider, apply, parse_payload, purchase_in,
    review_reason,
};
use crate::store::{Db, Tx};

/// A stored payment as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    pub id: i64,
    pub provider: Provider,
    pub charge_id: String,
    pub user_id: i64,
    pub amount: i64,
    pub currency: String,
    /// `captured` or `refunded`.
    pub status: String,
    /// The purchase it paid for; `None` while it is kept for review.
    pub purchase_id: Option<i64>,
    pub invoice_payload: Option<String>,
    pub created_at: Timestamp,
}

impl StoredPayment {
    /// Kept for review and not refunded: an admin has to settle it.
    pub fn awaits_review(&self) -> bool {
        self.purchase_id.is_none() && self.status == "captured"
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    provider: String,
    provider_payment_id: String,
    user_id: i64,
    amount: i64,
    currency: String,
    status: String,
    purchase_id: Option<i64>,
    invoice_payload: Option<String>,
    created_at: Timestamp,
}

const SELECT: &str = "SELECT id, provider, provider_payment_id, user_id, amount, currency, status,
    purchase_id, invoice_payload, created_at FROM payments";

impl Row {
    fn into_payment(self) -> Result<StoredPayment, BillingError> {
        let provider = Provider::parse(&self.provider).ok_or_else(|| {
            BillingError::Corrupt(format!("payment {}: provider {:?}", self.id, self.provider))
        })?;
        Ok(StoredPayment {
            id: self.id,
            provider,
            charge_id: self.provider_payment_id,
            user_id: self.user_id,
            amount: self.amount,
            currency: self.currency,
            status: self.status,
            purchase_id: self.purchase_id,
            invoice_payload: self.invoice_payload,
            created_at: self.created_at,
        })
    }
}

/// The payments with this provider charge id (one per provider at most).
pub async fn by_charge(db: &Db, charge_id: &str) -> Result<Vec<StoredPayment>, BillingError> {
    let sql = format!("{SELECT} WHERE provider_payment_id = $1 ORDER BY id");
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(charge_id).fetch_all(p).await)?;
    rows.into_iter().map(Row::into_payment).collect()
}

/// The user's latest `limit` payments, newest first (`payments_user`).
pub async fn of_user(
    db: &Db,
    user_id: i64,
    limit: i64,
) -> Result<Vec<StoredPayment>, BillingError> {
    let sql = format!("{SELECT} WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2");
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(limit).fetch_all(p).await)?;
    rows.into_iter().map(Row::into_payment).collect()
}

/// One payment by its id.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<StoredPayment>, BillingError> {
    let sql = format!("{SELECT} WHERE id = $1");
    let row: Option<Row> =
        on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)?;
    row.map(Row::into_payment).transpose()
}

/// [`by_id`] in the caller's transaction.
pub async fn by_id_in(tx: &mut Tx, id: i64) -> Result<Option<StoredPayment>, BillingError> {
    let sql = format!("{SELECT} WHERE id = $1");
    let row: Option<Row> =
        on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(c).await)?;
    row.map(Row::into_payment).transpose()
}

/// The newest `limit` payments waiting for an admin.
pub async fn kept(db: &Db, limit: i64) -> Result<Vec<StoredPayment>, BillingError> {
    let sql = format!(
        "{SELECT} WHERE purchase_id IS NULL AND status = 'captured' ORDER BY created_at DESC, id DESC LIMIT $1"
    );
    let rows: Vec<Row> =
        on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(p).await)?;
    rows.into_iter().map(Row::into_payment).collect()
}

/// How many payments wait for an admin.
pub async fn awaiting(db: &Db) -> Result<i64, BillingError> {
    let (n,): (i64,) = on_db!(db, p => sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE purchase_id IS NULL AND status = 'captured'"
    ).fetch_one(p).await)?;
    Ok(n)
}

/// Why `payment` could not be applied on its own, or what applying it would do.
pub async fn assess(
    tx: &mut Tx,
    ctx: &Context<'_>,
    payment: &StoredPayment,
) -> Result<Assessment, BillingError> {
    let base = ctx.catalog.bot.base_currency;
    let payload = payment.invoice_payload.clone().unwrap_or_default();
    let captured = Captured {
        provider: payment.provider,
        charge_id: payment.charge_id.clone(),
        user_id: payment.user_id,
        currency: payment.currency.clone(),
        total_amount: payment.amount,
        payload: payload.clone(),
        raw: None,
    };
    let user = users::get_in(tx, payment.user_id).await?;
    let reason = review_reason(tx, base, &captured, user.as_ref()).await?;
    let purchase = match parse_payload(&payload) {
        Some(id) => purchase_in(tx, base, id).await?,
        None => None,
    };
    let blocker = match (&purchase, &user) {
        (None, _) => Some("its payload names no purchase, so there is nothing to apply".to_owned()),
        (_, None) => Some(format!("user {} is not registered", payment.user_id)),
        (Some(_), Some(_)) => None,
    };
    Ok(Assessment {
        reason,
        purchase_id: purchase.map(|p| p.id),
        blocker,
    })
}

/// What [`assess`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Why `finalize` kept it.
    pub reason: String,
    /// The purchase its payload names, if that exists.
    pub purchase_id: Option<i64>,
    /// Why it cannot be applied, if it cannot.
    pub blocker: Option<String>,
}

/// What an admin's Apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Applied now: the payer got what the purchase sells.
    Applied(Effect),
    /// Applied or refunded before (another admin, a double tap): nothing happened.
    AlreadySettled,
    /// It cannot be applied: why.
    CannotApply(String),
}

/// Applies a payment kept for review to the purchase its payload names: the payer gets what
/// that purchase sells, with the confirmation and the referral reward, in `tx`. Once only: the
/// tie to the purchase is the gate, so a second Apply (or one after a refund) does nothing.
pub async fn apply_kept(
    tx: &mut Tx,
    ctx: &Context<'_>,
    payment_id: i64,
    now: Timestamp,
) -> Result<Settled, BillingError> {
    let Some(payment) = by_id_in(tx, payment_id).await? else {
        return Ok(Settled::CannotApply(format!(
            "there is no payment {payment_id}"
        )));
    };
    if !payment.awaits_review() {
        return Ok(Settled::AlreadySettled);
    }
    let found = assess(tx, ctx, &payment).await?;
    if let Some(blocker) = found.blocker {
        return Ok(Settled::CannotApply(blocker));
    }
    let base = ctx.catalog.bot.base_currency;
    let (Some(purchase_id), Some(user)) =
        (found.purchase_id, users::get_in(tx, payment.user_id).await?)
    else {
        return Ok(Settled::CannotApply(
            "the purchase or the payer is gone".into(),
        ));
    };
    let Some(purchase) = purchase_in(tx, base, purchase_id).await? else {
        return Ok(Settled::CannotApply(format!(
            "purchase {purchase_id} is gone"
        )));
    };
    let tied = on_tx!(tx, c => sqlx::query(
        "UPDATE payments SET purchase_id = $2 WHERE id = $1 AND purchase_id IS NULL AND status = 'captured'"
    ).bind(payment.id).bind(purchase_id).execute(c).await.map(|r| r.rows_affected()))?;
    if tied == 0 {
        return Ok(Settled::AlreadySettled);
    }
    let effect = apply(
        tx,
        ctx,
        &Applied {
            payment_id: payment.id,
            purchase_id,
            item: &purchase.item,
            payer: payment.user_id,
            user: Some(&user),
            // The payer was told "kept for review" under the payment's own key.
            confirmation: format!("pay-applied:{}", payment.id),
            promo_code: purchase.promo_code.clone(),
            paid_share: purchase
                .list_price
                .map(|list| (purchase.price.minor, list.minor)),
        },
        now,
    )
    .await?;
    tracing::info!(
        payment = payment.id,
        purchase = purchase_id,
        "a payment kept for review was applied by an admin"
    );
    Ok(Settled::Applied(effect))
}
