//! The running pump: one TCP port serving gRPC (`binlog.Pump`) and the HTTP API side by side, the
//! background loops (heartbeat, fake binlogs, GC, disk watch), and the stop choreography
//! (signal → paused, `pause` → paused, `close` → wait for drainers → offline).

mod connection;
mod grpc;
mod grpc_wire;
mod http;
mod loops;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::serve::ListenerExt;
use binlog_cluster::node::Node;
use binlog_cluster::tls_server::TlsListener;
use binlog_cluster::{NodeKind, NodeState, PdClient, Registry, node_id, urls};
use binlog_proto::binlog::{Binlog, BinlogType};
use prost::Message;
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::disk::{self, DataDirLock};
use crate::metrics::Metrics;
use crate::node::{self, LaggingDrainer};
use crate::storage::{self, BinlogKind, BinlogMeta, Storage};

/// Why the pump stops; `Close` ends `offline` once every drainer has this pump's data.
pub use binlog_cluster::node::StopReason;

/// How a pump run ended.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A new (or formerly offline) pump could not notify the online drainers; it re-registered
    /// `offline` and must exit with code 2.
    #[error("notify drainers failed: {0}")]
    NotifyFailed(String),
    /// Anything else that kept the pump from starting or running.
    #[error("{0}")]
    Fatal(String),
}

fn fatal(err: impl std::fmt::Display) -> RunError {
    RunError::Fatal(err.to_string())
}

/// What every request handler and loop shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) cluster_id: u64,
    pub(crate) node: Node,
    pub(crate) storage: Arc<Storage>,
    pub(crate) pd: PdClient,
    pub(crate) metrics: Metrics,
    /// Set by any WriteBinlog; the fake-binlog loop clears it each tick.
    pub(crate) written: AtomicBool,
    /// Free bytes on the data dir's filesystem, refreshed by the disk loop.
    pub(crate) available_bytes: AtomicU64,
    /// Set when background loops must end.
    pub(crate) loops_stop: watch::Sender<bool>,
    /// Set when pull streams must end (after the final state is written).
    pub(crate) pulls_closed: Arc<AtomicBool>,
    pub(crate) gc_trigger: Notify,
    pub(crate) gc_running: AtomicBool,
    /// While closing: the drainers that keep this pump from going offline.
    pub(crate) offline_wait: Mutex<Option<Vec<LaggingDrainer>>>,
}

/// A write refused before it reached storage, or that storage failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("cluster ID are mismatch, {got} vs {want}")]
    ClusterMismatch { got: u64, want: u64 },
    #[error("unmarshal binlog failed: {0}")]
    Malformed(prost::DecodeError),
    #[error("no online: {0}")]
    NotOnline(NodeState),
    #[error("no available space, available: {available}, StopWriteAtAvailableSpace: {threshold}")]
    DiskFull { available: u64, threshold: u64 },
    #[error("{0}")]
    Storage(#[from] storage::StorageError),
}

impl Shared {
    /// Validates and stores one binlog; returns once it is durable.
    pub(crate) async fn write(
        &self,
        cluster_id: u64,
        payload: Vec<u8>,
        internal: bool,
    ) -> Result<(), WriteError> {
        if cluster_id != self.cluster_id {
            return Err(WriteError::ClusterMismatch {
                got: cluster_id,
                want: self.cluster_id,
            });
        }
        let meta = BinlogMeta::decode(&payload).map_err(WriteError::Malformed)?;
        if meta.kind == BinlogKind::Prewrite && !internal {
            let state = self.node.state();
            if state != NodeState::Online {
                return Err(WriteError::NotOnline(state));
            }
        }
        let threshold = self.config.storage.stop_write_at_available_space;
        let available = self.available_bytes.load(Ordering::Relaxed);
        if !meta.is_fake() && available <= threshold {
            return Err(WriteError::DiskFull {
                available,
                threshold,
            });
        }
        let size = payload.len();
        self.storage.write_async(meta, payload).await?;
        self.metrics.write_size_single.observe(size as f64);
        Ok(())
    }

    /// Writes a fake binlog (start = commit = a fresh timestamp) to advance this pump's
    /// watermark; returns its ts.
    pub(crate) async fn write_fake_binlog(&self) -> Result<i64, String> {
        let ts = self.pd.get_ts().await.map_err(|e| e.to_string())?;
        let binlog = Binlog {
            tp: BinlogType::Rollback as i32,
            start_ts: ts,
            commit_ts: ts,
            ..Default::default()
        };
        self.write(self.cluster_id, binlog.encode_to_vec(), true)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ts)
    }
}

/// Runs a pump until it is stopped. Returns the reason it stopped.
pub async fn run(config: Config) -> Result<StopReason, RunError> {
    let _lock = DataDirLock::acquire(&config.data_dir).map_err(fatal)?;
    let pd_urls = urls::parse_pd_urls(&config.pd_urls, config.security.enabled()).map_err(fatal)?;
    let pd = PdClient::connect(&pd_urls, &config.security)
        .await
        .map_err(fatal)?;
    let registry = Registry::connect(&pd_urls, &config.security)
        .await
        .map_err(fatal)?;
    let (node_id, _) =
        node_id::resolve_node_id(&config.data_dir, config.node_id.as_deref(), &config.addr)
            .map_err(fatal)?;
    let previous = Node::previous_state(&registry, NodeKind::Pump, &node_id)
        .await
        .map_err(fatal)?;

    let storage_dir: PathBuf = config.data_dir.clone();
    let options = storage::Options {
        sync_log: config.storage.sync_log,
        ..Default::default()
    };
    let storage = tokio::task::spawn_blocking(move || Storage::open(storage_dir, options))
        .await
        .map_err(fatal)?
        .map_err(|e| RunError::Fatal(format!("cannot open storage: {e}")))?;
    let storage = Arc::new(storage);
    let (_, available) = disk::space(&config.data_dir).map_err(fatal)?;

    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|e| RunError::Fatal(format!("cannot listen on {}: {e}", config.addr)))?;

    let node = Node::new(
        NodeKind::Pump,
        node_id.clone(),
        config.advertise_addr.clone(),
        registry,
        NodeState::Online,
    );
    let (loops_stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        cluster_id: pd.cluster_id(),
        config,
        node,
        storage,
        pd,
        metrics: Metrics::new(),
        written: AtomicBool::new(false),
        available_bytes: AtomicU64::new(available),
        loops_stop,
        pulls_closed: Arc::new(AtomicBool::new(false)),
        gc_trigger: Notify::new(),
        gc_running: AtomicBool::new(false),
        offline_wait: Mutex::new(None),
    });

    // Register online with a real timestamp, then notify drainers if this pump is new to them.
    let ts = shared.pd.get_ts().await.map_err(fatal)?;
    shared.node.set_clock(ts);
    shared
        .node
        .publish_state(NodeState::Online, shared.storage.max_commit_ts())
        .await
        .map_err(|e| RunError::Fatal(format!("cannot register: {e}")))?;
    tracing::info!(node_id = %node_id, previous = %previous, addr = %shared.config.advertise_addr, "registered online");
    if previous == NodeState::Offline
        && let Err(err) = node::notify_drainers(&shared.node, &shared.config.security).await
    {
        let _ = shared
            .node
            .publish_state(NodeState::Offline, shared.storage.max_commit_ts())
            .await;
        return Err(RunError::NotifyFailed(err));
    }

    let loops = loops::spawn_all(shared.clone());
    let (serve_stop, serve_stopped) = watch::channel(false);
    let router = http::router(shared.clone());
    let tls = shared
        .config
        .security
        .rustls_server_config()
        .map_err(fatal)?;
    let mut servers = vec![match tls {
        Some(tls) => tokio::spawn(connection::serve(
            TlsListener::new(listener, tls, shared.config.security.clone()),
            shared.clone(),
            router.clone(),
            serve_stopped.clone(),
        )),
        None => tokio::spawn(connection::serve(
            listener.tap_io(binlog_cluster::shutdown::set_nodelay),
            shared.clone(),
            router.clone(),
            serve_stopped.clone(),
        )),
    }];
    if let Some(path) = shared.config.socket_path() {
        // A stale socket file from a previous run would make bind fail.
        let _ = std::fs::remove_file(&path);
        let unix = tokio::net::UnixListener::bind(&path).map_err(|e| {
            RunError::Fatal(format!(
                "cannot listen on unix socket {}: {e}",
                path.display()
            ))
        })?;
        servers.push(tokio::spawn(connection::serve(
            unix,
            shared.clone(),
            router,
            serve_stopped,
        )));
    }
    tokio::spawn(watch_signals(shared.clone()));

    let reason = shared.node.stop_requested().await;
    tracing::info!(?reason, "stopping");
    let _ = shared.loops_stop.send(true);
    for handle in loops {
        let _ = handle.await;
    }
    let final_state = finish(&shared, reason).await;
    shared.pulls_closed.store(true, Ordering::Relaxed);
    let _ = serve_stop.send(true);
    if tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(servers))
        .await
        .is_err()
    {
        tracing::warn!("the server did not stop within 10 s; closing anyway");
    }
    let storage = shared.storage.clone();
    let _ = tokio::task::spawn_blocking(move || storage.close()).await;
    tracing::info!(state = %final_state, "pump stopped");
    Ok(reason)
}

/// Writes the final state: paused after a signal or pause, offline after close once every
/// drainer has this pump's data.
async fn finish(shared: &Shared, reason: StopReason) -> NodeState {
    let final_state = match reason {
        StopReason::Close => {
            wait_safe_to_offline(shared).await;
            NodeState::Offline
        }
        StopReason::Signal | StopReason::Pause => shared.node.state().final_state_on_stop(),
    };
    shared
        .node
        .publish_final_state(
            final_state,
            shared.storage.max_commit_ts(),
            reason == StopReason::Close,
        )
        .await;
    final_state
}

/// Waits until this pump's data is fully readable (a fake binlog passed the watermark and no
/// prewrite waits for its commit) and every drainer that is not offline has consumed it.
async fn wait_safe_to_offline(shared: &Shared) {
    let fake_ts = loop {
        match shared.write_fake_binlog().await {
            Ok(ts) => break ts,
            Err(err) => {
                tracing::warn!(error = %err, "offline: cannot write a fake binlog; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while shared.storage.max_commit_ts() < fake_ts || !shared.storage.all_matched() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let target = shared.storage.max_commit_ts();
    loop {
        match node::lagging_drainers(&shared.node, target).await {
            Ok(lagging) if lagging.is_empty() => break,
            Ok(lagging) => {
                tracing::info!(
                    target,
                    ?lagging,
                    "offline: waiting for drainers to consume this pump's data"
                );
                *shared
                    .offline_wait
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(lagging);
                // Keep this pump's watermark moving so merging drainers can pass it.
                let _ = shared.write_fake_binlog().await;
            }
            Err(err) => tracing::warn!(error = %err, "offline: cannot read drainer checkpoints"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    *shared
        .offline_wait
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
}

async fn watch_signals(shared: Arc<Shared>) {
    binlog_cluster::shutdown::signalled().await;
    shared.node.request_stop(StopReason::Signal);
}
