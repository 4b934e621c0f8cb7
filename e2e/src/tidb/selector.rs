//! Pump selection strategies of TiDB's pump client, as pure functions over the list of
//! available pump ids.
//!
//! - `range` (TiDB's default, and what unknown names fall back to): round robin over the
//!   available list. The offset goes back to 0 whenever the set changes.
//! - `hash`: index `(start_ts + retry) mod len`, so a retry moves to the next pump.
//!
//! This module knows nothing of availability rules or I/O. [`crate::tidb::pump_set`] owns the
//! available list and resets the selector when the list changes.

use std::fmt;

/// How a prewrite binlog picks its pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Round robin over the available pumps.
    #[default]
    Range,
    /// `(start_ts + retry) mod len(available)`.
    Hash,
}

impl Strategy {
    /// Parses TiDB's `[binlog] strategy` value. As in TiDB, an unknown name means `range`.
    pub fn from_name(name: &str) -> Strategy {
        match name {
            "hash" => Strategy::Hash,
            _ => Strategy::Range,
        }
    }

    /// The configuration name.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::Hash => "hash",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A strategy with its round-robin position.
#[derive(Debug, Clone)]
pub struct Selector {
    strategy: Strategy,
    offset: usize,
}

impl Selector {
    /// A selector at offset 0.
    pub fn new(strategy: Strategy) -> Selector {
        Selector {
            strategy,
            offset: 0,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Starts the round robin over. Called whenever the available set changes.
    pub fn reset(&mut self) {
        self.offset = 0;
    }

    /// Picks the index into `available` (of length `len`) for a prewrite with `start_ts`, at
    /// retry number `retry` (0 for the first attempt). `None` when nothing is available.
    pub fn select(&mut self, len: usize, start_ts: i64, retry: u32) -> Option<usize> {
        if len == 0 {
            return None;
        }
        match self.strategy {
            Strategy::Range => {
                if self.offset >= len {
                    self.offset = 0;
                }
                let index = self.offset;
                self.offset += 1;
                Some(index)
            }
            Strategy::Hash => {
                let sum = i128::from(start_ts) + i128::from(retry);
                let index = sum.rem_euclid(len as i128);
                usize::try_from(index).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_like_tidb() {
        assert_eq!(Strategy::from_name("range"), Strategy::Range);
        assert_eq!(Strategy::from_name("hash"), Strategy::Hash);
        assert_eq!(Strategy::from_name("score"), Strategy::Range);
        assert_eq!(Strategy::from_name(""), Strategy::Range);
        assert_eq!(Strategy::default().to_string(), "range");
    }

    #[test]
    fn range_is_round_robin_and_ignores_start_ts_and_retry() {
        let mut selector = Selector::new(Strategy::Range);
        let picks: Vec<_> = (0..7)
            .map(|i| selector.select(3, 1000 + i, i as u32).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn range_wraps_when_the_list_shrinks_and_restarts_on_reset() {
        let mut selector = Selector::new(Strategy::Range);
        assert_eq!(selector.select(3, 0, 0), Some(0));
        assert_eq!(selector.select(3, 0, 0), Some(1));
        assert_eq!(selector.select(3, 0, 0), Some(2));
        // Offset 3 is past a list of 2: start over.
        assert_eq!(selector.select(2, 0, 0), Some(0));
        assert_eq!(selector.select(2, 0, 0), Some(1));
        selector.reset();
        assert_eq!(selector.select(2, 0, 0), Some(0));
    }

    #[test]
    fn hash_is_start_ts_plus_retry_mod_len() {
        let mut selector = Selector::new(Strategy::Hash);
        assert_eq!(selector.select(3, 10, 0), Some(1));
        assert_eq!(selector.select(3, 10, 0), Some(1), "stable for the same ts");
        assert_eq!(selector.select(3, 10, 1), Some(2));
        assert_eq!(selector.select(3, 10, 2), Some(0));
        assert_eq!(selector.select(4, 10, 0), Some(2));
        assert_eq!(selector.select(3, i64::MAX, u32::MAX), {
            let sum = i128::from(i64::MAX) + i128::from(u32::MAX);
            Some((sum % 3) as usize)
        });
    }

    #[test]
    fn nothing_available_selects_nothing() {
        assert_eq!(Selector::new(Strategy::Range).select(0, 1, 0), None);
        assert_eq!(Selector::new(Strategy::Hash).select(0, 1, 0), None);
    }
}
