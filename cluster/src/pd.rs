//! The PD client: the cluster id and leader from `GetMembers`, and timestamps from the `Tso`
//! stream, batched so that many concurrent callers share one round trip.
//!
//! Every call is bounded by [`PD_TIMEOUT`]; errors name the URL they came from. When the leader
//! fails, the client asks the other `pd-urls` for the new one and retries within the caller's
//! deadline.

use std::time::Duration;

use binlog_proto::pdpb::{self, pd_client::PdClient as PdGrpc};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::error_text::error_chain;
use crate::tls::{TlsError, TlsSettings};
use crate::tso;

/// Timeout of one PD request (and of connecting to PD).
pub const PD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a timestamp request keeps retrying across leader changes before giving up.
pub const TSO_DEADLINE: Duration = Duration::from_secs(10);

/// Most timestamp requests answered by one `Tso` round trip.
const MAX_BATCH: usize = 10_000;

/// A PD request that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PdError {
    /// No PD URL answered `GetMembers`.
    #[error("cannot reach PD at any of {urls}: {last}")]
    Unreachable {
        /// The URLs tried.
        urls: String,
        /// The last failure, naming its URL.
        last: String,
    },
    /// A request to one PD URL failed.
    #[error("PD {url}: {message}")]
    Request {
        /// The PD URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The TLS settings could not be loaded.
    #[error("{0}")]
    Tls(String),
    /// The client was dropped while a request was pending.
    #[error("PD client closed")]
    Closed,
}

impl From<TlsError> for PdError {
    fn from(err: TlsError) -> Self {
        PdError::Tls(err.to_string())
    }
}

/// A PD client; cheap to clone, all clones share one TSO stream.
#[derive(Clone, Debug)]
pub struct PdClient {
    cluster_id: u64,
    requests: mpsc::Sender<oneshot::Sender<Result<i64, PdError>>>,
}

#[derive(Clone)]
struct Connector {
    urls: Vec<String>,
    tls: Option<tonic::transport::ClientTlsConfig>,
}

struct Leader {
    url: String,
    client: PdGrpc<Channel>,
    cluster_id: u64,
}

impl Connector {
    fn endpoint(&self, url: &str) -> Result<Endpoint, PdError> {
        let request_error = |message: String| PdError::Request {
            url: url.to_string(),
            message,
        };
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|err| request_error(format!("invalid URL: {err}")))?
            .connect_timeout(PD_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|err| request_error(format!("TLS: {err}")))?;
        }
        Ok(endpoint)
    }

    async fn members(&self, url: &str) -> Result<(u64, Vec<String>), PdError> {
        let request_error = |message: String| PdError::Request {
            url: url.to_string(),
            message,
        };
        let channel = tokio::time::timeout(PD_TIMEOUT, self.endpoint(url)?.connect())
            .await
            .map_err(|_| request_error(format!("connect timed out after {PD_TIMEOUT:?}")))?
            .map_err(|err| request_error(format!("connect failed: {}", error_chain(&err))))?;
        let mut client = PdGrpc::new(channel);
        let response = tokio::time::timeout(
            PD_TIMEOUT,
            client.get_members(pdpb::GetMembersRequest { header: None }),
        )
        .await
        .map_err(|_| request_error(format!("GetMembers timed out after {PD_TIMEOUT:?}")))?
        .map_err(|status| request_error(format!("GetMembers failed: {}", status.message())))?
        .into_inner();
        let header = response.header.unwrap_or_default();
        if let Some(error) = header
            .error
            .filter(|e| e.r#type != pdpb::ErrorType::Ok as i32)
        {
            return Err(request_error(format!("GetMembers: {}", error.message)));
        }
        let leader_urls = response.leader.map(|m| m.client_urls).unwrap_or_default();
        Ok((header.cluster_id, leader_urls))
    }

    /// Finds the leader by asking each URL in turn; connects to the leader's client URL, or to the
    /// URL that answered when the leader's own URLs do not.
    async fn leader(&self) -> Result<Leader, PdError> {
        let mut last = String::from("no URL given");
        for url in &self.urls {
            match self.members(url).await {
                Ok((cluster_id, leader_urls)) => {
                    for candidate in leader_urls.iter().chain(std::iter::once(url)) {
                        let Ok(endpoint) = self.endpoint(candidate) else {
                            continue;
                        };
                        if let Ok(Ok(channel)) =
                            tokio::time::timeout(PD_TIMEOUT, endpoint.connect()).await
                        {
                            return Ok(Leader {
                                url: candidate.clone(),
                                client: PdGrpc::new(channel),
                                cluster_id,
                            });
                        }
                    }
                    last = format!("PD {url}: leader {leader_urls:?} unreachable");
                }
                Err(err) => last = err.to_string(),
            }
        }
        Err(PdError::Unreachable {
            urls: self.urls.join(","),
            last,
        })
    }
}

impl PdClient {
    /// Connects to PD: learns the cluster id and the leader, and opens the TSO stream.
    pub async fn connect(urls: &[String], tls: &TlsSettings) -> Result<PdClient, PdError> {
        let connector = Connector {
            urls: urls.to_vec(),
            tls: tls.grpc_client_config()?,
        };
        let leader = connector.leader().await?;
        let cluster_id = leader.cluster_id;
        let (requests, receiver) = mpsc::channel(MAX_BATCH);
        tokio::spawn(tso_loop(connector, leader, receiver));
        Ok(PdClient {
            cluster_id,
            requests,
        })
    }

    /// The PD cluster id.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// A fresh, unique timestamp, strictly greater than any this PD handed out before.
    pub async fn get_ts(&self) -> Result<i64, PdError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(reply)
            .await
            .map_err(|_| PdError::Closed)?;
        answer.await.map_err(|_| PdError::Closed)?
    }
}

struct TsoStream {
    url: String,
    cluster_id: u64,
    sender: mpsc::Sender<pdpb::TsoRequest>,
    responses: tonic::Streaming<pdpb::TsoResponse>,
}

impl TsoStream {
    async fn open(leader: &mut Leader) -> Result<TsoStream, PdError> {
        let (sender, receiver) = mpsc::channel(16);
        let responses =
            tokio::time::timeout(PD_TIMEOUT, leader.client.tso(ReceiverStream::new(receiver)))
                .await
                .map_err(|_| PdError::Request {
                    url: leader.url.clone(),
                    message: format!("opening the Tso stream timed out after {PD_TIMEOUT:?}"),
                })?
                .map_err(|status| PdError::Request {
                    url: leader.url.clone(),
                    message: format!("Tso failed: {}", status.message()),
                })?
                .into_inner();
        Ok(TsoStream {
            url: leader.url.clone(),
            cluster_id: leader.cluster_id,
            sender,
            responses,
        })
    }

    /// Asks for `count` timestamps; returns the first of the consecutive range allocated.
    async fn allocate(&mut self, count: u32) -> Result<i64, PdError> {
        let request_error = |message: String| PdError::Request {
            url: self.url.clone(),
            message,
        };
        let request = pdpb::TsoRequest {
            header: Some(pdpb::RequestHeader {
                cluster_id: self.cluster_id,
                sender_id: 0,
            }),
            count,
            dc_location: "global".to_string(),
        };
        self.sender
            .send(request)
            .await
            .map_err(|_| request_error("Tso stream closed".into()))?;
        let response = tokio::time::timeout(PD_TIMEOUT, self.responses.message())
            .await
            .map_err(|_| request_error(format!("Tso timed out after {PD_TIMEOUT:?}")))?
            .map_err(|status| request_error(format!("Tso failed: {}", status.message())))?
            .ok_or_else(|| request_error("Tso stream ended".into()))?;
        if let Some(error) = response
            .header
            .and_then(|h| h.error)
            .filter(|e| e.r#type != pdpb::ErrorType::Ok as i32)
        {
            return Err(request_error(format!("Tso: {}", error.message)));
        }
        if response.count != count {
            return Err(request_error(format!(
                "Tso returned {} timestamps, asked for {count}",
                response.count
            )));
        }
        let last = response
            .timestamp
            .ok_or_else(|| request_error("Tso response without a timestamp".into()))?;
        Ok(tso::compose(last.physical, last.logical) - i64::from(count) + 1)
    }
}

/// Serves timestamp requests: drains whatever is queued into one batch, asks PD once, hands out
/// the consecutive range. On failure it finds the leader again and retries until the oldest
/// request's deadline.
async fn tso_loop(
    connector: Connector,
    leader: Leader,
    mut requests: mpsc::Receiver<oneshot::Sender<Result<i64, PdError>>>,
) {
    let mut leader = Some(leader);
    let mut stream: Option<TsoStream> = None;
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = requests.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let deadline = tokio::time::Instant::now() + TSO_DEADLINE;
        let result = loop {
            let attempt = async {
                if stream.is_none() {
                    let current = match leader.as_mut() {
                        Some(current) => current,
                        None => leader.insert(connector.leader().await?),
                    };
                    stream = Some(TsoStream::open(current).await?);
                }
                let open = stream.as_mut().ok_or(PdError::Closed)?;
                open.allocate(batch.len() as u32).await
            };
            match attempt.await {
                Ok(first_ts) => break Ok(first_ts),
                Err(err) => {
                    stream = None;
                    leader = None;
                    if tokio::time::Instant::now() >= deadline {
                        break Err(err);
                    }
                    tracing::warn!(error = %err, "TSO request failed; looking for the PD leader again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        match result {
            Ok(first_ts) => {
                for (offset, reply) in batch.drain(..).enumerate() {
                    let _ = reply.send(Ok(first_ts + offset as i64));
                }
            }
            Err(err) => {
                for reply in batch.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
