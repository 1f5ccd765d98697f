//! Agent security: no or wrong token → 401 and nothing changes; malformed input → 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{CoreView, put};
use tollgate_node::api::{ConvergeRequest, ErrorBody};
use tollgate_node::testing::{ServerCore, TestAgent, V2Ray};
use tollgate_node::{NodeError, Token};
use uuid::Uuid;

#[tokio::test]
async fn no_or_wrong_token_is_401_and_changes_nothing() {
    let Some(v2ray) = V2Ray::or_skip("no_or_wrong_token_is_401") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let view = CoreView::new(&core).await;
    agent
        .client()
        .put_user("kept@test", &put(&Uuid::new_v4()))
        .await
        .unwrap();

    let wrong = agent.client_with_token(Token::generate());
    assert_eq!(
        wrong
            .put_user("eve@test", &put(&Uuid::new_v4()))
            .await
            .unwrap_err(),
        NodeError::Unauthorized
    );
    assert_eq!(
        wrong.remove_user("kept@test").await.unwrap_err(),
        NodeError::Unauthorized
    );
    assert_eq!(
        wrong.list_users().await.unwrap_err(),
        NodeError::Unauthorized
    );
    assert_eq!(wrong.health().await.unwrap_err(), NodeError::Unauthorized);
    let wipe = ConvergeRequest {
        users: vec![],
        skip_unchanged: false,
    };
    assert_eq!(
        wrong.converge(&wipe).await.unwrap_err(),
        NodeError::Unauthorized
    );
    // A token that is a prefix of the right one is still wrong.
    let prefix = Token::new(&agent.token().expose()[..40]).unwrap();
    assert_eq!(
        agent
            .client_with_token(prefix)
            .remove_user("kept@test")
            .await
            .unwrap_err(),
        NodeError::Unauthorized
    );

    // Raw requests: no header, other schemes. Exact body, WWW-Authenticate set.
    let http = reqwest::Client::new();
    let url = format!("{}/v1/users/kept@test", agent.base_url());
    for auth in [
        None,
        Some("Basic a2VwdDp0ZXN0"),
        Some("Bearer"),
        Some(agent.token().expose()),
    ] {
        let mut request = http.delete(&url);
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"error":"unauthorized"}"#
        );
    }

    // Nothing changed, on the agent or on the core.
    let listed = agent.client().list_users().await.unwrap();
    assert_eq!(
        listed
            .users
            .iter()
            .map(|u| u.email.as_str())
            .collect::<Vec<_>>(),
        ["kept@test"]
    );
    assert!(view.has("kept@test").await);
    assert!(!view.has("eve@test").await);

    // Liveness needs no token.
    agent
        .client_with_token(Token::generate())
        .healthz()
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_input_is_400_with_a_specific_message() {
    let Some(v2ray) = V2Ray::or_skip("malformed_input_is_400") else {
        return;
    };
    let core = ServerCore::start(&v2ray).await.unwrap();
    let agent = TestAgent::start(&core).await.unwrap();
    let view = CoreView::new(&core).await;
    let good = Uuid::new_v4().to_string();

    let long = "x".repeat(65);
    let http = reqwest::Client::new();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "not-a-uuid@test",
            r#"{"uuid":"not-a-uuid"}"#.into(),
            "is not a UUID",
        ),
        (
            "nil@test",
            r#"{"uuid":"00000000-0000-0000-0000-000000000000"}"#.into(),
            "nil/max",
        ),
        (
            "simple@test",
            format!(r#"{{"uuid":"{}"}}"#, good.replace('-', "")),
            "is not a UUID",
        ),
        (
            "bad%20email",
            format!(r#"{{"uuid":"{good}"}}"#),
            "contains ' '",
        ),
        (
            "a%3E%3E%3Eb",
            format!(r#"{{"uuid":"{good}"}}"#),
            "contains '>'",
        ),
        (&long, format!(r#"{{"uuid":"{good}"}}"#), "limit is 64"),
        (
            "sentinel@tollgate-node.invalid",
            format!(r#"{{"uuid":"{good}"}}"#),
            "reserved",
        ),
        (
            "flow@test",
            format!(r#"{{"uuid":"{good}","flow":"xtls-rprx-direct"}}"#),
            "flow \"xtls-rprx-direct\"",
        ),
        (
            "typo@test",
            format!(r#"{{"uuid":"{good}","flwo":""}}"#),
            "unknown field `flwo`",
        ),
        ("json@test", "{\"uuid\":".into(), "invalid JSON body"),
        (
            "level@test",
            format!(r#"{{"uuid":"{good}","level":-1}}"#),
            "invalid JSON body",
        ),
    ];
    for (email, body, expected) in &cases {
        let response = http
            .put(format!("{}/v1/users/{email}", agent.base_url()))
            .bearer_auth(agent.token().expose())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{email} {body}");
        let error: ErrorBody = response.json().await.unwrap();
        assert_eq!(error.error, "bad_request");
        let message = error.message.unwrap_or_default();
        assert!(message.contains(expected), "{email} {body}: {message}");
    }
    // Through the typed client too.
    let err = agent
        .client()
        .put_user(
            "ok@test",
            &tollgate_node::api::PutUserRequest {
                uuid: "1234".into(),
                flow: String::new(),
                level: 0,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NodeError::BadRequest { message } if message.contains("not a UUID")),
        "{err:?}"
    );
    let err = agent.client().remove_user("bad email").await.unwrap_err();
    assert!(matches!(&err, NodeError::BadRequest { .. }), "{err:?}");

    // No content type is a 400 too.
    let response = http
        .put(format!("{}/v1/users/ct@test", agent.base_url()))
        .bearer_auth(agent.token().expose())
        .body(format!(r#"{{"uuid":"{good}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    assert!(agent.client().list_users().await.unwrap().users.is_empty());
    assert!(!view.has("not-a-uuid@test").await);
    assert!(!view.has("flow@test").await);
}
