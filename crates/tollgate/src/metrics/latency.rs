//! The latency buckets every duration histogram uses, in a module of its own: the metric
//! families of the pipeline, the nodes and the jobs use it, and the registry that gathers
//! those families (`metrics`) sits above them.

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Buckets from 0.5 ms to ~16 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}
