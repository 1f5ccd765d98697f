//! docs/reliability.md A7: SIGTERM finishes in-flight requests and exits 0 within the deadline.

use std::time::Duration;

use crate::common::proxy::TcpProxy;
use crate::common::service::{Service, base_env, http_client};
use crate::common::{TestDb, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_request_lets_it_complete_and_exits_zero() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let u = url::Url::parse(&crate::common::pg_admin_url()).unwrap();
    let target = format!("127.0.0.1:{}", u.port().unwrap_or(5432))
        .parse()
        .unwrap();
    let proxy = TcpProxy::start(target).await;
    let mut db_url = url::Url::parse(&t.url).unwrap();
    db_url.set_host(Some("127.0.0.1")).unwrap();
    db_url.set_port(Some(proxy.addr.port())).unwrap();
    let mut svc = Service::start(&base_env(db_url.as_str())).await;
    wait_for("ready", Duration::from_secs(30), || {
        let url = svc.url("/readyz");
        async move { (http_client().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;

    // A partitioned database makes /readyz take its full 2 s deadline: a request in flight.
    proxy.blackhole();
    let slow = tokio::spawn(http_client().get(svc.url("/readyz")).send());
    let metrics_url = svc.url("/metrics");
    wait_for(
        "the request to be in flight",
        Duration::from_secs(10),
        || {
            let url = metrics_url.clone();
            async move {
                let text = http_client()
                    .get(url)
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                // The scrape itself is one in-flight request; the readiness check is the other.
                text.lines()
                    .any(|l| l.starts_with("tollgate_http_requests_in_flight") && l.ends_with(" 2"))
                    .then_some(())
            }
        },
    )
    .await;
    svc.signal("TERM");

    let response = slow
        .await
        .unwrap()
        .expect("the in-flight request got its response");
    assert_eq!(
        response.status().as_u16(),
        503,
        "it completed (the database is partitioned)"
    );
    let status = svc.wait_exit(Duration::from_secs(12)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", svc.log());
    let log = svc.log();
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("http server drained"), "{log}");
    proxy.restore();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_on_an_idle_service_exits_zero_promptly() {
    let t = TestDb::sqlite_with(false).await;
    let mut svc = Service::start(&base_env(&t.url)).await;
    wait_for("ready", Duration::from_secs(30), || {
        let url = svc.url("/readyz");
        async move { (http_client().get(url).send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    svc.signal("INT");
    let status = svc.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
}
