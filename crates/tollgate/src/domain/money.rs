//! Money as integer minor units.
//!
//! A float conversion once lost a kopeck in the earlier system (docs/reliability.md C6). Here an
//! amount is an `i64` count of the currency's minor unit (kopecks, cents, whole Stars) from
//! the moment it is parsed at the edge (catalog, typed input) to the moment it is rendered.
//! Decimal strings are parsed exactly; floats are never accepted.

use std::fmt;
use std::str::FromStr;

/// Currencies Tollgate can price in. Telegram Stars (`XTR`) have no minor unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Currency {
    Xtr,
    Rub,
    Usd,
    Eur,
    Uah,
    Kzt,
    Byn,
    Gbp,
    Try,
    Uzs,
    Inr,
    Brl,
}

impl Currency {
    pub const ALL: [Currency; 12] = [
        Currency::Xtr,
        Currency::Rub,
        Currency::Usd,
        Currency::Eur,
        Currency::Uah,
        Currency::Kzt,
        Currency::Byn,
        Currency::Gbp,
        Currency::Try,
        Currency::Uzs,
        Currency::Inr,
        Currency::Brl,
    ];

    /// ISO 4217 code (or Telegram's `XTR`), as stored and as sent to Telegram.
    pub const fn code(self) -> &'static str {
        match self {
            Currency::Xtr => "XTR",
            Currency::Rub => "RUB",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Uah => "UAH",
            Currency::Kzt => "KZT",
            Currency::Byn => "BYN",
            Currency::Gbp => "GBP",
            Currency::Try => "TRY",
            Currency::Uzs => "UZS",
            Currency::Inr => "INR",
            Currency::Brl => "BRL",
        }
    }

    /// Number of decimal digits of the minor unit (Telegram's `exp` for the currency).
    pub const fn exponent(self) -> u32 {
        match self {
            Currency::Xtr => 0,
            _ => 2,
        }
    }

    pub const fn is_stars(self) -> bool {
        matches!(self, Currency::Xtr)
    }

    fn supported_list() -> String {
        Currency::ALL
            .iter()
            .map(|c| c.code())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency {0:?}: supported are {list}", list = Currency::supported_list())]
    UnknownCurrency(String),
    #[error(
        "{0:?} is not an amount: write digits with an optional decimal point, like \"149\" or \"149.50\""
    )]
    NotAnAmount(String),
    #[error("{amount:?} has more decimal places than {currency} allows ({digits})")]
    TooPrecise {
        amount: String,
        currency: Currency,
        digits: u32,
    },
    #[error("{0:?} is too large")]
    TooLarge(String),
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .iter()
            .copied()
            .find(|c| c.code() == s)
            .ok_or_else(|| MoneyError::UnknownCurrency(s.to_owned()))
    }
}

/// An amount of one currency in minor units. May be negative (ledger deltas); prices and
/// balances carry their own non-negativity rules where they are defined.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Parses a non-negative decimal amount in major units ("149", "149.5", "149.50") exactly.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let not_amount = || MoneyError::NotAnAmount(text.to_owned());
        let t = text.trim();
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(frac) {
            return Err(not_amount());
        }
        if t.contains('.') && frac.is_empty() {
            return Err(not_amount());
        }
        let exp = currency.exponent();
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > exp as usize {
            return Err(MoneyError::TooPrecise {
                amount: text.to_owned(),
                currency,
                digits: exp,
            });
        }
        let too_large = || MoneyError::TooLarge(text.to_owned());
        let scale = 10_i64.pow(exp);
        let whole: i64 = whole.parse().map_err(|_| too_large())?;
        let mut frac_minor: i64 = 0;
        for (i, b) in frac_trimmed.bytes().enumerate() {
            let place = 10_i64.pow(exp - 1 - i as u32);
            frac_minor += i64::from(b - b'0') * place;
        }
        let minor = whole
            .checked_mul(scale)
            .and_then(|m| m.checked_add(frac_minor))
            .ok_or_else(too_large)?;
        Ok(Money { minor, currency })
    }

    /// The amount in major units without the currency code ("149.50", "100").
    pub fn format_major(self) -> String {
        let exp = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10_u64.pow(exp);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exp as usize
        )
    }

    /// `amount * percent / 100`, rounded down to a whole minor unit (rewards never round up).
    pub fn percent_floor(self, percent: u32) -> Money {
        let minor = i128::from(self.minor) * i128::from(percent) / 100;
        Money {
            minor: i64::try_from(minor).unwrap_or(i64::MAX),
            currency: self.currency,
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format_major(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimal_amounts() {
        let rub = |s| Money::parse_major(s, Currency::Rub).map(|m| m.minor);
        assert_eq!(rub("149"), Ok(14_900));
        assert_eq!(rub("149.5"), Ok(14_950));
        assert_eq!(rub("149.50"), Ok(14_950));
        assert_eq!(rub("0.01"), Ok(1));
        assert_eq!(rub("149.500"), Ok(14_950));
        assert_eq!(rub(" 7 "), Ok(700));
        assert_eq!(
            Money::parse_major("100", Currency::Xtr).map(|m| m.minor),
            Ok(100)
        );
    }

    #[test]
    fn rejects_what_is_not_an_exact_amount() {
        for bad in ["", ".5", "5.", "-1", "1e3", "1,50", "abc", "1.2.3", "+5"] {
            assert!(
                matches!(
                    Money::parse_major(bad, Currency::Rub),
                    Err(MoneyError::NotAnAmount(_))
                ),
                "{bad:?} should be rejected"
            );
        }
        assert!(matches!(
            Money::parse_major("1.001", Currency::Rub),
            Err(MoneyError::TooPrecise { digits: 2, .. })
        ));
        assert!(matches!(
            Money::parse_major("1.5", Currency::Xtr),
            Err(MoneyError::TooPrecise { digits: 0, .. })
        ));
        assert!(matches!(
            Money::parse_major("99999999999999999999", Currency::Rub),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_and_roundtrips() {
        for (minor, cur, text) in [
            (14_900, Currency::Rub, "149.00 RUB"),
            (5, Currency::Usd, "0.05 USD"),
            (-250, Currency::Eur, "-2.50 EUR"),
            (100, Currency::Xtr, "100 XTR"),
        ] {
            let m = Money::new(minor, cur);
            assert_eq!(m.to_string(), text);
            if minor >= 0 {
                assert_eq!(Money::parse_major(&m.format_major(), cur), Ok(m));
            }
        }
    }

    #[test]
    fn currency_codes_roundtrip_and_unknown_is_named() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
        }
        let err = "rub".parse::<Currency>().unwrap_err();
        assert!(err.to_string().contains("\"rub\""));
        assert!(err.to_string().contains("RUB"));
    }

    #[test]
    fn percent_rounds_down() {
        assert_eq!(
            Money::new(14_999, Currency::Rub).percent_floor(10).minor,
            1_499
        );
        assert_eq!(Money::new(1, Currency::Rub).percent_floor(45).minor, 0);
        assert_eq!(
            Money::new(i64::MAX, Currency::Rub).percent_floor(100).minor,
            i64::MAX
        );
    }
}
