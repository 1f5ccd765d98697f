//! Reconcile against real agents, on both backends: drift repaired in both directions,
//! nothing done when the node's list cannot be read, expired users removed, writes fenced
//! by the per-node lease, and removals over the limit held back until an operator allows
//! them (docs/reliability.md E1, E4, E9, A5).

use std::sync::Arc;
use std::time::Duration;

use tollgate::lease;
use tollgate::metrics::Metrics;
use tollgate::nodes::NodeJobs;
use tollgate::nodes::reconcile::{
    ReconcileConfig, ReconcileError, Reconciler, Removals, lease_name,
};
use tollgate::store::Db;
use tollgate::supervisor::Component;
use tollgate::time::{ManualClock, SharedClock, Timestamp};
use tollgate_node::api::PutUserRequest;
use tollgate_node::testing::V2Ray;
use uuid::Uuid;

use crate::common::nodes::{
    Stack, TestNode, assert_node_matches, backlog, catalog, catalog_text, metric, run,
};
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
        ..ReconcileConfig::every(Duration::from_secs(60))
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

/// Log lines written while a future runs, for asserting what an operator would read.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> LogBuf {
        self.clone()
    }
}

impl LogBuf {
    fn dispatch(&self) -> tracing::Dispatch {
        crate::common::tracing_always_interested();
        tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(self.clone())
                .with_ansi(false)
                .finish(),
        )
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Puts `n` users the database has never heard of on the node, straight through its agent.
async fn strangers(node: &TestNode, n: usize) -> Vec<String> {
    use futures::StreamExt;
    let emails: Vec<String> = (0..n).map(|i| format!("stranger-{i:04}@example")).collect();
    let agent = node.agent.client();
    futures::stream::iter(emails.clone())
        .map(|email| {
            let agent = agent.clone();
            async move { agent.put_user(&email, &put(Uuid::new_v4())).await.unwrap() }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(node.users().await.len(), n);
    emails
}

/// Admin alerts about refused removals queued in the outbox.
async fn refusal_alerts(db: &Db) -> i64 {
    tollgate::on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE 'alert:cond:node-removals-refused:%'"
    ).fetch_one(p).await)
    .unwrap()
}

const ADMIN: i64 = 777;

fn alerting(stack: &Stack) -> Reconciler {
    Reconciler::new(
        stack.jobs.clone(),
        ReconcileConfig::every(Duration::from_secs(3600)),
    )
    .with_alerts(tollgate::alerts::Alerts::new(vec![ADMIN]))
}

db_test!(async fn a_database_that_entitles_none_of_a_nodes_1000_users_removes_nobody_and_alerts_once(t) {
    use tracing::instrument::WithSubscriber;
    let Some(v2ray) = V2Ray::or_skip("a_database_that_entitles_none_of_a_nodes_1000_users_removes_nobody_and_alerts_once") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let (clock, shared) = manual();
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), shared.clone(), |_| {});
    // The node serves 1,000 users; this database knows none of them (a wrong DATABASE_URL).
    // It has one subscriber of its own, who subscribed while the node was disabled: only
    // reconcile's alignment wants the key there.
    strangers(&a, 1000).await;
    let while_disabled = Stack::new(&t.db, &catalog(&[&a], &["a"]), shared, |_| {});
    let newcomer = while_disabled.grant(1, 30, clock.now_ts()).await;
    assert_eq!(backlog(&t.db).await, 0, "no row on the disabled node");
    let reconciler = alerting(&stack);
    let node = stack.registry.get("a").unwrap();
    let log = LogBuf::default();
    for pass in 0..3 {
        clock.advance(Duration::from_secs(300));
        let report = reconciler.reconcile_node(node, None, &|| {}).with_subscriber(log.dispatch()).await.unwrap();
        let refused = report.refused.clone().unwrap_or_else(|| panic!("pass {pass}: {report:?}"));
        assert_eq!((refused.total(), refused.unknown, refused.unwanted, refused.node_users), (1000, 1000, 0, 1000), "pass {pass}");
        assert_eq!((report.unknown_removed, report.to_remove), (0, 0), "pass {pass}: {report:?}");
        assert_eq!(report.aligned, u64::from(pass == 0), "pass {pass}: the newcomer is wanted at once: {report:?}");
        assert_eq!(a.users().await.len(), 1000, "pass {pass}: nobody removed");
        assert_eq!(
            metric(&stack.metrics, "tollgate_nodes_reconcile_removals_refused{node=\"a\"}"),
            1000.0,
            "pass {pass}"
        );
    }
    assert_eq!(refusal_alerts(&t.db).await, 1, "one alert for the incident, not one per pass");
    let alert: String = tollgate::on_db!(&t.db, p => sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE dedupe_key LIKE 'alert:cond:node-removals-refused:a:%'"
    ).fetch_one(p).await).unwrap();
    let alert: serde_json::Value = serde_json::from_str(&alert).unwrap();
    assert!(alert["text"].as_str().unwrap().starts_with("⚠️ Node a: reconcile refused to remove 1000 of its 1000 users"), "{alert}");
    let passes = tollgate::nodes::reconcile::last_passes(&t.db).await.unwrap();
    assert_eq!((passes.len(), passes[0].listed, passes[0].refused, passes[0].removed), (1, 1000, 1000, 0), "{passes:?}");
    let text = log.text();
    assert!(text.contains("refused to remove 1000 of the node's 1000 users"), "{text}");
    assert!(text.contains("run `tollgate reconcile --node a --allow-removals`"), "{text}");
    assert!(text.contains("stranger-0000@example"), "the log names some of them: {text}");

    // Additions are never limited: the newcomer was made wanted on the node all the same.
    stack.provisioner.drain().await.unwrap();
    assert!(a.emails().await.contains(&newcomer.node_email()));
    assert_eq!(a.users().await.len(), 1001);

    // The operator's explicit word: one pass without the limit.
    let report = reconciler
        .reconcile_node_with(node, None, &|| {}, Removals::Allowed)
        .await
        .unwrap();
    assert_eq!((report.unknown_removed, report.refused.clone()), (1000, None), "{report:?}");
    assert_eq!(a.emails().await, vec![newcomer.node_email()]);
    assert_eq!(metric(&stack.metrics, "tollgate_nodes_reconcile_removals_refused{node=\"a\"}"), 0.0);
    // The condition is over: one "resolved" message, and the console sees the pass.
    assert_eq!(refusal_alerts(&t.db).await, 2);
    let resolved: i64 = tollgate::on_db!(&t.db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE 'alert:cond:node-removals-refused:a:%:resolved:777'"
    ).fetch_one(p).await).unwrap();
    assert_eq!(resolved, 1);
    let passes = tollgate::nodes::reconcile::last_passes(&t.db).await.unwrap();
    assert_eq!((passes[0].node.as_str(), passes[0].removed, passes[0].refused), ("a", 1000, 0), "{passes:?}");
    assert_eq!(passes[0].finished_at, Some(clock.now_ts()));
});

db_test!(async fn removals_within_the_limit_are_made_without_an_operator(t) {
    let Some(v2ray) = V2Ray::or_skip("removals_within_the_limit_are_made_without_an_operator") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let (clock, shared) = manual();
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), shared, |_| {});
    let reconciler = alerting(&stack);
    let node = stack.registry.get("a").unwrap();
    // Ten strangers are within the absolute limit, however large a share of the node.
    strangers(&a, 10).await;
    let r = reconciler.reconcile_node(node, None, &|| {}).await.unwrap();
    assert_eq!((r.unknown_removed, r.refused.clone()), (10, None), "{r:?}");
    assert!(a.users().await.is_empty());
    // Eleven are over both limits on a node of eleven.
    strangers(&a, 11).await;
    let r = reconciler.reconcile_node(node, None, &|| {}).await.unwrap();
    assert_eq!((r.unknown_removed, r.refused.as_ref().map(|x| x.total())), (0, Some(11)), "{r:?}");
    assert_eq!(a.users().await.len(), 11);
    // Eleven of 111 users are within the 10 % share.
    for user in 1..=100 {
        stack.grant(user, 30, clock.now_ts()).await;
    }
    stack.provisioner.drain().await.unwrap();
    clock.advance(Duration::from_secs(1));
    let r = reconciler.reconcile_node(node, None, &|| {}).await.unwrap();
    assert_eq!((r.unknown_removed, r.refused.clone()), (11, None), "{r:?}");
    assert_eq!(a.users().await.len(), 100);
    assert_node_matches(&t.db, &a).await;
    assert_eq!(metric(&stack.metrics, "tollgate_nodes_reconcile_removals_refused{node=\"a\"}"), 0.0);
});

db_test!(async fn keys_the_database_no_longer_wants_count_against_the_limit_too(t) {
    let Some(v2ray) = V2Ray::or_skip("keys_the_database_no_longer_wants_count_against_the_limit_too") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let (clock, shared) = manual();
    let stack = Stack::new(&t.db, &catalog(&[&a], &[]), shared, |_| {});
    // An old backup: twelve subscriptions that, as far as it knows, ended yesterday.
    for user in 1..=12 {
        stack.grant(user, 1, clock.now_ts()).await;
    }
    stack.provisioner.drain().await.unwrap();
    clock.advance(Duration::from_secs(2 * 86_400));
    let before = snapshot(&t.db).await;
    let reconciler = alerting(&stack);
    let node = stack.registry.get("a").unwrap();
    let r = reconciler.reconcile_node(node, None, &|| {}).await.unwrap();
    let refused = r.refused.clone().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!((refused.unwanted, refused.unknown, r.aligned, r.to_remove), (12, 0, 0, 0), "{r:?}");
    assert_eq!(snapshot(&t.db).await, before, "no row made unwanted");
    stack.provisioner.drain().await.unwrap();
    assert_eq!(a.users().await.len(), 12, "nobody removed");
    assert_eq!(refusal_alerts(&t.db).await, 1);

    let r = reconciler.reconcile_node_with(node, None, &|| {}, Removals::Allowed).await.unwrap();
    assert_eq!((r.aligned, r.refused.clone()), (12, None), "{r:?}");
    stack.provisioner.drain().await.unwrap();
    assert!(a.users().await.is_empty(), "removed once allowed");
});

db_test!(async fn the_reconcile_command_refuses_a_wipe_and_makes_it_with_allow_removals(t) {
    use crate::common::service::{base_env, run_to_end};
    let Some(v2ray) = V2Ray::or_skip("the_reconcile_command_refuses_a_wipe_and_makes_it_with_allow_removals") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    strangers(&a, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let catalog_path = dir.path().join("tollgate.toml");
    std::fs::write(&catalog_path, catalog_text(&[&a], &[])).unwrap();
    let mut env = base_env(&t.url);
    env.retain(|(k, _)| k != "TOLLGATE_CONFIG");
    env.push(("TOLLGATE_CONFIG".to_owned(), catalog_path.display().to_string()));
    env.push(a.env_pair());

    let (status, out, err) = run_to_end(&["reconcile", "--node", "a"], &env).await;
    assert!(!status.success(), "refused is a failure: {out}\n{err}");
    assert!(out.contains("refused: 50 removals"), "{out}\n{err}");
    assert!(out.contains("tollgate reconcile --node a --allow-removals"), "{out}");
    assert!(err.contains("tollgate reconcile --node a --allow-removals"), "the log says it too: {err}");
    assert_eq!(a.users().await.len(), 50, "nobody removed");

    let (status, out, err) = run_to_end(&["reconcile", "--node", "a", "--allow-removals"], &env).await;
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("50 unknown to the database removed"), "{out}");
    assert!(a.users().await.is_empty());

    let (status, _, err) = run_to_end(&["reconcile", "--node", "nowhere"], &env).await;
    assert!(!status.success());
    assert!(err.contains("no node \"nowhere\"") && err.contains("its nodes: a"), "{err}");

    // A node an admin took out of service is left alone, and the pass is recorded only when
    // one runs.
    let registry = tollgate::nodes::Registry::from_catalog(&catalog(&[&a], &[]), Duration::from_secs(2)).unwrap();
    let mut tx = t.db.begin().await.unwrap();
    tollgate::nodes::switches::set_enabled(&mut tx, &registry, "a", false, tollgate::admin::audit::Actor::Admin(1), tollgate::time::Clock::now(&tollgate::time::SystemClock)).await.unwrap();
    tx.commit().await.unwrap();
    let before = tollgate::nodes::reconcile::last_passes(&t.db).await.unwrap();
    assert_eq!(before[0].removed, 50, "the allowed pass was recorded: {before:?}");
    let (status, _, err) = run_to_end(&["reconcile", "--node", "a"], &env).await;
    assert!(!status.success());
    assert!(err.contains("node a was taken out of service by an admin"), "{err}");
    assert_eq!(tollgate::nodes::reconcile::last_passes(&t.db).await.unwrap(), before);
});
