//! The exclusive lock of a data directory (`<dir>/.lock`, flock), so two processes never write
//! the same pump data dir or drainer binlog-file dir. The lock dies with the process, so a crash
//! never leaves a stale lock behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// Name of the lock file inside the locked directory, as the original names it.
pub const LOCK_FILE: &str = ".lock";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    /// The directory or its lock file could not be created.
    #[error("cannot prepare directory {path}: {source}")]
    Prepare {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "directory {0} is locked by another process (lock file .lock); only one process may use it"
    )]
    Locked(PathBuf),
}

/// Holds `<dir>/.lock` exclusively for as long as it lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` (0700) if needed and takes its lock without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, DirLockError> {
        use std::os::unix::fs::DirBuilderExt;
        let prepare = |source| DirLockError::Prepare {
            path: dir.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(prepare)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(prepare)?;
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| DirLockError::Locked(dir.to_owned()))?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DirLock::acquire(&data).unwrap();
        let err = DirLock::acquire(&data).unwrap_err();
        assert!(matches!(err, DirLockError::Locked(_)), "{err}");
        drop(first);
        DirLock::acquire(&data).unwrap();
    }
}
