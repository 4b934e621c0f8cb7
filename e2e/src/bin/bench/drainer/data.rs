//! What the drainer benchmarks write: inserts into three of the simulator's tables with primary
//! keys (`sim_a.ints`, an integer handle over every integer type; `sim_a.strings`, a clustered
//! `(varchar, bigint)` key over decimal, float, char, text and blob columns; `sim_b.upk`, an
//! unsigned handle), encoded into prewrite binlogs as TiDB does and written through TiDB's pump
//! client; and the same rows as plain values for the bulk baseline.
//!
//! A row is a pure function of its table and its key number, so the baseline regenerates exactly
//! what the drainer applied. Key numbers come from one counter per table shared by every phase,
//! so no two phases ever write the same key.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, anyhow};
use binlog_cluster::PdClient;
use binlog_proto::binlog::{Binlog, BinlogType};
use e2e::tidb::sim::catalog::{Catalog, key_columns, kind_of};
use e2e::tidb::sim::column_kind::ColumnKind;
use e2e::tidb::sim::mutations::TxnMutations;
use e2e::tidb::sim::rng::SimRng;
use e2e::tidb::sim::values::generate;
use e2e::tidb::{CommitOutcome, TidbPumpClient};
use prost::Message;
use tidb_codec::{ColumnValue, TableInfo};

use super::ApplySettings;
use crate::TsSource;

/// The benchmark tables, as `(database, table)` of the simulator's initial schema.
pub(super) const TABLES: [(&str, &str); 3] =
    [("sim_a", "ints"), ("sim_a", "strings"), ("sim_b", "upk")];
/// Index in [`TABLES`] of `sim_a.strings`, the only table with a TEXT column to pad.
pub(super) const STRINGS: usize = 1;
/// Seed of the value generator; rows depend on it, their table and their key only.
const VALUES_SEED: u64 = 0xbe7c_da7a;
/// Distinct values of the varchar part of a clustered key.
const VARCHAR_KEY_SPREAD: u64 = 64;

/// One benchmark table: its TiDB definition and its key counter.
pub(super) struct BenchTable {
    pub(super) database: String,
    pub(super) info: TableInfo,
    index: usize,
    kinds: Vec<ColumnKind>,
    is_key: Vec<bool>,
    next_key: AtomicU64,
}

/// One column's part of a row: (column id, value), in column order.
pub(super) type Row = Vec<(i64, ColumnValue)>;

impl BenchTable {
    /// The tables of [`TABLES`] as the simulator's catalog defines them.
    pub(super) fn all(catalog: &Catalog) -> anyhow::Result<Vec<BenchTable>> {
        TABLES
            .iter()
            .enumerate()
            .map(|(index, (database, name))| {
                let info = catalog
                    .table_by_name(database, name)
                    .with_context(|| {
                        format!("the simulator's setup did not create {database}.{name}")
                    })?
                    .info
                    .clone();
                let keys = key_columns(&info);
                let kinds = info
                    .cols
                    .iter()
                    .map(|col| {
                        kind_of(col).ok_or_else(|| {
                            anyhow!("column {} of {name} has an unknown type", col.name.o)
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let is_key: Vec<bool> = info.cols.iter().map(|c| keys.contains(&c.name.l)).collect();
                for (kind, key) in kinds.iter().zip(&is_key) {
                    anyhow::ensure!(
                        !key || matches!(kind, ColumnKind::Int { bits: 64, .. } | ColumnKind::Varchar(_)),
                        "{database}.{name} has a key column of type {}, which the benchmark cannot number",
                        kind.sql()
                    );
                }
                Ok(BenchTable {
                    database: database.to_string(),
                    info,
                    index,
                    kinds,
                    is_key,
                    next_key: AtomicU64::new(1),
                })
            })
            .collect()
    }

    pub(super) fn name(&self) -> &str {
        &self.info.name.o
    }

    /// `db.table`, for messages.
    pub(super) fn qualified(&self) -> String {
        format!("{}.{}", self.database, self.info.name.o)
    }

    /// Column names in column order (the baseline's column list).
    pub(super) fn columns(&self) -> Vec<String> {
        self.info.cols.iter().map(|c| c.name.o.clone()).collect()
    }

    /// The name of the integer handle column, for tables that have one.
    pub(super) fn int_handle(&self) -> Option<&str> {
        self.info.pk_handle_column().map(|c| c.name.o.as_str())
    }

    /// Reserves the next key number.
    fn claim_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// The key number the next row will get.
    pub(super) fn next_key(&self) -> u64 {
        self.next_key.load(Ordering::Relaxed)
    }

    /// The row with key number `key`: key columns derived from it, the other columns random
    /// but fixed by (table, key). With `text_len`, the TEXT column holds that many characters.
    pub(super) fn row(&self, key: u64, text_len: Option<usize>) -> Row {
        let mut rng = SimRng::derive(VALUES_SEED ^ self.index as u64, key);
        self.info
            .cols
            .iter()
            .zip(self.kinds.iter().zip(&self.is_key))
            .map(|(col, (kind, is_key))| {
                let value = match (kind, is_key, text_len) {
                    (ColumnKind::Int { unsigned: true, .. }, true, _) => ColumnValue::Uint(key),
                    (ColumnKind::Int { .. }, true, _) => ColumnValue::Int(key as i64),
                    (_, true, _) => ColumnValue::Text(format!("k{}", key % VARCHAR_KEY_SPREAD)),
                    (ColumnKind::Text, false, Some(len)) => {
                        ColumnValue::Text(filler(&mut rng, len))
                    }
                    (kind, false, _) => generate(&mut rng, kind, !col.is_not_null()),
                };
                (col.id, value)
            })
            .collect()
    }

    /// The values of the rows with key numbers `keys`, in column order (the baseline's input).
    pub(super) fn plain_rows(&self, keys: Range<u64>) -> Vec<Vec<ColumnValue>> {
        keys.map(|key| self.row(key, None).into_iter().map(|(_, v)| v).collect())
            .collect()
    }
}

/// `len` letters and digits.
fn filler(rng: &mut SimRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.index(ALPHABET.len())]))
        .collect()
}

/// One transaction to write: rows by table index.
pub(super) type TxnRows = Vec<(usize, Row)>;

/// Writes transactions as TiDB does: the prewrite binlog with the encoded rows to a pump chosen
/// by TiDB's rules, then the commit binlog to the same pump.
#[derive(Clone)]
pub(super) struct TxnWriter {
    pub(super) client: TidbPumpClient,
    pub(super) tables: Arc<Vec<BenchTable>>,
    pub(super) schema_version: i64,
}

impl TxnWriter {
    /// Draws `rows` rows over `tables` (indexes into the bench tables), each with the next key
    /// of its table.
    pub(super) fn draw(
        &self,
        rng: &mut SimRng,
        rows: usize,
        tables: &[usize],
        text_len: Option<usize>,
    ) -> TxnRows {
        (0..rows)
            .map(|_| {
                let table = tables[rng.index(tables.len())];
                let key = self.tables[table].claim_key();
                (table, self.tables[table].row(key, text_len))
            })
            .collect()
    }

    /// The transaction's primary key (its first row's record key) and marshalled prewrite
    /// value.
    pub(super) fn prewrite_value(&self, rows: &TxnRows) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let mut mutations = TxnMutations::default();
        for (table, values) in rows {
            mutations
                .insert(&self.tables[*table].info, values, None)
                .context("encoding a row")?;
        }
        let key = mutations.primary_key();
        Ok((
            key,
            mutations
                .into_prewrite_value(self.schema_version)
                .encode_to_vec(),
        ))
    }

    /// Writes one transaction; returns its prewrite value's size, its commit ts and the instant
    /// its commit binlog was acknowledged.
    pub(super) async fn write(
        &self,
        ts: Timestamps<'_>,
        rows: &TxnRows,
    ) -> anyhow::Result<WrittenTxn> {
        let (prewrite_key, value) = self.prewrite_value(rows)?;
        let size = value.len();
        // Local timestamps are reserved in pairs; PD's commit ts is taken after the prewrite.
        let (start_ts, reserved_commit_ts) = match ts {
            Timestamps::Local(source) => source.next_txn(),
            Timestamps::Pd(pd) => (pd.get_ts().await.context("PD start ts")?, 0),
        };
        let prewrite = Binlog {
            tp: BinlogType::Prewrite as i32,
            start_ts,
            prewrite_key: Some(prewrite_key),
            prewrite_value: Some(value.into()),
            ..Binlog::default()
        };
        self.client
            .write_prewrite(&prewrite)
            .await
            .with_context(|| format!("prewrite binlog of start ts {start_ts}"))?;
        let commit_ts = match ts {
            Timestamps::Local(_) => reserved_commit_ts,
            Timestamps::Pd(pd) => pd.get_ts().await.context("PD commit ts")?,
        };
        let commit = Binlog {
            tp: BinlogType::Commit as i32,
            commit_ts,
            prewrite_value: None,
            ..prewrite
        };
        match self.client.write_commit(&commit).await {
            CommitOutcome::Delivered { .. } => Ok(WrittenTxn {
                size,
                commit_ts,
                acknowledged: Instant::now(),
            }),
            other => Err(anyhow!(
                "commit binlog of commit ts {commit_ts} not delivered: {other:?}"
            )),
        }
    }
}

/// Where a transaction's timestamps come from.
#[derive(Clone, Copy)]
pub(super) enum Timestamps<'a> {
    /// Composed locally (see the pump benchmarks): only while no drainer pulls, since they can
    /// run a little ahead of the pumps' fake binlogs.
    Local(&'a TsSource),
    /// From PD as TiDB takes them: start ts before the prewrite, commit ts after it.
    Pd(&'a PdClient),
}

/// One written transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct WrittenTxn {
    pub(super) size: usize,
    pub(super) commit_ts: i64,
    pub(super) acknowledged: Instant,
}

/// How much a backlog holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Amount {
    Rows(u64),
    Bytes(u64),
}

/// A backlog to write: transactions of `rows_per_txn` rows over `tables`.
#[derive(Debug, Clone)]
pub(super) struct BacklogPlan {
    pub(super) amount: Amount,
    pub(super) rows_per_txn: Range<usize>,
    pub(super) tables: Vec<usize>,
    pub(super) text_len: Option<usize>,
    /// Writers, each with one transaction in flight.
    pub(super) concurrency: usize,
}

/// Concurrent transactions while a backlog of small inserts is written.
const SMALL_INSERT_WRITERS: usize = 32;

impl BacklogPlan {
    /// `settings.rows` rows inserted in transactions of 1 to `settings.max_txn_rows` rows, each
    /// row in a random one of `tables` tables: the backlog `drainer-apply` and `drainer-kafka`
    /// drain.
    pub(super) fn small_inserts(settings: &ApplySettings, tables: usize) -> BacklogPlan {
        BacklogPlan {
            amount: Amount::Rows(settings.rows),
            rows_per_txn: 1..settings.max_txn_rows.max(1) + 1,
            tables: (0..tables).collect(),
            text_len: None,
            concurrency: SMALL_INSERT_WRITERS,
        }
    }
}

/// What a backlog write did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Written {
    pub(super) txns: u64,
    pub(super) rows: u64,
    pub(super) bytes: u64,
    pub(super) last_commit_ts: i64,
}

impl Written {
    pub(super) fn add(&mut self, other: Written) {
        self.txns += other.txns;
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.last_commit_ts = self.last_commit_ts.max(other.last_commit_ts);
    }
}

/// Writes a backlog as fast as the writers go, with local timestamps from `ts` (so no drainer
/// may pull meanwhile).
pub(super) async fn write_backlog(
    writer: &TxnWriter,
    ts: &Arc<TsSource>,
    plan: &BacklogPlan,
) -> anyhow::Result<Written> {
    let left = Arc::new(AtomicU64::new(match plan.amount {
        Amount::Rows(rows) => rows,
        Amount::Bytes(bytes) => bytes,
    }));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..plan.concurrency {
        let (writer, ts, plan, left) = (writer.clone(), ts.clone(), plan.clone(), left.clone());
        tasks.spawn(async move {
            let mut rng = SimRng::derive(VALUES_SEED, worker as u64);
            let mut written = Written::default();
            loop {
                let wanted = plan.rows_per_txn.start
                    + rng.index(plan.rows_per_txn.end - plan.rows_per_txn.start);
                let rows = match plan.amount {
                    Amount::Rows(_) => claim(&left, wanted as u64) as usize,
                    Amount::Bytes(_) if left.load(Ordering::Relaxed) == 0 => 0,
                    Amount::Bytes(_) => wanted,
                };
                if rows == 0 {
                    return anyhow::Ok(written);
                }
                let txn = writer.draw(&mut rng, rows, &plan.tables, plan.text_len);
                let done = writer.write(Timestamps::Local(&ts), &txn).await?;
                if let Amount::Bytes(_) = plan.amount {
                    claim(&left, done.size as u64);
                }
                written.add(Written {
                    txns: 1,
                    rows: rows as u64,
                    bytes: done.size as u64,
                    last_commit_ts: done.commit_ts,
                });
            }
        });
    }
    let mut total = Written::default();
    while let Some(joined) = tasks.join_next().await {
        total.add(joined.context("a backlog writer panicked")??);
    }
    Ok(total)
}

/// Takes up to `wanted` from `left`; returns what it took.
fn claim(left: &AtomicU64, wanted: u64) -> u64 {
    let before = left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(wanted))
        })
        .unwrap_or(0);
    before.min(wanted)
}
