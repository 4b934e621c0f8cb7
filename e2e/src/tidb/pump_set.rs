//! Availability bookkeeping of TiDB's pump client. It records which pumps exist (as the registry
//! last described them), which of them are available for prewrites, each pump's consecutive error
//! count, and which pump took the prewrite of each open transaction.
//!
//! The rules, all pure (no I/O, no clock):
//! - A pump first seen in state `online` is available; in any other state it is unavailable.
//! - A registry change of state makes a pump available when it becomes `online`, and unavailable
//!   when it leaves `online`. A rewrite with the same state (a heartbeat) changes nothing, so it
//!   does not bring back a pump that errors took out.
//! - A delete removes the pump.
//! - More than [`MAX_CONSECUTIVE_ERRORS`] errors in a row make a pump unavailable. A success
//!   resets the count.
//! - Unavailable pumps whose registry state is `online` are probe targets. A successful probe
//!   (or fallback write) makes the pump available again.
//! - Any change of the available set restarts the round robin.
//!
//! The I/O layer ([`crate::tidb::pump_client`]) holds this behind a mutex and feeds it watch
//! events and write results.

use std::collections::{BTreeMap, HashMap};

use binlog_cluster::{NodeState, NodeStatus, RegistryEvent};

use crate::tidb::selector::{Selector, Strategy};

/// A pump stops being available once its consecutive error count exceeds this.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 10;

/// What the client knows about one pump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpEntry {
    /// The pump's registry record as last seen.
    pub status: NodeStatus,
    /// Whether prewrites may be sent to it.
    pub available: bool,
    /// Errors since its last success.
    pub errors: u32,
}

/// A pump to talk to: its node id and `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The node id.
    pub id: String,
    /// The advertised `host:port`.
    pub host: String,
}

/// What applying a registry event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new pump; `available` tells which set it joined.
    Added {
        /// Whether it joined the available set.
        available: bool,
    },
    /// It moved into the available set.
    BecameAvailable,
    /// It moved out of the available set.
    BecameUnavailable,
    /// Same availability, but its address changed, so its connection is stale.
    Moved,
    /// It was deleted.
    Removed,
    /// Nothing that matters (e.g. a heartbeat).
    Unchanged,
}

/// All pumps known to the client and the selection state.
#[derive(Debug, Clone)]
pub struct PumpSet {
    pumps: BTreeMap<String, PumpEntry>,
    available: Vec<String>,
    selector: Selector,
    prewrites: HashMap<i64, Target>,
}

impl PumpSet {
    /// The set as read from a registry listing.
    pub fn new(strategy: Strategy, listing: Vec<NodeStatus>) -> PumpSet {
        let mut set = PumpSet {
            pumps: BTreeMap::new(),
            available: Vec::new(),
            selector: Selector::new(strategy),
            prewrites: HashMap::new(),
        };
        for status in listing {
            set.put(status);
        }
        set.rebuild();
        set
    }

    fn rebuild(&mut self) {
        let available: Vec<String> = self
            .pumps
            .iter()
            .filter(|(_, entry)| entry.available)
            .map(|(id, _)| id.clone())
            .collect();
        if available != self.available {
            self.available = available;
            self.selector.reset();
        }
    }

    fn put(&mut self, status: NodeStatus) -> Change {
        let online = status.state == NodeState::Online;
        match self.pumps.get_mut(&status.node_id) {
            None => {
                self.pumps.insert(
                    status.node_id.clone(),
                    PumpEntry {
                        status,
                        available: online,
                        errors: 0,
                    },
                );
                Change::Added { available: online }
            }
            Some(entry) => {
                let state_changed = entry.status.state != status.state;
                let moved = entry.status.host != status.host;
                entry.status = status;
                if state_changed && online && !entry.available {
                    entry.available = true;
                    entry.errors = 0;
                    Change::BecameAvailable
                } else if state_changed && !online && entry.available {
                    entry.available = false;
                    Change::BecameUnavailable
                } else if moved {
                    Change::Moved
                } else {
                    Change::Unchanged
                }
            }
        }
    }

    /// Applies one watch event.
    pub fn apply(&mut self, event: &RegistryEvent) -> Change {
        let change = match event {
            RegistryEvent::Put(status) => self.put(status.clone()),
            RegistryEvent::Delete(id) => {
                if self.pumps.remove(id).is_some() {
                    Change::Removed
                } else {
                    Change::Unchanged
                }
            }
        };
        self.rebuild();
        change
    }

    /// Brings the set in line with a fresh listing (after the watch broke): unknown pumps are
    /// added, known ones updated as by a PUT, missing ones removed. Returns each changed pump.
    pub fn reconcile(&mut self, listing: Vec<NodeStatus>) -> Vec<(String, Change)> {
        let mut changes = Vec::new();
        let listed: Vec<String> = listing.iter().map(|s| s.node_id.clone()).collect();
        let gone: Vec<String> = self
            .pumps
            .keys()
            .filter(|id| !listed.contains(id))
            .cloned()
            .collect();
        for id in gone {
            self.pumps.remove(&id);
            changes.push((id, Change::Removed));
        }
        for status in listing {
            let id = status.node_id.clone();
            let change = self.put(status);
            if change != Change::Unchanged {
                changes.push((id, change));
            }
        }
        self.rebuild();
        changes
    }

    /// Chooses the pump for a prewrite (`retry` = 0 for the first attempt).
    pub fn select(&mut self, start_ts: i64, retry: u32) -> Option<Target> {
        let index = self
            .selector
            .select(self.available.len(), start_ts, retry)?;
        let id = self.available.get(index)?;
        self.target(id)
    }

    /// The pump's id and current address, if known.
    pub fn target(&self, id: &str) -> Option<Target> {
        self.pumps.get(id).map(|entry| Target {
            id: id.to_string(),
            host: entry.status.host.clone(),
        })
    }

    /// One pump's entry.
    pub fn entry(&self, id: &str) -> Option<&PumpEntry> {
        self.pumps.get(id)
    }

    /// The ids of available pumps, in selection order.
    pub fn available(&self) -> &[String] {
        &self.available
    }

    /// The ids of known pumps that are not available.
    pub fn unavailable(&self) -> Vec<String> {
        self.pumps
            .iter()
            .filter(|(_, entry)| !entry.available)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Records a successful write: the error count starts over.
    pub fn record_success(&mut self, id: &str) {
        if let Some(entry) = self.pumps.get_mut(id) {
            entry.errors = 0;
        }
    }

    /// Records a failed write. Returns true when this took the pump out of the available set.
    pub fn record_error(&mut self, id: &str) -> bool {
        let Some(entry) = self.pumps.get_mut(id) else {
            return false;
        };
        entry.errors = entry.errors.saturating_add(1);
        let demote = entry.available && entry.errors > MAX_CONSECUTIVE_ERRORS;
        if demote {
            entry.available = false;
            self.rebuild();
        }
        demote
    }

    /// A probe or fallback write succeeded: the pump is available again with a clean count.
    /// Returns true when it was not available before.
    pub fn mark_available(&mut self, id: &str) -> bool {
        let Some(entry) = self.pumps.get_mut(id) else {
            return false;
        };
        entry.errors = 0;
        let promoted = !entry.available;
        entry.available = true;
        self.rebuild();
        promoted
    }

    /// Unavailable pumps whose registry state is `online`: the ones to probe.
    pub fn probe_targets(&self) -> Vec<Target> {
        self.pumps
            .iter()
            .filter(|(_, entry)| !entry.available && entry.status.state == NodeState::Online)
            .map(|(id, entry)| Target {
                id: id.clone(),
                host: entry.status.host.clone(),
            })
            .collect()
    }

    /// Every pump whose registry state is `online`, available or not: the last resort of a
    /// prewrite that ran out of retries.
    pub fn online_targets(&self) -> Vec<Target> {
        self.pumps
            .iter()
            .filter(|(_, entry)| entry.status.state == NodeState::Online)
            .map(|(id, entry)| Target {
                id: id.clone(),
                host: entry.status.host.clone(),
            })
            .collect()
    }

    /// Remembers which pump took the prewrite of `start_ts`.
    pub fn remember_prewrite(&mut self, start_ts: i64, target: Target) {
        self.prewrites.insert(start_ts, target);
    }

    /// Forgets and returns the pump that took the prewrite of `start_ts` (for its commit or
    /// rollback). Its current address is used when the pump is still known.
    pub fn take_prewrite(&mut self, start_ts: i64) -> Option<Target> {
        let remembered = self.prewrites.remove(&start_ts)?;
        Some(self.target(&remembered.id).unwrap_or(remembered))
    }

    /// The pump holding the prewrite of `start_ts`, if its commit has not been written yet.
    pub fn prewrite_pump(&self, start_ts: i64) -> Option<&str> {
        self.prewrites.get(&start_ts).map(|t| t.id.as_str())
    }

    /// How many prewrites wait for their commit or rollback.
    pub fn open_prewrites(&self) -> usize {
        self.prewrites.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, state: NodeState) -> NodeStatus {
        NodeStatus::new(id, format!("{id}.host:8250"), state)
    }

    fn set(pumps: &[(&str, NodeState)]) -> PumpSet {
        PumpSet::new(
            Strategy::Range,
            pumps.iter().map(|(id, s)| status(id, *s)).collect(),
        )
    }

    fn pick(set: &mut PumpSet) -> String {
        set.select(0, 0).unwrap().id
    }

    #[test]
    fn listing_splits_online_from_the_rest() {
        let set = set(&[
            ("a", NodeState::Online),
            ("b", NodeState::Paused),
            ("c", NodeState::Online),
            ("d", NodeState::Offline),
        ]);
        assert_eq!(set.available(), ["a", "c"]);
        assert_eq!(set.unavailable(), ["b", "d"]);
        assert!(
            set.probe_targets().is_empty(),
            "nothing unavailable is online"
        );
        let online: Vec<_> = set.online_targets().into_iter().map(|t| t.id).collect();
        assert_eq!(online, ["a", "c"]);
    }

    #[test]
    fn watch_events_add_move_and_remove() {
        let mut set = set(&[("a", NodeState::Online)]);
        assert_eq!(
            set.apply(&RegistryEvent::Put(status("b", NodeState::Online))),
            Change::Added { available: true }
        );
        assert_eq!(
            set.apply(&RegistryEvent::Put(status("c", NodeState::Paused))),
            Change::Added { available: false }
        );
        assert_eq!(set.available(), ["a", "b"]);
        assert_eq!(
            set.apply(&RegistryEvent::Put(status("b", NodeState::Paused))),
            Change::BecameUnavailable
        );
        assert_eq!(
            set.apply(&RegistryEvent::Put(status("c", NodeState::Online))),
            Change::BecameAvailable
        );
        assert_eq!(set.available(), ["a", "c"]);
        assert_eq!(
            set.apply(&RegistryEvent::Put(status("a", NodeState::Online))),
            Change::Unchanged,
            "a heartbeat"
        );
        let mut moved = status("a", NodeState::Online);
        moved.host = "elsewhere:1".into();
        assert_eq!(set.apply(&RegistryEvent::Put(moved)), Change::Moved);
        assert_eq!(set.target("a").unwrap().host, "elsewhere:1");
        assert_eq!(
            set.apply(&RegistryEvent::Delete("a".into())),
            Change::Removed
        );
        assert_eq!(
            set.apply(&RegistryEvent::Delete("zz".into())),
            Change::Unchanged
        );
        assert_eq!(set.available(), ["c"]);
        assert_eq!(set.unavailable(), ["b"]);
    }

    #[test]
    fn a_set_change_restarts_the_round_robin() {
        let mut set = set(&[("a", NodeState::Online), ("b", NodeState::Online)]);
        assert_eq!(pick(&mut set), "a");
        set.apply(&RegistryEvent::Put(status("c", NodeState::Online)));
        assert_eq!(pick(&mut set), "a", "offset reset by the new pump");
        assert_eq!(pick(&mut set), "b");
        // A heartbeat is no change: the round robin continues.
        set.apply(&RegistryEvent::Put(status("a", NodeState::Online)));
        assert_eq!(pick(&mut set), "c");
        assert_eq!(pick(&mut set), "a");
    }

    #[test]
    fn more_than_ten_errors_in_a_row_make_a_pump_unavailable() {
        let mut set = set(&[("a", NodeState::Online), ("b", NodeState::Online)]);
        for _ in 0..MAX_CONSECUTIVE_ERRORS {
            assert!(!set.record_error("a"));
        }
        set.record_success("a");
        assert_eq!(set.entry("a").unwrap().errors, 0, "a success resets");
        for _ in 0..MAX_CONSECUTIVE_ERRORS {
            assert!(!set.record_error("a"));
        }
        assert!(set.record_error("a"), "the eleventh error demotes");
        assert_eq!(set.available(), ["b"]);
        assert!(!set.record_error("a"), "already unavailable");
        assert!(!set.record_error("unknown"));

        // Its registry state is still online, so it is probed; a heartbeat does not revive it.
        assert_eq!(set.probe_targets()[0].id, "a");
        set.apply(&RegistryEvent::Put(status("a", NodeState::Online)));
        assert_eq!(set.available(), ["b"]);

        // A successful probe does.
        assert!(set.mark_available("a"));
        assert!(!set.mark_available("a"));
        assert_eq!(set.available(), ["a", "b"]);
        assert_eq!(set.entry("a").unwrap().errors, 0);
        assert!(set.probe_targets().is_empty());
    }

    #[test]
    fn a_pump_that_errors_took_out_comes_back_through_a_state_change() {
        let mut set = set(&[("a", NodeState::Online)]);
        for _ in 0..=MAX_CONSECUTIVE_ERRORS {
            set.record_error("a");
        }
        assert!(set.available().is_empty());
        assert!(set.select(1, 0).is_none());
        set.apply(&RegistryEvent::Put(status("a", NodeState::Paused)));
        assert!(
            set.probe_targets().is_empty(),
            "paused pumps are not probed"
        );
        assert_eq!(
            set.apply(&RegistryEvent::Put(status("a", NodeState::Online))),
            Change::BecameAvailable
        );
        assert_eq!(set.entry("a").unwrap().errors, 0);
    }

    #[test]
    fn reconcile_adds_updates_and_removes() {
        let mut set = set(&[
            ("a", NodeState::Online),
            ("b", NodeState::Online),
            ("c", NodeState::Paused),
        ]);
        let changes = set.reconcile(vec![
            status("a", NodeState::Online),
            status("b", NodeState::Paused),
            status("d", NodeState::Online),
        ]);
        assert_eq!(
            changes,
            vec![
                ("c".to_string(), Change::Removed),
                ("b".to_string(), Change::BecameUnavailable),
                ("d".to_string(), Change::Added { available: true }),
            ]
        );
        assert_eq!(set.available(), ["a", "d"]);
        assert_eq!(set.unavailable(), ["b"]);
    }

    #[test]
    fn commits_follow_their_prewrite_even_after_the_pump_left_the_registry() {
        let mut set = set(&[("a", NodeState::Online), ("b", NodeState::Online)]);
        let target = set.select(7, 0).unwrap();
        set.remember_prewrite(7, target.clone());
        assert_eq!(set.prewrite_pump(7), Some("a"));
        assert_eq!(set.open_prewrites(), 1);
        set.apply(&RegistryEvent::Delete("a".into()));
        assert_eq!(set.take_prewrite(7), Some(target));
        assert_eq!(set.take_prewrite(7), None, "taken once");
        assert_eq!(set.open_prewrites(), 0);

        // The current address is used when the pump moved.
        let target = set.select(8, 0).unwrap();
        set.remember_prewrite(8, target);
        let mut moved = status("b", NodeState::Online);
        moved.host = "new:1".into();
        set.apply(&RegistryEvent::Put(moved));
        assert_eq!(set.take_prewrite(8).unwrap().host, "new:1");
    }

    #[test]
    fn hash_selection_uses_the_available_order() {
        let mut set = PumpSet::new(
            Strategy::Hash,
            vec![
                status("a", NodeState::Online),
                status("b", NodeState::Online),
                status("c", NodeState::Online),
            ],
        );
        assert_eq!(set.select(4, 0).unwrap().id, "b");
        assert_eq!(set.select(4, 1).unwrap().id, "c");
        assert_eq!(set.select(4, 2).unwrap().id, "a");
    }
}
