//! Helpers for tests that run a real V2Ray core on 127.0.0.1 (feature `testing`).
//!
//! Why in this crate: everything here is about driving a real core — starting a server core
//! with the API and a VLESS inbound, a second core acting as a VLESS client behind a SOCKS5
//! port, a local HTTP origin to fetch through it, and a SOCKS5 HTTP GET that needs no curl. The
//! node agent's harness (`tollgate_node::testing`) builds on it and re-exports it.
//!
//! The binary is Debian's `v2ray` 4.34 at `/usr/bin/v2ray` (override with `TOLLGATE_V2RAY_BIN`).
//! When it is absent, [`V2Ray::or_skip`] prints a loud SKIP line and the test returns, unless
//! `TOLLGATE_REQUIRE_V2RAY=1` (CI) makes absence a failure.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use xray_api::testing::{http_get_via_socks5, ClientCore, Origin, ServerCore, V2Ray};
//! let Some(v2ray) = V2Ray::or_skip("my_test") else { return Ok(()) };
//! let server = ServerCore::start(&v2ray).await?;
//! // ... add a user with XrayClient::connect(&server.api_endpoint(), ..) ...
//! let id = uuid::Uuid::new_v4();
//! let client = ClientCore::start(&v2ray, &server.vless_outbound(&id.to_string())).await?;
//! let origin = Origin::start().await?;
//! let page = http_get_via_socks5(client.socks_addr(), &origin.url("/hello"), std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

mod client_core;
mod origin;
mod process;
mod server_core;
mod socks;
mod v2ray;

pub use client_core::{ClientCore, VlessOutbound};
pub use origin::{HELLO_BODY, Origin};
pub use process::free_port;
pub use server_core::{ExtraInbound, ServerCore, ServerCoreConfig};
pub use socks::{FetchError, HttpResponse, http_get_via_socks5};
pub use v2ray::{BINARY_ENV, REQUIRE_ENV, V2Ray};
