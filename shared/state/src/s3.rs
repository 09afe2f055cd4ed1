//! S3 and S3-compatible object stores (feature `s3`): connection settings, a blocking facade
//! over the async AWS SDK, and [`S3Backend`], the [`Backend`] whose conditional writes make
//! two writers unable to both commit.
//!
//! | [`PutMode`]            | request                              | refused with               |
//! |------------------------|--------------------------------------|----------------------------|
//! | `Overwrite`            | `PutObject`                          | —                          |
//! | `Create`               | `PutObject` + `If-None-Match: *`     | 412 → `AlreadyExists`      |
//! | `Update(etag)`         | `PutObject` + `If-Match: <etag>`     | 412 (or 404) → `Precondition` |
//!
//! Versions are ETags, quoted as the server sends them. After a refused `Update` a `HeadObject`
//! fills in the stored version for the error (best effort: it may already have moved on).
//!
//! The SDK is asynchronous and [`Backend`] is not: an [`S3Connection`] owns a small tokio
//! runtime and runs each request on it, so it can be called from any thread — plain threads,
//! `spawn_blocking`, `block_in_place`, even (briefly) an async task — without "runtime within a
//! runtime" panics.
//!
//! HTTP: rustls with the *ring* provider (the SDK's default HTTPS client pulls aws-lc-rs, which
//! needs cmake). Plain `http://` endpoints work too (test servers). Transient failures (5xx,
//! throttling, timeouts, dropped connections) are retried by the SDK's standard strategy with
//! exponential backoff up to [`S3Options::with_max_retries`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use aws_sdk_s3;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use crate::backend::{validate_key, validate_prefix, Backend, GetResult, ObjectMeta, PutMode, Version};
use crate::error::BackendError;

/// Environment variables read by [`S3Options::from_env`]: the same names as the `s3.*`
/// settings of cdc-config, so a binary that only knows the checkpoint URI (`s3://…`) still
/// talks to the configured endpoint.
pub const ENV_ENDPOINT: &str = "S3_ENDPOINT";
pub const ENV_REGION: &str = "S3_REGION";
pub const ENV_PATH_STYLE: &str = "S3_PATH_STYLE_ACCESS";
pub const ENV_ACCESS_KEY: &str = "S3_ACCESS_KEY";
pub const ENV_SECRET_KEY: &str = "S3_SECRET_KEY";

/// Region used when neither the options nor the default chain name one (S3-compatible servers
/// usually ignore it, but SigV4 needs one).
const FALLBACK_REGION: &str = "us-east-1";

/// How to reach an S3-compatible store. Unset values come from the AWS default chain
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles,
/// web identity, ECS/IMDS).
#[derive(Clone, Default)]
pub struct S3Options {
    endpoint: Option<String>,
    region: Option<String>,
    path_style: bool,
    credentials: Option<(String, String)>,
    max_retries: u32,
    initial_backoff: Option<Duration>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            // The key id is not secret, the secret key is never printed.
            .field("access_key", &self.credentials.as_ref().map(|(id, _)| id))
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    /// Everything from the AWS default chain; 3 retries.
    pub fn new() -> Self {
        Self {
            max_retries: 3,
            ..Self::default()
        }
    }

    /// [`new`](Self::new) plus `S3_ENDPOINT`, `S3_REGION`, `S3_PATH_STYLE_ACCESS`,
    /// `S3_ACCESS_KEY` and `S3_SECRET_KEY` when set (the key pair only when both are).
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let mut options = Self::new();
        options.endpoint = var(ENV_ENDPOINT);
        options.region = var(ENV_REGION);
        options.path_style = var(ENV_PATH_STYLE).is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
        });
        if let (Some(id), Some(secret)) = (var(ENV_ACCESS_KEY), var(ENV_SECRET_KEY)) {
            options.credentials = Some((id, secret));
        }
        options
    }

    /// The endpoint URL (`http://127.0.0.1:9000`, `https://oss-cn-hangzhou.aliyuncs.com`).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// `endpoint/bucket/key` instead of `bucket.endpoint/key` (MinIO, moto, most self-hosted
    /// stores).
    #[must_use]
    pub fn with_path_style(mut self, path_style: bool) -> Self {
        self.path_style = path_style;
        self
    }

    /// A static key pair instead of the default credential chain.
    #[must_use]
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// Retries of a request that failed transiently (5xx, throttling, timeout, connection
    /// error), with exponential backoff, before the error is returned.
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first backoff pause (the SDK doubles it per retry, with jitter, up to 20 s).
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = Some(backoff);
        self
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Builds the client (resolving the default chain: no request is sent yet).
    pub fn connect(&self) -> Result<S3Connection, S3Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // Requests are I/O-bound and issued one at a time per caller thread.
            .worker_threads(2)
            .thread_name("cdc-s3")
            .enable_all()
            .build()
            .map_err(|source| S3Error::Runtime { source })?;
        let runtime = Arc::new(OwnedRuntime(Some(runtime)));
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut retry = RetryConfig::standard().with_max_attempts(self.max_retries.saturating_add(1));
        if let Some(backoff) = self.initial_backoff {
            retry = retry.with_initial_backoff(backoff);
        }
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            // One attempt of one request; a part upload of 8 MiB fits comfortably.
            .operation_attempt_timeout(Duration::from_secs(120))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some((id, secret)) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "cdc-config",
            ));
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        let path_style = self.path_style;
        let handle = RuntimeHandle(runtime.clone());
        let client = handle
            .block_on(async move {
                let shared = loader.load().await;
                let mut builder = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(path_style)
                    // Many S3-compatible stores do not accept the newer checksum trailers;
                    // send checksums only where the API requires them.
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                if shared.region().is_none() {
                    builder = builder.region(Region::new(FALLBACK_REGION));
                }
                aws_sdk_s3::Client::from_conf(builder.build())
            })
            .ok_or(S3Error::RuntimeStopped)?;
        Ok(S3Connection {
            client,
            runtime: handle,
            max_retries: self.max_retries,
        })
    }
}

/// Shuts the runtime down without waiting when the last connection is dropped: dropping a
/// runtime normally blocks, which panics inside async code.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

#[derive(Clone)]
struct RuntimeHandle(Arc<OwnedRuntime>);

impl RuntimeHandle {
    /// Runs `future` on the owned runtime and waits for it from this (any) thread. `None` if
    /// the task did not finish (it panicked, or the runtime is shutting down).
    fn block_on<F>(&self, future: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.0 .0.as_ref()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // Spawned rather than `block_on`: spawning works from every context, and a channel
        // receive is an ordinary blocking wait.
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().ok()
    }
}

/// A client and the runtime its requests run on; cheap to clone.
#[derive(Clone)]
pub struct S3Connection {
    client: aws_sdk_s3::Client,
    runtime: RuntimeHandle,
    max_retries: u32,
}

impl fmt::Debug for S3Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Connection")
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl S3Connection {
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Retries configured per request (attempts = retries + 1).
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Runs `future` (typically an SDK request on a clone of [`client`](Self::client)) to
    /// completion on this connection's runtime, blocking the calling thread.
    pub fn block_on<F, T>(&self, future: F) -> Result<T, S3Error>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime.block_on(future).ok_or(S3Error::RuntimeStopped)
    }

    /// Creates `bucket` (tests and first-time set-up); an existing bucket owned by us is fine.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let client = self.client.clone();
        let name = bucket.to_owned();
        let result = self.block_on(async move { client.create_bucket().bucket(name).send().await })?;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(S3Error::request("CreateBucket", format!("s3://{bucket}"), error)),
        }
    }
}

/// A failed S3 request or client set-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// A request failed (after the configured retries, for transient errors).
    #[error("S3 {operation} of {location} failed{}: {message}", status_suffix(*.status, .code.as_deref()))]
    Request {
        operation: &'static str,
        location: String,
        /// HTTP status, when the server answered.
        status: Option<u16>,
        /// S3 error code (`NoSuchKey`, `SlowDown`, …), when the server sent one.
        code: Option<String>,
        /// The SDK's full error chain, as text.
        message: String,
    },

    /// The tokio runtime for S3 requests could not be started.
    #[error("cannot start the runtime for S3 requests")]
    Runtime {
        #[source]
        source: std::io::Error,
    },

    /// A request task ended without a result (the runtime is shutting down, or it panicked).
    #[error("an S3 request ended without a result (runtime stopped)")]
    RuntimeStopped,
}

fn status_suffix(status: Option<u16>, code: Option<&str>) -> String {
    match (status, code) {
        (Some(status), Some(code)) => format!(" (HTTP {status} {code})"),
        (Some(status), None) => format!(" (HTTP {status})"),
        (None, Some(code)) => format!(" ({code})"),
        (None, None) => String::new(),
    }
}

impl S3Error {
    /// Wraps an SDK error of `operation` on `location`.
    pub fn request<E>(operation: &'static str, location: String, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        S3Error::Request {
            operation,
            status: http_status(&error),
            code: error.code().map(str::to_owned),
            message: DisplayErrorContext(&error).to_string(),
            location,
        }
    }

    /// The HTTP status of a failed request, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Request { status, .. } => *status,
            _ => None,
        }
    }

    /// The S3 error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Request { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// The HTTP status of a failed SDK call, if the server answered.
pub fn http_status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|response| response.status().as_u16())
}

/// How long a multipart upload under a state prefix must have been open before
/// [`Backend::cleanup_incomplete`] aborts it. The backend itself never uploads in parts, so an
/// upload there belongs to someone else; only clearly abandoned ones are removed (as an S3
/// lifecycle rule would).
pub const DEFAULT_STALE_UPLOAD_AGE: Duration = Duration::from_secs(24 * 3600);

/// Attempts at a conditional write that the server refuses with 409 (a concurrent conditional
/// write to the same key is in flight, as AWS reports it) before the error is returned.
const CONFLICT_ATTEMPTS: u32 = 8;

/// A [`Backend`] on an S3 bucket under a key prefix.
#[derive(Clone)]
pub struct S3Backend {
    connection: S3Connection,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    stale_upload_age: Duration,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Backend(s3://{}/{})", self.bucket, self.prefix)
    }
}

impl S3Backend {
    /// Keys under `prefix` (leading/trailing `/` ignored; empty for the bucket root) of
    /// `bucket`. Sends no request.
    pub fn new(connection: S3Connection, bucket: &str, prefix: &str) -> Result<Self, BackendError> {
        let trimmed = prefix.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            let prefix = format!("{trimmed}/");
            validate_prefix(&prefix)?;
            prefix
        };
        Ok(Self {
            connection,
            bucket: bucket.to_owned(),
            prefix,
            stale_upload_age: DEFAULT_STALE_UPLOAD_AGE,
        })
    }

    /// Connects with `options` to `bucket` under `prefix`.
    pub fn open(bucket: &str, prefix: &str, options: &S3Options) -> Result<Self, BackendError> {
        let connection = options
            .connect()
            .map_err(|error| other(format!("s3://{bucket}/{prefix}"), error))?;
        Self::new(connection, bucket, prefix)
    }

    /// See [`DEFAULT_STALE_UPLOAD_AGE`].
    #[must_use]
    pub fn with_stale_upload_age(mut self, age: Duration) -> Self {
        self.stale_upload_age = age;
        self
    }

    pub fn connection(&self) -> &S3Connection {
        &self.connection
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, empty or ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn run<T: Send + 'static>(
        &self,
        location: &str,
        future: impl Future<Output = Result<T, BackendError>> + Send + 'static,
    ) -> Result<T, BackendError> {
        self.connection
            .block_on(future)
            .map_err(|error| other(location.to_owned(), error))?
    }

    /// The stored version of `key`, `None` if it is missing.
    fn head_version(&self, key: &str) -> Result<Option<Version>, BackendError> {
        let client = self.connection.client.clone();
        let (bucket, object) = (self.bucket.clone(), self.object_key(key));
        let location = self.locate(key);
        let at = location.clone();
        self.run(&location, async move {
            match client.head_object().bucket(bucket).key(object).send().await {
                Ok(head) => Ok(head.e_tag().map(Version::new)),
                Err(error) if http_status(&error) == Some(404) => Ok(None),
                Err(error) => Err(other(at.clone(), S3Error::request("HeadObject", at, error))),
            }
        })
    }
}

fn other(location: String, error: S3Error) -> BackendError {
    BackendError::Other {
        location,
        source: Box::new(error),
    }
}

/// What a conditional `PutObject` came back with.
enum PutOutcome {
    Stored(Version),
    /// 412: the condition did not hold.
    PreconditionFailed,
    /// 404 to `If-Match`: AWS's answer when the key does not exist.
    Missing,
    /// 409: another conditional write of the key is in flight; try again.
    Conflict,
}

impl Backend for S3Backend {
    fn get(&self, key: &str) -> Result<GetResult, BackendError> {
        validate_key(key)?;
        let client = self.connection.client.clone();
        let (bucket, object) = (self.bucket.clone(), self.object_key(key));
        let location = self.locate(key);
        let (at, key) = (location.clone(), key.to_owned());
        self.run(&location, async move {
            let output = match client.get_object().bucket(bucket).key(object).send().await {
                Ok(output) => output,
                Err(error) if http_status(&error) == Some(404) => {
                    return Err(BackendError::NotFound { key })
                }
                Err(error) => return Err(other(at.clone(), S3Error::request("GetObject", at, error))),
            };
            let version = Version::new(output.e_tag().unwrap_or_default());
            let bytes = output.body.collect().await.map_err(|error| BackendError::Other {
                location: at,
                source: Box::new(error),
            })?;
            Ok(GetResult {
                bytes: bytes.into_bytes().to_vec(),
                version,
            })
        })
    }

    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Version, BackendError> {
        validate_key(key)?;
        let location = self.locate(key);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = self.connection.client.clone();
            let (bucket, object) = (self.bucket.clone(), self.object_key(key));
            let body = bytes.to_vec();
            let condition = mode.clone();
            let at = location.clone();
            let outcome = self.run(&location, async move {
                let mut request = client
                    .put_object()
                    .bucket(bucket)
                    .key(object)
                    .body(ByteStream::from(body));
                request = match &condition {
                    PutMode::Overwrite => request,
                    PutMode::Create => request.if_none_match("*"),
                    PutMode::Update(version) => request.if_match(version.as_str()),
                };
                match request.send().await {
                    Ok(output) => Ok(PutOutcome::Stored(Version::new(output.e_tag().unwrap_or_default()))),
                    Err(error) => match (http_status(&error), &condition) {
                        (Some(412), _) => Ok(PutOutcome::PreconditionFailed),
                        (Some(404), PutMode::Update(_)) => Ok(PutOutcome::Missing),
                        (Some(409), PutMode::Create | PutMode::Update(_)) => Ok(PutOutcome::Conflict),
                        _ => Err(other(at.clone(), S3Error::request("PutObject", at, error))),
                    },
                }
            })?;
            match (outcome, &mode) {
                (PutOutcome::Stored(version), _) => return Ok(version),
                (PutOutcome::Conflict, _) if attempt < CONFLICT_ATTEMPTS => {
                    // The concurrent write finishes within a request time; then the server
                    // answers 200 or 412.
                    std::thread::sleep(Duration::from_millis(20 << attempt.min(6)));
                }
                (PutOutcome::PreconditionFailed | PutOutcome::Conflict, PutMode::Create) => {
                    return Err(BackendError::AlreadyExists { key: key.to_owned() })
                }
                (PutOutcome::PreconditionFailed | PutOutcome::Conflict, PutMode::Update(expected)) => {
                    return Err(BackendError::Precondition {
                        key: key.to_owned(),
                        expected: expected.clone(),
                        actual: self.head_version(key)?,
                    })
                }
                (PutOutcome::Missing, PutMode::Update(expected)) => {
                    return Err(BackendError::Precondition {
                        key: key.to_owned(),
                        expected: expected.clone(),
                        actual: None,
                    })
                }
                // An unconditional put is never refused by a precondition.
                (_, _) => {
                    return Err(BackendError::Other {
                        location,
                        source: "unexpected precondition answer to an unconditional PutObject".into(),
                    })
                }
            }
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        validate_prefix(prefix)?;
        let client = self.connection.client.clone();
        let bucket = self.bucket.clone();
        let root = self.prefix.clone();
        let full = self.object_key(prefix);
        let location = self.locate(prefix);
        let at = location.clone();
        self.run(&location, async move {
            let mut objects = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&full)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|error| other(at.clone(), S3Error::request("ListObjectsV2", at.clone(), error)))?;
                for object in page.contents() {
                    let Some(key) = object.key().and_then(|k| k.strip_prefix(root.as_str())) else {
                        continue;
                    };
                    // Keys this backend could not have written (a console's `dir/` marker,
                    // `..` segments) are not values of it.
                    if validate_key(key).is_err() {
                        continue;
                    }
                    objects.push(ObjectMeta {
                        key: key.to_owned(),
                        size: object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    });
                }
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                    _ => break,
                }
            }
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(objects)
        })
    }

    fn delete(&self, key: &str) -> Result<(), BackendError> {
        validate_key(key)?;
        let client = self.connection.client.clone();
        let (bucket, object) = (self.bucket.clone(), self.object_key(key));
        let location = self.locate(key);
        let at = location.clone();
        self.run(&location, async move {
            match client.delete_object().bucket(bucket).key(object).send().await {
                Ok(_) => Ok(()),
                Err(error) if http_status(&error) == Some(404) => Ok(()),
                Err(error) => Err(other(at.clone(), S3Error::request("DeleteObject", at, error))),
            }
        })
    }

    fn cleanup_incomplete(&self, prefix: &str) -> Result<usize, BackendError> {
        validate_prefix(prefix)?;
        let client = self.connection.client.clone();
        let bucket = self.bucket.clone();
        let full = self.object_key(prefix);
        let location = self.locate(prefix);
        let at = location.clone();
        let stale_before = SystemTime::now()
            .checked_sub(self.stale_upload_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.run(&location, async move {
            let uploads = match list_uploads(&client, &bucket, &full).await {
                Ok(uploads) => uploads,
                // Some S3-compatible servers (s3s-fs) cannot list uploads; they cannot have
                // ones we could find either, and clean-up is best effort.
                Err(error) if error.status() == Some(501) => {
                    tracing::debug!(bucket = %bucket, error = %error, "the server cannot list multipart uploads; nothing cleaned up");
                    return Ok(0);
                }
                Err(error) => return Err(other(at.clone(), error)),
            };
            let mut aborted = 0;
            for upload in uploads {
                if upload.initiated.is_some_and(|t| t > stale_before) {
                    continue;
                }
                match client
                    .abort_multipart_upload()
                    .bucket(&bucket)
                    .key(&upload.key)
                    .upload_id(&upload.upload_id)
                    .send()
                    .await
                {
                    Ok(_) => aborted += 1,
                    Err(error) if http_status(&error) == Some(404) => {}
                    Err(error) => {
                        return Err(other(
                            at.clone(),
                            S3Error::request("AbortMultipartUpload", at.clone(), error),
                        ))
                    }
                }
                tracing::info!(bucket = %bucket, key = %upload.key, "aborted an abandoned multipart upload");
            }
            Ok(aborted)
        })
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }
}

/// One open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<SystemTime>,
}

/// Every open multipart upload of `bucket` whose key starts with `prefix`.
pub async fn list_uploads(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<OpenUpload>, S3Error> {
    let mut uploads = Vec::new();
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await
            .map_err(|error| {
                S3Error::request("ListMultipartUploads", format!("s3://{bucket}/{prefix}"), error)
            })?;
        for upload in page.uploads() {
            if let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) {
                uploads.push(OpenUpload {
                    key: key.to_owned(),
                    upload_id: upload_id.to_owned(),
                    initiated: upload.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                });
            }
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
        if key_marker.is_none() && id_marker.is_none() {
            break;
        }
    }
    Ok(uploads)
}

pub mod testing {
    //! A throwaway S3-compatible server process for tests and local experiments: moto
    //! (`moto_server`, in memory) or s3s-fs (on disk), on a free loopback port, killed on drop.

    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::{S3Connection, S3Options};

    /// Access key pair the servers are started with (moto accepts any).
    pub const ACCESS_KEY: &str = "cdc-test-key";
    pub const SECRET_KEY: &str = "cdc-test-secret";

    /// How long a server may take to accept connections (moto needs ~2 s).
    const START_DEADLINE: Duration = Duration::from_secs(60);

    /// A running local S3-compatible server.
    #[derive(Debug)]
    pub struct LocalS3Server {
        child: Child,
        endpoint: String,
        name: &'static str,
    }

    impl LocalS3Server {
        /// `moto_server -H 127.0.0.1 -p PORT`. Errors if `moto_server` is not on `PATH`
        /// (`pip install 'moto[server]'`) or does not come up.
        pub fn moto() -> Result<Self, String> {
            let port = free_port()?;
            let mut command = Command::new("moto_server");
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            Self::start("moto_server", command, port)
        }

        /// `s3s-fs --host 127.0.0.1 --port PORT --access-key K --secret-key S DIR`. Errors if
        /// `s3s-fs` is not on `PATH` (`cargo install s3s-fs --features binary`).
        pub fn s3s_fs(dir: &Path) -> Result<Self, String> {
            let port = free_port()?;
            let mut command = Command::new("s3s-fs");
            command
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(dir);
            Self::start("s3s-fs", command, port)
        }

        /// Whether `program` can be found on `PATH` (to skip, with a reason, tests of a server
        /// that is not installed).
        pub fn installed(program: &str) -> bool {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            })
        }

        fn start(name: &'static str, mut command: Command, port: u16) -> Result<Self, String> {
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {name}: {e}"))?;
            let mut server = Self {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                name,
            };
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + START_DEADLINE;
            loop {
                if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                    return Ok(server);
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(format!("{name} exited before accepting connections: {status}"));
                }
                if Instant::now() > deadline {
                    return Err(format!("{name} did not accept connections on {address} within {START_DEADLINE:?}"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        pub fn endpoint(&self) -> &str {
            &self.endpoint
        }

        pub fn name(&self) -> &'static str {
            self.name
        }

        /// Options reaching this server: endpoint, path style, the test key pair, and fast
        /// retries.
        pub fn options(&self) -> S3Options {
            S3Options::new()
                .with_endpoint(self.endpoint.clone())
                .with_region("us-east-1")
                .with_path_style(true)
                .with_credentials(ACCESS_KEY, SECRET_KEY)
                .with_initial_backoff(Duration::from_millis(20))
        }

        /// A connection with [`options`](Self::options) and `bucket` created.
        pub fn connect_with_bucket(&self, bucket: &str) -> Result<S3Connection, String> {
            let connection = self.options().connect().map_err(|e| e.to_string())?;
            connection.create_bucket(bucket).map_err(|e| e.to_string())?;
            Ok(connection)
        }
    }

    impl Drop for LocalS3Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> Result<u16, String> {
        // The port is free when we look; the server binds it a moment later.
        TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .map_err(|e| format!("no free loopback port: {e}"))
    }
}
