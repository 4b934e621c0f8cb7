//! `generate_meta`: a drainer savepoint (`<data-dir>/savepoint`, TOML `commitTS = <ts>`) at a fresh
//! PD timestamp, written atomically so a crash never leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use binlog_cluster::tso;
use chrono_tz::Tz;

/// The savepoint text. With a time zone, two human-readable lines follow (the rough time in UTC
/// and in that zone), as the original writes them, without a newline after the last.
pub fn savepoint_content(commit_ts: i64, zone: Option<Tz>) -> String {
    let mut content = format!("commitTS = {commit_ts}\n");
    if let Some(zone) = zone {
        let utc = tso::rough_time(commit_ts);
        let local = utc.with_timezone(&zone);
        content.push_str(&tso::go_time_string(&utc, "UTC"));
        content.push('\n');
        content.push_str(&tso::go_time_string(
            &local,
            &local.format("%Z").to_string(),
        ));
    }
    content
}

/// Parses `-time-zone`; an unknown zone is reported and ignored, as in the original.
pub fn parse_zone(name: &str) -> Option<Tz> {
    if name.is_empty() {
        return None;
    }
    match name.parse::<Tz>() {
        Ok(zone) => Some(zone),
        Err(_) => {
            eprintln!(
                "warning: unknown time zone {name:?}; writing the savepoint without time lines"
            );
            None
        }
    }
}

/// Writes `content` to `<data_dir>/savepoint` through a temporary file and a rename, creating the
/// directory (0700) if needed. Returns the savepoint path.
pub fn write_savepoint(data_dir: &Path, content: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let target = data_dir.join("savepoint");
    let temp = data_dir.join(".savepoint.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(content.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_savepoint_is_one_toml_line() {
        assert_eq!(savepoint_content(32244168, None), "commitTS = 32244168\n");
    }

    #[test]
    fn a_time_zone_adds_two_time_lines() {
        let ts = tso::compose(0, 1);
        assert_eq!(
            savepoint_content(ts, Some(chrono_tz::Asia::Shanghai)),
            "commitTS = 1\n1970-01-01 00:00:00 +0000 UTC\n1970-01-01 08:00:00 +0800 CST"
        );
    }

    #[test]
    fn unknown_zones_are_ignored() {
        assert_eq!(parse_zone("Mars/Olympus"), None);
        assert_eq!(parse_zone(""), None);
        assert_eq!(parse_zone("UTC"), Some(chrono_tz::UTC));
    }

    #[test]
    fn the_savepoint_replaces_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("meta");
        write_savepoint(&data, "commitTS = 1\n").unwrap();
        let path = write_savepoint(&data, "commitTS = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "commitTS = 2\n");
        let leftovers: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }
}
