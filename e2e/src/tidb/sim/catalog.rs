//! The simulator's schema catalog: databases and tables as TiDB's `DBInfo`/`TableInfo`, the
//! schema version, and the global id allocator — all of it rebuilt by replaying the DDL history.
//!
//! There is one source of truth for schemas: the history of finished DDL jobs. A new job is
//! planned against the catalog ([`crate::tidb::sim::ddl`]), stored, and then applied with
//! [`Catalog::apply`], the same function that rebuilds the catalog from a stored history, so a
//! catalog loaded later is exactly the one the workload had.
//!
//! Ids follow TiDB (reference tidb-schema-api.md §5): one global counter for database, table and
//! job ids (never reused), per-table `max_col_id`/`max_idx_id`. The counter's state is the
//! largest id in the history, so nothing else needs persisting.

use std::collections::BTreeMap;

use tidb_codec::schema::{DbInfo, DdlJob, HandleColumns, TableInfo, flag};

use crate::tidb::sim::column_kind::ColumnKind;

/// The global id counter's value before the first job: ids 1..=100 are left to what a real
/// cluster creates at bootstrap (the `mysql` database is id 1).
pub const FIRST_GLOBAL_ID: i64 = 100;

/// ActionType codes of the jobs the simulator runs (reference tidb-schema-api.md §3.1).
pub mod action {
    pub const CREATE_SCHEMA: u8 = 1;
    pub const CREATE_TABLE: u8 = 3;
    pub const DROP_TABLE: u8 = 4;
    pub const ADD_COLUMN: u8 = 5;
    pub const DROP_COLUMN: u8 = 6;
    pub const ADD_INDEX: u8 = 7;
    pub const DROP_INDEX: u8 = 8;
    pub const TRUNCATE_TABLE: u8 = 11;
    pub const MODIFY_COLUMN: u8 = 12;
    pub const RENAME_TABLE: u8 = 14;
}

/// JobState synced: how every successful job is stored in the history.
pub const JOB_STATE_SYNCED: i64 = 6;

/// Why a job could not be applied or planned.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("DDL job {job_id} (type {job_type}) carries no {what}")]
    MissingInfo {
        job_id: i64,
        job_type: u8,
        what: &'static str,
    },
    #[error("DDL job {job_id} has type {job_type}, which the simulator never runs")]
    UnsupportedJob { job_id: i64, job_type: u8 },
    #[error("no database with id {0} in the catalog")]
    UnknownDatabase(i64),
    #[error("no table with id {0} in the catalog")]
    UnknownTable(i64),
    #[error("table {table} has no column {column}")]
    UnknownColumn { table: String, column: String },
    #[error("table {table} has no index {index}")]
    UnknownIndex { table: String, index: String },
    #[error("invalid DDL on {table}: {reason}")]
    Invalid { table: String, reason: String },
}

/// A table and the database it lives in.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTable {
    pub db_id: i64,
    pub info: TableInfo,
}

/// Databases, tables, schema version and id counter after the jobs applied so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    dbs: BTreeMap<i64, DbInfo>,
    tables: BTreeMap<i64, CatalogTable>,
    schema_version: i64,
    last_global_id: i64,
    jobs_applied: u64,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            dbs: BTreeMap::new(),
            tables: BTreeMap::new(),
            schema_version: 0,
            last_global_id: FIRST_GLOBAL_ID,
            jobs_applied: 0,
        }
    }
}

impl Catalog {
    /// Rebuilds a catalog from history jobs (any order; applied by schema version).
    pub fn from_jobs<'a>(
        jobs: impl IntoIterator<Item = &'a DdlJob>,
    ) -> Result<Catalog, CatalogError> {
        let mut sorted: Vec<&DdlJob> = jobs.into_iter().collect();
        sorted.sort_by_key(|j| j.schema_version());
        let mut catalog = Catalog::default();
        for job in sorted {
            catalog.apply(job)?;
        }
        Ok(catalog)
    }

    /// The schema version after the last applied job (what a DML sees).
    pub fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// The last id the global counter handed out.
    pub fn last_global_id(&self) -> i64 {
        self.last_global_id
    }

    /// How many jobs built this catalog.
    pub fn jobs_applied(&self) -> u64 {
        self.jobs_applied
    }

    pub fn dbs(&self) -> impl Iterator<Item = &DbInfo> {
        self.dbs.values()
    }

    pub fn db(&self, id: i64) -> Option<&DbInfo> {
        self.dbs.get(&id)
    }

    /// By name, case-insensitively.
    pub fn db_by_name(&self, name: &str) -> Option<&DbInfo> {
        let l = name.to_lowercase();
        self.dbs.values().find(|d| d.db_name.l == l)
    }

    pub fn tables(&self) -> impl Iterator<Item = &CatalogTable> {
        self.tables.values()
    }

    pub fn table(&self, id: i64) -> Option<&CatalogTable> {
        self.tables.get(&id)
    }

    /// Tables of database `db_id`, by table id.
    pub fn tables_in(&self, db_id: i64) -> impl Iterator<Item = &CatalogTable> {
        self.tables.values().filter(move |t| t.db_id == db_id)
    }

    /// By database and table name, case-insensitively.
    pub fn table_by_name(&self, db: &str, table: &str) -> Option<&CatalogTable> {
        let db = self.db_by_name(db)?;
        let l = table.to_lowercase();
        self.tables_in(db.id).find(|t| t.info.name.l == l)
    }

    /// The database name of a table.
    pub fn db_name_of(&self, table_id: i64) -> Option<&str> {
        let t = self.tables.get(&table_id)?;
        self.dbs.get(&t.db_id).map(|d| d.db_name.o.as_str())
    }

    /// Applies a finished job: the catalog then holds what TiDB's schema holds after it.
    pub fn apply(&mut self, job: &DdlJob) -> Result<(), CatalogError> {
        let history = job.history();
        let table_info = || {
            history
                .and_then(|h| h.table_info())
                .cloned()
                .ok_or(CatalogError::MissingInfo {
                    job_id: job.id,
                    job_type: job.job_type,
                    what: "binlog.TableInfo",
                })
        };
        match job.job_type {
            action::CREATE_SCHEMA => {
                let db = history.and_then(|h| h.db_info()).cloned().ok_or(
                    CatalogError::MissingInfo {
                        job_id: job.id,
                        job_type: job.job_type,
                        what: "binlog.DBInfo",
                    },
                )?;
                self.bump_ids(db.id);
                self.dbs.insert(db.id, db);
            }
            action::DROP_TABLE => {
                self.tables.remove(&job.table_id);
            }
            action::TRUNCATE_TABLE | action::RENAME_TABLE => {
                let info = table_info()?;
                self.tables.remove(&job.table_id);
                self.insert_table(job.schema_id, info)?;
            }
            action::CREATE_TABLE
            | action::ADD_COLUMN
            | action::DROP_COLUMN
            | action::ADD_INDEX
            | action::DROP_INDEX
            | action::MODIFY_COLUMN => {
                let info = table_info()?;
                self.insert_table(job.schema_id, info)?;
            }
            other => {
                return Err(CatalogError::UnsupportedJob {
                    job_id: job.id,
                    job_type: other,
                });
            }
        }
        self.bump_ids(job.id);
        self.schema_version = self.schema_version.max(job.schema_version());
        self.jobs_applied += 1;
        Ok(())
    }

    fn insert_table(&mut self, db_id: i64, info: TableInfo) -> Result<(), CatalogError> {
        if !self.dbs.contains_key(&db_id) {
            return Err(CatalogError::UnknownDatabase(db_id));
        }
        self.bump_ids(info.id);
        self.tables.insert(info.id, CatalogTable { db_id, info });
        Ok(())
    }

    fn bump_ids(&mut self, id: i64) {
        self.last_global_id = self.last_global_id.max(id);
    }
}

/// How the rows of a table are identified (TiDB's handle), with the key columns by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableShape {
    /// A single integer primary key is the handle (`pk_is_handle`).
    IntHandle,
    /// A clustered composite primary key is the handle (`is_common_handle`).
    CommonHandle,
    /// A NOT NULL unique key, and the hidden `_tidb_rowid` handle.
    UniqueKey,
    /// No key at all: the hidden `_tidb_rowid` handle.
    NoKey,
}

impl TableShape {
    pub fn of(info: &TableInfo) -> TableShape {
        match info.handle_columns() {
            HandleColumns::IntPk(_) => TableShape::IntHandle,
            HandleColumns::Common(_) => TableShape::CommonHandle,
            HandleColumns::RowId if unique_key(info).is_some() => TableShape::UniqueKey,
            HandleColumns::RowId => TableShape::NoKey,
        }
    }

    /// Whether TiDB identifies rows by the hidden row id.
    pub fn has_row_id(&self) -> bool {
        matches!(self, TableShape::UniqueKey | TableShape::NoKey)
    }
}

/// The first non-primary unique index, if any.
pub fn unique_key(info: &TableInfo) -> Option<&tidb_codec::IndexInfo> {
    info.indexes().iter().find(|i| i.is_unique && !i.is_primary)
}

/// Names (lower case) of the columns that identify rows: the handle columns, or the unique key.
pub fn key_columns(info: &TableInfo) -> Vec<String> {
    match info.handle_columns() {
        HandleColumns::IntPk(c) => vec![c.name.l.clone()],
        HandleColumns::Common(cols) => cols.iter().map(|c| c.name.l.clone()).collect(),
        HandleColumns::RowId => unique_key(info)
            .map(|i| i.idx_cols.iter().map(|c| c.name.l.clone()).collect())
            .unwrap_or_default(),
    }
}

/// Whether any index covers the column.
pub fn is_indexed(info: &TableInfo, column: &str) -> bool {
    let l = column.to_lowercase();
    info.indexes()
        .iter()
        .any(|i| i.idx_cols.iter().any(|c| c.name.l == l))
        || info.pk_handle_column().is_some_and(|c| c.name.l == l)
}

/// The columns a DML may set to random values: everything that is not a key column.
pub fn value_columns(info: &TableInfo) -> Vec<&tidb_codec::ColumnInfo> {
    let keys = key_columns(info);
    info.cols
        .iter()
        .filter(|c| !keys.contains(&c.name.l))
        .collect()
}

/// The kind of a column, read from its field type.
pub fn kind_of(col: &tidb_codec::ColumnInfo) -> Option<ColumnKind> {
    ColumnKind::from_field_type(&col.field_type)
}

/// Recomputes `offset` of every column and index column after columns moved.
pub fn fix_offsets(info: &mut TableInfo) {
    for (i, c) in info.cols.iter_mut().enumerate() {
        c.offset = i;
    }
    let positions: BTreeMap<String, usize> = info
        .cols
        .iter()
        .map(|c| (c.name.l.clone(), c.offset))
        .collect();
    if let Some(Some(indexes)) = info.index_info.as_mut() {
        for index in indexes {
            for ic in &mut index.idx_cols {
                if let Some(offset) = positions.get(&ic.name.l) {
                    ic.offset = *offset;
                }
            }
        }
    }
}

/// Sets the key flags TiDB derives from the indexes: PriKey on primary-key columns, UniqueKey on
/// the column of a single-column unique index, MultipleKey on the first column of any other.
pub fn recompute_key_flags(info: &mut TableInfo) {
    let handle = info.pk_handle_column().map(|c| c.id);
    let key_bits = flag::PRI_KEY | flag::UNIQUE_KEY | flag::MULTIPLE_KEY;
    let mut flags: BTreeMap<String, u64> = BTreeMap::new();
    for index in info.indexes() {
        if index.is_primary {
            for ic in &index.idx_cols {
                *flags.entry(ic.name.l.clone()).or_default() |= flag::PRI_KEY;
            }
        } else if let Some(first) = index.idx_cols.first() {
            let bit = if index.is_unique && index.idx_cols.len() == 1 {
                flag::UNIQUE_KEY
            } else {
                flag::MULTIPLE_KEY
            };
            *flags.entry(first.name.l.clone()).or_default() |= bit;
        }
    }
    for c in &mut info.cols {
        c.field_type.flag &= !key_bits;
        if Some(c.id) == handle {
            c.field_type.flag |= flag::PRI_KEY;
        }
        c.field_type.flag |= flags.get(&c.name.l).copied().unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidb_codec::schema::{CIStr, HistoryInfo};

    fn job(id: i64, job_type: u8, schema_id: i64, table_id: i64, version: i64) -> DdlJob {
        DdlJob {
            id,
            job_type,
            schema_id,
            table_id,
            schema_name: None,
            table_name: None,
            state: JOB_STATE_SYNCED,
            schema_state: 5,
            query: None,
            binlog: Some(Some(HistoryInfo {
                schema_version: version,
                ..HistoryInfo::default()
            })),
            extra: Default::default(),
        }
    }

    fn with_db(mut j: DdlJob, db: DbInfo) -> DdlJob {
        if let Some(Some(h)) = j.binlog.as_mut() {
            h.db_info = Some(Some(db));
        }
        j
    }

    fn with_table(mut j: DdlJob, t: TableInfo) -> DdlJob {
        if let Some(Some(h)) = j.binlog.as_mut() {
            h.table_info = Some(Some(t));
        }
        j
    }

    fn db(id: i64, name: &str) -> DbInfo {
        DbInfo {
            id,
            db_name: CIStr::new(name),
            charset: None,
            collate: None,
            state: 5,
            extra: Default::default(),
        }
    }

    #[test]
    fn replays_history_in_schema_version_order() {
        let jobs = vec![
            with_table(
                job(104, action::TRUNCATE_TABLE, 101, 102, 3),
                TableInfo::new(103, "t", vec![]),
            ),
            with_db(job(105, action::CREATE_SCHEMA, 0, 0, 4), db(106, "late")),
            with_db(job(101, action::CREATE_SCHEMA, 100, 0, 1), db(100, "d")),
            with_table(
                job(102, action::CREATE_TABLE, 100, 0, 2),
                TableInfo::new(102, "t", vec![]),
            ),
        ];
        // The first create-schema job names database 100; ids are then taken from the history.
        let c = Catalog::from_jobs(&jobs).unwrap_err();
        assert!(matches!(c, CatalogError::UnknownDatabase(101)));
        let mut fixed = jobs.clone();
        fixed[0].schema_id = 100;
        let c = Catalog::from_jobs(&fixed).unwrap();
        assert_eq!(c.schema_version(), 4);
        assert_eq!(c.last_global_id(), 106);
        assert!(c.table(102).is_none(), "truncate dropped the old id");
        assert_eq!(c.table(103).unwrap().db_id, 100);
        assert_eq!(c.table_by_name("D", "T").unwrap().info.id, 103);
        assert_eq!(c.db_name_of(103), Some("d"));
        assert_eq!(c.jobs_applied(), 4);
        let bad = job(107, 19, 100, 103, 5);
        let mut c = c;
        assert!(matches!(
            c.apply(&bad),
            Err(CatalogError::UnsupportedJob { job_type: 19, .. })
        ));
    }
}
