//! `xray-api` against Debian's real v2ray 4.34, spawned on free 127.0.0.1 ports.
//! Without the binary each test prints SKIP and passes, unless TOLLGATE_REQUIRE_V2RAY=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use uuid::Uuid;
use xray_api::testing::{
    ClientCore, ExtraInbound, FetchError, HELLO_BODY, Origin, ServerCore, ServerCoreConfig, V2Ray,
    free_port, http_get_via_socks5,
};
use xray_api::{Dialect, DialectChoice, ErrorKind, VlessUser, XrayClient};

const FETCH_LIMIT: Duration = Duration::from_secs(10);

fn user(email: &str) -> VlessUser {
    VlessUser {
        email: email.into(),
        id: Uuid::new_v4(),
        flow: String::new(),
        level: 0,
    }
}

async fn connect(server: &ServerCore) -> XrayClient {
    XrayClient::connect(&server.api_endpoint(), DialectChoice::Auto)
        .await
        .expect("connect to the test core")
}

#[tokio::test]
async fn add_duplicate_remove_and_remove_missing() {
    let Some(v2ray) = V2Ray::or_skip("add_duplicate_remove_and_remove_missing") else {
        return;
    };
    let server = ServerCore::start(&v2ray).await.unwrap();
    let core = connect(&server).await;
    let alice = user("alice@test");

    core.add_vless_user("vless-in", &alice).await.unwrap();

    let dup = core.add_vless_user("vless-in", &alice).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists, "{dup}");
    assert_eq!(
        dup.core_message(),
        "v2ray.com/core/proxy/vless: User alice@test already exists."
    );

    // Emails compare case-insensitively in the core, whatever the id.
    let shouting = VlessUser {
        email: "ALICE@test".into(),
        ..user("x")
    };
    let dup = core
        .add_vless_user("vless-in", &shouting)
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists, "{dup}");

    core.remove_user("vless-in", "alice@test").await.unwrap();
    let missing = core
        .remove_user("vless-in", "alice@test")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert_eq!(
        missing.core_message(),
        "v2ray.com/core/proxy/vless: User alice@test not found."
    );
    assert!(
        missing
            .to_string()
            .starts_with("remove user alice@test from inbound vless-in: "),
        "{missing}"
    );
}

#[tokio::test]
async fn detects_the_v2ray_dialect_and_a_forced_wrong_dialect_fails_clearly() {
    let Some(v2ray) = V2Ray::or_skip("detects_the_v2ray_dialect") else {
        return;
    };
    let server = ServerCore::start(&v2ray).await.unwrap();
    assert_eq!(connect(&server).await.dialect(), Dialect::V2Ray);

    let forced = XrayClient::connect(&server.api_endpoint(), DialectChoice::V2Ray)
        .await
        .unwrap();
    assert_eq!(forced.dialect(), Dialect::V2Ray);
    forced
        .add_vless_user("vless-in", &user("a@test"))
        .await
        .unwrap();

    let wrong = XrayClient::connect(&server.api_endpoint(), DialectChoice::Xray)
        .await
        .unwrap();
    let err = wrong
        .add_vless_user("vless-in", &user("b@test"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unimplemented, "{err}");
    assert_eq!(
        err.core_message(),
        "unknown service xray.app.proxyman.command.HandlerService"
    );
}

#[tokio::test]
async fn inbound_problems_are_named_and_never_crash_the_core() {
    let Some(v2ray) = V2Ray::or_skip("inbound_problems_are_named") else {
        return;
    };
    let config = ServerCoreConfig {
        extra_inbounds: vec![
            ExtraInbound::vmess("vmess-in"),
            ExtraInbound::socks("socks-in"),
        ],
        ..ServerCoreConfig::default()
    };
    let mut server = ServerCore::start_with(&v2ray, config).await.unwrap();
    let core = connect(&server).await;

    core.check_vless_inbound("vless-in").await.unwrap();

    let err = core.check_vless_inbound("no-such-tag").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InboundNotFound, "{err}");
    assert!(
        err.core_message()
            .contains("handler not found: no-such-tag"),
        "{err}"
    );
    let err = core
        .add_vless_user("no-such-tag", &user("a@test"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InboundNotFound, "{err}");

    for not_a_user_manager in ["socks-in", "api"] {
        let err = core
            .check_vless_inbound(not_a_user_manager)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InboundNotVless, "{err}");
        assert_eq!(
            err.core_message(),
            "v2ray.com/core/app/proxyman/command: proxy is not a UserManager"
        );
    }

    // VMess manages users too; only the probe can tell (an add would kill v2ray 4.34).
    let err = core.check_vless_inbound("vmess-in").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InboundNotVless, "{err}");
    assert!(
        err.core_message()
            .contains("proxy/vmess/inbound: User tollgate-probe-"),
        "{err}"
    );

    assert!(
        server.is_running(),
        "probes must not crash the core:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn stats_count_real_vless_traffic_and_refusals_are_enforced() {
    let Some(v2ray) = V2Ray::or_skip("stats_count_real_vless_traffic") else {
        return;
    };
    let server = ServerCore::start(&v2ray).await.unwrap();
    let core = connect(&server).await;
    let origin = Origin::start().await.unwrap();
    let alice = user("alice@test");
    core.add_vless_user("vless-in", &alice).await.unwrap();

    // No counter before the first connection.
    let err = core
        .get_stats("user>>>alice@test>>>traffic>>>downlink", false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(core.user_traffic(false).await.unwrap().is_empty());

    let client = ClientCore::start(&v2ray, &server.vless_outbound(&alice.id.to_string()))
        .await
        .unwrap();
    let hello = http_get_via_socks5(client.socks_addr(), &origin.url("/hello"), FETCH_LIMIT)
        .await
        .unwrap();
    assert_eq!((hello.status, hello.text().as_str()), (200, HELLO_BODY));
    let blob = http_get_via_socks5(
        client.socks_addr(),
        &origin.url("/bytes/200000"),
        FETCH_LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(blob.body.len(), 200_000);

    // The counters may trail the last byte by a moment: wait for them, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let traffic = loop {
        let all = core.user_traffic(false).await.unwrap();
        if let Some(t) = all
            .iter()
            .find(|t| t.email == "alice@test" && t.downlink >= 200_000)
        {
            break t.clone();
        }
        assert!(
            Instant::now() < deadline,
            "counters never reached the payload size: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(traffic.uplink > 0, "{traffic:?}");

    let exact = core
        .get_stats("user>>>alice@test>>>traffic>>>downlink", false)
        .await
        .unwrap();
    assert_eq!(exact.value as u64, traffic.downlink);

    // reset=true returns the old value and zeroes the counter.
    let read = core.user_traffic(true).await.unwrap();
    assert_eq!(read.len(), 1);
    assert!(read[0].downlink >= traffic.downlink);
    let after = core.user_traffic(false).await.unwrap();
    assert_eq!((after[0].uplink, after[0].downlink), (0, 0), "{after:?}");

    // A random id is refused; so is alice after removal (new connections).
    let stranger = ClientCore::start(&v2ray, &server.vless_outbound(&Uuid::new_v4().to_string()))
        .await
        .unwrap();
    let refused =
        http_get_via_socks5(stranger.socks_addr(), &origin.url("/hello"), FETCH_LIMIT).await;
    assert!(matches!(refused, Err(FetchError::Refused)), "{refused:?}");

    core.remove_user("vless-in", "alice@test").await.unwrap();
    let refused =
        http_get_via_socks5(client.socks_addr(), &origin.url("/hello"), FETCH_LIMIT).await;
    assert!(matches!(refused, Err(FetchError::Refused)), "{refused:?}");
    assert_eq!(
        origin.requests(),
        2,
        "refused requests must not reach the origin"
    );
}

#[tokio::test]
async fn unreachable_core_is_unavailable_and_the_client_recovers_after_a_restart() {
    let Some(v2ray) = V2Ray::or_skip("unreachable_core_is_unavailable") else {
        return;
    };
    let nobody = format!("127.0.0.1:{}", free_port().unwrap());
    let err = XrayClient::connect(&nobody, DialectChoice::Auto)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("Connection refused"), "{err}");

    let mut server = ServerCore::start(&v2ray).await.unwrap();
    let core = connect(&server).await;
    core.add_vless_user("vless-in", &user("alice@test"))
        .await
        .unwrap();
    let before = core.sys_stats().await.unwrap();

    server.stop();
    let err = core
        .add_vless_user("vless-in", &user("bob@test"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = core.sys_stats().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");

    server.start_again().await.unwrap();
    // Same client, new connection; the restart dropped every API-added user.
    let missing = core
        .remove_user("vless-in", "alice@test")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    let after = core.sys_stats().await.unwrap();
    assert!(
        after.uptime_secs <= before.uptime_secs + 1,
        "{before:?} {after:?}"
    );
    assert!(after.num_goroutine > 0);
}
