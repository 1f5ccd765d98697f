//! Reconcile against real agents, on both backends: drift repaired in both directions,
//! nothing done when the node's list cannot be read, expired users removed, and writes fenced
//! by the per-node lease (RELIABILITY E1, E4, E9, A5).

use std::sync::Arc;
use std::time::Duration;

use tollgate::lease;
use tollgate::metrics::Metrics;
use tollgate::nodes::NodeJobs;
use tollgate::nodes::reconcile::{ReconcileConfig, ReconcileError, Reconciler, lease_name};
use tollgate::store::Db;
use tollgate::supervisor::Component;
use tollgate::time::{ManualClock, SharedClock, Timestamp};
use tollgate_node::api::PutUserRequest;
use tollgate_node::testing::V2Ray;
use uuid::Uuid;

use crate::common::nodes::{Stack, TestNode, backlog, catalog, metric, run};
use crate::common::wait_for;
use crate::db_test;

const T0: i64 = 1_800_000_000_000;

fn manual() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(Timestamp::from_millis(T0));
    (c.clone(), Arc::new(c))
}

fn put(uuid: Uuid) -> PutUserRequest {
    PutUserRequest {
        uuid: uuid.to_string(),
        flow: String::new(),
        level: 0,
    }
}

/// Every column reconcile could touch, for before/after comparisons.
async fn snapshot(
    db: &Db,
) -> Vec<(
    String,
    Uuid,
    String,
    String,
    i32,
    Option<String>,
    i64,
    i64,
    i64,
)> {
    tollgate::on_db!(db, p => sqlx::query_as(
        "SELECT node, vpn_uuid, desired, observed, attempts, last_error, next_attempt_at, updated_at, uplink_bytes
         FROM node_memberships ORDER BY node, vpn_uuid"
    ).fetch_all(p).await)
    .unwrap()
}

db_test!(async fn hand_made_changes_on_a_node_are_repaired_both_ways(t) {
    let Some(v2ray) = V2Ray::or_skip("hand_made_changes_on_a_node_are_repaired_both_ways") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let (clock, shared) = manual();
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), shared, |_| {});
    let s1 = stack.grant(1, 30, clock.now_ts()).await;
    let s2 = stack.grant(2, 30, clock.now_ts()).await;
    stack.provisioner.drain().await.unwrap();
    clock.advance(Duration::from_secs(1));

    // By hand, on the node: a stranger's UUID added, user 1 deleted, and user 2's email
    // re-bound to a UUID we never issued.
    let agent = a.agent.client();
    agent.put_user("intruder@example", &put(Uuid::new_v4())).await.unwrap();
    agent.remove_user(&s1.node_email()).await.unwrap();
    agent.remove_user(&s2.node_email()).await.unwrap();
    let forged = Uuid::new_v4();
    agent.put_user(&s2.node_email(), &put(forged)).await.unwrap();

    let report = stack.reconcile("a").await;
    assert_eq!(report.listed, 2);
    assert_eq!(report.unknown_removed, 2, "the stranger and the forged binding: {report:?}");
    assert_eq!(report.restored, 2, "user 1 and user 2 are handed back to provisioning: {report:?}");
    assert_eq!(a.emails().await, Vec::<String>::new(), "the foreign entries are gone");
    stack.provisioner.drain().await.unwrap();
    let users = a.users().await;
    let mut got: Vec<(String, String)> = users.into_iter().map(|u| (u.email, u.uuid)).collect();
    got.sort();
    let mut expected = vec![
        (s1.node_email(), s1.vpn_uuid.to_string()),
        (s2.node_email(), s2.vpn_uuid.to_string()),
    ];
    expected.sort();
    assert_eq!(got, expected, "both users back, with the keys we issued");
    clock.advance(Duration::from_secs(1));
    let steady = stack.reconcile("a").await;
    assert_eq!((steady.restored, steady.to_remove, steady.unknown_removed, steady.aligned), (0, 0, 0, 0), "{steady:?}");
});

db_test!(async fn reconcile_does_nothing_when_the_list_call_fails(t) {
    let Some(v2ray) = V2Ray::or_skip("reconcile_does_nothing_when_the_list_call_fails") else { return };
    let mut a = TestNode::start(&v2ray, "a").await;
    let (clock, shared) = manual();
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), shared, |_| {});
    let s1 = stack.grant(1, 30, clock.now_ts()).await;
    stack.grant(2, 1, clock.now_ts()).await;
    stack.provisioner.drain().await.unwrap();
    // Drift in both directions, plus an expired user: all would be acted on normally.
    let agent = a.agent.client();
    agent.put_user("intruder@example", &put(Uuid::new_v4())).await.unwrap();
    agent.remove_user(&s1.node_email()).await.unwrap();
    clock.advance(Duration::from_secs(2 * 86_400));
    let node_before = a.emails().await;
    let rows_before = snapshot(&t.db).await;

    for fault in ["cut", "stopped"] {
        match fault {
            "cut" => a.proxy.cut(),
            _ => {
                a.proxy.restore();
                a.agent.stop().await;
            }
        }
        let node = stack.registry.get("a").unwrap();
        let r = stack.reconciler.reconcile_node(node, None, &|| {}).await;
        assert!(matches!(r, Err(ReconcileError::ListFailed(_))), "{fault}: {r:?}");
        assert_eq!(snapshot(&t.db).await, rows_before, "{fault}: no row touched");
    }
    a.agent.start_again().await.unwrap();
    assert_eq!(a.emails().await, node_before, "nothing removed or added on the node");

    // Readable again: all of it is repaired.
    let report = stack.reconcile("a").await;
    assert_eq!((report.unknown_removed, report.restored, report.aligned), (1, 1, 1), "{report:?}");
    stack.provisioner.drain().await.unwrap();
    assert_eq!(a.emails().await, vec![s1.node_email()], "user 1 restored, expired user 2 removed");
    assert_eq!(backlog(&t.db).await, 0);
});

db_test!(async fn a_lost_lease_fences_the_repairs(t) {
    let Some(v2ray) = V2Ray::or_skip("a_lost_lease_fences_the_repairs") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let (clock, shared) = manual();
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), shared, |_| {});
    let s1 = stack.grant(1, 30, clock.now_ts()).await;
    stack.provisioner.drain().await.unwrap();
    a.agent.client().remove_user(&s1.node_email()).await.unwrap();
    let held = lease::acquire(&t.db, &lease_name("a"), "me", Duration::from_secs(60), clock.now_ts())
        .await.unwrap().unwrap();
    clock.advance(Duration::from_secs(61));
    lease::acquire(&t.db, &lease_name("a"), "another", Duration::from_secs(60), clock.now_ts())
        .await.unwrap().unwrap();
    let before = snapshot(&t.db).await;
    let node = stack.registry.get("a").unwrap();
    let r = stack.reconciler.reconcile_node(node, Some(&held), &|| {}).await;
    assert!(matches!(r, Err(ReconcileError::LeaseLost)), "{r:?}");
    assert_eq!(snapshot(&t.db).await, before);
});

/// `ManualClock::now` without importing the trait everywhere.
trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        tollgate::time::Clock::now(self)
    }
}

db_test!(async fn the_component_repairs_on_its_own_one_replica_per_node_and_hands_the_lease_back(t) {
    let Some(v2ray) = V2Ray::or_skip("the_component_repairs_on_its_own_one_replica_per_node_and_hands_the_lease_back") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), Arc::new(tollgate::time::SystemClock), |_| {});
    let config = ReconcileConfig {
        interval: Duration::from_millis(200),
        first_run_after: Duration::from_millis(10),
        lease_ttl: Duration::from_secs(60),
        removal_concurrency: 4,
    };
    let metrics = [Metrics::new(), Metrics::new()];
    let replicas: Vec<Arc<Reconciler>> = ["one", "two"]
        .into_iter()
        .zip(&metrics)
        .map(|(holder, m)| {
            let jobs = NodeJobs { holder: holder.to_owned(), metrics: m.nodes.clone(), ..stack.jobs.clone() };
            Arc::new(Reconciler::new(jobs, config.clone()))
        })
        .collect();
    let running = run(replicas.iter().map(|r| r.clone() as Arc<dyn Component>).collect());
    a.agent.client().put_user("intruder@example", &put(Uuid::new_v4())).await.unwrap();
    wait_for("the intruder to be removed", Duration::from_secs(20), || async {
        a.users().await.is_empty().then_some(())
    }).await;
    let now = || tollgate::time::Clock::now(&tollgate::time::SystemClock);
    let holder = lease::current_holder(&t.db, &lease_name("a"), now()).await.unwrap().unwrap();
    // One replica holds the node and reconciles it, run after run; the other never does.
    let runs = |m: &Metrics| metric(m, "tollgate_nodes_reconcile_runs_total{node=\"a\"}");
    wait_for("a few runs", Duration::from_secs(20), || async {
        (runs(&metrics[0]) + runs(&metrics[1]) >= 3.0).then_some(())
    }).await;
    let (held, idle) = if holder.holder == "one" { (&metrics[0], &metrics[1]) } else { (&metrics[1], &metrics[0]) };
    assert!(runs(held) >= 3.0);
    assert_eq!(runs(idle), 0.0, "the other replica left the node alone");
    running.stop().await;
    assert!(lease::current_holder(&t.db, &lease_name("a"), now()).await.unwrap().is_none(), "released at stop");
});
