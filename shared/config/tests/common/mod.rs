//! Helpers shared by the integration tests: a YAML file in a temporary directory and an
//! injected environment, so no test touches the process environment or the working directory.
#![allow(dead_code)]

use std::path::PathBuf;

use cdc_config::{Config, ConfigError, ConfigFile, LoadOptions, Role};
use tempfile::TempDir;

/// A scratch directory that lives as long as the test needs the files in it.
pub struct Scratch {
    pub dir: TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `contents` to `name` and returns the path as a string (for env values).
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write");
        path.display().to_string()
    }

    /// Loads with an optional YAML file (written as `application.yml` here) and `env`.
    pub fn load(&self, role: Role, yaml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file = match yaml {
            Some(yaml) => ConfigFile::Path(self.write("application.yml", yaml).into()),
            None => ConfigFile::None,
        };
        Config::load(
            LoadOptions::new(role)
                .with_file(file)
                .with_env(env.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        )
    }
}

/// Unwraps a load that must succeed, printing every problem otherwise.
pub fn ok(result: Result<Config, ConfigError>) -> Config {
    match result {
        Ok(config) => config,
        Err(e) => panic!("expected the configuration to load, got:\n{e}"),
    }
}

/// Unwraps a load that must fail.
pub fn err(result: Result<Config, ConfigError>) -> ConfigError {
    match result {
        Ok(config) => panic!("expected a configuration error, got {config:?}"),
        Err(e) => e,
    }
}

/// Env for a role that uses a remote DataHub, so tests about something else load cleanly.
pub const REMOTE_DATAHUB: &[(&str, &str)] = &[
    ("DATAHUB_ENDPOINT", "https://dh-cn-hangzhou.aliyuncs.com"),
    ("DATAHUB_ACCESS_ID", "test-access-id"),
    ("DATAHUB_ACCESS_KEY", "test-access-key"),
];
