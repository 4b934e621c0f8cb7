//! The zone the file and Kafka sinks show TIMESTAMP values in. TiDB keeps them in UTC; the
//! original drainer wrote them in its host's zone, and the readers of its output (Reparo, the
//! arbiter) hand the text to a downstream session that reads it in that zone. Showing UTC text
//! instead would move every TIMESTAMP by the zone's offset on a host outside UTC.

use chrono::{DateTime, Local, Offset, TimeZone};
use tidb_codec::{ColumnValue, Time, TimeKind};

/// Where TIMESTAMP values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShownZone {
    /// The drainer host's zone: `TZ`, else `/etc/localtime` (the original's).
    Local,
    /// A fixed offset, in seconds east of UTC.
    Fixed(i32),
}

impl ShownZone {
    /// Seconds east of UTC at the instant `unix_seconds`.
    pub fn offset_at(self, unix_seconds: i64) -> i32 {
        match self {
            ShownZone::Fixed(seconds) => seconds,
            ShownZone::Local => DateTime::from_timestamp(unix_seconds, 0).map_or(0, |utc| {
                Local
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc()
            }),
        }
    }

    /// The offset at `unix_seconds` as `+hh:mm`, which MySQL takes as a session `time_zone`.
    pub fn offset_text(self, unix_seconds: i64) -> String {
        let offset = self.offset_at(unix_seconds);
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }

    /// A TIMESTAMP (held in UTC) as shown in this zone; the zero time, and every other kind,
    /// as it is.
    pub fn show_time(self, time: Time) -> Time {
        if time.kind != TimeKind::Timestamp {
            return time;
        }
        let Some(micros) = time.to_unix_micros() else {
            return time;
        };
        let offset = self.offset_at(micros.div_euclid(1_000_000));
        // Only a value at the very edge of the calendar cannot move; it stays in UTC.
        time.shift_seconds(i64::from(offset)).unwrap_or(time)
    }

    /// [`ShownZone::show_time`] for any value.
    pub fn show(self, value: ColumnValue) -> ColumnValue {
        match value {
            ColumnValue::Time(time) => ColumnValue::Time(self.show_time(time)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use tidb_codec::{ColumnValue, Time, TimeKind};

    use super::ShownZone;

    fn time(text: &str, kind: TimeKind) -> Time {
        Time::parse(text, kind, 0).unwrap()
    }

    #[test]
    fn timestamps_move_to_the_zone_and_nothing_else_does() {
        let shanghai = ShownZone::Fixed(8 * 3600);
        let utc = time("2026-12-31 20:30:00", TimeKind::Timestamp);
        assert_eq!(
            shanghai.show_time(utc).to_string(),
            "2027-01-01 04:30:00",
            "a TIMESTAMP crosses the year in the zone"
        );
        let zero = Time::zero(TimeKind::Timestamp, 0);
        assert_eq!(shanghai.show_time(zero), zero);
        let wall = time("2026-12-31 20:30:00", TimeKind::Datetime);
        assert_eq!(shanghai.show_time(wall), wall, "a DATETIME has no zone");
        assert_eq!(shanghai.show(ColumnValue::Int(7)), ColumnValue::Int(7));
        let west = ShownZone::Fixed(-(5 * 3600 + 30 * 60));
        assert_eq!(
            west.show(ColumnValue::Time(utc)),
            ColumnValue::Time(time("2026-12-31 15:00:00", TimeKind::Timestamp))
        );
    }

    #[test]
    fn offsets_read_as_mysql_time_zones() {
        assert_eq!(ShownZone::Fixed(8 * 3600).offset_text(0), "+08:00");
        assert_eq!(
            ShownZone::Fixed(-(9 * 3600 + 30 * 60)).offset_text(0),
            "-09:30"
        );
        assert_eq!(ShownZone::Fixed(0).offset_text(0), "+00:00");
    }
}
