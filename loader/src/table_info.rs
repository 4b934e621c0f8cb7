//! What the loader knows of a downstream table: its writable columns and its unique keys, read
//! from the downstream's `information_schema` (reference drainer.md §4.2), never from upstream.
//!
//! [`TableInfo::from_schema_rows`] is the pure part; [`load`] runs the two queries.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tidb_codec::ColumnValue;

use crate::row::Row;

/// The name MySQL and MariaDB give a primary key in `information_schema`.
const PRIMARY: &str = "PRIMARY";

/// A downstream unique key (the primary key or a unique index) and its columns in index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UniqueKey {
    pub name: String,
    pub columns: Vec<String>,
}

/// The downstream view of one table.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TableInfo {
    /// Columns that take values, in ordinal order (generated columns excluded).
    pub columns: Vec<String>,
    /// Generated (virtual or stored) columns: the downstream computes them, so values the
    /// upstream sends for them are dropped.
    pub generated: Vec<String>,
    /// Unique keys, `PRIMARY` first, the others by index name.
    pub unique_keys: Vec<UniqueKey>,
}

impl TableInfo {
    /// Builds the view from `information_schema` rows: `(column name, EXTRA)` in ordinal order,
    /// and `(index name, column name)` of unique indexes ordered by index name and position. An
    /// index row without a column (a functional key part) disqualifies that index: its values
    /// cannot be matched with `=`.
    pub fn from_schema_rows(
        columns: Vec<(String, String)>,
        unique_index_columns: Vec<(String, Option<String>)>,
    ) -> TableInfo {
        let mut info = TableInfo::default();
        for (name, extra) in columns {
            if is_generated(&extra) {
                info.generated.push(name);
            } else {
                info.columns.push(name);
            }
        }
        let mut keys: Vec<(UniqueKey, bool)> = Vec::new();
        for (index, column) in unique_index_columns {
            if keys.last().is_none_or(|(key, _)| key.name != index) {
                keys.push((
                    UniqueKey {
                        name: index,
                        columns: Vec::new(),
                    },
                    true,
                ));
            }
            if let Some((key, usable)) = keys.last_mut() {
                match column {
                    Some(column) => key.columns.push(column),
                    None => *usable = false,
                }
            }
        }
        info.unique_keys = keys
            .into_iter()
            .filter(|(key, usable)| *usable && !key.columns.is_empty())
            .map(|(key, _)| key)
            .collect();
        info.unique_keys.sort_by(|a, b| {
            (a.name != PRIMARY)
                .cmp(&(b.name != PRIMARY))
                .then_with(|| a.name.cmp(&b.name))
        });
        info
    }

    /// The primary key, if the table has one.
    pub fn primary_key(&self) -> Option<&UniqueKey> {
        self.unique_keys.first().filter(|key| key.name == PRIMARY)
    }

    /// Whether `column` is generated downstream (names compare case-insensitively, as MySQL's).
    pub fn is_generated(&self, column: &str) -> bool {
        self.generated
            .iter()
            .any(|g| g.eq_ignore_ascii_case(column))
    }

    /// The values of the first unique key whose columns all have non-NULL values in `row`, in
    /// key order.
    pub fn first_usable_key<'a>(
        &'a self,
        row: &'a Row,
    ) -> Option<(&'a UniqueKey, Vec<&'a ColumnValue>)> {
        self.usable_keys(row).next()
    }

    /// Every unique key whose columns all have non-NULL values in `row`, with those values.
    pub fn usable_keys<'a>(
        &'a self,
        row: &'a Row,
    ) -> impl Iterator<Item = (&'a UniqueKey, Vec<&'a ColumnValue>)> + 'a {
        self.unique_keys.iter().filter_map(move |key| {
            let values: Option<Vec<&ColumnValue>> = key
                .columns
                .iter()
                .map(|column| row.get(column).filter(|v| **v != ColumnValue::Null))
                .collect();
            values.map(|values| (key, values))
        })
    }
}

/// MySQL says `VIRTUAL GENERATED`/`STORED GENERATED`, MariaDB also `VIRTUAL`/`PERSISTENT`;
/// MySQL's `DEFAULT_GENERATED` (an expression default) is an ordinary column.
fn is_generated(extra: &str) -> bool {
    let extra = extra.to_ascii_uppercase();
    extra.contains("VIRTUAL") || extra.contains("STORED GENERATED") || extra.contains("PERSISTENT")
}

/// Why a table's view could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The query failed (connection or server error).
    Sql(mysql_async::Error),
    /// The table has no columns downstream: it does not exist there.
    Missing,
    /// A row of `information_schema` had an unexpected shape.
    Shape(String),
}

impl From<mysql_async::Error> for LoadError {
    fn from(err: mysql_async::Error) -> Self {
        LoadError::Sql(err)
    }
}

/// Reads the view of `database`.`table` from the downstream.
pub async fn load(conn: &mut Conn, database: &str, table: &str) -> Result<TableInfo, LoadError> {
    let column_rows: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT COLUMN_NAME, EXTRA FROM information_schema.columns \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await?;
    let index_rows: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.statistics \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (database, table),
        )
        .await?;
    if column_rows.is_empty() {
        return Err(LoadError::Missing);
    }
    let columns = column_rows
        .into_iter()
        .map(|row| {
            mysql_async::from_row_opt::<(String, Option<String>)>(row)
                .map(|(name, extra)| (name, extra.unwrap_or_default()))
                .map_err(|err| LoadError::Shape(format!("information_schema.columns: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = index_rows
        .into_iter()
        .map(|row| {
            mysql_async::from_row_opt::<(String, Option<String>)>(row)
                .map_err(|err| LoadError::Shape(format!("information_schema.statistics: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TableInfo::from_schema_rows(columns, indexes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn primary_first_generated_split_functional_keys_dropped() {
        let info = TableInfo::from_schema_rows(
            vec![
                (s("id"), s("")),
                (s("a"), s("DEFAULT_GENERATED")),
                (s("v"), s("VIRTUAL GENERATED")),
                (s("p"), s("PERSISTENT GENERATED")),
                (s("b"), s("")),
            ],
            vec![
                (s("PRIMARY"), Some(s("id"))),
                (s("fn_key"), None),
                (s("u_ab"), Some(s("a"))),
                (s("u_ab"), Some(s("b"))),
                (s("a_key"), Some(s("b"))),
            ],
        );
        assert_eq!(info.columns, ["id", "a", "b"]);
        assert_eq!(info.generated, ["v", "p"]);
        let names: Vec<&str> = info.unique_keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["PRIMARY", "a_key", "u_ab"]);
        assert_eq!(info.unique_keys[2].columns, ["a", "b"]);
        assert!(info.is_generated("V"));
    }

    #[test]
    fn first_usable_key_skips_keys_with_nulls() {
        let info = TableInfo::from_schema_rows(
            vec![(s("a"), s("")), (s("b"), s(""))],
            vec![(s("u_a"), Some(s("a"))), (s("u_b"), Some(s("b")))],
        );
        let row = Row::from_iter([
            ("A".into(), ColumnValue::Null),
            ("b".into(), ColumnValue::Int(7)),
        ]);
        let (key, values) = info.first_usable_key(&row).unwrap();
        assert_eq!(key.name, "u_b");
        assert_eq!(values, [&ColumnValue::Int(7)]);
        let all_null = Row::from_iter([("a".into(), ColumnValue::Null)]);
        assert!(info.first_usable_key(&all_null).is_none());
    }
}
