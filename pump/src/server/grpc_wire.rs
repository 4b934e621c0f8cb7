//! gRPC's wire format for a unary call answered straight on an HTTP/2 stream: the
//! length-prefixed request message, the answer (HEADERS, one DATA frame, trailers) or a
//! trailers-only status, and `grpc-message`'s percent-encoding.
//!
//! Only what `WriteBinlog` needs: uncompressed messages (a compressed request goes to tonic,
//! see [`super::connection`]), one message per request.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use tonic::Status;

/// A message's prefix: a compression flag and the message length (big-endian u32).
const PREFIX: usize = 5;
const GRPC_CONTENT_TYPE: &str = "application/grpc";

/// Whether a request is a gRPC call whose message arrives uncompressed.
pub(super) fn is_uncompressed_grpc(headers: &HeaderMap) -> bool {
    let grpc = headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(GRPC_CONTENT_TYPE.as_bytes()));
    let identity = headers
        .get("grpc-encoding")
        .is_none_or(|value| value == "identity");
    grpc && identity
}

/// Reads the one message of a unary request. A message over `limit` bytes is refused as soon
/// as its prefix is read, with grpc-go's `ResourceExhausted` text (TiDB's pump client matches it
/// to report "binlog data is too large" instead of retrying), so it is never buffered.
pub(super) async fn read_message(body: &mut RecvStream, limit: usize) -> Result<Bytes, Status> {
    let mut buffered = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk =
            chunk.map_err(|err| Status::cancelled(format!("the request broke off: {err}")))?;
        // The message is bounded by `limit`, checked below, so the window can reopen at once.
        let _ = body.flow_control().release_capacity(chunk.len());
        if buffered.is_empty()
            && let Some(len) = message_len(&chunk, limit)?
            && chunk.len() >= PREFIX + len
        {
            // The usual case: the whole message in one DATA frame, taken without a copy.
            return Ok(chunk.slice(PREFIX..PREFIX + len));
        }
        buffered.extend_from_slice(&chunk);
        if let Some(len) = message_len(&buffered, limit)? {
            if buffered.len() >= PREFIX + len {
                buffered.advance(PREFIX);
                buffered.truncate(len);
                return Ok(buffered.freeze());
            }
            buffered.reserve(PREFIX + len - buffered.len());
        }
    }
    Err(Status::internal("Missing request message."))
}

/// The length of the message `bytes` starts with, once its prefix is complete.
fn message_len(bytes: &[u8], limit: usize) -> Result<Option<usize>, Status> {
    let Some(prefix) = bytes.get(..PREFIX) else {
        return Ok(None);
    };
    if prefix[0] != 0 {
        return Err(Status::internal(
            "a compressed message without a grpc-encoding header",
        ));
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > limit {
        return Err(Status::resource_exhausted(format!(
            "grpc: received message larger than max ({len} vs. {limit})"
        )));
    }
    Ok(Some(len))
}

/// Answers a unary call: the encoded message with status OK, or a trailers-only status. A
/// client that has gone is not an error here: there is no one left to tell.
pub(super) fn answer(respond: &mut SendResponse<Bytes>, outcome: Result<Vec<u8>, Status>) {
    let message = match outcome {
        Ok(message) => message,
        Err(status) => {
            let _ = respond.send_response(status_head(&status), true);
            return;
        }
    };
    let mut head = http::Response::new(());
    head.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(GRPC_CONTENT_TYPE));
    let Ok(mut stream) = respond.send_response(head, false) else {
        return;
    };
    let mut frame = BytesMut::with_capacity(PREFIX + message.len());
    frame.put_u8(0);
    // A WriteBinlogResp is a few bytes.
    frame.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    frame.put_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    if stream.send_data(frame.freeze(), false).is_ok() {
        let _ = stream.send_trailers(trailers);
    }
}

/// A trailers-only answer: HTTP 200 with the status in the headers, as grpc-go and tonic send
/// a failed unary call.
fn status_head(status: &Status) -> http::Response<()> {
    let mut head = http::Response::new(());
    let headers = head.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(GRPC_CONTENT_TYPE));
    headers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    if let Ok(message) = HeaderValue::from_str(&percent_encode(status.message())) {
        headers.insert("grpc-message", message);
    }
    head
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%` itself, as `%XX`.
pub(super) fn percent_encode(text: &str) -> String {
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

/// The inverse of [`percent_encode`]; a `%` not followed by two hex digits stays as it is.
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_text_round_trips() {
        let text = "no available space, available: 5 GiB → 100%";
        let encoded = percent_encode(text);
        assert!(encoded.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(percent_decode(&encoded), text);
        assert_eq!(percent_decode("a%20b%2Cc"), "a b,c");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn a_message_prefix_is_checked_against_the_limit() {
        let prefix = |len: u32| {
            let mut bytes = vec![0];
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes
        };
        assert_eq!(message_len(&prefix(10)[..3], 100).ok(), Some(None));
        assert_eq!(message_len(&prefix(100), 100).ok(), Some(Some(100)));
        let refused = message_len(&prefix(101), 100).err();
        assert_eq!(
            refused.as_ref().map(|s| (s.code(), s.message())),
            Some((
                tonic::Code::ResourceExhausted,
                "grpc: received message larger than max (101 vs. 100)"
            ))
        );
        let mut compressed = prefix(1);
        compressed[0] = 1;
        assert_eq!(
            message_len(&compressed, 100).err().map(|s| s.code()),
            Some(tonic::Code::Internal)
        );
    }

    #[test]
    fn only_uncompressed_grpc_is_answered_here() {
        let mut headers = HeaderMap::new();
        assert!(!is_uncompressed_grpc(&headers));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_uncompressed_grpc(&headers));
        headers.insert("grpc-encoding", HeaderValue::from_static("identity"));
        assert!(is_uncompressed_grpc(&headers));
        headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        assert!(!is_uncompressed_grpc(&headers));
    }
}
