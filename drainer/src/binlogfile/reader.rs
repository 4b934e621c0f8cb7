//! Reading a binlog directory the way Reparo does: every binlog with `commit_ts >= start`, in
//! file order, until one passes `stop`.
//!
//! A file is not even opened when the next file's first binlog is already at or below `start`:
//! the drainer writes in commit-ts order, and after a restart it re-sends everything above its
//! checkpoint, so nothing at or above `start` exists only in such a file. Reading stops at the
//! first binlog above `stop` for the same reason. A record cut short at the end of the newest file
//! is a write in progress (or a crash's torn tail) and ends the data; any other defect is an
//! error naming the file and offset.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use prost::Message;

use super::name::{self, BinlogFile};
use super::record::{self, Next, OVERHEAD};
use super::{BinlogFileError, Position};

/// One binlog read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where its record starts.
    pub position: Position,
    /// Its commit ts.
    pub commit_ts: i64,
    /// The record's payload: an encoded `pb_binlog.Binlog`.
    pub payload: Vec<u8>,
}

/// The one field of `pb_binlog.Binlog` the reader needs; prost skips the others unparsed.
#[derive(Clone, PartialEq, prost::Message)]
struct CommitTsOnly {
    #[prost(int64, optional, tag = "2")]
    commit_ts: Option<i64>,
}

fn commit_ts_of(payload: &[u8]) -> Result<i64, prost::DecodeError> {
    Ok(CommitTsOnly::decode(payload)?.commit_ts.unwrap_or(0))
}

struct OpenFile {
    file: BinlogFile,
    reader: BufReader<File>,
    offset: u64,
    len: u64,
    newest: bool,
}

impl OpenFile {
    fn open(file: BinlogFile, newest: bool) -> Result<OpenFile, BinlogFileError> {
        let io = |action| {
            let path = file.path.clone();
            move |source| BinlogFileError::Io {
                action,
                path,
                source,
            }
        };
        let handle = File::open(&file.path).map_err(io("open"))?;
        let len = handle.metadata().map_err(io("read the size of"))?.len();
        Ok(OpenFile {
            reader: BufReader::with_capacity(256 * 1024, handle),
            offset: 0,
            len,
            newest,
            file,
        })
    }
}

/// The binlogs of a directory from a commit ts on; an iterator that ends after the first error.
pub struct BinlogReader {
    files: Vec<BinlogFile>,
    next_file: usize,
    current: Option<OpenFile>,
    start_ts: i64,
    stop_ts: Option<i64>,
    finished: bool,
}

impl BinlogReader {
    /// Reads the binlog files of `dir` (names must be contiguous), yielding the binlogs with
    /// `start_ts <= commit_ts` and, when `stop_ts` is given, `commit_ts <= stop_ts`.
    pub fn open(
        dir: &Path,
        start_ts: i64,
        stop_ts: Option<i64>,
    ) -> Result<BinlogReader, BinlogFileError> {
        Ok(BinlogReader {
            files: name::list(dir)?,
            next_file: 0,
            current: None,
            start_ts,
            stop_ts,
            finished: false,
        })
    }

    /// The commit ts of the first binlog of `file`, if it has a readable one.
    fn first_commit_ts(file: &BinlogFile) -> Option<i64> {
        let mut open = OpenFile::open(file.clone(), false).ok()?;
        match record::read_record(&mut open.reader, open.len).ok()? {
            Next::Record(payload) => commit_ts_of(&payload).ok(),
            Next::End | Next::Defect(_) => None,
        }
    }

    /// Opens the next file worth reading; `false` when there is none.
    fn open_next_file(&mut self) -> Result<bool, BinlogFileError> {
        while let Some(file) = self.files.get(self.next_file).cloned() {
            self.next_file += 1;
            let skip = self
                .files
                .get(self.next_file)
                .and_then(Self::first_commit_ts)
                .is_some_and(|first| first <= self.start_ts);
            if !skip {
                let newest = self.next_file == self.files.len();
                self.current = Some(OpenFile::open(file, newest)?);
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn advance(&mut self) -> Result<Option<Record>, BinlogFileError> {
        loop {
            if self.current.is_none() && !self.open_next_file()? {
                return Ok(None);
            }
            let Some(current) = self.current.as_mut() else {
                return Ok(None);
            };
            let offset = current.offset;
            let path = &current.file.path;
            let next = record::read_record(&mut current.reader, current.len - offset).map_err(
                |source| BinlogFileError::Io {
                    action: "read",
                    path: path.clone(),
                    source,
                },
            )?;
            let payload = match next {
                Next::End => {
                    self.current = None;
                    continue;
                }
                Next::Defect(defect) if defect.is_truncation() && current.newest => {
                    return Ok(None);
                }
                Next::Defect(defect) => {
                    return Err(BinlogFileError::Corrupt {
                        path: path.clone(),
                        offset,
                        defect,
                        detail: String::new(),
                    });
                }
                Next::Record(payload) => payload,
            };
            current.offset += payload.len() as u64 + OVERHEAD;
            let commit_ts =
                commit_ts_of(&payload).map_err(|source| BinlogFileError::NotABinlog {
                    path: path.clone(),
                    offset,
                    source,
                })?;
            if self.stop_ts.is_some_and(|stop| commit_ts > stop) {
                return Ok(None);
            }
            if commit_ts >= self.start_ts {
                return Ok(Some(Record {
                    position: Position {
                        index: current.file.index,
                        offset,
                    },
                    commit_ts,
                    payload,
                }));
            }
        }
    }
}

impl Iterator for BinlogReader {
    type Item = Result<Record, BinlogFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.advance().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.finished = true;
            self.current = None;
        }
        item
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::binlogfile::BinlogWriter;
    use binlog_proto::pb_binlog;

    /// An encoded DDL `pb_binlog.Binlog` at `commit_ts`, of the same length for small ts.
    pub(crate) fn binlog(commit_ts: i64) -> Vec<u8> {
        pb_binlog::Binlog {
            tp: Some(pb_binlog::BinlogType::Ddl as i32),
            commit_ts: Some(commit_ts),
            dml_data: None,
            ddl_query: Some(b"create table t (id int)".to_vec()),
        }
        .encode_to_vec()
    }

    /// Three files of ten binlogs each: ts 1..=10, 11..=20, 21..=30 (and an empty fourth).
    fn three_files(dir: &Path) {
        let record_len = binlog(1).len() as u64 + OVERHEAD;
        let mut writer = BinlogWriter::open_with_segment_size(dir, 10 * record_len).unwrap();
        for ts in 1..=30 {
            writer.append(&binlog(ts)).unwrap();
        }
        writer.sync().unwrap();
    }

    fn read(dir: &Path, start: i64, stop: Option<i64>) -> Vec<i64> {
        BinlogReader::open(dir, start, stop)
            .unwrap()
            .map(|record| record.unwrap().commit_ts)
            .collect()
    }

    #[test]
    fn walks_from_an_inclusive_start_to_an_inclusive_stop() {
        let dir = tempfile::tempdir().unwrap();
        three_files(dir.path());
        assert_eq!(read(dir.path(), 0, None), (1..=30).collect::<Vec<_>>());
        assert_eq!(read(dir.path(), 15, None), (15..=30).collect::<Vec<_>>());
        assert_eq!(read(dir.path(), 11, Some(11)), [11]);
        assert_eq!(read(dir.path(), 9, Some(22)), (9..=22).collect::<Vec<_>>());
        assert_eq!(read(dir.path(), 31, None), Vec::<i64>::new());
    }

    #[test]
    fn records_carry_their_position_and_payload() {
        let dir = tempfile::tempdir().unwrap();
        three_files(dir.path());
        let record = BinlogReader::open(dir.path(), 12, None)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let record_len = binlog(1).len() as u64 + OVERHEAD;
        assert_eq!(
            record.position,
            Position {
                index: 1,
                offset: record_len
            }
        );
        let decoded = pb_binlog::Binlog::decode(&record.payload[..]).unwrap();
        assert_eq!(decoded.commit_ts, Some(12));
    }

    #[test]
    fn files_entirely_before_the_start_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        three_files(dir.path());
        let first = name::list(dir.path()).unwrap()[0].path.clone();
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[40] ^= 0xff;
        std::fs::write(&first, &bytes).unwrap();

        assert_eq!(read(dir.path(), 11, Some(12)), [11, 12]);
        let err = BinlogReader::open(dir.path(), 0, None)
            .unwrap()
            .find_map(Result::err)
            .unwrap();
        assert!(
            err.to_string()
                .starts_with(&format!("corrupt record in {} at offset ", first.display())),
            "{err}"
        );
    }

    #[test]
    fn a_cut_record_ends_the_newest_file_but_is_an_error_in_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        three_files(dir.path());
        let listed = name::list(dir.path()).unwrap();
        // The empty fourth file is the newest; drop it so the third one is.
        std::fs::remove_file(&listed[3].path).unwrap();
        let newest = &listed[2].path;
        let len = std::fs::metadata(newest).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(newest)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        assert_eq!(read(dir.path(), 25, None), (25..=29).collect::<Vec<_>>());

        let older = &listed[0].path;
        let len = std::fs::metadata(older).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(older)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let results: Vec<_> = BinlogReader::open(dir.path(), 0, None).unwrap().collect();
        assert_eq!(results.len(), 10, "nine binlogs, then the error");
        let err = results[9].as_ref().unwrap_err();
        assert!(
            matches!(err, BinlogFileError::Corrupt { offset, .. } if *offset == len - len / 10),
            "{err}"
        );
    }

    #[test]
    fn a_payload_that_is_not_a_binlog_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = BinlogWriter::open(dir.path()).unwrap();
        writer.append(&binlog(1)).unwrap();
        writer.append(&[0xff, 0xff, 0xff]).unwrap();
        writer.sync().unwrap();
        let results: Vec<_> = BinlogReader::open(dir.path(), 0, None).unwrap().collect();
        assert_eq!(results.len(), 2);
        let err = results[1].as_ref().unwrap_err();
        assert!(
            matches!(err, BinlogFileError::NotABinlog { offset, .. } if *offset == binlog(1).len() as u64 + OVERHEAD),
            "{err}"
        );
    }

    #[test]
    fn an_empty_directory_has_no_binlogs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), 0, None), Vec::<i64>::new());
    }
}
