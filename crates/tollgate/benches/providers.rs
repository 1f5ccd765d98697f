//! Payment providers outside Telegram: how many Crypto Pay webhooks per second the service
//! verifies, stores and finalizes (target ≥ 500/s on SQLite), and what one watcher pass costs
//! with 10,000 open purchases — SQLite and PostgreSQL.
//!
//! `cargo bench -p tollgate --bench providers` (`BENCH_BACKEND=sqlite|postgres` narrows it;
//! `BENCH_NOTIFICATIONS`, default 2000; `BENCH_OPEN`, default 10000; `BENCH_CONCURRENCY`,
//! default 16). The service runs in process (the bot with its notification routes, no
//! components) against the Telegram emulator and the payment emulator. Webhooks are signed
//! `invoice_paid` bodies for seeded pending purchases, POSTed over HTTP `BENCH_CONCURRENCY` at
//! a time; every one is answered 200 only after its payment is committed. The watcher pass is
//! `bot::providers::Watcher::run_once` over 10,000 open invoices that exist at the emulator
//! (batches of 1,000 per `getInvoices`), measured three times (each pass reschedules all).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use payment_emulator::{PaymentEmulator, PaymentEmulatorConfig, cryptopay_signature};
use support::{Backends, count, database, env_or, median, start_app};
use tollgate::app::AppOptions;
use tollgate::bot::providers::{Settler, Watcher};
use tollgate::i18n::Texts;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::{Clock, SystemClock};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let notifications: usize = env_or("BENCH_NOTIFICATIONS", 2000);
    let open: usize = env_or("BENCH_OPEN", 10_000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    for backend in backends.each() {
        let (url, _dir) = database(backend, &backends.pg_admin, "providers").await;
        let pay = PaymentEmulator::start(PaymentEmulatorConfig::default())
            .await
            .unwrap();
        // The service with Crypto Pay at the payment emulator.
        let settings = vec![
            (
                "CRYPTOPAY_TOKEN".to_owned(),
                pay.cryptopay_token().to_owned(),
            ),
            ("CRYPTOPAY_API_URL".to_owned(), pay.cryptopay_api_url()),
            ("PROVIDER_CALL_TIMEOUT".to_owned(), "30s".to_owned()),
        ];
        let (s, app, emu) = start_app(&url, settings, AppOptions::default()).await;
        let db = s.db.clone();

        // Webhooks: one signed invoice_paid per seeded pending purchase.
        let purchases = seed_purchases(&db, notifications, 1).await;
        let token = pay.cryptopay_token().to_owned();
        let hook = format!("http://{}/payments/cryptopay", app.addr);
        let bodies: Vec<(String, String)> = purchases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let body = serde_json::json!({
                    "update_id": i + 1,
                    "update_type": "invoice_paid",
                    "request_date": "2026-12-07T00:00:00.000Z",
                    "payload": {
                        "invoice_id": 1_000_000 + i, "status": "paid", "currency_type": "fiat",
                        "fiat": "RUB", "amount": "149.00", "payload": format!("purchase:{p}"),
                        "bot_invoice_url": "http://127.0.0.1/pay",
                    },
                })
                .to_string();
                let sig = cryptopay_signature(&token, body.as_bytes());
                (body, sig)
            })
            .collect();
        let http = reqwest::Client::new();
        let t = Instant::now();
        let statuses: Vec<u16> = futures::stream::iter(bodies)
            .map(|(body, sig)| {
                let (http, hook) = (http.clone(), hook.clone());
                async move {
                    http.post(&hook)
                        .header("content-type", "application/json")
                        .header("crypto-pay-api-signature", sig)
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let secs = t.elapsed().as_secs_f64();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let stored = count(&db, "SELECT CAST(COUNT(*) AS BIGINT) FROM payments WHERE provider = 'crypto' AND purchase_id IS NOT NULL").await;
        assert_eq!(
            (ok, stored),
            (notifications, notifications as i64),
            "every webhook answered 200 and finalized"
        );
        println!(
            "{backend}: {notifications} Crypto Pay webhooks verified, stored and finalized in {secs:.2} s: {:.0}/s ({concurrency} in flight)",
            notifications as f64 / secs
        );

        // The watcher with `open` open purchases whose invoices exist at the emulator.
        let ids = create_invoices(&pay, open).await;
        let purchases = seed_purchases(&db, open, 2).await;
        open_invoices(&db, &purchases, &ids).await;
        let texts = Arc::new(Texts::load().unwrap());
        let client = s.providers.crypto.clone().unwrap();
        let watcher = Watcher::new(Settler::new(s.clone(), texts), client);
        let mut passes = Vec::new();
        for _ in 0..3 {
            // Every invoice due again.
            on_db!(&db, p => sqlx::query("UPDATE provider_invoices SET next_check_at = 0 WHERE status = 'open'")
                .execute(p).await.map(drop))
            .unwrap();
            let before = getinvoices_calls(&pay).await;
            let t = Instant::now();
            let pass = watcher.run_once().await.unwrap().unwrap();
            passes.push(t.elapsed().as_secs_f64() * 1000.0);
            let calls = getinvoices_calls(&pay).await - before;
            assert_eq!(pass.checked, open, "{pass:?}");
            assert!(pass.provider_error.is_none(), "{pass:?}");
            println!(
                "{backend}: watcher pass over {open} open invoices: {:.0} ms, {calls} getInvoices calls",
                passes.last().unwrap()
            );
        }
        println!(
            "{backend}: watcher pass median {:.0} ms ({:.1} µs per open invoice)",
            median(&mut passes),
            median(&mut passes) * 1000.0 / open as f64
        );
        app.shutdown().await.unwrap();
        emu.shutdown().await;
        pay.shutdown().await;
    }
}

/// `n` users with a pending 1-month purchase each (ids from `first_user * 10^7`).
async fn seed_purchases(db: &Db, n: usize, series: i64) -> Vec<i64> {
    let now = SystemClock.now();
    let mut ids = Vec::with_capacity(n);
    let mut tx = db.begin().await.unwrap();
    for i in 0..n as i64 {
        let user = series * 10_000_000 + i;
        tollgate::on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at)
             VALUES ($1, 'Bench', 'en', $2, $3, $3)"
        ).bind(user).bind(format!("b{user}")).bind(now).execute(c).await.map(drop))
        .unwrap();
        let id: i64 = tollgate::on_tx!(&mut tx, c => sqlx::query_scalar(
            "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at)
             VALUES ($1, 'plan', 'm1', 30, 14900, 'RUB', 'crypto', 'pending', $2, $3) RETURNING id"
        ).bind(user).bind(now).bind(now.plus(Duration::from_secs(3600))).fetch_one(c).await)
        .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

async fn open_invoices(db: &Db, purchases: &[i64], invoice_ids: &[i64]) {
    let now = SystemClock.now();
    let mut tx = db.begin().await.unwrap();
    for (p, i) in purchases.iter().zip(invoice_ids) {
        tollgate::on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO provider_invoices (purchase_id, provider, external_id, url, status, created_at, next_check_at)
             VALUES ($1, 'crypto', $2, 'http://127.0.0.1/pay', 'open', $3, 0)"
        ).bind(p).bind(i.to_string()).bind(now).execute(c).await.map(drop))
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// `n` active invoices at the emulator, through its API (as the bot makes them).
async fn create_invoices(pay: &payment_emulator::RunningPaymentEmulator, n: usize) -> Vec<i64> {
    let http = reqwest::Client::new();
    let url = format!("{}/createInvoice", pay.cryptopay_api_url());
    let token = pay.cryptopay_token().to_owned();
    futures::stream::iter(0..n)
        .map(|i| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            async move {
                let v: serde_json::Value = http
                    .post(&url)
                    .header("Crypto-Pay-API-Token", token)
                    .json(&serde_json::json!({
                        "currency_type": "fiat", "fiat": "RUB", "amount": "149.00",
                        "accepted_assets": "USDT", "payload": format!("bench:{i}"), "expires_in": 3600,
                    }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v["result"]["invoice_id"].as_i64().unwrap()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

async fn getinvoices_calls(pay: &payment_emulator::RunningPaymentEmulator) -> u64 {
    let calls = pay.client().calls().await.unwrap();
    calls.get("getInvoices").copied().unwrap_or(0)
}
