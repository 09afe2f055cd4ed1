//! [`ShardConsumer`]: reads every ACTIVE shard of a topic in sequence order and commits
//! subscription offsets when told to.
//!
//! Where each shard starts, first that applies:
//! 1. the next sequence the caller checkpointed (its checkpoint is the source of truth: the
//!    sink's files and its offsets are saved together);
//! 2. the subscription's committed offset + 1 (a sink that lost its checkpoint directory, or a
//!    shard the checkpoint has not seen yet);
//! 3. the oldest retained record.
//!
//! A start sequence that is no longer retained (lifecycle expiry) falls back to the oldest
//! record with a warning: those records are gone from the bus. Records below the start are
//! never returned, whatever the cursor resolution does at the tail.
//!
//! Offsets are committed only by [`ShardConsumer::commit`], which the caller calls after its
//! output for those offsets is durable (for the file sink: after the files are committed).
//! The session opened at start (`InitAndGetSubscriptionOffset`) must still be the current one:
//! if another consumer opened the same shards since, the commit fails with
//! `OffsetSessionChanged`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::client::{ClientError, CursorType, DatahubClient, SubscriptionOffset};
use crate::model::RecordData;
use crate::topic::{ensure_topic, TopicError, TopicPolicy};

/// Records per GetRecords (the service's maximum).
pub const DEFAULT_FETCH_LIMIT: u32 = 1000;

/// What to read. `new(project, topic, subscription)`, then `with_*`.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub(crate) project: String,
    pub(crate) topic: String,
    pub(crate) subscription: String,
    pub(crate) topic_policy: TopicPolicy,
    pub(crate) fetch_limit: u32,
    pub(crate) create_subscription: bool,
}

impl ConsumerOptions {
    /// `subscription` is a subscription id, or the name (comment) of one — the consumer group
    /// (`datahub.consumerGroup`); see [`ShardConsumer::open`].
    pub fn new(project: impl Into<String>, topic: impl Into<String>, subscription: impl Into<String>) -> Self {
        ConsumerOptions {
            project: project.into(),
            topic: topic.into(),
            subscription: subscription.into(),
            topic_policy: TopicPolicy::default(),
            fetch_limit: DEFAULT_FETCH_LIMIT,
            create_subscription: true,
        }
    }
    pub fn with_topic_policy(mut self, policy: TopicPolicy) -> Self {
        self.topic_policy = policy;
        self
    }
    /// Records per GetRecords per shard (clamped to 1..=1000).
    pub fn with_fetch_limit(mut self, n: u32) -> Self {
        self.fetch_limit = n.clamp(1, DEFAULT_FETCH_LIMIT);
        self
    }
    /// Create a subscription commented with the name when none matches (default true).
    pub fn with_create_subscription(mut self, create: bool) -> Self {
        self.create_subscription = create;
        self
    }
}

/// Consumer failures; each names the shard or subscription involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("DataHub subscription {name:?} of {project}.{topic} does not exist (neither as an id nor as a subscription comment)")]
    NoSubscription { project: String, topic: String, name: String },
    #[error("DataHub subscription {sub_id} of {project}.{topic} is offline (INACTIVE)")]
    SubscriptionOffline { project: String, topic: String, sub_id: String },
    #[error("shard {shard}: the resume sequence {next} is beyond the end of the log (last sequence {latest}); was the topic re-created?")]
    AheadOfLog { shard: String, next: u64, latest: i64 },
    #[error("{what} (shard {shard}): {source}")]
    Shard {
        what: &'static str,
        shard: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error("{what} (subscription {sub}): {source}")]
    Subscription {
        what: &'static str,
        sub: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error("shard {shard} sequence {sequence}: {reason}")]
    Data { shard: String, sequence: i64, reason: String },
    /// The consumer group refused this member for good (subscription deleted or offline).
    #[error(transparent)]
    Group(#[from] crate::group::GroupError),
    /// The consumer group's background task has stopped (after a fatal group error).
    #[error("consumer group of subscription {sub} stopped: {reason}")]
    GroupStopped { sub: String, reason: String },
}

/// One record read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub shard: Arc<str>,
    pub sequence: u64,
    /// Server receive time, ms since the epoch.
    pub system_time: i64,
    pub payload: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
}

/// Where a shard started, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The caller's checkpoint: this sequence.
    Checkpoint(u64),
    /// The subscription's committed offset + 1.
    Committed(u64),
    /// The oldest retained record (at this sequence).
    Oldest(u64),
}

#[derive(Debug)]
pub(crate) struct ShardReader {
    pub(crate) shard: Arc<str>,
    pub(crate) cursor: String,
    /// Next sequence to return; records below it are skipped.
    pub(crate) next: u64,
    pub(crate) start: StartFrom,
    /// Sequence → system time of the last record of each delivered batch, not yet committed:
    /// commits carry the time of the record they name, and a caller commits at batch ends.
    batch_ends: BTreeMap<u64, i64>,
}

/// Reads a topic's shards in order and commits subscription offsets; see the module docs.
#[derive(Debug)]
pub struct ShardConsumer {
    client: Arc<DatahubClient>,
    options: ConsumerOptions,
    sub_id: String,
    readers: Vec<ShardReader>,
    session: BTreeMap<String, SubscriptionOffset>,
}

impl ShardConsumer {
    /// Ensures the topic (per the options' policy), resolves the subscription — an id, else
    /// the subscription whose comment equals the name, else a new one with that comment —,
    /// opens an offset session on every ACTIVE shard and positions each shard (`resume`: next
    /// sequence per shard id from the caller's checkpoint).
    pub async fn open<'a>(client: Arc<DatahubClient>, options: ConsumerOptions, resume: impl IntoIterator<Item = (&'a str, u64)>) -> Result<Self, ConsumeError> {
        let resume: BTreeMap<&str, u64> = resume.into_iter().collect();
        let (project, topic) = (options.project.clone(), options.topic.clone());
        let shards = ensure_topic(&client, &project, &topic, options.topic_policy).await?;
        let sub_id = resolve_subscription(&client, &options).await?;
        let shard_ids: Vec<&str> = shards.shard_ids().collect();
        let session = client
            .open_offsets(&project, &topic, &sub_id, &shard_ids)
            .await
            .map_err(|source| ConsumeError::Subscription { what: "opening the offset session", sub: sub_id.clone(), source: Box::new(source) })?;
        let mut readers = Vec::with_capacity(shard_ids.len());
        for shard in &shard_ids {
            let committed = session.get(*shard).map_or(-1, |o| o.sequence);
            let start = match (resume.get(shard), committed) {
                (Some(next), _) => StartFrom::Checkpoint(*next),
                (None, seq) if seq >= 0 => StartFrom::Committed(seq as u64 + 1),
                _ => StartFrom::Oldest(0),
            };
            readers.push(position(&client, &project, &topic, shard, start).await?);
        }
        for r in &readers {
            tracing::info!(shard = %r.shard, start = ?r.start, sub_id = %sub_id, "reading DataHub shard");
        }
        Ok(ShardConsumer { client, options, sub_id, readers, session })
    }

    pub fn subscription_id(&self) -> &str {
        &self.sub_id
    }

    /// Where each shard started.
    pub fn start_positions(&self) -> Vec<(Arc<str>, StartFrom)> {
        self.readers.iter().map(|r| (r.shard.clone(), r.start)).collect()
    }

    /// The next sequence to be returned, per shard.
    pub fn next_sequences(&self) -> Vec<(Arc<str>, u64)> {
        self.readers.iter().map(|r| (r.shard.clone(), r.next)).collect()
    }

    /// One GetRecords per shard; returns what they gave, in sequence order per shard (shards
    /// one after another). Empty when every shard is caught up: the caller waits a little.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ConsumeError> {
        let (project, topic, limit) = (&self.options.project, &self.options.topic, self.options.fetch_limit);
        let mut out = Vec::new();
        for reader in &mut self.readers {
            let got = match self.client.get_records(project, topic, &reader.shard, &reader.cursor, limit).await {
                Ok(got) => got,
                Err(e) if e.code() == Some("InvalidCursor") => {
                    // Cursors are not forever (retention); resolve one again from where we are.
                    tracing::warn!(shard = %reader.shard, next = reader.next, error = %e, "cursor expired; resolving it again");
                    let fresh = position(&self.client, project, topic, &reader.shard, StartFrom::Checkpoint(reader.next)).await?;
                    reader.cursor = fresh.cursor;
                    reader.next = fresh.next;
                    continue;
                }
                Err(source) => return Err(ConsumeError::Shard { what: "GetRecords", shard: reader.shard.to_string(), source: Box::new(source) }),
            };
            let mut last = None;
            for record in got.records {
                let Ok(sequence) = u64::try_from(record.sequence) else {
                    return Err(ConsumeError::Data { shard: reader.shard.to_string(), sequence: record.sequence, reason: "negative sequence".into() });
                };
                if sequence < reader.next {
                    continue;
                }
                let payload = match record.data {
                    RecordData::Blob(bytes) => bytes,
                    RecordData::Tuple(_) => {
                        return Err(ConsumeError::Data { shard: reader.shard.to_string(), sequence: record.sequence, reason: "a TUPLE record in a BLOB topic".into() })
                    }
                };
                reader.next = sequence + 1;
                last = Some((sequence, record.system_time));
                out.push(ConsumedRecord { shard: reader.shard.clone(), sequence, system_time: record.system_time, payload, attributes: record.attributes });
            }
            if let Some((sequence, time)) = last {
                reader.batch_ends.insert(sequence, time);
            }
            reader.cursor = got.next_cursor;
        }
        Ok(out)
    }

    /// Commits, per shard, that everything below `next` is consumed (the subscription stores
    /// `next - 1`). Call only once the output for those records is durable. Shards at 0 or
    /// not named are left alone.
    pub async fn commit<'a>(&mut self, next: impl IntoIterator<Item = (&'a str, u64)>) -> Result<(), ConsumeError> {
        let mut offsets = BTreeMap::new();
        for (shard, next) in next {
            let Some(session) = self.session.get(shard) else { continue };
            let Some(sequence) = next.checked_sub(1) else { continue };
            let reader = self.readers.iter_mut().find(|r| &*r.shard == shard);
            let timestamp = reader.as_ref().and_then(|r| r.batch_ends.get(&sequence).copied()).unwrap_or(-1);
            if i64::try_from(sequence).is_ok_and(|s| s <= session.sequence) {
                continue;
            }
            offsets.insert(shard.to_string(), SubscriptionOffset { sequence: sequence as i64, timestamp, ..session.clone() });
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let (project, topic) = (&self.options.project, &self.options.topic);
        self.client
            .commit_offsets(project, topic, &self.sub_id, &offsets)
            .await
            .map_err(|source| ConsumeError::Subscription { what: "committing offsets", sub: self.sub_id.clone(), source: Box::new(source) })?;
        for (shard, committed) in offsets {
            if let Some(reader) = self.readers.iter_mut().find(|r| *r.shard == *shard) {
                reader.batch_ends = reader.batch_ends.split_off(&(committed.sequence as u64 + 1));
            }
            self.session.insert(shard, committed);
        }
        Ok(())
    }

    /// The subscription's committed offsets now (sequence of the last consumed record, -1 for
    /// none), per shard.
    pub async fn committed(&self) -> Result<BTreeMap<String, i64>, ConsumeError> {
        let shards: Vec<&str> = self.readers.iter().map(|r| &*r.shard).collect();
        let got = self
            .client
            .get_offsets(&self.options.project, &self.options.topic, &self.sub_id, &shards)
            .await
            .map_err(|source| ConsumeError::Subscription { what: "reading offsets", sub: self.sub_id.clone(), source: Box::new(source) })?;
        Ok(got.into_iter().map(|(k, o)| (k, o.sequence)).collect())
    }
}

pub(crate) async fn resolve_subscription(client: &DatahubClient, options: &ConsumerOptions) -> Result<String, ConsumeError> {
    let (project, topic, name) = (&options.project, &options.topic, &options.subscription);
    let sub_err = |what| move |source| ConsumeError::Subscription { what, sub: name.clone(), source: Box::new(source) };
    let all = client.list_subscriptions(project, topic, "").await.map_err(sub_err("listing subscriptions"))?;
    let found = all.iter().find(|s| s.sub_id == *name).or_else(|| all.iter().find(|s| s.comment == *name));
    match found {
        Some(s) if s.state == 0 => Err(ConsumeError::SubscriptionOffline { project: project.clone(), topic: topic.clone(), sub_id: s.sub_id.clone() }),
        Some(s) => Ok(s.sub_id.clone()),
        None if options.create_subscription => {
            let id = client.create_subscription(project, topic, name).await.map_err(sub_err("creating the subscription"))?;
            tracing::info!(%project, %topic, sub_id = %id, comment = %name, "created the DataHub subscription");
            Ok(id)
        }
        None => Err(ConsumeError::NoSubscription { project: project.clone(), topic: topic.clone(), name: name.clone() }),
    }
}

/// Resolves a shard's cursor for `start`.
pub(crate) async fn position(client: &DatahubClient, project: &str, topic: &str, shard: &str, start: StartFrom) -> Result<ShardReader, ConsumeError> {
    let shard_err = |what| move |source| ConsumeError::Shard { what, shard: shard.to_string(), source: Box::new(source) };
    let reader = |cursor: String, next: u64, start: StartFrom| ShardReader { shard: Arc::from(shard), cursor, next, start, batch_ends: BTreeMap::new() };
    let wanted = match start {
        StartFrom::Checkpoint(n) | StartFrom::Committed(n) => n,
        StartFrom::Oldest(_) => {
            let c = client.get_cursor(project, topic, shard, CursorType::Oldest).await.map_err(shard_err("GetCursor OLDEST"))?;
            let first = u64::try_from(c.sequence).unwrap_or(0);
            return Ok(reader(c.cursor, first, StartFrom::Oldest(first)));
        }
    };
    let Ok(as_i64) = i64::try_from(wanted) else {
        return Err(ConsumeError::AheadOfLog { shard: shard.into(), next: wanted, latest: -1 });
    };
    match client.get_cursor(project, topic, shard, CursorType::Sequence(as_i64)).await {
        Ok(c) => Ok(reader(c.cursor, wanted, start)),
        Err(e) if e.code() == Some("SeekOutOfRange") => {
            let oldest = client.get_cursor(project, topic, shard, CursorType::Oldest).await.map_err(shard_err("GetCursor OLDEST"))?;
            if as_i64 < oldest.sequence {
                tracing::warn!(shard, wanted, oldest = oldest.sequence, "the resume sequence has expired from the topic; starting at the oldest record (records in between are lost)");
                return Ok(reader(oldest.cursor, oldest.sequence as u64, start));
            }
            // Past the last record: the service may refuse a cursor at the very tail. Read from
            // the last record and skip what is below `wanted`.
            let latest = client.get_cursor(project, topic, shard, CursorType::Latest).await.map_err(shard_err("GetCursor LATEST"))?;
            if as_i64 > latest.sequence + 1 {
                return Err(ConsumeError::AheadOfLog { shard: shard.into(), next: wanted, latest: latest.sequence });
            }
            Ok(reader(latest.cursor, wanted, start))
        }
        Err(source) => Err(ConsumeError::Shard { what: "GetCursor SEQUENCE", shard: shard.into(), source: Box::new(source) }),
    }
}
