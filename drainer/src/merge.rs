//! The k-way merge of the pumps' streams into one stream of strictly increasing commit ts.
//!
//! Each pump contributes one head item at a time. An item is emitted only when every source has a
//! head, so nothing older can still arrive; that is why an idle pump must keep producing (fake
//! binlogs) and why a paused pump holds the merge (reported by [`Merger::waiting_for`]). Items not
//! above the last emitted commit ts are dropped: equal ones are TiDB's re-sends, smaller ones are
//! counted as disorder. Pure data structure: the collector drives it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

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
    heads: BTreeMap<K, Option<T>>,
    queue: BinaryHeap<Reverse<(i64, K)>>,
    last_emitted: i64,
    dropped: Dropped,
}

impl<K: Ord + Clone, T: Timestamped> Merger<K, T> {
    /// A merger that emits only items above `start_ts` (the checkpoint).
    pub fn new(start_ts: i64) -> Self {
        Merger {
            heads: BTreeMap::new(),
            queue: BinaryHeap::new(),
            last_emitted: start_ts,
            dropped: Dropped::default(),
        }
    }

    /// Adds a source; emission now waits for its first item too.
    pub fn add_source(&mut self, key: K) {
        self.heads.entry(key).or_insert(None);
    }

    /// Removes a source and its pending item (an offline pump).
    pub fn remove_source(&mut self, key: &K) {
        if self.heads.remove(key).flatten().is_some() {
            self.queue.retain(|Reverse((_, k))| k != key);
        }
    }

    /// Whether `key` is a source.
    pub fn has_source(&self, key: &K) -> bool {
        self.heads.contains_key(key)
    }

    /// The sources.
    pub fn sources(&self) -> impl Iterator<Item = &K> {
        self.heads.keys()
    }

    /// Whether `key` needs its next item before anything can be emitted.
    pub fn needs(&self, key: &K) -> bool {
        matches!(self.heads.get(key), Some(None))
    }

    /// Sources without a head item: the merge waits for them.
    pub fn waiting_for(&self) -> Vec<K> {
        self.heads
            .iter()
            .filter(|(_, head)| head.is_none())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Gives `key` its next item. Panics in debug builds if it already has one: a source hands
    /// over one item at a time.
    pub fn push(&mut self, key: K, item: T) {
        let slot = self.heads.entry(key.clone()).or_insert(None);
        debug_assert!(slot.is_none(), "a source pushes one item at a time");
        self.queue.push(Reverse((item.commit_ts(), key)));
        *slot = Some(item);
    }

    /// The next item in commit-ts order, if every source has a head; drops items that are not
    /// above the last emitted ts.
    pub fn pop(&mut self) -> Option<T> {
        loop {
            if self.heads.is_empty() || self.heads.values().any(Option::is_none) {
                return None;
            }
            let Reverse((ts, key)) = self.queue.pop()?;
            let item = self.heads.get_mut(&key)?.take()?;
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
        assert!(merger.needs(&"b"));
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
        assert_eq!(merger.pop(), Some(Item(1)));
        merger.remove_source(&"gone");
        assert_eq!(merger.pop(), None, "a has no head now");
        merger.push("a", Item(3));
        assert_eq!(
            merger.pop(),
            Some(Item(3)),
            "the removed source's item is gone with it"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

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
                    if merger.needs(&key)
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
