//! YooKassa (API v3): card and SBP payments with a redirect confirmation.
//!
//! `POST /v3/payments` carries an `Idempotence-Key` derived from the purchase
//! ([`idempotence_key`]), so a retry after a timeout or a 5xx returns the same payment instead
//! of making another; `capture` is sent as `true` (the default is two-stage). A notification
//! carries no signature: it is only a hint naming a payment, which is fetched by id and acted
//! on as the API states it. Only `succeeded` is money; `waiting_for_capture` (which we never
//! ask for) and `pending` are open; `canceled` has ended. Refunds are `POST /v3/refunds`
//! with their own key. Amounts are decimal strings with two places, parsed exactly.

use std::time::Duration;

use base64::Engine;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::{
    NewPayment, Notice, PaymentProvider, ProviderError, Remote, RemoteStatus, transport_error,
};
use crate::billing::Provider;
use crate::config::secret::Secret;
use crate::domain::money::{Currency, Money};

/// The Idempotence-Key of the payment of purchase `purchase_id`: the same on every retry.
pub fn idempotence_key(purchase_id: i64) -> String {
    format!("tollgate-purchase-{purchase_id}")
}

/// A YooKassa shop's client.
pub struct YooKassa {
    http: reqwest::Client,
    base: Url,
    auth: Secret<String>,
    timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct Payment {
    id: String,
    status: String,
    amount: Amount,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    confirmation: Option<Confirmation>,
    #[serde(default)]
    refunded_amount: Option<Amount>,
}

#[derive(Debug, Deserialize)]
struct Amount {
    value: String,
    currency: String,
}

#[derive(Debug, Deserialize)]
struct Confirmation {
    #[serde(default)]
    confirmation_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(default)]
    event: String,
    object: NotificationObject,
}

#[derive(Debug, Deserialize)]
struct NotificationObject {
    id: String,
    /// A refund's payment.
    #[serde(default)]
    payment_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

impl YooKassa {
    pub fn new(
        http: reqwest::Client,
        base: Url,
        shop_id: &str,
        secret_key: &Secret<String>,
        timeout: Duration,
    ) -> YooKassa {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{shop_id}:{}", secret_key.expose()));
        YooKassa {
            http,
            base,
            auth: Secret::new(format!("Basic {basic}")),
            timeout,
        }
    }

    fn url(&self, path: &str) -> Result<Url, ProviderError> {
        self.base
            .join(path)
            .map_err(|e| ProviderError::Refused(format!("bad base URL: {e}")))
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, ProviderError> {
        let res = req
            .header("Authorization", self.auth.expose())
            .send()
            .await
            .map_err(|e| transport_error(&e, self.timeout))?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| transport_error(&e, self.timeout))?;
        if status.is_success() && status.as_u16() != 202 {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ProviderError::Malformed(format!("{what}: {e}")));
        }
        let err: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let text = format!(
            "{what}: HTTP {status} {} {}",
            err.as_ref()
                .and_then(|e| e.code.as_deref())
                .unwrap_or_default(),
            err.as_ref()
                .and_then(|e| e.description.as_deref())
                .unwrap_or_default()
        );
        // 500 is "outcome unknown": repeat with the same key. 202 is "still processing".
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 202 {
            Err(ProviderError::Unavailable(text))
        } else if status.as_u16() == 404 {
            Err(ProviderError::NotFound(text))
        } else {
            Err(ProviderError::Refused(text))
        }
    }

    fn remote(value: Value) -> Result<Remote, ProviderError> {
        let raw = value.to_string();
        let p: Payment = serde_json::from_value(value)
            .map_err(|e| ProviderError::Malformed(format!("payment: {e}")))?;
        let status = match p.status.as_str() {
            "succeeded" => RemoteStatus::Paid,
            "pending" | "waiting_for_capture" => RemoteStatus::Open,
            "canceled" => RemoteStatus::Ended,
            other => {
                return Err(ProviderError::Malformed(format!(
                    "payment {}: status {other:?}",
                    p.id
                )));
            }
        };
        // An amount in minor units; a refunded amount is in the payment's currency.
        let minor = |a: &Amount| {
            a.currency
                .parse::<Currency>()
                .ok()
                .filter(|_| a.currency == p.amount.currency)
                .and_then(|c| Money::parse_major(&a.value, c).ok())
                .map(|m| m.minor)
                .ok_or_else(|| {
                    ProviderError::Malformed(format!(
                        "payment {}: amount {:?} {}",
                        p.id, a.value, a.currency
                    ))
                })
        };
        let amount_minor = minor(&p.amount)?;
        let refunded_minor = match &p.refunded_amount {
            Some(r) => minor(r)?,
            None => 0,
        };
        let purchase_id = p
            .metadata
            .as_ref()
            .and_then(|m| m.get("purchase_id"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|id| *id > 0);
        Ok(Remote {
            external_id: p.id,
            status,
            amount_minor,
            currency: p.amount.currency,
            purchase_id,
            refunded_minor,
            url: p.confirmation.and_then(|c| c.confirmation_url),
            raw,
        })
    }
}

impl PaymentProvider for YooKassa {
    fn provider(&self) -> Provider {
        Provider::YooKassa
    }

    fn create<'a>(&'a self, new: &'a NewPayment) -> BoxFuture<'a, Result<Remote, ProviderError>> {
        Box::pin(async move {
            let amount = json!({
                "value": new.amount.format_major(),
                "currency": new.amount.currency.code(),
            });
            let description: String = new.description.chars().take(128).collect();
            let mut body = json!({
                "amount": amount,
                "capture": true,
                "confirmation": {
                    "type": "redirect",
                    "return_url": new.return_url.clone().unwrap_or_else(|| "https://t.me".into()),
                },
                "description": description,
                "metadata": { "purchase_id": new.purchase_id.to_string() },
            });
            if let (Some(contact), Some(o)) = (&new.receipt_contact, body.as_object_mut()) {
                let customer = if contact.contains('@') {
                    json!({ "email": contact })
                } else {
                    json!({ "phone": contact })
                };
                let mut receipt = json!({
                    "customer": customer,
                    "items": [{
                        "description": description,
                        "quantity": "1.00",
                        "amount": amount,
                        "vat_code": new.vat_code,
                        "payment_subject": "service",
                        "payment_mode": "full_payment",
                    }],
                });
                if let (Some(code), Some(r)) = (new.tax_system_code, receipt.as_object_mut()) {
                    r.insert("tax_system_code".into(), json!(code));
                }
                o.insert("receipt".into(), receipt);
            }
            let req = self
                .http
                .post(self.url("payments")?)
                .header("Idempotence-Key", idempotence_key(new.purchase_id))
                .json(&body);
            Self::remote(self.send(req, "create payment").await?)
        })
    }

    fn verify_notification(
        &self,
        _headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Notice, ProviderError> {
        let n: Notification = serde_json::from_slice(body)
            .map_err(|e| ProviderError::Malformed(format!("notification: {e}")))?;
        let id = if n.event.starts_with("payment.") {
            n.object.id
        } else if n.event == "refund.succeeded" {
            // A refund made anywhere, the shop's dashboard included: the payment it refunds
            // is fetched, and its `refunded_amount` says what went back.
            n.object.payment_id.unwrap_or_default()
        } else {
            return Ok(Notice::Ignored);
        };
        if id.is_empty() || id.len() > 64 {
            return Err(ProviderError::Malformed("notification: payment id".into()));
        }
        Ok(Notice::Hint { external_id: id })
    }

    fn fetch<'a>(&'a self, external_id: &'a str) -> BoxFuture<'a, Result<Remote, ProviderError>> {
        Box::pin(async move {
            if external_id.is_empty()
                || !external_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ProviderError::Refused(format!(
                    "payment id {external_id:?}"
                )));
            }
            let req = self.http.get(self.url(&format!("payments/{external_id}"))?);
            Self::remote(self.send(req, "get payment").await?)
        })
    }

    fn fetch_many<'a>(
        &'a self,
        external_ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Remote>, ProviderError>> {
        // No batch by ids: one GET each (the reconciler's batches are small).
        Box::pin(async move {
            let mut all = Vec::with_capacity(external_ids.len());
            for id in external_ids {
                match self.fetch(id).await {
                    Ok(r) => all.push(r),
                    // Refused or unreadable, which asking again will not change: left out
                    // like a payment the provider does not list, so the rest are still asked
                    // about and this one goes to the back of the queue.
                    Err(e) if !e.is_transient() => {
                        tracing::warn!(id = %id, error = %e, "a YooKassa payment cannot be read; left out of this pass");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(all)
        })
    }

    fn list_recent(&self) -> BoxFuture<'_, Result<Vec<Remote>, ProviderError>> {
        Box::pin(async move {
            let mut url = self.url("payments")?;
            url.query_pairs_mut().append_pair("limit", "100");
            let v = self.send(self.http.get(url), "list payments").await?;
            let items = v
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            items.into_iter().map(Self::remote).collect()
        })
    }

    fn cancel<'a>(&'a self, _external_id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        // A pending payment ends on its own (canceled, expired_on_confirmation).
        Box::pin(async { Ok(()) })
    }

    fn refund<'a>(
        &'a self,
        external_id: &'a str,
        amount: Money,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let body = json!({
                "payment_id": external_id,
                "amount": { "value": amount.format_major(), "currency": amount.currency.code() },
            });
            let req = self
                .http
                .post(self.url("refunds")?)
                .header("Idempotence-Key", key)
                .json(&body);
            let v = self.send(req, "refund").await?;
            match v.get("status").and_then(Value::as_str) {
                Some("succeeded") | Some("pending") => Ok(()),
                Some(other) => Err(ProviderError::Refused(format!("refund {other}"))),
                None => Err(ProviderError::Malformed("refund: no status".into())),
            }
        })
    }
}
