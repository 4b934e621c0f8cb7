//! The pump: receives binlogs from TiDB over gRPC, stores them durably in a value log, and serves
//! them to drainers in commit-ts order.
//!
//! It talks to PD and the registry only through `binlog-cluster`; it knows nothing of downstreams.

pub mod config;
pub mod disk;
pub mod metrics;
pub mod node;
pub mod server;
pub mod storage;
