//! `[yookassa]` (optional): whether YooKassa payments carry a 54-FZ receipt, and its VAT
//! code. With receipts on, the user is asked once for the email or phone the receipt goes
//! to; off (the default) asks nothing and sends no receipt.

use serde::{Deserialize, Serialize};

use super::check::Check;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawYooKassa {
    #[serde(default)]
    receipts: Option<bool>,
    #[serde(default)]
    vat_code: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct YooKassaCatalog {
    pub receipts: bool,
    /// YooKassa's `vat_code` (1..=6; 1 = no VAT).
    pub vat_code: u8,
}

pub(super) fn parse_yookassa(c: &mut Check<'_>, raw: Option<&RawYooKassa>) -> YooKassaCatalog {
    let receipts = raw.and_then(|r| r.receipts).unwrap_or(false);
    let vat = raw.and_then(|r| r.vat_code).unwrap_or(1);
    let vat_code = match u8::try_from(vat) {
        Ok(v) if (1..=6).contains(&v) => v,
        _ => {
            c.fail(
                "yookassa.vat_code",
                format!("{vat} is not a YooKassa VAT code"),
                "use 1 to 6 (1 = no VAT), or remove the key for 1",
            );
            1
        }
    };
    YooKassaCatalog { receipts, vat_code }
}
