//! The DataHub-compatible HTTP server over a [`Datalog`].
//!
//! One fallback handler does the routing by hand (as the protocol dispatches on method, path
//! shape, Content-Type, `x-datahub-request-action` and the body's `Action`), so every failure
//! — including unknown paths and unreadable bodies — answers in DataHub's JSON error shape.
//! Storage calls are synchronous and may fsync, so each request's work runs on a blocking task.
//!
//! Batch mode (§4.3): a batch PutRecordsByShard is decoded and its records stored one
//! sequence each, exactly like JSON/PB records, with a note of their place in the batch
//! ([`crate::model::BatchOrigin`]). So JSON and PB readers see ordinary records (unique
//! sequences, cursors and limits that address single records), and batch readers get the
//! batches back: a batch GetRecords answers one `BinaryRecordEntry` per run of records that
//! were written together, whose `sequence` is the first record's; record `i` of the entry is
//! sequence `sequence + i` and carries `batch_index = i`. A SEQUENCE cursor at a batch's first
//! sequence therefore reads the whole batch; a cursor (or a limit) inside a batch reads its
//! rest as a shorter entry. Records written in JSON/PB mode are one-record entries.
//! The alternative — one stored frame per batch, as the service numbers them — would give
//! JSON/PB readers several records per sequence and cursors that cannot point inside a batch.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cdc_datalog::{
    AppendRecord, CursorRequest, Datalog, DatalogError, Offset, OffsetCommit, RecordType, ShardMeta, StoredRecord, Topic, TopicInfo, TopicSpec,
};
use serde_json::{json, Map, Value};

use crate::batch::{self, BatchError, EncodeRecord, Layout};
use crate::codec::{self, CodecError, Compression};
use crate::model::{decode_cursor, encode_cursor, schema_field_count, BatchOrigin, RecordData, StoredPayload};
use crate::pb;
use crate::schema::RecordSchema;
use crate::sign;

/// Response header naming this server, and its value.
pub const SERVER_HEADER: &str = "x-datahub-server";
pub const SERVER_NAME: &str = "datahub-local";

/// Largest request body accepted on the wire (the service's limit is 4 MB; some slack).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest decompressed body.
pub const MAX_RAW_BYTES: usize = 64 * 1024 * 1024;
/// Most records returned by one GetRecords (the service's maximum).
pub const MAX_GET_RECORDS: usize = 1000;
/// GetRecords stops adding records past this many payload bytes.
const MAX_GET_BYTES: usize = 4 * 1024 * 1024;

/// Access credentials the server checks signatures against.
#[derive(Clone)]
pub struct Credentials {
    pub access_id: String,
    pub access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_id", &self.access_id).field("access_key", &"***").finish()
    }
}

/// Server settings: `new` takes the log; everything else is optional.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    log: Arc<Datalog>,
    credentials: Option<Credentials>,
}

impl ServerConfig {
    pub fn new(log: Arc<Datalog>) -> Self {
        ServerConfig { log, credentials: None }
    }
    /// Verify `Authorization: DATAHUB id:sig` against these; without them any request is
    /// accepted (local use).
    pub fn with_credentials(mut self, access_id: impl Into<String>, access_key: impl Into<String>) -> Self {
        self.credentials = Some(Credentials { access_id: access_id.into(), access_key: access_key.into() });
        self
    }
}

struct ServerState {
    config: ServerConfig,
    requests: AtomicU64,
    started_ms: i64,
    /// Round-robin for records that name no shard, hash key or partition key.
    round_robin: AtomicU64,
}

/// The axum router serving the DataHub API.
pub fn router(config: ServerConfig) -> Router {
    let state = Arc::new(ServerState { config, requests: AtomicU64::new(0), started_ms: cdc_datalog::now_ms(), round_robin: AtomicU64::new(0) });
    Router::new().fallback(handle).with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config).into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await
}

/// A DataHub error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }
    fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedRecord", message)
    }
}

impl From<DatalogError> for ApiError {
    fn from(e: DatalogError) -> Self {
        use DatalogError as E;
        let (status, code) = match &e {
            E::NoSuchProject(_) => (StatusCode::NOT_FOUND, "NoSuchProject"),
            E::NoSuchTopic { .. } => (StatusCode::NOT_FOUND, "NoSuchTopic"),
            E::NoSuchShard(_) => (StatusCode::NOT_FOUND, "NoSuchShard"),
            E::NoSuchSubscription(_) => (StatusCode::NOT_FOUND, "NoSuchSubscription"),
            E::NoSuchConsumer(_) => (StatusCode::NOT_FOUND, "NoSuchConsumer"),
            E::ProjectExists(_) => (StatusCode::CONFLICT, "ProjectAlreadyExist"),
            E::TopicExists { .. } => (StatusCode::CONFLICT, "TopicAlreadyExist"),
            E::InvalidName { .. } | E::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "InvalidParameter"),
            E::ProjectNotEmpty(_) => (StatusCode::BAD_REQUEST, "InvalidOperation"),
            E::SeekOutOfRange { .. } => (StatusCode::BAD_REQUEST, "SeekOutOfRange"),
            E::InvalidCursor(_) => (StatusCode::BAD_REQUEST, "InvalidCursor"),
            E::SubscriptionOffline(_) => (StatusCode::BAD_REQUEST, "SubscriptionOffline"),
            E::OffsetReset { .. } => (StatusCode::BAD_REQUEST, "OffsetReseted"),
            E::OffsetSessionChanged { .. } => (StatusCode::BAD_REQUEST, "OffsetSessionChanged"),
            E::OffsetSessionClosed { .. } => (StatusCode::BAD_REQUEST, "OffsetSessionClosed"),
            E::ShardClosed(_) => (StatusCode::BAD_REQUEST, "InvalidShardOperation"),
            E::NoSuchSchema(_) => (StatusCode::BAD_REQUEST, "InvalidParameter"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "storage failure");
        }
        ApiError::new(status, code, e.to_string())
    }
}

impl From<CodecError> for ApiError {
    fn from(e: CodecError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        ApiError::malformed(e.to_string())
    }
}

impl From<pb::PbError> for ApiError {
    fn from(e: pb::PbError) -> Self {
        ApiError::malformed(e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

enum Reply {
    Json(StatusCode, Value),
    Empty(StatusCode),
    Binary(&'static str, Vec<u8>),
}

struct Req {
    method: Method,
    segments: Vec<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("application/json")
    }
    fn json(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::invalid(format!("request body is not JSON: {e}")))
    }
}

async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{:x}{n:08x}", state.started_ms);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let outcome = async {
        let (parts, body) = request.into_parts();
        if let Some(creds) = &state.config.credentials {
            verify_signature(creds, &parts.method, &parts.headers, parts.uri.path(), parts.uri.query())?;
        }
        let raw = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|e| ApiError::invalid(format!("request body unreadable or over {MAX_BODY_BYTES} bytes: {e}")))?;
        let body = match parts.headers.get("content-encoding").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
            None => raw.to_vec(),
            Some(enc) => {
                let raw_size = match parts.headers.get("x-datahub-content-raw-size") {
                    None => None,
                    Some(v) => Some(
                        v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).ok_or_else(|| ApiError::invalid("x-datahub-content-raw-size is not a number"))?,
                    ),
                };
                codec::decompress(enc, raw_size, &raw, MAX_RAW_BYTES)?
            }
        };
        let segments = parts.uri.path().trim_matches('/').split('/').map(sign::percent_decode).collect();
        let req = Req { method: parts.method, segments, headers: parts.headers, body };
        let state = state.clone();
        tokio::task::spawn_blocking(move || dispatch(&state, &req))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", format!("request task failed: {e}")))?
    }
    .await;
    let mut response = match outcome {
        Ok(Reply::Json(status, v)) => (status, [("content-type", "application/json")], v.to_string()).into_response(),
        Ok(Reply::Empty(status)) => (status, [("content-type", "application/json")], "").into_response(),
        Ok(Reply::Binary(ct, bytes)) => (StatusCode::OK, [("content-type", ct)], bytes).into_response(),
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, message = %e.message, "request failed");
            let body = json!({"ErrorCode": e.code, "ErrorMessage": e.message});
            (e.status, [("content-type", "application/json")], body.to_string()).into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-datahub-request-id", v);
    }
    // Lets our clients tell this server from the service (it creates topics on demand only
    // here; see `DatahubClient::is_datahub_local`). The service sends no such header.
    response.headers_mut().insert(SERVER_HEADER, HeaderValue::from_static(SERVER_NAME));
    response
}

fn verify_signature(creds: &Credentials, method: &Method, headers: &HeaderMap, path: &str, query: Option<&str>) -> ApiResult<()> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", m.to_string());
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(|| unauthorized("missing Authorization header"))?;
    let (id, sig) = auth
        .strip_prefix("DATAHUB ")
        .and_then(|rest| rest.trim().split_once(':'))
        .ok_or_else(|| unauthorized("Authorization is not `DATAHUB id:signature`"))?;
    if id != creds.access_id {
        return Err(unauthorized("unknown access id"));
    }
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let pairs: Vec<(&str, &str)> = headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
    let canonical = sign::canonical_string(method.as_str(), h("content-type"), h("date"), pairs, path, query);
    if sign::signature(&creds.access_key, &canonical) != sig {
        return Err(unauthorized("signature mismatch"));
    }
    Ok(())
}

fn dispatch(state: &ServerState, req: &Req) -> ApiResult<Reply> {
    let log = &state.config.log;
    let seg: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let m = &req.method;
    match seg.as_slice() {
        ["projects"] if m == Method::GET => Ok(Reply::Json(StatusCode::OK, json!({"ProjectNames": log.list_projects()}))),
        ["projects", p] => project(log, req, p),
        ["projects", p, "topics"] if m == Method::GET => Ok(Reply::Json(StatusCode::OK, json!({"TopicNames": log.list_topics(p)?}))),
        ["projects", p, "topics", t] => topic(log, req, p, t),
        ["projects", p, "topics", t, "shards"] => {
            let topic = log.topic(p, t)?;
            match *m {
                Method::GET => Ok(Reply::Json(StatusCode::OK, list_shards(&topic))),
                Method::POST => shards_post(state, req, &topic),
                _ => Err(bad_method(req)),
            }
        }
        ["projects", p, "topics", t, "shards", s] if m == Method::POST => shard_post(state, req, &*log.topic(p, t)?, s),
        ["projects", p, "topics", t, "subscriptions"] if m == Method::POST => subscriptions_post(req, &*log.topic(p, t)?, t),
        ["projects", p, "topics", t, "subscriptions", sub] => subscription(req, &*log.topic(p, t)?, sub),
        ["projects", p, "topics", t, "subscriptions", sub, "offsets"] => offsets(req, &*log.topic(p, t)?, sub),
        ["projects", _, "topics", _, "connectors", ..] => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", "connectors are not supported by datahub-local"))
        }
        _ => Err(bad_method(req)),
    }
}

fn bad_method(req: &Req) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidUriSpec", format!("no operation {} /{}", req.method, req.segments.join("/")))
}

fn str_field<'a>(v: &'a Value, key: &str) -> ApiResult<&'a str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| ApiError::invalid(format!("{key} is missing or not a string")))
}

fn int_field(v: &Value, key: &str) -> ApiResult<i64> {
    opt_int(v, key)?.ok_or_else(|| ApiError::invalid(format!("{key} is missing")))
}

/// An integer that may arrive as a JSON number or a numeric string.
fn opt_int(v: &Value, key: &str) -> ApiResult<Option<i64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| ApiError::invalid(format!("{key} is not an integer"))),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ApiError::invalid(format!("{key} is not an integer"))),
        Some(_) => Err(ApiError::invalid(format!("{key} is not an integer"))),
    }
}

fn action(v: &Value) -> &str {
    v.get("Action").and_then(Value::as_str).unwrap_or("")
}

fn project(log: &Datalog, req: &Req, p: &str) -> ApiResult<Reply> {
    match req.method {
        Method::GET => {
            let info = log.get_project(p)?;
            Ok(Reply::Json(StatusCode::OK, json!({"ProjectName": p, "Comment": info.comment, "CreateTime": info.create_time, "LastModifyTime": info.last_modify_time})))
        }
        Method::POST => {
            let body = req.json()?;
            log.create_project(p, body.get("Comment").and_then(Value::as_str).unwrap_or(""))?;
            Ok(Reply::Empty(StatusCode::CREATED))
        }
        Method::PUT => {
            log.update_project(p, str_field(&req.json()?, "Comment")?)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        Method::DELETE => {
            log.delete_project(p)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        _ => Err(bad_method(req)),
    }
}

fn topic_json(name: &str, info: &TopicInfo) -> Value {
    let mut v = json!({
        "TopicName": name,
        "Comment": info.spec.comment,
        // Split and merge change how many shards take writes; that is what ShardCount says.
        "ShardCount": info.shards.iter().filter(|s| s.is_active()).count(),
        "Lifecycle": info.spec.lifecycle,
        "RecordType": match info.spec.record_type { RecordType::Blob => "BLOB", RecordType::Tuple => "TUPLE" },
        "CreateTime": info.create_time,
        "LastModifyTime": info.last_modify_time,
    });
    if let Some(schema) = &info.spec.record_schema {
        v["RecordSchema"] = schema.clone().into();
    }
    if let Some(mode) = &info.spec.expand_mode {
        v["ExpandMode"] = mode.clone().into();
    }
    v
}

fn topic(log: &Datalog, req: &Req, p: &str, t: &str) -> ApiResult<Reply> {
    match req.method {
        Method::GET => Ok(Reply::Json(StatusCode::OK, topic_json(t, &log.topic(p, t)?.info()))),
        Method::POST => {
            let body = req.json()?;
            match action(&body) {
                "" => {
                    let record_type = match str_field(&body, "RecordType")? {
                        "BLOB" => RecordType::Blob,
                        "TUPLE" => RecordType::Tuple,
                        other => return Err(ApiError::invalid(format!("RecordType {other:?} is not BLOB or TUPLE"))),
                    };
                    let record_schema = body.get("RecordSchema").and_then(Value::as_str).map(str::to_string);
                    if let Some(schema) = &record_schema {
                        if record_type == RecordType::Tuple {
                            RecordSchema::parse(schema).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidSchema", e))?;
                        }
                    }
                    let count = |k: &str| -> ApiResult<u32> {
                        u32::try_from(int_field(&body, k)?).map_err(|_| ApiError::invalid(format!("{k} is out of range")))
                    };
                    let spec = TopicSpec {
                        shard_count: count("ShardCount")?,
                        lifecycle: count("Lifecycle")?,
                        record_type,
                        record_schema,
                        comment: body.get("Comment").and_then(Value::as_str).unwrap_or("").to_string(),
                        expand_mode: body.get("ExpandMode").and_then(Value::as_str).map(str::to_string),
                    };
                    log.create_topic(p, t, spec)?;
                    Ok(Reply::Empty(StatusCode::CREATED))
                }
                "ListSchema" | "GetSchema" | "RegisterSchema" | "DeleteSchema" => schema_registry(&*log.topic(p, t)?, &body),
                other => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!("topic action {other:?} is not supported by datahub-local"))),
            }
        }
        Method::PUT => {
            let body = req.json()?;
            let lifecycle = opt_int(&body, "Lifecycle")?.map(|l| u32::try_from(l).map_err(|_| ApiError::invalid("Lifecycle is out of range"))).transpose()?;
            log.update_topic(p, t, lifecycle, body.get("Comment").and_then(Value::as_str))?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        Method::DELETE => {
            log.delete_topic(p, t)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        _ => Err(bad_method(req)),
    }
}

/// The schema registry (§1.1 ListTopicSchema / GetTopicSchema / RegisterTopicSchema /
/// DeleteTopicSchema). pydatahub's batch client lists it to map a schema to the version id it
/// writes into each record header, and a record's version back to a schema when reading.
fn schema_registry(topic: &Topic, body: &Value) -> ApiResult<Reply> {
    let info = topic.info();
    if info.spec.record_type != RecordType::Tuple {
        if action(body) == "ListSchema" {
            return Ok(Reply::Json(StatusCode::OK, json!({"PageNumber": 1, "PageSize": 0, "PageCount": 0, "TotalCount": 0, "RecordSchemaList": []})));
        }
        return Err(ApiError::invalid("a BLOB topic has no record schema"));
    }
    let version_json = |v: &cdc_datalog::SchemaVersion| json!({"VersionId": v.version_id, "RecordSchema": v.record_schema, "CreateTime": v.create_time, "Creator": ""});
    let parse = |key: &str| -> ApiResult<Option<RecordSchema>> {
        match body.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => RecordSchema::parse(s).map(Some).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidSchema", e)),
        }
    };
    fn same(wanted: &RecordSchema) -> impl Fn(&str) -> bool + '_ {
        move |stored| RecordSchema::parse(stored).is_ok_and(|s| s.same_fields(wanted))
    }
    match action(body) {
        "ListSchema" => {
            // -1 (pydatahub's "unset") or 0: the first page, 100 per page.
            let number = opt_int(body, "PageNumber")?.filter(|n| *n > 0).unwrap_or(1) as usize;
            let size = opt_int(body, "PageSize")?.filter(|n| *n > 0).unwrap_or(100).min(1000) as usize;
            let all = &info.schemas;
            let page: Vec<Value> = all.iter().skip((number - 1) * size).take(size).map(version_json).collect();
            Ok(Reply::Json(StatusCode::OK, json!({"PageNumber": number, "PageSize": size, "PageCount": all.len().div_ceil(size),
                "TotalCount": all.len(), "RecordSchemaList": page})))
        }
        "GetSchema" => {
            let version = opt_int(body, "VersionId")?.unwrap_or(-1);
            let found = match parse("RecordSchema")? {
                Some(wanted) if version < 0 => info.schemas.iter().find(|v| same(&wanted)(&v.record_schema)),
                _ => info.schemas.iter().find(|v| v.version_id == version),
            };
            let v = found.ok_or_else(|| ApiError::invalid(format!("no registered schema matches version {version} / the given RecordSchema")))?;
            Ok(Reply::Json(StatusCode::OK, version_json(v)))
        }
        "RegisterSchema" => {
            let wanted = parse("RecordSchema")?.ok_or_else(|| ApiError::invalid("RecordSchema is missing"))?;
            let text = str_field(body, "RecordSchema")?;
            let id = topic.register_schema(text, same(&wanted))?;
            Ok(Reply::Json(StatusCode::OK, json!({"VersionId": id})))
        }
        _ => {
            topic.delete_schema(int_field(body, "VersionId")?)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
    }
}

/// ListShard's view of one shard. `LeftShardId`/`RightShardId` are the ACTIVE neighbours by
/// hash range (`4294967295` = none, as the service writes it); `ClosedTime` is epoch seconds,
/// `""` while ACTIVE.
fn shard_json(table: &[ShardMeta], s: &ShardMeta) -> Value {
    const NONE: &str = "4294967295";
    let (left, right) = cdc_datalog::neighbours(table, s);
    let id = |x: Option<u32>| x.map_or_else(|| NONE.to_string(), |i| i.to_string());
    json!({"ShardId": s.id.to_string(), "State": s.state.as_str(), "ClosedTime": s.closed_time.map_or(Value::from(""), Value::from),
           "BeginHashKey": s.begin_hex(), "EndHashKey": s.end_hex(),
           "ParentShardIds": s.parents.iter().map(u32::to_string).collect::<Vec<_>>(), "LeftShardId": id(left), "RightShardId": id(right)})
}

fn list_shards(topic: &Topic) -> Value {
    let table = topic.shard_table();
    let shards: Vec<Value> = table.iter().map(|s| shard_json(&table, s)).collect();
    json!({"Shards": shards, "Protocol": "http1.1", "Interval": 500})
}

fn new_shard_json(s: &ShardMeta) -> Value {
    json!({"ShardId": s.id.to_string(), "BeginHashKey": s.begin_hex(), "EndHashKey": s.end_hex()})
}

/// Where a record goes: explicit shard, else hash key, else MD5 of the partition key, else
/// round-robin — the last three over ACTIVE shards only. An explicit CLOSED shard is kept:
/// its append fails with InvalidShardOperation, reported per record.
fn route(state: &ServerState, topic: &Topic, shard_id: Option<&str>, hash_key: Option<&str>, partition_key: Option<&str>) -> ApiResult<u32> {
    if let Some(id) = shard_id.filter(|s| !s.is_empty()) {
        return Ok(topic.shard(id)?.id());
    }
    let hash = if let Some(h) = hash_key.filter(|s| !s.is_empty()) {
        Some(u128::from_str_radix(h, 16).map_err(|_| ApiError::invalid(format!("HashKey {h:?} is not 128-bit hex")))?)
    } else {
        partition_key.map(|pk| {
            use md5::Digest;
            u128::from_be_bytes(md5::Md5::digest(pk.as_bytes()).into())
        })
    };
    let no_active = || ApiError::new(StatusCode::BAD_REQUEST, "InvalidShardOperation", "the topic has no ACTIVE shard");
    match hash {
        Some(h) => topic.route_hash(h).ok_or_else(no_active),
        None => {
            let active = topic.active_shard_ids();
            let i = state.round_robin.fetch_add(1, Ordering::Relaxed) as usize;
            active.get(i % active.len().max(1)).copied().ok_or_else(no_active)
        }
    }
}

/// A topic's record kind and its registered schemas, parsed once per request.
struct Layouts {
    record_type: RecordType,
    /// `(version id, schema)`, oldest first; versions whose schema does not parse (topics
    /// created before field types were checked) are left out.
    schemas: Vec<(i64, RecordSchema)>,
    /// The creation schema's field count, for topics whose schemas all failed to parse.
    legacy_field_count: Option<usize>,
}

impl Layouts {
    fn of(info: &TopicInfo) -> Self {
        let schemas = info.schemas.iter().filter_map(|v| RecordSchema::parse(&v.record_schema).ok().map(|s| (v.version_id, s))).collect();
        Layouts { record_type: info.spec.record_type, schemas, legacy_field_count: info.spec.record_schema.as_deref().and_then(schema_field_count) }
    }

    fn schema(&self, version: i64) -> Option<&RecordSchema> {
        self.schemas.iter().find(|(v, _)| *v == version).map(|(_, s)| s)
    }

    /// Checks a record against the topic: the right kind, and for TUPLE values that fit a
    /// registered schema version (count, types, NOT NULL).
    fn check(&self, data: &RecordData, index: usize) -> ApiResult<()> {
        match (self.record_type, data) {
            (RecordType::Blob, RecordData::Blob(_)) => Ok(()),
            (RecordType::Tuple, RecordData::Tuple(values)) => {
                let Some((latest_version, latest)) = self.schemas.last() else {
                    return match self.legacy_field_count {
                        Some(n) if n != values.len() => Err(ApiError::malformed(format!("record {index} has {} values, the schema has {n} fields", values.len()))),
                        _ => Ok(()),
                    };
                };
                if self.schemas.iter().any(|(_, s)| s.check(values).is_ok()) {
                    return Ok(());
                }
                let why = latest.check(values).err().unwrap_or_default();
                Err(ApiError::malformed(format!("record {index} does not fit the topic's schema (version {latest_version}): {why}")))
            }
            (RecordType::Blob, _) => Err(ApiError::malformed(format!("record {index} is TUPLE data for a BLOB topic"))),
            (RecordType::Tuple, _) => Err(ApiError::malformed(format!("record {index} is BLOB data for a TUPLE topic"))),
        }
    }

    /// The schema version to write a stored TUPLE record with in a batch: the one it was
    /// written with if that still fits, else the newest registered version that fits (as the
    /// client picks when it writes).
    fn version_for(&self, values: &[Option<String>], hint: Option<i32>) -> Option<(&RecordSchema, i32)> {
        let fits = |(v, s): &&(i64, RecordSchema)| s.check(values).is_ok() && i32::try_from(*v).is_ok();
        let hinted = hint.and_then(|h| self.schemas.iter().find(|(v, _)| *v == h as i64)).filter(|x| fits(x));
        hinted.or_else(|| self.schemas.iter().rev().find(fits)).map(|(v, s)| (s, *v as i32))
    }
}

/// Appends records grouped by shard; a shard whose append fails reports its records as
/// failed (the others are written), which is what FailedRecords is for.
fn append_routed(topic: &Topic, routed: Vec<(u32, AppendRecord)>) -> Vec<(usize, ApiError)> {
    let mut by_shard: BTreeMap<u32, (Vec<usize>, Vec<AppendRecord>)> = BTreeMap::new();
    for (index, (shard, record)) in routed.into_iter().enumerate() {
        let e = by_shard.entry(shard).or_default();
        e.0.push(index);
        e.1.push(record);
    }
    let mut failed = Vec::new();
    for (shard, (indexes, records)) in by_shard {
        let result = topic.shard(&shard.to_string()).and_then(|s| s.append(&records));
        if let Err(e) = result {
            let api = ApiError::from(e);
            failed.extend(indexes.into_iter().map(|i| (i, api.clone())));
        }
    }
    failed.sort_by_key(|(i, _)| *i);
    failed
}

fn failed_triples(failed: &[(usize, ApiError)]) -> Vec<(usize, String, String)> {
    failed.iter().map(|(i, e)| (*i, e.code.to_string(), e.message.clone())).collect()
}

fn shards_post(state: &ServerState, req: &Req, topic: &Topic) -> ApiResult<Reply> {
    let info = topic.info();
    if req.content_type().starts_with("application/x-binary") {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", "batch (x-binary) records are put to one shard: POST .../shards/{id} (PutRecordsByShard)"));
    }
    if req.content_type().starts_with("application/x-protobuf") {
        if req.header("x-datahub-request-action") != Some("pub") {
            return Err(ApiError::invalid("protobuf body on shards needs x-datahub-request-action: pub"));
        }
        let records = pb::decode_put_records(codec::unwrap_frame(&req.body)?)?;
        let routed = pb_records(state, topic, &info, records, None)?;
        let failed = append_routed(topic, routed);
        return Ok(Reply::Binary("application/x-protobuf", codec::wrap_frame(&pb::encode_put_response(&failed_triples(&failed)))));
    }
    let body = req.json()?;
    match action(&body) {
        "pub" => {
            let records = body.get("Records").and_then(Value::as_array).ok_or_else(|| ApiError::invalid("Records is missing"))?;
            let layouts = Layouts::of(&info);
            let mut routed = Vec::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                let data = RecordData::from_json(r.get("Data").unwrap_or(&Value::Null)).map_err(|e| ApiError::malformed(format!("record {i}: {e}")))?;
                layouts.check(&data, i)?;
                let s = |k| r.get(k).and_then(Value::as_str);
                let shard = route(state, topic, s("ShardId"), s("HashKey"), s("PartitionKey"))?;
                let attributes = match r.get("Attributes") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Object(m)) => m
                        .iter()
                        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())).ok_or_else(|| ApiError::malformed(format!("record {i}: attribute {k} is not a string"))))
                        .collect::<ApiResult<_>>()?,
                    Some(_) => return Err(ApiError::malformed(format!("record {i}: Attributes is not an object"))),
                };
                routed.push((shard, AppendRecord { attributes, payload: data.encode() }));
            }
            let failed = append_routed(topic, routed);
            let failed_json: Vec<Value> = failed.iter().map(|(i, e)| json!({"Index": i, "ErrorCode": e.code, "ErrorMessage": e.message})).collect();
            Ok(Reply::Json(StatusCode::OK, json!({"FailedRecordCount": failed.len(), "FailedRecords": failed_json})))
        }
        "split" => {
            let shard = str_field(&body, "ShardId")?;
            let key = match body.get("SplitKey").and_then(Value::as_str).filter(|k| !k.trim().is_empty()) {
                Some(k) => cdc_datalog::parse_hash_key(k)?,
                None => {
                    // No key: the middle of the shard's range, as pydatahub computes it.
                    let id = topic.shard(shard)?.id();
                    let meta = topic.shard_table().into_iter().find(|m| m.id == id).ok_or_else(|| DatalogError::NoSuchShard(shard.to_string()))?;
                    meta.begin_hash_key / 2 + meta.end_hash_key / 2 + (meta.begin_hash_key & meta.end_hash_key & 1)
                }
            };
            let children = topic.split_shard(shard, key)?;
            Ok(Reply::Json(StatusCode::OK, json!({"NewShards": children.iter().map(new_shard_json).collect::<Vec<_>>()})))
        }
        "merge" => {
            let child = topic.merge_shards(str_field(&body, "ShardId")?, str_field(&body, "AdjacentShardId")?)?;
            Ok(Reply::Json(StatusCode::OK, new_shard_json(&child)))
        }
        other => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!("shard action {other:?} is not supported by datahub-local"))),
    }
}

fn pb_records(state: &ServerState, topic: &Topic, info: &TopicInfo, records: Vec<pb::PbRecord>, fixed_shard: Option<u32>) -> ApiResult<Vec<(u32, AppendRecord)>> {
    let layouts = Layouts::of(info);
    let mut routed = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let data = match info.spec.record_type {
            RecordType::Blob => match r.fields.as_slice() {
                [value] => RecordData::Blob(value.clone().unwrap_or_default()),
                _ => return Err(ApiError::malformed(format!("record {i}: a BLOB record carries exactly one FieldData"))),
            },
            RecordType::Tuple => RecordData::Tuple(r.fields.into_iter().map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned())).collect()),
        };
        layouts.check(&data, i)?;
        let shard = match fixed_shard {
            Some(s) => s,
            None => route(state, topic, r.shard_id.as_deref(), r.hash_key.as_deref(), r.partition_key.as_deref())?,
        };
        routed.push((shard, AppendRecord { attributes: r.attributes, payload: data.encode() }));
    }
    Ok(routed)
}

/// A batch PutRecordsByShard: every record of every batch, stored one sequence each with
/// its place in its batch.
fn batch_records(info: &TopicInfo, entries: Vec<pb::BinaryEntry>) -> ApiResult<Vec<AppendRecord>> {
    let layouts = Layouts::of(info);
    let lookup = |v: i32| layouts.schema(v as i64).cloned();
    let layout = match info.spec.record_type {
        RecordType::Blob => Layout::Blob,
        RecordType::Tuple => Layout::Tuple(&lookup),
    };
    let mut out = Vec::new();
    for (e, entry) in entries.iter().enumerate() {
        let records = batch::decode_batch(&entry.data, &layout, MAX_RAW_BYTES).map_err(|err| ApiError::malformed(format!("batch {e}: {err}")))?;
        let count = records.len() as u32;
        for (i, r) in records.into_iter().enumerate() {
            if let (RecordData::Tuple(values), Some(schema)) = (&r.data, layouts.schema(r.schema_version as i64)) {
                schema.check(values).map_err(|why| ApiError::malformed(format!("batch {e} record {i}: {why}")))?;
            }
            let origin = BatchOrigin { index: i as u32, count, schema_version: r.schema_version };
            out.push(AppendRecord { attributes: r.attributes, payload: StoredPayload { data: r.data, origin: Some(origin) }.encode() });
        }
    }
    Ok(out)
}

/// The compression of batch payloads we answer with: what the reader's Accept-Encoding
/// names, except deflate (pydatahub's deflate "decompressor" returns its input unchanged).
fn answer_compression(req: &Req) -> Compression {
    match req.header("accept-encoding").and_then(Compression::from_name) {
        Some(c @ (Compression::Lz4 | Compression::Zlib)) => c,
        _ => Compression::None,
    }
}

/// Groups read records into batch entries: a run of records written in one batch (by
/// [`BatchOrigin`]) becomes one entry; every other record is an entry of its own.
fn batch_entries(got: &Got, layouts: &Layouts, compression: Compression) -> ApiResult<Vec<pb::BinaryEntry>> {
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    for i in 0..got.records.len() {
        let continues = i > 0 && {
            let (prev, cur) = (&got.origins[i - 1], &got.origins[i]);
            matches!((prev, cur), (Some(p), Some(c)) if c.index == p.index + 1 && c.count == p.count && c.index > 0)
                && got.records[i].system_time == got.records[i - 1].system_time
        };
        match groups.last_mut() {
            Some(g) if continues => g.end = i + 1,
            _ => groups.push(i..i + 1),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let encode: Vec<EncodeRecord<'_>> = g
                .clone()
                .map(|i| {
                    let (r, d) = (&got.records[i], &got.data[i]);
                    let schema = match d {
                        RecordData::Blob(_) => None,
                        RecordData::Tuple(values) => Some(layouts.version_for(values, got.origins[i].map(|o| o.schema_version)).ok_or_else(|| {
                            ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!(
                                "record {} does not fit any registered schema version, so it cannot be read in batch mode; read it in JSON or PB mode", r.sequence))
                        })?),
                    };
                    Ok(EncodeRecord { data: d, schema, attributes: &r.attributes })
                })
                .collect::<ApiResult<_>>()?;
            let data = batch::encode_batch(&encode, compression)?;
            let (first, last) = (&got.records[g.start], &got.records[g.end - 1]);
            Ok(pb::BinaryEntry {
                cursor: encode_cursor(first.sequence),
                next_cursor: encode_cursor(last.sequence + 1),
                sequence: first.sequence as i64,
                system_time: first.system_time,
                data,
            })
        })
        .collect()
}

fn cursor_json(pos: cdc_datalog::CursorPosition) -> Value {
    json!({"Cursor": encode_cursor(pos.sequence), "RecordTime": pos.record_time, "Sequence": pos.sequence})
}

fn shard_post(state: &ServerState, req: &Req, topic: &Topic, shard: &str) -> ApiResult<Reply> {
    let ct = req.content_type();
    let binary = ct.starts_with("application/x-binary");
    if ct.starts_with("application/x-protobuf") || binary {
        let pb = codec::unwrap_frame(&req.body)?;
        return match (req.header("x-datahub-request-action"), binary) {
            (Some("pub"), _) => {
                let info = topic.info();
                let log = topic.shard(shard)?;
                let records = if binary {
                    batch_records(&info, pb::decode_binary_records(pb)?)?
                } else {
                    pb_records(state, topic, &info, pb::decode_put_records(pb)?, Some(log.id()))?.into_iter().map(|(_, r)| r).collect()
                };
                log.append(&records)?;
                Ok(Reply::Empty(StatusCode::OK))
            }
            (Some("sub"), false) => {
                let (cursor, limit) = pb::decode_get_records(pb)?;
                let got = get_records(topic, shard, &cursor, limit)?;
                let out: Vec<pb::PbOutRecord<'_>> = got
                    .records
                    .iter()
                    .zip(&got.data)
                    .map(|(r, d)| pb::PbOutRecord {
                        cursor: encode_cursor(r.sequence),
                        next_cursor: encode_cursor(r.sequence + 1),
                        sequence: r.sequence,
                        system_time: r.system_time,
                        attributes: &r.attributes,
                        data: d,
                    })
                    .collect();
                let msg = pb::encode_get_response(&got.next_cursor, got.start_seq, &out, got.latest_seq, got.latest_time);
                Ok(Reply::Binary("application/x-protobuf", codec::wrap_frame(&msg)))
            }
            (Some("sub"), true) => {
                let (cursor, limit) = pb::decode_get_records(pb)?;
                let got = get_records(topic, shard, &cursor, limit)?;
                let entries = batch_entries(&got, &Layouts::of(&topic.info()), answer_compression(req))?;
                let msg = pb::encode_get_binary_response(&got.next_cursor, got.start_seq, &entries, got.latest_seq, got.latest_time);
                Ok(Reply::Binary("application/x-binary", codec::wrap_frame(&msg)))
            }
            (other, _) => Err(ApiError::invalid(format!("x-datahub-request-action {other:?} is not pub or sub"))),
        };
    }
    let body = req.json()?;
    match action(&body) {
        "cursor" => {
            let request = match str_field(&body, "Type")? {
                "OLDEST" => CursorRequest::Oldest,
                "LATEST" => CursorRequest::Latest,
                "SYSTEM_TIME" => CursorRequest::SystemTime(int_field(&body, "SystemTime")?),
                "SEQUENCE" => CursorRequest::Sequence(int_field(&body, "Sequence")?),
                other => return Err(ApiError::invalid(format!("cursor Type {other:?} is not OLDEST, LATEST, SYSTEM_TIME or SEQUENCE"))),
            };
            Ok(Reply::Json(StatusCode::OK, cursor_json(topic.cursor(shard, request)?)))
        }
        "sub" => {
            let got = get_records(topic, shard, str_field(&body, "Cursor")?, opt_int(&body, "Limit")?.unwrap_or(0))?;
            let records: Vec<Value> = got
                .records
                .iter()
                .zip(&got.data)
                .map(|(r, d)| {
                    let mut v = json!({"Data": d.to_json(), "Sequence": r.sequence, "SystemTime": r.system_time,
                                       "Cursor": encode_cursor(r.sequence), "NextCursor": encode_cursor(r.sequence + 1), "ShardId": shard});
                    if !r.attributes.is_empty() {
                        v["Attributes"] = r.attributes.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<Map<_, _>>().into();
                    }
                    v
                })
                .collect();
            Ok(Reply::Json(StatusCode::OK, json!({"NextCursor": got.next_cursor, "RecordCount": records.len(), "StartSeq": got.start_seq,
                "LatestSeq": got.latest_seq, "LatestTime": got.latest_time, "Records": records})))
        }
        "meter" => {
            let s = topic.shard(shard)?;
            Ok(Reply::Json(StatusCode::OK, json!({"ActiveTime": 0, "Storage": s.size_bytes()})))
        }
        other => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!("shard action {other:?} is not supported by datahub-local"))),
    }
}

struct Got {
    records: Vec<StoredRecord>,
    data: Vec<RecordData>,
    /// Per record: its place in the batch it was written in (batch writes only).
    origins: Vec<Option<BatchOrigin>>,
    next_cursor: String,
    start_seq: i64,
    latest_seq: i64,
    latest_time: i64,
}

fn get_records(topic: &Topic, shard: &str, cursor: &str, limit: i64) -> ApiResult<Got> {
    let log = topic.shard(shard)?;
    let from = decode_cursor(cursor).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "InvalidCursor", format!("cursor {cursor:?} is not a cursor of this server")))?;
    // pydatahub sends Limit 0 when the caller gives none: treat 0 as "as many as allowed".
    let limit = if limit <= 0 { MAX_GET_RECORDS } else { (limit as usize).min(MAX_GET_RECORDS) };
    // Closed-ness is read before the records: a shard closed after the read could still
    // have had records appended up to the moment it closed, which the next read returns.
    let closed = log.is_closed();
    let records = log.read(from, limit, MAX_GET_BYTES).map_err(|e| match e {
        DatalogError::SeekOutOfRange { .. } => ApiError::new(StatusCode::BAD_REQUEST, "InvalidCursor", format!("cursor {cursor:?} is expired or beyond the end: {e}")),
        other => other.into(),
    })?;
    if records.is_empty() && closed {
        // §5: a CLOSED shard read to its end answers InvalidShardOperation — what both SDKs'
        // consumers take as "this shard is done" (pydatahub ShardSealedException, Go
        // ShardSealedError).
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidShardOperation", format!("shard {shard} is closed and has been read to its end")));
    }
    let payloads = records
        .iter()
        .map(|r| StoredPayload::decode(&r.payload).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", format!("record {}: {e}", r.sequence))))
        .collect::<ApiResult<Vec<_>>>()?;
    let next = records.last().map_or(from, |r| r.sequence + 1);
    let b = log.bounds();
    let (data, origins) = payloads.into_iter().map(|p| (p.data, p.origin)).unzip();
    Ok(Got {
        next_cursor: encode_cursor(next),
        start_seq: records.first().map_or(from, |r| r.sequence) as i64,
        latest_seq: b.next as i64 - 1,
        latest_time: b.latest_time.unwrap_or(-1),
        records,
        data,
        origins,
    })
}

fn subscription_json(s: &cdc_datalog::Subscription) -> Value {
    json!({"SubId": s.sub_id, "TopicName": s.topic, "Comment": s.comment, "CreateTime": s.create_time, "LastModifyTime": s.last_modify_time,
           "IsOwner": true, "State": s.state, "Type": s.kind})
}

fn subscriptions_post(req: &Req, topic: &Topic, topic_name: &str) -> ApiResult<Reply> {
    let body = req.json()?;
    match action(&body) {
        "create" => {
            let id = topic.subscriptions().create(topic_name, body.get("Comment").and_then(Value::as_str).unwrap_or(""))?;
            Ok(Reply::Json(StatusCode::CREATED, json!({"SubId": id})))
        }
        "list" => {
            let page = opt_int(&body, "PageIndex")?.unwrap_or(1).max(1) as usize;
            let size = opt_int(&body, "PageSize")?.unwrap_or(10).clamp(1, 100) as usize;
            let search = body.get("Search").and_then(Value::as_str).unwrap_or("");
            let all: Vec<_> = topic.subscriptions().list().into_iter().filter(|s| search.is_empty() || s.comment.contains(search) || s.sub_id.contains(search)).collect();
            let page_items: Vec<Value> = all.iter().skip((page - 1) * size).take(size).map(subscription_json).collect();
            Ok(Reply::Json(StatusCode::OK, json!({"TotalCount": all.len(), "Subscriptions": page_items})))
        }
        other => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!("subscriptions action {other:?} is not supported"))),
    }
}

fn shard_list(topic: &Topic, v: &Value, key: &str) -> ApiResult<Vec<u32>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let ids = items.iter().map(|i| i.as_str().map(str::to_string).or_else(|| i.as_i64().map(|n| n.to_string()))).collect::<Option<Vec<_>>>();
            let ids = ids.ok_or_else(|| ApiError::invalid(format!("{key} must list shard ids")))?;
            Ok(topic.parse_shards(ids.iter().map(String::as_str))?)
        }
        Some(_) => Err(ApiError::invalid(format!("{key} must be a list"))),
    }
}

fn subscription(req: &Req, topic: &Topic, sub: &str) -> ApiResult<Reply> {
    match req.method {
        Method::GET => Ok(Reply::Json(StatusCode::OK, subscription_json(&topic.subscriptions().get(sub)?))),
        Method::PUT => {
            let body = req.json()?;
            let state = opt_int(&body, "State")?.map(|s| u8::try_from(s).map_err(|_| ApiError::invalid("State must be 0 or 1"))).transpose()?;
            topic.subscriptions().update_meta(sub, body.get("Comment").and_then(Value::as_str), state)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        Method::DELETE => {
            topic.delete_subscription(sub)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        Method::POST => {
            let body = req.json()?;
            let consumer = || str_field(&body, "ConsumerId");
            match action(&body) {
                "joinGroup" => {
                    let j = topic.join_group(sub, opt_int(&body, "SessionTimeout")?.unwrap_or(cdc_datalog::MIN_SESSION_TIMEOUT_MS))?;
                    Ok(Reply::Json(StatusCode::OK, json!({"ConsumerId": j.consumer_id, "VersionId": j.version_id, "SessionTimeout": j.session_timeout_ms})))
                }
                "heartBeat" => {
                    let a = topic.heartbeat(sub, consumer()?, &shard_list(topic, &body, "ReadEndShardList")?)?;
                    let shards: Vec<String> = a.shards.iter().map(u32::to_string).collect();
                    Ok(Reply::Json(StatusCode::OK, json!({"PlanVersion": a.plan_version, "ShardList": shards, "TotalPlan": a.total_plan})))
                }
                "syncGroup" => {
                    topic.sync_group(sub, consumer()?, &shard_list(topic, &body, "ReadEndShardList")?)?;
                    Ok(Reply::Empty(StatusCode::OK))
                }
                "leaveGroup" => {
                    topic.leave_group(sub, consumer()?)?;
                    Ok(Reply::Empty(StatusCode::OK))
                }
                other => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!("subscription action {other:?} is not supported"))),
            }
        }
        _ => Err(bad_method(req)),
    }
}

fn offset_json(o: &Offset) -> Value {
    let mut v = json!({"Sequence": o.sequence, "Timestamp": o.timestamp, "Version": o.version, "BatchIndex": o.batch_index});
    if let Some(s) = o.session_id {
        v["SessionId"] = s.into();
    }
    v
}

fn offsets_reply(map: BTreeMap<u32, Offset>) -> Reply {
    let offsets: Map<String, Value> = map.iter().map(|(k, o)| (k.to_string(), offset_json(o))).collect();
    Reply::Json(StatusCode::OK, json!({"Offsets": offsets}))
}

fn offsets(req: &Req, topic: &Topic, sub: &str) -> ApiResult<Reply> {
    let body = req.json()?;
    match (&req.method, action(&body)) {
        (&Method::POST, "open") => {
            let shards = shard_list(topic, &body, "ShardIds")?;
            Ok(offsets_reply(topic.subscriptions().open_sessions(sub, &shards)?))
        }
        (&Method::POST, "get") => {
            let mut shards = shard_list(topic, &body, "ShardIds")?;
            if shards.is_empty() {
                shards = topic.shard_ids();
            }
            Ok(offsets_reply(topic.subscriptions().offsets(sub, &shards)?))
        }
        (&Method::PUT, "commit") | (&Method::PUT, "reset") => {
            let map = body.get("Offsets").and_then(Value::as_object).ok_or_else(|| ApiError::invalid("Offsets is missing"))?;
            let reset = action(&body) == "reset";
            let mut commits = BTreeMap::new();
            let mut resets = BTreeMap::new();
            for (shard, o) in map {
                let id = topic.shard(shard)?.id();
                let sequence = opt_int(o, "Sequence")?.unwrap_or(-1);
                let timestamp = opt_int(o, "Timestamp")?.unwrap_or(-1);
                let batch_index = opt_int(o, "BatchIndex")?.unwrap_or(0);
                if reset {
                    resets.insert(id, (sequence, timestamp, batch_index));
                } else {
                    let session_id = match o.get("SessionId") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        _ => String::new(),
                    };
                    commits.insert(id, OffsetCommit { sequence, timestamp, batch_index, version: opt_int(o, "Version")?.unwrap_or(0), session_id });
                }
            }
            if reset {
                topic.subscriptions().reset(sub, &resets)?;
            } else {
                topic.subscriptions().commit(sub, &commits)?;
            }
            Ok(Reply::Empty(StatusCode::OK))
        }
        (_, other) => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!("offsets action {other:?} with {} is not supported", req.method))),
    }
}
