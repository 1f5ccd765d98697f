//! Throughput of the payment emulator, so it is never the bottleneck of Tollgate's payment
//! benchmarks (notifications finalized per second, the watcher's cost).
//!
//! Run: `cargo bench -p payment-emulator --bench throughput`
//!
//! 1. `createInvoice` calls per second: `CLIENTS` tasks, each with its own keep-alive
//!    connection, create fiat invoices for `DURATION`.
//! 2. `getInvoices` with 1,000 `invoice_ids` among 10,000 active invoices (what a watcher polls):
//!    median time of one call.
//! 3. Webhook deliveries per second: `WEBHOOKS` invoices are paid at once with a local receiver
//!    answering 200; the time until the emulator records every delivery gives the rate.
//!
//! Each measurement is repeated `RUNS` times and the median is printed. The machine is shared
//! and noisy: compare medians of one run of this program, not single numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use payment_emulator::{PaymentEmulator, PaymentEmulatorConfig, Provider, RunningPaymentEmulator};
use serde_json::{Value, json};

const RUNS: usize = 3;
const CLIENTS: usize = 16;
const DURATION: Duration = Duration::from_secs(3);
const OPEN_INVOICES: usize = 10_000;
const WATCHER_BATCH: usize = 1_000;
const WEBHOOKS: usize = 10_000;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn start() -> RunningPaymentEmulator {
    PaymentEmulator::start(PaymentEmulatorConfig::default())
        .await
        .unwrap()
}

fn invoice_body(n: usize) -> Value {
    json!({"currency_type": "fiat", "fiat": "RUB", "amount": "199.00",
           "accepted_assets": "USDT", "payload": format!("purchase-{n}"), "expires_in": 3600})
}

async fn create_rate() -> f64 {
    let emulator = start().await;
    let url = format!("{}/createInvoice", emulator.cryptopay_api_url());
    let token = emulator.cryptopay_token().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, token, stop, done) = (url.clone(), token.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = c * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .header("Crypto-Pay-API-Token", &token)
                    .json(&invoice_body(n))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                let _ = response.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(DURATION).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    emulator.shutdown().await;
    rate
}

async fn create_invoices(emulator: &RunningPaymentEmulator, count: usize) -> Vec<i64> {
    let client = reqwest::Client::new();
    let url = format!("{}/createInvoice", emulator.cryptopay_api_url());
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let created: Value = client
            .post(&url)
            .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
            .json(&invoice_body(n))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(created["result"]["invoice_id"].as_i64().unwrap());
    }
    ids
}

async fn watcher_poll_ms(emulator: &RunningPaymentEmulator, ids: &[i64]) -> f64 {
    let client = reqwest::Client::new();
    let url = format!("{}/getInvoices", emulator.cryptopay_api_url());
    let batch: Vec<String> = ids
        .iter()
        .step_by(ids.len() / WATCHER_BATCH)
        .take(WATCHER_BATCH)
        .map(i64::to_string)
        .collect();
    let body = json!({"invoice_ids": batch.join(","), "count": 1000});
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let answer: Value = client
            .post(&url)
            .header("Crypto-Pay-API-Token", emulator.cryptopay_token())
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            answer["result"]["items"].as_array().unwrap().len(),
            WATCHER_BATCH
        );
    }
    median(times)
}

async fn webhook_rate(emulator: &RunningPaymentEmulator, ids: &[i64]) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = tokio::spawn(async move {
        let app = Router::new().route(
            "/hook",
            post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let control = emulator.client();
    control.reset().await.unwrap();
    control
        .set_webhook(Provider::Cryptopay, Some(&hook))
        .await
        .unwrap();
    let fresh = create_invoices(emulator, ids.len()).await;
    let started = Instant::now();
    let mut payers = Vec::new();
    for chunk in fresh.chunks(fresh.len() / 8) {
        let (control, chunk) = (control.clone(), chunk.to_vec());
        payers.push(tokio::spawn(async move {
            for id in chunk {
                control.pay_invoice(id).await.unwrap();
            }
        }));
    }
    for payer in payers {
        payer.await.unwrap();
    }
    loop {
        let delivered = received.load(Ordering::Relaxed);
        if delivered >= fresh.len() as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "stalled at {delivered}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = fresh.len() as f64 / started.elapsed().as_secs_f64();
    let notes = control.notifications().await.unwrap();
    assert!(
        notes.iter().all(|n| n.attempts.len() <= 1),
        "one attempt each"
    );
    receiver.abort();
    rate
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut creates = Vec::new();
        for _ in 0..RUNS {
            creates.push(create_rate().await);
        }
        println!(
            "createInvoice, {CLIENTS} keep-alive clients: {:.0} calls/s (median of {RUNS})",
            median(creates)
        );
        let emulator = start().await;
        let ids = create_invoices(&emulator, OPEN_INVOICES).await;
        let mut polls = Vec::new();
        for _ in 0..RUNS {
            polls.push(watcher_poll_ms(&emulator, &ids).await);
        }
        println!(
            "getInvoices of {WATCHER_BATCH} ids among {OPEN_INVOICES} active: {:.2} ms per call (median of {RUNS})",
            median(polls)
        );
        let mut rates = Vec::new();
        for _ in 0..RUNS {
            rates.push(webhook_rate(&emulator, &ids[..WEBHOOKS]).await);
        }
        println!(
            "webhook delivery of {WEBHOOKS} paid invoices (pay calls included): {:.0} deliveries/s (median of {RUNS})",
            median(rates)
        );
        emulator.shutdown().await;
    });
}
