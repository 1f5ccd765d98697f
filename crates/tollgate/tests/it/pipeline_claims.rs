//! docs/reliability.md A5, B2: row claims of the inbox and the outbox under concurrency — every row
//! claimed once, never more than asked for, and only the head of each chat's queue.

use std::collections::BTreeSet;
use std::time::Duration;

use tollgate::on_db;
use tollgate::store::Db;
use tollgate::telegram::inbox::{self, NewUpdate};
use tollgate::telegram::outbox::{self, Attempt, OutboxMessage, Outcome, Priority};
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

db_test!(async fn finishing_a_batch_records_and_spaces_only_what_its_worker_still_holds(t) {
    let mut tx = t.db.begin().await.unwrap();
    for (key, chat) in [("a1", 1), ("a2", 1), ("b1", 2), ("c1", 3)] {
        let m = OutboxMessage::text(key, chat, Priority::Transactional, "x", None);
        outbox::enqueue(&mut tx, &m, now()).await.unwrap();
    }
    tx.commit().await.unwrap();
    let until = now().plus(Duration::from_secs(60));
    let claimed = outbox::claim(&t.db, "w1", 10, now(), until).await.unwrap();
    let heads: BTreeSet<i64> = claimed.iter().map(|c| c.chat_id).collect();
    assert_eq!(heads, BTreeSet::from([1, 2, 3]), "the head of each chat: {claimed:?}");
    // Another worker took b1 over meanwhile (as after an expired claim).
    on_db!(&t.db, p => sqlx::query("UPDATE outbox SET claimed_by = 'w2' WHERE dedupe_key = 'b1'")
        .execute(p).await.map(|_| ()))
    .unwrap();
    let sent = Outcome::Sent { message_id: Some(7) };
    let failed = Outcome::Failed { reason: "Bad Request: chat not found".into(), http_status: Some(400) };
    let attempts: Vec<Attempt<'_>> = claimed
        .iter()
        .map(|c| Attempt {
            id: c.id,
            chat_id: c.chat_id,
            more_in_chat: c.more_in_chat,
            outcome: if c.chat_id == 3 { &failed } else { &sent },
        })
        .collect();
    let kept = outbox::finish_attempts(&t.db, "w1", &attempts, now(), Duration::from_secs(1))
        .await
        .unwrap();
    let held: Vec<(i64, bool)> = claimed.iter().zip(&kept).map(|(c, k)| (c.chat_id, *k)).collect();
    assert_eq!(held.iter().filter(|(_, k)| !k).collect::<Vec<_>>(), vec![&(2, false)], "{held:?}");

    let row = async |key: &str| outbox::get_by_key(&t.db, key).await.unwrap().unwrap();
    let (a1, a2, b1, c1) = (row("a1").await, row("a2").await, row("b1").await, row("c1").await);
    assert_eq!((a1.status.as_str(), a1.message_id), ("sent", Some(7)));
    assert_eq!((c1.status.as_str(), c1.last_error.as_deref()), ("failed", Some("Bad Request: chat not found")));
    assert_eq!((b1.status.as_str(), b1.attempts), ("pending", 1), "a lost claim is left as it is");
    assert_eq!(outbox::attempts(&t.db, a1.id).await.unwrap(), vec![("sent".to_owned(), Some(200))]);
    assert_eq!(outbox::attempts(&t.db, c1.id).await.unwrap(), vec![("failed".to_owned(), Some(400))]);
    assert_eq!(outbox::attempts(&t.db, b1.id).await.unwrap(), vec![], "no record for a lost claim");
    // Chat 1's next message waits for the spacing after a1 was sent; chat 1 only.
    let waits = async |id: i64| -> i64 {
        on_db!(&t.db, p => sqlx::query_scalar("SELECT next_attempt_at FROM outbox WHERE id = $1")
            .bind(id).fetch_one(p).await)
        .unwrap()
    };
    let spaced = now().plus(Duration::from_secs(1));
    assert_eq!(Timestamp::from_millis(waits(a2.id).await), spaced);
    assert_eq!(Timestamp::from_millis(waits(b1.id).await), now());
});
