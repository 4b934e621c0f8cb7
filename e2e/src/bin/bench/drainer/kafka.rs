//! `drainer-kafka`: a backlog of small insert transactions is written to the pumps, then a
//! drainer with the Kafka sink starts against it; the rate at which its messages land on the
//! topic is compared with a plain producer writing the very same messages to the same broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

use super::data::{BacklogPlan, write_backlog};
use super::world::{CATCH_UP_LIMIT, DrainerWorld, KAFKA_TOPIC};
use super::{ApplySettings, CpuMark, CpuUse};
use crate::{Memory, TsSource, count, figure_line, print_section};

/// How often the topic's end offset is looked at while the drainer writes.
const POLL: Duration = Duration::from_millis(10);
/// The baseline's batches: the Kafka sink's defaults (`kafka-max-messages`, its batch bytes).
const BATCH_MESSAGES: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;
/// Runs of the baseline, after the drainer (it sends the messages the drainer made).
const BASELINE_RUNS: usize = 2;

pub(super) async fn bench_kafka(
    world: &mut DrainerWorld,
    settings: ApplySettings,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        world.drainer.is_none(),
        "drainer-kafka must run first in its world"
    );
    let broker = world
        .kafka_addr()
        .context("drainer-kafka needs a world with a Kafka broker")?;
    println!(
        "\n== drainer-kafka: {} rows inserted in transactions of 1–{} rows, written by a drainer \
         to topic {KAFKA_TOPIC} on the broker at {broker}",
        count(settings.rows as f64),
        settings.max_txn_rows
    );
    let ts = Arc::new(TsSource::new(world.world.pd.get_ts().await?));
    let plan = BacklogPlan::small_inserts(&settings, world.writer.tables.len());
    let written = write_backlog(&world.writer, &ts, &plan).await?;
    println!(
        "backlog written: {} transactions, {} rows",
        count(written.txns as f64),
        count(written.rows as f64)
    );

    let client = ClientBuilder::new(vec![broker.clone()])
        .build()
        .await
        .with_context(|| format!("connecting to the broker at {broker}"))?;
    let drained = drain(world, &client, written.last_commit_ts).await?;
    let messages = e2e::kafka::read_values(&broker, KAFKA_TOPIC).await?;
    anyhow::ensure!(
        messages.len() as i64 == drained.end_offset,
        "the topic holds {} messages, the drainer was timed up to offset {}",
        messages.len(),
        drained.end_offset
    );
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let mut baselines = Vec::new();
    for run in 0..BASELINE_RUNS {
        baselines.push(produce_baseline(world, &client, run, &messages).await?);
    }
    let baseline =
        baselines.iter().map(|b| b.messages_per_sec).sum::<f64>() / baselines.len() as f64;
    let ratio = drained.messages_per_sec / baseline.max(1.0);
    let per_message =
        |cpu: &CpuUse, cores: f64| format!("{:.1} µs", cpu.micros_per(cores, drained.messages));
    let lines = [
        figure_line(
            "baseline messages/s",
            format!(
                "{} (mean of {})",
                count(baseline),
                baselines
                    .iter()
                    .map(|b| count(b.messages_per_sec))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        ),
        figure_line("baseline CPU", describe(&baselines[0].cpu)),
        figure_line(
            "drainer messages/s",
            format!(
                "{} ({} messages of {:.0} bytes on average, {} rows, first to last in {:.2} s)",
                count(drained.messages_per_sec),
                count(drained.messages as f64),
                bytes as f64 / messages.len().max(1) as f64,
                count(written.rows as f64),
                drained.cpu.seconds
            ),
        ),
        figure_line("ratio drainer ÷ baseline", format!("{ratio:.2}")),
        figure_line("drainer CPU", describe(&drained.cpu)),
        figure_line(
            "per message",
            format!(
                "drainer {} + broker {} (baseline: producer {} + broker {})",
                per_message(&drained.cpu, drained.cpu.drainer),
                per_message(&drained.cpu, drained.cpu.mariadb),
                per_message(&baselines[0].cpu, baselines[0].cpu.bench),
                per_message(&baselines[0].cpu, baselines[0].cpu.mariadb),
            ),
        ),
        figure_line(
            "drainer RSS (VmHWM/VmRSS)",
            format!(
                "{:.0} / {:.0} MiB",
                drained.memory.hwm_mib(),
                drained.memory.rss_mib()
            ),
        ),
    ];
    print_section(
        summary,
        &format!(
            "drainer   Kafka sink: {} transactions (1–{} rows) as messages; baseline: the same \
             messages produced by one rskafka client, batches of {BATCH_MESSAGES} or 1 MiB, one \
             in flight, acks = all:",
            count(written.txns as f64),
            settings.max_txn_rows
        ),
        &lines,
    );
    Ok(())
}

/// `drainer 0.81, broker 0.40, bench 0.02, everything else 0.11 of 2 cores` (the broker sits
/// where the apply benchmarks count MariaDB).
fn describe(cpu: &CpuUse) -> String {
    let available = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "drainer {:.2}, broker {:.2}, bench {:.2}, everything else {:.2} of {available} cores",
        cpu.drainer, cpu.mariadb, cpu.bench, cpu.others
    )
}

struct Drained {
    messages: u64,
    messages_per_sec: f64,
    end_offset: i64,
    cpu: CpuUse,
    memory: Memory,
}

/// Starts the drainer and times its messages landing: from the first message seen on the topic
/// to the last, the end being known once the drainer's checkpoint passed `last_commit_ts`.
async fn drain(
    world: &mut DrainerWorld,
    client: &Client,
    last_commit_ts: i64,
) -> anyhow::Result<Drained> {
    let pid = world.start_drainer()?;
    let broker = world.kafka_pid();
    let deadline = Instant::now() + CATCH_UP_LIMIT;
    let partition = loop {
        // The drainer creates the topic.
        if let Ok(partition) = client
            .partition_client(KAFKA_TOPIC, 0, UnknownTopicHandling::Error)
            .await
        {
            break partition;
        }
        anyhow::ensure!(Instant::now() < deadline, "the drainer created no topic");
        tokio::time::sleep(POLL).await;
    };
    let mut first = end_offset(&partition, 0).await?;
    while first == 0 {
        anyhow::ensure!(Instant::now() < deadline, "no message landed");
        tokio::time::sleep(POLL).await;
        first = end_offset(&partition, 0).await?;
    }
    let from = CpuMark::take(Some(pid), broker)?;
    let (mut last, mut to) = (first, from);
    let mut next_checkpoint_look = Instant::now();
    loop {
        let now = end_offset(&partition, last).await?;
        if now != last {
            last = now;
            to = CpuMark::take(Some(pid), broker)?;
        }
        if Instant::now() >= next_checkpoint_look {
            if world
                .checkpoint_ts()
                .await
                .is_some_and(|ts| ts >= last_commit_ts)
                && end_offset(&partition, last).await? == last
            {
                break;
            }
            next_checkpoint_look = Instant::now() + Duration::from_millis(200);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the drainer's checkpoint did not reach {last_commit_ts} within {} s",
            CATCH_UP_LIMIT.as_secs()
        );
        tokio::time::sleep(POLL).await;
    }
    let cpu = from.until(&to);
    let messages = (last - first).max(0) as u64;
    Ok(Drained {
        messages,
        messages_per_sec: messages as f64 / cpu.seconds,
        end_offset: last,
        cpu,
        memory: Memory::of(pid)?,
    })
}

/// The topic's end (high watermark), as a fetch from `from` reports it: Tansu's `ListOffsets`
/// answers the last batch's start rather than the end.
async fn end_offset(partition: &PartitionClient, from: i64) -> anyhow::Result<i64> {
    let (_, high_watermark) = partition
        .fetch_records(from, 1..4096, 10)
        .await
        .context("the topic's end offset")?;
    Ok(high_watermark)
}

struct BaselineRun {
    messages_per_sec: f64,
    cpu: CpuUse,
}

/// The messages produced again to a fresh topic of the same broker, in the sink's batches.
async fn produce_baseline(
    world: &DrainerWorld,
    client: &Client,
    run: usize,
    messages: &[Vec<u8>],
) -> anyhow::Result<BaselineRun> {
    let topic = format!("bench_baseline_{run}");
    client
        .controller_client()?
        .create_topic(&topic, 1, 1, 10_000)
        .await
        .with_context(|| format!("creating {topic}"))?;
    let partition = client
        .partition_client(topic.as_str(), 0, UnknownTopicHandling::Retry)
        .await?;
    let broker = world.kafka_pid();
    let from = CpuMark::take(None, broker)?;
    let mut rest = messages;
    while !rest.is_empty() {
        let mut take = 0;
        let mut bytes = 0;
        while take < rest.len() && take < BATCH_MESSAGES && (take == 0 || bytes < BATCH_BYTES) {
            bytes += rest[take].len();
            take += 1;
        }
        let timestamp = chrono::Utc::now();
        let records = rest[..take]
            .iter()
            .map(|value| Record {
                key: None,
                value: Some(value.clone()),
                headers: BTreeMap::new(),
                timestamp,
            })
            .collect();
        partition
            .produce(records, Compression::NoCompression)
            .await
            .with_context(|| format!("producing to {topic}"))?;
        rest = &rest[take..];
    }
    let to = CpuMark::take(None, broker)?;
    let cpu = from.until(&to);
    println!(
        "baseline into {topic}: {} messages in {:.2} s",
        count(messages.len() as f64),
        cpu.seconds
    );
    Ok(BaselineRun {
        messages_per_sec: messages.len() as f64 / cpu.seconds,
        cpu,
    })
}
