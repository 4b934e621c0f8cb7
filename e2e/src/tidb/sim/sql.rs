//! SQL text the simulator writes: quoted identifiers and literals, column definitions, and the
//! statements of each DDL it runs. Pure string building, shared by the DDL planner (whose text
//! goes into the binlog and the job history) and the truth database's DML.

use crate::tidb::sim::column_kind::{CHARSET, COLLATION};
use crate::tidb::sim::ddl::{ColumnPosition, ColumnSpec, DefaultValue, KeySpec, TableSpec};

/// The hidden row id column the truth keeps for tables whose TiDB handle is `_tidb_rowid`.
/// It is INVISIBLE in MariaDB, so `SELECT *` and the checker never see it.
pub const ROW_ID_COLUMN: &str = "_tidb_rowid";

/// A backquoted identifier (embedded backquotes doubled).
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `db`.`table` ``.
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", ident(db), ident(table))
}

/// A single-quoted string literal, escaped for MySQL's default SQL mode.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn default_literal(value: &DefaultValue) -> String {
    match value {
        DefaultValue::Int(n) => n.to_string(),
        DefaultValue::Text(s) => string_literal(s),
    }
}

/// `` `name` type NULL|NOT NULL [DEFAULT literal] ``.
pub fn column_definition(column: &ColumnSpec) -> String {
    let mut out = format!("{} {}", ident(&column.name), column.kind.sql());
    out.push_str(if column.not_null {
        " NOT NULL"
    } else {
        " NULL"
    });
    if let Some(default) = &column.default {
        out.push_str(" DEFAULT ");
        out.push_str(&default_literal(default));
    }
    out
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(",")
}

/// TiDB's text of `CREATE DATABASE` with the simulator's charset.
pub fn create_database(name: &str) -> String {
    format!(
        "CREATE DATABASE {} CHARACTER SET {CHARSET} COLLATE {COLLATION}",
        ident(name)
    )
}

/// `CREATE TABLE` as a TiDB client would type it; the clustered primary key carries TiDB's
/// special comment, which MySQL and MariaDB read as a comment. With `hidden_row_id`, the truth's
/// variant: an extra invisible, unique `_tidb_rowid` column.
pub fn create_table(spec: &TableSpec, hidden_row_id: bool) -> String {
    let mut parts: Vec<String> = spec.columns.iter().map(column_definition).collect();
    match &spec.key {
        KeySpec::IntHandle(column) => parts.push(format!(
            "PRIMARY KEY ({}) /*T![clustered_index] CLUSTERED */",
            ident(column)
        )),
        KeySpec::Clustered(columns) => parts.push(format!(
            "PRIMARY KEY ({}) /*T![clustered_index] CLUSTERED */",
            column_list(columns)
        )),
        KeySpec::Unique { name, columns } => parts.push(format!(
            "UNIQUE KEY {} ({})",
            ident(name),
            column_list(columns)
        )),
        KeySpec::None => {}
    }
    for index in &spec.indexes {
        parts.push(format!(
            "KEY {} ({})",
            ident(&index.name),
            column_list(&index.columns)
        ));
    }
    if hidden_row_id {
        parts.push(format!(
            "{} bigint NOT NULL DEFAULT 0 INVISIBLE",
            ident(ROW_ID_COLUMN)
        ));
        parts.push(format!(
            "UNIQUE KEY {} ({})",
            ident(ROW_ID_COLUMN),
            ident(ROW_ID_COLUMN)
        ));
    }
    format!(
        "CREATE TABLE {} ({}) DEFAULT CHARSET={CHARSET} COLLATE={COLLATION}",
        ident(&spec.name),
        parts.join(", ")
    )
}

/// ` FIRST`, ` AFTER `x``, or nothing.
pub fn position(position: &ColumnPosition) -> String {
    match position {
        ColumnPosition::End => String::new(),
        ColumnPosition::First => " FIRST".into(),
        ColumnPosition::After(column) => format!(" AFTER {}", ident(column)),
    }
}

/// Placeholders `?,?,…` for `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// `` `a` = ? AND `b` = ? `` over `columns`.
pub fn equals_all(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{} = ?", ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tidb::sim::column_kind::ColumnKind;
    use crate::tidb::sim::ddl::IndexSpec;

    fn col(name: &str, kind: ColumnKind, not_null: bool) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            kind,
            not_null,
            default: None,
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(string_literal("it's \\ \0"), "'it''s \\\\ \\0'");
        assert_eq!(qualified("d", "t"), "`d`.`t`");
        assert_eq!(placeholders(3), "?,?,?");
        assert_eq!(equals_all(&["a", "b"]), "`a` = ? AND `b` = ?");
    }

    #[test]
    fn create_table_text() {
        let spec = TableSpec {
            name: "t1".into(),
            columns: vec![
                col("k1", ColumnKind::Varchar(32), true),
                col(
                    "k2",
                    ColumnKind::Int {
                        bits: 64,
                        unsigned: false,
                    },
                    true,
                ),
                ColumnSpec {
                    default: Some(DefaultValue::Int(7)),
                    ..col(
                        "c3",
                        ColumnKind::Int {
                            bits: 32,
                            unsigned: true,
                        },
                        false,
                    )
                },
            ],
            key: KeySpec::Clustered(vec!["k1".into(), "k2".into()]),
            indexes: vec![IndexSpec {
                name: "idx_3".into(),
                columns: vec!["c3".into()],
            }],
        };
        assert_eq!(
            create_table(&spec, false),
            "CREATE TABLE `t1` (`k1` varchar(32) NOT NULL, `k2` bigint NOT NULL, \
             `c3` int unsigned NULL DEFAULT 7, \
             PRIMARY KEY (`k1`,`k2`) /*T![clustered_index] CLUSTERED */, KEY `idx_3` (`c3`)) \
             DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        );
        let truth = create_table(&spec, true);
        assert!(truth.contains("`_tidb_rowid` bigint NOT NULL DEFAULT 0 INVISIBLE"));
        assert_eq!(
            create_database("sim_a"),
            "CREATE DATABASE `sim_a` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        );
        assert_eq!(position(&ColumnPosition::After("x".into())), " AFTER `x`");
    }
}
