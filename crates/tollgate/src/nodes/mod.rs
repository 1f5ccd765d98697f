//! Nodes: the VPN servers from the catalog and the jobs that make them hold what the
//! database says.
//!
//! - [`Registry`]: every catalog node with its agent client (deadline on every call; the
//!   agent's certificate pinned by `agent_cert_sha256`) and its link definition; only
//!   *enabled* nodes are offered, provisioned and reconciled.
//! - [`link`]: the one definition → node user entry and `vless://` share link (E5).
//! - [`membership`]: the `node_memberships` table — intent (`desired`) vs. what a node was
//!   seen to hold (`observed`).
//! - [`provisioning`]: claims due rows and calls the agents, outside any transaction, with
//!   per-row backoff and a per-node [`breaker`].
//! - [`reconcile`]: lists each node's users and repairs drift both ways, and never acts on a
//!   node whose list call failed.
//!
//! A node that is disabled in the catalog is out of service: it is not in anyone's feed, gets
//! no new wanted rows, and the service stops calling it (it may be gone). Its existing rows
//! stay as they are; intent recorded meanwhile (expiries, revocations) is applied when it is
//! enabled again, and its first reconcile then repairs any drift. To retire a node for good,
//! disable it and stop its core.
//!
//! An operator can also take a catalog-enabled node out of service at runtime ([`switches`],
//! audited) with the same effect; the registry's enabled set is live, refreshed from the
//! database every few seconds by the reconcile component (see [`switches`] for why), so every
//! replica follows within seconds without a restart. [`console`] gathers what the admin
//! console shows per node.

pub mod breaker;
pub mod console;
pub mod link;
pub mod membership;
pub mod metrics;
pub mod provisioning;
pub mod reconcile;
pub mod switches;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tollgate_node::{NodeClient, Token};

use crate::config::Catalog;
use crate::config::catalog::{LinkDefinition, NodeDefinition};
use crate::store::Db;
use crate::time::{SharedClock, Timestamp};

/// One node of the catalog, ready to be called.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub country: String,
    pub enabled: bool,
    pub link: LinkDefinition,
    /// The name client apps show for it (flag + name).
    pub display_name: String,
    pub client: NodeClient,
}

/// The names of the enabled nodes: where a subscription's key is wanted. A live view: the
/// registry's set changes when an operator disables or enables a node at runtime, and every
/// clone sees the change (the jobs and the bot hold clones).
#[derive(Debug, Clone, Default)]
pub struct EnabledNodes(Arc<RwLock<Vec<String>>>);

impl EnabledNodes {
    pub fn new(names: impl IntoIterator<Item = impl Into<String>>) -> EnabledNodes {
        EnabledNodes(Arc::new(RwLock::new(
            names.into_iter().map(Into::into).collect(),
        )))
    }

    /// The names now, in catalog order.
    pub fn names(&self) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|n| n == name)
    }

    pub fn is_empty(&self) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn replace(&self, names: Vec<String>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = names;
    }
}

impl PartialEq for EnabledNodes {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names()
    }
}

impl Eq for EnabledNodes {}

/// Every node of the catalog.
#[derive(Debug)]
pub struct Registry {
    nodes: Vec<Arc<Node>>,
    /// The catalog's enabled nodes less those disabled at runtime ([`switches`]).
    enabled: EnabledNodes,
    /// When each node's circuit breaker opened in this process (absent: closed), as this
    /// process's provisioning workers report it; read by the alert monitor and the console.
    breakers: Mutex<HashMap<String, Timestamp>>,
    /// When each node last answered a provisioning call of this process.
    answered: Mutex<HashMap<String, Timestamp>>,
}

/// A node whose agent client cannot be built (the catalog validated the URL and the token's
/// shape already, so this names what is left).
#[derive(Debug, thiserror::Error)]
#[error("node {node}: {problem}")]
pub struct RegistryError {
    pub node: String,
    pub problem: String,
}

impl Registry {
    /// Builds a client per node; every call of a client has `call_timeout` as its deadline.
    pub fn from_catalog(
        catalog: &Catalog,
        call_timeout: Duration,
    ) -> Result<Registry, RegistryError> {
        let nodes = catalog
            .nodes
            .iter()
            .map(|def| Node::from_definition(def, call_timeout).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let enabled = EnabledNodes::new(nodes.iter().filter(|n| n.enabled).map(|n| n.name.clone()));
        Ok(Registry {
            nodes,
            enabled,
            breakers: Mutex::default(),
            answered: Mutex::default(),
        })
    }

    /// Every node, enabled or not, in catalog order.
    pub fn all(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The nodes in service now (enabled in the catalog and not disabled at runtime), in
    /// catalog order: in the feeds, wanted for new keys, provisioned and reconciled.
    pub fn enabled_nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes
            .iter()
            .filter(|n| n.enabled && self.enabled.contains(&n.name))
    }

    /// The nodes the catalog enables, whether or not disabled at runtime: each gets a
    /// provisioning worker, which pauses while its node is disabled.
    pub fn catalog_enabled_nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.iter().filter(|n| n.enabled)
    }

    /// Whether `name` is in service now.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    /// Takes the runtime-disabled nodes out of the enabled set (and puts the others back);
    /// returns the nodes whose state changed, with their new state.
    pub fn apply_disabled(&self, disabled: &HashSet<String>) -> Vec<(String, bool)> {
        let before = self.enabled.names();
        let now: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.enabled && !disabled.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        let changes = self
            .nodes
            .iter()
            .filter(|n| n.enabled)
            .filter_map(|n| {
                let was = before.contains(&n.name);
                let is = now.contains(&n.name);
                (was != is).then(|| (n.name.clone(), is))
            })
            .collect();
        self.enabled.replace(now);
        changes
    }

    /// Records whether `node`'s breaker is open in this process (from when, if it just
    /// opened).
    pub fn set_breaker(&self, node: &str, open: bool, now: Timestamp) {
        let mut b = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        if open {
            b.entry(node.to_owned()).or_insert(now);
        } else {
            b.remove(node);
        }
    }

    /// Records that `node` answered a call of this process at `now`.
    pub fn node_answered(&self, node: &str, now: Timestamp) {
        self.answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.to_owned(), now);
    }

    /// When `node` last answered a call of this process (None: not since start). A closed
    /// breaker alone says little (a process that has not called the node has one); an answer
    /// says the node is up.
    pub fn last_answered(&self, node: &str) -> Option<Timestamp> {
        self.answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .copied()
    }

    /// Since when `node`'s breaker has been open in this process; None while it is closed.
    pub fn breaker_open_since(&self, node: &str) -> Option<Timestamp> {
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .copied()
    }

    pub fn enabled(&self) -> &EnabledNodes {
        &self.enabled
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

impl Node {
    fn from_definition(
        def: &NodeDefinition,
        call_timeout: Duration,
    ) -> Result<Node, RegistryError> {
        let fail = |problem: String| RegistryError {
            node: def.name.clone(),
            problem,
        };
        let token = Token::new(def.agent_token.expose().clone())
            .map_err(|e| fail(format!("{}: {e}", def.agent_token_env)))?;
        let mut client = NodeClient::builder(def.agent_url.as_str(), token)
            .timeout(call_timeout)
            .node_name(&def.name);
        // Pinned: exactly the agent's own certificate, whatever its names say (a node is
        // often reached by IP; see tollgate_node::pin). Without a pin, the public roots.
        if let Some(fingerprint) = def.agent_cert_sha256 {
            client = client.pin_certificate(fingerprint);
        }
        let client = client
            .build()
            .map_err(|e| fail(format!("agent client: {e}")))?;
        Ok(Node {
            name: def.name.clone(),
            country: def.country.clone(),
            enabled: def.enabled,
            link: def.link.clone(),
            display_name: link::display_name(&def.country, &def.name),
            client,
        })
    }
}

/// Wakes provisioning after a commit that changed intent, so access follows at once instead
/// of at the next poll. Cheap to clone; a wake while provisioning is busy is kept, not lost.
#[derive(Debug, Clone, Default)]
pub struct ProvisioningWake(Arc<Notify>);

impl ProvisioningWake {
    pub fn new() -> ProvisioningWake {
        ProvisioningWake::default()
    }

    /// Call after committing a transaction that used the access API.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.0.notified().await;
    }
}

/// What the node jobs (provisioning, reconcile) share.
#[derive(Clone)]
pub struct NodeJobs {
    pub db: Db,
    pub registry: Arc<Registry>,
    pub clock: SharedClock,
    /// This process's claim and lease holder id.
    pub holder: String,
    pub wake: ProvisioningWake,
    pub metrics: metrics::NodeMetrics,
}
