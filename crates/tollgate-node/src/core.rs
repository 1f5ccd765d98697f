//! The agent's link to its core: one client, a verified inbound, and restart detection.
//!
//! Why this layer exists:
//! * **Adding to the wrong inbound can kill the core.** v2ray 4.34 panics and exits when a
//!   VLESS user is added to a VMess or Trojan inbound. Every add is therefore gated on a
//!   verification of the inbound (a harmless probe, [`XrayClient::check_vless_inbound`]),
//!   redone after anything that may mean the core restarted with another configuration.
//! * **A core restart silently drops every user added through the API.** The agent notices it
//!   two ways: the core's uptime went down, or the *sentinel* — a user with a reserved email and
//!   a random UUID nobody knows, added by the agent — is gone (adding it succeeds instead of
//!   answering "already exists"). The sentinel works even when a restart is faster than the
//!   uptime's one-second resolution. Calls failing for lack of a core also request a re-apply
//!   once it is back. The agent never restarts the core itself.
//! * **Re-apply requests must not be lost.** A request made while a re-apply runs is kept by a
//!   generation counter, so that re-apply finishing does not clear it.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use uuid::Uuid;
use xray_api::{ClientOptions, DialectChoice, ErrorKind, UserTraffic, VlessUser, XrayClient};

use crate::validate::{Email, SENTINEL_EMAIL, UserSpec};

/// How to reach the core.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// `host:port` of the core's API inbound.
    pub endpoint: String,
    pub dialect: DialectChoice,
    /// Tag of the VLESS inbound the agent manages.
    pub inbound_tag: String,
    pub options: ClientOptions,
    /// Most core calls in flight at once.
    pub concurrency: usize,
}

/// Why a core operation failed, from the caller's point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// No answer: the core is down, restarting or too slow. Retry later.
    Unavailable(String),
    /// The core answered no: a configuration problem (wrong tag, not VLESS, service missing)
    /// or a refused value. Retrying will not help until someone fixes it.
    Rejected(String),
}

impl CoreError {
    pub fn message(&self) -> &str {
        match self {
            CoreError::Unavailable(m) | CoreError::Rejected(m) => m,
        }
    }
}

/// What an add did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The core did not have the email; it has the user now.
    Added,
    /// The core already had a user with this email (whatever its id: the core cannot say).
    AlreadyPresent,
}

/// What a remove did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveOutcome {
    Removed,
    WasAbsent,
}

/// A snapshot of what the agent knows about its core.
#[derive(Clone, Debug, Default)]
pub struct CoreStatus {
    pub reachable: bool,
    pub dialect: Option<&'static str>,
    pub uptime_secs: Option<u32>,
    pub inbound_verified: bool,
    pub config_error: Option<String>,
    pub resync_pending: bool,
    pub restarts_detected: u64,
    pub last_resync: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct State {
    client: Option<XrayClient>,
    reachable: bool,
    uptime_secs: Option<u32>,
    inbound_verified: bool,
    config_error: Option<String>,
    /// Re-apply generations: wanted > done means a re-apply is pending.
    resync_wanted: u64,
    resync_done: u64,
    restarts_detected: u64,
    last_resync: Option<SystemTime>,
    /// The sentinel is known to be on the current core run.
    sentinel_seen: bool,
    stats_warning_logged: bool,
}

/// The link to the core.
#[derive(Debug)]
pub struct CoreLink {
    settings: CoreSettings,
    sentinel: VlessUser,
    state: Mutex<State>,
    connecting: tokio::sync::Mutex<()>,
    permits: Semaphore,
}

impl CoreLink {
    /// A link that connects lazily. A re-apply is pending from the start: on agent start the
    /// stored users are always put back.
    pub fn new(settings: CoreSettings) -> CoreLink {
        let permits = Semaphore::new(settings.concurrency.max(1));
        CoreLink {
            sentinel: VlessUser {
                email: SENTINEL_EMAIL.to_owned(),
                id: Uuid::new_v4(),
                flow: String::new(),
                level: 0,
            },
            settings,
            state: Mutex::new(State {
                resync_wanted: 1,
                ..State::default()
            }),
            connecting: tokio::sync::Mutex::new(()),
            permits,
        }
    }

    /// The managed inbound's tag.
    pub fn inbound_tag(&self) -> &str {
        &self.settings.inbound_tag
    }

    /// How many core calls may be in flight.
    pub fn concurrency(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of plain data; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The status for health reports.
    pub fn status(&self) -> CoreStatus {
        let state = self.state();
        CoreStatus {
            reachable: state.reachable,
            dialect: state.client.as_ref().map(|c| c.dialect().as_str()),
            uptime_secs: state.uptime_secs,
            inbound_verified: state.inbound_verified,
            config_error: state.config_error.clone(),
            resync_pending: state.resync_wanted > state.resync_done,
            restarts_detected: state.restarts_detected,
            last_resync: state.last_resync,
        }
    }

    /// The connected client, connecting (and detecting the dialect) if needed.
    async fn client(&self) -> Result<XrayClient, CoreError> {
        if let Some(client) = self.state().client.clone() {
            return Ok(client);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(client) = self.state().client.clone() {
            return Ok(client);
        }
        let connected = XrayClient::connect_with(
            &self.settings.endpoint,
            self.settings.dialect,
            self.settings.options,
        )
        .await;
        match connected {
            Ok(client) => {
                tracing::info!(
                    core = %self.settings.endpoint,
                    dialect = %client.dialect(),
                    "connected to the core API"
                );
                let mut state = self.state();
                state.client = Some(client.clone());
                state.reachable = true;
                Ok(client)
            }
            Err(e) => Err(self.observe(&e)),
        }
    }

    /// Turns a client error into a [`CoreError`] and updates what we know.
    fn observe(&self, error: &xray_api::Error) -> CoreError {
        let message = error.to_string();
        let mut state = self.state();
        match error.kind() {
            ErrorKind::Unavailable => {
                if state.reachable {
                    tracing::warn!(error = %message, "lost the core");
                }
                state.reachable = false;
                // It may come back restarted, with no users and maybe another config.
                state.inbound_verified = false;
                state.resync_wanted += 1;
                CoreError::Unavailable(message)
            }
            ErrorKind::InboundNotFound | ErrorKind::InboundNotVless | ErrorKind::Unimplemented => {
                if error.kind() == ErrorKind::Unimplemented
                    && self.settings.dialect == DialectChoice::Auto
                {
                    // Maybe the core was replaced by one of the other dialect: detect again.
                    state.client = None;
                }
                let advice = format!(
                    "{message} — fix the core's configuration or the agent's --inbound-tag / --dialect"
                );
                if state.config_error.as_deref() != Some(advice.as_str()) {
                    tracing::error!(error = %advice, "the core cannot serve the managed inbound");
                }
                state.reachable = true;
                state.inbound_verified = false;
                state.config_error = Some(advice.clone());
                CoreError::Rejected(advice)
            }
            _ => {
                state.reachable = true;
                CoreError::Rejected(message)
            }
        }
    }

    /// Like [`CoreLink::observe`] for StatsService calls: a missing StatsService costs traffic
    /// and uptime figures, never provisioning, so it is not a configuration error.
    fn observe_stats(&self, error: &xray_api::Error) -> CoreError {
        if error.kind() == ErrorKind::Unimplemented {
            return CoreError::Rejected(format!(
                "{error} — add \"StatsService\" to the core's api.services for traffic and uptime"
            ));
        }
        self.observe(error)
    }

    /// Verifies the inbound unless that was done since the last sign of a restart.
    async fn ensure_verified(&self, client: &XrayClient) -> Result<(), CoreError> {
        if self.state().inbound_verified {
            return Ok(());
        }
        self.verify(client).await
    }

    async fn verify(&self, client: &XrayClient) -> Result<(), CoreError> {
        let _permit = self.permits.acquire().await;
        match client.check_vless_inbound(&self.settings.inbound_tag).await {
            Ok(()) => {
                let mut state = self.state();
                if let Some(previous) = state.config_error.take() {
                    tracing::info!(was = %previous, "the managed inbound is a VLESS inbound again");
                }
                state.inbound_verified = true;
                state.reachable = true;
                Ok(())
            }
            Err(e) => Err(self.observe(&e)),
        }
    }

    /// Adds (or confirms) a user on the core, after making sure the inbound is VLESS.
    pub async fn add(&self, user: &UserSpec) -> Result<AddOutcome, CoreError> {
        let client = self.client().await?;
        self.ensure_verified(&client).await?;
        let _permit = self.permits.acquire().await;
        match client
            .add_vless_user(&self.settings.inbound_tag, &user.to_core_user())
            .await
        {
            Ok(()) => Ok(AddOutcome::Added),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(AddOutcome::AlreadyPresent),
            Err(e) => Err(self.observe(&e)),
        }
    }

    /// Removes a user from the core; a missing user is fine.
    pub async fn remove(&self, email: &Email) -> Result<RemoveOutcome, CoreError> {
        let client = self.client().await?;
        let _permit = self.permits.acquire().await;
        match client
            .remove_user(&self.settings.inbound_tag, email.as_str())
            .await
        {
            Ok(()) => Ok(RemoveOutcome::Removed),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(RemoveOutcome::WasAbsent),
            Err(e) => Err(self.observe(&e)),
        }
    }

    /// Reads every user's traffic since the last read and resets the core's counters.
    pub async fn take_user_traffic(&self) -> Result<Vec<UserTraffic>, CoreError> {
        let client = self.client().await?;
        let _permit = self.permits.acquire().await;
        client
            .user_traffic(true)
            .await
            .map_err(|e| self.observe_stats(&e))
    }

    /// The core's uptime, asked now (for health), under `limit`.
    pub async fn live_uptime(&self, limit: Duration) -> Result<u32, CoreError> {
        let ask = async {
            let client = self.client().await?;
            client
                .sys_stats()
                .await
                .map(|s| s.uptime_secs)
                .map_err(|e| self.observe_stats(&e))
        };
        match tokio::time::timeout(limit, ask).await {
            Ok(Ok(uptime)) => {
                let mut state = self.state();
                state.reachable = true;
                state.uptime_secs = Some(uptime);
                Ok(uptime)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CoreError::Unavailable(format!(
                "the core did not answer within {limit:?}"
            ))),
        }
    }

    /// One health round: uptime, inbound check, sentinel. Returns true if the stored users
    /// should be re-applied now (and the core is in a state to take them).
    pub async fn check(&self) -> bool {
        let Ok(client) = self.client().await else {
            return false;
        };
        match client.sys_stats().await {
            Ok(stats) => {
                let mut state = self.state();
                if let Some(previous) = state.uptime_secs
                    && stats.uptime_secs < previous
                {
                    tracing::warn!(
                        previous_uptime_s = previous,
                        uptime_s = stats.uptime_secs,
                        "the core restarted (uptime went down): re-applying all users"
                    );
                    state.restarts_detected += 1;
                    state.sentinel_seen = false;
                    state.inbound_verified = false;
                    state.resync_wanted += 1;
                }
                state.uptime_secs = Some(stats.uptime_secs);
                state.reachable = true;
            }
            Err(e) if e.is_unavailable() => {
                self.observe(&e);
                return false;
            }
            Err(e) => {
                let mut state = self.state();
                state.uptime_secs = None;
                if !state.stats_warning_logged {
                    state.stats_warning_logged = true;
                    tracing::warn!(
                        error = %e,
                        "cannot read the core's statistics: no uptime and no traffic counters; add \"StatsService\" to the core's api.services"
                    );
                }
            }
        }
        // Re-verify every round: a restarted core may carry another configuration.
        if self.verify(&client).await.is_err() {
            return false;
        }
        let placed = {
            let _permit = self.permits.acquire().await;
            client
                .add_vless_user(&self.settings.inbound_tag, &self.sentinel)
                .await
        };
        let mut state = self.state();
        match placed {
            Ok(()) => {
                if state.sentinel_seen {
                    tracing::warn!(
                        "the core restarted (its users are gone): re-applying all users"
                    );
                    state.restarts_detected += 1;
                }
                state.sentinel_seen = true;
                state.resync_wanted += 1;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => state.sentinel_seen = true,
            Err(e) => {
                drop(state);
                self.observe(&e);
                return false;
            }
        }
        state.reachable = true;
        state.resync_wanted > state.resync_done
    }

    /// Asks for a re-apply (e.g. after a call failed for lack of a core).
    pub fn request_resync(&self) {
        self.state().resync_wanted += 1;
    }

    /// Starts a re-apply: returns the generation it covers.
    pub fn begin_resync(&self) -> u64 {
        self.state().resync_wanted
    }

    /// Marks a re-apply that started at `generation` as complete.
    pub fn finish_resync(&self, generation: u64) {
        let mut state = self.state();
        state.resync_done = state.resync_done.max(generation);
        state.last_resync = Some(SystemTime::now());
    }
}
