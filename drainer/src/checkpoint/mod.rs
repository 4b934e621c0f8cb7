//! Where the drainer remembers how far it got: the [`Checkpoint`] state, its MySQL JSON
//! encoding, and the [`CheckpointStore`] every backend implements — [`file::FileCheckpoint`]
//! (`<data-dir>/savepoint`, for the file and Kafka sinks) and the downstream-table variant.
//!
//! A store only persists and reads back; when to save (after the sink confirmed, every few
//! seconds or at once after a DDL) is the syncer's business.

pub mod file;
pub mod mysql;
pub mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The drainer's position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every binlog up to this commit ts has reached the downstream.
    pub commit_ts: i64,
    /// Whether the drainer stopped cleanly at `commit_ts` (nothing after it was applied). Every
    /// save while running writes `false`; only a clean shutdown writes `true`.
    pub consistent: bool,
    /// The schema version of the last DDL applied; only increases.
    pub schema_version: i64,
    /// The downstream TiDB's own ts matching `commit_ts`, when captured (TiDB sinks only).
    pub ts_map: Option<TsMap>,
}

/// A pair of matching timestamps of the upstream and a downstream TiDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsMap {
    /// The upstream commit ts.
    pub primary_ts: i64,
    /// The downstream TiDB's ts at that point.
    pub secondary_ts: i64,
}

const PRIMARY_TS: &str = "primary-ts";
const SECONDARY_TS: &str = "secondary-ts";

/// The JSON stored in the checkpoint table's `checkPoint` column, fields in the original's order.
#[derive(Serialize, Deserialize)]
struct CheckpointJson {
    #[serde(default)]
    consistent: bool,
    #[serde(rename = "commitTS", default)]
    commit_ts: i64,
    #[serde(rename = "ts-map", default)]
    ts_map: Option<BTreeMap<String, i64>>,
    #[serde(rename = "schema-version", default)]
    schema_version: i64,
}

impl Checkpoint {
    /// The position of a drainer that has saved nothing yet.
    pub fn initial(initial_commit_ts: i64) -> Checkpoint {
        Checkpoint {
            commit_ts: initial_commit_ts,
            ..Checkpoint::default()
        }
    }

    /// A stored commit ts of 0 means "nothing saved yet" in the original: start from
    /// `initial_commit_ts` instead.
    pub fn or_initial(self, initial_commit_ts: i64) -> Checkpoint {
        if self.commit_ts == 0 {
            Checkpoint {
                commit_ts: initial_commit_ts,
                ..self
            }
        } else {
            self
        }
    }

    /// The checkpoint table's JSON:
    /// `{"consistent":false,"commitTS":1,"ts-map":{},"schema-version":0}`, key order exactly so.
    pub fn to_json(&self) -> String {
        let ts_map = self
            .ts_map
            .map(|map| {
                BTreeMap::from([
                    (PRIMARY_TS.to_string(), map.primary_ts),
                    (SECONDARY_TS.to_string(), map.secondary_ts),
                ])
            })
            .unwrap_or_default();
        let json = CheckpointJson {
            consistent: self.consistent,
            commit_ts: self.commit_ts,
            ts_map: Some(ts_map),
            schema_version: self.schema_version,
        };
        // A struct of bools, integers and a string-keyed map always serialises.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Reads the checkpoint table's JSON. Missing fields (older drainers wrote fewer) read as
    /// zero/false; a `ts-map` without both timestamps reads as none. The stored commit ts is
    /// returned as is: see [`Checkpoint::or_initial`].
    pub fn from_json(text: &str) -> Result<Checkpoint, CheckpointError> {
        let json: CheckpointJson =
            serde_json::from_str(text).map_err(|err| CheckpointError::Malformed {
                what: "checkpoint JSON".to_string(),
                reason: format!(
                    "{err}; expected e.g. {{\"consistent\":false,\"commitTS\":1,\"ts-map\":{{}},\"schema-version\":0}}"
                ),
            })?;
        let ts_map = json.ts_map.and_then(|map| {
            Some(TsMap {
                primary_ts: *map.get(PRIMARY_TS)?,
                secondary_ts: *map.get(SECONDARY_TS)?,
            })
        });
        Ok(Checkpoint {
            commit_ts: json.commit_ts,
            consistent: json.consistent,
            schema_version: json.schema_version,
            ts_map,
        })
    }
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored checkpoint does not parse.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// Which checkpoint (a path, or "checkpoint JSON").
        what: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// The downstream database holding the checkpoint failed.
    #[error("checkpoint database: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CheckpointError {
    /// Whether the write may succeed when tried again unchanged: a MySQL downstream that cannot
    /// be reached, is restarting or is busy. A refused statement or a failing disk is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            CheckpointError::Database(err) => err
                .downcast_ref::<mysql_async::Error>()
                .is_some_and(binlog_loader::error::is_retryable),
            CheckpointError::Io { .. } | CheckpointError::Malformed { .. } => false,
        }
    }
}

/// A place the drainer's [`Checkpoint`] lives. One writer per store.
pub trait CheckpointStore: Send + Sync {
    /// Reads the saved checkpoint; when nothing was saved yet (or the saved commit ts is 0),
    /// a checkpoint at the store's initial commit ts.
    fn load(&self) -> impl Future<Output = Result<Checkpoint, CheckpointError>> + Send;

    /// Persists `checkpoint` durably before returning.
    fn save(
        &mut self,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_originals_key_order() {
        let checkpoint = Checkpoint {
            commit_ts: 417_587_421_573_988_353,
            consistent: false,
            schema_version: 12,
            ts_map: None,
        };
        assert_eq!(
            checkpoint.to_json(),
            r#"{"consistent":false,"commitTS":417587421573988353,"ts-map":{},"schema-version":12}"#
        );
        let with_map = Checkpoint {
            consistent: true,
            ts_map: Some(TsMap {
                primary_ts: 5,
                secondary_ts: 7,
            }),
            ..checkpoint
        };
        assert_eq!(
            with_map.to_json(),
            r#"{"consistent":true,"commitTS":417587421573988353,"ts-map":{"primary-ts":5,"secondary-ts":7},"schema-version":12}"#
        );
    }

    #[test]
    fn json_round_trips() {
        for checkpoint in [
            Checkpoint::initial(1),
            Checkpoint {
                commit_ts: 42,
                consistent: true,
                schema_version: 3,
                ts_map: Some(TsMap {
                    primary_ts: 42,
                    secondary_ts: 99,
                }),
            },
        ] {
            assert_eq!(
                Checkpoint::from_json(&checkpoint.to_json()).unwrap(),
                checkpoint
            );
        }
    }

    #[test]
    fn older_and_partial_json_is_read() {
        let old = Checkpoint::from_json(r#"{"commitTS":408,"ts-map":null}"#).unwrap();
        assert_eq!(old, Checkpoint::initial(408));
        let half_map =
            Checkpoint::from_json(r#"{"commitTS":1,"ts-map":{"primary-ts":1}}"#).unwrap();
        assert_eq!(half_map.ts_map, None);
    }

    #[test]
    fn bad_json_says_what_is_expected() {
        let err = Checkpoint::from_json("commitTS = 1")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("checkpoint JSON is malformed: "), "{err}");
        assert!(err.contains(r#"expected e.g. {"consistent""#), "{err}");
    }

    #[test]
    fn zero_means_start_from_the_initial_commit_ts() {
        let stored = Checkpoint {
            schema_version: 4,
            ..Checkpoint::default()
        };
        assert_eq!(stored.or_initial(77).commit_ts, 77);
        assert_eq!(stored.or_initial(77).schema_version, 4);
        assert_eq!(Checkpoint::initial(5).or_initial(77).commit_ts, 5);
    }
}
