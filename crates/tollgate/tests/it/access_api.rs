//! The access API on both backends: entitlement rules, intent rows per node, reissue order,
//! revocation, and serialization of expiry with renewal (docs/reliability.md E2, E3, E8, E9, H4).

use std::sync::Arc;
use std::time::Duration;

use tollgate::access::{
    self, AccessError, ExpireOutcome, Grant, GrantChange, Kind, Length, NodeReadiness,
    ProvisioningSummary, Status,
};
use tollgate::nodes::EnabledNodes;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::Timestamp;
use uuid::Uuid;

use crate::common::nodes::{ensure_user, exec, grant};
use crate::db_test;

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn nodes() -> EnabledNodes {
    EnabledNodes::new(["a", "b"])
}

/// (node, email, desired, observed, retire_after) of a subscription's rows.
async fn rows_of(db: &Db, sub: i64) -> Vec<(String, Uuid, String, String, Option<Uuid>)> {
    on_db!(db, p => sqlx::query_as(
        "SELECT node, vpn_uuid, desired, observed, retire_after FROM node_memberships
         WHERE subscription_id = $1 ORDER BY node, desired DESC"
    ).bind(sub).fetch_all(p).await)
    .unwrap()
}

async fn grant_with(
    db: &Db,
    user: i64,
    g: &Grant,
    now: Timestamp,
) -> Result<access::Granted, AccessError> {
    let mut tx = db.begin().await.unwrap();
    let r = access::grant_or_extend(&mut tx, &nodes(), user, g, now).await;
    if r.is_ok() {
        tx.commit().await.unwrap();
    }
    r
}

async fn paid(db: &Db, user: i64, days: u32, now: Timestamp) -> access::Granted {
    grant_with(db, user, &Grant::days(Kind::Paid, days, Some("m1")), now)
        .await
        .unwrap()
}

db_test!(async fn a_second_grant_extends_with_the_same_key(t) {
    ensure_user(&t.db, 1).await;
    let first = paid(&t.db, 1, 30, at(T0)).await;
    assert_eq!(first.change, GrantChange::Created);
    let s = &first.subscription;
    assert_eq!(s.expires_at, at(T0 + 30 * DAY));
    assert_eq!(s.token.expose().len(), 32, "24 random bytes, base64url");
    assert_eq!(s.vpn_uuid.get_version_num(), 4);
    let rows = rows_of(&t.db, s.id).await;
    assert_eq!(rows.len(), 2);
    for (node, uuid, desired, observed, _) in &rows {
        assert!(node == "a" || node == "b");
        assert_eq!((uuid, desired.as_str(), observed.as_str()), (&s.vpn_uuid, "present", "absent"));
    }

    let second = paid(&t.db, 1, 30, at(T0 + DAY)).await;
    assert_eq!(second.change, GrantChange::Extended { previous_expires_at: at(T0 + 30 * DAY) });
    let s2 = &second.subscription;
    assert_eq!(s2.expires_at, at(T0 + 60 * DAY));
    assert_eq!((s2.id, s2.vpn_uuid, &s2.token), (s.id, s.vpn_uuid, &s.token));
    assert_eq!(s2.starts_at, s.starts_at, "an extension keeps the period's start");
    assert_eq!(rows_of(&t.db, s.id).await.len(), 2, "no new rows for the same key");
});

db_test!(async fn extension_math_at_the_boundaries(t) {
    // user 1: one millisecond left; 2: expires exactly now; 3: expired a year ago.
    for (user, expires) in [(1, T0 + 1), (2, T0), (3, T0 - 365 * DAY)] {
        ensure_user(&t.db, user).await;
        paid(&t.db, user, 10, at(expires - 10 * DAY)).await;
    }
    let active = paid(&t.db, 1, 30, at(T0)).await;
    assert_eq!(active.subscription.expires_at, at(T0 + 1 + 30 * DAY));
    assert!(matches!(active.change, GrantChange::Extended { .. }));
    for user in [2, 3] {
        let renewed = paid(&t.db, user, 30, at(T0)).await;
        assert_eq!(renewed.subscription.expires_at, at(T0 + 30 * DAY), "user {user}");
        assert!(matches!(renewed.change, GrantChange::Renewed { .. }));
        assert_eq!(renewed.subscription.starts_at, at(T0), "a renewal starts a new period");
    }
    // No sentinel dates: absurd lengths are refused and nothing is stored.
    for bad in [Length::Days(0), Length::Days(100_000), Length::Until(at(T0 - 1))] {
        let g = Grant { kind: Kind::Admin, length: bad, plan_id: None };
        assert!(matches!(grant_with(&t.db, 1, &g, at(T0)).await, Err(AccessError::InvalidGrant(_))));
    }
    let s = access::subscription_for_user(&t.db, 1).await.unwrap().unwrap();
    assert_eq!(s.expires_at, at(T0 + 1 + 30 * DAY));
    // A trial grant over an active paid subscription does not turn it into a trial.
    let g = Grant::days(Kind::Trial, 3, None);
    let after = grant_with(&t.db, 1, &g, at(T0)).await.unwrap().subscription;
    assert_eq!((after.kind, after.plan_id.as_deref()), (Kind::Paid, Some("m1")));
});

db_test!(async fn grants_need_a_registered_user(t) {
    let e = grant_with(&t.db, 404, &Grant::days(Kind::Paid, 30, None), at(T0)).await.unwrap_err();
    assert!(matches!(e, AccessError::UnknownUser(404)), "{e:?}");
});

db_test!(async fn revoke_takes_access_away_and_a_new_grant_issues_a_new_key(t) {
    let s = grant(&t.db, &nodes(), 1, 30, at(T0)).await;
    let mut tx = t.db.begin().await.unwrap();
    let revoked = access::revoke(&mut tx, s.id, at(T0 + DAY)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(revoked.status(at(T0 + DAY)), Status::Revoked);
    assert!(rows_of(&t.db, s.id).await.iter().all(|r| r.2 == "absent"));
    assert!(access::by_token(&t.db, s.token.expose()).await.unwrap().is_none(), "revoked token → nothing");
    // Idempotent.
    let mut tx = t.db.begin().await.unwrap();
    assert_eq!(access::revoke(&mut tx, s.id, at(T0 + 2 * DAY)).await.unwrap().revoked_at, Some(at(T0 + DAY)));
    tx.commit().await.unwrap();

    // Paying again after a revocation: a new period with a new key; the old token stays dead.
    let again = paid(&t.db, 1, 30, at(T0 + 3 * DAY)).await;
    assert_eq!(again.change, GrantChange::Reactivated);
    let s2 = again.subscription;
    assert_eq!(s2.id, s.id);
    assert_ne!(s2.vpn_uuid, s.vpn_uuid);
    assert_ne!(s2.token, s.token);
    assert_eq!(s2.expires_at, at(T0 + 33 * DAY), "the revoked remainder is not given back");
    assert!(access::by_token(&t.db, s.token.expose()).await.unwrap().is_none());
    assert_eq!(access::by_token(&t.db, s2.token.expose()).await.unwrap().unwrap().id, s.id);
    let retired: i64 = on_db!(&t.db, p => sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM retired_keys WHERE vpn_uuid = $1 AND token = $2"
    ).bind(s.vpn_uuid).bind(s.token.expose()).fetch_one(p).await).unwrap();
    assert_eq!(retired, 1);
});

db_test!(async fn reissue_wants_the_new_key_and_retires_the_old_after_it(t) {
    let s = grant(&t.db, &nodes(), 1, 30, at(T0)).await;
    exec(&t.db, "UPDATE node_memberships SET observed = 'present'").await;
    let mut tx = t.db.begin().await.unwrap();
    let s2 = access::reissue(&mut tx, &nodes(), s.id, at(T0 + DAY)).await.unwrap();
    tx.commit().await.unwrap();
    assert_ne!(s2.vpn_uuid, s.vpn_uuid);
    assert_ne!(s2.node_email(), s.node_email());
    assert_eq!(s2.expires_at, s.expires_at, "a reissue changes the key, not the period");
    let rows = rows_of(&t.db, s.id).await;
    assert_eq!(rows.len(), 4);
    for node in ["a", "b"] {
        let new = rows.iter().find(|r| r.0 == node && r.1 == s2.vpn_uuid).unwrap();
        assert_eq!((new.2.as_str(), new.3.as_str(), new.4), ("present", "absent", None));
        let old = rows.iter().find(|r| r.0 == node && r.1 == s.vpn_uuid).unwrap();
        assert_eq!((old.2.as_str(), old.3.as_str(), old.4), ("absent", "present", Some(s2.vpn_uuid)));
    }
    assert!(access::by_token(&t.db, s.token.expose()).await.unwrap().is_none(), "the old token stops at once");
    assert!(access::by_token(&t.db, s2.token.expose()).await.unwrap().is_some());

    // A second reissue before the first settled: every old key now waits for the newest.
    let mut tx = t.db.begin().await.unwrap();
    let s3 = access::reissue(&mut tx, &nodes(), s.id, at(T0 + 2 * DAY)).await.unwrap();
    tx.commit().await.unwrap();
    let rows = rows_of(&t.db, s.id).await;
    assert_eq!(rows.len(), 6);
    for r in rows.iter().filter(|r| r.1 != s3.vpn_uuid && r.3 != "absent") {
        assert_eq!(r.4, Some(s3.vpn_uuid), "{r:?}");
    }
});

db_test!(async fn expire_is_idempotent_and_respects_renewals(t) {
    let s = grant(&t.db, &nodes(), 1, 30, at(T0)).await;
    let expire = async |now: i64| {
        let mut tx = t.db.begin().await.unwrap();
        let r = access::expire(&mut tx, s.id, at(now)).await.unwrap();
        tx.commit().await.unwrap();
        r
    };
    assert_eq!(expire(T0 + DAY).await, ExpireOutcome::StillActive { expires_at: at(T0 + 30 * DAY) });
    assert_eq!(expire(T0 + 30 * DAY).await, ExpireOutcome::Expired { changed_rows: 2 });
    assert_eq!(expire(T0 + 31 * DAY).await, ExpireOutcome::Expired { changed_rows: 0 });
    assert!(rows_of(&t.db, s.id).await.iter().all(|r| r.2 == "absent"));
    // An expired subscription keeps its feed (the nodes refuse it); renewal wants the key again.
    assert!(access::by_token(&t.db, s.token.expose()).await.unwrap().is_some());
    paid(&t.db, 1, 30, at(T0 + 40 * DAY)).await;
    assert!(rows_of(&t.db, s.id).await.iter().all(|r| r.2 == "present"));
    assert!(matches!(expire(T0 + 41 * DAY).await, ExpireOutcome::StillActive { .. }));
    let mut tx = t.db.begin().await.unwrap();
    access::revoke(&mut tx, s.id, at(T0 + 42 * DAY)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(expire(T0 + 99 * DAY).await, ExpireOutcome::Revoked);
    let mut tx = t.db.begin().await.unwrap();
    assert!(matches!(access::expire(&mut tx, 9999, at(T0)).await, Err(AccessError::NotFound(9999))));
});

// Expiry and renewal of one subscription, racing in both orders, always end with the
// renewal's effect: active and wanted on every node (the row lock serializes them).
db_test!(async fn expiry_and_renewal_are_serialized(t) {
    for (user, expiry_first) in [(1, true), (2, false), (3, true), (4, false)] {
        let s = grant(&t.db, &nodes(), user, 1, at(T0 - DAY)).await;
        let now = at(T0 + 1);
        let (db1, db2) = (t.db.clone(), t.db.clone());
        let (first_in, go) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let (fi, g) = (first_in.clone(), go.clone());
        // The first transaction takes the lock, then waits until the second has started.
        let first = tokio::spawn(async move {
            let mut tx = db1.begin().await.unwrap();
            let out = if expiry_first {
                format!("{:?}", access::expire(&mut tx, s.id, now).await.unwrap())
            } else {
                let g2 = Grant::days(Kind::Paid, 30, None);
                format!("{:?}", access::grant_or_extend(&mut tx, &nodes(), user, &g2, now).await.unwrap().change)
            };
            fi.notify_one();
            g.notified().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.commit().await.unwrap();
            out
        });
        first_in.notified().await;
        let second = tokio::spawn(async move {
            let mut tx = db2.begin().await.unwrap();
            let out = if expiry_first {
                let g2 = Grant::days(Kind::Paid, 30, None);
                format!("{:?}", access::grant_or_extend(&mut tx, &nodes(), user, &g2, now).await.unwrap().change)
            } else {
                format!("{:?}", access::expire(&mut tx, s.id, now).await.unwrap())
            };
            tx.commit().await.unwrap();
            out
        });
        go.notify_one();
        let (a, b) = (first.await.unwrap(), second.await.unwrap());
        let after = access::subscription(&t.db, s.id).await.unwrap().unwrap();
        assert!(after.is_active(now), "{a} / {b}");
        let rows = rows_of(&t.db, s.id).await;
        assert!(rows.iter().all(|r| r.2 == "present"), "expiry_first={expiry_first}: {a} / {b}: {rows:?}");
        if !expiry_first {
            assert!(b.starts_with("StillActive"), "the expiry saw the renewal: {b}");
        }
    }
});

db_test!(async fn concurrent_first_grants_make_one_subscription(t) {
    ensure_user(&t.db, 1).await;
    let grants = (0..4).map(|_| {
        let db = t.db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            let g = access::grant_or_extend(&mut tx, &nodes(), 1, &Grant::days(Kind::Paid, 30, None), at(T0)).await.unwrap();
            tx.commit().await.unwrap();
            g.change
        })
    });
    let changes: Vec<GrantChange> = futures::future::join_all(grants).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(changes.iter().filter(|c| **c == GrantChange::Created).count(), 1, "{changes:?}");
    let s = access::subscription_for_user(&t.db, 1).await.unwrap().unwrap();
    assert_eq!(s.expires_at, at(T0 + 120 * DAY), "every grant counted once");
    assert_eq!(rows_of(&t.db, s.id).await.len(), 2);
});

db_test!(async fn disabled_nodes_get_no_rows_until_reconcile_aligns_a_new_node(t) {
    let only_a = EnabledNodes::new(["a"]);
    let active = grant(&t.db, &only_a, 1, 30, at(T0)).await;
    let expired = grant(&t.db, &only_a, 2, 1, at(T0 - 10 * DAY)).await;
    assert_eq!(rows_of(&t.db, active.id).await.len(), 1, "no row on the disabled node b");

    // Node b is enabled: its reconcile aligns active subscriptions only (E9).
    let mut tx = t.db.begin().await.unwrap();
    assert_eq!(access::align_node(&mut tx, "b", at(T0)).await.unwrap(), 1);
    tx.commit().await.unwrap();
    let rows = rows_of(&t.db, active.id).await;
    assert!(rows.iter().any(|r| r.0 == "b" && r.2 == "present"), "{rows:?}");
    assert!(rows_of(&t.db, expired.id).await.iter().all(|r| r.0 == "a"));
    // The expired one still wanted on a (the expiry worker has not run): reconcile of a fixes it.
    let mut tx = t.db.begin().await.unwrap();
    assert_eq!(access::align_node(&mut tx, "a", at(T0)).await.unwrap(), 1);
    assert_eq!(access::align_node(&mut tx, "a", at(T0)).await.unwrap(), 0, "steady state");
    tx.commit().await.unwrap();
    assert!(rows_of(&t.db, expired.id).await.iter().all(|r| r.2 == "absent"));
});

db_test!(async fn provisioning_state_tells_ready_from_pending_and_failing(t) {
    let s = grant(&t.db, &nodes(), 1, 30, at(T0)).await;
    let state = |now| {
        let (db, s) = (t.db.clone(), s.clone());
        async move { access::provisioning_state(&db, &s, &nodes(), at(now)).await.unwrap() }
    };
    assert_eq!(state(T0).await.summary(), ProvisioningSummary::Pending);
    exec(&t.db, "UPDATE node_memberships SET attempts = 3, last_error = 'node unavailable' WHERE node = 'b'").await;
    assert_eq!(state(T0).await.summary(), ProvisioningSummary::Failing);
    exec(&t.db, "UPDATE node_memberships SET observed = 'present' WHERE node = 'a'").await;
    let st = state(T0).await;
    assert_eq!(st.summary(), ProvisioningSummary::Partial);
    assert_eq!(st.nodes[1], ("b".to_owned(), NodeReadiness::Failing { attempts: 3, last_error: Some("node unavailable".into()) }));
    exec(&t.db, "UPDATE node_memberships SET observed = 'present', attempts = 0").await;
    assert_eq!(state(T0).await.summary(), ProvisioningSummary::Ready);
    assert_eq!(state(T0 + 31 * DAY).await.summary(), ProvisioningSummary::Inactive);
});
