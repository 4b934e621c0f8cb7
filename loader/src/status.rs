//! What the loader shows of itself (applied position, queued bytes, retrying state) and the
//! retry pacing shared by its workers and its control connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Failure, LoaderError};

/// How far the loader got: the first `txns` pushed transactions are applied (committed
/// downstream), the last of them with `commit_ts`. Transactions are reported in push order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedPosition {
    pub txns: u64,
    pub commit_ts: i64,
}

/// A connection that keeps failing and is being retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryingState {
    /// `worker N` or `control` (metadata and DDL).
    pub connection: String,
    pub error: String,
    pub attempts: u64,
    /// When the current run of failures began.
    pub since: SystemTime,
}

/// A snapshot for `/status` and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderStatus {
    pub applied: AppliedPosition,
    /// Estimated bytes of pushed transactions not yet applied.
    pub queued_bytes: usize,
    pub safe_mode: bool,
    /// The most recent connection that is retrying, if any.
    pub retrying: Option<RetryingState>,
    /// Why the loader stopped, if it did.
    pub failed: Option<LoaderError>,
}

/// State shared by the handle, the dispatcher and the workers.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) safe_mode: AtomicBool,
    pub(crate) queued_bytes: AtomicUsize,
    pub(crate) retrying: Mutex<Option<RetryingState>>,
    pub(crate) failed: Mutex<Option<LoaderError>>,
}

impl Shared {
    pub(crate) fn safe_mode(&self) -> bool {
        self.safe_mode.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self) -> Option<LoaderError> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    pub(crate) fn set_failed(&self, err: LoaderError) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(err);
        }
    }

    fn retrying(&self) -> Option<RetryingState> {
        self.retrying.lock().ok().and_then(|r| r.clone())
    }

    pub(crate) fn status(&self, applied: AppliedPosition) -> LoaderStatus {
        LoaderStatus {
            applied,
            queued_bytes: self.queued_bytes.load(Ordering::Relaxed),
            safe_mode: self.safe_mode(),
            retrying: self.retrying(),
            failed: self.failed(),
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// A connection that keeps failing logs once per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Paces the retries of one operation on one connection: capped exponential backoff,
/// rate-limited logging, and the shared retrying state.
pub(crate) struct Retrier<'a> {
    shared: &'a Shared,
    connection: String,
    attempts: u64,
    since: SystemTime,
    last_log: Option<Instant>,
}

impl<'a> Retrier<'a> {
    pub(crate) fn new(shared: &'a Shared, connection: String) -> Retrier<'a> {
        Retrier {
            shared,
            connection,
            attempts: 0,
            since: SystemTime::now(),
            last_log: None,
        }
    }

    /// Records a failed attempt at `what`; returns how long to wait before the next one.
    pub(crate) fn failed(&mut self, what: &str, failure: &Failure) -> Duration {
        self.attempts += 1;
        if self.attempts == 1 {
            self.since = SystemTime::now();
        }
        let error = failure.message();
        if self.last_log.is_none_or(|at| at.elapsed() >= LOG_INTERVAL) {
            self.last_log = Some(Instant::now());
            tracing::warn!(
                connection = %self.connection,
                attempts = self.attempts,
                %error,
                "{what} failed; retrying"
            );
        }
        if let Ok(mut retrying) = self.shared.retrying.lock() {
            *retrying = Some(RetryingState {
                connection: self.connection.clone(),
                error,
                attempts: self.attempts,
                since: self.since,
            });
        }
        let exponent = u32::try_from(self.attempts - 1).unwrap_or(u32::MAX).min(8);
        (FIRST_BACKOFF * 2u32.pow(exponent)).min(MAX_BACKOFF)
    }

    /// Ends a run of failures (clears the shared state if it is this connection's).
    pub(crate) fn succeeded(&mut self) {
        if self.attempts == 0 {
            return;
        }
        tracing::info!(connection = %self.connection, attempts = self.attempts, "succeeded after retries");
        self.attempts = 0;
        self.last_log = None;
        if let Ok(mut retrying) = self.shared.retrying.lock()
            && retrying
                .as_ref()
                .is_some_and(|r| r.connection == self.connection)
        {
            *retrying = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_and_success_clears_the_state() {
        let shared = Shared::default();
        let mut retrier = Retrier::new(&shared, "worker 1".into());
        let failure = Failure::Connection("refused".into());
        let waits: Vec<Duration> = (0..8).map(|_| retrier.failed("apply", &failure)).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        let state = shared.status(AppliedPosition::default()).retrying.unwrap();
        assert_eq!((state.attempts, state.error.as_str()), (8, "refused"));

        let mut other = Retrier::new(&shared, "worker 2".into());
        other.failed("apply", &failure);
        retrier.succeeded();
        assert!(
            shared.status(AppliedPosition::default()).retrying.is_some(),
            "worker 2 still fails"
        );
        other.succeeded();
        assert!(shared.status(AppliedPosition::default()).retrying.is_none());
    }
}
