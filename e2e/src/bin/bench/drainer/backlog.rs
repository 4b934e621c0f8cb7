//! `drainer-backlog`: with the drainer stopped, about 1 GiB of transactions is written (rows of
//! about 1 KiB into `sim_a.strings`, about 32 KiB per transaction, and half way one transaction
//! of about 100 MB); then the drainer starts again and catches up while its RSS is sampled.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::tidb::sim::rng::SimRng;

use super::CpuMark;
use super::data::{Amount, BacklogPlan, STRINGS, Timestamps, Written, write_backlog};
use super::world::{DrainerWorld, query_u64};
use crate::{Memory, TsSource, count, figure_line, mib, print_section, target_line};

const BACKLOG_BYTES: u64 = 1 << 30;
const BIG_TXN_BYTES: u64 = 100_000_000;
/// Characters in each row's TEXT column: with the other columns, about 1 KiB per row.
const ROW_TEXT: usize = 900;
/// Rows per ordinary transaction: about 32 KiB.
const ROWS_PER_TXN: Range<usize> = 24..41;
const WRITERS: usize = 16;
/// How often the drainer's memory and checkpoint are read while it catches up.
const SAMPLE: Duration = Duration::from_millis(100);
const TARGET_RSS_MIB: f64 = 512.0;

pub(super) async fn bench_backlog(
    world: &mut DrainerWorld,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    let table = &world.writer.tables[STRINGS];
    println!(
        "\n== drainer-backlog: {:.0} MiB of transactions into {} (~1 KiB rows, ~32 KiB \
         transactions, one of ~{} MB half way) written while the drainer is stopped, then caught up",
        mib(BACKLOG_BYTES),
        table.qualified(),
        BIG_TXN_BYTES / 1_000_000
    );
    let count_rows = format!(
        "SELECT COUNT(*) FROM `{}`.`{}`",
        table.database,
        table.name()
    );
    let mut conn = world.downstream_conn().await?;
    // Zero when the table does not exist yet (no drainer ran in this world).
    let rows_before = query_u64(&mut conn, &count_rows).await.unwrap_or(0);
    world.stop_drainer()?;
    let ts = Arc::new(TsSource::new(world.world.pd.get_ts().await?));
    let writing = Instant::now();
    let half = BacklogPlan {
        amount: Amount::Bytes((BACKLOG_BYTES - BIG_TXN_BYTES) / 2),
        rows_per_txn: ROWS_PER_TXN,
        tables: vec![STRINGS],
        text_len: Some(ROW_TEXT),
        concurrency: WRITERS,
    };
    let mut written = write_backlog(&world.writer, &ts, &half).await?;
    let big = {
        let writer = &world.writer;
        let mut rng = SimRng::new(BIG_TXN_BYTES);
        let sample = writer.draw(&mut rng, 1, &[STRINGS], Some(ROW_TEXT));
        let row_bytes = writer.prewrite_value(&sample)?.1.len().max(1) as u64;
        // The sample's key is used: write it as part of the big transaction.
        let mut rows = sample;
        let more = (BIG_TXN_BYTES / row_bytes).saturating_sub(1) as usize;
        rows.extend(writer.draw(&mut rng, more, &[STRINGS], Some(ROW_TEXT)));
        let done = writer.write(Timestamps::Local(&ts), &rows).await?;
        Written {
            txns: 1,
            rows: rows.len() as u64,
            bytes: done.size as u64,
            last_commit_ts: done.commit_ts,
        }
    };
    written.add(big);
    written.add(write_backlog(&world.writer, &ts, &half).await?);
    println!(
        "backlog written: {} transactions, {} rows, {:.0} MiB of prewrite values (the big one \
         {:.1} MB, {} rows) in {:.1} s",
        count(written.txns as f64),
        count(written.rows as f64),
        mib(written.bytes),
        big.bytes as f64 / 1e6,
        count(big.rows as f64),
        writing.elapsed().as_secs_f64()
    );

    let pid = world.start_drainer()?;
    let mariadb = world.downstream_pid();
    let from = CpuMark::take(Some(pid), mariadb)?;
    let mut peak_until_big = 0u64;
    let mut peak_after_big = 0u64;
    let mut sample_error = None;
    let caught_up = world
        .wait_checkpoint(
            written.last_commit_ts,
            SAMPLE,
            |checkpoint| match Memory::of(pid) {
                Ok(memory) if checkpoint.is_some_and(|c| c >= big.last_commit_ts) => {
                    peak_after_big = peak_after_big.max(memory.rss_kib)
                }
                Ok(memory) => peak_until_big = peak_until_big.max(memory.rss_kib),
                Err(err) => sample_error = Some(err),
            },
        )
        .await?;
    if let Some(err) = sample_error {
        return Err(err);
    }
    let to = CpuMark::take(Some(pid), mariadb)?;
    let memory = Memory::of(pid)?;

    let landed = query_u64(&mut conn, &count_rows)
        .await?
        .saturating_sub(rows_before);
    anyhow::ensure!(
        landed == written.rows,
        "{} rows of the backlog are downstream, {} were written",
        landed,
        written.rows
    );

    let seconds = caught_up.as_secs_f64();
    let hwm = memory.hwm_mib();
    let lines = [
        figure_line(
            "caught up",
            format!(
                "{:.0} MiB, {} rows in {seconds:.1} s = {:.1} MiB/s, {} rows/s (checkpoint \
                 reached the last commit ts)",
                mib(written.bytes),
                count(written.rows as f64),
                mib(written.bytes) / seconds,
                count(written.rows as f64 / seconds)
            ),
        ),
        target_line(
            "drainer RSS, VmHWM",
            format!("{hwm:.0} MiB"),
            hwm <= TARGET_RSS_MIB,
            format!("≤ {TARGET_RSS_MIB} MiB"),
        ),
        figure_line(
            "drainer VmRSS sampled",
            format!(
                "peak {:.0} MiB until the checkpoint passed the big transaction, {:.0} MiB \
                 after; {:.0} MiB at the end",
                peak_until_big as f64 / 1024.0,
                peak_after_big as f64 / 1024.0,
                memory.rss_mib()
            ),
        ),
        figure_line("CPU, cores busy", from.describe_until(&to)),
        figure_line(
            "downstream",
            format!("all {} rows landed", count(landed as f64)),
        ),
    ];
    print_section(
        summary,
        &format!(
            "drainer   catching up a {:.0} MiB backlog with one {:.0} MB transaction:",
            mib(written.bytes),
            big.bytes as f64 / 1e6
        ),
        &lines,
    );
    Ok(())
}
