//! Small pure helpers both emulated APIs need: ISO-8601 instants, decimal amounts, the Crypto Pay
//! webhook signature, HTML escaping.
//!
//! Why hand-written: the workspace has `sha2` but no `hmac`, `chrono` or `time` crate, and each of
//! these is a few lines that are easier to test here than to pull a dependency for.

use sha2::{Digest, Sha256};

/// HMAC-SHA-256 (RFC 2104, 64-byte block).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The `crypto-pay-api-signature` header of a webhook: hex(HMAC-SHA-256(key = SHA-256(token),
/// message = the raw body bytes)).
pub fn cryptopay_signature(token: &str, body: &[u8]) -> String {
    hex(&hmac_sha256(&Sha256::digest(token.as_bytes()), body))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `2026-12-07T13:15:54.123Z` for Unix milliseconds.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        (of_day % 3600) / 60,
        of_day % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only, as YooKassa's list filters use) to Unix ms.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, fraction)) => (hms, fraction),
        None => (time, ""),
    };
    let mut time_parts = hms.split(':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: i64 = time_parts.next()?.parse().ok()?;
    if time_parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let padded: String = fraction.chars().chain("000".chars()).take(3).collect();
        padded.parse().ok()?
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}

// Howard Hinnant's civil-calendar algorithms.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A YooKassa amount (`"199.00"`, `"199.5"`, `"199"`) in minor units; `None` unless it is a
/// plain non-negative decimal with at most two fraction digits.
pub fn parse_minor(value: &str) -> Option<i64> {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (value, ""),
    };
    if whole.is_empty()
        || whole.len() > 12
        || fraction.len() > 2
        || (value.contains('.') && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(fraction)
}

/// Minor units as YooKassa writes them: `"199.00"`.
pub fn format_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A Crypto Pay amount ("in float", sent as a string): a plain positive decimal with at most 18
/// fraction digits. Returns it as a number for the emulator's made-up exchange rates.
pub fn parse_crypto_amount(value: &str) -> Option<f64> {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (value, ""),
    };
    if whole.is_empty()
        || whole.len() > 15
        || fraction.len() > 18
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let number: f64 = value.parse().ok()?;
    (number > 0.0).then_some(number)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_reference_vector() {
        let token = "1234:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let body = r#"{"update_id":1,"update_type":"invoice_paid","request_date":"2026-12-07T00:00:00.000Z","payload":{"invoice_id":1,"status":"paid","amount":"199.00","fiat":"RUB","currency_type":"fiat","payload":"order-42"}}"#;
        assert_eq!(
            sha256_hex(token.as_bytes()),
            "252ca67609711ccb3de9616c5c248592497a931e639b3acc219c89f4f1543492"
        );
        assert_eq!(
            cryptopay_signature(token, body.as_bytes()),
            "f44d877d975380a5ba6a2e34735dd7d6666ead302a5f8845065a0d279a0805ef"
        );
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn instants_round_trip() {
        let ms = 1_796_649_354_123; // 2026-12-07T13:15:54.123Z
        assert_eq!(iso8601(ms), "2026-12-07T13:15:54.123Z");
        assert_eq!(parse_iso8601("2026-12-07T13:15:54.123Z"), Some(ms));
        assert_eq!(parse_iso8601("2026-12-07T13:15:54Z"), Some(ms - 123));
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_iso8601("2026-13-07T13:15:54Z"), None);
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    #[test]
    fn minor_units_parse_strictly() {
        assert_eq!(parse_minor("199.00"), Some(19_900));
        assert_eq!(parse_minor("199.5"), Some(19_950));
        assert_eq!(parse_minor("199"), Some(19_900));
        assert_eq!(parse_minor("1.234"), None);
        assert_eq!(parse_minor("-1.00"), None);
        assert_eq!(parse_minor("1."), None);
        assert_eq!(parse_minor("1e3"), None);
        assert_eq!(format_minor(19_905), "199.05");
        assert_eq!(parse_crypto_amount("0.000001"), Some(0.000_001));
        assert_eq!(parse_crypto_amount("0"), None);
        assert_eq!(parse_crypto_amount("abc"), None);
    }
}
