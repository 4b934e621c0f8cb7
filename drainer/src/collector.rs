//! The collector: finds pumps in the registry (every `detect-interval`, and at once on a pump's
//! `Notify`), runs one puller per pump, and merges their streams into one stream of strictly
//! increasing commit ts. Paused pumps hold the merge and are named in the status; offline pumps are
//! removed.
//!
//! Memory: a pump's binlogs waiting for the merge (in its puller, on the way, queued in the
//! merge) hold at most [`READ_AHEAD_BYTES`] (see [`crate::puller`]); binlogs handed on (up to
//! `out`'s capacity, `cache-binlog-count`) together hold at most [`MAX_HANDED_ON_BYTES`] of
//! payload, each keeping its share of that budget until it is dropped. A bigger binlog waits
//! until the whole budget is free, then goes alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use binlog_cluster::node_id::format_node_id;
use binlog_cluster::{NodeKind, NodeState, Registry};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::merge::{Dropped, Merger};
use crate::puller::{
    self, PullError, PulledBinlog, PullerMessage, PullerSettings, PumpId, READ_AHEAD_BYTES,
};

/// A pump as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PumpView {
    /// Its registry state.
    pub state: NodeState,
    /// Its address.
    pub host: String,
}

/// What `/status` shows of the collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectorStatus {
    /// Pumps being pulled from, by node id.
    pub pumps: BTreeMap<String, PumpView>,
    /// Pumps the merge is waiting for (no data yet: paused, unreachable or slow).
    pub waiting_for: Vec<String>,
    /// The last commit ts received from each pump (the original's `PumpPos`).
    pub positions: BTreeMap<String, i64>,
    /// The last commit ts the merge emitted.
    pub last_ts: i64,
    /// Items dropped as duplicates or as out of order.
    pub duplicates: u64,
    /// Items that arrived below the merge position.
    pub disorder: u64,
    /// The last registry error, if the last refresh failed.
    pub error: Option<String>,
}

/// Payload bytes of the binlogs handed on and not yet dropped.
pub const MAX_HANDED_ON_BYTES: usize = 64 << 20;

/// How stale the published status may be while items flow (every tick and notification
/// publishes at once).
const STATUS_EVERY: Duration = Duration::from_millis(100);

/// A request to re-read the pump list now; answered with the refresh's outcome.
pub type NotifyRequest = oneshot::Sender<Result<(), String>>;

/// Collector settings.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    /// How pullers reach pumps.
    pub puller: PullerSettings,
    /// How often the pump list is re-read.
    pub detect_interval: Duration,
}

struct Puller {
    task: JoinHandle<()>,
}

/// Items taken from the pullers in one round of the collector's loop at most: the items waiting
/// are taken together (polling the loop's other branches again costs more than merging a small
/// binlog), within a bound so that ticks and notifications are still seen.
const ITEMS_PER_ROUND: usize = 256;

/// Runs the collector until `stop` is set or `out` closes; emits merged binlogs after
/// `start_ts`. Returns an error only for a failure that would lose data (a purged pump).
pub async fn run(
    registry: Registry,
    settings: CollectorSettings,
    start_ts: i64,
    out: mpsc::Sender<PulledBinlog>,
    mut notifications: mpsc::Receiver<NotifyRequest>,
    status: Arc<Mutex<CollectorStatus>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PullError> {
    let mut merger: Merger<PumpId, PulledBinlog> = Merger::new(start_ts);
    let mut pullers: BTreeMap<String, Puller> = BTreeMap::new();
    let mut pumps: BTreeMap<String, PumpView> = BTreeMap::new();
    let (items_tx, mut items) = mpsc::channel::<PullerMessage>(64);
    let mut ticker = tokio::time::interval(settings.detect_interval);
    let mut last_error = None;
    let mut positions: BTreeMap<PumpId, i64> = BTreeMap::new();
    let mut published = None::<tokio::time::Instant>;
    let budget = Arc::new(Semaphore::new(MAX_HANDED_ON_BYTES));

    let result = 'collecting: loop {
        // Items come by the thousand per second: their status changes are published in batches.
        let mut only_items = false;
        tokio::select! {
            _ = ticker.tick() => {
                last_error = refresh(&registry, &settings, &mut merger, &mut pullers, &mut pumps, &items_tx).await.err();
            }
            Some(reply) = notifications.recv() => {
                let outcome = refresh(&registry, &settings, &mut merger, &mut pullers, &mut pumps, &items_tx).await;
                last_error = outcome.clone().err();
                let _ = reply.send(outcome);
            }
            Some(first) = items.recv() => {
                only_items = true;
                let mut next = Some(first);
                let mut taken = 0;
                while let Some((pump, item)) = next.take() {
                    match item {
                        Ok(item) if merger.has_source(&pump) => {
                            positions.insert(pump.clone(), item.commit_ts);
                            merger.push(pump, item)
                        }
                        Ok(_) => {}
                        Err(err) => break 'collecting Err(err),
                    }
                    taken += 1;
                    if taken < ITEMS_PER_ROUND {
                        next = items.try_recv().ok();
                    }
                }
            }
            _ = binlog_cluster::shutdown::stopped(&mut stop) => break Ok(()),
        }
        while let Some(mut item) = merger.pop() {
            // Both bounds are at most u32::MAX.
            let share = item.size.clamp(1, MAX_HANDED_ON_BYTES) as u32;
            let Ok(permit) = budget.clone().acquire_many_owned(share).await else {
                break;
            };
            item.budget = Some(permit);
            if out.send(item).await.is_err() {
                break;
            }
        }
        positions.retain(|pump, _| pumps.contains_key(&**pump));
        if !only_items || published.is_none_or(|at| at.elapsed() >= STATUS_EVERY) {
            publish(&status, &merger, &pumps, &positions, &last_error);
            published = Some(tokio::time::Instant::now());
        }
        if out.is_closed() {
            break Ok(());
        }
    };
    for puller in pullers.values() {
        puller.task.abort();
    }
    result
}

fn publish(
    status: &Mutex<CollectorStatus>,
    merger: &Merger<PumpId, PulledBinlog>,
    pumps: &BTreeMap<String, PumpView>,
    positions: &BTreeMap<PumpId, i64>,
    error: &Option<String>,
) {
    let Dropped {
        duplicates,
        disorder,
    } = merger.dropped();
    *status.lock().unwrap_or_else(|e| e.into_inner()) = CollectorStatus {
        pumps: pumps.clone(),
        waiting_for: merger
            .waiting_for()
            .iter()
            .map(|id| id.to_string())
            .collect(),
        positions: positions
            .iter()
            .map(|(id, ts)| (id.to_string(), *ts))
            .collect(),
        last_ts: merger.last_emitted(),
        duplicates,
        disorder,
        error: error.clone(),
    };
}

/// Re-reads the pump list: starts pullers for new pumps, drops offline ones.
async fn refresh(
    registry: &Registry,
    settings: &CollectorSettings,
    merger: &mut Merger<PumpId, PulledBinlog>,
    pullers: &mut BTreeMap<String, Puller>,
    pumps: &mut BTreeMap<String, PumpView>,
    items: &mpsc::Sender<PullerMessage>,
) -> Result<(), String> {
    let (listed, _) = registry
        .list(NodeKind::Pump)
        .await
        .map_err(|err| err.to_string())?;
    for pump in listed {
        let id = format_node_id(&pump.node_id);
        let known = pullers.contains_key(&id);
        match (known, pump.state) {
            (false, NodeState::Offline) => {}
            (true, NodeState::Offline) => {
                tracing::info!(pump = %id, "pump is offline; no longer pulling from it");
                if let Some(puller) = pullers.remove(&id) {
                    puller.task.abort();
                }
                merger.remove_source(id.as_str());
                pumps.remove(&id);
            }
            (false, state) => {
                tracing::info!(pump = %id, host = %pump.host, %state, after = merger.last_emitted(), "pulling from a new pump");
                let read_ahead = Arc::new(Semaphore::new(READ_AHEAD_BYTES));
                let shared_id = PumpId::from(id.as_str());
                let task = tokio::spawn(puller::run(
                    shared_id.clone(),
                    pump.host.clone(),
                    merger.last_emitted(),
                    settings.puller.clone(),
                    read_ahead,
                    items.clone(),
                ));
                merger.add_source(shared_id);
                pullers.insert(id.clone(), Puller { task });
                pumps.insert(
                    id,
                    PumpView {
                        state,
                        host: pump.host,
                    },
                );
            }
            (true, state) => {
                if let Some(view) = pumps.get_mut(&id) {
                    view.state = state;
                    view.host = pump.host;
                }
            }
        }
    }
    Ok(())
}
