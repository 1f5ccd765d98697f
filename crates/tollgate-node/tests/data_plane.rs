//! The data plane at the agent level, with real v2ray 4.34 cores: a user put through the agent
//! fetches a page through a V2Ray VLESS client built from its share link; after removal new
//! connections are refused; a random UUID is always refused; traffic shows in the list; core
//! and agent restarts are survived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{CoreView, put};
use tollgate_node::api::UserEntry;
use tollgate_node::testing::{
    FetchError, HELLO_BODY, Origin, ServerCore, TestAgent, V2Ray, http_get_via_socks5,
    share_link_for, start_client_core,
};
use uuid::Uuid;

const FETCH_LIMIT: Duration = Duration::from_secs(10);
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Lists until `email`'s downlink reaches `at_least` (counters may trail the last byte).
async fn wait_for_downlink(agent: &TestAgent, email: &str, at_least: u64) -> UserEntry {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let listed = agent.client().list_users().await.unwrap();
        assert!(
            listed.traffic_fresh,
            "traffic could not be read: {listed:?}"
        );
        let user = listed.users.into_iter().find(|u| u.email == email).unwrap();
        if user.downlink_bytes >= at_least {
            return user;
        }
        assert!(
            Instant::now() < deadline,
            "downlink of {email} stayed at {} < {at_least}",
            user.downlink_bytes
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_put_user_gets_through_and_is_refused_after_removal() {
    let Some(v2ray) = V2Ray::or_skip("a_put_user_gets_through_and_is_refused_after_removal") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let origin = Origin::start().await.unwrap();
    let uuid = Uuid::new_v4();
    agent
        .client()
        .put_user("alice@test", &put(&uuid))
        .await
        .unwrap();

    let alice = start_client_core(&v2ray, &share_link_for(&core, &uuid, "Alice @ test node"))
        .await
        .unwrap();
    let page = http_get_via_socks5(alice.socks_addr(), &origin.url("/hello"), FETCH_LIMIT)
        .await
        .unwrap();
    assert_eq!((page.status, page.text().as_str()), (200, HELLO_BODY));
    let blob = http_get_via_socks5(
        alice.socks_addr(),
        &origin.url("/bytes/300000"),
        FETCH_LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(blob.body.len(), 300_000);

    let entry = wait_for_downlink(&agent, "alice@test", 300_000).await;
    assert!(entry.uplink_bytes > 0, "{entry:?}");

    let stranger = start_client_core(&v2ray, &share_link_for(&core, &Uuid::new_v4(), "stranger"))
        .await
        .unwrap();
    let refused =
        http_get_via_socks5(stranger.socks_addr(), &origin.url("/hello"), FETCH_LIMIT).await;
    assert!(matches!(refused, Err(FetchError::Refused)), "{refused:?}");

    assert!(
        agent
            .client()
            .remove_user("alice@test")
            .await
            .unwrap()
            .removed
    );
    let refused = http_get_via_socks5(alice.socks_addr(), &origin.url("/hello"), FETCH_LIMIT).await;
    assert!(matches!(refused, Err(FetchError::Refused)), "{refused:?}");
    assert_eq!(
        origin.requests(),
        2,
        "refused requests must not reach the origin"
    );
}

#[tokio::test]
async fn the_agent_reapplies_its_users_after_a_core_restart() {
    let Some(v2ray) = V2Ray::or_skip("the_agent_reapplies_its_users_after_a_core_restart") else {
        return;
    };
    let mut core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let origin = Origin::start().await.unwrap();
    let (alice_uuid, bob_uuid) = (Uuid::new_v4(), Uuid::new_v4());
    agent
        .client()
        .put_user("alice@test", &put(&alice_uuid))
        .await
        .unwrap();
    agent
        .client()
        .put_user("bob@test", &put(&bob_uuid))
        .await
        .unwrap();
    let alice = start_client_core(&v2ray, &share_link_for(&core, &alice_uuid, "alice"))
        .await
        .unwrap();
    http_get_via_socks5(
        alice.socks_addr(),
        &origin.url("/bytes/100000"),
        FETCH_LIMIT,
    )
    .await
    .unwrap();
    let before = wait_for_downlink(&agent, "alice@test", 100_000).await;

    // Kill the core and start a new one on the same ports at once: faster than the agent's
    // check interval and than the uptime's 1 s resolution. The sentinel still notices.
    let restarts_before = agent
        .client()
        .health()
        .await
        .unwrap()
        .core_restarts_detected;
    core.restart().await.unwrap();
    let health = agent
        .wait_for_health("the restart to be detected and repaired", WAIT_LIMIT, |h| {
            h.core_restarts_detected > restarts_before && h.core_in_sync
        })
        .await;
    assert!(
        health.core_reachable && health.last_resync_unix.is_some(),
        "{health:?}"
    );

    let view = CoreView::new(&core).await;
    assert!(view.has("bob@test").await);
    let page = http_get_via_socks5(alice.socks_addr(), &origin.url("/bytes/50000"), FETCH_LIMIT)
        .await
        .unwrap();
    assert_eq!(page.body.len(), 50_000);
    // Totals keep growing across the restart (the core's counters started from zero).
    wait_for_downlink(&agent, "alice@test", before.downlink_bytes + 50_000).await;
}

#[tokio::test]
async fn an_agent_restart_keeps_users_and_traffic_totals() {
    let Some(v2ray) = V2Ray::or_skip("an_agent_restart_keeps_users_and_traffic_totals") else {
        return;
    };
    let mut core = ServerCore::start(&v2ray).await.unwrap();
    let mut agent = TestAgent::start(&core).await.unwrap();
    let origin = Origin::start().await.unwrap();
    let uuid = Uuid::new_v4();
    agent
        .client()
        .put_user("carol@test", &put(&uuid))
        .await
        .unwrap();
    let carol = start_client_core(&v2ray, &share_link_for(&core, &uuid, "carol"))
        .await
        .unwrap();
    http_get_via_socks5(
        carol.socks_addr(),
        &origin.url("/bytes/120000"),
        FETCH_LIMIT,
    )
    .await
    .unwrap();
    // Not listed before the stop: the last collection on shutdown must save these bytes.
    agent.stop().await;

    // While the agent is down the core restarts too and forgets carol.
    core.restart().await.unwrap();
    assert!(!CoreView::new(&core).await.has("carol@test").await);

    agent.start_again().await.unwrap();
    // The start re-applied the stored users before serving: no wait needed.
    let page = http_get_via_socks5(carol.socks_addr(), &origin.url("/hello"), FETCH_LIMIT)
        .await
        .unwrap();
    assert_eq!(page.text(), HELLO_BODY);
    let entry = wait_for_downlink(&agent, "carol@test", 120_000).await;
    assert_eq!(entry.uuid, uuid.to_string());
}
