//! Throughput of the emulator, so it is never the bottleneck of Tollgate's own benchmarks.
//!
//! Run: `cargo bench -p telegram-emulator --bench throughput`
//!
//! 1. `sendMessage` calls per second with flood limits off: the emulator runs in-process on a
//!    2-worker runtime; a load generator of `CLIENTS` tasks, each on its own keep-alive HTTP/1.1
//!    connection, sends JSON `sendMessage` calls to 1000 chats for `DURATION`.
//! 2. Webhook deliveries per second: 20 000 updates from 1000 chats are queued, then a webhook
//!    (max_connections 100) is set to a local receiver answering 200; the time until all are
//!    delivered gives the rate.
//!
//! Each measurement is repeated `RUNS` times and the median is printed. The machine is shared
//! and noisy: compare medians of one run of this program, not single numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use telegram_emulator::{Emulator, EmulatorConfig, NewUser, RunningEmulator};
use tokio::net::TcpStream;

const RUNS: usize = 5;
const CLIENTS: usize = 64;
const CHATS: i64 = 1000;
const DURATION: Duration = Duration::from_secs(3);
const WEBHOOK_UPDATES: usize = 20_000;

async fn emulator_with_users() -> RunningEmulator {
    let emulator = Emulator::start(EmulatorConfig::without_rate_limits())
        .await
        .unwrap();
    let control = emulator.client();
    let mut tasks = Vec::new();
    for batch in 0..10 {
        let control = control.clone();
        tasks.push(tokio::spawn(async move {
            for id in (batch * CHATS / 10 + 1)..=((batch + 1) * CHATS / 10) {
                control
                    .create_user(NewUser::new(format!("User {id}")).id(id).started())
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    emulator
}

/// One load-generating client: its own connection, calls in a loop until `stop`.
async fn client(
    addr: std::net::SocketAddr,
    path: String,
    bodies: Vec<Bytes>,
    stop: Arc<AtomicBool>,
    counted: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let request = http::Request::post(&path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(bodies[i % bodies.len()].clone()))
            .unwrap();
        i += 1;
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        if counted.load(Ordering::Relaxed) {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn send_message_rate() -> f64 {
    let emulator = emulator_with_users().await;
    let path = format!("/bot{}/sendMessage", emulator.token());
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let bodies = (0..16)
            .map(|k| {
                let chat = (i64::try_from(c * 16 + k).unwrap() % CHATS) + 1;
                Bytes::from(
                    json!({"chat_id": chat, "text": "Your subscription is active until 2026-12-31. Thank you!"})
                        .to_string(),
                )
            })
            .collect();
        tasks.push(tokio::spawn(client(
            emulator.addr(),
            path.clone(),
            bodies,
            stop.clone(),
            counted.clone(),
            done.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // warm-up
    counted.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(DURATION).await;
    let calls = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let counters = emulator.client().counters().await.unwrap();
    assert_eq!(counters.responses_429, 0);
    emulator.shutdown().await;
    calls as f64 / elapsed.as_secs_f64()
}

async fn webhook_rate() -> f64 {
    let emulator = emulator_with_users().await;
    let control = emulator.client();
    // Queue the updates (users writing to the bot) before any webhook is set.
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let control = control.clone();
        tasks.push(tokio::spawn(async move {
            for n in (worker..WEBHOOK_UPDATES).step_by(32) {
                let user = (i64::try_from(n).unwrap() % CHATS) + 1;
                control.send_text(user, "/status").await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // A receiver that answers 200 to everything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = listener.local_addr().unwrap();
    let receiver = tokio::spawn(async move {
        let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "" }));
        axum::serve(listener, app).await.unwrap();
    });
    let start = Instant::now();
    let set = control
        .bot_call(
            emulator.token(),
            "setWebhook",
            &json!({"url": format!("http://{receiver_addr}/hook"), "max_connections": 100}),
        )
        .await
        .unwrap();
    assert!(set.ok());
    loop {
        let delivered = control.counters().await.unwrap().updates_delivered_webhook;
        if delivered >= WEBHOOK_UPDATES as u64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "webhook delivery stalled at {delivered}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    receiver.abort();
    emulator.shutdown().await;
    WEBHOOK_UPDATES as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut send = Vec::new();
        for run in 1..=RUNS {
            let rate = send_message_rate().await;
            println!("sendMessage run {run}: {rate:.0} calls/s");
            send.push(rate);
        }
        let mut hooks = Vec::new();
        for run in 1..=RUNS {
            let rate = webhook_rate().await;
            println!("webhook run {run}: {rate:.0} updates/s");
            hooks.push(rate);
        }
        println!();
        println!(
            "sendMessage, limits off, {CLIENTS} keep-alive clients, {CHATS} chats: median {:.0} calls/s over {RUNS} runs",
            median(send)
        );
        println!(
            "webhook delivery, {WEBHOOK_UPDATES} updates from {CHATS} chats, max_connections 100: median {:.0} updates/s over {RUNS} runs",
            median(hooks)
        );
    });
}
