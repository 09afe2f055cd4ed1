//! From layered values to the typed tree, with the role's requirements and the checks that
//! involve more than one setting.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Origin, Problem};
use crate::layers::{with_value, Entry, FileLayer, State};
use crate::model::{
    local_path, CheckpointConfig, Compression, DatabaseConfig, DatahubConfig, DatahubEndpoint, FlinkConfig, HaMode,
    HighAvailabilityConfig, LogFormat, LogLevel, LoggingConfig, MonitoringConfig, OutputConfig, OutputFormat,
    OutputShape, S3Config, SnapshotMode, SslMode, StateBackend, StateBackendConfig, TransformConfig,
};
use crate::parse::{parse, Value};
use crate::role::{OutputTarget, Role};
use crate::secret::Secret;
use crate::settings::{self as s, Setting};

/// The typed tree and what was learnt while building it.
pub(crate) struct Built {
    pub database: DatabaseConfig,
    pub datahub: DatahubConfig,
    pub flink: FlinkConfig,
    pub checkpoint: CheckpointConfig,
    pub state_backend: StateBackendConfig,
    pub high_availability: HighAvailabilityConfig,
    pub output: OutputConfig,
    pub transform: TransformConfig,
    pub s3: S3Config,
    pub relay: crate::model::RelayConfig,
    pub monitoring: MonitoringConfig,
    pub logging: LoggingConfig,
    /// Effective value per canonical key, already redacted.
    pub dump: BTreeMap<&'static str, serde_json::Value>,
    pub origins: BTreeMap<&'static str, Origin>,
    /// Keys read while building (a test checks every table row is read).
    #[cfg_attr(not(test), allow(dead_code))]
    pub consumed: BTreeSet<&'static str>,
}

/// Reads typed values out of the layered entries, collecting problems instead of stopping.
///
/// Getters return `None` for unset or invalid values. An invalid value has already produced a
/// problem, so the placeholder the caller substitutes (`unwrap_or`) never reaches a `Config`:
/// loading returns the error instead.
struct Ctx<'a> {
    entries: &'a BTreeMap<&'static str, Entry>,
    problems: &'a mut Vec<Problem>,
    warnings: &'a mut Vec<String>,
    dump: BTreeMap<&'static str, serde_json::Value>,
    consumed: BTreeSet<&'static str>,
}

const REDACTED: &str = "***";

impl Ctx<'_> {
    fn entry(&mut self, setting: &'static Setting) -> Option<&Entry> {
        self.consumed.insert(setting.key);
        self.entries.get(setting.key)
    }

    fn value(&mut self, setting: &'static Setting) -> Option<Value> {
        let entry = self.entry(setting)?;
        let State::Set(value) = &entry.state else { return None };
        let (value, redact) = (value.clone(), entry.redact);
        let shown = if redact { serde_json::Value::from(REDACTED) } else { value.to_json() };
        self.dump.insert(setting.key, shown);
        Some(value)
    }

    /// Replaces the dumped value with a derived one (e.g. the endpoint with its scheme added).
    fn record(&mut self, setting: &'static Setting, json: serde_json::Value) {
        let redact = self.entries.get(setting.key).is_none_or(|e| e.redact);
        self.dump.insert(setting.key, if redact { REDACTED.into() } else { json });
    }

    fn is_unset(&self, setting: &Setting) -> bool {
        matches!(self.entries.get(setting.key).map(|e| &e.state), Some(State::Unset) | None)
    }

    fn origin(&self, setting: &Setting) -> Origin {
        self.entries.get(setting.key).map(|e| e.origin.clone()).unwrap_or(Origin::Default)
    }

    fn text(&mut self, setting: &'static Setting) -> Option<String> {
        match self.value(setting)? {
            Value::Text(t) => Some(t),
            other => self.kind_bug(setting, other),
        }
    }

    fn list(&mut self, setting: &'static Setting) -> Option<Vec<String>> {
        match self.value(setting)? {
            Value::List(items) => Some(items),
            other => self.kind_bug(setting, other),
        }
    }

    fn int(&mut self, setting: &'static Setting) -> Option<u64> {
        match self.value(setting)? {
            Value::Int(n) => Some(n),
            other => self.kind_bug(setting, other),
        }
    }

    /// Integers whose table range already fits `u32`; saturates instead of panicking if not.
    fn int_u32(&mut self, setting: &'static Setting) -> Option<u32> {
        self.int(setting).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn float(&mut self, setting: &'static Setting) -> Option<f64> {
        match self.value(setting)? {
            Value::Float(x) => Some(x),
            other => self.kind_bug(setting, other),
        }
    }

    fn boolean(&mut self, setting: &'static Setting) -> Option<bool> {
        match self.value(setting)? {
            Value::Bool(b) => Some(b),
            other => self.kind_bug(setting, other),
        }
    }

    fn secret(&mut self, setting: &'static Setting) -> Option<Secret> {
        self.text(setting).map(Secret::new)
    }

    fn choice<T>(&mut self, setting: &'static Setting, from_name: fn(&str) -> Option<T>) -> Option<T> {
        let name = self.text(setting)?;
        match from_name(&name) {
            Some(v) => Some(v),
            None => self.kind_bug(setting, Value::Text(name)),
        }
    }

    /// The table's kind and the getter disagree: a bug in this crate, reported rather than
    /// panicking so a binary still prints every problem.
    fn kind_bug<T>(&mut self, setting: &Setting, got: Value) -> Option<T> {
        self.problems.push(Problem::Invalid {
            key: setting.key.into(),
            env: setting.env.into(),
            origin: self.origin(setting),
            message: format!("internal error: cdc-config cannot use a {got:?}-shaped value here"),
        });
        None
    }

    fn missing(&mut self, setting: &'static Setting, why: impl Into<String>) {
        self.consumed.insert(setting.key);
        let note = self.entries.get(setting.key).and_then(|e| e.note.clone());
        self.problems.push(Problem::Missing {
            key: setting.key.into(),
            env: setting.env.into(),
            why: why.into(),
            note,
        });
    }

    /// A value that parsed but is not acceptable here; shows it unless redacted.
    fn reject(&mut self, setting: &'static Setting, expected: &str) {
        let (origin, shown) = match self.entries.get(setting.key) {
            Some(e) => (e.origin.clone(), e.shown.clone()),
            None => (Origin::Default, None),
        };
        self.problems.push(Problem::Invalid {
            key: setting.key.into(),
            env: setting.env.into(),
            origin,
            message: with_value(expected, shown.as_deref()),
        });
    }

    /// `key (env ENV, from ORIGIN)`, for conflicts between settings.
    fn describe(&self, setting: &Setting) -> String {
        format!("{} (env {}, from {})", setting.key, setting.env, self.origin(setting))
    }

    fn conflict(&mut self, settings: &[&Setting], message: impl Into<String>) {
        let settings = settings.iter().map(|s| self.describe(s)).collect();
        self.problems.push(Problem::Conflict { settings, message: message.into() });
    }

    fn path_problem(&mut self, setting: &Setting, path: &Path, reason: String) {
        // A path read through an `X_FILE` variable is treated like any other `_FILE` value.
        let redact = self.entries.get(setting.key).is_none_or(|e| e.redact);
        self.problems.push(Problem::Path {
            key: setting.key.into(),
            env: setting.env.into(),
            origin: self.origin(setting),
            path: if redact { PathBuf::from(REDACTED) } else { path.to_path_buf() },
            reason,
        });
    }
}

pub(crate) fn build(
    role: Role,
    entries: &BTreeMap<&'static str, Entry>,
    file: &FileLayer,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Built {
    let mut cx = Ctx { entries, problems, warnings, dump: BTreeMap::new(), consumed: BTreeSet::new() };
    // A file that failed to parse may hold the "missing" values; saying they are missing
    // would send the reader in the wrong direction.
    let report_missing = !file.unreadable;
    let database = database(&mut cx, role, report_missing);
    let datahub = datahub(&mut cx, role, report_missing);
    let flink = FlinkConfig {
        parallelism: cx.int_u32(&s::FLINK_PARALLELISM).unwrap_or(1),
        jobmanager_memory_bytes: cx.int(&s::JOBMANAGER_MEMORY).unwrap_or(0),
        taskmanager_memory_bytes: cx.int(&s::TASKMANAGER_MEMORY).unwrap_or(0),
        task_slots: cx.int_u32(&s::TASKMANAGER_SLOTS).unwrap_or(1),
    };
    let checkpoint = checkpoint(&mut cx);
    let state_backend = StateBackendConfig {
        backend: cx.choice(&s::STATE_BACKEND, StateBackend::from_name).unwrap_or(StateBackend::Hashmap),
        checkpoint_dir: cx.text(&s::CHECKPOINT_DIR).unwrap_or_default(),
        savepoint_dir: cx.text(&s::SAVEPOINT_DIR).unwrap_or_default(),
    };
    let high_availability = high_availability(&mut cx, report_missing);
    let output = output(&mut cx, role);
    let transform = transform(&mut cx, role, &datahub, report_missing);
    let s3 = s3(&mut cx);
    let relay = relay(&mut cx, role, report_missing);
    let monitoring = MonitoringConfig {
        port: cx.int(&s::MONITORING_PORT).map(|p| u16::try_from(p).unwrap_or(u16::MAX)).unwrap_or(0),
        metrics_enabled: cx.boolean(&s::METRICS_ENABLED).unwrap_or(true),
        latency_threshold_ms: cx.int(&s::ALERT_LATENCY_THRESHOLD).unwrap_or(0),
        checkpoint_failure_rate: cx.float(&s::ALERT_CHECKPOINT_FAILURE_RATE).unwrap_or(0.0),
        load_threshold: cx.float(&s::ALERT_LOAD_THRESHOLD).unwrap_or(0.0),
        alertmanager_urls: alertmanager_urls(&mut cx),
        alert_evaluation_interval_ms: cx.int(&s::ALERT_EVALUATION_INTERVAL).unwrap_or(30_000),
    };
    let logging = logging(&mut cx, file);

    // Unset optional settings appear as null, so the dump shows every setting a binary runs with.
    for setting in s::ALL {
        cx.dump.entry(setting.key).or_insert(serde_json::Value::Null);
    }
    let origins = entries
        .iter()
        .filter(|(_, e)| matches!(e.state, State::Set(_)))
        .map(|(k, e)| (*k, e.origin.clone()))
        .collect();
    Built {
        database,
        datahub,
        flink,
        checkpoint,
        state_backend,
        high_availability,
        output,
        transform,
        s3,
        relay,
        monitoring,
        logging,
        dump: cx.dump,
        origins,
        consumed: cx.consumed,
    }
}

/// `ALERTMANAGER_URL`: checked here so `--check-config` reports a URL alerts could never be
/// posted to (cdc-telemetry builds the endpoint from it and has no TLS client).
fn alertmanager_urls(cx: &mut Ctx<'_>) -> Vec<String> {
    let urls = cx.list(&s::ALERTMANAGER_URL).unwrap_or_default();
    for url in &urls {
        let authority = url.strip_prefix("http://").map(|rest| rest.split('/').next().unwrap_or_default());
        let problem = match authority {
            None if url.starts_with("https://") => Some("https is not supported (the alert client has no TLS); use http://"),
            None => Some("expected http://host:port, e.g. http://alertmanager:9093"),
            Some("") => Some("expected http://host:port: the URL has no host"),
            Some(a) if a.contains('@') => Some("credentials in the URL are not supported (the URL is logged)"),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            cx.reject(&s::ALERTMANAGER_URL, problem);
        }
    }
    urls
}

fn database(cx: &mut Ctx<'_>, role: Role, report_missing: bool) -> DatabaseConfig {
    let needs_db = role.requirements().database;
    let password = cx.secret(&s::DATABASE_PASSWORD);
    if needs_db && report_missing && cx.is_unset(&s::DATABASE_PASSWORD) {
        cx.missing(&s::DATABASE_PASSWORD, format!("required by {role}, which connects to the database"));
    }
    let schema = cx.text(&s::DATABASE_SCHEMA).unwrap_or_default();
    let include = cx.list(&s::DATABASE_TABLES);
    if include.as_ref().is_some_and(|list| list.is_empty()) {
        cx.reject(&s::DATABASE_TABLES, "expected `*` or at least one table name or pattern");
    }
    let include = include.unwrap_or_default();
    let exclude = cx.list(&s::DATABASE_EXCLUDE_TABLES).unwrap_or_default();
    let tables = match crate::TableSelector::from_lists(&schema, &include, &exclude) {
        Ok(selector) => selector,
        Err(err) => {
            let setting = if include.contains(&err.pattern) { &s::DATABASE_TABLES } else { &s::DATABASE_EXCLUDE_TABLES };
            cx.reject(setting, &err.to_string());
            crate::TableSelector::all(&schema)
        }
    };
    let ssl_mode = cx.choice(&s::DATABASE_SSL_MODE, SslMode::from_name).unwrap_or(SslMode::Prefer);
    let ssl_cert = cx.text(&s::DATABASE_SSL_CERT).map(PathBuf::from);
    let ssl_key = cx.text(&s::DATABASE_SSL_KEY).map(PathBuf::from);
    let ssl_root_cert = cx.text(&s::DATABASE_SSL_ROOT_CERT).map(PathBuf::from);

    if needs_db {
        // A client certificate is useless without its key and vice versa; the TLS handshake
        // would fail much later with a less helpful message.
        if ssl_cert.is_some() != ssl_key.is_some() {
            cx.conflict(&[&s::DATABASE_SSL_CERT, &s::DATABASE_SSL_KEY], "a client certificate and its key must be set together");
        }
        // As the MySQL client: verifying the server needs the CA to verify against.
        if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) && ssl_root_cert.is_none() && report_missing {
            cx.missing(&s::DATABASE_SSL_ROOT_CERT, format!("required when database.sslMode is {ssl_mode}"));
        }
        if ssl_mode == SslMode::Disable {
            if ssl_cert.is_some() || ssl_key.is_some() || ssl_root_cert.is_some() {
                cx.warnings.push("database.sslMode is disable; the TLS certificate settings are ignored".into());
            }
        } else {
            for (setting, path) in [
                (&s::DATABASE_SSL_CERT, &ssl_cert),
                (&s::DATABASE_SSL_KEY, &ssl_key),
                (&s::DATABASE_SSL_ROOT_CERT, &ssl_root_cert),
            ] {
                if let Some(path) = path {
                    if let Err(reason) = check_readable_file(path) {
                        cx.path_problem(setting, path, reason);
                    }
                }
            }
        }
    }

    DatabaseConfig {
        host: cx.text(&s::DATABASE_HOST).unwrap_or_default(),
        port: cx.int(&s::DATABASE_PORT).map(|p| u16::try_from(p).unwrap_or(u16::MAX)).unwrap_or(0),
        username: cx.text(&s::DATABASE_USERNAME).unwrap_or_default(),
        password,
        schema,
        tables,
        ssl_mode,
        ssl_cert,
        ssl_key,
        ssl_root_cert,
        server_id: cx.int_u32(&s::DATABASE_SERVER_ID),
        snapshot_mode: cx.choice(&s::DATABASE_SNAPSHOT_MODE, SnapshotMode::from_name).unwrap_or(SnapshotMode::Initial),
        snapshot_chunk_size: cx.int(&s::DATABASE_SNAPSHOT_CHUNK_SIZE).map_or(10_000, |n| usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

fn datahub(cx: &mut Ctx<'_>, role: Role, report_missing: bool) -> DatahubConfig {
    let req = role.requirements();
    let ssl_setting = cx.boolean(&s::DATAHUB_SSL_ENABLED);
    let endpoint = match cx.text(&s::DATAHUB_ENDPOINT) {
        Some(text) if text.eq_ignore_ascii_case("embedded") => {
            if req.datahub && !req.embedded_datahub {
                cx.reject(
                    &s::DATAHUB_ENDPOINT,
                    &format!(
                        "`embedded` runs the log inside cdc-pipeline only; point {role} at DataHub or at datahub-local's URL"
                    ),
                );
            }
            cx.record(&s::DATAHUB_ENDPOINT, "embedded".into());
            Some(DatahubEndpoint::Embedded)
        }
        Some(text) if text.starts_with("file://") => {
            let path = text.trim_start_matches("file://");
            if path.is_empty() || !path.starts_with('/') {
                cx.reject(&s::DATAHUB_ENDPOINT, "expected file:///absolute/path/events.jsonl");
                None
            } else {
                Some(DatahubEndpoint::File(PathBuf::from(path)))
            }
        }
        Some(text) => {
            let (scheme_tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
                (Some(true), rest)
            } else if let Some(rest) = text.strip_prefix("http://") {
                (Some(false), rest)
            } else {
                (None, text.as_str())
            };
            if rest.contains("://") || rest.trim_matches('/').is_empty() {
                cx.reject(&s::DATAHUB_ENDPOINT, "expected an http:// or https:// URL, a host name, or `embedded`");
                None
            } else {
                if let (Some(scheme), Some(explicit)) = (scheme_tls, ssl_setting) {
                    if scheme != explicit {
                        cx.conflict(
                            &[&s::DATAHUB_ENDPOINT, &s::DATAHUB_SSL_ENABLED],
                            format!(
                                "the endpoint's scheme ({}) contradicts sslEnabled={explicit}",
                                if scheme { "https" } else { "http" }
                            ),
                        );
                    }
                }
                let tls = scheme_tls.or(ssl_setting).unwrap_or(true);
                let url = format!("{}://{rest}", if tls { "https" } else { "http" });
                cx.record(&s::DATAHUB_ENDPOINT, url.clone().into());
                Some(DatahubEndpoint::Remote(url))
            }
        }
        None if req.embedded_datahub && cx.is_unset(&s::DATAHUB_ENDPOINT) => {
            // cdc-pipeline's defining feature: it runs without any DataHub configured.
            cx.dump.insert(s::DATAHUB_ENDPOINT.key, "embedded".into());
            Some(DatahubEndpoint::Embedded)
        }
        None => {
            if req.datahub && report_missing && cx.is_unset(&s::DATAHUB_ENDPOINT) {
                cx.missing(&s::DATAHUB_ENDPOINT, format!("required by {role}, which reads or writes DataHub"));
            }
            None
        }
    };
    let ssl_enabled = match &endpoint {
        Some(DatahubEndpoint::Remote(url)) => url.starts_with("https://"),
        Some(DatahubEndpoint::Embedded | DatahubEndpoint::File(_)) => false,
        None => ssl_setting.unwrap_or(true),
    };
    cx.dump.insert(s::DATAHUB_SSL_ENABLED.key, ssl_enabled.into());

    let access_id = cx.secret(&s::DATAHUB_ACCESS_ID);
    let access_key = cx.secret(&s::DATAHUB_ACCESS_KEY);
    if req.datahub && report_missing && matches!(endpoint, Some(DatahubEndpoint::Remote(_))) {
        for setting in [&s::DATAHUB_ACCESS_ID, &s::DATAHUB_ACCESS_KEY] {
            if cx.is_unset(setting) {
                cx.missing(setting, "required with a remote DataHub endpoint");
            }
        }
    }

    DatahubConfig {
        endpoint,
        access_id,
        access_key,
        project: cx.text(&s::DATAHUB_PROJECT).unwrap_or_default(),
        topic: cx.text(&s::DATAHUB_TOPIC).unwrap_or_default(),
        consumer_group: cx.text(&s::DATAHUB_CONSUMER_GROUP).unwrap_or_default(),
        ssl_enabled,
        ssl_verify: cx.boolean(&s::DATAHUB_SSL_VERIFY).unwrap_or(true),
        max_retries: cx.int_u32(&s::DATAHUB_MAX_RETRIES).unwrap_or(0),
    }
}

fn checkpoint(cx: &mut Ctx<'_>) -> CheckpointConfig {
    let interval = cx.int(&s::CHECKPOINT_INTERVAL);
    let timeout = cx.int(&s::CHECKPOINT_TIMEOUT);
    let min_pause = cx.int(&s::CHECKPOINT_MIN_PAUSE);
    // What Flink rejects (interval or timeout < 10 ms, negative pause, fewer than one
    // concurrent checkpoint) is in the table's ranges. A timeout shorter than the interval is
    // legal in Flink and sensible (give up on a slow checkpoint before the next is due), so it
    // is not an error. A pause longer than the interval is also legal: Flink silently uses the
    // pause as the interval; say so, since the configured interval will not be observed.
    if let (Some(interval), Some(pause)) = (interval, min_pause) {
        if pause > interval {
            cx.warnings.push(format!(
                "flink.checkpoint.minPause ({pause} ms) exceeds flink.checkpoint.interval ({interval} ms); checkpoints will run every {pause} ms"
            ));
        }
    }
    CheckpointConfig {
        interval_ms: interval.unwrap_or(0),
        timeout_ms: timeout.unwrap_or(0),
        min_pause_ms: min_pause.unwrap_or(0),
        max_concurrent: cx.int_u32(&s::CHECKPOINT_MAX_CONCURRENT).unwrap_or(1),
        retained_number: cx.int_u32(&s::CHECKPOINT_RETAINED_NUMBER).unwrap_or(1),
    }
}

fn high_availability(cx: &mut Ctx<'_>, report_missing: bool) -> HighAvailabilityConfig {
    // The guide maps both `highAvailability.enabled` and `highAvailability.mode` to HA_MODE.
    // Reconciled here: the environment wins outright (HA_MODE=true keeps the file's mode);
    // within the file, `enabled: false` switches HA off and `enabled: true` needs a mode.
    let enabled = cx.boolean(&s::HA_ENABLED);
    let mode_text = cx.text(&s::HA_MODE);
    let from_env = matches!(cx.origin(&s::HA_MODE), Origin::Env(_) | Origin::EnvFile { .. });
    let file_mode = match cx.entries.get(s::HA_MODE.key).and_then(|e| e.file_value.clone()) {
        Some(Value::Text(t)) => HaMode::from_name(&t),
        _ => None,
    };
    let named = |t: &str| HaMode::from_name(t).filter(|m| *m != HaMode::None);
    let mode = match mode_text.as_deref() {
        None => HaMode::None,
        Some("true") if from_env => match file_mode.filter(|m| *m != HaMode::None) {
            Some(m) => m,
            None => {
                cx.reject(&s::HA_MODE, "expected zookeeper or kubernetes (true does not say which, and the file names no mode)");
                HaMode::None
            }
        },
        Some(text) if from_env => named(text).unwrap_or(HaMode::None),
        Some(text) => match (enabled, named(text)) {
            (Some(false), Some(m)) => {
                cx.warnings.push(format!(
                    "highAvailability.enabled is false, so highAvailability.mode {m} is ignored"
                ));
                HaMode::None
            }
            (Some(false), None) => HaMode::None,
            (_, Some(m)) => m,
            (Some(true), None) => {
                cx.conflict(
                    &[&s::HA_ENABLED, &s::HA_MODE],
                    "HA is enabled but no mode is set; set highAvailability.mode (HA_MODE) to zookeeper or kubernetes",
                );
                HaMode::None
            }
            (None, None) => {
                if text == "true" {
                    cx.reject(&s::HA_MODE, "expected zookeeper or kubernetes (true does not say which)");
                }
                HaMode::None
            }
        },
    };
    cx.record(&s::HA_MODE, mode.as_str().into());

    let zookeeper_quorum = cx.list(&s::HA_ZOOKEEPER_QUORUM).unwrap_or_default();
    let zookeeper_path = cx.text(&s::HA_ZOOKEEPER_PATH).unwrap_or_default();
    if mode == HaMode::Zookeeper {
        if zookeeper_quorum.is_empty() && report_missing && cx.is_unset(&s::HA_ZOOKEEPER_QUORUM) {
            cx.missing(&s::HA_ZOOKEEPER_QUORUM, "required when the HA mode is zookeeper");
        }
        // ZooKeeper paths are absolute; a relative one fails only when the leader election starts.
        if !zookeeper_path.is_empty() && !zookeeper_path.starts_with('/') {
            cx.reject(&s::HA_ZOOKEEPER_PATH, "expected an absolute ZooKeeper path starting with /");
        }
    }
    HighAvailabilityConfig {
        mode,
        zookeeper_quorum,
        zookeeper_path,
        cluster_id: cx.text(&s::HA_CLUSTER_ID).unwrap_or_default(),
        storage_dir: cx.text(&s::HA_STORAGE_DIR).unwrap_or_default(),
        kubernetes_namespace: cx.text(&s::HA_KUBERNETES_NAMESPACE).unwrap_or_default(),
        kubernetes_cluster_id: cx.text(&s::HA_KUBERNETES_CLUSTER_ID).unwrap_or_default(),
        job_manager_count: cx.int_u32(&s::HA_JOB_MANAGER_COUNT).unwrap_or(1),
    }
}

fn output(cx: &mut Ctx<'_>, role: Role) -> OutputConfig {
    let path = cx.text(&s::OUTPUT_PATH).unwrap_or_default();
    let target = role.requirements().output;
    if target != OutputTarget::None && !path.is_empty() {
        match local_path(&path) {
            Some(dir) => {
                if let Err(reason) = ensure_writable_dir(&dir) {
                    cx.path_problem(&s::OUTPUT_PATH, &dir, reason);
                }
            }
            None if target == OutputTarget::LocalDir => {
                cx.reject(&s::OUTPUT_PATH, &format!("expected a local directory (or file:// URI); {role} writes local files"));
            }
            // An object-store URL: checked by object-sink when it connects.
            None => {}
        }
    }
    let format = cx.choice(&s::OUTPUT_FORMAT, OutputFormat::from_name).unwrap_or(OutputFormat::Json);
    let shape = cx.choice(&s::OUTPUT_SHAPE, OutputShape::from_name).unwrap_or(OutputShape::Flat);
    if shape == OutputShape::Envelope && format == OutputFormat::Csv {
        cx.conflict(&[&s::OUTPUT_SHAPE, &s::OUTPUT_FORMAT], "the envelope shape has nested columns, which CSV cannot hold; use parquet or json");
    }
    OutputConfig {
        path,
        format,
        rolling_size_bytes: cx.int(&s::OUTPUT_ROLLING_SIZE).unwrap_or(0),
        rolling_interval_ms: cx.int(&s::OUTPUT_ROLLING_INTERVAL).unwrap_or(0),
        compression: cx.choice(&s::OUTPUT_COMPRESSION, Compression::from_name).unwrap_or(Compression::None),
        max_retries: cx.int_u32(&s::OUTPUT_MAX_RETRIES).unwrap_or(0),
        batch_size: cx.int_u32(&s::OUTPUT_BATCH_SIZE).unwrap_or(1),
        shape,
    }
}

fn transform(cx: &mut Ctx<'_>, role: Role, datahub: &DatahubConfig, report_missing: bool) -> TransformConfig {
    let config = cx.text(&s::TRANSFORM_CONFIG).map(PathBuf::from);
    let is_transform = role == Role::Transform;
    if is_transform && report_missing && cx.is_unset(&s::TRANSFORM_CONFIG) {
        cx.missing(&s::TRANSFORM_CONFIG, "required by transform: the rules it applies");
    }
    // The rules themselves are parsed by cdc-transform at start-up; a missing file is found
    // here so it is listed with every other problem.
    let applies = matches!(role, Role::Transform | Role::FileSink);
    if let Some(path) = &config {
        if !applies {
            cx.warnings.push(format!("transform.config is set, but {role} does not apply transform rules; it is ignored"));
        } else if let Err(reason) = check_readable_file(path) {
            cx.path_problem(&s::TRANSFORM_CONFIG, path, reason);
        }
    }
    let hash_salt = cx.secret(&s::TRANSFORM_HASH_SALT);
    if hash_salt.as_ref().is_some_and(|salt| salt.expose().len() < 16) {
        // A short key makes the hashes of low-entropy values (phone numbers) guessable.
        cx.reject(&s::TRANSFORM_HASH_SALT, "expected at least 16 characters");
    }
    let output_project = cx.text(&s::TRANSFORM_OUTPUT_PROJECT).unwrap_or_else(|| datahub.project.clone());
    let output_topic = cx.text(&s::TRANSFORM_OUTPUT_TOPIC);
    if is_transform && report_missing && output_topic.is_none() && cx.is_unset(&s::TRANSFORM_OUTPUT_TOPIC) {
        cx.missing(&s::TRANSFORM_OUTPUT_TOPIC, "required by transform: where transformed events go");
    }
    if is_transform && output_topic.as_deref() == Some(datahub.topic.as_str()) && output_project == datahub.project {
        // Reading and writing one topic would transform its own output forever.
        cx.conflict(&[&s::DATAHUB_TOPIC, &s::TRANSFORM_OUTPUT_TOPIC], "transform must publish to another topic than it reads");
    }
    let dlq_topic = cx.text(&s::TRANSFORM_DLQ_TOPIC).or_else(|| output_topic.as_ref().map(|t| format!("{t}-dlq")));
    if is_transform && dlq_topic.is_some() && dlq_topic == output_topic {
        cx.conflict(&[&s::TRANSFORM_OUTPUT_TOPIC, &s::TRANSFORM_DLQ_TOPIC], "dead letters need their own topic");
    }
    TransformConfig { config, hash_salt, output_project, output_topic, dlq_topic }
}

fn s3(cx: &mut Ctx<'_>) -> S3Config {
    let endpoint = cx.text(&s::S3_ENDPOINT);
    if let Some(url) = &endpoint {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        if rest.is_none_or(|rest| rest.trim_matches('/').is_empty()) {
            cx.reject(&s::S3_ENDPOINT, "expected an http:// or https:// URL");
        }
    }
    let access_key = cx.secret(&s::S3_ACCESS_KEY);
    let secret_key = cx.secret(&s::S3_SECRET_KEY);
    if access_key.is_some() != secret_key.is_some() {
        // Half a key pair would silently fall back to the default chain's credentials.
        cx.conflict(&[&s::S3_ACCESS_KEY, &s::S3_SECRET_KEY], "an access key and its secret must be set together");
    }
    S3Config {
        endpoint,
        region: cx.text(&s::S3_REGION),
        path_style_access: cx.boolean(&s::S3_PATH_STYLE_ACCESS).unwrap_or(false),
        access_key,
        secret_key,
        staging_dir: cx.text(&s::S3_STAGING_DIR).map(PathBuf::from),
    }
}

fn relay(cx: &mut Ctx<'_>, role: Role, report_missing: bool) -> crate::model::RelayConfig {
    use crate::model::RelayTarget;
    let target = cx.choice(&s::RELAY_TARGET, RelayTarget::from_name).unwrap_or(RelayTarget::Http);
    let is_relay = role == Role::DatahubRelay;
    let http_url = cx.text(&s::RELAY_HTTP_URL);
    let lambda_endpoint = cx.text(&s::RELAY_LAMBDA_ENDPOINT);
    for (setting, url) in [(&s::RELAY_HTTP_URL, &http_url), (&s::RELAY_LAMBDA_ENDPOINT, &lambda_endpoint)] {
        if let Some(url) = url {
            let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|rest| rest.trim_matches('/').is_empty()) {
                cx.reject(setting, "expected an http:// or https:// URL");
            }
        }
    }
    let lambda_function_name = cx.text(&s::RELAY_LAMBDA_FUNCTION_NAME);
    if is_relay && report_missing {
        if target == RelayTarget::Http && cx.is_unset(&s::RELAY_HTTP_URL) {
            cx.missing(&s::RELAY_HTTP_URL, "required when relay.target is http: where batches are POSTed");
        }
        if target == RelayTarget::Lambda && cx.is_unset(&s::RELAY_LAMBDA_FUNCTION_NAME) {
            cx.missing(&s::RELAY_LAMBDA_FUNCTION_NAME, "required when relay.target is lambda: the function invoked");
        }
    }
    crate::model::RelayConfig {
        target,
        http_url,
        timeout_ms: cx.int(&s::RELAY_TIMEOUT).unwrap_or(30_000),
        max_retries: cx.int_u32(&s::RELAY_MAX_RETRIES).unwrap_or(0),
        retry_backoff_ms: cx.int(&s::RELAY_RETRY_BACKOFF).unwrap_or(500),
        lambda_function_name,
        lambda_region: cx.text(&s::RELAY_LAMBDA_REGION).unwrap_or_default(),
        lambda_endpoint,
        batch_max_records: cx.int_u32(&s::RELAY_BATCH_MAX_RECORDS).unwrap_or(1),
        batch_max_bytes: cx.int(&s::RELAY_BATCH_MAX_BYTES).unwrap_or(1),
        batch_linger_ms: cx.int(&s::RELAY_BATCH_LINGER).unwrap_or(0),
        session_timeout_ms: cx.int(&s::RELAY_SESSION_TIMEOUT).unwrap_or(6000),
    }
}

fn logging(cx: &mut Ctx<'_>, file: &FileLayer) -> LoggingConfig {
    let mut targets = BTreeMap::new();
    let mut dumped_targets = serde_json::Map::new();
    for (target, raw) in &file.log_targets {
        match parse(&s::LOG_LEVEL.kind, raw) {
            Ok(Value::Text(name)) => {
                if let Some(level) = LogLevel::from_name(&name) {
                    dumped_targets.insert(target.clone(), name.into());
                    targets.insert(target.clone(), level);
                }
            }
            Ok(_) => {}
            Err(expected) => cx.problems.push(Problem::FileShape {
                file: file.path.clone().unwrap_or_default(),
                path: format!("logging.level.{target}"),
                message: with_value(&expected, Some(&raw.display())),
            }),
        }
    }
    if !dumped_targets.is_empty() {
        cx.dump.insert("logging.targets", dumped_targets.into());
    }
    let pattern = cx.text(&s::LOG_PATTERN);
    if pattern.is_some() {
        cx.warnings.push("logging.pattern is accepted for compatibility but has no effect; use logging.format".into());
    }
    let file_path = cx.text(&s::LOG_FILE_PATH).map(PathBuf::from);
    if let Some(dir) = &file_path {
        if let Err(reason) = ensure_writable_dir(dir) {
            cx.path_problem(&s::LOG_FILE_PATH, dir, reason);
        }
    }
    LoggingConfig {
        level: cx.choice(&s::LOG_LEVEL, LogLevel::from_name).unwrap_or(LogLevel::Info),
        targets,
        format: cx.choice(&s::LOG_FORMAT, LogFormat::from_name).unwrap_or(LogFormat::Text),
        pattern,
        file_path,
        file_max_size_bytes: cx.int(&s::LOG_FILE_MAX_SIZE).unwrap_or(0),
        file_max_history: cx.int_u32(&s::LOG_FILE_MAX_HISTORY).unwrap_or(0),
    }
}

/// Creates `dir` if missing and proves it writable by creating and removing a probe file.
/// Metadata (mode bits) would say nothing about read-only mounts, ACLs or running as root.
pub(crate) fn ensure_writable_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err("exists and is not a directory".into());
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot be created: {e}"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let probe = dir.join(format!(".cdc-config-probe-{}-{nanos}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("is not writable: {e}"))?;
    fs::remove_file(&probe).map_err(|e| format!("probe file {} cannot be removed: {e}", probe.display()))
}

fn check_readable_file(path: &Path) -> Result<(), String> {
    match fs::File::open(path) {
        Ok(_) if path.is_file() => Ok(()),
        Ok(_) => Err("is not a regular file".into()),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}
