//! The `telegram-emulator` binary: `--help`, the URLs it prints, and a clean exit on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_telegram-emulator");

#[test]
fn help_lists_the_options() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--listen",
        "--token",
        "--no-rate-limits",
        "--webhook-timeout-secs",
        "--provider-token",
    ] {
        assert!(
            help.contains(option),
            "{option} missing from --help:\n{help}"
        );
    }
}

#[tokio::test]
async fn serves_prints_urls_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(5)
            .collect()
    })
    .await
    .unwrap();
    let web = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("Web chat:"))
        .expect("web page URL printed")
        .trim()
        .to_owned();
    assert!(lines.iter().any(|l| l.contains("Bot API:")), "{lines:?}");
    let control = telegram_emulator::ControlClient::new(web.trim_end_matches('/'));
    control.health().await.unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
