//! End to end through the data plane (docs/reliability.md E4, E5, H4): a subscription granted in the
//! service is provisioned through `tollgate-node` to a real V2Ray core; a second V2Ray, built
//! from the link the service's own feed serves, fetches a page from a local origin through
//! it; after expiry and after revocation the same client is refused, a renewal lets it back
//! in with the same key, a random UUID is always refused, and the traffic shows up in the
//! feed's `subscription-userinfo`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio_util::sync::CancellationToken;
use tollgate::access::feed::{FeedState, routes};
use tollgate::access::{self, ProvisioningSummary};
use tollgate::http::{self, HttpState, Readiness};
use tollgate::time::{Clock, ManualClock, SharedClock, Timestamp};
use tollgate_node::testing::{
    FetchError, HELLO_BODY, Origin, V2Ray, http_get_via_socks5, share_link_for, start_client_core,
};

use crate::common::nodes::{Stack, TestNode, backlog, catalog, grant};
use crate::common::service::http_client;
use crate::common::wait_for;
use crate::db_test;

const LIMIT: Duration = Duration::from_secs(20);
const DAY: Duration = Duration::from_secs(86_400);

struct Feed {
    base: String,
    stop: CancellationToken,
}

impl Feed {
    /// The service's real HTTP router (layers included) with the feed route, on a free port.
    async fn serve(stack: &Stack, settings: tollgate::config::catalog::FeedSettings) -> Feed {
        let state = HttpState {
            metrics: stack.metrics.clone(),
            readiness: Readiness::new(stack.db.clone(), Duration::from_secs(2)),
        };
        let feed = routes(FeedState {
            db: stack.db.clone(),
            registry: stack.registry.clone(),
            settings,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(http::serve(
            listener,
            http::router(state, feed),
            stop.clone(),
        ));
        Feed { base, stop }
    }

    async fn get(&self, token: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = http_client()
            .get(format!("{}/sub/{token}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `key=value` pairs of `subscription-userinfo`.
fn userinfo(headers: &reqwest::header::HeaderMap) -> std::collections::BTreeMap<String, i64> {
    headers["subscription-userinfo"]
        .to_str()
        .unwrap()
        .split(';')
        .map(|kv| {
            let (k, v) = kv.trim().split_once('=').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

async fn summary(stack: &Stack, sub: &access::Subscription, now: Timestamp) -> ProvisioningSummary {
    access::provisioning_state(&stack.db, sub, stack.enabled(), now)
        .await
        .unwrap()
        .summary()
}

db_test!(async fn a_granted_subscription_carries_traffic_until_expiry_or_revocation(t) {
    let Some(v2ray) = V2Ray::or_skip("a_granted_subscription_carries_traffic_until_expiry_or_revocation") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let origin = Origin::start().await.unwrap();
    let cat = catalog(&[&a], &[]);
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let shared: SharedClock = Arc::new(clock.clone());
    let stack = Stack::new(&t.db, &cat, shared, |_| {});
    let running = stack.run_provisioning();
    let feed = Feed::serve(&stack, cat.feed.clone()).await;

    // Granted in the service (one transaction, then the wake), provisioned to the node.
    let sub = grant(&t.db, stack.enabled(), 1, 1, clock.now()).await;
    stack.wake.wake();
    wait_for("the key on the node", LIMIT, || async {
        (summary(&stack, &sub, clock.now()).await == ProvisioningSummary::Ready).then_some(())
    }).await;

    // The client is built from the link the service's feed serves (E5).
    let (status, headers, body) = feed.get(sub.token.expose()).await;
    assert_eq!(status, 200);
    let links = String::from_utf8(STANDARD.decode(body.trim()).unwrap()).unwrap();
    let links: Vec<&str> = links.lines().collect();
    assert_eq!(links.len(), 1);
    assert!(links[0].starts_with(&format!("vless://{}@127.0.0.1:", sub.vpn_uuid)), "{}", links[0]);
    assert_eq!(headers["profile-update-interval"], "12");
    assert!(headers["profile-title"].to_str().unwrap().starts_with("base64:"));
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"Tollgate VPN\""));
    assert_eq!(headers["cache-control"], "no-store");
    let info = userinfo(&headers);
    assert_eq!((info["upload"], info["download"], info["total"]), (0, 0, 0));
    assert_eq!(info["expire"], sub.expires_at.as_unix_seconds());

    let client = start_client_core(&v2ray, links[0]).await.unwrap();
    let fetch = |path: &'static str| {
        let (socks, url) = (client.socks_addr(), origin.url(path));
        async move { http_get_via_socks5(socks, &url, Duration::from_secs(10)).await }
    };
    let page = fetch("/hello").await.unwrap();
    assert_eq!((page.status, page.text().as_str()), (200, HELLO_BODY));
    assert_eq!(fetch("/bytes/300000").await.unwrap().body.len(), 300_000);

    // A random UUID is always refused.
    let stranger = start_client_core(&v2ray, &share_link_for(&a.core, &uuid::Uuid::new_v4(), "x")).await.unwrap();
    let refused = http_get_via_socks5(stranger.socks_addr(), &origin.url("/hello"), Duration::from_secs(10)).await;
    assert!(matches!(refused, Err(FetchError::Refused)), "{refused:?}");

    // Traffic reaches the feed (collected by reconcile from the agent's counters).
    clock.advance(Duration::from_secs(1));
    let info = wait_for("traffic in the feed", LIMIT, || async {
        stack.reconcile("a").await;
        let (_, headers, _) = feed.get(sub.token.expose()).await;
        let info = userinfo(&headers);
        (info["download"] >= 300_000).then_some(info)
    }).await;
    assert!(info["upload"] > 0, "{info:?}");

    // Expiry (the expiry worker's helper): refused; the feed still answers, with the past date.
    clock.advance(DAY);
    let mut tx = t.db.begin().await.unwrap();
    access::expire(&mut tx, sub.id, clock.now()).await.unwrap();
    tx.commit().await.unwrap();
    stack.wake.wake();
    wait_for("removal after expiry", LIMIT, || async { (backlog(&t.db).await == 0).then_some(()) }).await;
    assert!(matches!(fetch("/hello").await, Err(FetchError::Refused)), "expired: refused");
    assert_eq!(feed.get(sub.token.expose()).await.0, 200, "an expired subscription keeps its feed");

    // Renewal: same key, the same client gets through again.
    let renewed = grant(&t.db, stack.enabled(), 1, 30, clock.now()).await;
    assert_eq!(renewed.vpn_uuid, sub.vpn_uuid);
    stack.wake.wake();
    wait_for("the key back on the node", LIMIT, || async {
        (summary(&stack, &renewed, clock.now()).await == ProvisioningSummary::Ready).then_some(())
    }).await;
    assert_eq!(fetch("/hello").await.unwrap().status, 200, "renewed: through again");

    // Revocation: refused, and the feed token is dead.
    let mut tx = t.db.begin().await.unwrap();
    access::revoke(&mut tx, sub.id, clock.now()).await.unwrap();
    tx.commit().await.unwrap();
    stack.wake.wake();
    wait_for("removal after revocation", LIMIT, || async { (backlog(&t.db).await == 0).then_some(()) }).await;
    assert!(matches!(fetch("/hello").await, Err(FetchError::Refused)), "revoked: refused");
    let (status, headers, body) = feed.get(sub.token.expose()).await;
    assert_eq!((status, body.as_str()), (404, ""));
    assert!(headers.get("subscription-userinfo").is_none());
    running.stop().await;
});

db_test!(async fn unknown_revoked_and_retired_tokens_get_the_same_empty_404(t) {
    let Some(v2ray) = V2Ray::or_skip("unknown_revoked_and_retired_tokens_get_the_same_empty_404") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let cat = catalog(&[&a], &[]);
    let stack = Stack::new(&t.db, &cat, Arc::new(tollgate::time::SystemClock), |_| {});
    let feed = Feed::serve(&stack, cat.feed.clone()).await;
    let now = tollgate::time::SystemClock.now();
    let retired = grant(&t.db, stack.enabled(), 1, 30, now).await;
    let mut tx = t.db.begin().await.unwrap();
    let current = access::reissue(&mut tx, stack.enabled(), retired.id, now).await.unwrap();
    tx.commit().await.unwrap();
    let revoked = grant(&t.db, stack.enabled(), 2, 30, now).await;
    let mut tx = t.db.begin().await.unwrap();
    access::revoke(&mut tx, revoked.id, now).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(feed.get(current.token.expose()).await.0, 200);
    let unknown = tollgate::access::FeedToken::generate().unwrap();
    let long = "A".repeat(500);
    for token in [unknown.expose(), retired.token.expose(), revoked.token.expose(), "x", &long, "%00"] {
        let (status, headers, body) = feed.get(token).await;
        assert_eq!((status, body.as_str()), (404, ""), "{token}");
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).filter(|k| *k != "date").collect();
        names.sort();
        assert_eq!(names, ["cache-control", "content-length", "content-type"], "{token}: same headers");
    }
});

/// Paths carry the feed's secret: even debug logs name the route template only (H1, H4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_token_never_reaches_the_logs() {
    let t = crate::common::TestDb::sqlite().await;
    let mut env = crate::common::service::base_env(&t.url);
    env.push(("RUST_LOG".into(), "debug".into()));
    let mut svc = crate::common::service::Service::start(&env).await;
    let token = tollgate::access::FeedToken::generate().unwrap();
    let r = http_client()
        .get(svc.url(&format!("/sub/{}", token.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    wait_for("the request to be logged", LIMIT, || {
        let log = svc.log();
        async move { log.contains("finished processing request").then_some(()) }
    })
    .await;
    let log = svc.log();
    assert!(
        !log.contains(token.expose()),
        "the token leaked into the log"
    );
    assert!(
        log.contains("/sub/{token}"),
        "the route template is logged instead"
    );
    svc.signal("TERM");
    svc.wait_exit(Duration::from_secs(15)).await;
}

/// A SOCKS5 CONNECT (no auth) to `target` through `socks`: the stream then carries raw bytes.
async fn socks5_connect(
    socks: std::net::SocketAddr,
    target: std::net::SocketAddrV4,
) -> std::io::Result<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(socks).await?;
    s.write_all(&[5, 1, 0]).await?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await?;
    assert_eq!(choice, [5, 0], "SOCKS5 method selection");
    let mut connect = vec![5, 1, 0, 1];
    connect.extend_from_slice(&target.ip().octets());
    connect.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&connect).await?;
    // VER REP RSV ATYP(1) ADDR(4) PORT(2): V2Ray answers with an IPv4 bound address.
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await?;
    assert_eq!(
        (reply[0], reply[1]),
        (5, 0),
        "SOCKS5 CONNECT answered {reply:?}"
    );
    Ok(s)
}

/// An echo server on 127.0.0.1 that counts the connections it accepted.
async fn echo_server() -> (std::net::SocketAddrV4, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, accepted)
}

/// The byte at offset `i` of the stream: varied enough that a lost, repeated or reordered
/// chunk cannot echo back equal.
fn pattern(i: u64) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16) ^ (i >> 24)) as u8
}

/// What the streaming client has seen so far: bytes echoed back, and why it broke if it did.
#[derive(Default)]
struct StreamState {
    echoed: std::sync::atomic::AtomicU64,
    broken: std::sync::Mutex<Option<String>>,
}

impl StreamState {
    /// Bytes echoed so far; panics with the reason if the stream broke.
    fn echoed(&self) -> u64 {
        if let Some(why) = self.broken.lock().unwrap().as_ref() {
            panic!("the stream broke: {why}");
        }
        self.echoed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Writes chunks and reads each one back on ONE connection until `stop`; any break, stall
/// (10 s) or wrong byte ends it, with the reason in `state`.
async fn stream_until(
    s: tokio::net::TcpStream,
    stop: CancellationToken,
    state: Arc<StreamState>,
) -> u64 {
    match stream_chunks(s, stop, &state).await {
        Ok(total) => total,
        Err(why) => {
            *state.broken.lock().unwrap() = Some(why);
            0
        }
    }
}

async fn stream_chunks(
    mut s: tokio::net::TcpStream,
    stop: CancellationToken,
    state: &StreamState,
) -> Result<u64, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CHUNK: usize = 16 * 1024;
    let stall = Duration::from_secs(10);
    let (mut out, mut back) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    while !stop.is_cancelled() {
        for (i, b) in out.iter_mut().enumerate() {
            *b = pattern(offset + i as u64);
        }
        match tokio::time::timeout(stall, s.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("write failed after {offset} bytes: {e}")),
            Err(_) => return Err(format!("write stalled after {offset} bytes")),
        }
        match tokio::time::timeout(stall, s.read_exact(&mut back)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("read failed after {offset} bytes: {e}")),
            Err(_) => return Err(format!("read stalled after {offset} bytes")),
        }
        if let Some(at) = out.iter().zip(&back).position(|(a, b)| a != b) {
            return Err(format!("byte {} echoed wrong", offset + at as u64));
        }
        offset += CHUNK as u64;
        state
            .echoed
            .store(offset, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(offset)
}

// docs/reliability.md E6: changes to a node are hot. A client on its VLESS link (from the feed) keeps
// one TCP connection through the real core streaming while 500 other users are added and
// removed on that node through the service, in waves that add 100 and remove the 100
// before: the stream never breaks or stalls, every byte comes back in order, and the echo
// server behind the core accepted exactly one connection.
db_test!(async fn a_live_connection_keeps_streaming_while_500_other_users_come_and_go(t) {
    use std::sync::atomic::Ordering;
    const WAVES: i64 = 5;
    const PER_WAVE: i64 = 100;
    let Some(v2ray) = V2Ray::or_skip("a_live_connection_keeps_streaming_while_500_other_users_come_and_go") else { return };
    let a = TestNode::start(&v2ray, "a").await;
    let cat = catalog(&[&a], &[]);
    let clock = tollgate::time::SystemClock;
    let stack = Stack::new(&t.db, &cat, Arc::new(clock), |_| {});
    let running = stack.run_provisioning();
    let feed = Feed::serve(&stack, cat.feed.clone()).await;

    let sub = grant(&t.db, stack.enabled(), 1, 30, clock.now()).await;
    stack.wake.wake();
    wait_for("the key on the node", LIMIT, || async {
        (summary(&stack, &sub, clock.now()).await == ProvisioningSummary::Ready).then_some(())
    }).await;
    let (_, _, body) = feed.get(sub.token.expose()).await;
    let link = String::from_utf8(STANDARD.decode(body.trim()).unwrap()).unwrap();
    let client = start_client_core(&v2ray, link.trim()).await.unwrap();
    let (echo, accepted) = echo_server().await;
    let conn = socks5_connect(client.socks_addr(), echo).await.unwrap();
    let stop = CancellationToken::new();
    let state = Arc::new(StreamState::default());
    let streaming = tokio::spawn(stream_until(conn, stop.clone(), state.clone()));
    wait_for("the stream to flow", LIMIT, || async { (state.echoed() > 0).then_some(()) }).await;

    // Each wave adds 100 users and removes the previous 100, all through provisioning.
    let mut previous: Vec<access::Subscription> = Vec::new();
    let mut progress = vec![state.echoed()];
    for wave in 0..=WAVES {
        let mut current = Vec::new();
        if wave < WAVES {
            for i in 0..PER_WAVE {
                current.push(grant(&t.db, stack.enabled(), 1000 + wave * PER_WAVE + i, 30, clock.now()).await);
            }
        }
        let mut tx = t.db.begin().await.unwrap();
        for old in &previous {
            access::revoke(&mut tx, old.id, clock.now()).await.unwrap();
        }
        tx.commit().await.unwrap();
        stack.wake.wake();
        let want = 1 + current.len();
        wait_for("the wave on the node", Duration::from_secs(60), || async {
            state.echoed();
            (backlog(&t.db).await == 0 && a.users().await.len() == want).then_some(())
        }).await;
        // Bytes went through while this wave was applied, not only before it.
        let before = *progress.last().unwrap();
        let after = wait_for("more bytes after the wave", LIMIT, || async {
            Some(state.echoed()).filter(|now| *now > before)
        }).await;
        progress.push(after);
        previous = current;
    }
    let users: Vec<String> = a.users().await.into_iter().map(|u| u.uuid).collect();
    assert_eq!(users, vec![sub.vpn_uuid.to_string()], "only the streaming client is left");

    stop.cancel();
    let total = streaming.await.unwrap();
    assert_eq!(total, state.echoed(), "every byte sent came back");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection from start to end, never a reconnect");
    eprintln!("streamed {total} bytes on one connection; after each wave: {progress:?}");
    running.stop().await;
});
