//! Optional TLS on the REST API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use support::put;
use tollgate_node::testing::{ServerCore, TestAgent, V2Ray};
use tollgate_node::{StartError, TlsFiles};
use uuid::Uuid;

fn self_signed(dir: &std::path::Path) -> TlsFiles {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    TlsFiles { cert, key }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-tls-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_api_is_served_over_tls_when_configured() {
    let Some(v2ray) = V2Ray::or_skip("the_api_is_served_over_tls_when_configured") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let dir = temp_dir();
    let files = self_signed(&dir);
    let agent = TestAgent::start_with(&core, |c| c.tls = Some(files.clone()))
        .await
        .unwrap();
    assert!(
        agent.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        agent.base_url()
    );

    // The typed client trusts the node's certificate and works as usual.
    assert!(
        agent
            .client()
            .put_user("tls@test", &put(&Uuid::new_v4()))
            .await
            .unwrap()
            .created
    );

    // Plain HTTP on the TLS port gets nothing useful; an untrusting client fails the handshake.
    let plain = agent.base_url().replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
    assert!(
        reqwest::get(format!("{}/healthz", agent.base_url()))
            .await
            .is_err()
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn bad_tls_files_are_named_at_start() {
    let Some(v2ray) = V2Ray::or_skip("bad_tls_files_are_named_at_start") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let dir = temp_dir();
    let files = self_signed(&dir);
    let missing = TlsFiles {
        cert: dir.join("nope.pem"),
        key: files.key.clone(),
    };
    let Err(StartError::Tls(message)) =
        TestAgent::start_with(&core, |c| c.tls = Some(missing)).await
    else {
        panic!("started with a missing certificate")
    };
    assert!(
        message.contains("nope.pem (--tls-cert / TOLLGATE_NODE_TLS_CERT)"),
        "{message}"
    );

    let swapped = TlsFiles {
        cert: files.key.clone(),
        key: files.cert.clone(),
    };
    let Err(StartError::Tls(message)) =
        TestAgent::start_with(&core, |c| c.tls = Some(swapped)).await
    else {
        panic!("started with swapped files")
    };
    assert!(message.contains("--tls"), "{message}");
    std::fs::remove_dir_all(dir).ok();
}
