//! The payment pages: what the payer sees instead of @CryptoBot or YooKassa's checkout.
//!
//! Why this exists: `tollgate sandbox` lets a person buy with "crypto" and "card" without an
//! account anywhere. The bot's Pay button opens `pay_url` / `confirmation_url`, which point here;
//! the page shows the amount and has Pay and Cancel buttons that do what the payer's wallet or
//! card would (the same operations as the control API).

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;

use crate::model::{CancelOptions, InvoiceStatus, PayOptions, PaymentStatus};
use crate::state::App;
use crate::util::escape_html;

/// The form the page posts.
#[derive(Debug, Deserialize)]
pub struct PageAction {
    /// `pay` or `cancel`.
    pub action: String,
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{title}</title><style>\
         body{{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}\
         .amount{{font-size:2rem;margin:1rem 0}} button{{font-size:1.1rem;padding:.6rem 1.4rem;\
         margin-right:.5rem}} .note{{color:#666;font-size:.9rem}}</style></head><body>\
         <h1>{title}</h1>{body}<p class=\"note\">Local payment emulator: no real money moves.</p>\
         </body></html>",
        title = escape_html(title),
    ))
}

fn buttons(action: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\"><button name=\"action\" value=\"pay\" \
         id=\"pay\">Pay</button><button name=\"action\" value=\"cancel\" id=\"cancel\">Cancel\
         </button></form>",
        action = escape_html(action)
    )
}

fn link(url: Option<&str>, text: &str) -> String {
    url.map(|u| {
        format!(
            "<p><a href=\"{}\" id=\"return\">{}</a></p>",
            escape_html(u),
            escape_html(text)
        )
    })
    .unwrap_or_default()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        page("Not found", "<p>No such invoice or payment.</p>"),
    )
        .into_response()
}

/// `GET /pay/cryptopay/{hash}`.
pub async fn cryptopay(State(app): State<Arc<App>>, Path(hash): Path<String>) -> Response {
    let now = app.now_ms();
    let invoice = {
        let state = app.lock_at(now);
        state
            .invoice_by_hash
            .get(&hash)
            .and_then(|id| state.invoices.get(id))
            .map(|r| r.invoice.clone())
    };
    let Some(invoice) = invoice else {
        return not_found();
    };
    let currency = invoice
        .fiat
        .clone()
        .or(invoice.asset.clone())
        .unwrap_or_default();
    let mut body = format!(
        "<p>{}</p><p class=\"amount\">{} {}</p><p>Status: <b id=\"status\">{}</b></p>",
        escape_html(
            invoice
                .description
                .as_deref()
                .unwrap_or("Crypto Pay invoice")
        ),
        escape_html(&invoice.amount),
        escape_html(&currency),
        invoice.status.as_str()
    );
    if let Some(assets) = &invoice.accepted_assets {
        body.push_str(&format!(
            "<p>Pay with: {}</p>",
            escape_html(&assets.join(", "))
        ));
    }
    if invoice.status == InvoiceStatus::Active {
        body.push_str(&buttons(&format!("/pay/cryptopay/{hash}")));
    } else if invoice.status == InvoiceStatus::Paid {
        body.push_str(&link(invoice.paid_btn_url.as_deref(), "Back to the bot"));
    }
    page("Crypto Pay", &body).into_response()
}

/// `POST /pay/cryptopay/{hash}`: Pay marks the invoice paid; Cancel leaves it active (a payer
/// who closes the wallet), as Crypto Pay has no cancelled state.
pub async fn cryptopay_action(
    State(app): State<Arc<App>>,
    Path(hash): Path<String>,
    Form(form): Form<PageAction>,
) -> Response {
    let now = app.now_ms();
    let result = {
        let mut state = app.lock_at(now);
        let Some(id) = state.invoice_by_hash.get(&hash).copied() else {
            return not_found();
        };
        match form.action.as_str() {
            "pay" => crate::cryptopay::pay(&app, &mut state, id, &PayOptions::default(), now)
                .map(|invoice| (true, invoice.paid_btn_url))
                .map_err(|e| e.to_string()),
            _ => Ok((false, None)),
        }
    };
    match result {
        Ok((true, back)) => page(
            "Paid",
            &format!(
                "<p id=\"status\">paid</p>{}",
                link(back.as_deref(), "Back to the bot")
            ),
        )
        .into_response(),
        Ok((false, _)) => page(
            "Not paid",
            "<p id=\"status\">You left without paying; the invoice stays open until it expires.</p>",
        )
        .into_response(),
        Err(message) => (
            StatusCode::CONFLICT,
            page("Cannot pay", &format!("<p id=\"status\">{}</p>", escape_html(&message))),
        )
            .into_response(),
    }
}

/// `GET /pay/yookassa/{id}`.
pub async fn yookassa(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let now = app.now_ms();
    let payment = {
        let state = app.lock_at(now);
        state.payments.get(&id).map(|r| r.payment.clone())
    };
    let Some(payment) = payment else {
        return not_found();
    };
    let mut body = format!(
        "<p>{}</p><p class=\"amount\">{} {}</p><p>Status: <b id=\"status\">{}</b></p>",
        escape_html(payment.description.as_deref().unwrap_or("YooKassa payment")),
        escape_html(&payment.amount.value),
        escape_html(&payment.amount.currency),
        payment.status.as_str()
    );
    if payment.status == PaymentStatus::Pending {
        body.push_str("<p>Test card 5555 5555 5555 4444</p>");
        body.push_str(&buttons(&format!("/pay/yookassa/{id}")));
    } else {
        let back = payment
            .confirmation
            .as_ref()
            .and_then(|c| c.return_url.as_deref());
        body.push_str(&link(back, "Back to the shop"));
    }
    page("YooKassa", &body).into_response()
}

/// `POST /pay/yookassa/{id}`: Pay pays (succeeded, or waiting for capture); Cancel declines it
/// (`canceled`, `payment_network` / `general_decline`).
pub async fn yookassa_action(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Form(form): Form<PageAction>,
) -> Response {
    let now = app.now_ms();
    let result = {
        let mut state = app.lock_at(now);
        if !state.payments.contains_key(&id) {
            return not_found();
        }
        match form.action.as_str() {
            "pay" => crate::yookassa::pay(&app, &mut state, &id, &PayOptions::default(), now),
            _ => crate::yookassa::cancel(&app, &mut state, &id, &CancelOptions::default(), now),
        }
    };
    match result {
        Ok(payment) => {
            let back = payment
                .confirmation
                .as_ref()
                .and_then(|c| c.return_url.clone());
            let title = if payment.paid { "Paid" } else { "Cancelled" };
            page(
                title,
                &format!(
                    "<p id=\"status\">{}</p>{}",
                    payment.status.as_str(),
                    link(back.as_deref(), "Back to the shop")
                ),
            )
            .into_response()
        }
        Err(message) => (
            StatusCode::CONFLICT,
            page(
                "Cannot do that",
                &format!("<p id=\"status\">{}</p>", escape_html(&message.to_string())),
            ),
        )
            .into_response(),
    }
}
