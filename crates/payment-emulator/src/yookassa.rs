//! The YooKassa API v3 (`/v3/...`): payments, capture, cancel, refunds, notifications.
//!
//! Why these rules: the issue asks Tollgate to treat a notification only as a hint and to trust
//! the API's answer, to reuse one `Idempotence-Key` per purchase, and to reconcile by polling.
//! The emulator makes each of those observable: POSTs require the key and replay the first
//! answer for the same key and body (a different body with the same key is an error), payments
//! follow the documented status machine (pending → succeeded | waiting_for_capture → succeeded |
//! canceled), a pending payment is cancelled after the confirmation window, and every event is
//! POSTed unsigned to the notification URL and retried until it gets HTTP 200.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use base64::Engine;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::faults::{self, Outcome};
use crate::model::{
    Amount, CancelOptions, CancellationDetails, Confirmation, PayOptions, Payment, PaymentList,
    PaymentMethod, PaymentStatus, Provider, Recipient, Refund, YooKassaNotification,
};
use crate::state::{
    App, Deadline, IdempotentAnswer, NewNotification, OpError, PaymentRecord, State as Memory,
};
use crate::util;

/// Currencies payments may be made in.
pub const CURRENCIES: &[&str] = &[
    "RUB", "USD", "EUR", "BYN", "KZT", "UAH", "UZS", "TRY", "INR", "MDL", "AZN", "AMD", "GEL",
    "KGS", "TJS",
];
const MAX_IDEMPOTENCE_KEY: usize = 64;

/// A YooKassa error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `invalid_request`, `invalid_credentials`, `not_found`, ...
    pub code: &'static str,
    /// English description.
    pub description: String,
    /// The field or header at fault.
    pub parameter: Option<String>,
}

impl ApiError {
    fn invalid(parameter: &str, description: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "invalid_request",
            description: description.into(),
            parameter: Some(parameter.to_owned()),
        }
    }

    fn status_conflict(description: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "invalid_request",
            description: description.into(),
            parameter: None,
        }
    }

    fn not_found(description: impl Into<String>) -> Self {
        Self {
            status: 404,
            code: "not_found",
            description: description.into(),
            parameter: None,
        }
    }

    fn too_many_objects() -> Self {
        Self {
            status: 429,
            code: "too_many_requests",
            description: "The emulator holds as many objects as it may".into(),
            parameter: None,
        }
    }

    fn internal() -> Self {
        Self {
            status: 500,
            code: "internal_server_error",
            description: "Internal server error. The result of the request is unknown; repeat it with the same Idempotence-Key".into(),
            parameter: None,
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "type": "error",
            "id": uuid::Uuid::new_v4().to_string(),
            "code": self.code,
            "description": self.description,
        });
        if let (Some(parameter), Some(object)) = (&self.parameter, body.as_object_mut()) {
            object.insert("parameter".into(), Value::String(parameter.clone()));
        }
        body
    }
}

fn respond(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(e: &ApiError) -> Response {
    respond(e.status, &e.body())
}

fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = format!(
        "{}:{}",
        app.config.yookassa.shop_id, app.config.yookassa.secret_key
    );
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        });
    if given.as_deref() == Some(expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError {
            status: 401,
            code: "invalid_credentials",
            description: "Authentication by given credentials failed".into(),
            parameter: None,
        })
    }
}

/// What a POST operation does once its key and body are accepted.
type Exec = fn(&App, &mut Memory, &Accepted) -> Result<Value, ApiError>;

/// A POST whose key and body were accepted.
struct Accepted<'a> {
    /// What the key is for: `payments`, `refunds` or `<action> <payment id>`.
    target: &'a str,
    /// The JSON body (empty when there was none).
    body: &'a Map<String, Value>,
    now_ms: i64,
}

impl Accepted<'_> {
    /// The payment a `<action> <payment id>` target names.
    fn payment_id(&self) -> &str {
        self.target
            .split_once(' ')
            .map_or(self.target, |(_, id)| id)
    }
}

/// Runs a request of `operation` in its own task, so a client that gives up does not cancel it
/// (like a real provider, the operation still happens; a POST's key then returns its result),
/// and counts the call when it completes.
async fn in_own_task(
    app: Arc<App>,
    operation: &'static str,
    request: impl Future<Output = Response> + Send + 'static,
) -> Response {
    tokio::spawn(async move {
        let response = request.await;
        app.lock().count_call(operation);
        response
    })
    .await
    .unwrap_or_else(|_| error(&ApiError::internal()))
}

/// A POST: credentials, `Idempotence-Key`, content type, JSON body, faults, then the
/// idempotence check and the operation under one lock, storing the answer for the key.
async fn post_operation(
    app: Arc<App>,
    headers: HeaderMap,
    body: Bytes,
    operation: &'static str,
    target: String,
    exec: Exec,
) -> Response {
    if let Err(e) = authorize(&app, &headers) {
        return error(&e);
    }
    let key = match headers.get("idempotence-key").map(|v| v.to_str()) {
        None => {
            return error(&ApiError::invalid(
                "Idempotence-Key",
                "Idempotence-Key header is missing",
            ));
        }
        Some(Err(_)) => {
            return error(&ApiError::invalid(
                "Idempotence-Key",
                "Idempotence key is not valid text",
            ));
        }
        Some(Ok(key)) => key.to_owned(),
    };
    if key.is_empty() {
        return error(&ApiError::invalid(
            "Idempotence-Key",
            "Idempotence key is empty",
        ));
    }
    if key.len() > MAX_IDEMPOTENCE_KEY {
        return error(&ApiError::invalid(
            "Idempotence-Key",
            format!("Idempotence key is too long, at most {MAX_IDEMPOTENCE_KEY} characters"),
        ));
    }
    let object = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        let json_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
        if !json_type {
            return error(&ApiError {
                status: 415,
                code: "invalid_request",
                description: "Content-Type must be application/json".into(),
                parameter: Some("Content-Type".into()),
            });
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => object,
            _ => {
                return error(&ApiError::invalid(
                    "body",
                    "Request body is not a JSON object",
                ));
            }
        }
    };
    let outcome = faults::apply(&app, operation).await;
    // Canonical JSON (keys sorted): the same data in another order or spacing is the same body.
    let canonical = Value::Object(object.clone()).to_string();
    let fingerprint = util::sha256_hex(format!("{target}\n{canonical}").as_bytes());
    let now = app.now_ms();
    let (status, answer) = {
        let mut state = app.lock_at(now);
        state.forget_old_idempotence(now);
        if let Some(stored) = state.idempotent_answer(&key, now) {
            if stored.fingerprint != fingerprint {
                return error(&ApiError::invalid(
                    "Idempotence-Key",
                    "Idempotence key duplicated: it was used with another request",
                ));
            }
            if outcome == Outcome::FailNow {
                return error(&ApiError::internal());
            }
            let body: Value = serde_json::from_str(&stored.body).unwrap_or(Value::Null);
            (stored.status, body)
        } else {
            if outcome == Outcome::FailNow {
                return error(&ApiError::internal());
            }
            let accepted = Accepted {
                target: &target,
                body: &object,
                now_ms: now,
            };
            let (status, answer) = match exec(&app, &mut state, &accepted) {
                Ok(value) => (200, value),
                Err(e) => (e.status, e.body()),
            };
            state.idempotence.insert(
                key,
                IdempotentAnswer {
                    fingerprint,
                    status,
                    body: answer.to_string(),
                    at_ms: now,
                },
            );
            (status, answer)
        }
    };
    if outcome == Outcome::FailAfter {
        return error(&ApiError::internal());
    }
    respond(status, &answer)
}

/// A GET in its own task: credentials, faults, then `read` under the lock.
async fn run_get(
    app: Arc<App>,
    headers: HeaderMap,
    operation: &'static str,
    read: impl FnOnce(&App, &mut Memory) -> Result<Value, ApiError> + Send + 'static,
) -> Response {
    let request = get_operation(app.clone(), headers, operation, read);
    in_own_task(app, operation, request).await
}

async fn get_operation(
    app: Arc<App>,
    headers: HeaderMap,
    operation: &'static str,
    read: impl FnOnce(&App, &mut Memory) -> Result<Value, ApiError>,
) -> Response {
    if let Err(e) = authorize(&app, &headers) {
        return error(&e);
    }
    let outcome = faults::apply(&app, operation).await;
    if outcome == Outcome::FailNow {
        return error(&ApiError::internal());
    }
    let now = app.now_ms();
    let result = {
        let mut state = app.lock_at(now);
        read(&app, &mut state)
    };
    if outcome == Outcome::FailAfter {
        return error(&ApiError::internal());
    }
    match result {
        Ok(value) => respond(200, &value),
        Err(e) => error(&e),
    }
}

/// The API's routes: `/v3/...`, each operation counted and faulted under its name.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v3/me", get(me))
        .route(
            "/v3/payments",
            post_route("payments", "payments.create", create)
                .merge(get_list(&PAYMENTS, list_payments)),
        )
        .route("/v3/payments/{id}", get_one("payments.get", payment_by_id))
        .route(
            "/v3/payments/{id}/capture",
            post_route("capture", "payments.capture", capture),
        )
        .route(
            "/v3/payments/{id}/cancel",
            post_route("cancel", "payments.cancel", cancel_by_merchant),
        )
        .route(
            "/v3/refunds",
            post_route("refunds", "refunds.create", refund).merge(get_list(&REFUNDS, list_refunds)),
        )
        .route("/v3/refunds/{id}", get_one("refunds.get", refund_by_id))
        .route("/v3/{*rest}", any(not_found))
}

/// `GET /v3/me`.
async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    run_get(app, headers, "me", |app, _| {
        Ok(json!({
            "account_id": app.config.yookassa.shop_id,
            "test": true,
            "fiscalization_enabled": app.config.yookassa.fiscalization_enabled,
            "payment_methods": ["bank_card", "yoo_money", "sbp"],
            "status": "enabled",
        }))
    })
    .await
}

/// `POST` of `operation` in its own task. The idempotence key's target is `target`, followed
/// by the payment's id on a payment's path (`payments`, `capture <id>`: read back by
/// [`Accepted::payment_id`]).
fn post_route(target: &'static str, operation: &'static str, exec: Exec) -> MethodRouter<Arc<App>> {
    post(
        move |State(app): State<Arc<App>>,
              id: Option<Path<String>>,
              headers: HeaderMap,
              body: Bytes| {
            let target = match id {
                Some(Path(id)) => format!("{target} {id}"),
                None => target.to_owned(),
            };
            let request = post_operation(app.clone(), headers, body, operation, target, exec);
            in_own_task(app, operation, request)
        },
    )
}

/// `GET` of the object the path names.
fn get_one(
    operation: &'static str,
    read: fn(&Memory, &str) -> Result<Value, ApiError>,
) -> MethodRouter<Arc<App>> {
    get(
        move |State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap| {
            run_get(app, headers, operation, move |_, state| read(state, &id))
        },
    )
}

/// `GET` of a list, its query parsed as `listing` says.
fn get_list(
    listing: &'static Listing,
    list: fn(&Memory, &ListQuery) -> Result<Value, ApiError>,
) -> MethodRouter<Arc<App>> {
    get(
        move |State(app): State<Arc<App>>, RawQuery(query): RawQuery, headers: HeaderMap| {
            run_get(app, headers, listing.operation, move |_, state| {
                list(
                    state,
                    &ListQuery::parse(query.as_deref().unwrap_or_default(), listing)?,
                )
            })
        },
    )
}

fn payment_by_id(state: &Memory, id: &str) -> Result<Value, ApiError> {
    state
        .payments
        .get(id)
        .map(|r| to_value(&r.payment))
        .ok_or_else(|| ApiError::not_found(format!("Payment {id} not found")))
}

fn refund_by_id(state: &Memory, id: &str) -> Result<Value, ApiError> {
    state
        .refunds
        .get(id)
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .ok_or_else(|| ApiError::not_found(format!("Refund {id} not found")))
}

/// A list operation and what its list may be filtered by.
struct Listing {
    /// The operation's name (counted, faulted).
    operation: &'static str,
    /// The object's name in errors.
    object: &'static str,
    /// The values `status` may take.
    statuses: &'static [&'static str],
    /// The one other exact filter.
    filter: &'static str,
    /// The instants `<instant>.gte|gt|lte|lt` may bound.
    instants: &'static [&'static str],
}

/// `GET /v3/payments`: `status`, `payment_method`, `created_at.*`, `captured_at.*`.
const PAYMENTS: Listing = Listing {
    operation: "payments.list",
    object: "payment",
    statuses: &["pending", "waiting_for_capture", "succeeded", "canceled"],
    filter: "payment_method",
    instants: &["created_at", "captured_at"],
};

/// `GET /v3/refunds`: `status`, `payment_id`, `created_at.*`.
const REFUNDS: Listing = Listing {
    operation: "refunds.list",
    object: "refund",
    statuses: &["pending", "succeeded", "canceled"],
    filter: "payment_id",
    instants: &["created_at"],
};

const COMPARISONS: &[&str] = &["gte", "gt", "lte", "lt"];

/// A list request's query: `limit` (1-100, 10 when absent), `cursor`, `status`, the listing's
/// filter and bounds on instants; other keys are ignored.
struct ListQuery {
    limit: usize,
    cursor: Option<u64>,
    status: Option<String>,
    filter: Option<String>,
    bounds: Vec<Bound>,
}

/// `<instant>.<comparison>=<ISO-8601 UTC instant>`.
struct Bound {
    instant: &'static str,
    comparison: &'static str,
    at_ms: i64,
}

impl Bound {
    fn admits(&self, at_ms: i64) -> bool {
        match self.comparison {
            "gte" => at_ms >= self.at_ms,
            "gt" => at_ms > self.at_ms,
            "lte" => at_ms <= self.at_ms,
            _ => at_ms < self.at_ms,
        }
    }
}

impl ListQuery {
    fn parse(query: &str, listing: &Listing) -> Result<Self, ApiError> {
        let mut parsed = ListQuery {
            limit: 10,
            cursor: None,
            status: None,
            filter: None,
            bounds: Vec::new(),
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "limit" => {
                    parsed.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=100).contains(l))
                        .ok_or_else(|| ApiError::invalid("limit", "limit must be 1-100"))?;
                }
                "cursor" => {
                    parsed.cursor = Some(
                        value
                            .parse()
                            .map_err(|_| ApiError::invalid("cursor", "cursor is not valid"))?,
                    );
                }
                "status" => {
                    if !listing.statuses.contains(&value.as_ref()) {
                        return Err(ApiError::invalid(
                            "status",
                            format!("status is not a {} status", listing.object),
                        ));
                    }
                    parsed.status = Some(value.into_owned());
                }
                filter if filter == listing.filter => parsed.filter = Some(value.into_owned()),
                other => {
                    let Some((instant, comparison)) = other.split_once('.') else {
                        continue;
                    };
                    let (Some(instant), Some(comparison)) = (
                        listing.instants.iter().find(|i| **i == instant),
                        COMPARISONS.iter().find(|c| **c == comparison),
                    ) else {
                        continue;
                    };
                    let at_ms = util::parse_iso8601(&value).ok_or_else(|| {
                        ApiError::invalid(other, format!("{other} must be an ISO-8601 UTC instant such as 2026-12-07T00:00:00.000Z"))
                    })?;
                    parsed.bounds.push(Bound {
                        instant,
                        comparison,
                        at_ms,
                    });
                }
            }
        }
        Ok(parsed)
    }

    /// Whether an object's status and filtered value are asked for, and `instant_of` (an
    /// object's instant by name, `None` when it has none yet) is within every bound.
    fn admits(
        &self,
        status: &str,
        filtered: Option<&str>,
        instant_of: impl Fn(&str) -> Option<i64>,
    ) -> bool {
        self.status.as_deref().is_none_or(|s| s == status)
            && self.filter.as_deref().is_none_or(|f| filtered == Some(f))
            && self
                .bounds
                .iter()
                .all(|bound| instant_of(bound.instant).is_some_and(|at_ms| bound.admits(at_ms)))
    }

    /// This page of `order` (ids by sequence number), newest first from the cursor, of the
    /// objects `find` admits, and the cursor of the next page when there is one.
    fn page<'a, T: Clone + 'a>(
        &self,
        order: &BTreeMap<u64, String>,
        find: impl Fn(&str) -> Option<&'a T>,
    ) -> (Vec<T>, Option<String>) {
        let mut items = Vec::new();
        for (seq, id) in order.range(..self.cursor.unwrap_or(u64::MAX)).rev() {
            let Some(item) = find(id) else {
                continue;
            };
            if items.len() == self.limit {
                return (items, Some((seq + 1).to_string()));
            }
            items.push(item.clone());
        }
        (items, None)
    }
}

fn list_payments(state: &Memory, query: &ListQuery) -> Result<Value, ApiError> {
    let (items, next_cursor) = query.page(&state.payment_order, |id| {
        let record = state.payments.get(id)?;
        let method = record.payment.payment_method.as_ref();
        query
            .admits(
                record.payment.status.as_str(),
                method.map(|m| m.kind.as_str()),
                |instant| match instant {
                    "captured_at" => record.captured_at_ms,
                    _ => Some(record.created_at_ms),
                },
            )
            .then_some(&record.payment)
    });
    Ok(serde_json::to_value(PaymentList {
        kind: "list".into(),
        items,
        next_cursor,
    })
    .unwrap_or(Value::Null))
}

fn list_refunds(state: &Memory, query: &ListQuery) -> Result<Value, ApiError> {
    let (items, next_cursor) = query.page(&state.refund_order, |id| {
        let refund = state.refunds.get(id)?;
        let created_at_ms = util::parse_iso8601(&refund.created_at).unwrap_or(0);
        query
            .admits(&refund.status, Some(&refund.payment_id), |_| {
                Some(created_at_ms)
            })
            .then_some(refund)
    });
    let mut body = json!({"type": "list", "items": items});
    if let (Some(cursor), Some(object)) = (next_cursor, body.as_object_mut()) {
        object.insert("next_cursor".into(), Value::String(cursor));
    }
    Ok(body)
}

/// Any other `/v3/...` path.
async fn not_found() -> Response {
    error(&ApiError::not_found("Unknown API path"))
}

fn to_value(payment: &Payment) -> Value {
    serde_json::to_value(payment).unwrap_or(Value::Null)
}

/// Parses `{"value":"199.00","currency":"RUB"}` at `field`.
fn parse_amount(value: Option<&Value>, field: &str) -> Result<(i64, String), ApiError> {
    let Some(Value::Object(amount)) = value else {
        return Err(ApiError::invalid(
            field,
            format!("{field} is required: {{\"value\":\"100.00\",\"currency\":\"RUB\"}}"),
        ));
    };
    let minor = match amount.get("value") {
        Some(Value::String(text)) => util::parse_minor(text).ok_or_else(|| {
            ApiError::invalid(
                &format!("{field}.value"),
                format!("{field}.value {text:?} is not a decimal with at most two fraction digits"),
            )
        })?,
        Some(_) => {
            return Err(ApiError::invalid(
                &format!("{field}.value"),
                format!("{field}.value must be a string such as \"100.00\""),
            ));
        }
        None => {
            return Err(ApiError::invalid(
                &format!("{field}.value"),
                format!("{field}.value is required"),
            ));
        }
    };
    if minor <= 0 {
        return Err(ApiError::invalid(
            &format!("{field}.value"),
            format!("{field}.value must be greater than zero"),
        ));
    }
    let currency = match amount.get("currency") {
        Some(Value::String(code)) if CURRENCIES.contains(&code.as_str()) => code.clone(),
        _ => {
            return Err(ApiError::invalid(
                &format!("{field}.currency"),
                format!("{field}.currency must be one of {}", CURRENCIES.join(", ")),
            ));
        }
    };
    Ok((minor, currency))
}

fn optional_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    max_chars: usize,
) -> Result<Option<&'a str>, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max_chars => Ok(Some(text)),
        Some(Value::String(_)) => Err(ApiError::invalid(
            field,
            format!("{field} is longer than {max_chars} characters"),
        )),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn parse_metadata(value: Option<&Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let object = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(ApiError::invalid("metadata", "metadata must be an object")),
    };
    if object.len() > 16 {
        return Err(ApiError::invalid(
            "metadata",
            "metadata has more than 16 keys",
        ));
    }
    let mut metadata = BTreeMap::new();
    for (key, value) in object {
        if key.chars().count() > 32 {
            return Err(ApiError::invalid(
                "metadata",
                format!("metadata key {key:?} is longer than 32 characters"),
            ));
        }
        let Value::String(text) = value else {
            return Err(ApiError::invalid(
                "metadata",
                format!("metadata value of {key:?} must be a string"),
            ));
        };
        if text.chars().count() > 512 {
            return Err(ApiError::invalid(
                "metadata",
                format!("metadata value of {key:?} is longer than 512 characters"),
            ));
        }
        metadata.insert(key.clone(), text.clone());
    }
    Ok(metadata)
}

/// Checks a 54-FZ receipt: a customer with an email or a phone (digits, an optional leading
/// `+`), at least one item, each with description, quantity, amount in the payment's currency
/// and a VAT code, the items summing to the payment's amount; a `tax_system_code`, when given,
/// is 1-6.
fn check_receipt(receipt: &Value, minor: i64, currency: &str) -> Result<(), ApiError> {
    let bad = |what: &str| ApiError::invalid("receipt", format!("Receipt is illegal: {what}"));
    let Value::Object(receipt) = receipt else {
        return Err(bad("not an object"));
    };
    let customer = receipt.get("customer").and_then(Value::as_object);
    let email = customer
        .and_then(|c| c.get("email"))
        .and_then(Value::as_str);
    let phone = customer
        .and_then(|c| c.get("phone"))
        .and_then(Value::as_str);
    if email.is_none() && phone.is_none() {
        return Err(bad("customer.email or customer.phone is required"));
    }
    if email.is_some_and(|e| !e.contains('@')) {
        return Err(bad("customer.email is not an email address"));
    }
    if let Some(phone) = phone {
        let digits = phone.strip_prefix('+').unwrap_or(phone);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                "customer.phone must be digits with an optional leading +",
            ));
        }
    }
    if receipt
        .get("tax_system_code")
        .is_some_and(|t| t.as_i64().is_none_or(|t| !(1..=6).contains(&t)))
    {
        return Err(bad("tax_system_code must be 1-6"));
    }
    let Some(items) = receipt
        .get("items")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty())
    else {
        return Err(bad("items must be a non-empty array"));
    };
    let mut total: i128 = 0;
    for (index, item) in items.iter().enumerate() {
        let description = item.get("description").and_then(Value::as_str);
        if description.is_none_or(|d| d.is_empty() || d.chars().count() > 128) {
            return Err(bad(&format!(
                "items[{index}].description must be 1-128 characters"
            )));
        }
        let quantity = match item.get("quantity") {
            Some(Value::String(q)) => util::parse_minor(q),
            Some(Value::Number(n)) => util::parse_minor(&n.to_string()),
            _ => None,
        }
        .filter(|q| *q > 0)
        .ok_or_else(|| {
            bad(&format!(
                "items[{index}].quantity must be a positive decimal"
            ))
        })?;
        let (price, item_currency) = parse_amount(
            item.get("amount"),
            &format!("receipt.items[{index}].amount"),
        )?;
        if item_currency != currency {
            return Err(bad(&format!(
                "items[{index}].amount.currency differs from the payment's"
            )));
        }
        if item
            .get("vat_code")
            .and_then(Value::as_i64)
            .is_none_or(|v| !(1..=12).contains(&v))
        {
            return Err(bad(&format!("items[{index}].vat_code must be 1-12")));
        }
        total += i128::from(price) * i128::from(quantity) / 100;
    }
    if total != i128::from(minor) {
        return Err(bad("the items' sum differs from the payment's amount"));
    }
    Ok(())
}

fn create(app: &App, state: &mut Memory, request: &Accepted) -> Result<Value, ApiError> {
    let Accepted { body, now_ms, .. } = *request;
    let (minor, currency) = parse_amount(body.get("amount"), "amount")?;
    let capture = match body.get("capture") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(capture)) => *capture,
        Some(_) => {
            return Err(ApiError::invalid(
                "capture",
                "capture must be true or false",
            ));
        }
    };
    let confirmation = match body.get("confirmation") {
        None | Some(Value::Null) => None,
        Some(Value::Object(confirmation)) => {
            if confirmation.get("type").and_then(Value::as_str) != Some("redirect") {
                return Err(ApiError {
                    status: 400,
                    code: "not_supported",
                    description: "The emulator supports confirmation.type \"redirect\" only".into(),
                    parameter: Some("confirmation.type".into()),
                });
            }
            let return_url = match confirmation.get("return_url") {
                Some(Value::String(url))
                    if url.len() <= 2048 && crate::config::check_url(url).is_ok() =>
                {
                    url.clone()
                }
                _ => {
                    return Err(ApiError::invalid(
                        "confirmation.return_url",
                        "confirmation.return_url must be an http(s) URL of at most 2048 characters",
                    ));
                }
            };
            Some(return_url)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "confirmation",
                "confirmation must be an object",
            ));
        }
    };
    let description = optional_string(body, "description", 128)?;
    let merchant_customer_id = optional_string(body, "merchant_customer_id", 200)?;
    let metadata = parse_metadata(body.get("metadata"))?;
    match body.get("receipt") {
        None | Some(Value::Null) if app.config.yookassa.fiscalization_enabled => {
            return Err(ApiError::invalid(
                "receipt",
                "Receipt is missing or illegal: this shop sends receipts",
            ));
        }
        None | Some(Value::Null) => {}
        Some(receipt) => check_receipt(receipt, minor, &currency)?,
    }
    let method_kind = match body.get("payment_method_data") {
        None | Some(Value::Null) => None,
        Some(data) => match data.get("type").and_then(Value::as_str) {
            Some(kind @ ("bank_card" | "sbp" | "yoo_money")) => Some(kind.to_owned()),
            _ => {
                return Err(ApiError::invalid(
                    "payment_method_data.type",
                    "payment_method_data.type must be bank_card, sbp or yoo_money",
                ));
            }
        },
    };
    if state.object_count() >= app.config.limits.max_objects {
        return Err(ApiError::too_many_objects());
    }
    let id = uuid::Uuid::new_v4().to_string();
    let payment = Payment {
        id: id.clone(),
        status: PaymentStatus::Pending,
        paid: false,
        amount: Amount {
            value: util::format_minor(minor),
            currency,
        },
        income_amount: None,
        description: description.map(str::to_owned),
        recipient: Recipient {
            account_id: app.config.yookassa.shop_id.clone(),
            gateway_id: "emulator".into(),
        },
        payment_method: method_kind.map(|kind| PaymentMethod {
            kind,
            id: id.clone(),
            saved: false,
            title: None,
        }),
        captured_at: None,
        created_at: util::iso8601(now_ms),
        expires_at: None,
        confirmation: confirmation.map(|return_url| Confirmation {
            kind: "redirect".into(),
            return_url: Some(return_url),
            confirmation_url: Some(format!("{}/pay/yookassa/{id}", app.public_url)),
        }),
        test: true,
        refunded_amount: None,
        refundable: false,
        metadata,
        cancellation_details: None,
        receipt_registration: body
            .get("receipt")
            .filter(|r| !r.is_null())
            .map(|_| "pending".to_owned()),
        merchant_customer_id: merchant_customer_id.map(str::to_owned),
    };
    let seq = state.next_payment_seq;
    state.next_payment_seq += 1;
    let deadline = now_ms + window_ms(app.config.yookassa.confirmation_window);
    state
        .deadlines
        .insert((deadline, Deadline::PaymentConfirmation(id.clone())));
    state.payment_order.insert(seq, id.clone());
    let value = to_value(&payment);
    let receipt = body.get("receipt").filter(|r| !r.is_null()).cloned();
    state.payments.insert(
        id,
        PaymentRecord {
            payment,
            seq,
            created_at_ms: now_ms,
            captured_at_ms: None,
            refunded_minor: 0,
            capture,
            receipt,
        },
    );
    Ok(value)
}

fn window_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The payment the merchant asks to capture or cancel (`done`: `captured`, `cancelled`),
/// which only a payment waiting for capture can be.
fn waiting_for_capture<'a>(
    state: &'a mut Memory,
    id: &str,
    done: &str,
) -> Result<&'a mut PaymentRecord, ApiError> {
    let record = state
        .payments
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("Payment {id} not found")))?;
    if record.payment.status != PaymentStatus::WaitingForCapture {
        return Err(ApiError::status_conflict(format!(
            "Payment {id} is {}; only a payment waiting_for_capture can be {done}",
            record.payment.status.as_str()
        )));
    }
    Ok(record)
}

fn capture(app: &App, state: &mut Memory, request: &Accepted) -> Result<Value, ApiError> {
    let Accepted { body, now_ms, .. } = *request;
    let id = request.payment_id();
    let record = waiting_for_capture(state, id, "captured")?;
    if body.contains_key("amount") {
        let (minor, currency) = parse_amount(body.get("amount"), "amount")?;
        let authorized = util::parse_minor(&record.payment.amount.value).unwrap_or(0);
        if currency != record.payment.amount.currency || minor > authorized {
            return Err(ApiError::invalid(
                "amount",
                "The capture amount exceeds the payment's amount or its currency differs",
            ));
        }
        record.payment.amount.value = util::format_minor(minor);
    }
    if let Some(at) = record
        .payment
        .expires_at
        .as_deref()
        .and_then(util::parse_iso8601)
    {
        state
            .deadlines
            .remove(&(at, Deadline::PaymentCapture(id.to_owned())));
    }
    let payment = succeed(app, state, id, now_ms);
    Ok(to_value(&payment))
}

fn cancel_by_merchant(
    app: &App,
    state: &mut Memory,
    request: &Accepted,
) -> Result<Value, ApiError> {
    let id = request.payment_id();
    waiting_for_capture(state, id, "cancelled")?;
    let payment = cancel_now(
        app,
        state,
        id,
        CancellationDetails {
            party: "merchant".into(),
            reason: "canceled_by_merchant".into(),
        },
        request.now_ms,
    );
    Ok(to_value(&payment))
}

fn refund(app: &App, state: &mut Memory, request: &Accepted) -> Result<Value, ApiError> {
    let Accepted { body, now_ms, .. } = *request;
    let Some(Value::String(payment_id)) = body.get("payment_id") else {
        return Err(ApiError::invalid("payment_id", "payment_id is required"));
    };
    let (minor, currency) = parse_amount(body.get("amount"), "amount")?;
    let description = optional_string(body, "description", 250)?;
    let object_count = state.object_count();
    let record = state.payments.get_mut(payment_id).ok_or_else(|| {
        ApiError::invalid("payment_id", format!("Payment {payment_id} not found"))
    })?;
    if record.payment.status != PaymentStatus::Succeeded {
        return Err(ApiError::status_conflict(format!(
            "Payment {payment_id} is {}; only a succeeded payment can be refunded",
            record.payment.status.as_str()
        )));
    }
    if currency != record.payment.amount.currency {
        return Err(ApiError::invalid(
            "amount.currency",
            "The refund's currency differs from the payment's",
        ));
    }
    let paid = util::parse_minor(&record.payment.amount.value).unwrap_or(0);
    if minor > paid - record.refunded_minor {
        return Err(ApiError::invalid(
            "amount.value",
            format!(
                "The refund amount exceeds what is left to refund ({})",
                util::format_minor(paid - record.refunded_minor)
            ),
        ));
    }
    if object_count >= app.config.limits.max_objects {
        return Err(ApiError::too_many_objects());
    }
    record.refunded_minor += minor;
    record.payment.refunded_amount = Some(Amount {
        value: util::format_minor(record.refunded_minor),
        currency: currency.clone(),
    });
    record.payment.refundable = record.refunded_minor < paid;
    let refund = Refund {
        id: uuid::Uuid::new_v4().to_string(),
        payment_id: payment_id.clone(),
        status: "succeeded".into(),
        amount: Amount {
            value: util::format_minor(minor),
            currency,
        },
        created_at: util::iso8601(now_ms),
        description: description.map(str::to_owned),
    };
    let seq = state.next_payment_seq;
    state.next_payment_seq += 1;
    state.refund_order.insert(seq, refund.id.clone());
    state.refunds.insert(refund.id.clone(), refund.clone());
    let value = serde_json::to_value(&refund).unwrap_or(Value::Null);
    notify(
        app,
        state,
        "refund.succeeded",
        &refund.id,
        value.clone(),
        now_ms,
    );
    Ok(value)
}

fn notify(app: &App, state: &mut Memory, event: &str, object_id: &str, object: Value, now_ms: i64) {
    let body = serde_json::to_string(&YooKassaNotification {
        kind: "notification".into(),
        event: event.into(),
        object,
    })
    .unwrap_or_default();
    if state.queue_notification(
        &app.config,
        now_ms,
        NewNotification {
            provider: Provider::Yookassa,
            event: event.into(),
            object_id: object_id.into(),
            body,
            signature: None,
        },
    ) {
        app.wake.notify_one();
    }
}

/// The payer paid: `succeeded` (capture on) or `waiting_for_capture`, with its notification.
/// `options` can make it report another amount or currency (an underpaid or foreign payment).
pub fn pay(
    app: &App,
    state: &mut Memory,
    id: &str,
    options: &PayOptions,
    now_ms: i64,
) -> Result<Payment, OpError> {
    let record = state
        .payments
        .get_mut(id)
        .ok_or_else(|| OpError::NotFound(format!("payment {id} not found")))?;
    if record.payment.status != PaymentStatus::Pending {
        return Err(OpError::Conflict(format!(
            "payment {id} is {}, not pending",
            record.payment.status.as_str()
        )));
    }
    if let Some(amount) = &options.amount {
        let minor = util::parse_minor(amount)
            .filter(|m| *m > 0)
            .ok_or_else(|| {
                OpError::BadRequest(format!(
                    "amount {amount:?} is not a positive decimal with at most two fraction digits"
                ))
            })?;
        record.payment.amount.value = util::format_minor(minor);
    }
    if let Some(currency) = &options.currency {
        record.payment.amount.currency.clone_from(currency);
    }
    let created = record.created_at_ms;
    let confirmation_deadline = created + window_ms(app.config.yookassa.confirmation_window);
    record.payment.paid = true;
    if record.payment.payment_method.is_none() {
        record.payment.payment_method = Some(PaymentMethod {
            kind: "bank_card".into(),
            id: id.to_owned(),
            saved: false,
            title: Some("Bank card *4444".into()),
        });
    }
    let capture = record.capture;
    state.deadlines.remove(&(
        confirmation_deadline,
        Deadline::PaymentConfirmation(id.to_owned()),
    ));
    if capture {
        return Ok(succeed(app, state, id, now_ms));
    }
    let capture_deadline = now_ms + window_ms(app.config.yookassa.capture_window);
    let payment = {
        let Some(record) = state.payments.get_mut(id) else {
            return Err(OpError::NotFound(format!("payment {id} not found")));
        };
        record.payment.status = PaymentStatus::WaitingForCapture;
        record.payment.expires_at = Some(util::iso8601(capture_deadline));
        record.payment.clone()
    };
    state
        .deadlines
        .insert((capture_deadline, Deadline::PaymentCapture(id.to_owned())));
    notify(
        app,
        state,
        "payment.waiting_for_capture",
        id,
        to_value(&payment),
        now_ms,
    );
    Ok(payment)
}

/// Moves a paid payment to `succeeded` and notifies. The caller checked it exists.
fn succeed(app: &App, state: &mut Memory, id: &str, now_ms: i64) -> Payment {
    let payment = match state.payments.get_mut(id) {
        Some(record) => {
            record.payment.status = PaymentStatus::Succeeded;
            record.payment.paid = true;
            record.payment.captured_at = Some(util::iso8601(now_ms));
            record.payment.expires_at = None;
            record.payment.income_amount = Some(record.payment.amount.clone());
            record.payment.refundable = true;
            if record.payment.receipt_registration.is_some() {
                record.payment.receipt_registration = Some("succeeded".into());
            }
            record.captured_at_ms = Some(now_ms);
            record.payment.clone()
        }
        None => return empty_payment(id),
    };
    notify(
        app,
        state,
        "payment.succeeded",
        id,
        to_value(&payment),
        now_ms,
    );
    payment
}

fn empty_payment(id: &str) -> Payment {
    Payment {
        id: id.to_owned(),
        status: PaymentStatus::Canceled,
        paid: false,
        amount: Amount {
            value: "0.00".into(),
            currency: "RUB".into(),
        },
        income_amount: None,
        description: None,
        recipient: Recipient {
            account_id: String::new(),
            gateway_id: String::new(),
        },
        payment_method: None,
        captured_at: None,
        created_at: String::new(),
        expires_at: None,
        confirmation: None,
        test: true,
        refunded_amount: None,
        refundable: false,
        metadata: BTreeMap::new(),
        cancellation_details: None,
        receipt_registration: None,
        merchant_customer_id: None,
    }
}

/// Cancels a pending or waiting payment now and notifies. The caller checked its status.
fn cancel_now(
    app: &App,
    state: &mut Memory,
    id: &str,
    details: CancellationDetails,
    now_ms: i64,
) -> Payment {
    let confirmation_window = window_ms(app.config.yookassa.confirmation_window);
    let (payment, confirmation_deadline, capture_deadline) = match state.payments.get_mut(id) {
        Some(record) => {
            let capture_deadline = record
                .payment
                .expires_at
                .as_deref()
                .and_then(util::parse_iso8601);
            record.payment.status = PaymentStatus::Canceled;
            record.payment.paid = false;
            record.payment.expires_at = None;
            record.payment.cancellation_details = Some(details);
            (
                record.payment.clone(),
                record.created_at_ms + confirmation_window,
                capture_deadline,
            )
        }
        None => return empty_payment(id),
    };
    state.deadlines.remove(&(
        confirmation_deadline,
        Deadline::PaymentConfirmation(id.to_owned()),
    ));
    if let Some(at) = capture_deadline {
        state
            .deadlines
            .remove(&(at, Deadline::PaymentCapture(id.to_owned())));
    }
    notify(
        app,
        state,
        "payment.canceled",
        id,
        to_value(&payment),
        now_ms,
    );
    payment
}

/// The status of a payment that can still be cancelled or expire: pending or waiting for
/// capture.
fn unfinished_status(state: &Memory, id: &str) -> Result<PaymentStatus, OpError> {
    let record = state
        .payments
        .get(id)
        .ok_or_else(|| OpError::NotFound(format!("payment {id} not found")))?;
    match record.payment.status {
        status @ (PaymentStatus::Pending | PaymentStatus::WaitingForCapture) => Ok(status),
        other => Err(OpError::Conflict(format!(
            "payment {id} is {}, already final",
            other.as_str()
        ))),
    }
}

/// Cancels a pending or waiting payment (the control API and the payment page).
pub fn cancel(
    app: &App,
    state: &mut Memory,
    id: &str,
    options: &CancelOptions,
    now_ms: i64,
) -> Result<Payment, OpError> {
    let (party, reason) = match unfinished_status(state, id)? {
        PaymentStatus::Pending => ("payment_network", "general_decline"),
        _ => ("merchant", "canceled_by_merchant"),
    };
    let details = CancellationDetails {
        party: options.party.clone().unwrap_or_else(|| party.into()),
        reason: options.reason.clone().unwrap_or_else(|| reason.into()),
    };
    Ok(cancel_now(app, state, id, details, now_ms))
}

/// Expires a payment now (the control API): `expired_on_confirmation` when pending,
/// `expired_on_capture` when waiting for capture.
pub fn expire(app: &App, state: &mut Memory, id: &str, now_ms: i64) -> Result<Payment, OpError> {
    let reason = match unfinished_status(state, id)? {
        PaymentStatus::Pending => "expired_on_confirmation",
        _ => "expired_on_capture",
    };
    let details = CancellationDetails {
        party: "yoo_money".into(),
        reason: reason.into(),
    };
    Ok(cancel_now(app, state, id, details, now_ms))
}

/// Its deadline passed: expire the payment if it is still pending or waiting.
pub fn expire_due(app: &App, state: &mut Memory, id: &str, now_ms: i64) {
    let _ = expire(app, state, id, now_ms);
}
