//! `[yookassa]` (optional): whether YooKassa payments carry a 54-FZ receipt, its VAT code
//! and the shop's tax system. With receipts on, the user is asked once for the email or phone
//! the receipt goes to; off (the default) asks nothing and sends no receipt.

use serde::{Deserialize, Serialize};

use super::check::Check;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawYooKassa {
    #[serde(default)]
    receipts: Option<bool>,
    #[serde(default)]
    vat_code: Option<i64>,
    #[serde(default)]
    tax_system_code: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct YooKassaCatalog {
    pub receipts: bool,
    /// YooKassa's `vat_code` (1..=12; 1 = no VAT, 11 = 22 %).
    pub vat_code: u8,
    /// YooKassa's `tax_system_code` (1..=6), for a shop registered under several tax systems;
    /// left out of the receipt when unset.
    pub tax_system_code: Option<u8>,
}

/// `value` when it is within `range`; otherwise the failure is recorded and `None` returned.
fn code_in(
    c: &mut Check<'_>,
    key: &str,
    value: i64,
    range: std::ops::RangeInclusive<u8>,
    fix: &str,
) -> Option<u8> {
    match u8::try_from(value) {
        Ok(v) if range.contains(&v) => Some(v),
        _ => {
            c.fail(
                key,
                format!(
                    "{value} is not a YooKassa {}",
                    key.trim_start_matches("yookassa.")
                ),
                fix,
            );
            None
        }
    }
}

pub(super) fn parse_yookassa(c: &mut Check<'_>, raw: Option<&RawYooKassa>) -> YooKassaCatalog {
    let receipts = raw.and_then(|r| r.receipts).unwrap_or(false);
    let vat_code = code_in(
        c,
        "yookassa.vat_code",
        raw.and_then(|r| r.vat_code).unwrap_or(1),
        1..=12,
        "use 1 to 12 (1 = no VAT, 2 = 0 %, 3 = 10 %, 4 = 20 %, 7 = 5 %, 8 = 7 %, 11 = 22 %; 5, 6, 9, 10, 12 the calculated rates), or remove the key for 1",
    )
    .unwrap_or(1);
    let tax_system_code = raw.and_then(|r| r.tax_system_code).and_then(|t| {
        code_in(
            c,
            "yookassa.tax_system_code",
            t,
            1..=6,
            "use 1 to 6 (1 = general, 2 = simplified on income, 3 = simplified on income minus expenses, 5 = agricultural tax, 6 = patent), or remove the key",
        )
    });
    YooKassaCatalog {
        receipts,
        vat_code,
        tax_system_code,
    }
}
