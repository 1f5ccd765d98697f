//! Subscription feed throughput: `GET /sub/{token}` for a subscription on 10 enabled nodes.
//!
//! `cargo bench -p tollgate --bench feed` — builds the service's real HTTP router (body
//! limit, timeout, tracing and metrics layers) with the feed route over a migrated database,
//! grants one subscription through the access API on a 10-node catalog, records some traffic,
//! and serves it on 127.0.0.1. 32 clients on keep-alive connections, in the same 2-worker
//! runtime, request the feed for 3 s after a 0.5 s warm-up; five runs, median printed.
//! SQLite always; PostgreSQL too when `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) is reachable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use tollgate::access::feed::{FeedState, routes};
use tollgate::access::{self, Grant, Kind};
use tollgate::config::catalog::parse_catalog;
use tollgate::config::{DatabaseSettings, DatabaseUrl, Env, Secret};
use tollgate::http::{self, HttpState, Readiness};
use tollgate::metrics::Metrics;
use tollgate::nodes::Registry;
use tollgate::store::Db;
use tollgate::store::migrate::{self, MigrateTimeouts};
use tollgate::time::{Clock, SystemClock};
use tollgate::{on_db, on_tx};

const NODES: usize = 10;
const CLIENTS: usize = 32;
const RUNS: usize = 5;
const RUN_FOR: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_millis(500);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Db::connect_lazy(&settings(DatabaseUrl::Sqlite {
            path: dir.path().join("bench.db"),
        }))
        .unwrap();
        bench("SQLite", &sqlite).await;

        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        match sqlx::PgConnection::connect(&admin).await {
            Ok(mut conn) => {
                let name = format!("tollgate_bench_{}", uuid::Uuid::new_v4().simple());
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
                )
                .await
                .unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&format!("/{name}"));
                let pg = Db::connect_lazy(&settings(DatabaseUrl::Postgres {
                    url: Secret::new(url.to_string()),
                }))
                .unwrap();
                bench("PostgreSQL", &pg).await;
                pg.close().await;
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")),
                )
                .await
                .unwrap();
            }
            Err(e) => eprintln!("PostgreSQL skipped: {admin} unreachable ({e})"),
        }
    });
}

fn settings(url: DatabaseUrl) -> DatabaseSettings {
    DatabaseSettings {
        url,
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(30),
    }
}

async fn bench(backend: &str, db: &Db) {
    migrate::run(db, SystemClock.now(), MigrateTimeouts::default())
        .await
        .unwrap();
    let mut catalog_text = include_str!("../../../config/tollgate.example.toml").to_owned();
    let mut env = Vec::new();
    for i in 0..NODES {
        catalog_text.push_str(&format!(
            "\n[[nodes]]\nname = \"node-{i}\"\ncountry = \"NL\"\nagent_url = \"http://127.0.0.1:9\"\nagent_token_env = \"NODE_{i}_TOKEN\"\n\
             link = {{ host = \"n{i}.example.com\", port = 443, security = \"reality\", sni = \"www.example.com\", pbk = \"Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw\", sid = \"6ba85179e30d4fc2\", fp = \"chrome\", flow = \"xtls-rprx-vision\", transport = \"tcp\" }}\n"
        ));
        env.push((format!("NODE_{i}_TOKEN"), "0123456789abcdef".repeat(4)));
    }
    let catalog = parse_catalog(&catalog_text, "bench.toml", &Env::from_pairs(env)).unwrap();
    let registry = Arc::new(Registry::from_catalog(&catalog, Duration::from_secs(10)).unwrap());
    on_db!(db, p => sqlx::query(
        "INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at) VALUES (1, 'B', 'en', 'ref1', 0, 0)"
    ).execute(p).await.map(|_| ())).unwrap();
    let mut tx = db.begin().await.unwrap();
    let sub = access::grant_or_extend(
        &mut tx,
        registry.enabled(),
        1,
        &Grant::days(Kind::Paid, 30, Some("m1")),
        SystemClock.now(),
    )
    .await
    .unwrap()
    .subscription;
    on_tx!(&mut tx, c => sqlx::query("UPDATE node_memberships SET observed = 'present', uplink_bytes = 1234, downlink_bytes = 56789")
        .execute(c).await.map(|_| ())).unwrap();
    tx.commit().await.unwrap();

    let metrics = Metrics::new();
    let state = HttpState {
        metrics: metrics.clone(),
        readiness: Readiness::new(db.clone(), Duration::from_secs(2)),
    };
    let feed = routes(FeedState {
        db: db.clone(),
        registry,
        settings: catalog.feed.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/sub/{}",
        listener.local_addr().unwrap(),
        sub.token.expose()
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        http::router(state, feed),
        stop.clone(),
    ));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(
        first.headers()["subscription-userinfo"]
            .to_str()
            .unwrap()
            .starts_with("upload=12340; download=567890;")
    );
    let body = first.text().await.unwrap();
    println!(
        "{backend}: feed body {} bytes (base64 of {NODES} links)",
        body.len()
    );

    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let count = Arc::new(AtomicU64::new(0));
        let counting = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (client, url) = (client.clone(), url.clone());
            let (count, counting, done) = (count.clone(), counting.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    if counting.load(Ordering::Relaxed) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(WARM_UP).await;
        counting.store(true, Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(RUN_FOR).await;
        let n = count.load(Ordering::Relaxed);
        let elapsed = start.elapsed();
        done.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        rates.push(n as f64 / elapsed.as_secs_f64());
    }
    let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{backend}: GET /sub/{{token}}, {NODES} nodes, {CLIENTS} clients: median {:.0} requests/s (runs: {})",
        sorted[RUNS / 2],
        runs.join(", ")
    );
    stop.cancel();
    let _ = server.await;
}
