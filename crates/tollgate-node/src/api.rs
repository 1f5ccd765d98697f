//! The REST API's request and response bodies, shared by the server and [`crate::client`].
//!
//! Why one module: the Tollgate service is built against these types, so the server and the
//! client cannot drift. Requests reject unknown fields (a typo such as `"flwo"` must not
//! silently become the default). The contract is written out in the crate README.

use serde::{Deserialize, Serialize};

/// The header the token travels in: `Authorization: Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// `PUT /v1/users/{email}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutUserRequest {
    /// The VLESS id, canonical hyphenated UUID.
    pub uuid: String,
    /// `""` (default) or `"xtls-rprx-vision"`.
    #[serde(default)]
    pub flow: String,
    /// Policy level (default 0); per-user counters need `statsUserUplink/Downlink` on it.
    #[serde(default)]
    pub level: u32,
}

/// Answer of `PUT /v1/users/{email}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutUserResponse {
    /// The normalized (lowercase) email.
    pub email: String,
    pub uuid: String,
    pub flow: String,
    pub level: u32,
    /// The user was not on this node before.
    pub created: bool,
    /// The user was there with another flow or level and has been replaced.
    pub updated: bool,
}

/// Answer of `DELETE /v1/users/{email}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveUserResponse {
    /// The user existed (in the agent's state or on the core) and is gone now.
    pub removed: bool,
}

/// One user in `GET /v1/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    pub email: String,
    pub uuid: String,
    pub flow: String,
    pub level: u32,
    /// Bytes sent by the user since it was put on this node (persisted deltas).
    pub uplink_bytes: u64,
    /// Bytes received by the user since it was put on this node (persisted deltas).
    pub downlink_bytes: u64,
}

/// Answer of `GET /v1/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListUsersResponse {
    /// Every user the node should serve, sorted by email.
    pub users: Vec<UserEntry>,
    /// True when the core was reachable, the inbound verified and no re-apply is pending:
    /// the core then holds exactly these users (as far as the agent can know).
    pub core_in_sync: bool,
    /// True when the traffic figures include a collection made for this request; false when
    /// the core could not be read and the figures are the persisted totals.
    pub traffic_fresh: bool,
}

/// One user in a converge request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvergeUser {
    pub email: String,
    pub uuid: String,
    #[serde(default)]
    pub flow: String,
    #[serde(default)]
    pub level: u32,
}

/// `PUT /v1/users`: make the node hold exactly `users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvergeRequest {
    pub users: Vec<ConvergeUser>,
    /// By default every listed user that the agent already has is re-added to the core
    /// (already-exists is fine), which repairs a user removed behind the agent's back. Set to
    /// true to only apply differences (fast; trusts the agent's restart detection).
    #[serde(default)]
    pub skip_unchanged: bool,
}

/// Answer of `PUT /v1/users`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvergeResponse {
    /// Users that were not on the node.
    pub added: u64,
    /// Users that were on the node and are not in the request.
    pub removed: u64,
    /// Users whose uuid, flow or level changed (removed, then added).
    pub updated: u64,
    /// Users already present with the same entry.
    pub unchanged: u64,
    /// Of the unchanged users, how many the core was missing and got back.
    pub restored: u64,
}

/// Answer of `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// The core answered a call just now.
    pub core_reachable: bool,
    /// Seconds since the core started, when reachable.
    pub core_uptime_s: Option<u32>,
    /// Users the node should serve.
    pub users: u64,
    /// `"xray"` or `"v2ray"`, once known.
    pub dialect: Option<String>,
    pub inbound_tag: String,
    /// The inbound has been checked to be a VLESS inbound since the last connection.
    pub inbound_verified: bool,
    /// True when nothing is pending: the core holds every user of the agent.
    pub core_in_sync: bool,
    /// Core restarts noticed by this agent process (uptime went down or its sentinel user was gone).
    pub core_restarts_detected: u64,
    /// Unix seconds of the last completed re-apply of all users.
    pub last_resync_unix: Option<u64>,
    /// What is wrong with the core's configuration, if anything (wrong tag, not VLESS...).
    pub core_error: Option<String>,
    /// The agent's version.
    pub version: String,
}

/// Body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `unauthorized`, `bad_request`, `conflict`, `not_found`, `payload_too_large`,
    /// `core_unavailable`, `core_rejected`, `internal`.
    pub error: String,
    /// What went wrong and what to do, when there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_reject_unknown_fields_and_default_the_optional_ones() {
        let parsed: PutUserRequest = serde_json::from_str(r#"{"uuid":"x"}"#).unwrap();
        assert_eq!((parsed.flow.as_str(), parsed.level), ("", 0));
        let err = serde_json::from_str::<PutUserRequest>(r#"{"uuid":"x","flwo":""}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `flwo`"), "{err}");
        let err = serde_json::from_str::<ConvergeRequest>(
            r#"{"users":[{"email":"a","uuid":"b","x":1}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
    }

    #[test]
    fn the_unauthorized_body_is_exactly_the_documented_one() {
        let body = ErrorBody {
            error: "unauthorized".into(),
            message: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"unauthorized"}"#
        );
    }
}
