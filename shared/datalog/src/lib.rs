//! cdc-datalog: the storage engine of the embedded, DataHub-compatible log.
//!
//! * [`Datalog`]: projects → topics → shards, kept under one data directory:
//!   `{root}/{project}/project.json`, `{root}/{project}/{topic}/topic.json`,
//!   `{root}/{project}/{topic}/subscriptions.json`, `{root}/{project}/{topic}/shards/{id}/`.
//!   Metadata files are written atomically; a topic exists once its `topic.json` does.
//! * [`ShardLog`]: one shard, an append-only segmented log with CRC-checked frames, a sparse
//!   sequence/time index, torn-tail recovery at open, fsync policy and retention (see `log`).
//! * [`Topic`]: shards, cursors ([`CursorRequest`]), subscriptions with durable offsets
//!   ([`SubscriptionStore`]) and consumer groups ([`ConsumerGroups`]); the shard table
//!   ([`ShardMeta`]: split and merge close shards and add new ones) and the schema registry
//!   ([`SchemaVersion`]) live in `topic.json`.
//!
//! Everything is synchronous `std::fs`; an async server calls it from blocking tasks.

mod error;
mod frame;
mod group;
mod log;
mod shards;
mod subscription;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use error::{DatalogError, Result};
pub use frame::{AppendRecord, StoredRecord};
pub use group::{Assignment, ConsumerGroups, Joined, MIN_SESSION_TIMEOUT_MS};
pub use log::{Appended, Bounds, FsyncPolicy, LogOptions, ShardLog};
pub use shards::{initial_range, neighbours, parse_hash_key, ShardMeta, ShardState, MAX_ACTIVE_SHARDS, MAX_TOTAL_SHARDS};
pub use subscription::{Offset, OffsetCommit, Subscription, SubscriptionStore};

use error::io;

/// Milliseconds since the epoch, as record system times are.
pub fn now_ms() -> i64 {
    log::now_ms()
}

/// Writes JSON to `path` so that readers see the old or the new file, never a torn one.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| DatalogError::Metadata { path: path.into(), source })?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io("write", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
    if let Some(dir) = path.parent() {
        log::sync_dir(dir)?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| DatalogError::Metadata { path: path.into(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Project names: a letter, then letters, digits, `_`; 3–32 long (pydatahub's rule), and
/// also `-`: the deployment guide's defaults (`realtime-pipeline`, `cdc-events`) use it, and
/// the embedded log must run on those defaults. Alibaba's service refuses `-`; it answers
/// that itself. The rule keeps names safe as directory names.
pub fn check_project_name(name: &str) -> Result<()> {
    check_name("project", name, 3, 32)
}

/// Topic names: a letter, then letters, digits, `_` or `-`; 1–128 long.
pub fn check_topic_name(name: &str) -> Result<()> {
    check_name("topic", name, 1, 128)
}

fn check_name(what: &'static str, name: &str, min: usize, max: usize) -> Result<()> {
    let ok = (min..=max).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DatalogError::InvalidName { what, name: name.into(), rule: "a letter first, then letters, digits, _ or -, of allowed length" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    Blob,
    Tuple,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub comment: String,
    /// Epoch seconds.
    pub create_time: i64,
    pub last_modify_time: i64,
}

/// What CreateTopic asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub shard_count: u32,
    /// Retention in days.
    pub lifecycle: u32,
    pub record_type: RecordType,
    /// The JSON schema string as the client sent it (TUPLE only).
    pub record_schema: Option<String>,
    pub comment: String,
    pub expand_mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    #[serde(flatten)]
    pub spec: TopicSpec,
    pub create_time: i64,
    pub last_modify_time: i64,
    /// Every shard, closed ones included (absent in files written before splits existed:
    /// then the creation-time shards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardMeta>,
    /// Registered record schemas of a TUPLE topic (absent in older files: version 0 is
    /// `spec.record_schema`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<SchemaVersion>,
}

/// One version in a topic's schema registry (ListSchema / GetSchema / RegisterSchema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    pub version_id: i64,
    /// The RecordSchema JSON string as registered.
    pub record_schema: String,
    /// Epoch seconds.
    pub create_time: i64,
}

/// Where a cursor should point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorRequest {
    /// The first retained record.
    Oldest,
    /// The last existing record (reading returns it), or the tail of an empty shard.
    Latest,
    /// The first record with system time ≥ this (ms); the tail when none is that new.
    SystemTime(i64),
    /// The record with this sequence; `next` (the tail) is allowed.
    Sequence(i64),
}

/// A resolved cursor position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorPosition {
    pub sequence: u64,
    /// System time of the record there; for the tail, of the last record (0 if none).
    pub record_time: i64,
}

/// Largest shard count accepted per topic (the service's active-shard limit).
pub const MAX_SHARDS: u32 = 256;

/// A topic: its shards, subscriptions and consumer groups.
pub struct Topic {
    project: String,
    name: String,
    dir: PathBuf,
    options: LogOptions,
    /// Metadata, the shard table and the schema registry included; `topic.json` on disk.
    info: Mutex<TopicInfo>,
    /// Every shard's log, closed ones included. Changes only under the `info` lock.
    logs: RwLock<BTreeMap<u32, Arc<ShardLog>>>,
    subscriptions: Mutex<SubscriptionStore>,
    groups: Mutex<ConsumerGroups>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("project", &self.project).field("name", &self.name).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Topic {
    fn open(project: &str, name: &str, dir: PathBuf, mut info: TopicInfo, options: LogOptions) -> Result<Self> {
        // Topics written before the shard table and the schema registry existed: their
        // shards are the creation-time ones, their one schema is version 0.
        if info.shards.is_empty() {
            info.shards = shards::initial_table(info.spec.shard_count);
        }
        if info.schemas.is_empty() {
            if let Some(schema) = &info.spec.record_schema {
                info.schemas.push(SchemaVersion { version_id: 0, record_schema: schema.clone(), create_time: info.create_time });
            }
        }
        let mut logs = BTreeMap::new();
        for meta in &info.shards {
            let log = ShardLog::open(dir.join("shards").join(meta.id.to_string()), meta.id, options)?;
            if !meta.is_active() {
                log.close()?;
            }
            logs.insert(meta.id, Arc::new(log));
        }
        let subscriptions = SubscriptionStore::open(dir.join("subscriptions.json"))?;
        Ok(Topic {
            project: project.into(),
            name: name.into(),
            dir,
            options,
            info: Mutex::new(info),
            logs: RwLock::new(logs),
            subscriptions: Mutex::new(subscriptions),
            groups: Mutex::new(ConsumerGroups::default()),
        })
    }

    fn logs(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Arc<ShardLog>>> {
        self.logs.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn project(&self) -> &str {
        &self.project
    }
    pub fn info(&self) -> TopicInfo {
        lock(&self.info).clone()
    }
    /// Every shard's log in id order, closed ones included.
    pub fn shards(&self) -> Vec<Arc<ShardLog>> {
        self.logs().values().cloned().collect()
    }
    /// Every shard id, closed ones included.
    pub fn shard_ids(&self) -> Vec<u32> {
        self.logs().keys().copied().collect()
    }
    /// The shard table in id order.
    pub fn shard_table(&self) -> Vec<ShardMeta> {
        let mut t = lock(&self.info).shards.clone();
        t.sort_by_key(|s| s.id);
        t
    }
    /// The ACTIVE shard whose hash range holds `hash`.
    pub fn route_hash(&self, hash: u128) -> Option<u32> {
        lock(&self.info).shards.iter().find(|s| s.is_active() && s.owns(hash)).map(|s| s.id)
    }
    /// Ids of the ACTIVE shards (the ones that take writes), in id order.
    pub fn active_shard_ids(&self) -> Vec<u32> {
        self.shard_table().into_iter().filter(ShardMeta::is_active).map(|s| s.id).collect()
    }

    /// The shard with this id as DataHub spells it (`"0"`, `"1"`, …).
    pub fn shard(&self, id: &str) -> Result<Arc<ShardLog>> {
        id.trim().parse::<u32>().ok().and_then(|i| self.logs().get(&i).cloned()).ok_or_else(|| DatalogError::NoSuchShard(id.to_string()))
    }

    fn update_info(&self, f: impl FnOnce(&mut TopicInfo)) -> Result<()> {
        let mut info = lock(&self.info);
        let mut next = info.clone();
        f(&mut next);
        next.last_modify_time = now_ms() / 1000;
        write_json_atomic(&self.dir.join("topic.json"), &next)?;
        *info = next;
        Ok(())
    }

    /// Splits an ACTIVE shard at `split_key` into two new ACTIVE shards covering
    /// `[begin, split_key)` and `[split_key, end)`; the parent becomes CLOSED.
    ///
    /// Order: the parent's log is closed first (so no write lands after the children exist),
    /// then the children's logs are created, then `topic.json` is written — the commit point.
    /// A crash before it leaves the old table; the children's empty directories are cleared
    /// when their ids are next used.
    pub fn split_shard(&self, id: &str, split_key: u128) -> Result<[ShardMeta; 2]> {
        let parent = self.shard(id)?;
        let mut info = lock(&self.info);
        let (table, children) = shards::plan_split(&info.shards, parent.id(), split_key, now_ms() / 1000)?;
        self.reshard(&mut info, table, &[parent], &children)?;
        Ok(children)
    }

    /// Merges two adjacent ACTIVE shards (in either order) into a new ACTIVE shard covering
    /// both ranges; both become CLOSED. Same commit order as [`Topic::split_shard`].
    pub fn merge_shards(&self, id: &str, adjacent: &str) -> Result<ShardMeta> {
        let (a, b) = (self.shard(id)?, self.shard(adjacent)?);
        let mut info = lock(&self.info);
        let (table, child) = shards::plan_merge(&info.shards, a.id(), b.id(), now_ms() / 1000)?;
        self.reshard(&mut info, table, &[a, b], std::slice::from_ref(&child))?;
        Ok(child)
    }

    fn reshard(&self, info: &mut TopicInfo, table: Vec<ShardMeta>, closing: &[Arc<ShardLog>], children: &[ShardMeta]) -> Result<()> {
        let reopen = |logs: &[Arc<ShardLog>]| logs.iter().for_each(|l| l.reopen_for_writes());
        for (i, log) in closing.iter().enumerate() {
            if let Err(e) = log.close() {
                reopen(&closing[..=i]);
                return Err(e);
            }
        }
        let result = (|| {
            let mut opened = Vec::with_capacity(children.len());
            for c in children {
                let dir = self.dir.join("shards").join(c.id.to_string());
                if dir.exists() {
                    // Left by a reshard that crashed before its commit point: never written.
                    fs::remove_dir_all(&dir).map_err(io("remove stale shard directory", &dir))?;
                }
                opened.push((c.id, Arc::new(ShardLog::open(dir, c.id, self.options)?)));
            }
            log::sync_dir(&self.dir.join("shards"))?;
            let mut next = info.clone();
            next.shards = table;
            next.last_modify_time = now_ms() / 1000;
            write_json_atomic(&self.dir.join("topic.json"), &next)?;
            *info = next;
            Ok(opened)
        })();
        match result {
            Ok(opened) => {
                let mut logs = self.logs.write().unwrap_or_else(|p| p.into_inner());
                logs.extend(opened);
                tracing::info!(project = %self.project, topic = %self.name, closed = ?closing.iter().map(|l| l.id()).collect::<Vec<_>>(),
                    opened = ?children.iter().map(|c| c.id).collect::<Vec<_>>(), "resharded");
                Ok(())
            }
            Err(e) => {
                reopen(closing);
                Err(e)
            }
        }
    }

    /// The schema registry: every registered version, oldest first (TUPLE topics; version 0 is
    /// the schema the topic was created with).
    pub fn schemas(&self) -> Vec<SchemaVersion> {
        lock(&self.info).schemas.clone()
    }

    /// Registers a schema and returns its version id; when `same` says an existing version is
    /// this schema, returns that one instead (registering is idempotent).
    pub fn register_schema(&self, record_schema: &str, same: impl Fn(&str) -> bool) -> Result<i64> {
        let mut id = None;
        {
            let info = lock(&self.info);
            if info.spec.record_type != RecordType::Tuple {
                return Err(DatalogError::InvalidParameter("a BLOB topic has no record schema".into()));
            }
            if let Some(v) = info.schemas.iter().find(|v| same(&v.record_schema)) {
                return Ok(v.version_id);
            }
        }
        self.update_info(|info| {
            let next = info.schemas.iter().map(|v| v.version_id + 1).max().unwrap_or(0);
            info.schemas.push(SchemaVersion { version_id: next, record_schema: record_schema.to_string(), create_time: now_ms() / 1000 });
            id = Some(next);
        })?;
        id.ok_or_else(|| DatalogError::InvalidParameter("schema registration did not happen".into()))
    }

    /// Deletes a registered schema version; the last one cannot be deleted (a TUPLE topic
    /// always has a schema).
    pub fn delete_schema(&self, version_id: i64) -> Result<()> {
        {
            let info = lock(&self.info);
            if !info.schemas.iter().any(|v| v.version_id == version_id) {
                return Err(DatalogError::NoSuchSchema(version_id));
            }
            if info.schemas.len() == 1 {
                return Err(DatalogError::InvalidParameter(format!("schema version {version_id} is the topic's only schema")));
            }
        }
        self.update_info(|info| info.schemas.retain(|v| v.version_id != version_id))
    }

    /// Resolves a cursor request on a shard.
    pub fn cursor(&self, shard: &str, request: CursorRequest) -> Result<CursorPosition> {
        let log = self.shard(shard)?;
        let b = log.bounds();
        let tail = CursorPosition { sequence: b.next, record_time: b.latest_time.unwrap_or(0) };
        let at = |seq: u64| -> Result<CursorPosition> {
            Ok(match log.time_of(seq)? {
                Some(t) => CursorPosition { sequence: seq, record_time: t },
                None => tail,
            })
        };
        match request {
            CursorRequest::Oldest => at(b.oldest),
            CursorRequest::Latest => at(b.next.saturating_sub(1).max(b.oldest)),
            CursorRequest::SystemTime(t) => {
                if t < 0 {
                    return Err(DatalogError::SeekOutOfRange { what: "system time", value: t, oldest: b.oldest, next: b.next });
                }
                Ok(match log.seek_time(t)? {
                    Some((sequence, record_time)) => CursorPosition { sequence, record_time },
                    None => tail,
                })
            }
            CursorRequest::Sequence(s) => {
                if s < b.oldest as i64 || s > b.next as i64 {
                    return Err(DatalogError::SeekOutOfRange { what: "sequence", value: s, oldest: b.oldest, next: b.next });
                }
                at(s as u64)
            }
        }
    }

    /// Deletes segments older than the topic's lifecycle as of `now_ms`; returns how many.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let days = lock(&self.info).spec.lifecycle as i64;
        let cutoff = now_ms.saturating_sub(days.saturating_mul(86_400_000));
        let mut n = 0;
        for shard in self.shards() {
            n += shard.delete_older_than(cutoff)?;
        }
        Ok(n)
    }

    pub fn subscriptions(&self) -> MutexGuard<'_, SubscriptionStore> {
        lock(&self.subscriptions)
    }

    /// Parses shard ids from a request and checks they exist.
    pub fn parse_shards<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<u32>> {
        ids.into_iter().map(|id| self.shard(id).map(|s| s.id())).collect()
    }

    pub fn join_group(&self, sub: &str, session_timeout_ms: i64) -> Result<Joined> {
        let s = self.subscriptions().get(sub)?;
        if s.state == 0 {
            return Err(DatalogError::SubscriptionOffline(sub.to_string()));
        }
        Ok(lock(&self.groups).join(sub, session_timeout_ms, Instant::now()))
    }

    pub fn heartbeat(&self, sub: &str, consumer: &str, read_end: &[u32]) -> Result<Assignment> {
        self.subscriptions().get(sub)?;
        lock(&self.groups).heartbeat(sub, consumer, read_end, &self.shard_ids(), Instant::now())
    }

    pub fn sync_group(&self, sub: &str, consumer: &str, read_end: &[u32]) -> Result<()> {
        self.subscriptions().get(sub)?;
        lock(&self.groups).sync(sub, consumer, read_end, Instant::now())
    }

    pub fn leave_group(&self, sub: &str, consumer: &str) -> Result<()> {
        lock(&self.groups).leave(sub, consumer)
    }

    pub fn delete_subscription(&self, sub: &str) -> Result<()> {
        self.subscriptions().delete(sub)?;
        lock(&self.groups).remove_subscription(sub);
        Ok(())
    }

    /// Forces every shard's written data to disk.
    pub fn sync(&self) -> Result<()> {
        self.shards().iter().try_for_each(|s| s.sync())
    }
}

#[derive(Debug)]
struct ProjectEntry {
    info: ProjectInfo,
    topics: BTreeMap<String, Arc<Topic>>,
}

/// The whole log under one data directory.
#[derive(Debug)]
pub struct Datalog {
    root: PathBuf,
    options: LogOptions,
    projects: RwLock<BTreeMap<String, ProjectEntry>>,
}

const DELETED_PREFIX: &str = ".deleted-";

impl Datalog {
    /// Opens (creating if needed) the log in `root`, recovering every shard.
    pub fn open(root: impl Into<PathBuf>, options: LogOptions) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io("create directory", &root))?;
        let mut projects = BTreeMap::new();
        for pdir in list_dirs(&root)? {
            let Some(pname) = dir_name(&pdir) else { continue };
            let Some(info) = read_json::<ProjectInfo>(&pdir.join("project.json"))? else {
                tracing::warn!(dir = %pdir.display(), "skipping a project directory without project.json (creation interrupted)");
                continue;
            };
            let mut topics = BTreeMap::new();
            for tdir in list_dirs(&pdir)? {
                let Some(tname) = dir_name(&tdir) else { continue };
                let Some(tinfo) = read_json::<TopicInfo>(&tdir.join("topic.json"))? else {
                    tracing::warn!(dir = %tdir.display(), "skipping a topic directory without topic.json (creation interrupted)");
                    continue;
                };
                let topic = Topic::open(&pname, &tname, tdir.clone(), tinfo, options)?;
                topics.insert(tname, Arc::new(topic));
            }
            projects.insert(pname, ProjectEntry { info, topics });
        }
        Ok(Datalog { root, options, projects: RwLock::new(projects) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ProjectEntry>> {
        self.projects.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ProjectEntry>> {
        self.projects.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn list_projects(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    pub fn create_project(&self, name: &str, comment: &str) -> Result<()> {
        check_project_name(name)?;
        let mut projects = self.write();
        if projects.contains_key(name) {
            return Err(DatalogError::ProjectExists(name.into()));
        }
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let now = now_ms() / 1000;
        let info = ProjectInfo { comment: comment.into(), create_time: now, last_modify_time: now };
        write_json_atomic(&dir.join("project.json"), &info)?;
        log::sync_dir(&self.root)?;
        projects.insert(name.into(), ProjectEntry { info, topics: BTreeMap::new() });
        Ok(())
    }

    pub fn get_project(&self, name: &str) -> Result<ProjectInfo> {
        self.read().get(name).map(|p| p.info.clone()).ok_or_else(|| DatalogError::NoSuchProject(name.into()))
    }

    pub fn update_project(&self, name: &str, comment: &str) -> Result<()> {
        let mut projects = self.write();
        let p = projects.get_mut(name).ok_or_else(|| DatalogError::NoSuchProject(name.into()))?;
        let mut info = p.info.clone();
        info.comment = comment.into();
        info.last_modify_time = now_ms() / 1000;
        write_json_atomic(&self.root.join(name).join("project.json"), &info)?;
        p.info = info;
        Ok(())
    }

    /// Deletes an empty project (topics must be deleted first, as on the service).
    pub fn delete_project(&self, name: &str) -> Result<()> {
        let mut projects = self.write();
        let p = projects.get(name).ok_or_else(|| DatalogError::NoSuchProject(name.into()))?;
        if !p.topics.is_empty() {
            return Err(DatalogError::ProjectNotEmpty(name.into()));
        }
        remove_dir_atomically(&self.root, name)?;
        projects.remove(name);
        Ok(())
    }

    pub fn list_topics(&self, project: &str) -> Result<Vec<String>> {
        self.read().get(project).map(|p| p.topics.keys().cloned().collect()).ok_or_else(|| DatalogError::NoSuchProject(project.into()))
    }

    pub fn create_topic(&self, project: &str, name: &str, spec: TopicSpec) -> Result<Arc<Topic>> {
        check_topic_name(name)?;
        if spec.shard_count == 0 || spec.shard_count > MAX_SHARDS {
            return Err(DatalogError::InvalidParameter(format!("shard count {} is not in 1..={MAX_SHARDS}", spec.shard_count)));
        }
        if spec.lifecycle == 0 {
            return Err(DatalogError::InvalidParameter("lifecycle must be at least 1 day".into()));
        }
        if spec.record_type == RecordType::Tuple && spec.record_schema.as_deref().is_none_or(str::is_empty) {
            return Err(DatalogError::InvalidParameter("a TUPLE topic needs a RecordSchema".into()));
        }
        let mut projects = self.write();
        let p = projects.get_mut(project).ok_or_else(|| DatalogError::NoSuchProject(project.into()))?;
        if p.topics.contains_key(name) {
            return Err(DatalogError::TopicExists { project: project.into(), topic: name.into() });
        }
        let pdir = self.root.join(project);
        let dir = pdir.join(name);
        if dir.exists() {
            // Left by an interrupted creation (no topic.json): start clean.
            fs::remove_dir_all(&dir).map_err(io("remove stale directory", &dir))?;
        }
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let now = now_ms() / 1000;
        let table = shards::initial_table(spec.shard_count);
        let schemas = spec.record_schema.iter().map(|s| SchemaVersion { version_id: 0, record_schema: s.clone(), create_time: now }).collect();
        let info = TopicInfo { spec, create_time: now, last_modify_time: now, shards: table, schemas };
        let topic = Arc::new(Topic::open(project, name, dir.clone(), info.clone(), self.options)?);
        // topic.json last: it is the commit point of the creation.
        write_json_atomic(&dir.join("topic.json"), &info)?;
        log::sync_dir(&pdir)?;
        p.topics.insert(name.into(), topic.clone());
        Ok(topic)
    }

    pub fn topic(&self, project: &str, name: &str) -> Result<Arc<Topic>> {
        let projects = self.read();
        let p = projects.get(project).ok_or_else(|| DatalogError::NoSuchProject(project.into()))?;
        p.topics.get(name).cloned().ok_or_else(|| DatalogError::NoSuchTopic { project: project.into(), topic: name.into() })
    }

    pub fn update_topic(&self, project: &str, name: &str, lifecycle: Option<u32>, comment: Option<&str>) -> Result<()> {
        if lifecycle == Some(0) {
            return Err(DatalogError::InvalidParameter("lifecycle must be at least 1 day".into()));
        }
        self.topic(project, name)?.update_info(|info| {
            if let Some(l) = lifecycle {
                info.spec.lifecycle = l;
            }
            if let Some(c) = comment {
                info.spec.comment = c.into();
            }
        })
    }

    pub fn delete_topic(&self, project: &str, name: &str) -> Result<()> {
        let mut projects = self.write();
        let p = projects.get_mut(project).ok_or_else(|| DatalogError::NoSuchProject(project.into()))?;
        if !p.topics.contains_key(name) {
            return Err(DatalogError::NoSuchTopic { project: project.into(), topic: name.into() });
        }
        remove_dir_atomically(&self.root.join(project), name)?;
        p.topics.remove(name);
        Ok(())
    }

    /// Every topic, for retention and sync sweeps.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read().values().flat_map(|p| p.topics.values().cloned()).collect()
    }

    /// Applies retention to every topic as of now; returns segments deleted.
    pub fn enforce_retention(&self) -> Result<usize> {
        let now = now_ms();
        self.topics().iter().try_fold(0, |n, t| Ok(n + t.enforce_retention(now)?))
    }

    /// Forces written data of every shard to disk (for [`FsyncPolicy::Interval`]).
    pub fn sync_all(&self) -> Result<()> {
        self.topics().iter().try_for_each(|t| t.sync())
    }
}

fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(DELETED_PREFIX) {
            // A deletion interrupted after its rename: finish it.
            let _ = fs::remove_dir_all(&path);
            continue;
        }
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn dir_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Renames the directory out of the namespace first (one atomic step), then removes it, so a
/// crash never leaves a half-deleted project or topic that open would load.
fn remove_dir_atomically(parent: &Path, name: &str) -> Result<()> {
    let from = parent.join(name);
    let to = parent.join(format!("{DELETED_PREFIX}{name}-{}", now_ms()));
    fs::rename(&from, &to).map_err(io("rename for deletion", &from))?;
    log::sync_dir(parent)?;
    fs::remove_dir_all(&to).map_err(io("delete", &to))
}
