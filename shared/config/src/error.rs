//! Where a value came from, and everything that can be wrong with a configuration.

use std::fmt;
use std::path::PathBuf;

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in default (or the role's default, e.g. `embedded` DataHub in cdc-pipeline).
    Default,
    /// The YAML configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// The file named by an `X_FILE` environment variable.
    EnvFile {
        /// The `X_FILE` variable.
        var: String,
        /// The file it names.
        path: PathBuf,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::EnvFile { var, path } => write!(f, "env {var} (file {})", path.display()),
        }
    }
}

/// One thing wrong with the configuration. Messages name the key and the environment variable
/// and never contain a secret value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required setting has no value.
    #[error("{key} (env {env} or {env}_FILE) is missing: {why}{}", note.as_ref().map(|n| format!("; {n}")).unwrap_or_default())]
    Missing {
        /// Setting key.
        key: String,
        /// Its environment variable.
        env: String,
        /// Why it is required here (which role or which other setting needs it).
        why: String,
        /// Extra hint, e.g. an unresolved `${VAR}` in the file.
        note: Option<String>,
    },

    /// A value that does not parse or is out of range.
    #[error("{key} / {env}: {message} (from {origin})")]
    Invalid {
        /// Setting key.
        key: String,
        /// Its environment variable.
        env: String,
        /// Where the bad value came from.
        origin: Origin,
        /// What was expected and, for non-secret settings, what was found.
        message: String,
    },

    /// Both `X` and `X_FILE` are set, so which one wins would be a guess.
    #[error("{key}: both {env} and {env_file} are set; set only one")]
    BothValueAndFile {
        /// Setting key.
        key: String,
        /// The plain variable.
        env: String,
        /// The `_FILE` variable.
        env_file: String,
    },

    /// The file named by an `X_FILE` variable cannot be read.
    #[error("{key}: cannot read {env_file}={}: {error}", path.display())]
    EnvFileUnreadable {
        /// Setting key.
        key: String,
        /// The `_FILE` variable.
        env_file: String,
        /// The file it names.
        path: PathBuf,
        /// Why (I/O error text; never file contents).
        error: String,
    },

    /// A key in the YAML file that is not a setting.
    #[error("unknown key '{path}' in {}{}", file.display(), did_you_mean(suggestion.as_deref()))]
    UnknownKey {
        /// The configuration file.
        file: PathBuf,
        /// Dotted path of the key as written.
        path: String,
        /// The canonical key closest to `path`, if one is close enough to be the intended one.
        suggestion: Option<String>,
    },

    /// A key in the YAML file that is known but written in the wrong shape or twice.
    #[error("'{path}' in {}: {message}", file.display())]
    FileShape {
        /// The configuration file.
        file: PathBuf,
        /// Dotted path of the key as written.
        path: String,
        /// What is wrong.
        message: String,
    },

    /// The configuration file itself cannot be read or parsed.
    #[error("configuration file {}: {error}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },

    /// A path setting that is not usable (not writable, not a directory, unreadable file).
    #[error("{key} / {env}: {} {reason} (from {origin})", path.display())]
    Path {
        /// Setting key.
        key: String,
        /// Its environment variable.
        env: String,
        /// Where the value came from.
        origin: Origin,
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Settings that are individually valid but contradict each other.
    #[error("{}: {message}", settings.join(" + "))]
    Conflict {
        /// The settings involved, each as `key (env ENV, from SOURCE)`.
        settings: Vec<String>,
        /// What is wrong.
        message: String,
    },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(key) => match crate::settings::by_key(key) {
            Some(setting) => format!("; did you mean '{key}' (env {})?", setting.env),
            None => format!("; did you mean '{key}'?"),
        },
        None => String::new(),
    }
}

/// Everything wrong with a configuration, reported at once so a deployment is fixed in one go.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in a stable order (settings-table order, then file and cross-checks).
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "invalid configuration ({n} problem{}):", if n == 1 { "" } else { "s" })?;
        for (i, problem) in self.problems.iter().enumerate() {
            write!(f, "\n  {}. {problem}", i + 1)?;
        }
        Ok(())
    }
}
