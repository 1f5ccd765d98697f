//! Configuration checks and the bounds of the in-memory state.

use std::time::Duration;

use payment_emulator::{PaymentEmulator, PaymentEmulatorConfig, Provider, StartError};
use serde_json::{Value, json};

use crate::common::Receiver;

#[tokio::test]
async fn a_bad_configuration_is_refused_with_the_field_named() {
    let mut config = PaymentEmulatorConfig::default();
    config.cryptopay.token = "no-colon".into();
    let refused = PaymentEmulator::start(config).await.expect_err("bad token");
    assert!(matches!(refused, StartError::Config(ref m) if m.contains("cryptopay.token")));
    let mut config = PaymentEmulatorConfig::default();
    config.yookassa.webhook_url = Some("not a url".into());
    let refused = PaymentEmulator::start(config).await.expect_err("bad url");
    assert!(
        refused.to_string().contains("not an http(s) URL"),
        "{refused}"
    );
    let mut config = PaymentEmulatorConfig::default();
    config.webhooks.first_retry = Duration::ZERO;
    let refused = PaymentEmulator::start(config)
        .await
        .expect_err("zero retry");
    assert!(
        refused.to_string().contains("webhooks.first_retry"),
        "{refused}"
    );
}

#[tokio::test]
async fn links_use_the_public_url_and_objects_are_bounded() {
    let hook = Receiver::start().await;
    let mut config = PaymentEmulatorConfig {
        public_url: Some("http://pay.sandbox.test:8082/".into()),
        ..PaymentEmulatorConfig::default()
    };
    config.limits.max_objects = 3;
    config.limits.max_notifications = 2;
    config.cryptopay.webhook_url = Some(hook.url.clone());
    let emulator = PaymentEmulator::start(config).await.expect("start");
    let control = emulator.client();
    assert_eq!(
        control.webhooks().await.expect("urls").cryptopay.as_deref(),
        Some(hook.url.as_str()),
        "configured webhook URL"
    );
    let create = || async {
        let response = reqwest::Client::new()
            .post(format!("{}/createInvoice", emulator.cryptopay_api_url()))
            .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
            .json(&json!({"asset": "USDT", "amount": "1"}))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("json"))
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, created) = create().await;
        assert_eq!(status, 200);
        assert_eq!(
            created["result"]["pay_url"].as_str().expect("url"),
            format!(
                "http://pay.sandbox.test:8082/pay/cryptopay/{}",
                created["result"]["hash"].as_str().expect("hash")
            )
        );
        ids.push(created["result"]["invoice_id"].as_i64().expect("id"));
    }
    let (status, full) = create().await;
    assert_eq!(
        (status, &full["error"]["name"]),
        (400, &json!("EMULATOR_FULL"))
    );
    assert_eq!(control.invoices().await.expect("list").len(), 3);

    for id in &ids {
        control.pay_invoice(*id).await.expect("pay");
    }
    hook.wait_for(3).await;
    let kept = control.notifications().await.expect("list");
    assert_eq!(kept.len(), 2, "only the newest notifications are kept");
    assert_eq!(kept[1].object_id, ids[2].to_string());

    // Reset forgets everything but keeps ids growing.
    control.reset().await.expect("reset");
    assert!(control.invoices().await.expect("list").is_empty());
    assert!(control.notifications().await.expect("list").is_empty());
    let (_, after) = create().await;
    assert!(after["result"]["invoice_id"].as_i64().expect("id") > ids[2]);
    control
        .set_webhook(Provider::Cryptopay, None)
        .await
        .expect("unset");
    emulator.shutdown().await;
}
