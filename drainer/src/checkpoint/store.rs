//! The configured checkpoint backend, with the schema catalog saved beside the checkpoint.

use super::file::FileCheckpoint;
use super::mysql::MysqlCheckpoint;
use super::{Checkpoint, CheckpointError, CheckpointStore};
use crate::schema::Catalog;

/// Where this drainer's checkpoint and catalog live.
pub enum Store {
    File(FileCheckpoint),
    Mysql(MysqlCheckpoint),
}

impl Store {
    pub async fn load(&self) -> Result<Checkpoint, CheckpointError> {
        match self {
            Store::File(store) => store.load().await,
            Store::Mysql(store) => store.load().await,
        }
    }

    pub async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        match self {
            Store::File(store) => store.save(checkpoint).await,
            Store::Mysql(store) => store.save(checkpoint).await,
        }
    }

    /// The saved catalog, if any.
    pub async fn load_catalog(&self) -> Result<Option<Catalog>, CheckpointError> {
        let bytes = match self {
            Store::File(store) => store.load_catalog().await?,
            Store::Mysql(store) => store.load_catalog().await?,
        };
        bytes
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|err| CheckpointError::Malformed {
                    what: "saved schema catalog".to_string(),
                    reason: err.to_string(),
                })
            })
            .transpose()
    }

    /// Saves the catalog; callers save it before the checkpoint that depends on it.
    pub async fn save_catalog(&mut self, catalog: &Catalog) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec(catalog).map_err(|err| CheckpointError::Malformed {
            what: "schema catalog".to_string(),
            reason: err.to_string(),
        })?;
        match self {
            Store::File(store) => store.save_catalog(bytes).await,
            Store::Mysql(store) => store.save_catalog(catalog.version(), bytes).await,
        }
    }

    /// The commit ts no transaction handed to the sink exceeded before the last stop, if known.
    pub async fn load_pushed_ts(&self) -> Result<Option<i64>, CheckpointError> {
        match self {
            Store::File(store) => store.load_pushed_ts().await,
            Store::Mysql(store) => store.load_pushed_ts().await,
        }
    }

    /// Records that no transaction above `ts` will be handed to the sink.
    pub async fn save_pushed_ts(&mut self, ts: i64) -> Result<(), CheckpointError> {
        match self {
            Store::File(store) => store.save_pushed_ts(ts).await,
            Store::Mysql(store) => store.save_pushed_ts(ts).await,
        }
    }
}
