//! The upstream simulator (`tidb-sim`): plays a TiDB server with binlog enabled, for tests of
//! pumps and drainers without TiDB.
//!
//! - [`workload`] runs a seeded mix of DDL and multi-table transactions: timestamps from PD, rows
//!   encoded with TiDB's codec, prewrite then commit/rollback binlogs through TiDB's pump client
//!   ([`crate::tidb::pump_client`]), every committed change applied to the [`truth`] MariaDB in
//!   commit-ts order for conflicting transactions.
//! - [`catalog`] and [`ddl`] model TiDB's schemas and DDL jobs (ids, schema versions, after-image
//!   `TableInfo`), generated from structured descriptions ([`ddl_gen`], [`column_kind`], [`sql`])
//!   so that DDL text and `TableInfo` agree; the finished jobs are kept in the truth's
//!   `tidb_sim.ddl_history`.
//! - [`status_api`] serves TiDB's status API (`/ddl/history`, `/schema…`, `/db-table`, `/info`,
//!   `/status`) from a [`schema_store`], and [`registration`] registers in PD's etcd as a TiDB
//!   server; [`serve`] runs both from the truth's history alone.
//! - [`check`] compares the truth with a downstream row by row.
//!
//! Pure parts (catalog, DDL planning and generation, values, mutations, status API answers,
//! registration JSON, rng) have no I/O and are unit-tested; [`truth`], [`workload`], [`serve`]
//! and [`check`] do the talking.

pub mod catalog;
pub mod check;
pub mod column_kind;
pub mod ddl;
pub mod ddl_gen;
pub mod mutations;
pub mod registration;
pub mod rng;
pub mod schema_store;
pub mod serve;
pub mod sql;
pub mod status_api;
pub mod truth;
pub mod values;
pub mod workload;

/// Why a simulator command failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Truth(#[from] truth::TruthError),
    #[error("catalog: {0}")]
    Catalog(#[from] catalog::CatalogError),
    #[error("encoding a row: {0}")]
    Codec(#[from] tidb_codec::CodecError),
    #[error("PD: {0}")]
    Pd(#[from] binlog_cluster::PdError),
    #[error("pump client: {0}")]
    PumpClient(#[from] crate::tidb::PumpClientError),
    #[error("etcd: {0}")]
    Registry(#[from] binlog_cluster::RegistryError),
    #[error("registering as a TiDB server: {0}")]
    Registration(#[from] registration::RegistrationError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no pump took the prewrite binlog of DDL job {job_id} ({query}); the truth and the \
         DDL history already hold it, so the binlog stream now misses this DDL: {source}"
    )]
    DdlPrewrite {
        job_id: i64,
        query: String,
        #[source]
        source: crate::tidb::PumpClientError,
    },
    #[error("simulator invariant broken: {0}")]
    Invariant(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}
