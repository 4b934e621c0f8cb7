//! The commit-ts watermark (the original's `MaxCommitTS`): the largest commit ts below which this
//! pump will never again receive a commit.
//!
//! TiDB asks for a commit ts only after its prewrite binlog was acknowledged, so every transaction
//! that can still commit below some ts has its prewrite *ahead* of that commit in arrival order.
//! Hence the rule: outcomes (commits, rollbacks, fake binlogs) raise the watermark only when no
//! prewrite that arrived before them is still waiting for its outcome. A prewrite at the head of
//! the arrival order blocks everything behind it until its outcome arrives.
//!
//! The original keeps every item in a list until it passes the head. This version keeps only the
//! *unmatched prewrites*, each with the largest commit ts that arrived behind it and before the next
//! unmatched prewrite: the same watermark, with memory proportional to the transactions in flight
//! rather than to the traffic behind a slow one.
//!
//! A prewrite whose outcome never arrives blocks the watermark forever; [`Sorter::oldest_unmatched`]
//! tells the caller which one and for how long so it can be reported loudly (it is never assumed
//! rolled back here). Pure data structure: no I/O, time is passed in.
//!
//! Each prewrite carries a caller-chosen `link` (the storage uses the prewrite's value pointer) that
//! is handed back when its outcome arrives.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Tracks unmatched prewrites and the watermark. `L` is what the caller attaches to a prewrite.
#[derive(Debug, Clone)]
pub struct Sorter<L = ()> {
    max_commit_ts: i64,
    next_arrival: u64,
    /// Unmatched prewrites keyed by arrival number (so the first is the oldest).
    unmatched: BTreeMap<u64, Unmatched<L>>,
    arrival_by_start_ts: HashMap<i64, u64>,
}

#[derive(Debug, Clone)]
struct Unmatched<L> {
    start_ts: i64,
    link: L,
    since: Instant,
    /// Largest commit ts that arrived after this prewrite and before the next unmatched one; it
    /// becomes visible once this prewrite (and every earlier one) is matched.
    max_commit_behind: i64,
}

/// The oldest prewrite still waiting for its commit or rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldestUnmatched {
    pub start_ts: i64,
    /// Time since it was pushed (or since the sorter was restored, after a restart).
    pub waited: Duration,
}

/// The sorter's state in a form that can be persisted and restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorterSnapshot<L> {
    pub max_commit_ts: i64,
    /// In arrival order.
    pub unmatched: Vec<PendingPrewrite<L>>,
}

impl<L> Default for SorterSnapshot<L> {
    fn default() -> Self {
        SorterSnapshot {
            max_commit_ts: 0,
            unmatched: Vec::new(),
        }
    }
}

/// One unmatched prewrite in a [`SorterSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingPrewrite<L> {
    pub start_ts: i64,
    pub link: L,
    pub max_commit_behind: i64,
}

impl<L: Copy> Default for Sorter<L> {
    fn default() -> Self {
        Sorter {
            max_commit_ts: 0,
            next_arrival: 0,
            unmatched: BTreeMap::new(),
            arrival_by_start_ts: HashMap::new(),
        }
    }
}

impl<L: Copy> Sorter<L> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A prewrite arrived. A second prewrite for a start ts that is already waiting (a client
    /// retry) is ignored: one outcome matches both.
    pub fn push_prewrite(&mut self, start_ts: i64, link: L, now: Instant) {
        if self.arrival_by_start_ts.contains_key(&start_ts) {
            return;
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.unmatched.insert(
            arrival,
            Unmatched {
                start_ts,
                link,
                since: now,
                max_commit_behind: 0,
            },
        );
        self.arrival_by_start_ts.insert(start_ts, arrival);
    }

    /// A commit, rollback or fake binlog arrived. Returns the link of the prewrite it matched, if
    /// one was waiting. A rollback has commit ts 0 and so never raises the watermark; a fake
    /// binlog (start ts == commit ts) matches nothing and raises it.
    pub fn push_outcome(&mut self, start_ts: i64, commit_ts: i64) -> Option<L> {
        let matched = self
            .arrival_by_start_ts
            .remove(&start_ts)
            .and_then(|arrival| {
                let prewrite = self.unmatched.remove(&arrival)?;
                // What waited behind the matched prewrite now waits behind the previous unmatched
                // one, or is released if there is none.
                self.raise_after(arrival, prewrite.max_commit_behind);
                Some(prewrite.link)
            });
        // This outcome arrived after every prewrite still unmatched.
        self.raise_after(u64::MAX, commit_ts);
        matched
    }

    /// Raises the commit ts held by the last unmatched prewrite that arrived before `arrival`, or
    /// the watermark itself when there is none.
    fn raise_after(&mut self, arrival: u64, commit_ts: i64) {
        match self.unmatched.range_mut(..arrival).next_back() {
            Some((_, blocker)) => {
                blocker.max_commit_behind = blocker.max_commit_behind.max(commit_ts)
            }
            None => self.max_commit_ts = self.max_commit_ts.max(commit_ts),
        }
    }

    /// Every commit at or below this ts has been pushed.
    pub fn max_commit_ts(&self) -> i64 {
        self.max_commit_ts
    }

    /// No prewrite is waiting for its outcome.
    pub fn all_matched(&self) -> bool {
        self.unmatched.is_empty()
    }

    pub fn unmatched_len(&self) -> usize {
        self.unmatched.len()
    }

    /// The prewrite that currently holds the watermark back, if any.
    pub fn oldest_unmatched(&self, now: Instant) -> Option<OldestUnmatched> {
        self.unmatched
            .values()
            .next()
            .map(|prewrite| OldestUnmatched {
                start_ts: prewrite.start_ts,
                waited: now.saturating_duration_since(prewrite.since),
            })
    }

    /// Links of all unmatched prewrites, oldest first.
    pub fn unmatched_links(&self) -> impl Iterator<Item = L> + '_ {
        self.unmatched.values().map(|prewrite| prewrite.link)
    }

    pub fn snapshot(&self) -> SorterSnapshot<L> {
        SorterSnapshot {
            max_commit_ts: self.max_commit_ts,
            unmatched: self
                .unmatched
                .values()
                .map(|prewrite| PendingPrewrite {
                    start_ts: prewrite.start_ts,
                    link: prewrite.link,
                    max_commit_behind: prewrite.max_commit_behind,
                })
                .collect(),
        }
    }

    /// Rebuilds a sorter from a snapshot; waiting times restart at `now`.
    pub fn restore(snapshot: &SorterSnapshot<L>, now: Instant) -> Self {
        let mut sorter = Sorter {
            max_commit_ts: snapshot.max_commit_ts,
            ..Self::default()
        };
        for pending in &snapshot.unmatched {
            sorter.push_prewrite(pending.start_ts, pending.link, now);
            if let Some(last) = sorter.unmatched.values_mut().next_back() {
                last.max_commit_behind = last.max_commit_behind.max(pending.max_commit_behind);
            }
        }
        sorter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashSet, VecDeque};

    fn sorter() -> Sorter<()> {
        Sorter::new()
    }

    #[test]
    fn commit_behind_unmatched_prewrite_waits() {
        let now = Instant::now();
        let mut s = sorter();
        s.push_prewrite(10, (), now);
        s.push_prewrite(20, (), now);
        assert_eq!(s.push_outcome(20, 21), Some(()));
        assert_eq!(s.max_commit_ts(), 0, "prewrite 10 is still unmatched");
        assert!(!s.all_matched());
        assert_eq!(s.push_outcome(10, 22), Some(()));
        assert_eq!(s.max_commit_ts(), 22);
        assert!(s.all_matched());
    }

    #[test]
    fn commits_before_the_blocker_advance_the_watermark() {
        let now = Instant::now();
        let mut s = sorter();
        s.push_prewrite(10, (), now);
        s.push_outcome(10, 11);
        s.push_prewrite(12, (), now);
        s.push_prewrite(13, (), now);
        s.push_outcome(13, 15);
        assert_eq!(s.max_commit_ts(), 11);
        s.push_outcome(12, 14);
        assert_eq!(s.max_commit_ts(), 15);
    }

    #[test]
    fn matching_a_middle_prewrite_hands_its_commits_to_the_earlier_one() {
        let now = Instant::now();
        let mut s = sorter();
        s.push_prewrite(1, (), now);
        s.push_prewrite(2, (), now);
        s.push_outcome(7, 7); // fake binlog queued behind prewrite 2
        s.push_prewrite(3, (), now);
        s.push_outcome(2, 5); // matches the middle one
        assert_eq!(s.max_commit_ts(), 0);
        s.push_outcome(1, 4);
        assert_eq!(s.max_commit_ts(), 7, "fake 7 and commit 5 are released");
        assert_eq!(s.oldest_unmatched(now).map(|o| o.start_ts), Some(3));
    }

    #[test]
    fn fake_binlogs_advance_and_rollbacks_do_not() {
        let now = Instant::now();
        let mut s = sorter();
        s.push_outcome(100, 100);
        assert_eq!(s.max_commit_ts(), 100);
        s.push_prewrite(101, (), now);
        assert_eq!(s.push_outcome(101, 0), Some(()), "rollback matches");
        assert_eq!(s.max_commit_ts(), 100, "rollback has no commit ts");
        assert!(s.all_matched());
        s.push_outcome(105, 105);
        assert_eq!(s.max_commit_ts(), 105);
    }

    #[test]
    fn watermark_never_goes_back() {
        let mut s = sorter();
        s.push_outcome(50, 50);
        s.push_outcome(40, 40);
        assert_eq!(s.max_commit_ts(), 50);
    }

    #[test]
    fn unmatched_prewrite_reports_how_long_it_waited() {
        let start = Instant::now();
        let mut s = sorter();
        assert_eq!(s.oldest_unmatched(start), None);
        s.push_prewrite(9, (), start);
        s.push_prewrite(11, (), start + Duration::from_secs(5));
        let later = start + Duration::from_secs(700);
        assert_eq!(
            s.oldest_unmatched(later),
            Some(OldestUnmatched {
                start_ts: 9,
                waited: Duration::from_secs(700)
            })
        );
    }

    #[test]
    fn duplicate_prewrite_is_matched_by_one_outcome() {
        let now = Instant::now();
        let mut s: Sorter<u32> = Sorter::new();
        s.push_prewrite(5, 1, now);
        s.push_prewrite(5, 2, now);
        assert_eq!(
            s.push_outcome(5, 6),
            Some(1),
            "the first copy's link is kept"
        );
        assert!(s.all_matched());
        assert_eq!(s.max_commit_ts(), 6);
        assert_eq!(
            s.push_outcome(5, 6),
            None,
            "a retried commit matches nothing"
        );
    }

    #[test]
    fn snapshot_restore_preserves_behaviour() {
        let now = Instant::now();
        let mut s: Sorter<u32> = Sorter::new();
        s.push_outcome(3, 3);
        s.push_prewrite(10, 100, now);
        s.push_outcome(8, 8);
        s.push_prewrite(20, 200, now);
        s.push_outcome(9, 9);
        let mut restored = Sorter::restore(&s.snapshot(), now);
        assert_eq!(restored.snapshot(), s.snapshot());
        assert_eq!(restored.max_commit_ts(), 3);
        assert_eq!(restored.push_outcome(10, 12), Some(100));
        assert_eq!(restored.max_commit_ts(), 8, "12 arrived behind prewrite 20");
        assert_eq!(restored.push_outcome(20, 21), Some(200));
        assert_eq!(restored.max_commit_ts(), 21);
    }

    /// The original algorithm, kept literally: every item in arrival order, popped from the head
    /// unless it is a prewrite still in the unmatched set.
    #[derive(Default)]
    struct ReferenceSorter {
        items: VecDeque<(bool, i64, i64)>,
        unmatched: HashSet<i64>,
        max_commit_ts: i64,
    }

    impl ReferenceSorter {
        fn push(&mut self, is_prewrite: bool, start_ts: i64, commit_ts: i64) {
            if is_prewrite {
                self.unmatched.insert(start_ts);
            } else {
                self.unmatched.remove(&start_ts);
            }
            self.items.push_back((is_prewrite, start_ts, commit_ts));
            while let Some(&(is_prewrite, start_ts, commit_ts)) = self.items.front() {
                if is_prewrite && self.unmatched.contains(&start_ts) {
                    break;
                }
                self.items.pop_front();
                if !is_prewrite {
                    self.max_commit_ts = self.max_commit_ts.max(commit_ts);
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Prewrite(i64),
        Outcome(i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..12).prop_map(Op::Prewrite),
            (0i64..12, 0i64..200).prop_map(|(s, c)| Op::Outcome(s, c)),
        ]
    }

    proptest! {
        #[test]
        fn matches_the_original_algorithm(ops in proptest::collection::vec(op(), 0..200)) {
            let now = Instant::now();
            let mut ours = sorter();
            let mut reference = ReferenceSorter::default();
            let mut finished = HashSet::new();
            for op in ops {
                match op {
                    // TiDB never sends a prewrite after its outcome. If it happened, the original
                    // would block at the *first* copy; ours blocks only from the late copy on.
                    Op::Prewrite(start) if finished.contains(&start) => continue,
                    Op::Prewrite(start) => {
                        ours.push_prewrite(start, (), now);
                        reference.push(true, start, 0);
                    }
                    Op::Outcome(start, commit) => {
                        finished.insert(start);
                        ours.push_outcome(start, commit);
                        reference.push(false, start, commit);
                    }
                }
                prop_assert_eq!(ours.max_commit_ts(), reference.max_commit_ts);
                prop_assert_eq!(ours.all_matched(), reference.unmatched.is_empty());
                // Restoring from a snapshot at any point changes nothing.
                let restored = Sorter::restore(&ours.snapshot(), now);
                prop_assert_eq!(restored.snapshot(), ours.snapshot());
            }
        }
    }
}
