//! The `binlog.Pump` gRPC service: `WriteBinlog` (validated, durable before it answers) and
//! `PullBinlogs` (commit-ts ordered, woken by new data instead of polling).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use binlog_proto::binlog::{
    Entity, Meta, Pos, PullBinlogReq, PullBinlogResp, WriteBinlogReq, WriteBinlogResp,
    pump_server::{Pump, PumpServer},
};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use prost::Message;

use super::{Shared, WriteError, grpc_wire};
use crate::storage::StorageError;

/// Chunks buffered between the disk reader and the gRPC sender of one stream.
const PULL_BUFFER: usize = 2;
/// A chunk handed from the disk reader to the sender holds at most this many binlogs…
const CHUNK_BINLOGS: usize = 256;
/// …or this many payload bytes (one binlog larger than this travels alone). Chunks let the
/// gRPC encoder write many messages per socket write instead of waking once per binlog.
const CHUNK_BYTES: usize = 1 << 20;
/// How long a pull stream waits for new data before re-checking whether it should end.
const PULL_WAIT: Duration = Duration::from_millis(500);

struct PumpService {
    shared: Arc<Shared>,
}

/// The gRPC routes, ready to merge with the HTTP API on one port.
pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    let limit = shared.config.max_message_size;
    let service = PumpServer::new(PumpService { shared })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    tonic::service::Routes::new(service)
        .into_axum_router()
        .layer(axum::middleware::map_response(
            oversized_as_resource_exhausted,
        ))
}

/// `WriteBinlog` answered on its HTTP/2 stream by the connection's own task: the same handling
/// as through tonic, without a task, a router and a body per request (see
/// [`super::connection`]).
pub(super) async fn write_binlog_on_stream(
    shared: Arc<Shared>,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
) {
    let mut body = request.into_body();
    let outcome = match grpc_wire::read_message(&mut body, shared.config.max_message_size).await {
        Ok(message) => match WriteBinlogReq::decode(message) {
            Ok(request) => write_binlog(&shared, request)
                .await
                .map(|response| response.encode_to_vec()),
            Err(err) => Err(Status::internal(err.to_string())),
        },
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

type PullStream = Pin<Box<dyn Stream<Item = Result<PullBinlogResp, Status>> + Send>>;

#[tonic::async_trait]
impl Pump for PumpService {
    async fn write_binlog(
        &self,
        request: Request<WriteBinlogReq>,
    ) -> Result<Response<WriteBinlogResp>, Status> {
        write_binlog(&self.shared, request.into_inner())
            .await
            .map(Response::new)
    }

    type PullBinlogsStream = PullStream;

    async fn pull_binlogs(
        &self,
        request: Request<PullBinlogReq>,
    ) -> Result<Response<Self::PullBinlogsStream>, Status> {
        let request = request.into_inner();
        if request.cluster_id != self.shared.cluster_id {
            return Err(Status::unknown(format!(
                "cluster ID are mismatch, {} vs {}",
                request.cluster_id, self.shared.cluster_id
            )));
        }
        let after = request.start_from.map_or(0, |pos| pos.offset);
        // Check up front so a purged request gets a clear error instead of an empty stream.
        let first = self.shared.storage.pull(after).map_err(|err| match err {
            StorageError::Purged { .. } => Status::out_of_range(err.to_string()),
            other => Status::internal(other.to_string()),
        })?;
        let (sender, receiver) = mpsc::channel::<Result<Vec<PullBinlogResp>, Status>>(PULL_BUFFER);
        let shared = self.shared.clone();
        shared.metrics.pull_streams.inc();
        tokio::task::spawn_blocking(move || {
            stream_binlogs(&shared, first, after, &sender);
            shared.metrics.pull_streams.dec();
        });
        let responses = ReceiverStream::new(receiver).flat_map(|chunk| {
            let items: Vec<Result<PullBinlogResp, Status>> = match chunk {
                Ok(chunk) => chunk.into_iter().map(Ok).collect(),
                Err(status) => vec![Err(status)],
            };
            futures::stream::iter(items)
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// Feeds one pull stream until the client goes away or the pump closes its streams.
fn stream_binlogs(
    shared: &Shared,
    first: crate::storage::Pull,
    after: i64,
    sender: &mpsc::Sender<Result<Vec<PullBinlogResp>, Status>>,
) {
    let mut last = after;
    let mut pull = Some(first);
    let mut chunk = Vec::new();
    let mut chunk_bytes = 0;
    // Sends the pending chunk; false when the client has gone.
    let flush = |chunk: &mut Vec<PullBinlogResp>, chunk_bytes: &mut usize| {
        *chunk_bytes = 0;
        chunk.is_empty() || sender.blocking_send(Ok(std::mem::take(chunk))).is_ok()
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
                    if flush(&mut chunk, &mut chunk_bytes) {
                        let _ = sender.blocking_send(Err(Status::internal(err.to_string())));
                    }
                    return;
                }
            };
            last = binlog.commit_ts;
            chunk_bytes += binlog.payload.len();
            chunk.push(PullBinlogResp {
                entity: Some(Entity {
                    pos: Some(Pos::default()),
                    payload: binlog.payload.into(),
                    checksum: Vec::new(),
                    meta: Some(Meta {
                        start_ts: binlog.start_ts,
                        commit_ts: binlog.commit_ts,
                    }),
                }),
            });
            if (chunk.len() >= CHUNK_BINLOGS || chunk_bytes >= CHUNK_BYTES)
                && !flush(&mut chunk, &mut chunk_bytes)
            {
                return;
            }
        }
        if !flush(&mut chunk, &mut chunk_bytes) {
            return;
        }
        shared.storage.wait_for_commit_ts_above(last, PULL_WAIT);
    }
}

/// tonic rejects a message over the limit with `OutOfRange`; grpc-go (and so the original pump)
/// answers `ResourceExhausted: grpc: received message larger than max (N vs. M)`, which is what
/// TiDB's pump client matches to report "binlog data is too large" instead of retrying.
async fn oversized_as_resource_exhausted(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let headers = response.headers();
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v == "11");
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(grpc_wire::percent_decode);
    if let (true, Some((found, limit))) =
        (out_of_range, message.as_deref().and_then(parse_too_large))
    {
        let text = format!("grpc: received message larger than max ({found} vs. {limit})");
        let headers = response.headers_mut();
        headers.insert("grpc-status", axum::http::HeaderValue::from_static("8"));
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            headers.insert("grpc-message", value);
        }
    }
    response
}

/// Extracts the sizes from tonic's "decoded message length too large: found N bytes, the limit
/// is: M bytes".
fn parse_too_large(message: &str) -> Option<(u64, u64)> {
    let rest = message.split("message length too large: found ").nth(1)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.split_whitespace().next()?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_size_errors_are_recognised() {
        assert_eq!(
            parse_too_large(
                "Error, decoded message length too large: found 100014 bytes, the limit is: 65536 bytes"
            ),
            Some((100014, 65536))
        );
        assert_eq!(parse_too_large("something else"), None);
    }
}
