//! Consumer groups for collaborative consumption (pydatahub's `DatahubConsumer` with a
//! subscription): members join, heartbeat, and get the topic's shards spread among them.
//!
//! Membership is deliberately in memory: it is a lease that every consumer renews by
//! heartbeat, so after a server restart consumers get `NoSuchConsumer` and rejoin, which both
//! SDKs handle. Time is passed in (`now`) so expiry is testable without sleeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::error::{DatalogError, Result};

/// The session timeout handed back when a consumer asks for none or for less than this.
pub const MIN_SESSION_TIMEOUT_MS: i64 = 6_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub consumer_id: String,
    pub version_id: i64,
    pub session_timeout_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Version of the plan; changes whenever membership or the shard set changes.
    pub plan_version: i64,
    /// Shards this consumer should read.
    pub shards: Vec<u32>,
    /// The whole plan, `consumer:shard,shard;...`, for diagnostics.
    pub total_plan: String,
}

#[derive(Debug)]
struct Member {
    last_seen: Instant,
    timeout: Duration,
}

#[derive(Debug, Default)]
struct Group {
    version: i64,
    next_consumer: u64,
    members: BTreeMap<String, Member>,
    read_end: BTreeSet<u32>,
}

impl Group {
    fn expire(&mut self, now: Instant) {
        let before = self.members.len();
        self.members.retain(|_, m| now.saturating_duration_since(m.last_seen) <= m.timeout);
        if self.members.len() != before {
            self.version += 1;
        }
    }

    fn plan(&self, shards: &[u32]) -> BTreeMap<&str, Vec<u32>> {
        let ids: Vec<&str> = self.members.keys().map(String::as_str).collect();
        let mut plan: BTreeMap<&str, Vec<u32>> = ids.iter().map(|id| (*id, Vec::new())).collect();
        if ids.is_empty() {
            return plan;
        }
        let mut live: Vec<u32> = shards.iter().copied().filter(|s| !self.read_end.contains(s)).collect();
        live.sort_unstable();
        for (i, shard) in live.into_iter().enumerate() {
            if let Some(list) = plan.get_mut(ids[i % ids.len()]) {
                list.push(shard);
            }
        }
        plan
    }
}

/// The groups of one topic, keyed by subscription id.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    groups: HashMap<String, Group>,
}

impl ConsumerGroups {
    pub fn join(&mut self, sub: &str, session_timeout_ms: i64, now: Instant) -> Joined {
        let group = self.groups.entry(sub.to_string()).or_default();
        group.expire(now);
        group.next_consumer += 1;
        let consumer_id = format!("{sub}-consumer-{}", group.next_consumer);
        let timeout_ms = session_timeout_ms.max(MIN_SESSION_TIMEOUT_MS);
        group.members.insert(consumer_id.clone(), Member { last_seen: now, timeout: Duration::from_millis(timeout_ms as u64) });
        group.version += 1;
        Joined { consumer_id, version_id: group.version, session_timeout_ms: timeout_ms }
    }

    fn member(&mut self, sub: &str, consumer: &str, now: Instant) -> Result<&mut Group> {
        let group = self.groups.get_mut(sub).ok_or_else(|| DatalogError::NoSuchConsumer(consumer.to_string()))?;
        group.expire(now);
        match group.members.get_mut(consumer) {
            Some(m) => {
                m.last_seen = now;
                Ok(group)
            }
            None => Err(DatalogError::NoSuchConsumer(consumer.to_string())),
        }
    }

    /// Renews the consumer's lease and returns its current assignment over `shards`.
    pub fn heartbeat(&mut self, sub: &str, consumer: &str, read_end: &[u32], shards: &[u32], now: Instant) -> Result<Assignment> {
        let group = self.member(sub, consumer, now)?;
        let before = group.read_end.len();
        group.read_end.extend(read_end.iter().copied());
        if group.read_end.len() != before {
            group.version += 1;
        }
        let plan = group.plan(shards);
        let total_plan = plan
            .iter()
            .map(|(c, s)| format!("{c}:{}", s.iter().map(u32::to_string).collect::<Vec<_>>().join(",")))
            .collect::<Vec<_>>()
            .join(";");
        Ok(Assignment { plan_version: group.version, shards: plan.get(consumer).cloned().unwrap_or_default(), total_plan })
    }

    /// A consumer reports shards it released or read to the end.
    pub fn sync(&mut self, sub: &str, consumer: &str, read_end: &[u32], now: Instant) -> Result<()> {
        let group = self.member(sub, consumer, now)?;
        let before = group.read_end.len();
        group.read_end.extend(read_end.iter().copied());
        if group.read_end.len() != before {
            group.version += 1;
        }
        Ok(())
    }

    pub fn leave(&mut self, sub: &str, consumer: &str) -> Result<()> {
        let group = self.groups.get_mut(sub).ok_or_else(|| DatalogError::NoSuchConsumer(consumer.to_string()))?;
        if group.members.remove(consumer).is_none() {
            return Err(DatalogError::NoSuchConsumer(consumer.to_string()));
        }
        group.version += 1;
        Ok(())
    }

    pub fn remove_subscription(&mut self, sub: &str) {
        self.groups.remove(sub);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_spread_and_reassigned_when_a_member_expires() {
        let mut g = ConsumerGroups::default();
        let t0 = Instant::now();
        let shards = [0, 1, 2, 3];
        let a = g.join("s", 6000, t0);
        let b = g.join("s", 6000, t0);
        let pa = g.heartbeat("s", &a.consumer_id, &[], &shards, t0).unwrap();
        let pb = g.heartbeat("s", &b.consumer_id, &[], &shards, t0).unwrap();
        assert_eq!(pa.shards.len() + pb.shards.len(), 4);
        assert!(pa.shards.iter().all(|s| !pb.shards.contains(s)));
        // b keeps heartbeating, a goes silent past its 6 s timeout.
        g.heartbeat("s", &b.consumer_id, &[], &shards, t0 + Duration::from_millis(4000)).unwrap();
        let later = t0 + Duration::from_millis(7000);
        let pb2 = g.heartbeat("s", &b.consumer_id, &[], &shards, later).unwrap();
        assert_eq!(pb2.shards, vec![0, 1, 2, 3]);
        assert!(pb2.plan_version > pb.plan_version);
        assert!(matches!(g.heartbeat("s", &a.consumer_id, &[], &shards, later), Err(DatalogError::NoSuchConsumer(_))));
        g.leave("s", &b.consumer_id).unwrap();
        assert!(g.leave("s", &b.consumer_id).is_err());
    }

    #[test]
    fn read_end_shards_are_not_assigned() {
        let mut g = ConsumerGroups::default();
        let t0 = Instant::now();
        let a = g.join("s", 1000, t0);
        assert_eq!(a.session_timeout_ms, MIN_SESSION_TIMEOUT_MS);
        let p = g.heartbeat("s", &a.consumer_id, &[1], &[0, 1], t0).unwrap();
        assert_eq!(p.shards, vec![0]);
    }
}
