//! Starting and stopping the emulator: the HTTP server, its routes and the notification engine.
//!
//! Why this exists: tests of other crates need one line — `PaymentEmulator::start(config)` —
//! that binds 127.0.0.1 on a free port, serves both APIs, the payment pages and the control API,
//! and goes away cleanly (on `shutdown().await` or on drop).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::PaymentEmulatorConfig;
use crate::control::ControlClient;
use crate::state::{App, State};

/// Largest request body accepted (Crypto Pay's payload is at most 4 KB; YooKassa's receipts are
/// the biggest bodies).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent; the message names the field.
    #[error("invalid payment emulator configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The emulator (use [`PaymentEmulator::start`]).
#[derive(Debug)]
pub struct PaymentEmulator;

impl PaymentEmulator {
    /// Validates `config`, binds its address and starts serving.
    pub async fn start(
        config: PaymentEmulatorConfig,
    ) -> Result<RunningPaymentEmulator, StartError> {
        config.validate().map_err(StartError::Config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let public_url = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{addr}"));
        let app = Arc::new(App {
            public_url,
            clock: Clock::new(),
            state: Mutex::new(State::new(&config)),
            wake: Notify::new(),
            shutdown: shutdown_rx.clone(),
            config,
        });
        let engine = tokio::spawn(crate::notify::run_engine(
            app.clone(),
            crate::notify::http_client(),
        ));
        let router = router(app.clone());
        let mut signal = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = signal.wait_for(|stop| *stop).await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "payment emulator server stopped with an error");
            }
        });
        tracing::info!(%addr, "payment emulator listening");
        Ok(RunningPaymentEmulator {
            addr,
            app,
            shutdown_tx,
            server: Some(server),
            engine: Some(engine),
        })
    }
}

fn router(app: Arc<App>) -> Router {
    use crate::{cryptopay, page, yookassa};
    Router::new()
        .route("/api/{method}", any(cryptopay::handle))
        .merge(yookassa::routes())
        .route(
            "/pay/cryptopay/{hash}",
            get(page::cryptopay).post(page::cryptopay_action),
        )
        .route(
            "/pay/yookassa/{id}",
            get(page::yookassa).post(page::yookassa_action),
        )
        .nest("/control", crate::control::server::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// A running emulator. Dropping it stops the server too (without waiting).
pub struct RunningPaymentEmulator {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown_tx: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    engine: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningPaymentEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningPaymentEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningPaymentEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Crypto Pay's API base: `http://127.0.0.1:PORT/api` (methods at `<this>/<method>`, as
    /// `https://pay.crypt.bot/api`).
    pub fn cryptopay_api_url(&self) -> String {
        format!("{}/api", self.base_url())
    }

    /// YooKassa's API base: `http://127.0.0.1:PORT/v3` (as `https://api.yookassa.ru/v3`).
    pub fn yookassa_api_url(&self) -> String {
        format!("{}/v3", self.base_url())
    }

    /// The Crypto Pay app token.
    pub fn cryptopay_token(&self) -> &str {
        &self.app.config.cryptopay.token
    }

    /// The YooKassa shop id.
    pub fn yookassa_shop_id(&self) -> &str {
        &self.app.config.yookassa.shop_id
    }

    /// The YooKassa secret key.
    pub fn yookassa_secret_key(&self) -> &str {
        &self.app.config.yookassa.secret_key
    }

    /// A control API client for this emulator.
    pub fn client(&self) -> ControlClient {
        ControlClient::new(self.base_url())
    }

    /// Stops serving, ends the notification engine, and waits (a few seconds at most) for the
    /// server to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if let Some(engine) = self.engine.take() {
            engine.abort();
        }
    }
}

impl Drop for RunningPaymentEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(engine) = self.engine.take() {
            engine.abort();
        }
    }
}
