//! What the status API serves: the finished DDL jobs and the catalog they build, as an immutable
//! snapshot that is swapped whole when a job is published, so readers never see half a DDL.

use std::sync::{Arc, RwLock};

use tidb_codec::schema::DdlJob;

use crate::tidb::sim::catalog::{Catalog, CatalogError};

/// The history (by job id) and the catalog after it.
#[derive(Debug, Default)]
pub struct SchemaSnapshot {
    pub jobs: Vec<Arc<DdlJob>>,
    pub catalog: Catalog,
}

/// A shared, swappable [`SchemaSnapshot`]. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SchemaStore {
    inner: Arc<RwLock<Arc<SchemaSnapshot>>>,
}

impl SchemaStore {
    /// A store holding `jobs` (any order).
    pub fn new(jobs: Vec<DdlJob>) -> Result<SchemaStore, CatalogError> {
        let store = SchemaStore::default();
        store.publish(jobs)?;
        Ok(store)
    }

    pub fn snapshot(&self) -> Arc<SchemaSnapshot> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Adds finished jobs and applies them to the catalog (in schema-version order).
    pub fn publish(&self, mut jobs: Vec<DdlJob>) -> Result<(), CatalogError> {
        if jobs.is_empty() {
            return Ok(());
        }
        jobs.sort_by_key(|j| j.schema_version());
        let current = self.snapshot();
        let mut catalog = current.catalog.clone();
        for job in &jobs {
            catalog.apply(job)?;
        }
        let mut all = current.jobs.clone();
        all.extend(jobs.into_iter().map(Arc::new));
        all.sort_by_key(|j| j.id);
        let next = Arc::new(SchemaSnapshot { jobs: all, catalog });
        match self.inner.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }
}
