//! Running the agent in tests: in-process ([`TestAgent`]) or as the real binary
//! ([`AgentProcess`]), each with its own state directory and a random token.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use uuid::Uuid;
use xray_api::testing::{ServerCore, free_port};

use super::share_link::percent_encode;
use crate::api::HealthResponse;
use crate::{
    AgentConfig, CertFingerprint, NodeClient, RunningAgent, StartError, TlsSetting, Token,
};

/// A `vless://` link for a user of `core` (plain TCP, no TLS), as a client app would import it.
pub fn share_link_for(core: &ServerCore, uuid: &Uuid, name: &str) -> String {
    let addr = core.vless_addr();
    format!(
        "vless://{uuid}@{}:{}?encryption=none&security=none&type=tcp&headerType=none#{}",
        addr.ip(),
        addr.port(),
        percent_encode(name)
    )
}

/// The agent running inside the test process against `core`.
pub struct TestAgent {
    running: Option<RunningAgent>,
    /// Kept while stopped: the same certificate is served again after a restart.
    fingerprint: Option<CertFingerprint>,
    client: NodeClient,
    config: AgentConfig,
    dir: TempDir,
}

impl TestAgent {
    /// Starts an agent for `core`'s VLESS inbound with test-friendly timings (checks every
    /// 100 ms, 2 s core deadline, traffic collected on list).
    pub async fn start(core: &ServerCore) -> Result<TestAgent, StartError> {
        Self::start_with(core, |_| {}).await
    }

    /// [`TestAgent::start`], letting the caller adjust the configuration first (for instance
    /// `inbound_tag`, `dialect`, `tls`).
    pub async fn start_with(
        core: &ServerCore,
        adjust: impl FnOnce(&mut AgentConfig),
    ) -> Result<TestAgent, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-node-test-")
            .tempdir()
            .map_err(|e| StartError::State(format!("temporary directory: {e}")))?;
        let mut config = AgentConfig::new(
            core.api_endpoint(),
            core.vless_tag(),
            Token::generate(),
            dir.path().join("state.db"),
        );
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.check_interval = Duration::from_millis(100);
        config.traffic_interval = Duration::from_secs(3600);
        config.core_call_timeout = Duration::from_secs(2);
        config.core_connect_timeout = Duration::from_secs(1);
        config.shutdown_grace = Duration::from_secs(5);
        adjust(&mut config);
        let running = crate::start(config.clone()).await?;
        let client = client_for(&running, &config)?;
        Ok(TestAgent {
            fingerprint: running.cert_fingerprint(),
            running: Some(running),
            client,
            config,
            dir,
        })
    }

    /// The fingerprint of the certificate served (None for plain HTTP).
    pub fn cert_fingerprint(&self) -> Option<CertFingerprint> {
        self.fingerprint
    }

    /// The directory the state file (and a self-signed certificate) lives in.
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client with the right token.
    pub fn client(&self) -> &NodeClient {
        &self.client
    }

    /// A client of this agent with another token (to test refusals).
    pub fn client_with_token(&self, token: Token) -> NodeClient {
        NodeClient::new(&self.base_url(), token).unwrap_or_else(|e| panic!("client: {e}"))
    }

    /// `http://127.0.0.1:PORT` (or https).
    pub fn base_url(&self) -> String {
        self.client.base_url().trim_end_matches('/').to_owned()
    }

    /// The agent's token.
    pub fn token(&self) -> &Token {
        &self.config.token
    }

    /// The agent's configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The SQLite state file.
    pub fn state_file(&self) -> &Path {
        &self.config.state_file
    }

    /// Runs a monitoring round now instead of waiting for the next one.
    pub async fn check_core_now(&self) {
        if let Some(running) = &self.running {
            running.check_core_now().await;
        }
    }

    /// Stops the agent gracefully; the state directory stays for [`TestAgent::start_again`].
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Starts the agent again on the same state file and token (new port).
    pub async fn start_again(&mut self) -> Result<(), StartError> {
        self.stop().await;
        let running = crate::start(self.config.clone()).await?;
        self.client = client_for(&running, &self.config)?;
        self.fingerprint = running.cert_fingerprint();
        self.running = Some(running);
        Ok(())
    }

    /// Polls `GET /v1/health` until `condition` holds; panics with the last answer after `limit`.
    pub async fn wait_for_health(
        &self,
        what: &str,
        limit: Duration,
        condition: impl Fn(&HealthResponse) -> bool,
    ) -> HealthResponse {
        let deadline = Instant::now() + limit;
        loop {
            let health = self.client.health().await;
            if let Ok(h) = &health
                && condition(h)
            {
                return h.clone();
            }
            if Instant::now() > deadline {
                panic!("waited {limit:?} for {what}; last health: {health:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A client that trusts the agent's certificate: a configured one as a root, the agent's
/// self-signed one by its fingerprint (as the service does).
fn client_for(running: &RunningAgent, config: &AgentConfig) -> Result<NodeClient, StartError> {
    let mut builder = NodeClient::builder(&running.base_url(), config.token.clone());
    match &config.tls {
        TlsSetting::Off => {}
        TlsSetting::Files(tls) => {
            let pem = std::fs::read(&tls.cert)
                .map_err(|e| StartError::Tls(format!("read {}: {e}", tls.cert.display())))?;
            builder = builder.root_certificate_pem(&pem);
        }
        TlsSetting::SelfSigned { .. } => {
            if let Some(fingerprint) = running.cert_fingerprint() {
                builder = builder.pin_certificate(fingerprint);
            }
        }
    }
    builder
        .build()
        .map_err(|e| StartError::Listen(format!("client: {e}")))
}

/// The `tollgate-node` binary running as a child process.
pub struct AgentProcess {
    child: Child,
    client: NodeClient,
    token: Token,
    log_path: PathBuf,
    _dir: TempDir,
}

impl AgentProcess {
    /// Spawns `binary` against `core` with a fresh state file and random token, passing the
    /// token in `TOLLGATE_NODE_TOKEN` and everything else as `TOLLGATE_NODE_*` variables
    /// (plus `extra_env`), and waits until `/healthz` answers.
    pub async fn spawn(
        binary: &Path,
        core: &ServerCore,
        extra_env: &[(&str, &str)],
    ) -> io::Result<AgentProcess> {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-node-proc-")
            .tempdir()?;
        let port = free_port()?;
        let token = Token::generate();
        let log_path = dir.path().join("agent.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("TOLLGATE_NODE_TOKEN", token.expose())
            .env("TOLLGATE_NODE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_NODE_CORE_API", core.api_endpoint())
            .env("TOLLGATE_NODE_INBOUND_TAG", core.vless_tag())
            .env("TOLLGATE_NODE_STATE_FILE", dir.path().join("state.db"))
            .env("TOLLGATE_NODE_CHECK_INTERVAL_MS", "200")
            .env("TOLLGATE_NODE_LOG", "tollgate_node=debug,info")
            // The client below speaks plain HTTP; TLS is tested on its own (tests/tls.rs).
            .env("TOLLGATE_NODE_PLAINTEXT", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let client = NodeClient::new(&format!("http://127.0.0.1:{port}"), token.clone())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "tollgate-node exited ({status}) before serving; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )));
            }
            if client.healthz().await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "tollgate-node did not serve within 15 s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(AgentProcess {
            child,
            client,
            token,
            log_path,
            _dir: dir,
        })
    }

    pub fn client(&self) -> &NodeClient {
        &self.client
    }

    pub fn token(&self) -> &Token {
        &self.token
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM (through `kill`) and waits up to `limit` for the exit.
    pub async fn terminate(&mut self, limit: Duration) -> io::Result<ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(io::Error::other("kill -TERM failed"));
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "tollgate-node ignored SIGTERM",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
