//! Payment providers outside Telegram: Crypto Pay (`CRYPTOPAY_*`) and YooKassa
//! (`YOOKASSA_*`), each on when its credentials are set, and the deadline of every call to
//! them (`PROVIDER_CALL_TIMEOUT`).
//!
//! YooKassa's notifications carry no signature: they are taken only from its published
//! addresses (`YOOKASSA_NOTIFY_FROM`), seen through the reverse proxies the operator trusts
//! (`TRUSTED_PROXIES`; see `http::client_address`).
//!
//! The API's base URL is derived (Crypto Pay: from `CRYPTOPAY_NETWORK`, testnet or mainnet,
//! whose tokens differ) and can be overridden (`*_API_URL`) for the local emulators. The
//! watcher's and the reconciler's first intervals are settings so that tests and the sandbox
//! can run them in milliseconds.

use std::time::Duration;

use url::Url;

use super::reader::{Reader, duration_between, parse_http_url};
use crate::config::duration::format_duration;
use crate::config::secret::{Secret, describe_secret};
use crate::domain::address_set::AddressSet;

/// Crypto Pay's networks (separate apps and tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoNetwork {
    Mainnet,
    Testnet,
}

impl CryptoNetwork {
    pub fn base_url(self) -> &'static str {
        match self {
            CryptoNetwork::Mainnet => "https://pay.crypt.bot/api/",
            CryptoNetwork::Testnet => "https://testnet-pay.crypt.bot/api/",
        }
    }
}

/// A Crypto Pay app.
#[derive(Debug, Clone)]
pub struct CryptoPaySettings {
    pub token: Secret<String>,
    pub network: CryptoNetwork,
    /// `<base><method>` is called (`https://pay.crypt.bot/api/`).
    pub api_url: Url,
    /// How often the watcher asks for the open invoices.
    pub poll_interval: Duration,
}

/// A YooKassa shop.
#[derive(Debug, Clone)]
pub struct YooKassaSettings {
    pub shop_id: String,
    pub secret_key: Secret<String>,
    /// `<base>payments` is called (`https://api.yookassa.ru/v3/`).
    pub api_url: Url,
    /// The reconciler's first interval; later ones grow (Fibonacci) up to ten minutes.
    pub poll_interval: Duration,
    /// Where notifications are taken from.
    pub notify_from: NotifySources,
}

/// The addresses YooKassa sends notifications from, as it publishes them.
pub const YOOKASSA_ADDRESSES: &str = "185.71.76.0/27,185.71.77.0/27,77.75.153.0/25,77.75.156.11,77.75.156.35,77.75.154.128/25,2a02:5180::/32";

/// Proxies trusted by default: a reverse proxy on the same host, in a private network
/// (compose publishes the port on loopback only) or in the shared address space
/// (100.64.0.0/10, which hosting platforms' edges connect from). Nobody on the internet can
/// send from these.
pub const PRIVATE_PROXIES: &str =
    "127.0.0.0/8,::1,10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fc00::/7";

/// Where notifications without a signature are taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifySources {
    /// Anywhere: the operator's choice when no proxy can pass the sender's address on (the
    /// notification is still only a hint; the payment is fetched from the API).
    Any,
    Only(AddressSet),
}

impl NotifySources {
    pub fn allows(&self, client: std::net::IpAddr) -> bool {
        match self {
            NotifySources::Any => true,
            NotifySources::Only(set) => set.contains(client),
        }
    }
}

impl std::fmt::Display for NotifySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifySources::Any => f.write_str("any"),
            NotifySources::Only(set) => set.fmt(f),
        }
    }
}

/// How long a press waits for the provider to say whether a page shown before is still
/// payable: the stored page is shown when it does not answer in time.
pub const PAGE_RECHECK_DEADLINE: Duration = Duration::from_secs(3);

/// The providers configured, and the deadline of each call.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub cryptopay: Option<CryptoPaySettings>,
    pub yookassa: Option<YooKassaSettings>,
    pub call_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: AddressSet,
}

impl ProviderSettings {
    /// The longest a press that opens a payment page may wait for its provider: the page
    /// shown before asked about, then (Crypto Pay) a search for one a hung call made, and the
    /// create call.
    pub fn page_wait(&self) -> Duration {
        PAGE_RECHECK_DEADLINE.min(self.call_timeout) + self.call_timeout * 2
    }

    /// Why a press opening a payment page could not finish within `handler_deadline`
    /// (it would be cut and retried, the user waiting), if it could not.
    pub fn exceeds(&self, handler_deadline: Duration) -> Option<(String, String)> {
        if self.cryptopay.is_none() && self.yookassa.is_none() {
            return None;
        }
        let wait = self.page_wait();
        (wait >= handler_deadline).then(|| {
            // The page's wait is 3 × the call's up to the recheck's 3 s, then 3 s + 2 × it;
            // a second of room is left.
            let room = handler_deadline.saturating_sub(Duration::from_secs(1));
            let most = if room > PAGE_RECHECK_DEADLINE * 3 {
                (room - PAGE_RECHECK_DEADLINE) / 2
            } else {
                room / 3
            }
            .max(Duration::from_millis(100));
            (
                format!(
                    "{} lets a press that opens a payment page wait up to {} for the provider, not less than HANDLER_DEADLINE {} (the update would be cut and retried)",
                    format_duration(self.call_timeout),
                    format_duration(wait),
                    format_duration(handler_deadline)
                ),
                format!(
                    "set PROVIDER_CALL_TIMEOUT to at most {}, or raise HANDLER_DEADLINE",
                    format_duration(most)
                ),
            )
        })
    }
}

fn secret(t: &str) -> Result<Secret<String>, String> {
    if t.contains(char::is_whitespace) {
        Err(format!("{} contains whitespace", describe_secret(t)))
    } else {
        Ok(Secret::new(t.to_owned()))
    }
}

fn with_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

pub(super) fn read_providers(r: &mut Reader<'_>) -> Option<ProviderSettings> {
    let call_timeout = r.read(
        "PROVIDER_CALL_TIMEOUT",
        Some("10s"),
        "use a duration between 100ms and 60s, e.g. 10s",
        duration_between(Duration::from_millis(100), Duration::from_secs(60)),
        |d: &Duration| format_duration(*d),
    );
    let poll = |r: &mut Reader<'_>, key: &str| {
        r.read(
            key,
            Some("30s"),
            "use a duration between 100ms and 1h, e.g. 30s",
            duration_between(Duration::from_millis(100), Duration::from_secs(3_600)),
            |d: &Duration| format_duration(*d),
        )
    };
    let token = r.read(
        "CRYPTOPAY_TOKEN",
        None,
        "set CRYPTOPAY_TOKEN to the API token of your app in @CryptoBot (or @CryptoTestnetBot for testnet), or unset it to sell without Crypto Pay",
        |t| {
            let ok = t.split_once(':').is_some_and(|(id, rest)| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
            });
            if ok {
                secret(t)
            } else {
                Err(format!(
                    "{} is not a Crypto Pay token (digits, a colon, then letters and digits)",
                    describe_secret(t)
                ))
            }
        },
        |_| "***".to_owned(),
    );
    let network = r.read(
        "CRYPTOPAY_NETWORK",
        Some("mainnet"),
        "use mainnet or testnet (a testnet token comes from @CryptoTestnetBot)",
        |t| match t {
            "mainnet" => Ok(CryptoNetwork::Mainnet),
            "testnet" => Ok(CryptoNetwork::Testnet),
            other => Err(format!("{other:?} is not a Crypto Pay network")),
        },
        |n| format!("{n:?}").to_lowercase(),
    );
    let crypto_url = r.read(
        "CRYPTOPAY_API_URL",
        None,
        "give the base URL of a Crypto Pay API (the local emulator), or unset it to use CRYPTOPAY_NETWORK's",
        |t| parse_http_url(t).map(with_slash),
        Url::to_string,
    );
    let crypto_poll = poll(r, "CRYPTOPAY_POLL_INTERVAL");
    let shop_id = r.read(
        "YOOKASSA_SHOP_ID",
        None,
        "set YOOKASSA_SHOP_ID to your shop's shopId (digits), or unset it with YOOKASSA_SECRET_KEY to sell without YooKassa",
        |t| {
            if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_digit()) {
                Ok(t.to_owned())
            } else {
                Err(format!("{t:?} is not a YooKassa shopId (digits)"))
            }
        },
        String::clone,
    );
    let secret_key = r.read(
        "YOOKASSA_SECRET_KEY",
        None,
        "set YOOKASSA_SECRET_KEY to the shop's secret key (test_… or live_…), or unset it with YOOKASSA_SHOP_ID",
        secret,
        |_| "***".to_owned(),
    );
    let yoo_url = r.read(
        "YOOKASSA_API_URL",
        None,
        "give the base URL of a YooKassa API (the local emulator), or unset it to use https://api.yookassa.ru/v3/",
        |t| parse_http_url(t).map(with_slash),
        Url::to_string,
    );
    let yoo_poll = poll(r, "YOOKASSA_POLL_INTERVAL");
    let notify_from = r.read(
        "YOOKASSA_NOTIFY_FROM",
        Some(YOOKASSA_ADDRESSES),
        "list addresses or CIDR ranges separated by commas (unset: the ones YooKassa publishes), or write any",
        |t| {
            if t.eq_ignore_ascii_case("any") {
                Ok(NotifySources::Any)
            } else {
                match AddressSet::parse(t)? {
                    set if set == AddressSet::default() => Err(format!(
                        "{t:?} lists no address, so every notification would be refused"
                    )),
                    set => Ok(NotifySources::Only(set)),
                }
            }
        },
        NotifySources::to_string,
    );
    let trusted_proxies = r.read(
        "TRUSTED_PROXIES",
        Some(PRIVATE_PROXIES),
        "list the addresses or CIDR ranges of your reverse proxies separated by commas, or write none",
        AddressSet::parse,
        AddressSet::to_string,
    );
    let yookassa = match (shop_id, secret_key) {
        (Some(shop_id), Some(secret_key)) => Some(YooKassaSettings {
            shop_id,
            secret_key,
            api_url: match yoo_url {
                Some(u) => u,
                None => Url::parse("https://api.yookassa.ru/v3/").ok()?,
            },
            poll_interval: yoo_poll?,
            notify_from: notify_from?,
        }),
        (None, None) => None,
        (Some(_), None) => {
            r.fail(
                "YOOKASSA_SECRET_KEY",
                "is not set, but YOOKASSA_SHOP_ID is".to_owned(),
                "set both YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY, or neither",
            );
            None
        }
        (None, Some(_)) => {
            r.fail(
                "YOOKASSA_SHOP_ID",
                "is not set, but YOOKASSA_SECRET_KEY is".to_owned(),
                "set both YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY, or neither",
            );
            None
        }
    };
    let network = network?;
    let cryptopay = match token {
        Some(token) => Some(CryptoPaySettings {
            token,
            network,
            api_url: match crypto_url {
                Some(u) => u,
                None => Url::parse(network.base_url()).ok()?,
            },
            poll_interval: crypto_poll?,
        }),
        None => None,
    };
    Some(ProviderSettings {
        cryptopay,
        yookassa,
        call_timeout: call_timeout?,
        trusted_proxies: trusted_proxies?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::env::deployment;
    use crate::config::env::testing::{env, errors};

    #[test]
    fn providers_are_off_until_their_credentials_are_set() {
        let (d, report) = deployment(&env(&[])).unwrap();
        assert!(d.providers.cryptopay.is_none() && d.providers.yookassa.is_none());
        assert_eq!(d.providers.call_timeout, Duration::from_secs(10));
        assert!(report.iter().any(|l| l.key == "PROVIDER_CALL_TIMEOUT"));
        let (d, report) = deployment(&env(&[
            (
                "CRYPTOPAY_TOKEN",
                "1234:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            ("CRYPTOPAY_NETWORK", "testnet"),
            ("YOOKASSA_SHOP_ID", "123456"),
            ("YOOKASSA_SECRET_KEY", "test_abcdef"),
            ("YOOKASSA_API_URL", "http://127.0.0.1:9/v3"),
        ]))
        .unwrap();
        let c = d.providers.cryptopay.unwrap();
        assert_eq!(c.api_url.as_str(), "https://testnet-pay.crypt.bot/api/");
        assert_eq!(c.poll_interval, Duration::from_secs(30));
        let y = d.providers.yookassa.unwrap();
        assert_eq!(y.api_url.as_str(), "http://127.0.0.1:9/v3/");
        // Notifications only from YooKassa's addresses, seen through local proxies.
        assert_eq!(y.notify_from.to_string(), super::YOOKASSA_ADDRESSES);
        assert!(y.notify_from.allows("77.75.156.35".parse().unwrap()));
        assert!(!y.notify_from.allows("127.0.0.1".parse().unwrap()));
        assert_eq!(
            d.providers.trusted_proxies.to_string(),
            super::PRIVATE_PROXIES
        );
        assert!(report.iter().all(|l| !l.value.contains("AAAAAAAA")));
        assert!(report.iter().all(|l| !l.value.contains("test_abcdef")));
    }

    #[test]
    fn notification_sources_and_proxies_are_the_operators_to_set() {
        let (d, _) = deployment(&env(&[
            ("YOOKASSA_SHOP_ID", "123456"),
            ("YOOKASSA_SECRET_KEY", "test_abcdef"),
            ("YOOKASSA_NOTIFY_FROM", "any"),
            ("TRUSTED_PROXIES", "none"),
        ]))
        .unwrap();
        let y = d.providers.yookassa.unwrap();
        assert!(y.notify_from.allows("203.0.113.7".parse().unwrap()));
        assert_eq!(d.providers.trusted_proxies.to_string(), "none");
        let (d, _) = deployment(&env(&[
            ("YOOKASSA_SHOP_ID", "123456"),
            ("YOOKASSA_SECRET_KEY", "test_abcdef"),
            ("YOOKASSA_NOTIFY_FROM", "127.0.0.1"),
            ("TRUSTED_PROXIES", "192.0.2.10"),
        ]))
        .unwrap();
        let y = d.providers.yookassa.unwrap();
        assert!(y.notify_from.allows("127.0.0.1".parse().unwrap()));
        assert!(!y.notify_from.allows("77.75.156.35".parse().unwrap()));
        assert_eq!(d.providers.trusted_proxies.to_string(), "192.0.2.10");
    }

    #[test]
    fn a_payment_page_fits_in_the_handler_deadline() {
        let yoo = [
            ("YOOKASSA_SHOP_ID", "123456"),
            ("YOOKASSA_SECRET_KEY", "test_abcdef"),
        ];
        let (d, _) = deployment(&env(&yoo)).unwrap();
        assert_eq!(d.providers.page_wait(), Duration::from_secs(23));
        let mut slow = yoo.to_vec();
        slow.push(("PROVIDER_CALL_TIMEOUT", "15s"));
        let e = errors(&slow);
        assert!(
            e.contains("PROVIDER_CALL_TIMEOUT")
                && e.contains("up to 33s")
                && e.contains("at most 13s"),
            "{e}"
        );
        slow.push(("HANDLER_DEADLINE", "40s"));
        assert!(deployment(&env(&slow)).is_ok());
        // Without a provider the deadline does not matter.
        assert!(deployment(&env(&[("PROVIDER_CALL_TIMEOUT", "60s")])).is_ok());
    }

    #[test]
    fn bad_provider_settings_name_their_key_and_fix() {
        for (key, value, needle) in [
            ("CRYPTOPAY_TOKEN", "nocolon", "not a Crypto Pay token"),
            ("CRYPTOPAY_NETWORK", "devnet", "not a Crypto Pay network"),
            ("CRYPTOPAY_API_URL", "ftp://x", "not an http(s) URL"),
            ("CRYPTOPAY_POLL_INTERVAL", "2h", "outside"),
            ("PROVIDER_CALL_TIMEOUT", "5m", "outside"),
            ("YOOKASSA_SHOP_ID", "abc", "not a YooKassa shopId"),
            (
                "YOOKASSA_NOTIFY_FROM",
                "185.71.76.0/27, yookassa.ru",
                "\"yookassa.ru\" is neither",
            ),
            (
                "YOOKASSA_NOTIFY_FROM",
                "none",
                "every notification would be refused",
            ),
            ("TRUSTED_PROXIES", "localhost", "\"localhost\" is neither"),
        ] {
            let e = errors(&[(key, value)]);
            assert!(
                e.contains(key) && e.contains(needle) && e.contains("fix:"),
                "{key}={value}: {e}"
            );
        }
        let e = errors(&[("YOOKASSA_SHOP_ID", "123")]);
        assert!(
            e.contains("YOOKASSA_SECRET_KEY") && e.contains("neither"),
            "{e}"
        );
    }
}
