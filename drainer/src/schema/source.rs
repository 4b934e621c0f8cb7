//! Where DDL jobs come from: TiDB's HTTP status API (`/ddl/history`), with TiDB servers found
//! through their registrations in PD's etcd (tidb-schema-api.md §1.2, §6). This replaces the
//! original drainer's reads of TiDB's meta keys in TiKV.
//!
//! The trait keeps the tracker independent of HTTP; the one production implementation asks each
//! registered TiDB in turn, so one TiDB going away does not stop schema tracking.

use std::future::Future;

use binlog_cluster::control::{ControlError, http_request};
use binlog_cluster::{Registry, TlsSettings};
use serde::Deserialize;
use tidb_codec::schema::DdlJob;

/// Why DDL jobs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "no TiDB server is registered in PD's etcd under /tidb/server/info/ or /topology/tidb/"
    )]
    NoServers,
    #[error("reading TiDB registrations from PD's etcd: {0}")]
    Registry(#[from] binlog_cluster::RegistryError),
    #[error("every TiDB status API failed; last: {0}")]
    Unreachable(String),
}

/// A source of TiDB's finished DDL jobs.
pub trait SchemaSource: Send + Sync {
    /// The history job with this id, or `None` while it is not (yet) in the history.
    fn job(&self, id: i64) -> impl Future<Output = Result<Option<DdlJob>, SourceError>> + Send;

    /// Every history job, in any order.
    fn history(&self) -> impl Future<Output = Result<Vec<DdlJob>, SourceError>> + Send;
}

/// TiDB's status API, servers discovered in PD's etcd.
#[derive(Clone)]
pub struct TidbStatusApi {
    registry: Registry,
    tls: TlsSettings,
}

#[derive(Deserialize)]
struct ServerInfo {
    ip: String,
    status_port: u16,
}

/// The status address of a `/tidb/server/info/*` or `/topology/tidb/*/info` value.
fn status_address(value: &[u8]) -> Option<String> {
    let info: ServerInfo = serde_json::from_slice(value).ok()?;
    let host = if info.ip.contains(':') {
        format!("[{}]", info.ip)
    } else {
        info.ip
    };
    Some(format!("{host}:{}", info.status_port))
}

/// Parses a `/ddl/history` body; `null` is an empty history.
fn parse_jobs(body: &[u8]) -> Result<Vec<DdlJob>, String> {
    serde_json::from_slice::<Option<Vec<DdlJob>>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|err| format!("undecodable DDL history ({err})"))
}

impl TidbStatusApi {
    pub fn new(registry: Registry, tls: TlsSettings) -> TidbStatusApi {
        TidbStatusApi { registry, tls }
    }

    /// Status addresses of the registered TiDB servers (session-bound registrations first).
    async fn servers(&self) -> Result<Vec<String>, SourceError> {
        let mut servers: Vec<String> = self
            .registry
            .get_prefix("/tidb/server/info/")
            .await?
            .iter()
            .filter_map(|(_, value)| status_address(value))
            .collect();
        if servers.is_empty() {
            let topology = self.registry.get_prefix("/topology/tidb/").await?;
            let alive: Vec<&str> = topology
                .iter()
                .filter_map(|(key, _)| key.strip_suffix("/ttl"))
                .collect();
            servers = topology
                .iter()
                .filter(|(key, _)| {
                    key.strip_suffix("/info")
                        .is_some_and(|base| alive.contains(&base))
                })
                .filter_map(|(_, value)| status_address(value))
                .collect();
        }
        servers.dedup();
        if servers.is_empty() {
            return Err(SourceError::NoServers);
        }
        Ok(servers)
    }

    /// GETs `path_and_query` from the first TiDB that answers 200.
    async fn get(&self, path_and_query: &str) -> Result<Vec<DdlJob>, SourceError> {
        let mut last = String::new();
        for server in self.servers().await? {
            let url = format!("{}://{server}{path_and_query}", self.tls.scheme());
            match http_request(&self.tls, "GET", &url).await {
                Ok((200, body)) => match parse_jobs(&body) {
                    Ok(jobs) => return Ok(jobs),
                    Err(err) => last = format!("{url}: {err}"),
                },
                Ok((status, body)) => {
                    last = format!(
                        "{url}: HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(256)])
                    )
                }
                Err(ControlError::Transport { message, .. }) => last = format!("{url}: {message}"),
                Err(err) => last = err.to_string(),
            }
        }
        Err(SourceError::Unreachable(last))
    }
}

impl SchemaSource for TidbStatusApi {
    async fn job(&self, id: i64) -> Result<Option<DdlJob>, SourceError> {
        // Newer TiDBs answer the job (or the next lower one) directly; older ones ignore the
        // parameters, so fall back to the whole history.
        let jobs = self
            .get(&format!("/ddl/history?start_job_id={id}&limit=1"))
            .await?;
        if let Some(job) = jobs.into_iter().find(|j| j.id == id) {
            return Ok(Some(job));
        }
        Ok(self.history().await?.into_iter().find(|j| j.id == id))
    }

    async fn history(&self) -> Result<Vec<DdlJob>, SourceError> {
        self.get("/ddl/history").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_addresses_come_from_ip_and_status_port() {
        let v4 = br#"{"version":"8.0.11-TiDB-v7.5.0","ddl_id":"u","ip":"10.0.0.7","listening_port":4000,"status_port":10080}"#;
        assert_eq!(status_address(v4).as_deref(), Some("10.0.0.7:10080"));
        let v6 = br#"{"ip":"::1","status_port":10080}"#;
        assert_eq!(status_address(v6).as_deref(), Some("[::1]:10080"));
        assert_eq!(status_address(b"{}"), None);
    }

    #[test]
    fn an_empty_history_may_be_null() {
        assert_eq!(parse_jobs(b"null").unwrap(), Vec::new());
        assert_eq!(parse_jobs(b"[]").unwrap(), Vec::new());
        assert!(parse_jobs(b"{").unwrap_err().contains("undecodable"));
    }
}
