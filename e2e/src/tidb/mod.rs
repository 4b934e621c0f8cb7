//! The TiDB side of the upstream simulator.
//!
//! TiDB is not available as a binary, so the simulator plays its part. This module holds the
//! pieces that behave like TiDB towards the binlog cluster: the pump client ([`pump_client`]),
//! which writes prewrite and commit binlogs with TiDB's pump selection, retry and failover
//! rules, so that our pumps are tested the way TiDB uses them; and the simulator built on it
//! ([`sim`]: workload, truth database, DDL history, status API, etcd registration, checker).
//!
//! The pure decisions (which pump is chosen, which pumps count as available, when to retry or
//! give up) live in [`selector`], [`pump_set`] and [`retry`]. They do no I/O and are unit-tested
//! on their own. [`pump_client`] is the thin I/O layer: PD, the registry watch, probes and gRPC.

pub mod pump_client;
pub mod pump_set;
pub mod retry;
pub mod selector;
pub mod sim;

pub use pump_client::{
    ClientConfig, ClientStats, CommitOutcome, PrewriteReceipt, PumpClientError, TidbPumpClient,
};
pub use selector::Strategy;
