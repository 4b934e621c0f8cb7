//! The syncer: takes the merged binlog stream, keeps the schema catalog in step, translates and
//! filters, hands transactions to the sink, and saves the checkpoint only over what the sink
//! confirmed (reference drainer.md §1.5, §4.5 gating, §5.4, §5.5).
//!
//! DDL is a barrier: the syncer waits until the sink confirmed everything before a DDL and saves
//! the checkpoint there, runs the DDL alone, then saves the catalog and the checkpoint at once, so
//! a saved catalog always matches a saved position and a restart needs no DDL history.
//!
//! A stop waits at most [`STOP_WAIT`] for each of three things in turn: the step under way (a
//! binlog being handled, a checkpoint being saved), the sink writing what it holds, and the
//! final checkpoint. What it gives up on is past the checkpoint and is written again after a
//! restart, so a dead or frozen downstream does not keep the drainer from stopping and loses
//! nothing. A DDL the sink had not confirmed keeps the checkpoint (and the catalog) saved right
//! before it: the next start runs it again.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use binlog_proto::binlog::PrewriteValue;
use prost::Message;
use tokio::sync::{mpsc, watch};

use crate::checkpoint::store::Store;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::event_filter::EventFilter;
use crate::filter::Filter;
use crate::progress::{OutOfOrder, Progress};
use crate::puller::PulledBinlog;
use crate::schema::{JobOutcome, SchemaError, SchemaSource, SchemaTracker};
use crate::sink::{Closed, DdlStatement, Sink, SinkError};
use crate::translate::TranslateError;

/// `ddl_schema_state` of the early binlog TiDB writes while dropping a column.
const STATE_DELETE_ONLY: i32 = 1;

/// How long a stop waits for each of: the step under way, the sink, the final checkpoint. Three
/// of them fit in the 30 s Kubernetes gives a pod before killing it.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// Whether a step (a binlog's handling, or all of them) ran to its end or a stop cut it short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handling {
    Done,
    Interrupted,
}

/// Why the syncer stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("saving the checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    OutOfOrder(#[from] OutOfOrder),
    #[error(
        "the final checkpoint could not be saved within {seconds} s of stopping (the checkpoint \
         store does not answer); the next start resumes from commit ts {commit_ts}"
    )]
    FinalCheckpoint { seconds: u64, commit_ts: i64 },
}

/// Syncer settings.
#[derive(Debug, Clone)]
pub struct SyncerSettings {
    /// Binlogs dropped outright (DDL jobs still reach the catalog, unexecuted).
    pub ignore_txn_commit_ts: HashSet<i64>,
    /// Execute DDL downstream.
    pub sync_ddl: bool,
    /// Configured safe mode.
    pub safe_mode: bool,
    /// What may have been applied beyond the checkpoint before this start.
    pub replay: Replay,
    /// With [`Replay::Unknown`], safe mode is forced on for this long after the start.
    pub forced_safe_mode: Duration,
    /// At most this long between checkpoint saves while progress is made.
    pub checkpoint_interval: Duration,
    /// Whether the sink executes SQL (skipped DDL still reaches it to refresh cached tables).
    pub sql_sink: bool,
}

/// Which changes reach the sink: the schema/table filter and the binlog event filter.
pub struct Filters {
    pub tables: Filter,
    pub events: EventFilter,
}

/// What a restart may re-apply: transactions after the checkpoint that the sink may already
/// have applied before the stop. They are re-applied in safe mode (idempotent statements); later
/// ones in the configured mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// A clean stop, or nothing was ever handed to the sink beyond the checkpoint.
    Nothing,
    /// Nothing above this commit ts was handed to the sink (the saved push limit).
    UpTo(i64),
    /// No push limit was saved (a checkpoint of another drainer): safe mode for a while, as the
    /// original does.
    Unknown,
}

/// How far ahead of a transaction the push limit is saved (10 s of TSO time), so it is saved
/// about once per 10 s of upstream time rather than once per transaction.
const PUSH_LIMIT_MARGIN: i64 = 10_000 << 18;

/// What `/status` shows of the syncer.
#[derive(Debug, Clone, Default)]
pub struct SyncerStatus {
    /// The saved checkpoint.
    pub checkpoint_ts: i64,
    /// When the sink last confirmed a write.
    pub last_applied: Option<Instant>,
    /// A transaction waiting for its table to appear in TiDB's DDL history.
    pub trouble: Option<String>,
}

pub struct Syncer<S> {
    tracker: SchemaTracker<S>,
    sink: Sink,
    store: Store,
    filter: Filter,
    events: EventFilter,
    settings: SyncerSettings,
    progress: Progress,
    replay: Replay,
    push_limit: i64,
    saved: Checkpoint,
    saved_catalog_version: Option<i64>,
    /// The commit ts of the last DDL whose job reached the catalog (or was about to): while the
    /// checkpoint is below it, the catalog may be ahead of what the sink confirmed.
    last_ddl_ts: i64,
    status: Arc<Mutex<SyncerStatus>>,
    checkpoint_ts: watch::Sender<i64>,
}

impl<S: SchemaSource> Syncer<S> {
    /// A syncer continuing from `checkpoint`, whose catalog is `tracker`'s (saved or rebuilt).
    pub fn new(
        tracker: SchemaTracker<S>,
        sink: Sink,
        store: Store,
        filters: Filters,
        settings: SyncerSettings,
        checkpoint: Checkpoint,
        catalog_saved: bool,
    ) -> Syncer<S> {
        let (checkpoint_ts, _) = watch::channel(checkpoint.commit_ts);
        let push_limit = match settings.replay {
            Replay::UpTo(ts) => ts.max(checkpoint.commit_ts),
            Replay::Nothing | Replay::Unknown => checkpoint.commit_ts,
        };
        Syncer {
            replay: settings.replay,
            push_limit,
            saved_catalog_version: catalog_saved.then(|| tracker.catalog().version()),
            last_ddl_ts: 0,
            tracker,
            sink,
            store,
            filter: filters.tables,
            events: filters.events,
            settings,
            progress: Progress::new(checkpoint.commit_ts),
            saved: checkpoint,
            status: Arc::new(Mutex::new(SyncerStatus {
                checkpoint_ts: checkpoint.commit_ts,
                ..SyncerStatus::default()
            })),
            checkpoint_ts,
        }
    }

    pub fn status(&self) -> Arc<Mutex<SyncerStatus>> {
        self.status.clone()
    }

    /// The saved checkpoint ts, as it moves.
    pub fn checkpoint_ts(&self) -> watch::Receiver<i64> {
        self.checkpoint_ts.subscribe()
    }

    /// Runs until `input` ends or `stop` fires, then closes the sink and saves the checkpoint
    /// (consistent when nothing was cut short). An error stops it at once (the checkpoint stays
    /// at the last confirmed write).
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<PulledBinlog>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Checkpoint, SyncError> {
        // The steps see the stop between two steps (and inside a few waits); this view of it
        // bounds the step under way once the stop came.
        let mut steps_stop = stop.clone();
        let steps = self.steps(&mut input, &mut steps_stop);
        let interrupted = unless_stopped_long(steps, &mut stop).await? == Handling::Interrupted;
        self.finish(interrupted).await
    }

    /// Saves the start position, then handles binlogs, confirmations and periodic saves until
    /// `input` ends or `stop` fires between two steps; [`Handling::Interrupted`] when a step saw
    /// the stop and gave up.
    async fn steps(
        &mut self,
        input: &mut mpsc::Receiver<PulledBinlog>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Handling, SyncError> {
        // Saved at once, so a restart before the first periodic save resumes from this start
        // position (the original would take a fresh "now" and skip what came in between).
        self.save(false).await?;
        let forced = self.replay == Replay::Unknown
            && !self.settings.safe_mode
            && !self.settings.forced_safe_mode.is_zero();
        let replaying = matches!(self.replay, Replay::UpTo(_));
        self.sink
            .set_safe_mode(self.settings.safe_mode || forced || replaying);
        let safe_mode_ends = tokio::time::sleep(self.settings.forced_safe_mode);
        tokio::pin!(safe_mode_ends);
        let mut safe_mode_forced = forced;
        let mut ticker = tokio::time::interval(self.settings.checkpoint_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                confirmed = self.sink.confirmations() => self.confirm(confirmed?)?,
                item = input.recv() => match item {
                    Some(item) => {
                        if self.handle(item, stop).await? == Handling::Interrupted {
                            return Ok(Handling::Interrupted);
                        }
                    }
                    None => return Ok(Handling::Done),
                },
                _ = ticker.tick() => {
                    if self.progress.safe_ts() > self.saved.commit_ts {
                        self.save(false).await?;
                    }
                }
                _ = &mut safe_mode_ends, if safe_mode_forced => {
                    safe_mode_forced = false;
                    self.sink.set_safe_mode(self.settings.safe_mode);
                }
                _ = binlog_cluster::shutdown::stopped(stop) => return Ok(Handling::Done),
            }
        }
    }

    /// Closes the sink and saves the final checkpoint, each within [`STOP_WAIT`].
    async fn finish(mut self, interrupted: bool) -> Result<Checkpoint, SyncError> {
        let closed = match self.sink.close(STOP_WAIT).await {
            Ok(closed) => closed,
            // What was cut short may leave the sink unable to finish (a transaction's last part
            // never came); it lies past the checkpoint either way.
            Err(err) if interrupted => {
                tracing::warn!(error = %err, "the sink stopped with an error after the stop cut a binlog short");
                Closed::default()
            }
            Err(err) => return Err(err.into()),
        };
        self.confirm(closed.confirmed)?;
        if self.progress.safe_ts() < self.last_ddl_ts {
            tracing::warn!(
                ddl_commit_ts = self.last_ddl_ts,
                checkpoint_ts = self.saved.commit_ts,
                "stopped before the downstream confirmed a DDL; the checkpoint stays right \
                 before it and the next start runs it again"
            );
            return Ok(self.saved);
        }
        let consistent = !interrupted && closed.complete;
        match tokio::time::timeout(STOP_WAIT, self.save(consistent)).await {
            Ok(saved) => saved.map(|()| self.saved),
            Err(_) => Err(SyncError::FinalCheckpoint {
                seconds: STOP_WAIT.as_secs(),
                commit_ts: self.saved.commit_ts,
            }),
        }
    }

    fn confirm(&mut self, confirmed: Vec<i64>) -> Result<(), OutOfOrder> {
        if confirmed.is_empty() {
            return Ok(());
        }
        for ts in confirmed {
            self.progress.confirmed(ts)?;
        }
        self.lock_status().last_applied = Some(Instant::now());
        Ok(())
    }

    async fn handle(
        &mut self,
        item: PulledBinlog,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Handling, SyncError> {
        let commit_ts = item.commit_ts;
        if item.is_fake() {
            self.progress.passed(commit_ts);
            return Ok(Handling::Done);
        }
        let ignored = self.settings.ignore_txn_commit_ts.contains(&commit_ts);
        let mut binlog = item.binlog;
        if binlog.ddl_job_id > 0 {
            let query = String::from_utf8_lossy(binlog.ddl_query.as_deref().unwrap_or_default())
                .into_owned();
            if query
                .trim_start()
                .to_lowercase()
                .starts_with("select setval")
                || binlog.ddl_schema_state == STATE_DELETE_ONLY
            {
                self.progress.passed(commit_ts);
                return Ok(Handling::Done);
            }
            return self
                .handle_ddl(commit_ts, binlog.ddl_job_id, query, ignored, stop)
                .await;
        }
        if ignored {
            tracing::warn!(
                commit_ts,
                "transaction skipped: listed in ignore-txn-commit-ts"
            );
            return Ok(Handling::Done);
        }
        // The rows decode as slices of the raw value, which is itself a slice of the pull's
        // receive buffer: a big transaction is held once.
        let raw = binlog.prewrite_value.take().unwrap_or_default();
        let mut prewrite = PrewriteValue::decode(raw).map_err(|source| {
            SinkError::Translate(TranslateError::Prewrite { commit_ts, source })
        })?;
        self.tracker.prepare(prewrite.schema_version)?;
        self.events
            .filter_rows(&mut prewrite, self.tracker.catalog());
        self.before_write(commit_ts).await?;
        let mut backoff = Duration::from_millis(200);
        let written = loop {
            let filter = &self.filter;
            let keep = |database: &str, table: &str| !filter.skips(database, table);
            match self
                .sink
                .write_dml(commit_ts, &mut prewrite, self.tracker.catalog(), &keep)
                .await
            {
                Err(SinkError::Translate(TranslateError::UnknownTable { table_id, .. })) => {
                    // TiDB's history may not show a just-finished job yet: learn it again.
                    tracing::warn!(
                        commit_ts,
                        table_id,
                        "table unknown to the catalog; reloading TiDB's DDL history"
                    );
                    self.lock_status().trouble = Some(format!(
                        "transaction at commit ts {commit_ts} changes table id {table_id}, which TiDB's DDL history does not show yet"
                    ));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = binlog_cluster::shutdown::stopped(stop) => return Ok(Handling::Interrupted),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    self.tracker.load_history().await?;
                    self.tracker.prepare(prewrite.schema_version)?;
                }
                other => break other?,
            }
        };
        if backoff > Duration::from_millis(200) {
            self.lock_status().trouble = None;
        }
        if written {
            self.progress.written(commit_ts);
        } else {
            self.progress.passed(commit_ts);
        }
        Ok(Handling::Done)
    }

    async fn handle_ddl(
        &mut self,
        commit_ts: i64,
        job_id: i64,
        query: String,
        ignored: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Handling, SyncError> {
        // Checkpoint everything before the DDL first, with the catalog as it was: a crash while
        // the DDL runs then restarts right before it, re-running it (its re-run errors are in
        // the ignorable list) instead of replaying rows written under the old definition.
        self.drain().await?;
        if self.progress.safe_ts() > self.saved.commit_ts {
            self.save(false).await?;
        }
        self.last_ddl_ts = commit_ts;
        let outcome = match self.tracker.apply_ddl(job_id, commit_ts, stop).await {
            Ok((_, outcome)) => outcome,
            Err(SchemaError::Stopped { .. }) => return Ok(Handling::Interrupted),
            Err(err) => return Err(err.into()),
        };
        let applied = match outcome {
            JobOutcome::Applied(applied) => applied,
            JobOutcome::Skipped { reason } => {
                tracing::info!(commit_ts, job_id, reason, %query, "DDL skipped");
                self.progress.passed(commit_ts);
                return Ok(Handling::Done);
            }
            JobOutcome::AlreadyApplied => {
                tracing::info!(commit_ts, job_id, %query, "DDL already applied before the restart; not executed again");
                self.progress.passed(commit_ts);
                return Ok(Handling::Done);
            }
        };
        let skip = ignored
            || !applied.executable
            || !self.settings.sync_ddl
            || self.filter.skips(&applied.database, &applied.table)
            || self
                .events
                .skips_ddl(&applied.database, &applied.table, &query);
        tracing::info!(commit_ts, job_id, skip, database = %applied.database, %query, "DDL");
        let written = if skip && !self.settings.sql_sink {
            false
        } else {
            self.before_write(commit_ts).await?;
            self.sink
                .write_ddl(DdlStatement {
                    commit_ts,
                    database: applied.database,
                    table: applied.table,
                    query,
                    skip,
                })
                .await?
        };
        if written {
            self.progress.written(commit_ts);
        } else {
            self.progress.passed(commit_ts);
        }
        self.drain().await?;
        self.save(false).await?;
        Ok(Handling::Done)
    }

    /// Waits until the sink confirmed everything handed to it.
    async fn drain(&mut self) -> Result<(), SyncError> {
        while self.progress.unconfirmed() > 0 {
            let confirmed = self.sink.confirmations().await?;
            self.confirm(confirmed)?;
        }
        Ok(())
    }

    /// Before handing `commit_ts` to the sink: leave the replay window once past it (after the
    /// sink confirmed everything inside it), and move the saved push limit ahead when needed.
    async fn before_write(&mut self, commit_ts: i64) -> Result<(), SyncError> {
        if let Replay::UpTo(limit) = self.replay
            && commit_ts > limit
        {
            self.drain().await?;
            self.sink.set_safe_mode(self.settings.safe_mode);
            self.replay = Replay::Nothing;
            tracing::info!(
                commit_ts,
                "replay after restart done; safe mode as configured"
            );
        }
        if commit_ts > self.push_limit {
            let limit = commit_ts.saturating_add(PUSH_LIMIT_MARGIN);
            let mut retry = StoreRetry::new("saving the push limit");
            loop {
                match self.store.save_pushed_ts(limit).await {
                    Ok(()) => break retry.succeeded(&self.status),
                    Err(err) => retry.failed(err, &self.status).await?,
                }
            }
            self.push_limit = limit;
        }
        Ok(())
    }

    async fn save(&mut self, consistent: bool) -> Result<(), SyncError> {
        self.sink.sync().await?;
        let catalog_version = self.tracker.catalog().version();
        if self.saved_catalog_version != Some(catalog_version) {
            let mut retry = StoreRetry::new("saving the schema catalog");
            loop {
                match self.store.save_catalog(self.tracker.catalog()).await {
                    Ok(()) => break retry.succeeded(&self.status),
                    Err(err) => retry.failed(err, &self.status).await?,
                }
            }
            self.saved_catalog_version = Some(catalog_version);
        }
        let checkpoint = Checkpoint {
            commit_ts: self.progress.safe_ts(),
            consistent,
            schema_version: catalog_version.max(self.saved.schema_version),
            ts_map: None,
        };
        let mut retry = StoreRetry::new("saving the checkpoint");
        loop {
            match self.store.save(&checkpoint).await {
                Ok(()) => break retry.succeeded(&self.status),
                Err(err) => retry.failed(err, &self.status).await?,
            }
        }
        self.tracker.catalog_mut().prune(checkpoint.schema_version);
        self.saved = checkpoint;
        self.lock_status().checkpoint_ts = checkpoint.commit_ts;
        self.checkpoint_ts.send_replace(checkpoint.commit_ts);
        Ok(())
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, SyncerStatus> {
        lock(&self.status)
    }
}

/// First wait before a checkpoint write that failed is tried again; it doubles up to the last.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(200);
const STORE_RETRY_LAST: Duration = Duration::from_secs(10);

/// The retries of one checkpoint-store write. While the store cannot be reached (a MySQL
/// downstream that is down: the sink waits for it too) the write is tried again with backoff
/// and the trouble shown in `/status`; a failure that retrying cannot cure stops the syncer.
struct StoreRetry {
    what: &'static str,
    wait: Duration,
    troubled: bool,
}

impl StoreRetry {
    fn new(what: &'static str) -> StoreRetry {
        StoreRetry {
            what,
            wait: STORE_RETRY_FIRST,
            troubled: false,
        }
    }

    /// After a failed attempt: returns once it is time to try again, or the error when
    /// retrying cannot help.
    async fn failed(
        &mut self,
        err: CheckpointError,
        status: &Mutex<SyncerStatus>,
    ) -> Result<(), SyncError> {
        if !err.is_retryable() {
            return Err(err.into());
        }
        tracing::warn!(error = %err, retry_in = ?self.wait, "{} failed", self.what);
        lock(status).trouble = Some(format!("{} failed, retrying: {err}", self.what));
        self.troubled = true;
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(STORE_RETRY_LAST);
        Ok(())
    }

    fn succeeded(self, status: &Mutex<SyncerStatus>) {
        if self.troubled {
            lock(status).trouble = None;
        }
    }
}

/// Runs `steps` to their end, unless `stop` fires and they then take longer than [`STOP_WAIT`]
/// to finish the step under way: they are dropped and reported [`Handling::Interrupted`].
/// Dropping a step leaves no more behind than a crash at that point would, and nothing is saved
/// over it but confirmed progress.
async fn unless_stopped_long<F>(
    steps: F,
    stop: &mut watch::Receiver<bool>,
) -> Result<Handling, SyncError>
where
    F: Future<Output = Result<Handling, SyncError>>,
{
    tokio::pin!(steps);
    tokio::select! {
        biased;
        handled = &mut steps => return handled,
        _ = binlog_cluster::shutdown::stopped(stop) => {}
    }
    match tokio::time::timeout(STOP_WAIT, steps).await {
        Ok(handled) => handled,
        Err(_) => {
            tracing::warn!(
                "stopping: gave up on the step under way after {} s",
                STOP_WAIT.as_secs()
            );
            Ok(Handling::Interrupted)
        }
    }
}

fn lock(status: &Mutex<SyncerStatus>) -> std::sync::MutexGuard<'_, SyncerStatus> {
    status.lock().unwrap_or_else(|e| e.into_inner())
}
