//! Where client apps fetch the subscription feed: `FEED_BASE_URL`, else `PUBLIC_URL`, else
//! the listener's own address.

use std::net::IpAddr;

use url::Url;

use super::SettingLine;
use super::reader::{Reader, parse_http_url};

/// Where client apps fetch the subscription feed: `<url>/sub/<token>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedBase {
    /// Without a trailing slash.
    pub url: String,
    pub source: FeedBaseSource,
}

/// Which setting the feed's base URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedBaseSource {
    FeedBaseUrl,
    PublicUrl,
    /// Neither was set: the listener's own address, which only works for local testing.
    Listener,
}

/// `FEED_BASE_URL`, else `PUBLIC_URL`, else the listener's address (loopback when it listens
/// on every interface).
pub(super) fn read_feed_base(
    r: &mut Reader<'_>,
    public_url: Option<String>,
    bind: Option<IpAddr>,
    port: Option<u16>,
) -> Option<FeedBase> {
    let explicit = r.read(
        "FEED_BASE_URL",
        None,
        "set FEED_BASE_URL to the https address client apps reach this service at, e.g. https://vpn.example.com",
        parse_http_url,
        Url::to_string,
    );
    let trimmed = |u: String| u.trim_end_matches('/').to_owned();
    let base = match (explicit, public_url) {
        (Some(url), _) => FeedBase {
            url: trimmed(url.to_string()),
            source: FeedBaseSource::FeedBaseUrl,
        },
        // A FEED_BASE_URL that failed to parse is reported already.
        _ if r.env.get("FEED_BASE_URL").is_some() => return None,
        (None, Some(url)) => FeedBase {
            url: trimmed(url),
            source: FeedBaseSource::PublicUrl,
        },
        (None, None) => {
            let ip = match bind? {
                ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                ip => ip,
            };
            let host = match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            FeedBase {
                url: format!("http://{host}:{}", port?),
                source: FeedBaseSource::Listener,
            }
        }
    };
    if r.env.get("FEED_BASE_URL").is_none() {
        r.report.push(SettingLine {
            key: "FEED_BASE_URL".to_owned(),
            value: base.url.clone(),
            source: "default",
        });
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::deployment;
    use crate::config::env::testing::env;

    #[test]
    fn the_feed_base_falls_back_to_public_url_then_the_listener() {
        let (d, report) = deployment(&env(&[])).unwrap();
        assert_eq!(d.feed_base.url, "http://127.0.0.1:8080");
        assert_eq!(d.feed_base.source, FeedBaseSource::Listener);
        assert!(
            report
                .iter()
                .any(|l| l.key == "FEED_BASE_URL" && l.source == "default")
        );
        let (d, _) = deployment(&env(&[("BIND_ADDR", "::1"), ("PORT", "9000")])).unwrap();
        assert_eq!(d.feed_base.url, "http://[::1]:9000");
        let (d, _) = deployment(&env(&[
            ("PUBLIC_URL", "https://bot.example.com/"),
            ("WEBHOOK_SECRET", "s3cr3t_-value-0123456789abcdef-xyz"),
        ]))
        .unwrap();
        assert_eq!(
            (d.feed_base.url.as_str(), d.feed_base.source),
            ("https://bot.example.com", FeedBaseSource::PublicUrl)
        );
        let (d, _) = deployment(&env(&[
            ("PUBLIC_URL", "https://bot.example.com"),
            ("WEBHOOK_SECRET", "s3cr3t_-value-0123456789abcdef-xyz"),
            ("FEED_BASE_URL", "https://vpn.example.com/feeds/"),
        ]))
        .unwrap();
        assert_eq!(
            (d.feed_base.url.as_str(), d.feed_base.source),
            ("https://vpn.example.com/feeds", FeedBaseSource::FeedBaseUrl)
        );
    }
}
