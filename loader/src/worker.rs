//! A worker: one downstream connection applying the row changes routed to it, in order, in
//! chunks of up to `batch_size` changes, each chunk in one downstream transaction.
//!
//! A chunk is kept until it is committed: connection losses and passing server errors are
//! retried without end (the downstream may be down for a while), a refused statement a few
//! times before the loader stops. When the connection is lost while a commit may have happened
//! (during `COMMIT`, or during a chunk's only statement, which autocommits), the chunk is
//! re-applied in safe mode, which is idempotent for rows with a unique key.
//!
//! The exception: the parts of a transaction pushed in parts (without dispatch) run in one
//! downstream transaction left open between them, and a part is freed once it ran, so a
//! failure part way cannot be retried here (see [`Worker::apply_part`]).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params};
use tokio::sync::mpsc;

use crate::error::{Failure, LoaderError, shorten};
use crate::session::Link;
use crate::sql::{self, Planned, RowChange, Statement};
use crate::status::{Retrier, Shared};

/// How often a statement the server refuses is tried before the loader stops.
const STATEMENT_ATTEMPTS: u32 = 3;
/// Statement text kept in error messages.
const SQL_IN_MESSAGES: usize = 1000;

/// The row changes of one transaction routed to one worker. A transaction may be split into
/// several units (one per worker it touches, more when a conflict forced a flush mid-way).
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) seq: u64,
    pub(crate) changes: VecDeque<RowChange>,
    /// A part of a transaction pushed in parts, not its last: the downstream transaction stays
    /// open after it (only without dispatch, where one worker applies everything).
    pub(crate) continues: bool,
}

/// What a worker tells the dispatcher after a chunk: which worker, how many changes the chunk
/// held (they leave the worker's backlog), and what became of them.
#[derive(Debug)]
pub(crate) struct WorkerReport {
    pub(crate) worker: usize,
    pub(crate) changes: usize,
    pub(crate) event: WorkerEvent,
}

/// What became of a chunk.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// These units (by transaction sequence number, one entry per unit) are committed.
    Applied(Vec<u64>),
    /// This unit ran inside a downstream transaction that stays open for the next part; it is
    /// reported `Applied` with the part that commits.
    Ran(u64),
    /// The worker stopped on this error.
    Failed(LoaderError),
}

pub(crate) struct Worker {
    pub(crate) id: usize,
    pub(crate) link: Link,
    pub(crate) shared: Arc<Shared>,
    /// Changes per downstream transaction; `None`: one unit (one upstream transaction) each.
    pub(crate) batch_size: Option<usize>,
    /// The parts run so far of a transaction pushed in parts, inside the downstream transaction
    /// left open for its next part.
    pub(crate) open_parts: Vec<u64>,
}

/// Where an attempt to apply a chunk failed.
struct AttemptError {
    failure: Failure,
    /// The statement that failed (empty while connecting).
    sql: String,
    /// Index in the chunk of the first change that statement writes.
    source: usize,
    /// The failure happened while the chunk may have been committed.
    maybe_committed: bool,
}

impl AttemptError {
    /// A failure outside the chunk's own statements: connecting (`sql` empty), `BEGIN`,
    /// `COMMIT`.
    fn control(sql: &'static str, maybe_committed: bool) -> impl FnOnce(Failure) -> AttemptError {
        move |failure| AttemptError {
            failure,
            sql: sql.to_string(),
            source: 0,
            maybe_committed,
        }
    }
}

impl Worker {
    pub(crate) async fn run(
        mut self,
        mut units: mpsc::UnboundedReceiver<Unit>,
        events: mpsc::UnboundedSender<WorkerReport>,
    ) {
        let mut queue: VecDeque<Unit> = VecDeque::new();
        loop {
            if queue.is_empty() {
                match units.recv().await {
                    Some(unit) => queue.push_back(unit),
                    None => return,
                }
            }
            // Everything routed here so far (the loader's byte budget bounds it), so that chunks
            // can be made of one table's changes.
            if let Some(batch) = self.batch_size {
                gather(&mut queue, &mut units, batch).await;
            }
            let continues = queue.front().is_some_and(|unit| unit.continues);
            let (chunk, done) = self.take_chunk(&mut queue);
            let event = if continues || !self.open_parts.is_empty() {
                self.apply_part(&chunk, done, continues).await
            } else {
                match self.apply(&chunk).await {
                    Ok(()) => WorkerEvent::Applied(done),
                    Err(err) => WorkerEvent::Failed(err),
                }
            };
            let failed = matches!(event, WorkerEvent::Failed(_));
            let report = WorkerReport {
                worker: self.id,
                changes: chunk.len(),
                event,
            };
            if events.send(report).is_err() || failed {
                return;
            }
        }
    }

    /// The next chunk and the units it completes. With a batch size: up to that many changes
    /// of the table the queue starts with, in queue order, taken from every unit among the first
    /// [`CHUNK_LOOKAHEAD_UNITS`] (other tables' changes keep their order and wait for their own
    /// chunk). Changes of different tables never touch the same row, and a one-table chunk is
    /// usually one multi-row statement. Without a batch size: the first unit, whole.
    fn take_chunk(&self, queue: &mut VecDeque<Unit>) -> (Vec<RowChange>, Vec<u64>) {
        let Some(batch) = self.batch_size else {
            return match queue.pop_front() {
                Some(unit) => (unit.changes.into(), vec![unit.seq]),
                None => (Vec::new(), Vec::new()),
            };
        };
        let Some((info, database, table)) = queue
            .front()
            .and_then(|unit| unit.changes.front())
            .map(|c| (c.table.clone(), c.dml.database.clone(), c.dml.table.clone()))
        else {
            return (Vec::new(), Vec::new());
        };
        // Changes of one table share its metadata, except across a cache eviction.
        let of_table = |c: &RowChange| {
            Arc::ptr_eq(&c.table, &info) || (c.dml.table == table && c.dml.database == database)
        };
        let mut chunk = Vec::with_capacity(batch);
        let mut done = Vec::new();
        let mut visited = 0;
        for unit in queue.iter_mut() {
            if chunk.len() == batch || visited == CHUNK_LOOKAHEAD_UNITS {
                break;
            }
            visited += 1;
            while chunk.len() < batch && unit.changes.front().is_some_and(of_table) {
                chunk.extend(unit.changes.pop_front());
            }
            if chunk.len() < batch && unit.changes.iter().any(of_table) {
                let mut others = VecDeque::with_capacity(unit.changes.len());
                for change in unit.changes.drain(..) {
                    if chunk.len() < batch && of_table(&change) {
                        chunk.push(change);
                    } else {
                        others.push_back(change);
                    }
                }
                unit.changes = others;
            }
            if unit.changes.is_empty() {
                done.push(unit.seq);
            }
        }
        // Only visited units can have emptied; the queue may be long.
        let visited: Vec<Unit> = queue.drain(..visited).collect();
        for unit in visited.into_iter().rev() {
            if !unit.changes.is_empty() {
                queue.push_front(unit);
            }
        }
        (chunk, done)
    }

    /// Applies a chunk, retrying until it is committed or a statement is refused too often.
    async fn apply(&mut self, chunk: &[RowChange]) -> Result<(), LoaderError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let mut retrier = Retrier::new(&shared, format!("worker {}", self.id));
        let mut refusals = 0u32;
        let mut replay_safely = false;
        loop {
            let safe_mode = replay_safely || shared.safe_mode();
            let planned = sql::plan(chunk, safe_mode);
            let Err(err) = self.attempt(planned).await else {
                retrier.succeeded();
                return Ok(());
            };
            match &err.failure {
                Failure::Connection(_) => {
                    self.link.reset();
                    replay_safely |= err.maybe_committed;
                }
                Failure::Transient { .. } => self.rollback().await,
                Failure::Statement { .. } => {
                    refusals += 1;
                    if refusals >= STATEMENT_ATTEMPTS {
                        return Err(LoaderError::Dml {
                            commit_ts: chunk.get(err.source).map_or(0, |c| c.commit_ts),
                            sql: shorten(&err.sql, SQL_IN_MESSAGES),
                            message: err.failure.message(),
                            attempts: refusals,
                        });
                    }
                    self.rollback().await;
                }
            }
            let wait = retrier.failed("applying a chunk of row changes", &err.failure);
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: a chunk of one statement runs alone (it autocommits), a longer one inside
    /// `BEGIN … COMMIT`.
    async fn attempt(&mut self, planned: Vec<Planned>) -> Result<(), AttemptError> {
        let timeout = self.link.read_timeout();
        let conn = self
            .link
            .conn()
            .await
            .map_err(AttemptError::control("", false))?;
        if planned.len() == 1 {
            for p in planned {
                execute(conn, timeout, p, true).await?;
            }
            return Ok(());
        }
        with_timeout(timeout, "BEGIN", conn.query_drop("BEGIN"))
            .await
            .map_err(AttemptError::control("BEGIN", false))?;
        for p in planned {
            execute(conn, timeout, p, false).await?;
        }
        with_timeout(timeout, "COMMIT", conn.query_drop("COMMIT"))
            .await
            .map_err(AttemptError::control("COMMIT", true))
    }

    /// Runs one part of a transaction pushed in parts (`done`: its unit) inside the downstream
    /// transaction the parts share, and commits it after the last. Parts that ran are freed, so
    /// nothing is retried: a failure drops the connection (the server rolls the transaction
    /// back) and stops the loader.
    async fn apply_part(
        &mut self,
        chunk: &[RowChange],
        done: Vec<u64>,
        continues: bool,
    ) -> WorkerEvent {
        let result = self.run_part(chunk, !continues).await;
        self.open_parts.extend(done);
        match result {
            Ok(()) if continues => match self.open_parts.last() {
                Some(&seq) => WorkerEvent::Ran(seq),
                None => WorkerEvent::Applied(Vec::new()),
            },
            Ok(()) => WorkerEvent::Applied(std::mem::take(&mut self.open_parts)),
            Err(err) => {
                self.open_parts.clear();
                self.link.reset();
                WorkerEvent::Failed(LoaderError::PartialTxn {
                    commit_ts: chunk.first().map_or(0, |c| c.commit_ts),
                    sql: shorten(&err.sql, SQL_IN_MESSAGES),
                    message: err.failure.message(),
                })
            }
        }
    }

    async fn run_part(&mut self, chunk: &[RowChange], last: bool) -> Result<(), AttemptError> {
        let timeout = self.link.read_timeout();
        let planned = sql::plan(chunk, self.shared.safe_mode());
        let first_part = self.open_parts.is_empty();
        let conn = self
            .link
            .conn()
            .await
            .map_err(AttemptError::control("", false))?;
        if first_part {
            with_timeout(timeout, "BEGIN", conn.query_drop("BEGIN"))
                .await
                .map_err(AttemptError::control("BEGIN", false))?;
        }
        for p in planned {
            execute(conn, timeout, p, false).await?;
        }
        if last {
            with_timeout(timeout, "COMMIT", conn.query_drop("COMMIT"))
                .await
                .map_err(AttemptError::control("COMMIT", true))?;
        }
        Ok(())
    }

    /// Ends a failed transaction; a connection that cannot is given up.
    async fn rollback(&mut self) {
        let timeout = self.link.read_timeout();
        let Ok(conn) = self.link.conn().await else {
            return;
        };
        if with_timeout(timeout, "ROLLBACK", conn.query_drop("ROLLBACK"))
            .await
            .is_err()
        {
            self.link.reset();
        }
    }
}

/// Units a chunk is gathered from at most: a table whose changes are rare in a long queue would
/// otherwise have the whole queue walked for every chunk of it.
const CHUNK_LOOKAHEAD_UNITS: usize = 256;

/// Times a worker short of a full chunk lets the other tasks run before it takes one.
const GATHER_YIELDS: usize = 4;

/// Moves the units routed so far into `queue`. While that is less than a chunk, the worker
/// yields a few times first: on a busy runtime the dispatcher routes more meanwhile, and every
/// statement saved is a round trip and a server-side execution saved; on an idle one the yields
/// return at once, so latency does not suffer.
async fn gather(
    queue: &mut VecDeque<Unit>,
    units: &mut mpsc::UnboundedReceiver<Unit>,
    batch: usize,
) {
    for round in 0..=GATHER_YIELDS {
        while let Ok(unit) = units.try_recv() {
            queue.push_back(unit);
        }
        if round == GATHER_YIELDS || holds_a_chunk(queue, batch) {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Whether `queue` holds `batch` changes, counted only that far: it may hold thousands of units.
fn holds_a_chunk(queue: &VecDeque<Unit>, batch: usize) -> bool {
    let mut queued = 0;
    queue.iter().any(|unit| {
        queued += unit.changes.len();
        queued >= batch
    })
}

async fn execute(
    conn: &mut Conn,
    timeout: Duration,
    planned: Planned,
    autocommit: bool,
) -> Result<(), AttemptError> {
    let Planned {
        statement: Statement { sql, params },
        source,
    } = planned;
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    with_timeout(timeout, "a statement", conn.exec_drop(sql.as_str(), params))
        .await
        .map_err(|failure| AttemptError {
            maybe_committed: autocommit && matches!(failure, Failure::Connection(_)),
            failure,
            sql,
            source,
        })
}

/// Runs a driver call with the read timeout; a call that times out leaves its connection in an
/// unknown state, so it counts as a lost connection.
pub(crate) async fn with_timeout<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(Failure::from),
        Err(_) => Err(Failure::timeout(what, timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoaderConfig;
    use crate::session::{Role, Sessions};
    use crate::table_info::TableInfo;
    use crate::txn::{Dml, DmlKind, Row};

    fn worker(batch_size: Option<usize>) -> Worker {
        let sessions = Arc::new(Sessions::new(&LoaderConfig::new("127.0.0.1", 1, "u", "")));
        Worker {
            id: 0,
            link: Link::new(sessions, Role::Worker),
            shared: Arc::new(Shared::default()),
            batch_size,
            open_parts: Vec::new(),
        }
    }

    fn unit(seq: u64, len: usize) -> Unit {
        let change = RowChange {
            commit_ts: seq as i64,
            dml: Dml {
                database: "d".into(),
                table: "t".into(),
                kind: DmlKind::Insert,
                values: Row::default(),
                old_values: Row::default(),
            },
            table: Arc::new(TableInfo::default()),
        };
        Unit {
            seq,
            changes: std::iter::repeat_n(change, len).collect(),
            continues: false,
        }
    }

    #[test]
    fn chunks_split_units_and_report_units_once_complete() {
        let w = worker(Some(4));
        let mut queue: VecDeque<Unit> = [unit(1, 3), unit(2, 3), unit(3, 1)].into();
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!((chunk.len(), done), (4, vec![1]));
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!((chunk.len(), done), (3, vec![2, 3]));
        assert!(queue.is_empty());
    }

    /// A unit with one change per entry of `tables` (name and metadata, shared by the changes
    /// of a table as the dispatcher does), numbered in `values` by position.
    fn mixed(seq: u64, tables: &[(&str, &Arc<TableInfo>)]) -> Unit {
        let mut unit = unit(seq, tables.len());
        for (n, (change, (name, info))) in unit.changes.iter_mut().zip(tables).enumerate() {
            change.dml.table = (*name).into();
            change.table = Arc::clone(info);
            change.dml.values =
                Row::from_iter([("n".into(), tidb_codec::ColumnValue::Int(n as i64))]);
        }
        unit
    }

    fn described(chunk: &[RowChange]) -> Vec<String> {
        chunk
            .iter()
            .map(|c| {
                format!(
                    "{}{}#{:?}",
                    c.dml.table,
                    c.commit_ts,
                    c.dml.values.values()[0]
                )
            })
            .collect()
    }

    #[test]
    fn a_chunk_holds_one_tables_changes_in_queue_order() {
        let w = worker(Some(3));
        let (a, b) = (
            Arc::new(TableInfo::default()),
            Arc::new(TableInfo::default()),
        );
        let mut queue: VecDeque<Unit> = [
            mixed(1, &[("a", &a), ("b", &b), ("a", &a)]),
            mixed(2, &[("b", &b)]),
            mixed(3, &[("a", &a), ("a", &a)]),
        ]
        .into();
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!(described(&chunk), ["a1#Int(0)", "a1#Int(2)", "a3#Int(0)"]);
        assert!(done.is_empty(), "every unit still has changes");
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!(described(&chunk), ["b1#Int(1)", "b2#Int(0)"]);
        assert_eq!(done, [1, 2]);
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!(described(&chunk), ["a3#Int(1)"]);
        assert_eq!(done, [3]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_chunk_is_gathered_from_the_first_units_only() {
        let w = worker(Some(3));
        let (a, b) = (
            Arc::new(TableInfo::default()),
            Arc::new(TableInfo::default()),
        );
        let mut queue: VecDeque<Unit> = std::iter::once(mixed(0, &[("a", &a)]))
            .chain((1..CHUNK_LOOKAHEAD_UNITS as u64).map(|seq| mixed(seq, &[("b", &b)])))
            .chain([mixed(CHUNK_LOOKAHEAD_UNITS as u64, &[("a", &a)])])
            .collect();
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!(
            described(&chunk),
            ["a0#Int(0)"],
            "the last unit is beyond the lookahead"
        );
        assert_eq!(done, [0]);
        assert_eq!(queue.len(), CHUNK_LOOKAHEAD_UNITS);
    }

    #[test]
    fn without_dispatch_a_chunk_is_exactly_one_unit() {
        let w = worker(None);
        let mut queue: VecDeque<Unit> = [unit(1, 50), unit(2, 1)].into();
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!((chunk.len(), done), (50, vec![1]));
        let (chunk, done) = w.take_chunk(&mut queue);
        assert_eq!((chunk.len(), done), (1, vec![2]));
    }
}
