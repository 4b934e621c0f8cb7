//! The file checkpoint: `<data-dir>/savepoint`, TOML as the original writes it
//!
//! ```text
//! consistent = false
//! commitTS = 417587421573988353
//! schema-version = 12
//! ```
//!
//! and, next to it, the drainer's schema catalog (`<data-dir>/catalog.json`, opaque bytes here).
//!
//! Both are replaced atomically: a temporary file in the same directory is written and fsynced,
//! renamed over the old one, and the directory is fsynced, so a crash leaves the old or the new
//! content, never a mix.
//!
//! Reading is tolerant where the original is not: `binlogctl -cmd generate_meta -time-zone ...`
//! appends two human-readable time lines that are not TOML, which the original drainer cannot
//! parse. Lines without a `=` are skipped, so such a savepoint loads (`commitTS` only). Unknown keys
//! (older drainers wrote `status`) are ignored.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Checkpoint, CheckpointError, CheckpointStore};

/// File name of the checkpoint inside the data dir.
pub const SAVEPOINT_FILE: &str = "savepoint";
/// File name of the persisted schema catalog inside the data dir.
pub const PUSHED_TS_FILE: &str = "pushed_ts";
const CATALOG_FILE: &str = "catalog.json";

/// The checkpoint in `<data-dir>/savepoint`.
#[derive(Debug, Clone)]
pub struct FileCheckpoint {
    dir: PathBuf,
    initial_commit_ts: i64,
}

#[derive(Deserialize)]
struct SavepointToml {
    #[serde(default)]
    consistent: bool,
    #[serde(rename = "commitTS", default)]
    commit_ts: i64,
    #[serde(rename = "schema-version", default)]
    schema_version: i64,
}

/// The savepoint text for `checkpoint`.
fn format_savepoint(checkpoint: &Checkpoint) -> String {
    format!(
        "consistent = {}\ncommitTS = {}\nschema-version = {}\n",
        checkpoint.consistent, checkpoint.commit_ts, checkpoint.schema_version
    )
}

/// Parses savepoint text, skipping the lines that are not `key = value`.
fn parse_savepoint(text: &str, path: &Path) -> Result<Checkpoint, CheckpointError> {
    let toml_lines: String = text
        .lines()
        .filter(|line| line.contains('='))
        .flat_map(|line| [line, "\n"])
        .collect();
    let parsed: SavepointToml =
        toml::from_str(&toml_lines).map_err(|err| CheckpointError::Malformed {
            what: path.display().to_string(),
            reason: format!(
                "{}; expected TOML with consistent, commitTS and schema-version",
                err.to_string().trim_end()
            ),
        })?;
    Ok(Checkpoint {
        commit_ts: parsed.commit_ts,
        consistent: parsed.consistent,
        schema_version: parsed.schema_version,
        ts_map: None,
    })
}

/// Replaces `dir/name` with `bytes` atomically (see the module doc), creating `dir` (0700).
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| CheckpointError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create directory", dir))?;
    let mut file = std::fs::File::create(&temp).map_err(io("create", &temp))?;
    file.write_all(bytes)
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| file.sync_all())
        .map_err(io("write", &temp))?;
    std::fs::rename(&temp, &target).map_err(io("rename into place", &target))?;
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("sync directory", dir))
}

/// Reads `path`, `None` when it does not exist.
fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, CheckpointError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Runs blocking file work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, CheckpointError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| {
            Err(CheckpointError::Io {
                action: "finish writing or reading",
                path,
                source: std::io::Error::other(join),
            })
        })
}

impl FileCheckpoint {
    /// The checkpoint of the drainer whose data dir is `data_dir`; `initial_commit_ts` (already
    /// resolved: not −1) is where a drainer without a savepoint starts.
    pub fn new(data_dir: impl Into<PathBuf>, initial_commit_ts: i64) -> FileCheckpoint {
        FileCheckpoint {
            dir: data_dir.into(),
            initial_commit_ts,
        }
    }

    /// `<data-dir>/savepoint`.
    pub fn savepoint_path(&self) -> PathBuf {
        self.dir.join(SAVEPOINT_FILE)
    }

    /// `<data-dir>/catalog.json`.
    pub fn catalog_path(&self) -> PathBuf {
        self.dir.join(CATALOG_FILE)
    }

    /// Replaces the persisted schema catalog atomically.
    pub async fn save_catalog(&mut self, bytes: Vec<u8>) -> Result<(), CheckpointError> {
        let dir = self.dir.clone();
        blocking(self.catalog_path(), move || {
            write_atomically(&dir, CATALOG_FILE, &bytes)
        })
        .await
    }

    /// The persisted schema catalog, `None` if none was saved.
    pub async fn load_catalog(&self) -> Result<Option<Vec<u8>>, CheckpointError> {
        let path = self.catalog_path();
        blocking(path.clone(), move || read_if_exists(&path)).await
    }

    /// Replaces `<data-dir>/pushed_ts`: no transaction above this commit ts was handed to the
    /// sink (see [`crate::syncer`]).
    pub async fn save_pushed_ts(&mut self, ts: i64) -> Result<(), CheckpointError> {
        let dir = self.dir.clone();
        blocking(self.dir.join(PUSHED_TS_FILE), move || {
            write_atomically(&dir, PUSHED_TS_FILE, ts.to_string().as_bytes())
        })
        .await
    }

    /// The persisted push limit, `None` if none was saved.
    pub async fn load_pushed_ts(&self) -> Result<Option<i64>, CheckpointError> {
        let path = self.dir.join(PUSHED_TS_FILE);
        let bytes = blocking(path.clone(), {
            let path = path.clone();
            move || read_if_exists(&path)
        })
        .await?;
        bytes
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .trim()
                    .parse()
                    .map_err(|err| CheckpointError::Malformed {
                        what: path.display().to_string(),
                        reason: format!("{err}; expected a commit ts"),
                    })
            })
            .transpose()
    }
}

impl CheckpointStore for FileCheckpoint {
    async fn load(&self) -> Result<Checkpoint, CheckpointError> {
        let path = self.savepoint_path();
        let initial = self.initial_commit_ts;
        blocking(path.clone(), move || {
            let Some(bytes) = read_if_exists(&path)? else {
                return Ok(Checkpoint::initial(initial));
            };
            let text = String::from_utf8(bytes).map_err(|_| CheckpointError::Malformed {
                what: path.display().to_string(),
                reason: "not UTF-8 text; expected TOML".to_string(),
            })?;
            Ok(parse_savepoint(&text, &path)?.or_initial(initial))
        })
        .await
    }

    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let dir = self.dir.clone();
        let text = format_savepoint(checkpoint);
        blocking(self.savepoint_path(), move || {
            write_atomically(&dir, SAVEPOINT_FILE, text.as_bytes())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_missing_savepoint_starts_at_the_initial_commit_ts() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpoint::new(dir.path().join("never-created"), 400);
        assert_eq!(store.load().await.unwrap(), Checkpoint::initial(400));
    }

    #[tokio::test]
    async fn save_then_load_round_trips_in_the_originals_format() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.drainer");
        let mut store = FileCheckpoint::new(&data, 1);
        let checkpoint = Checkpoint {
            commit_ts: 417_587_421_573_988_353,
            consistent: true,
            schema_version: 12,
            ts_map: None,
        };
        store.save(&checkpoint).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join("savepoint")).unwrap(),
            "consistent = true\ncommitTS = 417587421573988353\nschema-version = 12\n"
        );
        assert_eq!(store.load().await.unwrap(), checkpoint);
        assert_eq!(entries(&data), ["savepoint"], "no temporary file is left");

        let later = Checkpoint {
            commit_ts: 417_587_421_573_988_999,
            consistent: false,
            ..checkpoint
        };
        store.save(&later).await.unwrap();
        assert_eq!(FileCheckpoint::new(&data, 1).load().await.unwrap(), later);
    }

    #[tokio::test]
    async fn commit_ts_zero_means_the_initial_commit_ts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("savepoint"),
            "consistent = false\ncommitTS = 0\nschema-version = 3\n",
        )
        .unwrap();
        let loaded = FileCheckpoint::new(dir.path(), 55).load().await.unwrap();
        assert_eq!(loaded.commit_ts, 55);
        assert_eq!(loaded.schema_version, 3);
    }

    #[tokio::test]
    async fn a_generate_meta_savepoint_with_time_lines_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("savepoint"),
            "commitTS = 417587421573988353\n2020-06-10 06:03:38 +0000 UTC\n2020-06-10 14:03:38 +0800 CST",
        )
        .unwrap();
        let loaded = FileCheckpoint::new(dir.path(), 1).load().await.unwrap();
        assert_eq!(loaded, Checkpoint::initial(417_587_421_573_988_353));
    }

    #[tokio::test]
    async fn older_keys_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("savepoint"), "status = 1\ncommitTS = 9\n").unwrap();
        let loaded = FileCheckpoint::new(dir.path(), 1).load().await.unwrap();
        assert_eq!(loaded.commit_ts, 9);
    }

    #[tokio::test]
    async fn a_malformed_savepoint_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("savepoint");
        std::fs::write(&path, "commitTS = \"soon\"\n").unwrap();
        let err = FileCheckpoint::new(dir.path(), 1)
            .load()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{} is malformed: ", path.display())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_catalog_is_saved_next_to_the_savepoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileCheckpoint::new(dir.path(), 1);
        assert_eq!(store.load_catalog().await.unwrap(), None);
        store
            .save_catalog(b"{\"tables\":[1]}".to_vec())
            .await
            .unwrap();
        store
            .save_catalog(b"{\"tables\":[2]}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.load_catalog().await.unwrap().as_deref(),
            Some(&b"{\"tables\":[2]}"[..])
        );
        assert_eq!(entries(dir.path()), ["catalog.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_savepoint_intact() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), SAVEPOINT_FILE, b"commitTS = 1\n").unwrap();
        // A directory where the temporary file should go makes the write fail before the rename.
        std::fs::create_dir(dir.path().join(".savepoint.tmp")).unwrap();
        let err = write_atomically(dir.path(), SAVEPOINT_FILE, b"commitTS = 2\n").unwrap_err();
        assert!(err.to_string().starts_with("cannot create "), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("savepoint")).unwrap(),
            "commitTS = 1\n"
        );
    }
}
