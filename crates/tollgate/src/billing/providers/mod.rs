//! Payment providers outside Telegram (Crypto Pay, YooKassa): one trait, and the
//! `provider_invoices` rows that remember what each was asked for.
//!
//! Telegram's Stars and card payments arrive as updates and keep their path
//! (`bot::payments`). A provider here is called by us: it creates a payment page for a
//! purchase, tells us about payments by notification (which we verify, or treat only as a
//! hint), and answers for one payment or a batch when asked. Whatever reports a payment first
//! — the notification, the watcher, the user's "I paid" — the money is recorded by the same
//! `billing::finalize`, once (unique per provider and provider id).
//!
//! A purchase's invoice row is written before the provider is called (`creating`): a call
//! that fails or hangs leaves the purchase pending and its row waiting, and the user's retry
//! reuses both — YooKassa's idempotence key is derived from the purchase, and a Crypto Pay
//! invoice a hung call made anyway is found by its payload — so a retry never makes a second
//! invoice.

pub mod cryptopay;
pub mod hmac;
pub mod yookassa;

use std::time::Duration;

use futures::future::BoxFuture;

use super::{BillingError, Provider};
use crate::domain::money::Money;
use crate::store::{Db, DeferredWrite, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// Why a provider call did not give an answer we can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// No answer within the call's deadline: the outcome is unknown.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Network failure or a 5xx/429: try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx with its reason); repeating it will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The provider does not know what was asked about (HTTP 404; an invoice it no longer
    /// lists): nothing can be paid there.
    #[error("not found: {0}")]
    NotFound(String),
    /// The answer did not have the documented shape.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// A notification whose signature is missing or wrong.
    #[error("bad signature")]
    BadSignature,
    /// This provider cannot do that (Crypto Pay has no refunds of invoices).
    #[error("not supported by this provider")]
    Unsupported,
}

impl ProviderError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::Timeout(_) | ProviderError::Unavailable(_)
        )
    }
}

/// A payment page to create for a purchase.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub purchase_id: i64,
    /// The price, in a fiat currency.
    pub amount: Money,
    pub description: String,
    /// Where the provider sends the user back (the bot's link), if it does that.
    pub return_url: Option<String>,
    /// Seconds the page stays payable.
    pub expires_in: Duration,
    /// 54-FZ receipt contact (YooKassa only): an email or a phone as digits.
    pub receipt_contact: Option<String>,
    /// The receipt item's VAT code (YooKassa's `vat_code`, 1..=12), with a receipt.
    pub vat_code: u8,
    /// The receipt's `tax_system_code` (1..=6), when the shop names one.
    pub tax_system_code: Option<u8>,
}

/// Where a payment stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteStatus {
    /// Waiting for the payer.
    Open,
    /// Money captured: finalize it.
    Paid,
    /// Ended without money (expired, cancelled, declined).
    Ended,
}

/// A payment as the provider reports it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The provider's id (Crypto Pay's invoice id, YooKassa's payment id).
    pub external_id: String,
    pub status: RemoteStatus,
    /// The amount as the provider states it: minor units and the currency code, compared
    /// exactly with the purchase (`finalize`).
    pub amount_minor: i64,
    pub currency: String,
    /// The purchase the payment names (its payload or metadata), if it names one.
    pub purchase_id: Option<i64>,
    /// How much of it the provider has refunded, in minor units of `currency`, wherever the
    /// refund was made (YooKassa's `refunded_amount`; Crypto Pay refunds nothing).
    pub refunded_minor: i64,
    /// Where the payer pays.
    pub url: Option<String>,
    /// The provider's record, kept with the payment.
    pub raw: String,
}

impl Remote {
    /// Whether this is the payment of purchase `purchase_id` at its price: it names the
    /// purchase and states exactly `price`. A payment found by what it names rather than by
    /// the id we stored (a create call whose answer was lost) is taken as ours only so: an
    /// app sharing the account (an earlier or a staging deployment) names its own purchases
    /// with the same numbers.
    pub fn is_for(&self, purchase_id: i64, price: Money) -> bool {
        self.purchase_id == Some(purchase_id)
            && self.amount_minor == price.minor
            && self.currency == price.currency.code()
    }
}

/// What a notification says, after verification.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Signed by the provider: its payment as stated (Crypto Pay).
    Verified(Remote),
    /// Unsigned: only the id to ask the provider about (YooKassa).
    Hint { external_id: String },
    /// Verified, but about nothing we act on (another event type).
    Ignored,
}

/// One payment provider outside Telegram. Every call has a deadline (the client's timeout).
pub trait PaymentProvider: Send + Sync {
    fn provider(&self) -> Provider;

    /// Creates the payment page for a purchase.
    fn create<'a>(&'a self, new: &'a NewPayment) -> BoxFuture<'a, Result<Remote, ProviderError>>;

    /// Verifies a notification over its raw body and parses it.
    fn verify_notification(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Notice, ProviderError>;

    /// One payment's current state.
    fn fetch<'a>(&'a self, external_id: &'a str) -> BoxFuture<'a, Result<Remote, ProviderError>>;

    /// These payments' current state, in as few calls as the provider allows (for the
    /// watcher); payments the provider does not list are left out.
    fn fetch_many<'a>(
        &'a self,
        external_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Remote>, ProviderError>>;

    /// Recent open payments, newest first as far as the provider orders them (to find the one
    /// a hung create made anyway).
    fn list_recent(&self) -> BoxFuture<'_, Result<Vec<Remote>, ProviderError>>;

    /// Withdraws an open payment page (Crypto Pay's deleteInvoice); a no-op where pages end
    /// on their own.
    fn cancel<'a>(&'a self, external_id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Gives a captured payment back; `key` makes a repeated request the same refund.
    fn refund<'a>(
        &'a self,
        external_id: &'a str,
        amount: Money,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// A reqwest client with the providers' call deadline.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .map_err(|e| format!("cannot build the payment providers' HTTP client: {e}"))
}

/// The provider error of a failed reqwest call.
pub(crate) fn transport_error(e: &reqwest::Error, timeout: Duration) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout(timeout)
    } else {
        ProviderError::Unavailable(e.without_url_string())
    }
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    /// The error without its URL (a Crypto Pay URL carries no secret, but keep logs uniform).
    fn without_url_string(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<provider>");
        }
        text
    }
}

/// Where an invoice row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    Creating,
    Open,
    Paid,
    Closed,
}

impl InvoiceStatus {
    fn parse(s: &str) -> Option<InvoiceStatus> {
        Some(match s {
            "creating" => InvoiceStatus::Creating,
            "open" => InvoiceStatus::Open,
            "paid" => InvoiceStatus::Paid,
            "closed" => InvoiceStatus::Closed,
            _ => return None,
        })
    }
}

/// A purchase's invoice at a provider outside Telegram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub purchase_id: i64,
    pub provider: Provider,
    pub external_id: Option<String>,
    pub url: Option<String>,
    pub status: InvoiceStatus,
    pub created_at: Timestamp,
    pub next_check_at: Timestamp,
    pub checks: i64,
    /// The purchase's expiry (read with the row).
    pub purchase_expires_at: Timestamp,
    /// The purchase's user.
    pub user_id: i64,
    /// The purchase's price.
    pub price: Money,
}

#[derive(sqlx::FromRow)]
struct InvoiceRow {
    purchase_id: i64,
    provider: String,
    external_id: Option<String>,
    url: Option<String>,
    status: String,
    created_at: Timestamp,
    next_check_at: Timestamp,
    checks: i64,
    expires_at: Timestamp,
    user_id: i64,
    amount: i64,
    currency: String,
}

impl InvoiceRow {
    fn into_invoice(self) -> Result<Invoice, BillingError> {
        let corrupt = |w: &str| BillingError::Corrupt(format!("invoice {}: {w}", self.purchase_id));
        Ok(Invoice {
            purchase_id: self.purchase_id,
            provider: Provider::parse(&self.provider).ok_or_else(|| corrupt("provider"))?,
            external_id: self.external_id,
            url: self.url,
            status: InvoiceStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            created_at: self.created_at,
            next_check_at: self.next_check_at,
            checks: self.checks,
            purchase_expires_at: self.expires_at,
            user_id: self.user_id,
            price: Money::new(
                self.amount,
                self.currency.parse().map_err(|_| corrupt("currency"))?,
            ),
        })
    }
}

macro_rules! invoice_select {
    () => {
        "SELECT i.purchase_id, i.provider, i.external_id, i.url, i.status, i.created_at,
                i.next_check_at, CAST(i.checks AS BIGINT) AS checks, p.expires_at, p.user_id,
                p.amount, p.currency
         FROM provider_invoices i JOIN purchases p ON p.id = i.purchase_id "
    };
}

/// Records that `provider` is about to be asked for purchase `purchase_id`'s page, in the
/// purchase's transaction.
pub async fn begin_invoice(
    tx: &mut Tx,
    purchase_id: i64,
    provider: Provider,
    now: Timestamp,
) -> Result<(), BillingError> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO provider_invoices (purchase_id, provider, status, created_at, next_check_at)
         VALUES ($1, $2, 'creating', $3, $3)"
    ).bind(purchase_id).bind(provider.as_str()).bind(now).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Stores the provider's answer to the create call (or to the search for a hung one's
/// invoice): its id and page; the row is open and first checked at `next_check_at`. `false`
/// when the row was no longer being created (the watcher adopted the hung call's payment
/// meanwhile): that one is the purchase's, and `remote` is not stored.
pub async fn opened(
    db: &Db,
    purchase_id: i64,
    remote: &Remote,
    next_check_at: Timestamp,
) -> Result<bool, BillingError> {
    let mut tx = db.begin().await?;
    let changed = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE provider_invoices SET external_id = $2, url = $3, status = 'open', next_check_at = $4
         WHERE purchase_id = $1 AND status = 'creating'"
    ).bind(purchase_id).bind(&remote.external_id).bind(&remote.url).bind(next_check_at)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(BillingError::from_db)?;
    tx.commit().await?;
    Ok(changed == 1)
}

/// The invoice of a purchase.
pub async fn invoice(db: &Db, purchase_id: i64) -> Result<Option<Invoice>, BillingError> {
    const SQL: &str = concat!(invoice_select!(), "WHERE i.purchase_id = $1");
    let row: Option<InvoiceRow> =
        on_db!(db, p => sqlx::query_as(SQL).bind(purchase_id).fetch_optional(p).await)?;
    row.map(InvoiceRow::into_invoice).transpose()
}

/// The invoice a provider knows by `external_id`.
pub async fn invoice_by_external(
    db: &Db,
    provider: Provider,
    external_id: &str,
) -> Result<Option<Invoice>, BillingError> {
    const SQL: &str = concat!(
        invoice_select!(),
        "WHERE i.provider = $1 AND i.external_id = $2"
    );
    let row: Option<InvoiceRow> = on_db!(db, p => sqlx::query_as(SQL)
        .bind(provider.as_str()).bind(external_id).fetch_optional(p).await)?;
    row.map(InvoiceRow::into_invoice).transpose()
}

/// The user's pending purchase of `item` through `provider` whose invoice is still to be
/// paid, not expired at `now`: a second press reuses it instead of making another invoice.
pub async fn reusable(
    db: &Db,
    user_id: i64,
    provider: Provider,
    item: &super::Item,
    price: Money,
    now: Timestamp,
) -> Result<Option<Invoice>, BillingError> {
    let (kind, plan_id, days, credit) = match item {
        super::Item::Plan { plan_id, days } => {
            ("plan", Some(plan_id.clone()), Some(i64::from(*days)), None)
        }
        super::Item::TopUp { credit } => ("topup", None, None, Some(credit.minor)),
    };
    const SQL: &str = concat!(
        invoice_select!(),
        "WHERE p.user_id = $1 AND p.provider = $2 AND p.status = 'pending' AND p.expires_at > $3
           AND p.kind = $4 AND p.plan_id IS NOT DISTINCT FROM $5 AND p.days IS NOT DISTINCT FROM $6
           AND p.credit_amount IS NOT DISTINCT FROM $7 AND p.amount = $8 AND p.currency = $9
           AND i.status IN ('creating', 'open')
         ORDER BY p.id DESC LIMIT 1"
    );
    let row: Option<InvoiceRow> = on_db!(db, p => sqlx::query_as(SQL)
        .bind(user_id).bind(provider.as_str()).bind(now).bind(kind).bind(plan_id).bind(days)
        .bind(credit).bind(price.minor).bind(price.currency.code()).fetch_optional(p).await)?;
    row.map(InvoiceRow::into_invoice).transpose()
}

/// Invoices of `provider` due for a check at `now` (open, or still being created), oldest
/// due first.
pub async fn due(
    db: &Db,
    provider: Provider,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<Invoice>, BillingError> {
    const SQL: &str = concat!(
        invoice_select!(),
        "WHERE i.provider = $1 AND i.status IN ('creating', 'open') AND i.next_check_at <= $2
         ORDER BY i.next_check_at LIMIT $3"
    );
    let rows: Vec<InvoiceRow> = on_db!(db, p => sqlx::query_as(SQL)
        .bind(provider.as_str()).bind(now).bind(limit).fetch_all(p).await)?;
    rows.into_iter().map(InvoiceRow::into_invoice).collect()
}

/// Marks the invoice paid in the finalizing transaction (from any state: money was taken).
/// Nothing reads its outcome, so on SQLite it travels with the commit.
pub async fn mark_paid(
    tx: &mut Tx,
    provider: Provider,
    external_id: &str,
) -> Result<(), BillingError> {
    tx.defer(
        DeferredWrite::new(
            "UPDATE provider_invoices SET status = 'paid' WHERE provider = $1 AND external_id = $2",
        )
        .bind(provider.as_str())
        .bind(external_id.to_owned()),
    )
    .await?;
    Ok(())
}

/// Marks an open or creating invoice closed (ended unpaid, or withdrawn).
pub async fn mark_closed(db: &Db, purchase_id: i64) -> Result<(), BillingError> {
    on_db!(db, p => sqlx::query(
        "UPDATE provider_invoices SET status = 'closed' WHERE purchase_id = $1 AND status IN ('creating', 'open')"
    ).bind(purchase_id).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Sets when the invoice is checked next, counting the checks (the reconciler's intervals
/// grow with them).
pub async fn reschedule(db: &Db, purchase_id: i64, next: Timestamp) -> Result<(), BillingError> {
    on_db!(db, p => sqlx::query(
        "UPDATE provider_invoices SET next_check_at = $2, checks = checks + 1
         WHERE purchase_id = $1 AND status IN ('creating', 'open')"
    ).bind(purchase_id).bind(next).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Sets every listed invoice's next check at once (the watcher's batch).
pub async fn reschedule_many(
    db: &Db,
    purchase_ids: &[i64],
    next: Timestamp,
) -> Result<(), BillingError> {
    if purchase_ids.is_empty() {
        return Ok(());
    }
    match db {
        Db::Sqlite(p) => {
            sqlx::query(
                "UPDATE provider_invoices SET next_check_at = $2, checks = checks + 1
                 WHERE purchase_id IN (SELECT j.value FROM json_each($1) AS j)
                   AND status IN ('creating', 'open')",
            )
            .bind(serde_json::Value::from(purchase_ids.to_vec()).to_string())
            .bind(next)
            .execute(p)
            .await?;
        }
        Db::Postgres(p) => {
            sqlx::query(
                "UPDATE provider_invoices SET next_check_at = $2, checks = checks + 1
                 WHERE purchase_id = ANY($1) AND status IN ('creating', 'open')",
            )
            .bind(purchase_ids)
            .bind(next)
            .execute(p)
            .await?;
        }
    }
    Ok(())
}

/// The delay before check number `checks + 1` of a payment that is not final: `base` times
/// the Fibonacci numbers (1, 1, 2, 3, 5, 8, …), capped at `max` — YooKassa's advice for
/// payments whose notification has not come.
pub fn growing_delay(base: Duration, checks: i64, max: Duration) -> Duration {
    let (mut a, mut b) = (1u32, 1u32);
    for _ in 0..checks.clamp(0, 40) {
        (a, b) = (b, a.saturating_add(b));
    }
    base.saturating_mul(a).min(max)
}

/// The purchase id a provider payload names (`purchase:<id>`, as in Telegram invoices).
pub fn purchase_of_payload(payload: &str) -> Option<i64> {
    super::parse_payload(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_like_fibonacci_up_to_the_cap() {
        let s = Duration::from_secs;
        let got: Vec<u64> = (0..8)
            .map(|n| growing_delay(s(30), n, s(600)).as_secs())
            .collect();
        assert_eq!(got, [30, 30, 60, 90, 150, 240, 390, 600]);
        assert_eq!(growing_delay(s(30), 1000, s(600)), s(600));
    }
}

/// The providers this deployment has credentials for.
#[derive(Default)]
pub struct Configured {
    pub crypto: Option<std::sync::Arc<dyn PaymentProvider>>,
    pub yookassa: Option<std::sync::Arc<dyn PaymentProvider>>,
    /// The Crypto Pay watcher's interval.
    pub crypto_poll: Duration,
    /// The YooKassa reconciler's first interval.
    pub yookassa_poll: Duration,
}

impl Configured {
    /// The clients of the providers `config` has credentials for.
    pub fn from_config(config: &crate::config::Config) -> Result<Configured, String> {
        let p = &config.deployment.providers;
        let http = http_client(p.call_timeout)?;
        let mut out = Configured {
            crypto_poll: Duration::from_secs(30),
            yookassa_poll: Duration::from_secs(30),
            ..Configured::default()
        };
        if let Some(c) = &p.cryptopay {
            out.crypto = Some(std::sync::Arc::new(cryptopay::CryptoPay::new(
                http.clone(),
                c.api_url.clone(),
                c.token.clone(),
                config.catalog.cryptopay.accepted_assets.clone(),
                p.call_timeout,
            )));
            out.crypto_poll = c.poll_interval;
        }
        if let Some(y) = &p.yookassa {
            out.yookassa = Some(std::sync::Arc::new(yookassa::YooKassa::new(
                http,
                y.api_url.clone(),
                &y.shop_id,
                &y.secret_key,
                p.call_timeout,
            )));
            out.yookassa_poll = y.poll_interval;
        }
        Ok(out)
    }

    /// When an invoice just opened is first checked by its watcher.
    pub fn first_check(&self, provider: Provider) -> Duration {
        match provider {
            Provider::YooKassa => self.yookassa_poll,
            _ => self.crypto_poll,
        }
    }

    /// The client of `provider`, when it is configured (never for Telegram's own).
    pub fn get(&self, provider: Provider) -> Option<&std::sync::Arc<dyn PaymentProvider>> {
        match provider {
            Provider::Crypto => self.crypto.as_ref(),
            Provider::YooKassa => self.yookassa.as_ref(),
            _ => None,
        }
    }
}
