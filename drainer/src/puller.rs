//! One puller per pump: streams the pump's committed binlogs after the last commit ts it
//! delivered, reconnecting (every second) after any error, and hands them to the collector. Each
//! item takes its share of the puller's [`READ_AHEAD_BYTES`] and holds it until the merge emits
//! it, so a puller runs ahead of the merge by that much at most, and items flow in batches
//! instead of one task switch per binlog.
//! A binlog is decoded without copying (its prewrite value and rows are slices of the receive
//! buffer), so a big one is held once. After a message over [`BIG_MESSAGE_BYTES`] the puller
//! pulls again at once on a fresh stream, so that the buffer the big message grew is freed with
//! the binlog instead of living on with the stream.

use std::sync::Arc;
use std::time::Duration;

use binlog_proto::binlog::{Binlog, Pos, PullBinlogReq, pump_client::PumpClient};
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::codec::CompressionEncoding;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::merge::Timestamped;

/// One binlog as pulled from a pump.
#[derive(Debug)]
pub struct PulledBinlog {
    /// The commit ts (the merge key).
    pub commit_ts: i64,
    /// The start ts; equal to the commit ts for a fake binlog.
    pub start_ts: i64,
    /// The decoded binlog: a commit merged with its prewrite, or a fake binlog.
    pub binlog: Binlog,
    /// Payload size in bytes, for memory accounting.
    pub size: usize,
    /// The share of a byte budget the binlog holds until it is dropped: of its puller's
    /// read-ahead until the merge emits it, then of the collector's (see [`crate::collector`]).
    pub budget: Option<OwnedSemaphorePermit>,
}

impl PulledBinlog {
    /// A fake binlog only advances the checkpoint.
    pub fn is_fake(&self) -> bool {
        self.start_ts == self.commit_ts
    }
}

impl Timestamped for PulledBinlog {
    fn commit_ts(&self) -> i64 {
        self.commit_ts
    }
}

/// A puller failure that must stop the drainer: going on would lose data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// The pump purged binlogs the drainer still needs.
    #[error("pump {pump} no longer has binlogs after commit ts {after}: {message}")]
    Purged {
        /// The pump's node id.
        pump: String,
        /// The drainer's position.
        after: i64,
        /// The pump's message.
        message: String,
    },
    /// The pump sent a payload that is not a binlog.
    #[error("pump {pump} sent an undecodable binlog after commit ts {after}: {message}")]
    Malformed {
        /// The pump's node id.
        pump: String,
        /// The drainer's position.
        after: i64,
        /// The decoder's message.
        message: String,
    },
}

/// How pullers reach pumps.
#[derive(Debug, Clone)]
pub struct PullerSettings {
    /// The PD cluster id every request carries.
    pub cluster_id: u64,
    /// TLS for the pumps, if any.
    pub tls: Option<ClientTlsConfig>,
    /// Ask pumps for gzip-compressed streams (`compressor = "gzip"`).
    pub gzip: bool,
}

/// What one pump's binlogs may hold between their puller and the merge's output, each counted
/// as its payload and [`ITEM_OVERHEAD`]. A binlog bigger than this waits until all of it is free,
/// then goes alone.
pub const READ_AHEAD_BYTES: usize = 1 << 20;
/// What an item is counted beyond its payload (its decoded structures), so that a stream of
/// tiny fake binlogs is bounded too.
const ITEM_OVERHEAD: usize = 256;

/// A pump's node id, as the collector and its pullers share it (cloned with every binlog).
pub type PumpId = Arc<str>;

/// What a puller sends to the collector.
pub type PullerMessage = (PumpId, Result<PulledBinlog, PullError>);

/// Pulls from the pump `node_id` at `host`, starting after `after`, until `out` closes. Each item
/// waits for its share of `read_ahead` (which starts with [`READ_AHEAD_BYTES`] permits).
pub async fn run(
    node_id: PumpId,
    host: String,
    mut after: i64,
    settings: PullerSettings,
    read_ahead: Arc<Semaphore>,
    out: mpsc::Sender<PullerMessage>,
) {
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut logged_failure = None::<tokio::time::Instant>;
    loop {
        if out.is_closed() {
            return;
        }
        let result = pull_once(
            &node_id,
            &format!("{scheme}://{host}"),
            &mut after,
            &settings,
            &read_ahead,
            &out,
        )
        .await;
        match result {
            Ok(Ended::Reopen) => continue,
            Ok(Ended::Stopped) => {}
            Err(Fatal(err)) => {
                let _ = out.send((node_id.clone(), Err(err))).await;
                return;
            }
            Err(Retry(message)) => {
                // One line per pump every 10 s is enough while it is away.
                if logged_failure.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(pump = %node_id, %host, after, %message, "pulling binlogs failed; retrying");
                    logged_failure = Some(tokio::time::Instant::now());
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A message bigger than this ends its stream before it is decoded, and the pull resumes at once
/// on a new one: tonic keeps a stream's receive buffer as large as the largest message it
/// carried, for as long as the stream lives.
const BIG_MESSAGE_BYTES: usize = 16 << 20;
/// HTTP/2 flow-control window of a pull stream and its connection (one stream per connection):
/// what a pump may send ahead of the merge.
const PULL_WINDOW_BYTES: u32 = 8 << 20;
/// Largest HTTP/2 frame a pump may send. A pump with a backlog keeps the window full, and then
/// h2 answers every DATA frame read with a WINDOW_UPDATE (its threshold is half the window
/// *left*): with the default 16 KiB frames that was a write to the pump, and a wake-up of the
/// pump, per 16 KiB pulled (over 600 a second, 4% of the drainer's CPU).
const PULL_FRAME_BYTES: u32 = 1 << 20;

/// Why a pull ended without a failure.
enum Ended {
    /// The collector is gone.
    Stopped,
    /// After a big message: pull again at once, on a fresh stream.
    Reopen,
}

enum Failure {
    Retry(String),
    Fatal(PullError),
}
use Failure::{Fatal, Retry};

async fn pull_once(
    node_id: &PumpId,
    url: &str,
    after: &mut i64,
    settings: &PullerSettings,
    read_ahead: &Arc<Semaphore>,
    out: &mpsc::Sender<PullerMessage>,
) -> Result<Ended, Failure> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|err| Retry(err.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .initial_stream_window_size(PULL_WINDOW_BYTES)
        .initial_connection_window_size(PULL_WINDOW_BYTES)
        .max_frame_size(PULL_FRAME_BYTES)
        .tcp_nodelay(true);
    if let Some(tls) = &settings.tls {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|err| Retry(err.to_string()))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|err| Retry(binlog_cluster::error_text::error_chain(&err)))?;
    let mut client = PumpClient::new(channel).max_decoding_message_size(usize::MAX);
    if settings.gzip {
        client = client
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
    }
    let request = PullBinlogReq {
        cluster_id: settings.cluster_id,
        start_from: Some(Pos {
            suffix: 0,
            offset: *after,
        }),
    };
    let stream = match client.pull_binlogs(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::OutOfRange => {
            return Err(Fatal(PullError::Purged {
                pump: node_id.to_string(),
                after: *after,
                message: status.message().to_string(),
            }));
        }
        Err(status) => return Err(Retry(status.message().to_string())),
    };
    let mut stream = Some(stream);
    while let Some(open) = stream.as_mut() {
        let response = match open.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return Err(Retry("the pump ended the stream".into())),
            Err(status) => return Err(Retry(status.message().to_string())),
        };
        let payload = response.entity.unwrap_or_default().payload;
        let size = payload.len();
        if size > BIG_MESSAGE_BYTES {
            stream = None;
        }
        let binlog = Binlog::decode(payload).map_err(|err| {
            Fatal(PullError::Malformed {
                pump: node_id.to_string(),
                after: *after,
                message: err.to_string(),
            })
        })?;
        if binlog.commit_ts <= *after {
            tracing::error!(pump = %node_id, commit_ts = binlog.commit_ts, after = *after, "receive unsort binlog");
        } else {
            *after = binlog.commit_ts;
        }
        // At most u32::MAX.
        let share = size.saturating_add(ITEM_OVERHEAD).min(READ_AHEAD_BYTES) as u32;
        let Ok(permit) = read_ahead.clone().acquire_many_owned(share).await else {
            return Ok(Ended::Stopped);
        };
        let item = PulledBinlog {
            commit_ts: binlog.commit_ts,
            start_ts: binlog.start_ts,
            size,
            binlog,
            budget: Some(permit),
        };
        if out.send((node_id.clone(), Ok(item))).await.is_err() {
            return Ok(Ended::Stopped);
        }
    }
    Ok(Ended::Reopen)
}
