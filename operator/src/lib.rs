//! The Kubernetes operator: reconciles `BinlogCluster` resources into a Pump StatefulSet and
//! Drainer workloads, and turns scale-in and deletion into graceful offline transitions.
//!
//! It talks to pumps and drainers only through `binlog-cluster`; it never reads their storage.
