//! DDL as structured descriptions ([`DdlSpec`]) and their planning into what TiDB would produce:
//! the statement text, the finished history job with its ids, schema version and after-image
//! `TableInfo`/`DBInfo` (reference tidb-schema-api.md §2, §2.5, §5).
//!
//! Planning is pure: [`Catalog::plan`] reads the catalog and returns a [`PlannedDdl`]; the caller
//! runs the statement on the truth, stores the job and applies it with [`Catalog::apply`]. The
//! statement text and the `TableInfo` are derived from the same description, so they agree.
//!
//! What TiDB does that is mirrored here:
//! - object ids (database, table, the new id of a truncated table) are taken from the global
//!   counter before the job id; column and index ids from the table's `max_col_id`/`max_idx_id`;
//! - the schema version advances by the number of schema-state steps TiDB's job takes (one for
//!   create/rename/truncate/in-place modify, three for drop table and drop index, four for
//!   add/drop column, add index and a modify column that rewrites data);
//! - a MODIFY COLUMN that rewrites data gives the column a new id (same name and offset);
//! - `binlog.TableInfo` is the table after the job (for DROP TABLE the dropped table, state none),
//!   `binlog.DBInfo` the new database for CREATE DATABASE, `FinishedTS` the start ts of the
//!   transaction that finished the job (which is also the DDL binlog's start ts).
//!
//! The DDL binlog for a DROP COLUMN's intermediate delete-only state is not modelled: DML is
//! serialised against DDL, so no transaction ever sees a column half dropped.

use serde_json::{Map, Value, json};
use tidb_codec::schema::{
    CIStr, ColumnInfo, DbInfo, DdlJob, HistoryInfo, IndexColumn, IndexInfo, TableInfo, flag,
    schema_state,
};

use crate::tidb::sim::catalog::{
    Catalog, CatalogError, JOB_STATE_SYNCED, TableShape, action, fix_offsets, is_indexed,
    key_columns, kind_of, recompute_key_flags,
};
use crate::tidb::sim::column_kind::{CHARSET, COLLATION, ColumnKind, Modification};
use crate::tidb::sim::sql;

/// A column default the simulator writes (only on ADD COLUMN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultValue {
    Int(i64),
    Text(String),
}

/// A column to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
    pub not_null: bool,
    pub default: Option<DefaultValue>,
}

/// What identifies a table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// `PRIMARY KEY (c) CLUSTERED` on one integer column: `pk_is_handle`.
    IntHandle(String),
    /// `PRIMARY KEY (a, b) CLUSTERED`: `is_common_handle`.
    Clustered(Vec<String>),
    /// `UNIQUE KEY name (cols)` and no primary key: hidden row id.
    Unique { name: String, columns: Vec<String> },
    /// No key: hidden row id.
    None,
}

/// A plain (non-unique) secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub columns: Vec<String>,
}

/// A table to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    pub key: KeySpec,
    pub indexes: Vec<IndexSpec>,
}

/// Where ADD COLUMN puts the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnPosition {
    End,
    First,
    After(String),
}

/// One DDL statement, structured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlSpec {
    CreateDatabase {
        name: String,
    },
    CreateTable {
        db_id: i64,
        table: TableSpec,
    },
    DropTable {
        table_id: i64,
    },
    TruncateTable {
        table_id: i64,
    },
    RenameTable {
        table_id: i64,
        to_db_id: i64,
        to_name: String,
    },
    AddColumn {
        table_id: i64,
        column: ColumnSpec,
        position: ColumnPosition,
    },
    DropColumn {
        table_id: i64,
        column: String,
    },
    ModifyColumn {
        table_id: i64,
        column: String,
        to: ColumnKind,
    },
    AddIndex {
        table_id: i64,
        index: IndexSpec,
    },
    DropIndex {
        table_id: i64,
        index: String,
    },
}

/// A planned DDL: run `truth_query` (in `use_db`) on the truth, store `job`, write `query` to the
/// binlog.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDdl {
    pub job: DdlJob,
    /// The database the statement runs in, as the drainer runs it (`USE`); `None` for CREATE
    /// DATABASE.
    pub use_db: Option<String>,
    /// The statement: the job's `query` and the binlog's `ddl_query`.
    pub query: String,
    /// The statement for the truth database: the same, except that tables with a hidden row id
    /// get the invisible `_tidb_rowid` column there.
    pub truth_query: String,
}

impl PlannedDdl {
    /// The `ddl_schema_state` of the DDL binlog: the job's final schema state.
    pub fn schema_state(&self) -> i32 {
        i32::from(self.job.schema_state)
    }

    /// The job with its `FinishedTS` set (the start ts of the DDL binlog's transaction).
    pub fn set_finished_ts(&mut self, ts: u64) {
        if let Some(Some(h)) = self.job.binlog.as_mut() {
            h.finished_ts = Some(ts);
        }
    }
}

/// What a column of a new table looks like in TiDB.
fn column_info(id: i64, offset: usize, spec: &ColumnSpec) -> ColumnInfo {
    let mut ft = spec.kind.field_type();
    if spec.not_null {
        ft.flag |= flag::NOT_NULL;
        let timestamp = matches!(spec.kind, ColumnKind::Timestamp(_));
        if spec.default.is_none() && !timestamp {
            ft.flag |= flag::NO_DEFAULT_VALUE;
        }
    }
    let mut col = ColumnInfo::new(id, &spec.name, offset, ft);
    if let Some(default) = &spec.default {
        let text = match default {
            DefaultValue::Int(n) => n.to_string(),
            DefaultValue::Text(s) => s.clone(),
        };
        col.default = Some(Value::String(text.clone()));
        col.origin_default = Some(Value::String(text));
    }
    col.extra.insert("dependences".into(), Value::Null);
    col.extra.insert("change_state_info".into(), Value::Null);
    col
}

fn index_info(id: i64, name: &str, columns: &[String], unique: bool, primary: bool) -> IndexInfo {
    let mut extra = Map::new();
    extra.insert("comment".into(), json!(""));
    extra.insert("index_type".into(), json!(1));
    extra.insert("is_invisible".into(), json!(false));
    extra.insert("is_global".into(), json!(false));
    extra.insert("mv_index".into(), json!(false));
    extra.insert("backfill_state".into(), json!(0));
    IndexInfo {
        id,
        idx_name: CIStr::new(name),
        tbl_name: Some(CIStr::new("")),
        idx_cols: columns
            .iter()
            .map(|c| IndexColumn {
                name: CIStr::new(c),
                offset: 0,
                length: -1,
                extra: Map::new(),
            })
            .collect(),
        state: schema_state::PUBLIC,
        is_unique: unique || primary,
        is_primary: primary,
        extra,
    }
}

/// The table-level keys TiDB (v7.5) serves that the codec does not model.
fn table_extras(update_ts: u64, common_handle: bool) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("comment", json!("")),
        ("auto_inc_id", json!(0)),
        ("auto_id_cache", json!(0)),
        ("auto_rand_id", json!(0)),
        ("update_timestamp", json!(update_ts)),
        ("ShardRowIDBits", json!(0)),
        ("max_shard_row_id_bits", json!(0)),
        ("auto_random_bits", json!(0)),
        ("auto_random_range_bits", json!(0)),
        ("pre_split_regions", json!(0)),
        ("compression", json!("")),
        ("view", Value::Null),
        ("sequence", Value::Null),
        ("Lock", Value::Null),
        ("tiflash_replica", Value::Null),
        ("is_columnar", json!(false)),
        ("temp_table_type", json!(0)),
        ("cache_table_status", json!(0)),
        ("policy_ref_info", Value::Null),
        ("stats_options", Value::Null),
        ("exchange_partition_info", Value::Null),
        ("ttl_info", Value::Null),
        ("constraint_info", Value::Null),
        ("fk_info", Value::Null),
        ("max_cst_id", json!(0)),
        ("max_fk_id", json!(0)),
        ("common_handle_version", json!(u8::from(common_handle))),
    ] {
        m.insert(k.into(), v);
    }
    m
}

fn set_indexes(info: &mut TableInfo, indexes: Vec<IndexInfo>) {
    info.index_info = Some(if indexes.is_empty() {
        None
    } else {
        Some(indexes)
    });
}

fn set_update_ts(info: &mut TableInfo, ts: u64) {
    info.extra.insert("update_timestamp".into(), json!(ts));
}

/// A new table's `TableInfo` from its description.
pub fn table_info(id: i64, spec: &TableSpec, update_ts: u64) -> Result<TableInfo, CatalogError> {
    let invalid = |reason: String| CatalogError::Invalid {
        table: spec.name.clone(),
        reason,
    };
    let cols: Vec<ColumnInfo> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| column_info(i as i64 + 1, i, c))
        .collect();
    let mut info = TableInfo::new(id, &spec.name, cols);
    info.extra = table_extras(update_ts, matches!(spec.key, KeySpec::Clustered(_)));
    let known = |name: &String| {
        spec.columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
    };
    let mut indexes = Vec::new();
    let mut next_index = 0i64;
    let mut alloc_index = || {
        next_index += 1;
        next_index
    };
    match &spec.key {
        KeySpec::IntHandle(column) => {
            let c = spec
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(column))
                .ok_or_else(|| invalid(format!("primary key column {column} is not defined")))?;
            if !matches!(c.kind, ColumnKind::Int { .. }) || !c.not_null {
                return Err(invalid(format!(
                    "the handle {column} must be a NOT NULL integer"
                )));
            }
            info.pk_is_handle = true;
            if let Some(col) = info
                .cols
                .iter_mut()
                .find(|x| x.name.l == column.to_lowercase())
            {
                col.field_type.flag |= flag::PRI_KEY;
            }
        }
        KeySpec::Clustered(columns) => {
            if let Some(missing) = columns.iter().find(|c| !known(c)) {
                return Err(invalid(format!(
                    "primary key column {missing} is not defined"
                )));
            }
            info.is_common_handle = Some(true);
            indexes.push(index_info(alloc_index(), "PRIMARY", columns, true, true));
        }
        KeySpec::Unique { name, columns } => {
            if let Some(missing) = columns.iter().find(|c| !known(c)) {
                return Err(invalid(format!(
                    "unique key column {missing} is not defined"
                )));
            }
            indexes.push(index_info(alloc_index(), name, columns, true, false));
        }
        KeySpec::None => {}
    }
    for index in &spec.indexes {
        if let Some(missing) = index.columns.iter().find(|c| !known(c)) {
            return Err(invalid(format!("index column {missing} is not defined")));
        }
        indexes.push(index_info(
            alloc_index(),
            &index.name,
            &index.columns,
            false,
            false,
        ));
    }
    info.max_idx_id = Some(next_index);
    set_indexes(&mut info, indexes);
    fix_offsets(&mut info);
    recompute_key_flags(&mut info);
    Ok(info)
}

fn db_info(id: i64, name: &str) -> DbInfo {
    let mut extra = Map::new();
    extra.insert("policy_ref_info".into(), Value::Null);
    DbInfo {
        id,
        db_name: CIStr::new(name),
        charset: Some(CHARSET.into()),
        collate: Some(COLLATION.into()),
        state: schema_state::PUBLIC,
        extra,
    }
}

/// The fields every job shares.
struct JobHeader<'a> {
    id: i64,
    job_type: u8,
    schema_id: i64,
    table_id: i64,
    schema_name: &'a str,
    table_name: &'a str,
    schema_state: u8,
    schema_version: i64,
    start_ts: u64,
}

fn build_job(
    header: JobHeader<'_>,
    query: &str,
    db: Option<DbInfo>,
    table: Option<TableInfo>,
    raw_args: Value,
) -> DdlJob {
    let mut extra = Map::new();
    for (k, v) in [
        ("warning", Value::Null),
        ("err", Value::Null),
        ("err_count", json!(0)),
        ("row_count", json!(0)),
        ("raw_args", raw_args),
        ("snapshot_ver", json!(0)),
        ("real_start_ts", json!(header.start_ts)),
        ("start_ts", json!(header.start_ts)),
        ("dependency_id", json!(0)),
        ("version", json!(1)),
        ("reorg_meta", Value::Null),
        ("multi_schema_info", Value::Null),
        ("priority", json!(0)),
        ("seq_num", json!(0)),
        ("charset", json!(CHARSET)),
        ("collate", json!(COLLATION)),
        ("admin_operator", json!(0)),
        ("trace_info", Value::Null),
    ] {
        extra.insert(k.into(), v);
    }
    DdlJob {
        id: header.id,
        job_type: header.job_type,
        schema_id: header.schema_id,
        table_id: header.table_id,
        schema_name: Some(header.schema_name.to_lowercase()),
        table_name: Some(header.table_name.to_lowercase()),
        state: JOB_STATE_SYNCED,
        schema_state: header.schema_state,
        query: Some(query.to_string()),
        binlog: Some(Some(HistoryInfo {
            schema_version: header.schema_version,
            db_info: Some(db),
            table_info: Some(table),
            finished_ts: Some(0),
            multiple_table_infos: Some(None),
            extra: Map::new(),
        })),
        extra,
    }
}

/// Schema-version steps of each job kind (see the module doc).
fn version_steps(job_type: u8, reorganize: bool) -> i64 {
    match job_type {
        action::DROP_TABLE | action::DROP_INDEX => 3,
        action::ADD_COLUMN | action::DROP_COLUMN | action::ADD_INDEX => 4,
        action::MODIFY_COLUMN if reorganize => 4,
        _ => 1,
    }
}

impl Catalog {
    fn table_or_err(
        &self,
        id: i64,
    ) -> Result<&crate::tidb::sim::catalog::CatalogTable, CatalogError> {
        self.table(id).ok_or(CatalogError::UnknownTable(id))
    }

    fn db_or_err(&self, id: i64) -> Result<&DbInfo, CatalogError> {
        self.db(id).ok_or(CatalogError::UnknownDatabase(id))
    }

    /// Plans `spec` as TiDB would run it now; `start_ts` is the job's enqueue ts (also the
    /// tables' `update_timestamp`). The catalog is not changed.
    pub fn plan(&self, spec: &DdlSpec, start_ts: u64) -> Result<PlannedDdl, CatalogError> {
        let mut next_id = self.last_global_id();
        let mut alloc = || {
            next_id += 1;
            next_id
        };
        let version = |job_type: u8, reorganize: bool| {
            self.schema_version() + version_steps(job_type, reorganize)
        };
        match spec {
            DdlSpec::CreateDatabase { name } => {
                if self.db_by_name(name).is_some() {
                    return Err(CatalogError::Invalid {
                        table: name.clone(),
                        reason: "database exists".into(),
                    });
                }
                let db_id = alloc();
                let id = alloc();
                let db = db_info(db_id, name);
                let query = sql::create_database(name);
                let raw_args = json!([db]);
                let job = build_job(
                    JobHeader {
                        id,
                        job_type: action::CREATE_SCHEMA,
                        schema_id: db_id,
                        table_id: 0,
                        schema_name: name,
                        table_name: "",
                        schema_state: schema_state::PUBLIC,
                        schema_version: version(action::CREATE_SCHEMA, false),
                        start_ts,
                    },
                    &query,
                    Some(db),
                    None,
                    raw_args,
                );
                Ok(PlannedDdl {
                    job,
                    use_db: None,
                    truth_query: query.clone(),
                    query,
                })
            }
            DdlSpec::CreateTable { db_id, table } => {
                let db = self.db_or_err(*db_id)?;
                if self.table_by_name(&db.db_name.o, &table.name).is_some() {
                    return Err(CatalogError::Invalid {
                        table: table.name.clone(),
                        reason: "table exists".into(),
                    });
                }
                let table_id = alloc();
                let id = alloc();
                let info = table_info(table_id, table, start_ts)?;
                let hidden_row_id = TableShape::of(&info).has_row_id();
                let query = sql::create_table(table, false);
                let truth_query = sql::create_table(table, hidden_row_id);
                let raw_args = json!([info, false]);
                let job = build_job(
                    JobHeader {
                        id,
                        job_type: action::CREATE_TABLE,
                        schema_id: *db_id,
                        table_id,
                        schema_name: &db.db_name.o,
                        table_name: &table.name,
                        schema_state: schema_state::PUBLIC,
                        schema_version: version(action::CREATE_TABLE, false),
                        start_ts,
                    },
                    &query,
                    None,
                    Some(info),
                    raw_args,
                );
                Ok(PlannedDdl {
                    job,
                    use_db: Some(db.db_name.o.clone()),
                    query,
                    truth_query,
                })
            }
            DdlSpec::DropTable { table_id } => {
                let t = self.table_or_err(*table_id)?;
                let db = self.db_or_err(t.db_id)?;
                let id = alloc();
                let mut info = t.info.clone();
                info.state = schema_state::NONE;
                let query = format!("DROP TABLE {}", sql::ident(&info.name.o));
                let job = build_job(
                    JobHeader {
                        id,
                        job_type: action::DROP_TABLE,
                        schema_id: t.db_id,
                        table_id: *table_id,
                        schema_name: &db.db_name.o,
                        table_name: &info.name.o,
                        schema_state: schema_state::NONE,
                        schema_version: version(action::DROP_TABLE, false),
                        start_ts,
                    },
                    &query,
                    None,
                    Some(info.clone()),
                    Value::Null,
                );
                Ok(PlannedDdl {
                    job,
                    use_db: Some(db.db_name.o.clone()),
                    truth_query: query.clone(),
                    query,
                })
            }
            DdlSpec::TruncateTable { table_id } => {
                let t = self.table_or_err(*table_id)?;
                let db = self.db_or_err(t.db_id)?;
                let new_id = alloc();
                let id = alloc();
                let mut info = t.info.clone();
                info.id = new_id;
                let query = format!("TRUNCATE TABLE {}", sql::ident(&info.name.o));
                let job = build_job(
                    JobHeader {
                        id,
                        job_type: action::TRUNCATE_TABLE,
                        schema_id: t.db_id,
                        table_id: *table_id,
                        schema_name: &db.db_name.o,
                        table_name: &info.name.o,
                        schema_state: schema_state::PUBLIC,
                        schema_version: version(action::TRUNCATE_TABLE, false),
                        start_ts,
                    },
                    &query,
                    None,
                    Some(info.clone()),
                    json!([new_id, false, [], 0]),
                );
                Ok(PlannedDdl {
                    job,
                    use_db: Some(db.db_name.o.clone()),
                    truth_query: query.clone(),
                    query,
                })
            }
            DdlSpec::RenameTable {
                table_id,
                to_db_id,
                to_name,
            } => {
                let t = self.table_or_err(*table_id)?;
                let from_db = self.db_or_err(t.db_id)?;
                let to_db = self.db_or_err(*to_db_id)?;
                if self.table_by_name(&to_db.db_name.o, to_name).is_some() {
                    return Err(CatalogError::Invalid {
                        table: to_name.clone(),
                        reason: "target table exists".into(),
                    });
                }
                let id = alloc();
                let mut info = t.info.clone();
                info.name = CIStr::new(to_name);
                let query = if t.db_id == *to_db_id {
                    format!(
                        "RENAME TABLE {} TO {}",
                        sql::ident(&t.info.name.o),
                        sql::ident(to_name)
                    )
                } else {
                    info.extra.insert("old_schema_id".into(), json!(t.db_id));
                    format!(
                        "RENAME TABLE {} TO {}",
                        sql::qualified(&from_db.db_name.o, &t.info.name.o),
                        sql::qualified(&to_db.db_name.o, to_name)
                    )
                };
                let raw_args = json!([t.db_id, CIStr::new(to_name), from_db.db_name]);
                let job = build_job(
                    JobHeader {
                        id,
                        job_type: action::RENAME_TABLE,
                        schema_id: *to_db_id,
                        table_id: *table_id,
                        schema_name: &to_db.db_name.o,
                        table_name: &t.info.name.o,
                        schema_state: schema_state::PUBLIC,
                        schema_version: version(action::RENAME_TABLE, false),
                        start_ts,
                    },
                    &query,
                    None,
                    Some(info),
                    raw_args,
                );
                Ok(PlannedDdl {
                    job,
                    use_db: Some(to_db.db_name.o.clone()),
                    truth_query: query.clone(),
                    query,
                })
            }
            DdlSpec::AddColumn {
                table_id,
                column,
                position,
            } => {
                let t = self.table_or_err(*table_id)?;
                let mut info = t.info.clone();
                if info.column_by_name(&column.name).is_some() {
                    return Err(self.invalid(&info, format!("column {} exists", column.name)));
                }
                let col_id = info.max_col_id.unwrap_or(0) + 1;
                let at = match position {
                    ColumnPosition::End => info.cols.len(),
                    ColumnPosition::First => 0,
                    ColumnPosition::After(name) => {
                        let l = name.to_lowercase();
                        info.cols
                            .iter()
                            .position(|c| c.name.l == l)
                            .ok_or_else(|| unknown_column(&info, name))?
                            + 1
                    }
                };
                info.cols.insert(at, column_info(col_id, at, column));
                info.max_col_id = Some(col_id);
                fix_offsets(&mut info);
                recompute_key_flags(&mut info);
                set_update_ts(&mut info, start_ts);
                let query = format!(
                    "ALTER TABLE {} ADD COLUMN {}{}",
                    sql::ident(&info.name.o),
                    sql::column_definition(column),
                    sql::position(position)
                );
                self.alter(
                    t.db_id,
                    *table_id,
                    action::ADD_COLUMN,
                    false,
                    info,
                    query,
                    alloc(),
                    start_ts,
                )
            }
            DdlSpec::DropColumn { table_id, column } => {
                let t = self.table_or_err(*table_id)?;
                let mut info = t.info.clone();
                let col = info
                    .column_by_name(column)
                    .ok_or_else(|| unknown_column(&info, column))?;
                if is_indexed(&info, column) || key_columns(&info).contains(&col.name.l) {
                    return Err(self.invalid(&info, format!("column {column} is indexed")));
                }
                if info.cols.len() < 2 {
                    return Err(self.invalid(&info, "cannot drop the last column".into()));
                }
                let l = col.name.l.clone();
                info.cols.retain(|c| c.name.l != l);
                fix_offsets(&mut info);
                set_update_ts(&mut info, start_ts);
                let query = format!(
                    "ALTER TABLE {} DROP COLUMN {}",
                    sql::ident(&info.name.o),
                    sql::ident(column)
                );
                self.alter(
                    t.db_id,
                    *table_id,
                    action::DROP_COLUMN,
                    false,
                    info,
                    query,
                    alloc(),
                    start_ts,
                )
            }
            DdlSpec::ModifyColumn {
                table_id,
                column,
                to,
            } => {
                let t = self.table_or_err(*table_id)?;
                let mut info = t.info.clone();
                let col = info
                    .column_by_name(column)
                    .ok_or_else(|| unknown_column(&info, column))?;
                if is_indexed(&info, column) || key_columns(&info).contains(&col.name.l) {
                    return Err(self.invalid(&info, format!("column {column} is indexed")));
                }
                let from = kind_of(col).ok_or_else(|| {
                    self.invalid(&info, format!("column {column} has an unknown type"))
                })?;
                let modification = from.modification(to).ok_or_else(|| {
                    self.invalid(&info, format!("{} cannot become {}", from.sql(), to.sql()))
                })?;
                let reorganize = modification == Modification::Reorganize;
                let not_null = col.is_not_null();
                let l = col.name.l.clone();
                let next_col_id = info.max_col_id.unwrap_or(0) + 1;
                let mut ft = to.field_type();
                if not_null {
                    ft.flag |= flag::NOT_NULL | flag::NO_DEFAULT_VALUE;
                }
                if let Some(c) = info.cols.iter_mut().find(|c| c.name.l == l) {
                    c.field_type = ft;
                    c.default = Some(Value::Null);
                    if reorganize {
                        c.id = next_col_id;
                    }
                }
                if reorganize {
                    info.max_col_id = Some(next_col_id);
                }
                recompute_key_flags(&mut info);
                set_update_ts(&mut info, start_ts);
                let spec = ColumnSpec {
                    name: column.clone(),
                    kind: to.clone(),
                    not_null,
                    default: None,
                };
                let query = format!(
                    "ALTER TABLE {} MODIFY COLUMN {}",
                    sql::ident(&info.name.o),
                    sql::column_definition(&spec)
                );
                self.alter(
                    t.db_id,
                    *table_id,
                    action::MODIFY_COLUMN,
                    reorganize,
                    info,
                    query,
                    alloc(),
                    start_ts,
                )
            }
            DdlSpec::AddIndex { table_id, index } => {
                let t = self.table_or_err(*table_id)?;
                let mut info = t.info.clone();
                if info
                    .indexes()
                    .iter()
                    .any(|i| i.idx_name.l == index.name.to_lowercase())
                {
                    return Err(self.invalid(&info, format!("index {} exists", index.name)));
                }
                if let Some(missing) = index
                    .columns
                    .iter()
                    .find(|c| info.column_by_name(c).is_none())
                {
                    return Err(unknown_column(&info, missing));
                }
                let index_id = info.max_idx_id.unwrap_or(0) + 1;
                let mut indexes = info.indexes().to_vec();
                indexes.push(index_info(
                    index_id,
                    &index.name,
                    &index.columns,
                    false,
                    false,
                ));
                set_indexes(&mut info, indexes);
                info.max_idx_id = Some(index_id);
                fix_offsets(&mut info);
                recompute_key_flags(&mut info);
                set_update_ts(&mut info, start_ts);
                let query = format!(
                    "ALTER TABLE {} ADD INDEX {} ({})",
                    sql::ident(&info.name.o),
                    sql::ident(&index.name),
                    index
                        .columns
                        .iter()
                        .map(|c| sql::ident(c))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                self.alter(
                    t.db_id,
                    *table_id,
                    action::ADD_INDEX,
                    false,
                    info,
                    query,
                    alloc(),
                    start_ts,
                )
            }
            DdlSpec::DropIndex { table_id, index } => {
                let t = self.table_or_err(*table_id)?;
                let mut info = t.info.clone();
                let l = index.to_lowercase();
                let found = info
                    .indexes()
                    .iter()
                    .find(|i| i.idx_name.l == l)
                    .ok_or_else(|| CatalogError::UnknownIndex {
                        table: info.name.o.clone(),
                        index: index.clone(),
                    })?;
                if found.is_primary || found.is_unique {
                    return Err(self.invalid(&info, format!("index {index} identifies rows")));
                }
                let indexes: Vec<IndexInfo> = info
                    .indexes()
                    .iter()
                    .filter(|i| i.idx_name.l != l)
                    .cloned()
                    .collect();
                set_indexes(&mut info, indexes);
                recompute_key_flags(&mut info);
                set_update_ts(&mut info, start_ts);
                let query = format!(
                    "ALTER TABLE {} DROP INDEX {}",
                    sql::ident(&info.name.o),
                    sql::ident(index)
                );
                self.alter(
                    t.db_id,
                    *table_id,
                    action::DROP_INDEX,
                    false,
                    info,
                    query,
                    alloc(),
                    start_ts,
                )
            }
        }
    }

    fn invalid(&self, info: &TableInfo, reason: String) -> CatalogError {
        CatalogError::Invalid {
            table: info.name.o.clone(),
            reason,
        }
    }

    /// A job that replaces a table's info (column and index changes).
    #[allow(clippy::too_many_arguments)]
    fn alter(
        &self,
        db_id: i64,
        table_id: i64,
        job_type: u8,
        reorganize: bool,
        info: TableInfo,
        query: String,
        id: i64,
        start_ts: u64,
    ) -> Result<PlannedDdl, CatalogError> {
        let db = self.db_or_err(db_id)?;
        let dropping = matches!(job_type, action::DROP_COLUMN | action::DROP_INDEX);
        let table_name = info.name.o.clone();
        let job = build_job(
            JobHeader {
                id,
                job_type,
                schema_id: db_id,
                table_id,
                schema_name: &db.db_name.o,
                table_name: &table_name,
                schema_state: if dropping {
                    schema_state::NONE
                } else {
                    schema_state::PUBLIC
                },
                schema_version: self.schema_version() + version_steps(job_type, reorganize),
                start_ts,
            },
            &query,
            None,
            Some(info),
            Value::Null,
        );
        Ok(PlannedDdl {
            job,
            use_db: Some(db.db_name.o.clone()),
            truth_query: query.clone(),
            query,
        })
    }
}

fn unknown_column(info: &TableInfo, column: &str) -> CatalogError {
    CatalogError::UnknownColumn {
        table: info.name.o.clone(),
        column: column.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidb_codec::schema::HandleColumns;

    fn col(name: &str, kind: ColumnKind, not_null: bool) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            kind,
            not_null,
            default: None,
        }
    }

    fn int(bits: u8, unsigned: bool) -> ColumnKind {
        ColumnKind::Int { bits, unsigned }
    }

    /// Plans and applies `spec`, returning the planned DDL.
    fn run(c: &mut Catalog, spec: DdlSpec) -> PlannedDdl {
        let planned = c.plan(&spec, 42).unwrap();
        c.apply(&planned.job).unwrap();
        planned
    }

    fn setup() -> (Catalog, i64) {
        let mut c = Catalog::default();
        let p = run(
            &mut c,
            DdlSpec::CreateDatabase {
                name: "sim_a".into(),
            },
        );
        assert_eq!(
            (p.job.schema_id, p.job.id),
            (101, 102),
            "object id before job id"
        );
        (c, 101)
    }

    #[test]
    fn create_table_ids_flags_and_handles() {
        let (mut c, db) = setup();
        let spec = TableSpec {
            name: "t".into(),
            columns: vec![
                col("id", int(64, true), true),
                col("c2", ColumnKind::Varchar(16), false),
                col("c3", int(32, false), true),
            ],
            key: KeySpec::IntHandle("id".into()),
            indexes: vec![IndexSpec {
                name: "idx_c2".into(),
                columns: vec!["c2".into()],
            }],
        };
        let p = run(
            &mut c,
            DdlSpec::CreateTable {
                db_id: db,
                table: spec,
            },
        );
        assert_eq!((p.job.table_id, p.job.id), (103, 104));
        assert_eq!(c.schema_version(), 2);
        let t = &c.table(103).unwrap().info;
        assert!(t.pk_is_handle);
        assert_eq!(
            t.cols[0].field_type.flag,
            flag::UNSIGNED | flag::NOT_NULL | flag::NO_DEFAULT_VALUE | flag::PRI_KEY
        );
        assert_eq!(t.cols[1].field_type.flag, flag::MULTIPLE_KEY);
        assert_eq!(
            t.cols[2].field_type.flag,
            flag::NOT_NULL | flag::NO_DEFAULT_VALUE
        );
        assert_eq!((t.max_col_id, t.max_idx_id), (Some(3), Some(1)));
        assert!(matches!(t.handle_columns(), HandleColumns::IntPk(c) if c.id == 1));
        assert_eq!(p.use_db.as_deref(), Some("sim_a"));
        assert_eq!(p.query, p.truth_query);
        let json = serde_json::to_value(&p.job).unwrap();
        assert_eq!(json["binlog"]["TableInfo"]["id"], 103);
        assert_eq!(json["binlog"]["SchemaVersion"], 2);
        assert_eq!(json["binlog"]["DBInfo"], Value::Null);
        assert_eq!(json["state"], 6);
        assert_eq!(json["type"], 3);
        assert_eq!(json["schema_name"], "sim_a");

        let common = TableSpec {
            name: "c".into(),
            columns: vec![
                col("k1", ColumnKind::Varchar(32), true),
                col("k2", int(64, false), true),
                col("v", ColumnKind::Json, false),
            ],
            key: KeySpec::Clustered(vec!["k1".into(), "k2".into()]),
            indexes: vec![],
        };
        let p = run(
            &mut c,
            DdlSpec::CreateTable {
                db_id: db,
                table: common,
            },
        );
        let t = &c.table(p.job.table_id).unwrap().info;
        assert!(t.is_common_handle() && !t.pk_is_handle);
        assert_eq!(t.primary_index().unwrap().id, 1);
        assert!(matches!(t.handle_columns(), HandleColumns::Common(cols) if cols.len() == 2));
        assert!(t.cols[1].field_type.has_flag(flag::PRI_KEY));

        let unique = TableSpec {
            name: "u".into(),
            columns: vec![
                col("u", int(64, false), true),
                col("v", ColumnKind::Text, false),
            ],
            key: KeySpec::Unique {
                name: "uk_u".into(),
                columns: vec!["u".into()],
            },
            indexes: vec![],
        };
        let p = run(
            &mut c,
            DdlSpec::CreateTable {
                db_id: db,
                table: unique,
            },
        );
        assert!(p.truth_query.contains("_tidb_rowid"), "{}", p.truth_query);
        assert!(!p.query.contains("_tidb_rowid"));
        let t = &c.table(p.job.table_id).unwrap().info;
        assert_eq!(TableShape::of(t), TableShape::UniqueKey);
        assert!(t.cols[0].field_type.has_flag(flag::UNIQUE_KEY));
    }

    #[test]
    fn alter_jobs_follow_tidb_id_rules() {
        let (mut c, db) = setup();
        let spec = TableSpec {
            name: "t".into(),
            columns: vec![
                col("a", int(32, false), false),
                col("b", int(32, false), false),
                col("c", ColumnKind::Varchar(10), false),
            ],
            key: KeySpec::None,
            indexes: vec![],
        };
        let t = run(
            &mut c,
            DdlSpec::CreateTable {
                db_id: db,
                table: spec,
            },
        )
        .job
        .table_id;

        let p = run(
            &mut c,
            DdlSpec::AddColumn {
                table_id: t,
                column: ColumnSpec {
                    default: Some(DefaultValue::Int(5)),
                    ..col("d", int(64, false), false)
                },
                position: ColumnPosition::After("a".into()),
            },
        );
        assert_eq!(
            p.query,
            "ALTER TABLE `t` ADD COLUMN `d` bigint NULL DEFAULT 5 AFTER `a`"
        );
        let info = &c.table(t).unwrap().info;
        assert_eq!(
            info.cols
                .iter()
                .map(|c| (c.id, c.offset))
                .collect::<Vec<_>>(),
            [(1, 0), (4, 1), (2, 2), (3, 3)]
        );
        assert_eq!(info.cols[1].origin_default, Some(Value::String("5".into())));
        assert_eq!(c.schema_version(), 2 + 4);

        run(
            &mut c,
            DdlSpec::DropColumn {
                table_id: t,
                column: "b".into(),
            },
        );
        let info = &c.table(t).unwrap().info;
        assert_eq!(info.max_col_id, Some(4), "max_col_id never decreases");
        assert_eq!(info.cols.len(), 3);

        run(
            &mut c,
            DdlSpec::ModifyColumn {
                table_id: t,
                column: "a".into(),
                to: int(64, false),
            },
        );
        assert_eq!(
            c.table(t).unwrap().info.cols[0].id,
            1,
            "in place keeps the id"
        );
        run(
            &mut c,
            DdlSpec::ModifyColumn {
                table_id: t,
                column: "a".into(),
                to: ColumnKind::Varchar(40),
            },
        );
        let info = &c.table(t).unwrap().info;
        assert_eq!(
            (info.cols[0].id, info.cols[0].offset, info.max_col_id),
            (5, 0, Some(5)),
            "a rewrite gives a new id"
        );

        let p = run(
            &mut c,
            DdlSpec::AddIndex {
                table_id: t,
                index: IndexSpec {
                    name: "i1".into(),
                    columns: vec!["c".into()],
                },
            },
        );
        assert_eq!(p.job.schema_state, 5);
        assert!(
            c.plan(
                &DdlSpec::DropColumn {
                    table_id: t,
                    column: "c".into()
                },
                1
            )
            .is_err(),
            "indexed"
        );
        let p = run(
            &mut c,
            DdlSpec::DropIndex {
                table_id: t,
                index: "i1".into(),
            },
        );
        assert_eq!(p.job.schema_state, 0);
        let info = &c.table(t).unwrap().info;
        assert_eq!(info.max_idx_id, Some(1));
        assert_eq!(info.index_info, Some(None));
        assert_eq!(info.cols[2].field_type.flag, 0, "key flag cleared");

        let before = c.schema_version();
        let p = run(&mut c, DdlSpec::TruncateTable { table_id: t });
        let new_id = p.job.history().unwrap().table_info().unwrap().id;
        assert_eq!(
            (p.job.table_id, new_id + 1),
            (t, p.job.id),
            "new table id, then the job id"
        );
        assert!(c.table(t).is_none() && c.table(new_id).is_some());
        assert_eq!(c.schema_version(), before + 1);

        let db2 = run(
            &mut c,
            DdlSpec::CreateDatabase {
                name: "sim_b".into(),
            },
        )
        .job
        .schema_id;
        let p = run(
            &mut c,
            DdlSpec::RenameTable {
                table_id: new_id,
                to_db_id: db2,
                to_name: "t2".into(),
            },
        );
        assert_eq!(p.query, "RENAME TABLE `sim_a`.`t` TO `sim_b`.`t2`");
        assert_eq!((p.job.schema_id, p.job.table_id), (db2, new_id));
        assert_eq!(c.table(new_id).unwrap().db_id, db2);
        assert_eq!(
            c.table_by_name("sim_b", "t2").unwrap().info.extra["old_schema_id"],
            db
        );

        let p = run(&mut c, DdlSpec::DropTable { table_id: new_id });
        assert_eq!(p.job.history().unwrap().table_info().unwrap().state, 0);
        assert!(c.table(new_id).is_none());
        assert_eq!(c.last_global_id(), p.job.id);

        let rebuilt = Catalog::from_jobs(&[]).unwrap();
        assert_eq!(
            rebuilt.last_global_id(),
            crate::tidb::sim::catalog::FIRST_GLOBAL_ID
        );
    }
}
