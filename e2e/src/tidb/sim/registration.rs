//! Registering the simulator in PD's etcd the way a TiDB server does (reference
//! tidb-schema-api.md §6), so a drainer finds its status API:
//!
//! - `/tidb/server/info/<ddl_id>`: the ServerInfo JSON, bound to a lease (90 s, kept alive);
//! - `/topology/tidb/<ip>:<sql port>/info`: the TopologyInfo JSON, without lease;
//! - `/topology/tidb/<ip>:<sql port>/ttl`: Unix nanoseconds of the last refresh, bound to a 45 s
//!   lease and rewritten every 30 s.
//!
//! On a graceful stop all three keys are deleted. The simulator has no SQL port of its own; it
//! advertises the truth database's port there, which is where the SQL view of its data lives.
//! The JSON builders are pure; [`Registration`] is the etcd I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, PutOptions};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The MySQL-compatible version string (`/status`, ServerInfo): a v7.5 TiDB, whose
/// `/ddl/history` behaves as the simulator's does.
pub const SERVER_VERSION: &str = "8.0.11-TiDB-v7.5.0";
/// The release version (TopologyInfo).
pub const RELEASE_VERSION: &str = "v7.5.0";
/// Git hash reported by the simulator.
pub const GIT_HASH: &str = "0000000000000000000000000000000000000000";
/// TiDB's schema lease, as reported.
const LEASE: &str = "45s";

const SERVER_INFO_TTL: i64 = 90;
const TOPOLOGY_TTL: i64 = 45;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const TOPOLOGY_REFRESH: Duration = Duration::from_secs(30);

/// Who this simulated TiDB server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The server's random UUID (`ddl_id`).
    pub ddl_id: String,
    pub ip: String,
    /// The advertised SQL port.
    pub sql_port: u16,
    pub status_port: u16,
    /// Unix seconds.
    pub start_timestamp: i64,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("etcd {op} {key}: {source}")]
    Etcd {
        op: &'static str,
        key: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("no randomness for the server id: {0}")]
    Random(String),
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A random UUID (version 4) as TiDB's `ddl_id`.
pub fn new_ddl_id() -> Result<String, RegistrationError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| RegistrationError::Random(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

impl ServerIdentity {
    /// A new identity for a server whose status API listens on `ip:status_port`.
    pub fn new(
        ip: &str,
        sql_port: u16,
        status_port: u16,
    ) -> Result<ServerIdentity, RegistrationError> {
        Ok(ServerIdentity {
            ddl_id: new_ddl_id()?,
            ip: ip.to_string(),
            sql_port,
            status_port,
            start_timestamp: unix_now().as_secs() as i64,
        })
    }

    /// The ServerInfo JSON (`/tidb/server/info/<ddl_id>`, `/info` without `is_owner`).
    pub fn server_info(&self) -> Value {
        json!({
            "version": SERVER_VERSION,
            "git_hash": GIT_HASH,
            "ddl_id": self.ddl_id,
            "ip": self.ip,
            "listening_port": self.sql_port,
            "status_port": self.status_port,
            "lease": LEASE,
            "binlog_status": "On",
            "start_timestamp": self.start_timestamp,
            "labels": {},
            "server_id": 0,
        })
    }

    /// The TopologyInfo JSON.
    pub fn topology_info(&self, deploy_path: &str) -> Value {
        json!({
            "version": RELEASE_VERSION,
            "git_hash": GIT_HASH,
            "ip": self.ip,
            "status_port": self.status_port,
            "deploy_path": deploy_path,
            "start_timestamp": self.start_timestamp,
            "labels": {},
        })
    }

    pub fn server_info_key(&self) -> String {
        format!("/tidb/server/info/{}", self.ddl_id)
    }

    fn topology_prefix(&self) -> String {
        let host = if self.ip.contains(':') {
            format!("[{}]", self.ip)
        } else {
            self.ip.clone()
        };
        format!("/topology/tidb/{host}:{}", self.sql_port)
    }

    pub fn topology_info_key(&self) -> String {
        format!("{}/info", self.topology_prefix())
    }

    pub fn topology_ttl_key(&self) -> String {
        format!("{}/ttl", self.topology_prefix())
    }
}

/// The etcd key TiDB's DDL owner writes the newest schema version to (a change signal).
pub const GLOBAL_SCHEMA_VERSION_KEY: &str = "/tidb/ddl/global_schema_version";

fn etcd_error(op: &'static str, key: &str) -> impl FnOnce(etcd_client::Error) -> RegistrationError {
    let key = key.to_string();
    move |source| RegistrationError::Etcd { op, key, source }
}

/// Publishes the schema version under [`GLOBAL_SCHEMA_VERSION_KEY`].
pub async fn put_schema_version(client: &Client, version: i64) -> Result<(), RegistrationError> {
    let mut kv = client.kv_client();
    kv.put(GLOBAL_SCHEMA_VERSION_KEY, version.to_string(), None)
        .await
        .map(|_| ())
        .map_err(etcd_error("put", GLOBAL_SCHEMA_VERSION_KEY))
}

/// A live registration; keys stay until [`Registration::deregister`] (or the leases expire).
pub struct Registration {
    client: Client,
    identity: ServerIdentity,
    info_lease: i64,
    ttl_lease: i64,
    keeper: JoinHandle<()>,
}

impl Registration {
    /// Writes the keys and starts keeping them alive.
    pub async fn register(
        client: Client,
        identity: ServerIdentity,
    ) -> Result<Registration, RegistrationError> {
        let mut lease = client.lease_client();
        let info_key = identity.server_info_key();
        let info_lease = lease
            .grant(SERVER_INFO_TTL, None)
            .await
            .map_err(etcd_error("lease grant", &info_key))?
            .id();
        let ttl_lease = lease
            .grant(TOPOLOGY_TTL, None)
            .await
            .map_err(etcd_error("lease grant", &identity.topology_ttl_key()))?
            .id();
        let mut kv = client.kv_client();
        kv.put(
            info_key.clone(),
            identity.server_info().to_string(),
            Some(PutOptions::new().with_lease(info_lease)),
        )
        .await
        .map_err(etcd_error("put", &info_key))?;
        let deploy_path = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.display().to_string()))
            .unwrap_or_default();
        let topology_key = identity.topology_info_key();
        kv.put(
            topology_key.clone(),
            identity.topology_info(&deploy_path).to_string(),
            None,
        )
        .await
        .map_err(etcd_error("put", &topology_key))?;
        put_ttl(&client, &identity.topology_ttl_key(), ttl_lease).await?;
        let keeper = tokio::spawn(keep_alive(
            client.clone(),
            identity.topology_ttl_key(),
            info_lease,
            ttl_lease,
        ));
        tracing::info!(key = %info_key, "registered as a TiDB server");
        Ok(Registration {
            client,
            identity,
            info_lease,
            ttl_lease,
            keeper,
        })
    }

    /// Deletes the keys and revokes the leases.
    pub async fn deregister(self) -> Result<(), RegistrationError> {
        self.keeper.abort();
        let mut kv = self.client.kv_client();
        for key in [
            self.identity.server_info_key(),
            self.identity.topology_info_key(),
            self.identity.topology_ttl_key(),
        ] {
            kv.delete(key.clone(), None)
                .await
                .map_err(etcd_error("delete", &key))?;
        }
        let mut lease = self.client.lease_client();
        for id in [self.info_lease, self.ttl_lease] {
            if let Err(err) = lease.revoke(id).await {
                tracing::debug!(lease = id, error = %err, "revoking a lease");
            }
        }
        tracing::info!(key = %self.identity.server_info_key(), "deregistered");
        Ok(())
    }
}

async fn put_ttl(client: &Client, key: &str, lease: i64) -> Result<(), RegistrationError> {
    let mut kv = client.kv_client();
    kv.put(
        key,
        unix_now().as_nanos().to_string(),
        Some(PutOptions::new().with_lease(lease)),
    )
    .await
    .map(|_| ())
    .map_err(etcd_error("put", key))
}

async fn keep_alive(client: Client, ttl_key: String, info_lease: i64, ttl_lease: i64) {
    let mut lease = client.lease_client();
    let mut since_refresh = Duration::ZERO;
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        for id in [info_lease, ttl_lease] {
            let renewed = match lease.keep_alive(id).await {
                Ok((mut keeper, mut stream)) => match keeper.keep_alive().await {
                    Ok(()) => stream.message().await.is_ok(),
                    Err(_) => false,
                },
                Err(_) => false,
            };
            if !renewed {
                tracing::warn!(lease = id, "could not renew a registration lease");
            }
        }
        since_refresh += KEEPALIVE_INTERVAL;
        if since_refresh >= TOPOLOGY_REFRESH {
            since_refresh = Duration::ZERO;
            if let Err(err) = put_ttl(&client, &ttl_key, ttl_lease).await {
                tracing::warn!(error = %err, "could not refresh the topology ttl key");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_json() {
        let id = ServerIdentity {
            ddl_id: "u-1".into(),
            ip: "127.0.0.1".into(),
            sql_port: 4000,
            status_port: 10080,
            start_timestamp: 7,
        };
        assert_eq!(id.server_info_key(), "/tidb/server/info/u-1");
        assert_eq!(id.topology_info_key(), "/topology/tidb/127.0.0.1:4000/info");
        assert_eq!(id.topology_ttl_key(), "/topology/tidb/127.0.0.1:4000/ttl");
        let info = id.server_info();
        assert_eq!(info["status_port"], 10080);
        assert_eq!(info["listening_port"], 4000);
        assert_eq!(info["binlog_status"], "On");
        assert_eq!(id.topology_info("/bin")["version"], RELEASE_VERSION);
        let v6 = ServerIdentity {
            ip: "::1".into(),
            ..id
        };
        assert_eq!(v6.topology_ttl_key(), "/topology/tidb/[::1]:4000/ttl");
        let a = new_ddl_id().unwrap();
        assert_eq!(a.len(), 36);
        assert_ne!(a, new_ddl_id().unwrap());
    }
}
