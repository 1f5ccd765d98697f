//! The `tollgate-node` binary: refuses to start without a proper token, fails loudly on a
//! broken core configuration, serves, and exits 0 on SIGTERM without ever logging the token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::put;
use tollgate_node::testing::{AgentProcess, ServerCore, V2Ray};
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_tollgate-node");

fn run_without_core(envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = std::env::temp_dir();
    let output = Command::new(BINARY)
        .env_clear()
        .env("TOLLGATE_NODE_LISTEN", "127.0.0.1:0")
        .env(
            "TOLLGATE_NODE_STATE_FILE",
            dir.join(format!("tollgate-bin-{}.db", Uuid::new_v4().simple())),
        )
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_binary_refuses_to_start_without_a_token() {
    let (code, stderr) = run_without_core(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no token: set TOLLGATE_NODE_TOKEN or --token-file"),
        "{stderr}"
    );
    assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
}

#[test]
fn the_binary_refuses_a_short_token_without_echoing_it() {
    let (code, stderr) = run_without_core(&[("TOLLGATE_NODE_TOKEN", "correct-horse-battery")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("TOLLGATE_NODE_TOKEN: the token is 21 characters long; use at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains("correct-horse-battery"), "{stderr}");
}

#[test]
fn bad_flags_name_themselves() {
    let output = Command::new(BINARY)
        .args(["--dialect", "sing-box"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("--dialect") && stderr.contains("auto, xray, v2ray"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_binary_serves_and_stops_cleanly_on_sigterm() {
    let Some(v2ray) = V2Ray::or_skip("the_binary_serves_and_stops_cleanly_on_sigterm") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let mut agent = AgentProcess::spawn(Path::new(BINARY), &core, &[])
        .await
        .unwrap();
    let created = agent
        .client()
        .put_user("erin@test", &put(&Uuid::new_v4()))
        .await
        .unwrap();
    assert!(created.created);
    assert_eq!(agent.client().health().await.unwrap().users, 1);

    let status = agent.terminate(Duration::from_secs(15)).await.unwrap();
    let log = agent.log();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        log.contains("shutting down") && log.contains("signal=\"SIGTERM\""),
        "{log}"
    );
    assert!(log.contains("tollgate-node stopped"), "{log}");
    assert!(
        !log.contains(agent.token().expose()),
        "the token leaked into the log"
    );
}

#[tokio::test]
async fn a_wrong_tag_makes_the_binary_exit_with_the_fix() {
    let Some(v2ray) = V2Ray::or_skip("a_wrong_tag_makes_the_binary_exit") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let err = AgentProcess::spawn(
        Path::new(BINARY),
        &core,
        &[("TOLLGATE_NODE_INBOUND_TAG", "nope")],
    )
    .await
    .err()
    .expect("the agent must not start");
    let text = err.to_string();
    assert!(text.contains("exited (exit status: 1)"), "{text}");
    assert!(
        text.contains("handler not found: nope") && text.contains("--inbound-tag"),
        "{text}"
    );
}
