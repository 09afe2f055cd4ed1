//! A DataHub client: signed requests (§3), LZ4/zlib request bodies, typed errors, and retries
//! with jittered exponential backoff for the errors worth retrying.
//!
//! Records travel in the [`Protocol`] chosen on the builder — JSON (the default), PB or batch
//! (§4) — while every other call is JSON, as in pydatahub. Batch mode needs each TUPLE
//! record's schema and its registered version id: the client lists the topic's schemas
//! (ListSchema) once per topic and picks, per record, the newest version its values fit.
//! HTTPS verifies the server certificate unless `with_ssl_verify(false)` (`datahub.sslVerify`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

pub use cdc_datalog::{CursorRequest as CursorType, RecordType, TopicSpec};

use crate::batch::{self, EncodeRecord, Layout};
use crate::codec::{self, CodecError, Compression};
use crate::model::RecordData;
use crate::pb;
use crate::schema::RecordSchema;
use crate::sign;

/// How records travel (§4). Metadata calls are JSON whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// JSON bodies (pydatahub's `DataHub()` default).
    #[default]
    Json,
    /// Protobuf in a DHUB frame (`application/x-protobuf`).
    Pb,
    /// Binary batches (`application/x-binary`): writes go to one shard per request
    /// (PutRecordsByShard), reads return batches whose records share a sequence.
    Batch,
}

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service answered with an error body.
    #[error("{operation}: HTTP {status} {code}: {message} (request id {request_id:?})")]
    Api { operation: &'static str, status: u16, code: String, message: String, request_id: String },
    /// Connection or transfer failed.
    #[error("{operation}: transport: {}", chain(source))]
    Transport { operation: &'static str, source: reqwest::Error },
    /// The answer could not be understood.
    #[error("{operation}: unexpected response: {reason}")]
    Decode { operation: &'static str, reason: String },
    #[error("{operation}: {source}")]
    Codec { operation: &'static str, source: CodecError },
    /// The TLS handshake failed: the server's certificate was refused (unknown CA, wrong
    /// name, expired) or TLS is not spoken there. Retrying cannot help.
    #[error("{operation}: TLS with {endpoint} failed: {reason} (trust the server's CA with a CA certificate, or set datahub.sslVerify=false)")]
    Tls { operation: &'static str, endpoint: String, reason: String },
    /// The caller's input cannot be sent as asked (e.g. a batch record without a shard).
    #[error("{operation}: {reason}")]
    Invalid { operation: &'static str, reason: String },
}

/// `reqwest::Error`'s own message hides its cause ("error sending request"); this shows it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
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
            ClientError::Decode { .. } | ClientError::Codec { .. } | ClientError::Tls { .. } | ClientError::Invalid { .. } => false,
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
    protocol: Protocol,
    ssl_verify: bool,
    /// PEM CA certificates trusted in addition to the built-in and system roots.
    extra_roots: Vec<Vec<u8>>,
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
            protocol: Protocol::Json,
            ssl_verify: true,
            extra_roots: Vec::new(),
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
    /// How records travel (default JSON).
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }
    /// Verify the server's certificate over HTTPS (`datahub.sslVerify`, default true).
    pub fn with_ssl_verify(mut self, verify: bool) -> Self {
        self.ssl_verify = verify;
        self
    }
    /// Trusts the CA certificate(s) in this PEM as well (a private CA, e.g. in front of
    /// datahub-local).
    pub fn with_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }
    pub fn build(self) -> Result<DatahubClient> {
        let invalid = |reason: String| ClientError::Invalid { operation: "building the HTTP client", reason };
        let tls = crate::tls::client_config(self.ssl_verify, &self.extra_roots).map_err(invalid)?;
        if !self.ssl_verify && self.endpoint.starts_with("https://") {
            tracing::warn!(endpoint = %self.endpoint, "DataHub server certificate verification is off (datahub.sslVerify=false)");
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(5))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|source| ClientError::Transport { operation: "building the HTTP client", source })?;
        Ok(DatahubClient {
            http,
            cfg: self,
            jitter: AtomicU64::new(seed()),
            server_kind: AtomicU8::new(SERVER_UNKNOWN),
            topics: Mutex::new(HashMap::new()),
        })
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
}

/// The body kind of a request: its Content-Type and, for PB/batch records, the
/// `x-datahub-request-action` (`pub`/`sub`) that says what it is.
#[derive(Debug, Clone, Copy)]
struct Content {
    content_type: &'static str,
    action: Option<&'static str>,
}

impl Content {
    const JSON: Content = Content { content_type: "application/json", action: None };
    fn pb(action: &'static str) -> Self {
        Content { content_type: "application/x-protobuf", action: Some(action) }
    }
    fn batch(action: &'static str) -> Self {
        Content { content_type: "application/x-binary", action: Some(action) }
    }
}

/// A DataHub client; cheap to share behind an `Arc` (one connection pool).
#[derive(Debug)]
pub struct DatahubClient {
    http: reqwest::Client,
    cfg: DatahubClientBuilder,
    jitter: AtomicU64,
    /// What the last answer said the server is (`SERVER_*`), from `x-datahub-server`.
    server_kind: AtomicU8,
    /// Per `project/topic`: record type and registered schemas, for PB and batch records.
    topics: Mutex<HashMap<String, Arc<TopicLayout>>>,
}

/// What the client needs to know of a topic to encode and decode PB and batch records.
#[derive(Debug)]
struct TopicLayout {
    record_type: RecordType,
    /// `(version id, schema)`, oldest first.
    schemas: Vec<(i32, RecordSchema)>,
}

impl TopicLayout {
    fn schema(&self, version: i32) -> Option<&RecordSchema> {
        self.schemas.iter().find(|(v, _)| *v == version).map(|(_, s)| s)
    }
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

/// A shard as ListShard describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardInfo {
    pub shard_id: String,
    /// `ACTIVE`, `CLOSED` (split or merged away: readable to its end), `OPENING`, `CLOSING`.
    pub state: String,
    pub begin_hash_key: String,
    pub end_hash_key: String,
    /// The shard(s) this one was split or merged from; read them to their end first to keep
    /// per-key order.
    pub parent_shard_ids: Vec<String>,
    /// Neighbouring ACTIVE shards by hash range, `None` when there is none (the service's
    /// `4294967295`).
    pub left_shard_id: Option<String>,
    pub right_shard_id: Option<String>,
    /// When the shard was closed (the service's unit; datahub-local: epoch seconds).
    pub closed_time: Option<i64>,
}

impl ShardInfo {
    pub fn is_active(&self) -> bool {
        self.state == "ACTIVE"
    }
    pub fn is_closed(&self) -> bool {
        self.state == "CLOSED"
    }
}

/// A shard created by a split or a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShard {
    pub shard_id: String,
    pub begin_hash_key: String,
    pub end_hash_key: String,
}

/// A registered version of a topic's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersionInfo {
    pub version_id: i64,
    /// The RecordSchema JSON string.
    pub record_schema: String,
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
    /// The record's sequence. In batch mode every record of one batch carries the batch's
    /// sequence and is told apart by `batch_index` (on datahub-local record `i` of a batch
    /// is also readable alone at `sequence + i`).
    pub sequence: i64,
    /// Position inside its batch (batch mode); 0 in JSON and PB modes.
    pub batch_index: u32,
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
    /// Position inside the batch at `sequence` (batch-mode readers); 0 otherwise.
    pub batch_index: i64,
}

pub(crate) fn decode_err(operation: &'static str, reason: impl Into<String>) -> ClientError {
    ClientError::Decode { operation, reason: reason.into() }
}

pub(crate) fn get_i64(operation: &'static str, v: &Value, key: &str) -> Result<i64> {
    v.get(key).and_then(Value::as_i64).ok_or_else(|| decode_err(operation, format!("{key} missing or not an integer")))
}

pub(crate) fn get_str(operation: &'static str, v: &Value, key: &str) -> Result<String> {
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

    /// Sends one JSON operation with retries; returns the (decompressed) body.
    pub(crate) async fn call(&self, operation: &'static str, method: Method, path: &str, body: Option<Value>, compress: bool) -> Result<Vec<u8>> {
        let raw = body.map(|b| b.to_string().into_bytes());
        self.call_raw(operation, method, path, raw.as_deref(), Content::JSON, compress).await
    }

    /// Sends one operation with any body with retries; returns the (decompressed) body.
    async fn call_raw(&self, operation: &'static str, method: Method, path: &str, raw: Option<&[u8]>, content: Content, compress: bool) -> Result<Vec<u8>> {
        let mut attempt = 0;
        loop {
            match self.call_once(operation, method.clone(), path, raw, content, compress).await {
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

    async fn call_once(&self, operation: &'static str, method: Method, path: &str, raw: Option<&[u8]>, content: Content, compress: bool) -> Result<Vec<u8>> {
        let content_type = content.content_type;
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let mut dh: Vec<(&str, String)> = vec![("x-datahub-client-version", "1.1".into())];
        if let Some(t) = &self.cfg.security_token {
            dh.push(("x-datahub-security-token", t.clone()));
        }
        if let Some(action) = content.action {
            dh.push(("x-datahub-request-action", action.into()));
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
        let resp = req.send().await.map_err(|source| match crate::tls::tls_failure(&source) {
            Some(reason) => ClientError::Tls { operation, endpoint: self.cfg.endpoint.clone(), reason },
            None => ClientError::Transport { operation, source },
        })?;
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

    pub(crate) async fn call_json(&self, operation: &'static str, method: Method, path: &str, body: Option<Value>, compress: bool) -> Result<Value> {
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
        /// The service's "no such shard" in LeftShardId/RightShardId.
        const NONE: &str = "4294967295";
        let v = self.call_json(OP, Method::GET, &format!("/projects/{project}/topics/{topic}/shards"), None, false).await?;
        let shards = v.get("Shards").and_then(Value::as_array).ok_or_else(|| decode_err(OP, "Shards missing"))?;
        let id = |x: &Value| x.as_str().map(str::to_string).or_else(|| x.as_i64().map(|n| n.to_string()));
        shards
            .iter()
            .map(|s| {
                let neighbour = |key: &str| s.get(key).and_then(id).filter(|v| !v.is_empty() && v != NONE);
                Ok(ShardInfo {
                    shard_id: get_str(OP, s, "ShardId")?,
                    state: get_str(OP, s, "State")?,
                    begin_hash_key: get_str(OP, s, "BeginHashKey").unwrap_or_default(),
                    end_hash_key: get_str(OP, s, "EndHashKey").unwrap_or_default(),
                    parent_shard_ids: s.get("ParentShardIds").and_then(Value::as_array).map(|a| a.iter().filter_map(id).collect()).unwrap_or_default(),
                    left_shard_id: neighbour("LeftShardId"),
                    right_shard_id: neighbour("RightShardId"),
                    // `""` while open; a number (or numeric string) once closed.
                    closed_time: s.get("ClosedTime").and_then(|t| t.as_i64().or_else(|| t.as_str().and_then(|t| t.parse().ok()))),
                })
            })
            .collect()
    }

    /// Splits an ACTIVE shard at `split_key` (32 hex digits; `None`: the middle of its range,
    /// as pydatahub computes it). The shard becomes CLOSED; returns the two new shards.
    pub async fn split_shard(&self, project: &str, topic: &str, shard: &str, split_key: Option<&str>) -> Result<Vec<NewShard>> {
        const OP: &str = "SplitShard";
        let key = match split_key {
            Some(k) => k.to_string(),
            None => {
                let all = self.list_shards(project, topic).await?;
                let s = all.iter().find(|s| s.shard_id == shard).ok_or_else(|| ClientError::Invalid { operation: OP, reason: format!("shard {shard} is not listed") })?;
                let hex = |h: &str| u128::from_str_radix(h, 16).map_err(|_| decode_err(OP, format!("hash key {h:?} is not hex")));
                let (b, e) = (hex(&s.begin_hash_key)?, hex(&s.end_hash_key)?);
                format!("{:032X}", b / 2 + e / 2 + (b & e & 1))
            }
        };
        let body = json!({"Action": "split", "ShardId": shard, "SplitKey": key});
        let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}/shards"), Some(body), false).await?;
        let list = v.get("NewShards").and_then(Value::as_array).ok_or_else(|| decode_err(OP, "NewShards missing"))?;
        list.iter().map(|s| new_shard(OP, s)).collect()
    }

    /// Merges two adjacent ACTIVE shards; both become CLOSED. Returns the new shard.
    pub async fn merge_shard(&self, project: &str, topic: &str, shard: &str, adjacent: &str) -> Result<NewShard> {
        const OP: &str = "MergeShard";
        let body = json!({"Action": "merge", "ShardId": shard, "AdjacentShardId": adjacent});
        let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}/shards"), Some(body), false).await?;
        new_shard(OP, &v)
    }

    /// The topic's registered schemas (ListSchema), oldest first.
    pub async fn list_schemas(&self, project: &str, topic: &str) -> Result<Vec<SchemaVersionInfo>> {
        const OP: &str = "ListTopicSchema";
        const PAGE: i64 = 100;
        let mut out = Vec::new();
        for page in 1.. {
            let body = json!({"Action": "ListSchema", "PageNumber": page, "PageSize": PAGE});
            let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}"), Some(body), false).await?;
            let list = v.get("RecordSchemaList").and_then(Value::as_array).cloned().unwrap_or_default();
            for item in &list {
                out.push(SchemaVersionInfo { version_id: get_i64(OP, item, "VersionId")?, record_schema: get_str(OP, item, "RecordSchema")? });
            }
            let pages = v.get("PageCount").and_then(Value::as_i64).unwrap_or(0);
            if list.is_empty() || page >= pages {
                break;
            }
        }
        Ok(out)
    }

    /// Registers a schema version (RegisterSchema); returns its version id.
    pub async fn register_schema(&self, project: &str, topic: &str, record_schema: &str) -> Result<i64> {
        const OP: &str = "RegisterTopicSchema";
        let body = json!({"Action": "RegisterSchema", "RecordSchema": record_schema});
        let v = self.call_json(OP, Method::POST, &format!("/projects/{project}/topics/{topic}"), Some(body), false).await?;
        self.forget_topic(project, topic);
        Ok(v.get("VersionId").and_then(Value::as_i64).unwrap_or(0))
    }

    fn forget_topic(&self, project: &str, topic: &str) {
        self.topics.lock().unwrap_or_else(|p| p.into_inner()).remove(&format!("{project}/{topic}"));
    }

    /// The topic's record type and schemas, cached; `refresh` re-reads them (a record named a
    /// version the cache does not know).
    async fn layout(&self, project: &str, topic: &str, refresh: bool) -> Result<Arc<TopicLayout>> {
        const OP: &str = "GetTopic";
        let key = format!("{project}/{topic}");
        if !refresh {
            if let Some(l) = self.topics.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
                return Ok(l.clone());
            }
        }
        let info = self.get_topic(project, topic).await?;
        let record_type = match info.get("RecordType").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
            Some("BLOB") => RecordType::Blob,
            Some("TUPLE") => RecordType::Tuple,
            other => return Err(decode_err(OP, format!("RecordType is {other:?}, not BLOB or TUPLE"))),
        };
        let mut schemas = Vec::new();
        if record_type == RecordType::Tuple {
            // A service without the registry answers ListSchema with an error: then the
            // topic's own schema is version 0 (below).
            let versions = match self.list_schemas(project, topic).await {
                Ok(v) => v,
                Err(ClientError::Api { code, .. }) if !matches!(code.as_str(), "NoSuchProject" | "NoSuchTopic" | "Unauthorized" | "NoPermission") => Vec::new(),
                Err(e) => return Err(e),
            };
            for v in versions {
                // Versions this client cannot parse are left out; records naming them fail
                // to decode with a message that says so.
                if let (Ok(id), Ok(schema)) = (i32::try_from(v.version_id), RecordSchema::parse(&v.record_schema)) {
                    schemas.push((id, schema));
                }
            }
            if schemas.is_empty() {
                // A service without the registry: the topic's schema is version 0.
                let text = get_str(OP, &info, "RecordSchema")?;
                schemas.push((0, RecordSchema::parse(&text).map_err(|e| decode_err(OP, e))?));
            }
        }
        let layout = Arc::new(TopicLayout { record_type, schemas });
        self.topics.lock().unwrap_or_else(|p| p.into_inner()).insert(key, layout.clone());
        Ok(layout)
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

    /// Puts records; returns those the service rejected (empty = all written). In batch mode
    /// every record must name its shard: the records of each shard go as one batch
    /// (PutRecordsByShard), and a shard's failure marks all its records failed.
    pub async fn put_records(&self, project: &str, topic: &str, records: &[PutRecord]) -> Result<Vec<FailedRecord>> {
        const OP: &str = "PutRecords";
        let path = format!("/projects/{project}/topics/{topic}/shards");
        match self.cfg.protocol {
            Protocol::Json => self.put_records_json(project, topic, records).await,
            Protocol::Pb => {
                let body = codec::wrap_frame(&pb::encode_put_records(&records.iter().map(pb_record).collect::<Vec<_>>()));
                let bytes = self.call_raw(OP, Method::POST, &path, Some(&body), Content::pb("pub"), true).await?;
                let frame = codec::unwrap_frame(&bytes).map_err(|source| ClientError::Codec { operation: OP, source })?;
                let failed = pb::decode_put_response(frame).map_err(|e| decode_err(OP, e.to_string()))?;
                Ok(failed.into_iter().map(|(index, code, message)| FailedRecord { index, code, message }).collect())
            }
            Protocol::Batch => {
                let mut by_shard: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for (i, r) in records.iter().enumerate() {
                    let shard = r.shard_id.as_deref().ok_or_else(|| ClientError::Invalid {
                        operation: OP,
                        reason: format!("record {i} names no shard; batch mode writes to one shard per request"),
                    })?;
                    by_shard.entry(shard).or_default().push(i);
                }
                let mut failed = Vec::new();
                for (shard, indexes) in by_shard {
                    let batch: Vec<PutRecord> = indexes.iter().map(|i| records[*i].clone()).collect();
                    match self.put_batch(project, topic, shard, &batch).await {
                        Ok(()) => {}
                        Err(ClientError::Api { code, message, .. }) => {
                            failed.extend(indexes.into_iter().map(|index| FailedRecord { index, code: code.clone(), message: message.clone() }))
                        }
                        Err(e) => return Err(e),
                    }
                }
                failed.sort_by_key(|f| f.index);
                Ok(failed)
            }
        }
    }

    /// Puts records into one shard as one request, all or nothing (PutRecordsByShard). Batch
    /// mode sends one batch, its payload compressed with the client's compression and each
    /// TUPLE record's header naming its schema version; PB mode a PB request; JSON mode (which
    /// has no such call) a PutRecords whose records all name the shard.
    pub async fn put_records_by_shard(&self, project: &str, topic: &str, shard: &str, records: &[PutRecord]) -> Result<()> {
        const OP: &str = "PutRecordsByShard";
        let path = format!("/projects/{project}/topics/{topic}/shards/{shard}");
        match self.cfg.protocol {
            Protocol::Json => {
                let pinned: Vec<PutRecord> = records.iter().map(|r| PutRecord { shard_id: Some(shard.to_string()), ..r.clone() }).collect();
                match self.put_records_json(project, topic, &pinned).await?.into_iter().next() {
                    None => Ok(()),
                    Some(f) => Err(ClientError::Api { operation: OP, status: 400, code: f.code, message: f.message, request_id: String::new() }),
                }
            }
            Protocol::Pb => {
                let body = codec::wrap_frame(&pb::encode_put_records(&records.iter().map(pb_record).collect::<Vec<_>>()));
                self.call_raw(OP, Method::POST, &path, Some(&body), Content::pb("pub"), true).await.map(drop)
            }
            Protocol::Batch => self.put_batch(project, topic, shard, records).await,
        }
    }

    async fn put_records_json(&self, project: &str, topic: &str, records: &[PutRecord]) -> Result<Vec<FailedRecord>> {
        const OP: &str = "PutRecords";
        let records: Vec<Value> = records.iter().map(json_record).collect();
        let path = format!("/projects/{project}/topics/{topic}/shards");
        let v = self.call_json(OP, Method::POST, &path, Some(json!({"Action": "pub", "Records": records})), true).await?;
        let failed = v.get("FailedRecords").and_then(Value::as_array).cloned().unwrap_or_default();
        failed
            .iter()
            .map(|f| Ok(FailedRecord { index: get_i64(OP, f, "Index")? as usize, code: get_str(OP, f, "ErrorCode")?, message: get_str(OP, f, "ErrorMessage").unwrap_or_default() }))
            .collect()
    }

    async fn put_batch(&self, project: &str, topic: &str, shard: &str, records: &[PutRecord]) -> Result<()> {
        const OP: &str = "PutRecordsByShard";
        let path = format!("/projects/{project}/topics/{topic}/shards/{shard}");
        let layout = self.layout(project, topic, false).await?;
        let attributes: Vec<Vec<(String, String)>> = records.iter().map(|r| r.attributes.clone().into_iter().collect()).collect();
        let encode = records
            .iter()
            .zip(&attributes)
            .enumerate()
            .map(|(i, (r, attrs))| {
                let schema = match &r.data {
                    RecordData::Blob(_) => None,
                    // The newest registered version the values fit.
                    RecordData::Tuple(values) => Some(
                        layout.schemas.iter().rev().find(|(_, s)| s.check(values).is_ok()).map(|(v, s)| (s, *v)).ok_or_else(|| ClientError::Invalid {
                            operation: OP,
                            reason: format!("record {i} fits none of the topic's {} registered schema(s)", layout.schemas.len()),
                        })?,
                    ),
                };
                Ok(EncodeRecord { data: &r.data, schema, attributes: attrs })
            })
            .collect::<Result<Vec<_>>>()?;
        let data = batch::encode_batch(&encode, self.cfg.compression).map_err(|e| ClientError::Invalid { operation: OP, reason: e.to_string() })?;
        let body = codec::wrap_frame(&pb::encode_binary_records(&[data]));
        // The payload is compressed inside the batch, not again over HTTP (as pydatahub).
        self.call_raw(OP, Method::POST, &path, Some(&body), Content::batch("pub"), false).await.map(drop)
    }

    /// Reads up to `limit` records from `cursor` in the client's protocol.
    pub async fn get_records(&self, project: &str, topic: &str, shard: &str, cursor: &str, limit: u32) -> Result<GetRecordsResult> {
        const OP: &str = "GetRecords";
        let path = format!("/projects/{project}/topics/{topic}/shards/{shard}");
        match self.cfg.protocol {
            Protocol::Json => {
                let body = json!({"Action": "sub", "Cursor": cursor, "Limit": limit});
                let v = self.call_json(OP, Method::POST, &path, Some(body), true).await?;
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
                            batch_index: 0,
                            system_time: get_i64(OP, r, "SystemTime")?,
                            data: RecordData::from_json(r.get("Data").unwrap_or(&Value::Null)).map_err(|e| decode_err(OP, e))?,
                            attributes,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(GetRecordsResult { next_cursor: get_str(OP, &v, "NextCursor")?, start_sequence: get_i64(OP, &v, "StartSeq")?, records })
            }
            Protocol::Pb => {
                // PB carries FieldData either way: the topic's type says BLOB or TUPLE.
                let layout = self.layout(project, topic, false).await?;
                let body = codec::wrap_frame(&pb::encode_get_records(cursor, limit));
                let bytes = self.call_raw(OP, Method::POST, &path, Some(&body), Content::pb("sub"), true).await?;
                let frame = codec::unwrap_frame(&bytes).map_err(|source| ClientError::Codec { operation: OP, source })?;
                let got = pb::decode_get_response(frame).map_err(|e| decode_err(OP, e.to_string()))?;
                let records = got
                    .records
                    .into_iter()
                    .map(|r| {
                        let data = match layout.record_type {
                            RecordType::Blob => RecordData::Blob(r.fields.into_iter().next().flatten().unwrap_or_default()),
                            RecordType::Tuple => RecordData::Tuple(
                                r.fields.into_iter().map(|f| f.map(|b| String::from_utf8(b).map_err(|_| decode_err(OP, "a TUPLE value is not UTF-8"))).transpose()).collect::<Result<_>>()?,
                            ),
                        };
                        Ok(Record { sequence: r.sequence, batch_index: 0, system_time: r.system_time, data, attributes: r.attributes.into_iter().collect() })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(GetRecordsResult { next_cursor: got.next_cursor, start_sequence: got.start_sequence, records })
            }
            Protocol::Batch => {
                let body = codec::wrap_frame(&pb::encode_get_records(cursor, limit));
                let bytes = self.call_raw(OP, Method::POST, &path, Some(&body), Content::batch("sub"), true).await?;
                let frame = codec::unwrap_frame(&bytes).map_err(|source| ClientError::Codec { operation: OP, source })?;
                let got = pb::decode_get_binary_response(frame).map_err(|e| decode_err(OP, e.to_string()))?;
                let mut layout = self.layout(project, topic, false).await?;
                let mut records = Vec::new();
                for entry in &got.records {
                    let decoded = match self.decode_entry(&layout, &entry.data) {
                        // A version registered after the cache was filled: refresh once.
                        Err(e) if e.contains("is not registered") => {
                            layout = self.layout(project, topic, true).await?;
                            self.decode_entry(&layout, &entry.data)
                        }
                        other => other,
                    }
                    .map_err(|e| decode_err(OP, format!("batch at sequence {}: {e}", entry.sequence)))?;
                    for (i, r) in decoded.into_iter().enumerate() {
                        records.push(Record {
                            sequence: entry.sequence,
                            batch_index: i as u32,
                            system_time: entry.system_time,
                            data: r.data,
                            attributes: r.attributes.into_iter().collect(),
                        });
                    }
                }
                Ok(GetRecordsResult { next_cursor: got.next_cursor, start_sequence: got.start_sequence, records })
            }
        }
    }

    fn decode_entry(&self, layout: &TopicLayout, data: &[u8]) -> std::result::Result<Vec<batch::DecodedRecord>, String> {
        let lookup = |v: i32| layout.schema(v).cloned();
        let l = match layout.record_type {
            RecordType::Blob => Layout::Blob,
            RecordType::Tuple => Layout::Tuple(&lookup),
        };
        batch::decode_batch(data, &l, crate::server::MAX_RAW_BYTES).map_err(|e| e.to_string())
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
                let offset = SubscriptionOffset { sequence: int("Sequence", -1), timestamp: int("Timestamp", -1), version: int("Version", 0), session_id, batch_index: int("BatchIndex", 0) };
                (k.clone(), offset)
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
                (k.clone(), json!({"Sequence": o.sequence, "Timestamp": o.timestamp, "Version": o.version, "SessionId": session, "BatchIndex": o.batch_index}))
            })
            .collect();
        let path = format!("/projects/{project}/topics/{topic}/subscriptions/{sub}/offsets");
        self.call("UpdateSubscriptionOffset", Method::PUT, &path, Some(json!({"Action": "commit", "Offsets": map})), false).await.map(drop)
    }
}

fn new_shard(operation: &'static str, v: &Value) -> Result<NewShard> {
    Ok(NewShard { shard_id: get_str(operation, v, "ShardId")?, begin_hash_key: get_str(operation, v, "BeginHashKey")?, end_hash_key: get_str(operation, v, "EndHashKey")? })
}

fn json_record(r: &PutRecord) -> Value {
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
}

fn pb_record(r: &PutRecord) -> pb::PbRecord {
    let fields = match &r.data {
        RecordData::Blob(b) => vec![Some(b.clone())],
        RecordData::Tuple(values) => values.iter().map(|v| v.as_ref().map(|s| s.as_bytes().to_vec())).collect(),
    };
    pb::PbRecord {
        shard_id: r.shard_id.clone(),
        hash_key: r.hash_key.clone(),
        partition_key: r.partition_key.clone(),
        attributes: r.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        fields,
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
        assert!(!ClientError::Tls { operation: "x", endpoint: "https://h".into(), reason: "invalid peer certificate: UnknownIssuer".into() }.is_retryable());
        assert!(!ClientError::Invalid { operation: "x", reason: String::new() }.is_retryable());
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let c = DatahubClientBuilder::new("http://127.0.0.1:1").with_backoff(Duration::from_millis(10), Duration::from_millis(50)).build().unwrap();
        let waits: Vec<Duration> = (0..20).map(|a| c.backoff(a)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(50)));
        assert!(waits.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }
}
