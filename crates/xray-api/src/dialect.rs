//! Which core we talk to: Xray (`xray.` package prefix) or V2Ray 4.x (`v2ray.core.`).
//!
//! Why a runtime value: both cores expose the same services with the same messages; only the
//! protobuf package prefix differs. It appears in two places, the gRPC method path and the
//! `TypedMessage.type` strings the server uses to find the Go type. Keeping it a value lets one
//! binary drive either core and lets [`crate::XrayClient::connect`] detect it.
//!
//! Detection order matters: current Xray also registers its HandlerService under the
//! `v2ray.core.` service name "for compatibility", but its type registry only knows `xray.` type
//! names, so on Xray the `v2ray.core.` path answers and then rejects every operation. Probing
//! `xray.` first avoids that trap; V2Ray answers `UNIMPLEMENTED unknown service xray...` to it.

use std::fmt;
use std::str::FromStr;

/// The protobuf package dialect of a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Xray-core: packages start with `xray.`.
    Xray,
    /// V2Ray / v2fly 4.x (e.g. Debian's `v2ray` 4.34): packages start with `v2ray.core.`.
    V2Ray,
}

impl Dialect {
    /// The package prefix, including the trailing dot.
    pub fn prefix(self) -> &'static str {
        match self {
            Dialect::Xray => "xray.",
            Dialect::V2Ray => "v2ray.core.",
        }
    }

    /// A short lowercase name: `"xray"` or `"v2ray"` (the same spelling [`DialectChoice`] parses).
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Xray => "xray",
            Dialect::V2Ray => "v2ray",
        }
    }

    /// `/<prefix>app.proxyman.command.HandlerService/<method>`.
    pub(crate) fn handler_path(self, method: &str) -> String {
        format!(
            "/{}app.proxyman.command.HandlerService/{method}",
            self.prefix()
        )
    }

    /// `/<prefix>app.stats.command.StatsService/<method>`.
    pub(crate) fn stats_path(self, method: &str) -> String {
        format!("/{}app.stats.command.StatsService/{method}", self.prefix())
    }

    /// The `TypedMessage.type` of a message in package `<prefix><package_tail>`.
    pub(crate) fn type_name(self, package_and_message: &str) -> String {
        format!("{}{package_and_message}", self.prefix())
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`crate::XrayClient::connect`] should do about the dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DialectChoice {
    /// Probe the core: `xray.` first, then `v2ray.core.`.
    #[default]
    Auto,
    /// Assume Xray; no probe.
    Xray,
    /// Assume V2Ray 4.x; no probe.
    V2Ray,
}

impl DialectChoice {
    /// The fixed dialect, if one was chosen.
    pub fn fixed(self) -> Option<Dialect> {
        match self {
            DialectChoice::Auto => None,
            DialectChoice::Xray => Some(Dialect::Xray),
            DialectChoice::V2Ray => Some(Dialect::V2Ray),
        }
    }
}

/// The error of parsing a [`DialectChoice`]: names the accepted spellings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDialectError(String);

impl fmt::Display for ParseDialectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown core dialect {:?}: use one of auto, xray, v2ray",
            self.0
        )
    }
}

impl std::error::Error for ParseDialectError {}

impl FromStr for DialectChoice {
    type Err = ParseDialectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DialectChoice::Auto),
            "xray" => Ok(DialectChoice::Xray),
            "v2ray" | "v2fly" => Ok(DialectChoice::V2Ray),
            _ => Err(ParseDialectError(s.to_owned())),
        }
    }
}

impl fmt::Display for DialectChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialectChoice::Auto => "auto",
            DialectChoice::Xray => "xray",
            DialectChoice::V2Ray => "v2ray",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_type_names_carry_the_prefix() {
        assert_eq!(
            Dialect::V2Ray.handler_path("AlterInbound"),
            "/v2ray.core.app.proxyman.command.HandlerService/AlterInbound"
        );
        assert_eq!(
            Dialect::Xray.stats_path("QueryStats"),
            "/xray.app.stats.command.StatsService/QueryStats"
        );
        assert_eq!(
            Dialect::Xray.type_name("proxy.vless.Account"),
            "xray.proxy.vless.Account"
        );
    }

    #[test]
    fn choice_parses_and_rejects_with_the_accepted_values() {
        assert_eq!("AUTO".parse(), Ok(DialectChoice::Auto));
        assert_eq!("v2ray".parse(), Ok(DialectChoice::V2Ray));
        assert_eq!(" xray ".parse(), Ok(DialectChoice::Xray));
        let err = "sing-box".parse::<DialectChoice>().unwrap_err();
        assert!(err.to_string().contains("auto, xray, v2ray"), "{err}");
    }
}
