//! Segment files of the value log: `<dir>/value/NNNNNN.vlog`, records back to back, plus a footer
//! once sealed. This module reads them — a sequential scan for recovery, random reads by
//! [`ValuePointer`] for serving — and names them. Appending is the writer's business (`vlog`).

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{IoContext, Result, StorageError};
use super::record::{
    FOOTER_LEN, Footer, HEADER_LEN, RECORD_MAGIC, RecordDefect, RecordHeader, decode_record,
};

/// Where a record lives: segment id and the offset of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValuePointer {
    pub fid: u32,
    pub offset: u64,
}

pub(crate) const SEGMENT_EXTENSION: &str = "vlog";

/// `<dir>/NNNNNN.<extension>`, the id zero-padded to six digits like the original.
pub(crate) fn numbered_path(dir: &Path, fid: u32, extension: &str) -> PathBuf {
    dir.join(format!("{fid:06}.{extension}"))
}

/// Ids of the files named `NNNNNN.<extension>` in `dir`, ascending. Other files are ignored.
pub(crate) fn list_numbered(dir: &Path, extension: &str) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).context("list", dir)? {
        let entry = entry.context("list", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name
            .strip_suffix(extension)
            .and_then(|s| s.strip_suffix('.'))
        else {
            continue;
        };
        if stem.len() >= 6
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = stem.parse::<u32>()
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Reads the footer at the end of a segment of `len` bytes, if it has one.
pub(crate) fn read_footer(file: &File, path: &Path, len: u64) -> Result<Option<Footer>> {
    if len < FOOTER_LEN as u64 {
        return Ok(None);
    }
    let mut bytes = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut bytes, len - FOOTER_LEN as u64)
        .context("read footer of", path)?;
    Ok(Footer::decode(&bytes))
}

/// Reads and verifies the payload of the record at `offset`.
pub(crate) fn read_record_at(file: &File, path: &Path, offset: u64) -> Result<Vec<u8>> {
    let corrupt = |defect| StorageError::CorruptRecord {
        path: path.to_path_buf(),
        offset,
        defect,
        detail: None,
    };
    let len = file.metadata().context("stat", path)?.len();
    let available = len.saturating_sub(offset);
    let mut header_bytes = [0u8; HEADER_LEN];
    let header_len = header_bytes.len().min(available as usize);
    file.read_exact_at(&mut header_bytes[..header_len], offset)
        .context("read record header from", path)?;
    let header = RecordHeader::decode(&header_bytes[..header_len]).map_err(corrupt)?;
    let payload_available = available - HEADER_LEN as u64;
    if header.payload_len > payload_available {
        return Err(corrupt(RecordDefect::TruncatedPayload {
            expected: header.payload_len,
            available: payload_available,
        }));
    }
    let mut payload = vec![0u8; header.payload_len as usize];
    file.read_exact_at(&mut payload, offset + HEADER_LEN as u64)
        .context("read record from", path)?;
    header.verify(&payload).map_err(corrupt)?;
    Ok(payload)
}

/// Bytes a [`RecordReader`] reads ahead at a time.
const WINDOW_BYTES: usize = 128 << 10;

/// Reads records by pointer through two read-ahead windows.
///
/// A pull reads commits in commit-ts order and, for each, its prewrite a little earlier in the
/// file: two interleaved, mostly sequential streams. A window each turns the three system calls
/// of [`read_record_at`] per record into one read per 128 KiB. A window may end in a record that
/// was being appended when it was read; such a record fails its check and is read again on its
/// own, as is a record larger than a window, so the result is always what
/// [`read_record_at`] returns.
pub(crate) struct RecordReader {
    windows: Vec<Window>,
    clock: u64,
}

struct Window {
    fid: u32,
    start: u64,
    bytes: Vec<u8>,
    filled: usize,
    used: u64,
}

impl Window {
    /// The bytes from `at` to the end of the window, if it holds `at`.
    fn from(&self, at: ValuePointer) -> Option<&[u8]> {
        let skip = usize::try_from(at.offset.checked_sub(self.start)?).ok()?;
        (at.fid == self.fid && skip < self.filled).then(|| &self.bytes[skip..self.filled])
    }
}

impl RecordReader {
    pub(crate) fn new() -> RecordReader {
        RecordReader {
            windows: Vec::with_capacity(2),
            clock: 0,
        }
    }

    /// Reads and verifies the payload of the record at `at` in `file` (segment `at.fid`).
    pub(crate) fn read(&mut self, file: &File, path: &Path, at: ValuePointer) -> Result<Vec<u8>> {
        self.clock += 1;
        let holding = self.windows.iter().position(|w| w.from(at).is_some());
        if let Some(index) = holding {
            let window = &mut self.windows[index];
            window.used = self.clock;
            if let Some(Ok((payload, _))) = window.from(at).map(decode_record) {
                return Ok(payload.to_vec());
            }
        }
        let window = self.refill(file, path, at, holding)?;
        match window.from(at).map(decode_record) {
            Some(Ok((payload, _))) => Ok(payload.to_vec()),
            _ => read_record_at(file, path, at.offset),
        }
    }

    /// Reads a window starting at `at`: into `holding` (the window that held `at`, but not
    /// all of its record), else into the least recently used one.
    fn refill(
        &mut self,
        file: &File,
        path: &Path,
        at: ValuePointer,
        holding: Option<usize>,
    ) -> Result<&Window> {
        let index = if let Some(index) = holding {
            index
        } else if self.windows.len() < 2 {
            self.windows.push(Window {
                fid: at.fid,
                start: at.offset,
                bytes: vec![0; WINDOW_BYTES],
                filled: 0,
                used: 0,
            });
            self.windows.len() - 1
        } else {
            usize::from(self.windows[1].used < self.windows[0].used)
        };
        let window = &mut self.windows[index];
        window.fid = at.fid;
        window.start = at.offset;
        window.used = self.clock;
        window.filled = 0;
        while window.filled < window.bytes.len() {
            let read = file
                .read_at(
                    &mut window.bytes[window.filled..],
                    at.offset + window.filled as u64,
                )
                .context("read records from", path)?;
            if read == 0 {
                break;
            }
            window.filled += read;
        }
        Ok(&self.windows[index])
    }
}

/// How a sequential scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte up to `len` belonged to a valid record.
    Clean,
    /// No valid record starts at `offset`; everything before it was valid.
    Defect { offset: u64, defect: RecordDefect },
}

/// Visits every valid record of the first `len` bytes of a segment in order, stopping at the first
/// defect. Memory use is one buffer the size of the largest payload.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    len: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<ScanEnd> {
    const READ_BUFFER: usize = 1 << 20;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut payload = Vec::new();
    let mut offset = 0u64;
    while offset < len {
        let remaining = len - offset;
        let mut header_bytes = [0u8; HEADER_LEN];
        let header_len = header_bytes.len().min(remaining as usize);
        reader
            .read_exact(&mut header_bytes[..header_len])
            .context("read", path)?;
        let header = match RecordHeader::decode(&header_bytes[..header_len]) {
            Ok(header) => header,
            Err(defect) => return Ok(ScanEnd::Defect { offset, defect }),
        };
        let payload_available = remaining - HEADER_LEN as u64;
        if header.payload_len > payload_available {
            let defect = RecordDefect::TruncatedPayload {
                expected: header.payload_len,
                available: payload_available,
            };
            return Ok(ScanEnd::Defect { offset, defect });
        }
        payload.resize(header.payload_len as usize, 0);
        reader.read_exact(&mut payload).context("read", path)?;
        if let Err(defect) = header.verify(&payload) {
            return Ok(ScanEnd::Defect { offset, defect });
        }
        visit(offset, &payload)?;
        offset += header.record_len();
    }
    Ok(ScanEnd::Clean)
}

/// Looks for any valid record starting in `from..len`. Used to tell a torn tail (nothing valid
/// after the defect) from corruption in the middle (valid records follow, which must not be cut).
pub(crate) fn find_valid_record(
    file: &File,
    path: &Path,
    from: u64,
    len: u64,
) -> Result<Option<u64>> {
    const WINDOW: usize = 1 << 20;
    let magic = RECORD_MAGIC.to_le_bytes();
    let mut window = vec![0u8; WINDOW];
    let mut start = from;
    while start + HEADER_LEN as u64 <= len {
        let window_len = (WINDOW as u64).min(len - start) as usize;
        let bytes = &mut window[..window_len];
        file.read_exact_at(bytes, start).context("read", path)?;
        for (i, candidate) in bytes.windows(magic.len()).enumerate() {
            if candidate == magic && is_valid_record_at(file, start + i as u64, len) {
                return Ok(Some(start + i as u64));
            }
        }
        // Overlap by the magic's length minus one so a magic straddling windows is seen.
        start += (window_len - (magic.len() - 1)) as u64;
    }
    Ok(None)
}

/// Whether a whole, checksum-valid record starts at `offset` and ends by `len`. Read errors
/// count as "no": this only decides whether valid data follows a defect.
fn is_valid_record_at(file: &File, offset: u64, len: u64) -> bool {
    let mut header_bytes = [0u8; HEADER_LEN];
    if len - offset < HEADER_LEN as u64 || file.read_exact_at(&mut header_bytes, offset).is_err() {
        return false;
    }
    let Ok(header) = RecordHeader::decode(&header_bytes) else {
        return false;
    };
    if header.payload_len > len - offset - HEADER_LEN as u64 {
        return false;
    }
    let mut payload = vec![0u8; header.payload_len as usize];
    file.read_exact_at(&mut payload, offset + HEADER_LEN as u64)
        .is_ok()
        && header.verify(&payload).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::encode_record;
    use std::io::Write;

    fn segment_with(dir: &Path, bytes: &[u8]) -> (File, PathBuf) {
        let path = numbered_path(dir, 0, SEGMENT_EXTENSION);
        File::create(&path).unwrap().write_all(bytes).unwrap();
        (File::open(&path).unwrap(), path)
    }

    #[test]
    fn names_are_six_digit_padded() {
        assert_eq!(
            numbered_path(Path::new("/d"), 7, "vlog"),
            Path::new("/d/000007.vlog")
        );
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "000002.vlog",
            "000010.vlog",
            "x.vlog",
            "000003.idx",
            "12.vlog",
        ] {
            File::create(dir.path().join(name)).unwrap();
        }
        assert_eq!(list_numbered(dir.path(), "vlog").unwrap(), vec![2, 10]);
    }

    #[test]
    fn the_record_reader_reads_what_a_direct_read_reads() {
        let dir = tempfile::tempdir().unwrap();
        // Small records, and one larger than a window.
        let payloads: Vec<Vec<u8>> = (0..600u32)
            .map(|i| {
                let len = if i == 300 {
                    3 * WINDOW_BYTES
                } else {
                    100 + (i as usize * 37) % 900
                };
                vec![(i % 251) as u8; len]
            })
            .collect();
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for payload in &payloads {
            offsets.push(bytes.len() as u64);
            bytes.extend_from_slice(&encode_record(payload));
        }
        let (file, path) = segment_with(dir.path(), &bytes);
        let at = |i: usize| ValuePointer {
            fid: 0,
            offset: offsets[i],
        };
        // Two interleaved streams, as a pull reads commits and their earlier prewrites.
        let mut reader = RecordReader::new();
        for i in 40..600 {
            for j in [i, i - 40] {
                assert_eq!(
                    reader.read(&file, &path, at(j)).unwrap(),
                    payloads[j],
                    "record {j}"
                );
            }
        }
        // A bad pointer is reported as a direct read reports it.
        let bad = ValuePointer {
            fid: 0,
            offset: offsets[1] + 1,
        };
        assert_eq!(
            reader.read(&file, &path, bad).unwrap_err().to_string(),
            read_record_at(&file, &path, bad.offset)
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn a_record_appended_after_its_window_was_read_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let first = encode_record(b"first");
        let second = encode_record(&[5u8; 1000]);
        let mut partial = first.clone();
        partial.extend_from_slice(&second[..300]);
        let (file, path) = segment_with(dir.path(), &partial);
        let mut reader = RecordReader::new();
        let at = |offset: usize| ValuePointer {
            fid: 0,
            offset: offset as u64,
        };
        assert_eq!(reader.read(&file, &path, at(0)).unwrap(), b"first");
        // The rest of the second record lands after the window holding its start was read.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&second[300..])
            .unwrap();
        assert_eq!(
            reader.read(&file, &path, at(first.len())).unwrap(),
            vec![5u8; 1000]
        );
    }

    #[test]
    fn scan_reports_defect_offset_and_finds_later_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode_record(b"first");
        let second_at = bytes.len() as u64;
        bytes.extend_from_slice(&[0u8; 7]);
        let third_at = bytes.len() as u64;
        bytes.extend_from_slice(&encode_record(b"third"));
        let (file, path) = segment_with(dir.path(), &bytes);

        let mut seen = Vec::new();
        let end = scan(&file, &path, bytes.len() as u64, |offset, payload| {
            seen.push((offset, payload.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, b"first".to_vec())]);
        assert!(
            matches!(end, ScanEnd::Defect { offset, defect: RecordDefect::BadMagic { .. } } if offset == second_at)
        );
        assert_eq!(
            find_valid_record(&file, &path, second_at, bytes.len() as u64).unwrap(),
            Some(third_at)
        );
        assert_eq!(read_record_at(&file, &path, third_at).unwrap(), b"third");
        assert!(matches!(
            read_record_at(&file, &path, second_at),
            Err(StorageError::CorruptRecord { offset, .. }) if offset == second_at
        ));
    }
}
