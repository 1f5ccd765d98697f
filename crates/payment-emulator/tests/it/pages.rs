//! The payment pages a person uses in the sandbox: Pay and Cancel over real HTTP.

use payment_emulator::{InvoiceStatus, PaymentStatus, Provider};
use serde_json::json;

use crate::common::{Receiver, emulator};
use crate::cryptopay::call;
use crate::yookassa::{payment_body, post};

/// The payment page at `url`, as a browser shows it.
async fn open(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("page")
        .text()
        .await
        .expect("text")
}

/// Presses the page's `action` button (`pay`, `cancel`): the status and the page shown.
async fn press(url: &str, action: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .form(&[("action", action)])
        .send()
        .await
        .expect("press");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}

#[tokio::test]
async fn cryptopay_page_pays_the_invoice_and_sends_the_webhook() {
    let emulator = emulator().await;
    let hook = Receiver::of(&emulator, Provider::Cryptopay).await;
    let control = emulator.client();
    let (_, created) = call(
        &emulator,
        "createInvoice",
        json!({"currency_type": "fiat", "fiat": "RUB", "amount": "199.00",
               "description": "VPN <30 days>", "paid_btn_name": "openBot",
               "paid_btn_url": "https://t.me/tollgate_bot"}),
    )
    .await;
    let url = created["result"]["pay_url"]
        .as_str()
        .expect("pay_url")
        .to_owned();
    let id = created["result"]["invoice_id"].as_i64().expect("id");
    let page = open(&url).await;
    assert!(page.contains("199.00 RUB"), "{page}");
    assert!(
        page.contains("VPN &lt;30 days&gt;"),
        "description is escaped: {page}"
    );
    assert!(page.contains("id=\"pay\""), "{page}");

    // Cancel leaves the invoice open (Crypto Pay has no cancelled state).
    let (status, _) = press(&url, "cancel").await;
    assert_eq!(status, 200);
    assert_eq!(
        control.invoice(id).await.expect("get").status,
        InvoiceStatus::Active
    );

    let (_, paid) = press(&url, "pay").await;
    assert!(paid.contains("https://t.me/tollgate_bot"), "{paid}");
    assert_eq!(
        control.invoice(id).await.expect("get").status,
        InvoiceStatus::Paid
    );
    hook.wait_for(1).await;
    // A second press cannot pay twice.
    let (status, _) = press(&url, "pay").await;
    assert_eq!(status, 409);
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
    for (payment, action, status) in [
        (&first, "pay", PaymentStatus::Succeeded),
        (&second, "cancel", PaymentStatus::Canceled),
    ] {
        let url = payment["confirmation"]["confirmation_url"]
            .as_str()
            .expect("url");
        let page = open(url).await;
        assert!(page.contains("199.00 RUB"), "{page}");
        let (_, done) = press(url, action).await;
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
