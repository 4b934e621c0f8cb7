//! The binlog event filter's settings: `[syncer.binlog-filter-rule.<name>]` (`ignore-event`,
//! `ignore-sql`) attached to tables by `[[syncer.table-migrate-rule]]`, and `case-sensitive`.
//! Only read and validated here: event names must be known, SQL patterns must compile, and every
//! rule a table-migrate rule names must exist.

use std::collections::BTreeMap;

use super::ConfigError;
use super::file::{BinlogFilterRuleFile, SchemaTableFile, TableMigrateRuleFile};

/// The event names of tidb-tools' binlog filter (`ignore-event`), lower case.
pub const EVENT_NAMES: &[&str] = &[
    "all",
    "all dml",
    "all ddl",
    "none",
    "none dml",
    "none ddl",
    "insert",
    "update",
    "delete",
    "create database",
    "drop database",
    "alter database",
    "create schema",
    "drop schema",
    "alter schema",
    "create table",
    "drop table",
    "truncate table",
    "rename table",
    "alter table",
    "create index",
    "drop index",
    "create view",
    "drop view",
    "add table partition",
    "drop table partition",
    "truncate table partition",
    "incompatible ddl changes",
    "value range decrease",
    "precision decrease",
    "modify column",
    "rename column",
    "rename index",
    "drop column",
    "drop primary key",
    "drop unique key",
    "modify default value",
    "modify constraint",
    "modify columns order",
    "modify charset",
    "modify collation",
    "remove auto increment",
    "modify storage engine",
    "reorganize table partition",
    "rebuild table partition",
    "coalesce table partition",
    "split table partition",
    "exchange table partition",
];

/// A schema/table selector of a table-migrate rule (wildcards allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaTable {
    /// Schema pattern.
    pub schema: String,
    /// Table pattern (empty: the schema itself).
    pub table: String,
}

/// One `[syncer.binlog-filter-rule.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilterRule {
    /// Event names to drop, lower case (see [`EVENT_NAMES`]).
    pub ignore_events: Vec<String>,
    /// Regexes (matched case-insensitively) of DDL statements to drop.
    pub ignore_sql: Vec<String>,
}

/// One `[[syncer.table-migrate-rule]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableMigrateRule {
    /// The tables it applies to.
    pub source: SchemaTable,
    /// Routing target (only the Oracle sink of the original used it).
    pub target: Option<SchemaTable>,
    /// Names of the filter rules applied to `source`.
    pub filter_rules: Vec<String>,
}

/// The event filter's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilterConfig {
    /// Whether schema/table patterns match case-sensitively (`case-sensitive`, default false).
    pub case_sensitive: bool,
    /// The named rules.
    pub rules: BTreeMap<String, EventFilterRule>,
    /// Which rules apply to which tables.
    pub table_rules: Vec<TableMigrateRule>,
}

fn schema_table(file: SchemaTableFile) -> SchemaTable {
    SchemaTable {
        schema: file.schema,
        table: file.table,
    }
}

/// Validates and types the filter rules.
pub(super) fn resolve(
    case_sensitive: Option<bool>,
    rules: Option<BTreeMap<String, BinlogFilterRuleFile>>,
    table_rules: Option<Vec<TableMigrateRuleFile>>,
) -> Result<EventFilterConfig, ConfigError> {
    let mut typed_rules = BTreeMap::new();
    for (name, rule) in rules.unwrap_or_default() {
        let key = |field: &str| format!("syncer.binlog-filter-rule.{name}.{field}");
        let mut ignore_events = Vec::new();
        for event in &rule.ignore_event {
            let lower = event.trim().to_lowercase();
            if !EVENT_NAMES.contains(&lower.as_str()) {
                return Err(ConfigError::invalid(
                    key("ignore-event"),
                    event,
                    "unknown event; expected e.g. insert, update, delete, all dml, truncate table, create table",
                ));
            }
            ignore_events.push(lower);
        }
        for sql in &rule.ignore_sql {
            regex::Regex::new(&format!("(?i){sql}"))
                .map_err(|err| ConfigError::invalid(key("ignore-sql"), sql, err.to_string()))?;
        }
        typed_rules.insert(
            name.clone(),
            EventFilterRule {
                ignore_events,
                ignore_sql: rule.ignore_sql,
            },
        );
    }
    let mut typed_table_rules = Vec::new();
    for (position, rule) in table_rules.unwrap_or_default().into_iter().enumerate() {
        let key = |field: &str| format!("syncer.table-migrate-rule[{position}].{field}");
        let source = rule.source.map(schema_table).unwrap_or_default();
        if source.schema.is_empty() {
            return Err(ConfigError::invalid(
                key("source.schema"),
                "",
                "must name a schema (wildcards allowed)",
            ));
        }
        for name in &rule.binlog_filter_rule {
            if !typed_rules.contains_key(name) {
                return Err(ConfigError::invalid(
                    key("binlog-filter-rule"),
                    name,
                    "no [syncer.binlog-filter-rule.<name>] of that name",
                ));
            }
        }
        typed_table_rules.push(TableMigrateRule {
            source,
            target: rule.target.map(schema_table),
            filter_rules: rule.binlog_filter_rule,
        });
    }
    Ok(EventFilterConfig {
        case_sensitive: case_sensitive.unwrap_or(false),
        rules: typed_rules,
        table_rules: typed_table_rules,
    })
}
