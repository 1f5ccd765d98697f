//! Test helpers: a webhook receiver on 127.0.0.1 and bounded waits.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use payment_emulator::{PaymentEmulator, PaymentEmulatorConfig, Provider, RunningPaymentEmulator};

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
}

/// A local HTTP server recording what is POSTed to it and answering a settable status.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    pub url: String,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner {
            received: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { inner, url }
    }

    /// A receiver that `emulator` sends `provider`'s notifications to.
    pub async fn of(emulator: &RunningPaymentEmulator, provider: Provider) -> Receiver {
        let hook = Receiver::start().await;
        emulator
            .client()
            .set_webhook(provider, Some(&hook.url))
            .await
            .expect("set webhook");
        hook
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        wait_for(Duration::from_secs(10), || self.received().len() >= n).await;
        self.received()
    }
}

async fn record(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inner
        .received
        .lock()
        .expect("lock")
        .push(Received { headers, body });
    StatusCode::from_u16(inner.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}

/// Polls `condition` every 10 ms until it holds; panics after `timeout`.
pub async fn wait_for(timeout: Duration, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An emulator with fast retries (first after 1 s of emulated time).
pub async fn emulator() -> RunningPaymentEmulator {
    let mut config = PaymentEmulatorConfig::default();
    config.webhooks.first_retry = Duration::from_secs(1);
    config.webhooks.max_retry = Duration::from_secs(60);
    config.webhooks.timeout = Duration::from_secs(2);
    PaymentEmulator::start(config)
        .await
        .expect("emulator starts")
}
