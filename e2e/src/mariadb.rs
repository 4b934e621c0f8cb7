//! A real MariaDB server (Debian `mariadb-server`) initialised into a temporary directory and
//! listening on a free loopback port, with a passwordless `root` reachable over TCP.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::{ChildProcess, accepts_connections, free_port, wait_until};

/// A running MariaDB, stopped when dropped.
#[derive(Debug)]
pub struct MariaDb {
    process: ChildProcess,
    port: u16,
    dir: tempfile::TempDir,
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

impl MariaDb {
    /// Initialises a data directory, starts the server and waits until it answers queries.
    pub fn start() -> anyhow::Result<MariaDb> {
        let dir = tempfile::Builder::new().prefix("e2e-mariadb").tempdir()?;
        let data = dir.path().join("data");
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
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
        let mut command = Command::new("mariadbd");
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--user=root")
            .arg(format!("--init-file={}", init.display()))
            .arg("--innodb-buffer-pool-size=128M")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--skip-log-bin")
            .arg("--max-connections=500")
            .arg("--max-allowed-packet=1G");
        let process = ChildProcess::spawn("mariadbd", command, &dir.path().join("mariadb.log"))?;
        let addr = format!("127.0.0.1:{port}");
        let mut db = MariaDb { process, port, dir };
        let ready = wait_until(Duration::from_secs(60), || {
            accepts_connections(&addr) && db.query("SELECT 1").is_ok()
        });
        if !ready {
            db.process.assert_running();
            anyhow::bail!(
                "MariaDB did not answer on {addr} within 60 s:\n{}",
                db.process.log_tail()
            );
        }
        Ok(db)
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
        run(
            Command::new("mariadb")
                .arg("--no-defaults")
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
