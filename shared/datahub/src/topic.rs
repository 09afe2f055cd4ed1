//! Making sure the change-event topic is there, shared by the publisher and the consumer.

use crate::client::{ClientError, DatahubClient, RecordType, TopicSpec};
use crate::partitioner::ShardMap;

/// Shards of a topic created on demand, unless configured otherwise.
pub const DEFAULT_SHARD_COUNT: u32 = 4;
/// Days a created topic keeps records (DataHub allows 1–7).
pub const DEFAULT_LIFECYCLE_DAYS: u32 = 7;

/// What to do when the project or topic does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicPolicy {
    /// Create it when the server is datahub-local, fail with [`TopicError::Missing`] against
    /// the service (where topics are provisioned by operators, with their own shard count and
    /// lifecycle, and a typo in the name must not silently create a new topic). The default.
    CreateIfLocal { shard_count: u32, lifecycle_days: u32 },
    /// Create it wherever it is missing.
    CreateIfMissing { shard_count: u32, lifecycle_days: u32 },
    /// Never create; a missing topic is an error.
    MustExist,
}

impl Default for TopicPolicy {
    fn default() -> Self {
        TopicPolicy::CreateIfLocal { shard_count: DEFAULT_SHARD_COUNT, lifecycle_days: DEFAULT_LIFECYCLE_DAYS }
    }
}

/// Failures of [`ensure_topic`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("DataHub topic {topic} does not exist on {endpoint} ({code}); create it as a BLOB topic (or check DATAHUB_PROJECT / DATAHUB_TOPIC)")]
    Missing {
        endpoint: String,
        /// `project.topic`.
        topic: String,
        code: String,
    },
    #[error("DataHub topic {project}.{topic} is a {found} topic; change events are published to a BLOB topic")]
    NotBlob { project: String, topic: String, found: String },
    #[error("DataHub topic {project}.{topic} has no ACTIVE shard")]
    NoActiveShard { project: String, topic: String },
    #[error("DataHub topic {topic}: {source}")]
    Client {
        /// `project.topic`.
        topic: String,
        #[source]
        source: Box<ClientError>,
    },
}

/// Checks (and per `policy` creates) the BLOB topic; returns its ACTIVE shards.
pub async fn ensure_topic(client: &DatahubClient, project: &str, topic: &str, policy: TopicPolicy) -> Result<ShardMap, TopicError> {
    let wrap = |source| TopicError::Client { topic: format!("{project}.{topic}"), source: Box::new(source) };
    let info = match client.get_topic(project, topic).await {
        Ok(info) => info,
        Err(e) if matches!(e.code(), Some("NoSuchProject" | "NoSuchTopic")) => {
            let create = match policy {
                TopicPolicy::CreateIfMissing { shard_count, lifecycle_days } => Some((shard_count, lifecycle_days)),
                TopicPolicy::CreateIfLocal { shard_count, lifecycle_days } if client.is_datahub_local() == Some(true) => Some((shard_count, lifecycle_days)),
                _ => None,
            };
            let Some((shard_count, lifecycle)) = create else {
                return Err(TopicError::Missing {
                    endpoint: client.endpoint().into(),
                    topic: format!("{project}.{topic}"),
                    code: e.code().unwrap_or_default().into(),
                });
            };
            create_topic(client, project, topic, shard_count, lifecycle).await.map_err(wrap)?;
            client.get_topic(project, topic).await.map_err(wrap)?
        }
        Err(e) => return Err(wrap(e)),
    };
    let record_type = info.get("RecordType").and_then(|v| v.as_str()).unwrap_or("");
    if record_type != "BLOB" {
        return Err(TopicError::NotBlob { project: project.into(), topic: topic.into(), found: record_type.into() });
    }
    shard_map(client, project, topic).await
}

/// The topic's ACTIVE shards now.
pub async fn shard_map(client: &DatahubClient, project: &str, topic: &str) -> Result<ShardMap, TopicError> {
    let shards = client
        .list_shards(project, topic)
        .await
        .map_err(|source| TopicError::Client { topic: format!("{project}.{topic}"), source: Box::new(source) })?;
    ShardMap::new(&shards).ok_or_else(|| TopicError::NoActiveShard { project: project.into(), topic: topic.into() })
}

/// Creates the project (if needed) and the topic; another process creating either at the same
/// moment is fine (two capture/sink processes starting together).
async fn create_topic(client: &DatahubClient, project: &str, topic: &str, shard_count: u32, lifecycle: u32) -> Result<(), ClientError> {
    match client.create_project(project, "change-data capture").await {
        Err(e) if e.code() != Some("ProjectAlreadyExist") => return Err(e),
        _ => {}
    }
    let spec = TopicSpec {
        shard_count,
        lifecycle,
        record_type: RecordType::Blob,
        record_schema: None,
        comment: "change events, Debezium JSON".into(),
        expand_mode: None,
    };
    match client.create_topic(project, topic, &spec).await {
        Err(e) if e.code() != Some("TopicAlreadyExist") => Err(e),
        _ => {
            tracing::info!(project, topic, shard_count, lifecycle, "created the DataHub topic");
            Ok(())
        }
    }
}
