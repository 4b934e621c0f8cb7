//! The drainer benchmarks (documented at the top of the binary): [`apply`], [`latency`] and
//! [`backlog`], sharing one [`world`] per run and the rows of [`data`]. They run in that order;
//! each leaves the drainer caught up for the next. [`kafka`] runs in a world of its own, its
//! drainer writing to a Kafka broker.

mod apply;
mod backlog;
mod data;
mod kafka;
mod latency;
mod world;

use std::path::Path;
use std::time::Instant;

use crate::{TICKS_PER_SECOND, machine_busy_ticks, stat_ticks};
pub(crate) use world::DrainerSettings;
use world::DrainerWorld;

/// Which drainer benchmarks to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selection {
    pub(crate) apply: bool,
    pub(crate) latency: bool,
    pub(crate) backlog: bool,
    pub(crate) kafka: bool,
}

/// Settings of `drainer-apply`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApplySettings {
    pub(crate) rows: u64,
    /// Each transaction has 1 to this many rows.
    pub(crate) max_txn_rows: usize,
}

/// Runs the selected drainer benchmarks in one world.
pub(crate) async fn run(
    selection: Selection,
    drainer: DrainerSettings,
    apply: ApplySettings,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    if selection.kafka {
        let mut world = DrainerWorld::start(DrainerSettings {
            kafka: true,
            ..drainer
        })
        .await?;
        println!(
            "\n== drainer world: {} (etcd, pd-sim, 2 pumps, truth MariaDB, Kafka broker)",
            world.world.dir.path().display()
        );
        kafka::bench_kafka(&mut world, apply, summary).await?;
        world.stop().await?;
    }
    if !(selection.apply || selection.latency || selection.backlog) {
        return Ok(());
    }
    let mut world = DrainerWorld::start(drainer).await?;
    println!(
        "\n== drainer world: {} (etcd, pd-sim, 2 pumps, truth and downstream MariaDB)",
        world.world.dir.path().display()
    );
    if selection.apply {
        apply::bench_apply(&mut world, apply, summary).await?;
    }
    if selection.latency {
        latency::bench_latency(&mut world, summary).await?;
    }
    if selection.backlog {
        backlog::bench_backlog(&mut world, summary).await?;
    }
    world.stop().await
}

/// CPU ticks of the machine, this process, the drainer and the downstream MariaDB at one
/// instant (a process that is not running counts nothing).
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    at: Instant,
    machine: u64,
    bench: u64,
    drainer: u64,
    mariadb: u64,
}

fn process_ticks(pid: Option<u32>) -> u64 {
    pid.and_then(|pid| stat_ticks(Path::new(&format!("/proc/{pid}/stat"))).ok())
        .unwrap_or(0)
}

impl CpuMark {
    fn take(drainer: Option<u32>, mariadb: Option<u32>) -> anyhow::Result<CpuMark> {
        Ok(CpuMark {
            at: Instant::now(),
            machine: machine_busy_ticks()?,
            bench: stat_ticks(Path::new("/proc/self/stat"))?,
            drainer: process_ticks(drainer),
            mariadb: process_ticks(mariadb),
        })
    }

    /// What happened between `self` and `later`.
    fn until(&self, later: &CpuMark) -> CpuUse {
        let seconds = (later.at - self.at).as_secs_f64().max(1e-9);
        let cores =
            |from: u64, to: u64| to.saturating_sub(from) as f64 / TICKS_PER_SECOND / seconds;
        let drainer = cores(self.drainer, later.drainer);
        let mariadb = cores(self.mariadb, later.mariadb);
        let bench = cores(self.bench, later.bench);
        CpuUse {
            seconds,
            drainer,
            mariadb,
            bench,
            others: (cores(self.machine, later.machine) - drainer - mariadb - bench).max(0.0),
        }
    }

    /// `drainer 0.81, downstream MariaDB 0.90, bench 0.02, everything else 0.11 of 2 cores`
    /// between `self` and `later`.
    fn describe_until(&self, later: &CpuMark) -> String {
        self.until(later).describe()
    }
}

/// Cores busy over an interval.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    seconds: f64,
    drainer: f64,
    mariadb: f64,
    bench: f64,
    others: f64,
}

impl CpuUse {
    fn describe(&self) -> String {
        let available = std::thread::available_parallelism().map_or(0, usize::from);
        format!(
            "drainer {:.2}, downstream MariaDB {:.2}, bench {:.2}, everything else {:.2} of \
             {available} cores",
            self.drainer, self.mariadb, self.bench, self.others
        )
    }

    /// CPU microseconds per item of `count` for `cores` busy over the interval.
    fn micros_per(&self, cores: f64, count: u64) -> f64 {
        cores * self.seconds * 1e6 / count.max(1) as f64
    }
}
