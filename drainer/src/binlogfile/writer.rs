//! Appending to the binlog directory: open (lock, check the names, recover the newest file's
//! tail), append, sync, rotate, and retention.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use binlog_cluster::dir_lock::DirLock;
use tracing::{info, warn};

use super::name::{self, BinlogFile};
use super::record::{self, MAGIC, Next, OVERHEAD};
use super::{BinlogFileError, Position};

/// A new file is started once the current one reaches this size (the original's 512 MiB).
pub const DEFAULT_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;

/// Writes are gathered up to this many bytes before they reach the file (bounded memory).
const WRITE_BUFFER: usize = 256 * 1024;

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BinlogFileError {
    let path = path.to_owned();
    move |source| BinlogFileError::Io {
        action,
        path,
        source,
    }
}

/// The writer of a binlog directory; holds its `.lock` while it lives.
#[derive(Debug)]
pub struct BinlogWriter {
    dir: PathBuf,
    _lock: DirLock,
    out: BufWriter<File>,
    path: PathBuf,
    index: u64,
    offset: u64,
    segment_size: u64,
    broken: bool,
}

impl BinlogWriter {
    /// Opens `dir` (created 0700 if missing) for appending, with 512 MiB files.
    pub fn open(dir: &Path) -> Result<BinlogWriter, BinlogFileError> {
        BinlogWriter::open_with_segment_size(dir, DEFAULT_SEGMENT_SIZE)
    }

    /// Opens `dir` for appending, starting a new file whenever the current one reaches
    /// `segment_size` bytes. Fails if another process holds the directory, if the file names
    /// are not contiguous, or if the newest file is corrupt other than at its tail. The newest
    /// file is read once (checksums included) to find its last whole record.
    pub fn open_with_segment_size(
        dir: &Path,
        segment_size: u64,
    ) -> Result<BinlogWriter, BinlogFileError> {
        let lock = DirLock::acquire(dir)?;
        let files = name::list(dir)?;
        let (file, path, index, offset) = match files.last() {
            None => {
                let (file, path) = create_file(dir, 0)?;
                (file, path, 0, 0)
            }
            Some(newest) => {
                let valid = recover_tail(newest)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&newest.path)
                    .map_err(io_error("open", &newest.path))?;
                file.seek(SeekFrom::Start(valid))
                    .map_err(io_error("seek in", &newest.path))?;
                (file, newest.path.clone(), newest.index, valid)
            }
        };
        info!(path = %path.display(), offset, "binlog file opened for appending");
        Ok(BinlogWriter {
            dir: dir.to_owned(),
            _lock: lock,
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            path,
            index,
            offset,
            segment_size: segment_size.max(1),
            broken: false,
        })
    }

    /// The directory written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the next record will start.
    pub fn position(&self) -> Position {
        Position {
            index: self.index,
            offset: self.offset,
        }
    }

    fn check_usable(&self) -> Result<(), BinlogFileError> {
        if self.broken {
            return Err(BinlogFileError::Broken(self.path.clone()));
        }
        Ok(())
    }

    /// Appends one record and returns where it starts; starts a new file afterwards if this one
    /// reached the segment size. Durable only after [`BinlogWriter::sync`].
    pub fn append(&mut self, payload: &[u8]) -> Result<Position, BinlogFileError> {
        self.check_usable()?;
        let at = self.position();
        let written = self
            .out
            .write_all(&record::header(payload.len() as u64))
            .and_then(|()| self.out.write_all(payload))
            .and_then(|()| self.out.write_all(&record::trailer(payload)));
        if let Err(source) = written {
            self.broken = true;
            return Err(io_error("write", &self.path)(source));
        }
        self.offset += payload.len() as u64 + OVERHEAD;
        if self.offset >= self.segment_size {
            self.rotate()?;
        }
        Ok(at)
    }

    /// Whether appending a payload of `len` bytes goes to the disk: the write buffer cannot
    /// take the record, or the record completes the file, which is then synced. Otherwise the
    /// append only copies into memory, which needs no blocking-safe context.
    pub fn append_reaches_disk(&self, len: usize) -> bool {
        let record = len as u64 + OVERHEAD;
        let buffered = (self.out.buffer().len() as u64).saturating_add(record);
        self.offset.saturating_add(record) >= self.segment_size
            || buffered > self.out.capacity() as u64
    }

    fn flush_and_sync(&mut self) -> Result<(), BinlogFileError> {
        self.check_usable()?;
        let result = self
            .out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data());
        if let Err(source) = result {
            self.broken = true;
            return Err(io_error("sync", &self.path)(source));
        }
        Ok(())
    }

    /// Makes every appended record durable (fdatasync of the current file; earlier files were
    /// synced when they were completed).
    pub fn sync(&mut self) -> Result<(), BinlogFileError> {
        self.flush_and_sync()
    }

    fn rotate(&mut self) -> Result<(), BinlogFileError> {
        self.flush_and_sync()?;
        let (file, path) = create_file(&self.dir, self.index + 1).inspect_err(|_| {
            self.broken = true;
        })?;
        info!(path = %path.display(), "started a new binlog file");
        self.out = BufWriter::with_capacity(WRITE_BUFFER, file);
        self.path = path;
        self.index += 1;
        self.offset = 0;
        Ok(())
    }

    /// Removes the oldest files last modified more than `retention` before `now`, stopping at
    /// the first younger one and never touching the file being written. Returns what was removed.
    pub fn remove_expired(
        &mut self,
        retention: Duration,
        now: SystemTime,
    ) -> Result<Vec<PathBuf>, BinlogFileError> {
        let mut removed = Vec::new();
        for file in name::list(&self.dir)? {
            if file.index >= self.index {
                break;
            }
            let modified = std::fs::metadata(&file.path)
                .and_then(|meta| meta.modified())
                .map_err(io_error("read the modification time of", &file.path))?;
            let age = now.duration_since(modified).unwrap_or_default();
            if age <= retention {
                break;
            }
            std::fs::remove_file(&file.path).map_err(io_error("remove", &file.path))?;
            info!(path = %file.path.display(), age_secs = age.as_secs(), "removed an expired binlog file");
            removed.push(file.path);
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

fn sync_dir(dir: &Path) -> Result<(), BinlogFileError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("sync directory", dir))
}

/// Creates the file with `index`, named after the current local time, and makes its directory
/// entry durable.
fn create_file(dir: &Path, index: u64) -> Result<(File, PathBuf), BinlogFileError> {
    let path = dir.join(name::file_name(index, &chrono::Local::now()));
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error("create", &path))?
    };
    sync_dir(dir)?;
    Ok((file, path))
}

/// Reads a file at explicit offsets, so one open file serves checks at many positions.
struct ReadAt<'a> {
    file: &'a File,
    position: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

/// The length of the valid data of the newest file: its whole, checksum-valid records. A defect
/// with nothing valid after it is a torn tail and is cut off (the file is truncated and synced);
/// a defect followed by a valid record is corruption.
fn recover_tail(newest: &BinlogFile) -> Result<u64, BinlogFileError> {
    let path = &newest.path;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error("open", path))?;
    let len = file
        .metadata()
        .map_err(io_error("read the size of", path))?
        .len();
    let mut reader = BufReader::with_capacity(WRITE_BUFFER, &file);
    let mut offset = 0;
    let defect = loop {
        match record::check_record(&mut reader, len - offset).map_err(io_error("read", path))? {
            Next::End => return Ok(len),
            Next::Record(record_len) => offset += record_len,
            Next::Defect(defect) => break defect,
        }
    };
    if let Some(valid) =
        find_valid_record(&file, offset + 1, len).map_err(io_error("read", path))?
    {
        return Err(BinlogFileError::Corrupt {
            path: path.clone(),
            offset,
            defect,
            detail: format!("; not a torn tail: a valid record follows at offset {valid}"),
        });
    }
    warn!(
        path = %path.display(),
        offset,
        dropped_bytes = len - offset,
        %defect,
        "truncating the torn tail of the binlog file"
    );
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(io_error("truncate the torn tail of", path))?;
    Ok(offset)
}

/// The first offset in `from..len` where a whole, valid record starts, if any.
fn find_valid_record(file: &File, from: u64, len: u64) -> io::Result<Option<u64>> {
    const WINDOW: usize = 1 << 20;
    let magic = MAGIC.to_le_bytes();
    let mut window = vec![0u8; WINDOW];
    let mut start = from;
    while start + record::HEADER_LEN <= len {
        let window_len = (WINDOW as u64).min(len - start) as usize;
        let bytes = &mut window[..window_len];
        file.read_exact_at(bytes, start)?;
        for (i, candidate) in bytes.windows(magic.len()).enumerate() {
            let at = start + i as u64;
            if candidate == magic {
                let mut reader = ReadAt { file, position: at };
                if matches!(
                    record::check_record(&mut reader, len - at)?,
                    Next::Record(_)
                ) {
                    return Ok(Some(at));
                }
            }
        }
        if window_len < magic.len() {
            break;
        }
        // Overlap by the magic's length minus one so a magic straddling windows is seen.
        start += (window_len - (magic.len() - 1)) as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlogfile::BinlogReader;
    use crate::binlogfile::reader::tests::binlog;

    fn files(dir: &Path) -> Vec<BinlogFile> {
        name::list(dir).unwrap()
    }

    fn read_all(dir: &Path) -> Vec<i64> {
        BinlogReader::open(dir, 0, None)
            .unwrap()
            .map(|record| record.unwrap().commit_ts)
            .collect()
    }

    #[test]
    fn a_new_directory_gets_file_zero_and_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("pb");
        let writer = BinlogWriter::open(&data).unwrap();
        let listed = files(&data);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].index, 0);
        assert!(data.join(".lock").exists());
        assert!(matches!(
            BinlogWriter::open(&data),
            Err(BinlogFileError::Locked(_))
        ));
        drop(writer);
        BinlogWriter::open(&data).unwrap();
    }

    #[test]
    fn only_an_append_that_fills_the_buffer_or_completes_the_file_reaches_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let payload = binlog(1);
        let record_len = payload.len() as u64 + OVERHEAD;
        let mut writer = BinlogWriter::open_with_segment_size(dir.path(), 3 * record_len).unwrap();
        for _ in 0..2 {
            assert!(!writer.append_reaches_disk(payload.len()));
            writer.append(&payload).unwrap();
        }
        assert!(
            writer.append_reaches_disk(payload.len()),
            "the third completes the file"
        );
        assert!(
            writer.append_reaches_disk(WRITE_BUFFER),
            "more than the buffer holds"
        );
    }

    #[test]
    fn appends_survive_a_reopen_and_continue_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BinlogWriter::open(dir.path()).unwrap();
        assert_eq!(writer.append(&binlog(1)).unwrap().offset, 0);
        let second = writer.append(&binlog(2)).unwrap();
        assert_eq!(second.offset, binlog(1).len() as u64 + OVERHEAD);
        writer.sync().unwrap();
        drop(writer);

        let mut writer = BinlogWriter::open(dir.path()).unwrap();
        assert_eq!(writer.position().index, 0);
        writer.append(&binlog(3)).unwrap();
        writer.sync().unwrap();
        assert_eq!(read_all(dir.path()), [1, 2, 3]);
        assert_eq!(files(dir.path()).len(), 1);
    }

    #[test]
    fn files_rotate_at_the_segment_size() {
        let dir = tempfile::tempdir().unwrap();
        let record_len = binlog(1).len() as u64 + OVERHEAD;
        let mut writer = BinlogWriter::open_with_segment_size(dir.path(), 2 * record_len).unwrap();
        for ts in 1..=5 {
            writer.append(&binlog(ts)).unwrap();
        }
        writer.sync().unwrap();
        let listed = files(dir.path());
        let indexes: Vec<u64> = listed.iter().map(|f| f.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        let sizes: Vec<u64> = listed
            .iter()
            .map(|f| std::fs::metadata(&f.path).unwrap().len())
            .collect();
        assert_eq!(sizes, [2 * record_len, 2 * record_len, record_len]);
        assert_eq!(writer.position().index, 2);
        assert_eq!(read_all(dir.path()), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_record_larger_than_the_segment_size_fits_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BinlogWriter::open_with_segment_size(dir.path(), 10).unwrap();
        writer.append(&binlog(1)).unwrap();
        writer.append(&binlog(2)).unwrap();
        writer.sync().unwrap();
        assert_eq!(
            files(dir.path()).len(),
            3,
            "one file per record, then an empty one"
        );
        assert_eq!(read_all(dir.path()), [1, 2]);
    }

    /// A crash can cut the last record anywhere: every cut is repaired to the previous record's
    /// end, and appending continues from there.
    #[test]
    fn a_torn_tail_is_truncated_at_every_byte_of_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BinlogWriter::open(dir.path()).unwrap();
        writer.append(&binlog(1)).unwrap();
        writer.append(&binlog(2)).unwrap();
        let last = writer.append(&binlog(3)).unwrap();
        writer.sync().unwrap();
        drop(writer);
        let path = files(dir.path())[0].path.clone();
        let full = std::fs::read(&path).unwrap();

        for cut in last.offset + 1..full.len() as u64 {
            std::fs::write(&path, &full[..cut as usize]).unwrap();
            let mut writer = BinlogWriter::open(dir.path()).unwrap();
            assert_eq!(writer.position().offset, last.offset, "cut at {cut}");
            writer.append(&binlog(4)).unwrap();
            writer.sync().unwrap();
            drop(writer);
            assert_eq!(read_all(dir.path()), [1, 2, 4], "cut at {cut}");
        }
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BinlogWriter::open(dir.path()).unwrap();
        writer.append(&binlog(1)).unwrap();
        let end = writer.position().offset;
        writer.sync().unwrap();
        drop(writer);
        let path = files(dir.path())[0].path.clone();
        // Zeros, as a file extended but never written by a crash leaves.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[0u8; 100])
            .unwrap();
        let writer = BinlogWriter::open(dir.path()).unwrap();
        assert_eq!(writer.position().offset, end);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
    }

    #[test]
    fn corruption_followed_by_valid_records_is_not_cut_away() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BinlogWriter::open(dir.path()).unwrap();
        writer.append(&binlog(1)).unwrap();
        let second = writer.append(&binlog(2)).unwrap();
        writer.append(&binlog(3)).unwrap();
        writer.sync().unwrap();
        drop(writer);
        let path = files(dir.path())[0].path.clone();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second.offset as usize + 14] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();

        let err = BinlogWriter::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "corrupt record in {} at offset {}: CRC mismatch",
                path.display(),
                second.offset
            )),
            "{text}"
        );
        assert!(text.contains("not a torn tail"), "{text}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "nothing was truncated"
        );
    }

    #[test]
    fn a_gap_in_the_names_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let record_len = binlog(1).len() as u64 + OVERHEAD;
        let mut writer = BinlogWriter::open_with_segment_size(dir.path(), record_len).unwrap();
        for ts in 1..=3 {
            writer.append(&binlog(ts)).unwrap();
        }
        drop(writer);
        std::fs::remove_file(&files(dir.path())[1].path).unwrap();
        assert!(matches!(
            BinlogWriter::open(dir.path()),
            Err(BinlogFileError::NotContiguous { .. })
        ));
    }

    #[test]
    fn retention_removes_the_oldest_files_but_never_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let record_len = binlog(1).len() as u64 + OVERHEAD;
        let mut writer = BinlogWriter::open_with_segment_size(dir.path(), record_len).unwrap();
        for ts in 1..=3 {
            writer.append(&binlog(ts)).unwrap();
        }
        writer.sync().unwrap();
        let listed = files(dir.path());
        assert_eq!(listed.len(), 4);
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        let age = |file: &BinlogFile, days: u32| {
            File::options()
                .write(true)
                .open(&file.path)
                .unwrap()
                .set_modified(now - day * days)
                .unwrap();
        };
        age(&listed[0], 10);
        age(&listed[1], 2);
        age(&listed[2], 10);
        age(&listed[3], 10);

        let removed = writer.remove_expired(day * 7, now).unwrap();
        assert_eq!(
            removed,
            [listed[0].path.clone()],
            "stops at the first young file"
        );

        let removed = writer.remove_expired(Duration::ZERO, now).unwrap();
        assert_eq!(removed, [listed[1].path.clone(), listed[2].path.clone()]);
        assert_eq!(
            files(dir.path()),
            [listed[3].clone()],
            "the current file stays"
        );
        assert_eq!(read_all(dir.path()), Vec::<i64>::new());

        writer.append(&binlog(4)).unwrap();
        writer.sync().unwrap();
        drop(writer);
        assert_eq!(read_all(dir.path()), [4]);
        BinlogWriter::open(dir.path()).unwrap();
    }
}
