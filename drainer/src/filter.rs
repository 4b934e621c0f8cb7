//! The schema/table filter: `replicate-do-db`, `[[syncer.replicate-do-table]]`, `ignore-schemas`
//! and `[[syncer.ignore-table]]`, decided exactly as the original drainer decides.
//!
//! Patterns: a leading `~` makes the rest a case-insensitive, unanchored regex; anything else is
//! compiled as the case-insensitive, anchored regex `^name$`. For compatibility the original's
//! quirk is kept: metacharacters in plain names are *not* escaped, so `a.b` also matches `axb`
//! and `t_1` is fine but `t+` means "one or more t". The original lower-cases the names being
//! filtered; with every pattern case-insensitive that changes nothing, so names are matched as given.
//!
//! Decision for (schema, table): when any do-list is set, the pair survives iff it matches a
//! do-table (schema and table) or a do-db — so a do-db admits every table of that schema even when
//! do-tables list only some of them. A survivor is then dropped if it matches an ignore-table or
//! an ignore-db. Schema-level DDLs are decided with the table `""`.
//!
//! Pure: no I/O; the configuration builds it once.

use regex::Regex;

/// A `(db-name, tbl-name)` pair of the configuration, either part possibly a `~` regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema pattern.
    pub schema: String,
    /// The table pattern.
    pub table: String,
}

impl TableName {
    /// A pair of patterns.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> TableName {
        TableName {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

/// The filter's settings, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// `replicate-do-db`.
    pub do_dbs: Vec<String>,
    /// `[[syncer.replicate-do-table]]`.
    pub do_tables: Vec<TableName>,
    /// `ignore-schemas`, split on commas.
    pub ignore_dbs: Vec<String>,
    /// `[[syncer.ignore-table]]`.
    pub ignore_tables: Vec<TableName>,
}

/// A pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {pattern:?} in {setting}: {reason}")]
pub struct FilterError {
    /// The setting the pattern comes from (`replicate-do-db`, `ignore-table`, ...).
    pub setting: &'static str,
    /// The pattern as configured.
    pub pattern: String,
    /// The regex compiler's message.
    pub reason: String,
}

/// The compiled filter. It is asked about every table of every transaction, so every pattern
/// is compiled once, next to its place in the decision.
#[derive(Debug, Clone)]
pub struct Filter {
    do_dbs: Vec<Regex>,
    do_tables: Vec<(Regex, Regex)>,
    ignore_dbs: Vec<Regex>,
    ignore_tables: Vec<(Regex, Regex)>,
}

impl Filter {
    /// Compiles every pattern of `config`.
    pub fn new(config: &FilterConfig) -> Result<Filter, FilterError> {
        let dbs = |setting, patterns: &[String]| -> Result<Vec<Regex>, FilterError> {
            patterns.iter().map(|db| compile(setting, db)).collect()
        };
        let tables = |setting, patterns: &[TableName]| -> Result<Vec<_>, FilterError> {
            patterns
                .iter()
                .map(|name| {
                    Ok((
                        compile(setting, &name.schema)?,
                        compile(setting, &name.table)?,
                    ))
                })
                .collect()
        };
        Ok(Filter {
            do_dbs: dbs("replicate-do-db", &config.do_dbs)?,
            do_tables: tables("replicate-do-table", &config.do_tables)?,
            ignore_dbs: dbs("ignore-schemas", &config.ignore_dbs)?,
            ignore_tables: tables("ignore-table", &config.ignore_tables)?,
        })
    }

    /// Whether changes to `schema`.`table` are skipped (use table `""` for a schema-level DDL).
    /// Every pattern is case-insensitive, so the names are matched as they are.
    pub fn skips(&self, schema: &str, table: &str) -> bool {
        let has_do_list = !self.do_dbs.is_empty() || !self.do_tables.is_empty();
        if has_do_list
            && !matches_table(&self.do_tables, schema, table)
            && !matches_db(&self.do_dbs, schema)
        {
            return true;
        }
        matches_table(&self.ignore_tables, schema, table) || matches_db(&self.ignore_dbs, schema)
    }
}

fn matches_db(patterns: &[Regex], schema: &str) -> bool {
    patterns.iter().any(|pattern| pattern.is_match(schema))
}

fn matches_table(patterns: &[(Regex, Regex)], schema: &str, table: &str) -> bool {
    patterns.iter().any(|(schema_pattern, table_pattern)| {
        schema_pattern.is_match(schema) && table_pattern.is_match(table)
    })
}

fn compile(setting: &'static str, pattern: &str) -> Result<Regex, FilterError> {
    let source = match pattern.strip_prefix('~') {
        Some(regex) => format!("(?i){regex}"),
        None => format!("(?i)^{pattern}$"),
    };
    Regex::new(&source).map_err(|err| FilterError {
        setting,
        pattern: pattern.to_string(),
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn tables(list: &[(&str, &str)]) -> Vec<TableName> {
        list.iter().map(|(s, t)| TableName::new(*s, *t)).collect()
    }

    fn default_ignores() -> Vec<String> {
        names(&["INFORMATION_SCHEMA", "PERFORMANCE_SCHEMA", "mysql"])
    }

    #[test]
    fn without_lists_everything_passes() {
        let filter = Filter::new(&FilterConfig::default()).unwrap();
        assert!(!filter.skips("any", "thing"));
        assert!(!filter.skips("any", ""));
    }

    #[test]
    fn default_ignore_schemas_drop_system_schemas_in_any_case() {
        let filter = Filter::new(&FilterConfig {
            ignore_dbs: default_ignores(),
            ..Default::default()
        })
        .unwrap();
        assert!(filter.skips("mysql", "user"));
        assert!(filter.skips("MySQL", "user"));
        assert!(filter.skips("information_schema", "tables"));
        assert!(filter.skips("performance_schema", ""));
        assert!(!filter.skips("mysql2", "user"), "plain names are anchored");
        assert!(!filter.skips("test", "t"));
    }

    /// The original's `filter` integration test (tests/filter): its drainer.toml lists, the
    /// databases and tables it creates, and what it expects downstream.
    #[test]
    fn the_original_filter_scenario() {
        let filter = Filter::new(&FilterConfig {
            do_dbs: names(&["~^do_start.*", "do_name"]),
            do_tables: tables(&[
                ("test", "do_name"),
                ("test", "do_ignore_name"),
                ("test", "~^do_start.*"),
            ]),
            ignore_dbs: default_ignores(),
            ignore_tables: tables(&[("test", "do_ignore_name")]),
        })
        .unwrap();
        // CREATE DATABASE is a schema-level DDL: table "".
        assert!(!filter.skips("do_start1", ""));
        assert!(!filter.skips("do_name", ""));
        assert!(filter.skips("do_not_start1", ""));
        assert!(filter.skips("do_not_name", ""));
        // CREATE TABLE test.*
        assert!(!filter.skips("test", "do_start1"));
        assert!(!filter.skips("test", "do_name"));
        assert!(filter.skips("test", "do_not_start1"));
        assert!(filter.skips("test", "do_not_name"));
        // ignore-table overrides the do-table naming the same table
        assert!(filter.skips("test", "do_ignore_name"));
        // every table of a do-db passes
        assert!(!filter.skips("do_start1", "t"));
        assert!(filter.skips("do_name1", "t"), "exact names are anchored");
    }

    #[test]
    fn ignore_table_overrides_do_table_and_do_db() {
        let filter = Filter::new(&FilterConfig {
            do_dbs: names(&["shop"]),
            do_tables: tables(&[("crm", "customers")]),
            ignore_tables: tables(&[("shop", "audit"), ("crm", "customers")]),
            ..Default::default()
        })
        .unwrap();
        assert!(!filter.skips("shop", "orders"));
        assert!(filter.skips("shop", "audit"));
        assert!(filter.skips("crm", "customers"));
    }

    #[test]
    fn a_do_db_admits_every_table_of_its_schema() {
        let filter = Filter::new(&FilterConfig {
            do_dbs: names(&["s"]),
            do_tables: tables(&[("s", "only_this")]),
            ..Default::default()
        })
        .unwrap();
        assert!(!filter.skips("s", "only_this"));
        assert!(!filter.skips("s", "another"));
        assert!(filter.skips("t", "only_this"));
    }

    #[test]
    fn tilde_regexes_are_unanchored_and_case_insensitive() {
        let filter = Filter::new(&FilterConfig {
            do_dbs: names(&["~Sales"]),
            ..Default::default()
        })
        .unwrap();
        assert!(!filter.skips("east_sales_2024", "t"));
        assert!(!filter.skips("SALES", "t"));
        assert!(filter.skips("marketing", "t"));
    }

    #[test]
    fn plain_names_keep_regex_metacharacters_like_the_original() {
        let filter = Filter::new(&FilterConfig {
            do_dbs: names(&["a.b"]),
            ..Default::default()
        })
        .unwrap();
        assert!(!filter.skips("a.b", "t"));
        assert!(!filter.skips("axb", "t"), "'.' is not escaped");
        assert!(filter.skips("a.bc", "t"));
    }

    #[test]
    fn ignore_schemas_without_do_lists() {
        let filter = Filter::new(&FilterConfig {
            ignore_dbs: names(&["test", "~^tmp_"]),
            ignore_tables: tables(&[("app", "~^cache_")]),
            ..Default::default()
        })
        .unwrap();
        assert!(filter.skips("test", "t"));
        assert!(filter.skips("tmp_1", "t"));
        assert!(filter.skips("app", "cache_users"));
        assert!(!filter.skips("app", "users"));
        assert!(!filter.skips("app", ""), "schema-level DDL of app passes");
    }

    #[test]
    fn a_bad_regex_names_its_setting_and_pattern() {
        let err = Filter::new(&FilterConfig {
            ignore_tables: tables(&[("app", "~(unclosed")]),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.setting, "ignore-table");
        assert_eq!(err.pattern, "~(unclosed");
        assert!(
            err.to_string()
                .starts_with("invalid pattern \"~(unclosed\" in ignore-table: "),
            "{err}"
        );
    }
}
