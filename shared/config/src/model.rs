//! The typed configuration tree that binaries read.
//!
//! Every field here is filled from exactly one row of the settings table
//! ([`crate::settings`]); the doc comment of each field names that row's key so the two can be
//! found from each other.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// Defines a closed set of values with their canonical (lower-case) spelling.
///
/// `NAMES` feeds the settings table's `Kind::Enum`, so the values accepted by the parser and
/// the values the typed enum can hold are the same list.
macro_rules! config_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        // Exhaustive on purpose: a new value should break every `match` that must handle it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted value, canonical spelling, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The canonical spelling of this value (as accepted in YAML and env vars).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Parses a canonical spelling (already normalised by the settings parser).
            pub(crate) fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

config_enum! {
    /// How the binlog connection uses TLS (`database.sslMode`). MySQL's own spellings
    /// (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`) are accepted too.
    SslMode {
        /// Plain TCP.
        Disable => "disable",
        /// TLS if the server offers it, plain otherwise.
        Prefer => "prefer",
        /// TLS, without checking the server certificate.
        Require => "require",
        /// TLS, server certificate must chain to `database.sslRootCert`.
        VerifyCa => "verify-ca",
        /// As `verify-ca`, and the certificate must name `database.host`.
        VerifyFull => "verify-full",
    }
}

config_enum! {
    /// What the capture does before streaming the binlog (`database.snapshotMode`).
    SnapshotMode {
        /// Snapshot the selected tables, then stream changes from the snapshot's position.
        Initial => "initial",
        /// No snapshot: stream from the stored (or current) binlog position.
        Never => "never",
        /// Snapshot only, then stop.
        InitialOnly => "initial_only",
    }
}

config_enum! {
    /// Where operator state lives between checkpoints (`flink.stateBackend.type`).
    StateBackend {
        /// In memory; small state.
        Hashmap => "hashmap",
        /// On local disk; large state.
        Rocksdb => "rocksdb",
    }
}

config_enum! {
    /// Leader election / failover mode (`highAvailability.mode`, `HA_MODE`).
    HaMode {
        /// No high availability: a single active instance.
        None => "none",
        /// Leader election through ZooKeeper (`highAvailability.zookeeperQuorum` required).
        Zookeeper => "zookeeper",
        /// Leader election through Kubernetes leases/ConfigMaps.
        Kubernetes => "kubernetes",
    }
}

config_enum! {
    /// File format written by the sinks (`output.format`).
    OutputFormat {
        /// One JSON object per line.
        Json => "json",
        /// Columnar Parquet.
        Parquet => "parquet",
        /// Comma-separated values.
        Csv => "csv",
    }
}

config_enum! {
    /// Compression of output files (`output.compression`).
    Compression {
        /// Uncompressed.
        None => "none",
        /// gzip.
        Gzip => "gzip",
        /// Snappy.
        Snappy => "snappy",
        /// Zstandard.
        Zstd => "zstd",
    }
}

config_enum! {
    /// Row shape of output files (`output.shape`).
    OutputShape {
        /// One row per change: the row image plus `_op`, `_ts_ms`, `_source_pos`, `_tx_id`, `_deleted`.
        Flat => "flat",
        /// Debezium-like: `before` / `after` structs, a `source` struct and `op`.
        Envelope => "envelope",
    }
}

config_enum! {
    /// Log verbosity (`logging.level`, `LOG_LEVEL`); case-insensitive, `WARNING` means `warn`.
    LogLevel {
        /// Everything.
        Trace => "trace",
        /// Debug and above.
        Debug => "debug",
        /// Info and above (default).
        Info => "info",
        /// Warnings and errors.
        Warn => "warn",
        /// Errors only.
        Error => "error",
    }
}

config_enum! {
    /// Log line format (`logging.format`, `LOG_FORMAT`).
    LogFormat {
        /// Human-readable lines.
        Text => "text",
        /// One JSON object per line.
        Json => "json",
    }
}


/// Source database (`database.*`).
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `database.host` / `DATABASE_HOST`.
    pub host: String,
    /// `database.port` / `DATABASE_PORT`.
    pub port: u16,
    /// `database.username` / `DATABASE_USERNAME`.
    pub username: String,
    /// `database.password` / `DATABASE_PASSWORD`. Always `Some` for roles that connect to the
    /// database (load fails otherwise); may be `None` for the others.
    pub password: Option<Secret>,
    /// `database.schema` / `DATABASE_SCHEMA`.
    pub schema: String,
    /// `database.tables` / `DATABASE_TABLES` and `database.excludeTables`, parsed: which
    /// tables a capture reads.
    pub tables: crate::TableSelector,
    /// `database.sslMode` / `DATABASE_SSL_MODE`.
    pub ssl_mode: SslMode,
    /// `database.sslCert` / `DATABASE_SSL_CERT`: client certificate (PEM).
    pub ssl_cert: Option<PathBuf>,
    /// `database.sslKey` / `DATABASE_SSL_KEY`: client private key (PEM).
    pub ssl_key: Option<PathBuf>,
    /// `database.sslRootCert` / `DATABASE_SSL_ROOT_CERT`: CA bundle (PEM).
    pub ssl_root_cert: Option<PathBuf>,
    /// `database.serverId` / `DATABASE_SERVER_ID`: replica server id for the binlog dump;
    /// `None` lets the capture choose.
    pub server_id: Option<u32>,
    /// `database.snapshotMode` / `DATABASE_SNAPSHOT_MODE`.
    pub snapshot_mode: SnapshotMode,
    /// `database.snapshotChunkSize` / `DATABASE_SNAPSHOT_CHUNK_SIZE`: rows per snapshot chunk.
    pub snapshot_chunk_size: usize,
}

impl DatabaseConfig {
}

/// Where DataHub is (`datahub.endpoint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatahubEndpoint {
    /// `embedded`: the in-process DataHub-compatible log (cdc-pipeline only).
    Embedded,
    /// A DataHub (or datahub-local) URL, always with its `http://` or `https://` scheme.
    Remote(String),
    /// `file:///path/events.jsonl`: no DataHub at all; events are appended to this file as
    /// JSON lines (Debezium envelopes). For debugging a capture and for tests.
    File(PathBuf),
}

/// Alibaba DataHub relay (`datahub.*`).
#[derive(Clone, Debug)]
pub struct DatahubConfig {
    /// `datahub.endpoint` / `DATAHUB_ENDPOINT`. `None` only for roles that do not use DataHub
    /// and have none configured.
    pub endpoint: Option<DatahubEndpoint>,
    /// `datahub.accessId` / `DATAHUB_ACCESS_ID`. `Some` whenever the endpoint is remote and the
    /// role uses DataHub.
    pub access_id: Option<Secret>,
    /// `datahub.accessKey` / `DATAHUB_ACCESS_KEY`. Same rule as `access_id`.
    pub access_key: Option<Secret>,
    /// `datahub.project` / `DATAHUB_PROJECT`.
    pub project: String,
    /// `datahub.topic` / `DATAHUB_TOPIC`.
    pub topic: String,
    /// `datahub.consumerGroup` / `DATAHUB_CONSUMER_GROUP`.
    pub consumer_group: String,
    /// `datahub.sslEnabled` / `DATAHUB_SSL_ENABLED`, reconciled with the endpoint's scheme.
    pub ssl_enabled: bool,
    /// `datahub.sslVerify` / `DATAHUB_SSL_VERIFY`: check the server certificate.
    pub ssl_verify: bool,
    /// `datahub.maxRetries` / `DATAHUB_MAX_RETRIES`.
    pub max_retries: u32,
}

/// Process-level sizing carried over from the Flink deployment (`flink.parallelism`,
/// `jobmanager.*`, `taskmanager.*`).
#[derive(Clone, Debug)]
pub struct FlinkConfig {
    /// `flink.parallelism` / `PARALLELISM_DEFAULT`.
    pub parallelism: u32,
    /// `jobmanager.memory.process.size` / `JOB_MANAGER_HEAP_SIZE`, in bytes.
    pub jobmanager_memory_bytes: u64,
    /// `taskmanager.memory.process.size` / `TASK_MANAGER_HEAP_SIZE`, in bytes.
    pub taskmanager_memory_bytes: u64,
    /// `taskmanager.numberOfTaskSlots` / `TASK_MANAGER_NUMBER_OF_TASK_SLOTS`.
    pub task_slots: u32,
}

/// Checkpointing (`flink.checkpoint.*`).
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// `flink.checkpoint.interval` / `CHECKPOINT_INTERVAL`, milliseconds.
    pub interval_ms: u64,
    /// `flink.checkpoint.timeout` / `CHECKPOINT_TIMEOUT`, milliseconds.
    pub timeout_ms: u64,
    /// `flink.checkpoint.minPause` / `CHECKPOINT_MIN_PAUSE`, milliseconds.
    pub min_pause_ms: u64,
    /// `flink.checkpoint.maxConcurrent` / `CHECKPOINT_MAX_CONCURRENT`.
    pub max_concurrent: u32,
    /// `flink.checkpoint.retainedNumber` / `CHECKPOINT_RETAINED_NUMBER`.
    pub retained_number: u32,
}

impl CheckpointConfig {
    /// `interval_ms` as a `Duration`.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
    /// `timeout_ms` as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    /// `min_pause_ms` as a `Duration`.
    pub fn min_pause(&self) -> Duration {
        Duration::from_millis(self.min_pause_ms)
    }
    /// The interval checkpoints are actually triggered at: like Flink's checkpoint coordinator,
    /// never more often than `min_pause`.
    pub fn effective_interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(self.min_pause_ms))
    }
}

/// State backend and its directories (`flink.stateBackend.*`, `state.savepoints.dir`).
#[derive(Clone, Debug)]
pub struct StateBackendConfig {
    /// `flink.stateBackend.type` / `STATE_BACKEND`.
    pub backend: StateBackend,
    /// `flink.stateBackend.checkpointDir` / `CHECKPOINT_DIR` (a URI such as `file:///…`).
    pub checkpoint_dir: String,
    /// `state.savepoints.dir` / `SAVEPOINT_DIR` (a URI such as `file:///…`).
    pub savepoint_dir: String,
}

/// High availability (`highAvailability.*`).
#[derive(Clone, Debug)]
pub struct HighAvailabilityConfig {
    /// `highAvailability.mode` (and legacy `highAvailability.enabled`) / `HA_MODE`.
    pub mode: HaMode,
    /// `highAvailability.zookeeperQuorum` / `HA_ZOOKEEPER_QUORUM`: `host:port` entries;
    /// non-empty when `mode` is ZooKeeper.
    pub zookeeper_quorum: Vec<String>,
    /// `highAvailability.zookeeperPath` / `HA_ZOOKEEPER_PATH`.
    pub zookeeper_path: String,
    /// `highAvailability.clusterId` / `HA_CLUSTER_ID`.
    pub cluster_id: String,
    /// `highAvailability.storageDir` / `HA_STORAGE_DIR`.
    pub storage_dir: String,
    /// `highAvailability.kubernetesNamespace` / `HA_KUBERNETES_NAMESPACE`.
    pub kubernetes_namespace: String,
    /// `highAvailability.kubernetesClusterId` / `HA_KUBERNETES_CLUSTER_ID`.
    pub kubernetes_cluster_id: String,
    /// `highAvailability.jobManagerCount` / `HA_JOB_MANAGER_COUNT`.
    pub job_manager_count: u32,
}

/// File output (`output.*`).
#[derive(Clone, Debug)]
pub struct OutputConfig {
    /// `output.path` / `OUTPUT_PATH`: a local directory (optionally `file://…`), or for
    /// object-sink also an object-store URL such as `s3://bucket/prefix`.
    pub path: String,
    /// `output.format` / `OUTPUT_FORMAT`.
    pub format: OutputFormat,
    /// `output.rolling.sizeBytes` / `OUTPUT_ROLLING_SIZE`.
    pub rolling_size_bytes: u64,
    /// `output.rolling.intervalMs` / `OUTPUT_ROLLING_INTERVAL`.
    pub rolling_interval_ms: u64,
    /// `output.compression` / `OUTPUT_COMPRESSION`.
    pub compression: Compression,
    /// `output.maxRetries` / `OUTPUT_MAX_RETRIES`.
    pub max_retries: u32,
    /// `output.batchSize` / `OUTPUT_BATCH_SIZE`.
    pub batch_size: u32,
    /// `output.shape` / `OUTPUT_SHAPE`.
    pub shape: OutputShape,
}

impl OutputConfig {
    /// The local directory `path` names, or `None` when it is a non-file URL (object store).
    pub fn local_dir(&self) -> Option<PathBuf> {
        local_path(&self.path)
    }
    /// `rolling_interval_ms` as a `Duration`.
    pub fn rolling_interval(&self) -> Duration {
        Duration::from_millis(self.rolling_interval_ms)
    }
}

/// A local path from `path`, accepting `file://` URIs; `None` for other URL schemes.
pub(crate) fn local_path(path: &str) -> Option<PathBuf> {
    if let Some(rest) = path.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    if path.contains("://") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Transform rules and the transform function's output (`transform.*`).
#[derive(Clone, Debug)]
pub struct TransformConfig {
    /// `transform.config` / `TRANSFORM_CONFIG`: the rules file; `None` means no transform.
    /// Always `Some` for the transform role (load fails otherwise).
    pub config: Option<PathBuf>,
    /// `transform.hashSalt` / `TRANSFORM_HASH_SALT`: key of `hash` masks.
    pub hash_salt: Option<Secret>,
    /// `transform.outputProject` / `TRANSFORM_OUTPUT_PROJECT`, defaulted to `datahub.project`.
    pub output_project: String,
    /// `transform.outputTopic` / `TRANSFORM_OUTPUT_TOPIC`. Always `Some` for the transform role.
    pub output_topic: Option<String>,
    /// `transform.dlqTopic` / `TRANSFORM_DLQ_TOPIC`, defaulted to `<outputTopic>-dlq` when an
    /// output topic is set.
    pub dlq_topic: Option<String>,
}

/// S3-compatible object store (`s3.*`): object-sink's output and `s3://` checkpoint
/// directories. Unset values fall back to the AWS default chain.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `s3.endpoint` / `S3_ENDPOINT`: an `http://` or `https://` URL.
    pub endpoint: Option<String>,
    /// `s3.region` / `S3_REGION`.
    pub region: Option<String>,
    /// `s3.pathStyleAccess` / `S3_PATH_STYLE_ACCESS`.
    pub path_style_access: bool,
    /// `s3.accessKey` / `S3_ACCESS_KEY`; `Some` exactly when `secret_key` is.
    pub access_key: Option<Secret>,
    /// `s3.secretKey` / `S3_SECRET_KEY`.
    pub secret_key: Option<Secret>,
    /// `s3.stagingDir` / `S3_STAGING_DIR`: where object-sink stages files before upload.
    pub staging_dir: Option<PathBuf>,
}

/// Ops endpoint and alert thresholds (`monitoring.*`).
#[derive(Clone, Debug)]
pub struct MonitoringConfig {
    /// `monitoring.port` / `MONITORING_PORT`; 0 picks a free port (tests).
    pub port: u16,
    /// `monitoring.metrics.enabled` / `METRICS_ENABLED`.
    pub metrics_enabled: bool,
    /// `monitoring.alerts.latencyThresholdMs` / `ALERT_LATENCY_THRESHOLD`.
    pub latency_threshold_ms: u64,
    /// `monitoring.alerts.checkpointFailureRate` / `ALERT_CHECKPOINT_FAILURE_RATE`, 0..=1.
    pub checkpoint_failure_rate: f64,
    /// `monitoring.alerts.loadThreshold` / `ALERT_LOAD_THRESHOLD`, 0..=1.
    pub load_threshold: f64,
    /// `monitoring.alerts.alertmanagerUrl` / `ALERTMANAGER_URL`: `http://` base URLs alerts are
    /// posted to; empty when unset.
    pub alertmanager_urls: Vec<String>,
    /// `monitoring.alerts.evaluationIntervalMs` / `ALERT_EVALUATION_INTERVAL`.
    pub alert_evaluation_interval_ms: u64,
}

impl MonitoringConfig {
    /// `alert_evaluation_interval_ms` as a `Duration`.
    pub fn alert_evaluation_interval(&self) -> Duration {
        Duration::from_millis(self.alert_evaluation_interval_ms)
    }
}

/// Logging (`logging.*`).
#[derive(Clone, Debug)]
pub struct LoggingConfig {
    /// `logging.level` (or `logging.level.root`) / `LOG_LEVEL`.
    pub level: LogLevel,
    /// Per-target levels from the Spring-style `logging.level: { <target>: LEVEL }` map in the
    /// file (file only; e.g. `cdc_capture: DEBUG`).
    pub targets: BTreeMap<String, LogLevel>,
    /// `logging.format` / `LOG_FORMAT`.
    pub format: LogFormat,
    /// `logging.pattern` / `LOG_PATTERN`: accepted for compatibility; see the reference.
    pub pattern: Option<String>,
    /// `logging.file.path` / `LOG_FILE_PATH`: directory for log files; `None` logs to stderr only.
    pub file_path: Option<PathBuf>,
    /// `logging.file.maxSize` / `LOG_FILE_MAX_SIZE`, bytes.
    pub file_max_size_bytes: u64,
    /// `logging.file.maxHistory` / `LOG_FILE_MAX_HISTORY`; 0 keeps every file.
    pub file_max_history: u32,
}

impl LoggingConfig {
    /// A `tracing_subscriber::EnvFilter`-style directive string: the global level followed by
    /// the per-target levels, e.g. `info,cdc_capture=debug`.
    pub fn filter_directives(&self) -> String {
        let mut out = self.level.as_str().to_string();
        for (target, level) in &self.targets {
            out.push(',');
            out.push_str(target);
            out.push('=');
            out.push_str(level.as_str());
        }
        out
    }
}

config_enum! {
    /// Where datahub-relay delivers batches (`relay.target`).
    RelayTarget {
        /// POST a JSON batch to `relay.http.url`.
        Http => "http",
        /// Invoke an AWS Lambda function (Invoke API).
        Lambda => "lambda",
        /// JSON lines on standard output (debugging).
        Stdout => "stdout",
    }
}

/// datahub-relay (`relay.*`).
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// `relay.target` / `RELAY_TARGET`.
    pub target: RelayTarget,
    /// `relay.http.url` / `RELAY_HTTP_URL`; `Some` when the role is datahub-relay and the
    /// target is `http`.
    pub http_url: Option<String>,
    /// `relay.timeoutMs` / `RELAY_TIMEOUT`.
    pub timeout_ms: u64,
    /// `relay.maxRetries` / `RELAY_MAX_RETRIES`.
    pub max_retries: u32,
    /// `relay.retryBackoffMs` / `RELAY_RETRY_BACKOFF`.
    pub retry_backoff_ms: u64,
    /// `relay.lambda.functionName` / `RELAY_LAMBDA_FUNCTION_NAME`; `Some` when the role is
    /// datahub-relay and the target is `lambda`.
    pub lambda_function_name: Option<String>,
    /// `relay.lambda.region` / `RELAY_LAMBDA_REGION`.
    pub lambda_region: String,
    /// `relay.lambda.endpoint` / `RELAY_LAMBDA_ENDPOINT`; `None` = AWS's regional endpoint.
    pub lambda_endpoint: Option<String>,
    /// `relay.batch.maxRecords` / `RELAY_BATCH_MAX_RECORDS`.
    pub batch_max_records: u32,
    /// `relay.batch.maxBytes` / `RELAY_BATCH_MAX_BYTES`.
    pub batch_max_bytes: u64,
    /// `relay.batch.lingerMs` / `RELAY_BATCH_LINGER`.
    pub batch_linger_ms: u64,
    /// `relay.sessionTimeoutMs` / `RELAY_SESSION_TIMEOUT`.
    pub session_timeout_ms: u64,
}

impl RelayConfig {
    /// `timeout_ms` as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    /// `retry_backoff_ms` as a `Duration`.
    pub fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_ms)
    }
    /// `batch_linger_ms` as a `Duration`.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }
    /// `session_timeout_ms` as a `Duration`.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }
    /// The Lambda endpoint: the configured one, else `https://lambda.{region}.amazonaws.com`.
    pub fn lambda_endpoint_url(&self) -> String {
        match &self.lambda_endpoint {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("https://lambda.{}.amazonaws.com", self.lambda_region),
        }
    }
}
