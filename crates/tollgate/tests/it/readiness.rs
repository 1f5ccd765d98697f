//! docs/reliability.md A1, A2, A9: readiness follows the database; health never depends on it;
//! nothing exits the process because the database went away; a boot during an outage ends
//! like a healthy one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use telegram_emulator::NewUser;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::proxy::TcpProxy;
use crate::common::service::{Service, base_env, http_client};
use crate::common::telegram::{emulator, polling_env, wait_reply};
use crate::common::{TestDb, pg_admin_url, wait_for};

/// The service's readiness deadline (http::health::READINESS_TIMEOUT) plus scheduling slack.
const READY_DEADLINE: Duration = Duration::from_millis(2_000 + 1_500);

async fn get(url: &str) -> (u16, serde_json::Value) {
    let r = http_client()
        .get(url)
        .send()
        .await
        .expect("service answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

fn through(proxy: &TcpProxy, url: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_host(Some("127.0.0.1")).unwrap();
    u.set_port(Some(proxy.addr.port())).unwrap();
    u.to_string()
}

fn pg_addr() -> SocketAddr {
    let u = url::Url::parse(&pg_admin_url()).unwrap();
    let host = u
        .host_str()
        .unwrap_or("127.0.0.1")
        .replace("localhost", "127.0.0.1");
    format!("{host}:{}", u.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

async fn wait_ready(svc: &Service, want: u16) -> serde_json::Value {
    let url = svc.url("/readyz");
    wait_for(&format!("/readyz {want}"), Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let (status, body) = get(&url).await;
            (status == want).then_some(body)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_a_cut_database_and_the_process_stays_up() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let proxy = TcpProxy::start(pg_addr()).await;
    let mut svc = Service::start(&base_env(&through(&proxy, &t.url))).await;
    let body = wait_ready(&svc, 200).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"]["backend"], "postgres");
    assert_eq!(body["components"]["intake"]["mode"], "polling");

    for (how, cut) in [("blackhole", true), ("reset", false)] {
        if cut {
            proxy.blackhole()
        } else {
            proxy.cut()
        }
        // Each check answers within its deadline; soon one says 503 with a reason.
        let body = wait_for(&format!("503 after {how}"), Duration::from_secs(30), || {
            let url = svc.url("/readyz");
            async move {
                let start = Instant::now();
                let (status, body) = get(&url).await;
                let took = start.elapsed();
                assert!(took < READY_DEADLINE, "/readyz took {took:?} ({how})");
                (status == 503).then_some(body)
            }
        })
        .await;
        assert_eq!(body["status"], "not_ready");
        assert!(
            body["reason"].as_str().unwrap().contains("database"),
            "{body}"
        );

        // Liveness does not depend on the database, and the process does not exit.
        for _ in 0..3 {
            assert_eq!(get(&svc.url("/healthz")).await.0, 200);
        }
        assert!(
            svc.is_running(),
            "the service must not exit when the database is cut"
        );

        proxy.restore();
        wait_ready(&svc, 200).await;
        assert!(svc.is_running());
    }

    svc.signal("TERM");
    let status = svc.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}

/// Booting while the database is down: the service waits, then migrates and becomes ready,
/// exactly like a healthy boot (A9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_during_a_database_outage_converges() {
    let Some(t) = TestDb::postgres_with(false).await else {
        return;
    };
    let proxy = TcpProxy::start(pg_addr()).await;
    proxy.cut();
    let mut svc = Service::start(&base_env(&through(&proxy, &t.url))).await;
    let (status, body) = get(&svc.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(get(&svc.url("/healthz")).await.0, 200);
    wait_for("a retry logged", Duration::from_secs(20), || {
        let log = svc.log();
        async move { log.contains("database not available yet").then_some(()) }
    })
    .await;
    assert!(svc.is_running());

    proxy.restore();
    let body = wait_ready(&svc, 200).await;
    let latest = tollgate::store::migrate::latest_version(tollgate::store::Backend::Postgres);
    assert_eq!(body["database"]["schema_version"], latest);
    assert!(svc.log().contains("applied "), "migrations logged");
    wait_for(
        "the runtime flags to be logged",
        Duration::from_secs(10),
        || {
            let log = svc.log();
            async move { log.contains("runtime flag").then_some(()) }
        },
    )
    .await;
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}

/// The supervised components in a `/readyz` body: name → (running, restarts).
fn components(body: &serde_json::Value) -> BTreeMap<String, (bool, u64)> {
    body["components"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(name, c)| {
                    let running = c.get("running")?.as_bool()?;
                    Some((name.clone(), (running, c["restarts"].as_u64().unwrap_or(0))))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sends `/start` through the emulator and waits for the bot's menu.
async fn the_bot_answers(tg: &telegram_emulator::ControlClient, name: &str) {
    let user = tg
        .create_user(NewUser::new(name).language("en"))
        .await
        .unwrap();
    tg.send_text(user.id, "/start").await.unwrap();
    wait_reply(tg, user.id, "Choose an action below.").await;
}

/// A9 for the whole service: after a boot during a database outage, the same components as
/// after a healthy boot run (none restarted), and the bot answers through Telegram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_during_a_database_outage_ends_with_every_component_running_and_the_bot_answering() {
    let Some(healthy) = TestDb::postgres_with(false).await else {
        return;
    };
    let Some(t) = TestDb::postgres_with(false).await else {
        return;
    };
    let emu = emulator(true).await;
    let tg = emu.client();

    // What a healthy boot runs.
    let mut reference = Service::start(&polling_env(&healthy.url, &emu)).await;
    wait_ready(&reference, 200).await;
    the_bot_answers(&tg, "Ann").await;
    let want = components(&get(&reference.url("/readyz")).await.1);
    for name in ["poller", "dispatcher", "outbox-sender", "housekeeping"] {
        assert!(want.contains_key(name), "{name} in {want:?}");
    }
    assert!(want.values().all(|(running, _)| *running), "{want:?}");
    reference.signal("TERM");
    assert!(reference.wait_exit(Duration::from_secs(15)).await.success());

    // The same service booted while its database is unreachable.
    let proxy = TcpProxy::start(pg_addr()).await;
    proxy.cut();
    let mut svc = Service::start(&polling_env(&through(&proxy, &t.url), &emu)).await;
    wait_for("a retry logged", Duration::from_secs(20), || {
        let log = svc.log();
        async move { log.contains("database not available yet").then_some(()) }
    })
    .await;
    let (status, body) = get(&svc.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        components(&body).is_empty(),
        "nothing runs before the bootstrap: {body}"
    );
    assert_eq!(
        body["components"]["intake"]["state"], "not started",
        "{body}"
    );

    proxy.restore();
    wait_ready(&svc, 200).await;
    the_bot_answers(&tg, "Bob").await;
    let body = get(&svc.url("/readyz")).await.1;
    let have = components(&body);
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same running set as a healthy boot"
    );
    for (name, (running, restarts)) in &have {
        assert!(*running, "{name}: {body}");
        assert_eq!(*restarts, 0, "{name} was never restarted: {body}");
    }
    assert_eq!(body["components"]["intake"]["state"], "polling", "{body}");
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_service_migrates_and_reports_ready_and_metrics() {
    let t = TestDb::sqlite_with(false).await;
    let mut svc = Service::start(&base_env(&t.url)).await;
    let body = wait_ready(&svc, 200).await;
    assert_eq!(body["database"]["backend"], "sqlite");
    let metrics = http_client().get(svc.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            "tollgate_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("tollgate_ready 1"), "{text}");
    assert!(
        text.contains("tollgate_db_pool_max_connections 1"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    // Unknown routes are counted under one label, not one series per path.
    let r = http_client()
        .get(svc.url("/no/such/path/123"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let text = http_client()
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("route=\"unmatched\",status=\"404\""),
        "{text}"
    );
    assert!(!text.contains("/no/such/path"));
    // Oversized bodies are refused from their declared length, before anything is read
    // (a raw request: a client still uploading would race the early answer).
    let mut conn = tokio::net::TcpStream::connect(svc.addr).await.unwrap();
    conn.write_all(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}
