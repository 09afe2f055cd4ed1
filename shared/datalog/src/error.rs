use std::path::PathBuf;

/// Everything the log can fail with. Variants that a DataHub client can cause carry the name
/// it used (project, topic, shard, subscription), so the server can map them to DataHub's error
/// codes and the message says what was not found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatalogError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("corrupt data in {path} at byte {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("metadata file {path} is not valid: {source}")]
    Metadata { path: PathBuf, source: serde_json::Error },
    #[error("invalid {what} name {name:?}: {rule}")]
    InvalidName { what: &'static str, name: String, rule: &'static str },
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("project {0} does not exist")]
    NoSuchProject(String),
    #[error("project {0} already exists")]
    ProjectExists(String),
    #[error("project {0} still has topics; delete them first")]
    ProjectNotEmpty(String),
    #[error("topic {project}.{topic} does not exist")]
    NoSuchTopic { project: String, topic: String },
    #[error("topic {project}.{topic} already exists")]
    TopicExists { project: String, topic: String },
    #[error("shard {0} does not exist")]
    NoSuchShard(String),
    #[error("{what} {value} is outside the retained range [{oldest}, {next})")]
    SeekOutOfRange { what: &'static str, value: i64, oldest: u64, next: u64 },
    #[error("cursor {0:?} is invalid or has expired")]
    InvalidCursor(String),
    #[error("subscription {0} does not exist")]
    NoSuchSubscription(String),
    #[error("subscription {0} is offline (INACTIVE)")]
    SubscriptionOffline(String),
    #[error("offset of shard {shard} in subscription {sub} was reset (version {current}, commit carried {given})")]
    OffsetReset { sub: String, shard: u32, current: i64, given: i64 },
    #[error("offset session of shard {shard} in subscription {sub} changed (current {current:?}, commit carried {given:?})")]
    OffsetSessionChanged { sub: String, shard: u32, current: Option<i64>, given: String },
    #[error("offset session of shard {shard} in subscription {sub} is not open; call open first")]
    OffsetSessionClosed { sub: String, shard: u32 },
    #[error("consumer {0} is not a member of the group (expired or never joined)")]
    NoSuchConsumer(String),
    #[error("shard {0} has been written by a failed append and is closed for writes until reopened")]
    ShardPoisoned(u32),
    /// The shard was split or merged: it takes no more writes, and a reader at its end has
    /// read everything it will ever hold.
    #[error("shard {0} is closed (split or merged away)")]
    ShardClosed(u32),
    #[error("schema version {0} does not exist")]
    NoSuchSchema(i64),
}

pub type Result<T, E = DatalogError> = std::result::Result<T, E>;

pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DatalogError {
    let path = path.into();
    move |source| DatalogError::Io { op, path, source }
}
