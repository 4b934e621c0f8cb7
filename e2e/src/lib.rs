//! The test world: real etcd, MariaDB and a Kafka-protocol broker started on free loopback ports
//! in temporary directories, the PD stand-in (`pd-sim`), and helpers to run the project's
//! binaries. Scenario tests, the demo and benchmarks build on it.
//!
//! Everything started here is stopped by its pid when its handle is dropped, including when a
//! test panics. Nothing listens beyond 127.0.0.1.

pub mod binaries;
pub mod drainer;
pub mod etcd;
pub mod kafka;
pub mod mariadb;
pub mod node_process;
pub mod pd_sim;
pub mod pki;
pub mod process;
pub mod pump;
pub mod tidb;
pub mod tidb_sim;
pub mod world;

pub use binaries::bin_path;
pub use drainer::{Downstream, DrainerProcess};
pub use etcd::Etcd;
pub use kafka::KafkaBroker;
pub use mariadb::MariaDb;
pub use pd_sim::PdSimProcess;
pub use process::{free_port, wait_until};
pub use pump::{PumpProcess, TestPumpClient};
pub use world::World;
