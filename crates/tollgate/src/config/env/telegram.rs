//! Telegram settings: the bot's token and admins, the Bot API address, the proxy that carries
//! every Bot API call (where `api.telegram.org` is blocked) and the card-payment provider
//! token. The tokens and the proxy's password are secrets: reports and errors mask them.

use url::Url;

use super::mask_url;
use super::reader::{Reader, parse_http_url};
use crate::config::secret::{Secret, describe_secret};

pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";

/// The bot token, shaped `<bot id>:<secret>`; the bot id part is public.
#[derive(Debug, Clone)]
pub struct BotToken {
    pub bot_id: i64,
    pub token: Secret<String>,
}

impl BotToken {
    pub fn parse(text: &str) -> Result<BotToken, String> {
        let bad = || {
            format!(
                "{} does not look like a bot token: expected <digits>:<at least 30 of A-Z a-z 0-9 _ ->, as @BotFather prints it",
                describe_secret(text)
            )
        };
        let (id, rest) = text.split_once(':').ok_or_else(bad)?;
        let bot_id: i64 = id.parse().map_err(|_| bad())?;
        let ok_chars = rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if bot_id <= 0 || rest.len() < 30 || !ok_chars {
            return Err(bad());
        }
        Ok(BotToken {
            bot_id,
            token: Secret::new(text.to_owned()),
        })
    }

    pub fn redacted(&self) -> String {
        format!("{}:***", self.bot_id)
    }
}

/// `BOT_TOKEN` and `ADMIN_IDS`: who the bot is and who administers it.
pub(super) fn read_bot(r: &mut Reader<'_>) -> (Option<BotToken>, Option<Vec<i64>>) {
    let bot_token = r.required(
        "BOT_TOKEN",
        "set BOT_TOKEN to the token @BotFather gave you (or run `tollgate sandbox`, which needs none)",
        BotToken::parse,
        BotToken::redacted,
    );
    let admin_ids = r.read(
        "ADMIN_IDS",
        Some(""),
        "set ADMIN_IDS to comma-separated numeric Telegram user ids, e.g. ADMIN_IDS=12345,67890 (ask @userinfobot for yours)",
        |t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<i64>() {
                    Ok(id) if id > 0 => Ok(id),
                    _ => Err(format!("{s:?} is not a Telegram user id")),
                })
                .collect::<Result<Vec<_>, _>>()
        },
        |ids| {
            if ids.is_empty() {
                "(none)".to_owned()
            } else {
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            }
        },
    );
    (bot_token, admin_ids)
}

/// `TELEGRAM_PROXY`: a proxy every Bot API call and file upload goes through. The URL may
/// carry `user:password`, so it is a secret; [`TelegramProxy::redacted`] is its printable form.
#[derive(Debug, Clone)]
pub struct TelegramProxy {
    url: Secret<Url>,
}

/// The proxy schemes reqwest can speak: HTTP CONNECT in clear or over TLS, SOCKS5 with names
/// resolved here (`socks5`) or by the proxy (`socks5h`).
pub const PROXY_SCHEMES: &[&str] = &["http", "https", "socks5", "socks5h"];

impl TelegramProxy {
    pub fn parse(text: &str) -> Result<TelegramProxy, String> {
        let shown = mask_url(text);
        let url = Url::parse(text).map_err(|e| format!("{shown} is not a URL ({e})"))?;
        if !PROXY_SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "{shown} has the scheme {:?}; a proxy is http://, https://, socks5:// or socks5h://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{shown} has no host"));
        }
        if url.port_or_known_default().is_none() {
            return Err(format!(
                "{shown} has no port (SOCKS5 proxies have no default one)"
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{shown} has a path, query or fragment; a proxy is only scheme://[user:password@]host:port"
            ));
        }
        if url.password().is_some() && url.username().is_empty() {
            return Err(format!("{shown} has a password but no user name"));
        }
        Ok(TelegramProxy {
            url: Secret::new(url),
        })
    }

    /// The URL with its password masked, for reports and logs.
    pub fn redacted(&self) -> String {
        mask_url(self.url.expose().as_str())
    }

    /// The URL itself (with the password), for the HTTP client only.
    pub fn expose(&self) -> &Url {
        self.url.expose()
    }
}

/// The Bot API to talk to, the proxy to reach it through and the optional card-payment
/// provider token.
pub(super) struct BotApi {
    pub(super) telegram_api_url: Option<Url>,
    pub(super) telegram_proxy: Option<TelegramProxy>,
    pub(super) payment_provider_token: Option<Secret<String>>,
}

pub(super) fn read_bot_api(r: &mut Reader<'_>) -> BotApi {
    let telegram_api_url = r.read(
        "TELEGRAM_API_URL",
        Some(DEFAULT_TELEGRAM_API_URL),
        "set TELEGRAM_API_URL to the Bot API base URL without a trailing path, e.g. https://api.telegram.org",
        |t| {
            let url = parse_http_url(t.trim_end_matches('/'))?;
            Ok(url)
        },
        Url::to_string,
    );
    let telegram_proxy = r.read(
        "TELEGRAM_PROXY",
        None,
        "set TELEGRAM_PROXY to scheme://[user:password@]host:port with scheme http, https, socks5 or socks5h (e.g. socks5h://user:pass@10.0.0.2:1080), or unset it to reach Telegram directly",
        TelegramProxy::parse,
        TelegramProxy::redacted,
    );
    let payment_provider_token = r.read(
        "PAYMENT_PROVIDER_TOKEN",
        None,
        "set PAYMENT_PROVIDER_TOKEN to the token @BotFather shows under Payments, or unset it to disable card payments",
        |t| {
            if t.contains(char::is_whitespace) {
                Err(format!("{} contains whitespace", describe_secret(t)))
            } else {
                Ok(Secret::new(t.to_owned()))
            }
        },
        |_| "***".to_owned(),
    );
    BotApi {
        telegram_api_url,
        telegram_proxy,
        payment_provider_token,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::env::testing::errors;
    use crate::config::env::{Env, deployment};

    #[test]
    fn missing_and_malformed_token_never_echo_the_secret() {
        let mut e = Env::default();
        e.set("PORT", "8080");
        let missing = deployment(&e).unwrap_err().to_string();
        assert!(missing.contains("BOT_TOKEN: is not set"), "{missing}");

        let bad = errors(&[("BOT_TOKEN", "123:tooShortButSecretValue")]);
        assert!(bad.contains("BOT_TOKEN"));
        assert!(!bad.contains("tooShortButSecretValue"), "{bad}");

        let bad_secret = errors(&[
            ("PUBLIC_URL", "https://bot.example.com"),
            ("WEBHOOK_SECRET", "has spaces in it"),
        ]);
        assert!(!bad_secret.contains("has spaces"), "{bad_secret}");
    }

    #[test]
    fn the_proxy_takes_four_schemes_and_never_shows_its_password() {
        use crate::config::env::testing::env;
        for ok in [
            "http://10.0.0.2:3128",
            "https://proxy.example:8443",
            "socks5://127.0.0.1:1080",
            "socks5h://user:s3cret-pass@127.0.0.1:1080",
        ] {
            let (d, report) = deployment(&env(&[("TELEGRAM_PROXY", ok)])).unwrap();
            let proxy = d.telegram_proxy.expect("proxy set");
            assert_eq!(proxy.expose().as_str().trim_end_matches('/'), ok);
            let line = report.iter().find(|l| l.key == "TELEGRAM_PROXY").unwrap();
            assert!(!line.value.contains("s3cret"), "{line:?}");
            assert!(!format!("{proxy:?}").contains("s3cret"));
        }
        let cases = [
            ("ftp://10.0.0.2:21", "scheme"),
            ("socks5://10.0.0.2", "no port"),
            ("http://:pw@10.0.0.2:3128", "no user name"),
            ("http://10.0.0.2:3128/path", "path"),
            ("not a url", "not a URL"),
        ];
        for (value, needle) in cases {
            let e = errors(&[("TELEGRAM_PROXY", value)]);
            assert!(
                e.contains("TELEGRAM_PROXY") && e.contains(needle) && e.contains("fix:"),
                "{value}: {e}"
            );
        }
        let e = errors(&[("TELEGRAM_PROXY", "ftp://u:hunter22@x:1")]);
        assert!(!e.contains("hunter22"), "{e}");
    }
}
