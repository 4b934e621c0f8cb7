//! Binlog file names and the directory listing: `binlog-<index %016d>-<local time
//! YYYYMMDDhhmmss>`, indexes counting up from 0 without gaps.
//!
//! Parsing also accepts the original's older forms, `binlog-<index>` and
//! `binlog-<index>-<time>-<ts>.tar.gz`. Anything else in the directory (`.lock`, `savepoint`,
//! `catalog.json`, temporaries) is not a binlog file and is left alone.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone};

use super::BinlogFileError;

const PREFIX: &str = "binlog-";

/// One binlog file of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogFile {
    /// Its index (0, 1, 2, ...).
    pub index: u64,
    /// Its path.
    pub path: PathBuf,
}

/// The name of the file with `index`, created at `time` (local time of the drainer's host).
pub fn file_name<Tz: TimeZone>(index: u64, time: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("{PREFIX}{index:016}-{}", time.format("%Y%m%d%H%M%S"))
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The index of a binlog file name, `None` if `name` is not one.
pub fn parse_index(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(PREFIX)?;
    let parts: Vec<&str> = rest.split('-').collect();
    let well_formed = match parts.as_slice() {
        [_] => true,
        [_, time] => all_digits(time),
        [_, time, ts] => all_digits(time) && ts.split('.').next().is_some_and(all_digits),
        _ => false,
    };
    if !well_formed || !all_digits(parts[0]) {
        return None;
    }
    parts[0].parse().ok()
}

/// The binlog files of `dir`, by index. Fails if their indexes are not contiguous: a missing
/// file means lost data, which must not pass silently.
pub fn list(dir: &Path) -> Result<Vec<BinlogFile>, BinlogFileError> {
    let io = |source| BinlogFileError::Io {
        action: "list",
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if let Some(index) = parse_index(&name) {
            files.push(BinlogFile {
                index,
                path: entry.path(),
            });
        }
    }
    files.sort_by(|a, b| a.index.cmp(&b.index).then_with(|| a.path.cmp(&b.path)));
    for pair in files.windows(2) {
        if pair[0].index.checked_add(1) != Some(pair[1].index) {
            let name = |file: &BinlogFile| {
                file.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            return Err(BinlogFileError::NotContiguous {
                dir: dir.to_owned(),
                before: name(&pair[0]),
                after: name(&pair[1]),
            });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn names_carry_a_padded_index_and_the_creation_time() {
        let time = Utc.with_ymd_and_hms(2019, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            file_name(7, &time),
            "binlog-0000000000000007-20190102030405"
        );
    }

    #[test]
    fn current_and_legacy_names_parse() {
        assert_eq!(
            parse_index("binlog-0000000000000007-20190102030405"),
            Some(7)
        );
        assert_eq!(parse_index("binlog-0000000000000001"), Some(1));
        assert_eq!(
            parse_index("binlog-0000000000000002-20181010101010-407623959013752832.tar.gz"),
            Some(2)
        );
    }

    #[test]
    fn other_files_are_not_binlog_files() {
        for name in [
            ".lock",
            "savepoint",
            "catalog.json",
            ".savepoint.tmp",
            "binlog-",
            "binlog-x",
            "binlog-0000000000000001-2019.tmp",
            "binlog-1-2-3-4",
            "relay-0000000000000001",
        ] {
            assert_eq!(parse_index(name), None, "{name}");
        }
    }

    #[test]
    fn listing_sorts_and_demands_contiguity() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "binlog-0000000000000004-20200101000000",
            "binlog-0000000000000003-20200101000000",
            "savepoint",
            ".lock",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let indexes: Vec<u64> = list(dir.path()).unwrap().iter().map(|f| f.index).collect();
        assert_eq!(indexes, [3, 4]);

        std::fs::write(
            dir.path().join("binlog-0000000000000006-20200101000000"),
            b"",
        )
        .unwrap();
        let err = list(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(
                "binlog-0000000000000004-20200101000000 is followed by binlog-0000000000000006-20200101000000"
            ),
            "{err}"
        );
    }

    #[test]
    fn two_files_with_one_index_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("binlog-0000000000000000-20200101000000"),
            b"",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("binlog-0000000000000000-20200101000001"),
            b"",
        )
        .unwrap();
        assert!(matches!(
            list(dir.path()),
            Err(BinlogFileError::NotContiguous { .. })
        ));
    }
}
