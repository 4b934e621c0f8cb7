//! The value-log record codec: how one binlog is framed on disk, and the footer that seals a segment.
//!
//! ```text
//! record  = magic u32 LE 0x823a56e8 | payload length u64 LE | CRC-32C(payload) u32 LE | payload
//! footer  = max ts i64 LE | magic u32 LE 0x123ab922          (only at the end of a sealed segment)
//! ```
//!
//! This is the original pump's vlog framing, byte for byte. This module only encodes and decodes
//! bytes; it knows nothing of files, so the decoder reports *what* is wrong ([`RecordDefect`]) and
//! the caller, which knows *where* (file, offset, end of file or not), decides whether that is a
//! torn tail to truncate or corruption to report.

use std::fmt;

/// First four bytes of every record.
pub const RECORD_MAGIC: u32 = 0x823a_56e8;
/// Last four bytes of a sealed segment.
pub const FOOTER_MAGIC: u32 = 0x123a_b922;
/// magic (4) + payload length (8) + CRC-32C (4).
pub const HEADER_LEN: usize = 16;
/// max ts (8) + magic (4).
pub const FOOTER_LEN: usize = 12;

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub payload_len: u64,
    pub checksum: u32,
}

impl RecordHeader {
    /// The header of a record carrying `payload`.
    pub fn for_payload(payload: &[u8]) -> Self {
        RecordHeader {
            payload_len: payload.len() as u64,
            checksum: crc32c::crc32c(payload),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        out[4..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.checksum.to_le_bytes());
        out
    }

    /// Decodes a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordDefect> {
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(RecordDefect::TruncatedHeader {
                available: bytes.len(),
            });
        };
        let magic = read_u32(&header[0..4]);
        if magic != RECORD_MAGIC {
            return Err(RecordDefect::BadMagic { found: magic });
        }
        Ok(RecordHeader {
            payload_len: read_u64(&header[4..12]),
            checksum: read_u32(&header[12..16]),
        })
    }

    /// Size of the whole record on disk.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + self.payload_len
    }

    /// Checks `payload` (exactly `payload_len` bytes) against the header's checksum.
    pub fn verify(&self, payload: &[u8]) -> Result<(), RecordDefect> {
        let actual = crc32c::crc32c(payload);
        if actual == self.checksum {
            Ok(())
        } else {
            Err(RecordDefect::ChecksumMismatch {
                expected: self.checksum,
                actual,
            })
        }
    }
}

/// Encodes a whole record into a fresh buffer (header then payload). The write path avoids this
/// copy for large payloads by writing header and payload as separate slices; this is for tests
/// and small records.
pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&RecordHeader::for_payload(payload).encode());
    out.extend_from_slice(payload);
    out
}

/// Decodes the record at the start of `bytes`, returning its payload and the record's total
/// length.
pub fn decode_record(bytes: &[u8]) -> Result<(&[u8], usize), RecordDefect> {
    let header = RecordHeader::decode(bytes)?;
    let available = bytes.len() - HEADER_LEN;
    let payload_len = usize::try_from(header.payload_len)
        .ok()
        .filter(|len| *len <= available)
        .ok_or(RecordDefect::TruncatedPayload {
            expected: header.payload_len,
            available: available as u64,
        })?;
    let payload = &bytes[HEADER_LEN..HEADER_LEN + payload_len];
    header.verify(payload)?;
    Ok((payload, HEADER_LEN + payload_len))
}

/// What is wrong with the bytes where a record was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordDefect {
    /// Fewer than [`HEADER_LEN`] bytes remain.
    TruncatedHeader { available: usize },
    /// The first four bytes are not [`RECORD_MAGIC`].
    BadMagic { found: u32 },
    /// The header announces more payload than remains.
    TruncatedPayload { expected: u64, available: u64 },
    /// The payload is complete but its CRC-32C does not match the header.
    ChecksumMismatch { expected: u32, actual: u32 },
}

impl RecordDefect {
    /// Whether the record simply runs past the end of the data: the signature of a write that was
    /// cut short.
    pub fn is_truncation(&self) -> bool {
        matches!(
            self,
            RecordDefect::TruncatedHeader { .. } | RecordDefect::TruncatedPayload { .. }
        )
    }
}

impl fmt::Display for RecordDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordDefect::TruncatedHeader { available } => {
                write!(f, "truncated header ({available} of {HEADER_LEN} bytes)")
            }
            RecordDefect::BadMagic { found } => {
                write!(
                    f,
                    "bad record magic {found:#010x} (want {RECORD_MAGIC:#010x})"
                )
            }
            RecordDefect::TruncatedPayload {
                expected,
                available,
            } => write!(
                f,
                "truncated payload ({available} of {expected} announced bytes)"
            ),
            RecordDefect::ChecksumMismatch { expected, actual } => write!(
                f,
                "CRC-32C mismatch (header says {expected:#010x}, payload has {actual:#010x})"
            ),
        }
    }
}

/// The footer written when a segment is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Largest start or commit ts of any record in the segment.
    pub max_ts: i64,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        out[0..8].copy_from_slice(&self.max_ts.to_le_bytes());
        out[8..12].copy_from_slice(&FOOTER_MAGIC.to_le_bytes());
        out
    }

    /// Decodes the last [`FOOTER_LEN`] bytes of a segment; `None` if they are not a footer.
    pub fn decode(bytes: &[u8; FOOTER_LEN]) -> Option<Self> {
        (read_u32(&bytes[8..12]) == FOOTER_MAGIC).then(|| Footer {
            max_ts: read_u64(&bytes[0..8]) as i64,
        })
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    u32::from_le_bytes(buf)
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_layout_is_the_original_one() {
        let record = encode_record(b"abc");
        assert_eq!(&record[0..4], &[0xe8, 0x56, 0x3a, 0x82]);
        assert_eq!(&record[4..12], &3u64.to_le_bytes());
        assert_eq!(&record[12..16], &crc32c::crc32c(b"abc").to_le_bytes());
        assert_eq!(&record[16..], b"abc");
        // CRC-32C check value of "123456789" proves the Castagnoli polynomial.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn footer_layout_and_round_trip() {
        let footer = Footer { max_ts: 42 };
        let bytes = footer.encode();
        assert_eq!(&bytes[8..12], &[0x22, 0xb9, 0x3a, 0x12]);
        assert_eq!(Footer::decode(&bytes), Some(footer));
        assert_eq!(Footer::decode(&[0; FOOTER_LEN]), None);
    }

    #[test]
    fn every_truncation_is_reported_as_truncation() {
        let record = encode_record(b"some payload");
        for cut in 0..record.len() {
            let defect = decode_record(&record[..cut]).unwrap_err();
            assert!(defect.is_truncation(), "cut at {cut}: {defect}");
        }
        assert_eq!(decode_record(&record).unwrap().1, record.len());
    }

    #[test]
    fn flipped_payload_byte_is_a_checksum_mismatch() {
        let mut record = encode_record(b"some payload");
        record[HEADER_LEN + 3] ^= 0x40;
        assert!(matches!(
            decode_record(&record),
            Err(RecordDefect::ChecksumMismatch { .. })
        ));
        record[0] ^= 1;
        assert!(matches!(
            decode_record(&record),
            Err(RecordDefect::BadMagic { .. })
        ));
    }

    #[test]
    fn absurd_length_is_truncated_payload_not_an_allocation() {
        let mut header = RecordHeader::for_payload(b"x").encode();
        header[4..12].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_record(&header),
            Err(RecordDefect::TruncatedPayload { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(payload in proptest::collection::vec(any::<u8>(), 0..512), trailing in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut bytes = encode_record(&payload);
            let len = bytes.len();
            bytes.extend_from_slice(&trailing);
            let (decoded, used) = decode_record(&bytes).unwrap();
            prop_assert_eq!(decoded, &payload[..]);
            prop_assert_eq!(used, len);
        }
    }
}
