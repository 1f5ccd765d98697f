//! Metrics of jobs: iterations by outcome, items, iteration duration, and when each job last
//! succeeded (docs/reliability.md A2: a job that keeps failing, or never runs, shows as such in
//! `/metrics` and `/readyz` even while its runner is alive and beating). Labels are job names
//! and the closed set of outcomes, so the series are bounded.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::outcome::Outcome;
use crate::time::Timestamp;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobName {
    pub job: &'static str,
}

/// What `/readyz` shows of a job in this process: its last iteration's outcome and end, and
/// the end of its last successful one (`None`: not since the process started). Instants are
/// Unix milliseconds (UTC) of the service's clock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JobSeen {
    pub last_outcome: &'static str,
    pub last_end_at_ms: i64,
    pub last_success_at_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct JobMetrics {
    pub iterations: Family<JobLabels, Counter>,
    pub items: Family<JobName, Counter>,
    pub duration: Family<JobName, Histogram, fn() -> Histogram>,
    pub last_success: Family<JobName, Gauge<f64, AtomicU64>>,
    seen: Arc<RwLock<BTreeMap<&'static str, JobSeen>>>,
}

impl JobMetrics {
    pub fn register(registry: &mut Registry) -> JobMetrics {
        let m = JobMetrics {
            iterations: Family::default(),
            items: Family::default(),
            duration: Family::new_with_constructor(crate::metrics::latency::latency_histogram),
            last_success: Family::default(),
            seen: Arc::default(),
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
        registry.register(
            "job_last_success_timestamp_seconds",
            "Unix time at which the job's last successful iteration in this process ended",
            m.last_success.clone(),
        );
        m
    }

    /// Notes the end of an iteration of `job` with `outcome` at `at`. The success gauge is set
    /// from this record when `/metrics` is read ([`JobMetrics::publish`]): one state, not two.
    pub fn ended(&self, job: &'static str, outcome: Outcome, at: Timestamp) {
        if let Ok(mut seen) = self.seen.write() {
            let last_success_at_ms = match seen.get(job) {
                _ if outcome == Outcome::Ok => Some(at.as_millis()),
                Some(before) => before.last_success_at_ms,
                None => None,
            };
            seen.insert(
                job,
                JobSeen {
                    last_outcome: outcome.as_str(),
                    last_end_at_ms: at.as_millis(),
                    last_success_at_ms,
                },
            );
        }
    }

    /// Sets `job_last_success_timestamp_seconds` from what [`JobMetrics::ended`] recorded.
    pub fn publish(&self) {
        for (job, seen) in self.seen() {
            if let Some(ms) = seen.last_success_at_ms {
                self.last_success
                    .get_or_create(&JobName { job })
                    .set(ms as f64 / 1000.0);
            }
        }
    }

    /// Every job that ended an iteration in this process, by name.
    pub fn seen(&self) -> BTreeMap<&'static str, JobSeen> {
        self.seen.read().map(|s| s.clone()).unwrap_or_default()
    }
}
