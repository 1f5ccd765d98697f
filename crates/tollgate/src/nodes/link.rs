//! One link definition per node → the node's user entry *and* the `vless://` share link.
//!
//! The earlier system built links in one place and server entries in another, so a link
//! could ask for a flow the server's users lacked and nobody could connect (docs/reliability.md E5).
//! Here both come from the catalog's [`LinkDefinition`] through this module only: the flow
//! the agent is told to put on a user is the flow the link carries, and every other
//! parameter of the link is the catalog's, verbatim. The data-plane test builds its VLESS
//! client from [`share_link`]'s output and connects through a user made by [`user_entry`].
//!
//! Link format (share-link convention of v2rayN / v2rayNG, docs/design.md §7.1):
//! `vless://UUID@HOST:PORT?encryption=none[&flow=..]&security=..[&sni..&fp..&alpn..|&sni..&fp..&pbk..&sid..&spx..]&type=..[&headerType=none|&path..&host..|&serviceName..]#NAME`,
//! every value percent-encoded (RFC 3986 unreserved characters stay), IPv6 hosts in brackets.

use std::fmt::Write as _;

use tollgate_node::api::PutUserRequest;
use uuid::Uuid;

use crate::config::catalog::{LinkDefinition, Security, Transport};

/// Policy level of every user we put on a node; the agent's docs require per-user stats on it.
pub const USER_LEVEL: u32 = 0;

/// What the agent is asked to hold for one key on a node.
pub fn user_entry(def: &LinkDefinition, uuid: &Uuid) -> PutUserRequest {
    PutUserRequest {
        uuid: uuid.hyphenated().to_string(),
        flow: def.flow.clone(),
        level: USER_LEVEL,
    }
}

/// The `vless://` link a client app imports to use `uuid` on this node, shown as `name`.
pub fn share_link(def: &LinkDefinition, uuid: &Uuid, name: &str) -> String {
    let mut query = Query::default();
    query.push("encryption", "none");
    if !def.flow.is_empty() {
        query.push("flow", &def.flow);
    }
    match &def.security {
        Security::None => query.push("security", "none"),
        Security::Tls { sni, fp, alpn } => {
            query.push("security", "tls");
            query.push_opt("sni", sni.as_deref());
            query.push_opt("fp", fp.as_deref());
            query.push_opt("alpn", alpn.as_deref());
        }
        Security::Reality {
            sni,
            fp,
            pbk,
            sid,
            spx,
        } => {
            query.push("security", "reality");
            query.push("sni", sni);
            query.push("fp", fp);
            query.push("pbk", pbk);
            query.push_opt("sid", Some(sid.as_str()));
            query.push_opt("spx", spx.as_deref());
        }
    }
    match &def.transport {
        Transport::Tcp => {
            query.push("type", "tcp");
            query.push("headerType", "none");
        }
        Transport::Ws { path, host } => {
            query.push("type", "ws");
            query.push("path", path);
            query.push_opt("host", host.as_deref());
        }
        Transport::Grpc { service_name } => {
            query.push("type", "grpc");
            query.push("serviceName", service_name);
        }
        Transport::Httpupgrade { path, host } => {
            query.push("type", "httpupgrade");
            query.push("path", path);
            query.push_opt("host", host.as_deref());
        }
    }
    format!(
        "vless://{}@{}:{}?{}#{}",
        uuid.hyphenated(),
        bracket_ipv6(&def.host),
        def.port,
        query.0,
        percent_encode(name)
    )
}

/// The name a client app shows for a node: its flag and its catalog name, e.g. `🇳🇱 nl-1`.
pub fn display_name(country: &str, node: &str) -> String {
    match flag(country) {
        Some(flag) => format!("{flag} {node}"),
        None => node.to_owned(),
    }
}

/// Regional-indicator flag of a two-letter country code (`NL` → 🇳🇱).
fn flag(country: &str) -> Option<String> {
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    country
        .bytes()
        .map(|b| char::from_u32(0x1F1E6 + u32::from(b - b'A')))
        .collect()
}

/// IPv6 literals go in brackets inside a URL authority.
fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[derive(Default)]
struct Query(String);

impl Query {
    fn push(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&percent_encode(value));
    }

    /// Skips absent and empty values: apps treat `sid=` like no `sid`.
    fn push_opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.push(key, v);
        }
    }
}

/// Encodes everything but RFC 3986 unreserved characters (UTF-8 bytes as `%XX`).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9";

    fn uuid() -> Uuid {
        Uuid::parse_str(UUID).unwrap()
    }

    fn def(security: Security, transport: Transport, flow: &str) -> LinkDefinition {
        LinkDefinition {
            host: "nl1.example.com".into(),
            port: 443,
            security,
            flow: flow.into(),
            transport,
        }
    }

    #[test]
    fn plain_tcp() {
        let mut d = def(Security::None, Transport::Tcp, "");
        d.host = "127.0.0.1".into();
        d.port = 10443;
        assert_eq!(
            share_link(&d, &uuid(), "🇳🇱 nl-1"),
            "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@127.0.0.1:10443?encryption=none&security=none&type=tcp&headerType=none#%F0%9F%87%B3%F0%9F%87%B1%20nl-1"
        );
    }

    #[test]
    fn tls_with_every_option() {
        let d = def(
            Security::Tls {
                sni: Some("nl1.example.com".into()),
                fp: Some("chrome".into()),
                alpn: Some("h2,http/1.1".into()),
            },
            Transport::Tcp,
            "xtls-rprx-vision",
        );
        assert_eq!(
            share_link(&d, &uuid(), "nl-1"),
            "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@nl1.example.com:443?encryption=none&flow=xtls-rprx-vision&security=tls&sni=nl1.example.com&fp=chrome&alpn=h2%2Chttp%2F1.1&type=tcp&headerType=none#nl-1"
        );
    }

    #[test]
    fn reality_vision() {
        let d = def(
            Security::Reality {
                sni: "www.example.com".into(),
                fp: "chrome".into(),
                pbk: "Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw".into(),
                sid: "6ba85179e30d4fc2".into(),
                spx: Some("/".into()),
            },
            Transport::Tcp,
            "xtls-rprx-vision",
        );
        assert_eq!(
            share_link(&d, &uuid(), "🇩🇪 de-1"),
            "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@nl1.example.com:443?encryption=none&flow=xtls-rprx-vision&security=reality&sni=www.example.com&fp=chrome&pbk=Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw&sid=6ba85179e30d4fc2&spx=%2F&type=tcp&headerType=none#%F0%9F%87%A9%F0%9F%87%AA%20de-1"
        );
        // An empty short id is legal in REALITY and simply left out.
        let mut d = d;
        if let Security::Reality { sid, spx, .. } = &mut d.security {
            sid.clear();
            *spx = None;
        }
        assert!(
            share_link(&d, &uuid(), "x")
                .contains("&pbk=Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw&type=tcp"),
        );
    }

    #[test]
    fn websocket_over_tls_on_ipv6() {
        let mut d = def(
            Security::Tls {
                sni: Some("cdn.example.com".into()),
                fp: None,
                alpn: None,
            },
            Transport::Ws {
                path: "/ws path".into(),
                host: Some("cdn.example.com".into()),
            },
            "",
        );
        d.host = "2001:db8::1".into();
        d.port = 8443;
        assert_eq!(
            share_link(&d, &uuid(), "ws"),
            "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@[2001:db8::1]:8443?encryption=none&security=tls&sni=cdn.example.com&type=ws&path=%2Fws%20path&host=cdn.example.com#ws"
        );
    }

    #[test]
    fn grpc_and_httpupgrade() {
        let d = def(
            Security::Tls {
                sni: None,
                fp: None,
                alpn: None,
            },
            Transport::Grpc {
                service_name: "tunnel".into(),
            },
            "",
        );
        assert_eq!(
            share_link(&d, &uuid(), "g"),
            "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@nl1.example.com:443?encryption=none&security=tls&type=grpc&serviceName=tunnel#g"
        );
        let d = def(
            Security::None,
            Transport::Httpupgrade {
                path: "/up".into(),
                host: None,
            },
            "",
        );
        assert_eq!(
            share_link(&d, &uuid(), "h"),
            "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@nl1.example.com:443?encryption=none&security=none&type=httpupgrade&path=%2Fup#h"
        );
    }

    #[test]
    fn the_user_entry_carries_the_links_flow() {
        for flow in ["", "xtls-rprx-vision"] {
            let d = def(
                Security::Reality {
                    sni: "s".into(),
                    fp: "chrome".into(),
                    pbk: "k".into(),
                    sid: String::new(),
                    spx: None,
                },
                Transport::Tcp,
                flow,
            );
            let entry = user_entry(&d, &uuid());
            assert_eq!(entry.uuid, UUID);
            assert_eq!(entry.flow, flow);
            assert_eq!(entry.level, USER_LEVEL);
            let link = share_link(&d, &uuid(), "n");
            assert_eq!(link.contains("flow=xtls-rprx-vision"), !flow.is_empty());
        }
    }

    #[test]
    fn names_get_their_flag() {
        assert_eq!(display_name("NL", "nl-1"), "🇳🇱 nl-1");
        assert_eq!(display_name("nl", "nl-1"), "nl-1");
    }
}
