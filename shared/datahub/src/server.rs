//! The DataHub-compatible HTTP server over a [`Datalog`].
//!
//! One fallback handler does the routing by hand (as the protocol dispatches on method, path
//! shape, Content-Type, `x-datahub-request-action` and the body's `Action`), so every failure
//! — including unknown paths and unreadable bodies — answers in DataHub's JSON error shape.
//! Storage calls are synchronous and may fsync, so each request's work runs on a blocking task.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cdc_datalog::{
    AppendRecord, CursorRequest, Datalog, DatalogError, Offset, OffsetCommit, RecordType, StoredRecord, Topic, TopicInfo, TopicSpec,
};
use serde_json::{json, Map, Value};

use crate::codec::{self, CodecError};
use crate::model::{decode_cursor, encode_cursor, schema_field_count, RecordData};
use crate::pb;
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
        "ShardCount": info.spec.shard_count,
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
                        if record_type == RecordType::Tuple && schema_field_count(schema).is_none() {
                            return Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidSchema", "RecordSchema is not {\"fields\": [...]}"));
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
                "ListSchema" => {
                    let info = log.topic(p, t)?.info();
                    let list: Vec<Value> = info.spec.record_schema.iter().map(|s| json!({"VersionId": 0, "RecordSchema": s, "CreateTime": info.create_time, "Creator": ""})).collect();
                    Ok(Reply::Json(StatusCode::OK, json!({"PageNumber": 1, "PageSize": list.len().max(1), "PageCount": 1, "TotalCount": list.len(), "RecordSchemaList": list})))
                }
                "GetSchema" => {
                    let info = log.topic(p, t)?.info();
                    Ok(Reply::Json(StatusCode::OK, json!({"VersionId": 0, "CreateTime": info.create_time, "Creator": "", "RecordSchema": info.spec.record_schema.unwrap_or_default()})))
                }
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

/// Shard `i` of `n` owns `[i * 2^128 / n, (i + 1) * 2^128 / n)` of the hash space.
fn shard_range(i: u32, n: u32) -> (u128, u128) {
    let step = u128::MAX / n as u128;
    let begin = step * i as u128;
    let end = if i + 1 == n { u128::MAX } else { step * (i as u128 + 1) };
    (begin, end)
}

fn list_shards(topic: &Topic) -> Value {
    let n = topic.shards().len() as u32;
    let shards: Vec<Value> = (0..n)
        .map(|i| {
            let (b, e) = shard_range(i, n);
            json!({"ShardId": i.to_string(), "State": "ACTIVE", "ClosedTime": "", "BeginHashKey": format!("{b:032X}"), "EndHashKey": format!("{e:032X}"),
                   "ParentShardIds": [], "LeftShardId": "4294967295", "RightShardId": "4294967295"})
        })
        .collect();
    json!({"Shards": shards, "Protocol": "http1.1", "Interval": 500})
}

/// Where a record goes: explicit shard, else hash key, else MD5 of the partition key, else
/// round-robin.
fn route(state: &ServerState, topic: &Topic, shard_id: Option<&str>, hash_key: Option<&str>, partition_key: Option<&str>) -> ApiResult<u32> {
    let n = topic.shards().len() as u32;
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
    Ok(match hash {
        Some(h) => (0..n).find(|i| h < shard_range(*i, n).1).unwrap_or(n - 1),
        None => (state.round_robin.fetch_add(1, Ordering::Relaxed) % n as u64) as u32,
    })
}

fn check_data(info: &TopicInfo, data: &RecordData, index: usize) -> ApiResult<()> {
    match (info.spec.record_type, data) {
        (RecordType::Blob, RecordData::Blob(_)) => Ok(()),
        (RecordType::Tuple, RecordData::Tuple(values)) => {
            let want = info.spec.record_schema.as_deref().and_then(schema_field_count);
            match want {
                Some(n) if n != values.len() => Err(ApiError::malformed(format!("record {index} has {} values, the schema has {n} fields", values.len()))),
                _ => Ok(()),
            }
        }
        (RecordType::Blob, _) => Err(ApiError::malformed(format!("record {index} is TUPLE data for a BLOB topic"))),
        (RecordType::Tuple, _) => Err(ApiError::malformed(format!("record {index} is BLOB data for a TUPLE topic"))),
    }
}

/// Appends records grouped by shard; a shard whose append fails reports its records as
/// failed (the others are written), which is what FailedRecords is for.
fn append_routed(topic: &Topic, routed: Vec<(u32, AppendRecord)>) -> Vec<(usize, String, String)> {
    let mut by_shard: BTreeMap<u32, (Vec<usize>, Vec<AppendRecord>)> = BTreeMap::new();
    for (index, (shard, record)) in routed.into_iter().enumerate() {
        let e = by_shard.entry(shard).or_default();
        e.0.push(index);
        e.1.push(record);
    }
    let mut failed = Vec::new();
    for (shard, (indexes, records)) in by_shard {
        let result = topic.shards().get(shard as usize).map(|s| s.append(&records));
        if let Some(Err(e)) = result {
            let api = ApiError::from(e);
            failed.extend(indexes.into_iter().map(|i| (i, api.code.to_string(), api.message.clone())));
        }
    }
    failed.sort();
    failed
}

fn shards_post(state: &ServerState, req: &Req, topic: &Topic) -> ApiResult<Reply> {
    let info = topic.info();
    if req.content_type().starts_with("application/x-protobuf") {
        if req.header("x-datahub-request-action") != Some("pub") {
            return Err(ApiError::invalid("protobuf body on shards needs x-datahub-request-action: pub"));
        }
        let records = pb::decode_put_records(codec::unwrap_frame(&req.body)?)?;
        let routed = pb_records(state, topic, &info, records, None)?;
        let failed = append_routed(topic, routed);
        return Ok(Reply::Binary("application/x-protobuf", codec::wrap_frame(&pb::encode_put_response(&failed))));
    }
    let body = req.json()?;
    match action(&body) {
        "pub" => {
            let records = body.get("Records").and_then(Value::as_array).ok_or_else(|| ApiError::invalid("Records is missing"))?;
            let mut routed = Vec::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                let data = RecordData::from_json(r.get("Data").unwrap_or(&Value::Null)).map_err(|e| ApiError::malformed(format!("record {i}: {e}")))?;
                check_data(&info, &data, i)?;
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
            let failed_json: Vec<Value> = failed.iter().map(|(i, c, m)| json!({"Index": i, "ErrorCode": c, "ErrorMessage": m})).collect();
            Ok(Reply::Json(StatusCode::OK, json!({"FailedRecordCount": failed.len(), "FailedRecords": failed_json})))
        }
        other => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", format!("shard action {other:?} is not supported by datahub-local"))),
    }
}

fn pb_records(state: &ServerState, topic: &Topic, info: &TopicInfo, records: Vec<pb::PbRecord>, fixed_shard: Option<u32>) -> ApiResult<Vec<(u32, AppendRecord)>> {
    let mut routed = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let data = match info.spec.record_type {
            RecordType::Blob => match r.fields.as_slice() {
                [value] => RecordData::Blob(value.clone().unwrap_or_default()),
                _ => return Err(ApiError::malformed(format!("record {i}: a BLOB record carries exactly one FieldData"))),
            },
            RecordType::Tuple => RecordData::Tuple(r.fields.into_iter().map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned())).collect()),
        };
        check_data(info, &data, i)?;
        let shard = match fixed_shard {
            Some(s) => s,
            None => route(state, topic, r.shard_id.as_deref(), r.hash_key.as_deref(), r.partition_key.as_deref())?,
        };
        routed.push((shard, AppendRecord { attributes: r.attributes, payload: data.encode() }));
    }
    Ok(routed)
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
            (Some("pub"), false) => {
                let info = topic.info();
                let id = topic.shard(shard)?.id();
                let records = pb::decode_put_records(pb)?;
                let routed = pb_records(state, topic, &info, records, Some(id))?;
                let failed = append_routed(topic, routed);
                match failed.first() {
                    Some((_, code, message)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", format!("{code}: {message}"))),
                    None => Ok(Reply::Empty(StatusCode::OK)),
                }
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
            (_, true) => Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidOperation", "the batch (x-binary) protocol is not supported by datahub-local yet; use JSON or PB")),
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
    let records = log.read(from, limit, MAX_GET_BYTES).map_err(|e| match e {
        DatalogError::SeekOutOfRange { .. } => ApiError::new(StatusCode::BAD_REQUEST, "InvalidCursor", format!("cursor {cursor:?} is expired or beyond the end: {e}")),
        other => other.into(),
    })?;
    let data = records
        .iter()
        .map(|r| RecordData::decode(&r.payload).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", format!("record {}: {e}", r.sequence))))
        .collect::<ApiResult<Vec<_>>>()?;
    let next = records.last().map_or(from, |r| r.sequence + 1);
    let b = log.bounds();
    Ok(Got {
        next_cursor: encode_cursor(next),
        start_seq: records.first().map_or(from, |r| r.sequence) as i64,
        latest_seq: b.next as i64 - 1,
        latest_time: b.latest_time.unwrap_or(-1),
        records,
        data,
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
