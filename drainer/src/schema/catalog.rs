//! The drainer's catalog of upstream databases and tables, maintained by applying TiDB's own DDL
//! jobs in schema-version order (reference drainer.md §2.1, tidb-schema-api.md §2.5).
//!
//! Pure data: no I/O. Table definitions are TiDB's `TableInfo` as the job carried it, so table ids,
//! column ids, types and the handle kind are never guessed. Each table keeps its last two
//! definitions, because a DML prepared at the previous schema version may commit after the DDL.
//! A dropped or truncated table leaves a tombstone until the checkpoint passes its drop, so row
//! changes replayed after a crash are recognised and discarded instead of failing the drainer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tidb_codec::TableInfo;
use tidb_codec::schema::{DbInfo, DdlJob};

/// TiDB's ActionType codes the catalog acts on (tidb-schema-api.md §3.1).
pub mod action {
    pub const CREATE_SCHEMA: u8 = 1;
    pub const DROP_SCHEMA: u8 = 2;
    pub const CREATE_TABLE: u8 = 3;
    pub const DROP_TABLE: u8 = 4;
    pub const TRUNCATE_TABLE: u8 = 11;
    pub const RENAME_TABLE: u8 = 14;
    pub const CREATE_VIEW: u8 = 21;
    pub const DROP_VIEW: u8 = 24;
    pub const RECOVER_TABLE: u8 = 25;
    pub const MODIFY_SCHEMA_CHARSET: u8 = 26;
    pub const CREATE_SEQUENCE: u8 = 34;
    pub const DROP_SEQUENCE: u8 = 36;
    pub const RENAME_TABLES: u8 = 47;
    pub const CREATE_TABLES: u8 = 60;

    /// Jobs with no effect on replicated data (TiFlash, locks, attributes, placement, cache
    /// tables, resource groups): skipped entirely.
    pub fn is_ignored(tp: u8) -> bool {
        matches!(tp, 27 | 28 | 31 | 49..=56 | 57 | 59 | 68..=70)
    }

    /// Jobs that concern a whole database rather than one table.
    pub fn is_schema_level(tp: u8) -> bool {
        matches!(tp, CREATE_SCHEMA | DROP_SCHEMA | MODIFY_SCHEMA_CHARSET)
    }
}

/// Ids above this are TiDB's DDL system tables (`MaxGlobalID`).
pub const MAX_GLOBAL_ID: i64 = (1 << 48) - 1 - 1000;

/// Job states whose effects are real: done (4) and synced (6).
const JOB_DONE: i64 = 4;
const JOB_SYNCED: i64 = 6;

/// Why a catalog operation failed. Each names the job or table id concerned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    #[error("DDL job {job} ({action}) carries no {what}; cannot track the schema it changed")]
    MissingInfo {
        job: i64,
        action: u8,
        what: &'static str,
    },
    #[error("DDL job {job} refers to database id {schema_id}, which the catalog does not know")]
    UnknownDatabase { job: i64, schema_id: i64 },
}

/// A table definition valid from a schema version on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TableVersion {
    version: i64,
    info: TableInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TableEntry {
    schema_id: i64,
    /// Oldest first, at most two.
    versions: Vec<TableVersion>,
    /// The schema version that dropped (or truncated away) this table id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropped_at: Option<i64>,
}

impl TableEntry {
    fn current(&self) -> Option<&TableInfo> {
        self.versions.last().map(|v| &v.info)
    }
}

/// What applying a job did, for routing and filtering the DDL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedJob {
    pub schema_version: i64,
    /// The database the statement runs in (after the change, for renames).
    pub database: String,
    /// The table it concerns; empty for database-level DDL.
    pub table: String,
    /// Whether the statement may reach SQL downstreams (views, sequences and batch
    /// create-tables are tracked but not executed).
    pub executable: bool,
}

/// Outcome of [`Catalog::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Applied(AppliedJob),
    /// The job failed upstream (rolled back or cancelled), or changes nothing we replicate.
    Skipped {
        reason: &'static str,
    },
    /// The catalog already holds this job's version.
    AlreadyApplied,
}

/// Where a row change goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TableLookup<'a> {
    Found {
        database: &'a str,
        table: &'a TableInfo,
    },
    /// The table was dropped or truncated after this change was made; the change is obsolete.
    Gone,
    Unknown,
}

/// The catalog. Serialisable, so it is saved with the checkpoint and a restart needs no history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    version: i64,
    databases: BTreeMap<i64, DbInfo>,
    tables: BTreeMap<i64, TableEntry>,
    /// Jobs known from TiDB's history but not applied yet, by schema version: a drainer starting
    /// without a saved catalog learns the whole history and applies it as row changes need it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    learned: BTreeMap<i64, DdlJob>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// An empty catalog holding only the `mysql` database TiDB creates without a DDL job.
    pub fn new() -> Catalog {
        let mysql =
            serde_json::json!({"id": 1, "db_name": {"O": "mysql", "L": "mysql"}, "state": 5});
        let mut databases = BTreeMap::new();
        if let Ok(db) = serde_json::from_value::<DbInfo>(mysql) {
            databases.insert(db.id, db);
        }
        Catalog {
            version: 0,
            databases,
            tables: BTreeMap::new(),
            learned: BTreeMap::new(),
        }
    }

    /// The newest schema version applied.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Name of database `id`.
    pub fn database_name(&self, id: i64) -> Option<&str> {
        self.databases.get(&id).map(|d| d.db_name.o.as_str())
    }

    /// Number of live tables.
    pub fn table_count(&self) -> usize {
        self.tables
            .values()
            .filter(|t| t.dropped_at.is_none())
            .count()
    }

    /// The definition of table `id` that a row change prepared at `schema_version` was encoded
    /// with: the newest one not newer than that version, else the oldest kept.
    pub fn table_for_change(&self, id: i64, schema_version: i64) -> TableLookup<'_> {
        let Some(entry) = self.tables.get(&id) else {
            return TableLookup::Unknown;
        };
        if entry.dropped_at.is_some() {
            return TableLookup::Gone;
        }
        let Some(database) = self.database_name(entry.schema_id) else {
            return TableLookup::Unknown;
        };
        let chosen = entry
            .versions
            .iter()
            .rev()
            .find(|v| v.version <= schema_version)
            .or_else(|| entry.versions.first());
        match chosen {
            Some(v) => TableLookup::Found {
                database,
                table: &v.info,
            },
            None => TableLookup::Unknown,
        }
    }

    /// The current definition of table `id` and its database name.
    pub fn table(&self, id: i64) -> Option<(&str, &TableInfo)> {
        let entry = self.tables.get(&id).filter(|e| e.dropped_at.is_none())?;
        Some((self.database_name(entry.schema_id)?, entry.current()?))
    }

    /// Remembers a job from TiDB's history to apply later (ignored when already applied).
    pub fn learn(&mut self, job: DdlJob) {
        let version = job.schema_version();
        if version > self.version {
            self.learned.insert(version, job);
        }
    }

    /// How many learned jobs wait to be applied.
    pub fn pending_jobs(&self) -> usize {
        self.learned.len()
    }

    /// A learned job by id.
    pub fn learned_job(&self, id: i64) -> Option<&DdlJob> {
        self.learned.values().find(|job| job.id == id)
    }

    /// Applies every learned job up to `schema_version`, oldest first; returns the ids and
    /// reasons of the jobs skipped.
    pub fn apply_learned(
        &mut self,
        schema_version: i64,
    ) -> Result<Vec<(i64, &'static str)>, CatalogError> {
        let mut skipped = Vec::new();
        while let Some(entry) = self.learned.first_entry() {
            if *entry.key() > schema_version {
                break;
            }
            let job = entry.remove();
            if let JobOutcome::Skipped { reason } = self.apply(&job)? {
                skipped.push((job.id, reason));
            }
        }
        Ok(skipped)
    }

    /// Forgets tombstones of tables dropped at or before `version` (the checkpoint's schema
    /// version): no replayed change can refer to them any more.
    pub fn prune(&mut self, version: i64) {
        self.tables
            .retain(|_, e| e.dropped_at.is_none_or(|dropped| dropped > version));
    }

    /// Applies one finished DDL job.
    pub fn apply(&mut self, job: &DdlJob) -> Result<JobOutcome, CatalogError> {
        if job.state != JOB_DONE && job.state != JOB_SYNCED {
            return Ok(JobOutcome::Skipped {
                reason: "the job did not finish upstream",
            });
        }
        if job.table_id > MAX_GLOBAL_ID {
            return Ok(JobOutcome::Skipped {
                reason: "the job changes a TiDB system table",
            });
        }
        let version = job.schema_version();
        if version == 0 {
            return Ok(JobOutcome::Skipped {
                reason: "the job has no schema version (it failed)",
            });
        }
        if version <= self.version {
            return Ok(JobOutcome::AlreadyApplied);
        }
        if action::is_ignored(job.job_type) {
            self.version = version;
            return Ok(JobOutcome::Skipped {
                reason: "the job does not change replicated data",
            });
        }
        self.learned.remove(&version);
        let applied = self.apply_action(job, version)?;
        self.version = version;
        Ok(JobOutcome::Applied(applied))
    }

    fn apply_action(&mut self, job: &DdlJob, version: i64) -> Result<AppliedJob, CatalogError> {
        let missing = |what| CatalogError::MissingInfo {
            job: job.id,
            action: job.job_type,
            what,
        };
        let history = job.history();
        let mut executable = true;
        match job.job_type {
            action::CREATE_SCHEMA | action::MODIFY_SCHEMA_CHARSET => {
                let db = history
                    .and_then(|h| h.db_info())
                    .ok_or_else(|| missing("DBInfo"))?;
                self.databases.insert(db.id, db.clone());
                return Ok(self.schema_level(version, &db.db_name.o));
            }
            action::DROP_SCHEMA => {
                let name = self
                    .database_name(job.schema_id)
                    .map(str::to_string)
                    .or_else(|| job.schema_name.clone())
                    .ok_or(CatalogError::UnknownDatabase {
                        job: job.id,
                        schema_id: job.schema_id,
                    })?;
                self.databases.remove(&job.schema_id);
                for entry in self.tables.values_mut() {
                    if entry.schema_id == job.schema_id && entry.dropped_at.is_none() {
                        entry.dropped_at = Some(version);
                    }
                }
                return Ok(self.schema_level(version, &name));
            }
            action::DROP_TABLE | action::DROP_VIEW | action::DROP_SEQUENCE => {
                executable = job.job_type == action::DROP_TABLE;
                let name = self
                    .table(job.table_id)
                    .map(|(_, t)| t.name.o.clone())
                    .or_else(|| job.table_name.clone())
                    .unwrap_or_default();
                let database = self.database_for(job)?;
                self.drop_table(job.table_id, version);
                return Ok(AppliedJob {
                    schema_version: version,
                    database,
                    table: name,
                    executable,
                });
            }
            action::TRUNCATE_TABLE => {
                let table = history
                    .and_then(|h| h.table_info())
                    .ok_or_else(|| missing("TableInfo"))?;
                self.drop_table(job.table_id, version);
                self.put_table(job.schema_id, table, version);
            }
            action::RENAME_TABLES | action::CREATE_TABLES => {
                let tables = history.map(|h| h.multiple_table_infos()).unwrap_or(&[]);
                if tables.is_empty() {
                    return Err(missing("MultipleTableInfos"));
                }
                executable = job.job_type == action::RENAME_TABLES;
                for table in tables {
                    let schema_id = self.schema_of(table.id).unwrap_or(job.schema_id);
                    self.put_table(schema_id, table, version);
                }
            }
            action::RENAME_TABLE => {
                let table = history
                    .and_then(|h| h.table_info())
                    .ok_or_else(|| missing("TableInfo"))?;
                self.tables.remove(&table.id);
                self.put_table(job.schema_id, table, version);
            }
            tp => {
                if matches!(tp, action::CREATE_VIEW | action::CREATE_SEQUENCE) {
                    executable = false;
                }
                let table = history
                    .and_then(|h| h.table_info())
                    .ok_or_else(|| missing("TableInfo"))?;
                let schema_id = if matches!(
                    tp,
                    action::CREATE_TABLE
                        | action::CREATE_VIEW
                        | action::CREATE_SEQUENCE
                        | action::RECOVER_TABLE
                ) {
                    job.schema_id
                } else {
                    self.schema_of(table.id).unwrap_or(job.schema_id)
                };
                self.put_table(schema_id, table, version);
            }
        }
        let database = self.database_for(job)?;
        let table = history
            .and_then(|h| h.table_info())
            .map(|t| t.name.o.clone())
            .or_else(|| job.table_name.clone())
            .unwrap_or_default();
        Ok(AppliedJob {
            schema_version: version,
            database,
            table,
            executable,
        })
    }

    fn schema_level(&self, version: i64, name: &str) -> AppliedJob {
        AppliedJob {
            schema_version: version,
            database: name.to_string(),
            table: String::new(),
            executable: true,
        }
    }

    fn database_for(&self, job: &DdlJob) -> Result<String, CatalogError> {
        self.database_name(job.schema_id)
            .map(str::to_string)
            .or_else(|| job.schema_name.clone())
            .ok_or(CatalogError::UnknownDatabase {
                job: job.id,
                schema_id: job.schema_id,
            })
    }

    fn schema_of(&self, table_id: i64) -> Option<i64> {
        self.tables
            .get(&table_id)
            .filter(|e| e.dropped_at.is_none())
            .map(|e| e.schema_id)
    }

    fn drop_table(&mut self, id: i64, version: i64) {
        if let Some(entry) = self.tables.get_mut(&id) {
            entry.dropped_at = Some(version);
        }
    }

    fn put_table(&mut self, schema_id: i64, table: &TableInfo, version: i64) {
        let entry = self.tables.entry(table.id).or_insert_with(|| TableEntry {
            schema_id,
            versions: Vec::new(),
            dropped_at: None,
        });
        if entry.dropped_at.is_some() {
            entry.versions.clear();
            entry.dropped_at = None;
        }
        entry.schema_id = schema_id;
        entry.versions.push(TableVersion {
            version,
            info: table.clone(),
        });
        if entry.versions.len() > 2 {
            entry.versions.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        id: i64,
        tp: u8,
        schema_id: i64,
        table_id: i64,
        version: i64,
        binlog: serde_json::Value,
    ) -> DdlJob {
        let mut value = serde_json::json!({
            "id": id, "type": tp, "schema_id": schema_id, "table_id": table_id,
            "state": JOB_SYNCED, "query": "", "binlog": binlog,
        });
        value["binlog"]["SchemaVersion"] = version.into();
        serde_json::from_value(value).expect("job json")
    }

    fn db(id: i64, name: &str) -> serde_json::Value {
        serde_json::json!({"DBInfo": {"id": id, "db_name": {"O": name, "L": name.to_lowercase()}, "state": 5}})
    }

    fn table(id: i64, name: &str, cols: &[(i64, &str)]) -> serde_json::Value {
        let cols: Vec<_> = cols
            .iter()
            .enumerate()
            .map(|(offset, (cid, cname))| {
                serde_json::json!({"id": cid, "name": {"O": cname, "L": cname}, "offset": offset,
                    "type": {"Tp": 3, "Flag": 0, "Flen": 11, "Decimal": 0, "Charset": "binary", "Collate": "binary"},
                    "state": 5})
            })
            .collect();
        serde_json::json!({"TableInfo": {"id": id, "name": {"O": name, "L": name}, "cols": cols, "state": 5}})
    }

    fn created() -> Catalog {
        let mut catalog = Catalog::new();
        catalog
            .apply(&job(2, action::CREATE_SCHEMA, 10, 0, 1, db(10, "shop")))
            .unwrap();
        catalog
            .apply(&job(
                4,
                action::CREATE_TABLE,
                10,
                11,
                2,
                table(11, "orders", &[(1, "id")]),
            ))
            .unwrap();
        catalog
    }

    fn columns(lookup: TableLookup<'_>) -> Vec<String> {
        match lookup {
            TableLookup::Found { table, .. } => {
                table.cols.iter().map(|c| c.name.o.clone()).collect()
            }
            other => panic!("expected a table, got {other:?}"),
        }
    }

    #[test]
    fn create_schema_and_table_route_rows_by_id() {
        let catalog = created();
        assert_eq!(catalog.version(), 2);
        match catalog.table_for_change(11, 2) {
            TableLookup::Found { database, table } => {
                assert_eq!(database, "shop");
                assert_eq!(table.name.o, "orders");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(catalog.table_for_change(99, 2), TableLookup::Unknown);
    }

    #[test]
    fn a_change_prepared_before_a_ddl_decodes_with_the_old_definition() {
        let mut catalog = created();
        let outcome = catalog
            .apply(&job(
                6,
                5,
                10,
                11,
                3,
                table(11, "orders", &[(1, "id"), (2, "note")]),
            ))
            .unwrap();
        assert!(
            matches!(outcome, JobOutcome::Applied(ref a) if a.table == "orders" && a.database == "shop")
        );
        assert_eq!(columns(catalog.table_for_change(11, 2)), ["id"]);
        assert_eq!(columns(catalog.table_for_change(11, 3)), ["id", "note"]);
    }

    #[test]
    fn truncate_moves_rows_to_the_new_id_and_retires_the_old_one() {
        let mut catalog = created();
        catalog
            .apply(&job(
                8,
                action::TRUNCATE_TABLE,
                10,
                11,
                3,
                table(12, "orders", &[(1, "id")]),
            ))
            .unwrap();
        assert_eq!(catalog.table_for_change(11, 2), TableLookup::Gone);
        assert_eq!(columns(catalog.table_for_change(12, 3)), ["id"]);
        catalog.prune(3);
        assert_eq!(catalog.table_for_change(11, 2), TableLookup::Unknown);
    }

    #[test]
    fn rename_keeps_the_id_and_changes_the_database() {
        let mut catalog = created();
        catalog
            .apply(&job(9, action::CREATE_SCHEMA, 20, 0, 3, db(20, "archive")))
            .unwrap();
        let outcome = catalog
            .apply(&job(
                10,
                action::RENAME_TABLE,
                20,
                11,
                4,
                table(11, "old_orders", &[(1, "id")]),
            ))
            .unwrap();
        assert!(
            matches!(outcome, JobOutcome::Applied(ref a) if a.database == "archive" && a.table == "old_orders")
        );
        assert_eq!(
            catalog.table(11).map(|(d, t)| (d, t.name.o.as_str())),
            Some(("archive", "old_orders"))
        );
    }

    #[test]
    fn drop_schema_retires_its_tables() {
        let mut catalog = created();
        let outcome = catalog
            .apply(&job(
                12,
                action::DROP_SCHEMA,
                10,
                0,
                3,
                serde_json::json!({}),
            ))
            .unwrap();
        assert!(
            matches!(outcome, JobOutcome::Applied(ref a) if a.database == "shop" && a.table.is_empty())
        );
        assert_eq!(catalog.table_for_change(11, 2), TableLookup::Gone);
        assert_eq!(catalog.table_count(), 0);
    }

    #[test]
    fn failed_old_and_ignored_jobs_change_nothing() {
        let mut catalog = created();
        let mut cancelled = job(
            14,
            5,
            10,
            11,
            3,
            table(11, "orders", &[(1, "id"), (2, "x")]),
        );
        cancelled.state = 5;
        assert!(matches!(
            catalog.apply(&cancelled).unwrap(),
            JobOutcome::Skipped { .. }
        ));
        assert_eq!(
            catalog
                .apply(&job(
                    4,
                    action::CREATE_TABLE,
                    10,
                    11,
                    2,
                    table(11, "orders", &[(1, "id")])
                ))
                .unwrap(),
            JobOutcome::AlreadyApplied
        );
        assert!(matches!(
            catalog
                .apply(&job(15, 27, 10, 11, 3, serde_json::json!({})))
                .unwrap(),
            JobOutcome::Skipped { .. }
        ));
        assert_eq!(catalog.version(), 3);
        assert_eq!(columns(catalog.table_for_change(11, 3)), ["id"]);
    }

    #[test]
    fn a_table_job_without_its_table_info_is_an_error_naming_the_job() {
        let mut catalog = created();
        let err = catalog
            .apply(&job(16, 5, 10, 11, 3, serde_json::json!({})))
            .unwrap_err();
        assert!(err.to_string().contains("DDL job 16"), "{err}");
    }

    #[test]
    fn the_catalog_survives_a_json_round_trip() {
        let catalog = created();
        let text = serde_json::to_string(&catalog).unwrap();
        let back: Catalog = serde_json::from_str(&text).unwrap();
        assert_eq!(back, catalog);
    }
}
