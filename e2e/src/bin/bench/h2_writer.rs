//! `WriteBinlog` calls made straight on HTTP/2 connections (the `h2` crate), with gRPC's
//! message framing written here.
//!
//! Why not a tonic channel: the 64 load clients share the machine's two cores with the pump under
//! test, and a tonic channel spends about 30 µs of CPU per unary call (its buffer task, hyper's
//! dispatch task and one body task per request), as much as the pump spends on the binlog. Real
//! TiDB servers run elsewhere. These calls put the same frames on the wire (HEADERS, one DATA
//! frame with the length-prefixed message; the answer's HEADERS, DATA and trailers) from the
//! calling task itself.

use anyhow::{Context, anyhow};
use binlog_proto::binlog::{WriteBinlogReq, WriteBinlogResp};
use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, Request, Uri};
use prost::Message;

/// gRPC's frame header: a compression flag and the message length (big-endian u32).
const FRAME_HEADER: usize = 5;

/// One HTTP/2 connection to a pump, shared by the clients that clone it.
#[derive(Clone)]
pub(crate) struct H2Writer {
    send: SendRequest<Bytes>,
    uri: Uri,
}

impl H2Writer {
    /// Connects to `addr` (`host:port`) without TLS; the connection is driven by its own task
    /// until every clone is dropped.
    pub(crate) async fn connect(addr: &str) -> anyhow::Result<H2Writer> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to the pump at {addr}"))?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::handshake(tcp)
            .await
            .with_context(|| format!("HTTP/2 handshake with the pump at {addr}"))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a benchmark connection ended");
            }
        });
        let uri = format!("http://{addr}/binlog.Pump/WriteBinlog")
            .parse()
            .context("the pump's address is no valid authority")?;
        Ok(H2Writer { send, uri })
    }

    /// One `WriteBinlog` call; an error carries the gRPC status or the pump's `errmsg`.
    pub(crate) async fn write_binlog(&self, request: &WriteBinlogReq) -> anyhow::Result<()> {
        let len = request.encoded_len();
        let mut frame = BytesMut::with_capacity(FRAME_HEADER + len);
        frame.put_u8(0);
        frame.put_u32(u32::try_from(len).context("a request over 4 GiB")?);
        request.encode(&mut frame)?;

        let head = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/grpc")
            .header(TE, "trailers")
            .body(())?;
        let mut send = self.send.clone().ready().await?;
        let (response, mut outgoing) = send.send_request(head, false)?;
        outgoing.send_data(frame.freeze(), true)?;

        let (parts, mut body) = response.await?.into_parts();
        // A failure may come as a trailers-only answer: the status in the headers.
        check_status(&parts.headers)?;
        let mut message = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await?
            .context("a WriteBinlog answer without trailers")?;
        check_status(&trailers)?;
        let payload = message
            .get(FRAME_HEADER..)
            .context("a WriteBinlog answer without a message")?;
        let answer = WriteBinlogResp::decode(payload).context("decoding a WriteBinlogResp")?;
        if answer.errmsg.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("WriteBinlog failed: {}", answer.errmsg))
        }
    }
}

/// An error for a non-zero `grpc-status`, naming its `grpc-message`.
fn check_status(headers: &HeaderMap) -> anyhow::Result<()> {
    match headers.get("grpc-status").map(|s| s.as_bytes()) {
        None | Some(b"0") => Ok(()),
        Some(code) => Err(anyhow!(
            "WriteBinlog failed with gRPC status {}: {}",
            String::from_utf8_lossy(code),
            headers
                .get("grpc-message")
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                .unwrap_or_default()
        )),
    }
}
