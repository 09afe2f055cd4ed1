//! A DataHub client (JSON protocol): signed requests (§3), LZ4/zlib request bodies, typed
//! errors, and retries with jittered exponential backoff for the errors worth retrying.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

pub use cdc_datalog::{CursorRequest as CursorType, RecordType, TopicSpec};

use crate::codec::{self, CodecError, Compression};
use crate::model::RecordData;
use crate::sign;

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service answered with an error body.
    #[error("{operation}: HTTP {status} {code}: {message} (request id {request_id:?})")]
    Api { operation: &'static str, status: u16, code: String, message: String, request_id: String },
    /// Connection or transfer failed.
    #[error("{operation}: transport: {source}")]
    Transport { operation: &'static str, source: reqwest::Error },
    /// The answer could not be understood.
    #[error("{operation}: unexpected response: {reason}")]
    Decode { operation: &'static str, reason: String },
    #[error("{operation}: {source}")]
    Codec { operation: &'static str, source: CodecError },
}

impl ClientError {
    /// DataHub's error code, for `Api` errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth retrying: transport failures, 5xx, throttling and "in process" answers. Client
    /// errors (bad parameters, missing resources, auth) are not: repeating cannot fix them.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, code, .. } => {
                *status >= 500 || *status == 429 || matches!(code.as_str(), "LimitExceeded" | "InternalServerError" | "ConsumerGroupInProcess" | "ServiceUnavailable")
            }
            ClientError::Decode { .. } | ClientError::Codec { .. } => false,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Builder: `new(endpoint)`, then optional `with_*`.
#[derive(Debug, Clone)]
pub struct DatahubClientBuilder {
    endpoint: String,
    access_id: String,
    access_key: String,
    security_token: Option<String>,
    compression: Compression,
    max_retries: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    timeout: Duration,
}

impl DatahubClientBuilder {
    pub fn new(endpoint: impl Into<String>) -> Self {
        DatahubClientBuilder {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            access_id: String::new(),
            access_key: String::new(),
            security_token: None,
            compression: Compression::Lz4,
            max_retries: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(120),
        }
    }
    pub fn with_credentials(mut self, access_id: impl Into<String>, access_key: impl Into<String>) -> Self {
        self.access_id = access_id.into();
        self.access_key = access_key.into();
        self
    }
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }
    /// Compression of PutRecords/GetRecords bodies (default LZ4, like pydatahub).
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    /// Retries after the first attempt for retryable errors (`datahub.maxRetries`).
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max.max(base);
        self
    }
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn build(self) -> Result<DatahubClient> {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| ClientError::Transport { operation: "building the HTTP client", source })?;
        Ok(DatahubClient { http, cfg: self, jitter: AtomicU64::new(seed()), server_kind: AtomicU8::new(SERVER_UNKNOWN) })
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
}

/// A DataHub client; cheap to share behind an `Arc` (one connection pool).
#[derive(Debug)]
pub struct DatahubClient {
    http: reqwest::Client,
    cfg: DatahubClientBuilder,
    jitter: AtomicU64,
    /// What the last answer said the server is (`SERVER_*`), from `x-datahub-server`.
    server_kind: AtomicU8,
}

const SERVER_UNKNOWN: u8 = 0;
const SERVER_LOCAL: u8 = 1;
const SERVER_OTHER: u8 = 2;

/// A subscription as ListSubscription returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub sub_id: String,
    pub comment: String,
    /// 0 = INACTIVE (offline), 1 = ACTIVE.
    pub state: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    pub comment: String,
    pub create_time: i64,
    pub last_modify_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub state: String,
    pub begin_hash_key: String,
    pub end_hash_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub cursor: String,
    pub record_time: i64,
    pub sequence: i64,
}

/// A record to put; route it with `shard_id`, `hash_key` or `partition_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecord {
    pub data: RecordData,
    pub shard_id: Option<String>,
    pub hash_key: Option<String>,
    pub partition_key: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

impl PutRecord {
    pub fn new(data: RecordData) -> Self {
        PutRecord { data, shard_id: None, hash_key: None, partition_key: None, attributes: BTreeMap::new() }
    }
    pub fn with_shard(mut self, shard: impl Into<String>) -> Self {
        self.shard_id = Some(shard.into());
        self
    }
    pub fn with_partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }
    pub fn with_attribute(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attributes.insert(k.into(), v.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    pub index: usize,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence: i64,
    pub system_time: i64,
    pub data: RecordData,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecordsResult {
    pub next_cursor: String,
    pub start_sequence: i64,
    pub records: Vec<Record>,
}

/// A subscription offset as `open`/`get` return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionOffset {
    pub sequence: i64,
    pub timestamp: i64,
    pub version: i64,
    /// As the server sent it (number or string), needed to commit.
    pub session_id: Option<String>,
}

fn decode_err(operation: &'static str, reason: impl Into<String>) -> ClientError {
    ClientError::Decode { operation, reason: reason.into() }
}

fn get_i64(operation: &'static str, v: &Value, key: &str) -> Result<i64> {
    v.get(key).and_then(Value::as_i64).ok_or_else(|| decode_err(operation, format!("{key} missing or not an integer")))
}

fn get_str(operation: &'static str, v: &Value, key: &str) -> Result<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| decode_err(operation, format!("{key} missing or not a string")))
}

impl DatahubClient {
    pub fn builder(endpoint: impl Into<String>) -> DatahubClientBuilder {
        DatahubClientBuilder::new(endpoint)
    }

    /// The endpoint URL (without a trailing `/`).
    pub fn endpoint(&self) -> &str {
        &self.cfg.endpoint
    }

    /// Whether the server is our datahub-local (it marks every answer, errors included, with
    /// `x-datahub-server: datahub-local`); `None` before the first answer.
    pub fn is_datahub_local(&self) -> Option<bool> {
        match self.server_kind.load(Ordering::Relaxed) {
            SERVER_LOCAL => Some(true),
            SERVER_OTHER => Some(false),
            _ => None,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        // Full jitter: uniform in [0, min(max, base * 2^attempt)], so retrying clients spread out.
        let cap = self.cfg.base_backoff.saturating_mul(1u32 << attempt.min(16)).min(self.cfg.max_backoff);
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        Duration::from_nanos(x % (cap.as_nanos() as u64).max(1))
    }

    /// Sends one operation with retries; returns the (decompressed) body.
    async fn call(&self, operation: &'static str, method: Method, path: &str, body: Option<Value>, compress: bool) -> Result<Vec<u8>> {
        let raw = body.map(|b| b.to_string().into_bytes());
        let mut attempt = 0;
        loop {
            match self.call_once(operation, method.clone(), path, raw.as_deref(), compress).await {
                Err(e) if e.is_retryable() && attempt < self.cfg.max_retries => {
                    let wait = self.backoff(attempt);
                    tracing::debug!(operation, attempt, ?wait, error = %e, "retrying DataHub request");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, operation: &'static str, method: Method, path: &str, raw: Option<&[u8]>, compress: bool) -> Result<Vec<u8>> {
        let content_type = "application/json";
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let mut dh: Vec<(&str, String)> = vec![("x-datahub-client-version", "1.1".into())];
        if let Some(t) = &self.cfg.security_token {
            dh.push(("x-datahub-security-token", t.clone()));
        }
        let mut content_encoding = None;
        let body = match raw {
            Some(raw) if compress && self.cfg.compression != Compression::None => {
                let z = codec::compress(self.cfg.compression, raw);
                // Only worth sending compressed when it is smaller (pydatahub's rule).
                if z.len() < raw.len() {
                    content_encoding = Some(self.cfg.compression.name());
                    dh.push(("x-datahub-content-raw-size", raw.len().to_string()));
                    z
                } else {
                    raw.to_vec()
                }
            }
            Some(raw) => raw.to_vec(),
            None => Vec::new(),
        };
        let (path_only, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let canonical = sign::canonical_string(method.as_str(), content_type, &date, dh.iter().map(|(k, v)| (*k, v.as_str())), path_only, query);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.cfg.endpoint))
            .header("Content-Type", content_type)
            .header("Date", &date)
            .header("Accept-Encoding", if compress { self.cfg.compression.name() } else { "" })
            .header("Authorization", sign::authorization(&self.cfg.access_id, &self.cfg.access_key, &canonical));
        for (k, v) in &dh {
            req = req.header(*k, v);
        }
        if let Some(enc) = content_encoding {
            req = req.header("Content-Encoding", enc);
        }
        if raw.is_some() {
            req = req.body(body);
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport { operation, source })?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let request_id = header("x-datahub-request-id").unwrap_or_default();
        let kind = if header(crate::server::SERVER_HEADER).as_deref() == Some(crate::server::SERVER_NAME) { SERVER_LOCAL } else { SERVER_OTHER };
        self.server_kind.store(kind, Ordering::Relaxed);
        let encoding = header("content-encoding");
        let raw_size = header("x-datahub-content-raw-size").and_then(|s| s.parse().ok());
        let bytes = resp.bytes().await.map_err(|source| ClientError::Transport { operation, source })?;
        let bytes = match encoding.filter(|e| !e.is_empty()) {
            Some(enc) => codec::decompress(&enc, raw_size, &bytes, crate::server::MAX_RAW_BYTES).map_err(|source| ClientError::Codec { operation, source })?,
            None => bytes.to_vec(),
        };
        if status >= 400 {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(ClientError::Api {
                operation,
                status,
                code: v.get("ErrorCode").and_then(Value::as_str).unwrap_or("UnknownError").to_string(),
                message: v.get("ErrorMessage").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
                request_id,
            });
        }
        Ok(bytes)
    }

    async fn call_json(&self, operation: &'static str, method: Method, path: &str, body: Option<Value>, compress: bool) -> Result<Value> {
        let bytes = self.call(operation, method, path, body, compress).await?;
        serde_json::from_slice(&bytes).map_err(|e| decode_err(operation, format!("body is not JSON: {e}")))
    }

    pub async fn list_projects(&self) -> Result<Vec<String>> {
        const OP: &str = "ListProject";
        let v = self.call_json(OP, Method::GET, "/projects", None, false).await?;
        string_list(OP, &v, "ProjectNames")
    }

    pub async fn create_project(&self, project: &str, comment: &str) -> Result<()> {
        self.call("CreateProject", Method::POST, &format!("/projects/{project}"), Some(json!({"Comment": comment})), false).await.map(drop)
    }

    pub async fn get_project(&self, project: &str) -> Result<ProjectInfo> {
        const OP: &str = "GetProject";
        let v = self.call_json(OP, Method::GET, &format!("/projects/{project}"), None, false).await?;
        Ok(ProjectInfo { comment: get_str(OP, &v, "Comment")?, create_time: get_i64(OP, &v, "CreateTime")?, last_modify_time: get_i64(OP, &v, "LastModifyTime")? })
    }

    pub async fn delete_project(&self, project: &str) -> Result<()> {
        self.call("DeleteProject", Method::DELETE, &format!("/projects/{project}"), None, false).await.map(drop)
    }

    pub async fn create_topic(&self, project: &str, topic: &str, spec: &TopicSpec) -> Result<()> {
        let mut body = json!({"ShardCount": spec.shard_count, "Lifecycle": spec.lifecycle,
            "RecordType": match spec.record_type { RecordType::Blob => "BLOB", RecordType::Tuple => "TUPLE" }, "Comment": spec.comment});
        if let Some(s) = &spec.record_schema {
            body["RecordSchema"] = s.clone().into();
        }
        if let Some(m) = &spec.expand_mode {
            body["ExpandMode"] = m.clone().into();
        }
        self.call("CreateTopic", Method::POST, &format!("/projects/{project}/topics/{topic}"), Some(body), false).await.map(drop)
    }

    /// The topic as JSON (`RecordType`, `RecordSchema`, `ShardCount`, `Lifecycle`, …).
    pub async fn get_topic(&self, project: &str, topic: &str) -> Result<Value> {
        self.call_json("GetTopic", Method::GET, &format!("/projects/{project}/topics/{topic}"), None, false).await
    }

    pub async fn list_topics(&self, project: &str) -> Result<Vec<String>> {
        const OP: &str = "ListTopic";
        let v = self.call_json(OP, Method::GET, &format!("/projects/{project}/topics"), None, false).await?;
        string_list(OP, &v, "TopicNames")
    }

    pub async fn delete_topic(&self, project: &str, topic: &str) -> Result<()> {
        self.call("DeleteTopic", Method::DELETE, &format!("/projects/{project}/topics/{topic}"), None, false).await.map(drop)
    }

    pub async fn list_shards(&self, project: &str, topic: &str) -> Result<Vec<ShardInfo>> {
        const OP: &str = "ListShard";
        let v = self.call_json(OP, Method::GET, &format!("/projects/{project}/topics/{topic}/shards"), None, false).await?;
        let shards = v.get("Shards").and_then(Value::as_array).ok_or_else(|| decode_err(OP, "Shards missing"))?;
        shards
            .iter()
            .map(|s| {
                Ok(ShardInfo {
                    shard_id: get_str(OP, s, "ShardId")?,
                    state: get_str(OP, s, "State")?,
                    begin_hash_key: get_str(OP, s, "BeginHashKey").unwrap_or_default(),
                    end_hash_key: get_str(OP, s, "EndHashKey").unwrap_or_default(),
                })
            })
            .collect()
    }

    pub async fn get_cursor(&self, project: &str, topic: &str, shard: &str, kind: CursorType) -> Result<Cursor> {
        const OP: &str = "GetCursor";
        let body = match kind {
            CursorType::Oldest => json!({"Action": "cursor", "Type": "OLDEST"}),
            CursorType::Latest => json!({"Action": "cursor", "Type": "LATEST"}),
            CursorType::SystemTime(t) => json!({"Action": "cursor", "Type": "SYSTEM_TIME", "SystemTime": t}),
            CursorType::Sequence(s) => json!({"Action": "cursor", "Type": "SEQUENCE", "Sequence": s}),
        };
        let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}/shards/{shard}"), Some(body), false).await?;
        Ok(Cursor { cursor: get_str(OP, &v, "Cursor")?, record_time: get_i64(OP, &v, "RecordTime")?, sequence: get_i64(OP, &v, "Sequence")? })
    }

    /// Puts records; returns those the service rejected (empty = all written).
    pub async fn put_records(&self, project: &str, topic: &str, records: &[PutRecord]) -> Result<Vec<FailedRecord>> {
        const OP: &str = "PutRecords";
        let records: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut v = json!({"Data": r.data.to_json(), "Sequence": 0, "SystemTime": 0, "BatchIndex": 0});
                if let Some(s) = &r.shard_id {
                    v["ShardId"] = s.clone().into();
                }
                if let Some(h) = &r.hash_key {
                    v["HashKey"] = h.clone().into();
                }
                if let Some(p) = &r.partition_key {
                    v["PartitionKey"] = p.clone().into();
                }
                if !r.attributes.is_empty() {
                    v["Attributes"] = json!(r.attributes);
                }
                v
            })
            .collect();
        let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}/shards"), Some(json!({"Action": "pub", "Records": records})), true).await?;
        let failed = v.get("FailedRecords").and_then(Value::as_array).cloned().unwrap_or_default();
        failed
            .iter()
            .map(|f| Ok(FailedRecord { index: get_i64(OP, f, "Index")? as usize, code: get_str(OP, f, "ErrorCode")?, message: get_str(OP, f, "ErrorMessage").unwrap_or_default() }))
            .collect()
    }

    pub async fn get_records(&self, project: &str, topic: &str, shard: &str, cursor: &str, limit: u32) -> Result<GetRecordsResult> {
        const OP: &str = "GetRecords";
        let body = json!({"Action": "sub", "Cursor": cursor, "Limit": limit});
        let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}/shards/{shard}"), Some(body), true).await?;
        let records = v.get("Records").and_then(Value::as_array).ok_or_else(|| decode_err(OP, "Records missing"))?;
        let records = records
            .iter()
            .map(|r| {
                let attributes = r
                    .get("Attributes")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
                    .unwrap_or_default();
                Ok(Record {
                    sequence: get_i64(OP, r, "Sequence")?,
                    system_time: get_i64(OP, r, "SystemTime")?,
                    data: RecordData::from_json(r.get("Data").unwrap_or(&Value::Null)).map_err(|e| decode_err(OP, e))?,
                    attributes,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GetRecordsResult { next_cursor: get_str(OP, &v, "NextCursor")?, start_sequence: get_i64(OP, &v, "StartSeq")?, records })
    }

    pub async fn create_subscription(&self, project: &str, topic: &str, comment: &str) -> Result<String> {
        const OP: &str = "CreateSubscription";
        let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}/subscriptions"), Some(json!({"Action": "create", "Comment": comment})), false).await?;
        get_str(OP, &v, "SubId")
    }

    /// Every subscription of the topic whose id or comment contains `search` (all when empty).
    pub async fn list_subscriptions(&self, project: &str, topic: &str, search: &str) -> Result<Vec<SubscriptionInfo>> {
        const OP: &str = "ListSubscription";
        const PAGE: i64 = 100;
        let mut out = Vec::new();
        for page in 1.. {
            let body = json!({"Action": "list", "PageIndex": page, "PageSize": PAGE, "Search": search});
            let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}/subscriptions"), Some(body), false).await?;
            let items = v.get("Subscriptions").and_then(Value::as_array).ok_or_else(|| decode_err(OP, "Subscriptions missing"))?;
            for s in items {
                out.push(SubscriptionInfo {
                    sub_id: get_str(OP, s, "SubId")?,
                    comment: get_str(OP, s, "Comment").unwrap_or_default(),
                    state: s.get("State").and_then(Value::as_i64).unwrap_or(1),
                });
            }
            let total = v.get("TotalCount").and_then(Value::as_i64).unwrap_or(0);
            if items.is_empty() || page * PAGE >= total {
                break;
            }
        }
        Ok(out)
    }

    async fn offsets_call(&self, operation: &'static str, project: &str, topic: &str, sub: &str, body: Value) -> Result<BTreeMap<String, SubscriptionOffset>> {
        let v = self.call_json(operation, Method::POST, &format!("/projects/{project}/topics/{topic}/subscriptions/{sub}/offsets"), Some(body), false).await?;
        let map = v.get("Offsets").and_then(Value::as_object).ok_or_else(|| decode_err(operation, "Offsets missing"))?;
        Ok(map
            .iter()
            .map(|(k, o)| {
                let session_id = match o.get("SessionId") {
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                };
                let int = |key: &str, default: i64| o.get(key).and_then(Value::as_i64).unwrap_or(default);
                (k.clone(), SubscriptionOffset { sequence: int("Sequence", -1), timestamp: int("Timestamp", -1), version: int("Version", 0), session_id })
            })
            .collect())
    }

    /// Starts a consumption session on the shards and returns their offsets (`open`).
    pub async fn open_offsets(&self, project: &str, topic: &str, sub: &str, shards: &[&str]) -> Result<BTreeMap<String, SubscriptionOffset>> {
        self.offsets_call("InitAndGetSubscriptionOffset", project, topic, sub, json!({"Action": "open", "ShardIds": shards})).await
    }

    pub async fn get_offsets(&self, project: &str, topic: &str, sub: &str, shards: &[&str]) -> Result<BTreeMap<String, SubscriptionOffset>> {
        self.offsets_call("GetSubscriptionOffset", project, topic, sub, json!({"Action": "get", "ShardIds": shards})).await
    }

    /// Commits offsets; each must carry the version and session from `open_offsets`.
    pub async fn commit_offsets(&self, project: &str, topic: &str, sub: &str, offsets: &BTreeMap<String, SubscriptionOffset>) -> Result<()> {
        let map: serde_json::Map<String, Value> = offsets
            .iter()
            .map(|(k, o)| {
                let session: Value = match &o.session_id {
                    Some(s) => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| s.clone().into()),
                    None => Value::Null,
                };
                (k.clone(), json!({"Sequence": o.sequence, "Timestamp": o.timestamp, "Version": o.version, "SessionId": session}))
            })
            .collect();
        let path = format!("/projects/{project}/topics/{topic}/subscriptions/{sub}/offsets");
        self.call("UpdateSubscriptionOffset", Method::PUT, &path, Some(json!({"Action": "commit", "Offsets": map})), false).await.map(drop)
    }
}

fn string_list(operation: &'static str, v: &Value, key: &str) -> Result<Vec<String>> {
    let list = v.get(key).and_then(Value::as_array).ok_or_else(|| decode_err(operation, format!("{key} missing")))?;
    Ok(list.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let api = |status: u16, code: &str| ClientError::Api { operation: "x", status, code: code.into(), message: String::new(), request_id: String::new() };
        assert!(api(500, "InternalServerError").is_retryable());
        assert!(api(403, "LimitExceeded").is_retryable());
        assert!(api(503, "Whatever").is_retryable());
        assert!(!api(404, "NoSuchTopic").is_retryable());
        assert!(!api(400, "InvalidParameter").is_retryable());
        assert!(!api(401, "Unauthorized").is_retryable());
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let c = DatahubClientBuilder::new("http://127.0.0.1:1").with_backoff(Duration::from_millis(10), Duration::from_millis(50)).build().unwrap();
        let waits: Vec<Duration> = (0..20).map(|a| c.backoff(a)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(50)));
        assert!(waits.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }
}
