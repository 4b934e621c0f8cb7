//! A real MariaDB server (Debian `mariadb-server`) initialised into a temporary directory and
//! listening on a free loopback port, with a passwordless `root` reachable over TCP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildProcess, accepts_connections, free_port, wait_until};

/// A running MariaDB, stopped when dropped.
#[derive(Debug)]
pub struct MariaDb {
    process: ChildProcess,
    port: u16,
    dir: tempfile::TempDir,
    tls: Option<ServerTls>,
}

/// TLS for a test server: its CA, certificate and key (PEM). A server started with TLS refuses
/// plain TCP connections (`require_secure_transport`).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command.output().map_err(|err| {
        anyhow::anyhow!(
            "cannot run {what}: {err} (install Debian's mariadb-server: scripts/install-deps)"
        )
    })?;
    if !output.status.success() {
        anyhow::bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Starts `mariadbd` on the data directory under `dir` (initialised by [`MariaDb::start`]).
fn spawn_server(dir: &Path, port: u16, tls: Option<&ServerTls>) -> anyhow::Result<ChildProcess> {
    let data = dir.join("data");
    let init = dir.join("init.sql");
    let mut command = Command::new("mariadbd");
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--user=root")
        .arg(format!("--init-file={}", init.display()))
        // Many servers run at once in tests: native AIO would exhaust the kernel's aio-max-nr,
        // and a shared /tmp lets them trip over each other's temporary tables.
        .arg("--innodb-use-native-aio=0")
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .arg("--innodb-buffer-pool-size=128M")
        .arg("--innodb-flush-log-at-trx-commit=2")
        .arg("--skip-log-bin")
        .arg("--max-connections=500")
        .arg("--max-allowed-packet=1G");
    if let Some(tls) = tls {
        command
            .arg(format!("--ssl-ca={}", tls.ca.display()))
            .arg(format!("--ssl-cert={}", tls.cert.display()))
            .arg(format!("--ssl-key={}", tls.key.display()))
            .arg("--require-secure-transport=ON");
    }
    Ok(ChildProcess::spawn(
        "mariadbd",
        command,
        &dir.join("mariadb.log"),
    )?)
}

impl MariaDb {
    /// Initialises a data directory, starts the server and waits until it answers queries.
    pub fn start() -> anyhow::Result<MariaDb> {
        MariaDb::start_with(None)
    }

    /// Like [`MariaDb::start`], serving TLS only.
    pub fn start_tls(tls: ServerTls) -> anyhow::Result<MariaDb> {
        MariaDb::start_with(Some(tls))
    }

    fn start_with(tls: Option<ServerTls>) -> anyhow::Result<MariaDb> {
        let dir = tempfile::Builder::new().prefix("e2e-mariadb").tempdir()?;
        let data = dir.path().join("data");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp)?;
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                .arg("--innodb-use-native-aio=0")
                .arg(format!("--tmpdir={}", tmp.display()))
                .arg("--user=root"),
            "mariadb-install-db",
        )?;
        // Tests connect as root over TCP from 127.0.0.1, which the default grants do not cover.
        let init = dir.path().join("init.sql");
        std::fs::write(
            &init,
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n\
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
        )?;
        let port = free_port();
        let process = spawn_server(dir.path(), port, tls.as_ref())?;
        let mut db = MariaDb {
            process,
            port,
            dir,
            tls,
        };
        db.wait_ready()?;
        Ok(db)
    }

    /// Waits until the server answers queries (60 s at most).
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let addr = format!("127.0.0.1:{}", self.port);
        let ready = wait_until(Duration::from_secs(60), || {
            accepts_connections(&addr) && self.query("SELECT 1").is_ok()
        });
        if !ready {
            self.process.assert_running();
            anyhow::bail!(
                "MariaDB did not answer on {addr} within 60 s:\n{}",
                self.process.log_tail()
            );
        }
        Ok(())
    }

    /// Kills the server with SIGKILL (a crash: committed transactions survive, open ones are
    /// rolled back at the next start). Its data directory and port are kept for [`Self::restart`].
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Stops the server in its tracks (SIGSTOP): connections stay open and no query is answered,
    /// as with a hung server, until [`Self::resume`].
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.process.freeze()
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.process.resume()
    }

    /// Starts the server again on the same data directory and port, after [`Self::kill`], and
    /// waits until it answers.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill();
        self.process = spawn_server(self.dir.path(), self.port, self.tls.as_ref())?;
        self.wait_ready()
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `mysql://` URL for root over TCP.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs SQL through the `mariadb` client over TCP and returns the tab-separated rows.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        let mut command = Command::new("mariadb");
        if let Some(tls) = &self.tls {
            command
                .arg("--no-defaults")
                .arg(format!("--ssl-ca={}", tls.ca.display()));
        } else {
            command.arg("--no-defaults");
        }
        run(
            command
                .arg("--protocol=TCP")
                .arg("-h127.0.0.1")
                .arg(format!("-P{}", self.port))
                .arg("-uroot")
                .arg("--batch")
                .arg("--skip-column-names")
                .arg("-e")
                .arg(sql),
            "mariadb client",
        )
    }
}
