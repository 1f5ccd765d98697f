//! Human durations in configuration: `"72h"`, `"3d"`, `"1h30m"`, `"500ms"`.
//!
//! Operators write reminder offsets and timeouts; a bare number would leave the unit to
//! guesswork, so a unit is required.

use std::time::Duration;

/// Parses a duration made of `<number><unit>` parts, units `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let hint = "write a number with a unit, like \"30s\", \"15m\", \"72h\", \"3d\" or \"1h30m\"";
    if t.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    let mut total_ms: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("{text:?} is not a duration: {hint}"));
        }
        let (num, after) = rest.split_at(digits);
        let unit_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let (unit, after) = after.split_at(unit_len);
        let n: u128 = num.parse().map_err(|_| format!("{text:?} is too large"))?;
        let factor: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("{text:?} has no unit: {hint}")),
            other => {
                return Err(format!(
                    "{text:?} has an unknown unit {other:?}: use ms, s, m, h or d"
                ));
            }
        };
        total_ms = total_ms
            .checked_add(n.saturating_mul(factor))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        rest = after;
    }
    let ms = u64::try_from(total_ms).map_err(|_| format!("{text:?} is too large"))?;
    Ok(Duration::from_millis(ms))
}

/// The shortest exact spelling of a duration, for the effective-configuration report.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 5s "), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn rejects_with_a_hint() {
        for bad in ["", "5", "h", "5x", "-5s", "5 s", "1.5h"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.contains("unit") || err.contains("duration"),
                "{bad}: {err}"
            );
        }
        assert!(parse_duration("99999999999999999999999d").is_err());
    }

    #[test]
    fn formats_back_exactly() {
        for text in ["3d", "1h30m", "500ms", "1d2h3m4s5ms", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(parse_duration("72h").unwrap()), "3d");
    }
}
