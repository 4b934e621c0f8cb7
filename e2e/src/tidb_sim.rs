//! Running the `tidb-sim` binary from scenario tests: a workload to completion ([`run_workload`]),
//! the status API as a long-running server ([`TidbSimServer`]), and the checker
//! ([`check_databases`]). Output goes to log files under the caller's directory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildProcess, free_port, wait_until};
use crate::tidb::sim::workload::Summary;

/// The line `tidb-sim run` prints its summary on.
const SUMMARY_PREFIX: &str = "tidb-sim summary: ";

fn command(args: &[String]) -> Command {
    let mut command = Command::new(crate::bin_path("tidb-sim"));
    command.args(args).env("RUST_LOG", "info");
    command
}

/// Runs `tidb-sim run` against PD `pd_url` and truth `truth_url` with `extra` flags, waits up to
/// `timeout` for it to finish, and returns its summary. Fails with the log when it exits
/// non-zero or does not finish in time.
pub fn run_workload(
    pd_url: &str,
    truth_url: &str,
    extra: &[&str],
    log: &Path,
    timeout: Duration,
) -> anyhow::Result<Summary> {
    let mut args = vec![
        "run".to_string(),
        format!("--pd-urls={pd_url}"),
        format!("--truth={truth_url}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut process = ChildProcess::spawn("tidb-sim run", command(&args), log)?;
    let mut status = None;
    wait_until(timeout, || {
        status = process.try_wait();
        status.is_some()
    });
    let Some(status) = status else {
        let tail = process.log_tail();
        process.kill();
        anyhow::bail!("tidb-sim run did not finish within {timeout:?}:\n{tail}");
    };
    let text = std::fs::read_to_string(log)?;
    anyhow::ensure!(
        status.success(),
        "tidb-sim run exited with {status}:\n{}",
        process.log_tail()
    );
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(SUMMARY_PREFIX))
        .ok_or_else(|| {
            anyhow::anyhow!("tidb-sim run printed no summary:\n{}", process.log_tail())
        })?;
    Ok(serde_json::from_str(line)?)
}

/// `tidb-sim check`: the exit code (0 equal, 1 different, 2 could not compare) and stdout.
pub fn check_databases(truth_url: &str, downstream_url: &str) -> anyhow::Result<(i32, String)> {
    let output = command(&[
        "check".into(),
        format!("--truth={truth_url}"),
        format!("--downstream={downstream_url}"),
    ])
    .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let code = output.status.code().ok_or_else(|| {
        anyhow::anyhow!(
            "tidb-sim check was killed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok((code, stdout))
}

/// Whether `GET path` on `addr` answers 200.
fn answers_ok(addr: &str, path: &str) -> bool {
    let Ok(addr) = addr.parse() else { return false };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut head = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.ends_with(b" 200")
}

/// `tidb-sim serve`, stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct TidbSimServer {
    process: ChildProcess,
    /// `127.0.0.1:port` of the status API.
    pub status_addr: String,
}

impl TidbSimServer {
    /// Starts `tidb-sim serve` and waits until its status API accepts connections.
    pub fn start(pd_url: &str, truth_url: &str, dir: &Path) -> anyhow::Result<TidbSimServer> {
        crate::process::with_port_retries(|| {
            let status_addr = format!("127.0.0.1:{}", free_port());
            let log = dir.join("tidb-sim-serve.log");
            let args = vec![
                "serve".to_string(),
                format!("--pd-urls={pd_url}"),
                format!("--truth={truth_url}"),
                format!("--status-addr={status_addr}"),
            ];
            let mut process = ChildProcess::spawn("tidb-sim serve", command(&args), &log)?;
            let addr = status_addr.clone();
            // It answers only once registered in etcd.
            let up = wait_until(Duration::from_secs(30), || {
                process.try_wait().is_some() || answers_ok(&addr, "/status")
            });
            if let Some(status) = process.try_wait() {
                anyhow::bail!(
                    "tidb-sim serve exited ({status}) before listening:\n{}",
                    process.log_tail()
                );
            }
            anyhow::ensure!(
                up,
                "tidb-sim serve did not listen on {addr} within 30 s:\n{}",
                process.log_tail()
            );
            Ok(TidbSimServer {
                process,
                status_addr,
            })
        })
    }

    /// The base URL of the status API.
    pub fn url(&self) -> String {
        format!("http://{}", self.status_addr)
    }

    /// SIGTERM, then waits for the exit (it deregisters first).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.process.terminate(Duration::from_secs(30))
    }

    /// The log so far.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
