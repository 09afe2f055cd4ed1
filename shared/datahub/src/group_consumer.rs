//! [`GroupConsumer`]: reads the shards a consumer group assigns to this member, and commits
//! subscription offsets only for records the caller acknowledged (at-least-once).
//!
//! * A background task joins the subscription's consumer group and heartbeats every
//!   `session timeout / 6` (pydatahub's cadence), sending the shards held and the CLOSED
//!   shards read to their end; each answer is the member's assignment, published on a
//!   `watch` channel. `NoSuchConsumer` (lease expired, server restarted) → join again, and
//!   every shard is dropped until the new assignment arrives; so is a lease whose heartbeats
//!   failed for longer than the session timeout (another member has its shards by then).
//! * [`GroupConsumer::poll`] first applies the latest assignment: a revoked shard gets what
//!   was acknowledged committed and is released (`syncGroup`); a newly assigned shard gets an
//!   offset session (`open`) and is read from the committed `Sequence + 1`, else the oldest
//!   record. Then one GetRecords per held shard.
//! * [`GroupConsumer::ack`] records that the caller's output for a shard is done up to a
//!   sequence; [`GroupConsumer::commit`] commits those positions with the session id and
//!   version from `open`. A commit answered `OffsetSessionChanged` means another member
//!   opened the shard: it is dropped here (the other member re-reads from the last commit, so
//!   nothing acknowledged-but-uncommitted is lost, only delivered twice).
//! * Split/merge: GetRecords at the end of a CLOSED shard fails with `InvalidShardOperation`
//!   (§5). Once everything read from it is acknowledged and committed, the shard is reported
//!   in `ReadEndShardList` and dropped. A shard whose `ParentShardIds` name an unfinished
//!   parent is not opened until the parent is finished (by this member, or — seen through the
//!   subscription — by another), so a key's changes stay in order across a split or merge.
//! * [`GroupConsumer::close`] commits what was acknowledged and leaves the group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::sync::watch;

use crate::client::{ClientError, CursorType, DatahubClient, SubscriptionOffset};
use crate::consumer::{position, resolve_subscription, ConsumeError, ConsumedRecord, ConsumerOptions, StartFrom};
use crate::group::{GroupErrorAction, JoinedGroup};
use crate::model::RecordData;
use crate::topic::ensure_topic;

/// pydatahub's default session timeout (§1.6); datahub-local grants no less.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_millis(6000);
/// How often unfinished parents of an assigned shard are checked again.
const PARENT_RECHECK: Duration = Duration::from_secs(1);

/// What to consume and how to take part in the group: `new(base)`, then `with_*`.
#[derive(Debug, Clone)]
pub struct GroupConsumerOptions {
    base: ConsumerOptions,
    session_timeout: Duration,
    heartbeat_interval: Option<Duration>,
}

impl GroupConsumerOptions {
    /// `base` names the project, topic and subscription (id or name, see
    /// [`ConsumerOptions::new`]), the topic policy and the fetch limit.
    pub fn new(base: ConsumerOptions) -> Self {
        GroupConsumerOptions { base, session_timeout: DEFAULT_SESSION_TIMEOUT, heartbeat_interval: None }
    }
    /// The session timeout asked for at join (the server may grant more): a member silent
    /// for this long loses its shards.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }
    /// Heartbeat period (default: the granted session timeout / 6).
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = Some(interval);
        self
    }
}

/// Where the membership stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipState {
    /// Not (or no longer) a member; joining.
    Joining,
    /// A member: `assigned` is the latest assignment.
    Member,
    /// Gave up for good (subscription deleted or offline, or closed); the reason.
    Stopped(String),
}

/// The membership as the heartbeat task last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub state: MembershipState,
    pub consumer_id: Option<String>,
    pub version_id: i64,
    /// Counts joins: shards read under an older generation are dropped.
    pub generation: u64,
    pub plan_version: i64,
    pub assigned: BTreeSet<String>,
    pub session_timeout: Duration,
}

impl Membership {
    pub fn is_member(&self) -> bool {
        self.state == MembershipState::Member
    }
}

/// What the consumer tells the heartbeat task.
#[derive(Debug, Default)]
struct Shared {
    held: Vec<String>,
    /// CLOSED shards read to the end (and committed); sent in every heartbeat (the server
    /// keeps a set, so repeating is harmless and survives a lost heartbeat).
    read_end: BTreeSet<String>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
struct HeldShard {
    shard: Arc<str>,
    cursor: String,
    /// Next sequence to read.
    next: u64,
    start: StartFrom,
    /// From `open`: session id and version to commit with; `sequence` = last committed.
    session: SubscriptionOffset,
    /// Last acknowledged record: (sequence, system time).
    acked: Option<(u64, i64)>,
    /// GetRecords said this CLOSED shard has nothing more.
    ended: bool,
}

impl HeldShard {
    fn committed(&self) -> Option<u64> {
        u64::try_from(self.session.sequence).ok()
    }
    /// Everything read was acknowledged and committed.
    fn drained(&self) -> bool {
        match self.next.checked_sub(1) {
            None => true,
            Some(last_read) => self.committed().is_some_and(|c| c >= last_read) || self.next <= self.start_sequence(),
        }
    }
    fn start_sequence(&self) -> u64 {
        match self.start {
            StartFrom::Checkpoint(n) | StartFrom::Committed(n) | StartFrom::Oldest(n) => n,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct ShardTopology {
    state: String,
    parents: Vec<String>,
}

/// A consumer-group member reading its assigned shards; see the module docs.
#[derive(Debug)]
pub struct GroupConsumer {
    client: Arc<DatahubClient>,
    options: GroupConsumerOptions,
    sub_id: String,
    membership: watch::Receiver<Membership>,
    shared: Arc<Mutex<Shared>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The membership generation `held` belongs to.
    generation: u64,
    held: BTreeMap<String, HeldShard>,
    /// Assigned, waiting for a parent shard to be finished; when it was last checked.
    waiting: BTreeMap<String, Instant>,
    /// Shards this member read to the end and reported.
    finished: BTreeSet<String>,
    /// Shards another member opened while this one held them (a commit answered
    /// `OffsetSessionChanged`), with when: not taken back under the same plan for a while,
    /// so two members whose plans differ for a heartbeat do not take a shard from each other
    /// in turn (each take-over makes the other's commits fail).
    lost: BTreeMap<String, (i64, Instant)>,
    /// The held set last logged.
    logged_held: Vec<String>,
    topology: BTreeMap<String, ShardTopology>,
}

impl GroupConsumer {
    /// Ensures the topic, resolves (or creates) the subscription and starts the heartbeat
    /// task, which joins the group. Shards come with the first assignment, on a later `poll`.
    pub async fn open(client: Arc<DatahubClient>, options: GroupConsumerOptions) -> Result<Self, ConsumeError> {
        let base = &options.base;
        ensure_topic(&client, &base.project, &base.topic, base.topic_policy).await?;
        let sub_id = resolve_subscription(&client, base).await?;
        let initial = Membership {
            state: MembershipState::Joining,
            consumer_id: None,
            version_id: 0,
            generation: 0,
            plan_version: 0,
            assigned: BTreeSet::new(),
            session_timeout: options.session_timeout,
        };
        let (tx, membership) = watch::channel(initial);
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let task = tokio::spawn(heartbeat_loop(
            client.clone(),
            HeartbeatParams {
                project: base.project.clone(),
                topic: base.topic.clone(),
                sub: sub_id.clone(),
                session_timeout: options.session_timeout,
                interval: options.heartbeat_interval,
            },
            shared.clone(),
            tx,
            stop_rx,
        ));
        Ok(GroupConsumer {
            client,
            options,
            sub_id,
            membership,
            shared,
            stop,
            task: Some(task),
            generation: 0,
            held: BTreeMap::new(),
            waiting: BTreeMap::new(),
            finished: BTreeSet::new(),
            lost: BTreeMap::new(),
            logged_held: Vec::new(),
            topology: BTreeMap::new(),
        })
    }

    pub fn subscription_id(&self) -> &str {
        &self.sub_id
    }

    /// The membership now.
    pub fn membership(&self) -> Membership {
        self.membership.borrow().clone()
    }

    /// A receiver of membership changes (for health reporting).
    pub fn watch_membership(&self) -> watch::Receiver<Membership> {
        self.membership.clone()
    }

    /// The shards being read now.
    pub fn held_shards(&self) -> Vec<String> {
        self.held.keys().cloned().collect()
    }

    /// The assignment changed since the last `poll` applied it: a caller with records in
    /// hand may deliver and acknowledge them first, so the revoked shards' progress is
    /// committed before they are released.
    pub fn rebalance_pending(&self) -> bool {
        let m = self.membership.borrow();
        if m.generation != self.generation {
            return !self.held.is_empty();
        }
        self.held.keys().any(|s| !m.assigned.contains(s))
    }

    /// Applies the latest assignment, then one GetRecords per held shard. Records come in
    /// sequence order per shard. Empty when nothing is assigned or everything is caught up.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ConsumeError> {
        self.rebalance().await?;
        let (project, topic, limit) = (&self.options.base.project, &self.options.base.topic, self.options.base.fetch_limit);
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, held) in self.held.iter_mut().filter(|(_, h)| !h.ended) {
            let got = match self.client.get_records(project, topic, id, &held.cursor, limit).await {
                Ok(got) => got,
                Err(e) if e.code() == Some("InvalidCursor") => {
                    tracing::warn!(shard = %id, next = held.next, error = %e, "cursor expired; resolving it again");
                    let fresh = position(&self.client, project, topic, id, StartFrom::Checkpoint(held.next)).await?;
                    held.cursor = fresh.cursor;
                    held.next = fresh.next;
                    continue;
                }
                Err(e) if e.code() == Some("InvalidShardOperation") => {
                    // §5: the end of a CLOSED (split/merged) shard.
                    tracing::info!(shard = %id, next = held.next, "read a closed shard to its end");
                    held.ended = true;
                    continue;
                }
                Err(e) if e.code() == Some("NoSuchShard") => {
                    tracing::warn!(shard = %id, error = %e, "shard disappeared; dropping it");
                    gone.push(id.clone());
                    continue;
                }
                Err(source) => return Err(ConsumeError::Shard { what: "GetRecords", shard: id.clone(), source: Box::new(source) }),
            };
            for record in got.records {
                let Ok(sequence) = u64::try_from(record.sequence) else {
                    return Err(ConsumeError::Data { shard: id.clone(), sequence: record.sequence, reason: "negative sequence".into() });
                };
                if sequence < held.next {
                    continue;
                }
                let payload = match record.data {
                    RecordData::Blob(bytes) => bytes,
                    RecordData::Tuple(_) => {
                        return Err(ConsumeError::Data { shard: id.clone(), sequence: record.sequence, reason: "a TUPLE record in a BLOB topic".into() })
                    }
                };
                held.next = sequence + 1;
                out.push(ConsumedRecord { shard: held.shard.clone(), sequence, system_time: record.system_time, payload, attributes: record.attributes });
            }
            held.cursor = got.next_cursor;
        }
        for id in gone {
            self.held.remove(&id);
        }
        self.finish_ended();
        self.publish_held();
        Ok(out)
    }

    /// The caller's output is done for `shard` up to and including `sequence` (whose record
    /// has `system_time`). Returns false when the shard is no longer held (revoked or taken
    /// over meanwhile): the acknowledgement cannot be committed, the shard's new reader
    /// delivers those records again.
    pub fn ack(&mut self, shard: &str, sequence: u64, system_time: i64) -> bool {
        let Some(held) = self.held.get_mut(shard) else { return false };
        if held.acked.is_none_or(|(s, _)| sequence > s) {
            held.acked = Some((sequence, system_time));
        }
        true
    }

    /// Commits every acknowledged position not committed yet, one shard per request (a
    /// shard taken over by another member must not fail the others' commits).
    pub async fn commit(&mut self) -> Result<(), ConsumeError> {
        let (project, topic) = (self.options.base.project.clone(), self.options.base.topic.clone());
        let mut dropped = Vec::new();
        for (id, held) in self.held.iter_mut() {
            let Some((sequence, timestamp)) = held.acked else { continue };
            let Ok(sequence) = i64::try_from(sequence) else { continue };
            if sequence <= held.session.sequence {
                continue;
            }
            let offset = SubscriptionOffset { sequence, timestamp, ..held.session.clone() };
            let one = BTreeMap::from([(id.clone(), offset.clone())]);
            match self.client.commit_offsets(&project, &topic, &self.sub_id, &one).await {
                Ok(()) => held.session = offset,
                Err(e) if matches!(e.code(), Some("OffsetSessionChanged" | "OffsetSessionClosed")) => {
                    tracing::warn!(shard = %id, sequence, error = %e, "another member took the shard over; dropping it (it re-reads from the last commit)");
                    self.lost.insert(id.clone(), (self.membership.borrow().plan_version, Instant::now()));
                    dropped.push(id.clone());
                }
                Err(e) if e.code() == Some("OffsetReseted") => {
                    tracing::warn!(shard = %id, error = %e, "the subscription offset was reset; re-reading the shard from the new offset");
                    dropped.push(id.clone());
                }
                Err(source) => return Err(ConsumeError::Subscription { what: "committing offsets", sub: self.sub_id.clone(), source: Box::new(source) }),
            }
        }
        for id in dropped {
            self.held.remove(&id);
        }
        self.finish_ended();
        self.publish_held();
        Ok(())
    }

    /// Commits what was acknowledged, stops heartbeating and leaves the group (so the other
    /// members get the shards now, not after the session timeout).
    pub async fn close(mut self) -> Result<(), ConsumeError> {
        let committed = self.commit().await;
        self.held.clear();
        self.publish_held();
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        committed
    }

    fn publish_held(&mut self) {
        let held: Vec<String> = self.held.keys().cloned().collect();
        if held != self.logged_held {
            tracing::info!(held = ?held, "reading shards");
            self.logged_held = held.clone();
        }
        lock(&self.shared).held = held;
    }

    /// Ended shards whose every record was acknowledged and committed become read-end: the
    /// next heartbeat reports them, and their children can be read.
    fn finish_ended(&mut self) {
        let done: Vec<String> = self.held.iter().filter(|(_, h)| h.ended && h.drained()).map(|(id, _)| id.clone()).collect();
        for id in done {
            tracing::info!(shard = %id, "closed shard fully consumed; reporting it read to the end");
            self.held.remove(&id);
            lock(&self.shared).read_end.insert(id.clone());
            self.finished.insert(id);
        }
    }

    async fn rebalance(&mut self) -> Result<(), ConsumeError> {
        let m = self.membership.borrow().clone();
        if let MembershipState::Stopped(reason) = &m.state {
            return Err(ConsumeError::GroupStopped { sub: self.sub_id.clone(), reason: reason.clone() });
        }
        if m.generation != self.generation {
            // A new membership: the old one's shards may be anyone's by now.
            let all: Vec<String> = self.held.keys().cloned().collect();
            self.revoke(&all, None).await;
            self.waiting.clear();
            self.generation = m.generation;
        }
        let revoked: Vec<String> = self.held.keys().filter(|s| !m.assigned.contains(*s)).cloned().collect();
        if !revoked.is_empty() {
            self.revoke(&revoked, Some(&m)).await;
        }
        self.waiting.retain(|s, _| m.assigned.contains(s));
        // A lost shard is taken back once the plan changed, or after two of the other
        // member's heartbeats (it has seen the plan by then, and released the shard if the
        // plan is not its own).
        let backoff = m.session_timeout / 3;
        self.lost.retain(|_, (version, at)| *version == m.plan_version && at.elapsed() < backoff);
        let added: Vec<String> = m
            .assigned
            .iter()
            .filter(|s| !self.held.contains_key(*s) && !self.finished.contains(*s) && !self.lost.contains_key(*s))
            .cloned()
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        let mut ready = Vec::new();
        for shard in added {
            if let Some(checked) = self.waiting.get(&shard) {
                if checked.elapsed() < PARENT_RECHECK {
                    continue;
                }
            }
            if self.parents_finished(&shard).await? {
                self.waiting.remove(&shard);
                ready.push(shard);
            } else {
                if !self.waiting.contains_key(&shard) {
                    tracing::info!(%shard, "assigned shard waits until its parent shards are read to the end");
                }
                self.waiting.insert(shard, Instant::now());
            }
        }
        if !ready.is_empty() {
            self.acquire(&ready).await?;
        }
        self.publish_held();
        Ok(())
    }

    /// Commits the acknowledged progress of `shards` (best effort), drops them and — when
    /// still a member — releases them to the group.
    async fn revoke(&mut self, shards: &[String], member: Option<&Membership>) {
        if let Err(e) = self.commit().await {
            tracing::warn!(error = format!("{e:#}"), "committing before releasing shards failed; the next reader re-reads from the last commit");
        }
        for id in shards {
            self.held.remove(id);
        }
        self.publish_held();
        tracing::info!(shards = ?shards, "released shards");
        if let Some(m) = member.filter(|m| m.is_member()) {
            if let Some(consumer) = &m.consumer_id {
                let base = &self.options.base;
                if let Err(e) = self.client.sync_group(&base.project, &base.topic, &self.sub_id, consumer, m.version_id, shards, &[]).await {
                    tracing::warn!(error = %e, "syncGroup (release) failed; the server reassigns by plan anyway");
                }
            }
        }
    }

    /// Opens offset sessions on `shards` and positions each after its committed offset.
    async fn acquire(&mut self, shards: &[String]) -> Result<(), ConsumeError> {
        let (project, topic) = (&self.options.base.project, &self.options.base.topic);
        let ids: Vec<&str> = shards.iter().map(String::as_str).collect();
        let sessions = self
            .client
            .open_offsets(project, topic, &self.sub_id, &ids)
            .await
            .map_err(|source| ConsumeError::Subscription { what: "opening the offset session", sub: self.sub_id.clone(), source: Box::new(source) })?;
        for shard in shards {
            let Some(session) = sessions.get(shard).cloned() else {
                tracing::warn!(%shard, "the offset session was not opened for an assigned shard; trying again on the next poll");
                continue;
            };
            let start = match u64::try_from(session.sequence) {
                Ok(seq) => StartFrom::Committed(seq + 1),
                Err(_) => StartFrom::Oldest(0),
            };
            let reader = position(&self.client, project, topic, shard, start).await?;
            tracing::info!(%shard, start = ?reader.start, "reading assigned shard");
            self.held.insert(
                shard.clone(),
                HeldShard { shard: reader.shard, cursor: reader.cursor, next: reader.next, start: reader.start, session, acked: None, ended: false },
            );
        }
        Ok(())
    }

    /// Whether every parent of `shard` is read to its end (always, for a shard without
    /// parents — the common case, answered from the cached topology).
    async fn parents_finished(&mut self, shard: &str) -> Result<bool, ConsumeError> {
        if !self.topology.contains_key(shard) || self.waiting.contains_key(shard) {
            self.refresh_topology().await?;
        }
        let parents = self.topology.get(shard).map(|t| t.parents.clone()).unwrap_or_default();
        for parent in parents {
            if self.finished.contains(&parent) {
                continue;
            }
            if self.held.contains_key(&parent) {
                return Ok(false);
            }
            match self.topology.get(&parent) {
                // Expired or unknown: nothing left to read in it.
                None => continue,
                Some(t) if t.state != "CLOSED" => return Ok(false),
                Some(_) => {}
            }
            if !self.read_to_end_by_group(&parent).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A CLOSED shard whose subscription offset is at its end: GetRecords after the
    /// committed offset answers `InvalidShardOperation` (§5).
    async fn read_to_end_by_group(&self, shard: &str) -> Result<bool, ConsumeError> {
        let (project, topic) = (&self.options.base.project, &self.options.base.topic);
        let sub_err = |source| ConsumeError::Subscription { what: "reading a parent shard's offset", sub: self.sub_id.clone(), source: Box::new(source) };
        let offsets = self.client.get_offsets(project, topic, &self.sub_id, &[shard]).await.map_err(sub_err)?;
        let committed = offsets.get(shard).map_or(-1, |o| o.sequence);
        let cursor = if committed >= 0 {
            self.client.get_cursor(project, topic, shard, CursorType::Sequence(committed + 1)).await
        } else {
            self.client.get_cursor(project, topic, shard, CursorType::Oldest).await
        };
        let cursor = match cursor {
            Ok(c) => c,
            Err(e) if matches!(e.code(), Some("SeekOutOfRange" | "InvalidShardOperation")) => return Ok(true),
            Err(source) => return Err(ConsumeError::Shard { what: "GetCursor on a parent shard", shard: shard.into(), source: Box::new(source) }),
        };
        match self.client.get_records(project, topic, shard, &cursor.cursor, 1).await {
            Err(e) if e.code() == Some("InvalidShardOperation") => Ok(true),
            Ok(_) => Ok(false),
            Err(source) => Err(ConsumeError::Shard { what: "GetRecords on a parent shard", shard: shard.into(), source: Box::new(source) }),
        }
    }

    /// ListShard's `State` and `ParentShardIds` (§1.4), read here from the raw answer.
    async fn refresh_topology(&mut self) -> Result<(), ConsumeError> {
        const OP: &str = "ListShard";
        let (project, topic) = (&self.options.base.project, &self.options.base.topic);
        let wrap = |source: ClientError| ConsumeError::Shard { what: "ListShard", shard: String::new(), source: Box::new(source) };
        let v = self.client.call_json(OP, Method::GET, &format!("/projects/{project}/topics/{topic}/shards"), None, false).await.map_err(wrap)?;
        let shards = v.get("Shards").and_then(Value::as_array).ok_or_else(|| wrap(crate::client::decode_err(OP, "Shards missing")))?;
        self.topology = shards.iter().filter_map(parse_topology).collect();
        Ok(())
    }
}

fn parse_topology(s: &Value) -> Option<(String, ShardTopology)> {
    let id = match s.get("ShardId")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let state = s.get("State").and_then(Value::as_str).unwrap_or("ACTIVE").to_string();
    let parents = s
        .get("ParentShardIds")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string).or_else(|| p.as_i64().map(|n| n.to_string()))).collect())
        .unwrap_or_default();
    Some((id, ShardTopology { state, parents }))
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        // Without `close` (an error path): stop heartbeating so the lease lapses; the task
        // still leaves the group.
        let _ = self.stop.send(true);
    }
}

struct HeartbeatParams {
    project: String,
    topic: String,
    sub: String,
    session_timeout: Duration,
    interval: Option<Duration>,
}

/// Joins, heartbeats, rejoins; publishes the membership; leaves when told to stop.
async fn heartbeat_loop(
    client: Arc<DatahubClient>,
    p: HeartbeatParams,
    shared: Arc<Mutex<Shared>>,
    tx: watch::Sender<Membership>,
    mut stop: watch::Receiver<bool>,
) {
    let mut member: Option<JoinedGroup> = None;
    let mut last_ok = Instant::now();
    let mut join_failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match &member {
            None => match client.join_group(&p.project, &p.topic, &p.sub, p.session_timeout).await {
                Ok(joined) => {
                    join_failures = 0;
                    last_ok = Instant::now();
                    tracing::info!(consumer_id = %joined.consumer_id, session_timeout_ms = joined.session_timeout.as_millis() as u64, sub = %p.sub, "joined the consumer group");
                    tx.send_modify(|m| {
                        m.state = MembershipState::Member;
                        m.consumer_id = Some(joined.consumer_id.clone());
                        m.version_id = joined.version_id;
                        m.generation += 1;
                        m.assigned.clear();
                        m.session_timeout = joined.session_timeout;
                    });
                    member = Some(joined);
                    // Heartbeat at once: the first answer carries the assignment.
                    Duration::ZERO
                }
                Err(e) if e.action() == GroupErrorAction::Stop => {
                    tracing::error!(error = %e, "cannot join the consumer group");
                    tx.send_modify(|m| m.state = MembershipState::Stopped(e.to_string()));
                    return;
                }
                Err(e) => {
                    join_failures += 1;
                    let wait = Duration::from_millis(500).saturating_mul(1 << join_failures.min(6)).min(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "joining the consumer group failed; retrying");
                    wait
                }
            },
            Some(joined) => {
                let interval = p.interval.unwrap_or(joined.session_timeout / 6).max(Duration::from_millis(50));
                let (hold, read_end) = {
                    let s = lock(&shared);
                    (s.held.clone(), s.read_end.iter().cloned().collect::<Vec<_>>())
                };
                match client.heartbeat(&p.project, &p.topic, &p.sub, &joined.consumer_id, joined.version_id, &hold, &read_end).await {
                    Ok(a) => {
                        last_ok = Instant::now();
                        let assigned: BTreeSet<String> = a.shards.into_iter().collect();
                        tx.send_if_modified(|m| {
                            if m.assigned == assigned && m.plan_version == a.plan_version {
                                return false;
                            }
                            tracing::info!(assigned = ?assigned, plan_version = a.plan_version, plan = %a.total_plan, "consumer group assignment");
                            m.assigned = assigned;
                            m.plan_version = a.plan_version;
                            true
                        });
                        interval
                    }
                    Err(e) => match e.action() {
                        GroupErrorAction::Rejoin => {
                            tracing::warn!(error = %e, "lost the consumer group membership; rejoining");
                            member = None;
                            tx.send_modify(|m| {
                                m.state = MembershipState::Joining;
                                m.assigned.clear();
                            });
                            Duration::ZERO
                        }
                        GroupErrorAction::Stop => {
                            tracing::error!(error = %e, "the consumer group is gone");
                            tx.send_modify(|m| {
                                m.state = MembershipState::Stopped(e.to_string());
                                m.assigned.clear();
                            });
                            return;
                        }
                        GroupErrorAction::Retry => {
                            tracing::warn!(error = %e, "heartbeat failed; retrying");
                            if last_ok.elapsed() > joined.session_timeout {
                                // The server has expired this member by now: its shards are
                                // another member's; stop reading them and join afresh.
                                member = None;
                                tx.send_modify(|m| {
                                    m.state = MembershipState::Joining;
                                    m.assigned.clear();
                                });
                            }
                            interval
                        }
                    },
                }
            }
        };
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(joined) = member {
        match client.leave_group(&p.project, &p.topic, &p.sub, &joined.consumer_id, joined.version_id).await {
            Ok(()) => tracing::info!(consumer_id = %joined.consumer_id, "left the consumer group"),
            Err(e) => tracing::warn!(error = %e, "leaving the consumer group failed; the server expires the member after the session timeout"),
        }
    }
    tx.send_modify(|m| {
        m.state = MembershipState::Stopped("closed".into());
        m.assigned.clear();
    });
}
