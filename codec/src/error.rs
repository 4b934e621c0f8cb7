//! The one error type of this crate.
//!
//! Every decoding error names what was being read and the byte offset (relative to the start of
//! the buffer handed to the public decoding function) where it went wrong; flag errors also carry
//! the offending flag byte.

/// Result alias used throughout the crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

/// What went wrong while encoding or decoding TiDB data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended before a complete item could be read.
    #[error(
        "unexpected end of input at offset {offset}: {what} needs {needed} byte(s), {available} available"
    )]
    UnexpectedEof {
        offset: usize,
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// A datum started with a flag byte this codec does not know.
    #[error("unknown datum flag {flag:#04x} at offset {offset}")]
    UnknownFlag { offset: usize, flag: u8 },
    /// A datum had a known flag that is not allowed at this place.
    #[error("unexpected datum flag {flag:#04x} at offset {offset}: {reason}")]
    UnexpectedFlag {
        offset: usize,
        flag: u8,
        reason: &'static str,
    },
    /// A memcomparable byte group carried an impossible marker or non-zero padding.
    #[error("invalid memcomparable bytes group at offset {offset}: {reason}")]
    InvalidBytesGroup { offset: usize, reason: String },
    /// A (u)varint did not fit in 64 bits.
    #[error("{what} overflows 64 bits at offset {offset}")]
    VarintOverflow { offset: usize, what: &'static str },
    /// A length prefix was negative or larger than the input.
    #[error("invalid length {length} for {what} at offset {offset}")]
    InvalidLength {
        offset: usize,
        what: &'static str,
        length: i64,
    },
    /// Binary DECIMAL bytes that cannot be a decimal (bad header, digit word out of range).
    #[error("invalid binary decimal at offset {offset}: {reason}")]
    InvalidDecimal { offset: usize, reason: String },
    /// A decimal string that is not `[+-]digits[.digits]`.
    #[error("invalid decimal literal {input:?}: {reason}")]
    DecimalSyntax { input: String, reason: &'static str },
    /// A decimal that does not fit the requested DECIMAL(precision, frac).
    #[error("decimal {value} does not fit DECIMAL({precision},{frac}): {reason}")]
    DecimalOutOfRange {
        value: String,
        precision: u8,
        frac: u8,
        reason: &'static str,
    },
    /// A date/time literal that cannot be parsed.
    #[error("invalid time literal {input:?}: {reason}")]
    TimeSyntax { input: String, reason: String },
    /// Time fields (or a packed time) outside the representable range.
    #[error("time value out of range: {reason}")]
    TimeOutOfRange { reason: String },
    /// A TIME (duration) literal that cannot be parsed or is out of range.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration { input: String, reason: String },
    /// Binary JSON that cannot be decoded.
    #[error("invalid binary JSON at offset {offset}: {reason}")]
    InvalidJson { offset: usize, reason: String },
    /// JSON text that cannot be parsed.
    #[error("invalid JSON text: {0}")]
    JsonText(String),
    /// A row whose datum pairs do not make sense (odd count, bad column id, unequal update halves).
    #[error("row data is corrupted at offset {offset}: {reason}")]
    CorruptedRow { offset: usize, reason: String },
    /// A datum or literal that cannot be a value of the given column type.
    #[error("cannot convert {what} for column type {tp} ({type_name}): {reason}")]
    ValueConversion {
        what: String,
        tp: u8,
        type_name: &'static str,
        reason: String,
    },
}
