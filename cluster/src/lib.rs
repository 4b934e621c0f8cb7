//! How binlog nodes find and command each other: the PD client (cluster id, timestamps), the node
//! registry in PD's etcd, the node state machine, the HTTP control client and TLS settings.
//!
//! Pump, drainer, binlogctl and the operator all speak to the cluster through this crate, so the
//! compatibility contract (keys, JSON, state strings, HTTP envelope, flag style) is written down
//! once, here. It also holds what the binaries share in setting up a process (flags, logging,
//! shutdown, allocator tuning). It knows nothing of storage engines, downstreams or Kubernetes.

pub mod allocator;
pub mod config_file;
pub mod control;
pub mod dir_lock;
pub mod error_text;
pub mod flags;
pub mod http_api;
pub mod logging;
pub mod node;
pub mod node_id;
pub mod pd;
pub mod registry;
pub mod secret;
pub mod shutdown;
pub mod state;
pub mod status;
pub mod tls;
pub mod tls_server;
pub mod tso;
pub mod units;
pub mod urls;

pub use control::{ControlError, Envelope, apply_action};
pub use pd::{PdClient, PdError};
pub use registry::{Registry, RegistryError, RegistryEvent};
pub use state::{Action, NodeState};
pub use status::{NodeKind, NodeStatus};
pub use tls::TlsSettings;
