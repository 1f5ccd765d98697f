//! The control API's routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::model::{
    CancelOptions, FaultSpec, Invoice, Notification, NotificationRule, NotificationState,
    PayOptions, Payment, Provider, Refund,
};
use crate::state::{App, MAX_QUEUED_RULES, OpError, State as Memory};

/// `{"ms": N}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Millis {
    /// Milliseconds.
    pub ms: u64,
}

/// `{"now_ms": N}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Now {
    /// Emulated Unix time, ms.
    pub now_ms: i64,
}

/// `{"url": "..."}` or `{"url": null}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UrlBody {
    /// The webhook URL; `None` switches notifications off.
    pub url: Option<String>,
}

/// `{"times": N}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Times {
    /// How many copies.
    pub times: u32,
}

/// The routes, to nest under `/control`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/reset", post(reset))
        .route("/clock", get(clock))
        .route("/calls", get(calls))
        .route("/clock/advance", post(advance))
        .route("/webhooks", get(webhooks))
        .route("/webhooks/{provider}", post(set_webhook))
        .route("/cryptopay/invoices", get(invoices))
        .route("/cryptopay/invoices/{id}", get(invoice))
        .route("/cryptopay/invoices/{id}/pay", post(pay_invoice))
        .route("/cryptopay/invoices/{id}/expire", post(expire_invoice))
        .route("/yookassa/payments", get(payments))
        .route("/yookassa/payments/{id}", get(payment))
        .route("/yookassa/payments/{id}/receipt", get(payment_receipt))
        .route("/yookassa/payments/{id}/pay", post(pay_payment))
        .route("/yookassa/payments/{id}/cancel", post(cancel_payment))
        .route("/yookassa/payments/{id}/expire", post(expire_payment))
        .route("/yookassa/refunds", get(refunds))
        .route("/faults", get(faults).post(add_fault).delete(clear_faults))
        .route(
            "/notifications/rules",
            get(rules).post(add_rule).delete(clear_rules),
        )
        .route("/notifications", get(notifications))
        .route("/notifications/{id}", get(notification))
        .route("/notifications/{id}/repeat", post(repeat))
        .route("/notifications/{id}/deliver", post(deliver_now))
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

fn op_failure(error: &OpError) -> Response {
    let status = match error {
        OpError::NotFound(_) => StatusCode::NOT_FOUND,
        OpError::Conflict(_) => StatusCode::CONFLICT,
        OpError::BadRequest(_) => StatusCode::BAD_REQUEST,
    };
    failure(status, error.to_string())
}

fn json_of<T: Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

/// Locks the state with due deadlines fired, so what is read back is current.
fn current(app: &App) -> std::sync::MutexGuard<'_, Memory> {
    app.lock_at(app.now_ms())
}

async fn reset(State(app): State<Arc<App>>) -> Response {
    {
        let mut state = app.lock();
        let fresh = Memory::new(&app.config);
        // Ids keep growing across resets, so an old id never names a new object.
        let next_invoice_id = state.next_invoice_id;
        let next_notification_id = state.next_notification_id;
        let next_update_id = state.next_update_id;
        let next_payment_seq = state.next_payment_seq;
        *state = fresh;
        state.next_invoice_id = next_invoice_id;
        state.next_notification_id = next_notification_id;
        state.next_update_id = next_update_id;
        state.next_payment_seq = next_payment_seq;
    }
    app.wake.notify_one();
    StatusCode::NO_CONTENT.into_response()
}

async fn calls(State(app): State<Arc<App>>) -> Response {
    json_of(&app.lock().calls)
}

async fn clock(State(app): State<Arc<App>>) -> Response {
    json_of(&Now {
        now_ms: app.now_ms(),
    })
}

async fn advance(State(app): State<Arc<App>>, axum::Json(by): axum::Json<Millis>) -> Response {
    let now_ms = app.clock.advance(Duration::from_millis(by.ms));
    // Fires what the jump made due.
    drop(app.lock_at(now_ms));
    app.wake.notify_one();
    json_of(&Now { now_ms })
}

async fn webhooks(State(app): State<Arc<App>>) -> Response {
    json_of(&app.lock().webhooks)
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    match text {
        "cryptopay" => Ok(Provider::Cryptopay),
        "yookassa" => Ok(Provider::Yookassa),
        other => Err(format!("unknown provider {other:?}: cryptopay or yookassa")),
    }
}

async fn set_webhook(
    State(app): State<Arc<App>>,
    Path(provider): Path<String>,
    axum::Json(body): axum::Json<UrlBody>,
) -> Response {
    let provider = match parse_provider(&provider) {
        Ok(provider) => provider,
        Err(message) => return failure(StatusCode::NOT_FOUND, message),
    };
    if let Some(Err(message)) = body.url.as_deref().map(crate::config::check_url) {
        return failure(StatusCode::BAD_REQUEST, message);
    }
    let urls = {
        let mut state = app.lock();
        match provider {
            Provider::Cryptopay => state.webhooks.cryptopay = body.url,
            Provider::Yookassa => state.webhooks.yookassa = body.url,
        }
        state.webhooks.clone()
    };
    app.wake.notify_one();
    json_of(&urls)
}

async fn invoices(State(app): State<Arc<App>>) -> Response {
    let list: Vec<Invoice> = current(&app)
        .invoices
        .values()
        .map(|r| r.invoice.clone())
        .collect();
    json_of(&list)
}

async fn invoice(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    match current(&app).invoices.get(&id) {
        Some(record) => json_of(&record.invoice),
        None => failure(StatusCode::NOT_FOUND, format!("invoice {id} not found")),
    }
}

async fn pay_invoice(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    options: Option<axum::Json<PayOptions>>,
) -> Response {
    let options = options.map(|o| o.0).unwrap_or_default();
    let now = app.now_ms();
    let result = crate::cryptopay::pay(&app, &mut current(&app), id, &options, now);
    match result {
        Ok(invoice) => json_of(&invoice),
        Err(e) => op_failure(&e),
    }
}

async fn expire_invoice(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    let result = crate::cryptopay::expire(&mut current(&app), id);
    match result {
        Ok(invoice) => json_of(&invoice),
        Err(e) => op_failure(&e),
    }
}

async fn payments(State(app): State<Arc<App>>) -> Response {
    let state = current(&app);
    let list: Vec<Payment> = state
        .payment_order
        .values()
        .filter_map(|id| state.payments.get(id))
        .map(|r| r.payment.clone())
        .collect();
    json_of(&list)
}

async fn payment(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match current(&app).payments.get(&id) {
        Some(record) => json_of(&record.payment),
        None => failure(StatusCode::NOT_FOUND, format!("payment {id} not found")),
    }
}

/// The receipt a payment was created with (`null` when none).
async fn payment_receipt(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match current(&app).payments.get(&id) {
        Some(record) => json_of(&record.receipt),
        None => failure(StatusCode::NOT_FOUND, format!("payment {id} not found")),
    }
}

async fn pay_payment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    options: Option<axum::Json<PayOptions>>,
) -> Response {
    let options = options.map(|o| o.0).unwrap_or_default();
    let now = app.now_ms();
    let result = crate::yookassa::pay(&app, &mut current(&app), &id, &options, now);
    match result {
        Ok(payment) => json_of(&payment),
        Err(e) => op_failure(&e),
    }
}

async fn cancel_payment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    options: Option<axum::Json<CancelOptions>>,
) -> Response {
    let options = options.map(|o| o.0).unwrap_or_default();
    let now = app.now_ms();
    let result = crate::yookassa::cancel(&app, &mut current(&app), &id, &options, now);
    match result {
        Ok(payment) => json_of(&payment),
        Err(e) => op_failure(&e),
    }
}

async fn expire_payment(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let now = app.now_ms();
    let result = crate::yookassa::expire(&app, &mut current(&app), &id, now);
    match result {
        Ok(payment) => json_of(&payment),
        Err(e) => op_failure(&e),
    }
}

async fn refunds(State(app): State<Arc<App>>) -> Response {
    let mut list: Vec<Refund> = app.lock().refunds.values().cloned().collect();
    list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    json_of(&list)
}

async fn faults(State(app): State<Arc<App>>) -> Response {
    json_of(&app.lock().faults)
}

async fn add_fault(
    State(app): State<Arc<App>>,
    axum::Json(spec): axum::Json<FaultSpec>,
) -> Response {
    if !crate::faults::is_known(&spec.method) {
        return failure(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown method {:?}: one of {}, {} or *",
                spec.method,
                crate::faults::CRYPTOPAY_METHODS.join(", "),
                crate::faults::YOOKASSA_OPERATIONS.join(", ")
            ),
        );
    }
    if spec.count == 0 {
        return failure(StatusCode::BAD_REQUEST, "count must be at least 1");
    }
    let mut state = app.lock();
    if state.faults.len() >= MAX_QUEUED_RULES {
        return failure(
            StatusCode::CONFLICT,
            format!("at most {MAX_QUEUED_RULES} faults can be queued"),
        );
    }
    state.faults.push(spec);
    json_of(&state.faults)
}

async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    app.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn rules(State(app): State<Arc<App>>) -> Response {
    json_of(&app.lock().rules)
}

async fn add_rule(
    State(app): State<Arc<App>>,
    axum::Json(rule): axum::Json<NotificationRule>,
) -> Response {
    if rule.count == 0 {
        return failure(StatusCode::BAD_REQUEST, "count must be at least 1");
    }
    let mut state = app.lock();
    if state.rules.len() >= MAX_QUEUED_RULES {
        return failure(
            StatusCode::CONFLICT,
            format!("at most {MAX_QUEUED_RULES} rules can be queued"),
        );
    }
    state.rules.push(rule);
    json_of(&state.rules)
}

async fn clear_rules(State(app): State<Arc<App>>) -> Response {
    app.lock().rules.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn notifications(State(app): State<Arc<App>>) -> Response {
    let list: Vec<Notification> = app.lock().notifications.values().cloned().collect();
    json_of(&list)
}

async fn notification(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    match app.lock().notifications.get(&id) {
        Some(n) => json_of(n),
        None => failure(
            StatusCode::NOT_FOUND,
            format!("notification {id} not found"),
        ),
    }
}

async fn repeat(
    State(app): State<Arc<App>>,
    Path(id): Path<u64>,
    times: Option<axum::Json<Times>>,
) -> Response {
    let times = times.map_or(1, |t| t.0.times);
    if !(1..=1000).contains(&times) {
        return failure(StatusCode::BAD_REQUEST, "times must be 1-1000");
    }
    let now = app.now_ms();
    let created = {
        let mut state = app.lock();
        let Some(original) = state.notifications.get(&id).cloned() else {
            return failure(
                StatusCode::NOT_FOUND,
                format!("notification {id} not found"),
            );
        };
        let mut created = Vec::new();
        for _ in 0..times {
            let new_id = state.next_notification_id;
            state.next_notification_id += 1;
            state.notifications.insert(
                new_id,
                Notification {
                    id: new_id,
                    state: NotificationState::Pending,
                    next_attempt_at_ms: Some(now),
                    created_at_ms: now,
                    repeat_of: Some(id),
                    attempts: Vec::new(),
                    ..original.clone()
                },
            );
            state.schedule.insert((now, new_id));
            created.push(new_id);
        }
        state.forget_old_notifications(app.config.limits.max_notifications);
        created
    };
    app.wake.notify_one();
    json_of(&created)
}

async fn deliver_now(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    let now = app.now_ms();
    let result = {
        let mut state = app.lock();
        match state.notifications.get_mut(&id) {
            None => Err(failure(
                StatusCode::NOT_FOUND,
                format!("notification {id} not found"),
            )),
            Some(n) if n.state == NotificationState::InFlight => Err(failure(
                StatusCode::CONFLICT,
                format!("notification {id} is being delivered"),
            )),
            Some(_) => {
                state.schedule_attempt(id, now);
                state.forced.insert(id);
                Ok(state.notifications.get(&id).cloned())
            }
        }
    };
    app.wake.notify_one();
    match result {
        Ok(n) => json_of(&n),
        Err(response) => response,
    }
}
