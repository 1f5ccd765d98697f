//! A typed client of the control API, for tests (in-process or against the binary).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::control::server::{Millis, Now, Times, UrlBody};
use crate::model::{
    CancelOptions, FaultKind, FaultSpec, Invoice, Notification, NotificationAction,
    NotificationRule, NotificationState, PayOptions, Payment, Provider, Refund, WebhookUrls,
};

/// A control API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Transport error.
    #[error("control API unreachable: {0}")]
    Http(#[from] reqwest::Error),
    /// The emulator refused (404 unknown object, 409 wrong state, 400 bad input).
    #[error("control API answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The emulator's message.
        message: String,
    },
    /// `wait_for_*` ran out of time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// The control API of one emulator.
#[derive(Clone, Debug)]
pub struct ControlClient {
    base: String,
    http: reqwest::Client,
}

impl ControlClient {
    /// A client for the emulator at `base_url` (`http://127.0.0.1:PORT`).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base: base_url.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    async fn answer<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ControlError> {
        let status = response.status();
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return serde_json::from_str("null").map_err(|e| ControlError::Refused {
                    status: status.as_u16(),
                    message: e.to_string(),
                });
            }
            return Ok(response.json().await?);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        Err(ControlError::Refused {
            status: status.as_u16(),
            message,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ControlError> {
        let response = self
            .http
            .get(format!("{}/control{path}", self.base))
            .send()
            .await?;
        Self::answer(response).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ControlError> {
        let response = self
            .http
            .post(format!("{}/control{path}", self.base))
            .json(body)
            .send()
            .await?;
        Self::answer(response).await
    }

    async fn delete(&self, path: &str) -> Result<(), ControlError> {
        let response = self
            .http
            .delete(format!("{}/control{path}", self.base))
            .send()
            .await?;
        Self::answer::<()>(response).await
    }

    /// Forgets every invoice, payment, refund, fault, rule and notification; webhook URLs go
    /// back to the configured ones. Ids keep growing.
    pub async fn reset(&self) -> Result<(), ControlError> {
        self.post::<_, ()>("/reset", &serde_json::json!({})).await
    }

    /// API calls completed so far per method: Crypto Pay method names (`getInvoices`) and
    /// YooKassa operations (`payments.create`), failed and hung ones included — e.g. what a
    /// watcher costs the provider, or whether a call that hung has finished.
    pub async fn calls(&self) -> Result<std::collections::BTreeMap<String, u64>, ControlError> {
        self.get("/calls").await
    }

    /// Waits (polling every 20 ms, up to `timeout`) until `method` completed at least `n` calls.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        n: u64,
        timeout: Duration,
    ) -> Result<u64, ControlError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let done = self.calls().await?.get(method).copied().unwrap_or(0);
            if done >= n {
                return Ok(done);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError::Timeout(format!("{n} calls of {method}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Emulated now, Unix ms.
    pub async fn now_ms(&self) -> Result<i64, ControlError> {
        Ok(self.get::<Now>("/clock").await?.now_ms)
    }

    /// Moves emulated time forward (expiry, retry schedules); returns the new now (Unix ms).
    pub async fn advance_clock(&self, by: Duration) -> Result<i64, ControlError> {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        Ok(self
            .post::<_, Now>("/clock/advance", &Millis { ms })
            .await?
            .now_ms)
    }

    /// The webhook URLs.
    pub async fn webhooks(&self) -> Result<WebhookUrls, ControlError> {
        self.get("/webhooks").await
    }

    /// Sets (or with `None` removes) a provider's webhook URL.
    pub async fn set_webhook(
        &self,
        provider: Provider,
        url: Option<&str>,
    ) -> Result<WebhookUrls, ControlError> {
        let name = match provider {
            Provider::Cryptopay => "cryptopay",
            Provider::Yookassa => "yookassa",
        };
        self.post(
            &format!("/webhooks/{name}"),
            &UrlBody {
                url: url.map(str::to_owned),
            },
        )
        .await
    }

    /// Every Crypto Pay invoice, oldest first.
    pub async fn invoices(&self) -> Result<Vec<Invoice>, ControlError> {
        self.get("/cryptopay/invoices").await
    }

    /// One invoice.
    pub async fn invoice(&self, invoice_id: i64) -> Result<Invoice, ControlError> {
        self.get(&format!("/cryptopay/invoices/{invoice_id}")).await
    }

    /// Pays an active invoice as its payer would (queues the signed `invoice_paid` webhook).
    pub async fn pay_invoice(&self, invoice_id: i64) -> Result<Invoice, ControlError> {
        self.pay_invoice_with(invoice_id, &PayOptions::default())
            .await
    }

    /// Pays an active invoice reporting another amount or currency.
    pub async fn pay_invoice_with(
        &self,
        invoice_id: i64,
        options: &PayOptions,
    ) -> Result<Invoice, ControlError> {
        self.post(&format!("/cryptopay/invoices/{invoice_id}/pay"), options)
            .await
    }

    /// Expires an active invoice now.
    pub async fn expire_invoice(&self, invoice_id: i64) -> Result<Invoice, ControlError> {
        self.post(
            &format!("/cryptopay/invoices/{invoice_id}/expire"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Every YooKassa payment, oldest first.
    pub async fn payments(&self) -> Result<Vec<Payment>, ControlError> {
        self.get("/yookassa/payments").await
    }

    /// One payment.
    pub async fn payment(&self, id: &str) -> Result<Payment, ControlError> {
        self.get(&format!("/yookassa/payments/{id}")).await
    }

    /// The 54-FZ receipt a payment was created with, as sent (`None` without one).
    pub async fn payment_receipt(
        &self,
        id: &str,
    ) -> Result<Option<serde_json::Value>, ControlError> {
        self.get(&format!("/yookassa/payments/{id}/receipt")).await
    }

    /// Pays a pending payment (succeeded, or waiting_for_capture without capture), with its
    /// notification.
    pub async fn pay_payment(&self, id: &str) -> Result<Payment, ControlError> {
        self.pay_payment_with(id, &PayOptions::default()).await
    }

    /// Pays a pending payment reporting another amount or currency.
    pub async fn pay_payment_with(
        &self,
        id: &str,
        options: &PayOptions,
    ) -> Result<Payment, ControlError> {
        self.post(&format!("/yookassa/payments/{id}/pay"), options)
            .await
    }

    /// Cancels a pending (declined) or waiting payment, with its notification.
    pub async fn cancel_payment(
        &self,
        id: &str,
        options: &CancelOptions,
    ) -> Result<Payment, ControlError> {
        self.post(&format!("/yookassa/payments/{id}/cancel"), options)
            .await
    }

    /// Expires a pending or waiting payment now (`expired_on_confirmation` /
    /// `expired_on_capture`), with its notification.
    pub async fn expire_payment(&self, id: &str) -> Result<Payment, ControlError> {
        self.post(
            &format!("/yookassa/payments/{id}/expire"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Every refund.
    pub async fn refunds(&self) -> Result<Vec<Refund>, ControlError> {
        self.get("/yookassa/refunds").await
    }

    /// Makes the next `count` calls of `method` fail with `fault` (see [`FaultSpec::method`]).
    pub async fn fail_next(
        &self,
        method: &str,
        count: u32,
        fault: FaultKind,
    ) -> Result<Vec<FaultSpec>, ControlError> {
        self.post(
            "/faults",
            &FaultSpec {
                method: method.to_owned(),
                fault,
                count,
            },
        )
        .await
    }

    /// Queued faults.
    pub async fn faults(&self) -> Result<Vec<FaultSpec>, ControlError> {
        self.get("/faults").await
    }

    /// Removes every queued fault.
    pub async fn clear_faults(&self) -> Result<(), ControlError> {
        self.delete("/faults").await
    }

    /// The next `count` notifications of `provider` (or either) are dropped (never sent).
    pub async fn drop_next_notifications(
        &self,
        provider: Option<Provider>,
        count: u32,
    ) -> Result<Vec<NotificationRule>, ControlError> {
        self.add_rule(provider, NotificationAction::Drop, count)
            .await
    }

    /// The next `count` notifications of `provider` (or either) wait `by` of emulated time
    /// before their first attempt.
    pub async fn delay_next_notifications(
        &self,
        provider: Option<Provider>,
        count: u32,
        by: Duration,
    ) -> Result<Vec<NotificationRule>, ControlError> {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.add_rule(provider, NotificationAction::Delay { ms }, count)
            .await
    }

    async fn add_rule(
        &self,
        provider: Option<Provider>,
        action: NotificationAction,
        count: u32,
    ) -> Result<Vec<NotificationRule>, ControlError> {
        self.post(
            "/notifications/rules",
            &NotificationRule {
                provider,
                action,
                count,
            },
        )
        .await
    }

    /// Removes every queued notification rule.
    pub async fn clear_notification_rules(&self) -> Result<(), ControlError> {
        self.delete("/notifications/rules").await
    }

    /// Every notification kept, oldest first, with its attempts.
    pub async fn notifications(&self) -> Result<Vec<Notification>, ControlError> {
        self.get("/notifications").await
    }

    /// One notification.
    pub async fn notification(&self, id: u64) -> Result<Notification, ControlError> {
        self.get(&format!("/notifications/{id}")).await
    }

    /// Sends `times` more copies of a notification (same bytes, same signature), as a provider
    /// redelivering it; returns the copies' ids.
    pub async fn repeat_notification(&self, id: u64, times: u32) -> Result<Vec<u64>, ControlError> {
        self.post(&format!("/notifications/{id}/repeat"), &Times { times })
            .await
    }

    /// Attempts a delayed, failed, dropped or given-up notification now.
    pub async fn deliver_now(&self, id: u64) -> Result<Notification, ControlError> {
        self.post(
            &format!("/notifications/{id}/deliver"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Waits (polling every 20 ms, up to `timeout`) for a notification matching `filter`.
    pub async fn wait_for_notification(
        &self,
        timeout: Duration,
        filter: impl Fn(&Notification) -> bool,
    ) -> Result<Notification, ControlError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.notifications().await?.into_iter().find(|n| filter(n)) {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError::Timeout("a matching notification".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (up to `timeout`) until notification `id` is delivered, dropped or given up.
    pub async fn wait_until_settled(
        &self,
        id: u64,
        timeout: Duration,
    ) -> Result<Notification, ControlError> {
        self.wait_for_notification(timeout, |n| {
            n.id == id
                && matches!(
                    n.state,
                    NotificationState::Delivered
                        | NotificationState::Dropped
                        | NotificationState::GaveUp
                )
        })
        .await
    }
}
