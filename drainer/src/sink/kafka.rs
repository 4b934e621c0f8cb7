//! The Kafka sink (`db-type = "kafka"`, reference drainer.md §6.2): each transaction or DDL
//! becomes one secondary binlog message on partition 0 of the topic, in commit order, as TiDB's
//! binlog reader expects. A producer task sends what is queued in batches and reports a message
//! written once the broker acknowledged it from every in-sync replica (acks = all); that is what
//! the checkpoint waits for.
//!
//! The producer task connects by itself, so the drainer starts, registers and serves `/status`
//! while the brokers are unreachable; `/status` says so, and what it has not acknowledged for a
//! while. A broker that is down is waited for and nothing is dropped; an error the broker gives
//! for the messages themselves (or a topic it refuses to create) stops the drainer, which
//! resumes from its checkpoint. As with the original, a message can then be written twice:
//! consumers skip commit ts they have seen. Messages waiting for their acknowledgement are
//! bounded in bytes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use binlog_proto::binlog::PrewriteValue;
use prost::Message;
use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::{Closed, DdlStatement, SinkError};
use crate::config::KafkaSink as KafkaConfig;
use crate::schema::Catalog;
use crate::translate::kafka;
use crate::translate::zone::ShownZone;

/// Bytes of messages handed to the producer and not yet acknowledged. A bigger message takes
/// the whole budget and goes alone.
const QUEUED_BYTES: usize = 64 << 20;
/// A batch stops growing past this many bytes (or `kafka-max-messages` messages).
const BATCH_BYTES: usize = 1 << 20;
/// The only partition written, as in the original.
const PARTITION: i32 = 0;
/// How long topic creation may take on the broker.
const CREATE_TOPIC_TIMEOUT_MS: i32 = 10_000;
/// A batch unacknowledged for this long is reported in `/status`.
const SLOW_ACKNOWLEDGEMENT: Duration = Duration::from_secs(2);
/// How long one connection attempt retries inside the client before `/status` hears of it.
const CONNECT_ATTEMPT: Duration = Duration::from_secs(3);
/// The wait after the first failed connection attempt; it doubles up to [`MAX_RECONNECT_WAIT`].
const FIRST_RECONNECT_WAIT: Duration = Duration::from_millis(500);
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(10);

/// What the producer is stuck on, for `/status`: the client waits through a broker that is
/// down or hung without a word, so this is where that shows.
pub struct ProducerState {
    topic: String,
    brokers: String,
    batch: Mutex<Option<Batch>>,
    connecting: Mutex<Option<Connecting>>,
}

/// Connection attempts that failed so far, and the last error.
struct Connecting {
    attempts: u32,
    error: String,
}

struct Batch {
    since: Instant,
    first_commit_ts: i64,
    messages: usize,
}

impl ProducerState {
    /// Failed connection attempts, or the unacknowledged batch once it has waited
    /// [`SLOW_ACKNOWLEDGEMENT`].
    pub fn trouble(&self) -> Option<String> {
        if let Some(connecting) = &*self.connecting.lock().unwrap_or_else(|e| e.into_inner()) {
            return Some(format!(
                "Kafka: cannot reach brokers {} for topic {} ({} attempts), retrying: {}",
                self.brokers, self.topic, connecting.attempts, connecting.error
            ));
        }
        let batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        let batch = batch.as_ref()?;
        let waited = batch.since.elapsed();
        (waited >= SLOW_ACKNOWLEDGEMENT).then(|| {
            format!(
                "Kafka: {} messages from commit ts {} unacknowledged for {:.0} s on topic {} \
                 (brokers {}), waiting",
                batch.messages,
                batch.first_commit_ts,
                waited.as_secs_f64(),
                self.topic,
                self.brokers
            )
        })
    }

    fn set_batch(&self, batch: Option<Batch>) {
        *self.batch.lock().unwrap_or_else(|e| e.into_inner()) = batch;
    }

    fn set_connecting(&self, connecting: Option<Connecting>) {
        *self.connecting.lock().unwrap_or_else(|e| e.into_inner()) = connecting;
    }
}

/// One message on its way, holding its share of the byte budget until acknowledged.
struct Outgoing {
    commit_ts: i64,
    payload: Vec<u8>,
    _budget: OwnedSemaphorePermit,
}

/// What the producer reports: commit ts acknowledged (in send order), or why it stopped.
type Acknowledged = Result<Vec<i64>, String>;

pub struct KafkaSink {
    topic: String,
    outbox: Option<mpsc::UnboundedSender<Outgoing>>,
    budget: Arc<Semaphore>,
    acks: mpsc::UnboundedReceiver<Acknowledged>,
    producer: Option<JoinHandle<()>>,
    max_message_size: usize,
    producer_state: Arc<ProducerState>,
}

fn kafka_error(what: impl std::fmt::Display) -> SinkError {
    SinkError::Kafka(what.to_string())
}

impl KafkaSink {
    /// Starts the producer task, which connects to the brokers (retrying while none answers),
    /// creates the topic with one partition when it does not exist, and sends what is queued.
    pub fn start(config: &KafkaConfig, topic: String) -> KafkaSink {
        let (outbox, queued) = mpsc::unbounded_channel();
        let (acked, acks) = mpsc::unbounded_channel();
        let producer_state = Arc::new(ProducerState {
            topic: topic.clone(),
            brokers: config.addrs.join(","),
            batch: Mutex::new(None),
            connecting: Mutex::new(None),
        });
        let producer = tokio::spawn(run_producer(
            config.clone(),
            topic.clone(),
            queued,
            acked,
            producer_state.clone(),
        ));
        KafkaSink {
            topic,
            outbox: Some(outbox),
            budget: Arc::new(Semaphore::new(QUEUED_BYTES)),
            acks,
            producer: Some(producer),
            max_message_size: config.max_message_size,
            producer_state,
        }
    }

    /// What the producer is stuck on, if anything (for `/status`).
    pub fn producer_state(&self) -> Arc<ProducerState> {
        self.producer_state.clone()
    }

    async fn send(&mut self, commit_ts: i64, payload: Vec<u8>) -> Result<(), SinkError> {
        if payload.len() > self.max_message_size {
            return Err(kafka_error(format!(
                "the binlog at commit ts {commit_ts} is a {} byte message, more than \
                 kafka-max-message-size ({} bytes)",
                payload.len(),
                self.max_message_size
            )));
        }
        let share = u32::try_from(payload.len().clamp(1, QUEUED_BYTES)).unwrap_or(u32::MAX);
        let budget = self
            .budget
            .clone()
            .acquire_many_owned(share)
            .await
            .map_err(|_| kafka_error("the producer's byte budget is closed"))?;
        let outbox = self
            .outbox
            .as_ref()
            .ok_or_else(|| kafka_error("the sink is closed"))?;
        outbox
            .send(Outgoing {
                commit_ts,
                payload,
                _budget: budget,
            })
            .map_err(|_| kafka_error(format!("the producer for topic {} stopped", self.topic)))
    }

    pub async fn write_dml(
        &mut self,
        commit_ts: i64,
        prewrite: &PrewriteValue,
        catalog: &Catalog,
        keep: &(dyn Fn(&str, &str) -> bool + Sync),
    ) -> Result<bool, SinkError> {
        match kafka::dml_binlog(commit_ts, prewrite, catalog, keep, ShownZone::Local)? {
            Some(binlog) => {
                self.send(commit_ts, binlog.encode_to_vec()).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub async fn write_ddl(&mut self, ddl: DdlStatement) -> Result<bool, SinkError> {
        if ddl.skip {
            return Ok(false);
        }
        let binlog = kafka::ddl_binlog(ddl.commit_ts, &ddl.database, &ddl.table, &ddl.query);
        self.send(ddl.commit_ts, binlog.encode_to_vec()).await?;
        Ok(true)
    }

    /// Waits until the broker acknowledged more messages; their commit ts, oldest first.
    /// Cancel-safe.
    pub async fn confirmations(&mut self) -> Result<Vec<i64>, SinkError> {
        match self.acks.recv().await {
            Some(Ok(acknowledged)) => Ok(acknowledged),
            Some(Err(err)) => Err(kafka_error(err)),
            None => Err(kafka_error(format!(
                "the producer for topic {} stopped",
                self.topic
            ))),
        }
    }

    /// Sends everything queued and stops. Brokers that do not take it all within `wait` are
    /// given up on: what they did not acknowledge is past the checkpoint, so it is sent again
    /// after a restart.
    pub async fn close(&mut self, wait: Duration) -> Result<Closed, SinkError> {
        self.outbox = None;
        let mut complete = true;
        if let Some(mut producer) = self.producer.take() {
            match tokio::time::timeout(wait, &mut producer).await {
                Ok(joined) => {
                    joined.map_err(|err| kafka_error(format!("the producer failed: {err}")))?
                }
                Err(_) => {
                    producer.abort();
                    complete = false;
                    tracing::warn!(
                        topic = self.topic,
                        "the Kafka brokers did not take everything within {} s of stopping; \
                         the rest is sent again after a restart",
                        wait.as_secs()
                    );
                }
            }
        }
        let mut confirmed = Vec::new();
        while let Ok(acks) = self.acks.try_recv() {
            confirmed.extend(acks.map_err(kafka_error)?);
        }
        Ok(Closed {
            confirmed,
            complete,
        })
    }
}

/// Connects, then sends until the sink closes the queue; a failure that retrying cannot cure is
/// reported through `acked`.
async fn run_producer(
    config: KafkaConfig,
    topic: String,
    queued: mpsc::UnboundedReceiver<Outgoing>,
    acked: mpsc::UnboundedSender<Acknowledged>,
    producer_state: Arc<ProducerState>,
) {
    match connect(&config, &topic, &producer_state).await {
        Ok(partition) => {
            tracing::info!(topic, brokers = %producer_state.brokers, "writing to Kafka");
            produce(
                partition,
                queued,
                acked,
                config.max_messages.max(1),
                producer_state,
            )
            .await
        }
        Err(err) => {
            let _ = acked.send(Err(err));
        }
    }
}

/// Why a connection attempt failed, and whether another may succeed.
enum ConnectError {
    /// The brokers did not answer, or not yet usefully: try again.
    Unreachable(String),
    /// The brokers refused what the drainer needs (the topic): stop.
    Refused(String),
}

/// The partition client, once the brokers answer and the topic exists. Failed attempts are
/// shown in `/status` and retried with backoff, without end.
async fn connect(
    config: &KafkaConfig,
    topic: &str,
    producer_state: &ProducerState,
) -> Result<PartitionClient, String> {
    let mut wait = FIRST_RECONNECT_WAIT;
    let mut attempts = 0;
    loop {
        match connect_once(config, topic).await {
            Ok(partition) => {
                producer_state.set_connecting(None);
                return Ok(partition);
            }
            Err(ConnectError::Refused(err)) => return Err(err),
            Err(ConnectError::Unreachable(error)) => {
                attempts += 1;
                tracing::warn!(
                    topic,
                    brokers = %producer_state.brokers,
                    attempts,
                    error,
                    "cannot reach Kafka, retrying"
                );
                producer_state.set_connecting(Some(Connecting { attempts, error }));
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RECONNECT_WAIT);
    }
}

async fn connect_once(config: &KafkaConfig, topic: &str) -> Result<PartitionClient, ConnectError> {
    let unreachable = |what: &str, err: rskafka::client::error::Error| {
        ConnectError::Unreachable(format!("{what}: {err}"))
    };
    let client = ClientBuilder::new(config.addrs.clone())
        .client_id(config.client_id.as_str())
        .max_message_size(config.max_message_size)
        .backoff_config(BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
            deadline: Some(CONNECT_ATTEMPT),
        })
        .build()
        .await
        .map_err(|err| unreachable("connecting", err))?;
    ensure_topic(&client, topic).await?;
    client
        .partition_client(topic, PARTITION, UnknownTopicHandling::Retry)
        .await
        .map_err(|err| unreachable(&format!("partition {PARTITION}"), err))
}

/// Creates `topic` with one partition unless the brokers know it already.
async fn ensure_topic(client: &Client, topic: &str) -> Result<(), ConnectError> {
    let topics = client
        .list_topics()
        .await
        .map_err(|err| ConnectError::Unreachable(format!("listing topics: {err}")))?;
    if topics.iter().any(|t| t.name == topic) {
        return Ok(());
    }
    let controller = client
        .controller_client()
        .map_err(|err| ConnectError::Unreachable(format!("finding the controller: {err}")))?;
    // Replication factor -1: the broker's default.
    match controller
        .create_topic(topic, 1, -1, CREATE_TOPIC_TIMEOUT_MS)
        .await
    {
        Ok(()) => {
            tracing::info!(topic, "created the Kafka topic with one partition");
            Ok(())
        }
        Err(KafkaError::ServerError {
            protocol_error: ProtocolError::TopicAlreadyExists,
            ..
        }) => Ok(()),
        Err(err @ KafkaError::ServerError { .. }) => Err(ConnectError::Refused(format!(
            "creating topic {topic} (one partition): {err}; create it on the brokers"
        ))),
        Err(err) => Err(ConnectError::Unreachable(format!(
            "creating topic {topic}: {err}"
        ))),
    }
}

/// Sends what is queued in batches, each acknowledged before the next goes (so the partition
/// holds the messages in commit order), until the sink closes the queue.
async fn produce(
    partition: PartitionClient,
    mut queued: mpsc::UnboundedReceiver<Outgoing>,
    acked: mpsc::UnboundedSender<Acknowledged>,
    max_messages: usize,
    producer_state: Arc<ProducerState>,
) {
    let mut batch: Vec<Outgoing> = Vec::new();
    loop {
        match queued.recv().await {
            Some(message) => batch.push(message),
            None => return,
        }
        let mut bytes = batch[0].payload.len();
        while batch.len() < max_messages && bytes < BATCH_BYTES {
            match queued.try_recv() {
                Ok(message) => {
                    bytes += message.payload.len();
                    batch.push(message);
                }
                Err(_) => break,
            }
        }
        let timestamp = chrono::Utc::now();
        // A failed batch is not resent here (the drainer stops and resumes from its
        // checkpoint), so the payloads move into the records; the budget stays held until the
        // acknowledgement.
        let records = batch
            .iter_mut()
            .map(|message| Record {
                key: None,
                value: Some(std::mem::take(&mut message.payload)),
                headers: BTreeMap::new(),
                timestamp,
            })
            .collect();
        producer_state.set_batch(Some(Batch {
            since: Instant::now(),
            first_commit_ts: batch[0].commit_ts,
            messages: batch.len(),
        }));
        let produced = partition.produce(records, Compression::NoCompression).await;
        producer_state.set_batch(None);
        let report = match produced {
            Ok(_) => Ok(batch.drain(..).map(|message| message.commit_ts).collect()),
            Err(err) => Err(format!(
                "writing {} messages (commit ts {}–{}) to topic {} partition {PARTITION}: {err}",
                batch.len(),
                batch[0].commit_ts,
                batch[batch.len() - 1].commit_ts,
                partition.topic()
            )),
        };
        let failed = report.is_err();
        if acked.send(report).is_err() || failed {
            return;
        }
    }
}
