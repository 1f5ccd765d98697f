//! The Crypto Pay API (`/api/<method>`): invoices, their expiry, and the `invoice_paid` webhook.
//!
//! Why these rules: Tollgate's watcher and webhook handler are only as good as the double they
//! are tested against. So parameters are taken the ways real clients send them (GET query, POST
//! JSON, POST form; lists as comma strings), amounts go back as strings, errors use the real
//! envelope `{"ok":false,"error":{"code":N,"name":"..."}}`, `getInvoices` filters `status` on
//! `active`/`paid` only, and webhooks are signed over the exact bytes sent.
//! Error names other than `EXPIRES_IN_INVALID` and `METHOD_DISABLED` are not documented by the
//! provider; the emulator's are in the same style and named in its README.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::config::Network;
use crate::faults::{self, Outcome};
use crate::model::{CryptoPayUpdate, Invoice, InvoiceStatus, PayOptions, Provider};
use crate::state::{App, Deadline, InvoiceRecord, NewNotification, OpError, State as Memory};
use crate::util;

/// Crypto assets invoices can be priced in or paid with.
pub const ASSETS: &[&str] = &["USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX", "USDC"];
/// Testnet-only asset.
pub const TESTNET_ASSET: &str = "JET";
/// Fiat currencies of fiat invoices.
pub const FIATS: &[&str] = &[
    "USD", "EUR", "RUB", "BYN", "UAH", "GBP", "CNY", "KZT", "UZS", "GEL", "TRY", "AMD", "THB",
    "INR", "BRL", "IDR", "AZN", "AED", "PLN", "ILS", "KGS", "TJS",
];
const PAID_BTN_NAMES: &[&str] = &["viewItem", "openChannel", "openBot", "callback"];
const MAX_EXPIRES_IN: i64 = 2_678_400;
const MAX_PAYLOAD_BYTES: usize = 4096;

/// A Crypto Pay error: HTTP status and `error.name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiError(pub u16, pub &'static str);

/// `{"ok":true,"result":<result>}` around an already serialized result (a watcher's
/// `getInvoices` of 1,000 invoices is serialized once, straight from the stored invoices).
fn ok(result: &str) -> Response {
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        format!("{{\"ok\":true,\"result\":{result}}}"),
    )
        .into_response()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn error(ApiError(code, name): ApiError) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"ok": false, "error": {"code": code, "name": name}})),
    )
        .into_response()
}

/// `ANY /api/{method}`. The call runs in its own task, so a client that gives up (a hang
/// fault, a short deadline) does not cancel it: like a real provider, it still executes.
pub async fn handle(
    State(app): State<Arc<App>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    tokio::spawn(async move {
        let response = execute(app.clone(), method.clone(), headers, query, body).await;
        if faults::CRYPTOPAY_METHODS.contains(&method.as_str()) {
            app.lock().count_call(&method);
        }
        response
    })
    .await
    .unwrap_or_else(|_| error(ApiError(500, "INTERNAL_ERROR")))
}

async fn execute(
    app: Arc<App>,
    method: String,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
) -> Response {
    let token = headers
        .get("crypto-pay-api-token")
        .and_then(|v| v.to_str().ok());
    if token != Some(app.config.cryptopay.token.as_str()) {
        return error(ApiError(401, "UNAUTHORIZED"));
    }
    if !faults::CRYPTOPAY_METHODS.contains(&method.as_str()) {
        return error(ApiError(405, "METHOD_NOT_FOUND"));
    }
    let params = match parse_params(&headers, query.as_deref(), &body) {
        Ok(params) => params,
        Err(e) => return error(e),
    };
    let outcome = faults::apply(&app, &method).await;
    if outcome == Outcome::FailNow {
        return error(ApiError(500, "INTERNAL_ERROR"));
    }
    let now = app.now_ms();
    let result = {
        let mut state = app.lock_at(now);
        match method.as_str() {
            "getMe" => Ok(to_json(&get_me(&app, &state))),
            "createInvoice" => {
                create_invoice(&app, &mut state, &params, now).map(|invoice| to_json(&invoice))
            }
            "getInvoices" => get_invoices(&state, &params),
            "deleteInvoice" => delete_invoice(&mut state, &params).map(|v| to_json(&v)),
            _ => Ok(to_json(&exchange_rates())),
        }
    };
    if outcome == Outcome::FailAfter {
        return error(ApiError(500, "INTERNAL_ERROR"));
    }
    match result {
        Ok(result) => ok(&result),
        Err(e) => error(e),
    }
}

/// Query string, then a JSON or form body on top. JSON non-strings become their text, arrays
/// comma lists, as clients send `accepted_assets` and `invoice_ids` either way.
fn parse_params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<HashMap<String, String>, ApiError> {
    let mut params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.contains("x-www-form-urlencoded") {
        params.extend(url::form_urlencoded::parse(body).into_owned());
        return Ok(params);
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError(400, "JSON_INVALID"));
    };
    for (key, value) in object {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        params.insert(key, text);
    }
    Ok(params)
}

fn get_me(app: &App, state: &Memory) -> Value {
    let app_id: i64 = app
        .config
        .cryptopay
        .token
        .split(':')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    json!({
        "app_id": app_id,
        "name": app.config.cryptopay.app_name,
        "payment_processing_bot_username": match app.config.cryptopay.network {
            Network::Testnet => "CryptoTestnetBot",
            Network::Mainnet => "CryptoBot",
        },
        "webhook_endpoint": state.webhooks.cryptopay,
    })
}

fn is_asset(app: &App, asset: &str) -> bool {
    ASSETS.contains(&asset)
        || (asset == TESTNET_ASSET && app.config.cryptopay.network == Network::Testnet)
}

fn parse_bool(
    params: &HashMap<String, String>,
    key: &str,
    name: &'static str,
) -> Result<bool, ApiError> {
    match params.get(key).map(String::as_str) {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ApiError(400, name)),
    }
}

/// `createInvoice`: validates every parameter (in the order the table lists them) and stores an
/// active invoice whose links lead to the emulator's payment page.
pub fn create_invoice(
    app: &App,
    state: &mut Memory,
    params: &HashMap<String, String>,
    now_ms: i64,
) -> Result<Invoice, ApiError> {
    let get = |key: &str| {
        params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let currency_type = get("currency_type").unwrap_or("crypto");
    let (asset, fiat, accepted_assets) = match currency_type {
        "crypto" => {
            let asset = get("asset").ok_or(ApiError(400, "ASSET_REQUIRED"))?;
            if !is_asset(app, asset) {
                return Err(ApiError(400, "ASSET_INVALID"));
            }
            (Some(asset.to_owned()), None, None)
        }
        "fiat" => {
            let fiat = get("fiat").ok_or(ApiError(400, "FIAT_REQUIRED"))?;
            if !FIATS.contains(&fiat) {
                return Err(ApiError(400, "FIAT_INVALID"));
            }
            let accepted: Vec<String> = match get("accepted_assets") {
                Some(list) => {
                    let assets: Vec<String> =
                        list.split(',').map(|a| a.trim().to_owned()).collect();
                    if assets.iter().any(|a| !is_asset(app, a)) {
                        return Err(ApiError(400, "ACCEPTED_ASSETS_INVALID"));
                    }
                    assets
                }
                None => ASSETS.iter().map(|a| (*a).to_owned()).collect(),
            };
            (None, Some(fiat.to_owned()), Some(accepted))
        }
        _ => return Err(ApiError(400, "CURRENCY_TYPE_INVALID")),
    };
    let amount = get("amount").ok_or(ApiError(400, "AMOUNT_REQUIRED"))?;
    if util::parse_crypto_amount(amount).is_none() {
        return Err(ApiError(400, "AMOUNT_INVALID"));
    }
    let description = get("description");
    if description.is_some_and(|d| d.chars().count() > 1024) {
        return Err(ApiError(400, "DESCRIPTION_TOO_LONG"));
    }
    let hidden_message = get("hidden_message");
    if hidden_message.is_some_and(|m| m.chars().count() > 2048) {
        return Err(ApiError(400, "HIDDEN_MESSAGE_TOO_LONG"));
    }
    let paid_btn_name = get("paid_btn_name");
    let paid_btn_url = get("paid_btn_url");
    if let Some(name) = paid_btn_name {
        if !PAID_BTN_NAMES.contains(&name) {
            return Err(ApiError(400, "PAID_BTN_NAME_INVALID"));
        }
        let valid_url = paid_btn_url.is_some_and(|u| crate::config::check_url(u).is_ok());
        if !valid_url {
            return Err(ApiError(400, "PAID_BTN_URL_INVALID"));
        }
    }
    let payload = params.get("payload").cloned();
    if payload
        .as_ref()
        .is_some_and(|p| p.len() > MAX_PAYLOAD_BYTES)
    {
        return Err(ApiError(400, "PAYLOAD_TOO_LONG"));
    }
    let allow_comments = parse_bool(params, "allow_comments", "ALLOW_COMMENTS_INVALID")?;
    let allow_anonymous = parse_bool(params, "allow_anonymous", "ALLOW_ANONYMOUS_INVALID")?;
    let expires_at_ms = match get("expires_in") {
        None => None,
        Some(text) => {
            let seconds: i64 = text
                .parse()
                .map_err(|_| ApiError(400, "EXPIRES_IN_INVALID"))?;
            if !(1..=MAX_EXPIRES_IN).contains(&seconds) {
                return Err(ApiError(400, "EXPIRES_IN_INVALID"));
            }
            Some(now_ms + seconds * 1000)
        }
    };
    if state.object_count() >= app.config.limits.max_objects {
        return Err(ApiError(400, "EMULATOR_FULL"));
    }
    let invoice_id = state.next_invoice_id;
    state.next_invoice_id += 1;
    let hash = format!(
        "IV{}",
        uuid::Uuid::new_v4().simple().to_string()[..14].to_ascii_uppercase()
    );
    let page = format!("{}/pay/cryptopay/{hash}", app.public_url);
    let invoice = Invoice {
        invoice_id,
        hash: hash.clone(),
        currency_type: currency_type.to_owned(),
        asset,
        fiat,
        amount: amount.to_owned(),
        accepted_assets,
        paid_asset: None,
        paid_amount: None,
        paid_usd_rate: None,
        paid_fiat_rate: None,
        fee_asset: None,
        fee_amount: None,
        pay_url: page.clone(),
        bot_invoice_url: page.clone(),
        mini_app_invoice_url: page.clone(),
        web_app_invoice_url: page,
        description: description.map(str::to_owned),
        status: InvoiceStatus::Active,
        created_at: util::iso8601(now_ms),
        expiration_date: expires_at_ms.map(util::iso8601),
        paid_at: None,
        paid_anonymously: None,
        comment: None,
        hidden_message: hidden_message.map(str::to_owned),
        payload,
        paid_btn_name: paid_btn_name.map(str::to_owned),
        paid_btn_url: paid_btn_name.and(paid_btn_url).map(str::to_owned),
        allow_comments,
        allow_anonymous,
    };
    if let Some(at) = expires_at_ms {
        state.deadlines.insert((at, Deadline::Invoice(invoice_id)));
    }
    state.invoice_by_hash.insert(hash, invoice_id);
    state.invoices.insert(
        invoice_id,
        InvoiceRecord {
            invoice: invoice.clone(),
            expires_at_ms,
        },
    );
    Ok(invoice)
}

fn get_invoices(state: &Memory, params: &HashMap<String, String>) -> Result<String, ApiError> {
    let get = |key: &str| {
        params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let ids: Option<Vec<i64>> = match get("invoice_ids") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|id| id.trim().parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| ApiError(400, "INVOICE_IDS_INVALID"))?,
        ),
    };
    let status = match get("status") {
        None => None,
        Some("active") => Some(InvoiceStatus::Active),
        Some("paid") => Some(InvoiceStatus::Paid),
        Some(_) => return Err(ApiError(400, "STATUS_INVALID")),
    };
    let offset: usize = match get("offset") {
        None => 0,
        Some(text) => text.parse().map_err(|_| ApiError(400, "OFFSET_INVALID"))?,
    };
    let count: usize = match get("count") {
        None => 100,
        Some(text) => text
            .parse()
            .ok()
            .filter(|c| (1..=1000).contains(c))
            .ok_or(ApiError(400, "COUNT_INVALID"))?,
    };
    let asset = get("asset");
    let fiat = get("fiat");
    let matches = |record: &&InvoiceRecord| {
        let invoice = &record.invoice;
        status.is_none_or(|s| invoice.status == s)
            && asset.is_none_or(|a| invoice.asset.as_deref() == Some(a))
            && fiat.is_none_or(|f| invoice.fiat.as_deref() == Some(f))
    };
    let items: Vec<&Invoice> = match ids {
        Some(ids) => {
            let mut ids = ids;
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.dedup();
            ids.iter()
                .filter_map(|id| state.invoices.get(id))
                .filter(matches)
                .skip(offset)
                .take(count)
                .map(|r| &r.invoice)
                .collect()
        }
        None => state
            .invoices
            .values()
            .rev()
            .filter(matches)
            .skip(offset)
            .take(count)
            .map(|r| &r.invoice)
            .collect(),
    };
    /// `getInvoices`' result.
    #[derive(serde::Serialize)]
    struct Items<'a> {
        items: Vec<&'a Invoice>,
    }
    Ok(to_json(&Items { items }))
}

fn delete_invoice(state: &mut Memory, params: &HashMap<String, String>) -> Result<Value, ApiError> {
    let id: i64 = params
        .get("invoice_id")
        .and_then(|v| v.parse().ok())
        .ok_or(ApiError(400, "INVOICE_ID_INVALID"))?;
    let record = state
        .invoices
        .remove(&id)
        .ok_or(ApiError(400, "INVOICE_NOT_FOUND"))?;
    state.invoice_by_hash.remove(&record.invoice.hash);
    if let Some(at) = record.expires_at_ms {
        state.deadlines.remove(&(at, Deadline::Invoice(id)));
    }
    Ok(Value::Bool(true))
}

/// Made-up fixed prices: USD per asset unit.
fn usd_per_asset(asset: &str) -> f64 {
    match asset {
        "TON" => 5.0,
        "BTC" => 90_000.0,
        "ETH" => 3_000.0,
        "LTC" => 80.0,
        "BNB" => 600.0,
        "TRX" => 0.25,
        "JET" => 0.01,
        _ => 1.0,
    }
}

/// Made-up fixed prices: fiat units per USD.
fn fiat_per_usd(fiat: &str) -> f64 {
    match fiat {
        "EUR" => 0.92,
        "RUB" => 95.0,
        "GBP" => 0.79,
        "UAH" => 41.0,
        "KZT" => 500.0,
        "BYN" => 3.3,
        "CNY" => 7.2,
        "TRY" => 34.0,
        _ => 1.0,
    }
}

fn format_rate(value: f64) -> String {
    let text = format!("{value:.8}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() {
        "0".into()
    } else {
        text.into()
    }
}

fn exchange_rates() -> Value {
    let mut rates = Vec::new();
    for asset in ASSETS {
        for fiat in ["USD", "EUR", "RUB"] {
            rates.push(json!({
                "is_valid": true, "is_crypto": true, "is_fiat": false,
                "source": asset, "target": fiat,
                "rate": format_rate(usd_per_asset(asset) * fiat_per_usd(fiat)),
            }));
        }
    }
    Value::Array(rates)
}

/// Marks an active invoice paid (the control API and the payment page), as the payer's
/// wallet would, and queues its `invoice_paid` webhook. `options` can make it report another
/// amount or currency (a tampered or foreign invoice).
pub fn pay(
    app: &App,
    state: &mut Memory,
    invoice_id: i64,
    options: &PayOptions,
    now_ms: i64,
) -> Result<Invoice, OpError> {
    let record = active_invoice(state, invoice_id)?;
    if let Some(amount) = &options.amount
        && util::parse_crypto_amount(amount).is_none()
    {
        return Err(OpError::BadRequest(format!(
            "amount {amount:?} is not a positive decimal"
        )));
    }
    let invoice = &mut record.invoice;
    if let Some(amount) = &options.amount {
        invoice.amount.clone_from(amount);
    }
    if let Some(currency) = &options.currency {
        if invoice.currency_type == "fiat" {
            invoice.fiat = Some(currency.clone());
        } else {
            invoice.asset = Some(currency.clone());
        }
    }
    let paid_asset = options
        .paid_asset
        .clone()
        .or_else(|| invoice.asset.clone())
        .or_else(|| {
            invoice
                .accepted_assets
                .as_ref()
                .and_then(|a| a.first().cloned())
        })
        .unwrap_or_else(|| "USDT".into());
    let amount = util::parse_crypto_amount(&invoice.amount).unwrap_or(0.0);
    let usd_rate = usd_per_asset(&paid_asset);
    let paid_amount = match &invoice.fiat {
        Some(fiat) => {
            let fiat_rate = usd_rate * fiat_per_usd(fiat);
            invoice.paid_fiat_rate = Some(format_rate(fiat_rate));
            format_rate(amount / fiat_rate)
        }
        None => invoice.amount.clone(),
    };
    invoice.paid_usd_rate = Some(format_rate(usd_rate));
    invoice.paid_amount = Some(paid_amount);
    invoice.fee_asset = Some(paid_asset.clone());
    invoice.fee_amount = Some("0".into());
    invoice.paid_asset = Some(paid_asset);
    invoice.status = InvoiceStatus::Paid;
    invoice.paid_at = Some(util::iso8601(now_ms));
    invoice.paid_anonymously = Some(false);
    let invoice = invoice.clone();
    if let Some(at) = record.expires_at_ms {
        state.deadlines.remove(&(at, Deadline::Invoice(invoice_id)));
    }
    let update = CryptoPayUpdate {
        update_id: state.next_update_id,
        update_type: "invoice_paid".into(),
        request_date: util::iso8601(now_ms),
        payload: invoice.clone(),
    };
    state.next_update_id += 1;
    let body = serde_json::to_string(&update).unwrap_or_default();
    let signature = util::cryptopay_signature(&app.config.cryptopay.token, body.as_bytes());
    if state.queue_notification(
        &app.config,
        now_ms,
        NewNotification {
            provider: Provider::Cryptopay,
            event: "invoice_paid".into(),
            object_id: invoice_id.to_string(),
            body,
            signature: Some(signature),
        },
    ) {
        app.wake.notify_one();
    }
    Ok(invoice)
}

/// The invoice `invoice_id`, which must be active.
fn active_invoice(state: &mut Memory, invoice_id: i64) -> Result<&mut InvoiceRecord, OpError> {
    let record = state
        .invoices
        .get_mut(&invoice_id)
        .ok_or_else(|| OpError::NotFound(format!("invoice {invoice_id} not found")))?;
    if record.invoice.status != InvoiceStatus::Active {
        return Err(OpError::Conflict(format!(
            "invoice {invoice_id} is {}, not active",
            record.invoice.status.as_str()
        )));
    }
    Ok(record)
}

/// Expires an active invoice now (the control API). Crypto Pay sends no webhook for expiry.
pub fn expire(state: &mut Memory, invoice_id: i64) -> Result<Invoice, OpError> {
    let record = active_invoice(state, invoice_id)?;
    record.invoice.status = InvoiceStatus::Expired;
    let invoice = record.invoice.clone();
    if let Some(at) = record.expires_at_ms {
        state.deadlines.remove(&(at, Deadline::Invoice(invoice_id)));
    }
    Ok(invoice)
}

/// Its deadline passed: expire the invoice if still active.
pub fn expire_due(state: &mut Memory, invoice_id: i64) {
    if let Some(record) = state.invoices.get_mut(&invoice_id)
        && record.invoice.status == InvoiceStatus::Active
    {
        record.invoice.status = InvoiceStatus::Expired;
    }
}
