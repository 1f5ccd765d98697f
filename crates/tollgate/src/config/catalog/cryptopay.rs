//! `[cryptopay]` (optional): the crypto assets a Crypto Pay invoice accepts. Invoices are
//! priced in the base currency (a fiat invoice), so the list only says what the payer may pay
//! with; USDT when the section is absent.

use serde::{Deserialize, Serialize};

use super::check::Check;

/// The assets Crypto Pay lists for fiat invoices (testnet adds JET).
const ASSETS: &[&str] = &[
    "USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX", "USDC", "JET",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCryptoPay {
    #[serde(default)]
    accepted_assets: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CryptoPayCatalog {
    pub accepted_assets: Vec<String>,
}

pub(super) fn parse_cryptopay(c: &mut Check<'_>, raw: Option<&RawCryptoPay>) -> CryptoPayCatalog {
    let list = raw
        .and_then(|r| r.accepted_assets.clone())
        .unwrap_or_else(|| vec!["USDT".to_owned()]);
    if list.is_empty() {
        c.fail(
            "cryptopay.accepted_assets",
            "is empty".to_owned(),
            "list at least one asset, e.g. [\"USDT\"], or remove the key for USDT",
        );
    }
    for (i, a) in list.iter().enumerate() {
        if !ASSETS.contains(&a.as_str()) {
            c.fail(
                &format!("cryptopay.accepted_assets[{i}]"),
                format!("{a:?} is not a Crypto Pay asset"),
                format!("use some of {}", ASSETS.join(", ")),
            );
        }
    }
    CryptoPayCatalog {
        accepted_assets: list,
    }
}
