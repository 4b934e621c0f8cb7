//! The MySQL/TiDB sink: binlogs translated into the loader's row changes and DDL; the loader's
//! applied position (transactions committed downstream, in push order) becomes confirmations.
//!
//! A transaction is translated and pushed in slices of [`SLICE_BYTES`], so a huge one is held
//! by the loader's byte budget, not whole; it is confirmed once its last slice is applied. With
//! dispatch the loader splits transactions across workers and batches anyway; without, it runs
//! the slices in one downstream transaction (see [`Loader::push_unfinished`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use binlog_loader::{AppliedPosition, Ddl, Loader, Txn, TxnChange};
use binlog_proto::binlog::PrewriteValue;
use tokio::sync::watch;

use super::{Closed, DdlStatement, SinkError};
use crate::schema::Catalog;
use crate::translate::sql;

/// Estimated bytes ([`binlog_loader::Dml::approx_bytes`]) of row changes per pushed slice.
pub const SLICE_BYTES: usize = 4 << 20;

pub struct MysqlSink {
    loader: Arc<Loader>,
    applied: watch::Receiver<AppliedPosition>,
    /// Per pushed, unapplied loader transaction, in push order: the commit ts its application
    /// confirms, or `None` for a slice that is not its transaction's last.
    pushed: VecDeque<Option<i64>>,
    confirmed: u64,
    names: sql::NameCache,
}

impl MysqlSink {
    /// A sink writing through `loader` (shared with whoever shows its status).
    pub fn new(loader: Arc<Loader>) -> MysqlSink {
        let applied = loader.applied();
        MysqlSink {
            loader,
            applied,
            pushed: VecDeque::new(),
            confirmed: 0,
            names: sql::NameCache::default(),
        }
    }

    /// The loader it writes through.
    pub fn loader(&self) -> Arc<Loader> {
        self.loader.clone()
    }

    async fn push(&mut self, txn: Txn) -> Result<(), SinkError> {
        let commit_ts = txn.commit_ts;
        self.loader.push(txn).await?;
        self.pushed.push_back(Some(commit_ts));
        Ok(())
    }

    /// Translates and pushes a transaction's row changes (consuming `prewrite`'s raw rows) in
    /// slices of [`SLICE_BYTES`], every slice but the last as an unfinished part; `false` when
    /// none survived `keep`.
    pub async fn write_dml(
        &mut self,
        commit_ts: i64,
        prewrite: &mut PrewriteValue,
        catalog: &Catalog,
        keep: &(dyn Fn(&str, &str) -> bool + Sync),
    ) -> Result<bool, SinkError> {
        let mut slices = sql::DmlSlices::new(commit_ts, prewrite, catalog, &mut self.names, keep)?;
        let Some(mut slice) = slices.next_slice(SLICE_BYTES)? else {
            return Ok(false);
        };
        // One slice ahead: a part is pushed as the last only when nothing follows it.
        while let Some(following) = slices.next_slice(SLICE_BYTES)? {
            let part = Txn {
                commit_ts,
                change: TxnChange::Dml(std::mem::replace(&mut slice, following)),
            };
            self.loader.push_unfinished(part).await?;
            // Only the last part confirms the transaction: the loader reports in push order.
            self.pushed.push_back(None);
        }
        self.push(Txn {
            commit_ts,
            change: TxnChange::Dml(slice),
        })
        .await?;
        Ok(true)
    }

    pub async fn write_ddl(&mut self, ddl: DdlStatement) -> Result<bool, SinkError> {
        self.push(Txn {
            commit_ts: ddl.commit_ts,
            change: TxnChange::Ddl(Ddl {
                database: ddl.database,
                table: ddl.table,
                sql: ddl.query,
                should_skip: ddl.skip,
            }),
        })
        .await?;
        Ok(true)
    }

    fn take_confirmed(&mut self, position: AppliedPosition) -> Vec<i64> {
        let newly = position.txns.saturating_sub(self.confirmed) as usize;
        self.confirmed = self.confirmed.max(position.txns);
        self.pushed
            .drain(..newly.min(self.pushed.len()))
            .flatten()
            .collect()
    }

    pub async fn confirmations(&mut self) -> Result<Vec<i64>, SinkError> {
        loop {
            let position = *self.applied.borrow_and_update();
            let confirmed = self.take_confirmed(position);
            if !confirmed.is_empty() {
                return Ok(confirmed);
            }
            if self.applied.changed().await.is_err() {
                // The loader stopped: report why.
                self.loader.close().await?;
                let position = *self.applied.borrow();
                let confirmed = self.take_confirmed(position);
                if confirmed.is_empty() {
                    std::future::pending::<()>().await;
                }
                return Ok(confirmed);
            }
        }
    }

    pub fn set_safe_mode(&self, on: bool) {
        self.loader.set_safe_mode(on);
    }

    /// Waits up to `wait` for the loader to apply what was pushed, then abandons the rest.
    pub async fn close(&mut self, wait: Duration) -> Result<Closed, SinkError> {
        let complete = match tokio::time::timeout(wait, self.loader.close()).await {
            Ok(closed) => {
                closed?;
                true
            }
            Err(_) => {
                self.loader.abort();
                tracing::warn!(
                    unapplied = self.pushed.len(),
                    "the downstream did not apply everything within {} s of stopping; the rest \
                     is applied again after a restart",
                    wait.as_secs()
                );
                false
            }
        };
        let position = *self.applied.borrow();
        Ok(Closed {
            confirmed: self.take_confirmed(position),
            complete,
        })
    }
}
