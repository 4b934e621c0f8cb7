//! Serving the status API as a registered TiDB server: [`StatusServer`] (HTTP listener plus
//! etcd registration, used by both `run --status-addr` and `serve`) and [`serve`], which answers
//! from the truth's DDL history until told to stop, picking up jobs another `run` adds.

use std::net::SocketAddr;
use std::time::Duration;

use binlog_cluster::{Registry, TlsSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::tidb::sim::SimError;
use crate::tidb::sim::registration::{Registration, ServerIdentity};
use crate::tidb::sim::schema_store::SchemaStore;
use crate::tidb::sim::status_api;
use crate::tidb::sim::truth::Truth;

/// How often `serve` looks for jobs added to the history by someone else.
const HISTORY_POLL: Duration = Duration::from_secs(1);

/// The SQL port advertised for a truth URL (its MariaDB port).
pub fn truth_sql_port(truth_url: &str) -> u16 {
    mysql_async::Opts::from_url(truth_url).map_or(3306, |o| o.tcp_port())
}

/// The status API listening and registered in etcd.
pub struct StatusServer {
    registration: Registration,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl StatusServer {
    /// Listens on `addr`, serves `store`, and registers as a TiDB server advertising `sql_port`.
    pub async fn start(
        addr: SocketAddr,
        store: SchemaStore,
        registry: &Registry,
        sql_port: u16,
    ) -> Result<StatusServer, SimError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let identity = ServerIdentity::new(&addr.ip().to_string(), sql_port, addr.port())?;
        // Registered before serving: whoever gets an answer finds the registration in place.
        let registration = Registration::register(registry.etcd(), identity.clone()).await?;
        let router = status_api::router(store, identity);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "status API listening");
        Ok(StatusServer {
            registration,
            stop,
            task,
        })
    }

    /// Deregisters, then stops the listener.
    pub async fn stop(self) -> Result<(), SimError> {
        let deregistered = self.registration.deregister().await;
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "status API stopped with an error"),
            Err(err) => tracing::warn!(error = %err, "status API task failed"),
        }
        deregistered.map_err(SimError::from)
    }
}

/// Settings of `tidb-sim serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub pd_urls: Vec<String>,
    pub truth_url: String,
    pub status_addr: SocketAddr,
    pub tls: TlsSettings,
}

/// Serves the truth's history as a registered TiDB server until `shutdown` resolves, then
/// deregisters.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let truth = Truth::connect(&config.truth_url, 2)?;
    let jobs = truth.load_history(0).await?;
    tracing::info!(jobs = jobs.len(), "loaded the DDL history");
    let store = SchemaStore::new(jobs)?;
    let registry = Registry::connect(&config.pd_urls, &config.tls).await?;
    let server = StatusServer::start(
        config.status_addr,
        store.clone(),
        &registry,
        truth_sql_port(&config.truth_url),
    )
    .await?;
    let refresh = async {
        loop {
            tokio::time::sleep(HISTORY_POLL).await;
            let after = store.snapshot().catalog.schema_version();
            match truth.load_history(after).await {
                Ok(jobs) if jobs.is_empty() => {}
                Ok(jobs) => {
                    let count = jobs.len();
                    if let Err(err) = store.publish(jobs) {
                        return SimError::from(err);
                    }
                    tracing::info!(count, "new DDL jobs in the history");
                }
                Err(err) => tracing::warn!(error = %err, "reading the DDL history"),
            }
        }
    };
    let failed = tokio::select! {
        () = shutdown => None,
        err = refresh => Some(err),
    };
    let stopped = server.stop().await;
    truth.close().await;
    match failed {
        Some(err) => Err(err),
        None => stopped,
    }
}
