//! Payments: invoices, the pre-checkout handshake, charges, refunds and Star transactions.
//!
//! Why this exists: money is where the earlier system hurt most (payments taken but nothing
//! granted, confirmations doubled). The emulator reproduces Telegram's payment flow so Tollgate's
//! pipeline can be tested end to end:
//! 1. the bot sends an invoice (`sendInvoice`) or creates a link (`createInvoiceLink`), checked
//!    against Telegram's rules (for Stars: currency `XTR`, exactly one price, empty provider token;
//!    payload 1–128 bytes);
//! 2. the user pays (control API): a `pre_checkout_query` update is sent and the bot must answer
//!    `answerPreCheckoutQuery` within 10 s of emulated time, otherwise the payment fails;
//! 3. on `ok=true` a `successful_payment` service message arrives with a fresh
//!    `telegram_payment_charge_id`, and (for Stars) a Star transaction is recorded;
//! 4. `refundStarPayment` refunds a Stars charge once (`CHARGE_ALREADY_REFUNDED` afterwards) and
//!    emits a `refunded_payment` message.
//!
//! Non-XTR invoices (card payments through a provider) are accepted with a configured provider
//! token and follow the same handshake.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::types::{PaymentOutcome, PaymentStatus};
use crate::error::{ApiError, text};
use crate::model::{Content, InvoiceSpec, RefundedPayment, SuccessfulPayment, UserRecord};
use crate::params::{Params, strict_int};
use crate::queries::PreCheckoutAnswer;
use crate::state::{BotState, ChatState, lock};
use crate::updates::UpdateType;

/// The only subscription period Telegram accepts (30 days).
pub const SUBSCRIPTION_PERIOD_SECS: u32 = 2_592_000;

/// A payment that was made.
#[derive(Clone, Debug)]
pub struct Charge {
    /// Who paid.
    pub user: Arc<UserRecord>,
    /// Currency.
    pub currency: String,
    /// Amount in the smallest units.
    pub amount: i64,
    /// Invoice payload.
    pub payload: String,
    /// Subscription period, if any.
    pub subscription_period: Option<u32>,
    /// The first charge of the subscription this charge belongs to.
    pub subscription: Option<String>,
    /// Refunded already.
    pub refunded: bool,
    /// The provider's id (empty for Stars).
    pub provider_charge_id: String,
}

/// A Star transaction (incoming payment or outgoing refund).
#[derive(Clone, Debug)]
pub struct StarTransactionRecord {
    /// Same as the charge id.
    pub id: String,
    /// Stars.
    pub amount: i64,
    /// Emulated Unix time.
    pub date: i64,
    /// True for refunds (the user is the receiver), false for payments (the user is the source).
    pub refund: bool,
    /// The user.
    pub user: Arc<UserRecord>,
    /// Invoice payload.
    pub payload: String,
    /// Subscription period.
    pub subscription_period: Option<u32>,
}

/// A Stars subscription started through an invoice link with `subscription_period`.
#[derive(Clone, Debug)]
pub struct Subscription {
    /// The subscriber.
    pub user: Arc<UserRecord>,
    /// Stars per period.
    pub amount: i64,
    /// Invoice payload of the link.
    pub payload: String,
    /// Period in seconds.
    pub period: u32,
    /// End of the paid period (emulated Unix time).
    pub expires_at: i64,
    /// The bot canceled the extension (`editUserStarSubscription` with `is_canceled`).
    pub canceled: bool,
}

/// Invoice links, charges and Star transactions of one bot (bounded).
#[derive(Debug, Default)]
pub struct PaymentLedger {
    links: HashMap<String, Arc<InvoiceSpec>>,
    link_order: VecDeque<String>,
    charges: HashMap<String, Charge>,
    charge_order: VecDeque<String>,
    transactions: VecDeque<StarTransactionRecord>,
    /// Subscriptions by the charge id of their first payment.
    subscriptions: HashMap<String, Subscription>,
    subscription_order: VecDeque<String>,
    /// Star balance of the bot.
    pub star_balance: i64,
}

impl PaymentLedger {
    /// Remembers an invoice link.
    pub fn add_link(&mut self, slug: String, invoice: Arc<InvoiceSpec>, max: usize) {
        while self.links.len() >= max.max(1) {
            let Some(oldest) = self.link_order.pop_front() else {
                break;
            };
            self.links.remove(&oldest);
        }
        self.link_order.push_back(slug.clone());
        self.links.insert(slug, invoice);
    }

    /// The invoice behind a link slug.
    pub fn link(&self, slug: &str) -> Option<Arc<InvoiceSpec>> {
        self.links.get(slug).cloned()
    }

    fn add_charge(&mut self, id: String, charge: Charge, max: usize) {
        while self.charges.len() >= max.max(1) {
            let Some(oldest) = self.charge_order.pop_front() else {
                break;
            };
            self.charges.remove(&oldest);
        }
        self.charge_order.push_back(id.clone());
        self.charges.insert(id, charge);
    }

    fn add_transaction(&mut self, record: StarTransactionRecord, max: usize) {
        while self.transactions.len() >= max.max(1) {
            self.transactions.pop_front();
        }
        self.transactions.push_back(record);
    }

    /// A charge by id.
    pub fn charge(&self, id: &str) -> Option<&Charge> {
        self.charges.get(id)
    }

    fn add_subscription(&mut self, root: String, subscription: Subscription, max: usize) {
        while self.subscriptions.len() >= max.max(1) {
            let Some(oldest) = self.subscription_order.pop_front() else {
                break;
            };
            self.subscriptions.remove(&oldest);
        }
        self.subscription_order.push_back(root.clone());
        self.subscriptions.insert(root, subscription);
    }

    /// The subscription a charge belongs to, with the id of its first charge.
    fn subscription_of(&self, charge_id: &str) -> Option<(String, &Subscription)> {
        let root = self.charges.get(charge_id)?.subscription.clone()?;
        let subscription = self.subscriptions.get(&root)?;
        Some((root, subscription))
    }
}

/// Parses and checks the invoice parameters of sendInvoice / createInvoiceLink (TBA's
/// `get_input_message_invoice` followed by Telegram's server-side rules).
pub fn parse_invoice(
    bot: &BotState,
    params: &Params,
    is_link: bool,
) -> Result<InvoiceSpec, ApiError> {
    let title = params.required("title")?.to_owned();
    let description = params.required("description")?.to_owned();
    let payload = params.required("payload")?.to_owned();
    let provider_token = params.arg("provider_token").to_owned();
    let start_parameter = params.arg("start_parameter").to_owned();
    let currency = params.required("currency")?.to_owned();
    let prices_raw = params.required("prices")?;
    let Ok(prices_value) = serde_json::from_str::<Value>(prices_raw) else {
        return Err(ApiError::bad_request("can't parse prices JSON object"));
    };
    let prices = labeled_prices(&prices_value).map_err(|m| ApiError::from_status_message(&m))?;
    let max_tip_raw = params.arg("max_tip_amount");
    let max_tip = if max_tip_raw.is_empty() {
        0
    } else {
        strict_int(max_tip_raw)
            .ok_or_else(|| ApiError::bad_request("can't parse \"max_tip_amount\" as Number"))?
    };
    let has_suggested_tips = !matches!(params.arg("suggested_tip_amounts"), "" | "[]");
    let subscription_period = params.int_arg("subscription_period", 0, 0, i64::from(u32::MAX));
    let total_amount: i64 = prices.iter().map(|(_, a)| *a).sum();

    if currency == "XTR" {
        if !provider_token.is_empty() || prices.len() != 1 || max_tip > 0 || has_suggested_tips {
            return Err(ApiError::bad_request_static(text::STARS_INVOICE_INVALID));
        }
    } else if !bot
        .shared
        .config
        .payment_provider_tokens
        .contains(&provider_token)
    {
        return Err(ApiError::bad_request_static(text::PAYMENT_PROVIDER_INVALID));
    }
    if total_amount <= 0 || prices.iter().any(|(_, a)| *a <= 0 && currency == "XTR") {
        return Err(ApiError::bad_request("CURRENCY_TOTAL_AMOUNT_INVALID"));
    }
    if payload.len() > 128 {
        return Err(ApiError::bad_request_static(text::INVOICE_PAYLOAD_INVALID));
    }
    let subscription_period = if subscription_period > 0 {
        if !is_link
            || subscription_period != i64::from(SUBSCRIPTION_PERIOD_SECS)
            || currency != "XTR"
            || total_amount > 10_000
        {
            return Err(ApiError::bad_request("SUBSCRIPTION_PERIOD_INVALID"));
        }
        Some(SUBSCRIPTION_PERIOD_SECS)
    } else {
        None
    };
    Ok(InvoiceSpec {
        title,
        description,
        payload,
        currency,
        prices,
        total_amount,
        start_parameter,
        provider_token,
        subscription_period,
        photo_url: Some(params.arg("photo_url").to_owned()).filter(|u| !u.is_empty()),
    })
}

fn labeled_prices(value: &Value) -> Result<Vec<(String, i64)>, String> {
    let Value::Array(items) = value else {
        return Err("Expected an Array of labeled prices".to_owned());
    };
    let mut prices = Vec::with_capacity(items.len());
    for item in items {
        let price = (|| {
            let Value::Object(object) = item else {
                return Err("LabeledPrice must be an Object".to_owned());
            };
            let label = match object.get("label") {
                Some(Value::String(label)) => label.clone(),
                Some(_) => return Err("Field \"label\" must be of type String".to_owned()),
                None => return Err("Can't find field \"label\"".to_owned()),
            };
            if label.is_empty() {
                return Err("LabeledPrice label must be non-empty".to_owned());
            }
            let amount = match object.get("amount") {
                Some(Value::Number(n)) => n
                    .as_i64()
                    .ok_or_else(|| "Field \"amount\" must be a valid Number".to_owned())?,
                Some(Value::String(s)) => strict_int(s)
                    .ok_or_else(|| "Field \"amount\" must be a valid Number".to_owned())?,
                Some(_) => return Err("Field \"amount\" must be a Number".to_owned()),
                None => return Err("Can't find field \"amount\"".to_owned()),
            };
            Ok((label, amount))
        })()
        .map_err(|e| format!("Can't parse labeled price: {e}"))?;
        prices.push(price);
    }
    if prices.is_empty() {
        return Err("There must be at least one price".to_owned());
    }
    Ok(prices)
}

/// What the user is paying.
pub struct PaymentTarget {
    /// The invoice.
    pub invoice: Arc<InvoiceSpec>,
    /// The invoice message (chat, message id), when paying a message rather than a link.
    pub message: Option<(Arc<ChatState>, i64)>,
}

/// Runs the payment handshake for `user` (see the module documentation) and reports the outcome.
pub async fn pay(
    bot: &Arc<BotState>,
    user: Arc<UserRecord>,
    target: PaymentTarget,
) -> Result<PaymentOutcome, String> {
    let shared = &bot.shared;
    let private_chat = bot
        .chat(user.id)
        .ok_or_else(|| format!("user {} has no chat with the bot", user.id))?;
    if lock(&private_chat.inner).blocked {
        return Err(format!("user {} has blocked the bot", user.id));
    }
    if let Some((chat, message_id)) = &target.message {
        let inner = lock(&chat.inner);
        let (_, message) = inner
            .find(*message_id)
            .ok_or_else(|| format!("message {message_id} not found in chat {}", chat.id))?;
        if message.paid_by_charge.is_some() {
            return Err(format!("invoice message {message_id} is already paid"));
        }
    }
    let invoice = target.invoice.clone();
    let query_id = (shared.rng.next_u64() >> 1).to_string();
    let deadline_ms =
        shared.clock.now_ms() + i64::from(shared.config.pre_checkout_timeout_secs) * 1000;
    let answer_rx = lock(&bot.queries).open_pre_checkout(
        query_id.clone(),
        deadline_ms,
        shared.config.limits.max_open_queries,
    );
    let body = json!({
        "id": query_id,
        "from": user.as_ref(),
        "currency": invoice.currency,
        "total_amount": invoice.total_amount,
        "invoice_payload": invoice.payload,
    });
    bot.push_update(
        UpdateType::PreCheckoutQuery,
        format!("\"pre_checkout_query\":{body}"),
        user.id + (4_i64 << 33),
        150,
    );
    let answer = tokio::select! {
        answer = answer_rx => answer.ok(),
        () = shared.clock.sleep_until(deadline_ms) => None,
    };
    let declined = |status: PaymentStatus, error_message: Option<String>| PaymentOutcome {
        status,
        pre_checkout_query_id: query_id.clone(),
        telegram_payment_charge_id: None,
        provider_payment_charge_id: None,
        error_message,
        message_id: None,
    };
    match answer {
        None => {
            lock(&bot.queries).expire_pre_checkout(&query_id);
            return Ok(declined(PaymentStatus::Timeout, None));
        }
        Some(PreCheckoutAnswer::Declined(message)) => {
            return Ok(declined(PaymentStatus::Declined, Some(message)));
        }
        Some(PreCheckoutAnswer::Ok) => {}
    }
    // Charged: from here on the payment is final.
    let is_stars = invoice.currency == "XTR";
    let charge_id = if is_stars {
        format!("stxT{}", shared.rng.token(60))
    } else {
        format!(
            "{}_{}_{}",
            user.id,
            shared.clock.now_secs(),
            shared.rng.next_u64() % 1_000_000
        )
    };
    let provider_charge_id = if is_stars {
        String::new()
    } else {
        format!("pch_{}", shared.rng.token(24))
    };
    let date = shared.clock.now_secs();
    {
        let max = shared.config.limits.max_transactions;
        let mut ledger = lock(&bot.payments);
        ledger.add_charge(
            charge_id.clone(),
            Charge {
                user: user.clone(),
                currency: invoice.currency.clone(),
                amount: invoice.total_amount,
                payload: invoice.payload.clone(),
                subscription_period: invoice.subscription_period,
                subscription: invoice.subscription_period.map(|_| charge_id.clone()),
                refunded: false,
                provider_charge_id: provider_charge_id.clone(),
            },
            max,
        );
        if let Some(period) = invoice.subscription_period {
            ledger.add_subscription(
                charge_id.clone(),
                Subscription {
                    user: user.clone(),
                    amount: invoice.total_amount,
                    payload: invoice.payload.clone(),
                    period,
                    expires_at: date + i64::from(period),
                    canceled: false,
                },
                max,
            );
        }
        if is_stars {
            ledger.star_balance += invoice.total_amount;
            ledger.add_transaction(
                StarTransactionRecord {
                    id: charge_id.clone(),
                    amount: invoice.total_amount,
                    date,
                    refund: false,
                    user: user.clone(),
                    payload: invoice.payload.clone(),
                    subscription_period: invoice.subscription_period,
                },
                max,
            );
        }
    }
    if let Some((chat, message_id)) = &target.message {
        let found = lock(&chat.inner).find(*message_id);
        if let Some((index, message)) = found {
            let mut paid = (*message).clone();
            paid.paid_by_charge = Some(charge_id.clone());
            bot.replace_message(chat, index, Arc::new(paid));
        }
    }
    let payment = SuccessfulPayment {
        currency: invoice.currency.clone(),
        total_amount: invoice.total_amount,
        invoice_payload: invoice.payload.clone(),
        subscription_expiration_date: invoice.subscription_period.map(|p| date + i64::from(p)),
        is_recurring: invoice.subscription_period.is_some(),
        is_first_recurring: invoice.subscription_period.is_some(),
        telegram_payment_charge_id: charge_id.clone(),
        provider_payment_charge_id: provider_charge_id.clone(),
    };
    let (record, _) = bot.store_user_message(
        &private_chat,
        user.clone(),
        Content::SuccessfulPayment(payment),
        None,
    )?;
    Ok(PaymentOutcome {
        status: PaymentStatus::Paid,
        pre_checkout_query_id: query_id,
        telegram_payment_charge_id: Some(charge_id),
        provider_payment_charge_id: Some(provider_charge_id),
        error_message: None,
        message_id: Some(record.message_id),
    })
}

/// Charges the next period of a subscription (Telegram does this by itself when a period ends;
/// there is no pre-checkout query): a new charge, a Star transaction and a `successful_payment`
/// with `is_recurring` and the new `subscription_expiration_date`.
pub fn renew_subscription(bot: &BotState, charge_id: &str) -> Result<PaymentOutcome, String> {
    let shared = &bot.shared;
    let max = shared.config.limits.max_transactions;
    let date = shared.clock.now_secs();
    let new_charge = format!("stxT{}", shared.rng.token(60));
    let (user, payment) = {
        let mut ledger = lock(&bot.payments);
        let (root, subscription) = ledger
            .subscription_of(charge_id)
            .map(|(root, s)| (root, s.clone()))
            .ok_or_else(|| format!("{charge_id} is not a charge of a known subscription"))?;
        if subscription.canceled {
            return Err("the bot canceled this subscription; it is not renewed".to_owned());
        }
        let expires_at = subscription.expires_at.max(date) + i64::from(subscription.period);
        if let Some(s) = ledger.subscriptions.get_mut(&root) {
            s.expires_at = expires_at;
        }
        ledger.add_charge(
            new_charge.clone(),
            Charge {
                user: subscription.user.clone(),
                currency: "XTR".to_owned(),
                amount: subscription.amount,
                payload: subscription.payload.clone(),
                subscription_period: Some(subscription.period),
                subscription: Some(root),
                refunded: false,
                provider_charge_id: String::new(),
            },
            max,
        );
        ledger.star_balance += subscription.amount;
        ledger.add_transaction(
            StarTransactionRecord {
                id: new_charge.clone(),
                amount: subscription.amount,
                date,
                refund: false,
                user: subscription.user.clone(),
                payload: subscription.payload.clone(),
                subscription_period: Some(subscription.period),
            },
            max,
        );
        let payment = SuccessfulPayment {
            currency: "XTR".to_owned(),
            total_amount: subscription.amount,
            invoice_payload: subscription.payload.clone(),
            subscription_expiration_date: Some(expires_at),
            is_recurring: true,
            is_first_recurring: false,
            telegram_payment_charge_id: new_charge.clone(),
            provider_payment_charge_id: String::new(),
        };
        (subscription.user, payment)
    };
    let chat = bot
        .chat(user.id)
        .ok_or_else(|| format!("user {} has no chat with the bot", user.id))?;
    let (record, _) =
        bot.store_user_message(&chat, user, Content::SuccessfulPayment(payment), None)?;
    Ok(PaymentOutcome {
        status: PaymentStatus::Paid,
        pre_checkout_query_id: String::new(),
        telegram_payment_charge_id: Some(new_charge),
        provider_payment_charge_id: Some(String::new()),
        error_message: None,
        message_id: Some(record.message_id),
    })
}

/// `editUserStarSubscription`: cancel (or re-enable) the extension of a subscription.
pub fn edit_subscription(bot: &BotState, params: &Params) -> Result<(), ApiError> {
    let user_id = crate::params::lenient_int(params.arg("user_id")).max(0);
    if user_id == 0 {
        return Err(ApiError::bad_request("invalid user_id specified"));
    }
    let charge_id = params.required("telegram_payment_charge_id")?;
    let canceled = params.bool_arg("is_canceled");
    let mut ledger = lock(&bot.payments);
    let root = ledger
        .subscription_of(charge_id)
        .filter(|(_, s)| s.user.id == user_id)
        .map(|(root, _)| root)
        .ok_or_else(|| ApiError::bad_request_static(text::CHARGE_NOT_FOUND))?;
    if let Some(subscription) = ledger.subscriptions.get_mut(&root) {
        subscription.canceled = canceled;
    }
    Ok(())
}

/// `refundStarPayment`.
pub fn refund(bot: &BotState, params: &Params) -> Result<(), ApiError> {
    let user_id = crate::params::lenient_int(params.arg("user_id")).max(0);
    if user_id == 0 {
        return Err(ApiError::bad_request("invalid user_id specified"));
    }
    let charge_id = params.required("telegram_payment_charge_id")?;
    let shared = &bot.shared;
    let (user, refund) = {
        let mut ledger = lock(&bot.payments);
        let charge = ledger
            .charges
            .get_mut(charge_id)
            .filter(|c| c.user.id == user_id && c.currency == "XTR")
            .ok_or_else(|| ApiError::bad_request_static(text::CHARGE_NOT_FOUND))?;
        if charge.refunded {
            return Err(ApiError::bad_request_static(text::CHARGE_ALREADY_REFUNDED));
        }
        charge.refunded = true;
        let charge = charge.clone();
        ledger.star_balance -= charge.amount;
        ledger.add_transaction(
            StarTransactionRecord {
                id: charge_id.to_owned(),
                amount: charge.amount,
                date: shared.clock.now_secs(),
                refund: true,
                user: charge.user.clone(),
                payload: charge.payload.clone(),
                subscription_period: charge.subscription_period,
            },
            shared.config.limits.max_transactions,
        );
        let refund = RefundedPayment {
            currency: charge.currency.clone(),
            total_amount: charge.amount,
            invoice_payload: charge.payload.clone(),
            telegram_payment_charge_id: charge_id.to_owned(),
            provider_payment_charge_id: None,
        };
        (charge.user, refund)
    };
    if let Some(chat) = bot.chat(user.id) {
        // The refund stands even if the service message cannot be shown (blocked bot).
        let _ = bot.store_user_message(&chat, user, Content::RefundedPayment(refund), None);
    }
    Ok(())
}

/// `getStarTransactions`.
pub fn star_transactions(bot: &BotState, params: &Params) -> Value {
    let offset = usize::try_from(params.int_arg("offset", 0, 0, i64::from(i32::MAX))).unwrap_or(0);
    let limit = usize::try_from(params.int_arg("limit", 100, 1, 100)).unwrap_or(100);
    let newest_first = bot
        .star_transactions_newest_first
        .load(std::sync::atomic::Ordering::Relaxed);
    let ledger = lock(&bot.payments);
    // Chronological by default, as the Bot API documents; newest first when a test asks.
    let ordered: Box<dyn Iterator<Item = &StarTransactionRecord>> = if newest_first {
        Box::new(ledger.transactions.iter().rev())
    } else {
        Box::new(ledger.transactions.iter())
    };
    let transactions: Vec<Value> = ordered
        .skip(offset)
        .take(limit)
        .map(|t| {
            let mut partner = json!({
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": t.user.as_ref(),
                "invoice_payload": t.payload,
            });
            if let Some(period) = t.subscription_period {
                partner["subscription_period"] = json!(period);
            }
            let mut transaction = json!({
                "id": t.id,
                "amount": t.amount,
                "date": t.date,
            });
            transaction[if t.refund { "receiver" } else { "source" }] = partner;
            transaction
        })
        .collect();
    json!({ "transactions": transactions })
}

/// `getMyStarBalance`.
pub fn star_balance(bot: &BotState) -> Value {
    json!({ "amount": lock(&bot.payments).star_balance })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labeled_price_errors() {
        assert_eq!(
            labeled_prices(&json!([])).unwrap_err(),
            "There must be at least one price"
        );
        assert_eq!(
            labeled_prices(&json!([{"label": "", "amount": 1}])).unwrap_err(),
            "Can't parse labeled price: LabeledPrice label must be non-empty"
        );
        assert_eq!(
            labeled_prices(&json!([{"label": "x"}])).unwrap_err(),
            "Can't parse labeled price: Can't find field \"amount\""
        );
        assert_eq!(
            labeled_prices(&json!([{"label": "x", "amount": 5}])).unwrap(),
            vec![("x".to_owned(), 5)]
        );
    }
}
