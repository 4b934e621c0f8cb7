//! The pb file sink (`db-type = "file"`/`"pb"`, reference drainer.md §6.1): each transaction or
//! DDL becomes one `pb_binlog.Binlog` record in the binlog files. A write is confirmed once
//! appended; [`FileSink::sync`] makes it durable before the checkpoint passes it (the original
//! confirmed without any fsync). Expired files are removed hourly when a retention is set.

use std::time::{Duration, Instant, SystemTime};

use binlog_proto::binlog::PrewriteValue;
use prost::Message;

use super::{DdlStatement, SinkError};
use crate::binlogfile::BinlogWriter;
use crate::schema::Catalog;
use crate::translate::pb;
use crate::translate::zone::ShownZone;

const RETENTION_CHECK: Duration = Duration::from_secs(3600);

pub struct FileSink {
    writer: BinlogWriter,
    /// Appended, not yet reported as confirmed.
    appended: Vec<i64>,
    retention: Option<Duration>,
    last_retention_check: Instant,
}

fn files_error(err: impl std::fmt::Display) -> SinkError {
    SinkError::Files(err.to_string())
}

impl FileSink {
    pub fn new(writer: BinlogWriter, retention: Option<Duration>) -> FileSink {
        FileSink {
            writer,
            appended: Vec::new(),
            retention,
            last_retention_check: Instant::now(),
        }
    }

    fn append(
        &mut self,
        commit_ts: i64,
        binlog: &binlog_proto::pb_binlog::Binlog,
    ) -> Result<(), SinkError> {
        let payload = binlog.encode_to_vec();
        // Most appends only fill the write buffer: handing the runtime's thread over for each
        // (what `block_in_place` does) would cost far more than the copy.
        if self.writer.append_reaches_disk(payload.len()) {
            tokio::task::block_in_place(|| self.writer.append(&payload))
        } else {
            self.writer.append(&payload)
        }
        .map_err(files_error)?;
        self.appended.push(commit_ts);
        Ok(())
    }

    pub fn write_dml(
        &mut self,
        commit_ts: i64,
        prewrite: &PrewriteValue,
        catalog: &Catalog,
        keep: &(dyn Fn(&str, &str) -> bool + Sync),
    ) -> Result<bool, SinkError> {
        match pb::dml_binlog(commit_ts, prewrite, catalog, keep, ShownZone::Local)? {
            Some(binlog) => {
                self.append(commit_ts, &binlog)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn write_ddl(&mut self, ddl: DdlStatement) -> Result<bool, SinkError> {
        if ddl.skip {
            return Ok(false);
        }
        let statement = ddl.query.trim_start().to_lowercase();
        let creates_database = ddl.table.is_empty()
            && (statement.starts_with("create database") || statement.starts_with("create schema"));
        let binlog = pb::ddl_binlog(ddl.commit_ts, &ddl.database, &ddl.query, creates_database);
        self.append(ddl.commit_ts, &binlog)?;
        Ok(true)
    }

    /// Appended writes are confirmed at once; with none, waits forever (cancel-safe).
    pub async fn confirmations(&mut self) -> Vec<i64> {
        if self.appended.is_empty() {
            std::future::pending::<()>().await;
        }
        std::mem::take(&mut self.appended)
    }

    /// fdatasync of what was appended; then hourly retention.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        tokio::task::block_in_place(|| self.writer.sync()).map_err(files_error)?;
        if let Some(retention) = self.retention
            && self.last_retention_check.elapsed() >= RETENTION_CHECK
        {
            self.last_retention_check = Instant::now();
            let removed = tokio::task::block_in_place(|| {
                self.writer.remove_expired(retention, SystemTime::now())
            })
            .map_err(files_error)?;
            for path in removed {
                tracing::info!(file = %path.display(), "removed expired binlog file");
            }
        }
        Ok(())
    }

    pub fn close(&mut self) -> Result<Vec<i64>, SinkError> {
        self.sync()?;
        Ok(std::mem::take(&mut self.appended))
    }
}
