//! Pump and drainer processes for scenario tests: one of the built binaries started against a
//! PD URL with a node id, a data dir and a free loopback port, and the ways tests stop it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildProcess, accepts_connections, free_port, wait_until};

/// A pump or drainer process; killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    process: ChildProcess,
    binary: &'static str,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// The node id it was started with.
    pub node_id: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    args: Vec<String>,
    /// Environment variables set from the next (re)start on.
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl NodeProcess {
    /// Starts `binary` (`pump` or `drainer`) with `-pd-urls`, `-addr`, `-data-dir` (`dir/node_id`),
    /// `-node-id` and `extra` flags; waits until it accepts connections.
    pub fn launch(
        binary: &'static str,
        pd_url: &str,
        dir: &Path,
        node_id: &str,
        extra: &[String],
    ) -> anyhow::Result<NodeProcess> {
        crate::process::with_port_retries(|| Self::launch_once(binary, pd_url, dir, node_id, extra))
    }

    fn launch_once(
        binary: &'static str,
        pd_url: &str,
        dir: &Path,
        node_id: &str,
        extra: &[String],
    ) -> anyhow::Result<NodeProcess> {
        let addr = format!("127.0.0.1:{}", free_port());
        let data_dir = dir.join(node_id);
        let mut args: Vec<String> = vec![
            format!("-pd-urls={pd_url}"),
            format!("-addr={addr}"),
            format!("-data-dir={}", data_dir.display()),
            format!("-node-id={node_id}"),
        ];
        args.extend(extra.iter().cloned());
        let log = dir.join(format!("{node_id}.log"));
        let process = Self::spawn(binary, &args, &[], &log)?;
        let mut node = NodeProcess {
            process,
            binary,
            addr,
            node_id: node_id.to_string(),
            data_dir,
            args,
            env: Vec::new(),
            log,
        };
        node.wait_listening()?;
        Ok(node)
    }

    fn spawn(
        binary: &'static str,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<ChildProcess> {
        let mut command = Command::new(crate::bin_path(binary));
        command
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned());
        Ok(ChildProcess::spawn(binary, command, log)?)
    }

    fn wait_listening(&mut self) -> anyhow::Result<()> {
        let addr = self.addr.clone();
        let process = &mut self.process;
        let up = wait_until(Duration::from_secs(30), || {
            process.try_wait().is_some() || accepts_connections(&addr)
        });
        if let Some(status) = self.process.try_wait() {
            anyhow::bail!(
                "{} exited ({status}) before listening:\n{}",
                self.binary,
                self.process.log_tail()
            );
        }
        anyhow::ensure!(
            up,
            "{} did not listen on {addr} within 30 s:\n{}",
            self.binary,
            self.process.log_tail()
        );
        Ok(())
    }

    /// Starts the same process again (same flags, data dir and port) after it stopped.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill();
        self.process = Self::spawn(self.binary, &self.args, &self.env, &self.log)?;
        self.wait_listening()
    }

    /// Sets an environment variable for the next [`NodeProcess::restart`] and those after.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.process.terminate(Duration::from_secs(30))
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        let process = &mut self.process;
        wait_until(timeout, || {
            status = process.try_wait();
            status.is_some()
        });
        status
    }

    /// The process id (0 once it has stopped).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The log so far (for assertion messages).
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Everything it logged, across restarts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The base URL of its HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
