//! Startup to ready and idle memory of `tollgate run` on SQLite with migrations applied.
//!
//! `cargo bench -p tollgate --bench startup` — spawns the release binary N times, polls
//! `/readyz` every millisecond from process spawn until it answers 200, then reads the
//! resident set size after a second of idling. Prints the median, min and max.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn main() {
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/tollgate.db", dir.path().display());
    let catalog = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/tollgate.example.toml"
    );
    let env = [
        ("BOT_TOKEN", "4242:BENCH-token_0123456789abcdefghijklmn"),
        ("DATABASE_URL", db.as_str()),
        ("TOLLGATE_CONFIG", catalog),
        ("BIND_ADDR", "127.0.0.1"),
        ("RUST_LOG", "warn"),
    ];
    let status = Command::new(bin)
        .arg("migrate")
        .envs(env)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let mut ready_ms = Vec::new();
    let mut rss_kib = Vec::new();
    for _ in 0..RUNS {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let start = Instant::now();
        let mut child = Command::new(bin)
            .arg("run")
            .envs(env)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if readyz(port) == Some(200) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "not ready within 30 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        ready_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_secs(1));
        rss_kib.push(rss(child.id()));
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    report("startup to /readyz 200 (ms)", &mut ready_ms);
    let mut rss_mib: Vec<f64> = rss_kib.iter().map(|k| *k as f64 / 1024.0).collect();
    report("idle RSS after ready (MiB)", &mut rss_mib);
}

fn readyz(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).ok()?;
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn report(what: &str, samples: &mut [f64]) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let median = samples[samples.len() / 2];
    println!(
        "{what}: median {median:.1}, min {:.1}, max {:.1} over {} runs",
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    );
}
