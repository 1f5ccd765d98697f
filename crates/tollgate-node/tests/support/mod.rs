//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use tollgate_node::api::{ConvergeUser, PutUserRequest};
use tollgate_node::testing::ServerCore;
use uuid::Uuid;
use xray_api::{DialectChoice, ErrorKind, VlessUser, XrayClient};

/// A put body with a fresh random UUID.
pub fn put(uuid: &Uuid) -> PutUserRequest {
    PutUserRequest {
        uuid: uuid.to_string(),
        flow: String::new(),
        level: 0,
    }
}

pub fn converge_user(email: &str, uuid: &Uuid) -> ConvergeUser {
    ConvergeUser {
        email: email.into(),
        uuid: uuid.to_string(),
        flow: String::new(),
        level: 0,
    }
}

/// Looks at the core directly, bypassing the agent.
pub struct CoreView {
    client: XrayClient,
    tag: String,
}

impl CoreView {
    pub async fn new(core: &ServerCore) -> CoreView {
        CoreView {
            client: XrayClient::connect(&core.api_endpoint(), DialectChoice::Auto)
                .await
                .unwrap(),
            tag: core.vless_tag().to_owned(),
        }
    }

    /// True if the core's inbound has a user with this email. (Probes with an add of a
    /// throwaway id and undoes it, since V2Ray cannot list users.)
    pub async fn has(&self, email: &str) -> bool {
        let probe = VlessUser {
            email: email.into(),
            id: Uuid::new_v4(),
            flow: String::new(),
            level: 0,
        };
        match self.client.add_vless_user(&self.tag, &probe).await {
            Ok(()) => {
                self.client.remove_user(&self.tag, email).await.unwrap();
                false
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => true,
            Err(e) => panic!("probe of {email}: {e}"),
        }
    }

    /// Removes a user behind the agent's back.
    pub async fn remove_behind_the_agents_back(&self, email: &str) {
        self.client.remove_user(&self.tag, email).await.unwrap();
    }

    pub fn client(&self) -> &XrayClient {
        &self.client
    }
}
