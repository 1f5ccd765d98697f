//! Starting and stopping an emulator: the HTTP server, its routes and background tasks.
//!
//! Why this exists: tests of other crates need a one-liner — `Emulator::start(config).await?` —
//! that binds an ephemeral port on 127.0.0.1, serves the Bot API, the control API and the web
//! page, runs the webhook engines, and goes away cleanly (on `shutdown().await` or on drop).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::EmulatorConfig;
use crate::control::ControlClient;
use crate::files::FileStore;
use crate::params::MAX_BODY_BYTES;
use crate::rng::Rng;
use crate::state::{BotState, Shared, Users};

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent; the message names the field.
    #[error("invalid emulator configuration: {0}")]
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

/// Everything the HTTP handlers need.
#[derive(Debug)]
pub struct App {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The bots, the default first.
    pub bots: Vec<Arc<BotState>>,
    by_token: HashMap<String, usize>,
}

impl App {
    /// The bot with this token.
    pub fn bot_by_token(&self, token: &str) -> Option<Arc<BotState>> {
        self.by_token
            .get(token)
            .and_then(|i| self.bots.get(*i))
            .cloned()
    }

    /// A bot by username (with or without `@`), id or token; the default bot for `None`.
    pub fn bot(&self, selector: Option<&str>) -> Option<Arc<BotState>> {
        let Some(selector) = selector.filter(|s| !s.is_empty()) else {
            return self.bots.first().cloned();
        };
        let name = selector.trim_start_matches('@');
        self.bots
            .iter()
            .find(|b| {
                b.identity.username.eq_ignore_ascii_case(name)
                    || b.identity.id.to_string() == name
                    || b.token == selector
            })
            .cloned()
    }
}

/// The emulator (use [`Emulator::start`]).
pub struct Emulator;

impl Emulator {
    /// Validates `config`, binds the listen address and starts serving.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, StartError> {
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
        let shared = Arc::new(Shared {
            clock: Clock::new(),
            rng: Rng::new(config.seed),
            users: Users::default(),
            files: FileStore::new(config.limits.max_photo_bytes),
            shutdown: shutdown_rx.clone(),
            config,
        });
        let bots: Vec<Arc<BotState>> = shared
            .config
            .bots
            .iter()
            .map(|b| Arc::new(BotState::new(shared.clone(), b)))
            .collect();
        let by_token = bots
            .iter()
            .enumerate()
            .map(|(i, b)| (b.token.clone(), i))
            .collect();
        let app = Arc::new(App {
            shared,
            bots,
            by_token,
        });
        let client = crate::webhook::http_client();
        let mut tasks = Vec::new();
        for bot in &app.bots {
            tasks.push(tokio::spawn(crate::webhook::run_engine(
                bot.clone(),
                client.clone(),
            )));
        }
        let router = router(app.clone());
        let mut signal = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = signal.wait_for(|stop| *stop).await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "emulator server stopped with an error");
            }
        });
        tracing::info!(%addr, "telegram emulator listening");
        Ok(RunningEmulator {
            addr,
            app,
            shutdown_tx,
            server: Some(server),
            tasks,
        })
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(crate::web::index))
        .route("/app.js", get(crate::web::app_js))
        .route("/style.css", get(crate::web::style_css))
        .nest("/control", crate::control::server::router())
        .route("/{bot}/{method}", any(crate::bot_api::handle))
        .fallback(crate::bot_api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// A running emulator. Dropping it stops the server too (without waiting).
pub struct RunningEmulator {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown_tx: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give a bot client (`http://127.0.0.1:PORT`, no trailing slash), e.g.
    /// teloxide's `Bot::set_api_url` or Tollgate's `TELEGRAM_API_URL`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The web chat page.
    pub fn web_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The token of the default bot.
    pub fn token(&self) -> &str {
        self.app.bots.first().map_or("", |b| b.token.as_str())
    }

    /// The username of the default bot.
    pub fn bot_username(&self) -> &str {
        self.app
            .bots
            .first()
            .map_or("", |b| b.identity.username.as_str())
    }

    /// `http://127.0.0.1:PORT/bot<token>` for the default bot.
    pub fn bot_url(&self) -> String {
        format!("{}/bot{}", self.api_url(), self.token())
    }

    /// A control client for this emulator (default bot).
    pub fn client(&self) -> ControlClient {
        ControlClient::new(self.api_url())
    }

    /// Stops accepting requests, ends waiting requests and background tasks, and waits (up to a
    /// few seconds) for the server to finish.
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
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}
