//! `tollgate sandbox`: the whole product on one machine, with no Telegram token and no setup.
//!
//! Why this exists: trying the bot should not need a token from @BotFather, a database server
//! or a VPN server. The sandbox runs, on 127.0.0.1 and in this one process:
//!
//! - the Telegram Bot API emulator (`telegram-emulator`) with its web chat page, where a person
//!   creates users and chats with the bot in a browser;
//! - the service itself — the same [`app::start`] and [`app::bot`] as `tollgate run` — in
//!   polling mode against the emulator, on SQLite, with the example catalog built into the
//!   binary (so the command works from any directory);
//! - the payment emulator (`payment-emulator`): Crypto Pay and YooKassa, whose payment pages a
//!   person opens from the bot's "Pay" button and pays or cancels there; its webhooks come to
//!   the service's `/payments/*` routes, so crypto and card payments work end to end;
//! - a local node when a `v2ray` binary is installed: a V2Ray core (a child process, killed on
//!   exit) and an in-process `tollgate-node` agent, declared in the catalog as node `local`, so
//!   the trial really provisions a VLESS user. Without v2ray the bot runs with no nodes: it
//!   still shows the subscription URL and says that no server is available.
//!
//! Why a fresh database on every run: the emulator keeps its users, chats and update ids in
//! memory and starts over each time. A database from an earlier run would take the new run's
//! update ids for updates it already handled (and ignore them), and its users for the new
//! emulator's users. So the data lives in a new temporary directory removed on exit, or in a
//! new or empty `--data-dir` that is kept for inspection.
//!
//! The browser test (`tests/it/sandbox_browser.rs`) starts the sandbox through [`Sandbox::start`]
//! exactly as the command does.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use payment_emulator::{PaymentEmulator, PaymentEmulatorConfig, RunningPaymentEmulator};
use telegram_emulator::config::{BotConfig, DEFAULT_BOT_TOKEN};
use telegram_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tollgate_node::testing::{ServerCore, V2Ray};
use tollgate_node::{AgentConfig, RunningAgent, Token};

use crate::app::{self, AppOptions, RunningApp};
use crate::config::{Config, Env};

/// Default port of the web chat page (and the emulated Bot API behind it).
pub const DEFAULT_WEB_PORT: u16 = 8081;
/// Default port of the service (health, metrics, subscription feed).
pub const DEFAULT_SERVICE_PORT: u16 = 8082;

/// The catalog the sandbox sells from: the example catalog, built into the binary.
const EXAMPLE_CATALOG: &str = include_str!("../../../config/tollgate.example.toml");
/// Name of the local node in the catalog (and in the bot's server list).
const NODE_NAME: &str = "local";
/// The variable (in the service's environment, not the process's) holding the agent token.
const NODE_TOKEN_ENV: &str = "SANDBOX_NODE_TOKEN";
/// Username of the emulated bot.
const BOT_USERNAME: &str = "tollgate_sandbox_bot";
/// Files inside the data directory.
const DATABASE_FILE: &str = "sandbox.db";
const CATALOG_FILE: &str = "catalog.toml";
const NODE_STATE_FILE: &str = "node-state.db";
/// Longest wait for the service to answer `/readyz` with 200 after start.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// Whether to run a local node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeMode {
    /// A node when a `v2ray` binary is found (`$TOLLGATE_V2RAY_BIN`, `/usr/bin/v2ray`, `PATH`),
    /// none otherwise.
    Auto,
    /// No node, even when v2ray is installed.
    Off,
}

/// What `tollgate sandbox` is asked to run.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Port of the web chat page and the emulated Bot API on 127.0.0.1; 0 picks a free one.
    pub web_port: u16,
    /// Port of the service on 127.0.0.1; 0 picks a free one.
    pub service_port: u16,
    /// Keep the data in this new or empty directory; `None`: a temporary directory removed on
    /// exit.
    pub data_dir: Option<PathBuf>,
    pub node: NodeMode,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            web_port: DEFAULT_WEB_PORT,
            service_port: DEFAULT_SERVICE_PORT,
            data_dir: None,
            node: NodeMode::Auto,
        }
    }
}

/// Where the sandbox keeps its files.
enum DataDir {
    Temporary(TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn open(requested: Option<&Path>) -> anyhow::Result<DataDir> {
        let Some(dir) = requested else {
            let temp = tempfile::Builder::new()
                .prefix("tollgate-sandbox-")
                .tempdir()
                .map_err(|e| {
                    anyhow!(
                        "cannot create a temporary directory for the sandbox's data: {e}\n  fix: make the temporary directory (TMPDIR) writable, or pass --data-dir <new directory>"
                    )
                })?;
            return Ok(DataDir::Temporary(temp));
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow!(
                "cannot create the data directory {}: {e}\n  fix: pass --data-dir with a path you can write to",
                dir.display()
            )
        })?;
        let mut entries = std::fs::read_dir(dir).map_err(|e| {
            anyhow!(
                "cannot read the data directory {}: {e}\n  fix: pass --data-dir with a path you can read and write",
                dir.display()
            )
        })?;
        if entries.next().is_some() {
            bail!(
                "the data directory {} is not empty\n  fix: pass --data-dir with a new or empty directory, or leave it out for a temporary one; \
                 the sandbox starts from scratch on every run (the emulator keeps its chats in memory, and an old database would take new updates for ones it already handled)",
                dir.display()
            );
        }
        Ok(DataDir::Kept(dir.to_path_buf()))
    }

    fn path(&self) -> &Path {
        match self {
            DataDir::Temporary(t) => t.path(),
            DataDir::Kept(p) => p,
        }
    }

    fn is_temporary(&self) -> bool {
        matches!(self, DataDir::Temporary(_))
    }
}

/// The local node: a V2Ray core (child process) and the agent in this process.
struct LocalNode {
    v2ray: PathBuf,
    core: ServerCore,
    agent: RunningAgent,
    token: Token,
}

impl LocalNode {
    async fn start(v2ray: &V2Ray, state_file: PathBuf) -> anyhow::Result<LocalNode> {
        let fix = "fix: check that the v2ray binary works (`v2ray version`), or pass --no-node to run without a node";
        let core = ServerCore::start(v2ray).await.map_err(|e| {
            anyhow!(
                "cannot start the V2Ray core {}: {e}\n  {fix}",
                v2ray.path().display()
            )
        })?;
        let token = Token::generate();
        let mut config = AgentConfig::new(
            core.api_endpoint(),
            core.vless_tag(),
            token.clone(),
            state_file,
        );
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.shutdown_grace = Duration::from_secs(2);
        let agent = tollgate_node::start(config)
            .await
            .map_err(|e| anyhow!("cannot start the tollgate-node agent: {e}\n  {fix}"))?;
        Ok(LocalNode {
            v2ray: v2ray.path().to_path_buf(),
            core,
            agent,
            token,
        })
    }

    /// The catalog's `[[nodes]]` table for this node: VLESS over plain TCP to the core.
    fn catalog_table(&self) -> String {
        format!(
            "\n# The sandbox's local node (V2Ray core + tollgate-node agent on 127.0.0.1).\n\
             [[nodes]]\nname = \"{NODE_NAME}\"\ncountry = \"ZZ\"\nagent_url = \"{}\"\n\
             agent_token_env = \"{NODE_TOKEN_ENV}\"\n\
             link = {{ host = \"127.0.0.1\", port = {}, security = \"none\", transport = \"tcp\" }}\n",
            self.agent.base_url(),
            self.core.vless_addr().port(),
        )
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            v2ray: self.v2ray.clone(),
            vless: self.core.vless_addr(),
            agent_url: self.agent.base_url(),
            core_pid: self.core.pid(),
        }
    }

    /// Stops the agent, then kills and reaps the core.
    async fn stop(mut self) {
        self.agent.shutdown().await;
        self.core.stop();
    }
}

/// The local node as shown to the person running the sandbox.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The v2ray binary that runs the core.
    pub v2ray: PathBuf,
    /// The core's VLESS inbound (what the share links point at).
    pub vless: SocketAddr,
    /// The agent's address.
    pub agent_url: String,
    /// The core's process id while it runs.
    pub core_pid: Option<u32>,
}

/// Whether a node runs, and why not.
#[derive(Debug, Clone)]
pub enum NodeStatus {
    Running(NodeInfo),
    /// `--no-node`.
    Off,
    /// No v2ray binary was found.
    NoV2Ray,
}

/// A running sandbox. Stop it with [`Sandbox::shutdown`] or [`Sandbox::run_until`].
pub struct Sandbox {
    emulator: RunningEmulator,
    payments: RunningPaymentEmulator,
    app: RunningApp,
    node: Option<LocalNode>,
    node_status: NodeStatus,
    data: DataDir,
}

impl Sandbox {
    /// Starts everything and returns once the service is ready (its migrations applied).
    pub async fn start(options: SandboxOptions) -> anyhow::Result<Sandbox> {
        let data = DataDir::open(options.data_dir.as_deref())?;
        // Both ports are settled before anything starts, so a busy port fails fast.
        let web_port = pick_port(options.web_port, "--port")?;
        let service_port = pick_port(options.service_port, "--service-port")?;
        let (node, node_status) = match options.node {
            NodeMode::Off => (None, NodeStatus::Off),
            NodeMode::Auto => match V2Ray::locate() {
                None => (None, NodeStatus::NoV2Ray),
                Some(v2ray) => {
                    let node = LocalNode::start(&v2ray, data.path().join(NODE_STATE_FILE)).await?;
                    let status = NodeStatus::Running(node.info());
                    (Some(node), status)
                }
            },
        };
        // From here on, a failure must stop the node (its core is a child process).
        match Self::start_service(&data, web_port, service_port, node.as_ref()).await {
            Ok((emulator, payments, app)) => Ok(Sandbox {
                emulator,
                payments,
                app,
                node,
                node_status,
                data,
            }),
            Err(e) => {
                if let Some(node) = node {
                    node.stop().await;
                }
                Err(e)
            }
        }
    }

    async fn start_service(
        data: &DataDir,
        web_port: u16,
        service_port: u16,
        node: Option<&LocalNode>,
    ) -> anyhow::Result<(RunningEmulator, RunningPaymentEmulator, RunningApp)> {
        let mut catalog = EXAMPLE_CATALOG.to_owned();
        if let Some(node) = node {
            catalog.push_str(&node.catalog_table());
        }
        let catalog_path = data.path().join(CATALOG_FILE);
        std::fs::write(&catalog_path, &catalog).map_err(|e| {
            anyhow!(
                "cannot write the catalog {}: {e}\n  fix: pass --data-dir with a directory you can write to",
                catalog_path.display()
            )
        })?;

        let mut emulator_config = EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], web_port)),
            ..EmulatorConfig::default()
        };
        emulator_config.bots = vec![
            BotConfig::new(DEFAULT_BOT_TOKEN)
                .username(BOT_USERNAME)
                .first_name(catalog_bot_name(&catalog)),
        ];
        let emulator = Emulator::start(emulator_config).await.map_err(|e| {
            anyhow!(
                "cannot start the Telegram emulator: {e}\n  fix: stop the program using port {web_port} (another sandbox?) or pass --port <free port> (0 picks any)"
            )
        })?;

        // Crypto Pay and YooKassa, on a free port; their webhooks go to the service.
        let payments = match PaymentEmulator::start(PaymentEmulatorConfig::default()).await {
            Ok(p) => p,
            Err(e) => {
                emulator.shutdown().await;
                bail!(
                    "cannot start the payment emulator: {e}\n  fix: make sure 127.0.0.1 has a free port"
                );
            }
        };
        let feed_base = format!("http://127.0.0.1:{service_port}");
        let mut vars: Vec<(String, String)> = vec![
            ("BOT_TOKEN".into(), emulator.token().to_owned()),
            ("TELEGRAM_API_URL".into(), emulator.api_url()),
            (
                "DATABASE_URL".into(),
                format!("sqlite://{}", data.path().join(DATABASE_FILE).display()),
            ),
            ("BIND_ADDR".into(), "127.0.0.1".into()),
            ("PORT".into(), service_port.to_string()),
            ("FEED_BASE_URL".into(), feed_base),
            ("TOLLGATE_CONFIG".into(), catalog_path.display().to_string()),
            ("SHUTDOWN_TIMEOUT".into(), "5s".into()),
        ];
        if let Some(node) = node {
            vars.push((NODE_TOKEN_ENV.into(), node.token.expose().to_owned()));
        }
        vars.extend([
            (
                "CRYPTOPAY_TOKEN".into(),
                payments.cryptopay_token().to_owned(),
            ),
            ("CRYPTOPAY_API_URL".into(), payments.cryptopay_api_url()),
            ("CRYPTOPAY_POLL_INTERVAL".into(), "5s".into()),
            (
                "YOOKASSA_SHOP_ID".into(),
                payments.yookassa_shop_id().to_owned(),
            ),
            (
                "YOOKASSA_SECRET_KEY".into(),
                payments.yookassa_secret_key().to_owned(),
            ),
            ("YOOKASSA_API_URL".into(), payments.yookassa_api_url()),
            ("YOOKASSA_POLL_INTERVAL".into(), "5s".into()),
            // The emulator notifies from this machine.
            ("YOOKASSA_NOTIFY_FROM".into(), "127.0.0.1,::1".into()),
        ]);
        let config = match Config::load(&Env::from_pairs(vars)) {
            Ok(config) => config,
            Err(errors) => {
                payments.shutdown().await;
                emulator.shutdown().await;
                // The sandbox writes every setting itself: this is a bug, not a user error.
                bail!("the sandbox built an invalid configuration (please report this):\n{errors}");
            }
        };
        let app = match app::start(config, AppOptions::default(), app::bot).await {
            Ok(app) => app,
            Err(e) => {
                payments.shutdown().await;
                emulator.shutdown().await;
                return Err(anyhow!(
                    "cannot start the service on port {service_port}: {e:#}\n  fix: stop the program using it or pass --service-port <free port> (0 picks any)"
                ));
            }
        };
        let hooks = async {
            let control = payments.client();
            for (provider, path) in [
                (payment_emulator::Provider::Cryptopay, "cryptopay"),
                (payment_emulator::Provider::Yookassa, "yookassa"),
            ] {
                let url = format!("http://127.0.0.1:{service_port}/payments/{path}");
                control
                    .set_webhook(provider, Some(&url))
                    .await
                    .map_err(|e| {
                        anyhow!("cannot point the payment emulator's webhooks at the service: {e}")
                    })?;
            }
            wait_ready(app.addr).await
        };
        if let Err(e) = hooks.await {
            let _ = app.shutdown().await;
            payments.shutdown().await;
            emulator.shutdown().await;
            return Err(e);
        }
        Ok((emulator, payments, app))
    }

    /// The web chat page, to open in a browser.
    pub fn web_url(&self) -> String {
        self.emulator.web_url()
    }

    /// The emulated Bot API (also serves the control API under `/control`).
    pub fn api_url(&self) -> String {
        self.emulator.api_url()
    }

    /// The payment emulator (Crypto Pay at `/api`, YooKassa at `/v3`, payment pages at `/pay`).
    pub fn payments_url(&self) -> String {
        self.payments.base_url()
    }

    /// A control client of the payment emulator (tests pay with it).
    pub fn payments_control(&self) -> payment_emulator::ControlClient {
        self.payments.client()
    }

    /// The service's base URL (`/healthz`, `/readyz`, `/metrics`, `/sub/<token>`).
    pub fn service_url(&self) -> String {
        format!("http://{}", self.app.addr)
    }

    /// Where the database, the catalog and the node's state live.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Whether a local node runs.
    pub fn node(&self) -> &NodeStatus {
        &self.node_status
    }

    /// A control client of the emulator (what the web page uses; tests drive users with it).
    pub fn control(&self) -> telegram_emulator::ControlClient {
        self.emulator.client()
    }

    /// What is running and where, for people.
    pub fn summary(&self) -> String {
        let contents = if self.node.is_some() {
            format!("SQLite {DATABASE_FILE}, the catalog in use, the node's state")
        } else {
            format!("SQLite {DATABASE_FILE}, the catalog in use")
        };
        let data = if self.data.is_temporary() {
            format!(
                "{}  ({contents}; removed on exit, keep it with --data-dir)",
                self.data_dir().display()
            )
        } else {
            format!("{}  ({contents}; kept)", self.data_dir().display())
        };
        let node = match &self.node_status {
            NodeStatus::Running(n) => format!(
                "running: V2Ray core ({}, pid {}) with VLESS on {}, tollgate-node agent on {}",
                n.v2ray.display(),
                n.core_pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                n.vless,
                n.agent_url
            ),
            NodeStatus::Off => {
                "none (--no-node): the bot shows links and reports that no server is available"
                    .to_owned()
            }
            NodeStatus::NoV2Ray => "none: no v2ray binary found ($TOLLGATE_V2RAY_BIN, /usr/bin/v2ray, PATH); \
                 the bot shows links and reports that no server is available (install it with `apt-get install v2ray`)"
                .to_owned(),
        };
        format!(
            "Tollgate sandbox is running: the bot, an emulated Telegram and {} — no token needed.\n\
             \n\
             \x20 Web chat:  {}   <- open it in a browser, create a user, press START\n\
             \x20 Service:   {}   (/healthz, /readyz, /metrics, /sub/<token>)\n\
             \x20 Bot API:   {}   (emulated, bot @{BOT_USERNAME})\n\
             \x20 Payments:  {}   (Crypto Pay and YooKassa emulated: \"Pay\" opens their page, pay or cancel there)\n\
             \x20 Data:      {data}\n\
             \x20 Node:      {node}\n\
             \n\
             Press Ctrl-C to stop.",
            if self.node.is_some() {
                "a local VPN node"
            } else {
                "no VPN node"
            },
            self.web_url(),
            self.service_url(),
            self.api_url(),
            self.payments_url(),
        )
    }

    /// Runs until `stop` is cancelled (Ctrl-C) or the service fails, then stops everything.
    pub async fn run_until(self, stop: CancellationToken) -> anyhow::Result<()> {
        let Sandbox {
            emulator,
            payments,
            app,
            node,
            node_status: _,
            data,
        } = self;
        let app_stop = app.shutdown_token();
        let forward = tokio::spawn(async move {
            stop.cancelled().await;
            app_stop.cancel();
        });
        let result = app.wait().await;
        forward.abort();
        finish(emulator, payments, node, data).await;
        result
    }

    /// Stops the service, the node (killing the V2Ray core) and the emulator, in that order,
    /// and removes a temporary data directory.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Sandbox {
            emulator,
            payments,
            app,
            node,
            node_status: _,
            data,
        } = self;
        let result = app.shutdown().await;
        finish(emulator, payments, node, data).await;
        result
    }
}

/// Stops what remains after the service: the node first (the core is a child process), then the
/// emulator; the data directory goes last.
async fn finish(
    emulator: RunningEmulator,
    payments: RunningPaymentEmulator,
    node: Option<LocalNode>,
    data: DataDir,
) {
    if let Some(node) = node {
        node.stop().await;
    }
    payments.shutdown().await;
    emulator.shutdown().await;
    drop(data);
}

/// The catalog's `bot.name` (the emulated bot's display name), "Tollgate" if unreadable.
fn catalog_bot_name(catalog: &str) -> String {
    toml::from_str::<toml::Table>(catalog)
        .ok()
        .and_then(|t| t.get("bot")?.get("name")?.as_str().map(ToOwned::to_owned))
        .unwrap_or_else(|| "Tollgate".to_owned())
}

/// `port` if it is free on 127.0.0.1 (0: a free port chosen now). The service's feed URL must
/// be known before the service binds, so the port is settled up front.
fn pick_port(port: u16, flag: &str) -> anyhow::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).map_err(|e| {
        anyhow!(
            "cannot listen on 127.0.0.1:{port}: {e}\n  fix: stop the program using it (another sandbox?) or pass {flag} <free port> (0 picks any)"
        )
    })?;
    Ok(listener.local_addr()?.port())
}

/// Polls `/readyz` until it answers 200.
async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| anyhow!("cannot build an HTTP client: {e}"))?;
    let url = format!("http://{addr}/readyz");
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let last = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                format!("{status}: {}", r.text().await.unwrap_or_default())
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!(
                "the service did not become ready within {READY_LIMIT:?} (last /readyz: {last})\n  fix: run with RUST_LOG=info to see why"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
