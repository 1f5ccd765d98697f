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

pub async fn post(
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

pub async fn get(emulator: &payment_emulator::RunningPaymentEmulator, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/{path}", emulator.yookassa_api_url()))
        .header("Authorization", auth(emulator))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

pub fn payment_body() -> Value {
    json!({"amount": {"value": "199.00", "currency": "RUB"}, "capture": true,
           "confirmation": {"type": "redirect", "return_url": "https://t.me/tollgate_bot"},
           "description": "VPN 30 days", "metadata": {"purchase_id": "42"}})
}

#[tokio::test]
async fn create_get_pay_and_notify() {
    let emulator = emulator().await;
    let hook = Receiver::of(&emulator, Provider::Yookassa).await;
    let control = emulator.client();
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

#[tokio::test]
async fn capture_cancel_and_refund_follow_the_status_machine() {
    let emulator = emulator().await;
    let hook = Receiver::of(&emulator, Provider::Yookassa).await;
    let control = emulator.client();
    let mut two_stage = payment_body();
    two_stage["capture"] = json!(false);
    let (_, payment) = post(&emulator, "payments", "two-stage", &two_stage).await;
    let id = payment["id"].as_str().expect("id").to_owned();
    // Pending cannot be captured or cancelled by the merchant.
    let (status, refused) = post(
        &emulator,
        &format!("payments/{id}/capture"),
        "c0",
        &json!({}),
    )
    .await;
    assert_eq!((status, &refused["code"]), (400, &json!("invalid_request")));
    let waiting = control.pay_payment(&id).await.expect("pay");
    assert_eq!(waiting.status, PaymentStatus::WaitingForCapture);
    assert!(waiting.paid);
    assert!(waiting.expires_at.is_some());
    let (status, captured) = post(
        &emulator,
        &format!("payments/{id}/capture"),
        "c1",
        &json!({"amount": {"value": "150.00", "currency": "RUB"}}),
    )
    .await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["amount"]["value"], "150.00");

    let (status, refund) = post(
        &emulator,
        "refunds",
        "r1",
        &json!({"payment_id": id, "amount": {"value": "100.00", "currency": "RUB"}}),
    )
    .await;
    assert_eq!(status, 200, "{refund}");
    assert_eq!(refund["status"], "succeeded");
    let (status, too_much) = post(
        &emulator,
        "refunds",
        "r2",
        &json!({"payment_id": id, "amount": {"value": "50.01", "currency": "RUB"}}),
    )
    .await;
    assert_eq!(
        (status, &too_much["parameter"]),
        (400, &json!("amount.value"))
    );
    let (_, fetched) = get(&emulator, &format!("payments/{id}")).await;
    assert_eq!(fetched["refunded_amount"]["value"], "100.00");
    assert_eq!(fetched["refundable"], true);
    let refund_id = refund["id"].as_str().expect("id");
    let (status, got) = get(&emulator, &format!("refunds/{refund_id}")).await;
    assert_eq!((status, &got["payment_id"]), (200, &json!(id)));
    let (status, listed) = get(&emulator, &format!("refunds?payment_id={id}")).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["type"], "list");
    assert_eq!(listed["items"][0]["id"], json!(refund_id));
    let (_, other_payment) = get(&emulator, "refunds?payment_id=another").await;
    assert_eq!(other_payment["items"], json!([]));

    let (_, other) = post(&emulator, "payments", "to-cancel", &two_stage).await;
    let other_id = other["id"].as_str().expect("id").to_owned();
    control.pay_payment(&other_id).await.expect("pay");
    let (status, cancelled) = post(
        &emulator,
        &format!("payments/{other_id}/cancel"),
        "x1",
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        cancelled["cancellation_details"]["reason"],
        "canceled_by_merchant"
    );

    let received = hook.wait_for(5).await;
    let events: Vec<String> = received
        .iter()
        .map(|r| {
            let note: Value = serde_json::from_slice(&r.body).expect("json");
            note["event"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    for event in [
        "payment.waiting_for_capture",
        "payment.succeeded",
        "refund.succeeded",
        "payment.canceled",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn unpaid_payments_are_cancelled_after_the_confirmation_window() {
    let emulator = emulator().await;
    let hook = Receiver::of(&emulator, Provider::Yookassa).await;
    let control = emulator.client();
    let (_, payment) = post(&emulator, "payments", "late", &payment_body()).await;
    let id = payment["id"].as_str().expect("id").to_owned();
    control
        .advance_clock(std::time::Duration::from_secs(3601))
        .await
        .expect("advance");
    let (_, fetched) = get(&emulator, &format!("payments/{id}")).await;
    assert_eq!(fetched["status"], "canceled");
    assert_eq!(
        fetched["cancellation_details"]["reason"],
        "expired_on_confirmation"
    );
    let received = hook.wait_for(1).await;
    let note: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert_eq!(note["event"], "payment.canceled");
    assert!(control.pay_payment(&id).await.is_err(), "too late to pay");
    emulator.shutdown().await;
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let emulator = emulator().await;
    let control = emulator.client();
    let mut ids = Vec::new();
    for n in 0..5 {
        let (_, payment) = post(&emulator, "payments", &format!("list-{n}"), &payment_body()).await;
        ids.push(payment["id"].as_str().expect("id").to_owned());
    }
    control.pay_payment(&ids[1]).await.expect("pay");
    control.pay_payment(&ids[3]).await.expect("pay");
    let (_, page) = get(&emulator, "payments?limit=2").await;
    assert_eq!(page["type"], "list");
    assert_eq!(page["items"][0]["id"], json!(ids[4]));
    assert_eq!(page["items"][1]["id"], json!(ids[3]));
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let (_, next) = get(&emulator, &format!("payments?limit=2&cursor={cursor}")).await;
    assert_eq!(next["items"][0]["id"], json!(ids[2]));
    let (_, last) = get(&emulator, "payments?limit=2&cursor=2").await;
    assert_eq!(last["items"][0]["id"], json!(ids[0]));
    assert!(last.get("next_cursor").is_none(), "{last}");
    let (_, succeeded) = get(&emulator, "payments?status=succeeded").await;
    let found: Vec<&str> = succeeded["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(found, vec![ids[3].as_str(), ids[1].as_str()]);
    let (_, none) = get(
        &emulator,
        "payments?created_at.gte=2100-01-01T00:00:00.000Z",
    )
    .await;
    assert_eq!(none["items"], json!([]));
    let (status, bad) = get(&emulator, "payments?created_at.gte=yesterday").await;
    assert_eq!((status, &bad["parameter"]), (400, &json!("created_at.gte")));
    let (status, bad) = get(&emulator, "payments?limit=101").await;
    assert_eq!((status, &bad["parameter"]), (400, &json!("limit")));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_retry_during_a_hang_and_after_it_makes_one_payment() {
    let emulator = emulator().await;
    let control = emulator.client();
    control
        .fail_next(
            "payments.create",
            1,
            payment_emulator::FaultKind::Hang { ms: 1000 },
        )
        .await
        .expect("fault");
    let send = |timeout_ms: u64| {
        reqwest::Client::new()
            .post(format!("{}/payments", emulator.yookassa_api_url()))
            .header("Authorization", auth(&emulator))
            .header("Idempotence-Key", "purchase-9")
            .json(&payment_body())
            .timeout(std::time::Duration::from_millis(timeout_ms))
            .send()
    };
    let cut = send(200).await;
    assert!(
        cut.is_err_and(|e| e.is_timeout()),
        "the client is cut at its deadline"
    );
    // The retry arrives while the first call still hangs: it creates the payment...
    let retry: Value = send(5000).await.expect("retry").json().await.expect("json");
    // ...and the hung call, executing later, finds the key and creates nothing more.
    control
        .wait_for_calls("payments.create", 2, std::time::Duration::from_secs(5))
        .await
        .expect("the hung call completed");
    let payments = control.payments().await.expect("list");
    assert_eq!(payments.len(), 1, "never a second payment");
    assert_eq!(json!(payments[0].id), retry["id"]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_idempotence_key_lives_24_hours() {
    let emulator = emulator().await;
    let (_, first) = post(&emulator, "payments", "daily", &payment_body()).await;
    emulator
        .client()
        .advance_clock(std::time::Duration::from_secs(24 * 3600 + 1))
        .await
        .expect("advance");
    let (status, second) = post(&emulator, "payments", "daily", &payment_body()).await;
    assert_eq!(status, 200);
    assert_ne!(
        first["id"], second["id"],
        "after 24 h the same key is a new request"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn headers_and_receipts_are_checked() {
    let mut config = payment_emulator::PaymentEmulatorConfig::default();
    config.yookassa.fiscalization_enabled = true;
    let emulator = payment_emulator::PaymentEmulator::start(config)
        .await
        .expect("start");
    let client = reqwest::Client::new();
    let no_key = client
        .post(format!("{}/payments", emulator.yookassa_api_url()))
        .header("Authorization", auth(&emulator))
        .json(&payment_body())
        .send()
        .await
        .expect("request");
    assert_eq!(no_key.status().as_u16(), 400);
    let body: Value = no_key.json().await.expect("json");
    assert_eq!(body["parameter"], "Idempotence-Key");
    let form = client
        .post(format!("{}/payments", emulator.yookassa_api_url()))
        .header("Authorization", auth(&emulator))
        .header("Idempotence-Key", "form")
        .form(&[("amount", "1")])
        .send()
        .await
        .expect("request");
    assert_eq!(form.status().as_u16(), 415);

    let (status, missing) = post(&emulator, "payments", "r0", &payment_body()).await;
    assert_eq!((status, &missing["parameter"]), (400, &json!("receipt")));
    let receipt = |phone: &str, value: &str| {
        let mut body = payment_body();
        body["receipt"] = json!({"customer": {"phone": phone}, "items": [
            {"description": "VPN 30 days", "quantity": "1.00",
             "amount": {"value": value, "currency": "RUB"}, "vat_code": 1,
             "payment_subject": "service", "payment_mode": "full_payment"}]});
        body
    };
    let (_, spaced) = post(
        &emulator,
        "payments",
        "r1",
        &receipt("+7 900 000-00-00", "199.00"),
    )
    .await;
    assert_eq!(spaced["parameter"], "receipt");
    assert!(
        spaced["description"]
            .as_str()
            .expect("text")
            .contains("phone"),
        "{spaced}"
    );
    let (_, sum) = post(
        &emulator,
        "payments",
        "r2",
        &receipt("+79000000000", "198.00"),
    )
    .await;
    assert!(
        sum["description"].as_str().expect("text").contains("sum"),
        "{sum}"
    );
    let mut tax = receipt("+79000000000", "199.00");
    tax["receipt"]["tax_system_code"] = json!(7);
    let (status, tax) = post(&emulator, "payments", "r4", &tax).await;
    assert_eq!(status, 400, "{tax}");
    assert!(
        tax["description"]
            .as_str()
            .expect("text")
            .contains("tax_system_code"),
        "{tax}"
    );
    let mut ok = receipt("+79000000000", "199.00");
    ok["receipt"]["tax_system_code"] = json!(2);
    let (status, ok) = post(&emulator, "payments", "r3", &ok).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["receipt_registration"], "pending");
    assert_eq!(emulator.client().payments().await.expect("list").len(), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_control_api_refuses_bad_input_clearly() {
    let emulator = emulator().await;
    let control = emulator.client();
    let bad_url = control
        .set_webhook(Provider::Yookassa, Some("ftp://example"))
        .await
        .expect_err("not http");
    assert!(
        bad_url.to_string().contains("not an http(s) URL"),
        "{bad_url}"
    );
    let unknown = control.pay_payment("nope").await.expect_err("unknown");
    assert_refused(&unknown, 404);
    let (_, payment) = post(&emulator, "payments", "once", &payment_body()).await;
    let id = payment["id"].as_str().expect("id");
    let bad_amount = control
        .pay_payment_with(id, &paid_amount("1.001"))
        .await
        .expect_err("three decimals");
    assert_refused(&bad_amount, 400);
    assert_eq!(
        control.payment(id).await.expect("get").status,
        PaymentStatus::Pending,
        "left untouched"
    );
    let underpaid = control
        .pay_payment_with(id, &paid_amount("99.00"))
        .await
        .expect("underpaid");
    assert_eq!(underpaid.amount.value, "99.00");
    let twice = control.pay_payment(id).await.expect_err("already paid");
    assert_refused(&twice, 409);
    emulator.shutdown().await;
}

/// The payer paying `amount` instead of the payment's.
fn paid_amount(amount: &str) -> payment_emulator::PayOptions {
    payment_emulator::PayOptions {
        amount: Some(amount.into()),
        ..Default::default()
    }
}

/// Asserts that the control API refused the call with HTTP `status`.
fn assert_refused(error: &payment_emulator::ControlError, status: u16) {
    assert!(
        matches!(error, payment_emulator::ControlError::Refused { status: s, .. } if *s == status),
        "{error}"
    );
}
