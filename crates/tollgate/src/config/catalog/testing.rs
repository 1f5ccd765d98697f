//! Helpers the catalog's unit tests share: the shipped example and ways to parse it with a
//! node added.

use super::{Catalog, parse_catalog};
use crate::config::env::Env;

pub(super) const EXAMPLE: &str = include_str!("../../../../../config/tollgate.example.toml");

pub(super) fn parse(text: &str) -> Result<Catalog, String> {
    parse_catalog(text, "test.toml", &Env::default()).map_err(|e| e.to_string())
}

pub(super) fn with_node(link: &str, env: &Env) -> Result<Catalog, String> {
    with_agent("agent_url = \"http://127.0.0.1:9090\"", link, env)
}

/// The example with one node whose agent lines are `agent` (agent_url and the rest).
pub(super) fn with_agent(agent: &str, link: &str, env: &Env) -> Result<Catalog, String> {
    let text = format!(
        "{EXAMPLE}\n[[nodes]]\nname = \"nl-1\"\ncountry = \"NL\"\n{agent}\nagent_token_env = \"NODE_NL_1_TOKEN\"\nlink = {{ {link} }}\n"
    );
    parse_catalog(&text, "test.toml", env).map_err(|e| e.to_string())
}

pub(super) const PLAIN_LINK: &str =
    "host = \"h\", port = 443, security = \"none\", transport = \"tcp\"";

pub(super) fn token_env() -> Env {
    Env::from_pairs([(
        "NODE_NL_1_TOKEN",
        "0123456789abcdef-0123456789abcdef-secret",
    )])
}
