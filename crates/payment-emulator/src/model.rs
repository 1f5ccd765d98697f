//! The objects both APIs return, in their wire shapes, and the control API's types.
//!
//! Why one module: the HTTP handlers serialize these, the notifications carry them, and the typed
//! control client deserializes them — one definition keeps the three in agreement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- Crypto Pay

/// A Crypto Pay invoice's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Waiting for the payer.
    Active,
    /// Paid.
    Paid,
    /// Its `expires_in` passed unpaid.
    Expired,
}

impl InvoiceStatus {
    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paid => "paid",
            Self::Expired => "expired",
        }
    }
}

/// A Crypto Pay invoice, as `createInvoice` / `getInvoices` / the webhook return it. Amounts are
/// strings, as the real API sends them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// Unique id.
    pub invoice_id: i64,
    /// Hash used in the payment links.
    pub hash: String,
    /// `crypto` or `fiat`.
    pub currency_type: String,
    /// The crypto asset (crypto invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The fiat currency (fiat invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiat: Option<String>,
    /// The amount, in `asset` or `fiat`.
    pub amount: String,
    /// Assets a fiat invoice may be paid in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_assets: Option<Vec<String>>,
    /// The asset actually paid (paid invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_asset: Option<String>,
    /// The amount actually paid, in `paid_asset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_amount: Option<String>,
    /// `paid_asset` price in USD at payment (made-up fixed rates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_usd_rate: Option<String>,
    /// `paid_asset` price in `fiat` at payment (fiat invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_fiat_rate: Option<String>,
    /// Fee asset (paid invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_asset: Option<String>,
    /// Fee amount (paid invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_amount: Option<String>,
    /// Deprecated alias of `bot_invoice_url`; here the emulator's payment page.
    pub pay_url: String,
    /// The link the payer opens; here the emulator's payment page.
    pub bot_invoice_url: String,
    /// Mini-app link; here the emulator's payment page.
    pub mini_app_invoice_url: String,
    /// Web-app link; here the emulator's payment page.
    pub web_app_invoice_url: String,
    /// Description shown to the payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `active`, `paid` or `expired`.
    pub status: InvoiceStatus,
    /// ISO-8601 creation instant.
    pub created_at: String,
    /// ISO-8601 expiry instant (when `expires_in` was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// ISO-8601 payment instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<String>,
    /// Whether the payer hid their identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_anonymously: Option<bool>,
    /// The payer's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Message shown after payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_message: Option<String>,
    /// The merchant's payload, unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Button shown after payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_btn_name: Option<String>,
    /// Its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_btn_url: Option<String>,
    /// Whether the payer may comment.
    pub allow_comments: bool,
    /// Whether the payer may pay anonymously.
    pub allow_anonymous: bool,
}

/// The body of a Crypto Pay webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CryptoPayUpdate {
    /// Non-unique update id.
    pub update_id: i64,
    /// Always `invoice_paid`.
    pub update_type: String,
    /// ISO-8601 instant the update was made.
    pub request_date: String,
    /// The paid invoice.
    pub payload: Invoice,
}

// ---------------------------------------------------------------- YooKassa

/// `{"value":"199.00","currency":"RUB"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Decimal string with two fraction digits.
    pub value: String,
    /// ISO-4217 code.
    pub currency: String,
}

/// A YooKassa payment's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Waiting for the payer.
    Pending,
    /// Paid, waiting for the merchant's capture (`capture: false`).
    WaitingForCapture,
    /// Done (final).
    Succeeded,
    /// Cancelled (final); see `cancellation_details`.
    Canceled,
}

impl PaymentStatus {
    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::WaitingForCapture => "waiting_for_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
        }
    }
}

/// Who cancelled a payment and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationDetails {
    /// `merchant`, `payment_network`, `yoo_money`.
    pub party: String,
    /// E.g. `expired_on_confirmation`, `canceled_by_merchant`, `insufficient_funds`.
    pub reason: String,
}

/// The payment's confirmation: where the payer goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Always `redirect` here.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the payer returns afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// The payment page (the emulator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_url: Option<String>,
}

/// The shop receiving the money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The shop id.
    pub account_id: String,
    /// The gateway id.
    pub gateway_id: String,
}

/// How the payer paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    /// `bank_card`, `sbp`, `yoo_money`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Method id.
    pub id: String,
    /// Whether it was saved for later payments.
    pub saved: bool,
    /// Human title, e.g. `Bank card *4444`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A YooKassa payment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// Unique id.
    pub id: String,
    /// Status.
    pub status: PaymentStatus,
    /// Whether the payer paid (true in `waiting_for_capture` and `succeeded`).
    pub paid: bool,
    /// The amount.
    pub amount: Amount,
    /// The amount after YooKassa's fee (paid payments; the emulator takes no fee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub income_amount: Option<Amount>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The shop.
    pub recipient: Recipient,
    /// How it was paid (once paid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<PaymentMethod>,
    /// ISO-8601 capture instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    /// ISO-8601 creation instant.
    pub created_at: String,
    /// ISO-8601 capture deadline (`waiting_for_capture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Where the payer goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    /// Always true (test shop).
    pub test: bool,
    /// Refunded so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_amount: Option<Amount>,
    /// Whether a refund is possible.
    pub refundable: bool,
    /// The merchant's metadata, unchanged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Why it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_details: Option<CancellationDetails>,
    /// `pending` / `succeeded` when a receipt was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_registration: Option<String>,
    /// The merchant's customer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_customer_id: Option<String>,
}

/// A YooKassa refund.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    /// Unique id.
    pub id: String,
    /// The refunded payment.
    pub payment_id: String,
    /// `succeeded` (the emulator refunds at once).
    pub status: String,
    /// The refunded amount.
    pub amount: Amount,
    /// ISO-8601 creation instant.
    pub created_at: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GET /v3/payments` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentList {
    /// Always `list`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Newest first.
    pub items: Vec<Payment>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A YooKassa notification body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct YooKassaNotification {
    /// Always `notification`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `payment.succeeded`, `payment.waiting_for_capture`, `payment.canceled`, `refund.succeeded`.
    pub event: String,
    /// The object as of the event.
    pub object: serde_json::Value,
}

// ---------------------------------------------------------------- control API

/// Which emulated provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Crypto Pay (@CryptoBot).
    Cryptopay,
    /// YooKassa.
    Yookassa,
}

/// How a paid object deviates from what was asked (underpaid, foreign currency...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayOptions {
    /// Report this amount instead (Crypto Pay: the invoice's `amount`; YooKassa: `amount.value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Report this currency instead (Crypto Pay: `fiat` of a fiat invoice or `asset` of a crypto
    /// one; YooKassa: `amount.currency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Crypto Pay: the asset the payer paid with (default: the first accepted one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_asset: Option<String>,
}

/// Why a YooKassa payment is cancelled from the control API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOptions {
    /// Default: `payment_network` for a pending payment, `merchant` for one waiting for capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    /// Default: `general_decline` / `canceled_by_merchant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How an API call fails on purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 500 in the provider's error shape; nothing is executed.
    ServerError,
    /// The call is executed, then answered HTTP 500 (YooKassa's "result unknown").
    ServerErrorAfterExecuting,
    /// The answer is held for `ms` milliseconds (real time), then the call is executed normally
    /// — unless the client gave up first, in which case it still executes (as a real provider
    /// would).
    Hang {
        /// How long.
        ms: u64,
    },
}

/// A queued fault: the next `count` calls of `method` fail with `fault`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Crypto Pay method name (`createInvoice`, `getInvoices`, `deleteInvoice`, `getMe`) or
    /// YooKassa operation (`payments.create`, `payments.get`, `payments.list`,
    /// `payments.capture`, `payments.cancel`, `refunds.create`, `refunds.get`, `refunds.list`,
    /// `me`), or `*`
    /// for every call.
    pub method: String,
    /// How they fail.
    pub fault: FaultKind,
    /// How many calls.
    pub count: u32,
}

/// What happens to the next notifications.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotificationAction {
    /// Never sent (a lost webhook).
    Drop,
    /// First attempt only after `ms` of emulated time (or `deliver_now`).
    Delay {
        /// How long.
        ms: u64,
    },
}

/// A queued rule: the next `count` notifications (of `provider`, or of either) get `action`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRule {
    /// Which provider's notifications; `None`: either.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// What happens to them.
    pub action: NotificationAction,
    /// How many.
    pub count: u32,
}

/// Where a notification is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationState {
    /// Waiting for its next attempt (`next_attempt_at_ms`).
    Pending,
    /// An attempt is under way.
    InFlight,
    /// Answered HTTP 200.
    Delivered,
    /// Dropped by a rule; never sent.
    Dropped,
    /// Every attempt failed and the retry window ended.
    GaveUp,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Emulated instant it started (Unix ms).
    pub at_ms: i64,
    /// The URL it went to.
    pub url: String,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// Transport error or timeout, if any.
    pub error: Option<String>,
}

/// A notification (webhook delivery) and its attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id (control API).
    pub id: u64,
    /// Which provider sent it.
    pub provider: Provider,
    /// `invoice_paid`, `payment.succeeded`, ...
    pub event: String,
    /// Invoice id or payment/refund id.
    pub object_id: String,
    /// The exact body sent.
    pub body: String,
    /// The `crypto-pay-api-signature` header (Crypto Pay only).
    pub signature: Option<String>,
    /// Where it is.
    pub state: NotificationState,
    /// Emulated instant of the next attempt (Unix ms), while pending.
    pub next_attempt_at_ms: Option<i64>,
    /// Emulated instant it was made (Unix ms).
    pub created_at_ms: i64,
    /// The notification it repeats (control API `repeat`).
    pub repeat_of: Option<u64>,
    /// Attempts so far, oldest first.
    pub attempts: Vec<Attempt>,
}

/// The webhook URLs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUrls {
    /// Crypto Pay's.
    pub cryptopay: Option<String>,
    /// YooKassa's.
    pub yookassa: Option<String>,
}
