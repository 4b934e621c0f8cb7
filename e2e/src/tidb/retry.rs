//! Retry decisions of TiDB's pump client, as pure functions of what happened and how long it has
//! taken. The caller does the waiting.
//!
//! - Prewrite: an error that says `ResourceExhausted` (by text or gRPC code; in practice a
//!   message larger than the pump accepts) fails at once. Any other error is retried after
//!   [`PREWRITE_RETRY_INTERVAL`] on the next choice. The loop gives up when more than the write
//!   timeout has passed **and** the retry count exceeds the number of available pumps. Then every
//!   pump whose registry state is `online` gets one more try.
//! - Commit/rollback: only the pump that took the prewrite, every [`COMMIT_RETRY_INTERVAL`], for
//!   up to the commit retry limit ([`DEFAULT_COMMIT_RETRY_LIMIT`] in TiDB).

use std::fmt;
use std::time::Duration;

/// TiDB's default `[binlog] write-timeout`, which is also the per-RPC timeout.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between prewrite attempts.
pub const PREWRITE_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Pause between commit attempts.
pub const COMMIT_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long a commit or rollback binlog keeps trying its pump.
pub const DEFAULT_COMMIT_RETRY_LIMIT: Duration = Duration::from_secs(600);
/// How often unavailable pumps are probed.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// A failed write RPC as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// The gRPC code (`Unknown` for pump-side refusals, `Unavailable` for dead connections).
    pub code: tonic::Code,
    /// The status message.
    pub message: String,
}

impl fmt::Display for WriteError {
    /// Rendered like grpc-go renders a status error, the text TiDB matches substrings in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rpc error: code = {:?} desc = {}",
            self.code, self.message
        )
    }
}

/// What kind of failure a write error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The binlog will never fit: do not retry.
    ResourceExhausted,
    /// The connection is gone: drop it, then retry.
    Unavailable,
    /// Anything else: retry.
    Other,
}

impl WriteError {
    /// Classifies the error the way TiDB's client does.
    pub fn class(&self) -> ErrorClass {
        if self.code == tonic::Code::ResourceExhausted
            || self.to_string().contains("ResourceExhausted")
        {
            ErrorClass::ResourceExhausted
        } else if self.code == tonic::Code::Unavailable {
            ErrorClass::Unavailable
        } else {
            ErrorClass::Other
        }
    }
}

/// What a prewrite does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrewriteStep {
    /// Return the error now.
    Fail,
    /// Sleep [`PREWRITE_RETRY_INTERVAL`], then try the next choice.
    Retry,
    /// Stop the normal loop and try every registry-online pump once.
    LastResort,
}

/// The decision after attempt number `retry` (0-based) failed with `class`, `elapsed` since the
/// prewrite began, with `available` pumps in the available set now.
pub fn after_prewrite_error(
    class: ErrorClass,
    elapsed: Duration,
    write_timeout: Duration,
    retry: u32,
    available: usize,
) -> PrewriteStep {
    if class == ErrorClass::ResourceExhausted {
        PrewriteStep::Fail
    } else if elapsed > write_timeout && retry as usize > available {
        PrewriteStep::LastResort
    } else {
        PrewriteStep::Retry
    }
}

/// Whether a commit that failed after `elapsed` tries again (after [`COMMIT_RETRY_INTERVAL`]).
/// A binlog too large for the pump never fits, so it is not retried.
pub fn commit_retries(class: ErrorClass, elapsed: Duration, limit: Duration) -> bool {
    class != ErrorClass::ResourceExhausted && elapsed < limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: tonic::Code, message: &str) -> WriteError {
        WriteError {
            code,
            message: message.into(),
        }
    }

    #[test]
    fn errors_render_like_grpc_go_and_classify_by_code_or_text() {
        let too_large = error(
            tonic::Code::ResourceExhausted,
            "grpc: received message larger than max (100005 vs. 65536)",
        );
        assert_eq!(
            too_large.to_string(),
            "rpc error: code = ResourceExhausted desc = grpc: received message larger than max (100005 vs. 65536)"
        );
        assert_eq!(too_large.class(), ErrorClass::ResourceExhausted);
        assert_eq!(
            error(tonic::Code::Unknown, "upstream said ResourceExhausted").class(),
            ErrorClass::ResourceExhausted
        );
        assert_eq!(
            error(tonic::Code::Unavailable, "tcp connect error").class(),
            ErrorClass::Unavailable
        );
        assert_eq!(
            error(tonic::Code::Unknown, "no online: paused").class(),
            ErrorClass::Other
        );
    }

    #[test]
    fn too_large_fails_at_once() {
        assert_eq!(
            after_prewrite_error(
                ErrorClass::ResourceExhausted,
                Duration::ZERO,
                DEFAULT_WRITE_TIMEOUT,
                0,
                3
            ),
            PrewriteStep::Fail
        );
    }

    #[test]
    fn giving_up_needs_both_the_timeout_and_more_retries_than_pumps() {
        let timeout = Duration::from_secs(15);
        let early = Duration::from_secs(1);
        let late = Duration::from_secs(16);
        let step = |elapsed, retry, available| {
            after_prewrite_error(ErrorClass::Other, elapsed, timeout, retry, available)
        };
        assert_eq!(step(early, 100, 3), PrewriteStep::Retry, "time left");
        assert_eq!(step(late, 3, 3), PrewriteStep::Retry, "not past every pump");
        assert_eq!(step(late, 4, 3), PrewriteStep::LastResort);
        assert_eq!(step(timeout, 4, 3), PrewriteStep::Retry, "strictly more");
        assert_eq!(step(late, 1, 0), PrewriteStep::LastResort);
        assert_eq!(
            after_prewrite_error(ErrorClass::Unavailable, late, timeout, 4, 3),
            PrewriteStep::LastResort
        );
    }

    #[test]
    fn commits_retry_until_the_limit() {
        let limit = Duration::from_secs(600);
        assert!(commit_retries(
            ErrorClass::Unavailable,
            Duration::from_secs(599),
            limit
        ));
        assert!(commit_retries(ErrorClass::Other, Duration::ZERO, limit));
        assert!(!commit_retries(ErrorClass::Other, limit, limit));
        assert!(!commit_retries(
            ErrorClass::ResourceExhausted,
            Duration::ZERO,
            limit
        ));
    }
}
