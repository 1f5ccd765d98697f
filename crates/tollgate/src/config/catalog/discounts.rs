//! `[discounts]` (optional): how a personal discount and a promo code combine. By default the
//! better of the two applies; `stack = true` applies both (the personal percent first).

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscounts {
    #[serde(default)]
    stack: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DiscountSettings {
    /// A personal discount and a promo code both apply to one purchase.
    pub stack: bool,
}

pub(super) fn parse_discounts(raw: &RawDiscounts) -> DiscountSettings {
    DiscountSettings { stack: raw.stack }
}
