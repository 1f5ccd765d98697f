//! docs/product.md §5 Nodes, against real agents on both backends: an operator takes a node
//! out of service at runtime and puts it back (audited; every replica follows within seconds
//! through the reconcile loop; new keys skip a disabled node, feeds leave it), asks for a
//! reconcile now (a row the lease holder acts on), and the console's per-node state.

use std::sync::Arc;
use std::time::Duration;

use tollgate::access;
use tollgate::admin::audit::{self, Actor, AuditFilter};
use tollgate::nodes::Registry;
use tollgate::nodes::console::console_state;
use tollgate::nodes::reconcile;
use tollgate::nodes::switches::{self, SwitchError};
use tollgate::time::{SharedClock, SystemClock};
use tollgate_node::testing::V2Ray;

use crate::common::nodes::{Stack, TestNode, backlog, catalog, run, wanted};
use crate::common::wait_for;
use crate::db_test;

const LIMIT: Duration = Duration::from_secs(20);
const OPERATOR: i64 = 5;

db_test!(async fn a_node_disabled_at_runtime_gets_no_new_keys_until_enabled_and_reconciled_on_request(t) {
    let Some(v2ray) = V2Ray::or_skip("a_node_disabled_at_runtime_gets_no_new_keys") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let b = TestNode::start(&v2ray, "b").await;
    let clock: SharedClock = Arc::new(SystemClock);
    let stack = Stack::new(&t.db, &catalog(&[&a, &b], &[]), clock.clone(), |_| {});
    let db = &t.db;

    // Refused switches change nothing.
    let mut tx = db.begin().await.unwrap();
    let e = switches::set_enabled(&mut tx, &stack.registry, "c", false, Actor::Admin(OPERATOR), clock.now()).await.unwrap_err();
    assert!(matches!(e, SwitchError::UnknownNode { .. }) && e.to_string().contains("its nodes: a, b"), "{e}");
    let only_a_disabled = Registry::from_catalog(&catalog(&[&a], &["a"]), Duration::from_secs(2)).unwrap();
    let e = switches::set_enabled(&mut tx, &only_a_disabled, "a", true, Actor::Admin(OPERATOR), clock.now()).await.unwrap_err();
    assert!(matches!(e, SwitchError::DisabledInCatalog(_)), "{e}");
    tx.commit().await.unwrap();
    assert!(audit::latest(db, AuditFilter::By(OPERATOR), 10).await.unwrap().is_empty());

    // The operator disables a; the reconcile loop (running on every replica) applies it.
    let mut tx = db.begin().await.unwrap();
    assert!(switches::set_enabled(&mut tx, &stack.registry, "a", false, Actor::Admin(OPERATOR), clock.now()).await.unwrap(), "was enabled");
    tx.commit().await.unwrap();
    let reconcile_loop = run(vec![stack.reconciler.clone()]);
    let provisioning = stack.run_provisioning();
    wait_for("the registry to take a out of service", LIMIT, || async {
        (!stack.registry.is_enabled("a")).then_some(())
    })
    .await;
    assert!(stack.registry.is_enabled("b"));
    let state = console_state(db, &stack.registry).await.unwrap();
    assert_eq!((state[0].name.as_str(), state[0].in_catalog, state[0].enabled), ("a", true, false));
    assert!(state[1].enabled);

    // A new subscriber: wanted on b only, provisioned there, and a's share link is gone.
    let sub = stack.grant(1, 30, clock.now()).await;
    stack.wake.wake();
    assert_eq!(wanted(db, "a").await, Vec::<String>::new());
    assert_eq!(wanted(db, "b").await, vec![sub.node_email()]);
    let links: Vec<String> = access::share_links(&sub, &stack.registry).into_iter().map(|l| l.node).collect();
    assert_eq!(links, ["b"]);
    wait_for("b to hold the subscriber", LIMIT, || async { (b.users().await.len() == 1).then_some(()) }).await;
    assert!(a.users().await.is_empty());
    // b answers before provisioning records what it saw: the console counts recorded rows.
    wait_for("the backlog to drain", LIMIT, || async { (backlog(db).await == 0).then_some(()) }).await;
    let state = console_state(db, &stack.registry).await.unwrap();
    assert_eq!((state[0].users, state[1].users, state[1].backlog), (0, 1, 0), "{state:?}");

    // Enabled again, then reconciled at the operator's request: the subscriber gets a key on a.
    let mut tx = db.begin().await.unwrap();
    assert!(!switches::set_enabled(&mut tx, &stack.registry, "a", true, Actor::Admin(OPERATOR), clock.now()).await.unwrap(), "was disabled");
    reconcile::request(&mut tx, &stack.registry, "a", Actor::Admin(OPERATOR), clock.now()).await.unwrap();
    tx.commit().await.unwrap();
    let pending = console_state(db, &stack.registry).await.unwrap();
    assert!(pending[0].enabled, "the console shows the stored state at once");
    let requested = pending[0].last_reconcile.as_ref().and_then(|p| p.requested_at);
    assert!(requested.is_some(), "{pending:?}");
    let pass = wait_for("the requested pass of a", LIMIT, || async {
        let passes = reconcile::last_passes(db).await.ok()?;
        passes.into_iter().find(|p| p.node == "a" && p.finished_at.is_some() && p.requested_at.is_none())
    })
    .await;
    assert_eq!((pass.listed, pass.removed, pass.refused), (0, 0, 0), "{pass:?}");
    wait_for("a to hold the subscriber", LIMIT, || async {
        stack.wake.wake();
        (a.users().await.len() == 1).then_some(())
    })
    .await;
    wait_for("the backlog to drain", LIMIT, || async { (backlog(db).await == 0).then_some(()) }).await;
    let state = console_state(db, &stack.registry).await.unwrap();
    assert_eq!((state[0].enabled, state[0].users, state[0].backlog, state[0].breaker_open_since), (true, 1, 0, None), "{state:?}");
    assert!(state[0].last_reconcile.as_ref().unwrap().finished_at.is_some());

    // Every action has its audit row.
    let rows = audit::latest(db, AuditFilter::By(OPERATOR), 10).await.unwrap();
    let actions: Vec<(&str, Option<&str>, Option<&str>)> =
        rows.iter().rev().map(|r| (r.action.as_str(), r.before.as_deref(), r.after.as_deref())).collect();
    assert_eq!(actions, [
        ("node-disabled", Some("enabled"), Some("disabled")),
        ("node-enabled", Some("disabled"), Some("enabled")),
        ("node-reconcile", None, None),
    ]);
    assert!(rows.iter().all(|r| r.subject.as_deref() == Some("a")));
    provisioning.stop().await;
    reconcile_loop.stop().await;
});
