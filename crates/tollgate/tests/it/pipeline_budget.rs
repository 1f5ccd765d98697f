//! docs/reliability.md B4: handler concurrency is derived from the pool with a reserved share
//! (`DispatcherConfig::for_pool`: pool minus max(pool/4, 2)), and under a burst the handlers
//! in flight never exceed it — while they all hold a connection, the reserve still serves
//! readiness and intake.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use telegram_emulator::NewUser;
use tokio::sync::watch;
use tollgate::app::AppOptions;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::telegram::dispatcher::{
    DispatcherConfig, Handled, Handler, HandlerContext, HandlerError,
};
use tollgate::telegram::inbox::{self, Claimed, NewUpdate};
use tollgate::telegram::update::parse_head;
use tollgate::time::{Clock, SystemClock};

use crate::common::service::http_client;
use crate::common::telegram::{emulator, in_process, polling_env, with};
use crate::common::wait_for;
use crate::db_test;

#[test]
fn handler_concurrency_is_the_pool_minus_a_reserved_share() {
    let concurrency = |pool: u32| DispatcherConfig::for_pool(pool).concurrency;
    // (pool, handler slots): the reserve is a quarter of the pool, at least 2 connections.
    for (pool, slots) in [
        (3, 1),
        (4, 2),
        (5, 3),
        (8, 6),
        (9, 7),
        (12, 9),
        (15, 12),
        (16, 12),
        (20, 15),
        (100, 75),
        (1000, 750),
    ] {
        assert_eq!(concurrency(pool), slots, "pool {pool}");
    }
    // The smallest pool still runs handlers (one slot, one connection kept back).
    assert_eq!(concurrency(2), 1);
    for pool in 3..=1000u32 {
        let slots = concurrency(pool) as u32;
        assert!(slots >= 1, "pool {pool}");
        assert_eq!(pool - slots, (pool / 4).max(2), "pool {pool}: the reserve");
    }
}

/// Counts handlers in flight and the most ever at once; each holds a database connection
/// (PostgreSQL) until the test opens the gate.
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
    handled: AtomicUsize,
    gate: watch::Receiver<bool>,
}

impl Handler for Gauge {
    async fn handle(
        &self,
        _update: Arc<Claimed>,
        ctx: HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let held = match &ctx.db {
            Db::Postgres(p) => Some(p.acquire().await?),
            Db::Sqlite(_) => None,
        };
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        drop(held);
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(Handled::Done)
    }
}

fn update(update_id: i64, chat: i64) -> NewUpdate {
    let raw = serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 1_800_000_000,
            "from": { "id": chat, "is_bot": false, "first_name": "U" },
            "chat": { "id": chat, "type": "private", "first_name": "U" },
            "text": "burst"
        }
    })
    .to_string();
    NewUpdate {
        head: parse_head(&raw).unwrap(),
        raw,
    }
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    on_db!(db, p => sqlx::query_scalar(sql).fetch_one(p).await).unwrap()
}

db_test!(async fn a_burst_never_runs_more_handlers_than_the_pool_budget(t) {
    const POOL: u32 = 8;
    const BURST: i64 = 40;
    let budget = DispatcherConfig::for_pool(POOL).concurrency;
    assert_eq!(budget, 6);
    let emu = emulator(true).await;
    let tg = emu.client();
    let env = with(polling_env(&t.url, &emu), &[("DATABASE_MAX_CONNECTIONS", &POOL.to_string())]);
    let (open, gate) = watch::channel(false);
    let gauge = Arc::new(Gauge {
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
        handled: AtomicUsize::new(0),
        gate,
    });
    let app = in_process(&env, gauge.clone(), AppOptions::default()).await;
    // A burst: one update in each of 40 chats, all due at once.
    let burst: Vec<NewUpdate> = (1..=BURST).map(|k| update(600_000 + k, 70_000 + k)).collect();
    inbox::store_batch(&t.db, &burst, SystemClock.now()).await.unwrap();

    let g = gauge.clone();
    wait_for("the handler slots to fill", Duration::from_secs(20), move || {
        let g = g.clone();
        async move { (g.now.load(Ordering::SeqCst) == budget).then_some(()) }
    })
    .await;
    // The dispatcher holds more than it may run (it claims up to four rounds ahead) ...
    let db = &t.db;
    wait_for("updates claimed ahead", Duration::from_secs(20), move || async move {
        let claimed = count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status = 'pending' AND claimed_by IS NOT NULL").await;
        (claimed == 4 * budget as i64).then_some(())
    })
    .await;
    // ... and still runs no more than its budget.
    assert_eq!(gauge.now.load(Ordering::SeqCst), budget);
    // With every slot holding a connection, the reserved ones serve readiness and intake.
    let r = http_client().get(format!("http://{}/readyz", app.addr)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap();
    tg.send_text(ann.id, "during the burst").await.unwrap();
    wait_for("intake to store during the burst", Duration::from_secs(20), move || async move {
        (count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox").await == BURST + 1).then_some(())
    })
    .await;

    open.send_replace(true);
    let g = gauge.clone();
    wait_for("every update handled", Duration::from_secs(30), move || {
        let g = g.clone();
        async move { (g.handled.load(Ordering::SeqCst) == BURST as usize + 1).then_some(()) }
    })
    .await;
    assert_eq!(gauge.max.load(Ordering::SeqCst), budget, "never more than the budget at once");
    wait_for("every update recorded done", Duration::from_secs(20), move || async move {
        (count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM tg_inbox WHERE status = 'done' AND attempts = 1").await == BURST + 1).then_some(())
    })
    .await;
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});
