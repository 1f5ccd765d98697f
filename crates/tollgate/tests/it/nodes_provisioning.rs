//! Provisioning against real `tollgate-node` agents and V2Ray cores, on both backends:
//! outages retried with backoff and converged without duplicates, the circuit breaker open
//! and closed again, the reissue order per node, row claims shared by replicas, and no lock
//! held while a node call hangs (docs/reliability.md C1, D4, E1, E4, E7, E8).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tollgate::access;
use tollgate::nodes::breaker::Breaker;
use tollgate::nodes::membership;
use tollgate::time::{SharedClock, SystemClock, Timestamp};
use tollgate::{on_db, on_tx};
use tollgate_node::testing::V2Ray;

use crate::common::nodes::{Stack, TestNode, assert_node_matches, backlog, catalog, metric};
use crate::common::wait_for;
use crate::db_test;

const LIMIT: Duration = Duration::from_secs(20);

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn now() -> Timestamp {
    tollgate::time::Clock::now(&SystemClock)
}

db_test!(async fn an_agent_outage_is_retried_with_backoff_and_converges_without_duplicates(t) {
    let Some(v2ray) = V2Ray::or_skip("an_agent_outage_is_retried_with_backoff_and_converges_without_duplicates") else { return };
    let mut a = TestNode::start(&v2ray, "a").await;
    let b = TestNode::start(&v2ray, "b").await;
    let stack = Stack::new(&t.db, &catalog(&[&a, &b], &[]), clock(), |c| {
        c.breaker.failure_threshold = 3;
        c.breaker.cooldown = Duration::from_millis(300);
    });
    a.agent.stop().await;
    for user in 1..=20 {
        stack.grant(user, 30, now()).await;
    }
    let running = stack.run_provisioning();
    stack.wake.wake();

    // b converges while a is down; a's rows keep their error and back off.
    wait_for("node b to hold every user", LIMIT, || async {
        (b.users().await.len() == 20).then_some(())
    }).await;
    wait_for("a's rows to record failures", LIMIT, || async {
        let n: i64 = on_db!(&t.db, p => sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships
             WHERE node = 'a' AND attempts > 0 AND last_error LIKE '%unavailable%'"
        ).fetch_one(p).await).unwrap();
        (n > 0).then_some(())
    }).await;
    // The breaker is open: a's calls stop except a probe per cooldown.
    wait_for("a's breaker to open", LIMIT, || async {
        (metric(&stack.metrics, "tollgate_nodes_breaker_open{node=\"a\"}") == 1.0).then_some(())
    }).await;
    // Calls of the batch that tripped it may still be finishing; the window starts when at
    // most a probe's row is claimed.
    wait_for("the tripping batch to finish", LIMIT, || async {
        let claimed: i64 = on_db!(&t.db, p => sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE node = 'a' AND claimed_by IS NOT NULL"
        ).fetch_one(p).await).unwrap();
        (claimed <= 1).then_some(())
    }).await;
    let retries = "tollgate_nodes_provision_attempts_total{node=\"a\",outcome=\"retry\"}";
    let before = metric(&stack.metrics, retries);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during = metric(&stack.metrics, retries) - before;
    // One probe per 300 ms cooldown, each claiming exactly one row.
    assert!(during <= 5.0, "an open breaker lets only probes through, saw {during} calls in 1.2 s");
    let next: Vec<(i32, i64)> = on_db!(&t.db, p => sqlx::query_as(
        "SELECT attempts, next_attempt_at FROM node_memberships WHERE node = 'a' AND attempts > 0"
    ).fetch_all(p).await).unwrap();
    assert!(next.iter().all(|(n, _)| *n < 20), "backoff keeps attempts low: {next:?}");

    // The agent returns: the probe succeeds, the breaker closes, everything converges.
    a.agent.start_again().await.unwrap();
    wait_for("node a to converge", LIMIT, || async {
        (backlog(&t.db).await == 0).then_some(())
    }).await;
    assert_eq!(metric(&stack.metrics, "tollgate_nodes_breaker_open{node=\"a\"}"), 0.0, "closed again");
    running.stop().await;
    assert_node_matches(&t.db, &a).await;
    assert_node_matches(&t.db, &b).await;
    assert_eq!(a.users().await.len(), 20);
    let errors: i64 = on_db!(&t.db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE last_error IS NOT NULL OR attempts > 0 OR claimed_by IS NOT NULL"
    ).fetch_one(p).await).unwrap();
    assert_eq!(errors, 0, "converged rows carry no error, attempt count or claim");
});

db_test!(async fn a_reissued_key_leaves_a_node_only_after_its_successor_is_there(t) {
    let Some(v2ray) = V2Ray::or_skip("a_reissued_key_leaves_a_node_only_after_its_successor_is_there") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let b = TestNode::start(&v2ray, "b").await;
    let stack = Stack::new(&t.db, &catalog(&[&a, &b], &[]), clock(), |_| {});
    let old = stack.grant(1, 30, now()).await;
    stack.provisioner.drain().await.unwrap();
    assert_eq!(a.emails().await, vec![old.node_email()]);
    assert_eq!(b.emails().await, vec![old.node_email()]);

    b.proxy.cut();
    let mut tx = t.db.begin().await.unwrap();
    let new = access::reissue(&mut tx, stack.enabled(), old.id, now()).await.unwrap();
    tx.commit().await.unwrap();
    stack.provisioner.drain().await.unwrap();
    // a: new key added, then the old one removed. b: unreachable, so the old key stays.
    assert_eq!(a.emails().await, vec![new.node_email()]);
    assert_eq!(b.emails().await, vec![old.node_email()], "no successor on b yet: the old key stays");

    b.proxy.restore();
    let node_b = stack.registry.get("b").unwrap().clone();
    let mut breaker = Breaker::new(Default::default());
    // The first pass that claims anything on b may only add the new key.
    let started = tokio::time::Instant::now();
    let first = loop {
        let r = stack.provisioner.pass(&node_b, 32, &mut breaker, &|| {}).await.unwrap();
        if r.claimed > 0 {
            break r;
        }
        assert!(started.elapsed() < LIMIT, "b's retry never came due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(first.claimed, 1, "only the successor is claimable: {first:?}");
    let mut both = b.emails().await;
    let mut expected = vec![old.node_email(), new.node_email()];
    both.sort();
    expected.sort();
    assert_eq!(both, expected, "new key added while the old one is still there");
    stack.provisioner.drain().await.unwrap();
    assert_eq!(b.emails().await, vec![new.node_email()], "then the old one leaves");
    assert_eq!(backlog(&t.db).await, 0);
});

db_test!(async fn replicas_share_the_work_and_apply_each_row_once(t) {
    let Some(v2ray) = V2Ray::or_skip("replicas_share_the_work_and_apply_each_row_once") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let cat = catalog(&[&a], &[]);
    let one = Stack::new(&t.db, &cat, clock(), |c| c.batch = 8);
    let two = Stack::new(&t.another_pool(), &cat, clock(), |c| c.batch = 8);
    for user in 1..=120 {
        one.grant(user, 30, now()).await;
    }
    let (r1, r2) = tokio::join!(one.provisioner.drain(), two.provisioner.drain());
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.claimed + r2.claimed, 120, "each row claimed by exactly one replica: {r1:?} {r2:?}");
    assert_eq!(r1.failed + r2.failed, 0);
    let added = |s: &Stack| metric(&s.metrics, "tollgate_nodes_provision_attempts_total{node=\"a\",outcome=\"added\"}");
    assert_eq!(added(&one) + added(&two), 120.0, "one agent call per row");
    assert_node_matches(&t.db, &a).await;
});

db_test!(async fn no_database_lock_is_held_while_a_node_call_hangs(t) {
    let Some(v2ray) = V2Ray::or_skip("no_database_lock_is_held_while_a_node_call_hangs") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), clock(), |_| {});
    for user in 1..=5 {
        stack.grant(user, 30, now()).await;
    }
    a.proxy.blackhole();
    let provisioner = stack.provisioner.clone();
    let hanging = tokio::spawn(async move { provisioner.drain().await });
    wait_for("the calls to be in flight", LIMIT, || async {
        let claimed: i64 = on_db!(&t.db, p => sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE claimed_by IS NOT NULL"
        ).fetch_one(p).await).unwrap();
        (claimed == 5).then_some(())
    }).await;
    // While the agent calls hang (2 s deadline), another writer updates the very same rows
    // at once: provisioning holds no transaction, write lock or row lock during the calls.
    let write = async {
        let mut tx = t.db.begin().await.unwrap();
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE node_memberships SET updated_at = updated_at WHERE node = 'a'"
        ).execute(c).await.map(|r| r.rows_affected())).unwrap();
        tx.commit().await.unwrap();
        n
    };
    let n = tokio::time::timeout(Duration::from_millis(1000), write)
        .await
        .expect("a writer got through while the node calls hung");
    assert_eq!(n, 5);
    assert!(!hanging.is_finished(), "the calls were still hanging");
    let report = hanging.await.unwrap().unwrap();
    assert_eq!(report.failed, 5, "deadline reached: {report:?}");
});

db_test!(async fn concurrent_claims_never_overlap_or_exceed_their_limit(t) {
    let nodes = tollgate::nodes::EnabledNodes::new(["a"]);
    for user in 1..=60 {
        crate::common::nodes::grant(&t.db, &nodes, user, 30, now()).await;
    }
    let claimers = (0..4).map(|i| {
        let db = t.another_pool();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let now = now();
                let got = membership::claim(&db, "a", &format!("w{i}"), 3, now, now.plus(Duration::from_secs(60)))
                    .await
                    .unwrap();
                assert!(got.len() <= 3, "a claim of 3 took {}", got.len());
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.vpn_uuid));
            }
        })
    });
    let all: Vec<uuid::Uuid> = futures::future::join_all(claimers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let distinct: BTreeSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (60, 60), "every row claimed exactly once");
});
