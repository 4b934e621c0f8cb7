//! Child processes that stop with their handle, free loopback ports, and polling with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (the OS picks it; it is released before use, so a clash with
/// another process is possible but unlikely with ephemeral ports).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the OS hands out a free loopback port")
}

/// Runs `start` up to three times. A port from [`free_port`] can be taken by another process
/// between the moment it is picked and the moment the child binds it; a fresh attempt picks new
/// ports.
pub fn with_port_retries<T>(mut start: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut attempt = 1;
    loop {
        match start() {
            Ok(started) => return Ok(started),
            Err(err) if attempt < 3 => {
                tracing::warn!(attempt, error = %err, "start failed; retrying on fresh ports");
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Polls `ready` every 50 ms until it returns true or `timeout` passes; returns whether it became
/// true.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether something accepts TCP connections on `addr`.
pub fn accepts_connections(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .is_some()
}

/// A running child process, killed (by its pid) and reaped when dropped. Its stdout and stderr
/// go to a log file, shown in panics so a failing test says why its process died.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `command` with output appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> std::io::Result<ChildProcess> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|err| {
                std::io::Error::new(err.kind(), format!("cannot start {name}: {err}"))
            })?;
        Ok(ChildProcess {
            name: name.to_string(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The tail of the process's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Whether the process has exited; returns its exit status if so.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Panics with the log tail when the process has already exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!(
                "{} exited early ({status}); log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process in its tracks (SIGSTOP): its connections stay open and nothing is
    /// answered, as with a hung or partitioned server, until [`ChildProcess::resume`].
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args([signal, &pid]).status()?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
        Ok(())
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; kills it otherwise.
    /// Returns the exit status when it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            self.kill();
        } else {
            self.child = None;
        }
        status
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
