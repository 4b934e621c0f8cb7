//! The wire messages and gRPC services of TiDB-Binlog, generated from our own `.proto` files.
//!
//! - [`binlog`]: what TiDB writes to pump (`Binlog`, `PrewriteValue`, `TableMutation`), the `Pump`
//!   service and the drainer's `Cistern` service.
//! - [`pdpb`]: the part of PD's API that binlog components call (`GetMembers`, `Tso`).
//! - [`pb_binlog`]: the file sink's record format, readable by Reparo.
//! - [`slave_binlog`]: the Kafka sink's message format.
//!
//! This crate holds types only; it knows nothing of storage, networking policy or schemas.

#[allow(clippy::all, missing_docs)]
pub mod binlog {
    tonic::include_proto!("binlog");
}

#[allow(clippy::all, missing_docs)]
pub mod pdpb {
    tonic::include_proto!("pdpb");
}

#[allow(clippy::all, missing_docs)]
pub mod pb_binlog {
    tonic::include_proto!("pb_binlog");
}

#[allow(clippy::all, missing_docs)]
pub mod slave_binlog {
    tonic::include_proto!("slave.binlog");
}

/// The gRPC codec the services above are generated with; re-exported so users need no direct
/// dependency on `tonic-prost`.
pub use tonic_prost::ProstCodec;
