//! The MySQL/TiDB loader: applies upstream transactions (row changes and DDL) to a MySQL-protocol
//! downstream, the way TiDB-Binlog's `pkg/loader` does (reference drainer.md §4).
//!
//! It knows nothing of pumps, binlogs or checkpoints: the drainer translates binlogs into
//! [`Txn`]s, pushes them into a [`Loader`] and learns from [`Loader::applied`] how many of them
//! are committed downstream, in push order.
//!
//! Modules: [`txn`] (the input model) and its [`row`], [`config`], [`sql`] (statement forms, pure),
//! [`table_info`] (downstream keys), [`causality`] (conflict detection, pure), [`ddl`] (DDL text
//! facts and ignorable errors), [`status`], [`error`], [`bulk`] (a plain bulk loader, the
//! benchmark baseline); internally the dispatcher, the workers and session setup.

pub mod bulk;
pub mod causality;
pub mod config;
pub mod ddl;
mod dispatcher;
pub mod error;
mod loader;
pub mod row;
mod session;
pub mod sql;
pub mod status;
pub mod table_info;
pub mod txn;
mod worker;

pub use config::{DownstreamTls, LoaderConfig};
pub use error::LoaderError;
pub use loader::Loader;
pub use status::{AppliedPosition, LoaderStatus, RetryingState};
pub use txn::{Columns, Ddl, Dml, DmlKind, Name, Row, Txn, TxnChange};
