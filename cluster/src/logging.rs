//! Logging set-up shared by the binaries: `tracing` to stderr or appended to a file, filtered at
//! the configured level (`-L`, `log-level`).

use std::path::Path;

/// Installs the global subscriber. Fails with a message naming a bad level or an unopenable
/// file.
pub fn init(level: &str, file: Option<&Path>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|err| format!("invalid log level {level:?}: {err}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match file {
        None => builder.with_writer(std::io::stderr).init(),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| format!("cannot open log file {}: {err}", path.display()))?;
            builder.with_writer(std::sync::Mutex::new(file)).init();
        }
    }
    Ok(())
}
