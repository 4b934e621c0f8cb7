//! Node ids: `<data-dir>/.node` if present, else the configured id, else `hostname:port` of the
//! listen address, persisted to `.node` so the id survives restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a node id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeIdSource {
    /// Read from `<data-dir>/.node`.
    File,
    /// The `node-id` setting (not persisted).
    Configured,
    /// Generated from the host name and listen port, and written to `.node`.
    Generated,
}

/// A node id that could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum NodeIdError {
    /// The `.node` file or the data dir could not be read or written.
    #[error("node id file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address has no port to build an id from.
    #[error("cannot derive a node id from listen address {0:?}: expected host:port")]
    NoPort(String),
}

/// Trims an id the way the original's `FormatNodeID` does.
pub fn format_node_id(id: &str) -> String {
    id.trim().to_string()
}

/// The machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Resolves the node id for a node whose data lives in `data_dir` and that listens on
/// `listen_addr`. A configured id is ignored (with a warning) when `.node` exists.
pub fn resolve_node_id(
    data_dir: &Path,
    configured: Option<&str>,
    listen_addr: &str,
) -> Result<(String, NodeIdSource), NodeIdError> {
    let file = data_dir.join(".node");
    match std::fs::read_to_string(&file) {
        Ok(content) => {
            let id = format_node_id(&content);
            if let Some(configured) = configured.filter(|c| format_node_id(c) != id) {
                tracing::warn!(
                    file = %file.display(),
                    ignored = configured,
                    node_id = %id,
                    "the node id in the data dir wins over the configured one"
                );
            }
            return Ok((id, NodeIdSource::File));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(NodeIdError::Io { path: file, source }),
    }
    if let Some(configured) = configured.map(format_node_id).filter(|c| !c.is_empty()) {
        return Ok((configured, NodeIdSource::Configured));
    }
    let port = listen_addr
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| port.parse::<u16>().is_ok())
        .ok_or_else(|| NodeIdError::NoPort(listen_addr.to_string()))?;
    let id = format!("{}:{port}", hostname());
    write_node_file(data_dir, &file, &id)?;
    Ok((id, NodeIdSource::Generated))
}

fn write_node_file(data_dir: &Path, file: &Path, id: &str) -> Result<(), NodeIdError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| NodeIdError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(io(data_dir))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .map_err(io(file))?;
    out.write_all(id.as_bytes()).map_err(io(file))?;
    out.sync_all().map_err(io(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_persisted_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (id, source) = resolve_node_id(&data, None, "0.0.0.0:8250").unwrap();
        assert_eq!(source, NodeIdSource::Generated);
        assert_eq!(id, format!("{}:8250", hostname()));
        assert_eq!(std::fs::read_to_string(data.join(".node")).unwrap(), id);

        let (again, source) = resolve_node_id(&data, Some("other"), "0.0.0.0:9999").unwrap();
        assert_eq!((again, source), (id, NodeIdSource::File));
    }

    #[test]
    fn a_configured_id_is_used_but_not_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let (id, source) = resolve_node_id(dir.path(), Some("  pump-0 \n"), "x:1").unwrap();
        assert_eq!((id.as_str(), source), ("pump-0", NodeIdSource::Configured));
        assert!(!dir.path().join(".node").exists());
    }

    #[test]
    fn the_file_content_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".node"), "node-a\n").unwrap();
        let (id, _) = resolve_node_id(dir.path(), None, "x:1").unwrap();
        assert_eq!(id, "node-a");
    }

    #[test]
    fn an_address_without_port_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_node_id(dir.path(), None, "localhost").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot derive a node id from listen address \"localhost\": expected host:port"
        );
    }
}
