//! The payment pages a person uses in the sandbox: Pay and Cancel over real HTTP.

use payment_emulator::{InvoiceStatus, PaymentStatus, Provider};
use serde_json::{Value, json};

use crate::common::{Receiver, emulator};
use crate::yookassa::{payment_body, post};

#[tokio::test]
async fn cryptopay_page_pays_the_invoice_and_sends_the_webhook() {
    let emulator = emulator().await;
    let hook = Receiver::start().await;
    let control = emulator.client();
    control
        .set_webhook(Provider::Cryptopay, Some(&hook.url))
        .await
        .expect("set");
    let created: Value = reqwest::Client::new()
        .post(format!("{}/createInvoice", emulator.cryptopay_api_url()))
        .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
        .json(
            &json!({"currency_type": "fiat", "fiat": "RUB", "amount": "199.00",
                      "description": "VPN <30 days>", "paid_btn_name": "openBot",
                      "paid_btn_url": "https://t.me/tollgate_bot"}),
        )
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let url = created["result"]["pay_url"]
        .as_str()
        .expect("pay_url")
        .to_owned();
    let id = created["result"]["invoice_id"].as_i64().expect("id");
    let page = reqwest::get(&url)
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains("199.00 RUB"), "{page}");
    assert!(
        page.contains("VPN &lt;30 days&gt;"),
        "description is escaped: {page}"
    );
    assert!(page.contains("id=\"pay\""), "{page}");

    // Cancel leaves the invoice open (Crypto Pay has no cancelled state).
    let client = reqwest::Client::new();
    let left = client
        .post(&url)
        .form(&[("action", "cancel")])
        .send()
        .await
        .expect("cancel");
    assert_eq!(left.status().as_u16(), 200);
    assert_eq!(
        control.invoice(id).await.expect("get").status,
        InvoiceStatus::Active
    );

    let paid = client
        .post(&url)
        .form(&[("action", "pay")])
        .send()
        .await
        .expect("pay")
        .text()
        .await
        .expect("text");
    assert!(paid.contains("https://t.me/tollgate_bot"), "{paid}");
    assert_eq!(
        control.invoice(id).await.expect("get").status,
        InvoiceStatus::Paid
    );
    hook.wait_for(1).await;
    // A second press cannot pay twice.
    let again = client
        .post(&url)
        .form(&[("action", "pay")])
        .send()
        .await
        .expect("pay");
    assert_eq!(again.status().as_u16(), 409);
    assert_eq!(control.notifications().await.expect("list").len(), 1);
    let missing = reqwest::get(format!("{}/pay/cryptopay/IVNOPE", emulator.base_url()))
        .await
        .expect("page");
    assert_eq!(missing.status().as_u16(), 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn yookassa_page_pays_or_declines() {
    let emulator = emulator().await;
    let control = emulator.client();
    let (_, first) = post(&emulator, "payments", "page-1", &payment_body()).await;
    let (_, second) = post(&emulator, "payments", "page-2", &payment_body()).await;
    let client = reqwest::Client::new();
    for (payment, action, status) in [
        (&first, "pay", PaymentStatus::Succeeded),
        (&second, "cancel", PaymentStatus::Canceled),
    ] {
        let url = payment["confirmation"]["confirmation_url"]
            .as_str()
            .expect("url");
        let page = reqwest::get(url)
            .await
            .expect("page")
            .text()
            .await
            .expect("text");
        assert!(page.contains("199.00 RUB"), "{page}");
        let done = client
            .post(url)
            .form(&[("action", action)])
            .send()
            .await
            .expect("post")
            .text()
            .await
            .expect("text");
        assert!(
            done.contains("https://t.me/tollgate_bot"),
            "return link: {done}"
        );
        let id = payment["id"].as_str().expect("id");
        assert_eq!(control.payment(id).await.expect("get").status, status);
    }
    let declined = control
        .payment(second["id"].as_str().expect("id"))
        .await
        .expect("get");
    let details = declined.cancellation_details.expect("details");
    assert_eq!(
        (details.party.as_str(), details.reason.as_str()),
        ("payment_network", "general_decline")
    );
    emulator.shutdown().await;
}
