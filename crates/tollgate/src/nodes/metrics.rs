//! Metrics of provisioning and reconcile. Labels are catalog node names and closed sets of
//! outcomes, so the number of series is bounded (docs/reliability.md D2).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeOutcomeLabels {
    pub node: String,
    /// `added`, `removed`, `retry` (the node did not answer), `refused` (it answered with an
    /// error about the request).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub node: String,
    /// `restore` (wanted but missing on the node), `remove` (on the node but not wanted,
    /// or unknown there), `unknown_removed` (removed directly: no row knows it).
    pub direction: &'static str,
}

#[derive(Clone, Debug)]
pub struct NodeMetrics {
    pub provision_attempts: Family<NodeOutcomeLabels, Counter>,
    pub provision_backlog: Family<NodeLabels, Gauge>,
    pub breaker_open: Family<NodeLabels, Gauge>,
    pub drift_repaired: Family<DriftLabels, Counter>,
    pub reconcile_runs: Family<NodeLabels, Counter>,
    pub reconcile_failures: Family<NodeLabels, Counter>,
    pub node_users: Family<NodeLabels, Gauge>,
    /// Removals the last reconcile of a node held back over the removal limit (0: none).
    pub removals_refused: Family<NodeLabels, Gauge>,
}

impl NodeMetrics {
    pub fn register(registry: &mut Registry) -> NodeMetrics {
        let m = NodeMetrics {
            provision_attempts: Family::default(),
            provision_backlog: Family::default(),
            breaker_open: Family::default(),
            drift_repaired: Family::default(),
            reconcile_runs: Family::default(),
            reconcile_failures: Family::default(),
            node_users: Family::default(),
            removals_refused: Family::default(),
        };
        registry.register(
            "nodes_provision_attempts",
            "Agent calls made by provisioning, by node and outcome (added, removed, retry, refused)",
            m.provision_attempts.clone(),
        );
        registry.register(
            "nodes_provision_backlog",
            "Membership rows whose node does not hold what the database wants yet",
            m.provision_backlog.clone(),
        );
        registry.register(
            "nodes_breaker_open",
            "1 while a node's circuit breaker is open or probing, else 0",
            m.breaker_open.clone(),
        );
        registry.register(
            "nodes_drift_repaired",
            "Differences between a node and the database found by reconcile, by direction",
            m.drift_repaired.clone(),
        );
        registry.register(
            "nodes_reconcile_runs",
            "Completed reconcile runs per node",
            m.reconcile_runs.clone(),
        );
        registry.register(
            "nodes_reconcile_failures",
            "Reconcile runs that did nothing because the node's user list could not be read",
            m.reconcile_failures.clone(),
        );
        registry.register(
            "nodes_users",
            "Users a node's agent listed at the last reconcile",
            m.node_users.clone(),
        );
        registry.register(
            "nodes_reconcile_removals_refused",
            "Removals the last reconcile of a node refused because they exceeded the removal limit \
             (NODE_RECONCILE_MAX_REMOVALS and NODE_RECONCILE_MAX_REMOVAL_SHARE); 0 when none. \
             Nonzero until an operator runs `tollgate reconcile --node <node> --allow-removals` \
             or fixes the database",
            m.removals_refused.clone(),
        );
        m
    }

    pub fn node(name: &str) -> NodeLabels {
        NodeLabels {
            node: name.to_owned(),
        }
    }
}
