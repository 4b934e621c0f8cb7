//! The MySQL loader against a real MariaDB: every column type and key shape lands as expected,
//! conflicting changes end in the last writer's values, disabled dispatch keeps upstream
//! transactions whole (also when pushed in parts), safe mode makes replays idempotent, DDL is a
//! barrier with "already done" errors ignored and bad DDL stopping the loader (and making it read
//! the table again, also for changes matched to it by their shared names), and a downstream crash
//! loses nothing.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::time::Duration;

use binlog_loader::{
    Ddl, Dml, DmlKind, Loader, LoaderConfig, LoaderError, Name, Row, Txn, TxnChange,
};
use e2e::MariaDb;
use mysql_async::prelude::Queryable;
use tidb_codec::ColumnValue;
use tidb_codec::decimal::Decimal;
use tidb_codec::json::Json;
use tidb_codec::time::{Duration as SqlDuration, Time, TimeKind};

use ColumnValue::{Int, Null, Text};

const DB: &str = "d";

fn row(values: &[(&str, ColumnValue)]) -> Row {
    values
        .iter()
        .map(|(name, value)| ((*name).into(), value.clone()))
        .collect()
}

fn dml(
    table: &str,
    kind: DmlKind,
    values: &[(&str, ColumnValue)],
    old: &[(&str, ColumnValue)],
) -> Dml {
    Dml {
        database: DB.into(),
        table: table.into(),
        kind,
        values: row(values),
        old_values: row(old),
    }
}

fn insert(table: &str, values: &[(&str, ColumnValue)]) -> Dml {
    dml(table, DmlKind::Insert, values, &[])
}

fn update(table: &str, old: &[(&str, ColumnValue)], new: &[(&str, ColumnValue)]) -> Dml {
    dml(table, DmlKind::Update, new, old)
}

fn delete(table: &str, values: &[(&str, ColumnValue)]) -> Dml {
    dml(table, DmlKind::Delete, values, &[])
}

fn txn(commit_ts: i64, dmls: Vec<Dml>) -> Txn {
    Txn {
        commit_ts,
        change: TxnChange::Dml(dmls),
    }
}

fn ddl_txn(commit_ts: i64, table: &str, sql: &str) -> Txn {
    Txn {
        commit_ts,
        change: TxnChange::Ddl(Ddl {
            database: DB.into(),
            table: table.into(),
            sql: sql.into(),
            should_skip: false,
        }),
    }
}

fn config(db: &MariaDb) -> LoaderConfig {
    LoaderConfig::new("127.0.0.1", db.port(), "root", "")
}

/// Pushes `txns` and waits (60 s at most) until all of them are applied.
async fn apply(loader: &Loader, txns: Vec<Txn>) {
    let target = loader.status().applied.txns + txns.len() as u64;
    for t in txns {
        loader.push(t).await.unwrap();
    }
    wait_applied(loader, target).await;
}

async fn wait_applied(loader: &Loader, txns: u64) {
    let mut applied = loader.applied();
    let reached = tokio::time::timeout(
        Duration::from_secs(60),
        applied.wait_for(|p| p.txns >= txns),
    )
    .await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "{txns} txns not applied within 60 s; status {:?}",
        loader.status()
    );
}

fn query(db: &MariaDb, sql: &str) -> String {
    db.query(sql).unwrap()
}

/// Creates database `d` through the loader (CREATE DATABASE runs without `USE d`).
async fn create_db(loader: &Loader, tables: &[&str]) {
    let mut txns = vec![Txn {
        commit_ts: 1,
        change: TxnChange::Ddl(Ddl {
            database: DB.into(),
            table: String::new(),
            sql: "CREATE DATABASE d".into(),
            should_skip: false,
        }),
    }];
    for (i, sql) in tables.iter().enumerate() {
        txns.push(ddl_txn(2 + i as i64, "", sql));
    }
    apply(loader, txns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_every_column_type_and_key_shape() {
    let db = MariaDb::start().unwrap();
    let mut cfg = config(&db);
    // Session settings as a drainer passes them; TIMESTAMPs still land as UTC (checked below
    // through UNIX_TIMESTAMP) although `time_zone` names another zone.
    cfg.sql_mode = Some("STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES".into());
    cfg.params = vec![
        ("time_zone".into(), "+08:00".into()),
        ("lock_wait_timeout".into(), "30".into()),
    ];
    let loader = Loader::connect(cfg).await.unwrap();
    create_db(
        &loader,
        &[
            "CREATE TABLE all_types (id BIGINT PRIMARY KEY, i8 TINYINT, u8 TINYINT UNSIGNED, \
             i64 BIGINT, u64 BIGINT UNSIGNED, f FLOAT, dbl DOUBLE, dcm DECIMAL(20,6), dt DATE, \
             dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(2), yr YEAR, s VARCHAR(64), \
             b VARBINARY(16), bl BLOB, e ENUM('small','medium','large'), st SET('a','b','c'), \
             bt BIT(10), j JSON, g BIGINT AS (id * 2) VIRTUAL)",
            "CREATE TABLE composite (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))",
            "CREATE TABLE uniq (u INT NULL, w VARCHAR(10), v INT, UNIQUE KEY uk (u))",
            "CREATE TABLE nokey (a INT, b VARCHAR(10))",
        ],
    )
    .await;

    let time = |text: &str, kind, fsp| ColumnValue::Time(Time::parse(text, kind, fsp).unwrap());
    let dec = |text: &str| ColumnValue::Decimal(Decimal::parse(text).unwrap());
    let dur = |text: &str| ColumnValue::Duration(SqlDuration::parse(text, 2).unwrap());
    let json = |text: &str| ColumnValue::Json(Json::parse_text(text).unwrap());
    let low = [
        ("id", Int(1)),
        ("i8", Int(-128)),
        ("u8", ColumnValue::Uint(0)),
        ("i64", Int(i64::MIN)),
        ("u64", ColumnValue::Uint(0)),
        ("f", ColumnValue::Float(-1.5)),
        ("dbl", ColumnValue::Double(-2.25e-300)),
        ("dcm", dec("-99999999999999.999999")),
        ("dt", time("1000-01-01", TimeKind::Date, 0)),
        (
            "dtm",
            time("1000-01-01 00:00:00.000001", TimeKind::Datetime, 6),
        ),
        (
            "ts",
            time("1970-01-01 00:00:01.250", TimeKind::Timestamp, 3),
        ),
        ("tm", dur("-838:59:59.00")),
        ("yr", Int(1901)),
        ("s", Text(String::new())),
        ("b", ColumnValue::Bytes(vec![0])),
        ("bl", ColumnValue::Bytes(Vec::new())),
        (
            "e",
            ColumnValue::Enum {
                index: 1,
                name: "small".into(),
            },
        ),
        (
            "st",
            ColumnValue::Set {
                bits: 0,
                names: String::new(),
            },
        ),
        ("bt", ColumnValue::Bit { value: 0, width: 2 }),
        ("j", json("null")),
    ];
    let high = [
        ("id", Int(2)),
        ("i8", Int(127)),
        ("u8", ColumnValue::Uint(255)),
        ("i64", Int(i64::MAX)),
        ("u64", ColumnValue::Uint(u64::MAX)),
        ("f", ColumnValue::Float(3.25e38)),
        ("dbl", ColumnValue::Double(1.7976931348623157e308)),
        ("dcm", dec("99999999999999.999999")),
        ("dt", time("9999-12-31", TimeKind::Date, 0)),
        (
            "dtm",
            time("9999-12-31 23:59:59.999999", TimeKind::Datetime, 6),
        ),
        (
            "ts",
            time("2038-01-19 03:14:07.999", TimeKind::Timestamp, 3),
        ),
        ("tm", dur("838:59:59.00")),
        ("yr", Int(2155)),
        ("s", Text("it's `q` ü \"x\"".into())),
        ("b", ColumnValue::Bytes(vec![0xff, 0x00, 0x27, 0x5c])),
        ("bl", ColumnValue::Bytes((0..=255u8).collect())),
        (
            "e",
            ColumnValue::Enum {
                index: 3,
                name: "large".into(),
            },
        ),
        (
            "st",
            ColumnValue::Set {
                bits: 5,
                names: "a,c".into(),
            },
        ),
        (
            "bt",
            ColumnValue::Bit {
                value: 1023,
                width: 2,
            },
        ),
        ("j", json(r#"{"a":[1,2.5,"x"],"b":null}"#)),
        // A value for the generated column: dropped, the downstream computes it.
        ("g", Int(-1)),
    ];
    let nulls: Vec<(&str, ColumnValue)> = low
        .iter()
        .map(|(name, _)| (*name, if *name == "id" { Int(3) } else { Null }))
        .collect();
    let mut low_updated = low.to_vec();
    low_updated[13] = ("s", Text("updated".into()));
    low_updated[4] = ("u64", ColumnValue::Uint(42));
    apply(
        &loader,
        vec![
            txn(
                10,
                vec![insert("all_types", &low), insert("all_types", &high)],
            ),
            txn(
                11,
                vec![
                    insert("all_types", &nulls),
                    insert("all_types", &[("id", Int(4))]),
                ],
            ),
            txn(12, vec![update("all_types", &low, &low_updated)]),
            txn(13, vec![delete("all_types", &[("id", Int(4))])]),
            // Composite primary key: insert, update in place, move the key, delete.
            txn(
                20,
                vec![
                    insert(
                        "composite",
                        &[("a", Int(1)), ("b", Text("x".into())), ("v", Int(1))],
                    ),
                    insert(
                        "composite",
                        &[("a", Int(1)), ("b", Text("y".into())), ("v", Int(2))],
                    ),
                    insert(
                        "composite",
                        &[("a", Int(2)), ("b", Text("x".into())), ("v", Int(3))],
                    ),
                ],
            ),
            txn(
                21,
                vec![
                    update(
                        "composite",
                        &[("a", Int(1)), ("b", Text("x".into())), ("v", Int(1))],
                        &[("a", Int(1)), ("b", Text("x".into())), ("v", Int(10))],
                    ),
                    update(
                        "composite",
                        &[("a", Int(1)), ("b", Text("y".into())), ("v", Int(2))],
                        &[("a", Int(5)), ("b", Text("z".into())), ("v", Int(2))],
                    ),
                    delete(
                        "composite",
                        &[("a", Int(2)), ("b", Text("x".into())), ("v", Int(3))],
                    ),
                ],
            ),
            // Unique key only, with NULLs: rows with a NULL key are matched on every column.
            txn(
                30,
                vec![
                    insert(
                        "uniq",
                        &[("u", Int(1)), ("w", Text("one".into())), ("v", Int(1))],
                    ),
                    insert(
                        "uniq",
                        &[("u", Null), ("w", Text("n1".into())), ("v", Int(2))],
                    ),
                    insert(
                        "uniq",
                        &[("u", Null), ("w", Text("n2".into())), ("v", Int(3))],
                    ),
                ],
            ),
            txn(
                31,
                vec![
                    update(
                        "uniq",
                        &[("u", Null), ("w", Text("n1".into())), ("v", Int(2))],
                        &[("u", Null), ("w", Text("n1".into())), ("v", Int(20))],
                    ),
                    delete(
                        "uniq",
                        &[("u", Null), ("w", Text("n2".into())), ("v", Int(3))],
                    ),
                    update(
                        "uniq",
                        &[("u", Int(1)), ("w", Text("one".into())), ("v", Int(1))],
                        &[("u", Int(7)), ("w", Text("seven".into())), ("v", Int(1))],
                    ),
                ],
            ),
            // No key: duplicates are real rows; a delete removes one of them.
            txn(
                40,
                vec![
                    insert("nokey", &[("a", Int(1)), ("b", Text("dup".into()))]),
                    insert("nokey", &[("a", Int(1)), ("b", Text("dup".into()))]),
                    insert("nokey", &[("a", Int(2)), ("b", Null)]),
                ],
            ),
            txn(
                41,
                vec![
                    delete("nokey", &[("a", Int(1)), ("b", Text("dup".into()))]),
                    update(
                        "nokey",
                        &[("a", Int(2)), ("b", Null)],
                        &[("a", Int(3)), ("b", Text("c".into()))],
                    ),
                ],
            ),
        ],
    )
    .await;

    assert_eq!(
        query(
            &db,
            "SELECT id, i8, u8, i64, u64, f, dbl, dcm, dt, dtm, UNIX_TIMESTAMP(ts), tm, yr, s, \
             HEX(b), MD5(bl), e, st, bt + 0, j, g FROM d.all_types ORDER BY id"
        ),
        [
            "1\t-128\t0\t-9223372036854775808\t42\t-1.5\t-2.25e-300\t-99999999999999.999999\t\
             1000-01-01\t1000-01-01 00:00:00.000001\t1.250\t-838:59:59.00\t1901\tupdated\t00\t\
             d41d8cd98f00b204e9800998ecf8427e\tsmall\t\t0\tnull\t2",
            "2\t127\t255\t9223372036854775807\t18446744073709551615\t3.25e38\t1.7976931348623157e308\t\
             99999999999999.999999\t9999-12-31\t9999-12-31 23:59:59.999999\t2147483647.999\t\
             838:59:59.00\t2155\tit's `q` ü \"x\"\tFF00275C\te2c865db4162bed963bfaa9ef6ac18f0\t\
             large\ta,c\t1023\t{\"a\": [1, 2.5, \"x\"], \"b\": null}\t4",
            "3\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\t\
             NULL\tNULL\tNULL\tNULL\tNULL\t6",
            "",
        ]
        .join("\n")
    );
    assert_eq!(
        query(&db, "SELECT a, b, v FROM d.composite ORDER BY a, b"),
        "1\tx\t10\n5\tz\t2\n"
    );
    assert_eq!(
        query(&db, "SELECT u, w, v FROM d.uniq ORDER BY w"),
        "NULL\tn1\t20\n7\tseven\t1\n"
    );
    assert_eq!(
        query(&db, "SELECT a, b FROM d.nokey ORDER BY a"),
        "1\tdup\n3\tc\n"
    );
    assert_eq!(loader.status().applied.commit_ts, 41);
    loader.close().await.unwrap();

    // The bulk baseline writes the same way the benchmark will use it.
    query(
        &db,
        "CREATE TABLE d.bulk (id INT PRIMARY KEY, s VARCHAR(20))",
    );
    let rows: Vec<Vec<ColumnValue>> = (0..1000)
        .map(|i| vec![Int(i), Text(format!("row {i}"))])
        .collect();
    binlog_loader::bulk::insert_rows(
        config(&db).connection_opts(),
        DB,
        "bulk",
        &["id".to_string(), "s".to_string()],
        rows,
        4,
        50,
    )
    .await
    .unwrap();
    assert_eq!(
        query(&db, "SELECT COUNT(*), SUM(id), MAX(s) FROM d.bulk"),
        "1000\t499500\trow 999\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_changes_end_in_the_last_writers_values() {
    let db = MariaDb::start().unwrap();
    let mut cfg = config(&db);
    cfg.worker_count = 16;
    cfg.batch_size = 4;
    let loader = Loader::connect(cfg).await.unwrap();
    create_db(
        &loader,
        &[
            "CREATE TABLE counter (id INT PRIMARY KEY, v INT)",
            "CREATE TABLE moving (id INT PRIMARY KEY, v INT)",
            "CREATE TABLE swap (id INT PRIMARY KEY, u INT, UNIQUE KEY uk (u))",
            "CREATE TABLE filler (id INT PRIMARY KEY)",
        ],
    )
    .await;

    let mut txns = vec![txn(
        10,
        (0..10)
            .map(|id| insert("counter", &[("id", Int(id)), ("v", Int(0))]))
            .chain([insert("moving", &[("id", Int(0)), ("v", Int(0))])])
            .chain((1..=3).map(|id| insert("swap", &[("id", Int(id)), ("u", Int(id))])))
            .collect(),
    )];
    let mut counters = [0i64; 10];
    let mut swap = [1i64, 2, 3];
    for t in 1..=300i64 {
        let mut dmls = Vec::new();
        // Two counters per txn; each ends with the value of the last txn that wrote it.
        let first = t % 10;
        let second = (t * 3 + 1) % 10;
        let ids = if second == first {
            vec![first]
        } else {
            vec![first, second]
        };
        for id in ids {
            let idx = id as usize;
            dmls.push(update(
                "counter",
                &[("id", Int(id)), ("v", Int(counters[idx]))],
                &[("id", Int(id)), ("v", Int(t))],
            ));
            counters[idx] = t;
        }
        // The row of `moving` changes its primary key every txn: id t-1 → t.
        dmls.push(update(
            "moving",
            &[("id", Int(t - 1)), ("v", Int(t - 1))],
            &[("id", Int(t)), ("v", Int(t))],
        ));
        // Rotate the unique values of `swap` through a free value, as an application would.
        if t % 3 == 0 {
            let (a, b) = ((t / 3 % 3) as usize, ((t / 3 + 1) % 3) as usize);
            let ids = [a as i64 + 1, b as i64 + 1];
            dmls.push(update(
                "swap",
                &[("id", Int(ids[0])), ("u", Int(swap[a]))],
                &[("id", Int(ids[0])), ("u", Int(0))],
            ));
            dmls.push(update(
                "swap",
                &[("id", Int(ids[1])), ("u", Int(swap[b]))],
                &[("id", Int(ids[1])), ("u", Int(swap[a]))],
            ));
            dmls.push(update(
                "swap",
                &[("id", Int(ids[0])), ("u", Int(0))],
                &[("id", Int(ids[0])), ("u", Int(swap[b]))],
            ));
            swap.swap(a, b);
        }
        dmls.push(insert("filler", &[("id", Int(t))]));
        txns.push(txn(10 + t, dmls));
    }
    apply(&loader, txns).await;

    let expected_counters: String = counters
        .iter()
        .enumerate()
        .map(|(id, v)| format!("{id}\t{v}\n"))
        .collect();
    assert_eq!(
        query(&db, "SELECT id, v FROM d.counter ORDER BY id"),
        expected_counters
    );
    assert_eq!(query(&db, "SELECT id, v FROM d.moving"), "300\t300\n");
    let expected_swap: String = swap
        .iter()
        .enumerate()
        .map(|(i, u)| format!("{}\t{u}\n", i + 1))
        .collect();
    assert_eq!(
        query(&db, "SELECT id, u FROM d.swap ORDER BY id"),
        expected_swap
    );
    assert_eq!(query(&db, "SELECT COUNT(*) FROM d.filler"), "300\n");
    loader.close().await.unwrap();
}

/// Runs one upstream transaction (5 inserts, an update, 5 inserts) while another connection
/// holds a lock on one of its later rows, and returns how many of its rows other sessions can
/// see once the loader is blocked on that lock (waiting up to 10 s for any to show). A loader
/// that keeps the transaction whole shows none; one that splits it shows the rows it already
/// committed.
async fn rows_visible_while_blocked(dispatch: bool) -> u64 {
    let db = MariaDb::start().unwrap();
    let mut cfg = config(&db);
    cfg.enable_dispatch = dispatch;
    cfg.worker_count = 4;
    cfg.batch_size = 2;
    let loader = Loader::connect(cfg.clone()).await.unwrap();
    create_db(
        &loader,
        &["CREATE TABLE acct (id INT PRIMARY KEY, txn INT, v INT)"],
    )
    .await;
    apply(
        &loader,
        vec![txn(
            10,
            vec![insert(
                "acct",
                &[("id", Int(0)), ("txn", Int(0)), ("v", Int(0))],
            )],
        )],
    )
    .await;

    let mut holder = mysql_async::Conn::new(cfg.connection_opts()).await.unwrap();
    holder.query_drop("BEGIN").await.unwrap();
    holder
        .query_drop("INSERT INTO d.acct VALUES (9, -1, -1)")
        .await
        .unwrap();

    let mut dmls: Vec<Dml> = (1..=5)
        .map(|id| insert("acct", &[("id", Int(id)), ("txn", Int(1)), ("v", Int(0))]))
        .collect();
    dmls.push(update(
        "acct",
        &[("id", Int(0)), ("txn", Int(0)), ("v", Int(0))],
        &[("id", Int(0)), ("txn", Int(1)), ("v", Int(1))],
    ));
    dmls.extend(
        (6..=10).map(|id| insert("acct", &[("id", Int(id)), ("txn", Int(1)), ("v", Int(0))])),
    );
    let target = loader.status().applied.txns + 1;
    loader.push(txn(11, dmls)).await.unwrap();

    let blocked = poll_open_txns(
        &db,
        "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
        |waiting| (waiting != "0\n").then_some(()),
    )
    .await;
    assert!(
        blocked.is_ok(),
        "the loader never waited for the held row lock"
    );
    let mut visible = 0;
    e2e::wait_until(Duration::from_secs(10), || {
        visible = query(&db, "SELECT COUNT(*) FROM d.acct WHERE txn = 1")
            .trim()
            .parse()
            .unwrap();
        visible > 0
    });
    // Not blocked any more: the loader finishes the transaction.
    holder.query_drop("ROLLBACK").await.unwrap();
    wait_applied(&loader, target).await;
    assert_eq!(
        query(&db, "SELECT COUNT(*), SUM(v) FROM d.acct WHERE txn = 1"),
        "11\t1\n"
    );
    loader.close().await.unwrap();
    visible
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_dispatch_applies_each_upstream_txn_as_one_downstream_txn() {
    assert_eq!(
        rows_visible_while_blocked(false).await,
        0,
        "part of the transaction was committed on its own"
    );
    // The same probe sees the split when dispatch is on (4 workers, batches of 2), so it can
    // tell the difference.
    assert!(rows_visible_while_blocked(true).await > 0);
}

/// The inserts of rows `ids` into `d.parts` (id, v).
fn part(commit_ts: i64, ids: std::ops::Range<i64>) -> Txn {
    let dmls = ids
        .map(|id| insert("parts", &[("id", Int(id)), ("v", Int(id * 10))]))
        .collect();
    txn(commit_ts, dmls)
}

/// Reads `information_schema.innodb_trx` with `sql` until `found` takes the answer, 30 s at
/// most; the last answer when it never does. Slower than every 100 ms: the server refreshes its
/// snapshot of open transactions only when nobody read it for that long.
async fn poll_open_txns<T>(
    db: &MariaDb,
    sql: &str,
    mut found: impl FnMut(&str) -> Option<T>,
) -> Result<T, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = query(db, sql);
        if let Some(found) = found(&answer) {
            return Ok(found);
        }
        if std::time::Instant::now() >= deadline {
            return Err(answer);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits (30 s at most) until the loader's open downstream transaction changed `rows` rows,
/// i.e. the parts pushed so far ran, and returns its connection id. InnoDB's own transactions
/// (thread id 0, e.g. the persistent statistics of a new table) are not the loader's.
async fn wait_open_txn(db: &MariaDb, loader: &Loader, rows: u64) -> u64 {
    let open = poll_open_txns(
        db,
        "SELECT trx_mysql_thread_id, trx_rows_modified FROM information_schema.innodb_trx \
         WHERE trx_mysql_thread_id > 0",
        |open| {
            open.lines().find_map(|line| {
                let (id, modified) = line.split_once('\t')?;
                (modified.trim().parse::<u64>().ok()? >= rows).then(|| id.parse::<u64>().ok())?
            })
        },
    )
    .await;
    open.unwrap_or_else(|open| {
        panic!(
            "no open transaction with {rows} changed rows; open: {open:?}; rows {:?}; loader {:?}",
            query(db, "SELECT COUNT(*) FROM d.parts"),
            loader.status()
        )
    })
}

async fn parts_loader(db: &MariaDb) -> Loader {
    let mut cfg = config(db);
    cfg.enable_dispatch = false;
    let loader = Loader::connect(cfg).await.unwrap();
    create_db(&loader, &["CREATE TABLE parts (id INT PRIMARY KEY, v INT)"]).await;
    loader
}

/// A transaction too big to hold whole, pushed in parts without dispatch: the parts that ran
/// wait in one open downstream transaction, invisible to others and no longer counted in the
/// loader's buffer, and commit with the last part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dispatch_parts_of_a_txn_run_in_one_downstream_txn() {
    let db = MariaDb::start().unwrap();
    let loader = parts_loader(&db).await;
    let before = loader.status().applied.txns;

    loader.push_unfinished(part(100, 0..3)).await.unwrap();
    loader.push_unfinished(part(100, 3..6)).await.unwrap();
    wait_open_txn(&db, &loader, 6).await;
    assert_eq!(query(&db, "SELECT COUNT(*) FROM d.parts"), "0\n");
    let status = loader.status();
    assert_eq!(
        status.applied.txns, before,
        "parts reported before their commit"
    );
    assert_eq!(
        status.queued_bytes, 0,
        "parts that ran still held the budget"
    );

    loader.push(part(100, 6..9)).await.unwrap();
    wait_applied(&loader, before + 3).await;
    assert_eq!(
        query(&db, "SELECT COUNT(*), SUM(v) FROM d.parts"),
        "9\t360\n"
    );
    assert_eq!(loader.status().applied.commit_ts, 100);
    loader.close().await.unwrap();
}

/// A connection lost between two parts: the loader stops with an error naming the transaction
/// (it cannot replay parts it freed) and nothing of the transaction is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dispatch_a_txn_in_parts_failing_part_way_commits_nothing() {
    let db = MariaDb::start().unwrap();
    let loader = parts_loader(&db).await;
    loader.push_unfinished(part(200, 0..3)).await.unwrap();
    let connection = wait_open_txn(&db, &loader, 3).await;
    query(&db, &format!("KILL {connection}"));
    // The push may already see the loader stopped.
    let _ = loader.push(part(200, 3..6)).await;
    let err = loader.close().await.unwrap_err();
    assert!(
        matches!(err, LoaderError::PartialTxn { commit_ts: 200, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("applied again from the checkpoint"),
        "{err}"
    );
    assert_eq!(query(&db, "SELECT COUNT(*) FROM d.parts"), "0\n");
}

/// A loader closed between the parts of a transaction (its pusher failed part way) stops with
/// an error instead of waiting for a last part that never comes, and commits nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dispatch_closing_between_parts_rolls_the_parts_back() {
    let db = MariaDb::start().unwrap();
    let loader = parts_loader(&db).await;
    loader.push_unfinished(part(300, 0..3)).await.unwrap();
    wait_open_txn(&db, &loader, 3).await;
    let closed = tokio::time::timeout(Duration::from_secs(30), loader.close())
        .await
        .expect("close waited for a part that never comes");
    let err = closed.unwrap_err();
    assert!(err.to_string().contains("txn commit ts 300"), "{err}");
    assert_eq!(query(&db, "SELECT COUNT(*) FROM d.parts"), "0\n");
}

/// Inserts, updates (one moving its primary key, one changing a unique value) and deletes.
fn replay_txns() -> Vec<Txn> {
    let r = |id: i64, u: i64, s: &str| [("id", Int(id)), ("u", Int(u)), ("s", Text(s.into()))];
    vec![
        txn(
            10,
            vec![
                insert("t", &r(1, 1, "a")),
                insert("t", &r(2, 2, "b")),
                insert("t", &r(3, 3, "c")),
            ],
        ),
        txn(11, vec![update("t", &r(1, 1, "a"), &r(10, 1, "a2"))]),
        txn(
            12,
            vec![
                update("t", &r(2, 2, "b"), &r(2, 20, "b2")),
                delete("t", &r(3, 3, "c")),
            ],
        ),
        txn(
            13,
            vec![
                insert("t", &r(3, 30, "c3")),
                update("t", &r(10, 1, "a2"), &r(11, 1, "a3")),
            ],
        ),
        txn(
            14,
            vec![delete("t", &r(2, 20, "b2")), insert("t", &r(4, 2, "d"))],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_makes_replays_idempotent() {
    let db = MariaDb::start().unwrap();
    let loader = Loader::connect(config(&db)).await.unwrap();
    create_db(
        &loader,
        &["CREATE TABLE t (id INT PRIMARY KEY, u INT, s VARCHAR(8), UNIQUE KEY uk (u))"],
    )
    .await;
    apply(&loader, replay_txns()).await;
    let expected = "3\t30\tc3\n4\t2\td\n11\t1\ta3\n";
    let rows = || query(&db, "SELECT id, u, s FROM d.t ORDER BY id");
    assert_eq!(rows(), expected);

    // Switched on at run time, as the drainer does after a restart: replaying everything, or
    // any suffix, changes nothing.
    loader.set_safe_mode(true);
    apply(&loader, replay_txns()).await;
    assert_eq!(rows(), expected);
    apply(&loader, replay_txns().split_off(2)).await;
    assert_eq!(rows(), expected);
    loader.close().await.unwrap();

    // A new loader started in safe mode replays from an older point the same way.
    let mut cfg = config(&db);
    cfg.safe_mode = true;
    let restarted = Loader::connect(cfg).await.unwrap();
    assert!(restarted.status().safe_mode);
    apply(&restarted, replay_txns().split_off(1)).await;
    assert_eq!(rows(), expected);
    restarted.close().await.unwrap();
}

/// Changes that share their names (as the drainer's do) are matched to their table by pointer;
/// a DDL must still make the loader read the table again: here a generated column it must leave
/// out of the next insert, or the downstream refuses the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_refreshes_the_table_of_changes_sharing_their_names() {
    let db = MariaDb::start().unwrap();
    let loader = Loader::connect(config(&db)).await.unwrap();
    create_db(&loader, &["CREATE TABLE t (id INT PRIMARY KEY, v INT)"]).await;
    let (database, table): (Name, Name) = (DB.into(), "t".into());
    let (id, v, g): (Name, Name, Name) = ("id".into(), "v".into(), "g".into());
    let shared = |values: Vec<(&Name, ColumnValue)>| Dml {
        database: database.clone(),
        table: table.clone(),
        kind: DmlKind::Insert,
        values: values.into_iter().map(|(n, v)| (n.clone(), v)).collect(),
        old_values: Row::default(),
    };
    apply(
        &loader,
        vec![
            txn(10, vec![shared(vec![(&id, Int(1)), (&v, Int(10))])]),
            ddl_txn(11, "t", "ALTER TABLE t ADD COLUMN g INT AS (v + 1) VIRTUAL"),
            txn(
                12,
                vec![shared(vec![(&g, Int(-1)), (&id, Int(2)), (&v, Int(20))])],
            ),
        ],
    )
    .await;
    assert_eq!(
        query(&db, "SELECT id, v, g FROM d.t ORDER BY id"),
        "1\t10\t11\n2\t20\t21\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_is_a_barrier_already_done_errors_pass_and_bad_ddl_stops_the_loader() {
    let db = MariaDb::start().unwrap();
    let mut cfg = config(&db);
    cfg.worker_count = 4;
    cfg.batch_size = 3;
    let loader = Loader::connect(cfg).await.unwrap();
    create_db(&loader, &["CREATE TABLE t (id INT PRIMARY KEY, a INT)"]).await;

    let mut txns = Vec::new();
    // Rows written with column `a`, which the DDL right after drops: run before it, they
    // succeed; run after it, they fail (unknown column).
    for id in 0..60 {
        txns.push(txn(
            10 + id,
            vec![insert("t", &[("id", Int(id)), ("a", Int(id))])],
        ));
    }
    txns.push(ddl_txn(
        100,
        "t",
        "ALTER TABLE t DROP COLUMN a, ADD COLUMN b VARCHAR(8) NOT NULL DEFAULT 'x'",
    ));
    // Rows with the new column: they need the DDL done first.
    for id in 60..120 {
        txns.push(txn(
            101 + id,
            vec![insert(
                "t",
                &[("id", Int(id)), ("b", Text(format!("b{id}")))],
            )],
        ));
    }
    txns.push(txn(
        300,
        vec![update(
            "t",
            &[("id", Int(0)), ("b", Text("x".into()))],
            &[("id", Int(0)), ("b", Text("zero".into()))],
        )],
    ));
    // Already done: table exists, duplicate column, drop of a missing column.
    txns.push(ddl_txn(301, "t", "CREATE TABLE t (id INT PRIMARY KEY)"));
    txns.push(ddl_txn(302, "t", "ALTER TABLE t ADD COLUMN b INT"));
    txns.push(ddl_txn(303, "t", "ALTER TABLE t DROP COLUMN a"));
    // Skipped: not run, only forgets the cached table.
    txns.push(Txn {
        commit_ts: 304,
        change: TxnChange::Ddl(Ddl {
            database: DB.into(),
            table: "t".into(),
            sql: "DROP TABLE t".into(),
            should_skip: true,
        }),
    });
    txns.push(txn(
        305,
        vec![insert(
            "t",
            &[("id", Int(1000)), ("b", Text("last".into()))],
        )],
    ));
    apply(&loader, txns).await;
    assert_eq!(
        query(
            &db,
            "SELECT COUNT(*), SUM(b = 'x'), MIN(b), MAX(id) FROM d.t"
        ),
        "121\t59\tb100\t1000\n"
    );
    assert_eq!(
        query(&db, "SELECT b FROM d.t WHERE id IN (0, 1000) ORDER BY id"),
        "zero\nlast\n"
    );

    let before = loader.status().applied;
    loader
        .push(ddl_txn(777, "t", "ALTER TABLE t ADD COLUMN ("))
        .await
        .unwrap();
    // May already be refused: the loader stops as soon as the DDL fails.
    let _ = loader
        .push(txn(
            778,
            vec![insert(
                "t",
                &[("id", Int(2000)), ("b", Text("never".into()))],
            )],
        ))
        .await;
    let err = loader.close().await.unwrap_err();
    match &err {
        LoaderError::Ddl {
            commit_ts,
            sql,
            message,
        } => {
            assert_eq!(*commit_ts, 777);
            assert_eq!(sql, "ALTER TABLE t ADD COLUMN (");
            assert!(message.contains("1064"), "{message}");
        }
        other => panic!("expected a DDL error, got {other:?}"),
    }
    assert!(err.to_string().contains("777") && err.to_string().contains("ADD COLUMN ("));
    assert_eq!(
        loader.status().applied,
        before,
        "nothing after the failed DDL is reported"
    );
    assert_eq!(
        query(&db, "SELECT COUNT(*) FROM d.t WHERE id = 2000"),
        "0\n"
    );
    assert!(matches!(
        loader.push(txn(779, Vec::new())).await,
        Err(LoaderError::Ddl { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_crash_loses_nothing_and_reports_only_committed_txns() {
    let mut db = MariaDb::start().unwrap();
    let mut cfg = config(&db);
    cfg.worker_count = 8;
    cfg.batch_size = 10;
    let loader = Loader::connect(cfg).await.unwrap();
    create_db(
        &loader,
        &[
            "CREATE TABLE c (id INT PRIMARY KEY, v INT)",
            "CREATE TABLE log (id INT PRIMARY KEY, t INT)",
        ],
    )
    .await;
    apply(
        &loader,
        vec![txn(
            9,
            (0..50)
                .map(|id| insert("c", &[("id", Int(id)), ("v", Int(0))]))
                .collect(),
        )],
    )
    .await;
    let base = loader.status().applied.txns;

    // Each txn logs a row and moves one counter; 2000 txns, 1500 pushed before the crash.
    let mut counters = [0i64; 50];
    let txns: Vec<Txn> = (1..=2000i64)
        .map(|t| {
            let id = (t * 7 % 50) as usize;
            let old = counters[id];
            counters[id] = t;
            txn(
                100 + t,
                vec![
                    insert("log", &[("id", Int(t)), ("t", Int(t))]),
                    update(
                        "c",
                        &[("id", Int(id as i64)), ("v", Int(old))],
                        &[("id", Int(id as i64)), ("v", Int(t))],
                    ),
                ],
            )
        })
        .collect();
    let mut txns = txns.into_iter();
    for t in txns.by_ref().take(1500) {
        loader.push(t).await.unwrap();
    }
    wait_applied(&loader, base + 100).await;
    db.kill();
    // Whatever is reported now was committed before the crash.
    let reported = loader.status().applied.txns - base;
    assert!(reported < 1500, "the crash came too late to test anything");
    let retrying = e2e::wait_until(Duration::from_secs(30), || {
        loader.status().retrying.is_some()
    });
    assert!(
        retrying,
        "the loader shows no retrying state while the downstream is down"
    );
    for t in txns {
        loader.push(t).await.unwrap();
    }
    db.restart().unwrap();
    assert_eq!(
        query(
            &db,
            &format!("SELECT COUNT(*) FROM d.log WHERE id <= {reported}")
        ),
        format!("{reported}\n"),
        "a txn reported applied is missing after the crash"
    );
    wait_applied(&loader, base + 2000).await;
    assert!(loader.status().retrying.is_none());
    assert_eq!(
        query(
            &db,
            "SELECT COUNT(*), MIN(id), MAX(id), SUM(id = t) FROM d.log"
        ),
        "2000\t1\t2000\t2000\n"
    );
    let expected: String = counters
        .iter()
        .enumerate()
        .map(|(id, v)| format!("{id}\t{v}\n"))
        .collect();
    assert_eq!(query(&db, "SELECT id, v FROM d.c ORDER BY id"), expected);
    loader.close().await.unwrap();
}
