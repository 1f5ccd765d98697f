//! TLS on the REST API: the operator's certificate, or the agent's own self-signed one that
//! a client pins by its SHA-256 fingerprint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::put;
use tollgate_node::testing::{ServerCore, TestAgent, V2Ray, free_port};
use tollgate_node::{CertFingerprint, NodeClient, NodeError, StartError, TlsFiles, TlsSetting};
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_tollgate-node");

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
    let agent = TestAgent::start_with(&core, |c| c.tls = TlsSetting::Files(files.clone()))
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
        TestAgent::start_with(&core, |c| c.tls = TlsSetting::Files(missing)).await
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
        TestAgent::start_with(&core, |c| c.tls = TlsSetting::Files(swapped)).await
    else {
        panic!("started with swapped files")
    };
    assert!(message.contains("--tls"), "{message}");
    std::fs::remove_dir_all(dir).ok();
}

fn self_signed_setting(c: &mut tollgate_node::AgentConfig) {
    let dir = c.state_file.parent().unwrap().to_path_buf();
    c.tls = TlsSetting::SelfSigned { dir };
}

fn fingerprint_of_pem(path: &Path) -> CertFingerprint {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(path).unwrap();
    CertFingerprint::of_der(der.as_ref())
}

#[tokio::test]
async fn without_a_certificate_the_agent_creates_one_keeps_it_and_serves_it_to_a_pinning_client() {
    let Some(v2ray) = V2Ray::or_skip(
        "without_a_certificate_the_agent_creates_one_keeps_it_and_serves_it_to_a_pinning_client",
    ) else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let mut agent = TestAgent::start_with(&core, self_signed_setting)
        .await
        .unwrap();
    assert!(
        agent.base_url().starts_with("https://"),
        "{}",
        agent.base_url()
    );

    // The pair is in the state directory, the key private to the agent's user.
    let cert = agent.state_dir().join("tls-cert.pem");
    let key = agent.state_dir().join("tls-key.pem");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    }
    let fingerprint = agent.cert_fingerprint().unwrap();
    assert_eq!(fingerprint, fingerprint_of_pem(&cert));

    // The pinning client works; a client that trusts only public roots does not.
    assert!(
        agent
            .client()
            .put_user("pinned@test", &put(&Uuid::new_v4()))
            .await
            .unwrap()
            .created
    );
    let unpinned = NodeClient::new(&agent.base_url(), agent.token().clone()).unwrap();
    assert!(unpinned.health().await.is_err());

    // A restart serves the same certificate: the catalog's pin stays right.
    agent.start_again().await.unwrap();
    assert_eq!(agent.cert_fingerprint(), Some(fingerprint));
    assert_eq!(agent.client().list_users().await.unwrap().users.len(), 1);

    // One file without the other is refused, naming both files.
    agent.stop().await;
    std::fs::remove_file(&cert).unwrap();
    let Err(StartError::Tls(message)) = agent.start_again().await else {
        panic!("started with a key and no certificate")
    };
    assert!(
        message.contains("tls-key.pem exists but") && message.contains("tls-cert.pem does not"),
        "{message}"
    );
}

#[tokio::test]
async fn a_pinning_client_refuses_another_certificate_naming_the_node_and_both_fingerprints() {
    let Some(v2ray) = V2Ray::or_skip(
        "a_pinning_client_refuses_another_certificate_naming_the_node_and_both_fingerprints",
    ) else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start_with(&core, self_signed_setting)
        .await
        .unwrap();
    let presented = agent.cert_fingerprint().unwrap();
    let wrong = CertFingerprint::of_der(b"some other certificate");
    let client = NodeClient::builder(&agent.base_url(), agent.token().clone())
        .node_name("nl-1")
        .pin_certificate(wrong)
        .build()
        .unwrap();
    let err = client
        .put_user("never@test", &put(&Uuid::new_v4()))
        .await
        .unwrap_err();
    let NodeError::Other { error, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(error, "certificate_mismatch", "{err}");
    assert!(!err.is_retryable());
    assert!(message.contains("node nl-1"), "{message}");
    assert!(
        message.contains(&presented.to_string()) && message.contains(&wrong.to_string()),
        "{message}"
    );
    // Nothing reached the agent.
    assert!(agent.client().list_users().await.unwrap().users.is_empty());

    // A pin needs https, and excludes extra roots.
    let http = agent.base_url().replace("https://", "http://");
    let e = NodeClient::builder(&http, agent.token().clone())
        .pin_certificate(presented)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("needs https://"), "{e}");
}

/// Waits until the log file contains `needle`; returns the whole log.
async fn wait_for_log(path: &Path, child: &mut std::process::Child, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("tollgate-node exited ({status}); log:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} within 15 s; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_prints_the_fingerprint_at_start_and_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let run_fingerprint = || {
        Command::new(BINARY)
            .env_clear()
            .args(["fingerprint", "--state-file"])
            .arg(&state)
            .output()
            .unwrap()
    };
    // Before the first start there is nothing to print, and the command says why.
    let before = run_fingerprint();
    assert_eq!(before.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&before.stderr);
    assert!(stderr.contains("start the agent once"), "{stderr}");

    // No core is needed to serve: it may start after the agent.
    let port = free_port().unwrap();
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let token = tollgate_node::Token::generate();
    let mut child = Command::new(BINARY)
        .env_clear()
        .env("TOLLGATE_NODE_TOKEN", token.expose())
        .env("TOLLGATE_NODE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TOLLGATE_NODE_CORE_API",
            format!("127.0.0.1:{}", free_port().unwrap()),
        )
        .env("TOLLGATE_NODE_STATE_FILE", &state)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let text = wait_for_log(&log_path, &mut child, "agent_cert_sha256 = \"").await;
    let printed = text
        .split("agent_cert_sha256 = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let fingerprint = CertFingerprint::parse(printed).unwrap();
    assert_eq!(
        fingerprint,
        fingerprint_of_pem(&dir.path().join("tls-cert.pem"))
    );
    assert_eq!(printed, fingerprint.to_string(), "printed as AB:CD:…");

    // What it prints is what it serves.
    let client = NodeClient::builder(&format!("https://127.0.0.1:{port}"), token)
        .pin_certificate(fingerprint)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.healthz().await.is_err() {
        assert!(Instant::now() < deadline, "no HTTPS answer within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // And `tollgate-node fingerprint` prints the same line again, on stdout alone.
    let again = run_fingerprint();
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("agent_cert_sha256 = \"{fingerprint}\"\n")
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
