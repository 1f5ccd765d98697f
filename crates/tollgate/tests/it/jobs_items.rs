//! docs/reliability.md C3, D4, D7, A5: the jobs item by item — one bad subscription holds up no one
//! (its transaction or savepoint rolls back, it is put back, the others are handled — those
//! sent in one chunk with it too — and the iteration ends in `error`); auto-renewal reaches every candidate in its window however many stay short
//! of money; a renewal by hand that commits while auto-renewal runs is not paid a second
//! time; and the "anything due?" scans are index ranges on both backends.

use std::sync::Arc;
use std::time::Duration;

use tollgate::access::{self, Grant, Kind};
use tollgate::billing::{self, BalanceCharge, BalancePaid, Reason};
use tollgate::jobs::notices::{self, Notices};
use tollgate::jobs::renewal::{self, AutoRenewal};
use tollgate::store::Db;
use tollgate::time::{Clock, ManualClock, Timestamp};
use tollgate::{on_db, users};

use crate::common::TestDb;
use crate::db_test;
use crate::jobs_month::{Person, outbox, person, services};
use tollgate::jobs::JobContext;

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
const M1_PRICE: i64 = 14_900;

fn texts() -> Arc<tollgate::i18n::Texts> {
    Arc::new(tollgate::i18n::Texts::load().unwrap())
}

/// Makes every outbox insert for `chat` fail, like a row the code cannot handle.
async fn poison_messages_to(db: &Db, chat: i64) {
    match db {
        Db::Sqlite(p) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TRIGGER poison BEFORE INSERT ON outbox WHEN NEW.chat_id = {chat}
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
            )))
            .execute(p)
            .await
            .unwrap();
        }
        Db::Postgres(p) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE FUNCTION poison() RETURNS trigger AS $$
                 BEGIN IF NEW.chat_id = {chat} THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END
                 $$ LANGUAGE plpgsql"
            )))
            .execute(p)
            .await
            .unwrap();
            sqlx::query("CREATE TRIGGER poison BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION poison()")
                .execute(p)
                .await
                .unwrap();
        }
    }
}

async fn cure(db: &Db) {
    on_db!(db, p => sqlx::query("DROP TRIGGER poison ON outbox").execute(p).await.map(|_| ()))
        .or_else(|_| Ok::<(), sqlx::Error>(()))
        .unwrap();
    if let Db::Sqlite(p) = db {
        sqlx::query("DROP TRIGGER IF EXISTS poison")
            .execute(p)
            .await
            .unwrap();
    }
}

fn keys_of(out: &std::collections::BTreeMap<String, (i64, i64)>, user: i64) -> Vec<String> {
    out.iter()
        .filter(|(_, (c, _))| *c == user)
        .map(|(k, _)| k.split(':').next_back().unwrap_or_default().to_owned())
        .collect()
}

async fn next_notice_at(db: &Db, user: i64) -> Option<i64> {
    on_db!(db, p => sqlx::query_scalar("SELECT next_notice_at FROM subscriptions WHERE user_id = $1")
        .bind(user).fetch_one(p).await)
    .unwrap()
}

async fn renewal_debits(db: &Db, user: i64) -> i64 {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE user_id = $1 AND reason = 'renewal'"
    ).bind(user).fetch_one(p).await)
    .unwrap()
}

/// Node rows that want a key of `user`'s subscription on a node.
async fn wanted_on_nodes(db: &Db, user: i64) -> i64 {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM node_memberships m
               JOIN subscriptions s ON s.id = m.subscription_id
               WHERE s.user_id = $1 AND m.desired = 'present'";
    on_db!(db, p => sqlx::query_scalar(sql).bind(user).fetch_one(p).await).unwrap()
}

fn plain(id: i64) -> Person {
    Person {
        id,
        auto_renew: false,
        balance: 0,
        blocked: false,
    }
}

/// Enough subscriptions that the notices job sends them in chunks on both backends (and a
/// remainder item by item); the bad one, among the first created, is due among the first.
const USERS: i64 = 60;

db_test!(async fn one_bad_subscription_does_not_hold_up_the_others(t) {
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(t0);
    let (app, s, emu) = services(t, &clock).await;
    for u in 1..=USERS {
        person(&s, &plain(u), Some(Grant::days(Kind::Paid, 1, Some("m1"))), t0).await;
    }
    // Each key is on a node (this harness has no node agents; the rows are what provisioning
    // would have recorded).
    let on_node = "INSERT INTO node_memberships
                       (node, vpn_uuid, subscription_id, email, desired, observed, attempts, next_attempt_at, updated_at)
                   SELECT 'n1', vpn_uuid, id, 'u' || user_id || '@t', 'present', 'present', 0, 0, 0 FROM subscriptions";
    on_db!(&t.db, p => sqlx::query(on_node).execute(p).await.map(|r| r.rows_affected())).unwrap();
    for u in 1..=USERS {
        assert_eq!(wanted_on_nodes(&t.db, u).await, 1, "user {u}: the key is wanted on the node");
    }
    // Past the end: every subscription's expiry is due. User 2's message cannot be written.
    let at = t0.as_millis() + D + 60_000;
    clock.set(Timestamp::from_millis(at));
    poison_messages_to(&t.db, 2).await;
    let notices = Notices::new(JobContext::of(&s, texts()));
    let err = notices.run_batch().await.expect_err("the bad row makes the iteration an error");
    assert!(format!("{err:#}").contains("put back"), "{err:#}");
    let out = outbox(&s).await;
    for u in (1..=USERS).filter(|u| *u != 2) {
        assert_eq!(keys_of(&out, u), ["expired"], "user {u} was handled despite user 2");
        assert_eq!(next_notice_at(&s.db, u).await, None, "user {u}: timeline done");
        assert_eq!(wanted_on_nodes(&t.db, u).await, 0, "user {u}: expiry took the key away");
    }
    assert!(keys_of(&out, 2).is_empty());
    // Rolled back and put back: still active on the nodes' side of the books, due again later.
    assert_eq!(next_notice_at(&s.db, 2).await, Some(at + notices::ITEM_RETRY.as_millis() as i64));
    assert_eq!(wanted_on_nodes(&t.db, 2).await, 1, "user 2: its expiry rolled back whole");
    // The next iteration is not held up by it.
    assert_eq!(notices.run_batch().await.unwrap(), 0);
    // Once the cause is gone, the retry handles it, exactly once.
    cure(&t.db).await;
    clock.set(Timestamp::from_millis(at).plus(notices::ITEM_RETRY));
    assert_eq!(notices.run_batch().await.unwrap(), 1);
    assert_eq!(notices.run_batch().await.unwrap(), 0);
    assert_eq!(keys_of(&outbox(&s).await, 2), ["expired"]);
    assert_eq!(wanted_on_nodes(&t.db, 2).await, 0, "user 2: expired on the retry");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

db_test!(async fn auto_renewal_reaches_every_candidate_however_many_are_short_or_bad(t) {
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(t0);
    let (app, s, emu) = services(t, &clock).await;
    // Five users short of money expire first, then a bad row, then a user who can pay.
    // With pages of two, one page (a plain LIMIT) would never get past the short ones.
    for u in 1..=5 {
        let p = Person { id: u, auto_renew: true, balance: 0, blocked: false };
        person(&s, &p, Some(Grant::days(Kind::Paid, 30, Some("m1"))), t0).await;
        clock.set(clock.now().plus(Duration::from_secs(60)));
    }
    for u in [6, 7] {
        let p = Person { id: u, auto_renew: true, balance: M1_PRICE, blocked: false };
        person(&s, &p, Some(Grant::days(Kind::Paid, 30, Some("m1"))), clock.now()).await;
        clock.set(clock.now().plus(Duration::from_secs(60)));
    }
    poison_messages_to(&t.db, 6).await;
    // Twelve hours before the first expiry: all seven are in the 24 h window.
    clock.set(t0.plus(Duration::from_millis((30 * D - 12 * H) as u64)));
    let renewal = AutoRenewal::new(JobContext::of(&s, texts())).with_page_size(2);
    let err = renewal.run_batch().await.expect_err("the bad row makes the run an error");
    assert!(format!("{err:#}").contains("could not be auto-renewed"), "{err:#}");
    let out = outbox(&s).await;
    assert_eq!(renewal_debits(&s.db, 7).await, 1, "the user behind the short ones was renewed");
    assert_eq!(users::get(&s.db, 7).await.unwrap().unwrap().balance, 0);
    assert!(out.keys().any(|k| k.starts_with("renewed:renewal:") && out[k].0 == 7));
    for u in 1..=5 {
        assert_eq!(out.keys().filter(|k| k.starts_with("renew-short:") && out[*k].0 == u).count(), 1, "user {u}");
    }
    // The bad row rolled back as a whole: no debit, no renewal.
    assert_eq!(renewal_debits(&s.db, 6).await, 0);
    assert_eq!(users::get(&s.db, 6).await.unwrap().unwrap().balance, M1_PRICE);
    // Fixed, the next run renews it; nothing else happens twice.
    cure(&t.db).await;
    assert!(renewal.run_batch().await.is_ok());
    assert_eq!(renewal_debits(&s.db, 6).await, 1);
    assert_eq!(renewal_debits(&s.db, 7).await, 1);
    let shorts = outbox(&s).await.keys().filter(|k| k.starts_with("renew-short:")).count();
    assert_eq!(shorts, 5, "one short message per period");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

/// docs/reliability.md D7, E2 on PostgreSQL (SQLite has one writer, so the interleaving cannot
/// happen there): a payment by hand for the next period is committing while auto-renewal
/// looks at the same subscription. Auto-renewal must not charge a second period on top of
/// the one just bought: it skips the row the payment holds (its next run sees the new
/// date). Reading the date without the row lock, it went on, waited for the balance row,
/// and charged again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_by_hand_during_auto_renewal_is_not_followed_by_a_second_charge() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(t0);
    let (app, s, emu) = services(&t, &clock).await;
    let p = Person {
        id: 1,
        auto_renew: true,
        balance: 2 * M1_PRICE,
        blocked: false,
    };
    person(&s, &p, Some(Grant::days(Kind::Paid, 30, Some("m1"))), t0).await;
    let expires = t0.as_millis() + 30 * D;
    clock.set(Timestamp::from_millis(expires - 2 * H));
    let plan = s
        .config
        .catalog
        .plans
        .iter()
        .find(|p| p.id == "m1")
        .unwrap()
        .clone();
    let base = s.config.catalog.bot.base_currency;
    // The user pays by hand; the transaction is open (the row is locked, not committed).
    let mut by_hand = t.db.begin().await.unwrap();
    let charge = BalanceCharge {
        user_id: 1,
        plan: &plan,
        reason: Reason::Purchase,
        reference: "button:1",
    };
    let paid = billing::pay_plan_from_balance(
        &mut by_hand,
        s.registry.enabled(),
        base,
        &charge,
        clock.now(),
    )
    .await
    .unwrap();
    assert!(matches!(paid, BalancePaid::Paid { .. }));
    let renewal = AutoRenewal::new(JobContext::of(&s, texts()));
    let run = tokio::spawn(async move { renewal.run_batch().await });
    // Auto-renewal has looked at the subscription: it finished (skipped the locked row) or
    // waits for a lock the open payment holds. Only then does the payment commit.
    let tollgate::store::Db::Postgres(pool) = &t.db else {
        unreachable!()
    };
    let start = tokio::time::Instant::now();
    while !run.is_finished() {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetch_one(pool).await.unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "auto-renewal neither finished nor waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    by_hand.commit().await.unwrap();
    run.await.unwrap().unwrap();
    // Its next run sees the new date, outside the 24 h window: nothing either.
    let renewal = AutoRenewal::new(JobContext::of(&s, texts()));
    assert_eq!(renewal.run_batch().await.unwrap(), 0);
    assert_eq!(renewal_debits(&s.db, 1).await, 0, "no second charge");
    assert_eq!(
        users::get(&s.db, 1).await.unwrap().unwrap().balance,
        M1_PRICE
    );
    let sub = access::subscription_for_user(&s.db, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sub.expires_at.as_millis(),
        expires + 30 * D,
        "one period added"
    );
    app.shutdown().await.unwrap();
    emu.shutdown().await;
}

/// The query plan of `sql` (SQLite's EXPLAIN QUERY PLAN details; PostgreSQL's EXPLAIN with
/// sequential scans priced out, so the plan shows whether an index *can* serve it).
async fn plan(db: &Db, sql: &str, binds: &[i64]) -> String {
    match db {
        Db::Sqlite(p) => {
            let text = format!("EXPLAIN QUERY PLAN {sql}");
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(text));
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_all(p)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.3)
                .collect::<Vec<_>>()
                .join("\n")
        }
        Db::Postgres(p) => {
            let mut c = p.acquire().await.unwrap();
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *c)
                .await
                .unwrap();
            let text = format!("EXPLAIN {sql}");
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(text));
            for b in binds {
                q = q.bind(*b);
            }
            let out = q.fetch_all(&mut *c).await.unwrap().join("\n");
            sqlx::query("RESET enable_seqscan")
                .execute(&mut *c)
                .await
                .unwrap();
            out
        }
    }
}

db_test!(async fn the_due_scans_are_index_ranges(t) {
    let now = 1_800_000_000_000_i64;
    let due = plan(&t.db, notices::DUE_QUERY, &[now, 500]).await;
    assert!(due.contains("subscriptions_next_notice"), "notices scan:\n{due}");
    // Neither table is scanned whole (SQLite says `SCAN <alias>` for a full scan).
    for table in ["s", "u", "subscriptions", "users"] {
        let scan = format!("SCAN {table}");
        assert!(!due.lines().any(|l| l.trim() == scan), "notices scan:\n{due}");
    }
    assert!(!due.contains("Seq Scan"), "notices scan:\n{due}");
    let binds = [now, now + D, 0, 500, now];
    // $6 is a boolean; EXPLAIN takes the same text with it written in.
    let sql = renewal::CANDIDATES_QUERY.replace("$6", "TRUE");
    let candidates = plan(&t.db, &sql, &binds).await;
    assert!(candidates.contains("subscriptions_expiry"), "auto-renewal scan:\n{candidates}");
});

db_test!(async fn housekeeping_runs_as_a_job_and_expires_only_unpaid_purchases(t) {
    use tollgate::housekeeping::Pruning;
    use tollgate::jobs::{JobRunner, Outcome, metrics::JobMetrics};
    let now = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(now);
    register_user_1(&t.db, now).await;
    // (status, expires_at, paid_at): past due unpaid, not yet due, paid though past due.
    let rows = [("pending", now.as_millis() - H, None), ("pending", now.as_millis() + H, None), ("paid", now.as_millis() - H, Some(now.as_millis() - 2 * H))];
    for (status, expires_at, paid_at) in rows {
        on_db!(&t.db, p => sqlx::query(
            "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at, paid_at)
             VALUES (1, 'plan', 'm1', 30, 14900, 'RUB', 'stars', $1, $2, $3, $4)"
        ).bind(status).bind(now.as_millis() - 3 * H).bind(expires_at).bind(paid_at).execute(p).await.map(|_| ())).unwrap();
    }
    // A message sent 40 days ago (retention 30 d) and one sent yesterday.
    for (key, finished) in [("old", now.as_millis() - 40 * D), ("new", now.as_millis() - D)] {
        on_db!(&t.db, p => sqlx::query(
            "INSERT INTO outbox (dedupe_key, chat_id, priority, method, payload, status, next_attempt_at, created_at, finished_at)
             VALUES ($1, 1, 1, 'sendMessage', '{}', 'sent', $2, $2, $2)"
        ).bind(key).bind(finished).execute(p).await.map(|_| ())).unwrap();
    }
    let pruning = Pruning::new(t.db.clone(), Arc::new(clock.clone()), Duration::from_secs(7 * 86_400), Duration::from_secs(30 * 86_400));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = JobMetrics::register(&mut registry);
    let runner = JobRunner::new(Arc::new(pruning), t.db.clone(), Arc::new(clock.clone()), "me".into(), metrics.clone());
    let mut lease = None;
    assert_eq!(runner.iteration(&mut lease).await, Outcome::Ok);
    let items = metrics.items.get_or_create(&tollgate::jobs::metrics::JobName { job: "housekeeping" }).get();
    assert_eq!(items, 2, "one message pruned, one purchase expired");
    let statuses: Vec<String> = on_db!(&t.db, p => sqlx::query_scalar("SELECT status FROM purchases ORDER BY id").fetch_all(p).await).unwrap();
    assert_eq!(statuses, ["expired", "pending", "paid"]);
    let keys: Vec<String> = on_db!(&t.db, p => sqlx::query_scalar("SELECT dedupe_key FROM outbox").fetch_all(p).await).unwrap();
    assert_eq!(keys, ["new"]);
    // Nothing left: the next iteration does nothing.
    assert_eq!(runner.iteration(&mut lease).await, Outcome::Ok);
    assert_eq!(metrics.items.get_or_create(&tollgate::jobs::metrics::JobName { job: "housekeeping" }).get(), 2);
});

db_test!(async fn unpaid_purchases_are_deleted_after_the_outbox_retention_unless_a_payment_names_them(t) {
    use tollgate::housekeeping::Pruning;
    let now = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(now);
    register_user_1(&t.db, now).await;
    // (status, expired how long ago): two past the 30 d retention (one of them named by a
    // payment), one within it, a paid one past it, a pending one that just ran out.
    let rows = [("expired", 40 * D), ("expired", 40 * D), ("expired", D), ("paid", 40 * D), ("pending", H)];
    for (status, ago) in rows {
        let expires_at = now.as_millis() - ago;
        let paid_at = (status == "paid").then_some(expires_at - H);
        on_db!(&t.db, p => sqlx::query(
            "INSERT INTO purchases (user_id, kind, plan_id, days, amount, currency, provider, status, created_at, expires_at, paid_at)
             VALUES (1, 'plan', 'm1', 30, 14900, 'RUB', 'stars', $1, $2, $3, $4)"
        ).bind(status).bind(expires_at - H).bind(expires_at).bind(paid_at).execute(p).await.map(|_| ())).unwrap();
    }
    on_db!(&t.db, p => sqlx::query(
        "INSERT INTO payments (purchase_id, user_id, provider, provider_payment_id, amount, currency, status, created_at)
         VALUES (2, 1, 'stars', 'charge-2', 100, 'XTR', 'captured', $1)"
    ).bind(now.as_millis() - 40 * D).execute(p).await.map(|_| ())).unwrap();
    let pruning = Pruning::new(t.db.clone(), Arc::new(clock.clone()), Duration::from_secs(7 * 86_400), Duration::from_secs(30 * 86_400));
    let stop = tokio_util::sync::CancellationToken::new();
    // The pending one is marked expired and the stale unnamed one deleted.
    assert_eq!(pruning.prune_until(&stop).await.unwrap(), 2);
    let left: Vec<(i64, String)> = on_db!(&t.db, p => sqlx::query_as("SELECT id, status FROM purchases ORDER BY id").fetch_all(p).await).unwrap();
    assert_eq!(left, [(2, "expired".to_owned()), (3, "expired".to_owned()), (4, "paid".to_owned()), (5, "expired".to_owned())]);
    // A month later the one expired yesterday and the one just expired go too; the paid one
    // and the one a payment names stay.
    clock.advance(Duration::from_secs(31 * 86_400));
    assert_eq!(pruning.prune_until(&stop).await.unwrap(), 2);
    let left: Vec<i64> = on_db!(&t.db, p => sqlx::query_scalar("SELECT id FROM purchases ORDER BY id").fetch_all(p).await).unwrap();
    assert_eq!(left, [2, 4]);
});

/// User 1, registered at `now` (the purchases' owner in the housekeeping tests).
async fn register_user_1(db: &Db, now: Timestamp) {
    let mut tx = db.begin().await.unwrap();
    let from = users::TelegramUser {
        id: 1,
        is_bot: false,
        first_name: "A".into(),
        last_name: None,
        username: None,
        language_code: None,
    };
    users::touch(&mut tx, &from, &[tollgate::config::Language::En], now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}
