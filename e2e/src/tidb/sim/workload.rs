//! `tidb-sim run`: a seeded workload of DDL and DML transactions, written as binlog through
//! TiDB's pump client and applied to the truth.
//!
//! A transaction goes as in percolator, with the truth's row locks standing in for TiKV's:
//! 1. take the catalog for reading (DDL takes it exclusively, so the schema version a
//!    transaction records is exactly the one it ran against), BEGIN in the truth, get `start_ts`;
//! 2. run the statements in the truth, locking every row it reads (`SELECT … FOR UPDATE`) and
//!    reading back every row it writes, and encode those values into the mutations;
//! 3. write the prewrite binlog (`PrewriteValue.schema_version` = the catalog's version);
//! 4. get `commit_ts` from PD while the truth still holds the locks, write the commit binlog to
//!    the prewrite's pump, then COMMIT the truth. Conflicting transactions therefore reach the
//!    truth in commit-ts order.
//!
//! A few percent (`rollback_percent`) instead write a rollback binlog after the prewrite and roll
//! the truth back. When the prewrite binlog cannot be written after the pump client's retries,
//! the transaction fails as it does in TiDB: the truth rolls back, no commit binlog is written,
//! and the run goes on (counted in [`Summary::prewrite_failed`]). A deadlock or lock-wait timeout
//! in the truth before the prewrite abandons the transaction the same way, without any binlog
//! (counted in [`Summary::conflicts`]). A commit binlog the pump client gives up on is counted in
//! [`Summary::commits_undelivered`]: the truth has the transaction, the pumps do not.
//!
//! A DDL: plan it against the catalog, run it in the truth, store the finished job in the
//! history (its `FinishedTS` is the DDL binlog's `start_ts`), publish it to the status API, then
//! write the DDL prewrite and commit binlogs (`ddl_job_id`, `ddl_query`, `ddl_schema_state`) and
//! the new version under `/tidb/ddl/global_schema_version`. A DDL whose prewrite binlog fails
//! ends the run with an error, since the truth and the history already hold it.
//!
//! Determinism: step `i` is DDL or DML by `(seed, i)` alone; the `k`-th DDL of a history is
//! chosen from `(seed, k)` and the catalog alone. So the same seed on the same starting truth
//! gives the same DDL sequence (ids, versions and statements included) at any concurrency. The
//! rows depend on how transactions interleave.
//!
//! One `run` at a time per truth: the id counter and key counters live in this process while it
//! runs (a later run picks them up from the history and the data).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use binlog_cluster::{PdClient, Registry, TlsSettings};
use binlog_proto::binlog::{Binlog, BinlogType};
use prost::Message;
use tidb_codec::ColumnValue;
use tidb_codec::schema::{HandleColumns, TableInfo};
use tokio::sync::{Mutex, RwLock};

use crate::tidb::sim::SimError;
use crate::tidb::sim::catalog::{
    Catalog, CatalogTable, TableShape, key_columns, kind_of, value_columns,
};
use crate::tidb::sim::column_kind::ColumnKind;
use crate::tidb::sim::ddl::DdlSpec;
use crate::tidb::sim::ddl_gen::{needs_setup, random_ddl, setup_ddl, setup_len};
use crate::tidb::sim::mutations::{RowValues, TxnMutations};
use crate::tidb::sim::registration::put_schema_version;
use crate::tidb::sim::rng::SimRng;
use crate::tidb::sim::schema_store::SchemaStore;
use crate::tidb::sim::serve::{StatusServer, truth_sql_port};
use crate::tidb::sim::sql::ROW_ID_COLUMN;
use crate::tidb::sim::truth::{RowRef, Truth, TruthTxn};
use crate::tidb::sim::values::{generate, int_bounds};
use crate::tidb::{ClientConfig, CommitOutcome, Strategy, TidbPumpClient};

/// The prewrite key of DDL binlogs: DDL transactions write TiDB's meta keys, not rows.
const DDL_PRIMARY_KEY: &[u8] = b"mDDLJobHistory";
/// Stream tag of the DDL generator (kept apart from the per-step streams).
const DDL_STREAM: u64 = 0xdd1_0000_0000;

/// Settings of a workload run.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub pd_urls: Vec<String>,
    /// `mysql://user@host:port/` of the truth MariaDB.
    pub truth_url: String,
    /// Workload steps (each a DML transaction or, `ddl_percent` of the time, a DDL), after the
    /// setup DDL of a fresh truth.
    pub txns: u64,
    pub concurrency: usize,
    pub seed: u64,
    pub strategy: Strategy,
    /// Serve the status API here (and register in etcd) while running.
    pub status_addr: Option<SocketAddr>,
    pub ddl_percent: u32,
    pub rollback_percent: u32,
    pub tls: TlsSettings,
}

impl WorkloadConfig {
    /// A config with the default mix: 5 % DDL, 3 % rollbacks, range strategy.
    pub fn new(
        pd_urls: Vec<String>,
        truth_url: String,
        txns: u64,
        concurrency: usize,
        seed: u64,
    ) -> WorkloadConfig {
        WorkloadConfig {
            pd_urls,
            truth_url,
            txns,
            concurrency,
            seed,
            strategy: Strategy::Range,
            status_addr: None,
            ddl_percent: 5,
            rollback_percent: 3,
            tls: TlsSettings::default(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// DML transactions committed (each has exactly one commit binlog).
    pub committed: u64,
    /// DML transactions rolled back after their prewrite binlog (rollback binlog written).
    pub rolled_back: u64,
    /// DML transactions abandoned on a truth lock conflict before any binlog.
    pub conflicts: u64,
    /// DML transactions that failed because no pump took their prewrite binlog.
    pub prewrite_failed: u64,
    /// DML transactions that found nothing to change (no binlog).
    pub empty: u64,
    /// DDL jobs run (each has exactly one commit binlog).
    pub ddl: u64,
    /// Commit or rollback binlogs the pump client gave up on.
    pub commits_undelivered: u64,
    /// The largest commit ts written.
    pub last_commit_ts: i64,
    /// The schema version at the end.
    pub schema_version: i64,
}

#[derive(Default)]
struct Counters {
    committed: AtomicU64,
    rolled_back: AtomicU64,
    conflicts: AtomicU64,
    prewrite_failed: AtomicU64,
    empty: AtomicU64,
    ddl: AtomicU64,
    commits_undelivered: AtomicU64,
    last_commit_ts: AtomicI64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Everything the workers share.
struct Shared {
    config: WorkloadConfig,
    catalog: RwLock<Catalog>,
    store: SchemaStore,
    truth: Truth,
    pd: PdClient,
    pump: TidbPumpClient,
    registry: Registry,
    /// Next value of counter-allocated key columns, by (table id, column).
    keys: Mutex<HashMap<(i64, String), i128>>,
    counters: Counters,
    failed: AtomicBool,
}

/// How a transaction ended, when it did not fail the run.
enum TxnEnd {
    Committed,
    RolledBack,
    Conflict,
    PrewriteFailed,
    Empty,
}

/// Runs a workload to the end.
pub async fn run(config: WorkloadConfig) -> Result<Summary, SimError> {
    if config.concurrency == 0 {
        return Err(SimError::Config("concurrency must be at least 1".into()));
    }
    if config.ddl_percent > 100 || config.rollback_percent > 100 {
        return Err(SimError::Config("percentages must be 0..=100".into()));
    }
    let truth = Truth::connect(&config.truth_url, config.concurrency + 4)?;
    truth.ensure_state().await?;
    let jobs = truth.load_history(0).await?;
    let catalog = Catalog::from_jobs(&jobs)?;
    let store = SchemaStore::new(jobs)?;
    let pd = PdClient::connect(&config.pd_urls, &config.tls).await?;
    let registry = Registry::connect(&config.pd_urls, &config.tls).await?;
    let pump = TidbPumpClient::connect(
        &config.pd_urls,
        &config.tls,
        ClientConfig {
            strategy: config.strategy,
            ..ClientConfig::default()
        },
    )
    .await?;
    let server = match config.status_addr {
        Some(addr) => Some(
            StatusServer::start(
                addr,
                store.clone(),
                &registry,
                truth_sql_port(&config.truth_url),
            )
            .await?,
        ),
        None => None,
    };
    let shared = Arc::new(Shared {
        catalog: RwLock::new(catalog),
        store,
        truth,
        pd,
        pump,
        registry,
        keys: Mutex::new(HashMap::new()),
        counters: Counters::default(),
        failed: AtomicBool::new(false),
        config,
    });
    let result = drive(&shared).await;
    if let Some(server) = server
        && let Err(err) = server.stop().await
    {
        tracing::warn!(error = %err, "stopping the status API");
    }
    shared.truth.clone().close().await;
    result?;
    let c = &shared.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(Summary {
        committed: get(&c.committed),
        rolled_back: get(&c.rolled_back),
        conflicts: get(&c.conflicts),
        prewrite_failed: get(&c.prewrite_failed),
        empty: get(&c.empty),
        ddl: get(&c.ddl),
        commits_undelivered: get(&c.commits_undelivered),
        last_commit_ts: c.last_commit_ts.load(Ordering::Relaxed),
        schema_version: shared.catalog.read().await.schema_version(),
    })
}

async fn drive(shared: &Arc<Shared>) -> Result<(), SimError> {
    let fresh = needs_setup(&*shared.catalog.read().await);
    if fresh {
        for step in 0..setup_len() {
            run_ddl(shared, |catalog| setup_ddl(step, catalog)).await?;
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..shared.config.concurrency {
        let shared = shared.clone();
        let next = next.clone();
        workers.spawn(async move {
            loop {
                let step = next.fetch_add(1, Ordering::Relaxed);
                if step >= shared.config.txns || shared.failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                if let Err(err) = run_step(&shared, step).await {
                    shared.failed.store(true, Ordering::Relaxed);
                    return Err(err);
                }
                if (step + 1).is_multiple_of(100) {
                    tracing::info!(steps = step + 1, "workload progress");
                }
            }
        });
    }
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let result =
            joined.unwrap_or_else(|e| Err(SimError::Invariant(format!("worker panicked: {e}"))));
        if let Err(err) = result
            && first_error.is_none()
        {
            first_error = Some(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn run_step(shared: &Arc<Shared>, step: u64) -> Result<(), SimError> {
    let mut rng = SimRng::derive(shared.config.seed, step);
    if rng.chance(shared.config.ddl_percent) {
        let seed = shared.config.seed ^ DDL_STREAM;
        return run_ddl(shared, |catalog| {
            random_ddl(&mut SimRng::derive(seed, catalog.jobs_applied()), catalog)
        })
        .await;
    }
    let c = &shared.counters;
    match run_dml(shared, &mut rng).await? {
        TxnEnd::Committed => bump(&c.committed),
        TxnEnd::RolledBack => bump(&c.rolled_back),
        TxnEnd::Conflict => bump(&c.conflicts),
        TxnEnd::PrewriteFailed => bump(&c.prewrite_failed),
        TxnEnd::Empty => bump(&c.empty),
    }
    Ok(())
}

fn record_outcome(shared: &Shared, outcome: &CommitOutcome) {
    if !matches!(outcome, CommitOutcome::Delivered { .. }) {
        bump(&shared.counters.commits_undelivered);
    }
}

/// Runs one DDL, chosen by `choose` from the catalog under the exclusive lock: plan, truth,
/// history, status API, binlogs.
async fn run_ddl(
    shared: &Arc<Shared>,
    choose: impl FnOnce(&Catalog) -> Option<DdlSpec>,
) -> Result<(), SimError> {
    let mut catalog = shared.catalog.write().await;
    let Some(spec) = choose(&catalog) else {
        return Ok(());
    };
    let job_ts = shared.pd.get_ts().await?;
    let mut planned = catalog.plan(&spec, job_ts as u64)?;
    shared.truth.execute_ddl(&planned).await?;
    let start_ts = shared.pd.get_ts().await?;
    planned.set_finished_ts(start_ts as u64);
    shared.truth.save_job(&planned.job).await?;
    catalog.apply(&planned.job)?;
    shared.store.publish(vec![planned.job.clone()])?;
    tracing::info!(job = planned.job.id, version = catalog.schema_version(), query = %planned.query, "DDL");
    let prewrite = Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts,
        commit_ts: 0,
        prewrite_key: Some(DDL_PRIMARY_KEY.to_vec()),
        prewrite_value: None,
        ddl_query: Some(planned.query.clone().into_bytes()),
        ddl_job_id: planned.job.id,
        ddl_schema_state: planned.schema_state(),
    };
    shared
        .pump
        .write_prewrite(&prewrite)
        .await
        .map_err(|source| SimError::DdlPrewrite {
            job_id: planned.job.id,
            query: planned.query.clone(),
            source,
        })?;
    let commit_ts = shared.pd.get_ts().await?;
    let outcome = shared
        .pump
        .write_commit(&Binlog {
            tp: BinlogType::Commit as i32,
            commit_ts,
            ..prewrite
        })
        .await;
    record_outcome(shared, &outcome);
    bump(&shared.counters.ddl);
    shared
        .counters
        .last_commit_ts
        .fetch_max(commit_ts, Ordering::Relaxed);
    if let Err(err) = put_schema_version(&shared.registry.etcd(), catalog.schema_version()).await {
        tracing::warn!(error = %err, "publishing the global schema version");
    }
    Ok(())
}

/// Picks up to three distinct tables.
fn pick_tables<'a>(rng: &mut SimRng, catalog: &'a Catalog) -> Vec<&'a CatalogTable> {
    let mut tables: Vec<&CatalogTable> = catalog.tables().collect();
    let n = 1 + rng.index(tables.len().min(3));
    let mut picked = Vec::with_capacity(n);
    while picked.len() < n && !tables.is_empty() {
        picked.push(tables.remove(rng.index(tables.len())));
    }
    picked
}

/// Runs one DML transaction.
async fn run_dml(shared: &Arc<Shared>, rng: &mut SimRng) -> Result<TxnEnd, SimError> {
    let catalog = shared.catalog.read().await;
    let tables = pick_tables(rng, &catalog);
    if tables.is_empty() {
        return Ok(TxnEnd::Empty);
    }
    let mut txn = shared.truth.begin().await?;
    let start_ts = shared.pd.get_ts().await?;
    let mut mutations = TxnMutations::default();
    for table in tables {
        let db = catalog.db_name_of(table.info.id).ok_or_else(|| {
            SimError::Invariant(format!("table {} has no database", table.info.id))
        })?;
        for _ in 0..1 + rng.index(4) {
            match run_op(shared, &mut txn, db, &table.info, rng, &mut mutations).await {
                Ok(()) => {}
                Err(SimError::Truth(err)) if err.is_conflict() => {
                    tracing::debug!(error = %err, "truth conflict; transaction abandoned");
                    txn.rollback().await?;
                    return Ok(TxnEnd::Conflict);
                }
                Err(err) => return Err(err),
            }
        }
    }
    if mutations.is_empty() {
        txn.rollback().await?;
        return Ok(TxnEnd::Empty);
    }
    let prewrite_key = mutations.primary_key();
    let value = mutations.into_prewrite_value(catalog.schema_version());
    let prewrite = Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts,
        commit_ts: 0,
        prewrite_key: Some(prewrite_key),
        prewrite_value: Some(value.encode_to_vec().into()),
        ddl_query: None,
        ddl_job_id: 0,
        ddl_schema_state: 0,
    };
    if let Err(err) = shared.pump.write_prewrite(&prewrite).await {
        tracing::warn!(start_ts, error = %err, "prewrite binlog failed; the transaction fails");
        txn.rollback().await?;
        return Ok(TxnEnd::PrewriteFailed);
    }
    if rng.chance(shared.config.rollback_percent) {
        let outcome = shared
            .pump
            .write_commit(&Binlog {
                tp: BinlogType::Rollback as i32,
                prewrite_value: None,
                ..prewrite
            })
            .await;
        record_outcome(shared, &outcome);
        txn.rollback().await?;
        return Ok(TxnEnd::RolledBack);
    }
    let commit_ts = shared.pd.get_ts().await?;
    let outcome = shared
        .pump
        .write_commit(&Binlog {
            tp: BinlogType::Commit as i32,
            commit_ts,
            prewrite_value: None,
            ..prewrite
        })
        .await;
    record_outcome(shared, &outcome);
    txn.commit().await?;
    shared
        .counters
        .last_commit_ts
        .fetch_max(commit_ts, Ordering::Relaxed);
    Ok(TxnEnd::Committed)
}

/// Where a counter-allocated key column starts on an empty table.
fn counter_start(kind: &ColumnKind) -> i128 {
    match kind {
        // Negative handles and unsigned handles above 2^63 (stored as negative int64) are
        // where decoders go wrong; start right there.
        ColumnKind::Int {
            bits: 64,
            unsigned: false,
        } => -1000,
        ColumnKind::Int {
            bits: 64,
            unsigned: true,
        } => (1i128 << 63) - 50,
        _ => 1,
    }
}

impl Shared {
    /// The next value of a counter-allocated column (a key column, or the hidden row id).
    async fn next_key(
        &self,
        db: &str,
        info: &TableInfo,
        column: &str,
        kind: &ColumnKind,
    ) -> Result<i128, SimError> {
        let mut keys = self.keys.lock().await;
        let slot = (info.id, column.to_string());
        let next = match keys.get(&slot) {
            Some(next) => *next,
            None => match self.truth.max_of(db, &info.name.o, column).await? {
                Some(max) => max + 1,
                None => counter_start(kind),
            },
        };
        if let ColumnKind::Int { bits, unsigned } = kind {
            let (_, hi) = int_bounds(*bits, *unsigned);
            if next > hi {
                return Err(SimError::Invariant(format!(
                    "key column {column} of {} is exhausted at {hi}",
                    info.name.o
                )));
            }
        }
        keys.insert(slot, next + 1);
        Ok(next)
    }

    /// A fresh value for key column `column`.
    async fn key_value(
        &self,
        rng: &mut SimRng,
        db: &str,
        info: &TableInfo,
        column: &tidb_codec::ColumnInfo,
    ) -> Result<ColumnValue, SimError> {
        let kind = kind_of(column).ok_or_else(|| {
            SimError::Invariant(format!("column {} has an unknown type", column.name.o))
        })?;
        Ok(match kind {
            // The varchar part of a clustered key: any text; the integer part keeps it unique.
            ColumnKind::Varchar(_) => ColumnValue::Text(format!("k{}", rng.below(1_000_000))),
            ColumnKind::Int { unsigned, .. } => {
                let n = self.next_key(db, info, &column.name.o, &kind).await?;
                if unsigned {
                    ColumnValue::Uint(n as u64)
                } else {
                    ColumnValue::Int(n as i64)
                }
            }
            other => {
                return Err(SimError::Invariant(format!(
                    "key column {} has type {}, which has no key allocator",
                    column.name.o,
                    other.sql()
                )));
            }
        })
    }
}

fn missing_row(what: &str, info: &TableInfo) -> SimError {
    SimError::Invariant(format!(
        "the truth lost a row of {} just {what}",
        info.name.o
    ))
}

/// One statement on one table: insert, update (sometimes of the key) or delete.
async fn run_op(
    shared: &Shared,
    txn: &mut TruthTxn,
    db: &str,
    info: &TableInfo,
    rng: &mut SimRng,
    mutations: &mut TxnMutations,
) -> Result<(), SimError> {
    let shape = TableShape::of(info);
    let keys = key_columns(info);
    match rng.weighted(&[50, 30, 20]) {
        0 => {
            let mut values: RowValues = Vec::with_capacity(info.cols.len());
            for col in &info.cols {
                let value = if keys.contains(&col.name.l) {
                    shared.key_value(rng, db, info, col).await?
                } else {
                    let kind = kind_of(col).ok_or_else(|| {
                        SimError::Invariant(format!("column {} has an unknown type", col.name.o))
                    })?;
                    generate(rng, &kind, !col.is_not_null())
                };
                values.push((col.id, value));
            }
            let row_id = if shape.has_row_id() {
                let kind = ColumnKind::Int {
                    bits: 64,
                    unsigned: false,
                };
                Some(shared.next_key(db, info, ROW_ID_COLUMN, &kind).await? as i64)
            } else {
                None
            };
            txn.insert(db, info, &values, row_id).await?;
            let row = RowRef::of(info, &values, row_id).ok_or_else(|| {
                SimError::Invariant(format!("no handle for a row of {}", info.name.o))
            })?;
            let stored = txn
                .read_row(db, info, &row)
                .await?
                .ok_or_else(|| missing_row("inserted", info))?;
            mutations.insert(info, &stored, row_id)?;
        }
        op => {
            let Some(target) = txn.pick_row(db, info, rng.next_u64() as u32).await? else {
                return Ok(());
            };
            let Some(old) = txn.lock_row(db, info, &target).await? else {
                return Ok(());
            };
            let row_id = match target {
                RowRef::RowId(id) => Some(id),
                RowRef::Key(_) => None,
            };
            if op == 2 {
                txn.delete(db, info, &target).await?;
                mutations.delete(info, &old, row_id)?;
                return Ok(());
            }
            let changes = update_changes(shared, rng, db, info, &keys).await?;
            if changes.is_empty() {
                return Ok(());
            }
            txn.update(db, info, &target, &changes).await?;
            let mut new_values = old.clone();
            for (name, value) in &changes {
                if let Some(col) = info.column_by_name(name)
                    && let Some(slot) = new_values.iter_mut().find(|(id, _)| *id == col.id)
                {
                    slot.1 = value.clone();
                }
            }
            let row = match &target {
                RowRef::RowId(_) => target.clone(),
                RowRef::Key(_) => RowRef::of(info, &new_values, None).ok_or_else(|| {
                    SimError::Invariant(format!("no handle for a row of {}", info.name.o))
                })?,
            };
            let stored = txn
                .read_row(db, info, &row)
                .await?
                .ok_or_else(|| missing_row("updated", info))?;
            mutations.update(info, &old, &stored, row_id)?;
        }
    }
    Ok(())
}

/// New values for 1–3 value columns, or now and then for the row's key (the integer primary key,
/// the clustered key's integer part, or the unique key).
async fn update_changes(
    shared: &Shared,
    rng: &mut SimRng,
    db: &str,
    info: &TableInfo,
    keys: &[String],
) -> Result<Vec<(String, ColumnValue)>, SimError> {
    let mut changes = Vec::new();
    if !keys.is_empty() && rng.chance(20) {
        let target = match info.handle_columns() {
            HandleColumns::Common(cols) => cols.last().map(|c| (*c).clone()),
            _ => keys.last().and_then(|k| info.column_by_name(k)).cloned(),
        };
        if let Some(col) = target {
            let value = shared.key_value(rng, db, info, &col).await?;
            changes.push((col.name.o.clone(), value));
        }
    }
    let values = value_columns(info);
    for _ in 0..1 + rng.index(3) {
        let Some(col) = rng.pick(&values) else { break };
        if changes.iter().any(|(n, _)| *n == col.name.o) {
            continue;
        }
        let kind = kind_of(col).ok_or_else(|| {
            SimError::Invariant(format!("column {} has an unknown type", col.name.o))
        })?;
        changes.push((col.name.o.clone(), generate(rng, &kind, !col.is_not_null())));
    }
    Ok(changes)
}
