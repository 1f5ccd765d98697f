//! Clear errors for a wrong inbound tag, a non-VLESS inbound, a wrong dialect and an
//! unreachable core; the agent never crashes or restarts the core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{CoreView, put};
use tollgate_node::testing::{ExtraInbound, ServerCore, ServerCoreConfig, TestAgent, V2Ray};
use tollgate_node::{NodeError, StartError};
use uuid::Uuid;
use xray_api::DialectChoice;

fn start_error(result: Result<TestAgent, StartError>) -> String {
    match result {
        Ok(_) => panic!("the agent started against a broken configuration"),
        Err(StartError::Core(message)) => message,
        Err(other) => panic!("expected a core error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_inbound_tag_stops_the_start_with_the_fix() {
    let Some(v2ray) = V2Ray::or_skip("a_wrong_inbound_tag_stops_the_start") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let message =
        start_error(TestAgent::start_with(&core, |c| c.inbound_tag = "vless-typo".into()).await);
    assert!(
        message.contains("handler not found: vless-typo"),
        "{message}"
    );
    assert!(message.contains("--inbound-tag"), "{message}");
}

#[tokio::test]
async fn non_vless_inbounds_are_refused_and_the_core_survives() {
    let Some(v2ray) = V2Ray::or_skip("non_vless_inbounds_are_refused") else {
        return;
    };
    let config = ServerCoreConfig {
        extra_inbounds: vec![
            ExtraInbound::vmess("vmess-in"),
            ExtraInbound::socks("socks-in"),
        ],
        ..ServerCoreConfig::default()
    };
    let mut core = ServerCore::start_with(&v2ray, config).await.unwrap();

    let message =
        start_error(TestAgent::start_with(&core, |c| c.inbound_tag = "vmess-in".into()).await);
    assert!(message.contains("cannot take VLESS users"), "{message}");
    assert!(message.contains("another protocol"), "{message}");

    let message =
        start_error(TestAgent::start_with(&core, |c| c.inbound_tag = "socks-in".into()).await);
    assert!(message.contains("proxy is not a UserManager"), "{message}");

    assert!(core.is_running(), "the core died:\n{}", core.log());
}

#[tokio::test]
async fn a_forced_wrong_dialect_stops_the_start() {
    let Some(v2ray) = V2Ray::or_skip("a_forced_wrong_dialect_stops_the_start") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let message =
        start_error(TestAgent::start_with(&core, |c| c.dialect = DialectChoice::Xray).await);
    assert!(
        message.contains("unknown service xray.app.proxyman.command.HandlerService"),
        "{message}"
    );
    assert!(message.contains("--dialect"), "{message}");

    let forced = TestAgent::start_with(&core, |c| c.dialect = DialectChoice::V2Ray)
        .await
        .unwrap();
    assert_eq!(
        forced.client().health().await.unwrap().dialect.as_deref(),
        Some("v2ray")
    );
}

#[tokio::test]
async fn an_unreachable_core_is_reported_and_users_arrive_when_it_starts() {
    let Some(v2ray) = V2Ray::or_skip("an_unreachable_core_is_reported") else {
        return;
    };
    let mut core = ServerCore::start(&v2ray).await.unwrap();
    core.stop();
    let agent = TestAgent::start(&core).await.unwrap();

    let health = agent.client().health().await.unwrap();
    assert!(
        !health.core_reachable && !health.core_in_sync && health.core_error.is_none(),
        "{health:?}"
    );
    assert_eq!(health.dialect, None);

    let uuid = Uuid::new_v4();
    let err = agent
        .client()
        .put_user("dave@test", &put(&uuid))
        .await
        .unwrap_err();
    let NodeError::Unavailable { message } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("unreachable") && message.contains("stored"),
        "{message}"
    );
    // Stored as intent; a remove cannot be confirmed while the core is away.
    let listed = agent.client().list_users().await.unwrap();
    assert!(!listed.core_in_sync && !listed.traffic_fresh);
    assert_eq!(listed.users.len(), 1);
    let err = agent.client().remove_user("dave@test").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    core.start_again().await.unwrap();
    let health = agent
        .wait_for_health(
            "the core to be found and the stored user applied",
            Duration::from_secs(10),
            |h| h.core_in_sync,
        )
        .await;
    assert_eq!(health.dialect.as_deref(), Some("v2ray"));
    assert_eq!(health.users, 1);
    assert!(CoreView::new(&core).await.has("dave@test").await);

    // And when it goes away again, health says so within one call.
    core.stop();
    let health = agent.client().health().await.unwrap();
    assert!(!health.core_reachable, "{health:?}");
}

#[tokio::test]
async fn a_core_without_stats_service_still_provisions() {
    let Some(v2ray) = V2Ray::or_skip("a_core_without_stats_service_still_provisions") else {
        return;
    };
    let config = ServerCoreConfig {
        stats_service: false,
        ..ServerCoreConfig::default()
    };
    let core = ServerCore::start_with(&v2ray, config).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();

    assert!(
        agent
            .client()
            .put_user("frank@test", &put(&Uuid::new_v4()))
            .await
            .unwrap()
            .created
    );
    assert!(CoreView::new(&core).await.has("frank@test").await);
    let listed = agent.client().list_users().await.unwrap();
    assert!(!listed.traffic_fresh && listed.core_in_sync, "{listed:?}");
    let health = agent.client().health().await.unwrap();
    assert!(
        health.core_reachable && health.core_uptime_s.is_none() && health.core_error.is_none(),
        "{health:?}"
    );
}
