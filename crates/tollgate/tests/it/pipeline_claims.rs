//! RELIABILITY A5, B2: row claims of the inbox and the outbox under concurrency — every row
//! claimed once, never more than asked for, and only the head of each chat's queue.

use std::collections::BTreeSet;
use std::time::Duration;

use tollgate::store::Db;
use tollgate::telegram::inbox::{self, NewUpdate};
use tollgate::telegram::outbox::{self, OutboxMessage, Priority};
use tollgate::telegram::update::UpdateHead;
use tollgate::time::Timestamp;

use crate::db_test;

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000)
}

async fn store_updates(db: &Db, chats: i64, per_chat: i64) {
    let mut updates = Vec::new();
    for n in 0..per_chat {
        for chat in 0..chats {
            let update_id = 1_000 + n * chats + chat;
            updates.push(NewUpdate {
                head: UpdateHead {
                    update_id,
                    kind: "message".into(),
                    chat_key: Some(chat),
                },
                raw: format!("{{\"update_id\":{update_id}}}"),
            });
        }
    }
    inbox::store_batch(db, &updates, now()).await.unwrap();
}

/// Four claimers (separate pools, like separate processes) claiming 3 at a time until
/// nothing is left; returns everything each claimed.
async fn claim_all<F, Fut>(t: &crate::common::TestDb, claim: F) -> Vec<i64>
where
    F: Fn(Db, String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Vec<i64>> + Send,
{
    let claimers = (0..4).map(|i| {
        let db = t.another_pool();
        let claim = claim.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(db.clone(), format!("w{i}")).await;
                assert!(got.len() <= 3, "a claim of 3 took {}", got.len());
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        })
    });
    futures::future::join_all(claimers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect()
}

db_test!(async fn inbox_claims_never_overlap_exceed_or_break_chat_order(t) {
    // 20 chats with 3 updates each: only the 20 heads can be claimed while they are in flight.
    store_updates(&t.db, 20, 3).await;
    let all = claim_all(t, |db, worker| async move {
        let until = now().plus(Duration::from_secs(60));
        inbox::claim(&db, &worker, 3, now(), until).await.unwrap().into_iter().map(|c| c.update_id).collect()
    })
    .await;
    let distinct: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 20, "heads only, each once: {all:?}");
    assert_eq!(distinct, (1_000..1_020).collect(), "the oldest update of every chat");
});

db_test!(async fn outbox_claims_never_overlap_exceed_or_break_chat_order(t) {
    let mut tx = t.db.begin().await.unwrap();
    for n in 0..3 {
        for chat in 0..20 {
            let m = OutboxMessage::text(format!("k{n}:{chat}"), chat, Priority::Reminder, "x", None);
            outbox::enqueue(&mut tx, &m, now()).await.unwrap();
        }
    }
    // A transactional message jumps its chat's queue.
    outbox::enqueue(&mut tx, &OutboxMessage::text("urgent", 5, Priority::Transactional, "now", None), now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let all = claim_all(t, |db, worker| async move {
        let until = now().plus(Duration::from_secs(60));
        outbox::claim(&db, &worker, 3, now(), until).await.unwrap().into_iter().map(|c| c.id).collect()
    })
    .await;
    let distinct: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (20, 20), "one head per chat, each once");
    let urgent = outbox::get_by_key(&t.db, "urgent").await.unwrap().unwrap();
    let first_of_5 = outbox::get_by_key(&t.db, "k0:5").await.unwrap().unwrap();
    assert!(distinct.contains(&urgent.id), "chat 5's head is its transactional message");
    assert!(!distinct.contains(&first_of_5.id));
});
