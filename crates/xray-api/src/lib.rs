//! A typed async client for the Xray / V2Ray core API: add and remove VLESS users
//! (`HandlerService/AlterInbound`) and read counters and runtime statistics (`StatsService`).
//!
//! Both dialects are spoken by one client: Xray (`xray.` packages) and V2Ray 4.x
//! (`v2ray.core.` packages, e.g. Debian's `v2ray` 4.34). [`XrayClient::connect`] detects which
//! one it talks to, or takes it as given. Errors are classified ([`ErrorKind`]) and always carry
//! the core's own message. No `protoc`, no build script, no `.proto` files: the dozen messages
//! needed are written by hand in [`proto`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), xray_api::Error> {
//! use xray_api::{DialectChoice, ErrorKind, VlessUser, XrayClient};
//!
//! let core = XrayClient::connect("127.0.0.1:10085", DialectChoice::Auto).await?;
//! let user = VlessUser {
//!     email: "alice@example".into(),
//!     id: "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9".parse().expect("uuid"),
//!     flow: String::new(),
//!     level: 0,
//! };
//! match core.add_vless_user("vless-in", &user).await {
//!     Ok(()) => {}
//!     Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
//!     Err(e) => return Err(e),
//! }
//! for traffic in core.user_traffic(true).await? {
//!     println!("{}: up {} down {}", traffic.email, traffic.uplink, traffic.downlink);
//! }
//! # Ok(()) }
//! ```

mod client;
mod dialect;
mod error;
pub mod proto;
mod stats;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{ClientOptions, VlessUser, XrayClient};
pub use dialect::{Dialect, DialectChoice, ParseDialectError};
pub use error::{Error, ErrorKind};
pub use stats::{Counter, SysStats, UserTraffic};
