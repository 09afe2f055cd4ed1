//! Subscriptions and their committed offsets, one JSON file per topic, rewritten atomically
//! (temporary file, fsync, rename, directory fsync) on every change: an acknowledged commit
//! survives a crash, and a crash mid-write leaves the previous version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{DatalogError, Result};
use crate::log::now_ms;
use crate::write_json_atomic;

/// A committed position in one shard, as DataHub's offset object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offset {
    /// Last consumed sequence; -1 = nothing committed.
    pub sequence: i64,
    /// System time (ms) of that record; -1 = none.
    pub timestamp: i64,
    /// Bumped by every reset; a commit carrying an older version is refused.
    pub version: i64,
    /// Handed out by `open`; only the latest session may commit. `None` = never opened.
    pub session_id: Option<i64>,
    /// Position inside a batch record (batch protocol).
    pub batch_index: i64,
}

impl Default for Offset {
    fn default() -> Self {
        Offset { sequence: -1, timestamp: -1, version: 0, session_id: None, batch_index: 0 }
    }
}

/// What a consumer commits for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub sequence: i64,
    pub timestamp: i64,
    pub batch_index: i64,
    pub version: i64,
    /// As sent by the client (pydatahub may send an int or a string).
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub sub_id: String,
    pub topic: String,
    pub comment: String,
    pub create_time: i64,
    pub last_modify_time: i64,
    /// 0 = INACTIVE, 1 = ACTIVE.
    pub state: u8,
    #[serde(rename = "type")]
    pub kind: i32,
    pub offsets: BTreeMap<u32, Offset>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SubscriptionFile {
    next_id: u64,
    next_session: i64,
    subscriptions: BTreeMap<String, Subscription>,
}

#[derive(Debug)]
pub struct SubscriptionStore {
    path: PathBuf,
    file: SubscriptionFile,
}

impl SubscriptionStore {
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| DatalogError::Metadata { path: path.clone(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SubscriptionFile::default(),
            Err(e) => return Err(DatalogError::Io { op: "read", path, source: e }),
        };
        Ok(SubscriptionStore { path, file })
    }

    fn save(&self) -> Result<()> {
        write_json_atomic(&self.path, &self.file)
    }

    /// Applies `f` to a copy and persists it; memory changes only if the write succeeded.
    fn update<T>(&mut self, f: impl FnOnce(&mut SubscriptionFile) -> Result<T>) -> Result<T> {
        let mut copy = SubscriptionFile {
            next_id: self.file.next_id,
            next_session: self.file.next_session,
            subscriptions: self.file.subscriptions.clone(),
        };
        let out = f(&mut copy)?;
        let old = std::mem::replace(&mut self.file, copy);
        if let Err(e) = self.save() {
            self.file = old;
            return Err(e);
        }
        Ok(out)
    }

    pub fn create(&mut self, topic: &str, comment: &str) -> Result<String> {
        self.update(|f| {
            f.next_id += 1;
            let now = now_ms();
            // Real ids look like `1700000000000abcd`: creation ms plus a suffix.
            let sub_id = format!("{now}{:05x}", f.next_id);
            f.subscriptions.insert(
                sub_id.clone(),
                Subscription {
                    sub_id: sub_id.clone(),
                    topic: topic.to_string(),
                    comment: comment.to_string(),
                    create_time: now / 1000,
                    last_modify_time: now / 1000,
                    state: 1,
                    kind: 0,
                    offsets: BTreeMap::new(),
                },
            );
            Ok(sub_id)
        })
    }

    pub fn list(&self) -> Vec<Subscription> {
        self.file.subscriptions.values().cloned().collect()
    }

    pub fn get(&self, sub: &str) -> Result<Subscription> {
        self.file.subscriptions.get(sub).cloned().ok_or_else(|| DatalogError::NoSuchSubscription(sub.to_string()))
    }

    pub fn update_meta(&mut self, sub: &str, comment: Option<&str>, state: Option<u8>) -> Result<()> {
        if let Some(s) = state {
            if s > 1 {
                return Err(DatalogError::InvalidParameter(format!("subscription state {s} is not 0 or 1")));
            }
        }
        self.update(|f| {
            let s = f.subscriptions.get_mut(sub).ok_or_else(|| DatalogError::NoSuchSubscription(sub.to_string()))?;
            if let Some(c) = comment {
                s.comment = c.to_string();
            }
            if let Some(state) = state {
                s.state = state;
            }
            s.last_modify_time = now_ms() / 1000;
            Ok(())
        })
    }

    pub fn delete(&mut self, sub: &str) -> Result<()> {
        self.update(|f| f.subscriptions.remove(sub).map(|_| ()).ok_or_else(|| DatalogError::NoSuchSubscription(sub.to_string())))
    }

    /// Starts a new session on each shard (`open`): later commits from older sessions fail.
    pub fn open_sessions(&mut self, sub: &str, shards: &[u32]) -> Result<BTreeMap<u32, Offset>> {
        self.update(|f| {
            let s = f.subscriptions.get_mut(sub).ok_or_else(|| DatalogError::NoSuchSubscription(sub.to_string()))?;
            if s.state == 0 {
                return Err(DatalogError::SubscriptionOffline(sub.to_string()));
            }
            let mut out = BTreeMap::new();
            for shard in shards {
                f.next_session += 1;
                let o = s.offsets.entry(*shard).or_default();
                o.session_id = Some(f.next_session);
                out.insert(*shard, *o);
            }
            Ok(out)
        })
    }

    pub fn offsets(&self, sub: &str, shards: &[u32]) -> Result<BTreeMap<u32, Offset>> {
        let s = self.file.subscriptions.get(sub).ok_or_else(|| DatalogError::NoSuchSubscription(sub.to_string()))?;
        Ok(shards.iter().map(|id| (*id, s.offsets.get(id).copied().unwrap_or_default())).collect())
    }

    pub fn commit(&mut self, sub: &str, commits: &BTreeMap<u32, OffsetCommit>) -> Result<()> {
        self.update(|f| {
            let s = f.subscriptions.get_mut(sub).ok_or_else(|| DatalogError::NoSuchSubscription(sub.to_string()))?;
            if s.state == 0 {
                return Err(DatalogError::SubscriptionOffline(sub.to_string()));
            }
            for (shard, c) in commits {
                let o = s.offsets.entry(*shard).or_default();
                if c.version != o.version {
                    return Err(DatalogError::OffsetReset { sub: sub.to_string(), shard: *shard, current: o.version, given: c.version });
                }
                let Some(session) = o.session_id else {
                    return Err(DatalogError::OffsetSessionClosed { sub: sub.to_string(), shard: *shard });
                };
                if c.session_id.trim() != session.to_string() {
                    return Err(DatalogError::OffsetSessionChanged {
                        sub: sub.to_string(),
                        shard: *shard,
                        current: Some(session),
                        given: c.session_id.clone(),
                    });
                }
                o.sequence = c.sequence;
                o.timestamp = c.timestamp;
                o.batch_index = c.batch_index;
            }
            Ok(())
        })
    }

    /// Moves offsets (`reset`) and bumps their version so running consumers notice.
    pub fn reset(&mut self, sub: &str, resets: &BTreeMap<u32, (i64, i64, i64)>) -> Result<()> {
        self.update(|f| {
            let s = f.subscriptions.get_mut(sub).ok_or_else(|| DatalogError::NoSuchSubscription(sub.to_string()))?;
            for (shard, (sequence, timestamp, batch_index)) in resets {
                let o = s.offsets.entry(*shard).or_default();
                o.sequence = *sequence;
                o.timestamp = *timestamp;
                o.batch_index = *batch_index;
                o.version += 1;
            }
            Ok(())
        })
    }
}
