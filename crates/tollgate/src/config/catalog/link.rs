//! A node's share link (`nodes[].link`): the one definition its users' entries on the
//! server and the links users import are both derived from, so the two cannot disagree.
//! Combinations the server cannot serve (REALITY without a key, vision flow over ws) are
//! refused here rather than discovered by users whose client fails to connect.

use serde::{Deserialize, Serialize};

use super::check::Check;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    host: String,
    port: i64,
    security: String,
    #[serde(default)]
    sni: Option<String>,
    #[serde(default)]
    fp: Option<String>,
    #[serde(default)]
    alpn: Option<String>,
    #[serde(default)]
    pbk: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    spx: Option<String>,
    #[serde(default)]
    flow: Option<String>,
    transport: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    ws_host: Option<String>,
    #[serde(default)]
    service_name: Option<String>,
}

/// The one definition a node's user entries and its share links are both derived from.
#[derive(Debug, Clone, Serialize)]
pub struct LinkDefinition {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Empty, or `xtls-rprx-vision` (needs tls/reality over tcp).
    pub flow: String,
    pub transport: Transport,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Security {
    None,
    Tls {
        sni: Option<String>,
        fp: Option<String>,
        alpn: Option<String>,
    },
    Reality {
        sni: String,
        fp: String,
        pbk: String,
        sid: String,
        spx: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Ws { path: String, host: Option<String> },
    Grpc { service_name: String },
    Httpupgrade { path: String, host: Option<String> },
}

/// The uTLS fingerprints clients accept in `fp`.
const FINGERPRINTS: [&str; 10] = [
    "chrome",
    "firefox",
    "safari",
    "ios",
    "android",
    "edge",
    "360",
    "qq",
    "random",
    "randomized",
];

pub(super) fn parse_link(c: &mut Check<'_>, key: &str, l: &RawLink) -> Option<LinkDefinition> {
    let before = c.errors.len();
    if l.host.trim().is_empty() || l.host.contains(['/', ' ', '@', '?', '#']) {
        c.fail(
            &format!("{key}.host"),
            format!("{:?} is not a host name or IP", l.host),
            "e.g. host = \"nl1.example.com\"",
        );
    }
    let port = match u16::try_from(l.port) {
        Ok(p) if p > 0 => p,
        _ => {
            c.fail(
                &format!("{key}.port"),
                format!("{} is not a port", l.port),
                "use 1-65535, usually 443",
            );
            0
        }
    };
    let security = parse_security(c, key, l);
    let transport = parse_transport(c, key, l);
    let flow = parse_flow(c, key, l, &security, &transport);
    if c.errors.len() != before {
        return None;
    }
    Some(LinkDefinition {
        host: l.host.clone(),
        port,
        security: security?,
        flow,
        transport: transport?,
    })
}

fn check_fp(c: &mut Check<'_>, key: &str, fp: &Option<String>) {
    if let Some(f) = fp
        && !FINGERPRINTS.contains(&f.as_str())
    {
        c.fail(
            &format!("{key}.fp"),
            format!("{f:?} is not a uTLS fingerprint"),
            format!("use one of {}", FINGERPRINTS.join(", ")),
        );
    }
}

fn parse_security(c: &mut Check<'_>, key: &str, l: &RawLink) -> Option<Security> {
    match l.security.as_str() {
        "none" => {
            for (field, v) in [
                ("sni", &l.sni),
                ("pbk", &l.pbk),
                ("sid", &l.sid),
                ("fp", &l.fp),
            ] {
                if v.is_some() {
                    c.fail(
                        &format!("{key}.{field}"),
                        "is set but security is \"none\"",
                        "remove it or choose security = \"tls\" or \"reality\"",
                    );
                }
            }
            Some(Security::None)
        }
        "tls" => {
            check_fp(c, key, &l.fp);
            if l.pbk.is_some() || l.sid.is_some() {
                c.fail(
                    &format!("{key}.pbk"),
                    "pbk/sid belong to REALITY, not TLS",
                    "remove them or use security = \"reality\"",
                );
            }
            Some(Security::Tls {
                sni: l.sni.clone(),
                fp: l.fp.clone(),
                alpn: l.alpn.clone(),
            })
        }
        "reality" => {
            check_fp(c, key, &l.fp);
            let sni = l.sni.clone().unwrap_or_default();
            if sni.is_empty() {
                c.fail(
                    &format!("{key}.sni"),
                    "is required for REALITY",
                    "set sni to one of the inbound's realitySettings.serverNames",
                );
            }
            let pbk = l.pbk.clone().unwrap_or_default();
            let pbk_ok = pbk.len() == 43
                && pbk
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !pbk_ok {
                c.fail(
                    &format!("{key}.pbk"),
                    format!("{pbk:?} is not a REALITY public key"),
                    "use the 43-character base64url public key printed by `xray x25519`",
                );
            }
            let sid = l.sid.clone().unwrap_or_default();
            if sid.len() > 16
                || !sid.len().is_multiple_of(2)
                || !sid.bytes().all(|b| b.is_ascii_hexdigit())
            {
                c.fail(
                    &format!("{key}.sid"),
                    format!("{sid:?} is not a REALITY short id"),
                    "use an even number (0-16) of hex digits from the inbound's shortIds",
                );
            }
            Some(Security::Reality {
                sni,
                fp: l.fp.clone().unwrap_or_else(|| "chrome".to_owned()),
                pbk,
                sid,
                spx: l.spx.clone(),
            })
        }
        other => {
            c.fail(
                &format!("{key}.security"),
                format!("{other:?} is not a security mode"),
                "use \"none\", \"tls\" or \"reality\"",
            );
            None
        }
    }
}

fn parse_transport(c: &mut Check<'_>, key: &str, l: &RawLink) -> Option<Transport> {
    match l.transport.as_str() {
        "tcp" => Some(Transport::Tcp),
        "ws" | "httpupgrade" => {
            let path = l.path.clone().unwrap_or_default();
            if !path.starts_with('/') {
                c.fail(
                    &format!("{key}.path"),
                    format!("{path:?} is not an absolute path"),
                    "set path = \"/your-path\" as in the inbound's settings",
                );
            }
            if l.transport == "ws" {
                Some(Transport::Ws {
                    path,
                    host: l.ws_host.clone(),
                })
            } else {
                Some(Transport::Httpupgrade {
                    path,
                    host: l.ws_host.clone(),
                })
            }
        }
        "grpc" => {
            let service_name = l.service_name.clone().unwrap_or_default();
            if service_name.is_empty() {
                c.fail(
                    &format!("{key}.service_name"),
                    "is required for grpc",
                    "set service_name as in the inbound's grpcSettings",
                );
            }
            Some(Transport::Grpc { service_name })
        }
        other => {
            c.fail(
                &format!("{key}.transport"),
                format!("{other:?} is not a supported transport"),
                "use tcp, ws, grpc or httpupgrade",
            );
            None
        }
    }
}

/// `flow`: empty, or `xtls-rprx-vision`, which only works with tls or reality over tcp.
fn parse_flow(
    c: &mut Check<'_>,
    key: &str,
    l: &RawLink,
    security: &Option<Security>,
    transport: &Option<Transport>,
) -> String {
    let flow = l.flow.clone().unwrap_or_default();
    match flow.as_str() {
        "" => {}
        "xtls-rprx-vision" => {
            let secure = matches!(
                security,
                Some(Security::Tls { .. } | Security::Reality { .. })
            );
            if !secure || !matches!(transport, Some(Transport::Tcp)) {
                c.fail(
                    &format!("{key}.flow"),
                    "xtls-rprx-vision needs security tls or reality over tcp",
                    "remove flow or use tcp with tls/reality",
                );
            }
        }
        other => c.fail(
            &format!("{key}.flow"),
            format!("{other:?} is not a flow"),
            "use \"\" or \"xtls-rprx-vision\"",
        ),
    }
    flow
}

#[cfg(test)]
mod tests {
    use super::super::testing::with_node;
    use crate::config::env::Env;

    #[test]
    fn link_definitions_cannot_ask_for_what_the_server_lacks() {
        let env = Env::from_pairs([(
            "NODE_NL_1_TOKEN",
            "0123456789abcdef-0123456789abcdef-secret",
        )]);
        let e = with_node("host = \"h\", port = 443, security = \"none\", flow = \"xtls-rprx-vision\", transport = \"tcp\"", &env).unwrap_err();
        assert!(e.contains("nodes[0].link.flow"), "{e}");
        let e = with_node("host = \"h\", port = 443, security = \"reality\", sni = \"s\", pbk = \"short\", sid = \"xyz\", transport = \"tcp\"", &env).unwrap_err();
        assert!(
            e.contains("nodes[0].link.pbk") && e.contains("nodes[0].link.sid"),
            "{e}"
        );
        let e = with_node(
            "host = \"h\", port = 443, security = \"none\", transport = \"ws\"",
            &env,
        )
        .unwrap_err();
        assert!(e.contains("nodes[0].link.path"), "{e}");
        with_node("host = \"h\", port = 8443, security = \"tls\", sni = \"h\", transport = \"ws\", path = \"/v\"", &env).unwrap();
    }
}
