//! The dispatcher: the one task that takes pushed transactions in order, routes their row
//! changes to workers, runs DDL as a full barrier, and reports transactions applied in push
//! order once every part of them is committed (reference drainer.md §4.4, §4.5).
//!
//! Flushing (waiting until every routed change is committed) happens before a DDL, when a
//! change's keys meet two groups, and when the conflict-key table grows past its bound (it
//! forgets keys a generation at a time as their transactions are applied, so that takes a
//! worker stuck for long); the key table is also forgotten whenever nothing is in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mysql_async::prelude::Queryable;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::task::JoinSet;

use crate::causality::{self, Causality, Placement, Spreader};
use crate::ddl;
use crate::error::{Failure, LoaderError};
use crate::session::Link;
use crate::sql::{self, RowChange};
use crate::status::{AppliedPosition, Retrier, Shared};
use crate::table_info::{self, LoadError, TableInfo};
use crate::txn::{Ddl, Dml, Name, Txn, TxnChange};
use crate::worker::{self, Unit, WorkerEvent, WorkerReport};

/// Conflict keys remembered before a flush is forced (16 bytes each in the table, plus the
/// map's overhead: a few MiB); applied ones are forgotten long before, as a rule.
const MAX_CAUSALITY_KEYS: usize = 1 << 18;
/// Table metadata reads the server refuses before the loader stops.
const METADATA_ATTEMPTS: u32 = 3;

/// A pushed transaction (or part of one, see [`crate::Loader::push_unfinished`]) with the share of
/// the byte budget it holds until it is applied.
pub(crate) struct Queued {
    pub(crate) txn: Txn,
    /// The transaction continues in the next push.
    pub(crate) continues: bool,
    pub(crate) bytes: usize,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// A transaction between push and report.
struct Pending {
    seq: u64,
    commit_ts: i64,
    /// Units routed to workers and not yet committed.
    units: usize,
    /// All of its units are routed (or its DDL ran).
    dispatched: bool,
    bytes: usize,
    /// Its share of the budget, released when it is applied, or earlier for a part that ran
    /// inside a downstream transaction still open.
    permit: Option<OwnedSemaphorePermit>,
}

impl Pending {
    /// Gives its budget back.
    fn release(&mut self, shared: &Shared) {
        if self.permit.take().is_some() {
            shared.queued_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

/// A change with its downstream table attached and its values normalized against it.
fn prepare(commit_ts: i64, mut dml: Dml, table: Arc<TableInfo>) -> RowChange {
    sql::normalize(&mut dml, &table);
    RowChange {
        commit_ts,
        dml,
        table,
    }
}

/// How changes are routed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Routing {
    /// Each transaction whole to the single worker (`enable-dispatch = false`).
    Serial,
    /// By conflict keys (`enable-detect = true`) or by first key only; `chunk` changes per
    /// downstream transaction.
    Parallel { detect: bool, chunk: usize },
}

impl Routing {
    /// Changes per downstream transaction; `None`: one upstream transaction each.
    pub(crate) fn chunk(self) -> Option<usize> {
        match self {
            Routing::Parallel { chunk, .. } => Some(chunk),
            Routing::Serial => None,
        }
    }
}

pub(crate) struct Dispatcher {
    routing: Routing,
    shared: Arc<Shared>,
    input: mpsc::UnboundedReceiver<Queued>,
    workers: Vec<mpsc::UnboundedSender<Unit>>,
    /// Per worker, the changes routed to it and not yet reported back.
    backlogs: Vec<usize>,
    worker_tasks: JoinSet<()>,
    events: mpsc::UnboundedReceiver<WorkerReport>,
    control: Link,
    applied: watch::Sender<AppliedPosition>,
    /// Downstream tables by database, then table name.
    tables: HashMap<Name, HashMap<Name, Arc<TableInfo>>>,
    /// The table of the last change prepared, by the names it came with (forgotten at every
    /// eviction).
    last_table: Option<(Name, Name, Arc<TableInfo>)>,
    /// Per worker, the changes of the current transaction routed to it (kept to reuse the
    /// allocation).
    routed: Vec<VecDeque<RowChange>>,
    /// The conflict keys of the change being placed (kept to reuse the allocation).
    keys: Vec<u64>,
    causality: Causality,
    spreader: Spreader,
    pending: VecDeque<Pending>,
    next_seq: u64,
    in_flight: usize,
    /// The single worker holds a downstream transaction open for the next part of a pushed
    /// transaction: its last part must reach the worker even when it has no changes.
    parts_open: bool,
}

/// The channels and connections a dispatcher works with.
pub(crate) struct DispatcherParts {
    pub(crate) routing: Routing,
    pub(crate) shared: Arc<Shared>,
    pub(crate) input: mpsc::UnboundedReceiver<Queued>,
    pub(crate) workers: Vec<mpsc::UnboundedSender<Unit>>,
    pub(crate) worker_tasks: JoinSet<()>,
    pub(crate) events: mpsc::UnboundedReceiver<WorkerReport>,
    pub(crate) control: Link,
    pub(crate) applied: watch::Sender<AppliedPosition>,
}

enum Next {
    Event(WorkerReport),
    Input(Option<Queued>),
}

impl Dispatcher {
    pub(crate) fn new(parts: DispatcherParts) -> Dispatcher {
        Dispatcher {
            spreader: Spreader::new(parts.workers.len(), parts.routing.chunk().unwrap_or(1)),
            routing: parts.routing,
            shared: parts.shared,
            input: parts.input,
            backlogs: vec![0; parts.workers.len()],
            workers: parts.workers,
            worker_tasks: parts.worker_tasks,
            events: parts.events,
            control: parts.control,
            applied: parts.applied,
            tables: HashMap::new(),
            last_table: None,
            routed: Vec::new(),
            keys: Vec::new(),
            causality: Causality::new(),
            pending: VecDeque::new(),
            next_seq: 0,
            in_flight: 0,
            parts_open: false,
        }
    }

    /// Runs until the input closes and everything is applied, or until an error stops it.
    pub(crate) async fn run(mut self) -> Result<(), LoaderError> {
        let result = self.serve().await;
        match &result {
            Ok(()) => {
                self.workers.clear();
                while self.worker_tasks.join_next().await.is_some() {}
            }
            Err(_) => self.worker_tasks.abort_all(),
        }
        result
    }

    async fn serve(&mut self) -> Result<(), LoaderError> {
        loop {
            let next = tokio::select! {
                biased;
                Some(event) = self.events.recv() => Next::Event(event),
                queued = self.input.recv() => Next::Input(queued),
            };
            match next {
                Next::Event(event) => self.on_event(event)?,
                Next::Input(Some(queued)) => self.process(queued).await?,
                Next::Input(None) if self.parts_open => {
                    // Its last part will never come: waiting for it would never end. Stopping
                    // drops the worker's connection, which rolls the parts back.
                    let commit_ts = self.pending.back().map_or(0, |p| p.commit_ts);
                    return Err(LoaderError::Crashed(format!(
                        "the pushes ended before the last part of txn commit ts {commit_ts}; \
                         what ran of it is rolled back"
                    )));
                }
                Next::Input(None) => return self.flush().await,
            }
        }
    }

    fn on_event(&mut self, report: WorkerReport) -> Result<(), LoaderError> {
        if let Some(backlog) = self.backlogs.get_mut(report.worker) {
            *backlog = backlog.saturating_sub(report.changes);
        }
        let seqs = match report.event {
            WorkerEvent::Applied(seqs) => seqs,
            WorkerEvent::Ran(seq) => {
                let shared = self.shared.clone();
                if let Some(pending) = self.pending_mut(seq) {
                    pending.release(&shared);
                }
                return Ok(());
            }
            WorkerEvent::Failed(err) => return Err(err),
        };
        for seq in seqs {
            if let Some(pending) = self.pending_mut(seq) {
                pending.units -= 1;
                self.in_flight -= 1;
            }
        }
        if self.in_flight == 0 {
            self.causality.reset();
        }
        self.report();
        Ok(())
    }

    /// The pending transaction with sequence number `seq` (they are numbered consecutively).
    fn pending_mut(&mut self, seq: u64) -> Option<&mut Pending> {
        let front = self.pending.front()?.seq;
        let index = usize::try_from(seq.checked_sub(front)?).ok()?;
        self.pending.get_mut(index)
    }

    /// Reports the applied prefix of the pending transactions and releases their budget.
    fn report(&mut self) {
        let mut position = None;
        while self
            .pending
            .front()
            .is_some_and(|p| p.dispatched && p.units == 0)
        {
            if let Some(mut done) = self.pending.pop_front() {
                done.release(&self.shared);
                position = Some(AppliedPosition {
                    txns: done.seq,
                    commit_ts: done.commit_ts,
                });
            }
        }
        if let Some(position) = position {
            self.causality.applied_up_to(position.txns);
            self.applied.send_replace(position);
        }
    }

    /// Waits until everything routed so far is committed, then forgets the conflict groups.
    async fn flush(&mut self) -> Result<(), LoaderError> {
        while self.in_flight > 0 {
            match self.events.recv().await {
                Some(event) => self.on_event(event)?,
                None => return Err(LoaderError::Stopped),
            }
        }
        self.causality.reset();
        Ok(())
    }

    async fn process(&mut self, queued: Queued) -> Result<(), LoaderError> {
        self.next_seq += 1;
        let seq = self.next_seq;
        let commit_ts = queued.txn.commit_ts;
        self.pending.push_back(Pending {
            seq,
            commit_ts,
            units: 0,
            dispatched: false,
            bytes: queued.bytes,
            permit: Some(queued.permit),
        });
        match queued.txn.change {
            TxnChange::Ddl(_) if self.parts_open => {
                return Err(LoaderError::Crashed(format!(
                    "a DDL (commit ts {commit_ts}) was pushed before the last part of the \
                     transaction before it"
                )));
            }
            TxnChange::Ddl(ddl) => {
                if ddl.should_skip {
                    tracing::info!(commit_ts, sql = %ddl.sql, "skipping DDL");
                } else {
                    self.flush().await?;
                    self.execute_ddl(commit_ts, &ddl).await?;
                }
                self.evict(&ddl);
            }
            TxnChange::Dml(dmls) => {
                // Only a single worker can keep a transaction open across parts.
                let continues = queued.continues && matches!(self.routing, Routing::Serial);
                self.dispatch(seq, commit_ts, dmls, continues).await?
            }
        }
        if let Some(pending) = self.pending.back_mut() {
            pending.dispatched = true;
        }
        self.report();
        Ok(())
    }

    async fn dispatch(
        &mut self,
        seq: u64,
        commit_ts: i64,
        dmls: Vec<Dml>,
        continues: bool,
    ) -> Result<(), LoaderError> {
        let mut routed = std::mem::take(&mut self.routed);
        routed.resize_with(self.workers.len(), VecDeque::new);
        let mut keys = std::mem::take(&mut self.keys);
        for dml in dmls {
            // The table is nearly always known: only a miss builds the future that reads it
            // from the server (a large one, which would otherwise be copied for every change).
            let table = match self.known_table(&dml) {
                Some(table) => table,
                None => self.table_of(commit_ts, &dml).await?,
            };
            let change = prepare(commit_ts, dml, table);
            let worker = match self.routing {
                Routing::Serial => 0,
                Routing::Parallel { detect: true, .. } => {
                    causality::conflict_keys(&change.dml, &change.table, &mut keys);
                    match self.place(&keys, &change, seq) {
                        Placement::Worker(worker) => worker,
                        Placement::Conflict => {
                            // Route what this transaction has so far, apply everything, then
                            // start afresh.
                            self.send(seq, &mut routed, false)?;
                            self.flush().await?;
                            match self.place(&keys, &change, seq) {
                                Placement::Worker(worker) => worker,
                                Placement::Conflict => 0,
                            }
                        }
                    }
                }
                Routing::Parallel { detect: false, .. } => {
                    causality::conflict_keys(&change.dml, &change.table, &mut keys);
                    causality::route(keys.first().copied().unwrap_or(0), self.workers.len())
                }
            };
            routed[worker].push_back(change);
        }
        self.send(seq, &mut routed, continues)?;
        self.routed = routed;
        self.keys = keys;
        if self.causality.len() > MAX_CAUSALITY_KEYS {
            self.flush().await?;
        }
        Ok(())
    }

    /// The worker for `change`, of transaction `seq`, with these conflict keys.
    fn place(&mut self, keys: &[u64], change: &RowChange, seq: u64) -> Placement {
        let (spreader, backlogs) = (&mut self.spreader, &self.backlogs);
        self.causality.add(keys, seq, || {
            let group = causality::clustering_group(&change.dml, &change.table);
            spreader.worker_for(Arc::as_ptr(&change.table) as usize, group, backlogs)
        })
    }

    /// Hands the routed changes of transaction `seq` to their workers; `continues`: the
    /// downstream transaction stays open for the next part.
    fn send(
        &mut self,
        seq: u64,
        routed: &mut [VecDeque<RowChange>],
        continues: bool,
    ) -> Result<(), LoaderError> {
        let must_send = continues || self.parts_open;
        self.parts_open = continues;
        for (worker, changes) in routed.iter_mut().enumerate() {
            if changes.is_empty() && !(must_send && worker == 0) {
                continue;
            }
            self.backlogs[worker] += changes.len();
            // Sized to fit: most units hold one or two changes, and `routed` keeps its
            // allocation for the next transaction.
            let mut fitted = VecDeque::with_capacity(changes.len());
            fitted.extend(changes.drain(..));
            let unit = Unit {
                seq,
                changes: fitted,
                continues,
            };
            self.workers[worker]
                .send(unit)
                .map_err(|_| LoaderError::Stopped)?;
            self.in_flight += 1;
            if let Some(pending) = self.pending.back_mut() {
                pending.units += 1;
            }
        }
        Ok(())
    }

    /// The downstream table a change writes, if it is cached.
    fn known_table(&mut self, dml: &Dml) -> Option<Arc<TableInfo>> {
        // Consecutive changes mostly share their table, and their names: comparing the names'
        // pointers skips two hash lookups per change.
        if let Some((database, name, table)) = &self.last_table
            && Arc::ptr_eq(database, &dml.database)
            && Arc::ptr_eq(name, &dml.table)
        {
            return Some(table.clone());
        }
        let table = self
            .tables
            .get(&*dml.database)
            .and_then(|tables| tables.get(&*dml.table))?
            .clone();
        self.last_table = Some((dml.database.clone(), dml.table.clone(), table.clone()));
        Some(table)
    }

    /// The downstream table a change writes, read from the server and cached.
    async fn table_of(&mut self, commit_ts: i64, dml: &Dml) -> Result<Arc<TableInfo>, LoaderError> {
        let table = Arc::new(
            self.load_table(commit_ts, &dml.database, &dml.table)
                .await?,
        );
        if table.unique_keys.is_empty() {
            tracing::warn!(
                table = %sql::quote_table(&dml.database, &dml.table),
                "downstream table has no primary or unique key: updates and deletes match every column and may be slow"
            );
        }
        self.tables
            .entry(dml.database.clone())
            .or_default()
            .insert(dml.table.clone(), table.clone());
        Ok(table)
    }

    async fn load_table(
        &mut self,
        commit_ts: i64,
        database: &str,
        table: &str,
    ) -> Result<TableInfo, LoaderError> {
        let shared = self.shared.clone();
        let mut retrier = Retrier::new(&shared, "control".into());
        let mut refusals = 0u32;
        let fail = |message: String| LoaderError::TableInfo {
            commit_ts,
            table: sql::quote_table(database, table),
            message,
        };
        loop {
            let timeout = self.control.read_timeout();
            let result = match self.control.conn().await {
                Ok(conn) => {
                    match tokio::time::timeout(timeout, table_info::load(conn, database, table))
                        .await
                    {
                        Ok(Ok(info)) => Ok(info),
                        Ok(Err(LoadError::Sql(err))) => Err(Failure::from(err)),
                        Ok(Err(LoadError::Missing)) => {
                            return Err(fail("the table does not exist downstream".into()));
                        }
                        Ok(Err(LoadError::Shape(message))) => return Err(fail(message)),
                        Err(_) => Err(Failure::timeout("reading table metadata", timeout)),
                    }
                }
                Err(failure) => Err(failure),
            };
            let failure = match result {
                Ok(info) => {
                    retrier.succeeded();
                    return Ok(info);
                }
                Err(failure) => failure,
            };
            match &failure {
                Failure::Connection(_) => self.control.reset(),
                Failure::Transient { .. } => {}
                Failure::Statement { .. } => {
                    refusals += 1;
                    if refusals >= METADATA_ATTEMPTS {
                        return Err(fail(failure.message()));
                    }
                }
            }
            let wait = retrier.failed("reading table metadata", &failure);
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs a DDL alone (`USE db` first unless it creates a database); errors that mean "already
    /// done" count as success.
    async fn execute_ddl(&mut self, commit_ts: i64, ddl: &Ddl) -> Result<(), LoaderError> {
        let shared = self.shared.clone();
        let mut retrier = Retrier::new(&shared, "control".into());
        loop {
            let failure = match self.try_ddl(ddl).await {
                Ok(()) => {
                    retrier.succeeded();
                    tracing::info!(commit_ts, sql = %ddl.sql, "executed DDL");
                    return Ok(());
                }
                Err(failure) => failure,
            };
            match &failure {
                Failure::Statement { code, .. }
                    if ddl::IGNORABLE_DDL_CODES.contains(code)
                        || ddl::is_set_tiflash_replica(&ddl.sql) =>
                {
                    retrier.succeeded();
                    tracing::warn!(commit_ts, sql = %ddl.sql, error = %failure.message(), "DDL error ignored: the change is already in place");
                    return Ok(());
                }
                Failure::Statement { .. } => {
                    return Err(LoaderError::Ddl {
                        commit_ts,
                        sql: ddl.sql.clone(),
                        message: failure.message(),
                    });
                }
                Failure::Connection(_) => self.control.reset(),
                Failure::Transient { .. } => {}
            }
            let wait = retrier.failed("executing DDL", &failure);
            tokio::time::sleep(wait).await;
        }
    }

    async fn try_ddl(&mut self, ddl: &Ddl) -> Result<(), Failure> {
        let timeout = self.control.read_timeout();
        let conn = self.control.conn().await?;
        if !ddl.database.is_empty() && !ddl::is_create_database(&ddl.sql) {
            let use_db = format!("USE {}", sql::quote_ident(&ddl.database));
            worker::with_timeout(timeout, "USE", conn.query_drop(use_db)).await?;
        }
        conn.query_drop(ddl.sql.as_str()).await?;
        Ok(())
    }

    /// Forgets cached metadata a DDL may have changed: the table's, or the whole database's
    /// for a database-level DDL.
    fn evict(&mut self, ddl: &Ddl) {
        self.last_table = None;
        if ddl.table.is_empty() {
            self.tables.remove(ddl.database.as_str());
        } else if let Some(tables) = self.tables.get_mut(ddl.database.as_str()) {
            tables.remove(ddl.table.as_str());
        }
    }
}
