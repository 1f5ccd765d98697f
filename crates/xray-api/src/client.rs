//! [`XrayClient`]: the typed calls the node agent needs, over one multiplexed gRPC channel.
//!
//! Why not generated stubs: each call here is `tonic::client::Grpc::unary` with a method path
//! built from the dialect at runtime and prost messages from [`crate::proto`], so no build
//! script, no `protoc` and no `.proto` files are involved, and one client type serves both
//! cores. Every call runs under a deadline (the per-call timeout) because a core that accepts the
//! TCP connection and then stalls must not hang the caller.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::dialect::{Dialect, DialectChoice};
use crate::error::{Error, ErrorKind};
use crate::proto;
use crate::stats::{Counter, SysStats, UserTraffic};

/// Deadlines for the connection and for each call.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// How long to wait for the TCP + HTTP/2 connection (and the dialect probe).
    pub connect_timeout: Duration,
    /// The deadline of every call, sent to the core as `grpc-timeout` and enforced locally.
    pub call_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// A VLESS user as the core stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlessUser {
    /// The user's key in the inbound; the core compares emails case-insensitively and uses it in
    /// counter names (`user>>>EMAIL>>>traffic>>>uplink`).
    pub email: String,
    /// The VLESS id. A real UUID: Xray would silently turn any other string into a UUIDv5.
    pub id: Uuid,
    /// `""` or `xtls-rprx-vision` (Xray enforces it; V2Ray stores and ignores it).
    pub flow: String,
    /// The policy level; per-user counters exist only if that level sets `statsUserUplink` /
    /// `statsUserDownlink`.
    pub level: u32,
}

/// Method paths and type names for one dialect, built once per client.
#[derive(Debug)]
struct Routes {
    alter_inbound: PathAndQuery,
    get_stats: PathAndQuery,
    query_stats: PathAndQuery,
    sys_stats: PathAndQuery,
    add_user_type: String,
    remove_user_type: String,
    vless_account_type: String,
}

impl Routes {
    fn new(dialect: Dialect) -> Self {
        Routes {
            alter_inbound: path(dialect.handler_path("AlterInbound")),
            get_stats: path(dialect.stats_path("GetStats")),
            query_stats: path(dialect.stats_path("QueryStats")),
            sys_stats: path(dialect.stats_path("GetSysStats")),
            add_user_type: dialect.type_name("app.proxyman.command.AddUserOperation"),
            remove_user_type: dialect.type_name("app.proxyman.command.RemoveUserOperation"),
            vless_account_type: dialect.type_name("proxy.vless.Account"),
        }
    }
}

/// Paths are built from constant parts and a fixed prefix, so they are always valid.
fn path(text: String) -> PathAndQuery {
    PathAndQuery::from_maybe_shared(text).unwrap_or_else(|_| PathAndQuery::from_static("/"))
}

/// A client of one core's API. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct XrayClient {
    channel: Channel,
    dialect: Dialect,
    call_timeout: Duration,
    endpoint: Arc<str>,
    routes: Arc<Routes>,
}

impl XrayClient {
    /// Connects to the core API at `endpoint` (`host:port` or `http://host:port`) with default
    /// deadlines, detecting the dialect if `choice` is [`DialectChoice::Auto`].
    pub async fn connect(endpoint: &str, choice: DialectChoice) -> Result<Self, Error> {
        Self::connect_with(endpoint, choice, ClientOptions::default()).await
    }

    /// [`XrayClient::connect`] with explicit deadlines.
    pub async fn connect_with(
        endpoint: &str,
        choice: DialectChoice,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let uri = normalize_endpoint(endpoint)?;
        let operation = || format!("connect to the core API at {endpoint}");
        let builder = Endpoint::from_shared(uri.clone())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    operation(),
                    format!("invalid address: {e}"),
                )
            })?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true);
        let channel = match tokio::time::timeout(options.connect_timeout, builder.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    operation(),
                    error_chain(&e),
                ));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    operation(),
                    format!("no connection within {:?}", options.connect_timeout),
                ));
            }
        };
        let mut client = XrayClient {
            channel,
            dialect: Dialect::Xray,
            call_timeout: options.call_timeout,
            endpoint: Arc::from(endpoint),
            routes: Arc::new(Routes::new(Dialect::Xray)),
        };
        let dialect = match choice.fixed() {
            Some(dialect) => dialect,
            None => client.detect_dialect().await?,
        };
        client.set_dialect(dialect);
        Ok(client)
    }

    /// The dialect this client speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The endpoint as given to [`XrayClient::connect`].
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn set_dialect(&mut self, dialect: Dialect) {
        self.dialect = dialect;
        self.routes = Arc::new(Routes::new(dialect));
    }

    /// Finds the dialect with a call that changes nothing: removing the empty email from the
    /// inbound with the empty tag. A core of the other dialect answers `UNIMPLEMENTED unknown
    /// service`; the right one answers with some other error (no such handler / empty email).
    async fn detect_dialect(&mut self) -> Result<Dialect, Error> {
        let mut unknown = Vec::new();
        for dialect in [Dialect::Xray, Dialect::V2Ray] {
            self.set_dialect(dialect);
            match self.alter_inbound_remove("", "").await {
                Ok(()) => return Ok(dialect),
                Err(e) if e.is_unknown_service() => unknown.push(e.core_message().to_owned()),
                Err(e) if e.is_unavailable() => return Err(e),
                Err(_) => return Ok(dialect),
            }
        }
        Err(Error::new(
            ErrorKind::Unimplemented,
            format!("detect the API dialect of the core at {}", self.endpoint),
            format!(
                "neither dialect answered ({}); add \"HandlerService\" and \"StatsService\" to the core's api.services",
                unknown.join("; ")
            ),
        ))
    }

    /// Adds a VLESS user to the inbound `inbound_tag`.
    ///
    /// Fails with [`ErrorKind::AlreadyExists`] if the inbound has a user with that email
    /// (whatever its id: the core cannot tell us which).
    pub async fn add_vless_user(&self, inbound_tag: &str, user: &VlessUser) -> Result<(), Error> {
        let account = proto::VlessAccount {
            id: user.id.hyphenated().to_string(),
            flow: user.flow.clone(),
            encryption: String::new(),
        };
        let operation = proto::AddUserOperation {
            user: Some(proto::User {
                level: user.level,
                email: user.email.clone(),
                account: Some(proto::TypedMessage {
                    r#type: self.routes.vless_account_type.clone(),
                    value: account.encode_to_vec(),
                }),
            }),
        };
        let request = proto::AlterInboundRequest {
            tag: inbound_tag.to_owned(),
            operation: Some(proto::TypedMessage {
                r#type: self.routes.add_user_type.clone(),
                value: operation.encode_to_vec(),
            }),
        };
        self.unary::<_, proto::AlterInboundResponse>(&self.routes.alter_inbound, request, || {
            format!("add user {} to inbound {inbound_tag}", user.email)
        })
        .await
        .map(drop)
    }

    /// Checks, without changing anything, that `inbound_tag` names a VLESS inbound: removes a
    /// random email that cannot exist and reads the answer. A VLESS inbound says
    /// `.../proxy/vless...: User X not found.`; another user manager names its own package
    /// (`proxy/vmess/inbound`, `proxy/trojan`); a missing tag or a non-user-manager inbound gives
    /// [`ErrorKind::InboundNotFound`] / [`ErrorKind::InboundNotVless`].
    ///
    /// Call it before [`XrayClient::add_vless_user`] on an inbound you have not verified:
    /// v2ray 4.34 **crashes** (Go panic, whole process) when a VLESS user is added to a VMess or
    /// Trojan inbound (observed live).
    pub async fn check_vless_inbound(&self, inbound_tag: &str) -> Result<(), Error> {
        let probe = format!("tollgate-probe-{}@probe.invalid", Uuid::new_v4().simple());
        match self.alter_inbound_remove(inbound_tag, &probe).await {
            // Nothing to remove, yet the core says it removed it: treat as VLESS-capable.
            Ok(()) => Ok(()),
            Err(e)
                if e.kind() == ErrorKind::NotFound && e.core_message().contains("proxy/vless") =>
            {
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::new(
                ErrorKind::InboundNotVless,
                format!("check that inbound {inbound_tag} is a VLESS inbound"),
                format!(
                    "it manages users of another protocol (the core answered {:?}); adding a VLESS user to it would crash v2ray",
                    e.core_message()
                ),
            )),
            Err(e) => Err(e),
        }
    }

    /// Removes the user with this email from the inbound. Fails with [`ErrorKind::NotFound`] if
    /// the inbound has no such user. Live connections of the user are not closed by the core.
    pub async fn remove_user(&self, inbound_tag: &str, email: &str) -> Result<(), Error> {
        self.alter_inbound_remove(inbound_tag, email).await
    }

    async fn alter_inbound_remove(&self, inbound_tag: &str, email: &str) -> Result<(), Error> {
        let request = proto::AlterInboundRequest {
            tag: inbound_tag.to_owned(),
            operation: Some(proto::TypedMessage {
                r#type: self.routes.remove_user_type.clone(),
                value: proto::RemoveUserOperation {
                    email: email.to_owned(),
                }
                .encode_to_vec(),
            }),
        };
        self.unary::<_, proto::AlterInboundResponse>(&self.routes.alter_inbound, request, || {
            format!("remove user {email} from inbound {inbound_tag}")
        })
        .await
        .map(drop)
    }

    /// Reads one counter (optionally resetting it to zero). Fails with [`ErrorKind::NotFound`]
    /// if the counter does not exist yet.
    pub async fn get_stats(&self, name: &str, reset: bool) -> Result<Counter, Error> {
        let request = proto::GetStatsRequest {
            name: name.to_owned(),
            reset,
        };
        let response: proto::GetStatsResponse = self
            .unary(&self.routes.get_stats, request, || {
                format!("read counter {name}")
            })
            .await?;
        let stat = response.stat.unwrap_or_default();
        Ok(Counter::from(stat))
    }

    /// Reads every counter whose name contains `pattern` (a plain substring match in both
    /// cores; `""` matches all). With `reset`, each returned counter is set to zero.
    pub async fn query_stats(&self, pattern: &str, reset: bool) -> Result<Vec<Counter>, Error> {
        let request = proto::QueryStatsRequest {
            pattern: pattern.to_owned(),
            reset,
        };
        let response: proto::QueryStatsResponse = self
            .unary(&self.routes.query_stats, request, || {
                format!("query counters matching {pattern:?}")
            })
            .await?;
        Ok(response.stat.into_iter().map(Counter::from).collect())
    }

    /// Reads all per-user traffic counters (`user>>>EMAIL>>>traffic>>>uplink|downlink`), one
    /// entry per email. With `reset`, the core's counters restart from zero, so the values are
    /// deltas since the previous reset.
    pub async fn user_traffic(&self, reset: bool) -> Result<Vec<UserTraffic>, Error> {
        let counters = self.query_stats("user>>>", reset).await?;
        Ok(UserTraffic::from_counters(&counters))
    }

    /// The core's runtime statistics, including its uptime.
    pub async fn sys_stats(&self) -> Result<SysStats, Error> {
        let response: proto::SysStatsResponse = self
            .unary(&self.routes.sys_stats, proto::SysStatsRequest {}, || {
                "read the core's runtime statistics".to_owned()
            })
            .await?;
        Ok(SysStats::from(response))
    }

    /// One unary call under the per-call deadline; `operation` names it in errors.
    async fn unary<Req, Resp>(
        &self,
        path: &PathAndQuery,
        request: Req,
        operation: impl FnOnce() -> String,
    ) -> Result<Resp, Error>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        let call = async {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            grpc.ready().await.map_err(|e| {
                tonic::Status::unavailable(format!("connection not ready: {}", error_chain(&e)))
            })?;
            let mut request = tonic::Request::new(request);
            request.set_timeout(self.call_timeout);
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            grpc.unary(request, path.clone(), codec).await
        };
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::from_status(operation(), &status)),
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                operation(),
                format!("no answer within {:?}", self.call_timeout),
            )),
        }
    }
}

/// Accepts `host:port`, `http://host:port`; refuses TLS (the core API is plain gRPC).
fn normalize_endpoint(endpoint: &str) -> Result<String, Error> {
    let trimmed = endpoint.trim();
    let invalid = |why: &str| {
        Error::new(
            ErrorKind::Other,
            format!("connect to the core API at {endpoint:?}"),
            why.to_owned(),
        )
    };
    if trimmed.is_empty() {
        return Err(invalid(
            "the address is empty; give host:port, e.g. 127.0.0.1:10085",
        ));
    }
    if trimmed.starts_with("https://") {
        return Err(invalid(
            "the core API speaks plain gRPC; give host:port or http://host:port and keep it on 127.0.0.1",
        ));
    }
    if trimmed.starts_with("http://") {
        Ok(trimmed.to_owned())
    } else if trimmed.contains("://") {
        Err(invalid(
            "unsupported scheme; give host:port, e.g. 127.0.0.1:10085",
        ))
    } else {
        Ok(format!("http://{trimmed}"))
    }
}

/// An error and its sources on one line (tonic's transport errors hide the cause in `source`).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized_or_refused_with_a_hint() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:10085").ok().as_deref(),
            Some("http://127.0.0.1:10085")
        );
        assert_eq!(
            normalize_endpoint(" http://[::1]:10085 ").ok().as_deref(),
            Some("http://[::1]:10085")
        );
        let err = normalize_endpoint("https://x:1").unwrap_err();
        assert!(err.core_message().contains("plain gRPC"), "{err}");
        assert!(normalize_endpoint("").is_err());
        assert!(normalize_endpoint("unix:///run/x").is_err());
    }
}
