//! Dates, money, durations and byte counts the way each language writes them.
//!
//! Instants are UTC everywhere else; only here are they shown in the operator's display
//! offset (`bot.utc_offset`), always with the offset written out, so "until 14:05" can never
//! be misread.

use std::time::Duration;

use super::{Arg, Texts};
use crate::config::Language;
use crate::domain::money::{Currency, Money};
use crate::time::{Timestamp, civil_from_days};

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTHS_RU: [&str; 12] = [
    "янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек",
];

/// `12 Mar 2027, 14:05 (UTC+3)` / `12 мар 2027, 14:05 (UTC+3)`.
pub fn date_time(lang: Language, t: Timestamp, utc_offset_minutes: i32) -> String {
    let local = t.as_unix_seconds() + i64::from(utc_offset_minutes) * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month = match lang {
        Language::En => MONTHS_EN,
        Language::Ru => MONTHS_RU,
    }[(m as usize).saturating_sub(1).min(11)];
    format!(
        "{d} {month} {y}, {:02}:{:02} ({})",
        secs / 3600,
        (secs % 3600) / 60,
        offset_label(utc_offset_minutes)
    )
}

/// `12 Mar` / `12 мар` (short form for lists).
pub fn day_month(lang: Language, t: Timestamp, utc_offset_minutes: i32) -> String {
    let local = t.as_unix_seconds() + i64::from(utc_offset_minutes) * 60;
    let (_, m, d) = civil_from_days(local.div_euclid(86_400));
    let month = match lang {
        Language::En => MONTHS_EN,
        Language::Ru => MONTHS_RU,
    }[(m as usize).saturating_sub(1).min(11)];
    format!("{d} {month}")
}

fn offset_label(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    if m.is_multiple_of(60) {
        format!("UTC{sign}{}", m / 60)
    } else {
        format!("UTC{sign}{}:{:02}", m / 60, m % 60)
    }
}

/// `149 ₽`, `149,50 ₽` (ru), `$4.99`, `100 ⭐`.
pub fn money(lang: Language, m: Money) -> String {
    let mut major = m.format_major();
    // Whole amounts drop their zero cents: "149 ₽", not "149.00 ₽".
    if let Some(stripped) = major.strip_suffix(".00") {
        major = stripped.to_owned();
    }
    if lang == Language::Ru {
        major = major.replace('.', ",");
    }
    match m.currency {
        Currency::Xtr => format!("{major} ⭐"),
        Currency::Rub => format!("{major} ₽"),
        Currency::Usd => format!("${major}"),
        Currency::Eur => format!("{major} €"),
        Currency::Gbp => format!("£{major}"),
        Currency::Uah => format!("{major} ₴"),
        Currency::Kzt => format!("{major} ₸"),
        Currency::Inr => format!("₹{major}"),
        Currency::Try => format!("{major} ₺"),
        other => format!("{major} {}", other.code()),
    }
}

/// A positive span in the largest unit that fits: days (from 2 days), else hours, else
/// minutes (at least one).
pub fn duration(texts: &Texts, lang: Language, d: Duration) -> String {
    let secs = d.as_secs();
    let (key, n) = if secs >= 2 * 86_400 {
        ("duration-days", secs / 86_400)
    } else if secs >= 3600 {
        ("duration-hours", secs / 3600)
    } else {
        ("duration-minutes", (secs / 60).max(1))
    };
    texts.fmt(
        lang,
        key,
        &[("n", Arg::Num(i64::try_from(n).unwrap_or(i64::MAX)))],
    )
}

/// `1.5 GB` / `1,5 ГБ`.
pub fn bytes(lang: Language, n: u64) -> String {
    let units_en = ["B", "KB", "MB", "GB", "TB"];
    let units_ru = ["Б", "КБ", "МБ", "ГБ", "ТБ"];
    let units = match lang {
        Language::En => units_en,
        Language::Ru => units_ru,
    };
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = if unit == 0 {
        format!("{n}")
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    };
    let text = if lang == Language::Ru {
        text.replace('.', ",")
    } else {
        text
    };
    format!("{text} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_show_the_offset_and_local_time() {
        let t = Timestamp::from_unix_seconds(1_804_936_500); // 2027-03-13T11:15:00Z
        assert_eq!(
            date_time(Language::En, t, 180),
            "13 Mar 2027, 14:15 (UTC+3)"
        );
        assert_eq!(
            date_time(Language::Ru, t, 180),
            "13 мар 2027, 14:15 (UTC+3)"
        );
        assert_eq!(date_time(Language::En, t, 0), "13 Mar 2027, 11:15 (UTC+0)");
        assert_eq!(
            date_time(Language::En, t, -330),
            "13 Mar 2027, 05:45 (UTC-5:30)"
        );
        // Crossing midnight moves the day.
        assert_eq!(
            date_time(Language::En, t, 13 * 60),
            "14 Mar 2027, 00:15 (UTC+13)"
        );
        assert_eq!(day_month(Language::Ru, t, 180), "13 мар");
    }

    #[test]
    fn money_per_language_and_currency() {
        assert_eq!(
            money(Language::En, Money::new(14_900, Currency::Rub)),
            "149 ₽"
        );
        assert_eq!(
            money(Language::Ru, Money::new(14_950, Currency::Rub)),
            "149,50 ₽"
        );
        assert_eq!(
            money(Language::En, Money::new(14_950, Currency::Rub)),
            "149.50 ₽"
        );
        assert_eq!(
            money(Language::En, Money::new(100, Currency::Xtr)),
            "100 ⭐"
        );
        assert_eq!(money(Language::En, Money::new(499, Currency::Usd)), "$4.99");
        assert_eq!(
            money(Language::En, Money::new(-250, Currency::Eur)),
            "-2.50 €"
        );
        assert_eq!(money(Language::En, Money::new(100, Currency::Byn)), "1 BYN");
    }

    #[test]
    fn durations_and_bytes() {
        let texts = Texts::load().unwrap();
        let d = |s| duration(&texts, Language::En, Duration::from_secs(s));
        assert_eq!(d(3 * 86_400 + 5), "3 days");
        assert_eq!(d(86_400 + 3600), "25 hours");
        assert_eq!(d(3600), "1 hour");
        assert_eq!(d(59), "1 minute");
        assert_eq!(d(120), "2 minutes");
        let r = |s| duration(&texts, Language::Ru, Duration::from_secs(s));
        assert_eq!(r(2 * 86_400), "2 дня");
        assert_eq!(r(5 * 86_400), "5 дней");
        assert_eq!(r(21 * 86_400), "21 день");
        assert_eq!(r(3600), "1 час");
        assert_eq!(bytes(Language::En, 512), "512 B");
        assert_eq!(bytes(Language::En, 1536), "1.5 KB");
        assert_eq!(bytes(Language::Ru, 3 * 1024 * 1024 * 1024 / 2), "1,5 ГБ");
        assert_eq!(bytes(Language::En, 200 * 1024 * 1024), "200 MB");
    }
}
