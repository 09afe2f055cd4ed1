//! Defaults < YAML file < environment, for a table of documented settings.

mod common;

use cdc_config::{Config, Origin, Role};
use common::{ok, Scratch};

/// One documented setting: how the test sets it in each layer and reads it back.
struct Case {
    key: &'static str,
    env: &'static str,
    /// Value written at `key` in the YAML below (as the guide spells it).
    file_value: &'static str,
    env_value: &'static str,
    expect_default: &'static str,
    expect_file: &'static str,
    expect_env: &'static str,
    read: fn(&Config) -> String,
}

const CASES: &[Case] = &[
    Case { key: "database.host", env: "DATABASE_HOST", file_value: "oceanbase.example.com", env_value: "db.env",
        expect_default: "localhost", expect_file: "oceanbase.example.com", expect_env: "db.env",
        read: |c| c.database.host.clone() },
    Case { key: "database.port", env: "DATABASE_PORT", file_value: "3306", env_value: "3307",
        expect_default: "2881", expect_file: "3306", expect_env: "3307",
        read: |c| c.database.port.to_string() },
    Case { key: "database.tables", env: "DATABASE_TABLES", file_value: "\"orders,users,products\"", env_value: "a, b",
        expect_default: "test.*", expect_file: "test.orders,test.users,test.products", expect_env: "test.a,test.b",
        read: |c| c.database.tables.to_string() },
    Case { key: "datahub.project", env: "DATAHUB_PROJECT", file_value: "my-project", env_value: "env-project",
        expect_default: "realtime-pipeline", expect_file: "my-project", expect_env: "env-project",
        read: |c| c.datahub.project.clone() },
    Case { key: "datahub.consumerGroup", env: "DATAHUB_CONSUMER_GROUP", file_value: "flink-consumer", env_value: "g2",
        expect_default: "cdc-collector-group", expect_file: "flink-consumer", expect_env: "g2",
        read: |c| c.datahub.consumer_group.clone() },
    Case { key: "flink.parallelism", env: "PARALLELISM_DEFAULT", file_value: "8", env_value: "16",
        expect_default: "4", expect_file: "8", expect_env: "16",
        read: |c| c.flink.parallelism.to_string() },
    Case { key: "jobmanager.memory.process.size", env: "JOB_MANAGER_HEAP_SIZE", file_value: "2048m", env_value: "4g",
        expect_default: "1073741824", expect_file: "2147483648", expect_env: "4294967296",
        read: |c| c.flink.jobmanager_memory_bytes.to_string() },
    Case { key: "flink.checkpoint.interval", env: "CHECKPOINT_INTERVAL", file_value: "180000", env_value: "120000",
        expect_default: "300000", expect_file: "180000", expect_env: "120000",
        read: |c| c.checkpoint.interval_ms.to_string() },
    Case { key: "flink.checkpoint.retainedNumber", env: "CHECKPOINT_RETAINED_NUMBER", file_value: "5", env_value: "7",
        expect_default: "3", expect_file: "5", expect_env: "7",
        read: |c| c.checkpoint.retained_number.to_string() },
    Case { key: "flink.stateBackend.type", env: "STATE_BACKEND", file_value: "rocksdb", env_value: "HASHMAP",
        expect_default: "hashmap", expect_file: "rocksdb", expect_env: "hashmap",
        read: |c| c.state_backend.backend.to_string() },
    Case { key: "highAvailability.zookeeperPath", env: "HA_ZOOKEEPER_PATH", file_value: "/flink-cluster", env_value: "/env",
        expect_default: "/flink", expect_file: "/flink-cluster", expect_env: "/env",
        read: |c| c.high_availability.zookeeper_path.clone() },
    Case { key: "output.format", env: "OUTPUT_FORMAT", file_value: "parquet", env_value: "CSV",
        expect_default: "json", expect_file: "parquet", expect_env: "csv",
        read: |c| c.output.format.to_string() },
    Case { key: "output.rolling.sizeBytes", env: "OUTPUT_ROLLING_SIZE", file_value: "536870912", env_value: "1m",
        expect_default: "1073741824", expect_file: "536870912", expect_env: "1048576",
        read: |c| c.output.rolling_size_bytes.to_string() },
    Case { key: "output.compression", env: "OUTPUT_COMPRESSION", file_value: "snappy", env_value: "zstd",
        expect_default: "none", expect_file: "snappy", expect_env: "zstd",
        read: |c| c.output.compression.to_string() },
    Case { key: "output.batchSize", env: "OUTPUT_BATCH_SIZE", file_value: "5000", env_value: "100",
        expect_default: "10000", expect_file: "5000", expect_env: "100",
        read: |c| c.output.batch_size.to_string() },
    Case { key: "monitoring.port", env: "MONITORING_PORT", file_value: "9090", env_value: "0",
        expect_default: "8080", expect_file: "9090", expect_env: "0",
        read: |c| c.monitoring.port.to_string() },
    Case { key: "monitoring.metrics.enabled", env: "METRICS_ENABLED", file_value: "false", env_value: "TRUE",
        expect_default: "true", expect_file: "false", expect_env: "true",
        read: |c| c.monitoring.metrics_enabled.to_string() },
    Case { key: "monitoring.alerts.checkpointFailureRate", env: "ALERT_CHECKPOINT_FAILURE_RATE", file_value: "0.05", env_value: "0.2",
        expect_default: "0.1", expect_file: "0.05", expect_env: "0.2",
        read: |c| c.monitoring.checkpoint_failure_rate.to_string() },
    Case { key: "logging.level", env: "LOG_LEVEL", file_value: "WARN", env_value: "debug",
        expect_default: "info", expect_file: "warn", expect_env: "debug",
        read: |c| c.logging.level.to_string() },
    Case { key: "datahub.sslVerify", env: "DATAHUB_SSL_VERIFY", file_value: "false", env_value: "yes",
        expect_default: "true", expect_file: "false", expect_env: "true",
        read: |c| c.datahub.ssl_verify.to_string() },
];

/// Nested YAML (the guide's shape) setting every case's key to its `file_value`.
fn yaml_for(cases: &[Case]) -> String {
    let mut root = serde_yaml::Mapping::new();
    for case in cases {
        let value: serde_yaml::Value = serde_yaml::from_str(case.file_value).expect("case value is YAML");
        // `jobmanager.memory.process.size` is nested like the rest; dotted keys would also work.
        let mut node = &mut root;
        let segments: Vec<&str> = case.key.split('.').collect();
        for segment in &segments[..segments.len() - 1] {
            let entry = node
                .entry(serde_yaml::Value::from(*segment))
                .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
            node = entry.as_mapping_mut().expect("sections are mappings");
        }
        node.insert(serde_yaml::Value::from(segments[segments.len() - 1]), value);
    }
    serde_yaml::to_string(&root).expect("serialise")
}

#[test]
fn env_overrides_file_overrides_defaults() {
    let scratch = Scratch::new();
    let yaml = yaml_for(CASES);
    let env: Vec<(&str, &str)> = CASES.iter().map(|c| (c.env, c.env_value)).collect();
    // datahub-local needs nothing from DataHub, the database or the output directory, so only
    // layering is under test here.
    let defaults = ok(scratch.load(Role::DatahubLocal, None, &[]));
    let from_file = ok(scratch.load(Role::DatahubLocal, Some(&yaml), &[]));
    let from_env = ok(scratch.load(Role::DatahubLocal, Some(&yaml), &env));

    let mut failures = Vec::new();
    for case in CASES {
        for (layer, config, expected) in [
            ("default", &defaults, case.expect_default),
            ("file", &from_file, case.expect_file),
            ("env", &from_env, case.expect_env),
        ] {
            let got = (case.read)(config);
            if got != expected {
                failures.push(format!("{} ({}) from {layer}: expected {expected}, got {got}", case.key, case.env));
            }
        }
        let origins = [defaults.origin(case.key), from_file.origin(case.key), from_env.origin(case.key)];
        let ok_origins = matches!(origins, [Some(Origin::Default), Some(Origin::File(_)), Some(Origin::Env(v))] if v == case.env);
        if !ok_origins {
            failures.push(format!("{}: origins {origins:?}", case.key));
        }
    }
    assert!(failures.is_empty(), "{} layering failures:\n{}", failures.len(), failures.join("\n"));
    assert!(CASES.len() >= 10);
}

#[test]
fn only_the_env_var_overrides_the_file_not_a_lookalike() {
    let scratch = Scratch::new();
    let config = ok(scratch.load(
        Role::DatahubLocal,
        Some("database:\n  host: from-file\n"),
        &[("DATABSE_HOST", "typo"), ("DATABASE_HOST", "")],
    ));
    assert_eq!(config.database.host, "from-file", "empty DATABASE_HOST counts as unset");
    assert!(
        config.warnings.iter().any(|w| w.contains("DATABSE_HOST") && w.contains("did you mean DATABASE_HOST")),
        "{:?}",
        config.warnings
    );
    assert!(config.warnings.iter().any(|w| w.contains("DATABASE_HOST is set but empty")), "{:?}", config.warnings);
}

#[test]
fn config_file_env_var_names_the_file() {
    let scratch = Scratch::new();
    let path = scratch.write("custom.yml", "datahub:\n  topic: from-config-file-env\n");
    let config = ok(cdc_config::Config::load(
        cdc_config::LoadOptions::new(Role::DatahubLocal).with_env([("CONFIG_FILE", path.as_str())]),
    ));
    assert_eq!(config.datahub.topic, "from-config-file-env");
    assert_eq!(config.config_file.as_deref(), Some(std::path::Path::new(&path)));
}

#[test]
fn a_named_config_file_that_does_not_exist_is_an_error() {
    let scratch = Scratch::new();
    let missing = scratch.path("nope.yml");
    let e = common::err(cdc_config::Config::load(
        cdc_config::LoadOptions::new(Role::DatahubLocal).with_file(cdc_config::ConfigFile::Path(missing.clone())),
    ));
    assert!(e.to_string().contains("nope.yml"), "{e}");
}
