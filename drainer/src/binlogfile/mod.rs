//! The file sink's store: a directory of binlog files readable by Reparo, in the original's
//! format — records framed as in [`record`], files named as in [`name`], a new file once the
//! current one reaches 512 MiB, the directory held by a `.lock` file while a [`BinlogWriter`]
//! has it open. Payloads are opaque bytes here (the sink puts `pb_binlog.Binlog` messages in);
//! the [`BinlogReader`] only looks into them for the commit ts.
//!
//! Where we do better than the original, on purpose:
//! - Opening continues the newest file after truncating a torn tail (a record cut short, or
//!   garbage after the last whole record, as a crash mid-write leaves) instead of appending after
//!   it, which left a record that made every later read of the file fail. A defect followed by
//!   valid records is corruption, not a crash artefact: open fails naming file and offset.
//! - [`BinlogWriter::sync`] is an fdatasync of the current file, and a rotation syncs the full
//!   file before starting the next one, so a checkpoint saved after `sync` never passes data that
//!   is not on disk.
//! - Retention removes only the oldest files, stopping at the first one still young enough, so
//!   the remaining names stay contiguous (a gap makes the next open fail).
//! - Reading reports a corrupt record with its file and offset rather than skipping ahead.
//!
//! All I/O is blocking; async callers run it on a blocking thread.

pub mod name;
pub mod reader;
pub mod record;
pub mod writer;

use std::path::PathBuf;

use binlog_cluster::dir_lock::DirLockError;

pub use reader::{BinlogReader, Record};
pub use writer::{BinlogWriter, DEFAULT_SEGMENT_SIZE};

/// Where a record is: the file's index and the byte offset of the record's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Index of the file (`binlog-<index>-...`).
    pub index: u64,
    /// Offset in that file.
    pub offset: u64,
}

/// Why the binlog files cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BinlogFileError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process writes this directory.
    #[error(transparent)]
    Locked(#[from] DirLockError),
    /// A file is missing between two others (or two share an index).
    #[error(
        "binlog files in {dir} are not contiguous: {before} is followed by {after} (a file is missing or was added by hand)"
    )]
    NotContiguous {
        /// The directory.
        dir: PathBuf,
        /// The file before the gap.
        before: String,
        /// The file after it.
        after: String,
    },
    /// Bytes that are not a valid record where one was expected.
    #[error("corrupt record in {path} at offset {offset}: {defect}{detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        defect: record::Defect,
        /// Why this was not taken for a torn tail, when that was considered.
        detail: String,
    },
    /// A valid record whose payload is not a `pb_binlog.Binlog`.
    #[error("record in {path} at offset {offset} is not a pb_binlog.Binlog: {source}")]
    NotABinlog {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// The decoder's message.
        source: prost::DecodeError,
    },
    /// An earlier write failed part-way; the file's tail is unknown until it is reopened.
    #[error(
        "an earlier write to {0} failed; reopen the directory to recover its last whole record"
    )]
    Broken(PathBuf),
}
