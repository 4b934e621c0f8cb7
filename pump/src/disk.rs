//! The data directory's guards: an exclusive lock so two pumps never share it (the lock shared
//! with the drainer's binlog-file dir, from `binlog-cluster`), and the free-space reading behind
//! `stop-write-at-available-space`.

use std::path::{Path, PathBuf};

pub use binlog_cluster::dir_lock::DirLock as DataDirLock;

/// A data-dir problem.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// statvfs failed.
    #[error("cannot read free space of {path}: {source}")]
    Statvfs {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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
    fn free_space_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (capacity, available) = space(dir.path()).unwrap();
        assert!(capacity > 0 && available <= capacity);
    }
}
