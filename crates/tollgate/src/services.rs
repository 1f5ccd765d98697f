//! The running service's shared parts, as handlers and their components get them.
//!
//! `app` builds these once at start; the bot, the jobs and the handlers' components take what
//! they need from here. A module of its own, below the bot and the jobs, so that they depend
//! on what they are given and never on the wiring that gives it (`app`).

use std::sync::Arc;

use tokio::sync::Notify;

use crate::alerts::Alerts;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Db;
use crate::supervisor::Component;
use crate::telegram::api::BotApi;
use crate::time::SharedClock;

/// What a handler is built from: the running service's shared parts.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub api: BotApi,
    pub clock: SharedClock,
    pub registry: Arc<crate::nodes::Registry>,
    /// Call after committing an access change.
    pub provisioning: crate::nodes::ProvisioningWake,
    /// `<base>/sub/<token>` is a subscription's feed URL.
    pub feed_base: String,
    pub alerts: Alerts,
    /// Call after committing outbox rows (the dispatcher does it for handlers).
    pub outbox_wake: Arc<Notify>,
    /// This process as a lease holder.
    pub holder: String,
    pub metrics: Metrics,
    /// The payment providers outside Telegram that are configured.
    pub providers: Arc<crate::billing::providers::Configured>,
}

/// A handler and the components that come with it (supervised like the rest).
pub struct Plugged<H> {
    pub handler: Arc<H>,
    pub components: Vec<Arc<dyn Component>>,
    /// HTTP routes that come with it (the payment providers' notifications).
    pub routes: axum::Router,
}

impl<H> Plugged<H> {
    /// A handler without components of its own.
    pub fn handler(handler: H) -> anyhow::Result<Plugged<H>> {
        Ok(Plugged {
            handler: Arc::new(handler),
            components: Vec::new(),
            routes: axum::Router::new(),
        })
    }
}
