//! `tollgate import atcbot`: the earlier bot's tables, filled with the awkward data real
//! installations have (naive timestamps, expired and pending subscriptions, NULL and broken
//! UUIDs, a referrer who does not exist and one who joined later, balances that disagree with
//! their transaction log, duplicate usernames, languages the catalog does not ship), imported
//! into SQLite and PostgreSQL: every user's balance, expiry, UUID and referrer is checked, a
//! second run changes nothing, and a database with other users is refused without --merge.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use tollgate::access::{self, Kind};
use tollgate::billing::promo::{self, Benefit};
use tollgate::billing::{ledger, withdrawals};
use tollgate::config::{Config, Env, Language};
use tollgate::domain::money::Currency;
use tollgate::import::atcbot::{self, Options};
use tollgate::nodes::EnabledNodes;
use tollgate::time::{Clock, SystemClock, Timestamp};
use tollgate::users;
use uuid::Uuid;

use crate::common::service::{base_env, run_to_end};
use crate::common::{TestDb, pg_pool};
use crate::db_test;

/// The earlier bot's tables at their last audited shape (shared with the import benchmark).
pub const SCHEMA: &str = include_str!("../fixtures/atcbot_schema.sql");

/// A fresh PostgreSQL database holding the earlier bot's tables, filled by `fill`.
pub async fn old_bot_database() -> Option<(TestDb, PgPool)> {
    let source = TestDb::postgres_with(false).await?;
    // An odd session zone: naive timestamps must come out as UTC whatever the zone.
    let pool = pg_pool(&source.url, Some("Asia/Kolkata"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(SCHEMA))
        .execute(&pool)
        .await
        .unwrap();
    Some((source, pool))
}

const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";
const U3: &str = "33333333-3333-4333-8333-333333333333";

struct Fixture {
    now: Timestamp,
    alice_expires: i64,
    bob_expires: i64,
}

async fn fill(pool: &PgPool) -> Fixture {
    let now = SystemClock.now();
    let secs = now.as_unix_seconds();
    let alice_expires = secs + 30 * 86_400;
    let bob_expires = secs + 2 * 86_400;
    // In registration order (users.id): telegram id, username, language, balance.
    let users: [(i64, Option<&str>, Option<&str>, i32); 6] = [
        (1001, Some("alice"), Some("ru"), 15_000),
        (1002, Some("bob"), Some("en"), 0),
        (1003, Some("Alice"), Some("de"), 500),
        (1004, None, None, 250),
        (1005, Some("eve"), Some("kk"), 0),
        (1006, Some("mallory"), Some("en"), 0),
    ];
    for (tg, name, lang, balance) in users {
        sqlx::query("INSERT INTO users (telegram_id, username, language, balance, created_at) VALUES ($1, $2, $3, $4, to_timestamp($5))")
            .bind(tg).bind(name).bind(lang).bind(balance).bind((secs - 90 * 86_400 + tg) as f64)
            .execute(pool).await.unwrap();
    }
    for sql in [
        // A naive trial date, written as UTC by the earlier bot.
        "UPDATE users SET trial_used_at = '2026-01-02 03:04:05', trial_expires_at = '2026-01-05 03:04:05' WHERE telegram_id = 1001",
        "UPDATE users SET referrer_id = 1001 WHERE telegram_id = 1002",
        // Referral codes: links already shared keep crediting; one that cannot be a link.
        "UPDATE users SET referral_code = 'alice_2024' WHERE telegram_id = 1001",
        "UPDATE users SET referral_code = 'Bob-7' WHERE telegram_id = 1002",
        "UPDATE users SET referral_code = 'has space' WHERE telegram_id = 1003",
        // A referrer who does not exist.
        "UPDATE users SET referrer_id = 999999 WHERE telegram_id = 1003",
        // A referrer who joined after the user; unreachable.
        "UPDATE users SET referrer_id = 1005, is_reachable = FALSE WHERE telegram_id = 1004",
        // The other spelling of a referrer some installations write.
        "UPDATE users SET referred_by = 1002 WHERE telegram_id = 1005",
        // A ledger that disagrees with the balance (users.balance is the truth).
        "INSERT INTO balance_transactions (user_id, amount, type) VALUES (1003, 300, 'topup'), (1001, 15000, 'topup')",
        // Withdrawals: #1 still owed, #2 decided, #3 owed to someone who is not a user.
        "INSERT INTO withdrawal_requests (telegram_id, amount, requisites, status, created_at) VALUES (1001, 5000, 'card 2200 0000 1111', 'pending', '2026-11-30 10:00:00+00'), (1002, 100, NULL, 'approved', now()), (999999, 700, 'x', 'pending', now())",
        // Promo codes: two live (one lower-case), one expired, one deleted, one used up, one
        // that cannot be a code here.
        "INSERT INTO promo_codes (code, discount_percent, max_uses, used_count, is_active, expires_at, deleted_at) VALUES
            ('SPRING', 10, 100, 7, TRUE, NULL, NULL), ('summer', 15, NULL, 0, TRUE, now() + interval '30 days', NULL),
            ('OLD', 5, NULL, 0, TRUE, now() - interval '1 day', NULL), ('GONE', 5, NULL, 0, TRUE, NULL, now()),
            ('FULL', 20, 5, 5, TRUE, NULL, NULL), ('x!', 10, NULL, 0, TRUE, NULL, NULL)",
        // Personal discounts: Bob's own; Alice a VIP; 1003's has ended.
        "INSERT INTO user_discounts (telegram_id, discount_percent, expires_at) VALUES (1002, 15, now() + interval '10 days'), (1003, 20, now() - interval '1 day')",
        "INSERT INTO vip_users (telegram_id) VALUES (1001), (1002)",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .unwrap();
    }
    // telegram id, expiry, uuid, status, source, auto-renew, activation.
    type OldSubscription<'a> = (i64, i64, Option<&'a str>, &'a str, &'a str, bool, &'a str);
    let subscriptions: [OldSubscription; 6] = [
        (
            1001,
            alice_expires,
            Some(U1),
            "active",
            "payment",
            true,
            "active",
        ),
        (
            1002,
            bob_expires,
            Some(U2),
            "active",
            "trial",
            false,
            "active",
        ),
        // Still marked active but past its date.
        (
            1003,
            secs - 86_400,
            Some(U3),
            "active",
            "payment",
            false,
            "active",
        ),
        // Activation never finished: no UUID.
        (
            1004,
            secs + 10 * 86_400,
            None,
            "active",
            "payment",
            false,
            "pending",
        ),
        (
            1005,
            secs - 5 * 86_400,
            None,
            "expired",
            "admin",
            false,
            "active",
        ),
        (
            1006,
            secs + 10 * 86_400,
            Some("not-a-uuid"),
            "active",
            "payment",
            false,
            "active",
        ),
    ];
    for (tg, expires, uuid, status, source, renew, activation) in subscriptions {
        sqlx::query("INSERT INTO subscriptions (telegram_id, expires_at, uuid, status, source, auto_renew, activation_status) VALUES ($1, to_timestamp($2), $3, $4, $5, $6, $7)")
            .bind(tg).bind(expires as f64).bind(uuid).bind(status).bind(source).bind(renew).bind(activation)
            .execute(pool).await.unwrap();
    }
    Fixture {
        now,
        alice_expires,
        bob_expires,
    }
}

fn catalog(t: &TestDb) -> tollgate::config::catalog::Catalog {
    Config::load(&Env::from_pairs(base_env(&t.url)))
        .expect("example config")
        .catalog
}

fn skipped(report: &tollgate::import::Report) -> HashMap<String, String> {
    report
        .skipped
        .iter()
        .map(|s| (s.what.clone(), s.reason.clone()))
        .collect()
}

db_test!(async fn the_earlier_bots_users_money_and_keys_come_over_once(t) {
    let Some((_source, pool)) = old_bot_database().await else { return };
    let f = fill(&pool).await;
    let catalog = catalog(t);
    let nodes = EnabledNodes::new(["old-server"]);
    let options = Options { renew_plan: Some("m1".to_owned()), ..Options::default() };

    // A dry run writes nothing and says what it would do.
    let dry = atcbot::run(&pool, &t.db, &catalog, &nodes, &Options { dry_run: true, ..options.clone() }, f.now).await.unwrap();
    assert_eq!((dry.users_read, dry.users_created, dry.subscriptions_created), (6, 6, 2), "{dry}");
    assert_eq!((dry.withdrawals_created, dry.promo_codes_created, dry.discounts_set), (1, 2, 2), "{dry}");
    assert!(users::ids(&t.db).await.unwrap().is_empty(), "a dry run writes nothing");

    let report = atcbot::run(&pool, &t.db, &catalog, &nodes, &options, f.now).await.unwrap();
    assert_eq!(report.users_created, 6, "{report}");
    assert_eq!(report.subscriptions_created, 2, "{report}");
    assert_eq!(report.balances_opened, 3, "{report}");
    assert_eq!(report.balance_total, 15_750, "{report}");
    assert_eq!(report.referrers_set, 2, "{report}");
    let skips = skipped(&report);
    for (what, needle) in [
        ("referrer of 1003", "999999 is not a user"),
        ("subscription of 1003", "expired"),
        ("referrer of 1004", "joined after"),
        ("subscription of 1004", "pending"),
        ("subscription of 1005", "not active"),
        ("subscription of 1006", "not a UUID"),
        ("referral code of 1003", "cannot be a ref_<code> link"),
        ("withdrawal 3 of 999999", "700 kopecks are still owed"),
        ("promo code \"FULL\"", "used up (5 of 5 uses)"),
        ("promo code \"x!\"", "letters, digits"),
    ] {
        let reason = skips.get(what).unwrap_or_else(|| panic!("{what} not reported: {report}"));
        assert!(reason.contains(needle), "{what}: {reason}");
    }
    let notes = report.notes.join("\n");
    for needle in ["1003 (balance 500, transactions 300)", "\"de\"", "\"kk\"", "share the username @Alice"] {
        assert!(notes.contains(needle), "note {needle:?} missing:\n{notes}");
    }

    // Every user: balance, language, referrer, trial; every key: UUID and expiry.
    let u = |id| {
        let db = t.db.clone();
        async move { users::get(&db, id).await.unwrap().unwrap_or_else(|| panic!("user {id}")) }
    };
    let alice = u(1001).await;
    assert_eq!((alice.balance, alice.language.as_str(), alice.referrer_id, alice.auto_renew), (15_000, "ru", None, true));
    assert_eq!(alice.referral_code, "alice_2024", "links already shared keep crediting alice");
    // 2026-01-02T03:04:05Z, whatever the session's zone.
    assert_eq!(alice.trial_used_at, Some(Timestamp::from_unix_seconds(1_767_323_045)));
    let bob = u(1002).await;
    assert_eq!((bob.balance, bob.language.as_str(), bob.referrer_id), (0, "en", Some(1001)));
    assert!(bob.trial_used_at.is_some(), "a trial subscription marks the trial used");
    assert_eq!(bob.referral_code, "Bob-7");
    let alice2 = u(1003).await;
    assert!(users::is_referral_code(&alice2.referral_code) && alice2.referral_code != "has space");
    assert_eq!((alice2.balance, alice2.referrer_id, alice2.username.as_deref()), (500, None, Some("Alice")));
    assert_eq!(alice2.language, Language::En.code(), "unknown languages get the catalog's first");
    let anon = u(1004).await;
    assert_eq!((anon.balance, anon.referrer_id), (250, None));
    assert!(anon.bot_blocked_at.is_some(), "unreachable in the earlier bot");
    let eve = u(1005).await;
    assert_eq!((eve.referrer_id, eve.language.as_str()), (Some(1002), "en"));
    assert_eq!(u(1006).await.balance, 0);

    let sub = |id| {
        let db = t.db.clone();
        async move { access::subscription_for_user(&db, id).await.unwrap() }
    };
    let a = sub(1001).await.expect("alice keeps her access");
    assert_eq!(a.vpn_uuid, Uuid::parse_str(U1).unwrap());
    assert_eq!(a.expires_at, Timestamp::from_unix_seconds(f.alice_expires));
    assert_eq!((a.kind, a.plan_id.as_deref()), (Kind::Paid, Some("m1")));
    let b = sub(1002).await.expect("bob keeps his trial");
    assert_eq!(b.vpn_uuid, Uuid::parse_str(U2).unwrap());
    assert_eq!(b.expires_at, Timestamp::from_unix_seconds(f.bob_expires));
    assert_eq!((b.kind, b.plan_id.as_deref()), (Kind::Trial, None));
    for id in [1003, 1004, 1005, 1006] {
        assert!(sub(id).await.is_none(), "user {id} gets no subscription");
    }
    // Money still owed waits in the console like any request; its amount left the balance there.
    assert_eq!((report.withdrawals_created, report.withdrawal_total), (1, 5_000), "{report}");
    let owed = withdrawals::of_user(&t.db, 1001, 10).await.unwrap();
    assert_eq!(owed.len(), 1);
    assert_eq!((owed[0].amount.minor, owed[0].status, owed[0].requisites.as_str()), (5_000, withdrawals::Status::Pending, "card 2200 0000 1111"));
    assert_eq!(owed[0].created_at, Timestamp::from_unix_seconds(1_796_032_800));
    assert!(withdrawals::of_user(&t.db, 1002, 10).await.unwrap().is_empty(), "a decided request is history");
    // Live codes keep their percent, limit, uses and end; case-insensitive codes upper-cased.
    assert_eq!(report.promo_codes_created, 2, "{report}");
    let codes = promo::list(&t.db, Currency::Rub, 50).await.unwrap();
    let spring = codes.iter().find(|c| c.code == "SPRING").expect("SPRING imported");
    assert_eq!((spring.benefit, spring.max_uses, spring.used, spring.ends_at), (Benefit::Percent(10), Some(100), 7, None));
    let summer = codes.iter().find(|c| c.code == "SUMMER").expect("summer imported as SUMMER");
    assert_eq!((summer.benefit, summer.max_uses), (Benefit::Percent(15), None));
    assert!(summer.ends_at.is_some_and(|t| t > f.now) && summer.live(f.now));
    assert_eq!(codes.len(), 2, "{codes:?}");
    // Personal discounts: Bob's own, Alice's VIP 30 %, none for an ended one.
    assert_eq!(report.discounts_set, 2, "{report}");
    let d = |id| {
        let db = t.db.clone();
        async move { promo::personal(&db, id, f.now).await.unwrap().map(|p| (p.percent, p.until.is_some())) }
    };
    assert_eq!(d(1001).await, Some((30, false)));
    assert_eq!(d(1002).await, Some((15, true)));
    assert_eq!(d(1003).await, None);

    // One opening entry per balance.
    let entries = ledger::recent(&t.db, 1001, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].delta, entries[0].reference.as_str()), (15_000, "import:atcbot:1001"));

    // A second run changes nothing.
    let again = atcbot::run(&pool, &t.db, &catalog, &nodes, &options, SystemClock.now()).await.unwrap();
    assert!(again.changed_nothing(), "{again}");
    assert_eq!(again.users_present, 6);
    assert_eq!(u(1001).await.balance, 15_000);
    assert_eq!(ledger::recent(&t.db, 1001, 10).await.unwrap().len(), 1);
    assert_eq!(sub(1001).await.unwrap(), a);
    assert_eq!(withdrawals::of_user(&t.db, 1001, 10).await.unwrap(), owed);
    assert_eq!(promo::list(&t.db, Currency::Rub, 50).await.unwrap(), codes);
});

db_test!(async fn a_database_with_other_users_is_refused_unless_merging(t) {
    let Some((_source, pool)) = old_bot_database().await else { return };
    let f = fill(&pool).await;
    let catalog = catalog(t);
    let nodes = EnabledNodes::new(Vec::<String>::new());
    let mut tx = t.db.begin().await.unwrap();
    let stranger = users::ImportedUser {
        id: 42,
        username: Some("native".to_owned()),
        language: Language::En,
        auto_renew: false,
        trial_used_at: None,
        bot_blocked_at: None,
        created_at: f.now,
        // Bob's code in the earlier bot: taken here, so Bob gets a new one (reported).
        referral_code: Some("Bob-7".to_owned()),
    };
    assert!(users::import(&mut tx, &stranger, f.now).await.unwrap().is_some());
    // Alice started this bot before the import: she is left as she is, and what the earlier
    // bot still owes her is reported, not merged into her account.
    let alice_here = users::ImportedUser { id: 1001, username: Some("alice".to_owned()), referral_code: None, ..stranger.clone() };
    assert!(users::import(&mut tx, &alice_here, f.now).await.unwrap().is_some());
    tx.commit().await.unwrap();
    let refused = atcbot::run(&pool, &t.db, &catalog, &nodes, &Options::default(), f.now).await.unwrap_err();
    let text = format!("{refused:#}");
    assert!(text.contains("--merge") && text.contains("[42]"), "{text}");
    assert_eq!(users::ids(&t.db).await.unwrap(), vec![42, 1001]);
    let merged = atcbot::run(&pool, &t.db, &catalog, &nodes, &Options { merge: true, ..Options::default() }, f.now).await.unwrap();
    assert_eq!((merged.users_created, merged.users_present), (5, 1), "{merged}");
    let reason = skipped(&merged).remove("withdrawal 1 of 1001").unwrap_or_else(|| panic!("not reported: {merged}"));
    assert!(reason.contains("left as they are") && reason.contains("5000 kopecks"), "{reason}");
    assert!(withdrawals::of_user(&t.db, 1001, 10).await.unwrap().is_empty());
    assert_eq!(users::get(&t.db, 1001).await.unwrap().unwrap().balance, 0, "her balance here is hers");
    let bob = users::get(&t.db, 1002).await.unwrap().unwrap();
    assert_ne!(bob.referral_code, "Bob-7");
    let reason = skipped(&merged).remove("referral code of 1002").unwrap_or_else(|| panic!("not reported: {merged}"));
    assert!(reason.contains("belongs to another user") && reason.contains(&bob.referral_code), "{reason}");
    assert_eq!(users::get(&t.db, 42).await.unwrap().unwrap().username.as_deref(), Some("native"));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_dry_run_lists_every_row_it_cannot_take() {
    let Some((source, pool)) = old_bot_database().await else {
        return;
    };
    fill(&pool).await;
    let t = TestDb::sqlite_with(false).await;
    let env = base_env(&t.url);
    let (status, out, err) = tokio::time::timeout(
        Duration::from_secs(60),
        run_to_end(
            &["import", "atcbot", "--from", &source.url, "--dry-run"],
            &env,
        ),
    )
    .await
    .unwrap();
    assert!(status.success(), "{out}{err}");
    for needle in [
        "skipped subscription of 1006: \"not-a-uuid\" is not a UUID",
        "skipped referrer of 1003",
        "6 users read; 6 would be created",
        "dry run: nothing was written",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    // A source that is not the earlier bot's database is refused with what to check.
    let (status, _, err) = run_to_end(
        &["import", "atcbot", "--from", &crate::common::pg_admin_url()],
        &env,
    )
    .await;
    assert!(!status.success());
    assert!(err.contains("no users table"), "{err}");
}

db_test!(async fn an_imported_users_old_link_connects_through_tollgate_node(t) {
    use std::sync::Arc;
    use tollgate::access::ProvisioningSummary;
    use tollgate_node::testing::{FetchError, HELLO_BODY, Origin, V2Ray, http_get_via_socks5, share_link_for, start_client_core};

    use crate::common::nodes::{Stack, TestNode, catalog as node_catalog};
    use crate::common::wait_for;

    let Some(v2ray) = V2Ray::or_skip("an_imported_users_old_link_connects_through_tollgate_node") else { return };
    let Some((_source, pool)) = old_bot_database().await else { return };
    let f = fill(&pool).await;
    // The old server now runs V2Ray with tollgate-node; its inbound is the one the earlier
    // bot's links point at, so the link Alice has is this one.
    let node = TestNode::start(&v2ray, "old-server").await;
    let old_link = share_link_for(&node.core, &Uuid::parse_str(U1).unwrap(), "Atlas Secure");
    let origin = Origin::start().await.unwrap();
    let cat = node_catalog(&[&node], &[]);
    let stack = Stack::new(&t.db, &cat, Arc::new(SystemClock), |_| {});
    let running = stack.run_provisioning();

    let client = start_client_core(&v2ray, &old_link).await.unwrap();
    let hello = origin.url("/hello");
    let fetch = || http_get_via_socks5(client.socks_addr(), &hello, Duration::from_secs(10));
    assert!(matches!(fetch().await, Err(FetchError::Refused)), "before the import the node does not know the key");

    let report = atcbot::run(&pool, &t.db, &cat, stack.enabled(), &Options::default(), f.now).await.unwrap();
    assert_eq!(report.subscriptions_created, 2, "{report}");
    stack.wake.wake();
    let alice = access::subscription_for_user(&t.db, 1001).await.unwrap().unwrap();
    wait_for("Alice's key on the node", Duration::from_secs(20), || async {
        let state = access::provisioning_state(&t.db, &alice, stack.enabled(), SystemClock.now()).await.unwrap();
        (state.summary() == ProvisioningSummary::Ready).then_some(())
    }).await;
    let page = fetch().await.expect("the old link connects");
    assert_eq!((page.status, page.text().as_str()), (200, HELLO_BODY));
    // A key that was not imported (Alice's namesake's expired one) stays refused.
    let expired = start_client_core(&v2ray, &share_link_for(&node.core, &Uuid::parse_str(U3).unwrap(), "old")).await.unwrap();
    let refused = http_get_via_socks5(expired.socks_addr(), &origin.url("/hello"), Duration::from_secs(10)).await;
    assert!(matches!(refused, Err(FetchError::Refused)), "{refused:?}");
    running.stop().await;
});
