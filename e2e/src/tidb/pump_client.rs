//! A pump client that behaves like TiDB's. The upstream simulator writes every prewrite and
//! commit/rollback binlog through it, so our pumps see the traffic TiDB would send them.
//!
//! What it does (TiDB's rules, see `reference/pump.md` §6):
//! - [`TidbPumpClient::connect`] reads the cluster id from PD and lists the pumps in the
//!   registry. It fails with `no pump found in pd` when there are none. A background task
//!   watches the pumps prefix from the listing's revision; when the watch breaks it re-lists
//!   and watches again.
//! - Another background task probes, every check interval, each unavailable pump whose registry
//!   state is `online` with an empty-payload `WriteBinlog`.
//! - [`TidbPumpClient::write_prewrite`] selects, retries and falls back as in
//!   [`crate::tidb::retry`] and remembers the pump that took it.
//! - [`TidbPumpClient::write_commit`] sends a commit or rollback only to that pump, retrying
//!   every second up to the commit retry limit. It never fails, but it reports its
//!   [`CommitOutcome`] and keeps counts ([`ClientStats`]), so undelivered commits are visible.
//! - gRPC connections are made lazily per pump and dropped on `Unavailable` errors.
//!
//! This module is the thin I/O layer: the decisions live in [`crate::tidb::pump_set`],
//! [`crate::tidb::selector`] and [`crate::tidb::retry`]. It does not build binlogs, fetch
//! timestamps or talk to TiKV; the caller does that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use binlog_cluster::error_text::error_chain;
use binlog_cluster::tls::TlsError;
use binlog_cluster::{NodeKind, PdClient, PdError, Registry, RegistryError, TlsSettings};
use binlog_proto::binlog::{Binlog, WriteBinlogReq, pump_client::PumpClient};
use futures::StreamExt;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::tidb::pump_set::{Change, PumpSet, Target};
use crate::tidb::retry::{
    self, COMMIT_RETRY_INTERVAL, DEFAULT_CHECK_INTERVAL, DEFAULT_COMMIT_RETRY_LIMIT,
    DEFAULT_WRITE_TIMEOUT, ErrorClass, PREWRITE_RETRY_INTERVAL, PrewriteStep, WriteError,
};
use crate::tidb::selector::Strategy;

/// Pause before re-listing after the registry watch broke.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// The client's settings; the defaults are TiDB's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// How a prewrite picks its pump.
    pub strategy: Strategy,
    /// Per-RPC timeout, and how long a prewrite keeps retrying (TiDB's `write-timeout`, 15 s).
    pub write_timeout: Duration,
    /// How often unavailable pumps are probed (30 s).
    pub check_interval: Duration,
    /// How long a commit or rollback keeps trying its pump (10 min).
    pub commit_retry_limit: Duration,
    /// Pause between commit attempts (1 s).
    pub commit_retry_interval: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            strategy: Strategy::Range,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            check_interval: DEFAULT_CHECK_INTERVAL,
            commit_retry_limit: DEFAULT_COMMIT_RETRY_LIMIT,
            commit_retry_interval: COMMIT_RETRY_INTERVAL,
        }
    }
}

/// Why the client could not start or a prewrite failed.
#[derive(Debug, thiserror::Error)]
pub enum PumpClientError {
    /// PD did not give the cluster id.
    #[error("get cluster id from pd failed: {0}")]
    Pd(#[from] PdError),
    /// The registry could not be read.
    #[error("read pumps from pd failed: {0}")]
    Registry(#[from] RegistryError),
    /// The TLS settings could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The registry holds no pump at all.
    #[error("no pump found in pd")]
    NoPumpFound,
    /// A pump refused the binlog as too large; not retried.
    #[error("binlog data is too large: pump {pump} refused it: {error}")]
    TooLarge {
        /// The pump that refused it.
        pump: String,
        /// Its answer.
        error: String,
    },
    /// Every retry and the last-resort round failed.
    #[error("write binlog failed, the last error {last} (after {attempts} attempts)")]
    WriteFailed {
        /// RPCs tried.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// Where a prewrite landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrewriteReceipt {
    /// The node id of the pump that took it; its commit goes there too.
    pub pump: String,
    /// RPCs it took (1 = the first choice worked).
    pub attempts: u32,
}

/// What became of a commit or rollback binlog. TiDB only logs these; tests look at them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The prewrite's pump took it.
    Delivered {
        /// The pump.
        pump: String,
        /// RPCs it took.
        attempts: u32,
    },
    /// The pump did not take it within the commit retry limit.
    GaveUp {
        /// The pump.
        pump: String,
        /// RPCs tried.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// No prewrite of this start ts went through this client: dropped, as TiDB does.
    UnknownPump,
}

/// Counters of everything the client wrote; a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// `WriteBinlog` RPCs sent, probes excluded.
    pub write_rpcs: u64,
    /// Prewrites that succeeded.
    pub prewrites_ok: u64,
    /// Prewrites that returned an error.
    pub prewrites_failed: u64,
    /// Commits/rollbacks delivered.
    pub commits_delivered: u64,
    /// Commits/rollbacks still being retried.
    pub commits_pending: u64,
    /// Commits/rollbacks abandoned after the retry limit.
    pub commits_given_up: u64,
    /// Commits/rollbacks dropped because their prewrite's pump is unknown.
    pub commits_unknown_pump: u64,
    /// Probes that brought a pump back.
    pub probes_ok: u64,
}

#[derive(Debug, Default)]
struct Counters {
    write_rpcs: AtomicU64,
    prewrites_ok: AtomicU64,
    prewrites_failed: AtomicU64,
    commits_delivered: AtomicU64,
    commits_pending: AtomicU64,
    commits_given_up: AtomicU64,
    commits_unknown_pump: AtomicU64,
    probes_ok: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A cached gRPC client to one pump, with the address it was made for.
struct Connection {
    host: String,
    client: PumpClient<Channel>,
}

/// State shared by the handle and its background tasks.
struct Shared {
    cluster_id: u64,
    config: ClientConfig,
    scheme: &'static str,
    tls: Option<ClientTlsConfig>,
    registry: Registry,
    pumps: Mutex<PumpSet>,
    connections: Mutex<HashMap<String, Connection>>,
    counters: Counters,
}

/// Aborts the background tasks when the last handle goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// TiDB's pump client. Cheap to clone; clones share pumps, connections and counters. The
/// background tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct TidbPumpClient {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for TidbPumpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TidbPumpClient")
            .field("cluster_id", &self.shared.cluster_id)
            .field("config", &self.shared.config)
            .field("available", &self.available_pumps())
            .finish()
    }
}

impl TidbPumpClient {
    /// Reads the cluster id from PD and the pumps from the registry, then starts watching the
    /// registry and probing unavailable pumps. Fails with `no pump found in pd` if no pump is
    /// registered.
    pub async fn connect(
        pd_urls: &[String],
        tls: &TlsSettings,
        config: ClientConfig,
    ) -> Result<TidbPumpClient, PumpClientError> {
        let cluster_id = PdClient::connect(pd_urls, tls).await?.cluster_id();
        let registry = Registry::connect(pd_urls, tls).await?;
        let (listing, revision) = registry.list(NodeKind::Pump).await?;
        if listing.is_empty() {
            return Err(PumpClientError::NoPumpFound);
        }
        let pumps = PumpSet::new(config.strategy, listing);
        tracing::info!(
            cluster_id,
            strategy = %config.strategy,
            available = ?pumps.available(),
            unavailable = ?pumps.unavailable(),
            "pump client started"
        );
        let shared = Arc::new(Shared {
            cluster_id,
            scheme: tls.scheme(),
            tls: tls.grpc_client_config()?,
            config,
            registry,
            pumps: Mutex::new(pumps),
            connections: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        });
        let tasks = Tasks(vec![
            tokio::spawn(watch_loop(shared.clone(), revision)),
            tokio::spawn(probe_loop(shared.clone())),
        ]);
        Ok(TidbPumpClient {
            shared,
            _tasks: Arc::new(tasks),
        })
    }

    /// The PD cluster id sent with every write.
    pub fn cluster_id(&self) -> u64 {
        self.shared.cluster_id
    }

    /// The node ids of the pumps prewrites may go to, in selection order.
    pub fn available_pumps(&self) -> Vec<String> {
        self.shared.pumps().available().to_vec()
    }

    /// The node ids of known pumps that prewrites avoid.
    pub fn unavailable_pumps(&self) -> Vec<String> {
        self.shared.pumps().unavailable()
    }

    /// The pump holding the prewrite of `start_ts`, while its commit has not been written.
    pub fn prewrite_pump(&self, start_ts: i64) -> Option<String> {
        self.shared
            .pumps()
            .prewrite_pump(start_ts)
            .map(str::to_string)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientStats {
            write_rpcs: get(&c.write_rpcs),
            prewrites_ok: get(&c.prewrites_ok),
            prewrites_failed: get(&c.prewrites_failed),
            commits_delivered: get(&c.commits_delivered),
            commits_pending: get(&c.commits_pending),
            commits_given_up: get(&c.commits_given_up),
            commits_unknown_pump: get(&c.commits_unknown_pump),
            probes_ok: get(&c.probes_ok),
        }
    }

    /// Writes a prewrite binlog with TiDB's selection, retry and failover rules, and remembers
    /// the pump that took it for the commit.
    pub async fn write_prewrite(
        &self,
        binlog: &Binlog,
    ) -> Result<PrewriteReceipt, PumpClientError> {
        let result = self.prewrite(binlog).await;
        let counter = match &result {
            Ok(_) => &self.shared.counters.prewrites_ok,
            Err(err) => {
                tracing::warn!(
                    start_ts = binlog.start_ts,
                    error = %err,
                    "write prewrite binlog failed"
                );
                &self.shared.counters.prewrites_failed
            }
        };
        bump(counter);
        result
    }

    async fn prewrite(&self, binlog: &Binlog) -> Result<PrewriteReceipt, PumpClientError> {
        let shared = &self.shared;
        let started = Instant::now();
        let payload = binlog.encode_to_vec();
        let mut attempts = 0u32;
        let mut retry = 0u32;
        let mut last = String::from("no available pump");
        loop {
            let Some(target) = shared.pumps().select(binlog.start_ts, retry) else {
                break;
            };
            attempts += 1;
            match shared.write(&target, payload.clone()).await {
                Ok(()) => return Ok(shared.took_prewrite(binlog.start_ts, target, attempts)),
                Err(err) => {
                    let available = shared.pumps().available().len();
                    let step = retry::after_prewrite_error(
                        err.class(),
                        started.elapsed(),
                        shared.config.write_timeout,
                        retry,
                        available,
                    );
                    tracing::debug!(
                        pump = %target.id,
                        retry,
                        error = %err,
                        ?step,
                        "prewrite attempt failed"
                    );
                    match step {
                        PrewriteStep::Fail => {
                            return Err(PumpClientError::TooLarge {
                                pump: target.id,
                                error: err.to_string(),
                            });
                        }
                        PrewriteStep::LastResort => {
                            last = err.to_string();
                            break;
                        }
                        PrewriteStep::Retry => {
                            last = err.to_string();
                            tokio::time::sleep(PREWRITE_RETRY_INTERVAL).await;
                            retry += 1;
                        }
                    }
                }
            }
        }
        // Last resort: every pump the registry calls online, over a fresh connection.
        let online = shared.pumps().online_targets();
        for target in online {
            shared.drop_connection(&target.id);
            attempts += 1;
            match shared.write(&target, payload.clone()).await {
                Ok(()) => {
                    if shared.pumps().mark_available(&target.id) {
                        tracing::info!(
                            pump = %target.id,
                            "pump is available again after a last-resort write"
                        );
                    }
                    return Ok(shared.took_prewrite(binlog.start_ts, target, attempts));
                }
                Err(err) => last = err.to_string(),
            }
        }
        Err(PumpClientError::WriteFailed { attempts, last })
    }

    /// Writes a commit or rollback binlog to the pump that took its prewrite, retrying every
    /// commit retry interval up to the commit retry limit. Never fails; the outcome is logged,
    /// counted and returned. Run it in a task to commit asynchronously as TiDB does.
    pub async fn write_commit(&self, binlog: &Binlog) -> CommitOutcome {
        let shared = &self.shared;
        let counters = &shared.counters;
        let Some(mut target) = shared.pumps().take_prewrite(binlog.start_ts) else {
            bump(&counters.commits_unknown_pump);
            tracing::warn!(
                start_ts = binlog.start_ts,
                "no pump took the prewrite of this transaction; its commit binlog is dropped"
            );
            return CommitOutcome::UnknownPump;
        };
        bump(&counters.commits_pending);
        let payload = binlog.encode_to_vec();
        let started = Instant::now();
        let mut attempts = 0u32;
        let outcome = loop {
            attempts += 1;
            match shared.write(&target, payload.clone()).await {
                Ok(()) => {
                    bump(&counters.commits_delivered);
                    break CommitOutcome::Delivered {
                        pump: target.id,
                        attempts,
                    };
                }
                Err(err) => {
                    let elapsed = started.elapsed();
                    if !retry::commit_retries(
                        err.class(),
                        elapsed,
                        shared.config.commit_retry_limit,
                    ) {
                        bump(&counters.commits_given_up);
                        tracing::error!(
                            pump = %target.id,
                            start_ts = binlog.start_ts,
                            commit_ts = binlog.commit_ts,
                            attempts,
                            error = %err,
                            "giving up on a commit binlog; \
                             the pump's resolver has to settle the transaction"
                        );
                        break CommitOutcome::GaveUp {
                            pump: target.id,
                            attempts,
                            last_error: err.to_string(),
                        };
                    }
                    tracing::warn!(
                        pump = %target.id,
                        start_ts = binlog.start_ts,
                        attempts,
                        error = %err,
                        "write commit binlog failed; retrying"
                    );
                    tokio::time::sleep(shared.config.commit_retry_interval).await;
                    // The pump may have come back at another address.
                    if let Some(current) = shared.pumps().target(&target.id) {
                        target = current;
                    }
                }
            }
        };
        counters.commits_pending.fetch_sub(1, Ordering::Relaxed);
        outcome
    }
}

impl Shared {
    fn pumps(&self) -> MutexGuard<'_, PumpSet> {
        self.pumps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn connections(&self) -> MutexGuard<'_, HashMap<String, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn took_prewrite(&self, start_ts: i64, target: Target, attempts: u32) -> PrewriteReceipt {
        let pump = target.id.clone();
        self.pumps().remember_prewrite(start_ts, target);
        PrewriteReceipt { pump, attempts }
    }

    fn drop_connection(&self, id: &str) {
        self.connections().remove(id);
    }

    /// The cached client for a pump, made (without connecting yet) on first use or when its
    /// address changed.
    fn connection(&self, target: &Target) -> Result<PumpClient<Channel>, WriteError> {
        let mut connections = self.connections();
        if let Some(existing) = connections.get(&target.id)
            && existing.host == target.host
        {
            return Ok(existing.client.clone());
        }
        let invalid = |message: String| WriteError {
            code: tonic::Code::InvalidArgument,
            message,
        };
        let url = format!("{}://{}", self.scheme, target.host);
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|err| invalid(format!("invalid pump address {url}: {err}")))?
            .connect_timeout(self.config.write_timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|err| invalid(format!("TLS for {url}: {}", error_chain(&err))))?;
        }
        let client = PumpClient::new(endpoint.connect_lazy());
        connections.insert(
            target.id.clone(),
            Connection {
                host: target.host.clone(),
                client: client.clone(),
            },
        );
        Ok(client)
    }

    /// One `WriteBinlog` RPC, bounded by the write timeout, with error bookkeeping.
    async fn write(&self, target: &Target, payload: Vec<u8>) -> Result<(), WriteError> {
        bump(&self.counters.write_rpcs);
        let result = self.send(target, payload).await;
        match &result {
            Ok(()) => self.pumps().record_success(&target.id),
            Err(err) => {
                if err.class() == ErrorClass::Unavailable {
                    self.drop_connection(&target.id);
                }
                if self.pumps().record_error(&target.id) {
                    tracing::warn!(
                        pump = %target.id,
                        error = %err,
                        "pump failed too often in a row; it is unavailable now"
                    );
                }
            }
        }
        result
    }

    async fn send(&self, target: &Target, payload: Vec<u8>) -> Result<(), WriteError> {
        let mut client = self.connection(target)?;
        let request = WriteBinlogReq {
            cluster_id: self.cluster_id,
            payload,
        };
        let timeout = self.config.write_timeout;
        match tokio::time::timeout(timeout, client.write_binlog(request)).await {
            Err(_) => Err(WriteError {
                code: tonic::Code::DeadlineExceeded,
                message: format!(
                    "write binlog to pump {} at {} timed out after {timeout:?}",
                    target.id, target.host
                ),
            }),
            Ok(Err(status)) => Err(WriteError {
                code: transport_code(&status),
                message: status_text(&status),
            }),
            Ok(Ok(response)) => {
                let errmsg = response.into_inner().errmsg;
                if errmsg.is_empty() {
                    Ok(())
                } else {
                    Err(WriteError {
                        code: tonic::Code::Unknown,
                        message: errmsg,
                    })
                }
            }
        }
    }

    /// Applies a registry change and drops connections that it made stale.
    fn apply(&self, id: &str, change: &Change) {
        match change {
            Change::Unchanged => return,
            Change::Removed | Change::Moved => self.drop_connection(id),
            _ => {}
        }
        let available = self.pumps().available().to_vec();
        tracing::info!(pump = %id, ?change, ?available, "pump set changed");
    }
}

/// The code TiDB's client (grpc-go) would see. tonic reports an HTTP/2 connection closed with
/// `ENHANCE_YOUR_CALM` as `ResourceExhausted`, the code a pump answers a too-large binlog with,
/// which is never retried; grpc-go reports a lost connection as `Unavailable`, which is.
fn transport_code(status: &tonic::Status) -> tonic::Code {
    let from_transport = std::error::Error::source(status).is_some();
    match status.code() {
        tonic::Code::ResourceExhausted if from_transport => tonic::Code::Unavailable,
        code => code,
    }
}

/// A status's message, with the transport cause when tonic hides it.
fn status_text(status: &tonic::Status) -> String {
    let message = status.message().to_string();
    match std::error::Error::source(status) {
        Some(source) => {
            let cause = error_chain(source);
            if message.is_empty() {
                cause
            } else if message.ends_with(&cause) {
                message
            } else {
                format!("{message}: {cause}")
            }
        }
        None => message,
    }
}

/// Follows the registry: watch from the listing's revision; when the watch breaks, re-list
/// (reconciling the set) and watch again.
async fn watch_loop(shared: Arc<Shared>, mut revision: i64) {
    loop {
        match shared.registry.watch(NodeKind::Pump, revision + 1).await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(event) => {
                            let id = match &event {
                                binlog_cluster::RegistryEvent::Put(status) => {
                                    status.node_id.clone()
                                }
                                binlog_cluster::RegistryEvent::Delete(id) => id.clone(),
                            };
                            let change = shared.pumps().apply(&event);
                            shared.apply(&id, &change);
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "pump watch broke; listing again");
                            break;
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot watch the pumps; listing again"),
        }
        loop {
            tokio::time::sleep(REWATCH_DELAY).await;
            match shared.registry.list(NodeKind::Pump).await {
                Ok((listing, listed_at)) => {
                    let changes = shared.pumps().reconcile(listing);
                    for (id, change) in &changes {
                        shared.apply(id, change);
                    }
                    revision = listed_at;
                    break;
                }
                Err(err) => tracing::warn!(error = %err, "cannot list the pumps"),
            }
        }
    }
}

/// Every check interval, probes each unavailable pump whose registry state is online with an
/// empty payload; a success makes it available.
async fn probe_loop(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(shared.config.check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let targets = shared.pumps().probe_targets();
        for target in targets {
            match shared.send(&target, Vec::new()).await {
                Ok(()) => {
                    if shared.pumps().mark_available(&target.id) {
                        bump(&shared.counters.probes_ok);
                        tracing::info!(
                            pump = %target.id,
                            "probe succeeded; pump is available again"
                        );
                    }
                }
                Err(err) => {
                    if err.class() == ErrorClass::Unavailable {
                        shared.drop_connection(&target.id);
                    }
                    tracing::debug!(pump = %target.id, error = %err, "probe failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_the_pump_closed_is_retried_but_a_refused_message_is_not() {
        let calm =
            tonic::Status::from_error(Box::new(h2::Error::from(h2::Reason::ENHANCE_YOUR_CALM)));
        assert_eq!(calm.code(), tonic::Code::ResourceExhausted);
        assert_eq!(transport_code(&calm), tonic::Code::Unavailable);
        let refused = tonic::Status::resource_exhausted("grpc: received message larger than max");
        assert_eq!(transport_code(&refused), tonic::Code::ResourceExhausted);
    }
}
