//! The settings table: the single place where every setting's key, environment variable,
//! default, type and documentation are defined.
//!
//! Keys and environment variables follow the Flink deployment guide's 配置参数详解 and 安全配置
//! sections exactly where the guide names them (`env_in_guide: true`); the others are the
//! obvious UPPER_SNAKE spelling of the key and are marked in the generated reference.

use crate::model::{
    Compression, LogFormat, LogLevel, OutputFormat, OutputShape, SnapshotMode, SslMode, StateBackend,
};

/// One configuration setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Canonical dotted key in the YAML file, camelCase as in the guide (`output.rolling.sizeBytes`).
    pub key: &'static str,
    /// Environment variable that overrides the file. `X_FILE` is also accepted for every `X`.
    pub env: &'static str,
    /// Whether the deployment guide names `env` (otherwise we chose it).
    pub env_in_guide: bool,
    /// Whether the env var is read for this setting. Only `highAvailability.enabled` says no:
    /// the guide maps it and `highAvailability.mode` to the same `HA_MODE`, which the mode reads.
    pub reads_env: bool,
    /// Default, written the way a user would write it (`1024m`, `INFO`); parsed by the same code
    /// as user input, so a test can prove every default is valid.
    pub default: Option<&'static str>,
    /// Text for the reference's default column when `default` is `None` or role-dependent.
    pub default_doc: Option<&'static str>,
    /// Type and accepted range.
    pub kind: Kind,
    /// Never printed: `Debug`, errors and the redacted dump show `***`.
    pub secret: bool,
    /// Other spellings accepted in the YAML file (the guide uses several for some settings).
    /// Matching is relaxed like Spring's: case, `-` and `_` are ignored.
    pub aliases: &'static [&'static str],
    /// What the setting does.
    pub doc: &'static str,
}

impl Setting {
    /// Field defaults for the table below (`..Setting::BASE`).
    const BASE: Setting = Setting {
        key: "",
        env: "",
        env_in_guide: true,
        reads_env: true,
        default: None,
        default_doc: None,
        kind: Kind::Text,
        secret: false,
        aliases: &[],
        doc: "",
    };

    /// The `X_FILE` companion variable.
    pub fn env_file(&self) -> String {
        format!("{}_FILE", self.env)
    }

    /// Section heading in the reference: the first key segment, except that Flink's process
    /// sizes (`jobmanager.*`, `taskmanager.*`) and `state.savepoints.dir` are shown with `flink`.
    pub fn section(&self) -> &'static str {
        let first = self.key.split('.').next().unwrap_or(self.key);
        match first {
            "jobmanager" | "taskmanager" | "state" => "flink",
            other => other,
        }
    }
}

/// Type of a setting's value; decides parsing, range checks and the error wording.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Free text (empty means unset).
    Text,
    /// Comma-separated list in env vars; a comma-separated string or a YAML sequence in the file.
    List,
    /// TCP port; `allow_zero` for listen ports where 0 asks the OS for a free one.
    Port {
        /// Accept 0.
        allow_zero: bool,
    },
    /// Unsigned integer within `min..=max`.
    Int {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// Decimal number within `min..=max`.
    Float {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`), case-insensitive.
    Bool,
    /// One of `values`, case-insensitive, `_` and `-` interchangeable; `aliases` map other
    /// spellings (e.g. MySQL's `VERIFY_IDENTITY`) to a value.
    Enum {
        /// Canonical values.
        values: &'static [&'static str],
        /// `(alias, canonical)` pairs, normalised spelling.
        aliases: &'static [(&'static str, &'static str)],
    },
    /// Byte size: a number with an optional unit `b`, `k`/`kb`, `m`/`mb`, `g`/`gb`, `t`/`tb`
    /// (1024-based, as Flink's `MemorySize` and logback's `FileSize`); at least `min` bytes.
    Size {
        /// Smallest accepted size in bytes.
        min: u64,
    },
    /// Integer number of milliseconds, at least `min`.
    Millis {
        /// Smallest accepted value.
        min: u64,
    },
    /// `none`/`zookeeper`/`kubernetes`, or the legacy `true`/`false` of `highAvailability.enabled`.
    HaMode,
}

impl Kind {
    /// Short description for the reference's type column.
    pub fn describe(&self) -> String {
        match self {
            Kind::Text => "text".into(),
            Kind::List => "comma-separated list".into(),
            Kind::Port { allow_zero: true } => "port 0-65535 (0 = any free port)".into(),
            Kind::Port { allow_zero: false } => "port 1-65535".into(),
            Kind::Int { min, max } if *max == u64::from(u32::MAX) => format!("integer ≥ {min}"),
            Kind::Int { min, max } => format!("integer {min}-{max}"),
            Kind::Float { min, max } => format!("number {min}-{max}"),
            Kind::Bool => "true/false".into(),
            Kind::Enum { values, .. } => values.join(" / "),
            Kind::Size { .. } => "size (e.g. 512m, 1g, bytes if no unit)".into(),
            Kind::Millis { min } => format!("milliseconds ≥ {min}"),
            Kind::HaMode => "none / zookeeper / kubernetes (legacy true/false)".into(),
        }
    }
}

const U32_MAX: u64 = u32::MAX as u64;

/// Declares each setting as a documented `pub const` and collects them all in [`ALL`].
macro_rules! settings {
    ( $( $name:ident : $key:literal, $env:literal, $doc:literal { $($field:ident : $value:expr),* $(,)? } )* ) => {
        $(
            #[doc = concat!("`", $key, "` / `", $env, "`: ", $doc)]
            pub const $name: Setting = Setting { key: $key, env: $env, doc: $doc, $($field: $value,)* ..Setting::BASE };
        )*

        /// Every setting, in reference-documentation order.
        pub const ALL: &[&Setting] = &[ $( &$name ),* ];
    };
}

settings! {
    // ---- database -----------------------------------------------------------------------
    DATABASE_HOST: "database.host", "DATABASE_HOST",
        "OceanBase/MySQL/MariaDB host name or IP address." {
        default: Some("localhost"),
    }
    DATABASE_PORT: "database.port", "DATABASE_PORT",
        "Database port (OceanBase's MySQL port is 2881)." {
        default: Some("2881"), kind: Kind::Port { allow_zero: false },
    }
    DATABASE_USERNAME: "database.username", "DATABASE_USERNAME",
        "Database user; needs REPLICATION SLAVE, REPLICATION CLIENT and SELECT." {
        default: Some("root"),
    }
    DATABASE_PASSWORD: "database.password", "DATABASE_PASSWORD",
        "Database password. Required by roles that connect to the database (cdc-capture, cdc-pipeline)." {
        secret: true, default_doc: Some("— (required)"),
    }
    DATABASE_SCHEMA: "database.schema", "DATABASE_SCHEMA",
        "Schema (database) to capture." {
        default: Some("test"),
    }
    DATABASE_TABLES: "database.tables", "DATABASE_TABLES",
        "Tables to capture: comma-separated names, or `*` for every table in the schema." {
        default: Some("*"), kind: Kind::List,
    }
    DATABASE_EXCLUDE_TABLES: "database.excludeTables", "DATABASE_EXCLUDE_TABLES",
        "Tables never captured, even when `database.tables` is `*`." {
        env_in_guide: false, kind: Kind::List, default_doc: Some("(none)"),
    }
    DATABASE_SSL_MODE: "database.sslMode", "DATABASE_SSL_MODE",
        "TLS for the database connection. `verify-ca`/`verify-full` need `database.sslRootCert`. MySQL spellings (REQUIRED, VERIFY_IDENTITY, …) are accepted." {
        env_in_guide: false, default: Some("prefer"),
        kind: Kind::Enum {
            values: SslMode::NAMES,
            aliases: &[("disabled", "disable"), ("preferred", "prefer"), ("required", "require"), ("verify-identity", "verify-full")],
        },
    }
    DATABASE_SSL_CERT: "database.sslCert", "DATABASE_SSL_CERT",
        "Client certificate file (PEM) for mutual TLS; set together with `database.sslKey`." {
        env_in_guide: false, default_doc: Some("(none)"),
    }
    DATABASE_SSL_KEY: "database.sslKey", "DATABASE_SSL_KEY",
        "Client private key file (PEM) for mutual TLS; set together with `database.sslCert`." {
        env_in_guide: false, default_doc: Some("(none)"),
    }
    DATABASE_SSL_ROOT_CERT: "database.sslRootCert", "DATABASE_SSL_ROOT_CERT",
        "CA certificate file (PEM) the server certificate must chain to." {
        env_in_guide: false, default_doc: Some("(none)"),
    }
    DATABASE_SERVER_ID: "database.serverId", "DATABASE_SERVER_ID",
        "Replica server id used for the binlog dump; must be unique among the server's replicas. Unset: the capture chooses one." {
        env_in_guide: false, kind: Kind::Int { min: 1, max: U32_MAX }, default_doc: Some("(chosen by cdc-capture)"),
    }
    DATABASE_SNAPSHOT_MODE: "database.snapshotMode", "DATABASE_SNAPSHOT_MODE",
        "`initial`: snapshot the tables, then stream the binlog; `never`: stream only; `initial_only`: snapshot, then stop." {
        env_in_guide: false, default: Some("initial"),
        kind: Kind::Enum { values: SnapshotMode::NAMES, aliases: &[("initial-only", "initial_only")] },
    }
    DATABASE_SNAPSHOT_CHUNK_SIZE: "database.snapshotChunkSize", "DATABASE_SNAPSHOT_CHUNK_SIZE",
        "Rows per snapshot chunk (keyset-paged by primary key); snapshot progress is checkpointed per chunk." {
        env_in_guide: false, default: Some("10000"), kind: Kind::Int { min: 1, max: 10_000_000 },
    }

    // ---- datahub ------------------------------------------------------------------------
    DATAHUB_ENDPOINT: "datahub.endpoint", "DATAHUB_ENDPOINT",
        "DataHub endpoint URL (`https://dh-cn-hangzhou.aliyuncs.com`, or datahub-local's URL), `embedded` for the in-process log (cdc-pipeline only), or `file:///path/events.jsonl` to append events to a JSON-lines file instead of a bus (debugging, tests). Required by roles that use DataHub." {
        default_doc: Some("— (required; `embedded` in cdc-pipeline)"),
    }
    DATAHUB_ACCESS_ID: "datahub.accessId", "DATAHUB_ACCESS_ID",
        "DataHub AccessKey ID. Required with a remote endpoint." {
        secret: true, default_doc: Some("— (required unless embedded)"),
    }
    DATAHUB_ACCESS_KEY: "datahub.accessKey", "DATAHUB_ACCESS_KEY",
        "DataHub AccessKey secret. Required with a remote endpoint." {
        secret: true, default_doc: Some("— (required unless embedded)"),
    }
    DATAHUB_PROJECT: "datahub.project", "DATAHUB_PROJECT",
        "DataHub project." {
        default: Some("realtime-pipeline"),
    }
    DATAHUB_TOPIC: "datahub.topic", "DATAHUB_TOPIC",
        "DataHub topic carrying the change events." {
        default: Some("cdc-events"),
    }
    DATAHUB_CONSUMER_GROUP: "datahub.consumerGroup", "DATAHUB_CONSUMER_GROUP",
        "Consumer group (subscription) used by readers of the topic." {
        default: Some("cdc-collector-group"),
    }
    DATAHUB_SSL_ENABLED: "datahub.sslEnabled", "DATAHUB_SSL_ENABLED",
        "Use TLS. Unset: follows the endpoint's scheme (https → true); contradicting the scheme is an error." {
        env_in_guide: false, kind: Kind::Bool, default_doc: Some("(from endpoint scheme; true if none)"),
    }
    DATAHUB_SSL_VERIFY: "datahub.sslVerify", "DATAHUB_SSL_VERIFY",
        "Verify the DataHub server certificate." {
        env_in_guide: false, default: Some("true"), kind: Kind::Bool,
    }
    DATAHUB_MAX_RETRIES: "datahub.maxRetries", "DATAHUB_MAX_RETRIES",
        "Retries of a failed DataHub request before the process fails." {
        env_in_guide: false, default: Some("3"), kind: Kind::Int { min: 0, max: U32_MAX },
    }

    // ---- flink: process sizing ----------------------------------------------------------
    FLINK_PARALLELISM: "flink.parallelism", "PARALLELISM_DEFAULT",
        "Default parallelism (number of parallel workers per stage)." {
        default: Some("4"), kind: Kind::Int { min: 1, max: 32768 },
        aliases: &["parallelism.default"],
    }
    JOBMANAGER_MEMORY: "jobmanager.memory.process.size", "JOB_MANAGER_HEAP_SIZE",
        "JobManager (coordinator) process memory." {
        default: Some("1024m"), kind: Kind::Size { min: 1024 * 1024 },
        aliases: &["flink.jobmanager.memory.process.size"],
    }
    TASKMANAGER_MEMORY: "taskmanager.memory.process.size", "TASK_MANAGER_HEAP_SIZE",
        "TaskManager (worker) process memory." {
        default: Some("1024m"), kind: Kind::Size { min: 1024 * 1024 },
        aliases: &["flink.taskmanager.memory.process.size"],
    }
    TASKMANAGER_SLOTS: "taskmanager.numberOfTaskSlots", "TASK_MANAGER_NUMBER_OF_TASK_SLOTS",
        "Task slots per TaskManager." {
        default: Some("4"), kind: Kind::Int { min: 1, max: 65535 },
        aliases: &["flink.taskmanager.numberOfTaskSlots"],
    }

    // ---- flink: checkpoints and state ---------------------------------------------------
    CHECKPOINT_INTERVAL: "flink.checkpoint.interval", "CHECKPOINT_INTERVAL",
        "Checkpoint interval (ms). Flink's minimum is 10 ms." {
        default: Some("300000"), kind: Kind::Millis { min: 10 },
    }
    CHECKPOINT_TIMEOUT: "flink.checkpoint.timeout", "CHECKPOINT_TIMEOUT",
        "A checkpoint not complete after this long (ms) is aborted. May be shorter than the interval, as in Flink. Minimum 10 ms." {
        default: Some("600000"), kind: Kind::Millis { min: 10 },
    }
    CHECKPOINT_MIN_PAUSE: "flink.checkpoint.minPause", "CHECKPOINT_MIN_PAUSE",
        "Minimum pause (ms) between the end of one checkpoint and the start of the next; if larger than the interval it becomes the effective interval (as in Flink)." {
        default: Some("60000"), kind: Kind::Millis { min: 0 },
    }
    CHECKPOINT_MAX_CONCURRENT: "flink.checkpoint.maxConcurrent", "CHECKPOINT_MAX_CONCURRENT",
        "Checkpoints that may be in progress at once (at least 1, as in Flink)." {
        default: Some("1"), kind: Kind::Int { min: 1, max: U32_MAX },
    }
    CHECKPOINT_RETAINED_NUMBER: "flink.checkpoint.retainedNumber", "CHECKPOINT_RETAINED_NUMBER",
        "Completed checkpoints kept (at least 1)." {
        default: Some("3"), kind: Kind::Int { min: 1, max: U32_MAX },
    }
    STATE_BACKEND: "flink.stateBackend.type", "STATE_BACKEND",
        "State backend: `hashmap` (in memory, small state) or `rocksdb` (on disk, large state)." {
        default: Some("hashmap"), kind: Kind::Enum { values: StateBackend::NAMES, aliases: &[] },
        aliases: &["state.backend"],
    }
    CHECKPOINT_DIR: "flink.stateBackend.checkpointDir", "CHECKPOINT_DIR",
        "Where checkpoints are stored (URI, e.g. `file:///data/checkpoints`)." {
        default: Some("file:///opt/flink/checkpoints"),
        aliases: &["state.checkpoints.dir"],
    }
    SAVEPOINT_DIR: "state.savepoints.dir", "SAVEPOINT_DIR",
        "Where savepoints are stored (URI)." {
        env_in_guide: false, default: Some("file:///opt/flink/savepoints"),
        aliases: &["flink.stateBackend.savepointDir"],
    }

    // ---- highAvailability ---------------------------------------------------------------
    HA_ENABLED: "highAvailability.enabled", "HA_MODE",
        "Legacy switch. `false` turns HA off whatever the mode; `true` needs `highAvailability.mode`. The env var HA_MODE also accepts true/false." {
        reads_env: false, kind: Kind::Bool, default_doc: Some("false"),
    }
    HA_MODE: "highAvailability.mode", "HA_MODE",
        "HA mode: `none`, `zookeeper` or `kubernetes` (case-insensitive)." {
        default: Some("none"), kind: Kind::HaMode,
    }
    HA_ZOOKEEPER_QUORUM: "highAvailability.zookeeperQuorum", "HA_ZOOKEEPER_QUORUM",
        "ZooKeeper servers, comma-separated `host:port`. Required when the mode is zookeeper." {
        kind: Kind::List, default_doc: Some("— (required for zookeeper)"),
    }
    HA_ZOOKEEPER_PATH: "highAvailability.zookeeperPath", "HA_ZOOKEEPER_PATH",
        "ZooKeeper root path (absolute)." {
        default: Some("/flink"),
    }
    HA_CLUSTER_ID: "highAvailability.clusterId", "HA_CLUSTER_ID",
        "Cluster id: this deployment's node under the ZooKeeper root path." {
        default: Some("/default"),
    }
    HA_STORAGE_DIR: "highAvailability.storageDir", "HA_STORAGE_DIR",
        "Where HA metadata is stored." {
        default: Some("/opt/flink/ha"),
    }
    HA_KUBERNETES_NAMESPACE: "highAvailability.kubernetesNamespace", "HA_KUBERNETES_NAMESPACE",
        "Kubernetes namespace for leader election (kubernetes mode)." {
        env_in_guide: false, default: Some("flink"),
    }
    HA_KUBERNETES_CLUSTER_ID: "highAvailability.kubernetesClusterId", "HA_KUBERNETES_CLUSTER_ID",
        "Kubernetes cluster id (kubernetes mode)." {
        env_in_guide: false, default: Some("flink-cluster"),
    }
    HA_JOB_MANAGER_COUNT: "highAvailability.jobManagerCount", "HA_JOB_MANAGER_COUNT",
        "Number of JobManager (coordinator) instances." {
        env_in_guide: false, default: Some("2"), kind: Kind::Int { min: 1, max: 1000 },
    }

    // ---- output -------------------------------------------------------------------------
    OUTPUT_PATH: "output.path", "OUTPUT_PATH",
        "Output directory. Sink roles create it if missing and check it is writable. object-sink also accepts an object-store URL." {
        default: Some("/opt/flink/data"),
    }
    OUTPUT_FORMAT: "output.format", "OUTPUT_FORMAT",
        "Output file format (case-insensitive)." {
        default: Some("json"), kind: Kind::Enum { values: OutputFormat::NAMES, aliases: &[] },
    }
    OUTPUT_ROLLING_SIZE: "output.rolling.sizeBytes", "OUTPUT_ROLLING_SIZE",
        "Roll to a new file at this size (bytes; units like 512m accepted)." {
        default: Some("1073741824"), kind: Kind::Size { min: 1 },
    }
    OUTPUT_ROLLING_INTERVAL: "output.rolling.intervalMs", "OUTPUT_ROLLING_INTERVAL",
        "Roll to a new file after this long (ms)." {
        default: Some("3600000"), kind: Kind::Millis { min: 1 },
    }
    OUTPUT_COMPRESSION: "output.compression", "OUTPUT_COMPRESSION",
        "Compression of output files." {
        default: Some("none"), kind: Kind::Enum { values: Compression::NAMES, aliases: &[] },
    }
    OUTPUT_MAX_RETRIES: "output.maxRetries", "OUTPUT_MAX_RETRIES",
        "Retries of a failed write before the sink fails." {
        default: Some("3"), kind: Kind::Int { min: 0, max: U32_MAX },
    }
    OUTPUT_BATCH_SIZE: "output.batchSize", "OUTPUT_BATCH_SIZE",
        "Records written per batch." {
        env_in_guide: false, default: Some("10000"), kind: Kind::Int { min: 1, max: U32_MAX },
    }
    OUTPUT_SHAPE: "output.shape", "OUTPUT_SHAPE",
        "Row shape of the files. `flat`: the after image (the before image for deletes) plus `_op`, `_ts_ms`, `_source_pos`, `_tx_id`, `_deleted`. `envelope`: Debezium-like `before` / `after` structs, a `source` struct and `op`; Parquet or JSON only (CSV has no nested columns). file-sink still refuses `envelope`: cdc-sink builds flat batches for now." {
        env_in_guide: false, default: Some("flat"), kind: Kind::Enum { values: OutputShape::NAMES, aliases: &[] },
    }

    // ---- transform ----------------------------------------------------------------------
    TRANSFORM_CONFIG: "transform.config", "TRANSFORM_CONFIG",
        "Transform rules file (YAML: table include/exclude, renames, masks, row filters; see cdc-transform). Applied by file-sink before writing and by the transform function; validated at start-up. Unset: events pass unchanged (required by the transform function)." {
        env_in_guide: false, default_doc: Some("(none; required by transform)"),
    }
    TRANSFORM_HASH_SALT: "transform.hashSalt", "TRANSFORM_HASH_SALT",
        "Secret key of `hash` masks (HMAC-SHA256, hex). Required when the rules use `hash`; use TRANSFORM_HASH_SALT_FILE for a mounted secret." {
        env_in_guide: false, secret: true, default_doc: Some("(none)"),
    }
    TRANSFORM_OUTPUT_PROJECT: "transform.outputProject", "TRANSFORM_OUTPUT_PROJECT",
        "DataHub project the transform function publishes to. Unset: `datahub.project`." {
        env_in_guide: false, default_doc: Some("(`datahub.project`)"),
    }
    TRANSFORM_OUTPUT_TOPIC: "transform.outputTopic", "TRANSFORM_OUTPUT_TOPIC",
        "DataHub topic the transform function publishes transformed events to; must differ from `datahub.topic` in the same project. Required by the transform function." {
        env_in_guide: false, default_doc: Some("— (required by transform)"),
    }
    TRANSFORM_DLQ_TOPIC: "transform.dlqTopic", "TRANSFORM_DLQ_TOPIC",
        "DataHub topic (in the output project) for records the transform function cannot transform: the original record with attributes `cdc.dlq.stage`, `cdc.dlq.error`, `cdc.dlq.shard`, `cdc.dlq.sequence`." {
        env_in_guide: false, default_doc: Some("(`<outputTopic>-dlq`)"),
    }

    // ---- s3 -----------------------------------------------------------------------------
    S3_ENDPOINT: "s3.endpoint", "S3_ENDPOINT",
        "Endpoint URL of the S3-compatible store that object-sink writes to (`output.path: s3://bucket/prefix`) and that `s3://` checkpoint directories live in, e.g. `http://minio:9000` or `https://oss-cn-hangzhou.aliyuncs.com`. Unset: AWS S3 (or `AWS_ENDPOINT_URL`)." {
        env_in_guide: false, default_doc: Some("(AWS default chain)"),
    }
    S3_REGION: "s3.region", "S3_REGION",
        "Region for request signing. Unset: the AWS default chain (`AWS_REGION`, profile), else `us-east-1`." {
        env_in_guide: false, default_doc: Some("(AWS default chain, else us-east-1)"),
    }
    S3_PATH_STYLE_ACCESS: "s3.pathStyleAccess", "S3_PATH_STYLE_ACCESS",
        "Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key` (MinIO, moto and most self-hosted stores need this)." {
        env_in_guide: false, default: Some("false"), kind: Kind::Bool,
        aliases: &["s3.path.style.access"],
    }
    S3_ACCESS_KEY: "s3.accessKey", "S3_ACCESS_KEY",
        "Access key id; set together with `s3.secretKey`. Unset: the AWS default credential chain (`AWS_ACCESS_KEY_ID`, profile, web identity, ECS/EC2 metadata)." {
        env_in_guide: false, secret: true, default_doc: Some("(AWS default chain)"),
    }
    S3_SECRET_KEY: "s3.secretKey", "S3_SECRET_KEY",
        "Secret access key; set together with `s3.accessKey`." {
        env_in_guide: false, secret: true, default_doc: Some("(AWS default chain)"),
    }
    S3_STAGING_DIR: "s3.stagingDir", "S3_STAGING_DIR",
        "Local directory where object-sink writes files before uploading them (never the committed copy: what is lost here is read again after a restart). Unset: a directory under the system temp directory named after the output URL." {
        env_in_guide: false, default_doc: Some("(temp dir)/cdc-object-sink/<bucket>/<prefix>"),
    }

    // ---- relay (datahub-relay) ----------------------------------------------------------
    RELAY_TARGET: "relay.target", "RELAY_TARGET",
        "Where datahub-relay delivers batches: `http` (POST JSON to `relay.http.url`), `lambda` (AWS Lambda Invoke API) or `stdout` (JSON lines, for debugging). Offsets are committed only after the target acknowledged a batch." {
        env_in_guide: false, default: Some("http"), kind: Kind::Enum { values: crate::model::RelayTarget::NAMES, aliases: &[] },
    }
    RELAY_HTTP_URL: "relay.http.url", "RELAY_HTTP_URL",
        "URL batches are POSTed to (target `http`); a 2xx answer acknowledges the batch." {
        env_in_guide: false, default_doc: Some("— (required when relay.target is http)"),
    }
    RELAY_TIMEOUT: "relay.timeoutMs", "RELAY_TIMEOUT",
        "Timeout (ms) of one delivery attempt (HTTP request or Lambda invocation)." {
        env_in_guide: false, default: Some("30000"), kind: Kind::Millis { min: 1 },
    }
    RELAY_MAX_RETRIES: "relay.maxRetries", "RELAY_MAX_RETRIES",
        "Retries of a batch after a 5xx, 429, timeout, connection error or Lambda function error; then the relay stops without committing (a restart delivers the batch again)." {
        env_in_guide: false, default: Some("5"), kind: Kind::Int { min: 0, max: U32_MAX },
    }
    RELAY_RETRY_BACKOFF: "relay.retryBackoffMs", "RELAY_RETRY_BACKOFF",
        "First retry delay (ms); doubles per retry, up to 30 s." {
        env_in_guide: false, default: Some("500"), kind: Kind::Millis { min: 1 },
    }
    RELAY_LAMBDA_FUNCTION_NAME: "relay.lambda.functionName", "RELAY_LAMBDA_FUNCTION_NAME",
        "Lambda function name or ARN (target `lambda`). Requests are signed with SigV4 when AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN) are set." {
        env_in_guide: false, default_doc: Some("— (required when relay.target is lambda)"),
    }
    RELAY_LAMBDA_REGION: "relay.lambda.region", "RELAY_LAMBDA_REGION",
        "AWS region of the Lambda function (request signing, and the default endpoint)." {
        env_in_guide: false, default: Some("us-east-1"),
    }
    RELAY_LAMBDA_ENDPOINT: "relay.lambda.endpoint", "RELAY_LAMBDA_ENDPOINT",
        "Lambda API endpoint URL; set it to target a local Lambda emulator." {
        env_in_guide: false, default_doc: Some("(https://lambda.{region}.amazonaws.com)"),
    }
    RELAY_BATCH_MAX_RECORDS: "relay.batch.maxRecords", "RELAY_BATCH_MAX_RECORDS",
        "A shard's batch is delivered once it holds this many records." {
        env_in_guide: false, default: Some("500"), kind: Kind::Int { min: 1, max: 1_000_000 },
    }
    RELAY_BATCH_MAX_BYTES: "relay.batch.maxBytes", "RELAY_BATCH_MAX_BYTES",
        "A shard's batch is delivered once its records' payloads reach this size (Lambda's synchronous payload limit is 6 MB)." {
        env_in_guide: false, default: Some("1m"), kind: Kind::Size { min: 1 },
    }
    RELAY_BATCH_LINGER: "relay.batch.lingerMs", "RELAY_BATCH_LINGER",
        "A shard's batch is delivered at the latest this long (ms) after its first record arrived." {
        env_in_guide: false, default: Some("1000"), kind: Kind::Millis { min: 0 },
    }
    RELAY_SESSION_TIMEOUT: "relay.sessionTimeoutMs", "RELAY_SESSION_TIMEOUT",
        "Consumer-group session timeout (ms) asked for at join: a relay replica silent this long loses its shards to the others. Heartbeats go every sixth of it. datahub-local grants at least 6000." {
        env_in_guide: false, default: Some("6000"), kind: Kind::Millis { min: 1000 },
    }

    // ---- monitoring ---------------------------------------------------------------------
    MONITORING_PORT: "monitoring.port", "MONITORING_PORT",
        "Port of the /health and /metrics endpoints (0 = any free port)." {
        default: Some("8080"), kind: Kind::Port { allow_zero: true },
    }
    METRICS_ENABLED: "monitoring.metrics.enabled", "METRICS_ENABLED",
        "Collect and expose Prometheus metrics." {
        default: Some("true"), kind: Kind::Bool,
    }
    ALERT_LATENCY_THRESHOLD: "monitoring.alerts.latencyThresholdMs", "ALERT_LATENCY_THRESHOLD",
        "End-to-end latency (ms): the HighDataLatency alert fires when the p99 (`flink_latency_p99`, last 60 s) stays above it for 5 min." {
        default: Some("60000"), kind: Kind::Millis { min: 1 },
    }
    ALERT_CHECKPOINT_FAILURE_RATE: "monitoring.alerts.checkpointFailureRate", "ALERT_CHECKPOINT_FAILURE_RATE",
        "Fraction of failed checkpoints (0-1): the HighCheckpointFailureRate alert fires when failed/attempted over the last 5 min stays above it for 5 min." {
        default: Some("0.1"), kind: Kind::Float { min: 0.0, max: 1.0 },
    }
    ALERT_LOAD_THRESHOLD: "monitoring.alerts.loadThreshold", "ALERT_LOAD_THRESHOLD",
        "Load (0-1): the process's CPU time as a fraction of its usable cores (`flink_taskmanager_cpu_usage`, cgroup quota honoured); the HighCPUUsage alert fires when it stays above this for 10 min." {
        default: Some("0.8"), kind: Kind::Float { min: 0.0, max: 1.0 },
    }
    ALERTMANAGER_URL: "monitoring.alerts.alertmanagerUrl", "ALERTMANAGER_URL",
        "Alertmanager to post firing and resolved alerts to (`POST /api/v2/alerts`), e.g. `http://alertmanager:9093`; comma-separated for an HA pair (each gets every alert). http only. Unset: alerts are still evaluated and shown in /health and /metrics (`cdc_alert_firing`)." {
        env_in_guide: false, kind: Kind::List, default_doc: Some("(none: not sent)"),
    }
    ALERT_EVALUATION_INTERVAL: "monitoring.alerts.evaluationIntervalMs", "ALERT_EVALUATION_INTERVAL",
        "How often the alerts are evaluated in-process (ms); the guide's Prometheus rule group uses 30 s." {
        env_in_guide: false, default: Some("30000"), kind: Kind::Millis { min: 10 },
    }

    // ---- logging ------------------------------------------------------------------------
    LOG_LEVEL: "logging.level", "LOG_LEVEL",
        "Log level: TRACE, DEBUG, INFO, WARN or ERROR (case-insensitive). In the file, Spring's `logging.level: { root: INFO, <target>: DEBUG }` form also sets per-target levels." {
        default: Some("INFO"),
        kind: Kind::Enum { values: LogLevel::NAMES, aliases: &[("warning", "warn")] },
        aliases: &["logging.level.root"],
    }
    LOG_FORMAT: "logging.format", "LOG_FORMAT",
        "Log line format: `text` or `json`." {
        env_in_guide: false, default: Some("text"), kind: Kind::Enum { values: LogFormat::NAMES, aliases: &[] },
    }
    LOG_PATTERN: "logging.pattern", "LOG_PATTERN",
        "Accepted for compatibility with the Flink deployment's logback pattern; has no effect (a warning says so)." {
        env_in_guide: false, default_doc: Some("(none)"),
    }
    LOG_FILE_PATH: "logging.file.path", "LOG_FILE_PATH",
        "Directory for log files; must be writable. Unset: log to stderr only (the Flink guide's /opt/flink/logs is not assumed)." {
        env_in_guide: false, default_doc: Some("(none: stderr)"),
    }
    LOG_FILE_MAX_SIZE: "logging.file.maxSize", "LOG_FILE_MAX_SIZE",
        "Roll the log file at this size." {
        env_in_guide: false, default: Some("100MB"), kind: Kind::Size { min: 1024 },
    }
    LOG_FILE_MAX_HISTORY: "logging.file.maxHistory", "LOG_FILE_MAX_HISTORY",
        "Rolled log files kept (0 = keep all)." {
        env_in_guide: false, default: Some("30"), kind: Kind::Int { min: 0, max: U32_MAX },
    }
}

/// Keys the guide's performance-tuning examples put in `application.yml` that tune the JVM or
/// Flink's network stack and have no counterpart here. They are accepted with a warning rather
/// than rejected, so a file written for the Flink deployment still loads. Prefixes, matched
/// with relaxed spelling and with or without a leading `flink.`.
pub const IGNORED_FILE_PREFIXES: &[&str] = &[
    "taskmanager.network",
    "taskmanager.memory.flink",
    "taskmanager.memory.managed",
    "taskmanager.memory.network",
    "taskmanager.memory.jvm-overhead",
    "source.parallelism",
    "process.parallelism",
    "sink.parallelism",
    "stateBackend.incremental",
];

/// The environment variable naming the YAML file when the caller passes none.
pub const CONFIG_FILE_ENV: &str = "CONFIG_FILE";

/// File names tried in the working directory when neither `--config` nor `CONFIG_FILE` is given.
pub const DEFAULT_FILE_NAMES: &[&str] = &["application.yml", "application.yaml"];

/// Looks a setting up by canonical key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    ALL.iter().copied().find(|s| s.key == key)
}

/// Key normalisation for file lookups: Spring-style relaxed binding, so `stateBackend`,
/// `statebackend` and `state-backend` are the same key (the guide itself spells it two ways).
pub(crate) fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn keys_env_vars_and_aliases_are_unique() {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for s in ALL {
            for spelling in std::iter::once(&s.key).chain(s.aliases.iter()) {
                let norm = normalize_key(spelling);
                if let Some(other) = seen.insert(norm.clone(), s.key) {
                    panic!("{spelling} (of {}) collides with {other}", s.key);
                }
            }
        }
        let mut envs = BTreeMap::new();
        for s in ALL.iter().filter(|s| s.reads_env) {
            assert!(envs.insert(s.env, s.key).is_none(), "env {} used twice", s.env);
        }
    }

    #[test]
    fn every_setting_is_documented() {
        for s in ALL {
            assert!(!s.doc.is_empty(), "{} has no doc", s.key);
            assert!(
                s.default.is_some() || s.default_doc.is_some(),
                "{} must say what happens when it is unset",
                s.key
            );
            assert!(
                s.env.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{} env var {} is not UPPER_SNAKE",
                s.key,
                s.env
            );
        }
    }

    #[test]
    fn guide_env_names_are_kept_verbatim() {
        // The contract users bring: these pairs are copied from the guide's tables.
        let guide = [
            ("database.host", "DATABASE_HOST"),
            ("database.password", "DATABASE_PASSWORD"),
            ("datahub.consumerGroup", "DATAHUB_CONSUMER_GROUP"),
            ("flink.parallelism", "PARALLELISM_DEFAULT"),
            ("jobmanager.memory.process.size", "JOB_MANAGER_HEAP_SIZE"),
            ("taskmanager.numberOfTaskSlots", "TASK_MANAGER_NUMBER_OF_TASK_SLOTS"),
            ("flink.checkpoint.minPause", "CHECKPOINT_MIN_PAUSE"),
            ("flink.stateBackend.type", "STATE_BACKEND"),
            ("flink.stateBackend.checkpointDir", "CHECKPOINT_DIR"),
            ("highAvailability.zookeeperQuorum", "HA_ZOOKEEPER_QUORUM"),
            ("output.rolling.sizeBytes", "OUTPUT_ROLLING_SIZE"),
            ("output.rolling.intervalMs", "OUTPUT_ROLLING_INTERVAL"),
            ("monitoring.alerts.latencyThresholdMs", "ALERT_LATENCY_THRESHOLD"),
            ("monitoring.alerts.checkpointFailureRate", "ALERT_CHECKPOINT_FAILURE_RATE"),
            ("logging.level", "LOG_LEVEL"),
        ];
        for (key, env) in guide {
            let s = by_key(key).unwrap_or_else(|| panic!("missing {key}"));
            assert_eq!(s.env, env, "{key}");
            assert!(s.env_in_guide, "{key}");
        }
    }
}
