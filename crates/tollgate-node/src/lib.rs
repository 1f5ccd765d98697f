//! `tollgate-node`: the agent that runs next to an Xray/V2Ray core on each VPN server.
//!
//! It exposes an authenticated REST API (see the crate README for the exact contract) through
//! which the Tollgate service puts and removes VLESS users, lists them with traffic, forces a
//! full resync ("converge to this set") and reads health. The agent keeps its user set in a
//! local SQLite file, re-applies it whenever the core restarts (API-added users do not survive
//! a core restart), keeps email ↔ UUID one-to-one, accounts traffic as persisted deltas, and
//! never restarts the core.
//!
//! Modules, in the order a request meets them:
//! * [`config`] — flags, environment, token loading.
//! * `http` — routes, bearer-token check, error mapping (private).
//! * [`validate`] — strict parsing of emails, UUIDs, flows.
//! * [`agent`] — the operations and their ordering rules.
//! * [`core`] — the link to the core: verified inbound, restart detection.
//! * [`store`] — the SQLite state.
//! * [`client`] — the typed client for the service; [`api`] — the shared JSON types.
//! * `tls` — the HTTPS listener and the agent's self-signed certificate (private);
//!   [`pin`] — the certificate fingerprint the service pins.
//! * `testing` (feature) — a harness with real V2Ray cores for other crates' tests.

pub mod agent;
pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod core;
mod http;
pub mod pin;
mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
pub mod validate;

pub use auth::Token;
pub use client::{NodeClient, NodeClientBuilder, NodeError};
pub use config::{AgentConfig, Cli, Command, ConfigError, LogFormat};
pub use pin::CertFingerprint;
pub use server::{RunningAgent, StartError, start};
pub use tls::{TlsFiles, TlsSetting};
