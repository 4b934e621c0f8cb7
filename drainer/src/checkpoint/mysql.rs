//! The checkpoint in the downstream database (reference drainer.md §5.2): table
//! `<schema>.<table>(clusterID bigint unsigned primary key, checkPoint MEDIUMTEXT)`, one row per
//! upstream cluster, holding the original's JSON — written with parameters, never spliced into
//! the statement. The schema catalog lives beside it in `<schema>.schema_catalog`, so a restarted
//! drainer needs no DDL history, and the push limit in `<schema>.drainer_progress`.

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, params};

use super::{Checkpoint, CheckpointError, CheckpointStore};

/// The checkpoint row of one cluster in a MySQL/TiDB downstream.
pub struct MysqlCheckpoint {
    pool: Pool,
    schema: String,
    table: String,
    cluster_id: u64,
    initial_commit_ts: i64,
}

fn quote(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

fn database_error(err: mysql_async::Error) -> CheckpointError {
    CheckpointError::Database(Box::new(err))
}

impl MysqlCheckpoint {
    /// Creates the schema and tables if needed.
    pub async fn open(
        pool: Pool,
        schema: &str,
        table: &str,
        cluster_id: u64,
        initial_commit_ts: i64,
    ) -> Result<MysqlCheckpoint, CheckpointError> {
        let store = MysqlCheckpoint {
            pool,
            schema: schema.to_string(),
            table: table.to_string(),
            cluster_id,
            initial_commit_ts,
        };
        let mut conn = store.pool.get_conn().await.map_err(database_error)?;
        let schema = quote(&store.schema);
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {schema}"))
            .await
            .map_err(database_error)?;
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {schema}.{}(clusterID bigint unsigned primary key, checkPoint MEDIUMTEXT)",
            quote(&store.table)
        ))
        .await
        .map_err(database_error)?;
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {schema}.schema_catalog(clusterID bigint unsigned primary key, schemaVersion bigint not null, catalog LONGBLOB not null)"
        ))
        .await
        .map_err(database_error)?;
        conn.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {schema}.drainer_progress(clusterID bigint unsigned primary key, pushedTS bigint not null)"
        ))
        .await
        .map_err(database_error)?;
        Ok(store)
    }

    /// Records that no transaction above commit ts `ts` was handed to the sink.
    pub async fn save_pushed_ts(&mut self, ts: i64) -> Result<(), CheckpointError> {
        let mut conn = self.pool.get_conn().await.map_err(database_error)?;
        conn.exec_drop(
            format!(
                "REPLACE INTO {}.drainer_progress(clusterID, pushedTS) VALUES (?, ?)",
                quote(&self.schema)
            ),
            (self.cluster_id, ts),
        )
        .await
        .map_err(database_error)
    }

    /// The recorded push limit, if any.
    pub async fn load_pushed_ts(&self) -> Result<Option<i64>, CheckpointError> {
        let mut conn = self.pool.get_conn().await.map_err(database_error)?;
        conn.exec_first(
            format!(
                "SELECT pushedTS FROM {}.drainer_progress WHERE clusterID = ?",
                quote(&self.schema)
            ),
            (self.cluster_id,),
        )
        .await
        .map_err(database_error)
    }

    fn table_name(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.table))
    }

    /// Stores the serialised schema catalog.
    pub async fn save_catalog(
        &mut self,
        version: i64,
        bytes: Vec<u8>,
    ) -> Result<(), CheckpointError> {
        let mut conn = self.pool.get_conn().await.map_err(database_error)?;
        conn.exec_drop(
            format!(
                "REPLACE INTO {}.schema_catalog(clusterID, schemaVersion, catalog) VALUES (:id, :version, :catalog)",
                quote(&self.schema)
            ),
            params! { "id" => self.cluster_id, "version" => version, "catalog" => bytes },
        )
        .await
        .map_err(database_error)
    }

    /// Reads the serialised schema catalog, if one was saved.
    pub async fn load_catalog(&self) -> Result<Option<Vec<u8>>, CheckpointError> {
        let mut conn = self.pool.get_conn().await.map_err(database_error)?;
        conn.exec_first(
            format!(
                "SELECT catalog FROM {}.schema_catalog WHERE clusterID = ?",
                quote(&self.schema)
            ),
            (self.cluster_id,),
        )
        .await
        .map_err(database_error)
    }
}

impl CheckpointStore for MysqlCheckpoint {
    async fn load(&self) -> Result<Checkpoint, CheckpointError> {
        let mut conn = self.pool.get_conn().await.map_err(database_error)?;
        let stored: Option<String> = conn
            .exec_first(
                format!(
                    "SELECT checkPoint FROM {} WHERE clusterID = ?",
                    self.table_name()
                ),
                (self.cluster_id,),
            )
            .await
            .map_err(database_error)?;
        match stored {
            None => Ok(Checkpoint::initial(self.initial_commit_ts)),
            Some(text) => Ok(Checkpoint::from_json(&text)?.or_initial(self.initial_commit_ts)),
        }
    }

    async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let mut conn = self.pool.get_conn().await.map_err(database_error)?;
        conn.exec_drop(
            format!("REPLACE INTO {} VALUES (?, ?)", self.table_name()),
            (self.cluster_id, checkpoint.to_json()),
        )
        .await
        .map_err(database_error)
    }
}
