//! A real etcd (Debian `etcd-server`) on free loopback ports, in a temporary directory.

use std::process::Command;
use std::time::Duration;

use crate::process::{ChildProcess, accepts_connections, free_port, wait_until};

/// A running etcd, stopped when dropped.
#[derive(Debug)]
pub struct Etcd {
    process: ChildProcess,
    client_url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd and waits until it accepts clients.
    pub fn start() -> anyhow::Result<Etcd> {
        crate::process::with_port_retries(Self::start_once)
    }

    fn start_once() -> anyhow::Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("e2e-etcd").tempdir()?;
        let client_port = free_port();
        let peer_port = free_port();
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new("etcd");
        command
            .arg("--name=e2e")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=e2e={peer_url}"))
            .arg("--log-level=warn");
        let mut process = ChildProcess::spawn("etcd", command, &dir.path().join("etcd.log"))
            .map_err(|err| {
                anyhow::anyhow!("{err} (install Debian's etcd-server: scripts/install-deps)")
            })?;
        let addr = format!("127.0.0.1:{client_port}");
        if !wait_until(Duration::from_secs(20), || accepts_connections(&addr)) {
            process.assert_running();
            anyhow::bail!(
                "etcd did not accept connections on {addr} within 20 s:\n{}",
                process.log_tail()
            );
        }
        Ok(Etcd {
            process,
            client_url,
            _dir: dir,
        })
    }

    /// The client URL, e.g. `http://127.0.0.1:23790`.
    pub fn url(&self) -> &str {
        &self.client_url
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
