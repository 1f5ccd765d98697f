//! Prometheus metrics.
//!
//! One registry per process, built at startup; each component registers its own families
//! and keeps cheap clonable handles. `/metrics` renders the registry in the OpenMetrics text
//! format. Label values come from closed sets (route templates, not raw paths), so the
//! number of series stays bounded (docs/reliability.md D2).

pub mod latency;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: &'static str,
}

/// HTTP server metrics.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    pub requests: Family<HttpLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub in_flight: Gauge,
}

/// Database pool and schema metrics, refreshed on every scrape.
#[derive(Clone, Debug)]
pub struct DbMetrics {
    pub pool_connections: Family<PoolLabels, Gauge>,
    pub pool_max: Gauge,
    pub ready: Gauge,
}

use latency::latency_histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: String,
}

/// Supervised components, refreshed from the supervisor on every scrape.
#[derive(Clone, Debug)]
pub struct ComponentMetrics {
    pub restarts: Family<ComponentLabels, Gauge>,
    pub heartbeat_age_seconds: Family<ComponentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub running: Family<ComponentLabels, Gauge>,
}

/// Every metric family of the process.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Arc<Registry>,
    pub http: HttpMetrics,
    pub db: DbMetrics,
    pub components: ComponentMetrics,
    pub telegram: crate::telegram::metrics::PipelineMetrics,
    pub nodes: crate::nodes::metrics::NodeMetrics,
    pub jobs: crate::jobs::metrics::JobMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let http = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            http.duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served now",
            http.in_flight.clone(),
        );
        let db = DbMetrics {
            pool_connections: Family::default(),
            pool_max: Gauge::default(),
            ready: Gauge::default(),
        };
        registry.register(
            "db_pool_connections",
            "Database connections by state (idle, in_use)",
            db.pool_connections.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "Configured size of the database pool",
            db.pool_max.clone(),
        );
        registry.register(
            "ready",
            "1 when the last readiness check passed, else 0",
            db.ready.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Version of this binary", build);
        let components = ComponentMetrics {
            restarts: Family::default(),
            heartbeat_age_seconds: Family::default(),
            running: Family::default(),
        };
        registry.register(
            "component_restarts",
            "Times the supervisor restarted a component (wedged, ended or panicked)",
            components.restarts.clone(),
        );
        registry.register(
            "component_heartbeat_age_seconds",
            "Time since a component's last heartbeat",
            components.heartbeat_age_seconds.clone(),
        );
        registry.register(
            "component_running",
            "1 while a component runs",
            components.running.clone(),
        );
        let telegram = crate::telegram::metrics::PipelineMetrics::register(&mut registry);
        let nodes = crate::nodes::metrics::NodeMetrics::register(&mut registry);
        let jobs = crate::jobs::metrics::JobMetrics::register(&mut registry);
        Metrics {
            registry: Arc::new(registry),
            http,
            db,
            components,
            telegram,
            nodes,
            jobs,
        }
    }

    /// Renders the registry as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}
