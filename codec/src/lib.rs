//! TiDB's datum and row encoding (as carried inside binlog mutations) and the table-schema model
//! that both the drainer and the upstream simulator need.
//!
//! Pure data transformation: this crate knows nothing of gRPC, etcd, files or SQL connections.
