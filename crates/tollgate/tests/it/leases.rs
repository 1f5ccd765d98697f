//! Leases (docs/design.md §3.5, docs/reliability.md A5): one holder, takeover with a higher fencing token,
//! and the keeper that holds a role for a work loop.

use std::sync::Arc;
use std::time::Duration;

use tollgate::lease::{self, Keeper, Standing};
use tollgate::store::Db;
use tollgate::time::{ManualClock, Timestamp};

use crate::db_test;

const TTL: Duration = Duration::from_secs(10);

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + secs)
}

db_test!(async fn contenders_get_exactly_one_holder(t) {
    // Separate pools stand for separate processes racing for the same role.
    let pools: Vec<_> = (0..8).map(|_| t.another_pool()).collect();
    let tries = pools.iter().enumerate().map(|(i, db)| async move {
        lease::acquire(db, "poller", &format!("holder-{i}"), TTL, at(0)).await.unwrap()
    });
    let results = futures::future::join_all(tries).await;
    let winners: Vec<_> = results.iter().flatten().collect();
    assert_eq!(winners.len(), 1, "exactly one contender holds the lease: {results:?}");
    assert_eq!(winners[0].token, 1);
    let current = lease::current_holder(&t.db, "poller", at(1)).await.unwrap().unwrap();
    assert_eq!(&current, winners[0]);

    // The holder may re-acquire (extend) without changing the token; others still cannot.
    let again = lease::acquire(&t.db, "poller", &current.holder, TTL, at(5)).await.unwrap().unwrap();
    assert_eq!(again.token, current.token);
    assert_eq!(again.expires_at, at(15));
    assert!(lease::acquire(&t.db, "poller", "intruder", TTL, at(14)).await.unwrap().is_none());
    // Leases are independent by name.
    assert!(lease::acquire(&t.db, "webhook", "intruder", TTL, at(14)).await.unwrap().is_some());
});

db_test!(async fn an_expired_lease_is_taken_over_with_a_higher_token(t) {
    let a = lease::acquire(&t.db, "job:expiry", "a", TTL, at(0)).await.unwrap().unwrap();
    assert!(lease::acquire(&t.db, "job:expiry", "b", TTL, at(9)).await.unwrap().is_none());
    let b = lease::acquire(&t.db, "job:expiry", "b", TTL, at(10)).await.unwrap().unwrap();
    assert!(b.token > a.token);

    // The stale holder cannot renew, release, or pass the fencing check.
    assert!(lease::renew(&t.db, &a, TTL, at(11)).await.unwrap().is_none());
    assert!(!lease::release(&t.db, &a, at(11)).await.unwrap());
    let mut tx = t.db.begin().await.unwrap();
    assert!(!lease::is_current(&mut tx, &a, at(11)).await.unwrap());
    assert!(lease::is_current(&mut tx, &b, at(11)).await.unwrap());
    tx.rollback().await.unwrap();

    // The current holder renews, and stays current past the old expiry.
    let renewed = lease::renew(&t.db, &b, TTL, at(15)).await.unwrap().unwrap();
    assert_eq!(renewed.expires_at, at(25));
    assert!(lease::acquire(&t.db, "job:expiry", "a", TTL, at(21)).await.unwrap().is_none());
    // Renewing after expiry is refused even with no competitor: the role may have lapsed.
    assert!(lease::renew(&t.db, &renewed, TTL, at(26)).await.unwrap().is_none());
});

db_test!(async fn release_hands_over_at_once_and_tokens_keep_rising(t) {
    let a = lease::acquire(&t.db, "poller", "a", TTL, at(0)).await.unwrap().unwrap();
    assert!(lease::release(&t.db, &a, at(1)).await.unwrap());
    let b = lease::acquire(&t.db, "poller", "b", TTL, at(1)).await.unwrap().unwrap();
    assert_eq!(b.token, a.token + 1);
    // Even the same holder coming back after its lease lapsed gets a new token.
    let b2 = lease::acquire(&t.db, "poller", "b", TTL, at(100)).await.unwrap().unwrap();
    assert_eq!(b2.token, b.token + 1);
    assert!(lease::current_holder(&t.db, "poller", at(200)).await.unwrap().is_none());
});

db_test!(async fn a_keeper_takes_keeps_loses_and_hands_over_its_role(t) {
    let clock = ManualClock::new(at(0));
    let keeper = |db: &Db, holder: &str| {
        Keeper::new(db.clone(), Arc::new(clock.clone()), "role", "does the role", holder.to_owned(), TTL)
            .renewing_every(Duration::ZERO)
    };
    let mut a = keeper(&t.db, "a");
    let mut b = keeper(&t.another_pool(), "b");
    assert_eq!(a.keep().await.unwrap(), Standing::Gained);
    assert_eq!(b.keep().await.unwrap(), Standing::Elsewhere);
    assert!(b.lease().is_none());
    let first = a.lease().unwrap().token;

    // Renewed before it expires, the role stays with its holder and keeps its token.
    clock.advance(Duration::from_secs(8));
    assert_eq!(a.keep().await.unwrap(), Standing::Held);
    clock.advance(Duration::from_secs(8));
    assert_eq!(b.keep().await.unwrap(), Standing::Elsewhere);
    assert_eq!(a.lease().unwrap().token, first);

    // A holder that stalls past the TTL loses the role to the next keeper, with a higher token.
    clock.advance(Duration::from_secs(11));
    assert_eq!(b.keep().await.unwrap(), Standing::Gained);
    assert!(b.lease().unwrap().token > first);
    assert_eq!(a.keep().await.unwrap(), Standing::Elsewhere);
    assert!(a.lease().is_none(), "the work loop sees the loss at once");

    // Released at shutdown, the role moves at once instead of after the TTL.
    let second = b.lease().unwrap().token;
    b.release().await;
    assert_eq!(a.keep().await.unwrap(), Standing::Gained);
    assert_eq!(a.lease().unwrap().token, second + 1);
});

db_test!(async fn a_keeper_renews_only_when_due(t) {
    let clock = ManualClock::new(at(0));
    let mut a = Keeper::new(t.db.clone(), Arc::new(clock.clone()), "role", "does the role", "a".to_owned(), TTL);
    assert_eq!(a.keep().await.unwrap(), Standing::Gained);
    let expires = a.lease().unwrap().expires_at;
    // Until a third of the TTL has passed (monotonic time) the keeper answers from memory:
    // no statement, the same expiry.
    clock.advance(Duration::from_secs(2));
    assert_eq!(a.keep().await.unwrap(), Standing::Held);
    assert_eq!(a.lease().unwrap().expires_at, expires);
    assert_eq!(lease::current_holder(&t.db, "role", at(2)).await.unwrap().unwrap().expires_at, expires);
});
