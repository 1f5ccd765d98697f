//! `[[nodes]]`: the VPN nodes and how the service reaches each one's agent — its URL, the
//! environment variable holding its token, the pinned TLS certificate (`agent_cert_sha256`)
//! and the explicit opt-in to plain HTTP off this host (`allow_plaintext`). The share link
//! each node offers is read in `link`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use url::Url;

use super::check::Check;
use super::link::{LinkDefinition, RawLink, parse_link};
use crate::config::env::Env;
use crate::config::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    name: String,
    country: String,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    agent_url: String,
    agent_token_env: String,
    #[serde(default)]
    agent_cert_sha256: Option<String>,
    #[serde(default)]
    allow_plaintext: bool,
    link: RawLink,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeDefinition {
    pub name: String,
    pub country: String,
    pub enabled: bool,
    pub agent_url: Url,
    pub agent_token_env: String,
    #[serde(skip)]
    pub agent_token: Secret<String>,
    /// The agent's certificate, pinned: the service accepts exactly this one (https only).
    pub agent_cert_sha256: Option<tollgate_node::CertFingerprint>,
    /// The operator accepts plain HTTP to an agent off this host (a tunnel, a private link).
    pub allow_plaintext: bool,
    pub link: LinkDefinition,
}

/// Converts `[[nodes]]`; `env` holds the agent tokens the nodes name.
pub(super) fn parse_nodes(c: &mut Check<'_>, raw: &[RawNode], env: &Env) -> Vec<NodeDefinition> {
    let mut node_names = BTreeSet::new();
    let mut nodes = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let key = format!("nodes[{i}]");
        if let Some(node) = parse_node(c, &key, n, env, &mut node_names) {
            nodes.push(node);
        }
    }
    nodes
}

/// One node; `node_names` collects the names seen so far, which must be unique.
fn parse_node(
    c: &mut Check<'_>,
    key: &str,
    n: &RawNode,
    env: &Env,
    node_names: &mut BTreeSet<String>,
) -> Option<NodeDefinition> {
    let name_ok = (1..=32).contains(&n.name.len())
        && n.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        c.fail(
            &format!("{key}.name"),
            format!("{:?} is not a node name", n.name),
            "use 1-32 characters of a-z 0-9 - (memberships are stored under it; never rename a live node)",
        );
    } else if !node_names.insert(n.name.clone()) {
        c.fail(
            &format!("{key}.name"),
            format!("{:?} is used twice", n.name),
            "give every node its own name",
        );
    }
    if n.country.len() != 2 || !n.country.bytes().all(|b| b.is_ascii_uppercase()) {
        c.fail(
            &format!("{key}.country"),
            format!("{:?} is not a two-letter country code", n.country),
            "use an ISO 3166 code in capitals, e.g. \"NL\"",
        );
    }
    let agent_url = match Url::parse(&n.agent_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        _ => {
            c.fail(
                &format!("{key}.agent_url"),
                format!("{:?} is not an http(s) URL", n.agent_url),
                "give the tollgate-node agent's address, e.g. \"https://10.0.0.5:9090\"",
            );
            None
        }
    };
    let agent_cert_sha256 = match &n.agent_cert_sha256 {
        Some(text) => match tollgate_node::CertFingerprint::parse(text) {
            Ok(fingerprint) => Some(fingerprint),
            Err(problem) => {
                c.fail(
                    &format!("{key}.agent_cert_sha256"),
                    problem,
                    "copy the line `tollgate-node fingerprint` prints on the node (or the one its log shows at start)",
                );
                None
            }
        },
        None => None,
    };
    if let Some(url) = &agent_url {
        check_agent_transport(
            c,
            key,
            url,
            n.agent_cert_sha256.is_some(),
            n.allow_plaintext,
        );
    }
    let token = agent_token(c, key, n, env);
    let link = parse_link(c, &format!("{key}.link"), &n.link);
    Some(NodeDefinition {
        name: n.name.clone(),
        country: n.country.clone(),
        enabled: n.enabled,
        agent_url: agent_url?,
        agent_token_env: n.agent_token_env.clone(),
        agent_token: token?,
        agent_cert_sha256,
        allow_plaintext: n.allow_plaintext,
        link: link?,
    })
}

/// The node's token, read from the variable `agent_token_env` names.
fn agent_token(c: &mut Check<'_>, key: &str, n: &RawNode, env: &Env) -> Option<Secret<String>> {
    // The agent's own rule (tollgate_node::Token), so a token this catalog accepts is
    // one the agent can be installed with; the message never contains the token.
    match env.get(&n.agent_token_env) {
        Some(t) => match tollgate_node::Token::new(t) {
            Ok(_) => Some(Secret::new(t.to_owned())),
            Err(problem) => {
                c.fail(
                    &format!("{key}.agent_token_env"),
                    format!("the variable {}: {problem}", n.agent_token_env),
                    "use the long random token the agent was installed with",
                );
                None
            }
        },
        None => {
            c.fail(
                &format!("{key}.agent_token_env"),
                format!("the environment variable {:?} is not set", n.agent_token_env),
                format!(
                    "export {}=<the node agent's token> (tokens are secrets and live in the environment, not in the file)",
                    n.agent_token_env
                ),
            );
            None
        }
    }
}

/// The agent channel carries the token and every user's key: plain HTTP is refused unless it
/// stays on this host or the node says `allow_plaintext = true` (a tunnel, a private link);
/// a pin only makes sense over https.
fn check_agent_transport(
    c: &mut Check<'_>,
    key: &str,
    url: &Url,
    pinned: bool,
    allow_plaintext: bool,
) {
    if url.scheme() != "http" {
        return;
    }
    if pinned {
        c.fail(
            &format!("{key}.agent_cert_sha256"),
            format!(
                "a certificate is pinned, but agent_url {:?} is plain http",
                url.as_str()
            ),
            "use https:// in agent_url (the agent serves TLS unless started with --plaintext)",
        );
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback && !allow_plaintext {
        c.fail(
            &format!("{key}.agent_url"),
            format!(
                "{:?} is plain http to another host: the agent token and every user's key would cross the network in clear text",
                url.as_str()
            ),
            "use https:// with agent_cert_sha256 = \"…\" (the line `tollgate-node fingerprint` prints on the node); only if the path is already private (a tunnel), set allow_plaintext = true on this node",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PLAIN_LINK, token_env, with_agent, with_node};
    use crate::config::env::Env;

    const PIN: &str = "96:83:18:FF:8E:52:13:40:1E:DD:4C:8D:8C:07:B9:93:A6:EC:A0:E9:13:8A:93:5E:64:76:40:85:FA:B7:AF:EA";

    #[test]
    fn plain_http_to_another_host_is_refused_unless_the_node_allows_it() {
        let env = token_env();
        for url in [
            "http://10.0.0.5:9090",
            "http://node.example.com:9090",
            "http://[2001:db8::5]:9090",
        ] {
            let e = with_agent(&format!("agent_url = \"{url}\""), PLAIN_LINK, &env).unwrap_err();
            assert!(
                e.contains("nodes[0].agent_url")
                    && e.contains("clear text")
                    && e.contains("agent_cert_sha256")
                    && e.contains("allow_plaintext = true"),
                "{url}: {e}"
            );
        }
        // Loopback stays plain (an agent on the same host); so does an explicit opt-in.
        for url in [
            "http://127.0.0.1:9090",
            "http://localhost:9090",
            "http://[::1]:9090",
        ] {
            with_agent(&format!("agent_url = \"{url}\""), PLAIN_LINK, &env).unwrap();
        }
        let cat = with_agent(
            "agent_url = \"http://10.0.0.5:9090\"\nallow_plaintext = true",
            PLAIN_LINK,
            &env,
        )
        .unwrap();
        assert!(cat.nodes[0].allow_plaintext);
        // https needs no opt-in.
        with_agent("agent_url = \"https://10.0.0.5:9090\"", PLAIN_LINK, &env).unwrap();
    }

    #[test]
    fn a_pinned_certificate_takes_either_form_and_refuses_a_malformed_one() {
        let env = token_env();
        let pinned = |value: &str| {
            with_agent(
                &format!("agent_url = \"https://10.0.0.5:9090\"\nagent_cert_sha256 = \"{value}\""),
                PLAIN_LINK,
                &env,
            )
        };
        let expected = tollgate_node::CertFingerprint::parse(PIN).unwrap();
        for form in [
            PIN.to_owned(),
            PIN.to_lowercase(),
            PIN.replace(':', ""),
            PIN.replace(':', "").to_lowercase(),
        ] {
            let cat = pinned(&form).unwrap();
            assert_eq!(cat.nodes[0].agent_cert_sha256, Some(expected), "{form}");
        }
        let report = toml::to_string(&pinned(PIN).unwrap()).unwrap();
        assert!(report.contains(PIN), "{report}");

        let e = pinned("AB:CD").unwrap_err();
        assert!(
            e.contains("nodes[0].agent_cert_sha256") && e.contains("32 pairs"),
            "{e}"
        );
        assert!(e.contains("tollgate-node fingerprint"), "{e}");
        let e = pinned(&PIN.replace("EA", "EZ")).unwrap_err();
        assert!(e.contains("not a hex byte"), "{e}");

        // A pin over plain http can never be checked.
        let e = with_agent(
            &format!("agent_url = \"http://127.0.0.1:9090\"\nagent_cert_sha256 = \"{PIN}\""),
            PLAIN_LINK,
            &env,
        )
        .unwrap_err();
        assert!(
            e.contains("nodes[0].agent_cert_sha256") && e.contains("https://"),
            "{e}"
        );
    }

    #[test]
    fn nodes_resolve_tokens_from_the_environment() {
        let link = "host = \"nl1.example.com\", port = 443, security = \"reality\", sni = \"www.example.com\", pbk = \"Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw\", sid = \"6ba85179e30d4fc2\", fp = \"chrome\", flow = \"xtls-rprx-vision\", transport = \"tcp\"";
        let e = with_node(link, &Env::default()).unwrap_err();
        assert!(e.contains("NODE_NL_1_TOKEN"), "{e}");
        let env = Env::from_pairs([(
            "NODE_NL_1_TOKEN",
            "0123456789abcdef-0123456789abcdef-secret",
        )]);
        let cat = with_node(link, &env).unwrap();
        assert_eq!(
            cat.nodes[0].agent_token.expose(),
            "0123456789abcdef-0123456789abcdef-secret"
        );
        let report = toml::to_string(&cat).unwrap();
        assert!(!report.contains("0123456789abcdef-0123456789abcdef-secret"));
        // The agent refuses tokens under 32 characters; so does the catalog, without echoing it.
        let short = Env::from_pairs([("NODE_NL_1_TOKEN", "short-but-16-chars")]);
        let e = with_node(link, &short).unwrap_err();
        assert!(
            e.contains("nodes[0].agent_token_env") && e.contains("at least 32"),
            "{e}"
        );
        assert!(!e.contains("short-but-16-chars"), "{e}");
    }
}
