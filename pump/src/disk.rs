//! The data directory's guards: an exclusive lock so two pumps never share it, and the free-space
//! reading behind `stop-write-at-available-space`.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// A data-dir problem.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The directory or its lock file could not be created.
    #[error("cannot prepare data dir {path}: {source}")]
    Prepare {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "data dir {0} is locked by another pump (lock file .lock); only one pump may use a data dir"
    )]
    Locked(PathBuf),
    /// statvfs failed.
    #[error("cannot read free space of {path}: {source}")]
    Statvfs {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Holds `<data-dir>/.lock` exclusively for as long as it lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates the data dir (0700) if needed and takes its lock without waiting.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, DiskError> {
        use std::os::unix::fs::DirBuilderExt;
        let prepare = |source| DiskError::Prepare {
            path: data_dir.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(prepare)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join(".lock"))
            .map_err(prepare)?;
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| DiskError::Locked(data_dir.to_owned()))?;
        Ok(DataDirLock { _file: file })
    }
}

/// Capacity and free space (for unprivileged users) of the filesystem holding `path`, in bytes.
pub fn space(path: &Path) -> Result<(u64, u64), DiskError> {
    let stat = rustix::fs::statvfs(path).map_err(|err| DiskError::Statvfs {
        path: path.to_owned(),
        source: err.into(),
    })?;
    let unit = if stat.f_frsize > 0 {
        stat.f_frsize
    } else {
        stat.f_bsize
    };
    Ok((stat.f_blocks * unit, stat.f_bavail * unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        let err = DataDirLock::acquire(&data).unwrap_err();
        assert!(matches!(err, DiskError::Locked(_)), "{err}");
        drop(first);
        DataDirLock::acquire(&data).unwrap();
    }

    #[test]
    fn free_space_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (capacity, available) = space(dir.path()).unwrap();
        assert!(capacity > 0 && available <= capacity);
    }
}
