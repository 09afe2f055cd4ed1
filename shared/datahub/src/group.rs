//! Consumer-group calls (§1.6 of the protocol reference): `joinGroup`, `heartBeat`,
//! `syncGroup`, `leaveGroup` on a subscription. [`crate::group_consumer`] drives them.
//!
//! Errors are classified by what a member must do about them ([`GroupError::action`]):
//! `NoSuchConsumer` means the lease expired (or the server restarted) → join again;
//! `NoSuchSubscription` / `SubscriptionOffline` → stop; `ConsumerGroupInProcess` [Go SDK] and
//! transport/5xx failures → retry later.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{get_i64, get_str, ClientError, DatahubClient};

/// What `joinGroup` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedGroup {
    pub consumer_id: String,
    pub version_id: i64,
    /// The session timeout the server grants (it may raise what was asked for); heartbeats
    /// must come more often than this.
    pub session_timeout: Duration,
}

/// What `heartBeat` answered: the shards this member should read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssignment {
    pub plan_version: i64,
    pub shards: Vec<String>,
    /// The whole plan as the server prints it (diagnostics only).
    pub total_plan: String,
}

/// A consumer-group call failed; the variant says what the member should do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The server does not know this consumer (lease expired, or the server restarted): its
    /// shards are gone; join again.
    #[error("consumer {consumer_id} of subscription {sub}: no such consumer (session expired); rejoin: {source}")]
    NoSuchConsumer {
        sub: String,
        consumer_id: String,
        #[source]
        source: Box<ClientError>,
    },
    /// The subscription was deleted: nothing to consume, stop.
    #[error("subscription {sub}: no such subscription: {source}")]
    NoSuchSubscription {
        sub: String,
        #[source]
        source: Box<ClientError>,
    },
    /// The subscription is INACTIVE: joining cannot succeed until an operator re-enables it.
    #[error("subscription {sub} is offline: {source}")]
    SubscriptionOffline {
        sub: String,
        #[source]
        source: Box<ClientError>,
    },
    /// Anything else (transport, 5xx, a rebalance in progress, an unreadable answer).
    #[error("{operation} (subscription {sub}): {source}")]
    Other {
        operation: &'static str,
        sub: String,
        #[source]
        source: Box<ClientError>,
    },
}

/// What a member does about a [`GroupError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupErrorAction {
    /// Join again (the old membership and its shards are gone).
    Rejoin,
    /// Try the same call again later.
    Retry,
    /// Stop consuming: retrying cannot help.
    Stop,
}

impl GroupError {
    fn classify(operation: &'static str, sub: &str, consumer_id: &str, e: ClientError) -> Self {
        let (sub, source) = (sub.to_string(), Box::new(e));
        match source.code() {
            Some("NoSuchConsumer") => GroupError::NoSuchConsumer { sub, consumer_id: consumer_id.to_string(), source },
            Some("NoSuchSubscription") => GroupError::NoSuchSubscription { sub, source },
            Some("SubscriptionOffline") => GroupError::SubscriptionOffline { sub, source },
            _ => GroupError::Other { operation, sub, source },
        }
    }

    pub fn action(&self) -> GroupErrorAction {
        match self {
            GroupError::NoSuchConsumer { .. } => GroupErrorAction::Rejoin,
            GroupError::NoSuchSubscription { .. } | GroupError::SubscriptionOffline { .. } => GroupErrorAction::Stop,
            // Bad parameters or auth are not fixed by waiting.
            GroupError::Other { source, .. } if !source.is_retryable() && matches!(**source, ClientError::Api { .. }) => GroupErrorAction::Stop,
            GroupError::Other { .. } => GroupErrorAction::Retry,
        }
    }
}

fn shard_strings(operation: &'static str, v: &Value, key: &str) -> Result<Vec<String>, ClientError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(crate::client::decode_err(operation, format!("{key} holds {other}, not a shard id"))),
            })
            .collect(),
        Some(other) => Err(crate::client::decode_err(operation, format!("{key} is {other}, not a list"))),
    }
}

impl DatahubClient {
    fn subscription_path(project: &str, topic: &str, sub: &str) -> String {
        format!("/projects/{project}/topics/{topic}/subscriptions/{sub}")
    }

    /// Joins the subscription's consumer group.
    pub async fn join_group(&self, project: &str, topic: &str, sub: &str, session_timeout: Duration) -> Result<JoinedGroup, GroupError> {
        const OP: &str = "JoinGroup";
        let ms = i64::try_from(session_timeout.as_millis()).unwrap_or(i64::MAX);
        let body = json!({"Action": "joinGroup", "SessionTimeout": ms});
        let v = self
            .call_json(OP, Method::POST, &Self::subscription_path(project, topic, sub), Some(body), false)
            .await
            .map_err(|e| GroupError::classify(OP, sub, "", e))?;
        let parse = || -> Result<JoinedGroup, ClientError> {
            let granted = v.get("SessionTimeout").and_then(Value::as_i64).filter(|t| *t > 0).unwrap_or(ms);
            Ok(JoinedGroup {
                consumer_id: get_str(OP, &v, "ConsumerId")?,
                version_id: get_i64(OP, &v, "VersionId")?,
                session_timeout: Duration::from_millis(granted.max(0) as u64),
            })
        };
        parse().map_err(|e| GroupError::classify(OP, sub, "", e))
    }

    /// Renews the membership, reporting the shards held and the CLOSED shards read to their
    /// end; answers the assignment.
    #[allow(clippy::too_many_arguments)]
    pub async fn heartbeat(
        &self,
        project: &str,
        topic: &str,
        sub: &str,
        consumer_id: &str,
        version_id: i64,
        hold: &[String],
        read_end: &[String],
    ) -> Result<GroupAssignment, GroupError> {
        const OP: &str = "HeartBeat";
        let body = json!({"Action": "heartBeat", "ConsumerId": consumer_id, "VersionId": version_id,
                          "HoldShardList": hold, "ReadEndShardList": read_end});
        let v = self
            .call_json(OP, Method::POST, &Self::subscription_path(project, topic, sub), Some(body), false)
            .await
            .map_err(|e| GroupError::classify(OP, sub, consumer_id, e))?;
        let parse = || -> Result<GroupAssignment, ClientError> {
            Ok(GroupAssignment {
                plan_version: v.get("PlanVersion").and_then(Value::as_i64).unwrap_or(0),
                shards: shard_strings(OP, &v, "ShardList")?,
                total_plan: v.get("TotalPlan").and_then(Value::as_str).unwrap_or_default().to_string(),
            })
        };
        parse().map_err(|e| GroupError::classify(OP, sub, consumer_id, e))
    }

    /// Releases shards (after committing what was consumed) and reports read-end shards.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_group(
        &self,
        project: &str,
        topic: &str,
        sub: &str,
        consumer_id: &str,
        version_id: i64,
        release: &[String],
        read_end: &[String],
    ) -> Result<(), GroupError> {
        const OP: &str = "SyncGroup";
        let body = json!({"Action": "syncGroup", "ConsumerId": consumer_id, "VersionId": version_id,
                          "ReleaseShardList": release, "ReadEndShardList": read_end});
        self.call(OP, Method::POST, &Self::subscription_path(project, topic, sub), Some(body), false)
            .await
            .map(drop)
            .map_err(|e| GroupError::classify(OP, sub, consumer_id, e))
    }

    /// Leaves the group, so its shards go to the other members now rather than after the
    /// session timeout.
    pub async fn leave_group(&self, project: &str, topic: &str, sub: &str, consumer_id: &str, version_id: i64) -> Result<(), GroupError> {
        const OP: &str = "LeaveGroup";
        let body = json!({"Action": "leaveGroup", "ConsumerId": consumer_id, "VersionId": version_id});
        self.call(OP, Method::POST, &Self::subscription_path(project, topic, sub), Some(body), false)
            .await
            .map(drop)
            .map_err(|e| GroupError::classify(OP, sub, consumer_id, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, status: u16) -> ClientError {
        ClientError::Api { operation: "x", status, code: code.into(), message: String::new(), request_id: String::new() }
    }

    #[test]
    fn errors_say_what_to_do() {
        let c = |code, status| GroupError::classify("HeartBeat", "s", "c", api(code, status)).action();
        assert_eq!(c("NoSuchConsumer", 404), GroupErrorAction::Rejoin);
        assert_eq!(c("NoSuchSubscription", 404), GroupErrorAction::Stop);
        assert_eq!(c("SubscriptionOffline", 400), GroupErrorAction::Stop);
        assert_eq!(c("ConsumerGroupInProcess", 400), GroupErrorAction::Retry);
        assert_eq!(c("InternalServerError", 500), GroupErrorAction::Retry);
        assert_eq!(c("InvalidParameter", 400), GroupErrorAction::Stop);
    }

    #[test]
    fn shard_lists_accept_strings_and_numbers() {
        let v = json!({"ShardList": ["0", 1]});
        assert_eq!(shard_strings("x", &v, "ShardList").unwrap(), vec!["0".to_string(), "1".to_string()]);
        assert!(shard_strings("x", &json!({"ShardList": [{}]}), "ShardList").is_err());
        assert!(shard_strings("x", &json!({}), "ShardList").unwrap().is_empty());
    }
}
