//! TiDB's DATE/DATETIME/TIMESTAMP values (packed into a u64 by `ToPackedUint`) and TIME values
//! (durations in nanoseconds), with MySQL literal strings both ways.
//!
//! Packed layout, most significant bit first (reference drainer.md §3.2):
//! `0 (1 bit) | year*13+month (17) | day (5) | hour (5) | minute (6) | second (6) | microsecond (24)`.
//! The zero time `0000-00-00 00:00:00` packs to 0. Neither the type (date / datetime / timestamp)
//! nor the fractional-seconds precision (fsp) is packed: both come from the column's FieldType, so
//! [`Time::from_packed`] takes them as arguments.
//!
//! TIMESTAMP values are packed in UTC; converting to and from a session zone is the caller's
//! business, helped by [`Time::to_unix_micros`], [`Time::from_unix_micros`] and
//! [`Time::shift_seconds`] (fixed offsets only; this crate knows no zone database).

use std::fmt;

use crate::error::{CodecError, Result};

/// Largest fractional-seconds precision.
pub const MAX_FSP: u8 = 6;
/// Largest TIME value, 838:59:59, in nanoseconds.
pub const MAX_DURATION_NANOS: i64 = (838 * 3600 + 59 * 60 + 59) * NANOS_PER_SEC;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const MICROS_PER_SEC: i64 = 1_000_000;

/// Which of the three date-time column types a [`Time`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeKind {
    /// DATE (and the legacy NEWDATE): no time-of-day part.
    Date,
    /// DATETIME: wall-clock time, no zone.
    Datetime,
    /// TIMESTAMP: stored (packed) in UTC.
    Timestamp,
}

impl TimeKind {
    /// Kind for a MySQL type code (`Tp`): 10/14 date, 12 datetime, 7 timestamp.
    pub fn from_type_code(tp: u8) -> Option<TimeKind> {
        match tp {
            10 | 14 => Some(TimeKind::Date),
            12 => Some(TimeKind::Datetime),
            7 => Some(TimeKind::Timestamp),
            _ => None,
        }
    }
}

/// A MySQL date-time value with its column kind and fractional-seconds precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Time {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub microsecond: u32,
    pub kind: TimeKind,
    /// Digits shown after the seconds, 0..=6 (always 0 for dates).
    pub fsp: u8,
}

fn out_of_range(reason: impl Into<String>) -> CodecError {
    CodecError::TimeOutOfRange {
        reason: reason.into(),
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    // m is 1..=12 and d is 1..=31 by construction.
    (
        if m <= 2 { y + 1 } else { y },
        u8::try_from(m).unwrap_or(0),
        u8::try_from(d).unwrap_or(0),
    )
}

impl Time {
    /// The zero value `0000-00-00 00:00:00` of the given kind.
    pub fn zero(kind: TimeKind, fsp: u8) -> Time {
        Time {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            microsecond: 0,
            kind,
            fsp: if kind == TimeKind::Date { 0 } else { fsp },
        }
    }

    /// A date-time from its fields, validated (see [`Time::validate`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: TimeKind,
        fsp: u8,
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        microsecond: u32,
    ) -> Result<Time> {
        let t = Time {
            year,
            month,
            day,
            hour,
            minute,
            second,
            microsecond,
            kind,
            fsp,
        };
        t.validate()?;
        Ok(t)
    }

    /// Checks field ranges: year ≤ 9999, month ≤ 12, day ≤ days of that month (zero month/day are
    /// allowed, as MySQL's zero dates), hour ≤ 23, minute/second ≤ 59, microsecond ≤ 999999,
    /// fsp ≤ 6, and no time-of-day for a DATE.
    pub fn validate(&self) -> Result<()> {
        if self.year > 9999 {
            return Err(out_of_range(format!("year {} > 9999", self.year)));
        }
        if self.month > 12 {
            return Err(out_of_range(format!("month {} > 12", self.month)));
        }
        let max_day = if self.month == 0 {
            31
        } else {
            days_in_month(i64::from(self.year), self.month)
        };
        if self.day > max_day {
            return Err(out_of_range(format!(
                "day {} > {max_day} in {:04}-{:02}",
                self.day, self.year, self.month
            )));
        }
        if self.hour > 23 || self.minute > 59 || self.second > 59 {
            return Err(out_of_range(format!(
                "time of day {:02}:{:02}:{:02}",
                self.hour, self.minute, self.second
            )));
        }
        if self.microsecond > 999_999 {
            return Err(out_of_range(format!("microsecond {}", self.microsecond)));
        }
        if self.fsp > MAX_FSP {
            return Err(out_of_range(format!("fsp {} > 6", self.fsp)));
        }
        if self.kind == TimeKind::Date
            && (self.hour, self.minute, self.second, self.microsecond) != (0, 0, 0, 0)
        {
            return Err(out_of_range("a DATE has no time of day"));
        }
        Ok(())
    }

    /// True for `0000-00-00 00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.to_packed_unchecked() == 0
    }

    fn to_packed_unchecked(self) -> u64 {
        let ymd = ((u64::from(self.year) * 13 + u64::from(self.month)) << 5) | u64::from(self.day);
        let hms =
            (u64::from(self.hour) << 12) | (u64::from(self.minute) << 6) | u64::from(self.second);
        (((ymd << 17) | hms) << 24) | u64::from(self.microsecond)
    }

    /// TiDB's `ToPackedUint`. Fails on fields outside [`Time::validate`]'s ranges.
    pub fn to_packed(self) -> Result<u64> {
        self.validate()?;
        Ok(self.to_packed_unchecked())
    }

    /// TiDB's `FromPackedUint`, with the kind and fsp taken from the column type. Fails when the
    /// unpacked fields are out of range (a DATE column's time of day is dropped, as TiDB does
    /// when it converts to DATE).
    pub fn from_packed(packed: u64, kind: TimeKind, fsp: u8) -> Result<Time> {
        let ymdhms = packed >> 24;
        let ymd = ymdhms >> 17;
        let ym = ymd >> 5;
        let hms = ymdhms & ((1 << 17) - 1);
        let year = u16::try_from(ym / 13)
            .map_err(|_| out_of_range(format!("packed time {packed:#x}: year too large")))?;
        // All masked fields fit in u8/u32.
        let mut t = Time {
            year,
            month: (ym % 13) as u8,
            day: (ymd & 0x1F) as u8,
            hour: (hms >> 12) as u8,
            minute: ((hms >> 6) & 0x3F) as u8,
            second: (hms & 0x3F) as u8,
            microsecond: (packed & 0xFF_FFFF) as u32,
            kind,
            fsp,
        };
        if kind == TimeKind::Date {
            t.hour = 0;
            t.minute = 0;
            t.second = 0;
            t.microsecond = 0;
            t.fsp = 0;
        }
        t.validate()
            .map_err(|e| out_of_range(format!("packed time {packed:#x}: {e}")))?;
        Ok(t)
    }

    /// Parses a MySQL date/datetime literal: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS[.fraction]]` (also
    /// with `T` or `/` separators, 2-digit years, 1-digit fields) or the digit-only forms `YYYYMMDD`
    /// and `YYYYMMDDHHMMSS[.fraction]`. The fraction is rounded to `fsp` digits (half up, carrying
    /// into the seconds); for a DATE the time of day is dropped.
    pub fn parse(input: &str, kind: TimeKind, fsp: u8) -> Result<Time> {
        let syntax = |reason: &str| CodecError::TimeSyntax {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if fsp > MAX_FSP {
            return Err(syntax("fsp must be 0..=6"));
        }
        let s = input.trim();
        let (main, frac) = match s.split_once('.') {
            // A '.' is a fraction separator only after the time part (digits-only form or after ':').
            Some((m, f)) if m.contains(':') || m.bytes().all(|b| b.is_ascii_digit()) => {
                (m, Some(f))
            }
            _ => (s, None),
        };
        let (date_part, time_part) = match main.find([' ', 'T']) {
            Some(i) => (&main[..i], Some(main[i + 1..].trim_start())),
            None => (main, None),
        };
        let num = |p: &str| -> Result<u32> {
            if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax("expected a number"));
            }
            p.parse::<u32>().map_err(|_| syntax("expected a number"))
        };
        let (year_s, month, day, mut hms): (&str, u32, u32, Option<(u32, u32, u32)>);
        if date_part.bytes().all(|b| b.is_ascii_digit()) && time_part.is_none() {
            match date_part.len() {
                8 => {
                    year_s = &date_part[..4];
                    month = num(&date_part[4..6])?;
                    day = num(&date_part[6..8])?;
                    hms = None;
                }
                14 => {
                    year_s = &date_part[..4];
                    month = num(&date_part[4..6])?;
                    day = num(&date_part[6..8])?;
                    hms = Some((
                        num(&date_part[8..10])?,
                        num(&date_part[10..12])?,
                        num(&date_part[12..14])?,
                    ));
                }
                _ => return Err(syntax("digit-only form must be YYYYMMDD or YYYYMMDDHHMMSS")),
            }
        } else {
            let parts: Vec<&str> = date_part.split(['-', '/']).collect();
            let [y, m, d] = parts.as_slice() else {
                return Err(syntax("date must be year-month-day"));
            };
            year_s = y;
            month = num(m)?;
            day = num(d)?;
            hms = None;
            if let Some(tp) = time_part {
                let parts: Vec<&str> = tp.split(':').collect();
                hms = Some(match parts.as_slice() {
                    [h, m] => (num(h)?, num(m)?, 0),
                    [h, m, s] => (num(h)?, num(m)?, num(s)?),
                    _ => return Err(syntax("time must be hour:minute[:second]")),
                });
            }
        }
        let mut year = num(year_s)?;
        if year_s.len() <= 2 {
            year += if year < 70 { 2000 } else { 1900 };
        }
        if frac.is_some() && hms.is_none() {
            return Err(syntax("fraction without a time of day"));
        }
        let nanos: u32 = match frac {
            None => 0,
            Some("") => 0,
            Some(f) => {
                if !f.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax("fraction must be digits"));
                }
                // Keep 9 digits plus a rounding digit.
                let mut n: u64 = 0;
                for (i, b) in f.bytes().take(9).enumerate() {
                    n += u64::from(b - b'0') * 10u64.pow(8 - i as u32);
                }
                if f.len() > 9 && f.as_bytes()[9] >= b'5' {
                    n += 1;
                }
                u32::try_from(n).map_err(|_| syntax("fraction"))?
            }
        };
        if kind == TimeKind::Date {
            hms = None;
        }
        let (h, mi, se) = hms.unwrap_or((0, 0, 0));
        let to_u8 = |v: u32| u8::try_from(v).map_err(|_| syntax("field out of range"));
        let mut t = Time {
            year: u16::try_from(year).map_err(|_| syntax("year out of range"))?,
            month: to_u8(month)?,
            day: to_u8(day)?,
            hour: to_u8(h)?,
            minute: to_u8(mi)?,
            second: to_u8(se)?,
            microsecond: 0,
            kind,
            fsp: if kind == TimeKind::Date { 0 } else { fsp },
        };
        t.validate().map_err(|e| syntax(&e.to_string()))?;
        if kind != TimeKind::Date {
            t = t.with_rounded_nanos(nanos, t.fsp)?;
        }
        Ok(t)
    }

    /// Rounds the microseconds to `fsp` digits (half up) and sets the fsp.
    pub fn round_to_fsp(&self, fsp: u8) -> Result<Time> {
        if fsp > MAX_FSP {
            return Err(out_of_range(format!("fsp {fsp} > 6")));
        }
        let mut t = *self;
        t.microsecond = 0;
        t.with_rounded_nanos(self.microsecond * 1000, fsp)
    }

    /// Sets the sub-second part from `nanos` (< 1e9) rounded to `fsp` digits, carrying into the
    /// seconds (and the date) when it rounds up to a full second.
    fn with_rounded_nanos(mut self, nanos: u32, fsp: u8) -> Result<Time> {
        let unit = 10u32.pow(9 - u32::from(fsp));
        let rounded = (nanos / unit + u32::from(nanos % unit >= unit / 2)) * unit;
        self.fsp = fsp;
        if rounded >= 1_000_000_000 {
            self.microsecond = 0;
            return self.shift_seconds(1);
        }
        self.microsecond = rounded / 1000;
        Ok(self)
    }

    /// Microseconds since 1970-01-01 00:00:00, reading the fields as UTC. `None` for the zero time
    /// or dates with a zero month or day, which have no instant.
    pub fn to_unix_micros(self) -> Option<i64> {
        if self.month == 0 || self.day == 0 {
            return None;
        }
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some(secs * MICROS_PER_SEC + i64::from(self.microsecond))
    }

    /// The UTC calendar fields of a unix instant in microseconds (inverse of
    /// [`Time::to_unix_micros`]).
    pub fn from_unix_micros(micros: i64, kind: TimeKind, fsp: u8) -> Result<Time> {
        let secs = micros.div_euclid(MICROS_PER_SEC);
        let micro = micros.rem_euclid(MICROS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let year = u16::try_from(y)
            .ok()
            .filter(|y| *y <= 9999)
            .ok_or_else(|| out_of_range(format!("year {y} outside 0..=9999")))?;
        // sod < 86400 and micro < 1e6, so the casts below are lossless.
        let mut t = Time {
            year,
            month: m,
            day: d,
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
            microsecond: micro as u32,
            kind,
            fsp,
        };
        if kind == TimeKind::Date {
            t.hour = 0;
            t.minute = 0;
            t.second = 0;
            t.microsecond = 0;
            t.fsp = 0;
        }
        t.validate()?;
        Ok(t)
    }

    /// Moves the value by whole seconds (e.g. a fixed zone offset: UTC → UTC+8 is `+28800`).
    /// The zero time, and dates with a zero month or day, are returned unchanged, as TiDB does.
    pub fn shift_seconds(&self, seconds: i64) -> Result<Time> {
        match self.to_unix_micros() {
            None => Ok(*self),
            Some(us) => {
                let shifted = us
                    .checked_add(seconds.saturating_mul(MICROS_PER_SEC))
                    .ok_or_else(|| out_of_range("time shift overflows"))?;
                let kind = if self.kind == TimeKind::Date {
                    TimeKind::Datetime
                } else {
                    self.kind
                };
                let mut t = Time::from_unix_micros(shifted, kind, self.fsp)?;
                t.kind = self.kind;
                Ok(t)
            }
        }
    }
}

/// `YYYY-MM-DD` for a DATE, `YYYY-MM-DD hh:mm:ss[.fraction]` otherwise; the fraction has exactly
/// `fsp` digits (TiDB's `Time.String`).
impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)?;
        if self.kind == TimeKind::Date {
            return Ok(());
        }
        write!(f, " {:02}:{:02}:{:02}", self.hour, self.minute, self.second)?;
        write_frac(f, self.microsecond, self.fsp)
    }
}

fn write_frac(f: &mut fmt::Formatter<'_>, micro: u32, fsp: u8) -> fmt::Result {
    if fsp == 0 {
        return Ok(());
    }
    let s = format!("{micro:06}");
    let n = usize::from(fsp.min(MAX_FSP));
    write!(f, ".{}", &s[..n])
}

/// A MySQL TIME value: signed nanoseconds plus the column's fsp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    pub nanos: i64,
    pub fsp: u8,
}

impl Duration {
    /// Validates |nanos| ≤ 838:59:59 and fsp ≤ 6.
    pub fn new(nanos: i64, fsp: u8) -> Result<Duration> {
        if fsp > MAX_FSP {
            return Err(CodecError::InvalidDuration {
                input: nanos.to_string(),
                reason: format!("fsp {fsp} > 6"),
            });
        }
        if nanos.unsigned_abs() > MAX_DURATION_NANOS.unsigned_abs() {
            return Err(CodecError::InvalidDuration {
                input: format!("{nanos}ns"),
                reason: "outside -838:59:59..838:59:59".to_string(),
            });
        }
        Ok(Duration { nanos, fsp })
    }

    /// Parses `[-][D ]H+:MM[:SS][.fraction]` or the digit-only `[-][H]HMMSS[.fraction]`, rounding the
    /// fraction to `fsp` digits (half up).
    pub fn parse(input: &str, fsp: u8) -> Result<Duration> {
        let err = |reason: &str| CodecError::InvalidDuration {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if fsp > MAX_FSP {
            return Err(err("fsp must be 0..=6"));
        }
        let s = input.trim();
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, s),
        };
        let (days, s) = match s.split_once(' ') {
            Some((d, rest)) => (parse_digits(d).ok_or_else(|| err("bad day count"))?, rest),
            None => (0, s),
        };
        let (main, frac) = match s.split_once('.') {
            Some((m, f)) => (m, f),
            None => (s, ""),
        };
        let parts: Vec<&str> = main.split(':').collect();
        let field = |p: &str| parse_digits(p).ok_or_else(|| err("expected digits"));
        let (h, m, sec) = match parts.as_slice() {
            [h, m, sec] => (field(h)?, field(m)?, field(sec)?),
            [h, m] => (field(h)?, field(m)?, 0),
            [digits] if days == 0 => {
                let v = field(digits)?;
                (v / 10_000, v / 100 % 100, v % 100)
            }
            _ => return Err(err("expected hours:minutes[:seconds]")),
        };
        if m > 59 || sec > 59 {
            return Err(err("minutes and seconds must be below 60"));
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("fraction must be digits"));
        }
        let mut frac_nanos: i64 = 0;
        for (i, b) in frac.bytes().take(9).enumerate() {
            frac_nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
        }
        let unit = 10i64.pow(9 - u32::from(fsp));
        let mut rounded = (frac_nanos / unit) * unit;
        if frac_nanos % unit >= unit / 2 {
            rounded += unit;
        }
        let secs = days
            .checked_mul(24)
            .and_then(|d| d.checked_add(h))
            .and_then(|hh| hh.checked_mul(3600))
            .and_then(|x| x.checked_add(m * 60 + sec))
            .ok_or_else(|| err("out of range"))?;
        let total = secs
            .checked_mul(NANOS_PER_SEC)
            .and_then(|n| n.checked_add(rounded))
            .ok_or_else(|| err("out of range"))?;
        let nanos = if negative { -total } else { total };
        Duration::new(nanos, fsp).map_err(|_| err("outside -838:59:59..838:59:59"))
    }
}

fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `[-]hh:mm:ss[.fraction]` with at least two hour digits and exactly `fsp` fraction digits
/// (TiDB's `Duration.String`).
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.nanos.unsigned_abs();
        let secs = abs / 1_000_000_000;
        let micro = (abs % 1_000_000_000) / 1000;
        if self.nanos < 0 {
            f.write_str("-")?;
        }
        write!(
            f,
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        // micro < 1e6 fits in u32.
        write_frac(f, micro as u32, self.fsp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packed_vector() {
        // 2024-02-29 13:45:01.123456:
        // ymd = (2024*13+2)<<5 | 29 = 26314<<5 | 29 = 842077; hms = 13<<12 | 45<<6 | 1 = 56129;
        // packed = ((842077<<17 | 56129) << 24) | 123456.
        let t = Time::parse("2024-02-29 13:45:01.123456", TimeKind::Datetime, 6).unwrap();
        let expected = (((842_077u64 << 17) | 56_129) << 24) | 123_456;
        assert_eq!(t.to_packed().unwrap(), expected);
        let back = Time::from_packed(expected, TimeKind::Datetime, 6).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.to_string(), "2024-02-29 13:45:01.123456");
        assert_eq!(
            Time::from_packed(expected, TimeKind::Datetime, 3)
                .unwrap()
                .to_string(),
            "2024-02-29 13:45:01.123"
        );
        assert_eq!(
            Time::from_packed(expected, TimeKind::Date, 0)
                .unwrap()
                .to_string(),
            "2024-02-29"
        );
        assert_eq!(Time::zero(TimeKind::Datetime, 0).to_packed().unwrap(), 0);
        assert_eq!(
            Time::from_packed(0, TimeKind::Datetime, 0)
                .unwrap()
                .to_string(),
            "0000-00-00 00:00:00"
        );
    }

    #[test]
    fn parse_forms() {
        let p = |s: &str, k, fsp| Time::parse(s, k, fsp).map(|t| t.to_string());
        assert_eq!(p("2024-02-29", TimeKind::Date, 0).unwrap(), "2024-02-29");
        assert_eq!(
            p("2024-02-29 13:45:01", TimeKind::Date, 0).unwrap(),
            "2024-02-29"
        );
        assert_eq!(
            p("2024-2-9 1:2:3", TimeKind::Datetime, 0).unwrap(),
            "2024-02-09 01:02:03"
        );
        assert_eq!(
            p("2024-02-29T13:45", TimeKind::Datetime, 0).unwrap(),
            "2024-02-29 13:45:00"
        );
        assert_eq!(
            p("20240229134501.5", TimeKind::Datetime, 1).unwrap(),
            "2024-02-29 13:45:01.5"
        );
        assert_eq!(
            p("99-12-31 23:59:59", TimeKind::Datetime, 0).unwrap(),
            "1999-12-31 23:59:59"
        );
        // Rounding carries across the year boundary.
        assert_eq!(
            p("1999-12-31 23:59:59.9999996", TimeKind::Timestamp, 6).unwrap(),
            "2000-01-01 00:00:00.000000"
        );
        assert_eq!(
            p("1999-12-31 23:59:59.95", TimeKind::Datetime, 1).unwrap(),
            "2000-01-01 00:00:00.0"
        );
        assert_eq!(
            p("0000-00-00 00:00:00", TimeKind::Datetime, 2).unwrap(),
            "0000-00-00 00:00:00.00"
        );
        assert!(p("2023-02-29", TimeKind::Date, 0).is_err());
        assert!(p("2024-13-01", TimeKind::Date, 0).is_err());
        assert!(p("2024-01-01 24:00:00", TimeKind::Datetime, 0).is_err());
        assert!(p("garbage", TimeKind::Datetime, 0).is_err());
        assert!(p("2024-01-01 10:00:00", TimeKind::Datetime, 7).is_err());
    }

    #[test]
    fn unix_and_shift() {
        let t = Time::parse("1970-01-02 00:00:01", TimeKind::Timestamp, 0).unwrap();
        assert_eq!(t.to_unix_micros(), Some(86_401_000_000));
        let shifted = t.shift_seconds(-2 * 86_400).unwrap();
        assert_eq!(shifted.to_string(), "1969-12-31 00:00:01");
        let leap = Time::parse("2024-02-28 20:00:00", TimeKind::Timestamp, 0).unwrap();
        assert_eq!(
            leap.shift_seconds(8 * 3600).unwrap().to_string(),
            "2024-02-29 04:00:00"
        );
        assert_eq!(
            Time::zero(TimeKind::Timestamp, 0)
                .shift_seconds(3600)
                .unwrap(),
            Time::zero(TimeKind::Timestamp, 0)
        );
    }

    #[test]
    fn durations() {
        let d = Duration::parse("-838:59:59.000000", 6).unwrap();
        assert_eq!(d.nanos, -MAX_DURATION_NANOS);
        assert_eq!(d.to_string(), "-838:59:59.000000");
        assert_eq!(
            Duration::parse("12:34:56.5", 1).unwrap().nanos,
            45_296_500_000_000
        );
        assert_eq!(
            Duration::parse("1 02:00:00", 0).unwrap().to_string(),
            "26:00:00"
        );
        assert_eq!(
            Duration::parse("123456", 0).unwrap().to_string(),
            "12:34:56"
        );
        assert_eq!(Duration::parse("10:30", 0).unwrap().to_string(), "10:30:00");
        assert_eq!(
            Duration::parse("00:00:00.0000005", 6).unwrap().to_string(),
            "00:00:00.000001"
        );
        assert_eq!(
            Duration::parse("00:00:01.5", 0).unwrap().to_string(),
            "00:00:02"
        );
        assert_eq!(
            Duration::new(-1_500_000, 3).unwrap().to_string(),
            "-00:00:00.001"
        );
        assert!(Duration::parse("839:00:00", 0).is_err());
        assert!(Duration::parse("838:59:59.5", 0).is_err());
        assert!(Duration::parse("10:60:00", 0).is_err());
        assert!(Duration::parse("x", 0).is_err());
    }

    fn any_time() -> impl Strategy<Value = Time> {
        (
            0u16..=9999,
            1u8..=12,
            1u8..=28,
            0u8..24,
            0u8..60,
            0u8..60,
            0u32..1_000_000,
            0u8..=6,
            prop_oneof![
                Just(TimeKind::Date),
                Just(TimeKind::Datetime),
                Just(TimeKind::Timestamp)
            ],
        )
            .prop_map(
                |(year, month, day, hour, minute, second, micro, fsp, kind)| {
                    let t = Time {
                        year,
                        month,
                        day,
                        hour,
                        minute,
                        second,
                        microsecond: micro,
                        kind,
                        fsp,
                    };
                    if kind == TimeKind::Date {
                        Time {
                            hour: 0,
                            minute: 0,
                            second: 0,
                            microsecond: 0,
                            fsp: 0,
                            ..t
                        }
                    } else {
                        // Keep only fsp digits so the text form is lossless.
                        let unit = 10u32.pow(6 - u32::from(fsp));
                        Time {
                            microsecond: micro / unit * unit,
                            ..t
                        }
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn packed_round_trip(t in any_time()) {
            let packed = t.to_packed().unwrap();
            prop_assert_eq!(Time::from_packed(packed, t.kind, t.fsp).unwrap(), t);
        }

        #[test]
        fn text_round_trip(t in any_time()) {
            prop_assert_eq!(Time::parse(&t.to_string(), t.kind, t.fsp).unwrap(), t);
        }

        #[test]
        fn packed_order_is_time_order(a in any_time(), b in any_time()) {
            let key = |t: &Time| (t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond);
            prop_assert_eq!(key(&a).cmp(&key(&b)), a.to_packed().unwrap().cmp(&b.to_packed().unwrap()));
        }

        #[test]
        fn unix_round_trip(t in any_time()) {
            let us = t.to_unix_micros().unwrap();
            prop_assert_eq!(Time::from_unix_micros(us, t.kind, t.fsp).unwrap(), t);
        }

        #[test]
        fn duration_text_round_trip(secs in -(838i64 * 3600 + 3599)..=(838 * 3600 + 3599), micro in 0i64..1_000_000, fsp in 0u8..=6) {
            let unit = 10i64.pow(6 - u32::from(fsp));
            let frac = micro / unit * unit * 1000;
            let nanos = if secs < 0 { secs * 1_000_000_000 - frac } else { secs * 1_000_000_000 + frac };
            prop_assume!(nanos.abs() <= MAX_DURATION_NANOS);
            let d = Duration::new(nanos, fsp).unwrap();
            prop_assert_eq!(Duration::parse(&d.to_string(), fsp).unwrap(), d);
        }
    }
}
