//! How the loader reaches the downstream and how it batches (reference drainer.md §4.4, §4.6).

use std::time::Duration;

use std::path::PathBuf;

use mysql_async::{ClientIdentity, Opts, OptsBuilder, SslOpts};

use crate::error::LoaderError;

/// Prepared statements kept per connection: the statement shapes of a busy table set (each
/// multi-row width is its own statement) fit easily.
const STATEMENT_CACHE_SIZE: usize = 256;

/// TLS towards the downstream: the CA that signed its certificate (PEM), and optionally a client
/// certificate and key (PEM) for servers that require one. The server's name is checked against
/// the configured host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownstreamTls {
    pub ca: PathBuf,
    pub client: Option<(PathBuf, PathBuf)>,
}

impl DownstreamTls {
    fn ssl_opts(&self) -> SslOpts {
        let identity = self
            .client
            .as_ref()
            .map(|(cert, key)| ClientIdentity::new(cert.clone().into(), key.clone().into()));
        SslOpts::default()
            .with_root_certs(vec![self.ca.clone().into()])
            .with_client_identity(identity)
    }
}

/// Loader settings. Build with [`LoaderConfig::new`] and adjust the public fields.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// Parallel workers, one downstream connection each (`worker-count`, default 16).
    pub worker_count: usize,
    /// Row changes per downstream transaction (`txn-batch`, default 20).
    pub batch_size: usize,
    /// `false` (`disable-dispatch`): each upstream transaction is applied as one downstream
    /// transaction, strictly one after another (one worker, no batch limit).
    pub enable_dispatch: bool,
    /// `false` (`disable-detect`): no conflict detection; changes are routed by their first key
    /// only, so changes of one row through different unique keys may race.
    pub enable_detect: bool,
    /// Start in safe mode (REPLACE for inserts, DELETE + REPLACE for updates); switch later with
    /// [`crate::Loader::set_safe_mode`].
    pub safe_mode: bool,
    /// `[syncer] sql-mode`: sent as the session `sql_mode` when set; otherwise the server's
    /// default stays.
    pub sql_mode: Option<String>,
    /// `[syncer.to.params]`: session variables set on every connection (`SET SESSION k = v`,
    /// integers sent as numbers, anything else as a string); each must succeed. `time_zone` applies to DDL only: row values are always sent in UTC on
    /// sessions with `time_zone = '+00:00'`, which stores the same TIMESTAMPs.
    pub params: Vec<(String, String)>,
    /// Bound of the memory held by queued and in-flight transactions (estimated bytes); pushes
    /// wait while it is reached. A transaction larger than the bound still goes through, alone.
    pub max_buffered_bytes: usize,
    /// TLS towards the downstream (`[syncer.to.security]`); `None`: plain TCP.
    pub tls: Option<DownstreamTls>,
    /// How long a statement may go unanswered before its connection is given up (`read-timeout`,
    /// default 1 m). DDL is exempt: it may legitimately run for hours.
    pub read_timeout: Duration,
}

impl LoaderConfig {
    /// The original's defaults: 16 workers, batches of 20, dispatch and detection on, safe mode
    /// off, 1 minute read timeout; and 16 MiB of buffered transactions, tens of thousands of
    /// small rows, far more than the workers' chunks in flight. With 64 MiB, the drainer's VmHWM
    /// was 200 MiB against 135 MiB during drainer-apply (343 against 253 MiB catching up a 1 GiB
    /// backlog) at the same apply rate: memory first touched is memory the kernel must zero.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> LoaderConfig {
        LoaderConfig {
            host: host.into(),
            port,
            user: user.into(),
            password: password.into(),
            worker_count: 16,
            batch_size: 20,
            enable_dispatch: true,
            enable_detect: true,
            safe_mode: false,
            sql_mode: None,
            params: Vec::new(),
            max_buffered_bytes: 16 << 20,
            read_timeout: Duration::from_secs(60),
            tls: None,
        }
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Rejects settings the loader cannot work with, naming the setting.
    pub fn validate(&self) -> Result<(), LoaderError> {
        let bad = |what: String| Err(LoaderError::Config(what));
        if self.worker_count == 0 {
            return bad("worker-count must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("txn-batch must be at least 1".into());
        }
        if self.max_buffered_bytes == 0 {
            return bad("the loader's buffer must hold at least 1 byte".into());
        }
        if self.read_timeout.is_zero() {
            return bad("read-timeout must be positive".into());
        }
        for (name, _) in &self.params {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !valid {
                return bad(format!(
                    "[syncer.to.params] key {name:?} is not a session variable name \
                     (letters, digits, '_' and '.')"
                ));
            }
        }
        Ok(())
    }

    /// Connection options for the downstream (also usable for other connections to it, such as
    /// the bulk baseline's).
    pub fn connection_opts(&self) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass((!self.password.is_empty()).then(|| self.password.clone()))
            .stmt_cache_size(STATEMENT_CACHE_SIZE)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .tcp_nodelay(true)
            .ssl_opts(self.tls.as_ref().map(DownstreamTls::ssl_opts))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_setting() {
        let ok = LoaderConfig::new("127.0.0.1", 3306, "root", "");
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.worker_count = 0;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("worker-count")
        );
        let mut bad = ok.clone();
        bad.params = vec![("x; DROP".into(), "1".into())];
        assert!(bad.validate().unwrap_err().to_string().contains("x; DROP"));
    }
}
