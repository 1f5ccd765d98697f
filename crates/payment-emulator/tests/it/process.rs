//! The `payment-emulator` binary: prints its URLs, serves, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_payment-emulator"))
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("text");
    let addr = first
        .strip_prefix("payment-emulator listening on ")
        .expect("listening line")
        .to_owned();
    let me: Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/getMe"))
        .header(
            "Crypto-Pay-API-Token",
            payment_emulator::config::DEFAULT_CRYPTOPAY_TOKEN,
        )
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(me["ok"], true);
    assert_eq!(
        me["result"]["payment_processing_bot_username"],
        "CryptoTestnetBot"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}
