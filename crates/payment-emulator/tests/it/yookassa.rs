//! YooKassa: payments, idempotence, notifications.

use base64::Engine;
use payment_emulator::{PaymentStatus, Provider};
use serde_json::{Value, json};

use crate::common::{Receiver, emulator};

fn auth(emulator: &payment_emulator::RunningPaymentEmulator) -> String {
    let pair = format!(
        "{}:{}",
        emulator.yookassa_shop_id(),
        emulator.yookassa_secret_key()
    );
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn post(
    emulator: &payment_emulator::RunningPaymentEmulator,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/{path}", emulator.yookassa_api_url()))
        .header("Authorization", auth(emulator))
        .header("Idempotence-Key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn get(emulator: &payment_emulator::RunningPaymentEmulator, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/{path}", emulator.yookassa_api_url()))
        .header("Authorization", auth(emulator))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn payment_body() -> Value {
    json!({"amount": {"value": "199.00", "currency": "RUB"}, "capture": true,
           "confirmation": {"type": "redirect", "return_url": "https://t.me/tollgate_bot"},
           "description": "VPN 30 days", "metadata": {"purchase_id": "42"}})
}

#[tokio::test]
async fn create_get_pay_and_notify() {
    let emulator = emulator().await;
    let hook = Receiver::start().await;
    let control = emulator.client();
    control
        .set_webhook(Provider::Yookassa, Some(&hook.url))
        .await
        .expect("set webhook");
    let (status, payment) = post(&emulator, "payments", "purchase-42", &payment_body()).await;
    assert_eq!(status, 200, "{payment}");
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["paid"], false);
    assert_eq!(
        payment["amount"],
        json!({"value": "199.00", "currency": "RUB"})
    );
    assert_eq!(payment["metadata"], json!({"purchase_id": "42"}));
    let id = payment["id"].as_str().expect("id").to_owned();
    let url = payment["confirmation"]["confirmation_url"]
        .as_str()
        .expect("url");
    assert!(url.starts_with(&emulator.base_url()), "{url}");

    let (status, fetched) = get(&emulator, &format!("payments/{id}")).await;
    assert_eq!((status, &fetched["id"]), (200, &json!(id)));

    let paid = control.pay_payment(&id).await.expect("pay");
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let received = hook.wait_for(1).await;
    let note: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(note["type"], "notification");
    assert_eq!(note["event"], "payment.succeeded");
    assert_eq!(note["object"]["id"], json!(id));
    assert_eq!(note["object"]["status"], "succeeded");
    assert!(
        received[0]
            .headers
            .get("crypto-pay-api-signature")
            .is_none()
    );

    let (_, fetched) = get(&emulator, &format!("payments/{id}")).await;
    assert_eq!(fetched["status"], "succeeded");
    assert_eq!(fetched["paid"], true);
    emulator.shutdown().await;
}

#[tokio::test]
async fn idempotence_key_replays_or_refuses() {
    let emulator = emulator().await;
    let (_, first) = post(&emulator, "payments", "key-1", &payment_body()).await;
    let (status, again) = post(&emulator, "payments", "key-1", &payment_body()).await;
    assert_eq!(status, 200);
    assert_eq!(first, again, "same key, same body: the same payment");
    let mut other = payment_body();
    other["amount"]["value"] = json!("299.00");
    let (status, refused) = post(&emulator, "payments", "key-1", &other).await;
    assert_eq!(status, 400);
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "invalid_request");
    assert_eq!(refused["parameter"], "Idempotence-Key");
    let (status, long) = post(&emulator, "payments", &"k".repeat(65), &payment_body()).await;
    assert_eq!(
        (status, &long["parameter"]),
        (400, &json!("Idempotence-Key"))
    );
    assert_eq!(emulator.client().payments().await.expect("list").len(), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_specific_errors_and_stores_nothing() {
    let emulator = emulator().await;
    let unauthorized = reqwest::Client::new()
        .post(format!("{}/payments", emulator.yookassa_api_url()))
        .basic_auth(emulator.yookassa_shop_id(), Some("wrong"))
        .header("Idempotence-Key", "k")
        .json(&payment_body())
        .send()
        .await
        .expect("request");
    assert_eq!(unauthorized.status().as_u16(), 401);
    let body: Value = unauthorized.json().await.expect("json");
    assert_eq!(body["code"], "invalid_credentials");

    let mut number = payment_body();
    number["amount"]["value"] = json!(199);
    let (status, body) = post(&emulator, "payments", "k1", &number).await;
    assert_eq!((status, &body["parameter"]), (400, &json!("amount.value")));
    let mut long = payment_body();
    long["description"] = json!("d".repeat(129));
    let (_, body) = post(&emulator, "payments", "k2", &long).await;
    assert_eq!(body["parameter"], "description");
    let (status, body) = get(&emulator, "payments/no-such-payment").await;
    assert_eq!((status, &body["code"]), (404, &json!("not_found")));
    assert!(emulator.client().payments().await.expect("list").is_empty());
    emulator.shutdown().await;
}
