//! The k-way merge of the pumps' streams into one stream of strictly increasing commit ts.
//!
//! Each pump contributes its items in order, queued per pump. An item is emitted only when every
//! source has one queued, so nothing older can still arrive; that is why an idle pump must keep
//! producing (fake binlogs) and why a paused pump holds the merge (reported by
//! [`Merger::waiting_for`]). Items not above the last emitted commit ts are dropped: equal ones
//! are TiDB's re-sends, smaller ones are counted as disorder. Pure data structure: the collector
//! drives it and bounds what each source may queue.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// Something with a commit ts.
pub trait Timestamped {
    /// The commit ts the merge orders by.
    fn commit_ts(&self) -> i64;
}

/// What [`Merger::pop`] dropped, for metrics and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Items equal to the last emitted ts (re-sent).
    pub duplicates: u64,
    /// Items below the last emitted ts (arrived too late to be ordered).
    pub disorder: u64,
}

/// The merge state over sources named by `K`.
#[derive(Debug)]
pub struct Merger<K: Ord + Clone, T> {
    /// Each source's items, oldest first.
    queued: BTreeMap<K, VecDeque<T>>,
    /// The commit ts of each source's oldest item: one entry per source with items queued.
    heads: BinaryHeap<Reverse<(i64, K)>>,
    last_emitted: i64,
    dropped: Dropped,
}

impl<K: Ord + Clone, T: Timestamped> Merger<K, T> {
    /// A merger that emits only items above `start_ts` (the checkpoint).
    pub fn new(start_ts: i64) -> Self {
        Merger {
            queued: BTreeMap::new(),
            heads: BinaryHeap::new(),
            last_emitted: start_ts,
            dropped: Dropped::default(),
        }
    }

    /// Adds a source; emission now waits for its first item too.
    pub fn add_source(&mut self, key: K) {
        self.queued.entry(key).or_default();
    }

    /// Removes a source and the items it queued (an offline pump).
    pub fn remove_source<Q: Ord + ?Sized>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
    {
        if self
            .queued
            .remove(key)
            .is_some_and(|items| !items.is_empty())
        {
            self.heads.retain(|Reverse((_, k))| k.borrow() != key);
        }
    }

    /// Whether `key` is a source.
    pub fn has_source<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.queued.contains_key(key)
    }

    /// Sources with nothing queued: the merge waits for them.
    pub fn waiting_for(&self) -> Vec<K> {
        self.queued
            .iter()
            .filter(|(_, items)| items.is_empty())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Queues `key`'s next item behind those it sent before (a source sends in commit-ts order;
    /// one out of order is dropped when its turn comes).
    pub fn push(&mut self, key: K, item: T) {
        let ts = item.commit_ts();
        let items = self.queued.entry(key.clone()).or_default();
        if items.is_empty() {
            self.heads.push(Reverse((ts, key)));
        }
        items.push_back(item);
    }

    /// The next item in commit-ts order, if every source has one queued; drops items that are
    /// not above the last emitted ts.
    pub fn pop(&mut self) -> Option<T> {
        loop {
            // Every source has items queued exactly when each has its entry in `heads`.
            if self.queued.is_empty() || self.heads.len() < self.queued.len() {
                return None;
            }
            let Reverse((ts, key)) = self.heads.pop()?;
            let items = self.queued.get_mut(&key)?;
            let item = items.pop_front()?;
            if let Some(next) = items.front() {
                self.heads.push(Reverse((next.commit_ts(), key)));
            }
            if ts > self.last_emitted {
                self.last_emitted = ts;
                return Some(item);
            }
            if ts == self.last_emitted {
                self.dropped.duplicates += 1;
            } else {
                self.dropped.disorder += 1;
            }
        }
    }

    /// The last emitted commit ts (initially the start ts); new sources start pulling after it.
    pub fn last_emitted(&self) -> i64 {
        self.last_emitted
    }

    /// Counts of dropped items so far.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Item(i64);

    impl Timestamped for Item {
        fn commit_ts(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn emits_only_when_every_source_has_a_head() {
        let mut merger = Merger::new(0);
        merger.add_source("a");
        merger.add_source("b");
        merger.push("a", Item(5));
        assert_eq!(merger.pop(), None, "b could still send something older");
        assert_eq!(merger.waiting_for(), ["b"]);
        merger.push("b", Item(3));
        assert_eq!(merger.pop(), Some(Item(3)));
        assert_eq!(merger.pop(), None);
        assert_eq!(merger.waiting_for(), ["b"]);
        merger.push("b", Item(9));
        assert_eq!(merger.pop(), Some(Item(5)));
    }

    #[test]
    fn duplicates_and_late_items_are_dropped_and_counted() {
        let mut merger = Merger::new(10);
        merger.add_source(1);
        merger.push(1, Item(10));
        assert_eq!(merger.pop(), None, "not above the checkpoint");
        merger.push(1, Item(12));
        assert_eq!(merger.pop(), Some(Item(12)));
        merger.push(1, Item(12));
        assert_eq!(merger.pop(), None);
        merger.push(1, Item(11));
        assert_eq!(merger.pop(), None);
        assert_eq!(
            merger.dropped(),
            Dropped {
                duplicates: 2,
                disorder: 1
            }
        );
    }

    #[test]
    fn removing_a_source_releases_the_merge() {
        let mut merger = Merger::new(0);
        merger.add_source("a");
        merger.add_source("gone");
        merger.push("a", Item(1));
        merger.push("gone", Item(2));
        merger.push("gone", Item(5));
        assert_eq!(merger.pop(), Some(Item(1)));
        merger.remove_source(&"gone");
        assert_eq!(merger.pop(), None, "a has no head now");
        merger.push("a", Item(3));
        assert_eq!(
            merger.pop(),
            Some(Item(3)),
            "the removed source's items are gone with it"
        );
        assert_eq!(merger.pop(), None);
    }

    #[test]
    fn a_source_queues_items_behind_its_oldest() {
        let mut merger = Merger::new(0);
        merger.add_source("a");
        merger.add_source("b");
        for ts in [1, 4, 6] {
            merger.push("a", Item(ts));
        }
        merger.push("b", Item(5));
        assert_eq!(merger.pop(), Some(Item(1)));
        assert_eq!(merger.pop(), Some(Item(4)));
        assert_eq!(merger.pop(), Some(Item(5)));
        assert_eq!(
            merger.pop(),
            None,
            "b could still send something older than 6"
        );
        assert_eq!(merger.waiting_for(), ["b"]);
        merger.remove_source(&"b");
        assert_eq!(merger.pop(), Some(Item(6)));
        assert_eq!(merger.waiting_for(), ["a"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The same with sources queueing several items at a time.
        #[test]
        fn merges_streams_queued_in_batches_into_their_sorted_union(
            streams in proptest::collection::vec(proptest::collection::btree_set(1i64..500, 0..40), 1..5),
            batch in 1usize..6,
        ) {
            const END: i64 = i64::MAX - 1;
            let mut merger = Merger::new(0);
            let mut iters: Vec<_> = streams.iter().map(|s| s.iter().copied().chain([END]).collect::<Vec<_>>().into_iter()).collect();
            for key in 0..iters.len() {
                merger.add_source(key);
            }
            let mut out = Vec::new();
            'merging: loop {
                for (key, iter) in iters.iter_mut().enumerate() {
                    for ts in iter.by_ref().take(batch) {
                        merger.push(key, Item(ts));
                    }
                }
                while let Some(Item(ts)) = merger.pop() {
                    if ts == END {
                        break 'merging;
                    }
                    out.push(ts);
                }
                prop_assert!(iters.iter().any(|iter| iter.len() > 0), "every source ran dry before its end marker came out");
            }
            let expected: Vec<i64> = streams.iter().flatten().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            prop_assert_eq!(out, expected);
        }

        /// Sources with increasing, possibly overlapping streams merge into exactly the sorted,
        /// deduplicated union.
        #[test]
        fn merges_sorted_streams_into_their_sorted_union(
            streams in proptest::collection::vec(proptest::collection::btree_set(1i64..500, 0..40), 1..5)
        ) {
            let mut merger = Merger::new(0);
            let mut iters: Vec<_> = streams.iter().map(|s| s.iter().copied().chain([i64::MAX - 1]).collect::<Vec<_>>().into_iter()).collect();
            for key in 0..iters.len() {
                merger.add_source(key);
            }
            let mut out = Vec::new();
            loop {
                for (key, iter) in iters.iter_mut().enumerate() {
                    if merger.waiting_for().contains(&key)
                        && let Some(ts) = iter.next()
                    {
                        merger.push(key, Item(ts));
                    }
                }
                match merger.pop() {
                    Some(Item(ts)) if ts == i64::MAX - 1 => break,
                    Some(Item(ts)) => out.push(ts),
                    None if merger.waiting_for().is_empty() => break,
                    // A dropped duplicate used up a head: refill and go on, unless the sources
                    // it waits for ran dry (impossible with the end markers above).
                    None => prop_assert!(
                        merger.waiting_for().iter().any(|key| iters[*key].len() > 0),
                        "waiting for exhausted sources"
                    ),
                }
            }
            let expected: Vec<i64> = streams.iter().flatten().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            prop_assert_eq!(out, expected);
        }
    }
}
