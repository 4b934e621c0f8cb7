//! The drainer process: start-up (PD, registry, checkpoint, catalog, sink), the running
//! pipeline (collector → syncer → sink), its node record and heartbeat, the HTTP/gRPC port,
//! and the stop choreography (reference drainer.md §1.1, §8.2).
//!
//! States: a started drainer is `online`; `PUT /state/<id>/pause` and signals leave it `paused`,
//! `close` leaves it `offline`; a fatal error leaves it `paused` and exits non-zero. In every case
//! the sink is drained and a final checkpoint saved before the state is written.

mod http;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use binlog_cluster::node::Node;
use binlog_cluster::{NodeKind, NodeState, PdClient, Registry, node_id};
use binlog_loader::{DownstreamTls, Loader, LoaderConfig};
use tokio::sync::{mpsc, watch};

use crate::binlogfile::BinlogWriter;
use crate::checkpoint::file::FileCheckpoint;
use crate::checkpoint::mysql::MysqlCheckpoint;
use crate::checkpoint::store::Store;
use crate::cistern::CisternService;
use crate::collector::{self, CollectorSettings, CollectorStatus};
use crate::config::{
    CheckpointConfig, Config, DbConnection, INITIAL_COMMIT_TS_NOW, SinkConfig, SyncMode,
};
use crate::event_filter::EventFilter;
use crate::filter::Filter;
use crate::metrics::Metrics;
use crate::puller::PullerSettings;
use crate::schema::{Catalog, SchemaStatus, SchemaTracker, TidbStatusApi};
use crate::sink::{FileSink, KafkaSink, MysqlSink, Sink, SinkProbe};
use crate::syncer::{Filters, Replay, Syncer, SyncerSettings, SyncerStatus};

/// Safe mode is forced on this long after a start that cannot tell what was applied beyond the
/// checkpoint (see [`Replay::Unknown`]).
const FORCED_SAFE_MODE: Duration = Duration::from_secs(5 * 60);
/// The original saves the checkpoint at most every 3 s.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Why the drainer stopped; `Close` ends `offline`.
pub use binlog_cluster::node::StopReason;

/// A failure that stops the drainer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunError(String);

fn fatal(err: impl std::fmt::Display) -> RunError {
    RunError(err.to_string())
}

pub(crate) struct Shared {
    node: Node,
    collector: Arc<Mutex<CollectorStatus>>,
    syncer: Arc<Mutex<SyncerStatus>>,
    schema: Arc<Mutex<SchemaStatus>>,
    sink: SinkProbe,
    metrics: Metrics,
    started: Instant,
    synced_check_time: Duration,
}

/// Loader settings reaching `connection` (with its TLS), everything else at its default.
fn loader_config(connection: &DbConnection) -> LoaderConfig {
    let mut config = LoaderConfig::new(
        connection.host.clone(),
        connection.port,
        connection.user.clone(),
        connection.password.expose(),
    );
    config.tls = connection.tls.ssl_ca.as_ref().map(|ca| DownstreamTls {
        ca: ca.clone(),
        client: connection
            .tls
            .ssl_cert
            .clone()
            .zip(connection.tls.ssl_key.clone()),
    });
    config
}

async fn open_store(
    config: &Config,
    cluster_id: u64,
    initial_commit_ts: i64,
) -> Result<Store, RunError> {
    match &config.checkpoint {
        CheckpointConfig::File { dir } => Ok(Store::File(FileCheckpoint::new(
            dir.clone(),
            initial_commit_ts,
        ))),
        CheckpointConfig::Mysql {
            connection,
            schema,
            table,
        } => {
            let pool = mysql_async::Pool::new(loader_config(connection).connection_opts());
            let store = MysqlCheckpoint::open(pool, schema, table, cluster_id, initial_commit_ts)
                .await
                .map_err(|err| {
                    RunError(format!(
                        "checkpoint database {}:{}: {err}",
                        connection.host, connection.port
                    ))
                })?;
            Ok(Store::Mysql(store))
        }
    }
}

async fn open_sink(config: &Config, cluster_id: u64) -> Result<Sink, RunError> {
    match &config.sink {
        SinkConfig::Mysql(sink) => {
            let mut loader = loader_config(&sink.connection);
            loader.worker_count = config.syncer.worker_count;
            loader.batch_size = config.syncer.txn_batch;
            loader.enable_dispatch = config.syncer.enable_dispatch;
            loader.enable_detect = config.syncer.enable_causality;
            loader.safe_mode = config.syncer.safe_mode;
            loader.sql_mode = config.syncer.sql_mode.clone();
            loader.params = sink.params.clone().into_iter().collect();
            loader.read_timeout = sink.read_timeout;
            let loader = Loader::connect(loader).await.map_err(fatal)?;
            Ok(Sink::Mysql(MysqlSink::new(Arc::new(loader))))
        }
        SinkConfig::File(files) => {
            let writer = BinlogWriter::open(&files.dir).map_err(fatal)?;
            Ok(Sink::File(FileSink::new(writer, files.retention)))
        }
        SinkConfig::Kafka(kafka) => {
            let topic = kafka
                .topic_name
                .clone()
                .unwrap_or_else(|| format!("{cluster_id}_obinlog"));
            Ok(Sink::Kafka(KafkaSink::start(kafka, topic)))
        }
    }
}

/// Says which accepted settings this drainer does not act on, so nobody relies on them silently.
fn warn_unsupported(config: &Config) {
    if let SinkConfig::Mysql(sink) = &config.sink {
        if sink.merge {
            tracing::warn!("[syncer.to] merge = true is not supported; rows are applied unmerged");
        }
        if sink.sync_mode == SyncMode::Partial {
            tracing::warn!("[syncer.to] sync-mode = 2 is not supported; every column is written");
        }
    }
    if config.relay.log_dir.is_some() {
        tracing::warn!("[syncer.relay] log-dir is set, but this drainer keeps no relay log");
    }
    if config.syncer.load_schema_snapshot {
        tracing::warn!(
            "load-schema-snapshot is not supported; the schema comes from TiDB's DDL history"
        );
    }
}

/// Runs a drainer until it is stopped. Returns the reason it stopped.
pub async fn run(config: Config) -> Result<StopReason, RunError> {
    warn_unsupported(&config);
    std::fs::create_dir_all(&config.data_dir).map_err(|err| {
        RunError(format!(
            "cannot create data dir {}: {err}",
            config.data_dir.display()
        ))
    })?;
    let pd = PdClient::connect(&config.pd_urls, &config.security)
        .await
        .map_err(fatal)?;
    let registry = Registry::connect(&config.pd_urls, &config.security)
        .await
        .map_err(fatal)?;
    let (node_id, _) =
        node_id::resolve_node_id(&config.data_dir, config.node_id.as_deref(), &config.addr)
            .map_err(fatal)?;
    let now = pd.get_ts().await.map_err(fatal)?;
    let initial_commit_ts = if config.initial_commit_ts == INITIAL_COMMIT_TS_NOW {
        now
    } else {
        config.initial_commit_ts
    };

    let store = open_store(&config, pd.cluster_id(), initial_commit_ts).await?;
    let checkpoint = store.load().await.map_err(fatal)?;
    let replay = match store.load_pushed_ts().await.map_err(fatal)? {
        _ if checkpoint.consistent => Replay::Nothing,
        Some(pushed) if pushed > checkpoint.commit_ts => Replay::UpTo(pushed),
        Some(_) => Replay::Nothing,
        // Nothing saved at all: a first start.
        None if checkpoint.commit_ts == initial_commit_ts => Replay::Nothing,
        None => Replay::Unknown,
    };
    let saved_catalog = store.load_catalog().await.map_err(fatal)?;
    let catalog_saved = saved_catalog.is_some();
    let source = TidbStatusApi::new(registry.clone(), config.security.clone());
    let mut tracker = SchemaTracker::new(saved_catalog.unwrap_or_else(Catalog::new), source);
    if !catalog_saved {
        let jobs = tracker.load_history().await.map_err(fatal)?;
        tracing::info!(jobs, "no saved schema catalog: loaded TiDB's DDL history");
    }
    tracing::info!(
        commit_ts = checkpoint.commit_ts,
        consistent = checkpoint.consistent,
        schema_version = tracker.catalog().version(),
        "checkpoint loaded"
    );
    let filter = Filter::new(&config.filter).map_err(fatal)?;
    let sink = open_sink(&config, pd.cluster_id()).await?;
    let sink_probe = sink.probe();
    let schema_status = tracker.status();
    let syncer = Syncer::new(
        tracker,
        sink,
        store,
        Filters {
            tables: filter,
            events: EventFilter::new(&config.event_filter).map_err(fatal)?,
        },
        SyncerSettings {
            ignore_txn_commit_ts: config
                .syncer
                .ignore_txn_commit_ts
                .iter()
                .copied()
                .collect::<HashSet<_>>(),
            sync_ddl: config.syncer.sync_ddl,
            safe_mode: config.syncer.safe_mode,
            replay,
            forced_safe_mode: FORCED_SAFE_MODE,
            checkpoint_interval: CHECKPOINT_INTERVAL,
            sql_sink: matches!(config.sink, SinkConfig::Mysql(_)),
        },
        checkpoint,
        catalog_saved,
    );
    let syncer_status = syncer.status();
    let checkpoint_ts = syncer.checkpoint_ts();

    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|err| RunError(format!("cannot listen on {}: {err}", config.addr)))?;
    let node = Node::new(
        NodeKind::Drainer,
        node_id.clone(),
        config.advertise_addr.clone(),
        registry.clone(),
        NodeState::Online,
    );
    node.set_clock(now);
    let collector_status = Arc::new(Mutex::new(CollectorStatus::default()));
    let shared = Arc::new(Shared {
        node,
        collector: collector_status.clone(),
        syncer: syncer_status,
        schema: schema_status,
        sink: sink_probe,
        metrics: Metrics::new(),
        started: Instant::now(),
        synced_check_time: config.synced_check_time,
    });

    // Serve before registering, so a pump that sees this drainer online can notify it.
    let (notify_tx, notify_rx) = mpsc::channel(16);
    let router = http::router(shared.clone())
        .merge(tonic::service::Routes::new(CisternService::new(notify_tx)).into_axum_router());
    let (serve_stop, serve_stopped) = watch::channel(false);
    let tls = config.security.rustls_server_config().map_err(fatal)?;
    let server = tokio::spawn(binlog_cluster::shutdown::serve_tcp(
        listener,
        tls.map(|tls| (tls, config.security.clone())),
        router,
        serve_stopped,
    ));
    shared
        .node
        .publish_state(NodeState::Online, checkpoint.commit_ts)
        .await
        .map_err(|err| RunError(format!("cannot register: {err}")))?;
    tracing::info!(node_id = %node_id, addr = %config.advertise_addr, start_ts = checkpoint.commit_ts, "registered online");

    let (tasks_stop, _) = watch::channel(false);
    let heartbeat = {
        let shared = shared.clone();
        let checkpoint_ts = checkpoint_ts.clone();
        let stop = tasks_stop.subscribe();
        tokio::spawn(async move {
            binlog_cluster::node::heartbeat(
                &shared.node,
                HEARTBEAT_INTERVAL,
                || *checkpoint_ts.borrow(),
                stop,
            )
            .await
        })
    };
    let (binlogs_tx, binlogs_rx) = mpsc::channel(config.syncer.cache_binlog_count.max(1));
    let mut collector = tokio::spawn(collector::run(
        registry.clone(),
        CollectorSettings {
            puller: PullerSettings {
                cluster_id: pd.cluster_id(),
                tls: config.security.grpc_client_config().map_err(fatal)?,
                gzip: config.gzip,
            },
            detect_interval: config.detect_interval,
        },
        checkpoint.commit_ts,
        binlogs_tx,
        notify_rx,
        collector_status,
        tasks_stop.subscribe(),
    ));
    let mut syncer = tokio::spawn(syncer.run(binlogs_rx, tasks_stop.subscribe()));
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            binlog_cluster::shutdown::signalled().await;
            shared.node.request_stop(StopReason::Signal);
        });
    }

    // Run until asked to stop, or until the pipeline fails.
    let mut failure = None;
    let mut syncer_result = None;
    let reason = tokio::select! {
        reason = shared.node.stop_requested() => reason,
        result = &mut collector => {
            failure = Some(match result {
                Ok(Ok(())) => "the collector stopped".to_string(),
                Ok(Err(err)) => err.to_string(),
                Err(err) => format!("the collector task failed: {err}"),
            });
            StopReason::Signal
        }
        result = &mut syncer => {
            syncer_result = Some(result);
            StopReason::Signal
        }
    };
    tracing::info!(?reason, "stopping");
    let _ = tasks_stop.send(true);
    let syncer_result = match syncer_result {
        Some(result) => result,
        None => syncer.await,
    };
    match syncer_result {
        // Saved just now, or kept from before a DDL the downstream never confirmed.
        Ok(Ok(checkpoint)) => tracing::info!(
            commit_ts = checkpoint.commit_ts,
            "the syncer stopped; the next start resumes after this commit ts"
        ),
        Ok(Err(err)) => failure = Some(err.to_string()),
        Err(err) => failure = Some(format!("the syncer task failed: {err}")),
    }
    collector.abort();
    let _ = heartbeat.await;
    let final_state = finish(&shared, reason, *checkpoint_ts.borrow()).await;
    let _ = serve_stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    tracing::info!(state = %final_state, "drainer stopped");
    match failure {
        Some(message) => Err(RunError(message)),
        None => Ok(reason),
    }
}

/// Writes the final state: offline after close, paused otherwise.
async fn finish(shared: &Shared, reason: StopReason, checkpoint_ts: i64) -> NodeState {
    let final_state = match reason {
        StopReason::Close => NodeState::Offline,
        StopReason::Signal | StopReason::Pause => shared.node.state().final_state_on_stop(),
    };
    shared
        .node
        .publish_final_state(final_state, checkpoint_ts, reason == StopReason::Close)
        .await;
    final_state
}
