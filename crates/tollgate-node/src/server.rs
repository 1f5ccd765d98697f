//! Starting and stopping the agent: state, core, background loops, HTTP(S) server.
//!
//! Start order matters: the state file and the core's configuration are checked before the
//! port opens, so a misconfigured agent fails loudly at start (wrong tag, non-VLESS inbound,
//! unreadable state) instead of answering requests it cannot serve. An *unreachable* core is
//! not fatal: the core may start after the agent; health says so and the stored users are
//! applied as soon as it answers.
//!
//! Shutdown (SIGTERM/SIGINT in the binary): stop taking connections, let requests in flight
//! finish within the grace period, stop the loops, collect traffic one last time, close the
//! state file. The core is never touched beyond that.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use xray_api::ClientOptions;

use crate::agent::Agent;
use crate::config::AgentConfig;
use crate::core::{CoreLink, CoreSettings};
use crate::pin::CertFingerprint;
use crate::store::Store;
use crate::tls::{self, TlsListener};

/// Why the agent did not start.
#[derive(Debug)]
pub enum StartError {
    /// A TLS file problem.
    Tls(String),
    /// The state file cannot be used.
    State(String),
    /// The core answered, and its configuration cannot work (wrong tag, not VLESS, API
    /// services missing).
    Core(String),
    /// The listen address cannot be bound.
    Listen(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Tls(m)
            | StartError::State(m)
            | StartError::Core(m)
            | StartError::Listen(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

/// A started agent.
pub struct RunningAgent {
    local_addr: SocketAddr,
    fingerprint: Option<CertFingerprint>,
    stop: CancellationToken,
    server: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    agent: Arc<Agent>,
    grace: Duration,
}

/// Starts the agent and returns once it serves requests.
pub async fn start(config: AgentConfig) -> Result<RunningAgent, StartError> {
    let (tls_config, fingerprint) =
        match tls::resolve(&config.tls, config.listen).map_err(StartError::Tls)? {
            Some((tls_config, fingerprint)) => (Some(tls_config), Some(fingerprint)),
            None => (None, None),
        };
    let store = Store::open(&config.state_file).await.map_err(|e| {
        StartError::State(format!(
            "{e} — check --state-file / TOLLGATE_NODE_STATE_FILE and that its directory exists and is writable"
        ))
    })?;
    let core = CoreLink::new(CoreSettings {
        endpoint: config.core_api.clone(),
        dialect: config.dialect,
        inbound_tag: config.inbound_tag.clone(),
        options: ClientOptions {
            connect_timeout: config.core_connect_timeout,
            call_timeout: config.core_call_timeout,
        },
        concurrency: config.core_concurrency,
    });
    let agent = Arc::new(Agent::new(store, core));

    // First contact: verify the inbound and put the stored users back.
    agent.check_and_heal().await;
    let status = agent.core().status();
    if let Some(problem) = status.config_error {
        agent.store().close().await;
        return Err(StartError::Core(format!(
            "the core at {} cannot serve inbound {:?}: {problem}",
            config.core_api, config.inbound_tag
        )));
    }
    if !status.reachable {
        tracing::warn!(
            core = %config.core_api,
            "the core API does not answer yet; users will be applied when it does (is the core running with its api inbound on this address? --core-api / TOLLGATE_NODE_CORE_API)"
        );
    }

    let tcp = TcpListener::bind(config.listen).await.map_err(|e| {
        StartError::Listen(format!(
            "cannot listen on {} (--listen / TOLLGATE_NODE_LISTEN): {e}",
            config.listen
        ))
    })?;
    let local_addr = tcp
        .local_addr()
        .map_err(|e| StartError::Listen(format!("cannot read the bound address: {e}")))?;
    if fingerprint.is_none() && !local_addr.ip().is_loopback() {
        tracing::warn!(
            listen = %local_addr,
            "serving plain HTTP on a non-loopback address: the token crosses the network in clear text; drop --plaintext (the agent then serves its self-signed certificate) or reach the agent through a tunnel"
        );
    }
    if let Some(fingerprint) = fingerprint {
        // The line the operator copies into the node's entry of the service's catalog.
        tracing::info!(
            %fingerprint,
            "TLS certificate fingerprint for the service's catalog: agent_cert_sha256 = \"{fingerprint}\""
        );
    }

    let stop = CancellationToken::new();
    let app = crate::http::router(Arc::clone(&agent), config.token.digest());
    let server = {
        let stop = stop.clone();
        match tls_config {
            Some(tls_config) => {
                let listener = TlsListener::spawn(tcp, tls_config, stop.clone())
                    .map_err(|e| StartError::Listen(format!("TLS listener: {e}")))?;
                tokio::spawn(async move {
                    let serving =
                        axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
                    if let Err(e) = serving.await {
                        tracing::error!(error = %e, "the HTTPS server failed");
                    }
                })
            }
            None => tokio::spawn(async move {
                let serving = axum::serve(tcp, app).with_graceful_shutdown(stop.cancelled_owned());
                if let Err(e) = serving.await {
                    tracing::error!(error = %e, "the HTTP server failed");
                }
            }),
        }
    };

    let loops = vec![
        spawn_loop(stop.clone(), config.check_interval, {
            let agent = Arc::clone(&agent);
            move || {
                let agent = Arc::clone(&agent);
                async move { agent.check_and_heal().await }
            }
        }),
        spawn_loop(stop.clone(), config.traffic_interval, {
            let agent = Arc::clone(&agent);
            move || {
                let agent = Arc::clone(&agent);
                async move {
                    if let Err(e) = agent.collect_traffic().await {
                        tracing::debug!(error = ?e, "traffic collection failed; will retry");
                    }
                }
            }
        }),
    ];

    tracing::info!(
        listen = %local_addr,
        tls = fingerprint.is_some(),
        core = %config.core_api,
        inbound = %config.inbound_tag,
        state = %config.state_file.display(),
        "tollgate-node is serving"
    );
    Ok(RunningAgent {
        local_addr,
        fingerprint,
        stop,
        server,
        loops,
        agent,
        grace: config.shutdown_grace,
    })
}

/// Runs `round` every `interval` until `stop`; a round never overlaps the next one.
fn spawn_loop<F, Fut>(stop: CancellationToken, interval: Duration, round: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = round() => {}
            }
        }
    })
}

impl RunningAgent {
    /// The address the API listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The SHA-256 fingerprint of the certificate served (None for plain HTTP).
    pub fn cert_fingerprint(&self) -> Option<CertFingerprint> {
        self.fingerprint
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn base_url(&self) -> String {
        let scheme = if self.fingerprint.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Runs one monitoring round now (check the core, re-apply if needed).
    pub async fn check_core_now(&self) {
        self.agent.check_and_heal().await;
    }

    /// Stops gracefully (see the module docs).
    pub async fn shutdown(self) {
        self.stop.cancel();
        let server = self.server.abort_handle();
        if tokio::time::timeout(self.grace, self.server).await.is_err() {
            server.abort();
            tracing::warn!(grace = ?self.grace, "requests still running after the grace period; stopping anyway");
        }
        for handle in self.loops {
            let _ = handle.await;
        }
        match tokio::time::timeout(Duration::from_secs(5), self.agent.collect_traffic()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = ?e, "last traffic collection failed"),
            Err(_) => tracing::warn!("last traffic collection timed out"),
        }
        self.agent.store().close().await;
        tracing::info!("tollgate-node stopped");
    }
}
