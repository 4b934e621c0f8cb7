//! Errors of the storage engine. Every error about on-disk data names the file and, where it
//! applies, the byte offset, so an operator can find what is wrong.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::record::RecordDefect;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("corrupt record in {} at offset {offset}: {defect}{}", path.display(), detail.as_deref().unwrap_or(""))]
    CorruptRecord {
        path: PathBuf,
        offset: u64,
        defect: RecordDefect,
        /// Why this is not treated as a torn tail, when that was considered.
        detail: Option<String>,
    },

    #[error("record in {} at offset {offset} is not a binlog: {source}", path.display())]
    NotABinlog {
        path: PathBuf,
        offset: u64,
        #[source]
        source: prost::DecodeError,
    },

    #[error(
        "binlogs after commit ts {requested} were requested, but everything up to gc ts {gc_ts} has been purged"
    )]
    Purged { requested: i64, gc_ts: i64 },

    #[error("refusing to gc up to ts {requested}: not below the max commit ts {max_commit_ts}")]
    UnsafeGc { requested: i64, max_commit_ts: i64 },

    #[error("invalid gc ts file {}: {reason}", path.display())]
    BadGcTsFile { path: PathBuf, reason: String },

    #[error("the write batch failed: {0}")]
    WriteFailed(Arc<StorageError>),

    #[error("storage refuses writes after an earlier failure: {0}")]
    Poisoned(Arc<StorageError>),

    #[error("storage is closed")]
    Closed,
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Attaches what was being done and to which file to an [`io::Error`].
pub(crate) trait IoContext<T> {
    fn context(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
