//! Per-shard batching (count, bytes, linger) and the JSON body a batch is delivered as.
//!
//! A batch holds records of one shard, in sequence order, so acknowledging it is one offset:
//! its last sequence. Batches of a shard are cut one after another and delivered in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_datahub::ConsumedRecord;

/// When a shard's batch is cut.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub max_records: usize,
    pub max_bytes: usize,
    pub linger: Duration,
}

/// Records of one shard, ready to deliver.
#[derive(Debug, Clone)]
pub struct Batch {
    pub shard: Arc<str>,
    pub records: Vec<ConsumedRecord>,
}

impl Batch {
    pub fn first_sequence(&self) -> u64 {
        self.records.first().map_or(0, |r| r.sequence)
    }
    pub fn last_sequence(&self) -> u64 {
        self.records.last().map_or(0, |r| r.sequence)
    }
    /// The last record's (sequence, system time): what acknowledging the batch commits.
    pub fn ack_position(&self) -> Option<(u64, i64)> {
        self.records.last().map(|r| (r.sequence, r.system_time))
    }
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The document targets receive ([`cdc_datahub::delivery`]).
    pub fn to_json(&self, project: &str, topic: &str) -> Result<Vec<u8>, serde_json::Error> {
        cdc_datahub::delivery::encode(project, topic, &self.shard, &self.records)
    }
}

#[derive(Debug)]
struct Pending {
    records: Vec<ConsumedRecord>,
    bytes: usize,
    since: Instant,
}

/// Open batches, one per shard.
#[derive(Debug)]
pub struct Batcher {
    policy: BatchPolicy,
    open: BTreeMap<Arc<str>, Pending>,
}

impl Batcher {
    pub fn new(policy: BatchPolicy) -> Self {
        Batcher { policy: BatchPolicy { max_records: policy.max_records.max(1), max_bytes: policy.max_bytes.max(1), linger: policy.linger }, open: BTreeMap::new() }
    }

    /// Adds a record; returns its shard's batch when that is now full.
    pub fn push(&mut self, record: ConsumedRecord, now: Instant) -> Option<Batch> {
        let shard = record.shard.clone();
        let pending = self.open.entry(shard.clone()).or_insert_with(|| Pending { records: Vec::new(), bytes: 0, since: now });
        pending.bytes += record.payload.len();
        pending.records.push(record);
        if pending.records.len() >= self.policy.max_records || pending.bytes >= self.policy.max_bytes {
            return self.open.remove(&shard).map(|p| Batch { shard, records: p.records });
        }
        None
    }

    /// Batches whose linger has passed.
    pub fn due(&mut self, now: Instant) -> Vec<Batch> {
        let linger = self.policy.linger;
        let due: Vec<Arc<str>> = self.open.iter().filter(|(_, p)| now.saturating_duration_since(p.since) >= linger).map(|(s, _)| s.clone()).collect();
        due.into_iter().filter_map(|s| self.open.remove(&s).map(|p| Batch { shard: s, records: p.records })).collect()
    }

    /// When the oldest open batch is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.open.values().map(|p| p.since + self.policy.linger).min()
    }

    /// Every open batch (shutdown, rebalance).
    pub fn take_all(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.open).into_iter().map(|(shard, p)| Batch { shard, records: p.records }).collect()
    }

    /// Drops the open batches of shards no longer held (their new reader delivers them).
    pub fn retain_shards(&mut self, held: &[String]) {
        self.open.retain(|s, _| held.iter().any(|h| **h == **s));
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(shard: &str, sequence: u64, payload: &[u8]) -> ConsumedRecord {
        ConsumedRecord { shard: Arc::from(shard), sequence, system_time: 1000 + sequence as i64, payload: payload.to_vec(), attributes: BTreeMap::new() }
    }

    #[test]
    fn batches_cut_by_count_bytes_and_linger_per_shard() {
        let t0 = Instant::now();
        let mut b = Batcher::new(BatchPolicy { max_records: 3, max_bytes: 10, linger: Duration::from_millis(100) });
        assert!(b.push(rec("0", 0, b"a"), t0).is_none());
        assert!(b.push(rec("1", 0, b"a"), t0).is_none());
        assert!(b.push(rec("0", 1, b"a"), t0).is_none());
        let full = b.push(rec("0", 2, b"a"), t0).expect("three records of shard 0");
        assert_eq!((&*full.shard, full.first_sequence(), full.last_sequence()), ("0", 0, 2));
        let big = b.push(rec("1", 1, b"0123456789"), t0).expect("bytes reached");
        assert_eq!(big.len(), 2);
        assert!(b.push(rec("2", 5, b"x"), t0).is_none());
        assert!(b.due(t0 + Duration::from_millis(99)).is_empty());
        assert_eq!(b.next_due(), Some(t0 + Duration::from_millis(100)));
        let due = b.due(t0 + Duration::from_millis(100));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].ack_position(), Some((5, 1005)));
        assert!(b.is_empty());
    }
}
