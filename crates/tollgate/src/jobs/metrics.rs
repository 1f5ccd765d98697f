//! Metrics of jobs: iterations by outcome, items, iteration duration. Labels are job names
//! and the closed set of outcomes, so the series are bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobName {
    pub job: &'static str,
}

#[derive(Clone, Debug)]
pub struct JobMetrics {
    pub iterations: Family<JobLabels, Counter>,
    pub items: Family<JobName, Counter>,
    pub duration: Family<JobName, Histogram, fn() -> Histogram>,
}

impl JobMetrics {
    pub fn register(registry: &mut Registry) -> JobMetrics {
        let m = JobMetrics {
            iterations: Family::default(),
            items: Family::default(),
            duration: Family::new_with_constructor(crate::metrics::latency_histogram),
        };
        registry.register(
            "job_iterations",
            "Job iterations by outcome (ok, error, panic, deadline, flag_off, not_leader)",
            m.iterations.clone(),
        );
        registry.register(
            "job_items",
            "Items handled by job iterations",
            m.items.clone(),
        );
        registry.register(
            "job_iteration_seconds",
            "Duration of job iterations",
            m.duration.clone(),
        );
        m
    }
}
