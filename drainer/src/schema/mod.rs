//! Schema tracking without TiKV (DESIGN.md): the [`catalog`] of TiDB's own table definitions,
//! kept current by applying DDL jobs read from a [`source`] (TiDB's status API) in
//! schema-version order.
//!
//! The [`SchemaTracker`] applies jobs lazily, as the original drainer does: a row change at
//! schema version `v` first applies every known job up to `v`; a DDL binlog fetches its job
//! (retrying with backoff while TiDB's history does not have it yet) and applies it. A drainer
//! starting without a saved catalog loads the whole history once.

pub mod catalog;
pub mod source;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidb_codec::schema::DdlJob;
use tokio::sync::watch;

pub use catalog::{AppliedJob, Catalog, CatalogError, JobOutcome, TableLookup};
pub use source::{SchemaSource, SourceError, TidbStatusApi};

/// Why schema tracking stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("loading TiDB's DDL history: {0}")]
    History(SourceError),
    #[error("stopped while waiting for DDL job {job_id}")]
    Stopped { job_id: i64 },
}

/// A DDL job the tracker is waiting for, for `/status` and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WaitingJob {
    pub job_id: i64,
    pub commit_ts: i64,
    pub attempts: u32,
    pub error: String,
}

/// The tracker's published state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SchemaStatus {
    pub schema_version: i64,
    pub waiting_for_job: Option<WaitingJob>,
}

/// Keeps the catalog in step with the binlog stream.
pub struct SchemaTracker<S> {
    catalog: Catalog,
    source: S,
    status: Arc<Mutex<SchemaStatus>>,
    max_backoff: Duration,
}

impl<S: SchemaSource> SchemaTracker<S> {
    pub fn new(catalog: Catalog, source: S) -> SchemaTracker<S> {
        let status = SchemaStatus {
            schema_version: catalog.version(),
            waiting_for_job: None,
        };
        SchemaTracker {
            catalog,
            source,
            status: Arc::new(Mutex::new(status)),
            max_backoff: Duration::from_secs(10),
        }
    }

    /// Caps the wait between attempts to fetch a missing job.
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn catalog_mut(&mut self) -> &mut Catalog {
        &mut self.catalog
    }

    /// A shared view of the tracker's state.
    pub fn status(&self) -> Arc<Mutex<SchemaStatus>> {
        self.status.clone()
    }

    /// Learns TiDB's whole DDL history (for a start without a saved catalog, or when a row
    /// change names a table the catalog does not know yet); returns how many jobs are pending.
    pub async fn load_history(&mut self) -> Result<usize, SchemaError> {
        let jobs = self.source.history().await.map_err(SchemaError::History)?;
        for job in jobs {
            self.catalog.learn(job);
        }
        Ok(self.catalog.pending_jobs())
    }

    /// Applies every learned job up to `schema_version`, before a change made at that version.
    pub fn prepare(&mut self, schema_version: i64) -> Result<(), SchemaError> {
        for (job_id, reason) in self.catalog.apply_learned(schema_version)? {
            tracing::info!(job_id, reason, "DDL job skipped");
        }
        self.publish(None);
        Ok(())
    }

    /// Fetches the job of a DDL binlog (retrying, with capped backoff, until TiDB's history has
    /// it or `stop` fires), applies the jobs before it and then the job itself.
    pub async fn apply_ddl(
        &mut self,
        job_id: i64,
        commit_ts: i64,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(DdlJob, JobOutcome), SchemaError> {
        let job = self.fetch(job_id, commit_ts, stop).await?;
        let version = job.schema_version();
        self.prepare(version.saturating_sub(1))?;
        let outcome = self.catalog.apply(&job)?;
        self.publish(None);
        Ok((job, outcome))
    }

    async fn fetch(
        &mut self,
        job_id: i64,
        commit_ts: i64,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<DdlJob, SchemaError> {
        if let Some(job) = self.catalog.learned_job(job_id) {
            return Ok(job.clone());
        }
        let mut backoff = Duration::from_millis(200);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.source.job(job_id).await {
                Ok(Some(job)) => return Ok(job),
                Ok(None) => "not in TiDB's DDL history yet".to_string(),
                Err(err) => err.to_string(),
            };
            if attempts == 1 || attempts % 10 == 0 {
                tracing::warn!(job_id, commit_ts, attempts, %error, "waiting for DDL job");
            }
            self.publish(Some(WaitingJob {
                job_id,
                commit_ts,
                attempts,
                error,
            }));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = binlog_cluster::shutdown::stopped(stop) => return Err(SchemaError::Stopped { job_id }),
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    fn publish(&self, waiting_for_job: Option<WaitingJob>) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = SchemaStatus {
            schema_version: self.catalog.version(),
            waiting_for_job,
        };
    }
}
