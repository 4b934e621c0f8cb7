//! PD timestamps: `physical_ms << 18 | logical`, and the conversions every component needs.

use chrono::{DateTime, Utc};

/// Bits of a timestamp that hold the logical counter.
pub const LOGICAL_BITS: u32 = 18;

/// Composes a timestamp from milliseconds since the Unix epoch and a logical counter.
pub const fn compose(physical_ms: i64, logical: i64) -> i64 {
    (physical_ms << LOGICAL_BITS) + logical
}

/// The physical part of a timestamp: milliseconds since the Unix epoch.
pub const fn physical_ms(ts: i64) -> i64 {
    ts >> LOGICAL_BITS
}

/// The logical part of a timestamp.
pub const fn logical(ts: i64) -> i64 {
    ts & ((1 << LOGICAL_BITS) - 1)
}

/// The wall-clock time a timestamp stands for, truncated to whole seconds, as the original's
/// `TSOToRoughTime` does.
pub fn rough_time(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(physical_ms(ts) / 1000, 0).unwrap_or_default()
}

/// Renders a time the way Go's `time.Time.String()` does for a UTC time, e.g.
/// `2019-05-14 11:02:23 +0000 UTC`; binlogctl output and savepoint comments use this form.
pub fn go_time_string<Tz: chrono::TimeZone>(time: &DateTime<Tz>, zone_name: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("{} {}", time.format("%Y-%m-%d %H:%M:%S %z"), zone_name)
}

/// A timestamp for the current wall clock with logical 0; only for approximations
/// (heartbeat `updateTS` extrapolation), never for ordering.
pub fn from_system_time(time: std::time::SystemTime) -> i64 {
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    compose(ms, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_matches_the_original_vector() {
        // binlogctl's own test: physical 123, logical 456.
        assert_eq!(compose(123, 456), 32_244_168);
        assert_eq!(physical_ms(32_244_168), 123);
        assert_eq!(logical(32_244_168), 456);
    }

    #[test]
    fn rough_time_truncates_to_seconds() {
        let ts = compose(1_558_000_943_999, 7);
        assert_eq!(
            go_time_string(&rough_time(ts), "UTC"),
            "2019-05-16 10:02:23 +0000 UTC"
        );
    }
}
