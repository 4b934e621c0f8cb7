//! TiDB's `MyDecimal` binary format (MySQL's on-disk DECIMAL) and exact decimal strings.
//!
//! A [`Decimal`] is a sign plus decimal digits; no floating point is involved anywhere. The binary
//! form for DECIMAL(precision, frac) is fixed-size: the integer part (`precision - frac` digits) and
//! the fraction (`frac` digits) are each cut into 9-digit words stored as 4-byte big-endian
//! integers; the integer part's leftover leading digits and the fraction's leftover trailing digits
//! take 1–4 bytes (`DIG2BYTES`). Negative values have every byte inverted; finally the top bit of
//! the first byte is flipped, so the bytes compare like the numbers.
//!
//! Worked example (the MySQL manual's): `1234567890.1234` as DECIMAL(14,4) is
//! `81 0D FB 38 D2 04 D2` — leading digit `1` in one byte, `234567890` in four, `1234` in two, sign
//! bit flipped; `-1234567890.1234` is the byte-wise inverse `7E F2 04 C7 2D FB 2D`.
//!
//! In the datum codec ([`crate::datum`]) a decimal is `precision byte, frac byte, binary`; see
//! [`encode_decimal`] / [`decode_decimal`].

use std::fmt;
use std::str::FromStr;

use crate::error::{CodecError, Result};
use crate::reader::Reader;

/// Largest DECIMAL precision TiDB accepts.
pub const MAX_PRECISION: u8 = 65;
/// Largest DECIMAL scale (digits after the point) TiDB accepts.
pub const MAX_FRAC: u8 = 30;

const DIGITS_PER_WORD: usize = 9;
const WORD_SIZE: usize = 4;
/// Bytes needed for 0..=9 leftover digits.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const POW10: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// An exact decimal number: sign, integer digits (no leading zeros), fraction digits (as written,
/// trailing zeros kept because they carry the display scale). Both parts share one buffer: a
/// row's decimals are decoded by the hundred thousand per second.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Decimal {
    negative: bool,
    /// Digits 0..=9, most significant first: the integer part without leading zeros (none for
    /// 0), then the fraction.
    digits: Vec<u8>,
    /// How many of `digits` are the integer part.
    int_len: usize,
}

impl Decimal {
    /// Zero with no fraction digits.
    pub fn zero() -> Self {
        Decimal::default()
    }

    /// Builds a decimal from its parts; digits must be 0..=9 (checked), leading integer zeros
    /// are dropped, and a zero value is never negative.
    pub fn from_parts(negative: bool, int_digits: &[u8], frac_digits: &[u8]) -> Result<Self> {
        if int_digits.iter().chain(frac_digits).any(|d| *d > 9) {
            return Err(CodecError::DecimalSyntax {
                input: format!("{int_digits:?}.{frac_digits:?}"),
                reason: "digit greater than 9",
            });
        }
        Ok(Decimal::from_checked_parts(
            negative,
            int_digits,
            frac_digits,
        ))
    }

    /// [`Decimal::from_parts`] for digits known to be 0..=9.
    fn from_checked_parts(negative: bool, int_digits: &[u8], frac_digits: &[u8]) -> Decimal {
        let first = int_digits
            .iter()
            .position(|d| *d != 0)
            .unwrap_or(int_digits.len());
        let int_digits = &int_digits[first..];
        let mut digits = Vec::with_capacity(int_digits.len() + frac_digits.len());
        digits.extend_from_slice(int_digits);
        digits.extend_from_slice(frac_digits);
        let mut d = Decimal {
            negative,
            digits,
            int_len: int_digits.len(),
        };
        if d.is_zero() {
            d.negative = false;
        }
        d
    }

    /// Integer-part digits, without leading zeros.
    fn int_digits(&self) -> &[u8] {
        &self.digits[..self.int_len]
    }

    /// Fraction digits.
    fn frac_digits(&self) -> &[u8] {
        &self.digits[self.int_len..]
    }

    /// Appends the text form (what [`fmt::Display`] writes) to `out`, without allocating
    /// anything else: the form a decimal takes as a SQL parameter.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        out.reserve(self.digits.len() + 3);
        if self.negative {
            out.push(b'-');
        }
        if self.int_len == 0 {
            out.push(b'0');
        }
        out.extend(self.int_digits().iter().map(|d| b'0' + d));
        if self.int_len < self.digits.len() {
            out.push(b'.');
            out.extend(self.frac_digits().iter().map(|d| b'0' + d));
        }
    }

    /// Parses `[+-]digits[.digits]` (at least one digit overall). No exponent, no spaces.
    pub fn parse(input: &str) -> Result<Self> {
        let err = |reason| CodecError::DecimalSyntax {
            input: input.to_string(),
            reason,
        };
        let (negative, body) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let (int_s, frac_s) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int_s.is_empty() && frac_s.is_empty() {
            return Err(err("no digits"));
        }
        let to_digits = |s: &str| -> Result<Vec<u8>> {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_digit() {
                        Ok(b - b'0')
                    } else {
                        Err(err("unexpected character"))
                    }
                })
                .collect()
        };
        let int_digits = to_digits(int_s)?;
        let frac_digits = to_digits(frac_s)?;
        Decimal::from_parts(negative, &int_digits, &frac_digits)
    }

    /// True when the value is below zero (a zero is never negative).
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// True when every digit is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.iter().all(|d| *d == 0)
    }

    /// Number of significant integer digits (0 for values below 1).
    pub fn int_digit_count(&self) -> usize {
        self.int_len
    }

    /// Number of fraction digits (the display scale).
    pub fn frac_digit_count(&self) -> usize {
        self.digits.len() - self.int_len
    }

    /// TiDB's `PrecisionAndFrac`: (significant integer digits + fraction digits, at least 1; fraction
    /// digits). Saturates at 255.
    pub fn precision_and_frac(&self) -> (u8, u8) {
        let frac = self.frac_digit_count();
        let precision = self.digits.len().max(1);
        (
            u8::try_from(precision).unwrap_or(u8::MAX),
            u8::try_from(frac).unwrap_or(u8::MAX),
        )
    }

    /// The same value with exactly `frac` fraction digits: padded with zeros, or rounded half away
    /// from zero (MySQL's rule when storing into a DECIMAL column).
    pub fn round_to_frac(&self, frac: usize) -> Decimal {
        if self.frac_digit_count() <= frac {
            let mut out = self.clone();
            out.digits.resize(self.int_len + frac, 0);
            return out;
        }
        let round_up = self.frac_digits()[frac] >= 5;
        let mut digits: Vec<u8> = self.digits[..self.int_len + frac].to_vec();
        let mut int_len = self.int_len;
        if round_up {
            let mut i = digits.len();
            loop {
                if i == 0 {
                    digits.insert(0, 1);
                    int_len += 1;
                    break;
                }
                i -= 1;
                if digits[i] == 9 {
                    digits[i] = 0;
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
        let (i, f) = digits.split_at(int_len);
        Decimal::from_checked_parts(self.negative, i, f)
    }

    /// Size in bytes of the binary form of DECIMAL(precision, frac).
    pub fn bin_size(precision: u8, frac: u8) -> Result<usize> {
        let (p, f) = check_precision(precision, frac, None)?;
        Ok(bin_size_unchecked(p, f))
    }

    /// TiDB's `ToBin(precision, frac)`. Fails when the integer part needs more than
    /// `precision - frac` digits, or when non-zero fraction digits beyond `frac` would be dropped
    /// (round first with [`Decimal::round_to_frac`] if that is intended).
    pub fn to_bin(&self, precision: u8, frac: u8) -> Result<Vec<u8>> {
        let (p, f) = check_precision(precision, frac, Some(self))?;
        let digits_int = p - f;
        let out_of_range = |reason| CodecError::DecimalOutOfRange {
            value: self.to_string(),
            precision,
            frac,
            reason,
        };
        if self.int_len > digits_int {
            return Err(out_of_range("too many integer digits"));
        }
        if self.frac_digits().iter().skip(f).any(|d| *d != 0) {
            return Err(out_of_range("non-zero fraction digits would be truncated"));
        }
        // Integer digits left-padded to digits_int, fraction digits right-padded/cut to f.
        let mut int_part = vec![0u8; digits_int - self.int_len];
        int_part.extend_from_slice(self.int_digits());
        let mut frac_part: Vec<u8> = self.frac_digits().iter().take(f).copied().collect();
        frac_part.resize(f, 0);

        let mut out = Vec::with_capacity(bin_size_unchecked(p, f));
        let leading = digits_int % DIGITS_PER_WORD;
        push_word(&mut out, &int_part[..leading]);
        for word in int_part[leading..].chunks(DIGITS_PER_WORD) {
            push_word(&mut out, word);
        }
        for word in frac_part.chunks(DIGITS_PER_WORD) {
            push_word(&mut out, word);
        }
        if self.negative && !self.is_zero() {
            for b in &mut out {
                *b = !*b;
            }
        }
        if let Some(first) = out.first_mut() {
            *first ^= 0x80;
        }
        Ok(out)
    }

    /// TiDB's `FromBin`: reads DECIMAL(precision, frac) from the start of `buf`, returning the value
    /// (with exactly `frac` fraction digits) and the number of bytes read.
    pub fn from_bin(buf: &[u8], precision: u8, frac: u8) -> Result<(Decimal, usize)> {
        from_bin_at(buf, precision, frac, 0)
    }
}

fn bin_size_unchecked(p: usize, f: usize) -> usize {
    let digits_int = p - f;
    (digits_int / DIGITS_PER_WORD) * WORD_SIZE
        + DIG2BYTES[digits_int % DIGITS_PER_WORD]
        + (f / DIGITS_PER_WORD) * WORD_SIZE
        + DIG2BYTES[f % DIGITS_PER_WORD]
}

fn check_precision(precision: u8, frac: u8, value: Option<&Decimal>) -> Result<(usize, usize)> {
    let reason = if precision == 0 || precision > MAX_PRECISION {
        Some("precision must be 1..=65")
    } else if frac > MAX_FRAC {
        Some("frac must be 0..=30")
    } else if frac > precision {
        Some("frac must not exceed precision")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CodecError::DecimalOutOfRange {
            value: value.map(|v| v.to_string()).unwrap_or_default(),
            precision,
            frac,
            reason,
        }),
        None => Ok((usize::from(precision), usize::from(frac))),
    }
}

/// Appends up to 9 digits as one big-endian word of `DIG2BYTES[len]` bytes (4 for a full word).
fn push_word(out: &mut Vec<u8>, digits: &[u8]) {
    let value = digits.iter().fold(0u32, |acc, d| acc * 10 + u32::from(*d));
    let size = DIG2BYTES[digits.len()];
    let be = value.to_be_bytes();
    out.extend_from_slice(&be[4 - size..]);
}

fn from_bin_at(buf: &[u8], precision: u8, frac: u8, base: usize) -> Result<(Decimal, usize)> {
    let (p, f) =
        check_precision(precision, frac, None).map_err(|e| CodecError::InvalidDecimal {
            offset: base,
            reason: e.to_string(),
        })?;
    let size = bin_size_unchecked(p, f);
    let mut reader = Reader::with_base(buf, base);
    let raw = reader.take(size, "binary decimal")?;
    let negative = raw.first().is_some_and(|b| b & 0x80 == 0);
    // The stored bytes with the sign bit flipped back and, for a negative value, inverted.
    let flip = if negative { 0xFF } else { 0 };
    let byte = |i: usize| raw[i] ^ flip ^ if i == 0 { 0x80 } else { 0 };
    // At most MAX_PRECISION digits: decoded on the stack, copied once into the value.
    let mut digits = [0u8; MAX_PRECISION as usize];
    let mut len = 0usize;
    let mut pos = 0usize;
    let mut read_word = |ndigits: usize| -> Result<()> {
        let nbytes = DIG2BYTES[ndigits];
        let value = (pos..pos + nbytes).fold(0u32, |value, i| (value << 8) | u32::from(byte(i)));
        if value >= POW10[ndigits] {
            return Err(CodecError::InvalidDecimal {
                offset: base + pos,
                reason: format!("word {value} has more than {ndigits} digits"),
            });
        }
        pos += nbytes;
        for i in (0..ndigits).rev() {
            // value < 10^ndigits, so every extracted digit is 0..=9.
            digits[len] = ((value / POW10[i]) % 10) as u8;
            len += 1;
        }
        Ok(())
    };
    let digits_int = p - f;
    read_word(digits_int % DIGITS_PER_WORD)?;
    for _ in 0..digits_int / DIGITS_PER_WORD {
        read_word(DIGITS_PER_WORD)?;
    }
    for _ in 0..f / DIGITS_PER_WORD {
        read_word(DIGITS_PER_WORD)?;
    }
    read_word(f % DIGITS_PER_WORD)?;
    let (int_digits, frac_digits) = digits[..len].split_at(digits_int);
    Ok((
        Decimal::from_checked_parts(negative, int_digits, frac_digits),
        size,
    ))
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::new();
        self.write_text(&mut text);
        // Only ASCII digits, '-' and '.' were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Decimal {
    type Err = CodecError;
    fn from_str(s: &str) -> Result<Self> {
        Decimal::parse(s)
    }
}

/// Datum-codec payload of a decimal: `precision byte, frac byte, ToBin(precision, frac)`.
/// A `precision` of 0 means "use the value's own" (TiDB's `EncodeDecimal` rule).
pub fn encode_decimal(buf: &mut Vec<u8>, value: &Decimal, precision: u8, frac: u8) -> Result<()> {
    let (precision, frac) = if precision == 0 {
        value.precision_and_frac()
    } else {
        (precision, frac)
    };
    let bin = value.to_bin(precision, frac)?;
    buf.push(precision);
    buf.push(frac);
    buf.extend_from_slice(&bin);
    Ok(())
}

/// Reads a datum-codec decimal payload: returns (value, precision, frac, bytes read).
pub fn decode_decimal(buf: &[u8]) -> Result<(Decimal, u8, u8, usize)> {
    decode_decimal_at(buf, 0)
}

pub(crate) fn decode_decimal_at(buf: &[u8], base: usize) -> Result<(Decimal, u8, u8, usize)> {
    let mut reader = Reader::with_base(buf, base);
    let [precision, frac] = reader.take_array::<2>("decimal precision/frac header")?;
    let (d, n) = from_bin_at(reader.remaining(), precision, frac, base + 2)?;
    Ok((d, precision, frac, n + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn mysql_manual_vectors() {
        // MySQL manual, "Precision Math / DECIMAL data type characteristics".
        let pos = dec("1234567890.1234").to_bin(14, 4).unwrap();
        assert_eq!(pos, [0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2]);
        let neg = dec("-1234567890.1234").to_bin(14, 4).unwrap();
        assert_eq!(neg, [0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D]);
        let (back, n) = Decimal::from_bin(&neg, 14, 4).unwrap();
        assert_eq!((back.to_string().as_str(), n), ("-1234567890.1234", 7));
    }

    #[test]
    fn small_vectors() {
        // DECIMAL(5,2): 3 int digits -> 2 bytes, 2 frac digits -> 1 byte.
        // 1.5 -> int 001 = 0x0001, frac 50 = 0x32, sign flip -> 80 01 32.
        assert_eq!(dec("1.5").to_bin(5, 2).unwrap(), [0x80, 0x01, 0x32]);
        assert_eq!(dec("0").to_bin(5, 2).unwrap(), [0x80, 0x00, 0x00]);
        assert_eq!(dec("-0.00").to_bin(5, 2).unwrap(), [0x80, 0x00, 0x00]);
        // -1.5: invert 80 01 32 -> 7F FE CD after the flip of the first bit: ~(00 01 32) = FF FE CD, ^0x80 = 7F.
        assert_eq!(dec("-1.5").to_bin(5, 2).unwrap(), [0x7F, 0xFE, 0xCD]);
        let mut buf = Vec::new();
        encode_decimal(&mut buf, &dec("-1234.567"), 10, 4).unwrap();
        let (d, p, f, n) = decode_decimal(&buf).unwrap();
        assert_eq!(
            (d.to_string().as_str(), p, f, n),
            ("-1234.5670", 10, 4, buf.len())
        );
    }

    #[test]
    fn text_forms_agree_at_any_length() {
        let long = format!("-{}.{}", "9".repeat(70), "0123456789".repeat(7));
        for text in [
            "0",
            "0.00",
            "-0.5",
            "12.0",
            "1234567890.1234",
            long.as_str(),
        ] {
            let value = dec(text);
            let mut written = b"x=".to_vec();
            value.write_text(&mut written);
            assert_eq!(written, format!("x={value}").into_bytes());
        }
        assert_eq!(dec(&long).to_string(), long);
        assert_eq!(dec("-0.00").to_string(), "0.00");
        assert_eq!(dec("007.10").to_string(), "7.10");
    }

    #[test]
    fn errors() {
        assert!(matches!(
            dec("1234").to_bin(5, 2),
            Err(CodecError::DecimalOutOfRange { .. })
        ));
        assert!(dec("1.234").to_bin(5, 2).is_err());
        assert!(dec("1.230").to_bin(5, 2).is_ok());
        assert!(dec("1").to_bin(66, 0).is_err());
        assert!(Decimal::parse("1.2.3").is_err());
        assert!(Decimal::parse("").is_err());
        assert!(Decimal::parse("-").is_err());
        // Word 0xFFFF in a 2-byte/3-digit slot is > 999.
        assert!(matches!(
            Decimal::from_bin(&[0xFF, 0xFF, 0x00], 5, 2),
            Err(CodecError::InvalidDecimal { .. })
        ));
        assert!(matches!(
            decode_decimal(&[5, 2, 0x80]),
            Err(CodecError::UnexpectedEof { offset: 2, .. })
        ));
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(dec("007.50").to_string(), "7.50");
        assert_eq!(dec(".5").to_string(), "0.5");
        assert_eq!(dec("-0.0").to_string(), "0.0");
        assert_eq!(dec("+12").to_string(), "12");
        assert_eq!(dec("12.").to_string(), "12");
        assert_eq!(dec("0.5").precision_and_frac(), (1, 1));
        assert_eq!(dec("123.45").precision_and_frac(), (5, 2));
    }

    #[test]
    fn rounding() {
        assert_eq!(dec("1.235").round_to_frac(2).to_string(), "1.24");
        assert_eq!(dec("-1.235").round_to_frac(2).to_string(), "-1.24");
        assert_eq!(dec("9.995").round_to_frac(2).to_string(), "10.00");
        assert_eq!(dec("1.2").round_to_frac(3).to_string(), "1.200");
        assert_eq!(dec("0.4").round_to_frac(0).to_string(), "0");
        assert_eq!(dec("-0.4").round_to_frac(0).to_string(), "0");
    }

    fn digits(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..10, 0..=max)
            .prop_map(|v| v.into_iter().map(|d| char::from(b'0' + d)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn bin_round_trip(
            (precision, frac, int_s, frac_s, neg) in (1u8..=65)
                .prop_flat_map(|p| (Just(p), 0..=p.min(30)))
                .prop_flat_map(|(p, f)| (
                    Just(p), Just(f),
                    digits(usize::from(p - f)),
                    digits(usize::from(f)),
                    any::<bool>(),
                ))
        ) {
            let int_s = if int_s.is_empty() && frac_s.is_empty() { "0".to_string() } else { int_s };
            let text = format!("{}{}.{}", if neg { "-" } else { "" }, int_s, frac_s);
            let value = Decimal::parse(&text).unwrap();
            let bin = value.to_bin(precision, frac).unwrap();
            prop_assert_eq!(bin.len(), Decimal::bin_size(precision, frac).unwrap());
            let (back, n) = Decimal::from_bin(&bin, precision, frac).unwrap();
            prop_assert_eq!(n, bin.len());
            prop_assert_eq!(&back, &value.round_to_frac(usize::from(frac)));
            // The string form is exact: same digits, frac digits padded to `frac`.
            let mut expected_frac = frac_s.clone();
            while expected_frac.len() < usize::from(frac) { expected_frac.push('0'); }
            let int_trim = int_s.trim_start_matches('0');
            let expected = format!(
                "{}{}{}{}",
                if neg && !value.is_zero() { "-" } else { "" },
                if int_trim.is_empty() { "0" } else { int_trim },
                if frac == 0 { "" } else { "." },
                expected_frac
            );
            prop_assert_eq!(back.to_string(), expected);
        }

        #[test]
        fn bin_order_matches_numeric_order(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
            // Scale by 1/100 and encode as DECIMAL(10,2): byte order must follow numeric order.
            let fmt = |v: i64| format!("{}{}.{:02}", if v < 0 { "-" } else { "" }, v.abs() / 100, v.abs() % 100);
            let ea = Decimal::parse(&fmt(a)).unwrap().to_bin(10, 2).unwrap();
            let eb = Decimal::parse(&fmt(b)).unwrap().to_bin(10, 2).unwrap();
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
        }
    }
}
