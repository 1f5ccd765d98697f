//! The agent channel over TLS, end to end on both backends: the service reaches a real
//! `tollgate-node` that serves its own self-signed certificate, accepts exactly the pinned one
//! (`agent_cert_sha256`) and provisions through it; with another pin every call fails, naming
//! the node and both fingerprints, and nothing reaches the node (docs/reliability.md H5).

use std::sync::Arc;
use std::time::Duration;

use tollgate::config::Env;
use tollgate::config::catalog::parse_catalog;
use tollgate::nodes::reconcile::ReconcileError;
use tollgate::on_db;
use tollgate::time::{SharedClock, SystemClock, Timestamp};
use tollgate_node::CertFingerprint;
use tollgate_node::testing::V2Ray;

use crate::common::nodes::{Stack, TestNode, assert_node_matches, catalog, catalog_text};
use crate::common::wait_for;
use crate::db_test;

const LIMIT: Duration = Duration::from_secs(20);

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn now() -> Timestamp {
    tollgate::time::Clock::now(&SystemClock)
}

db_test!(async fn the_service_provisions_through_an_agent_whose_pinned_self_signed_certificate_it_accepts(t) {
    let Some(v2ray) = V2Ray::or_skip("the_service_provisions_through_an_agent_whose_pinned_self_signed_certificate_it_accepts") else { return };
    let node = TestNode::start_tls(&v2ray, "nl-1").await;
    let pin = node.agent.cert_fingerprint().expect("the agent serves TLS");
    let catalog = catalog(&[&node], &[]);
    let def = &catalog.nodes[0];
    assert_eq!(def.agent_url.scheme(), "https");
    assert_eq!(def.agent_cert_sha256, Some(pin));

    let stack = Stack::new(&t.db, &catalog, clock(), |_| {});
    let running = stack.run_provisioning();
    stack.grant(1, 30, now()).await;
    stack.wake.wake();
    wait_for("the user to reach the node over TLS", LIMIT, || async {
        (node.users().await.len() == 1).then_some(())
    }).await;
    assert_node_matches(&t.db, &node).await;
    // Reconcile reads the node through the same pinned client.
    let report = stack.reconcile("nl-1").await;
    assert_eq!(report.listed, 1);
    running.stop().await;
});

db_test!(async fn a_wrong_pinned_fingerprint_fails_every_call_naming_the_node_and_both_fingerprints(t) {
    let Some(v2ray) = V2Ray::or_skip("a_wrong_pinned_fingerprint_fails_every_call_naming_the_node_and_both_fingerprints") else { return };
    let node = TestNode::start_tls(&v2ray, "nl-1").await;
    let presented = node.agent.cert_fingerprint().expect("the agent serves TLS");
    // Another certificate's fingerprint, written as hex without colons in lower case.
    let expected = CertFingerprint::of_der(b"the certificate the operator meant");
    let hex: String = expected.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let text = catalog_text(&[&node], &[]).replace(&presented.to_string(), &hex);
    assert!(text.contains(&hex), "the pin must be replaced");
    let env = Env::from_pairs([node.env_pair()]);
    let catalog = parse_catalog(&text, "test.toml", &env).expect("catalog");

    let stack = Stack::new(&t.db, &catalog, clock(), |_| {});
    let running = stack.run_provisioning();
    stack.grant(1, 30, now()).await;
    stack.wake.wake();
    let error: String = wait_for("the row to record the mismatch", LIMIT, || async {
        on_db!(&t.db, p => sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error FROM node_memberships WHERE node = 'nl-1'"
        ).fetch_one(p).await).unwrap()
    }).await;
    running.stop().await;
    for part in ["certificate_mismatch", "node nl-1", &presented.to_string(), &expected.to_string()] {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
    // The token and the user's key never reached the agent.
    assert!(node.users().await.is_empty());

    // Reconcile refuses the node with the same message, and changes nothing.
    let listed = stack
        .reconciler
        .reconcile_node(stack.registry.get("nl-1").unwrap(), None, &|| {})
        .await;
    let Err(ReconcileError::ListFailed(e)) = listed else { panic!("{listed:?}") };
    assert!(e.is_certificate_mismatch(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("node nl-1")
            && text.contains(&presented.to_string())
            && text.contains(&expected.to_string()),
        "{text}"
    );
});
