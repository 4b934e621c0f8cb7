//! Which DDL the workload runs: the initial databases and tables of a fresh truth, then random
//! DDL chosen from the seeded generator and the catalog alone.
//!
//! Nothing here looks at data or timing, so the same seed on the same starting catalog gives the
//! same DDL sequence, whatever the concurrency. Names derive from the ids the objects will get
//! (`t105`, `c7`, `idx_3`), which are themselves determined by the history.

use crate::tidb::sim::catalog::{
    Catalog, CatalogTable, is_indexed, key_columns, kind_of, value_columns,
};
use crate::tidb::sim::column_kind::ColumnKind;
use crate::tidb::sim::ddl::{
    ColumnPosition, ColumnSpec, DdlSpec, DefaultValue, IndexSpec, KeySpec, TableSpec,
};
use crate::tidb::sim::rng::SimRng;

/// The databases the workload creates first.
pub const DATABASES: [&str; 2] = ["sim_a", "sim_b"];

/// Fewest tables the workload keeps (DROP TABLE is not chosen below this).
const MIN_TABLES: usize = 4;
/// Most columns a table grows to by ADD COLUMN.
const MAX_COLUMNS: usize = 32;
/// Most secondary indexes a table gets by ADD INDEX.
const MAX_INDEXES: usize = 4;

fn nullable(name: &str, kind: ColumnKind) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        kind,
        not_null: false,
        default: None,
    }
}

fn key(name: &str, kind: ColumnKind) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        kind,
        not_null: true,
        default: None,
    }
}

fn int(bits: u8, unsigned: bool) -> ColumnKind {
    ColumnKind::Int { bits, unsigned }
}

/// Columns `c1…cn` of the given kinds, numbered after `first_id - 1` key columns.
fn numbered(kinds: impl IntoIterator<Item = ColumnKind>, first_id: usize) -> Vec<ColumnSpec> {
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| nullable(&format!("c{}", first_id + i), kind))
        .collect()
}

/// The tables of a fresh truth: one per handle kind, together covering every column kind.
fn initial_tables() -> Vec<(&'static str, TableSpec)> {
    let all = ColumnKind::all();
    let pick = |f: &dyn Fn(&ColumnKind) -> bool| -> Vec<ColumnKind> {
        all.iter().filter(|k| f(k)).cloned().collect()
    };
    let ints = pick(&|k| matches!(k, ColumnKind::Int { .. } | ColumnKind::Year));
    let strings = pick(&|k| {
        matches!(
            k,
            ColumnKind::Decimal { .. }
                | ColumnKind::Float
                | ColumnKind::Double
                | ColumnKind::Char(_)
                | ColumnKind::Varchar(_)
                | ColumnKind::Text
                | ColumnKind::Blob
                | ColumnKind::Varbinary(_)
        )
    });
    let times = pick(&|k| {
        matches!(
            k,
            ColumnKind::Date
                | ColumnKind::Datetime(_)
                | ColumnKind::Timestamp(_)
                | ColumnKind::Time(_)
        )
    });
    let misc = pick(&|k| {
        matches!(
            k,
            ColumnKind::Enum(_) | ColumnKind::Set(_) | ColumnKind::Bit(_) | ColumnKind::Json
        )
    });
    let with_key = |keys: Vec<ColumnSpec>, kinds: Vec<ColumnKind>| {
        let first = keys.len() + 1;
        let mut cols = keys;
        cols.extend(numbered(kinds, first));
        cols
    };
    let times_cols = with_key(vec![key("u", int(64, false))], times);
    let indexed_time = times_cols[2].name.clone();
    let mut misc_cols = numbered(misc, 1);
    misc_cols.push(nullable(
        &format!("c{}", misc_cols.len() + 1),
        ColumnKind::Varchar(64),
    ));
    let indexed_misc = misc_cols[misc_cols.len() - 1].name.clone();
    vec![
        (
            DATABASES[0],
            TableSpec {
                name: "ints".into(),
                columns: with_key(vec![key("id", int(64, false))], ints),
                key: KeySpec::IntHandle("id".into()),
                indexes: vec![],
            },
        ),
        (
            DATABASES[0],
            TableSpec {
                name: "strings".into(),
                columns: with_key(
                    vec![
                        key("k1", ColumnKind::Varchar(32)),
                        key("k2", int(64, false)),
                    ],
                    strings,
                ),
                key: KeySpec::Clustered(vec!["k1".into(), "k2".into()]),
                indexes: vec![],
            },
        ),
        (
            DATABASES[0],
            TableSpec {
                name: "times".into(),
                columns: times_cols,
                key: KeySpec::Unique {
                    name: "uk_u".into(),
                    columns: vec!["u".into()],
                },
                indexes: vec![IndexSpec {
                    name: "idx_time".into(),
                    columns: vec![indexed_time],
                }],
            },
        ),
        (
            DATABASES[1],
            TableSpec {
                name: "misc".into(),
                columns: misc_cols,
                key: KeySpec::None,
                indexes: vec![IndexSpec {
                    name: "idx_misc".into(),
                    columns: vec![indexed_misc],
                }],
            },
        ),
        (
            DATABASES[1],
            TableSpec {
                name: "upk".into(),
                columns: with_key(
                    vec![key("id", int(64, true))],
                    vec![ColumnKind::Varchar(20), int(32, false)],
                ),
                key: KeySpec::IntHandle("id".into()),
                indexes: vec![],
            },
        ),
    ]
}

/// How many setup DDLs a fresh truth gets.
pub fn setup_len() -> usize {
    DATABASES.len() + initial_tables().len()
}

/// The `step`-th setup DDL (databases first, then their tables), resolved against the catalog.
pub fn setup_ddl(step: usize, catalog: &Catalog) -> Option<DdlSpec> {
    if let Some(name) = DATABASES.get(step) {
        return Some(DdlSpec::CreateDatabase {
            name: (*name).into(),
        });
    }
    let (db, table) = initial_tables().into_iter().nth(step - DATABASES.len())?;
    let db_id = catalog.db_by_name(db)?.id;
    Some(DdlSpec::CreateTable { db_id, table })
}

/// A random table of a random shape named `name`, with ids starting at 1.
fn random_table(rng: &mut SimRng, name: String) -> TableSpec {
    let all = ColumnKind::all();
    let shape = rng.below(4);
    let (keys, key_spec) = match shape {
        0 => {
            let kind = rng
                .pick(&[int(32, false), int(64, false), int(64, true)])
                .cloned()
                .unwrap_or(int(64, false));
            (vec![key("id", kind)], KeySpec::IntHandle("id".into()))
        }
        1 => (
            vec![
                key("k1", ColumnKind::Varchar(32)),
                key("k2", int(64, false)),
            ],
            KeySpec::Clustered(vec!["k1".into(), "k2".into()]),
        ),
        2 => (
            vec![key("u", int(64, false))],
            KeySpec::Unique {
                name: "uk_u".into(),
                columns: vec!["u".into()],
            },
        ),
        _ => (vec![], KeySpec::None),
    };
    let extra = 2 + rng.index(4);
    let kinds: Vec<ColumnKind> = (0..extra).filter_map(|_| rng.pick(&all).cloned()).collect();
    let mut columns = keys.clone();
    columns.extend(numbered(kinds, keys.len() + 1));
    let mut indexes = Vec::new();
    let indexable: Vec<&ColumnSpec> = columns[keys.len()..]
        .iter()
        .filter(|c| c.kind.is_indexable())
        .collect();
    if rng.chance(50)
        && let Some(c) = rng.pick(&indexable)
    {
        indexes.push(IndexSpec {
            name: format!("idx_{}", c.name),
            columns: vec![c.name.clone()],
        });
    }
    TableSpec {
        name,
        columns,
        key: key_spec,
        indexes,
    }
}

fn random_default(rng: &mut SimRng, kind: &ColumnKind) -> Option<DefaultValue> {
    if !rng.chance(40) {
        return None;
    }
    match kind {
        ColumnKind::Int { .. } => Some(DefaultValue::Int(rng.range_i64(0, 100))),
        ColumnKind::Varchar(_) => Some(DefaultValue::Text(format!("d{}", rng.below(1000)))),
        _ => None,
    }
}

fn droppable_columns(t: &CatalogTable) -> Vec<String> {
    let values = value_columns(&t.info);
    if values.len() <= 2 {
        return Vec::new();
    }
    values
        .iter()
        .filter(|c| !is_indexed(&t.info, &c.name.l))
        .map(|c| c.name.o.clone())
        .collect()
}

fn modifiable_columns(t: &CatalogTable) -> Vec<(String, ColumnKind)> {
    value_columns(&t.info)
        .iter()
        .filter(|c| !is_indexed(&t.info, &c.name.l))
        .filter_map(|c| {
            let kind = kind_of(c)?;
            (kind.widened(false).is_some() || kind.widened(true).is_some())
                .then(|| (c.name.o.clone(), kind))
        })
        .collect()
}

fn secondary_indexes(t: &CatalogTable) -> Vec<String> {
    t.info
        .indexes()
        .iter()
        .filter(|i| !i.is_primary && !i.is_unique)
        .map(|i| i.idx_name.o.clone())
        .collect()
}

fn indexable_columns(t: &CatalogTable) -> Vec<String> {
    let keys = key_columns(&t.info);
    t.info
        .cols
        .iter()
        .filter(|c| !keys.contains(&c.name.l))
        .filter(|c| kind_of(c).is_some_and(|k| k.is_indexable()))
        .map(|c| c.name.o.clone())
        .collect()
}

/// A random DDL for the current catalog. Needs at least one database.
pub fn random_ddl(rng: &mut SimRng, catalog: &Catalog) -> Option<DdlSpec> {
    let dbs: Vec<i64> = catalog.dbs().map(|d| d.id).collect();
    let tables: Vec<&CatalogTable> = catalog.tables().collect();
    let next_id = catalog.last_global_id() + 1;
    let create = |rng: &mut SimRng| -> Option<DdlSpec> {
        let db_id = *rng.pick(&dbs)?;
        Some(DdlSpec::CreateTable {
            db_id,
            table: random_table(rng, format!("t{next_id}")),
        })
    };
    if tables.len() < MIN_TABLES {
        return create(rng);
    }
    let t = *rng.pick(&tables)?;
    let table_id = t.info.id;
    let droppable = droppable_columns(t);
    let modifiable = modifiable_columns(t);
    let secondary = secondary_indexes(t);
    let indexable = indexable_columns(t);
    let weights = [
        14,                                            // create table
        if tables.len() > MIN_TABLES { 5 } else { 0 }, // drop table
        8,                                             // truncate
        8,                                             // rename
        if t.info.cols.len() < MAX_COLUMNS {
            18
        } else {
            0
        }, // add column
        if droppable.is_empty() { 0 } else { 12 },     // drop column
        if modifiable.is_empty() { 0 } else { 10 },    // modify column
        if indexable.is_empty() || secondary.len() >= MAX_INDEXES {
            0
        } else {
            10
        }, // add index
        if secondary.is_empty() { 0 } else { 8 },      // drop index
    ];
    Some(match rng.weighted(&weights) {
        0 => return create(rng),
        1 => DdlSpec::DropTable { table_id },
        2 => DdlSpec::TruncateTable { table_id },
        3 => {
            let to_db_id = if rng.chance(30) {
                *rng.pick(&dbs)?
            } else {
                t.db_id
            };
            DdlSpec::RenameTable {
                table_id,
                to_db_id,
                to_name: format!("t{table_id}_r{next_id}"),
            }
        }
        4 => {
            let all = ColumnKind::all();
            let kind = rng.pick(&all)?.clone();
            let default = random_default(rng, &kind);
            let col_id = t.info.max_col_id.unwrap_or(0) + 1;
            let position = match rng.below(6) {
                0 => ColumnPosition::First,
                1 => ColumnPosition::After(rng.pick(&t.info.cols)?.name.o.clone()),
                _ => ColumnPosition::End,
            };
            DdlSpec::AddColumn {
                table_id,
                column: ColumnSpec {
                    name: format!("c{col_id}"),
                    kind,
                    not_null: false,
                    default,
                },
                position,
            }
        }
        5 => DdlSpec::DropColumn {
            table_id,
            column: rng.pick(&droppable)?.clone(),
        },
        6 => {
            let (column, kind) = rng.pick(&modifiable)?.clone();
            let reorganize = rng.chance(50);
            let to = kind
                .widened(reorganize)
                .or_else(|| kind.widened(!reorganize))?;
            DdlSpec::ModifyColumn {
                table_id,
                column,
                to,
            }
        }
        7 => {
            let first = rng.pick(&indexable)?.clone();
            let mut columns = vec![first];
            if rng.chance(30)
                && let Some(second) = rng.pick(&indexable)
                && !columns.contains(second)
            {
                columns.push(second.clone());
            }
            DdlSpec::AddIndex {
                table_id,
                index: IndexSpec {
                    name: format!("idx_{}", t.info.max_idx_id.unwrap_or(0) + 1),
                    columns,
                },
            }
        }
        _ => DdlSpec::DropIndex {
            table_id,
            index: rng.pick(&secondary)?.clone(),
        },
    })
}

/// Whether the catalog is a fresh one that still needs its setup.
pub fn needs_setup(catalog: &Catalog) -> bool {
    catalog.dbs().next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tidb::sim::catalog::TableShape;

    /// Runs setup and `n` random DDLs from `seed`, returning the statements.
    fn sequence(seed: u64, n: usize) -> (Vec<String>, Catalog) {
        let mut catalog = Catalog::default();
        let mut queries = Vec::new();
        for step in 0..setup_len() {
            let spec = setup_ddl(step, &catalog).unwrap();
            let p = catalog.plan(&spec, 1).unwrap();
            queries.push(p.query.clone());
            catalog.apply(&p.job).unwrap();
        }
        let mut rng = SimRng::new(seed);
        for _ in 0..n {
            let spec = random_ddl(&mut rng, &catalog).unwrap();
            let p = catalog
                .plan(&spec, 1)
                .unwrap_or_else(|e| panic!("{spec:?}: {e}"));
            queries.push(p.query.clone());
            catalog.apply(&p.job).unwrap();
        }
        (queries, catalog)
    }

    #[test]
    fn setup_covers_every_shape_and_kind() {
        let (queries, catalog) = sequence(1, 0);
        assert_eq!(queries.len(), setup_len());
        let shapes: Vec<TableShape> = catalog.tables().map(|t| TableShape::of(&t.info)).collect();
        for shape in [
            TableShape::IntHandle,
            TableShape::CommonHandle,
            TableShape::UniqueKey,
            TableShape::NoKey,
        ] {
            assert!(shapes.contains(&shape), "{shape:?} in {shapes:?}");
        }
        let kinds: Vec<ColumnKind> = catalog
            .tables()
            .flat_map(|t| t.info.cols.iter().filter_map(kind_of))
            .collect();
        for kind in ColumnKind::all() {
            assert!(kinds.contains(&kind), "{kind:?}");
        }
    }

    #[test]
    fn random_ddl_is_valid_and_deterministic() {
        let (a, catalog) = sequence(7, 300);
        let (b, _) = sequence(7, 300);
        assert_eq!(a, b);
        let (c, _) = sequence(8, 300);
        assert_ne!(a, c);
        for verb in [
            "CREATE TABLE",
            "DROP TABLE",
            "TRUNCATE TABLE",
            "RENAME TABLE",
            "ADD COLUMN",
            "DROP COLUMN",
            "MODIFY COLUMN",
            "ADD INDEX",
            "DROP INDEX",
        ] {
            assert!(a.iter().any(|q| q.contains(verb)), "{verb} in the mix");
        }
        assert!(catalog.tables().count() >= MIN_TABLES);
    }
}
