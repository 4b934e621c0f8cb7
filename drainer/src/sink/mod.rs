//! Where transactions go: the MySQL/TiDB downstream through the loader, pb binlog files, or a
//! Kafka topic.
//! Each sink confirms what it made durable, in the order it was written, which is all the
//! checkpoint needs (see [`crate::progress`]).

pub mod file;
pub mod kafka;
pub mod mysql;

use std::sync::Arc;
use std::time::Duration;

use binlog_loader::Loader;
use binlog_proto::binlog::PrewriteValue;

use crate::schema::Catalog;
use crate::translate::TranslateError;

pub use file::FileSink;
pub use kafka::KafkaSink;
pub use mysql::MysqlSink;

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Translate(#[from] TranslateError),
    #[error("MySQL/TiDB downstream: {0}")]
    Loader(#[from] binlog_loader::LoaderError),
    #[error("binlog files: {0}")]
    Files(String),
    #[error("Kafka: {0}")]
    Kafka(String),
}

/// A DDL statement on its way to the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct DdlStatement {
    pub commit_ts: i64,
    pub database: String,
    pub table: String,
    pub query: String,
    /// Tracked but not executed (filtered, `sync-ddl = false`); SQL sinks still forget what they
    /// cached about the table.
    pub skip: bool,
}

/// What closing a sink confirmed, and whether it finished.
#[derive(Debug, Default)]
pub struct Closed {
    /// Commit ts made durable on the way, oldest first.
    pub confirmed: Vec<i64>,
    /// Whether everything handed to the sink was written. `false` when the wait ran out and the
    /// rest was abandoned: it lies past the checkpoint and is written again after a restart.
    pub complete: bool,
}

/// What `/status` reads to say what the sink is struggling through, without reaching into the
/// sink itself.
#[derive(Clone)]
pub enum SinkProbe {
    /// Nothing to report (files: a failing write stops the drainer).
    Quiet,
    /// The loader's retries, or why it stopped.
    Loader(Arc<Loader>),
    /// Brokers the Kafka producer cannot reach, or a batch they are slow to acknowledge.
    Kafka(Arc<kafka::ProducerState>),
}

impl SinkProbe {
    /// The trouble, if any, in a sentence.
    pub fn trouble(&self) -> Option<String> {
        match self {
            SinkProbe::Quiet => None,
            SinkProbe::Loader(loader) => loader_trouble(&loader.status()),
            SinkProbe::Kafka(producer) => producer.trouble(),
        }
    }
}

/// The downstream trouble the loader is retrying through, or why it stopped.
fn loader_trouble(status: &binlog_loader::LoaderStatus) -> Option<String> {
    if let Some(failed) = &status.failed {
        return Some(failed.to_string());
    }
    status.retrying.as_ref().map(|r| {
        format!(
            "downstream: {} retrying after {} attempts: {}",
            r.connection, r.attempts, r.error
        )
    })
}

/// The configured sink.
pub enum Sink {
    Mysql(MysqlSink),
    File(FileSink),
    Kafka(KafkaSink),
}

impl Sink {
    pub fn probe(&self) -> SinkProbe {
        match self {
            Sink::Mysql(sink) => SinkProbe::Loader(sink.loader()),
            Sink::File(_) => SinkProbe::Quiet,
            Sink::Kafka(sink) => SinkProbe::Kafka(sink.producer_state()),
        }
    }

    /// Translates and writes one transaction's row changes; `false` when nothing survived the
    /// filter (the caller then records progress without a write). The MySQL sink takes the raw
    /// rows out of `prewrite` as it translates them; an unknown table fails before that.
    pub async fn write_dml(
        &mut self,
        commit_ts: i64,
        prewrite: &mut PrewriteValue,
        catalog: &Catalog,
        keep: &(dyn Fn(&str, &str) -> bool + Sync),
    ) -> Result<bool, SinkError> {
        match self {
            Sink::Mysql(sink) => sink.write_dml(commit_ts, prewrite, catalog, keep).await,
            Sink::File(sink) => sink.write_dml(commit_ts, prewrite, catalog, keep),
            Sink::Kafka(sink) => sink.write_dml(commit_ts, prewrite, catalog, keep).await,
        }
    }

    /// Writes a DDL statement; `false` when the sink has nothing to write for it.
    pub async fn write_ddl(&mut self, ddl: DdlStatement) -> Result<bool, SinkError> {
        match self {
            Sink::Mysql(sink) => sink.write_ddl(ddl).await,
            Sink::File(sink) => sink.write_ddl(ddl),
            Sink::Kafka(sink) => sink.write_ddl(ddl).await,
        }
    }

    /// Waits until more writes are durable and returns their commit ts, oldest first.
    /// Cancel-safe.
    pub async fn confirmations(&mut self) -> Result<Vec<i64>, SinkError> {
        match self {
            Sink::Mysql(sink) => sink.confirmations().await,
            Sink::File(sink) => Ok(sink.confirmations().await),
            Sink::Kafka(sink) => sink.confirmations().await,
        }
    }

    /// Makes every confirmed write durable before a checkpoint passes it (MySQL and Kafka
    /// confirm only what is durable).
    pub async fn sync(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Mysql(_) | Sink::Kafka(_) => Ok(()),
            Sink::File(sink) => sink.sync(),
        }
    }

    /// Switches safe mode (idempotent statements), where the sink has one.
    pub fn set_safe_mode(&self, on: bool) {
        match self {
            Sink::Mysql(sink) => sink.set_safe_mode(on),
            Sink::File(_) | Sink::Kafka(_) => {}
        }
    }

    /// Writes everything accepted and stops, abandoning what the downstream did not take within
    /// `wait` (a dead or frozen downstream must not keep the drainer from stopping).
    pub async fn close(&mut self, wait: Duration) -> Result<Closed, SinkError> {
        match self {
            Sink::Mysql(sink) => sink.close(wait).await,
            Sink::File(sink) => sink.close().map(|confirmed| Closed {
                confirmed,
                complete: true,
            }),
            Sink::Kafka(sink) => sink.close(wait).await,
        }
    }
}
