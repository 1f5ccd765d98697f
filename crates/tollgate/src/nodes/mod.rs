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

pub mod breaker;
pub mod link;
pub mod membership;
pub mod metrics;
pub mod provisioning;
pub mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tollgate_node::{NodeClient, Token};

use crate::config::Catalog;
use crate::config::catalog::{LinkDefinition, NodeDefinition};
use crate::store::Db;
use crate::time::SharedClock;

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

/// The names of the enabled nodes: where a subscription's key is wanted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnabledNodes(Vec<String>);

impl EnabledNodes {
    pub fn new(names: impl IntoIterator<Item = impl Into<String>>) -> EnabledNodes {
        EnabledNodes(names.into_iter().map(Into::into).collect())
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every node of the catalog.
#[derive(Debug)]
pub struct Registry {
    nodes: Vec<Arc<Node>>,
    enabled: EnabledNodes,
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
        Ok(Registry { nodes, enabled })
    }

    /// Every node, enabled or not, in catalog order.
    pub fn all(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The enabled nodes, in catalog order.
    pub fn enabled_nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.iter().filter(|n| n.enabled)
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
