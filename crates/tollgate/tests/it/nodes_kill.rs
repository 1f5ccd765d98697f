//! kill -9 of the real `tollgate` binary while it provisions (docs/reliability.md D4, E1, A5): claims
//! left by the dead process expire, the restarted service converges, and every node holds
//! each entitled user exactly once and nobody else.

use std::time::Duration;

use tollgate::nodes::EnabledNodes;
use tollgate::on_db;
use tollgate::time::{Clock, SystemClock};
use tollgate_node::testing::V2Ray;

use crate::common::nodes::{TestNode, assert_node_matches, backlog, catalog_text, grant};
use crate::common::service::{Service, base_env};
use crate::common::{TestDb, wait_for};
use crate::db_test;

const USERS: i64 = 300;

async fn count(t: &TestDb, sql: &'static str) -> i64 {
    on_db!(&t.db, p => sqlx::query_scalar(sql).fetch_one(p).await).unwrap()
}

db_test!(async fn a_service_killed_mid_provisioning_converges_after_restart(t) {
    let Some(v2ray) = V2Ray::or_skip("a_service_killed_mid_provisioning_converges_after_restart") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let b = TestNode::start(&v2ray, "b").await;
    let dir = tempfile::tempdir().unwrap();
    let catalog_path = dir.path().join("tollgate.toml");
    std::fs::write(&catalog_path, catalog_text(&[&a, &b], &[])).unwrap();
    let mut env = base_env(&t.url);
    env.retain(|(k, _)| k != "TOLLGATE_CONFIG");
    env.push(("TOLLGATE_CONFIG".into(), catalog_path.display().to_string()));
    env.push(("NODE_CALL_TIMEOUT".into(), "1s".into()));
    env.push(a.env_pair());
    env.push(b.env_pair());

    // Intent recorded by the access API, as the bot would; nothing is on the nodes yet.
    let nodes = EnabledNodes::new(["a", "b"]);
    let now = SystemClock.now();
    for user in 1..=USERS {
        grant(&t.db, &nodes, user, 30, now).await;
    }
    // Node b swallows calls until their deadline, so the service dies with claims in flight.
    b.proxy.blackhole();
    let mut svc = Service::start(&env).await;
    wait_for("provisioning under way on both nodes", Duration::from_secs(20), || async {
        let on_a = count(t, "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE node = 'a' AND observed = 'present'").await;
        let claimed_b = count(t, "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE node = 'b' AND claimed_by IS NOT NULL").await;
        (on_a > 0 && claimed_b > 0).then_some(())
    }).await;
    svc.signal("KILL");
    svc.wait_exit(Duration::from_secs(10)).await;
    let pending = backlog(&t.db).await;
    let orphaned = count(t, "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE claimed_by IS NOT NULL").await;
    assert!(pending > 0 && orphaned > 0, "killed mid-provisioning: {pending} rows pending, {orphaned} claimed");

    b.proxy.restore();
    let mut svc = Service::start(&env).await;
    wait_for("convergence after the restart", Duration::from_secs(30), || async {
        (backlog(&t.db).await == 0).then_some(())
    }).await;
    assert_node_matches(&t.db, &a).await;
    assert_node_matches(&t.db, &b).await;
    assert_eq!(a.users().await.len() as i64, USERS);
    assert_eq!(b.users().await.len() as i64, USERS);
    svc.signal("TERM");
    let status = svc.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}\n{}", svc.log());
    assert_eq!(
        count(t, "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships WHERE claimed_by IS NOT NULL").await,
        0,
        "a graceful stop leaves no claims behind"
    );
});
