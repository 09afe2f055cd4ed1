//! A local Lambda service for one function: the Invoke API that callers (the relay's Lambda
//! target, `aws lambda invoke`) use, and the Runtime API that the function's bootstrap polls —
//! the two halves the AWS service joins. Synchronous (`RequestResponse`) invocations only, one
//! at a time, as one warm sandbox would take them.
//!
//! A function error comes back as AWS returns it: status 200 with `X-Amz-Function-Error:
//! Unhandled` and the error document as the body. A runtime that dies mid-invocation is noticed
//! either by its next `GET …/invocation/next` (a restarted bootstrap asks again without having
//! answered: the open invocation fails with `Runtime.ExitError`) or by the function timeout
//! (`Sandbox.Timedout`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime";
/// Lambda's limit on a synchronous invocation's request and response payloads.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// How one invocation ended, as the invoker saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeOutcome {
    /// The handler's response document.
    Success(Value),
    /// A function error: `errorType` and the whole error document.
    FunctionError { error_type: String, body: Value },
}

/// One finished invocation, kept for tests and for the `invocations()` report.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Value,
    pub outcome: InvokeOutcome,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<InvokeOutcome>,
}

struct Shared {
    function_name: String,
    timeout: Duration,
    next_id: AtomicU64,
    queue: Mutex<VecDeque<Pending>>,
    arrived: Notify,
    /// Handed to the runtime, not answered yet: request id → (payload, reply).
    in_flight: Mutex<HashMap<String, (Bytes, oneshot::Sender<InvokeOutcome>)>>,
    finished: Mutex<Vec<Invocation>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn finish(&self, request_id: &str, payload: &[u8], outcome: InvokeOutcome) {
        lock(&self.finished).push(Invocation {
            request_id: request_id.to_string(),
            payload: serde_json::from_slice(payload).unwrap_or(Value::Null),
            outcome,
        });
    }
}

/// The service, listening on 127.0.0.1 until dropped.
pub struct LocalLambda {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalLambda {
    /// Starts the service for `function_name` on a free port of 127.0.0.1; an invocation not
    /// answered within `timeout` fails with `Sandbox.Timedout`.
    pub async fn start(function_name: impl Into<String>, timeout: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            function_name: function_name.into(),
            timeout,
            next_id: AtomicU64::new(1),
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            finished: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            // The handlers check Lambda's limit and answer as Lambda does (not axum's bare 413).
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "local Lambda service stopped");
            }
        });
        Ok(Self { addr, shared, server })
    }

    /// `host:port` for the bootstrap's `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// Base URL of the Invoke API (the relay's Lambda endpoint).
    pub fn invoke_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment a bootstrap needs to run against this service.
    pub fn bootstrap_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.shared.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ]
    }

    /// Invokes the function synchronously, as the Invoke API does for a `RequestResponse`
    /// call but without HTTP: for callers in the same process (a test acting as a schedule).
    pub async fn invoke(&self, payload: &Value) -> InvokeOutcome {
        let bytes = Bytes::from(serde_json::to_vec(payload).unwrap_or_default());
        run_invocation(&self.shared, bytes).await.1
    }

    /// Every finished invocation, in the order they finished.
    pub fn invocations(&self) -> Vec<Invocation> {
        lock(&self.shared.finished).clone()
    }
}

async fn invoke(State(shared): State<Arc<Shared>>, Path(name): Path<String>, headers: HeaderMap, payload: Bytes) -> Response {
    if name != shared.function_name {
        let mut response = (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"Type": "User", "message": format!("Function not found: {name}")})),
        )
            .into_response();
        response.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static("ResourceNotFoundException"));
        return response;
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        let mut response = (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(json!({"Type": "User", "message": format!("{} byte payload is too large for the RequestResponse invocation type ({MAX_PAYLOAD_BYTES} byte limit)", payload.len())})),
        )
            .into_response();
        response.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static("RequestTooLargeException"));
        return response;
    }
    match headers.get("x-amz-invocation-type").and_then(|v| v.to_str().ok()) {
        None | Some("RequestResponse") => {}
        Some("DryRun") => return StatusCode::NO_CONTENT.into_response(),
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"Type": "User", "message": format!("invocation type {other} is not supported by the local Lambda service; use RequestResponse")})),
            )
                .into_response()
        }
    }
    let (request_id, outcome) = run_invocation(&shared, payload).await;
    let mut response = match &outcome {
        InvokeOutcome::Success(body) => (StatusCode::OK, axum::Json(body.clone())).into_response(),
        InvokeOutcome::FunctionError { body, .. } => {
            let mut r = (StatusCode::OK, axum::Json(body.clone())).into_response();
            r.headers_mut().insert("X-Amz-Function-Error", HeaderValue::from_static("Unhandled"));
            r
        }
    };
    response.headers_mut().insert("X-Amz-Executed-Version", HeaderValue::from_static("$LATEST"));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    response
}

/// Queues an invocation for the runtime and waits for its outcome (or the function timeout):
/// what the Invoke API does once the request is accepted.
async fn run_invocation(shared: &Shared, payload: Bytes) -> (String, InvokeOutcome) {
    let request_id = format!("local-{:08}", shared.next_id.fetch_add(1, Ordering::Relaxed));
    let (reply, answer) = oneshot::channel();
    lock(&shared.queue).push_back(Pending { request_id: request_id.clone(), payload: payload.clone(), reply });
    shared.arrived.notify_one();

    let outcome = match tokio::time::timeout(shared.timeout, answer).await {
        Ok(Ok(outcome)) => outcome,
        // Dropped sender: cannot happen while the service runs; report it as the service would.
        Ok(Err(_)) => InvokeOutcome::FunctionError {
            error_type: "ServiceException".into(),
            body: json!({"errorType": "ServiceException", "errorMessage": "the invocation was lost"}),
        },
        Err(_) => {
            lock(&shared.queue).retain(|p| p.request_id != request_id);
            lock(&shared.in_flight).remove(&request_id);
            let message = format!("{request_id} Task timed out after {:.2} seconds", shared.timeout.as_secs_f64());
            let outcome = InvokeOutcome::FunctionError {
                error_type: "Sandbox.Timedout".into(),
                body: json!({"errorType": "Sandbox.Timedout", "errorMessage": message}),
            };
            shared.finish(&request_id, &payload, outcome.clone());
            outcome
        }
    };
    (request_id, outcome)
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    // A bootstrap answers before it asks again, so an open invocation here means the runtime
    // that took it is gone (crashed, killed, restarted).
    let abandoned: Vec<_> = lock(&shared.in_flight).drain().collect();
    for (request_id, (payload, reply)) in abandoned {
        let body = json!({
            "errorType": "Runtime.ExitError",
            "errorMessage": format!("RequestId: {request_id} Error: Runtime exited without providing a reason"),
        });
        let outcome = InvokeOutcome::FunctionError { error_type: "Runtime.ExitError".into(), body };
        shared.finish(&request_id, &payload, outcome.clone());
        let _ = reply.send(outcome);
    }
    loop {
        let arrived = shared.arrived.notified();
        let pending = lock(&shared.queue).pop_front();
        if let Some(p) = pending {
            // The invoker may have given up (timeout) while this waited in the queue.
            if p.reply.is_closed() {
                continue;
            }
            let deadline = SystemTime::now()
                .checked_add(shared.timeout)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let arn = format!("arn:aws:lambda:us-east-1:000000000000:function:{}", shared.function_name);
            lock(&shared.in_flight).insert(p.request_id.clone(), (p.payload.clone(), p.reply));
            let mut response = (StatusCode::OK, p.payload).into_response();
            let h = response.headers_mut();
            for (name, value) in [
                ("Lambda-Runtime-Aws-Request-Id", p.request_id.as_str()),
                ("Lambda-Runtime-Deadline-Ms", deadline.to_string().as_str()),
                ("Lambda-Runtime-Invoked-Function-Arn", arn.as_str()),
                ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
                ("Content-Type", "application/json"),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(name, v);
                }
            }
            return response;
        }
        arrived.await;
    }
}

fn complete(shared: &Shared, request_id: &str, outcome: InvokeOutcome) -> Response {
    let Some((payload, reply)) = lock(&shared.in_flight).remove(request_id) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errorType": "InvalidRequestID", "errorMessage": format!("no open invocation {request_id}")})),
        )
            .into_response();
    };
    shared.finish(request_id, &payload, outcome.clone());
    let _ = reply.send(outcome);
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

async fn respond(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    complete(&shared, &id, InvokeOutcome::Success(value))
}

async fn fail(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({"errorMessage": String::from_utf8_lossy(&body)}));
    let error_type = body
        .get("errorType")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| headers.get("Lambda-Runtime-Function-Error-Type").and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| "Unhandled".into());
    complete(&shared, &id, InvokeOutcome::FunctionError { error_type, body })
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    tracing::error!(function = %shared.function_name, error = %String::from_utf8_lossy(&body), "{RUNTIME_PREFIX}/init/error: the bootstrap failed to start");
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}
