//! Pump processes for scenario tests: started from the built `pump` binary against a PD URL,
//! with a small gRPC client that writes binlogs the way TiDB does and pulls them the way a drainer
//! does.

use std::path::Path;
use std::time::Duration;

use binlog_proto::binlog::{
    Binlog, BinlogType, Pos, PullBinlogReq, WriteBinlogReq, pump_client::PumpClient,
};
use prost::Message;
use tonic::transport::Channel;

use crate::node_process::NodeProcess;

/// A pump process (see [`NodeProcess`]); killed when dropped.
pub type PumpProcess = NodeProcess;

impl NodeProcess {
    /// Starts a pump with node id `node_id` and data under `dir`, plus `extra` flags; waits until
    /// it accepts connections.
    pub fn start(
        pd_url: &str,
        dir: &Path,
        node_id: &str,
        extra: &[&str],
    ) -> anyhow::Result<PumpProcess> {
        // A flag may be given once: the defaults below yield to the caller's.
        let sets = |flag: &str| {
            extra
                .iter()
                .any(|arg| arg.trim_start_matches('-').starts_with(flag))
        };
        let mut args = vec!["-heartbeat-interval=1".to_string()];
        if !sets("fake-binlog-interval") {
            args.push("-fake-binlog-interval=1".to_string());
        }
        // Test pumps keep writing on a nearly full disk (the default floor is 10 GiB free);
        // tests of the floor itself bring their own config.
        if !sets("config") {
            let config = dir.join(format!("{node_id}.toml"));
            std::fs::create_dir_all(dir)?;
            std::fs::write(
                &config,
                "[storage]\nstop-write-at-available-space = \"64 MiB\"\n",
            )?;
            args.push(format!("-config={}", config.display()));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        NodeProcess::launch("pump", pd_url, dir, node_id, &args)
    }

    /// A gRPC client to this pump.
    pub async fn client(&self, cluster_id: u64) -> anyhow::Result<TestPumpClient> {
        TestPumpClient::connect(&self.addr, cluster_id).await
    }
}

/// A pump client for tests.
#[derive(Clone)]
pub struct TestPumpClient {
    /// The raw gRPC client.
    pub inner: PumpClient<Channel>,
    cluster_id: u64,
}

/// A pulled binlog, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    /// The entity's meta start ts.
    pub start_ts: i64,
    /// The entity's meta commit ts.
    pub commit_ts: i64,
    /// The decoded payload.
    pub binlog: Binlog,
}

impl TestPumpClient {
    /// Connects to the pump at `addr` (`host:port`).
    pub async fn connect(addr: &str, cluster_id: u64) -> anyhow::Result<TestPumpClient> {
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(TestPumpClient {
            inner: PumpClient::new(channel).max_decoding_message_size(usize::MAX),
            cluster_id,
        })
    }

    /// Writes one binlog; the error is the gRPC status message.
    pub async fn write(&mut self, binlog: &Binlog) -> Result<(), tonic::Status> {
        self.write_raw(binlog.encode_to_vec()).await
    }

    /// Writes raw payload bytes.
    pub async fn write_raw(&mut self, payload: Vec<u8>) -> Result<(), tonic::Status> {
        self.inner
            .write_binlog(WriteBinlogReq {
                cluster_id: self.cluster_id,
                payload,
            })
            .await
            .map(|_| ())
    }

    /// Writes the prewrite of a transaction.
    pub async fn prewrite(&mut self, start_ts: i64, value: &[u8]) -> Result<(), tonic::Status> {
        self.write(&Binlog {
            tp: BinlogType::Prewrite as i32,
            start_ts,
            prewrite_key: Some(b"pk".to_vec()),
            prewrite_value: Some(value.to_vec().into()),
            ..Default::default()
        })
        .await
    }

    /// Writes the commit of a transaction.
    pub async fn commit(&mut self, start_ts: i64, commit_ts: i64) -> Result<(), tonic::Status> {
        self.write(&Binlog {
            tp: BinlogType::Commit as i32,
            start_ts,
            commit_ts,
            prewrite_key: Some(b"pk".to_vec()),
            ..Default::default()
        })
        .await
    }

    /// Writes the rollback of a transaction.
    pub async fn rollback(&mut self, start_ts: i64) -> Result<(), tonic::Status> {
        self.write(&Binlog {
            tp: BinlogType::Rollback as i32,
            start_ts,
            ..Default::default()
        })
        .await
    }

    /// Pulls everything after `after` until the stream has been quiet for `quiet`, until a binlog
    /// with commit ts ≥ `until` arrived, or for at most a minute.
    pub async fn pull_until(
        &mut self,
        after: i64,
        until: i64,
        quiet: Duration,
    ) -> anyhow::Result<Vec<Pulled>> {
        let mut stream = self
            .inner
            .pull_binlogs(PullBinlogReq {
                cluster_id: self.cluster_id,
                start_from: Some(Pos {
                    suffix: 0,
                    offset: after,
                }),
            })
            .await?
            .into_inner();
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            let Ok(next) = tokio::time::timeout(quiet, stream.message()).await else {
                break;
            };
            let Some(response) = next? else { break };
            let entity = response.entity.unwrap_or_default();
            let meta = entity.meta.unwrap_or_default();
            let binlog = Binlog::decode(entity.payload)?;
            let done = meta.commit_ts >= until;
            out.push(Pulled {
                start_ts: meta.start_ts,
                commit_ts: meta.commit_ts,
                binlog,
            });
            if done {
                break;
            }
        }
        Ok(out)
    }
}
