//! A harness for tests that need a real node: V2Ray server core, the agent (in-process or the
//! binary), a V2Ray client core built from a `vless://` link, a local HTTP origin and a SOCKS5
//! GET (feature `testing`).
//!
//! Everything of `xray_api::testing` is re-exported, including the skip rule: without the
//! `v2ray` binary, [`V2Ray::or_skip`] prints a loud SKIP and the test returns early, unless
//! `TOLLGATE_REQUIRE_V2RAY=1` (CI) turns that into a failure.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tollgate_node::api::PutUserRequest;
//! use tollgate_node::testing::*;
//!
//! let Some(v2ray) = V2Ray::or_skip("my_data_plane_test") else { return Ok(()) };
//! let core = ServerCore::start(&v2ray).await?;
//! let agent = TestAgent::start(&core).await?;
//! let uuid = uuid::Uuid::new_v4();
//! let put = PutUserRequest { uuid: uuid.to_string(), flow: String::new(), level: 0 };
//! agent.client().put_user("alice@example", &put).await?;
//!
//! let link = share_link_for(&core, &uuid, "Test node"); // or the service's own link
//! let client = start_client_core(&v2ray, &link).await?;
//! let origin = Origin::start().await?;
//! let page = http_get_via_socks5(client.socks_addr(), &origin.url("/hello"), Duration::from_secs(5)).await?;
//! assert_eq!(page.text(), HELLO_BODY);
//! # Ok(()) }
//! ```

mod agent;
mod share_link;

use std::io;

pub use agent::{AgentProcess, TestAgent, share_link_for};
pub use share_link::{Security, ShareLink, ShareLinkError, Transport};
pub use xray_api::testing::*;

/// Starts a V2Ray client core configured from a `vless://` link (plain TCP links only: V2Ray
/// has no REALITY/Vision), exposing a SOCKS5 port.
pub async fn start_client_core(v2ray: &V2Ray, link: &str) -> io::Result<ClientCore> {
    let outbound = ShareLink::parse(link)
        .and_then(|parsed| parsed.to_vless_outbound())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    ClientCore::start(v2ray, &outbound).await
}
