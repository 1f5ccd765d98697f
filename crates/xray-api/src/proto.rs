//! The protobuf messages of the core API, written by hand.
//!
//! Why by hand: the Xray and V2Ray `.proto` files belong to their projects, compiling them needs
//! `protoc` (or a descriptor compiler) and gives one module tree per dialect. The handful of
//! messages the node agent needs have identical field numbers in both cores; only the package
//! prefix differs, and that prefix lives in method paths and `TypedMessage.type` strings, never in
//! the bytes of a message. So one set of prost structs serves both dialects and the prefix is a
//! runtime value (see [`crate::Dialect`]).
//!
//! Field numbers come from `app/proxyman/command/command.proto`,
//! `app/stats/command/command.proto`, `common/protocol/user.proto`,
//! `common/serial/typed_message.proto` and `proxy/vless/account.proto` (identical numbering in
//! v2ray 4.34 and current Xray). Fields that only newer Xray versions know are left out: proto3
//! ignores unknown fields and omitted fields take their default on the server.

/// `common.serial.TypedMessage`: a message tagged with its full protobuf type name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypedMessage {
    /// Full protobuf name, e.g. `v2ray.core.proxy.vless.Account`.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `common.protocol.User`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct User {
    #[prost(uint32, tag = "1")]
    pub level: u32,
    #[prost(string, tag = "2")]
    pub email: String,
    #[prost(message, optional, tag = "3")]
    pub account: Option<TypedMessage>,
}

/// `proxy.vless.Account` (Xray adds fields 4–9 for VLESS Encryption and reverse; unset here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct VlessAccount {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub flow: String,
    #[prost(string, tag = "3")]
    pub encryption: String,
}

/// `app.proxyman.command.AddUserOperation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AddUserOperation {
    #[prost(message, optional, tag = "1")]
    pub user: Option<User>,
}

/// `app.proxyman.command.RemoveUserOperation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoveUserOperation {
    #[prost(string, tag = "1")]
    pub email: String,
}

/// `app.proxyman.command.AlterInboundRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AlterInboundRequest {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(message, optional, tag = "2")]
    pub operation: Option<TypedMessage>,
}

/// `app.proxyman.command.AlterInboundResponse` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AlterInboundResponse {}

/// `app.stats.command.GetStatsRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetStatsRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bool, tag = "2")]
    pub reset: bool,
}

/// `app.stats.command.Stat`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Stat {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int64, tag = "2")]
    pub value: i64,
}

/// `app.stats.command.GetStatsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetStatsResponse {
    #[prost(message, optional, tag = "1")]
    pub stat: Option<Stat>,
}

/// `app.stats.command.QueryStatsRequest` (Xray's later fields `patterns`/`regexp` left unset).
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryStatsRequest {
    #[prost(string, tag = "1")]
    pub pattern: String,
    #[prost(bool, tag = "2")]
    pub reset: bool,
}

/// `app.stats.command.QueryStatsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryStatsResponse {
    #[prost(message, repeated, tag = "1")]
    pub stat: Vec<Stat>,
}

/// `app.stats.command.SysStatsRequest` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SysStatsRequest {}

/// `app.stats.command.SysStatsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SysStatsResponse {
    #[prost(uint32, tag = "1")]
    pub num_goroutine: u32,
    #[prost(uint32, tag = "2")]
    pub num_gc: u32,
    #[prost(uint64, tag = "3")]
    pub alloc: u64,
    #[prost(uint64, tag = "4")]
    pub total_alloc: u64,
    #[prost(uint64, tag = "5")]
    pub sys: u64,
    #[prost(uint64, tag = "6")]
    pub mallocs: u64,
    #[prost(uint64, tag = "7")]
    pub frees: u64,
    #[prost(uint64, tag = "8")]
    pub live_objects: u64,
    #[prost(uint64, tag = "9")]
    pub pause_total_ns: u64,
    #[prost(uint32, tag = "10")]
    pub uptime: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The exact bytes a Python protobuf client sent to v2ray 4.34 (reference §3) for
    /// add `alice@test` / `11111111-2222-3333-4444-555555555555` to `vless-in`.
    #[test]
    fn add_user_request_matches_observed_bytes() {
        let expected = concat!(
            "0a08766c6573732d696e128c010a3076327261792e636f72652e6170702e70726f78796d616e2e636f6d6d616e642e",
            "416464557365724f7065726174696f6e12580a56120a616c69636540746573741a480a1e76327261792e636f72652e",
            "70726f78792e766c6573732e4163636f756e7412260a2431313131313131312d323232322d333333332d343434342d",
            "353535353535353535353535"
        );
        let account = VlessAccount {
            id: "11111111-2222-3333-4444-555555555555".into(),
            flow: String::new(),
            encryption: String::new(),
        };
        let user = User {
            level: 0,
            email: "alice@test".into(),
            account: Some(TypedMessage {
                r#type: "v2ray.core.proxy.vless.Account".into(),
                value: account.encode_to_vec(),
            }),
        };
        let request = AlterInboundRequest {
            tag: "vless-in".into(),
            operation: Some(TypedMessage {
                r#type: "v2ray.core.app.proxyman.command.AddUserOperation".into(),
                value: AddUserOperation { user: Some(user) }.encode_to_vec(),
            }),
        };
        let hex: String = request
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, expected);
    }
}
