//! Crypto Pay: invoices, errors, the signed webhook.

use payment_emulator::{InvoiceStatus, PayOptions, Provider, cryptopay_signature};
use serde_json::{Value, json};

use crate::common::{Receiver, emulator};

/// Calls Crypto Pay's `method` with `body`: the HTTP status and the answer.
pub async fn call(
    emulator: &payment_emulator::RunningPaymentEmulator,
    method: &str,
    body: Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/{method}", emulator.cryptopay_api_url()))
        .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn fiat_invoice() -> Value {
    json!({"currency_type": "fiat", "fiat": "RUB", "amount": "199.00",
           "accepted_assets": "USDT,TON", "payload": "purchase-42", "expires_in": 1800})
}

#[tokio::test]
async fn create_list_pay_and_signed_webhook() {
    let emulator = emulator().await;
    let hook = Receiver::of(&emulator, Provider::Cryptopay).await;
    let control = emulator.client();

    let (status, created) = call(&emulator, "createInvoice", fiat_invoice()).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["ok"], true);
    let invoice = &created["result"];
    assert_eq!(invoice["status"], "active");
    assert_eq!(invoice["amount"], "199.00");
    assert_eq!(invoice["fiat"], "RUB");
    assert_eq!(invoice["accepted_assets"], json!(["USDT", "TON"]));
    assert_eq!(invoice["payload"], "purchase-42");
    let id = invoice["invoice_id"].as_i64().expect("id");
    let page = invoice["bot_invoice_url"].as_str().expect("url");
    assert!(page.starts_with(&emulator.base_url()), "{page}");

    // GET with a query string works too, and lists filter by id and status.
    let listed: Value = reqwest::Client::new()
        .get(format!(
            "{}/getInvoices?invoice_ids={id}&status=active",
            emulator.cryptopay_api_url()
        ))
        .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["result"]["items"][0]["invoice_id"], id);

    let paid = control.pay_invoice(id).await.expect("pay");
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(paid.paid_asset.as_deref(), Some("USDT"));

    let received = hook.wait_for(1).await;
    let body = &received[0].body;
    let signature = received[0]
        .headers
        .get("crypto-pay-api-signature")
        .and_then(|v| v.to_str().ok())
        .expect("signature header");
    assert_eq!(
        signature,
        cryptopay_signature(emulator.cryptopay_token(), body)
    );
    assert_ne!(signature, cryptopay_signature("1234:wrong", body));
    let update: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(update["update_type"], "invoice_paid");
    assert_eq!(update["payload"]["invoice_id"], id);
    assert_eq!(update["payload"]["status"], "paid");

    let (_, after) = call(&emulator, "getInvoices", json!({"status": "paid"})).await;
    assert_eq!(after["result"]["items"][0]["invoice_id"], id);
    let (_, active) = call(&emulator, "getInvoices", json!({"status": "active"})).await;
    assert_eq!(active["result"]["items"], json!([]));
    emulator.shutdown().await;
}

#[tokio::test]
async fn errors_use_the_real_envelope_and_store_nothing() {
    let emulator = emulator().await;
    let response = reqwest::Client::new()
        .post(format!("{}/createInvoice", emulator.cryptopay_api_url()))
        .header("Crypto-Pay-API-Token", "1234:BAD")
        .json(&fiat_invoice())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"ok": false, "error": {"code": 401, "name": "UNAUTHORIZED"}})
    );

    let mut bad = fiat_invoice();
    bad["expires_in"] = json!(2_678_401);
    let (status, body) = call(&emulator, "createInvoice", bad).await;
    assert_eq!(
        (status, &body["error"]["name"]),
        (400, &json!("EXPIRES_IN_INVALID"))
    );
    let mut bad = fiat_invoice();
    bad["amount"] = json!("-5");
    let (_, body) = call(&emulator, "createInvoice", bad).await;
    assert_eq!(body["error"]["name"], "AMOUNT_INVALID");
    let mut bad = fiat_invoice();
    bad["payload"] = json!("x".repeat(4097));
    let (_, body) = call(&emulator, "createInvoice", bad).await;
    assert_eq!(body["error"]["name"], "PAYLOAD_TOO_LONG");
    let (status, body) = call(&emulator, "getInvoices", json!({"status": "expired"})).await;
    assert_eq!(
        (status, &body["error"]["name"]),
        (400, &json!("STATUS_INVALID"))
    );
    let (status, body) = call(&emulator, "noSuchMethod", json!({})).await;
    assert_eq!(
        (status, &body["error"]["name"]),
        (405, &json!("METHOD_NOT_FOUND"))
    );
    assert!(emulator.client().invoices().await.expect("list").is_empty());
    emulator.shutdown().await;
}

#[tokio::test]
async fn delete_expire_and_amount_override() {
    let emulator = emulator().await;
    let control = emulator.client();
    let (_, first) = call(&emulator, "createInvoice", fiat_invoice()).await;
    let first = first["result"]["invoice_id"].as_i64().expect("id");
    let (_, deleted) = call(&emulator, "deleteInvoice", json!({"invoice_id": first})).await;
    assert_eq!(deleted, json!({"ok": true, "result": true}));
    let (status, again) = call(&emulator, "deleteInvoice", json!({"invoice_id": first})).await;
    assert_eq!(
        (status, &again["error"]["name"]),
        (400, &json!("INVOICE_NOT_FOUND"))
    );

    // expires_in runs on emulated time.
    let (_, second) = call(&emulator, "createInvoice", fiat_invoice()).await;
    let second = second["result"]["invoice_id"].as_i64().expect("id");
    control
        .advance_clock(std::time::Duration::from_secs(1801))
        .await
        .expect("advance");
    assert_eq!(
        control.invoice(second).await.expect("get").status,
        InvoiceStatus::Expired
    );
    let refused = control.pay_invoice(second).await.expect_err("expired");
    assert!(refused.to_string().contains("expired"), "{refused}");

    let (_, third) = call(&emulator, "createInvoice", fiat_invoice()).await;
    let third = third["result"]["invoice_id"].as_i64().expect("id");
    let underpaid = control
        .pay_invoice_with(
            third,
            &PayOptions {
                amount: Some("99.00".into()),
                ..PayOptions::default()
            },
        )
        .await
        .expect("pay");
    assert_eq!(underpaid.amount, "99.00");
    emulator.shutdown().await;
}

#[tokio::test]
async fn parameters_come_as_query_form_or_json_arrays() {
    let emulator = emulator().await;
    let client = reqwest::Client::new();
    let form: Value = client
        .post(format!("{}/createInvoice", emulator.cryptopay_api_url()))
        .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
        .form(&[
            ("asset", "TON"),
            ("amount", "1.5"),
            ("allow_comments", "false"),
        ])
        .send()
        .await
        .expect("form")
        .json()
        .await
        .expect("json");
    assert_eq!(form["result"]["asset"], "TON");
    assert_eq!(form["result"]["allow_comments"], false);
    let (_, array) = call(
        &emulator,
        "createInvoice",
        json!({"currency_type": "fiat", "fiat": "USD", "amount": 5,
               "accepted_assets": ["USDT", "BTC"]}),
    )
    .await;
    assert_eq!(array["result"]["accepted_assets"], json!(["USDT", "BTC"]));
    assert_eq!(array["result"]["amount"], "5");
    let query: Value = client
        .get(format!(
            "{}/createInvoice?asset=USDT&amount=3",
            emulator.cryptopay_api_url()
        ))
        .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(query["result"]["amount"], "3");
    let (_, bad) = call(
        &emulator,
        "createInvoice",
        json!({"currency_type": "fiat", "fiat": "RUB", "amount": "1", "accepted_assets": "USDT,DOGE"}),
    )
    .await;
    assert_eq!(bad["error"]["name"], "ACCEPTED_ASSETS_INVALID");
    let (_, me) = call(&emulator, "getMe", json!({})).await;
    assert_eq!(me["result"]["app_id"], 1234);
    assert_eq!(emulator.client().invoices().await.expect("list").len(), 3);
    emulator.shutdown().await;
}
