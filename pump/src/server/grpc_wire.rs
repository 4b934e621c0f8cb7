//! gRPC's wire format on an HTTP/2 stream, as the pump's two methods need it: the
//! length-prefixed request message (plain or gzip), a unary answer (HEADERS, one DATA frame,
//! trailers) or a trailers-only status, the messages and trailers of a server stream, and
//! `grpc-message`'s percent-encoding.

use std::io::Read;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use prost::Message;
use tonic::Status;

/// A message's prefix: a compression flag and the message length (big-endian u32).
const PREFIX: usize = 5;
const GRPC_CONTENT_TYPE: &str = "application/grpc";
const GZIP: &str = "gzip";

/// Whether a request is a gRPC call.
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(GRPC_CONTENT_TYPE.as_bytes()))
}

/// How the messages of a request are compressed (`grpc-encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The request's encoding; one we do not speak is refused, as grpc-go refuses it.
    pub(super) fn of_request(headers: &HeaderMap) -> Result<Encoding, Status> {
        match headers.get("grpc-encoding").map(HeaderValue::as_bytes) {
            None | Some(b"identity") => Ok(Encoding::Identity),
            Some(b"gzip") => Ok(Encoding::Gzip),
            Some(other) => Err(Status::unimplemented(format!(
                "grpc: Decompressor is not installed for grpc-encoding \"{}\"",
                String::from_utf8_lossy(other)
            ))),
        }
    }
}

/// Whether the client takes gzip-compressed messages (`grpc-accept-encoding`), which a drainer
/// with `compressor = "gzip"` asks for.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all("grpc-accept-encoding")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| name.trim() == GZIP)
}

/// Reads the one message of a unary request. A message over `limit` bytes is refused as soon
/// as its prefix is read (or while it is decompressed), with grpc-go's `ResourceExhausted` text
/// (TiDB's pump client matches it to report "binlog data is too large" instead of retrying), so
/// it is never held whole.
pub(super) async fn read_message(
    body: &mut RecvStream,
    limit: usize,
    encoding: Encoding,
) -> Result<Bytes, Status> {
    let (compressed, message) = read_framed(body, limit).await?;
    match (compressed, encoding) {
        (false, _) => Ok(message),
        (true, Encoding::Gzip) => gunzip(&message, limit),
        (true, Encoding::Identity) => Err(Status::internal(
            "grpc: compressed flag set with identity or empty encoding",
        )),
    }
}

/// Reads what is left of a request body after its message, until the client ends the stream
/// (an empty DATA frame, usually right behind the message), freeing its window as it goes.
/// Answering first makes h2 reset the stream; a client frame arriving for it later counts as a
/// locally reset stream, and h2 closes a connection that had 1024 of them with
/// `ENHANCE_YOUR_CALM` ("too_many_internal_resets"): busy writers lost their connection.
pub(super) async fn read_to_end(body: &mut RecvStream) {
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(_) => return,
        }
    }
}

async fn read_framed(body: &mut RecvStream, limit: usize) -> Result<(bool, Bytes), Status> {
    let mut buffered = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk =
            chunk.map_err(|err| Status::cancelled(format!("the request broke off: {err}")))?;
        // The message is bounded by `limit`, checked below, so the window can reopen at once.
        let _ = body.flow_control().release_capacity(chunk.len());
        if buffered.is_empty()
            && let Some((compressed, len)) = message_prefix(&chunk, limit)?
            && chunk.len() >= PREFIX + len
        {
            // The usual case: the whole message in one DATA frame, taken without a copy.
            return Ok((compressed, chunk.slice(PREFIX..PREFIX + len)));
        }
        buffered.extend_from_slice(&chunk);
        if let Some((compressed, len)) = message_prefix(&buffered, limit)? {
            if buffered.len() >= PREFIX + len {
                buffered.advance(PREFIX);
                buffered.truncate(len);
                return Ok((compressed, buffered.freeze()));
            }
            buffered.reserve(PREFIX + len - buffered.len());
        }
    }
    Err(Status::internal("Missing request message."))
}

/// The compression flag and length of the message `bytes` starts with, once its prefix is
/// complete.
fn message_prefix(bytes: &[u8], limit: usize) -> Result<Option<(bool, usize)>, Status> {
    let Some(prefix) = bytes.get(..PREFIX) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > limit {
        return Err(Status::resource_exhausted(format!(
            "grpc: received message larger than max ({len} vs. {limit})"
        )));
    }
    Ok(Some((prefix[0] != 0, len)))
}

fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, Status> {
    let mut message = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut message)
        .map_err(|err| {
            Status::internal(format!("grpc: failed to decompress the message: {err}"))
        })?;
    if message.len() > limit {
        return Err(Status::resource_exhausted(format!(
            "grpc: received message after decompression larger than max ({} vs. {limit})",
            message.len()
        )));
    }
    Ok(message.into())
}

/// Appends `message` to `chunk`, framed, gzip-compressed when `gzip`.
pub(super) fn put_message(
    chunk: &mut BytesMut,
    message: &impl Message,
    gzip: bool,
) -> Result<(), Status> {
    let encoded = message.encoded_len();
    let too_large = || Status::resource_exhausted("a message over 4 GiB");
    if !gzip {
        chunk.reserve(PREFIX + encoded);
        chunk.put_u8(0);
        chunk.put_u32(u32::try_from(encoded).map_err(|_| too_large())?);
        // `reserve` made room, and encoding into a BytesMut cannot fail otherwise.
        message
            .encode(chunk)
            .map_err(|err| Status::internal(err.to_string()))?;
        return Ok(());
    }
    let mut compressor = flate2::write::GzEncoder::new(
        Vec::with_capacity(encoded / 2),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(&mut compressor, &message.encode_to_vec())
        .and_then(|()| compressor.try_finish())
        .map_err(|err| Status::internal(format!("grpc: failed to compress: {err}")))?;
    let compressed = compressor.get_ref();
    chunk.reserve(PREFIX + compressed.len());
    chunk.put_u8(1);
    chunk.put_u32(u32::try_from(compressed.len()).map_err(|_| too_large())?);
    chunk.put_slice(compressed);
    Ok(())
}

/// Starts a server stream's answer; `None` when the client has gone.
pub(super) fn start_stream(
    respond: &mut SendResponse<Bytes>,
    gzip: bool,
) -> Option<SendStream<Bytes>> {
    let mut head = http::Response::new(());
    let headers = head.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(GRPC_CONTENT_TYPE));
    if gzip {
        headers.insert("grpc-encoding", HeaderValue::from_static(GZIP));
    }
    respond.send_response(head, false).ok()
}

/// Ends a server stream with `status` in its trailers.
pub(super) fn end_stream(stream: &mut SendStream<Bytes>, status: &Status) {
    let _ = stream.send_trailers(status_headers(status));
}

/// Answers a unary call: `message` framed with status OK, or a trailers-only status. A client
/// that has gone is not an error here: there is no one left to tell.
pub(super) fn answer(respond: &mut SendResponse<Bytes>, outcome: Result<impl Message, Status>) {
    let message = match outcome {
        Ok(message) => message,
        Err(status) => return refuse(respond, &status),
    };
    let Some(mut stream) = start_stream(respond, false) else {
        return;
    };
    let mut frame = BytesMut::new();
    let status = match put_message(&mut frame, &message, false) {
        Ok(()) if stream.send_data(frame.freeze(), false).is_err() => return,
        Ok(()) => Status::ok(""),
        Err(status) => status,
    };
    end_stream(&mut stream, &status);
}

/// Refuses a call with a trailers-only status.
pub(super) fn refuse(respond: &mut SendResponse<Bytes>, status: &Status) {
    let _ = respond.send_response(status_head(status), true);
}

/// A trailers-only answer: HTTP 200 with the status in the headers, as grpc-go and tonic send
/// a failed unary call.
fn status_head(status: &Status) -> http::Response<()> {
    let mut head = http::Response::new(());
    *head.headers_mut() = status_headers(status);
    head.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(GRPC_CONTENT_TYPE));
    head
}

/// `grpc-status` and, unless empty, `grpc-message`.
fn status_headers(status: &Status) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    if !status.message().is_empty()
        && let Ok(message) = HeaderValue::from_str(&percent_encode(status.message()))
    {
        headers.insert("grpc-message", message);
    }
    headers
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%` itself, as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_text_is_percent_encoded() {
        assert_eq!(percent_encode("no online: paused"), "no online: paused");
        assert_eq!(percent_encode("100% → x"), "100%25 %E2%86%92 x");
    }

    #[test]
    fn a_message_prefix_is_checked_against_the_limit() {
        let prefix = |flag: u8, len: u32| {
            let mut bytes = vec![flag];
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes
        };
        assert_eq!(message_prefix(&prefix(0, 10)[..3], 100).ok(), Some(None));
        assert_eq!(
            message_prefix(&prefix(0, 100), 100).ok(),
            Some(Some((false, 100)))
        );
        assert_eq!(
            message_prefix(&prefix(1, 100), 100).ok(),
            Some(Some((true, 100)))
        );
        let refused = message_prefix(&prefix(0, 101), 100).err();
        assert_eq!(
            refused.as_ref().map(|s| (s.code(), s.message())),
            Some((
                tonic::Code::ResourceExhausted,
                "grpc: received message larger than max (101 vs. 100)"
            ))
        );
    }

    #[test]
    fn gzip_messages_round_trip_and_are_bounded_after_decompression() {
        let request = binlog_proto::binlog::WriteBinlogReq {
            cluster_id: 7,
            payload: vec![b'x'; 10_000],
        };
        let mut chunk = BytesMut::new();
        put_message(&mut chunk, &request, true).ok();
        assert_eq!(chunk[0], 1, "flagged compressed");
        assert!(chunk.len() < 1000, "10 kB of one byte compresses well");
        let compressed = &chunk[PREFIX..];
        let decoded = gunzip(compressed, 20_000)
            .ok()
            .and_then(|bytes| binlog_proto::binlog::WriteBinlogReq::decode(bytes).ok());
        assert_eq!(decoded, Some(request));
        assert_eq!(
            gunzip(compressed, 5_000).err().map(|s| s.code()),
            Some(tonic::Code::ResourceExhausted)
        );
        assert_eq!(
            gunzip(b"not gzip", 5_000).err().map(|s| s.code()),
            Some(tonic::Code::Internal)
        );
    }

    #[test]
    fn encodings_are_read_from_the_headers() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        assert_eq!(
            Encoding::of_request(&headers).ok(),
            Some(Encoding::Identity)
        );
        assert!(!accepts_gzip(&headers));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&headers));
        headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        assert_eq!(Encoding::of_request(&headers).ok(), Some(Encoding::Gzip));
        headers.insert("grpc-encoding", HeaderValue::from_static("snappy"));
        assert_eq!(
            Encoding::of_request(&headers).err().map(|s| s.code()),
            Some(tonic::Code::Unimplemented)
        );
        headers.insert(
            "grpc-accept-encoding",
            HeaderValue::from_static("identity, deflate,gzip"),
        );
        assert!(accepts_gzip(&headers));
    }
}
