//! The usual world of a scenario test: a real etcd, `pd-sim` in front of it, and a PD client and
//! registry connected through `pd-sim`, all under one temporary directory.

use std::time::Duration;

use binlog_cluster::{NodeKind, NodeState, PdClient, Registry, TlsSettings};

use crate::{Downstream, DrainerProcess, Etcd, PdSimProcess, PumpProcess};

/// A running world; everything stops when it is dropped. Fields drop in order, so the clients
/// go before the servers and the directory goes last.
pub struct World {
    /// A PD client through `pd-sim`.
    pub pd: PdClient,
    /// The registry through `pd-sim`.
    pub registry: Registry,
    /// The PD stand-in.
    pub pd_sim: PdSimProcess,
    /// The etcd behind it.
    pub etcd: Etcd,
    /// Where logs and data of everything started here live.
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts etcd and `pd-sim` and connects the clients.
    pub async fn start() -> anyhow::Result<World> {
        let dir = tempfile::tempdir()?;
        let etcd = Etcd::start()?;
        let pd_sim = PdSimProcess::start(etcd.url(), &dir.path().join("pd.log"))?;
        let urls = vec![pd_sim.url()];
        let pd = PdClient::connect(&urls, &TlsSettings::default()).await?;
        let registry = Registry::connect(&urls, &TlsSettings::default()).await?;
        Ok(World {
            pd,
            registry,
            pd_sim,
            etcd,
            dir,
        })
    }

    /// Starts a pump `id` against this world's PD, with `extra` flags.
    pub fn start_pump(&self, id: &str, extra: &[&str]) -> anyhow::Result<PumpProcess> {
        PumpProcess::start(&self.pd_sim.url(), self.dir.path(), id, extra)
    }

    /// Starts a drainer `id` against this world's PD, writing to `downstream`, with `syncer_toml`
    /// inside `[syncer]` and `extra` flags.
    pub fn start_drainer(
        &self,
        id: &str,
        downstream: &Downstream,
        syncer_toml: &str,
        extra: &[&str],
    ) -> anyhow::Result<DrainerProcess> {
        DrainerProcess::start_drainer(
            &self.pd_sim.url(),
            self.dir.path(),
            id,
            downstream,
            syncer_toml,
            extra,
        )
    }

    /// Waits up to 20 s for node `id` to be registered in state `want`; returns whether it was.
    pub async fn wait_state(&self, kind: NodeKind, id: &str, want: NodeState) -> bool {
        for _ in 0..200 {
            if matches!(self.registry.get(kind, id).await, Ok(status) if status.state == want) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}
