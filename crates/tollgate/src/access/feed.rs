//! `GET /sub/{token}`: the subscription feed client apps import (Hiddify, Happ, v2rayN…).
//!
//! The token is the only credential, so the route has no other authentication; it is 192
//! random bits (H4) and is looked up, never compared by hand. Unknown, revoked and retired
//! tokens take the same path — the same single indexed query that finds no row — and get the
//! same answer: 404 with an empty body. Nothing tells them apart. Text that cannot be a token
//! (not base64url, or over 128 characters) gets the same 404 without a lookup.
//!
//! An expired (not revoked) subscription still gets its feed: apps keep the profile and show
//! the expiry date from `subscription-userinfo`, the nodes refuse the connection, and a
//! renewal (same key) brings access back without re-importing anything. Revocation and
//! reissue end the token for good.
//!
//! Answer (docs/design.md §7.2):
//! - body: base64 (standard, padded) of the `vless://` links of every enabled node, one per
//!   line;
//! - `subscription-userinfo: upload=U; download=D; total=0; expire=E` — traffic summed over
//!   the subscription's keys and nodes (as last collected by reconcile), `total=0` is
//!   "no quota", `expire` in Unix seconds;
//! - `profile-update-interval` (hours), `profile-title: base64:…`, `content-disposition`
//!   (the title as a file name), `cache-control: no-store`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{NodeLink, Subscription, by_token, share_links};
use crate::config::catalog::FeedSettings;
use crate::nodes::Registry;
use crate::nodes::link::percent_encode;
use crate::nodes::membership;
use crate::store::Db;

/// Longest token looked up at all (ours are 32 characters of base64url).
const MAX_TOKEN_LEN: usize = 128;

#[derive(Clone)]
pub struct FeedState {
    pub db: Db,
    pub registry: Arc<Registry>,
    pub settings: FeedSettings,
}

pub fn routes(state: FeedState) -> Router {
    Router::new()
        .route("/sub/{token}", get(feed))
        .with_state(state)
}

/// The URL a user gives their client app.
pub fn feed_url(base: &str, token: &super::FeedToken) -> String {
    format!("{}/sub/{}", base.trim_end_matches('/'), token.expose())
}

async fn feed(State(state): State<FeedState>, Path(token): Path<String>) -> Response {
    // Only text shaped like a token is looked up (a NUL byte, for one, is an error on
    // PostgreSQL); everything else cannot be a token and gets the same 404.
    let plausible = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return not_found();
    }
    let subscription = match by_token(&state.db, &token).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        Err(e) => return unavailable(&e.to_string()),
    };
    let traffic = match membership::traffic(&state.db, subscription.id).await {
        Ok(t) => t,
        Err(e) => return unavailable(&e.to_string()),
    };
    let links = share_links(&subscription, &state.registry);
    let rendered = render(&subscription, traffic, &links, &state.settings);
    let mut response = (StatusCode::OK, rendered.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in rendered.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    response
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        "",
    )
        .into_response()
}

fn unavailable(error: &str) -> Response {
    tracing::warn!(error, "the subscription feed cannot read the database");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::RETRY_AFTER, "30"),
        ],
        "",
    )
        .into_response()
}

/// A feed answer before it becomes HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The feed of `subscription` with its traffic `(uplink, downlink)` and links.
pub fn render(
    subscription: &Subscription,
    (uplink, downlink): (i64, i64),
    links: &[NodeLink],
    settings: &FeedSettings,
) -> Rendered {
    let list = links
        .iter()
        .map(|l| l.link.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let expire = subscription.expires_at.as_unix_seconds().max(0);
    let file = file_name(&settings.title);
    Rendered {
        headers: vec![
            ("content-type", "text/plain; charset=utf-8".to_owned()),
            (
                "subscription-userinfo",
                format!(
                    "upload={}; download={}; total=0; expire={expire}",
                    uplink.max(0),
                    downlink.max(0)
                ),
            ),
            (
                "profile-update-interval",
                settings.update_interval_hours.to_string(),
            ),
            (
                "profile-title",
                format!("base64:{}", STANDARD.encode(settings.title.as_bytes())),
            ),
            (
                "content-disposition",
                format!(
                    "attachment; filename=\"{file}\"; filename*=UTF-8''{}",
                    percent_encode(&settings.title)
                ),
            ),
            ("cache-control", "no-store".to_owned()),
        ],
        body: STANDARD.encode(list.as_bytes()),
    }
}

/// The title as a plain ASCII file name (quotes, slashes, control and non-ASCII characters
/// become `_`); the exact title travels in `filename*`.
fn file_name(title: &str) -> String {
    let name: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim();
    if name.is_empty() || name.chars().all(|c| c == '_') {
        "subscription".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription() -> Subscription {
        crate::access::fixtures::subscription(1_800_000_000_999, false)
    }

    #[test]
    fn headers_and_body_follow_the_convention() {
        let links = vec![
            NodeLink {
                node: "a".into(),
                name: "a".into(),
                link: "vless://one".into(),
            },
            NodeLink {
                node: "b".into(),
                name: "b".into(),
                link: "vless://two".into(),
            },
        ];
        let settings = FeedSettings {
            title: "Tollgate \"VPN\" ❤".into(),
            update_interval_hours: 12,
        };
        let r = render(&subscription(), (176, 1_048_984), &links, &settings);
        let get = |name: &str| {
            r.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("subscription-userinfo"),
            Some("upload=176; download=1048984; total=0; expire=1800000000")
        );
        assert_eq!(get("profile-update-interval"), Some("12"));
        assert_eq!(
            get("profile-title"),
            Some("base64:VG9sbGdhdGUgIlZQTiIg4p2k")
        );
        assert_eq!(
            get("content-disposition"),
            Some(
                "attachment; filename=\"Tollgate _VPN_ _\"; filename*=UTF-8''Tollgate%20%22VPN%22%20%E2%9D%A4"
            )
        );
        assert_eq!(get("cache-control"), Some("no-store"));
        assert_eq!(
            STANDARD.decode(&r.body).unwrap(),
            b"vless://one\nvless://two"
        );
        // Every header value is a valid HTTP header value.
        for (_, v) in &r.headers {
            assert!(HeaderValue::from_str(v).is_ok(), "{v}");
        }
    }

    #[test]
    fn file_names_stay_plain() {
        assert_eq!(file_name("Tollgate VPN"), "Tollgate VPN");
        assert_eq!(file_name("Мой VPN"), "___ VPN");
        assert_eq!(file_name("Мой"), "subscription");
        assert_eq!(file_name("../etc"), ".._etc");
    }
}
