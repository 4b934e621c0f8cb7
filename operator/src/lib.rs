//! The Kubernetes operator: reconciles `BinlogCluster` resources into a Pump StatefulSet and
//! Drainer workloads, and turns scale-in and deletion into graceful offline transitions.
//!
//! It talks to pumps and drainers only through `binlog-cluster`; it never reads their storage.
//!
//! Modules, one concept each:
//! - [`crd`] and [`status`]: the `BinlogCluster` resource; [`crdgen`]: its CRD as YAML;
//! - [`validate`]: spec checks the schema cannot express;
//! - [`builders`]: pure desired-state builders (ConfigMaps, Services, the pump StatefulSet,
//!   drainer Deployments and PVCs), applied by the reconciler with server-side apply under
//!   [`FIELD_MANAGER`];
//! - [`names`], [`labels`], [`disk`]: naming, labelling and sizing rules shared by all of them;
//! - [`planner`]: the scale-in / scale-out / removal / deletion choreography as a pure function;
//! - [`nodes`]: the registry and node commands behind a trait, over `binlog-cluster`;
//! - [`reconciler`]: one reconcile (observe, plan, act, report) and the finalizer;
//! - [`controller`]: the `kube` Controller wiring for `binlog-operator run`;
//! - [`metrics`]: Prometheus metrics, `/metrics` and `/health`.

pub mod builders;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod disk;
pub mod labels;
pub mod metrics;
pub mod names;
pub mod nodes;
pub mod planner;
pub mod reconciler;
pub mod status;
pub mod validate;

pub use builders::{BuildError, Desired, desired};
pub use crd::{BinlogCluster, BinlogClusterSpec};
pub use labels::FIELD_MANAGER;
pub use status::BinlogClusterStatus;
