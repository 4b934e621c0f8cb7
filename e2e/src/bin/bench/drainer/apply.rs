//! `drainer-apply`: a backlog of small insert transactions is written to the pumps, then a
//! drainer is started against it; the rate at which rows land downstream is compared with the
//! plain bulk loader writing the same rows into fresh tables of the same MariaDB.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use binlog_loader::{LoaderConfig, bulk};
use mysql_async::prelude::Queryable;

use super::data::{BacklogPlan, write_backlog};
use super::world::{CATCH_UP_LIMIT, DrainerWorld, query_u64};
use super::{ApplySettings, CpuMark, CpuUse};
use crate::{Memory, TsSource, count, figure_line, mib, print_section, target_line};

/// How often the downstream is looked at while the drainer applies.
const POLL: Duration = Duration::from_millis(10);
const TARGET_RATIO: f64 = 0.8;

/// One run of the bulk baseline.
struct BaselineRun {
    rows_per_sec: f64,
    cpu: CpuUse,
    statements: Statements,
}

/// What the downstream server counted: client statements (`Questions`, prepared executions
/// included), commits (`Com_commit`, explicit ones only: autocommitted statements are not
/// counted), statement preparations (`Com_stmt_prepare`: a driver whose statement cache
/// thrashes prepares again and again) and `REPLACE`s (safe mode).
#[derive(Debug, Clone, Copy, Default)]
struct Statements {
    questions: u64,
    commits: u64,
    prepares: u64,
    replaces: u64,
}

impl Statements {
    async fn read(conn: &mut mysql_async::Conn) -> anyhow::Result<Statements> {
        let rows: Vec<(String, u64)> = conn
            .query(
                "SHOW GLOBAL STATUS WHERE Variable_name IN \
                 ('Questions', 'Com_commit', 'Com_stmt_prepare', 'Com_replace')",
            )
            .await?;
        let get = |name: &str| {
            rows.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
                .with_context(|| format!("no {name} status"))
        };
        Ok(Statements {
            questions: get("Questions")?,
            commits: get("Com_commit")?,
            prepares: get("Com_stmt_prepare")?,
            replaces: get("Com_replace")?,
        })
    }

    fn since(&self, earlier: &Statements) -> Statements {
        Statements {
            questions: self.questions.saturating_sub(earlier.questions),
            commits: self.commits.saturating_sub(earlier.commits),
            prepares: self.prepares.saturating_sub(earlier.prepares),
            replaces: self.replaces.saturating_sub(earlier.replaces),
        }
    }

    /// `0.060 statements, 0.000 commits, 0.000 prepares and 0.000 REPLACEs per row`.
    fn per_row(&self, rows: u64) -> String {
        let rows = rows.max(1) as f64;
        format!(
            "{:.3} statements, {:.3} commits, {:.3} prepares and {:.3} REPLACEs per row",
            self.questions as f64 / rows,
            self.commits as f64 / rows,
            self.prepares as f64 / rows,
            self.replaces as f64 / rows
        )
    }
}

/// `drainer 14.1 µs + MariaDB 20.5 µs + bench 0.1 µs per row; 0.060 statements, …`.
fn per_row(cpu: &CpuUse, statements: &Statements, rows: u64) -> String {
    format!(
        "drainer {:.1} µs + MariaDB {:.1} µs + bench {:.1} µs per row; {}",
        cpu.micros_per(cpu.drainer, rows),
        cpu.micros_per(cpu.mariadb, rows),
        cpu.micros_per(cpu.bench, rows),
        statements.per_row(rows)
    )
}

pub(super) async fn bench_apply(
    world: &mut DrainerWorld,
    settings: ApplySettings,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        world.drainer.is_none(),
        "drainer-apply must run first in its world (it checksums and empties whole tables)"
    );
    let drainer = world.settings();
    let tables = world.writer.tables.clone();
    let plan = BacklogPlan::small_inserts(&settings, tables.len());
    let rows_per_txn = plan.rows_per_txn.clone();
    let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
    println!(
        "\n== drainer-apply: {} rows inserted in transactions of {}–{} rows over {}; drainer \
         worker-count {}, txn-batch {}",
        count(settings.rows as f64),
        rows_per_txn.start,
        rows_per_txn.end - 1,
        names.join(", "),
        drainer.worker_count,
        drainer.txn_batch
    );
    let first_keys: Vec<u64> = tables.iter().map(|t| t.next_key()).collect();
    let ts = Arc::new(TsSource::new(world.world.pd.get_ts().await?));
    let writing = Instant::now();
    let written = write_backlog(&world.writer, &ts, &plan).await?;
    let ranges: Vec<Range<u64>> = tables
        .iter()
        .zip(first_keys)
        .map(|(t, first)| first..t.next_key())
        .collect();
    println!(
        "backlog written: {} transactions, {} rows, {:.0} MiB of prewrite values in {:.1} s",
        count(written.txns as f64),
        count(written.rows as f64),
        mib(written.bytes),
        writing.elapsed().as_secs_f64()
    );

    // Each copy of the rows is checksummed and removed before the next phase, so that every
    // phase starts with the same (empty) tables in MariaDB's buffer pool.
    settle(world).await?;
    let before = bulk_baseline(world, "bulk_before", &ranges).await?;
    let before_sums = checksums(world, "bulk_before").await?;
    drop_database(world, "bulk_before").await?;
    settle(world).await?;
    let drained = drain(world, written.rows).await?;
    let drained_sums = checksums(world, "").await?;
    truncate_tables(world).await?;
    settle(world).await?;
    let after = bulk_baseline(world, "bulk_after", &ranges).await?;
    let after_sums = checksums(world, "bulk_after").await?;
    drop_database(world, "bulk_after").await?;
    anyhow::ensure!(
        drained_sums == before_sums && drained_sums == after_sums,
        "the drainer's tables differ from the baseline's copies: CHECKSUM TABLE gives {drained_sums:?} \
         for the drainer's, {before_sums:?} and {after_sums:?} for the baseline's"
    );

    let baseline = (before.rows_per_sec + after.rows_per_sec) / 2.0;
    let ratio = drained.rows_per_sec / baseline.max(1.0);
    let lines = [
        figure_line(
            "baseline rows/s",
            format!(
                "{} (mean of {} before and {} after the drainer)",
                count(baseline),
                count(before.rows_per_sec),
                count(after.rows_per_sec)
            ),
        ),
        figure_line("baseline CPU, before", before.cpu.describe()),
        figure_line("baseline CPU, after", after.cpu.describe()),
        figure_line(
            "baseline per row",
            per_row(&before.cpu, &before.statements, written.rows),
        ),
        figure_line(
            "drainer rows/s",
            format!(
                "{} ({} rows, first to last landing in {:.2} s)",
                count(drained.rows_per_sec),
                count(written.rows as f64),
                drained.seconds
            ),
        ),
        target_line(
            "ratio drainer ÷ baseline",
            format!("{ratio:.2}"),
            ratio >= TARGET_RATIO,
            format!("≥ {TARGET_RATIO}"),
        ),
        figure_line("drainer CPU", drained.cpu.describe()),
        figure_line(
            "drainer per row",
            per_row(&drained.cpu, &drained.statements, written.rows),
        ),
        figure_line(
            "drainer RSS (VmHWM/VmRSS)",
            format!(
                "{:.0} / {:.0} MiB",
                drained.memory.hwm_mib(),
                drained.memory.rss_mib()
            ),
        ),
        figure_line(
            "downstream vs baseline",
            "identical (CHECKSUM TABLE of every table and both baseline copies)".to_string(),
        ),
    ];
    print_section(
        summary,
        &format!(
            "drainer   apply {} rows (1–{} row transactions) into MariaDB; baseline: \
             loader::bulk::insert_rows, {} connections, {} rows per INSERT, fresh tables:",
            count(settings.rows as f64),
            rows_per_txn.end - 1,
            drainer.worker_count,
            drainer.txn_batch
        ),
        &lines,
    );
    Ok(())
}

/// The same rows, written by the plain bulk loader into fresh copies of the tables (created from
/// the truth's definitions) in database `database`, one table after the other.
async fn bulk_baseline(
    world: &DrainerWorld,
    database: &str,
    ranges: &[Range<u64>],
) -> anyhow::Result<BaselineRun> {
    let tables = world.writer.tables.clone();
    let mut truth = mysql_async::Conn::new(mysql_async::Opts::from_url(&world.truth.url())?)
        .await
        .context("connecting to the truth")?;
    let mut conn = world.downstream_conn().await?;
    conn.query_drop(format!("CREATE DATABASE `{database}`"))
        .await?;
    conn.query_drop(format!("USE `{database}`")).await?;
    for table in tables.iter() {
        let show = format!("SHOW CREATE TABLE `{}`.`{}`", table.database, table.name());
        let (_, create): (String, String) = truth
            .query_first(&show)
            .await?
            .with_context(|| format!("no answer to {show}"))?;
        conn.query_drop(create).await?;
    }
    drop(truth);
    let settings = world.settings();
    let opts =
        LoaderConfig::new("127.0.0.1", world.downstream.port(), "root", "").connection_opts();
    let inputs: Vec<_> = tables
        .iter()
        .zip(ranges)
        .map(|(table, keys)| {
            (
                table.name(),
                table.columns(),
                table.plain_rows(keys.clone()),
            )
        })
        .collect();
    let rows: usize = inputs.iter().map(|(_, _, rows)| rows.len()).sum();
    let mariadb = world.downstream_pid();
    let statements = Statements::read(&mut conn).await?;
    let from = CpuMark::take(None, mariadb)?;
    for (name, columns, values) in inputs {
        bulk::insert_rows(
            opts.clone(),
            database,
            name,
            &columns,
            values,
            settings.worker_count,
            settings.txn_batch,
        )
        .await
        .with_context(|| format!("bulk baseline into {database}.{name}"))?;
    }
    let to = CpuMark::take(None, mariadb)?;
    let statements = Statements::read(&mut conn).await?.since(&statements);
    let cpu = from.until(&to);
    println!(
        "baseline into {database}: {} rows in {:.2} s",
        count(rows as f64),
        cpu.seconds
    );
    Ok(BaselineRun {
        rows_per_sec: rows as f64 / cpu.seconds,
        cpu,
        statements,
    })
}

struct Drained {
    rows_per_sec: f64,
    seconds: f64,
    cpu: CpuUse,
    statements: Statements,
    memory: Memory,
}

/// Starts the drainer and times the rows landing: from the first row visible in any benchmark
/// table until the server counted `rows` more written rows than before the start (the checkpoint
/// table adds a handful, so the end is confirmed by counting the tables).
async fn drain(world: &mut DrainerWorld, rows: u64) -> anyhow::Result<Drained> {
    let mut conn = world.downstream_conn().await?;
    let inserted_before = rows_inserted(&mut conn).await?;
    let pid = world.start_drainer()?;
    let mariadb = world.downstream_pid();
    let tables = world.writer.tables.clone();
    let any_row = format!(
        "SELECT {}",
        tables
            .iter()
            .map(|t| format!("EXISTS(SELECT 1 FROM `{}`.`{}`)", t.database, t.name()))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    let every_row = format!(
        "SELECT {}",
        tables
            .iter()
            .map(|t| format!("(SELECT COUNT(*) FROM `{}`.`{}`)", t.database, t.name()))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    let deadline = Instant::now() + CATCH_UP_LIMIT;
    let overdue = |what: &str| {
        anyhow::anyhow!(
            "{what} within {} s; drainer log:\n{}",
            CATCH_UP_LIMIT.as_secs(),
            world
                .drainer
                .as_ref()
                .map(|d| d.log_tail())
                .unwrap_or_default()
        )
    };
    // The tables do not exist until the drainer ran the setup DDL: errors mean "not yet".
    while !matches!(conn.query_first::<u64, _>(&any_row).await, Ok(Some(1))) {
        if Instant::now() >= deadline {
            return Err(overdue("no row landed"));
        }
        tokio::time::sleep(POLL).await;
    }
    let from = CpuMark::take(Some(pid), mariadb)?;
    let started = Instant::now();
    let statements = Statements::read(&mut conn).await?;
    let target = inserted_before + rows;
    loop {
        let inserted = rows_inserted(&mut conn).await?;
        if inserted >= target {
            break;
        }
        if Instant::now() >= deadline {
            return Err(overdue("not every row landed"));
        }
        let landed = inserted.saturating_sub(inserted_before);
        tokio::time::sleep(next_look(started.elapsed(), landed, target - inserted)).await;
    }
    let mut to = CpuMark::take(Some(pid), mariadb)?;
    while query_u64(&mut conn, &every_row).await? < rows {
        if Instant::now() >= deadline {
            return Err(overdue("not every row landed"));
        }
        tokio::time::sleep(POLL).await;
        to = CpuMark::take(Some(pid), mariadb)?;
    }
    let statements = Statements::read(&mut conn).await?.since(&statements);
    let cpu = from.until(&to);
    Ok(Drained {
        rows_per_sec: rows as f64 / cpu.seconds,
        seconds: cpu.seconds,
        cpu,
        statements,
        memory: Memory::of(pid)?,
    })
}

/// How long to wait before looking at the downstream again, `landed` rows in after `elapsed`
/// and `left` to go: half the time the rest should take at the rate so far, at least [`POLL`].
/// Each look is a `SHOW GLOBAL STATUS`, about 0.2 ms of MariaDB's CPU: looking every 10 ms for
/// the whole phase cost the drainer's side ~0.2 µs per row that the baseline's side, which
/// does not poll, never paid. Halving the wait keeps the end found within [`POLL`].
fn next_look(elapsed: Duration, landed: u64, left: u64) -> Duration {
    if landed == 0 {
        return POLL;
    }
    let rest = elapsed.mul_f64(left as f64 / landed as f64);
    (rest / 2).clamp(POLL, Duration::from_secs(1))
}

/// Longest wait for the downstream to write out its dirty pages.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);
/// Dirty pages that count as written out (the server dirties a few of its own all the time).
const SETTLED_DIRTY_PAGES: u64 = 64;

/// Has the downstream write out the pages the previous phase dirtied (flushing as fast as it
/// can meanwhile), so that no phase pays for flushing, or evicting, what the one before it left:
/// the buffer pool holds about one phase's rows, and the phase after a full one otherwise runs
/// while the server's page cleaner writes the earlier rows out beside it.
async fn settle(world: &DrainerWorld) -> anyhow::Result<()> {
    let mut conn = world.downstream_conn().await?;
    let dirty_pct: f64 = conn
        .query_first("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
        .await?
        .context("no innodb_max_dirty_pages_pct")?;
    const DIRTY: &str = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                         WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'";
    let started = Instant::now();
    let at_start = query_u64(&mut conn, DIRTY).await?;
    conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        .await?;
    let mut left = at_start;
    while left > SETTLED_DIRTY_PAGES && started.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = query_u64(&mut conn, DIRTY).await?;
    }
    conn.query_drop(format!(
        "SET GLOBAL innodb_max_dirty_pages_pct = {dirty_pct}"
    ))
    .await?;
    println!(
        "downstream settled: {at_start} dirty pages down to {left} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rows written to non-temporary tables, server-wide (`Handler_write`: MariaDB 10.11 has no
/// `Innodb_rows_inserted` any more).
async fn rows_inserted(conn: &mut mysql_async::Conn) -> anyhow::Result<u64> {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Handler_write'")
        .await?;
    Ok(row.context("no Handler_write status")?.1)
}

/// `CHECKSUM TABLE` of every benchmark table, in `database` (the baseline's copies) or, when
/// `database` is empty, where the drainer writes them. The copies have the same definitions, so
/// equal checksums mean equal rows.
async fn checksums(world: &DrainerWorld, database: &str) -> anyhow::Result<Vec<Option<u64>>> {
    let mut conn = world.downstream_conn().await?;
    let mut sums = Vec::new();
    for table in world.writer.tables.iter() {
        let database = if database.is_empty() {
            table.database.as_str()
        } else {
            database
        };
        let sql = format!("CHECKSUM TABLE `{database}`.`{}`", table.name());
        let sum: Option<(String, Option<u64>)> = conn.query_first(&sql).await?;
        sums.push(sum.and_then(|(_, sum)| sum));
    }
    Ok(sums)
}

async fn drop_database(world: &DrainerWorld, database: &str) -> anyhow::Result<()> {
    let mut conn = world.downstream_conn().await?;
    conn.query_drop(format!("DROP DATABASE `{database}`"))
        .await
        .with_context(|| format!("dropping {database}"))
}

/// Empties the drainer's tables (it has applied everything: nothing else writes them now).
async fn truncate_tables(world: &DrainerWorld) -> anyhow::Result<()> {
    let mut conn = world.downstream_conn().await?;
    for table in world.writer.tables.iter() {
        conn.query_drop(format!(
            "TRUNCATE TABLE `{}`.`{}`",
            table.database,
            table.name()
        ))
        .await
        .with_context(|| format!("truncating {}", table.qualified()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_again_after_half_the_expected_rest_and_at_most_every_poll() {
        let second = Duration::from_secs(1);
        assert_eq!(next_look(second, 0, 100), POLL, "no rate yet");
        assert_eq!(next_look(second, 100, 100), second / 2);
        assert_eq!(next_look(second, 1000, 1), POLL, "the end is near");
        assert_eq!(next_look(second, 1, 1000), second, "capped");
    }
}
