//! Which commit ts the checkpoint may pass (reference drainer.md §5.4): a transaction handed to
//! the sink counts only once the sink confirms it; progress that needs no write (pump fake
//! binlogs, fully filtered transactions, skipped DDL) counts once everything handed over before
//! it is confirmed. So the checkpoint never passes an unapplied transaction.
//!
//! Pure bookkeeping. Memory stays bounded by what the sink holds: consecutive no-write items
//! collapse into one entry.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Handed to the sink, not confirmed yet.
    Written(i64),
    /// Needs no write; passable once everything before it is confirmed.
    Passed(i64),
}

/// The checkpoint position tracker.
#[derive(Debug, Clone)]
pub struct Progress {
    pending: VecDeque<Entry>,
    safe: i64,
}

/// A confirmation that does not match the oldest unconfirmed write: the sink broke its
/// in-order promise.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the sink confirmed commit ts {confirmed}, but the oldest unconfirmed write is {expected:?}"
)]
pub struct OutOfOrder {
    pub confirmed: i64,
    pub expected: Option<i64>,
}

impl Progress {
    /// Starts at the checkpoint `start_ts`.
    pub fn new(start_ts: i64) -> Progress {
        Progress {
            pending: VecDeque::new(),
            safe: start_ts,
        }
    }

    /// The highest commit ts the checkpoint may record.
    pub fn safe_ts(&self) -> i64 {
        self.safe
    }

    /// Writes handed to the sink and not yet confirmed.
    pub fn unconfirmed(&self) -> usize {
        self.pending
            .iter()
            .filter(|e| matches!(e, Entry::Written(_)))
            .count()
    }

    /// A transaction was handed to the sink.
    pub fn written(&mut self, commit_ts: i64) {
        self.pending.push_back(Entry::Written(commit_ts));
    }

    /// Progress without a write.
    pub fn passed(&mut self, commit_ts: i64) {
        match self.pending.back_mut() {
            None => self.safe = self.safe.max(commit_ts),
            Some(Entry::Passed(ts)) => *ts = (*ts).max(commit_ts),
            Some(Entry::Written(_)) => self.pending.push_back(Entry::Passed(commit_ts)),
        }
    }

    /// The sink confirmed the oldest write.
    pub fn confirmed(&mut self, commit_ts: i64) -> Result<(), OutOfOrder> {
        match self.pending.front() {
            Some(Entry::Written(ts)) if *ts == commit_ts => {
                self.pending.pop_front();
            }
            front => {
                return Err(OutOfOrder {
                    confirmed: commit_ts,
                    expected: front.and_then(|e| match e {
                        Entry::Written(ts) => Some(*ts),
                        Entry::Passed(_) => None,
                    }),
                });
            }
        }
        self.safe = self.safe.max(commit_ts);
        while let Some(Entry::Passed(ts)) = self.pending.front() {
            self.safe = self.safe.max(*ts);
            self.pending.pop_front();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_without_writes_passes_at_once() {
        let mut progress = Progress::new(10);
        progress.passed(12);
        assert_eq!(progress.safe_ts(), 12);
    }

    #[test]
    fn a_fake_binlog_waits_for_the_writes_before_it() {
        let mut progress = Progress::new(10);
        progress.written(11);
        progress.passed(12);
        progress.written(13);
        progress.passed(14);
        progress.passed(15);
        assert_eq!(progress.safe_ts(), 10);
        progress.confirmed(11).unwrap();
        assert_eq!(progress.safe_ts(), 12);
        assert_eq!(progress.unconfirmed(), 1);
        progress.confirmed(13).unwrap();
        assert_eq!(progress.safe_ts(), 15);
        assert_eq!(progress.unconfirmed(), 0);
    }

    #[test]
    fn consecutive_fakes_take_one_entry() {
        let mut progress = Progress::new(0);
        progress.written(1);
        for ts in 2..10_000 {
            progress.passed(ts);
        }
        assert_eq!(progress.pending.len(), 2);
    }

    #[test]
    fn an_out_of_order_confirmation_is_an_error() {
        let mut progress = Progress::new(0);
        progress.written(5);
        progress.written(6);
        assert_eq!(
            progress.confirmed(6),
            Err(OutOfOrder {
                confirmed: 6,
                expected: Some(5)
            })
        );
    }
}
