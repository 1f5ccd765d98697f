//! The web chat page: it is served, and every control endpoint it calls (listed in `ENDPOINTS`
//! of app.js) works with the request shapes the page sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::{call, config_without_limits, ok, start};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use telegram_emulator::RunningEmulator;

struct Page {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    used: BTreeSet<String>,
}

impl Page {
    fn new(emulator: &RunningEmulator) -> Self {
        Self {
            base: emulator.api_url(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            used: BTreeSet::new(),
        }
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String, Bytes) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, bytes)
    }

    /// Calls an endpoint the way app.js does and records which ENDPOINTS entry it exercised.
    async fn api(
        &mut self,
        endpoint: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        self.used.insert(endpoint.to_owned());
        let (status, _, bytes) = self.raw(method, path, body).await;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {value}");
        value
    }
}

/// The `ENDPOINTS` object of app.js: `name: "/control/…"` pairs.
fn endpoints(app_js: &str) -> Vec<String> {
    let start = app_js.find("const ENDPOINTS = {").unwrap();
    let end = start + app_js[start..].find("};").unwrap();
    app_js[start..end]
        .lines()
        .filter_map(|line| {
            let quoted = line.split('"').nth(1)?;
            quoted.starts_with("/control/").then(|| quoted.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_page_and_every_endpoint_it_calls() {
    let emulator = start(config_without_limits()).await;
    let mut page = Page::new(&emulator);

    let (status, content_type, html) = page.raw("GET", "/", None).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(html.contains("<script src=\"/app.js\"></script>"));
    assert!(html.contains("href=\"/style.css\""));
    let (status, content_type, css) = page.raw("GET", "/style.css", None).await;
    assert_eq!((status, content_type.starts_with("text/css")), (200, true));
    assert!(!css.is_empty());
    let (status, content_type, js) = page.raw("GET", "/app.js", None).await;
    assert_eq!(
        (status, content_type.starts_with("text/javascript")),
        (200, true)
    );
    let js = String::from_utf8(js.to_vec()).unwrap();
    let listed = endpoints(&js);
    assert!(listed.len() >= 10, "{listed:?}");
    // Every control path in the script goes through ENDPOINTS.
    assert_eq!(js.matches("\"/control/").count(), listed.len());

    // Load bots and users, create a user (what the page does on start and on "Create user").
    let bots = page
        .api("/control/bots", "GET", "/control/bots", None)
        .await;
    let bot = bots[0]["username"].as_str().unwrap().to_owned();
    assert_eq!(
        page.api("/control/users", "GET", "/control/users", None)
            .await,
        json!([])
    );
    let user = page
        .api(
            "/control/users",
            "POST",
            "/control/users",
            Some(json!({"first_name": "Web", "language_code": "ru", "is_premium": true})),
        )
        .await;
    let user_id = user["id"].as_i64().unwrap();
    let chat = format!("/control/chats/{user_id}?bot={bot}&limit=300");
    let transcript = page.api("/control/chats/", "GET", &chat, None).await;
    assert_eq!(transcript["started"], json!(false));
    let version = transcript["version"].as_u64().unwrap();

    // The START button and the composer.
    page.api(
        "/control/messages",
        "POST",
        "/control/messages",
        Some(json!({"bot": bot, "user_id": user_id, "text": "/start"})),
    )
    .await;
    let changed = page
        .api(
            "/control/chats/",
            "GET",
            &format!("/control/chats/{user_id}/changes?bot={bot}&since={version}&timeout_ms=25000"),
            None,
        )
        .await;
    assert!(changed["version"].as_u64().unwrap() > version);

    // The bot answers with a keyboard, a photo and an invoice.
    let menu = ok(&call(
        &emulator,
        "sendMessage",
        json!({"chat_id": user_id, "text": "Menu", "reply_markup": {"inline_keyboard": [[{"text": "Help", "callback_data": "help"}]]}}),
    )
    .await);
    let photo = ok(&call(
        &emulator,
        "sendPhoto",
        json!({"chat_id": user_id, "photo": "https://example.org/qr.png"}),
    )
    .await);
    assert!(photo["photo"][0]["file_id"].as_str().is_some());
    let invoice = ok(&call(
        &emulator,
        "sendInvoice",
        json!({"chat_id": user_id, "title": "Plan", "description": "30 days", "payload": "p", "currency": "XTR", "prices": [{"label": "Plan", "amount": 50}]}),
    )
    .await);
    let transcript = page.api("/control/chats/", "GET", &chat, None).await;
    let messages = transcript["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(
        messages[1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        json!("help")
    );
    assert_eq!(
        messages[2]["photo"]["url"],
        json!("https://example.org/qr.png")
    );
    assert_eq!(messages[3]["invoice"]["total_amount"], json!(50));

    // Pressing a button (nobody answers: the page shows a hint).
    let outcome = page
        .api(
            "/control/callbacks",
            "POST",
            "/control/callbacks",
            Some(json!({"bot": bot, "chat_id": user_id, "message_id": menu["message_id"], "callback_data": "help", "wait_ms": 0})),
        )
        .await;
    assert!(outcome["callback_query_id"].as_str().is_some());

    // Closing and paying the invoice (a bot that answers pre-checkout queries).
    page.api(
        "/control/payments/abandon",
        "POST",
        "/control/payments/abandon",
        Some(json!({"bot": bot, "chat_id": user_id, "message_id": invoice["message_id"]})),
    )
    .await;
    let answerer = {
        let client = emulator.client();
        let token = emulator.token().to_owned();
        tokio::spawn(async move {
            loop {
                let updates = client
                    .bot_call(&token, "getUpdates", &json!({"timeout": 2}))
                    .await
                    .unwrap();
                let found = updates
                    .result()
                    .as_array()
                    .unwrap()
                    .iter()
                    .find_map(|u| u.get("pre_checkout_query").cloned());
                if let Some(query) = found {
                    client
                        .bot_call(
                            &token,
                            "answerPreCheckoutQuery",
                            &json!({"pre_checkout_query_id": query["id"], "ok": true}),
                        )
                        .await
                        .unwrap();
                    return;
                }
            }
        })
    };
    let paid = page
        .api(
            "/control/payments",
            "POST",
            "/control/payments",
            Some(json!({"bot": bot, "chat_id": user_id, "message_id": invoice["message_id"]})),
        )
        .await;
    assert_eq!(paid["status"], json!("paid"));
    answerer.await.unwrap();

    // Photos uploaded as bytes are served at /control/files/<file_id>.
    let boundary = "pg";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n{user_id}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\n\r\n").into_bytes();
    body.extend_from_slice(telegram_emulator::files::TINY_PNG);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let uploaded = emulator
        .client()
        .bot_call_raw(
            emulator.token(),
            "sendPhoto",
            body,
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .await
        .unwrap();
    let transcript = page.api("/control/chats/", "GET", &chat, None).await;
    let url = transcript["messages"].as_array().unwrap().last().unwrap()["photo"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("/control/files/"));
    assert_eq!(
        uploaded.result()["photo"][0]["file_id"].as_str().unwrap(),
        &url["/control/files/".len()..]
    );
    page.used.insert("/control/files/".to_owned());
    let (status, content_type, bytes) = page.raw("GET", &url, None).await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    assert_eq!(bytes.as_ref(), telegram_emulator::files::TINY_PNG);

    // Block / unblock, the debug panel (time, counters).
    page.api(
        "/control/block",
        "POST",
        "/control/block",
        Some(json!({"bot": bot, "user_id": user_id})),
    )
    .await;
    assert_eq!(
        page.api("/control/chats/", "GET", &chat, None).await["blocked"],
        json!(true)
    );
    page.api(
        "/control/unblock",
        "POST",
        "/control/unblock",
        Some(json!({"bot": bot, "user_id": user_id})),
    )
    .await;
    let time = page
        .api("/control/time", "GET", "/control/time", None)
        .await;
    let advanced = page
        .api(
            "/control/time/advance",
            "POST",
            "/control/time/advance",
            Some(json!({"seconds": 150})),
        )
        .await;
    assert!(advanced["now"].as_i64().unwrap() >= time["now"].as_i64().unwrap() + 150);
    let counters = page
        .api(
            "/control/counters",
            "GET",
            &format!("/control/counters?bot={bot}"),
            None,
        )
        .await;
    assert!(counters["calls"]["sendMessage"].as_u64().unwrap() >= 1);

    let listed: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(
        page.used, listed,
        "every endpoint of the page was exercised"
    );
    emulator.shutdown().await;
}
