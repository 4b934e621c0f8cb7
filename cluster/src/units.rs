//! Values in configuration files written the way the original's users write them: Go durations
//! (`8h`, `1h30m`, `500ms`) and human byte sizes (`"10 gib"`, `"42 MB"`, go-humanize rules).

use std::time::Duration;

/// A value that is not a duration or a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidValue {
    /// What was being parsed.
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// What is wrong, with an example of what is expected.
    pub reason: String,
}

/// Parses a Go duration: one or more `<number><unit>` with units `ns`, `us`, `µs`, `ms`, `s`,
/// `m`, `h` (e.g. `8h`, `1h30m`, `1.5s`). `0` alone is zero.
pub fn parse_go_duration(text: &str) -> Result<Duration, InvalidValue> {
    let invalid = |reason: &str| InvalidValue {
        what: "duration",
        value: text.to_string(),
        reason: format!("{reason}; expected e.g. 8h, 30m, 1h30m, 500ms"),
    };
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    let mut total = 0f64;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| invalid("missing unit"))?;
        if number_len == 0 {
            return Err(invalid("missing number"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| invalid("bad number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid("unknown unit")),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a human byte size as go-humanize does: a number, optional space, optional unit;
/// `k`/`kb` = 1000, `ki`/`kib` = 1024 (likewise m, g, t, p, e); case-insensitive; bare = bytes.
pub fn parse_bytes(text: &str) -> Result<u64, InvalidValue> {
    let invalid = |reason: &str| InvalidValue {
        what: "size",
        value: text.to_string(),
        reason: format!("{reason}; expected e.g. \"10 GiB\", \"500 MB\", 1048576"),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid("missing number"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(invalid("unknown unit")),
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(invalid("too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("8h").unwrap(),
            Duration::from_secs(8 * 3600)
        );
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_go_duration("8 hours").unwrap_err().to_string(),
            "invalid duration \"8 hours\": unknown unit; expected e.g. 8h, 30m, 1h30m, 500ms"
        );
        assert!(parse_go_duration("8").is_err());
        assert!(parse_go_duration("h").is_err());
    }

    #[test]
    fn humanized_sizes_follow_go_humanize() {
        assert_eq!(parse_bytes("42 MB").unwrap(), 42_000_000);
        assert_eq!(parse_bytes("42 mib").unwrap(), 44_040_192);
        assert_eq!(parse_bytes("10 gib").unwrap(), 10 * 1024 * 1024 * 1024);
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 * 1024 * 1024 * 1024);
        assert_eq!(parse_bytes("1.5 KB").unwrap(), 1500);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("ten gib").is_err());
        assert!(parse_bytes("10 gibibytes").is_err());
    }
}
