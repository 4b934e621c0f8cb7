//! How the pump's port serves a connection: HTTP/1.1 (the HTTP API) through hyper, HTTP/2
//! through `h2` directly.
//!
//! On HTTP/2, `WriteBinlog` is answered by the connection's own task
//! ([`grpc::write_binlog_on_stream`]), `PullBinlogs` by a task of its own, and every other stream
//! (the HTTP API spoken over HTTP/2) goes to the axum router in a task of its own. Why:
//! `WriteBinlog` is the pump's hot path, and through hyper, axum and tonic each call cost a task,
//! a router pass and a body of its own, about as much CPU as the rest of the write. In one task,
//! the answers of one group commit are also queued together and leave in one socket write instead
//! of one each.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::serve::Listener;
use binlog_cluster::shutdown::stopped;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::{CONNECTION, TRANSFER_ENCODING};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::Service;

use super::grpc::{self, Method};
use super::{Shared, grpc_wire};

/// What an HTTP/2 client sends first.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Flow-control windows: a 1 KiB binlog from each of many callers never waits for a window
/// update, and one large binlog streams at disk speed (hyper's defaults, which tonic used).
const WINDOW_BYTES: u32 = 1 << 20;
const MAX_CONCURRENT_STREAMS: u32 = 200;
const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;

/// Serves connections from `listener` until `stop` is set, then lets each finish what it has in
/// flight.
pub(super) async fn serve<L>(
    mut listener: L,
    shared: Arc<Shared>,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) where
    L: Listener,
{
    let mut connections = JoinSet::new();
    let mut stop_accepting = stop.clone();
    loop {
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            () = stopped(&mut stop_accepting) => break,
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(
            io,
            shared.clone(),
            router.clone(),
            stop.clone(),
        ));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<Io>(
    mut io: Io,
    shared: Arc<Shared>,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut start = Vec::with_capacity(HTTP2_PREFACE.len());
    // A client that connects and says nothing must not hold up the pump's stop.
    let mut stop_reading = stop.clone();
    let is_http2 = tokio::select! {
        is_http2 = read_protocol(&mut io, &mut start) => is_http2,
        () = stopped(&mut stop_reading) => return,
    };
    let Some(is_http2) = is_http2 else {
        return;
    };
    let io = Rewind {
        start: Bytes::from(start),
        io,
    };
    if is_http2 {
        serve_http2(io, shared, router, stop).await;
    } else {
        serve_http1(io, router, stop).await;
    }
}

/// Reads until the first bytes are, or cannot be, HTTP/2's preface; `None` when the client left
/// first. What was read is in `start`.
async fn read_protocol<Io: AsyncRead + Unpin>(io: &mut Io, start: &mut Vec<u8>) -> Option<bool> {
    let mut buffer = [0u8; HTTP2_PREFACE.len()];
    loop {
        let want = HTTP2_PREFACE.len() - start.len();
        match io.read(&mut buffer[..want]).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => start.extend_from_slice(&buffer[..read]),
        }
        if !HTTP2_PREFACE.starts_with(start) {
            return Some(false);
        }
        if start.len() == HTTP2_PREFACE.len() {
            return Some(true);
        }
    }
}

async fn serve_http1<Io>(io: Io, router: axum::Router, mut stop: watch::Receiver<bool>)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut connection = pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = outcome {
        tracing::debug!(error = %err, "an HTTP/1.1 connection ended");
    }
}

/// Why an HTTP/2 connection's task stopped serving streams.
enum Event {
    Stop,
    Closed,
}

async fn serve_http2<Io>(
    io: Io,
    shared: Arc<Shared>,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = h2::server::Builder::new()
        .initial_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .handshake::<_, Bytes>(io);
    let mut connection = match handshake.await {
        Ok(connection) => connection,
        Err(err) => {
            tracing::debug!(error = %err, "an HTTP/2 handshake failed");
            return;
        }
    };
    let mut writes = FuturesUnordered::new();
    let mut stop_signal = pin!(async move { stopped(&mut stop).await });
    let mut stopping = false;
    loop {
        let event = poll_fn(|cx| {
            loop {
                // Every answer that is ready is queued before the connection is polled, so that
                // they leave together.
                while let Poll::Ready(Some(())) = writes.poll_next_unpin(cx) {}
                if !stopping && stop_signal.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Stop);
                }
                match ready!(connection.poll_accept(cx)) {
                    Some(Ok((request, respond))) => {
                        let method = Method::of_path(request.uri().path())
                            .filter(|_| grpc_wire::is_grpc(request.headers()));
                        match method {
                            Some(Method::WriteBinlog) => writes.push(grpc::write_binlog_on_stream(
                                shared.clone(),
                                request,
                                respond,
                            )),
                            Some(Method::PullBinlogs) => {
                                tokio::spawn(grpc::pull_binlogs_on_stream(
                                    shared.clone(),
                                    request,
                                    respond,
                                ));
                            }
                            None => {
                                tokio::spawn(answer_with_router(router.clone(), request, respond));
                            }
                        }
                    }
                    Some(Err(err)) => {
                        tracing::debug!(error = %err, "an HTTP/2 connection ended");
                        return Poll::Ready(Event::Closed);
                    }
                    None => return Poll::Ready(Event::Closed),
                }
            }
        })
        .await;
        match event {
            Event::Stop => {
                stopping = true;
                connection.graceful_shutdown();
            }
            Event::Closed => break,
        }
    }
    // Writes still in flight finish (their binlogs become durable) though no one hears the answer.
    while writes.next().await.is_some() {}
}

/// Answers one HTTP/2 stream with the router, streaming the response body under the stream's
/// flow control until it ends or the client resets the stream.
async fn answer_with_router(
    mut router: axum::Router,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let request = request.map(|body| axum::body::Body::new(StreamBody::new(body)));
    // The router is always ready and never fails: its error type is `Infallible`.
    let ready =
        poll_fn(|cx| Service::<http::Request<axum::body::Body>>::poll_ready(&mut router, cx));
    let response = match ready.await {
        Ok(()) => router.call(request).await,
        Err(never) => match never {},
    };
    let Ok(response) = response;
    let (mut head, body) = response.into_parts();
    // HTTP/2 forbids connection-specific headers.
    head.headers.remove(CONNECTION);
    head.headers.remove(TRANSFER_ENCODING);
    let end = body.is_end_stream();
    let Ok(mut stream) = respond.send_response(http::Response::from_parts(head, ()), end) else {
        return;
    };
    if end {
        return;
    }
    let mut body = pin!(body);
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        let frame = match frame {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(err)) => {
                tracing::debug!(error = %err, "a response body failed");
                stream.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                if send_in_window(&mut stream, data).await.is_err() {
                    return;
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = stream.send_trailers(trailers);
                }
                return;
            }
        }
    }
}

/// Sends `data` as the peer's flow-control window allows, so a slow reader holds back the
/// response body (a pull stream) instead of letting it pile up in memory.
pub(super) async fn send_in_window(
    stream: &mut h2::SendStream<Bytes>,
    mut data: Bytes,
) -> Result<(), ()> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(granted)) => granted,
            Some(Err(_)) | None => return Err(()),
        };
        let chunk = data.split_to(granted.min(data.len()));
        stream.send_data(chunk, false).map_err(|_| ())?;
    }
    Ok(())
}

/// A request body read from an HTTP/2 stream; each chunk's window is released as it is taken.
struct StreamBody {
    stream: RecvStream,
    data_done: bool,
}

impl StreamBody {
    fn new(stream: RecvStream) -> StreamBody {
        StreamBody {
            stream,
            data_done: false,
        }
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => self.data_done = true,
            }
        }
        match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

/// A connection whose first bytes were already read to tell the protocol: they are read again
/// first.
struct Rewind<Io> {
    start: Bytes,
    io: Io,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Rewind<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.start.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let len = self.start.len().min(buf.remaining());
        let replayed = self.start.split_to(len);
        buf.put_slice(&replayed);
        Poll::Ready(Ok(()))
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Rewind<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_protocol_is_told_by_the_first_bytes() {
        let cases: [(&[u8], Option<bool>); 3] = [
            (HTTP2_PREFACE, Some(true)),
            (b"GET /status HTTP/1.1\r\nHost: pump\r\n\r\n", Some(false)),
            (b"PRI * HTTP", None),
        ];
        for (sent, expected) in cases {
            let (mut client, mut server) = tokio::io::duplex(64);
            client.write_all(sent).await.ok();
            drop(client);
            let mut start = Vec::new();
            assert_eq!(read_protocol(&mut server, &mut start).await, expected);
            assert!(sent.starts_with(&start), "what was read is kept");
        }
    }

    #[tokio::test]
    async fn rewound_bytes_are_read_before_the_rest() {
        let (client, server) = tokio::io::duplex(64);
        let mut rewound = Rewind {
            start: Bytes::from_static(b"PRI "),
            io: server,
        };
        let mut client = client;
        client.write_all(b"rest").await.ok();
        drop(client);
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.ok();
        assert_eq!(all, b"PRI rest");
    }
}
