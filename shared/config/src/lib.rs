//! One typed configuration tree for every binary of the CDC pipeline.
//!
//! Settings are layered **defaults < YAML file < environment variables**, with the keys and
//! variable names of the Flink deployment guide this system replaces, and validated at start-up:
//! every problem is reported at once in one [`ConfigError`].
//!
//! ```no_run
//! use cdc_config::{Config, Role};
//!
//! let config = match Config::from_process_env(Role::FileSink, None) {
//!     Ok(config) => config,
//!     Err(e) => {
//!         eprintln!("{e}");
//!         std::process::exit(2);
//!     }
//! };
//! for warning in &config.warnings {
//!     eprintln!("config warning: {warning}");
//! }
//! eprintln!("effective configuration: {}", config.redacted_json());
//! let _dir = config.output.local_dir();
//! ```
//!
//! * Every setting is one row of [`settings::ALL`]; [`reference_markdown`] renders them.
//! * Any variable `X` may instead be given as `X_FILE=/path` (Docker/Kubernetes secrets).
//! * `${VAR}` and `${VAR:-default}` are expanded in string values of the YAML file.
//! * Secrets are [`Secret`]s: `***` in `Debug`, errors and [`Config::redacted_json`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod build;
mod error;
mod layers;
mod model;
mod parse;
mod reference;
mod role;
mod secret;
mod selection;
pub mod settings;
mod suggest;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Origin, Problem};
pub use model::{
    CheckpointConfig, Compression, DatabaseConfig, DatahubConfig, DatahubEndpoint, FlinkConfig,
    HaMode, HighAvailabilityConfig, LogFormat, LogLevel, LoggingConfig, MonitoringConfig,
    OutputConfig, OutputFormat, OutputShape, S3Config, SnapshotMode, SslMode, StateBackend,
    StateBackendConfig, TransformConfig,
};
pub use model::{RelayConfig, RelayTarget};
pub use reference::reference_markdown;
pub use role::{OutputTarget, Requirements, Role};
pub use secret::Secret;
pub use selection::{SelectionError, TableSelector};

/// Which YAML file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConfigFile {
    /// `CONFIG_FILE` from the environment if set (the file must exist), otherwise
    /// `application.yml` (or `.yaml`) in the working directory if it exists, otherwise none.
    #[default]
    Auto,
    /// This file (from `--config`); it must exist.
    Path(PathBuf),
    /// No file: defaults and environment only.
    None,
}

/// Inputs of [`Config::load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The YAML file.
    pub file: ConfigFile,
    /// Environment variables. Injected rather than read, so tests never mutate the process env.
    pub env: BTreeMap<String, String>,
    /// The binary loading the configuration; decides what is required.
    pub role: Role,
}

impl LoadOptions {
    /// Options for `role` with no environment and [`ConfigFile::Auto`].
    pub fn new(role: Role) -> Self {
        LoadOptions { file: ConfigFile::Auto, env: BTreeMap::new(), role }
    }

    /// Sets the file choice.
    pub fn with_file(mut self, file: ConfigFile) -> Self {
        self.file = file;
        self
    }

    /// Adds environment variables.
    pub fn with_env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
}

/// The validated configuration of one process.
#[derive(Clone)]
pub struct Config {
    /// The role it was loaded for.
    pub role: Role,
    /// The YAML file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Source database.
    pub database: DatabaseConfig,
    /// DataHub.
    pub datahub: DatahubConfig,
    /// Parallelism and process sizes.
    pub flink: FlinkConfig,
    /// Checkpointing.
    pub checkpoint: CheckpointConfig,
    /// State backend and checkpoint/savepoint directories.
    pub state_backend: StateBackendConfig,
    /// High availability.
    pub high_availability: HighAvailabilityConfig,
    /// File output.
    pub output: OutputConfig,
    /// Transform rules and the transform function's output topics.
    pub transform: TransformConfig,
    /// S3-compatible object store (object-sink output, `s3://` checkpoints).
    pub s3: S3Config,
    /// datahub-relay: target, batching, consumer-group session.
    pub relay: RelayConfig,
    /// Ops endpoint and alerts.
    pub monitoring: MonitoringConfig,
    /// Logging.
    pub logging: LoggingConfig,
    /// Things that are accepted but worth a log line (ignored Flink keys, misspelt-looking env
    /// vars, settings that will not take effect). Binaries should log each at WARN.
    pub warnings: Vec<String>,
    dump: BTreeMap<&'static str, serde_json::Value>,
    origins: BTreeMap<&'static str, Origin>,
}

impl Config {
    /// Loads and validates the configuration: defaults < file < environment, then the role's
    /// requirements and cross-setting checks. Sink roles create `output.path` if missing.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every problem found (not just the first).
    pub fn load(options: LoadOptions) -> Result<Config, ConfigError> {
        load_with(options, Vec::new())
    }

    /// [`Config::load`] with the process environment and `--config` (if the binary got one).
    ///
    /// Variables that are not valid UTF-8 are skipped, except that one named like a setting is
    /// reported as a problem rather than silently ignored or mangled.
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn from_process_env(role: Role, config_file: Option<PathBuf>) -> Result<Config, ConfigError> {
        let mut env = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, value) in std::env::vars_os() {
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => {
                    env.insert(name, value);
                }
                (Ok(name), Err(_)) => {
                    if let Some(setting) = settings::ALL.iter().find(|s| s.env == name || s.env_file() == name) {
                        problems.push(Problem::Invalid {
                            key: setting.key.into(),
                            env: name.clone(),
                            origin: Origin::Env(name),
                            message: "expected valid UTF-8 (value not shown)".into(),
                        });
                    }
                }
                (Err(_), _) => {}
            }
        }
        let file = config_file.map(ConfigFile::Path).unwrap_or(ConfigFile::Auto);
        load_with(LoadOptions { file, env, role }, problems)
    }

    /// The effective configuration as nested JSON under the canonical keys, with secrets and
    /// anything read through `X_FILE` shown as `"***"`. For logging at start-up.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        for (key, value) in &self.dump {
            insert_path(&mut root, key, value.clone());
        }
        serde_json::Value::Object(root)
    }

    /// Where the effective value of `key` (canonical, e.g. `database.port`) came from;
    /// `None` for unset settings.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.get(key)
    }
}

impl fmt::Debug for Config {
    /// The redacted dump: the derived `Debug` of the sub-structs already hides [`Secret`]s,
    /// but would show a non-secret value read through `X_FILE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Config {{ role: {}, settings: {} }}", self.role, self.redacted_json())
    }
}

fn insert_path(root: &mut serde_json::Map<String, serde_json::Value>, key: &str, value: serde_json::Value) {
    match key.split_once('.') {
        None => {
            root.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let child = root
                .entry(head.to_string())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !child.is_object() {
                // Cannot happen with the table's keys (none is a prefix of another); keep the
                // value rather than lose it.
                *child = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(map) = child {
                insert_path(map, rest, value);
            }
        }
    }
}

/// Picks the YAML file, or reports why the chosen one is unusable.
fn choose_file(choice: &ConfigFile, env: &BTreeMap<String, String>) -> Option<PathBuf> {
    match choice {
        ConfigFile::None => None,
        ConfigFile::Path(path) => Some(path.clone()),
        ConfigFile::Auto => match env.get(settings::CONFIG_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Some(PathBuf::from(path)),
            None => settings::DEFAULT_FILE_NAMES.iter().map(Path::new).find(|p| p.is_file()).map(Path::to_path_buf),
        },
    }
}

fn load_with(options: LoadOptions, mut problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let LoadOptions { file, env, role } = options;
    let mut warnings = Vec::new();

    let file_layer = match choose_file(&file, &env) {
        Some(path) => layers::read_file_layer(&path, &env, &mut problems, &mut warnings),
        None => layers::FileLayer::default(),
    };
    let entries = layers::resolve(&file_layer, &env, &mut problems, &mut warnings);
    layers::env_typo_warnings(&env, &mut warnings);
    let built = build::build(role, &entries, &file_layer, &mut problems, &mut warnings);

    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Config {
        role,
        config_file: file_layer.path.clone(),
        database: built.database,
        datahub: built.datahub,
        flink: built.flink,
        checkpoint: built.checkpoint,
        state_backend: built.state_backend,
        high_availability: built.high_availability,
        output: built.output,
        transform: built.transform,
        s3: built.s3,
        relay: built.relay,
        monitoring: built.monitoring,
        logging: built.logging,
        warnings,
        dump: built.dump,
        origins: built.origins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_read_by_the_builder() {
        // A row added to the table but never read would be accepted and silently ignored.
        // Sink roles create output.path; keep that inside a temporary directory.
        let dir = tempfile::tempdir().unwrap();
        let env = BTreeMap::from([("OUTPUT_PATH".to_string(), dir.path().display().to_string())]);
        let entries = layers::resolve(&layers::FileLayer::default(), &env, &mut Vec::new(), &mut Vec::new());
        for role in Role::ALL {
            let mut problems = Vec::new();
            let built = build::build(role, &entries, &layers::FileLayer::default(), &mut problems, &mut Vec::new());
            for s in settings::ALL {
                assert!(built.consumed.contains(s.key), "{} is never read (role {role})", s.key);
            }
        }
    }
}
