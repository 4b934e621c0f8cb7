//! `drainer-latency`: insert transactions at a steady moderate rate, with timestamps from PD as
//! TiDB takes them, while the drainer runs; per transaction, the time from its commit binlog
//! being acknowledged until every one of its rows is visible downstream.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use e2e::tidb::sim::rng::SimRng;
use mysql_async::prelude::Queryable;

use super::CpuMark;
use super::data::{Timestamps, TxnWriter};
use super::world::{CATCH_UP_LIMIT, DrainerWorld};
use crate::{Samples, Window, count, figure_line, ms, print_section, target_line};

/// Transactions per second offered.
const RATE: f64 = 200.0;
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(15);
/// Load goes on this long after the measured window: the newest transaction of a stream waits
/// for the other pump's next binlog (a fake one every second when it has no traffic), which says
/// more about the end of the load than about the drainer.
const TAIL: Duration = Duration::from_secs(1);
/// Rows per transaction: 1 to 3.
const ROWS_PER_TXN: Range<usize> = 1..4;
/// How often the downstream is looked at: the resolution of the figures.
const POLL: Duration = Duration::from_millis(5);
/// How long the rows of the last transactions may take to show up after the run.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
const TARGET_P99: Duration = Duration::from_secs(1);

/// A row by (bench table index, key number).
type RowKey = (usize, u64);

/// A transaction written during the run.
struct Committed {
    started: Instant,
    acknowledged: Instant,
    rows: Vec<RowKey>,
}

pub(super) async fn bench_latency(
    world: &mut DrainerWorld,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    let tables = world.writer.tables.clone();
    // Tables with an integer handle: their new rows are found by a primary-key range scan.
    let watched: Vec<usize> = (0..tables.len())
        .filter(|&t| tables[t].int_handle().is_some())
        .collect();
    let names: Vec<String> = watched.iter().map(|&t| tables[t].qualified()).collect();
    println!(
        "\n== drainer-latency: {RATE} transactions/s of {}–{} inserted rows over {}, PD \
         timestamps, {} s warm-up + {} s measured",
        ROWS_PER_TXN.start,
        ROWS_PER_TXN.end - 1,
        names.join(", "),
        WARM_UP.as_secs(),
        MEASURE.as_secs()
    );
    if world.drainer.is_none() {
        world.start_drainer()?;
    }
    let pid = world.drainer_pid()?;
    let first_keys: HashMap<usize, u64> =
        watched.iter().map(|&t| (t, tables[t].next_key())).collect();
    let seen: Arc<Mutex<HashMap<RowKey, Instant>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch_rows(
        world.downstream_conn().await?,
        world.writer.clone(),
        first_keys,
        seen.clone(),
        stopped,
    ));

    // One transaction through the whole pipeline first: a drainer started just now creates the
    // tables before any row can land.
    let pd = world.world.pd.clone();
    let probe = write_txn(&world.writer, &pd, &watched, u64::MAX).await?;
    wait_visible(&seen, &probe.rows, CATCH_UP_LIMIT)
        .await
        .context("the first transaction never became visible downstream")?;

    let window = Window::starting_now(WARM_UP, MEASURE);
    let mariadb = world.downstream_pid();
    let committed: Arc<Mutex<Vec<Committed>>> = Arc::default();
    let mut writers = tokio::task::JoinSet::new();
    let mut pacer = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    let (mut from, mut to) = (None, None);
    for index in 0u64.. {
        pacer.tick().await;
        let now = Instant::now();
        if from.is_none() && now >= window.from {
            from = Some(CpuMark::take(Some(pid), mariadb)?);
        }
        if to.is_none() && now >= window.until {
            to = Some(CpuMark::take(Some(pid), mariadb)?);
        }
        if now >= window.until + TAIL {
            break;
        }
        let (writer, pd, watched, committed) = (
            world.writer.clone(),
            pd.clone(),
            watched.clone(),
            committed.clone(),
        );
        writers.spawn(async move {
            let txn = write_txn(&writer, &pd, &watched, index).await?;
            committed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(txn);
            anyhow::Ok(())
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined.context("a writer task panicked")??;
    }
    let committed = std::mem::take(&mut *committed.lock().unwrap_or_else(|e| e.into_inner()));
    let all_rows: Vec<RowKey> = committed.iter().flat_map(|c| c.rows.clone()).collect();
    wait_visible(&seen, &all_rows, SETTLE_LIMIT).await?;
    let _ = stop.send(true);
    watcher.await.context("the row watcher panicked")??;

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let (mut visible, mut written) = (Samples::default(), Samples::default());
    let mut slowest = Duration::ZERO;
    for txn in committed
        .iter()
        .filter(|c| window.contains(c.started, c.acknowledged))
    {
        let landed = txn
            .rows
            .iter()
            .filter_map(|row| seen.get(row))
            .max()
            .copied()
            .unwrap_or(txn.acknowledged);
        let latency = landed.saturating_duration_since(txn.acknowledged);
        slowest = slowest.max(latency);
        visible.latencies_us.push(micros(latency));
        written
            .latencies_us
            .push(micros(txn.acknowledged - txn.started));
    }
    let measured = visible.latencies_us.len();
    let visible = visible.summarize(&window);
    let written = written.summarize(&window);
    let cpu = match (from, to) {
        (Some(from), Some(to)) => from.describe_until(&to),
        _ => String::new(),
    };
    let lines = [
        figure_line(
            "transactions",
            format!(
                "{} measured, {:.0}/s achieved",
                count(measured as f64),
                visible.per_second
            ),
        ),
        target_line(
            "commit → visible",
            format!(
                "p50 {}  p99 {}  max {}",
                ms(visible.p50),
                ms(visible.p99),
                ms(slowest)
            ),
            visible.p99 <= TARGET_P99,
            format!("p99 ≤ {}", ms(TARGET_P99)),
        ),
        figure_line(
            "TiDB-side write",
            format!(
                "p50 {}  p99 {} (PD ts, prewrite, PD ts, commit)",
                ms(written.p50),
                ms(written.p99)
            ),
        ),
        figure_line("CPU, cores busy", cpu),
    ];
    print_section(
        summary,
        &format!(
            "drainer   latency at {RATE} txn/s, commit acknowledged → every row visible \
             downstream (polled every {} ms):",
            POLL.as_millis()
        ),
        &lines,
    );
    Ok(())
}

/// Writes one transaction of 1–3 rows over `tables` with PD timestamps.
async fn write_txn(
    writer: &TxnWriter,
    pd: &binlog_cluster::PdClient,
    tables: &[usize],
    index: u64,
) -> anyhow::Result<Committed> {
    let mut rng = SimRng::derive(0x1a7e, index);
    let rows = ROWS_PER_TXN.start + rng.index(ROWS_PER_TXN.end - ROWS_PER_TXN.start);
    let txn = writer.draw(&mut rng, rows, tables, None);
    let keys = txn
        .iter()
        .map(|(table, row)| (*table, row_key(row)))
        .collect();
    let started = Instant::now();
    let done = writer.write(Timestamps::Pd(pd), &txn).await?;
    Ok(Committed {
        started,
        acknowledged: done.acknowledged,
        rows: keys,
    })
}

/// The key number of a row of a table with an integer handle (its first column's value).
fn row_key(row: &[(i64, tidb_codec::ColumnValue)]) -> u64 {
    use tidb_codec::ColumnValue;
    row.iter()
        .find_map(|(_, value)| match value {
            ColumnValue::Int(i) => Some(*i as u64),
            ColumnValue::Uint(u) => Some(*u),
            _ => None,
        })
        .unwrap_or(0)
}

/// Waits until every row in `rows` has been seen.
async fn wait_visible(
    seen: &Mutex<HashMap<RowKey, Instant>>,
    rows: &[RowKey],
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let missing = {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            rows.iter().filter(|row| !seen.contains_key(row)).count()
        };
        if missing == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{missing} rows never became visible downstream within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Looks for new rows every [`POLL`]: per watched table, every key at or above the lowest key
/// not seen yet (a primary-key range scan), noting when each key was first seen.
async fn watch_rows(
    mut conn: mysql_async::Conn,
    writer: TxnWriter,
    first_keys: HashMap<usize, u64>,
    seen: Arc<Mutex<HashMap<RowKey, Instant>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut lowest = first_keys;
    let mut seen_above: HashMap<usize, HashSet<u64>> = HashMap::new();
    while !*stop.borrow_and_update() {
        for (&table, low) in lowest.iter_mut() {
            let bench_table = &writer.tables[table];
            let column = bench_table.int_handle().unwrap_or("id");
            let sql = format!(
                "SELECT `{column}` FROM `{}`.`{}` WHERE `{column}` >= {low}",
                bench_table.database,
                bench_table.name()
            );
            // The table may not exist yet (a drainer that just started).
            let Ok(keys) = conn.query::<u64, _>(&sql).await else {
                continue;
            };
            let now = Instant::now();
            let above = seen_above.entry(table).or_default();
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            for key in keys {
                if above.insert(key) {
                    seen.insert((table, key), now);
                }
            }
            while above.remove(low) {
                *low += 1;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
    Ok(())
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}
