//! The binlog event filter (reference drainer.md §7.2): `[syncer.binlog-filter-rule.<name>]`
//! rules (`ignore-event`, `ignore-sql`) attached to tables by `[[syncer.table-migrate-rule]]`
//! with `*`/`?` wildcards. Row events of ignored kinds are cut out of a transaction's mutations
//! (sequence and row lists compacted), and an ignored DDL is tracked but not executed.
//!
//! Pure: patterns, statement classification and mutation rewriting, no I/O. DDL statements are
//! classified by their leading keywords into the filter's event names, which covers the
//! statements TiDB records; a statement that cannot be classified is matched by `ignore-sql` only.

use std::collections::HashSet;

use binlog_proto::binlog::{MutationType, PrewriteValue, TableMutation};
use regex::{Regex, RegexBuilder};

use crate::config::EventFilterConfig;
use crate::schema::{Catalog, TableLookup};

/// A rule whose pattern does not compile.
#[derive(Debug, thiserror::Error)]
#[error("binlog filter rule {rule}: {what} {pattern:?} does not compile: {reason}")]
pub struct EventFilterError {
    rule: String,
    what: &'static str,
    pattern: String,
    reason: String,
}

struct TableRule {
    schema: Regex,
    table: Regex,
    ignore_events: HashSet<String>,
    ignore_sql: Vec<Regex>,
}

/// The compiled event filter.
pub struct EventFilter {
    rules: Vec<TableRule>,
}

/// `*` any run of characters, `?` one character; everything else literal.
fn wildcard(pattern: &str, case_sensitive: bool) -> Result<Regex, regex::Error> {
    let mut expression = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => expression.push_str(".*"),
            '?' => expression.push('.'),
            other => expression.push_str(&regex::escape(&other.to_string())),
        }
    }
    expression.push('$');
    RegexBuilder::new(&expression)
        .case_insensitive(!case_sensitive)
        .build()
}

/// The filter's event names a DDL statement belongs to (lower case, most specific last).
pub fn ddl_events(sql: &str) -> Vec<&'static str> {
    let text = sql.trim_start().to_lowercase();
    let words: Vec<&str> = text.split_whitespace().take(4).collect();
    let mut events = Vec::new();
    let starts = |prefix: &[&str]| words.len() >= prefix.len() && words[..prefix.len()] == *prefix;
    if starts(&["create", "database"]) {
        events.push("create database");
    } else if starts(&["create", "schema"]) {
        events.extend(["create database", "create schema"]);
    } else if starts(&["drop", "database"]) {
        events.push("drop database");
    } else if starts(&["drop", "schema"]) {
        events.extend(["drop database", "drop schema"]);
    } else if starts(&["alter", "database"]) || starts(&["alter", "schema"]) {
        events.push("alter database");
    } else if starts(&["create", "table"]) {
        events.push("create table");
    } else if starts(&["drop", "table"]) {
        events.push("drop table");
    } else if starts(&["truncate"]) {
        events.push("truncate table");
    } else if starts(&["rename", "table"]) {
        events.push("rename table");
    } else if starts(&["create", "index"]) || starts(&["create", "unique", "index"]) {
        events.push("create index");
    } else if starts(&["drop", "index"]) {
        events.push("drop index");
    } else if text.starts_with("create") && words.contains(&"view") {
        events.push("create view");
    } else if starts(&["drop", "view"]) {
        events.push("drop view");
    } else if starts(&["alter", "table"]) {
        events.push("alter table");
        let clauses = [
            (" add index", "create index"),
            (" add key", "create index"),
            (" add unique", "create index"),
            (" drop index", "drop index"),
            (" drop key", "drop index"),
            (" drop column", "drop column"),
            (" modify", "modify column"),
            (" change", "modify column"),
            (" rename column", "rename column"),
            (" rename index", "rename index"),
            (" rename to", "rename table"),
            (" rename as", "rename table"),
            (" add partition", "add table partition"),
            (" drop partition", "drop table partition"),
            (" truncate partition", "truncate table partition"),
            (" drop primary key", "drop primary key"),
        ];
        for (clause, event) in clauses {
            if text.contains(clause) {
                events.push(event);
            }
        }
    }
    events
}

fn ignores(ignored: &HashSet<String>, event: &str, dml: bool) -> bool {
    let group = if dml { "all dml" } else { "all ddl" };
    ignored.contains(event) || ignored.contains("all") || ignored.contains(group)
}

impl EventFilter {
    pub fn new(config: &EventFilterConfig) -> Result<EventFilter, EventFilterError> {
        let mut rules = Vec::new();
        for table_rule in &config.table_rules {
            let compile = |what, pattern: &str| {
                wildcard(pattern, config.case_sensitive).map_err(|err| EventFilterError {
                    rule: table_rule.filter_rules.join(","),
                    what,
                    pattern: pattern.to_string(),
                    reason: err.to_string(),
                })
            };
            let table_pattern = if table_rule.source.table.is_empty() {
                "*"
            } else {
                table_rule.source.table.as_str()
            };
            let mut rule = TableRule {
                schema: compile("schema pattern", &table_rule.source.schema)?,
                table: compile("table pattern", table_pattern)?,
                ignore_events: HashSet::new(),
                ignore_sql: Vec::new(),
            };
            for name in &table_rule.filter_rules {
                let Some(named) = config.rules.get(name) else {
                    continue;
                };
                rule.ignore_events
                    .extend(named.ignore_events.iter().map(|e| e.to_lowercase()));
                for sql in &named.ignore_sql {
                    let regex = RegexBuilder::new(sql)
                        .case_insensitive(true)
                        .build()
                        .map_err(|err| EventFilterError {
                            rule: name.clone(),
                            what: "ignore-sql",
                            pattern: sql.clone(),
                            reason: err.to_string(),
                        })?;
                    rule.ignore_sql.push(regex);
                }
            }
            rules.push(rule);
        }
        Ok(EventFilter { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn rules_for<'a>(
        &'a self,
        schema: &'a str,
        table: &'a str,
    ) -> impl Iterator<Item = &'a TableRule> {
        self.rules
            .iter()
            .filter(move |rule| rule.schema.is_match(schema) && rule.table.is_match(table))
    }

    /// Whether row events of `kind` on `schema.table` are dropped.
    pub fn skips_rows(&self, schema: &str, table: &str, kind: MutationType) -> bool {
        let event = match kind {
            MutationType::Insert => "insert",
            MutationType::Update => "update",
            _ => "delete",
        };
        self.rules_for(schema, table)
            .any(|rule| ignores(&rule.ignore_events, event, true))
    }

    /// Whether a DDL statement on `schema.table` is dropped (by its kind or its text).
    pub fn skips_ddl(&self, schema: &str, table: &str, sql: &str) -> bool {
        let events = ddl_events(sql);
        self.rules_for(schema, table).any(|rule| {
            events
                .iter()
                .any(|event| ignores(&rule.ignore_events, event, false))
                || rule.ignore_sql.iter().any(|regex| regex.is_match(sql))
        })
    }

    /// Cuts the ignored row events out of `prewrite`'s mutations.
    pub fn filter_rows(&self, prewrite: &mut PrewriteValue, catalog: &Catalog) {
        if self.is_empty() {
            return;
        }
        for mutation in &mut prewrite.mutations {
            let TableLookup::Found { database, table } =
                catalog.table_for_change(mutation.table_id, prewrite.schema_version)
            else {
                continue;
            };
            let skipped: Vec<MutationType> = [
                MutationType::Insert,
                MutationType::Update,
                MutationType::DeleteRow,
            ]
            .into_iter()
            .filter(|kind| self.skips_rows(database, &table.name.o, *kind))
            .collect();
            if !skipped.is_empty() {
                drop_rows(mutation, &skipped);
            }
        }
    }
}

/// Removes the row events of the `skipped` kinds, keeping the others in statement order.
fn drop_rows(mutation: &mut TableMutation, skipped: &[MutationType]) {
    let (mut inserts, mut updates, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut i, mut u, mut d) = (0, 0, 0);
    let mut sequence = Vec::new();
    for &tp in &mutation.sequence {
        let kind = MutationType::try_from(tp).unwrap_or(MutationType::DeleteRow);
        let (rows, cursor, out) = match kind {
            MutationType::Insert => (&mut mutation.inserted_rows, &mut i, &mut inserts),
            MutationType::Update => (&mut mutation.updated_rows, &mut u, &mut updates),
            _ => (&mut mutation.deleted_rows, &mut d, &mut deletes),
        };
        let row = rows.get_mut(*cursor).map(std::mem::take);
        *cursor += 1;
        if skipped.contains(&kind) {
            continue;
        }
        if let Some(row) = row {
            out.push(row);
            sequence.push(tp);
        }
    }
    mutation.inserted_rows = inserts;
    mutation.updated_rows = updates;
    mutation.deleted_rows = deletes;
    mutation.sequence = sequence;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{EventFilterRule, SchemaTable, TableMigrateRule};

    fn filter(schema: &str, table: &str, events: &[&str], sql: &[&str]) -> EventFilter {
        let config = EventFilterConfig {
            case_sensitive: false,
            rules: BTreeMap::from([(
                "r".to_string(),
                EventFilterRule {
                    ignore_events: events.iter().map(|e| e.to_string()).collect(),
                    ignore_sql: sql.iter().map(|e| e.to_string()).collect(),
                },
            )]),
            table_rules: vec![TableMigrateRule {
                source: SchemaTable {
                    schema: schema.into(),
                    table: table.into(),
                },
                target: None,
                filter_rules: vec!["r".into()],
            }],
        };
        EventFilter::new(&config).unwrap()
    }

    #[test]
    fn ddl_statements_get_the_filters_event_names() {
        assert_eq!(ddl_events("TRUNCATE TABLE t"), ["truncate table"]);
        assert_eq!(ddl_events("  create table t (a int)"), ["create table"]);
        assert_eq!(
            ddl_events("ALTER TABLE t ADD INDEX i(a)"),
            ["alter table", "create index"]
        );
        assert_eq!(
            ddl_events("ALTER TABLE t DROP COLUMN c"),
            ["alter table", "drop column"]
        );
        assert_eq!(
            ddl_events("CREATE SCHEMA s"),
            ["create database", "create schema"]
        );
        assert!(ddl_events("FLASHBACK TABLE t").is_empty());
    }

    #[test]
    fn rules_apply_to_matching_tables_only() {
        let filter = filter(
            "do_*",
            "t?",
            &["delete", "truncate table"],
            &["alter table .* add column aaa int"],
        );
        assert!(filter.skips_rows("do_x", "t1", MutationType::DeleteRow));
        assert!(filter.skips_rows("DO_X", "T1", MutationType::DeleteRow));
        assert!(!filter.skips_rows("do_x", "t1", MutationType::Insert));
        assert!(!filter.skips_rows("other", "t1", MutationType::DeleteRow));
        assert!(!filter.skips_rows("do_x", "t12", MutationType::DeleteRow));
        assert!(filter.skips_ddl("do_x", "t1", "truncate table t1"));
        assert!(filter.skips_ddl("do_x", "t1", "ALTER TABLE t1 ADD COLUMN aaa int"));
        assert!(!filter.skips_ddl("do_x", "t1", "ALTER TABLE t1 ADD COLUMN bbb int"));
        assert!(!filter.skips_ddl("other", "t1", "truncate table t1"));
    }

    #[test]
    fn all_dml_and_all_ddl_cover_their_groups() {
        let filter = filter("s", "*", &["all dml"], &[]);
        assert!(filter.skips_rows("s", "t", MutationType::Update));
        assert!(!filter.skips_ddl("s", "t", "DROP TABLE t"));
        let filter2 = super::tests::filter("s", "", &["all ddl"], &[]);
        assert!(filter2.skips_ddl("s", "t", "DROP TABLE t"));
        assert!(!filter2.skips_rows("s", "t", MutationType::Insert));
    }

    #[test]
    fn dropped_row_events_leave_the_others_in_statement_order() {
        let mut mutation = TableMutation {
            table_id: 1,
            inserted_rows: vec![b"i0".to_vec().into(), b"i1".to_vec().into()],
            updated_rows: vec![b"u0".to_vec().into()],
            deleted_rows: vec![b"d0".to_vec().into()],
            sequence: vec![0, 4, 1, 0],
            ..TableMutation::default()
        };
        drop_rows(&mut mutation, &[MutationType::DeleteRow]);
        assert_eq!(mutation.sequence, [0, 1, 0]);
        assert_eq!(mutation.inserted_rows, [b"i0".to_vec(), b"i1".to_vec()]);
        assert_eq!(mutation.updated_rows, [b"u0".to_vec()]);
        assert!(mutation.deleted_rows.is_empty());
        drop_rows(&mut mutation, &[MutationType::Insert]);
        assert_eq!(mutation.sequence, [1]);
        assert!(mutation.inserted_rows.is_empty());
    }
}
