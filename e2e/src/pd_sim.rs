//! `pd-sim`, the PD stand-in: answers `pdpb.PD/GetMembers` and `pdpb.PD/Tso` itself and forwards
//! every other gRPC call (the etcd API, streams included) byte for byte to a real etcd, so that
//! clients use one URL for both, as with real PD.
//!
//! Timestamps are strictly increasing even across restarts: like PD, the oracle persists a
//! high-water mark (a few seconds ahead of what it hands out) in etcd before using it, and a
//! restarted oracle starts above it. The cluster id is persisted in etcd too.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use binlog_cluster::tso;
use binlog_proto::pdpb::{
    self, GetMembersRequest, GetMembersResponse, Member, ResponseHeader, Timestamp, TsoRequest,
    TsoResponse,
    pd_server::{Pd, PdServer},
};
use futures::{Stream, StreamExt};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status, Streaming};

use crate::process::{ChildProcess, accepts_connections, wait_until};

/// How far ahead of the timestamps handed out the persisted high-water mark runs.
const SAVE_WINDOW_MS: i64 = 3_000;

/// The etcd key holding the cluster id.
const CLUSTER_ID_KEY: &str = "/pd/cluster_id";

/// The largest logical counter before the physical clock must move on.
const MAX_LOGICAL: i64 = 1 << tso::LOGICAL_BITS;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The timestamp oracle: hands out `(physical, logical)` pairs that never repeat.
struct Oracle {
    etcd: etcd_client::Client,
    key: String,
    state: Mutex<OracleState>,
}

struct OracleState {
    physical: i64,
    logical: i64,
    /// Persisted high-water mark: no timestamp at or above it is handed out before it is raised.
    saved_limit: i64,
}

impl Oracle {
    async fn load(mut etcd: etcd_client::Client, cluster_id: u64) -> anyhow::Result<Oracle> {
        let key = format!("/pd/{cluster_id}/timestamp");
        let saved = etcd
            .get(key.as_str(), None)
            .await
            .context("reading the timestamp high-water mark")?
            .kvs()
            .first()
            .and_then(|kv| kv.value_str().ok()?.parse::<i64>().ok())
            .unwrap_or(0);
        let physical = now_ms().max(saved + 1);
        let oracle = Oracle {
            etcd,
            key,
            state: Mutex::new(OracleState {
                physical,
                logical: 0,
                saved_limit: 0,
            }),
        };
        let limit = physical + SAVE_WINDOW_MS;
        oracle.save(limit).await?;
        oracle.state.lock().await.saved_limit = limit;
        Ok(oracle)
    }

    async fn save(&self, limit: i64) -> anyhow::Result<()> {
        self.etcd
            .clone()
            .put(self.key.as_str(), limit.to_string(), None)
            .await
            .context("saving the timestamp high-water mark")?;
        Ok(())
    }

    /// Allocates `count` consecutive timestamps; returns the last.
    async fn allocate(&self, count: u32) -> anyhow::Result<(i64, i64)> {
        let count = i64::from(count.max(1));
        anyhow::ensure!(
            count < MAX_LOGICAL,
            "count {count} exceeds one millisecond's timestamps"
        );
        let mut state = self.state.lock().await;
        let now = now_ms();
        if now > state.physical {
            state.physical = now;
            state.logical = 0;
        }
        if state.logical + count >= MAX_LOGICAL {
            state.physical += 1;
            state.logical = 0;
        }
        if state.physical >= state.saved_limit {
            let limit = state.physical + SAVE_WINDOW_MS;
            self.save(limit).await?;
            state.saved_limit = limit;
        }
        state.logical += count;
        Ok((state.physical, state.logical))
    }
}

/// The `pdpb.PD` service of the stand-in.
struct PdSim {
    cluster_id: u64,
    client_url: String,
    oracle: Arc<Oracle>,
}

impl PdSim {
    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            error: None,
        })
    }
}

type TsoStream = Pin<Box<dyn Stream<Item = Result<TsoResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Pd for PdSim {
    async fn get_members(
        &self,
        _request: Request<GetMembersRequest>,
    ) -> Result<Response<GetMembersResponse>, Status> {
        let me = Member {
            name: "pd-sim".to_string(),
            member_id: 1,
            peer_urls: vec![self.client_url.clone()],
            client_urls: vec![self.client_url.clone()],
            ..Default::default()
        };
        Ok(Response::new(GetMembersResponse {
            header: self.header(),
            members: vec![me.clone()],
            leader: Some(me.clone()),
            etcd_leader: Some(me),
        }))
    }

    type TsoStream = TsoStream;

    async fn tso(
        &self,
        request: Request<Streaming<TsoRequest>>,
    ) -> Result<Response<Self::TsoStream>, Status> {
        let oracle = self.oracle.clone();
        let cluster_id = self.cluster_id;
        let header = self.header();
        let responses = request.into_inner().then(move |request| {
            let oracle = oracle.clone();
            let header = header.clone();
            async move {
                let request = request?;
                let asked_for = request.header.as_ref().map_or(0, |h| h.cluster_id);
                if asked_for != cluster_id {
                    return Err(Status::failed_precondition(format!(
                        "mismatch cluster id, need {cluster_id} but got {asked_for}"
                    )));
                }
                let (physical, logical) = oracle
                    .allocate(request.count)
                    .await
                    .map_err(|err| Status::unavailable(format!("{err:#}")))?;
                Ok(TsoResponse {
                    header,
                    count: request.count,
                    timestamp: Some(Timestamp {
                        physical,
                        logical,
                        suffix_bits: 0,
                    }),
                })
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// Forwards a gRPC call to etcd unchanged.
#[derive(Clone)]
struct EtcdProxy {
    client: HttpClient<HttpConnector, axum::body::Body>,
    authority: String,
}

async fn forward(proxy: EtcdProxy, request: axum::extract::Request) -> axum::response::Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{}{path}", proxy.authority).parse() {
        Ok(uri) => uri,
        Err(err) => return Status::internal(format!("bad path: {err}")).into_http(),
    };
    match proxy
        .client
        .request(http::Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response.map(axum::body::Body::new),
        Err(err) => Status::unavailable(format!(
            "pd-sim cannot reach etcd at {}: {err}",
            proxy.authority
        ))
        .into_http(),
    }
}

/// What a pd-sim instance serves.
#[derive(Debug, Clone)]
pub struct PdSimConfig {
    /// The etcd client URL everything else is forwarded to.
    pub etcd_url: String,
    /// A fixed cluster id; otherwise the one stored in etcd, or a new one.
    pub cluster_id: Option<u64>,
    /// The URL clients reach this instance at (reported as the leader's client URL).
    pub client_url: String,
    /// Serve TLS with these settings (client certificates are verified when presented).
    pub tls: Option<binlog_cluster::TlsSettings>,
}

async fn cluster_id(etcd: &mut etcd_client::Client, fixed: Option<u64>) -> anyhow::Result<u64> {
    let stored = etcd
        .get(CLUSTER_ID_KEY, None)
        .await
        .context("reading the cluster id")?
        .kvs()
        .first()
        .and_then(|kv| kv.value_str().ok()?.parse::<u64>().ok());
    let id = match (fixed, stored) {
        (Some(id), _) => id,
        (None, Some(id)) => return Ok(id),
        // Like PD: seconds in the high half, sub-second entropy in the low half.
        (None, None) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            (now.as_secs() << 32) | u64::from(now.subsec_nanos())
        }
    };
    etcd.put(CLUSTER_ID_KEY, id.to_string(), None)
        .await
        .context("saving the cluster id")?;
    Ok(id)
}

/// Serves PD on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: PdSimConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let etcd_authority = binlog_cluster::urls::host_port(&config.etcd_url).to_string();
    let mut etcd = etcd_client::Client::connect([config.etcd_url.as_str()], None)
        .await
        .with_context(|| format!("connecting to etcd at {}", config.etcd_url))?;
    let cluster_id = cluster_id(&mut etcd, config.cluster_id).await?;
    let oracle = Arc::new(Oracle::load(etcd, cluster_id).await?);
    let pd = PdSim {
        cluster_id,
        client_url: config.client_url.clone(),
        oracle,
    };
    let proxy = EtcdProxy {
        client: HttpClient::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http(),
        authority: etcd_authority,
    };
    let router = tonic::service::Routes::new(PdServer::new(pd))
        .into_axum_router()
        .fallback(move |request| forward(proxy.clone(), request));
    tracing::info!(cluster_id, url = %config.client_url, etcd = %config.etcd_url, "pd-sim serving");
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        server = server
            .tls_config(server_tls(tls)?)
            .context("configuring TLS")?;
    }
    server
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
        .context("serving gRPC")?;
    Ok(())
}

fn server_tls(
    tls: &binlog_cluster::TlsSettings,
) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    binlog_cluster::tls::use_ring_provider();
    let read = |path: &Option<std::path::PathBuf>, what: &str| -> anyhow::Result<Vec<u8>> {
        let path = path.as_ref().with_context(|| format!("TLS needs {what}"))?;
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            read(&tls.ssl_cert, "ssl-cert")?,
            read(&tls.ssl_key, "ssl-key")?,
        ))
        .client_ca_root(tonic::transport::Certificate::from_pem(read(
            &tls.ssl_ca,
            "ssl-ca",
        )?))
        .client_auth_optional(true))
}

/// A `pd-sim` process started from the built binary; stopped when dropped, restartable on the
/// same port.
#[derive(Debug)]
pub struct PdSimProcess {
    process: ChildProcess,
    addr: String,
    etcd_url: String,
    log: std::path::PathBuf,
    tls_args: Vec<String>,
}

impl PdSimProcess {
    /// Starts `pd-sim` in front of `etcd_url` on a free port, logging to `log`.
    pub fn start(etcd_url: &str, log: &Path) -> anyhow::Result<PdSimProcess> {
        Self::start_with_tls(etcd_url, log, None)
    }

    /// Like [`PdSimProcess::start`], serving TLS with the PKI's server certificate when given.
    pub fn start_with_tls(
        etcd_url: &str,
        log: &Path,
        pki: Option<&crate::pki::Pki>,
    ) -> anyhow::Result<PdSimProcess> {
        crate::process::with_port_retries(|| Self::start_once(etcd_url, log, pki))
    }

    fn start_once(
        etcd_url: &str,
        log: &Path,
        pki: Option<&crate::pki::Pki>,
    ) -> anyhow::Result<PdSimProcess> {
        let addr = format!("127.0.0.1:{}", crate::free_port());
        let tls_args = pki.map_or_else(Vec::new, |pki| {
            vec![
                format!("--ssl-ca={}", pki.ca.display()),
                format!("--ssl-cert={}", pki.server.cert.display()),
                format!("--ssl-key={}", pki.server.key.display()),
            ]
        });
        let process = Self::spawn(&addr, etcd_url, log, &tls_args)?;
        Ok(PdSimProcess {
            process,
            addr,
            etcd_url: etcd_url.to_string(),
            log: log.to_owned(),
            tls_args,
        })
    }

    fn spawn(
        addr: &str,
        etcd_url: &str,
        log: &Path,
        tls_args: &[String],
    ) -> anyhow::Result<ChildProcess> {
        let mut command = std::process::Command::new(crate::bin_path("pd-sim"));
        command
            .args(["--addr", addr, "--etcd", etcd_url])
            .args(tls_args);
        let mut process = ChildProcess::spawn("pd-sim", command, log)?;
        if !wait_until(Duration::from_secs(20), || accepts_connections(addr)) {
            process.assert_running();
            anyhow::bail!(
                "pd-sim did not listen on {addr} within 20 s:\n{}",
                process.log_tail()
            );
        }
        Ok(process)
    }

    /// The URL to give components as `pd-urls`.
    pub fn url(&self) -> String {
        let scheme = if self.tls_args.is_empty() {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Kills the process and starts it again on the same address.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill();
        self.process = Self::spawn(&self.addr, &self.etcd_url, &self.log, &self.tls_args)?;
        Ok(())
    }

    /// Kills the process for good (a dead PD).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// Response-header type re-exported for tests that talk `pdpb` directly.
pub use pdpb::ErrorType;
