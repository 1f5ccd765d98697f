//! Agent benchmarks against a real V2Ray core (harness = false):
//!
//! `cargo bench -p tollgate-node --bench agent` (runs: `TOLLGATE_BENCH_RUNS`, default 3)
//!
//! Each run starts a fresh server core and an in-process agent and measures, through the REST
//! API: 1,000 user puts one at a time and with 16 in flight; a converge of 10,000 users from
//! empty; the same converge again (default mode: every user re-asserted on the core) and with
//! `skip_unchanged`; the re-apply of 10,000 users after a core restart. Medians are printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tollgate_node::api::{ConvergeRequest, ConvergeUser, PutUserRequest};
use tollgate_node::testing::{ServerCore, TestAgent, V2Ray};
use uuid::Uuid;

const PUTS: usize = 1_000;
const CONVERGE_USERS: usize = 10_000;

fn users(n: usize, prefix: &str) -> Vec<ConvergeUser> {
    (0..n)
        .map(|i| ConvergeUser {
            email: format!("{prefix}{i}@bench"),
            uuid: Uuid::new_v4().to_string(),
            flow: String::new(),
            level: 0,
        })
        .collect()
}

async fn puts(agent: &TestAgent, in_flight: usize) -> Duration {
    let requests: Vec<(String, PutUserRequest)> = (0..PUTS)
        .map(|i| {
            let body = PutUserRequest {
                uuid: Uuid::new_v4().to_string(),
                flow: String::new(),
                level: 0,
            };
            (format!("put{in_flight}-{i}@bench"), body)
        })
        .collect();
    let client = agent.client();
    let started = Instant::now();
    let results: Vec<_> = stream::iter(requests.iter())
        .map(|(email, body)| client.put_user(email, body))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(
        results.iter().all(|r| r.as_ref().is_ok_and(|p| p.created)),
        "a put failed"
    );
    elapsed
}

async fn converge(agent: &TestAgent, users: &[ConvergeUser], skip_unchanged: bool) -> Duration {
    let request = ConvergeRequest {
        users: users.to_vec(),
        skip_unchanged,
    };
    let started = Instant::now();
    agent.client().converge(&request).await.unwrap();
    started.elapsed()
}

/// Restarts the core and runs monitoring rounds until the 10,000 users are back.
async fn reapply_after_restart(core: &mut ServerCore, agent: &TestAgent) -> Duration {
    core.restart().await.unwrap();
    let started = Instant::now();
    loop {
        agent.check_core_now().await;
        let health = agent.client().health().await.unwrap();
        if health.core_in_sync && health.core_restarts_detected > 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "re-apply never finished: {health:?}"
        );
    }
}

#[derive(Default)]
struct Series {
    name: &'static str,
    runs: Vec<Duration>,
}

impl Series {
    fn median(&self) -> Duration {
        let mut sorted = self.runs.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let Some(v2ray) = V2Ray::or_skip("bench agent") else {
        return;
    };
    let runs: usize = std::env::var("TOLLGATE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut series: Vec<Series> = [
        "1,000 puts, 1 in flight",
        "1,000 puts, 16 in flight",
        "converge 10,000 from empty",
        "converge 10,000 again (re-assert all)",
        "converge 10,000 again (skip_unchanged)",
        "re-apply 10,000 after a core restart",
    ]
    .into_iter()
    .map(|name| Series {
        name,
        runs: Vec::new(),
    })
    .collect();

    for run in 1..=runs {
        let mut core = ServerCore::start(&v2ray).await.unwrap();
        let agent = TestAgent::start_with(&core, |c| c.check_interval = Duration::from_secs(3600))
            .await
            .unwrap();
        let timings = [puts(&agent, 1).await, puts(&agent, 16).await];
        // Converge replaces the 2,000 put users with 10,000 new ones.
        let set = users(CONVERGE_USERS, "c");
        let mut timings = timings.to_vec();
        agent
            .client()
            .converge(&ConvergeRequest {
                users: vec![],
                skip_unchanged: false,
            })
            .await
            .unwrap();
        timings.push(converge(&agent, &set, false).await);
        timings.push(converge(&agent, &set, false).await);
        timings.push(converge(&agent, &set, true).await);
        timings.push(reapply_after_restart(&mut core, &agent).await);
        for (series, elapsed) in series.iter_mut().zip(&timings) {
            series.runs.push(*elapsed);
        }
        println!(
            "run {run}: {}",
            timings
                .iter()
                .map(|d| format!("{:.3}s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join("  ")
        );
    }
    println!("\nmedians over {runs} runs:");
    for s in &series {
        let all = s
            .runs
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {:<42} {:>8.3} s   (runs: {all})",
            s.name,
            s.median().as_secs_f64()
        );
    }
}
