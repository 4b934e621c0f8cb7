//! One record of a binlog file, little-endian, byte for byte the original's framing:
//!
//! ```text
//! magic u32 0x1C1B0504 | payload length u64 | payload | CRC-32C (Castagnoli) of payload u32
//! ```
//!
//! Decoding reports *what* is wrong ([`Defect`]); the caller knows *where* (which file, whether
//! it is the newest, whether valid data follows) and decides between a torn tail and corruption.
//! Whole records are only checked in bounded chunks here, so a bogus length never becomes a huge
//! allocation.

use std::fmt;
use std::io::{self, Read};

/// First four bytes of every record.
pub const MAGIC: u32 = 0x1C1B_0504;
/// magic (4) + payload length (8).
pub const HEADER_LEN: u64 = 12;
/// The CRC after the payload.
pub const TRAILER_LEN: u64 = 4;
/// Bytes a record adds to its payload.
pub const OVERHEAD: u64 = HEADER_LEN + TRAILER_LEN;

/// The header bytes of a record carrying `payload_len` bytes.
pub fn header(payload_len: u64) -> [u8; HEADER_LEN as usize] {
    let mut out = [0u8; HEADER_LEN as usize];
    out[..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..].copy_from_slice(&payload_len.to_le_bytes());
    out
}

/// The trailer bytes of a record carrying `payload`.
pub fn trailer(payload: &[u8]) -> [u8; TRAILER_LEN as usize] {
    crc32c::crc32c(payload).to_le_bytes()
}

/// What is wrong with the bytes where a record was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Fewer than [`HEADER_LEN`] bytes remain.
    TruncatedHeader {
        /// Bytes left.
        available: u64,
    },
    /// The first four bytes are not [`MAGIC`].
    BadMagic {
        /// What was found instead.
        found: u32,
    },
    /// The header announces more payload (plus CRC) than remains.
    TruncatedPayload {
        /// Announced payload length.
        expected: u64,
        /// Bytes left after the header.
        available: u64,
    },
    /// The payload's CRC-32C does not match the stored one.
    ChecksumMismatch {
        /// Stored.
        expected: u32,
        /// Computed.
        actual: u32,
    },
}

impl Defect {
    /// Whether the record runs past the end of the data: what a write cut short leaves.
    pub fn is_truncation(&self) -> bool {
        matches!(
            self,
            Defect::TruncatedHeader { .. } | Defect::TruncatedPayload { .. }
        )
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::TruncatedHeader { available } => {
                write!(f, "truncated header ({available} of {HEADER_LEN} bytes)")
            }
            Defect::BadMagic { found } => {
                write!(f, "bad magic {found:#010x} (expected {MAGIC:#010x})")
            }
            Defect::TruncatedPayload {
                expected,
                available,
            } => write!(
                f,
                "truncated record ({available} bytes left for a {expected}-byte payload and its CRC)"
            ),
            Defect::ChecksumMismatch { expected, actual } => write!(
                f,
                "CRC mismatch (stored {expected:#010x}, computed {actual:#010x})"
            ),
        }
    }
}

/// What [`read_record`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// No bytes left: a clean end at a record boundary.
    End,
    /// A whole, valid record.
    Record(T),
    /// Not a valid record.
    Defect(Defect),
}

/// Reads the record at the reader's position, `remaining` bytes being left in the file, and
/// hands its payload, in chunks of at most `chunk` bytes, to `sink` (which may collect or just
/// checksum them). Returns the record's total length on success.
fn read_with<R: Read>(
    reader: &mut R,
    remaining: u64,
    chunk: usize,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<Next<u64>> {
    if remaining == 0 {
        return Ok(Next::End);
    }
    if remaining < HEADER_LEN {
        return Ok(Next::Defect(Defect::TruncatedHeader {
            available: remaining,
        }));
    }
    let mut head = [0u8; HEADER_LEN as usize];
    reader.read_exact(&mut head)?;
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if magic != MAGIC {
        return Ok(Next::Defect(Defect::BadMagic { found: magic }));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&head[4..]);
    let payload_len = u64::from_le_bytes(len_bytes);
    let available = remaining - HEADER_LEN;
    if payload_len
        .checked_add(TRAILER_LEN)
        .is_none_or(|needed| needed > available)
    {
        return Ok(Next::Defect(Defect::TruncatedPayload {
            expected: payload_len,
            available,
        }));
    }
    let mut crc = 0u32;
    let mut buffer = vec![0u8; chunk.min(payload_len as usize).max(1)];
    let mut left = payload_len;
    while left > 0 {
        let n = buffer.len().min(left as usize);
        reader.read_exact(&mut buffer[..n])?;
        crc = crc32c::crc32c_append(crc, &buffer[..n]);
        sink(&buffer[..n]);
        left -= n as u64;
    }
    let mut stored = [0u8; TRAILER_LEN as usize];
    reader.read_exact(&mut stored)?;
    let stored = u32::from_le_bytes(stored);
    if stored != crc {
        return Ok(Next::Defect(Defect::ChecksumMismatch {
            expected: stored,
            actual: crc,
        }));
    }
    Ok(Next::Record(payload_len + OVERHEAD))
}

/// Reads the whole record at the reader's position into memory.
pub fn read_record<R: Read>(reader: &mut R, remaining: u64) -> io::Result<Next<Vec<u8>>> {
    let mut payload = Vec::new();
    Ok(
        match read_with(reader, remaining, 1 << 20, |bytes| {
            payload.extend_from_slice(bytes)
        })? {
            Next::End => Next::End,
            Next::Defect(defect) => Next::Defect(defect),
            Next::Record(_) => Next::Record(payload),
        },
    )
}

/// Checks the record at the reader's position without keeping its payload; returns its total
/// length. Memory stays at one 64 KiB chunk whatever the record's size.
pub fn check_record<R: Read>(reader: &mut R, remaining: u64) -> io::Result<Next<u64>> {
    read_with(reader, remaining, 64 << 10, |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(payload: &[u8]) -> Vec<u8> {
        let mut out = header(payload.len() as u64).to_vec();
        out.extend_from_slice(payload);
        out.extend_from_slice(&trailer(payload));
        out
    }

    fn read_all(bytes: &[u8]) -> io::Result<Next<Vec<u8>>> {
        read_record(&mut &bytes[..], bytes.len() as u64)
    }

    #[test]
    fn layout_is_magic_length_payload_crc() {
        let bytes = encode(b"abc");
        assert_eq!(bytes.len() as u64, 3 + OVERHEAD);
        assert_eq!(&bytes[..4], &[0x04, 0x05, 0x1B, 0x1C]);
        assert_eq!(&bytes[4..12], &3u64.to_le_bytes());
        assert_eq!(&bytes[12..15], b"abc");
        // CRC-32C("abc") is a published check value.
        assert_eq!(&bytes[15..], &0x364B_3FB7u32.to_le_bytes());
        assert_eq!(MAGIC, 471_532_804);
    }

    #[test]
    fn round_trips_small_empty_and_multi_chunk_payloads() {
        for payload in [vec![], b"x".to_vec(), vec![7u8; 3 << 20]] {
            let bytes = encode(&payload);
            assert_eq!(read_all(&bytes).unwrap(), Next::Record(payload.clone()));
            assert_eq!(
                check_record(&mut &bytes[..], bytes.len() as u64).unwrap(),
                Next::Record(bytes.len() as u64)
            );
        }
        assert_eq!(read_all(&[]).unwrap(), Next::End);
    }

    #[test]
    fn every_cut_is_a_truncation() {
        let bytes = encode(b"some payload");
        for cut in 1..bytes.len() {
            match read_all(&bytes[..cut]).unwrap() {
                Next::Defect(defect) => assert!(defect.is_truncation(), "cut {cut}: {defect}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn flipped_bits_are_caught() {
        let mut bytes = encode(b"payload");
        bytes[13] ^= 1;
        assert!(matches!(
            read_all(&bytes).unwrap(),
            Next::Defect(Defect::ChecksumMismatch { .. })
        ));
        let mut bytes = encode(b"payload");
        bytes[0] = 0;
        assert_eq!(
            read_all(&bytes).unwrap(),
            Next::Defect(Defect::BadMagic { found: 0x1C1B_0500 })
        );
    }

    #[test]
    fn an_absurd_length_is_a_truncation_not_an_allocation() {
        let mut bytes = header(u64::MAX).to_vec();
        bytes.extend_from_slice(&[0; 8]);
        assert!(matches!(
            read_all(&bytes).unwrap(),
            Next::Defect(Defect::TruncatedPayload { .. })
        ));
    }
}
