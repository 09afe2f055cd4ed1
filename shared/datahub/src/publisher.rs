//! [`DatahubPublisher`]: capture's events into a DataHub BLOB topic.
//!
//! * **Records.** Each row change is one BLOB record whose bytes are the Debezium JSON
//!   envelope (`cdc_event::debezium::to_vec`), with no attributes (what a Debezium consumer
//!   expects, and the smallest record). A schema change is one record whose bytes are
//!   `{"schemaChange": {...}}` (the JSON-lines bus's form) with the attribute
//!   [`EVENT_KIND_ATTRIBUTE`]` = schema_change`, so consumers can skip it without parsing.
//!   Heartbeats are **not** published: they exist to advance capture's own checkpoint through
//!   idle periods, which happens whether or not they reach the bus, and publishing one per
//!   second to every shard would fill the log with records nobody reads.
//! * **Routing.** By [`route_hash`] (table + primary key) into the ACTIVE shards' hash ranges;
//!   every record names its shard explicitly, so the publisher knows where each one went.
//! * **Batching.** A `publish` is cut into PutRecords requests of at most
//!   [`PublisherOptions::with_max_batch_records`] records and
//!   [`with_max_batch_bytes`](PublisherOptions::with_max_batch_bytes) estimated JSON body bytes
//!   (defaults: 10,000 records and 4,000,000 bytes, the service's per-request limits, §6 of
//!   the protocol reference). Requests go one after another: a later request may hold records
//!   of the same shard, which must land after the earlier ones.
//! * **Partial failures.** Only the failed records are sent again, in their original order,
//!   after a jittered backoff, up to `max_retries` times. That keeps per-shard order when the
//!   failed records of each shard are the tail of that shard's records in the request, which
//!   is what the service and datahub-local do (a shard's records are appended together). If a
//!   server ever accepted a record after a rejected one in the same shard, re-sending the
//!   rejected one would put it behind a later position, and the sink would drop it as a
//!   replay; the publisher refuses with [`PublishError::OrderBroken`] instead of losing it.
//! * **Retries.** Whole-request failures are retried by the client (`maxRetries`, jittered
//!   backoff). A request that timed out may have been written anyway; re-sending it appends
//!   the same events again behind themselves in the same shards, which the sink drops by
//!   (source, shard) position.
//! * **Durability.** `publish` returns once every record was acknowledged by the server.

use std::sync::Arc;
use std::time::Duration;

use cdc_bus::{BusError, Publisher};
use cdc_event::Event;

use crate::client::{ClientError, DatahubClient, PutRecord};
use crate::model::RecordData;
use crate::partitioner::{route_hash, ShardMap};
use crate::topic::{ensure_topic, shard_map, TopicError, TopicPolicy};

/// The attribute naming a record that is not a row change, and its values.
pub const EVENT_KIND_ATTRIBUTE: &str = "cdc.event";
pub const SCHEMA_CHANGE_KIND: &str = "schema_change";

/// Records per PutRecords request (the service's limit per request).
pub const MAX_BATCH_RECORDS: usize = 10_000;
/// Estimated JSON body bytes per request (the service's body limit is 4 MB).
pub const MAX_BATCH_BYTES: usize = 4_000_000;
/// JSON around one record's base64 data (`{"Data": "...", "ShardId": "12", ...}`), generously.
const RECORD_OVERHEAD: usize = 128;

/// Where and how to publish. `new(project, topic)`, then `with_*`.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    project: String,
    topic: String,
    topic_policy: TopicPolicy,
    max_batch_records: usize,
    max_batch_bytes: usize,
    max_retries: u32,
    base_backoff: Duration,
    max_backoff: Duration,
}

impl PublisherOptions {
    pub fn new(project: impl Into<String>, topic: impl Into<String>) -> Self {
        PublisherOptions {
            project: project.into(),
            topic: topic.into(),
            topic_policy: TopicPolicy::default(),
            max_batch_records: MAX_BATCH_RECORDS,
            max_batch_bytes: MAX_BATCH_BYTES,
            max_retries: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
    pub fn with_topic_policy(mut self, policy: TopicPolicy) -> Self {
        self.topic_policy = policy;
        self
    }
    /// At most this many records per request (clamped to 1..=10,000).
    pub fn with_max_batch_records(mut self, n: usize) -> Self {
        self.max_batch_records = n.clamp(1, MAX_BATCH_RECORDS);
        self
    }
    /// At most this many estimated body bytes per request (clamped to ≤ 4,000,000).
    pub fn with_max_batch_bytes(mut self, n: usize) -> Self {
        self.max_batch_bytes = n.clamp(RECORD_OVERHEAD + 4, MAX_BATCH_BYTES);
        self
    }
    /// Re-sends of records the server rejected (`datahub.maxRetries`).
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max.max(base);
        self
    }
}

/// Why a publish failed. Nothing is acknowledged then: capture keeps its checkpoint and
/// re-publishes from it after a restart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("event at {position} cannot be encoded as Debezium JSON: {reason}")]
    Encode { position: String, reason: String },
    #[error("event at {position} is {bytes} bytes as a DataHub record, over the {limit}-byte request limit")]
    RecordTooLarge { position: String, bytes: usize, limit: usize },
    /// The request failed as a whole (after the client's retries). `topic` is `project.topic`.
    #[error("PutRecords to {topic}: {source}")]
    Request {
        topic: String,
        #[source]
        source: Box<ClientError>,
    },
    /// `first` describes the first rejected record: shard, event position, error code, message.
    #[error("PutRecords to {topic}: {failed} record(s) rejected after {attempts} attempt(s); first: {first}")]
    Rejected { topic: String, failed: usize, attempts: u32, first: String },
    #[error("PutRecords to {topic}: shard {shard} rejected the event at {position} but accepted a later one of the same request; re-sending would break the shard's order")]
    OrderBroken { topic: String, shard: String, position: String },
}

/// One record ready to send.
#[derive(Debug, Clone)]
struct Outgoing {
    hash: u128,
    record: PutRecord,
    /// Estimated bytes in the request body.
    size: usize,
    position: String,
}

impl Outgoing {
    fn shard(&self) -> &str {
        self.record.shard_id.as_deref().unwrap_or_default()
    }
}

/// Counters since the publisher was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishStats {
    pub records: u64,
    pub requests: u64,
    /// Records sent again after the server rejected them.
    pub records_retried: u64,
    pub heartbeats_skipped: u64,
}

/// Publishes change events to a DataHub BLOB topic; see the module documentation.
#[derive(Debug)]
pub struct DatahubPublisher {
    client: Arc<DatahubClient>,
    options: PublisherOptions,
    shards: ShardMap,
    stats: PublishStats,
}

impl DatahubPublisher {
    /// Checks the topic (creating it per the options' [`TopicPolicy`]) and reads its shards.
    pub async fn connect(client: Arc<DatahubClient>, options: PublisherOptions) -> Result<Self, PublishError> {
        let shards = ensure_topic(&client, &options.project, &options.topic, options.topic_policy).await?;
        tracing::info!(endpoint = client.endpoint(), project = %options.project, topic = %options.topic, shards = shards.len(), "publishing to DataHub");
        Ok(DatahubPublisher { client, options, shards, stats: PublishStats::default() })
    }

    pub fn stats(&self) -> PublishStats {
        self.stats
    }

    /// The shard an event is routed to.
    pub fn shard_for(&self, event: &Event) -> &str {
        self.shards.shard_for(route_hash(event))
    }

    /// Publishes `events` in order; returns once all are acknowledged.
    pub async fn publish_events(&mut self, events: &[Event]) -> Result<(), PublishError> {
        let mut outgoing = Vec::with_capacity(events.len());
        for event in events {
            match self.encode(event)? {
                Some(o) => outgoing.push(o),
                None => self.stats.heartbeats_skipped += 1,
            }
        }
        let mut start = 0;
        while start < outgoing.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < outgoing.len() && end - start < self.options.max_batch_records && (end == start || bytes + outgoing[end].size <= self.options.max_batch_bytes) {
                bytes += outgoing[end].size;
                end += 1;
            }
            self.put(outgoing[start..end].to_vec()).await?;
            start = end;
        }
        Ok(())
    }

    fn encode(&self, event: &Event) -> Result<Option<Outgoing>, PublishError> {
        let position = event.position().to_string();
        let encode_err = |reason: String| PublishError::Encode { position: position.clone(), reason };
        let (bytes, kind) = match event {
            Event::Heartbeat(_) => return Ok(None),
            Event::Change(change) => (cdc_event::debezium::to_vec(change).map_err(|e| encode_err(e.to_string()))?, None),
            Event::SchemaChange(change) => {
                let document = serde_json::json!({"schemaChange": {
                    "database": change.database,
                    "table": change.table.as_ref().map(ToString::to_string),
                    "ddl": change.ddl,
                    "schemaVersion": change.schema.as_ref().map(|s| s.version),
                    "position": position,
                    "ts_ms": change.commit_ts_ms,
                    "source": &*change.source_name,
                }});
                (serde_json::to_vec(&document).map_err(|e| encode_err(e.to_string()))?, Some(SCHEMA_CHANGE_KIND))
            }
        };
        let size = bytes.len().div_ceil(3) * 4 + RECORD_OVERHEAD;
        if size > self.options.max_batch_bytes {
            return Err(PublishError::RecordTooLarge { position, bytes: size, limit: self.options.max_batch_bytes });
        }
        let hash = route_hash(event);
        let mut record = PutRecord::new(RecordData::Blob(bytes)).with_shard(self.shards.shard_for(hash));
        if let Some(kind) = kind {
            record = record.with_attribute(EVENT_KIND_ATTRIBUTE, kind);
        }
        Ok(Some(Outgoing { hash, record, size, position }))
    }

    /// Sends one request's worth, re-sending rejected records until all are written.
    async fn put(&mut self, mut todo: Vec<Outgoing>) -> Result<(), PublishError> {
        let (project, topic) = (self.options.project.clone(), self.options.topic.clone());
        let target = format!("{project}.{topic}");
        let mut attempt: u32 = 0;
        loop {
            let records: Vec<PutRecord> = todo.iter().map(|o| o.record.clone()).collect();
            self.stats.requests += 1;
            let failed = self
                .client
                .put_records(&project, &topic, &records)
                .await
                .map_err(|source| PublishError::Request { topic: target.clone(), source: Box::new(source) })?;
            self.stats.records += (records.len() - failed.len().min(records.len())) as u64;
            if failed.is_empty() {
                return Ok(());
            }
            let mut rejected = vec![false; todo.len()];
            for f in &failed {
                if let Some(slot) = rejected.get_mut(f.index) {
                    *slot = true;
                }
            }
            // Per shard, rejected records must be the tail of that shard's records here.
            let mut shard_had_reject: std::collections::HashSet<&str> = std::collections::HashSet::new();
            for (o, was_rejected) in todo.iter().zip(&rejected) {
                if *was_rejected {
                    shard_had_reject.insert(o.shard());
                } else if shard_had_reject.contains(o.shard()) {
                    return Err(PublishError::OrderBroken { topic: target, shard: o.shard().into(), position: o.position.clone() });
                }
            }
            let first = &failed[0];
            let first_record = todo.get(first.index);
            let give_up = |attempts: u32| PublishError::Rejected {
                topic: target.clone(),
                failed: failed.len(),
                attempts,
                first: format!(
                    "shard {}, event at {}: {}: {}",
                    first_record.map(|o| o.shard()).unwrap_or_default(),
                    first_record.map(|o| o.position.as_str()).unwrap_or_default(),
                    first.code,
                    first.message
                ),
            };
            if let Some(f) = failed.iter().find(|f| !is_retryable_code(&f.code)) {
                tracing::error!(code = %f.code, message = %f.message, "DataHub rejected a record permanently");
                return Err(give_up(attempt + 1));
            }
            if attempt >= self.options.max_retries {
                return Err(give_up(attempt + 1));
            }
            let wait = self.backoff(attempt);
            tracing::warn!(rejected = failed.len(), attempt, ?wait, code = %first.code, "DataHub rejected records; sending them again");
            attempt += 1;
            tokio::time::sleep(wait).await;
            if failed.iter().any(|f| is_shard_gone(&f.code)) {
                // A shard was split or merged: re-read the shards and re-route what failed.
                self.shards = shard_map(&self.client, &project, &topic).await?;
            }
            todo = todo.into_iter().zip(rejected).filter_map(|(o, r)| r.then_some(o)).collect();
            for o in &mut todo {
                o.record.shard_id = Some(self.shards.shard_for(o.hash).to_string());
            }
            self.stats.records_retried += todo.len() as u64;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.options.base_backoff.saturating_mul(1u32 << attempt.min(16)).min(self.options.max_backoff);
        // Jitter from the clock's low bits: enough to keep restarted publishers apart.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        cap / 2 + Duration::from_nanos(u64::from(nanos) % (cap.as_nanos() as u64 / 2).max(1))
    }
}

/// Rejections worth re-sending: throttling, server trouble, shards in transition. Malformed
/// or forbidden records fail the same way every time.
fn is_retryable_code(code: &str) -> bool {
    !matches!(code, "MalformedRecord" | "InvalidParameter" | "InvalidSchema" | "NoSuchTopic" | "NoSuchProject" | "NoSuchShard" | "Unauthorized" | "NoPermission")
}

/// The record named a shard that no longer takes writes (split, merged, closed).
fn is_shard_gone(code: &str) -> bool {
    matches!(code, "InvalidShardOperation" | "ShardNotReady")
}

/// For code written against the bus trait. `cdc_bus::BusError` has no variant for a remote
/// bus yet, so the error travels as `Io` whose source is the [`PublishError`] (its message
/// and cause chain are kept; the "path" is the topic's URL).
impl Publisher for DatahubPublisher {
    async fn publish(&mut self, events: &[Event]) -> Result<(), BusError> {
        self.publish_events(events).await.map_err(|e| BusError::Io {
            path: format!("{}/projects/{}/topics/{}", self.client.endpoint(), self.options.project, self.options.topic).into(),
            source: std::io::Error::other(e),
        })
    }
}
