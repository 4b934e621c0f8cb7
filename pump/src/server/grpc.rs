//! The `binlog.Pump` gRPC service, answered on the HTTP/2 streams the connection tasks accept:
//! `WriteBinlog` (validated, durable before it answers) and `PullBinlogs` (commit-ts ordered,
//! woken by new data instead of polling).
//!
//! Both are served here rather than through tonic's server: a write costs the pump less than half
//! the CPU (see [`super::connection`]), and a pull stream's messages are encoded by the thread
//! that reads them from disk, straight into the chunks that go on the wire.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use binlog_proto::binlog::{
    Entity, Meta, Pos, PullBinlogReq, PullBinlogResp, WriteBinlogReq, WriteBinlogResp,
};
use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use h2::server::SendResponse;
use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;

use super::connection::send_in_window;
use super::grpc_wire::{self, Encoding};
use super::{Shared, WriteError};
use crate::storage::StorageError;

/// Chunks buffered between the disk reader and the sender of one pull stream.
const PULL_BUFFER: usize = 2;
/// A chunk handed from the disk reader to the sender holds at most this many binlogs…
const CHUNK_BINLOGS: usize = 256;
/// …or this many bytes (one binlog larger than this travels alone), so a stream goes out in
/// large socket writes instead of one wake-up per binlog.
const CHUNK_BYTES: usize = 1 << 20;
/// Room made for a stream's first chunk. Each later chunk gets room for a little more than the
/// one before it held, once, up front: a chunk grown a message at a time was reallocated and
/// copied at every doubling, and the copies were new memory to fault in (in drainer-apply, half
/// of a pump's CPU went to zeroing fresh pages under those reallocations).
const FIRST_CHUNK_CAPACITY: usize = 64 << 10;

/// Room for the chunk after one of `previous` bytes: an eighth more, within a full chunk and the
/// message that may end it.
fn next_chunk_capacity(previous: usize) -> usize {
    previous
        .saturating_add(previous / 8)
        .clamp(FIRST_CHUNK_CAPACITY, CHUNK_BYTES + (64 << 10))
}

/// How long a pull stream waits for new data before re-checking whether it should end.
const PULL_WAIT: Duration = Duration::from_millis(500);

/// The methods of `binlog.Pump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    WriteBinlog,
    PullBinlogs,
}

impl Method {
    /// The method a request path names, if any.
    pub(super) fn of_path(path: &str) -> Option<Method> {
        match path {
            "/binlog.Pump/WriteBinlog" => Some(Method::WriteBinlog),
            "/binlog.Pump/PullBinlogs" => Some(Method::PullBinlogs),
            _ => None,
        }
    }
}

/// Reads and decodes the one request message of a call from `body`.
async fn read_request<M: Message + Default>(
    headers: &http::HeaderMap,
    body: &mut RecvStream,
    limit: usize,
) -> Result<M, Status> {
    let encoding = Encoding::of_request(headers)?;
    let message = grpc_wire::read_message(body, limit, encoding).await?;
    M::decode(message).map_err(|err| Status::internal(err.to_string()))
}

/// How long a write's answer waits for the client to end its request stream once the binlog is
/// stored: a gRPC client ends it right behind the message, so this only bounds a broken one.
const REQUEST_END_WAIT: Duration = Duration::from_secs(1);

/// `WriteBinlog` on its stream. It runs in the connection's own task: see [`super::connection`].
pub(super) async fn write_binlog_on_stream(
    shared: Arc<Shared>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (head, mut body) = request.into_parts();
    let limit = shared.config.max_message_size;
    let outcome = match read_request(&head.headers, &mut body, limit).await {
        Ok(request) => {
            // The stream's end is awaited while the binlog is stored, so it costs no time.
            let end = tokio::time::timeout(REQUEST_END_WAIT, grpc_wire::read_to_end(&mut body));
            let (outcome, _) = tokio::join!(write_binlog(&shared, request), end);
            outcome
        }
        Err(status) => Err(status),
    };
    grpc_wire::answer(&mut respond, outcome);
}

/// Stores one binlog, durable before it answers, and accounts for it in the metrics and logs.
async fn write_binlog(shared: &Shared, request: WriteBinlogReq) -> Result<WriteBinlogResp, Status> {
    let started = Instant::now();
    shared.written.store(true, Ordering::Relaxed);
    let result = shared
        .write(request.cluster_id, request.payload, false)
        .await;
    let elapsed = started.elapsed();
    let metrics = &shared.metrics;
    let histogram = if result.is_ok() {
        &metrics.write_binlog_succ
    } else {
        &metrics.write_binlog_fail
    };
    histogram.observe(elapsed.as_secs_f64());
    if elapsed >= shared.config.storage.slow_write_threshold {
        tracing::warn!(?elapsed, "slow WriteBinlog");
    }
    match result {
        Ok(()) => Ok(WriteBinlogResp::default()),
        Err(err) => {
            metrics.loss_binlog.inc();
            if matches!(err, WriteError::Storage(_)) {
                metrics
                    .storage_errors
                    .with_label_values(&["write_binlog"])
                    .inc();
                tracing::error!(error = %err, "write binlog failed");
            }
            // Like the original: an error status (code Unknown) whose message clients match on.
            Err(Status::unknown(err.to_string()))
        }
    }
}

/// `PullBinlogs` on its stream, in a task of its own: a blocking thread reads and encodes the
/// binlogs in chunks, this task sends them as the client's flow-control window allows, and a
/// client that resets the stream or goes away stops the reader.
pub(super) async fn pull_binlogs_on_stream(
    shared: Arc<Shared>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (head, mut body) = request.into_parts();
    let gzip = grpc_wire::accepts_gzip(&head.headers);
    let limit = shared.config.max_message_size;
    let started = match read_request(&head.headers, &mut body, limit).await {
        Ok(request) => start_pull(&shared, &request),
        Err(status) => Err(status),
    };
    let (after, first) = match started {
        Ok(started) => started,
        Err(status) => return grpc_wire::refuse(&mut respond, &status),
    };
    let Some(mut stream) = grpc_wire::start_stream(&mut respond, gzip) else {
        return;
    };
    let (sender, mut chunks) = mpsc::channel::<Result<Bytes, Status>>(PULL_BUFFER);
    let reader_shared = shared.clone();
    shared.metrics.pull_streams.inc();
    tokio::task::spawn_blocking(move || {
        stream_binlogs(&reader_shared, first, after, gzip, &sender);
        reader_shared.metrics.pull_streams.dec();
    });
    loop {
        let chunk = tokio::select! {
            chunk = chunks.recv() => chunk,
            _ = std::future::poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        match chunk {
            Some(Ok(chunk)) => {
                if send_in_window(&mut stream, chunk).await.is_err() {
                    return;
                }
            }
            Some(Err(status)) => return grpc_wire::end_stream(&mut stream, &status),
            None => return grpc_wire::end_stream(&mut stream, &Status::ok("")),
        }
    }
}

/// Checks a pull request and opens the read, so a purged or foreign request gets a clear error
/// instead of an empty stream. Returns the commit ts the caller already has, and the read.
fn start_pull(
    shared: &Shared,
    request: &PullBinlogReq,
) -> Result<(i64, crate::storage::Pull), Status> {
    if request.cluster_id != shared.cluster_id {
        return Err(Status::unknown(format!(
            "cluster ID are mismatch, {} vs {}",
            request.cluster_id, shared.cluster_id
        )));
    }
    let after = request.start_from.as_ref().map_or(0, |pos| pos.offset);
    let first = shared.storage.pull(after).map_err(|err| match err {
        StorageError::Purged { .. } => Status::out_of_range(err.to_string()),
        other => Status::internal(other.to_string()),
    })?;
    Ok((after, first))
}

/// Feeds one pull stream until the client goes away or the pump closes its streams.
fn stream_binlogs(
    shared: &Shared,
    first: crate::storage::Pull,
    after: i64,
    gzip: bool,
    sender: &mpsc::Sender<Result<Bytes, Status>>,
) {
    let mut last = after;
    let mut pull = Some(first);
    let mut chunk = BytesMut::with_capacity(FIRST_CHUNK_CAPACITY);
    let mut in_chunk = 0;
    // Sends the pending chunk and makes room for the next one, sized like it; false when the
    // client has gone.
    let flush = |chunk: &mut BytesMut, in_chunk: &mut usize| {
        *in_chunk = 0;
        if chunk.is_empty() {
            return true;
        }
        let next_capacity = next_chunk_capacity(chunk.len());
        let full = chunk.split().freeze();
        chunk.reserve(next_capacity);
        sender.blocking_send(Ok(full)).is_ok()
    };
    loop {
        if sender.is_closed() || shared.pulls_closed.load(Ordering::Relaxed) {
            return;
        }
        let binlogs = match pull.take().map_or_else(|| shared.storage.pull(last), Ok) {
            Ok(binlogs) => binlogs,
            Err(err) => {
                let _ = sender.blocking_send(Err(Status::internal(err.to_string())));
                return;
            }
        };
        for item in binlogs {
            let binlog = match item {
                Ok(binlog) => binlog,
                Err(err) => {
                    shared
                        .metrics
                        .storage_errors
                        .with_label_values(&["read_value"])
                        .inc();
                    if flush(&mut chunk, &mut in_chunk) {
                        let _ = sender.blocking_send(Err(Status::internal(err.to_string())));
                    }
                    return;
                }
            };
            last = binlog.commit_ts;
            let response = PullBinlogResp {
                entity: Some(Entity {
                    pos: Some(Pos::default()),
                    payload: binlog.payload.into(),
                    checksum: Vec::new(),
                    meta: Some(Meta {
                        start_ts: binlog.start_ts,
                        commit_ts: binlog.commit_ts,
                    }),
                }),
            };
            if let Err(status) = grpc_wire::put_message(&mut chunk, &response, gzip) {
                let _ = sender.blocking_send(Err(status));
                return;
            }
            in_chunk += 1;
            if (in_chunk >= CHUNK_BINLOGS || chunk.len() >= CHUNK_BYTES)
                && !flush(&mut chunk, &mut in_chunk)
            {
                return;
            }
        }
        if !flush(&mut chunk, &mut in_chunk) {
            return;
        }
        shared.storage.wait_for_commit_ts_above(last, PULL_WAIT);
    }
}
