//! Webhook intake and registration.
//!
//! The endpoint does the least that makes an update safe: check the secret header in
//! constant time (401), refuse oversized bodies (413), read the update's routing head, store
//! the raw update with `update_id` as the key, and answer 200 only after the commit — 503 if
//! it cannot be stored, so Telegram retries (docs/reliability.md B1). Handlers never run inside the
//! request; a killed process loses nothing Telegram was told is stored.
//!
//! Registration belongs to one process (a lease): it compares `getWebhookInfo` with what
//! this deployment wants and calls `setWebhook` only when they differ — never with
//! `drop_pending_updates` (A6). Nothing on the shutdown path touches the registration (A7).
//! Every process polls `getWebhookInfo` for its `pending_update_count` and last error; when
//! that call fails, `/readyz` says so in the intake's state (readiness itself stays with the
//! database: deliveries may still arrive and are stored).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::api::{ApiError, BotApi};
use super::inbox::{InboxWriter, NewUpdate, StoreError, Stored};
use super::metrics::{ModeLabels, PipelineMetrics};
use super::update::{ALLOWED_UPDATES, parse_head};
use crate::backoff::Backoff;
use crate::config::Secret;
use crate::http::Readiness;
use crate::lease::{Keeper, Lease};
use crate::store::Db;
use crate::supervisor::{Component, Heartbeat, RunFuture, idle};
use crate::time::SharedClock;

/// Largest update body accepted (Telegram updates are a few KiB).
pub const MAX_UPDATE_BYTES: usize = 256 * 1024;
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// How often the registration is compared with Telegram's (`getWebhookInfo`); a failed check
/// is retried sooner, with backoff from 1 s.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Intake {
    secret: Secret<String>,
    writer: InboxWriter,
    wake: Arc<Notify>,
    metrics: PipelineMetrics,
}

/// The webhook route at `path`.
pub fn routes(
    path: &str,
    secret: Secret<String>,
    writer: InboxWriter,
    wake: Arc<Notify>,
    metrics: PipelineMetrics,
) -> Router {
    Router::new()
        .route(path, post(receive))
        .layer(DefaultBodyLimit::max(MAX_UPDATE_BYTES))
        .with_state(Intake {
            secret,
            writer,
            wake,
            metrics,
        })
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

async fn receive(State(intake): State<Intake>, headers: HeaderMap, body: Bytes) -> Response {
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let expected = intake.secret.expose().as_bytes();
    // `ct_eq` on slices of different lengths is false without comparing contents.
    if !bool::from(given.ct_eq(expected)) {
        return plain(StatusCode::UNAUTHORIZED, "wrong or missing secret token");
    }
    let raw = match String::from_utf8(body.to_vec()) {
        Ok(s) => s,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "the body is not UTF-8"),
    };
    let head = match parse_head(&raw) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "webhook body is not an update; refused");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let update_id = head.update_id;
    match intake.writer.store(NewUpdate { head, raw }).await {
        Ok(Stored::New) => {
            intake
                .metrics
                .received
                .get_or_create(&ModeLabels { mode: "webhook" })
                .inc();
            intake.wake.notify_one();
            plain(StatusCode::OK, "stored")
        }
        Ok(Stored::Duplicate) => {
            intake.metrics.deduplicated.inc();
            plain(StatusCode::OK, "duplicate")
        }
        Err(e) => {
            tracing::warn!(update_id, error = %e, "cannot store the update; answering 503 so Telegram retries");
            let text = match e {
                StoreError::Timeout(_) => "storage too slow; retry",
                _ => "storage unavailable; retry",
            };
            plain(StatusCode::SERVICE_UNAVAILABLE, text)
        }
    }
}

pub const LEASE: &str = "telegram:webhook-registration";

/// What this deployment wants registered.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret<String>,
    pub max_connections: u32,
}

#[derive(Debug, Deserialize, Default)]
struct WebhookInfo {
    #[serde(default)]
    url: String,
    #[serde(default)]
    pending_update_count: i64,
    #[serde(default)]
    last_error_date: Option<i64>,
    #[serde(default)]
    last_error_message: Option<String>,
    #[serde(default)]
    max_connections: Option<u32>,
    #[serde(default)]
    allowed_updates: Option<Vec<String>>,
}

/// Keeps the registration right (lease holder only) and exports Telegram's view of it.
pub struct Registrar {
    db: Db,
    api: BotApi,
    clock: SharedClock,
    target: WebhookTarget,
    holder: String,
    check_every: Duration,
    readiness: Arc<Readiness>,
    metrics: PipelineMetrics,
}

impl Registrar {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        api: BotApi,
        clock: SharedClock,
        target: WebhookTarget,
        holder: String,
        check_every: Duration,
        readiness: Arc<Readiness>,
        metrics: PipelineMetrics,
    ) -> Self {
        Registrar {
            db,
            api,
            clock,
            target,
            holder,
            check_every,
            readiness,
            metrics,
        }
    }

    /// What differs between Telegram's registration and ours; empty when nothing does.
    fn differences(&self, info: &WebhookInfo) -> Vec<&'static str> {
        let mut d = Vec::new();
        if info.url != self.target.url {
            d.push("url");
        }
        if info
            .max_connections
            .is_some_and(|m| m != self.target.max_connections)
        {
            d.push("max_connections");
        }
        let mut want: Vec<&str> = ALLOWED_UPDATES.to_vec();
        want.sort_unstable();
        let mut have: Vec<&str> = info
            .allowed_updates
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        have.sort_unstable();
        if have != want {
            d.push("allowed_updates");
        }
        // The secret cannot be read back; a secret Telegram no longer matches shows as 401s.
        if info
            .last_error_message
            .as_deref()
            .is_some_and(|m| m.contains("401"))
        {
            d.push("secret_token");
        }
        d
    }

    async fn check(&self, lease: Option<&Lease>) -> Result<(), String> {
        let info: WebhookInfo = match self.api.call("getWebhookInfo", &json!({})).await {
            Ok(info) => info,
            Err(e) => {
                // Deliveries may still arrive (intake keeps storing them), but what Telegram
                // holds for us is unknown until it answers again.
                let state = match &e {
                    ApiError::Unauthorized { .. } => "token rejected",
                    _ => "telegram unreachable",
                };
                self.readiness.set_detail(
                    "intake",
                    json!({ "mode": "webhook", "state": state, "error": e.to_string() }),
                );
                return Err(e.to_string());
            }
        };
        self.metrics
            .webhook_pending_updates
            .set(info.pending_update_count);
        self.metrics
            .webhook_last_error_timestamp_seconds
            .set(info.last_error_date.unwrap_or(0));
        let differences = self.differences(&info);
        self.readiness.set_detail(
            "intake",
            json!({
                "mode": "webhook",
                "state": if differences.is_empty() { "registered" } else { "registering" },
                "pending_update_count": info.pending_update_count,
                "last_error_date": info.last_error_date,
                "last_error_message": info.last_error_message,
            }),
        );
        if differences.is_empty() || lease.is_none() {
            return Ok(());
        }
        tracing::info!(?differences, "registering the webhook with Telegram");
        let _: bool = self
            .api
            .call(
                "setWebhook",
                &json!({
                    "url": self.target.url,
                    "secret_token": self.target.secret.expose(),
                    "allowed_updates": ALLOWED_UPDATES,
                    "max_connections": self.target.max_connections,
                    // Never drop_pending_updates: queued updates may be payments (A6).
                }),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn run_loop(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) {
        let beat = Duration::from_millis(500);
        let ttl = (self.check_every * 3).max(Duration::from_secs(30));
        // Renewed before every check, so a check that registers holds the lease it read.
        let mut keeper = Keeper::new(
            self.db.clone(),
            self.clock.clone(),
            LEASE,
            "registers the webhook",
            self.holder.clone(),
            ttl,
        )
        .renewing_every(Duration::ZERO);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        while !stop.is_cancelled() {
            hb.beat();
            // Without the lease the check still runs: every replica reports Telegram's view.
            if let Err(e) = keeper.keep().await {
                tracing::debug!(error = %e, "cannot check the webhook-registration lease");
            }
            let wait = match self.check(keeper.lease()).await {
                Ok(()) => {
                    backoff.succeed();
                    self.check_every
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook check failed; will retry");
                    backoff.fail()
                }
            };
            if !idle(wait, &hb, beat, &stop).await {
                break;
            }
        }
        // Release the lease only; the registration itself is left as it is (A7).
        keeper.release().await;
    }
}

impl Component for Registrar {
    fn name(&self) -> &'static str {
        "webhook-registrar"
    }

    fn stall_after(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        Box::pin(self.run_loop(heartbeat, stop))
    }
}

/// Unused in production; keeps the cancellation type in the public signature stable.
#[allow(dead_code)]
fn _assert_send(_: CancellationToken) {}
