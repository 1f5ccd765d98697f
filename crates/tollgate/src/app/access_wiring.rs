//! Building the access side of a running service from its configuration: the node
//! registry, the provisioning and reconcile components, the feed route, and the handles the
//! rest of the service uses (the wake, the feed base URL).

use std::sync::Arc;

use tollgate_node::NodeClient;

use crate::access::feed::{self, FeedState};
use crate::config::{Config, FeedBaseSource};
use crate::metrics::Metrics;
use crate::nodes::provisioning::{Provisioner, ProvisioningConfig};
use crate::nodes::reconcile::{ReconcileConfig, Reconciler, RemovalLimit};
use crate::nodes::{NodeJobs, ProvisioningWake, Registry};
use crate::store::Db;
use crate::supervisor::{Component, Watched};
use crate::time::SharedClock;

/// The access side of a service, ready to be started.
pub struct AccessRuntime {
    pub registry: Arc<Registry>,
    /// Call after committing an access change.
    pub wake: ProvisioningWake,
    /// `<base>/sub/<token>` is what users give their apps (no trailing slash).
    pub feed_base: String,
    pub components: Vec<Arc<dyn Component>>,
    pub routes: axum::Router,
}

impl AccessRuntime {
    /// The feed URL of a subscription.
    pub fn feed_url(&self, token: &crate::access::FeedToken) -> String {
        feed::feed_url(&self.feed_base, token)
    }
}

pub fn build(
    config: &Config,
    db: &Db,
    clock: &SharedClock,
    metrics: &Metrics,
    holder: &str,
) -> anyhow::Result<AccessRuntime> {
    let d = &config.deployment;
    let registry = Arc::new(
        Registry::from_catalog(&config.catalog, d.nodes.call_timeout)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    if d.feed_base.source == FeedBaseSource::Listener {
        tracing::warn!(feed_base = %d.feed_base.url,
            "FEED_BASE_URL and PUBLIC_URL are unset: subscription URLs point at this machine's listener, \
             which client apps elsewhere cannot reach; set FEED_BASE_URL");
    }
    for node in registry.all() {
        tracing::info!(node = %node.name, enabled = node.enabled, agent = %agent_address(&node.client), "node");
    }
    let wake = ProvisioningWake::new();
    let stall = d.pipeline.watchdog_timeout;
    let jobs = NodeJobs {
        db: db.clone(),
        registry: registry.clone(),
        clock: clock.clone(),
        holder: holder.to_owned(),
        wake: wake.clone(),
        metrics: metrics.nodes.clone(),
    };
    let provisioner = Provisioner::new(
        jobs.clone(),
        ProvisioningConfig::for_call_timeout(d.nodes.call_timeout),
    );
    let reconciler = Reconciler::new(jobs, reconcile_config(config))
        .with_alerts(crate::alerts::Alerts::new(d.admin_ids.clone()));
    let components: Vec<Arc<dyn Component>> = vec![
        Arc::new(Watched::new(provisioner, stall)),
        Arc::new(Watched::new(reconciler, stall)),
    ];
    let routes = feed::routes(FeedState {
        db: db.clone(),
        registry: registry.clone(),
        settings: config.catalog.feed.clone(),
    });
    Ok(AccessRuntime {
        registry,
        wake,
        feed_base: d.feed_base.url.clone(),
        components,
        routes,
    })
}

/// Reconcile's settings from the deployment's (`tollgate run` and `tollgate reconcile`).
pub fn reconcile_config(config: &Config) -> ReconcileConfig {
    let n = &config.deployment.nodes;
    ReconcileConfig {
        removal_limit: RemovalLimit {
            max_users: n.reconcile_max_removals,
            max_percent: n.reconcile_max_removal_share,
        },
        ..ReconcileConfig::every(n.reconcile_interval)
    }
}

fn agent_address(client: &NodeClient) -> String {
    client.base_url().trim_end_matches('/').to_owned()
}
