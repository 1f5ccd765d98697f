//! What every service benchmark needs: a fresh database per run, a free port, the service's
//! RSS, percentiles. Included by each bench with `#[path]` (benches are separate crates).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use sqlx::{Connection, Executor, PgConnection};

/// A fresh database URL (`sqlite` in a temp dir, or a new PostgreSQL database named after
/// `name` and this process); the guard keeps the temp dir alive.
pub async fn database(
    backend: &str,
    pg_admin: &str,
    name: &str,
) -> (String, Option<tempfile::TempDir>) {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        return (url, Some(dir));
    }
    let name = format!("tollgate_{name}_{}", std::process::id());
    let mut c = PgConnection::connect(pg_admin).await.unwrap();
    c.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .await
    .unwrap();
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap();
    let mut u = url::Url::parse(pg_admin).unwrap();
    u.set_path(&format!("/{name}"));
    (u.to_string(), None)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `VmRSS` of process `pid` in MiB (0 when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// `VmHWM`, the peak resident set of process `pid`, in MiB (0 when it cannot be read).
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

pub fn median(samples: &mut [f64]) -> f64 {
    percentile(samples, 0.5)
}

/// The `tollgate` binary a bench runs: the one built with it, or `BENCH_TOLLGATE_BIN`, so that
/// two builds (a setting before and after) are measured in one run, alternating.
pub fn tollgate_bin() -> String {
    std::env::var("BENCH_TOLLGATE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tollgate").to_owned())
}
