//! Promo code contention: 1,000 users who entered one code buy at the same moment, each in a
//! transaction of its own (read the offer, take a use, store the purchase, hold the use: what
//! the bot's pay button does), on SQLite and PostgreSQL. The code allows `BENCH_USES` uses
//! (default 500), so half of them get the discount and half are refused. Prints the time until
//! every purchase settled and the share of transactions that had to be retried (a race the
//! database refused), and checks the counts.
//!
//! `cargo bench -p tollgate --bench promo` (`BENCH_BACKEND=sqlite|postgres` narrows it;
//! `BENCH_USERS`, default 1000; `BENCH_RUNS`, default 5, each on a fresh database, the median
//! printed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Backends, count, database, env_or, median, migrated, pool_settings};
use tollgate::billing::{self, BillingError, Item, Provider, promo};
use tollgate::config::DatabaseSettings;
use tollgate::domain::money::Currency;
use tollgate::nodes::EnabledNodes;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::Timestamp;

const NOW: i64 = 1_800_000_000_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = Backends::from_env().await;
    let n: i64 = env_or("BENCH_USERS", 1000);
    let uses: i64 = env_or("BENCH_USES", 500);
    let runs: i64 = env_or("BENCH_RUNS", 5);
    for backend in backends.each() {
        let (mut times, mut shares) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (ms, retried) = run(backend, &backends.pg_admin, n, uses).await;
            times.push(ms);
            shares.push(retried as f64 * 100.0 / (n as f64 + retried as f64));
        }
        let most = shares.iter().copied().fold(0.0, f64::max);
        let settled = median(&mut times);
        println!(
            "{backend}: {n} concurrent purchases with one {uses}-use code settled in {settled:.0} ms \
             (median of {runs}; {:.2} ms each), {} at the discount, {} refused; retried \
             transactions {:.1} % (at most {most:.1} %)",
            settled / n as f64,
            uses.min(n),
            n - uses.min(n),
            median(&mut shares),
        );
    }
}

/// One run on a fresh database: the time until every purchase settled (ms) and the retries.
async fn run(backend: &str, pg_admin: &str, n: i64, uses: i64) -> (f64, u64) {
    let (url, _dir) = database(backend, pg_admin, "promo").await;
    let settings = DatabaseSettings {
        acquire_timeout: Duration::from_secs(120),
        statement_timeout: Duration::from_secs(60),
        ..pool_settings(&url, 8)
    };
    let now = Timestamp::from_millis(NOW);
    let db = migrated(&settings, now).await;
    seed(&db, n, uses, now).await;
    let plan = plan();
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (1..=n)
        .map(|user| {
            let (db, plan, retries) = (db.clone(), plan.clone(), retries.clone());
            tokio::spawn(async move {
                loop {
                    match buy(&db, &plan, user, now).await {
                        Ok(discounted) => return discounted,
                        Err(BillingError::Raced) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(BillingError::Database(e))
                            if tollgate::store::classify(&e)
                                == tollgate::store::Failure::UniqueViolation =>
                        {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("user {user}: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut discounted = 0;
    for t in tasks {
        discounted += i64::from(t.await.unwrap());
    }
    let settled = started.elapsed();
    let held = count(
        &db,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM promo_uses WHERE status = 'reserved'",
    )
    .await;
    let used = promo::list(&db, Currency::Rub, 1).await.unwrap()[0].used;
    let want = uses.min(n);
    assert_eq!((discounted, held, used), (want, want, want));
    db.close().await;
    (
        settled.as_secs_f64() * 1000.0,
        retries.load(Ordering::Relaxed),
    )
}

fn plan() -> tollgate::config::catalog::Plan {
    let text = std::fs::read_to_string(support::CATALOG).unwrap();
    let env = tollgate::config::Env::from_pairs(Vec::<(String, String)>::new());
    let catalog = tollgate::config::catalog::parse_catalog(&text, "example", &env).unwrap();
    catalog.plans[0].clone()
}

/// One user's pay button: the offer, the price, the purchase with its hold, one transaction.
/// `true` when it was sold at the discount.
async fn buy(
    db: &Db,
    plan: &tollgate::config::catalog::Plan,
    user: i64,
    now: Timestamp,
) -> Result<bool, BillingError> {
    let mut tx = db.begin().await?;
    let offer = promo::offer_in(&mut tx, Currency::Rub, user, now).await?;
    let quote = promo::quote(plan, Currency::Xtr, Currency::Rub, &offer, false).unwrap();
    let item = Item::Plan {
        plan_id: plan.id.clone(),
        days: plan.days,
    };
    let made =
        billing::create_plan_purchase(&mut tx, user, &item, &quote, Provider::Stars, now).await?;
    let discounted = made.is_ok();
    tx.commit().await?;
    Ok(discounted)
}

/// `n` users who all entered code BENCH (percent 20, `uses` uses).
async fn seed(db: &Db, n: i64, uses: i64, now: Timestamp) {
    on_db!(db, p => sqlx::query(
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $1)
         INSERT INTO users (id, first_name, language, referral_code, created_at, last_seen_at)
         SELECT g, 'U', 'en', 'r' || CAST(g AS TEXT), 0, 0 FROM s"
    ).bind(n).execute(p).await.map(drop))
    .unwrap();
    let new = promo::NewCode {
        code: promo::Code::parse("BENCH").unwrap(),
        benefit: promo::Benefit::Percent(20),
        max_uses: Some(uses),
        starts_at: None,
        ends_at: None,
        first_purchase_only: false,
        plans: None,
    };
    let mut tx = db.begin().await.unwrap();
    promo::import_code(&mut tx, &new, 0, false, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let nodes = EnabledNodes::default();
    let mut tx = db.begin().await.unwrap();
    for user in 1..=n {
        let r = promo::redeem(&mut tx, &nodes, Currency::Rub, user, "bench", now)
            .await
            .unwrap();
        assert!(r.is_ok(), "{r:?}");
    }
    tx.commit().await.unwrap();
}
