//! docs/reliability.md D1, D3–D8, docs/product.md §4, §6: a simulated month with a controllable clock over a
//! population (trial, paid, gift, admin grant, auto-renewal with and without money, a top-up
//! an hour before expiry, users who blocked the bot). Every reminder, trial message, expiry
//! and renewal happens exactly once and at the right time, even when every iteration runs
//! twice (a second replica), and on PostgreSQL sessions in a non-UTC time zone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tollgate::access::{self, Grant, Kind};
use tollgate::app::{self, AppOptions, Plugged, Services};
use tollgate::billing::{Reason, ledger};
use tollgate::config::{Config, Env};
use tollgate::jobs::JobContext;
use tollgate::jobs::notices::Notices;
use tollgate::jobs::renewal::AutoRenewal;
use tollgate::time::{Clock, ManualClock, Timestamp};
use tollgate::{on_db, users};

use crate::common::TestDb;
use crate::common::telegram::{free_port, polling_env, with};
use crate::db_test;

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
/// Simulation step: every message must go out within one step of its due time.
const STEP: i64 = 30 * 60_000;

/// What the jobs are built from, taken from the service's parts as the service wires them.
/// The service's parts on `t`'s database at `clock`, without its background loops.
pub(crate) async fn services(
    t: &TestDb,
    clock: &ManualClock,
) -> (
    app::RunningApp,
    Services,
    telegram_emulator::RunningEmulator,
) {
    services_with(t, clock, &[]).await
}

/// [`services`] with `changes` to its environment.
pub(crate) async fn services_with(
    t: &TestDb,
    clock: &ManualClock,
    changes: &[(&str, &str)],
) -> (
    app::RunningApp,
    Services,
    telegram_emulator::RunningEmulator,
) {
    let emu = telegram_emulator::Emulator::start(
        telegram_emulator::EmulatorConfig::without_rate_limits(),
    )
    .await
    .unwrap();
    let port = free_port();
    let port = port.to_string();
    let mut changes = changes.to_vec();
    changes.push(("PORT", &port));
    let vars = with(polling_env(&t.url, &emu), &changes);
    let config = Config::load(&Env::from_pairs(vars)).expect("config");
    let slot: Arc<Mutex<Option<Services>>> = Arc::default();
    let keep = slot.clone();
    let options = AppOptions {
        clock: Arc::new(clock.clone()),
        ..AppOptions::default()
    };
    let app = app::start(config, options, move |s| {
        *keep.lock().unwrap() = Some(s.clone());
        let p = tollgate::app::bot(s)?;
        // The jobs are driven by the test, step by step.
        Ok(Plugged {
            handler: p.handler,
            components: Vec::new(),
            routes: p.routes,
        })
    })
    .await
    .unwrap();
    let s = slot.lock().unwrap().clone().unwrap();
    (app, s, emu)
}

pub(crate) struct Person {
    pub id: i64,
    pub auto_renew: bool,
    pub balance: i64,
    pub blocked: bool,
}

pub(crate) async fn person(s: &Services, p: &Person, grant: Option<Grant>, at: Timestamp) {
    let from = users::TelegramUser {
        id: p.id,
        is_bot: false,
        first_name: format!("U{}", p.id),
        last_name: None,
        username: None,
        language_code: Some("en".into()),
    };
    let mut tx = s.db.begin().await.unwrap();
    users::touch(&mut tx, &from, &s.config.catalog.bot.languages, at)
        .await
        .unwrap();
    users::set_auto_renew(&mut tx, p.id, p.auto_renew)
        .await
        .unwrap();
    if p.balance > 0 {
        ledger::change(
            &mut tx,
            p.id,
            p.balance,
            Reason::Admin,
            &format!("seed:{}", p.id),
            at,
        )
        .await
        .unwrap();
    }
    if let Some(g) = grant {
        access::grant_or_extend(&mut tx, s.registry.enabled(), p.id, &g, at)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    if p.blocked {
        users::mark_bot_blocked(&s.db, p.id, at).await.unwrap();
    }
}

/// Every queued message: dedupe key → (chat, created_at).
pub(crate) async fn outbox(s: &Services) -> BTreeMap<String, (i64, i64)> {
    let rows: Vec<(String, i64, i64)> = on_db!(&s.db, p => sqlx::query_as(
        "SELECT dedupe_key, chat_id, created_at FROM outbox"
    ).fetch_all(p).await)
    .unwrap();
    rows.into_iter().map(|(k, c, t)| (k, (c, t))).collect()
}

fn sent_to(out: &BTreeMap<String, (i64, i64)>, user: i64) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = out
        .iter()
        .filter(|(_, (c, _))| *c == user)
        .map(|(k, (_, t))| {
            // notice:<sub>:<expires_at>:<event> → <event>@<expires_at>; renewal keys as they are.
            let parts: Vec<&str> = k.split(':').collect();
            let name = if parts[0] == "notice" {
                parts[3].to_owned()
            } else {
                parts[0].to_owned()
            };
            (name, *t)
        })
        .collect();
    v.sort_by_key(|(_, t)| *t);
    v
}

/// Asserts `events` (name, at) were sent, each within one step after its due time, and
/// nothing else.
fn expect(user: i64, got: &[(String, i64)], want: &[(&str, i64)]) {
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    let want_names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, want_names, "user {user}: messages {got:?}");
    for ((name, at), (_, due)) in got.iter().zip(want) {
        assert!(
            *at >= *due && *at < due + STEP,
            "user {user}: {name} at {at}, due {due} (+{} min)",
            (at - due) / 60_000
        );
    }
}

db_test!(async fn a_month_of_reminders_trials_expiry_and_renewals_each_happen_once_on_time(t) {
    // Start on a step boundary so due times line up with ticks predictably.
    let t0 = Timestamp::from_millis(1_800_000_000_000 / STEP * STEP);
    let clock = ManualClock::new(t0);
    let (app, mut s, emu) = services(t, &clock).await;
    // On PostgreSQL the jobs run on the harness's sessions, which are in a non-UTC time zone
    // (docs/reliability.md C8): the schedule must not move.
    if let tollgate::store::Db::Postgres(p) = &t.db {
        let zone: String = sqlx::query_scalar("SHOW TimeZone").fetch_one(p).await.unwrap();
        assert_eq!(zone, crate::common::PG_TEST_TIME_ZONE);
        s.db = t.db.clone();
    }
    let texts = Arc::new(tollgate::i18n::Texts::load().unwrap());
    let notices = Notices::new(JobContext::of(&s, texts.clone()));
    let renewal = AutoRenewal::new(JobContext::of(&s, texts.clone()));
    let days = |kind, n, plan: Option<&str>| Some(Grant::days(kind, n, plan));
    let plain = |id| Person { id, auto_renew: false, balance: 0, blocked: false };
    // Who is who.
    person(&s, &plain(1), days(Kind::Trial, 3, None), t0).await; // trial
    person(&s, &plain(2), days(Kind::Paid, 30, Some("m1")), t0).await; // paid, lets it lapse
    person(&s, &plain(3), days(Kind::Gift, 10, None), t0).await; // gift
    person(&s, &plain(4), days(Kind::Admin, 2, None), t0).await; // admin grant shorter than 72 h
    person(&s, &Person { id: 5, auto_renew: true, balance: 14_900, blocked: false }, days(Kind::Paid, 20, Some("m1")), t0).await;
    person(&s, &Person { id: 6, auto_renew: true, balance: 0, blocked: false }, days(Kind::Paid, 12, Some("m1")), t0).await;
    person(&s, &Person { id: 7, auto_renew: false, balance: 0, blocked: true }, days(Kind::Paid, 5, Some("m1")), t0).await;
    person(&s, &Person { id: 8, auto_renew: true, balance: 14_900, blocked: true }, days(Kind::Paid, 8, Some("m1")), t0).await;
    person(&s, &plain(9), None, t0).await; // registered, never bought: nothing at all

    let mut now = t0.as_millis();
    let end = now + 31 * D;
    let mut topped_up = false;
    while now <= end {
        clock.set(Timestamp::from_millis(now));
        // User 6 tops up an hour before expiry (day 12).
        if !topped_up && now >= 12 * D + t0.as_millis() - H {
            let mut tx = s.db.begin().await.unwrap();
            ledger::change(&mut tx, 6, 14_900, Reason::TopUp, "late-topup", clock.now()).await.unwrap();
            tx.commit().await.unwrap();
            topped_up = true;
        }
        // Each job twice per step, as two replicas would.
        for _ in 0..2 {
            renewal.run_batch().await.unwrap();
            notices.run_batch().await.unwrap();
        }
        now += STEP;
    }

    let out = outbox(&s).await;
    let t0 = t0.as_millis();
    expect(1, &sent_to(&out, 1), &[("onboarding", t0 + 6 * H), ("trial-ending-86400", t0 + 2 * D), ("trial-ending-10800", t0 + 3 * D - 3 * H), ("expired", t0 + 3 * D)]);
    let paid = |e: i64| [("reminder-259200", e - 3 * D), ("reminder-86400", e - D), ("reminder-10800", e - 3 * H), ("expired", e)];
    expect(2, &sent_to(&out, 2), &paid(t0 + 30 * D));
    expect(3, &sent_to(&out, 3), &paid(t0 + 10 * D));
    // A 2-day admin grant: no 72 h reminder (the grant is shorter than the offset).
    expect(4, &sent_to(&out, 4), &paid(t0 + 2 * D)[1..]);
    // Auto-renewal with money: 72 h reminder, renewed as the 24 h window opens (no stale
    // 24 h or 3 h reminder for the old date), then the new period's reminders 30 days on.
    let e5 = t0 + 20 * D;
    expect(5, &sent_to(&out, 5), &[("reminder-259200", e5 - 3 * D), ("renewed", e5 - D)]);
    // No money: the reminders still come (nothing was renewed), one "top up" per period
    // though every run retried; the top-up an hour before expiry is picked up by the next
    // run; no expiry.
    let e6 = t0 + 12 * D;
    expect(6, &sent_to(&out, 6), &[("reminder-259200", e6 - 3 * D), ("reminder-86400", e6 - D), ("renew-short", e6 - D), ("reminder-10800", e6 - 3 * H), ("renewed", e6 - H)]);
    // Blocked users: still expire, still renew (their messages are queued like anyone's).
    expect(7, &sent_to(&out, 7), &paid(t0 + 5 * D));
    let e8 = t0 + 8 * D;
    expect(8, &sent_to(&out, 8), &[("reminder-259200", e8 - 3 * D), ("renewed", e8 - D)]);
    assert!(sent_to(&out, 9).is_empty());
    // No trial user got a paid reminder; no paid user a trial message.
    assert!(sent_to(&out, 1).iter().all(|(n, _)| !n.starts_with("reminder")));
    for u in 2..=8 {
        assert!(sent_to(&out, u).iter().all(|(n, _)| !n.starts_with("trial") && n != "onboarding"), "user {u}");
    }

    // State: who has access at the end, and money moved once per renewal.
    let active = |u: i64| {
        let s = s.clone();
        async move { access::subscription_for_user(&s.db, u).await.unwrap().unwrap().is_active(Timestamp::from_millis(end)) }
    };
    for u in [1, 2, 3, 4, 7] {
        assert!(!active(u).await, "user {u} expired");
    }
    for u in [5, 6, 8] {
        assert!(active(u).await, "user {u} renewed");
        let (n,): (i64,) = on_db!(&s.db, p => sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE user_id = $1 AND reason = 'renewal'"
        ).bind(u).fetch_one(p).await).unwrap();
        assert_eq!(n, 1, "user {u}: one renewal debit");
        assert_eq!(users::get(&s.db, u).await.unwrap().unwrap().balance, 0, "user {u}");
    }
    let renewed = access::subscription_for_user(&s.db, 5).await.unwrap().unwrap();
    assert_eq!(renewed.expires_at.as_millis(), e5 + 30 * D, "renewal extends from the old date");
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});

/// Everything the month leaves behind that must not depend on who ran the jobs: the queued
/// messages (by key), each user's balance, renewal debits and subscription end.
pub(crate) async fn outcome(db: &tollgate::store::Db) -> (Vec<String>, Vec<(i64, i64, i64, i64)>) {
    let keys: Vec<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT dedupe_key FROM outbox ORDER BY dedupe_key"
    ).fetch_all(p).await)
    .unwrap();
    let users: Vec<(i64, i64, i64, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT u.id, u.balance,
                (SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger l WHERE l.user_id = u.id AND l.reason = 'renewal'),
                COALESCE((SELECT s.expires_at FROM subscriptions s WHERE s.user_id = u.id), 0)
         FROM users u ORDER BY u.id"
    ).fetch_all(p).await).unwrap();
    (keys.into_iter().map(|k| k.0).collect(), users)
}

/// What one instance ends the month with, undisturbed: `populate`, then the auto-renewal and
/// notice jobs once every `step` (ms) from `t0` for 31 days — what a disturbed run must equal.
pub(crate) async fn undisturbed_month(
    t: &TestDb,
    changes: &[(&str, &str)],
    t0: Timestamp,
    step: i64,
    populate: impl AsyncFnOnce(&Services),
) -> (Vec<String>, Vec<(i64, i64, i64, i64)>) {
    let texts = Arc::new(tollgate::i18n::Texts::load().unwrap());
    let clock = ManualClock::new(t0);
    let (app, s, emu) = services_with(t, &clock, changes).await;
    populate(&s).await;
    let (n, r) = (
        Notices::new(JobContext::of(&s, texts.clone())),
        AutoRenewal::new(JobContext::of(&s, texts)),
    );
    let mut now = t0.as_millis();
    while now <= t0.as_millis() + 31 * D {
        clock.set(Timestamp::from_millis(now));
        r.run_batch().await.unwrap();
        n.run_batch().await.unwrap();
        now += step;
    }
    let got = outcome(&s.db).await;
    app.shutdown().await.unwrap();
    emu.shutdown().await;
    got
}

/// Subscriptions with a notice due at `now` (ms).
pub(crate) async fn due_notices(db: &tollgate::store::Db, now: i64) -> i64 {
    on_db!(db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE next_notice_at <= $1"
    ).bind(now).fetch_one(p).await)
    .unwrap()
}

/// A population of 40: every kind, lengths from 1 to 40 days, auto-renewal with enough,
/// too little or no money, some blocked.
async fn population(s: &Services, t0: Timestamp) {
    population_of(s, t0, |i| Person {
        id: 1000 + i,
        auto_renew: i % 3 == 0,
        balance: [0, 14_900, 29_800][(i % 3) as usize],
        blocked: i % 5 == 0,
    })
    .await;
}

/// Forty users `who(0..40)`, user `i` with a grant of kind trial, paid (plan `m1`), gift or
/// admin by `i % 4`, trials 3 days, the others `1 + i` days from `t0`.
pub(crate) async fn population_of(s: &Services, t0: Timestamp, who: impl Fn(i64) -> Person) {
    for i in 0..40_i64 {
        let kind = [Kind::Trial, Kind::Paid, Kind::Gift, Kind::Admin][(i % 4) as usize];
        let days = u32::try_from(1 + i % 40).unwrap();
        let plan = (kind == Kind::Paid).then_some("m1");
        let grant = Grant::days(kind, if kind == Kind::Trial { 3 } else { days }, plan);
        person(s, &who(i), Some(grant), t0).await;
    }
}

/// docs/reliability.md A5, D2–D5: three service instances on one PostgreSQL database (each with its
/// own pool and its own jobs) run the month concurrently and are killed at random mid-
/// iteration (their tasks aborted, so open transactions roll back, as with kill -9). The
/// result — every message, debit and date — equals a single undisturbed instance's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_killed_at_random_end_the_month_like_one() {
    use rand::{Rng, SeedableRng};
    let Some(reference_db) = TestDb::postgres().await else {
        return;
    };
    let Some(shared_db) = TestDb::postgres().await else {
        return;
    };
    let t0 = Timestamp::from_millis(1_800_000_000_000 / STEP * STEP);
    let end = t0.as_millis() + 31 * D;
    let texts = Arc::new(tollgate::i18n::Texts::load().unwrap());

    let want = undisturbed_month(&reference_db, &[], t0, 2 * H, async |s| {
        population(s, t0).await;
    })
    .await;
    assert!(
        want.0.len() > 100,
        "the month produced messages: {}",
        want.0.len()
    );

    // Three instances on one database, sharing the clock.
    let clock = ManualClock::new(t0);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(services(&shared_db, &clock).await);
    }
    population(&instances[0].1, t0).await;
    let jobs: Vec<(Arc<Notices>, Arc<AutoRenewal>)> = instances
        .iter()
        .map(|(_, s, _)| {
            (
                Arc::new(Notices::new(JobContext::of(s, texts.clone()))),
                Arc::new(AutoRenewal::new(JobContext::of(s, texts.clone()))),
            )
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut kills = 0;
    let mut now = t0.as_millis();
    while now <= end {
        clock.set(Timestamp::from_millis(now));
        let mut tasks = Vec::new();
        for (n, r) in &jobs {
            let (n, r) = (n.clone(), r.clone());
            tasks.push(tokio::spawn(async move {
                // Errors are what a killed sibling or a lost race may cause; the next step retries.
                let _ = r.run_batch().await;
                let _ = n.run_batch().await;
            }));
        }
        // Now and then one instance dies mid-iteration …
        let mut victim = None;
        if rng.random_bool(0.3) {
            let v = rng.random_range(0..tasks.len());
            tokio::time::sleep(std::time::Duration::from_micros(rng.random_range(0..3000))).await;
            tasks[v].abort();
            victim = Some(v);
            kills += 1;
        }
        for t in tasks {
            let _ = t.await;
        }
        // … and is restarted at once (seconds, against hours between events), running its
        // jobs again. What it lost is redone; nothing it did is done twice.
        if let Some(v) = victim {
            let (n, r) = &jobs[v];
            r.run_batch().await.unwrap();
            n.run_batch().await.unwrap();
        }
        // A notice skipped because a sibling held its row is retried by the next run — 30 s
        // later in production, long before the next event; here the next step is two hours on,
        // so retry first. An aborted task's transaction is rolled back when its connection
        // goes back to the pool (`Db::begin` is cancel-safe: `store_cancellation`); the 90 s
        // bound is far beyond that, and beyond the server's own end of an idle transaction
        // (`idle_in_transaction_session_timeout`, 60 s).
        let retry_until = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while due_notices(&shared_db.db, now).await > 0 {
            if std::time::Instant::now() >= retry_until {
                let sessions: Vec<(Option<String>, Option<String>, Option<String>)> =
                    on_db!(&shared_db.db, p => sqlx::query_as(
                    "SELECT state, CAST(backend_xid AS TEXT), left(query, 200) FROM pg_stat_activity
                     WHERE datname = current_database() AND state <> 'idle'"
                ).fetch_all(p).await)
                    .unwrap();
                let locks: Vec<(Option<String>, Option<String>, Option<i32>)> = on_db!(&shared_db.db, p => sqlx::query_as(
                    "SELECT locktype, mode, pid FROM pg_locks WHERE relation = 'subscriptions'::regclass"
                ).fetch_all(p).await).unwrap();
                panic!(
                    "notices still due after 90 s; sessions not idle {sessions:?}; locks {locks:?}"
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            jobs[0].0.run_batch().await.unwrap();
        }
        now += 2 * H;
    }
    // After the month, one quiet pass lets anything a kill interrupted at the very end finish.
    for (n, r) in &jobs {
        r.run_batch().await.unwrap();
        n.run_batch().await.unwrap();
    }
    assert!(kills > 50, "kills: {kills}");
    let got = outcome(&shared_db.db).await;
    assert_eq!(got.1, want.1, "balances, renewal debits and dates");
    assert_eq!(got.0, want.0, "messages");
    for (app, _, emu) in instances {
        app.shutdown().await.unwrap();
        emu.shutdown().await;
    }
}
