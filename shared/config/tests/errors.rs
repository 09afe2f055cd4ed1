//! Start-up validation: every problem at once, each naming key, env var and origin.

mod common;

use cdc_config::{Problem, Role};
use common::{err, ok, Scratch, REMOTE_DATAHUB};

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    REMOTE_DATAHUB.iter().chain(extra).copied().collect()
}

#[test]
fn three_independent_mistakes_are_reported_together() {
    let scratch = Scratch::new();
    let yaml = "database:\n  hots: oceanbase.example.com\n";
    // 1. unknown key in the file, 2. wrong type in the env, 3. required password missing.
    let e = err(scratch.load(Role::CdcCapture, Some(yaml), &with(&[("CHECKPOINT_INTERVAL", "abc")])));
    assert_eq!(e.problems.len(), 3, "{e}");

    let text = e.to_string();
    assert!(text.starts_with("invalid configuration (3 problems):"), "{text}");
    for n in ["\n  1. ", "\n  2. ", "\n  3. "] {
        assert!(text.contains(n), "numbered list: {text}");
    }
    assert!(text.contains("unknown key 'database.hots'") && text.contains("application.yml"), "{text}");
    assert!(text.contains("did you mean 'database.host' (env DATABASE_HOST)?"), "{text}");
    assert!(
        text.contains("flink.checkpoint.interval / CHECKPOINT_INTERVAL: expected an integer number of milliseconds, got 'abc' (from env CHECKPOINT_INTERVAL)"),
        "{text}"
    );
    assert!(text.contains("database.password (env DATABASE_PASSWORD or DATABASE_PASSWORD_FILE) is missing"), "{text}");
    assert!(text.contains("cdc-capture"), "the role that needs it is named: {text}");
}

#[test]
fn wrong_types_and_ranges_name_key_env_and_origin() {
    let scratch = Scratch::new();
    let yaml = "flink:\n  checkpoint:\n    timeout: [1, 2]\nmonitoring:\n  alerts:\n    loadThreshold: 1.5\n";
    let e = err(scratch.load(
        Role::DatahubLocal,
        Some(yaml),
        &[
            ("PARALLELISM_DEFAULT", "four"),
            ("DATABASE_PORT", "70000"),
            ("METRICS_ENABLED", "maybe"),
            ("JOB_MANAGER_HEAP_SIZE", "1024"),
            ("CHECKPOINT_MAX_CONCURRENT", "0"),
        ],
    ));
    let text = e.to_string();
    let expected = [
        "flink.parallelism / PARALLELISM_DEFAULT: expected an integer between 1 and 32768, got 'four' (from env PARALLELISM_DEFAULT)",
        "database.port / DATABASE_PORT: expected a port number 1-65535, got '70000' (from env DATABASE_PORT)",
        "monitoring.metrics.enabled / METRICS_ENABLED: expected true or false, got 'maybe'",
        "jobmanager.memory.process.size / JOB_MANAGER_HEAP_SIZE: expected a size of at least 1m, got '1024'",
        "flink.checkpoint.maxConcurrent / CHECKPOINT_MAX_CONCURRENT: expected an integer ≥ 1, got '0'",
        "flink.checkpoint.timeout / CHECKPOINT_TIMEOUT: expected a single value",
        "monitoring.alerts.loadThreshold / ALERT_LOAD_THRESHOLD: expected a number between 0 and 1, got '1.5' (from file ",
    ];
    for fragment in expected {
        assert!(text.contains(fragment), "missing {fragment:?} in:\n{text}");
    }
    assert_eq!(e.problems.len(), expected.len(), "{text}");
}

#[test]
fn unknown_keys_get_suggestions_when_close() {
    let scratch = Scratch::new();
    let yaml = "\
datahub:
  sslMode: require
output:
  rolling:
    size: 10
  formt: json
completelyDifferent: 1
";
    let e = err(scratch.load(Role::DatahubLocal, Some(yaml), &[]));
    let suggestions: Vec<(String, Option<String>)> = e
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::UnknownKey { path, suggestion, .. } => Some((path.clone(), suggestion.clone())),
            _ => None,
        })
        .collect();
    let find = |path: &str| suggestions.iter().find(|(p, _)| p == path).map(|(_, s)| s.clone());
    // The right leaf under the wrong section.
    assert_eq!(find("datahub.sslMode"), Some(Some("database.sslMode".into())));
    // A truncated key.
    assert_eq!(find("output.rolling.size"), Some(Some("output.rolling.sizeBytes".into())));
    // A typo.
    assert_eq!(find("output.formt"), Some(Some("output.format".into())));
    // Nothing close: no guess.
    assert_eq!(find("completelyDifferent"), Some(None));
    assert_eq!(e.problems.len(), 4, "{e}");
}

#[test]
fn a_mapping_where_a_value_belongs_is_reported_once() {
    let scratch = Scratch::new();
    let e = err(scratch.load(Role::DatahubLocal, Some("database:\n  host:\n    name: a\n    port: 1\n"), &[]));
    assert_eq!(e.problems.len(), 1, "{e}");
    assert!(e.to_string().contains("'database.host' takes a single value, not a mapping"), "{e}");
}

#[test]
fn the_same_setting_twice_under_two_spellings_is_an_error() {
    let scratch = Scratch::new();
    let yaml = "flink:\n  stateBackend:\n    type: rocksdb\nstate.backend: hashmap\n";
    let e = err(scratch.load(Role::DatahubLocal, Some(yaml), &[]));
    assert!(e.to_string().contains("sets flink.stateBackend.type again"), "{e}");
}

#[test]
fn relaxed_key_spelling_is_accepted() {
    // The guide's table writes `flink.statebackend.type`, its example `flink.stateBackend.type`.
    let scratch = Scratch::new();
    let yaml = "flink:\n  statebackend:\n    type: rocksdb\n    checkpoint-dir: file:///data/cp\n";
    let config = ok(scratch.load(Role::DatahubLocal, Some(yaml), &[]));
    assert_eq!(config.state_backend.backend, cdc_config::StateBackend::Rocksdb);
    assert_eq!(config.state_backend.checkpoint_dir, "file:///data/cp");
}

#[test]
fn enum_values_are_case_insensitive() {
    let scratch = Scratch::new();
    for (level, expected) in [("INFO", "info"), ("info", "info"), ("Debug", "debug"), ("TRACE", "trace"), ("WARNING", "warn")] {
        let config = ok(scratch.load(Role::DatahubLocal, None, &[("LOG_LEVEL", level)]));
        assert_eq!(config.logging.level.as_str(), expected, "LOG_LEVEL={level}");
    }
    for (format, expected) in [("JSON", "json"), ("Parquet", "parquet"), ("csv", "csv")] {
        let config = ok(scratch.load(Role::DatahubLocal, None, &[("OUTPUT_FORMAT", format)]));
        assert_eq!(config.output.format.as_str(), expected, "OUTPUT_FORMAT={format}");
    }
    let config = ok(scratch.load(Role::DatahubLocal, Some("logging:\n  level: ERROR\n  format: JSON\n"), &[]));
    assert_eq!(config.logging.level, cdc_config::LogLevel::Error);
    assert_eq!(config.logging.format, cdc_config::LogFormat::Json);

    let e = err(scratch.load(Role::DatahubLocal, None, &[("OUTPUT_FORMAT", "xml"), ("LOG_LEVEL", "loud")]));
    let text = e.to_string();
    assert!(text.contains("OUTPUT_FORMAT: expected one of json, parquet, csv, got 'xml'"), "{text}");
    assert!(text.contains("LOG_LEVEL: expected one of trace, debug, info, warn, error, got 'loud'"), "{text}");
}

#[test]
fn output_path_under_a_regular_file_is_reported() {
    let scratch = Scratch::new();
    let blocker = scratch.write("blocker", "not a directory");
    let below = format!("{blocker}/out");
    let e = err(scratch.load(Role::FileSink, None, &with(&[("OUTPUT_PATH", below.as_str())])));
    assert_eq!(e.problems.len(), 1, "{e}");
    match &e.problems[0] {
        Problem::Path { key, env, path, .. } => {
            assert_eq!(key, "output.path");
            assert_eq!(env, "OUTPUT_PATH");
            assert_eq!(path.display().to_string(), below);
        }
        other => panic!("expected a path problem, got {other:?}"),
    }
    assert!(e.to_string().contains("(from env OUTPUT_PATH)"), "{e}");

    // The regular file itself is not a directory either.
    let e = err(scratch.load(Role::FileSink, None, &with(&[("OUTPUT_PATH", blocker.as_str())])));
    assert!(e.to_string().contains("exists and is not a directory"), "{e}");
}

#[test]
fn output_path_is_created_and_left_clean() {
    let scratch = Scratch::new();
    let dir = scratch.path("a/b/c");
    let dir_text = dir.display().to_string();
    let config = ok(scratch.load(Role::FileSink, None, &with(&[("OUTPUT_PATH", dir_text.as_str())])));
    assert!(dir.is_dir(), "created");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "probe file removed");
    assert_eq!(config.output.local_dir(), Some(dir));
}

#[test]
fn output_path_is_not_checked_for_roles_that_write_no_files() {
    let scratch = Scratch::new();
    let blocker = scratch.write("blocker", "x");
    let below = format!("{blocker}/out");
    let rules = scratch.write("rules.yml", "");
    let transform = [("TRANSFORM_CONFIG", rules.as_str()), ("TRANSFORM_OUTPUT_TOPIC", "out"), ("OUTPUT_PATH", below.as_str())];
    ok(scratch.load(Role::Transform, None, &with(&transform)));
    // object-sink may point at an object store; file-sink may not.
    ok(scratch.load(Role::ObjectSink, None, &with(&[("OUTPUT_PATH", "s3://bucket/prefix")])));
    let e = err(scratch.load(Role::FileSink, None, &with(&[("OUTPUT_PATH", "s3://bucket/prefix")])));
    assert!(e.to_string().contains("expected a local directory"), "{e}");
}

#[test]
fn checkpoint_rules_follow_flink() {
    let scratch = Scratch::new();
    // Timeout shorter than the interval is legal in Flink: not an error.
    let config = ok(scratch.load(Role::DatahubLocal, None, &[("CHECKPOINT_INTERVAL", "600000"), ("CHECKPOINT_TIMEOUT", "60000")]));
    assert_eq!(config.checkpoint.timeout_ms, 60_000);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // A pause longer than the interval becomes the interval (Flink does the same): warn.
    let config = ok(scratch.load(Role::DatahubLocal, None, &[("CHECKPOINT_INTERVAL", "1000"), ("CHECKPOINT_MIN_PAUSE", "5000")]));
    assert_eq!(config.checkpoint.effective_interval(), std::time::Duration::from_millis(5000));
    assert!(config.warnings.iter().any(|w| w.contains("minPause")), "{:?}", config.warnings);

    // What Flink rejects.
    let e = err(scratch.load(
        Role::DatahubLocal,
        None,
        &[("CHECKPOINT_INTERVAL", "5"), ("CHECKPOINT_TIMEOUT", "9"), ("CHECKPOINT_RETAINED_NUMBER", "0"), ("CHECKPOINT_MIN_PAUSE", "-1")],
    ));
    assert_eq!(e.problems.len(), 4, "{e}");
    assert!(e.to_string().contains("CHECKPOINT_INTERVAL: expected at least 10 milliseconds, got '5'"), "{e}");
}

#[test]
fn invalid_combinations() {
    let scratch = Scratch::new();
    let cert = scratch.write("client.pem", "cert");
    let e = err(scratch.load(
        Role::CdcCapture,
        None,
        &with(&[
            ("DATABASE_PASSWORD", "pw"),
            ("DATABASE_SSL_MODE", "VERIFY_CA"),
            ("DATABASE_SSL_CERT", cert.as_str()),
            ("DATAHUB_SSL_ENABLED", "false"),
        ]),
    ));
    let text = e.to_string();
    assert!(text.contains("database.sslCert (env DATABASE_SSL_CERT, from env DATABASE_SSL_CERT) + database.sslKey"), "{text}");
    assert!(text.contains("database.sslRootCert (env DATABASE_SSL_ROOT_CERT or DATABASE_SSL_ROOT_CERT_FILE) is missing: required when database.sslMode is verify-ca"), "{text}");
    assert!(text.contains("contradicts sslEnabled=false"), "{text}");
    assert_eq!(e.problems.len(), 3, "{text}");

    // Certificate files must exist when TLS is on.
    let e = err(scratch.load(
        Role::CdcCapture,
        None,
        &with(&[("DATABASE_PASSWORD", "pw"), ("DATABASE_SSL_MODE", "require"), ("DATABASE_SSL_ROOT_CERT", "/nonexistent/ca.pem")]),
    ));
    assert!(e.to_string().contains("database.sslRootCert / DATABASE_SSL_ROOT_CERT: /nonexistent/ca.pem cannot be read"), "{e}");
}

#[test]
fn ha_settings() {
    let scratch = Scratch::new();
    // zookeeper needs a quorum.
    let e = err(scratch.load(Role::DatahubLocal, None, &[("HA_MODE", "ZOOKEEPER")]));
    assert!(e.to_string().contains("highAvailability.zookeeperQuorum (env HA_ZOOKEEPER_QUORUM or HA_ZOOKEEPER_QUORUM_FILE) is missing"), "{e}");

    // The guide's ZooKeeper example.
    let zk = "highAvailability:\n  enabled: true\n  mode: zookeeper\n  zookeeperQuorum: zk1:2181,zk2:2181,zk3:2181\n  zookeeperPath: /flink-cluster\n";
    let config = ok(scratch.load(Role::DatahubLocal, Some(zk), &[]));
    assert_eq!(config.high_availability.mode, cdc_config::HaMode::Zookeeper);
    assert_eq!(config.high_availability.zookeeper_quorum, ["zk1:2181", "zk2:2181", "zk3:2181"]);

    // The environment wins: HA_MODE=false switches it off, legacy HA_MODE=true keeps the file's mode.
    let config = ok(scratch.load(Role::DatahubLocal, Some(zk), &[("HA_MODE", "false")]));
    assert_eq!(config.high_availability.mode, cdc_config::HaMode::None);
    let k8s = "highAvailability:\n  mode: kubernetes\n";
    let config = ok(scratch.load(Role::DatahubLocal, Some(k8s), &[("HA_MODE", "true")]));
    assert_eq!(config.high_availability.mode, cdc_config::HaMode::Kubernetes);
    let e = err(scratch.load(Role::DatahubLocal, None, &[("HA_MODE", "true")]));
    assert!(e.to_string().contains("HA_MODE: expected zookeeper or kubernetes"), "{e}");

    // `enabled: true` without a mode is a contradiction; `enabled: false` wins over a mode.
    let e = err(scratch.load(Role::DatahubLocal, Some("highAvailability:\n  enabled: true\n"), &[]));
    assert!(e.to_string().contains("HA is enabled but no mode is set"), "{e}");
    let config = ok(scratch.load(Role::DatahubLocal, Some("highAvailability:\n  enabled: false\n  mode: zookeeper\n"), &[]));
    assert_eq!(config.high_availability.mode, cdc_config::HaMode::None);
    assert!(config.warnings.iter().any(|w| w.contains("enabled is false")), "{:?}", config.warnings);
}

#[test]
fn a_broken_yaml_file_is_one_problem_and_does_not_cause_missing_noise() {
    let scratch = Scratch::new();
    let e = err(scratch.load(Role::CdcCapture, Some("database:\n  host: [unclosed\n"), &[]));
    assert_eq!(e.problems.len(), 1, "{e}");
    assert!(matches!(e.problems[0], Problem::ConfigFile { .. }), "{e}");
}

#[test]
fn a_malformed_table_pattern_is_a_config_problem_naming_the_pattern() {
    let env = [("DATABASE_PASSWORD", "pw"), ("DATABASE_TABLES", "orders,.broken"), ("DATABASE_EXCLUDE_TABLES", "tmp_*")];
    let err = cdc_config::Config::load(
        cdc_config::LoadOptions::new(cdc_config::Role::CdcCapture)
            .with_file(cdc_config::ConfigFile::None)
            .with_env(env),
    )
    .expect_err("a pattern with an empty table name is invalid");
    let text = err.to_string();
    assert!(text.contains("DATABASE_TABLES") && text.contains("`.broken`"), "{text}");
}
