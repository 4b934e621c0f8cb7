//! The pump's background loops: heartbeat, fake binlogs while idle, GC, the disk-space watch and
//! the watermark report (metrics, and a loud warning for a prewrite that never got its commit).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use binlog_cluster::{TlsSettings, tso};
use tokio::task::JoinHandle;

use super::Shared;
use crate::disk;

/// How often free space is read.
const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// How often GC runs on its own.
const GC_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the watermark and unmatched prewrites are reported.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Starts every loop; each ends when `shared.loops_stop` is set.
pub(super) fn spawn_all(shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(heartbeat(shared.clone())),
        tokio::spawn(fake_binlogs(shared.clone())),
        tokio::spawn(gc(shared.clone())),
        tokio::spawn(disk_watch(shared.clone())),
        tokio::spawn(report(shared.clone())),
        tokio::spawn(push_metrics(shared)),
    ]
}

/// Runs `tick` every `period` until the loops are stopped.
async fn every<F, Fut>(shared: &Shared, period: Duration, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stop = shared.loops_stop.subscribe();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = ticker.tick() => tick().await,
            _ = binlog_cluster::shutdown::stopped(&mut stop) => return,
        }
    }
}

async fn heartbeat(shared: Arc<Shared>) {
    let stop = shared.loops_stop.subscribe();
    binlog_cluster::node::heartbeat(
        &shared.node,
        shared.config.heartbeat_interval,
        || shared.storage.max_commit_ts(),
        stop,
    )
    .await;
}

async fn fake_binlogs(shared: Arc<Shared>) {
    every(&shared, shared.config.fake_binlog_interval, || async {
        if shared.written.swap(false, Ordering::Relaxed) || shared.node.stopping() {
            return;
        }
        if let Err(err) = shared.write_fake_binlog().await {
            tracing::warn!(error = %err, "cannot write a fake binlog");
        }
    })
    .await;
}

/// Runs GC once: purges what is older than the retention, never at or above the watermark.
pub(super) async fn gc_once(shared: &Shared) {
    if shared.gc_running.swap(true, Ordering::AcqRel) {
        return;
    }
    let retention_ms = shared.config.gc.as_millis() as i64;
    let now_ms = tso::physical_ms(tso::from_system_time(SystemTime::now()));
    let gc_ts = tso::compose(now_ms - retention_ms, 0).min(shared.storage.max_commit_ts() - 1);
    if gc_ts > shared.storage.gc_ts() {
        shared.metrics.gc_ts.set(tso::physical_ms(gc_ts));
        let storage = shared.storage.clone();
        match tokio::task::spawn_blocking(move || storage.gc(gc_ts)).await {
            Ok(Ok(outcome)) => {
                shared
                    .metrics
                    .done_gc_ts
                    .set(tso::physical_ms(outcome.gc_ts));
                tracing::info!(gc_ts = outcome.gc_ts, deleted = ?outcome.deleted_segments, "gc done");
            }
            Ok(Err(err)) => tracing::warn!(error = %err, gc_ts, "gc failed"),
            Err(err) => tracing::warn!(error = %err, "gc task failed"),
        }
    }
    shared.gc_running.store(false, Ordering::Release);
}

async fn gc(shared: Arc<Shared>) {
    let mut stop = shared.loops_stop.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(GC_INTERVAL) => {}
            _ = shared.gc_trigger.notified() => {}
            _ = binlog_cluster::shutdown::stopped(&mut stop) => return,
        }
        gc_once(&shared).await;
    }
}

async fn disk_watch(shared: Arc<Shared>) {
    every(&shared, DISK_CHECK_INTERVAL, || async {
        match disk::space(&shared.config.data_dir) {
            Ok((capacity, available)) => {
                shared.available_bytes.store(available, Ordering::Relaxed);
                let sizes = &shared.metrics.storage_size;
                sizes.with_label_values(&["capacity"]).set(capacity as i64);
                sizes
                    .with_label_values(&["available"])
                    .set(available as i64);
                let threshold = shared.config.storage.stop_write_at_available_space;
                if available <= threshold {
                    tracing::error!(
                        available,
                        threshold,
                        "free disk space is below stop-write-at-available-space: writes are refused"
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read free disk space"),
        }
    })
    .await;
}

/// Pushes the metrics to a Prometheus Pushgateway (`-metrics-addr`) every `-metrics-interval`,
/// grouped as the original does: job `binlog`, instance = the node id.
async fn push_metrics(shared: Arc<Shared>) {
    let (Some(addr), false) = (
        shared.config.metrics_addr.clone(),
        shared.config.metrics_interval.is_zero(),
    ) else {
        return;
    };
    let base = if addr.contains("://") {
        addr
    } else {
        format!("http://{addr}")
    };
    let url = format!(
        "{}/metrics/job/binlog/instance/{}",
        base.trim_end_matches('/'),
        shared.node.id
    );
    every(&shared, shared.config.metrics_interval, || async {
        let body = shared.metrics.render().into();
        let pushed = binlog_cluster::control::http_request_with_body(&TlsSettings::default(), "PUT", &url, body).await;
        match pushed {
            Ok((status, _)) if (200..300).contains(&status) => {}
            Ok((status, body)) => tracing::warn!(%url, status, body = %String::from_utf8_lossy(&body), "metrics push refused"),
            Err(err) => tracing::warn!(error = %err, "metrics push failed"),
        }
    })
    .await;
}

/// How often a prewrite stuck past max-txn-timeout is logged again.
const STUCK_PREWRITE_LOG_INTERVAL: Duration = Duration::from_secs(60);

async fn report(shared: Arc<Shared>) {
    let last_logged = std::sync::Mutex::new(None::<std::time::Instant>);
    every(&shared, REPORT_INTERVAL, || async {
        shared.metrics.max_commit_ts.set(tso::physical_ms(shared.storage.max_commit_ts()));
        let waited = match shared.storage.oldest_unmatched_prewrite() {
            Some(oldest) => {
                let mut last = last_logged.lock().unwrap_or_else(|e| e.into_inner());
                let due = last.is_none_or(|at| at.elapsed() >= STUCK_PREWRITE_LOG_INTERVAL);
                if oldest.waited >= shared.config.storage.max_txn_timeout && due {
                    *last = Some(std::time::Instant::now());
                    tracing::error!(
                        start_ts = oldest.start_ts,
                        waited_secs = oldest.waited.as_secs(),
                        "a prewrite binlog has had no commit or rollback for longer than max-txn-timeout; \
                         the watermark is held at it (it is never assumed rolled back)"
                    );
                }
                oldest.waited.as_secs() as i64
            }
            None => 0,
        };
        shared.metrics.oldest_unmatched_prewrite_seconds.set(waited);
    })
    .await;
}
