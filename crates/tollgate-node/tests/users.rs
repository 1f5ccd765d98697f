//! Put, remove, list and converge through the agent's REST API, against real v2ray 4.34.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{CoreView, converge_user, put};
use tollgate_node::NodeError;
use tollgate_node::api::{ConvergeRequest, PutUserRequest};
use tollgate_node::testing::{ServerCore, TestAgent, V2Ray};
use uuid::Uuid;

#[tokio::test]
async fn put_is_idempotent_and_remove_is_idempotent() {
    let Some(v2ray) = V2Ray::or_skip("put_is_idempotent_and_remove_is_idempotent") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let view = CoreView::new(&core).await;
    let uuid = Uuid::new_v4();

    let first = agent
        .client()
        .put_user("Alice@Test", &put(&uuid))
        .await
        .unwrap();
    assert_eq!(
        (first.email.as_str(), first.created, first.updated),
        ("alice@test", true, false)
    );
    assert_eq!(first.uuid, uuid.to_string());
    assert!(view.has("alice@test").await);

    let again = agent
        .client()
        .put_user("alice@test", &put(&uuid))
        .await
        .unwrap();
    assert_eq!((again.created, again.updated), (false, false));

    let listed = agent.client().list_users().await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].uuid, uuid.to_string());
    assert!(listed.core_in_sync);

    assert!(
        agent
            .client()
            .remove_user("alice@test")
            .await
            .unwrap()
            .removed
    );
    assert!(!view.has("alice@test").await);
    assert!(
        !agent
            .client()
            .remove_user("ALICE@test")
            .await
            .unwrap()
            .removed
    );
    assert!(agent.client().list_users().await.unwrap().users.is_empty());
}

#[tokio::test]
async fn a_repeated_put_restores_a_user_the_core_lost() {
    let Some(v2ray) = V2Ray::or_skip("a_repeated_put_restores_a_user_the_core_lost") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let view = CoreView::new(&core).await;
    let uuid = Uuid::new_v4();
    agent
        .client()
        .put_user("bob@test", &put(&uuid))
        .await
        .unwrap();
    view.remove_behind_the_agents_back("bob@test").await;

    let again = agent
        .client()
        .put_user("bob@test", &put(&uuid))
        .await
        .unwrap();
    assert!(!again.created);
    assert!(view.has("bob@test").await);
}

#[tokio::test]
async fn email_and_uuid_stay_one_to_one() {
    let Some(v2ray) = V2Ray::or_skip("email_and_uuid_stay_one_to_one") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let view = CoreView::new(&core).await;
    let alice_uuid: Uuid = "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9".parse().unwrap();
    agent
        .client()
        .put_user("alice@test", &put(&alice_uuid))
        .await
        .unwrap();

    // Another email with alice's uuid: removing it later would revoke alice on the core.
    let err = agent
        .client()
        .put_user("mallory@test", &put(&alice_uuid))
        .await
        .unwrap_err();
    let NodeError::Conflict { message } = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("bound to alice@test"), "{message}");
    // Xray ignores bytes 6-7 of a UUID: these two are one user there.
    let twin: Uuid = "86dc2c8c-6d69-11ff-b0e4-8f4ce621feb9".parse().unwrap();
    let err = agent
        .client()
        .put_user("mallory@test", &put(&twin))
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::Conflict { .. }), "{err:?}");
    assert!(!view.has("mallory@test").await);

    // Alice with another uuid: remove first.
    let err = agent
        .client()
        .put_user("alice@test", &put(&Uuid::new_v4()))
        .await
        .unwrap_err();
    let NodeError::Conflict { message } = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("DELETE /v1/users/alice@test first"),
        "{message}"
    );

    let listed = agent.client().list_users().await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].uuid, alice_uuid.to_string());

    // Remove, then the new uuid is accepted.
    agent.client().remove_user("alice@test").await.unwrap();
    let new_uuid = Uuid::new_v4();
    assert!(
        agent
            .client()
            .put_user("alice@test", &put(&new_uuid))
            .await
            .unwrap()
            .created
    );
    assert!(
        agent
            .client()
            .put_user("mallory@test", &put(&alice_uuid))
            .await
            .unwrap()
            .created
    );
}

#[tokio::test]
async fn a_flow_change_replaces_the_entry() {
    let Some(v2ray) = V2Ray::or_skip("a_flow_change_replaces_the_entry") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let uuid = Uuid::new_v4();
    agent
        .client()
        .put_user("carol@test", &put(&uuid))
        .await
        .unwrap();
    let vision = PutUserRequest {
        flow: "xtls-rprx-vision".into(),
        ..put(&uuid)
    };
    let changed = agent
        .client()
        .put_user("carol@test", &vision)
        .await
        .unwrap();
    assert_eq!(
        (changed.created, changed.updated, changed.flow.as_str()),
        (false, true, "xtls-rprx-vision")
    );
    let listed = agent.client().list_users().await.unwrap();
    assert_eq!(listed.users[0].flow, "xtls-rprx-vision");
}

#[tokio::test]
async fn converge_reaches_exactly_the_requested_set() {
    let Some(v2ray) = V2Ray::or_skip("converge_reaches_exactly_the_requested_set") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let view = CoreView::new(&core).await;
    let (keep, drop_me, swap_a, swap_b) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    for (email, uuid) in [
        ("keep@t", keep),
        ("drop@t", drop_me),
        ("a@t", swap_a),
        ("b@t", swap_b),
    ] {
        agent.client().put_user(email, &put(&uuid)).await.unwrap();
    }
    view.remove_behind_the_agents_back("keep@t").await;

    // keep stays (and is restored on the core), drop goes, a and b swap uuids, new arrives.
    let new = Uuid::new_v4();
    let request = ConvergeRequest {
        users: vec![
            converge_user("keep@t", &keep),
            converge_user("a@t", &swap_b),
            converge_user("b@t", &swap_a),
            converge_user("NEW@t", &new),
        ],
        skip_unchanged: false,
    };
    let done = agent.client().converge(&request).await.unwrap();
    assert_eq!(
        (
            done.added,
            done.removed,
            done.updated,
            done.unchanged,
            done.restored
        ),
        (1, 1, 2, 1, 1)
    );

    let listed = agent.client().list_users().await.unwrap();
    let got: Vec<(String, String)> = listed
        .users
        .iter()
        .map(|u| (u.email.clone(), u.uuid.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a@t".into(), swap_b.to_string()),
            ("b@t".into(), swap_a.to_string()),
            ("keep@t".into(), keep.to_string()),
            ("new@t".into(), new.to_string()),
        ]
    );
    for email in ["keep@t", "a@t", "b@t", "new@t"] {
        assert!(view.has(email).await, "{email} missing on the core");
    }
    assert!(!view.has("drop@t").await);

    // Nothing to do the second time.
    let again = agent
        .client()
        .converge(&ConvergeRequest {
            skip_unchanged: true,
            ..request.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            again.added,
            again.removed,
            again.updated,
            again.unchanged,
            again.restored
        ),
        (0, 0, 0, 4, 0)
    );

    // Converge to nothing empties the node.
    let empty = agent
        .client()
        .converge(&ConvergeRequest {
            users: vec![],
            skip_unchanged: false,
        })
        .await
        .unwrap();
    assert_eq!(empty.removed, 4);
    assert!(!view.has("a@t").await);
}

#[tokio::test]
async fn converge_refuses_duplicates_and_changes_nothing() {
    let Some(v2ray) = V2Ray::or_skip("converge_refuses_duplicates") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let uuid = Uuid::new_v4();
    agent.client().put_user("a@t", &put(&uuid)).await.unwrap();
    let request = ConvergeRequest {
        users: vec![converge_user("x@t", &uuid), converge_user("y@t", &uuid)],
        skip_unchanged: false,
    };
    let err = agent.client().converge(&request).await.unwrap_err();
    let NodeError::BadRequest { message } = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("users[1]: uuid") && message.contains("also used by users[0]"),
        "{message}"
    );
    assert_eq!(
        agent.client().list_users().await.unwrap().users[0].email,
        "a@t"
    );
}

#[tokio::test]
async fn racing_puts_of_one_uuid_leave_exactly_one_owner() {
    let Some(v2ray) = V2Ray::or_skip("racing_puts_of_one_uuid_leave_exactly_one_owner") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let view = CoreView::new(&core).await;
    let uuid = Uuid::new_v4();
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let client = agent.client().clone();
            tokio::spawn(async move {
                client
                    .put_user(&format!("racer{i}@test"), &put(&uuid))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, racer) in racers.into_iter().enumerate() {
        match racer.await.unwrap() {
            Ok(created) => winners.push((i, created)),
            Err(NodeError::Conflict { .. }) => {}
            Err(other) => panic!("racer{i}: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let listed = agent.client().list_users().await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].email, winners[0].1.email);
    for i in 0..16 {
        let email = format!("racer{i}@test");
        assert_eq!(
            view.has(&email).await,
            email == winners[0].1.email,
            "{email}"
        );
    }
}
