//! The node registry in PD's embedded etcd: `/tidb-binlog/v1/{pumps,drainers}/<nodeId>` holding
//! [`NodeStatus`] JSON, with the original's create/update semantics, listing and watching.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, WatchOptions,
};
use futures::{Stream, StreamExt};

use crate::error_text::etcd_error;
use crate::status::{NodeKind, NodeStatus};
use crate::tls::{TlsError, TlsSettings};

/// The registry's root path ("v1" is the registry layout version).
pub const ROOT: &str = "/tidb-binlog/v1";

/// Dial and per-request timeout, as in the original.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No etcd endpoint could be reached.
    #[error("cannot connect to etcd at {urls}: {cause}")]
    Connect {
        /// The endpoints tried.
        urls: String,
        /// Why.
        cause: String,
    },
    /// TLS settings could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An operation did not answer within [`REQUEST_TIMEOUT`].
    #[error("etcd {op} of {key} at {urls} timed out after {timeout:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The key or prefix.
        key: String,
        /// The endpoints in use.
        urls: String,
        /// The limit.
        timeout: Duration,
    },
    /// etcd answered with an error.
    #[error("etcd {op} of {key} at {urls} failed: {cause}")]
    Etcd {
        /// The operation.
        op: &'static str,
        /// The key or prefix.
        key: String,
        /// The endpoints in use.
        urls: String,
        /// Why.
        cause: String,
    },
    /// The key does not exist (the text pumps match on: `in etcd not found`).
    #[error("key {0} in etcd not found")]
    NotFound(String),
    /// A create found the key already present.
    #[error("key {0} in etcd already exists")]
    AlreadyExists(String),
    /// A stored value is not a node record.
    #[error("value of {key} is not a node record: {source}")]
    Decode {
        /// The key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// A change seen while watching the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A record was written.
    Put(NodeStatus),
    /// A record was deleted; carries the node id from the key.
    Delete(String),
}

/// A handle to the registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    client: Client,
    urls: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("urls", &self.urls)
            .finish()
    }
}

/// The key of a node's record.
pub fn node_key(kind: NodeKind, node_id: &str) -> String {
    format!("{ROOT}/{}/{node_id}", kind.prefix())
}

/// The node id a registry key names; understands the old layout `/tidb-binlog/pumps/<id>` too.
pub fn node_id_from_key(key: &str) -> Option<&str> {
    let mut segments = key.trim_start_matches('/').split('/');
    let _root = segments.next()?;
    let second = segments.next()?;
    let id = if second.starts_with('v') {
        segments.nth(1)?
    } else {
        segments.next()?
    };
    (!id.is_empty()).then_some(id)
}

impl Registry {
    /// Connects to the etcd behind `urls` (PD's client URLs).
    pub async fn connect(urls: &[String], tls: &TlsSettings) -> Result<Registry, RegistryError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        if let Some(config) = tls.grpc_client_config()? {
            options = options.with_tls(config);
        }
        let joined = urls.join(",");
        let client = tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(urls, Some(options)))
            .await
            .map_err(|_| RegistryError::Timeout {
                op: "connect",
                key: ROOT.to_string(),
                urls: joined.clone(),
                timeout: REQUEST_TIMEOUT,
            })?
            .map_err(|err| RegistryError::Connect {
                urls: joined.clone(),
                cause: etcd_error(&err),
            })?;
        Ok(Registry {
            client,
            urls: joined,
        })
    }

    /// The underlying etcd client, for callers that keep other keys in PD's etcd.
    pub fn etcd(&self) -> Client {
        self.client.clone()
    }

    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, RegistryError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(RegistryError::Etcd {
                op,
                key: key.to_string(),
                urls: self.urls.clone(),
                cause: etcd_error(&err),
            }),
            Err(_) => Err(RegistryError::Timeout {
                op,
                key: key.to_string(),
                urls: self.urls.clone(),
                timeout: REQUEST_TIMEOUT,
            }),
        }
    }

    fn decode(key: &str, value: &[u8]) -> Result<NodeStatus, RegistryError> {
        serde_json::from_slice(value).map_err(|source| RegistryError::Decode {
            key: key.to_string(),
            source,
        })
    }

    /// Reads one node's record.
    pub async fn get(&self, kind: NodeKind, node_id: &str) -> Result<NodeStatus, RegistryError> {
        let key = node_key(kind, node_id);
        let mut client = self.client.clone();
        let response = self
            .call("get", &key, client.get(key.as_str(), None))
            .await?;
        let kv = response
            .kvs()
            .first()
            .ok_or_else(|| RegistryError::NotFound(key.clone()))?;
        Self::decode(&key, kv.value())
    }

    /// Lists every node of a kind (direct children of its prefix), with the etcd revision the
    /// listing was read at, so a watch can continue from it. Any undecodable record fails the
    /// listing, as in the original.
    pub async fn list(&self, kind: NodeKind) -> Result<(Vec<NodeStatus>, i64), RegistryError> {
        let prefix = format!("{ROOT}/{}/", kind.prefix());
        let mut client = self.client.clone();
        let response = self
            .call(
                "list",
                &prefix,
                client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let revision = response.header().map_or(0, |header| header.revision());
        let mut nodes = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let child = &key[prefix.len().min(key.len())..];
            if child.is_empty() || child.contains('/') {
                continue;
            }
            nodes.push(Self::decode(&key, kv.value())?);
        }
        Ok((nodes, revision))
    }

    /// Reads every key under `prefix` (any key, not only node records), with the same timeout
    /// and error context as the registry's own reads; for other components' registrations in
    /// PD's etcd, such as TiDB servers'.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, RegistryError> {
        let mut client = self.client.clone();
        let response = self
            .call(
                "get",
                prefix,
                client.get(prefix, Some(GetOptions::new().with_prefix())),
            )
            .await?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect())
    }

    async fn put_if(
        &self,
        op: &'static str,
        status: &NodeStatus,
        kind: NodeKind,
        compare: CompareOp,
    ) -> Result<bool, RegistryError> {
        let key = node_key(kind, &status.node_id);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.as_str(), compare, 0)])
            .and_then([TxnOp::put(key.as_str(), status.to_json(), None)]);
        let mut client = self.client.clone();
        let response = self.call(op, &key, client.txn(txn)).await?;
        Ok(response.succeeded())
    }

    /// Writes a record that must not exist yet.
    pub async fn create(&self, kind: NodeKind, status: &NodeStatus) -> Result<(), RegistryError> {
        if self
            .put_if("create", status, kind, CompareOp::Equal)
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::AlreadyExists(node_key(
                kind,
                &status.node_id,
            )))
        }
    }

    /// Rewrites a record that must exist.
    pub async fn update(&self, kind: NodeKind, status: &NodeStatus) -> Result<(), RegistryError> {
        if self
            .put_if("update", status, kind, CompareOp::Greater)
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::NotFound(node_key(kind, &status.node_id)))
        }
    }

    /// Creates or rewrites a record (heartbeats and registration).
    pub async fn upsert(&self, kind: NodeKind, status: &NodeStatus) -> Result<(), RegistryError> {
        match self.update(kind, status).await {
            Err(RegistryError::NotFound(_)) => self.create(kind, status).await,
            other => other,
        }
    }

    /// Watches a kind's prefix from `revision` (0 = from now). The stream ends with an error item
    /// when the watch breaks; callers re-list and re-watch.
    pub async fn watch(
        &self,
        kind: NodeKind,
        revision: i64,
    ) -> Result<impl Stream<Item = Result<RegistryEvent, RegistryError>> + use<>, RegistryError>
    {
        let prefix = format!("{ROOT}/{}/", kind.prefix());
        let mut options = WatchOptions::new().with_prefix();
        if revision > 0 {
            options = options.with_start_revision(revision);
        }
        let mut client = self.client.clone();
        let stream = self
            .call(
                "watch",
                &prefix,
                client.watch(prefix.as_str(), Some(options)),
            )
            .await?;
        let urls = self.urls.clone();
        Ok(stream.flat_map(move |response| {
            let events: Vec<Result<RegistryEvent, RegistryError>> = match response {
                Err(err) => vec![Err(RegistryError::Etcd {
                    op: "watch",
                    key: prefix.clone(),
                    urls: urls.clone(),
                    cause: etcd_error(&err),
                })],
                Ok(response) => response
                    .events()
                    .iter()
                    .filter_map(|event| {
                        let kv = event.kv()?;
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        Some(match event.event_type() {
                            etcd_client::EventType::Put => {
                                Self::decode(&key, kv.value()).map(RegistryEvent::Put)
                            }
                            etcd_client::EventType::Delete => Ok(RegistryEvent::Delete(
                                node_id_from_key(&key).unwrap_or_default().to_string(),
                            )),
                        })
                    })
                    .collect(),
            };
            futures::stream::iter(events)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_original_layout() {
        assert_eq!(
            node_key(NodeKind::Pump, "host:8250"),
            "/tidb-binlog/v1/pumps/host:8250"
        );
        assert_eq!(
            node_key(NodeKind::Drainer, "d1"),
            "/tidb-binlog/v1/drainers/d1"
        );
    }

    #[test]
    fn node_ids_come_from_old_and_new_keys() {
        assert_eq!(
            node_id_from_key("/tidb-binlog/v1/pumps/p1:8250"),
            Some("p1:8250")
        );
        assert_eq!(
            node_id_from_key("/tidb-binlog/pumps/p1:8250"),
            Some("p1:8250")
        );
        assert_eq!(node_id_from_key("/tidb-binlog/v1/pumps/"), None);
        assert_eq!(node_id_from_key("/tidb-binlog"), None);
    }
}
