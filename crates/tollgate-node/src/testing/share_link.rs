//! Parsing `vless://` share links, the way client apps read them.
//!
//! Why in the harness: the data-plane tests must connect with exactly what the service hands
//! out. The parser is strict (unknown security, bad UUID, bad flow, duplicate keys are errors)
//! so a broken link fails the test instead of being "fixed" silently.
//!
//! Format: `vless://<uuid>@<host>:<port>?<key=value&...>#<url-encoded name>`; keys as written by
//! v2rayN / v2rayNG: `encryption`, `flow`, `security` (`none|tls|reality`), `sni`, `fp`, `pbk`,
//! `sid`, `spx`, `alpn`, `type` (`tcp`/`raw`, `ws`, `grpc`, ...), `headerType`, `host`, `path`,
//! `serviceName`, `mode`...

use std::collections::BTreeMap;
use std::fmt;

use uuid::Uuid;
use xray_api::testing::VlessOutbound;

use crate::validate::{Flow, parse_uuid};

/// Transport security of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    None,
    Tls,
    Reality,
}

/// Transport of a link (`type=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `tcp` (also written `raw`).
    Tcp,
    Ws,
    Grpc,
    /// Any other transport name, kept as written.
    Other(String),
}

/// A parsed `vless://` link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareLink {
    pub uuid: Uuid,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub transport: Transport,
    /// `""` or `xtls-rprx-vision`.
    pub flow: String,
    pub sni: Option<String>,
    /// uTLS fingerprint (`fp`).
    pub fingerprint: Option<String>,
    /// REALITY public key (`pbk`).
    pub public_key: Option<String>,
    /// REALITY short id (`sid`).
    pub short_id: Option<String>,
    /// ws/http path (`path`).
    pub path: Option<String>,
    /// ws/http Host header (`host`).
    pub host_header: Option<String>,
    /// gRPC service name (`serviceName`).
    pub service_name: Option<String>,
    /// The display name (fragment).
    pub name: String,
    /// Every query parameter, decoded.
    pub params: BTreeMap<String, String>,
}

/// Why a link does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareLinkError(pub String);

impl fmt::Display for ShareLinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid vless:// link: {}", self.0)
    }
}

impl std::error::Error for ShareLinkError {}

fn err<T>(message: impl Into<String>) -> Result<T, ShareLinkError> {
    Err(ShareLinkError(message.into()))
}

impl ShareLink {
    /// Parses a link.
    pub fn parse(link: &str) -> Result<ShareLink, ShareLinkError> {
        let link = link.trim();
        let Some(rest) = link
            .get(..8)
            .filter(|s| s.eq_ignore_ascii_case("vless://"))
            .map(|_| &link[8..])
        else {
            return err("it must start with vless://");
        };
        let (rest, name) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, percent_decode(fragment)?),
            None => (rest, String::new()),
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let Some((userinfo, hostport)) = authority.rsplit_once('@') else {
            return err("missing <uuid>@ before the host");
        };
        let uuid = parse_uuid(&percent_decode(userinfo)?).map_err(ShareLinkError)?;
        let (host, port) = split_host_port(hostport)?;

        let mut params = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            if params.insert(key.clone(), percent_decode(value)?).is_some() {
                return err(format!("parameter {key:?} appears twice"));
            }
        }
        let get = |key: &str| params.get(key).filter(|v| !v.is_empty()).cloned();

        match params.get("encryption").map(String::as_str) {
            None | Some("" | "none") => {}
            Some(other) => {
                return err(format!(
                    "encryption={other:?}: VLESS links use encryption=none"
                ));
            }
        }
        let security = match params.get("security").map(String::as_str) {
            None | Some("" | "none") => Security::None,
            Some("tls") => Security::Tls,
            Some("reality") => Security::Reality,
            Some(other) => {
                return err(format!("security={other:?}: expected none, tls or reality"));
            }
        };
        let transport = match params.get("type").map(String::as_str) {
            None | Some("" | "tcp" | "raw") => Transport::Tcp,
            Some("ws") => Transport::Ws,
            Some("grpc") => Transport::Grpc,
            Some(other) => Transport::Other(other.to_owned()),
        };
        let flow = params.get("flow").cloned().unwrap_or_default();
        Flow::parse(&flow).map_err(ShareLinkError)?;
        if security == Security::Reality && get("pbk").is_none() {
            return err("security=reality needs pbk (the REALITY public key)");
        }
        Ok(ShareLink {
            uuid,
            host,
            port,
            security,
            transport,
            flow,
            sni: get("sni"),
            fingerprint: get("fp"),
            public_key: get("pbk"),
            short_id: get("sid"),
            path: get("path"),
            host_header: get("host"),
            service_name: get("serviceName"),
            name,
            params,
        })
    }

    /// The client-core outbound for this link. The V2Ray harness supports plain TCP without
    /// TLS only (V2Ray 4.34 has no REALITY or Vision).
    pub fn to_vless_outbound(&self) -> Result<VlessOutbound, ShareLinkError> {
        if self.security != Security::None || self.transport != Transport::Tcp {
            return err(format!(
                "the V2Ray test client supports security=none over tcp only, this link has {:?} over {:?}",
                self.security, self.transport
            ));
        }
        Ok(VlessOutbound {
            address: self.host.clone(),
            port: self.port,
            id: self.uuid.to_string(),
            flow: self.flow.clone(),
        })
    }
}

fn split_host_port(hostport: &str) -> Result<(String, u16), ShareLinkError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((host, rest)) = v6.split_once(']') else {
            return err("unclosed [ in an IPv6 host");
        };
        (host, rest.strip_prefix(':').unwrap_or(""))
    } else {
        hostport.rsplit_once(':').unwrap_or((hostport, ""))
    };
    if host.is_empty() {
        return err("empty host");
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host.to_owned(), port)),
        _ => err(format!("bad or missing port in {hostport:?}")),
    }
}

/// Decodes `%XX` escapes (UTF-8); `+` stays a plus.
fn percent_decode(text: &str) -> Result<String, ShareLinkError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return err(format!("bad %-escape in {text:?}"));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ShareLinkError(format!("{text:?} does not decode to UTF-8")))
}

/// Encodes everything but unreserved characters (RFC 3986).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reality_vision_link_parses_fully() {
        let link = "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@vpn.example.com:443?encryption=none&flow=xtls-rprx-vision&security=reality&sni=www.example.com&fp=chrome&pbk=PUBKEY&sid=ab12&spx=%2F&type=tcp&headerType=none#My%20Node%20%F0%9F%87%A9%F0%9F%87%AA";
        let parsed = ShareLink::parse(link).unwrap();
        assert_eq!(
            parsed.uuid.to_string(),
            "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9"
        );
        assert_eq!(
            (parsed.host.as_str(), parsed.port),
            ("vpn.example.com", 443)
        );
        assert_eq!(parsed.security, Security::Reality);
        assert_eq!(parsed.transport, Transport::Tcp);
        assert_eq!(parsed.flow, "xtls-rprx-vision");
        assert_eq!(parsed.sni.as_deref(), Some("www.example.com"));
        assert_eq!(parsed.public_key.as_deref(), Some("PUBKEY"));
        assert_eq!(parsed.short_id.as_deref(), Some("ab12"));
        assert_eq!(parsed.params["spx"], "/");
        assert_eq!(parsed.name, "My Node 🇩🇪");
        assert!(
            parsed
                .to_vless_outbound()
                .unwrap_err()
                .0
                .contains("security=none over tcp only")
        );
    }

    #[test]
    fn plain_links_become_outbounds_and_ipv6_hosts_work() {
        let parsed = ShareLink::parse("vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@[::1]:8443?type=ws&path=%2Fws&host=cdn.example#x").unwrap();
        assert_eq!((parsed.host.as_str(), parsed.port), ("::1", 8443));
        assert_eq!(parsed.transport, Transport::Ws);
        assert_eq!(parsed.path.as_deref(), Some("/ws"));
        let plain = ShareLink::parse("VLESS://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@127.0.0.1:1080")
            .unwrap();
        let outbound = plain.to_vless_outbound().unwrap();
        assert_eq!(
            (outbound.address.as_str(), outbound.port),
            ("127.0.0.1", 1080)
        );
    }

    #[test]
    fn broken_links_are_refused_with_a_reason() {
        let cases = [
            ("vmess://abc", "vless://"),
            ("vless://not-a-uuid@h:1", "not a UUID"),
            ("vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h", "port"),
            ("vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h:0", "port"),
            (
                "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h:1?security=xtls",
                "security",
            ),
            (
                "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h:1?security=reality",
                "pbk",
            ),
            (
                "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h:1?flow=xtls-rprx-direct",
                "flow",
            ),
            (
                "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h:1?encryption=aes",
                "encryption",
            ),
            (
                "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h:1?sni=a&sni=b",
                "twice",
            ),
            (
                "vless://86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9@h:1#%zz",
                "escape",
            ),
        ];
        for (link, expected) in cases {
            let e = ShareLink::parse(link).unwrap_err();
            assert!(e.to_string().contains(expected), "{link}: {e}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        let name = "Node #1 / Ünï";
        assert_eq!(percent_decode(&percent_encode(name)).unwrap(), name);
    }
}
