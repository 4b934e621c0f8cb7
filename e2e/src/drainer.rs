//! Drainer processes for scenario tests: the built `drainer` binary with a generated
//! `drainer.toml` (downstream, checkpoint, filters) plus flags.

use std::path::Path;

use crate::node_process::NodeProcess;

/// A drainer process (see [`NodeProcess`]); killed when dropped.
pub type DrainerProcess = NodeProcess;

/// Where a test drainer writes.
#[derive(Debug, Clone)]
pub enum Downstream {
    /// A MariaDB/MySQL server on 127.0.0.1 as root without password.
    Mysql { port: u16 },
    /// The same as `user` (no password).
    MysqlAs { port: u16, user: String },
    /// The same over TLS, trusting the CA certificate `ca`.
    MysqlTls { port: u16, ca: std::path::PathBuf },
    /// pb binlog files in the drainer's data dir.
    Files,
    /// A Kafka topic on the broker at `addr` (`127.0.0.1:PORT`).
    Kafka { addr: String, topic: String },
}

impl NodeProcess {
    /// Starts a drainer with node id `node_id` and data under `dir`, writing to `downstream`.
    /// `syncer_toml` is appended inside `[syncer]` (e.g. `txn-batch = 5`), `extra` are flags.
    pub fn start_drainer(
        pd_url: &str,
        dir: &Path,
        node_id: &str,
        downstream: &Downstream,
        syncer_toml: &str,
        extra: &[&str],
    ) -> anyhow::Result<DrainerProcess> {
        let to = match downstream {
            Downstream::Mysql { port } => format!(
                "db-type = \"mysql\"\n{syncer_toml}\n[syncer.to]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"root\"\npassword = \"\"\n"
            ),
            Downstream::MysqlAs { port, user } => format!(
                "db-type = \"mysql\"\n{syncer_toml}\n[syncer.to]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\npassword = \"\"\n"
            ),
            Downstream::MysqlTls { port, ca } => format!(
                "db-type = \"mysql\"\n{syncer_toml}\n[syncer.to]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"root\"\npassword = \"\"\n[syncer.to.security]\nssl-ca = \"{}\"\n",
                ca.display()
            ),
            Downstream::Files => format!("db-type = \"file\"\n{syncer_toml}\n"),
            Downstream::Kafka { addr, topic } => format!(
                "db-type = \"kafka\"\n{syncer_toml}\n[syncer.to]\nkafka-addrs = \"{addr}\"\ntopic-name = \"{topic}\"\n"
            ),
        };
        let config = dir.join(format!("{node_id}.toml"));
        std::fs::create_dir_all(dir)?;
        std::fs::write(&config, format!("detect-interval = 1\n\n[syncer]\n{to}"))?;
        let mut args = vec![format!("-config={}", config.display())];
        args.extend(extra.iter().map(|s| s.to_string()));
        NodeProcess::launch("drainer", pd_url, dir, node_id, &args)
    }
}
