//! What each binary requires.

mod common;

use cdc_config::{DatahubEndpoint, Problem, Role};
use common::{err, ok, Scratch, REMOTE_DATAHUB};

fn missing_keys(e: &cdc_config::ConfigError) -> Vec<String> {
    let mut keys: Vec<String> = e
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::Missing { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn required_settings_depend_on_the_role() {
    let scratch = Scratch::new();
    let out = scratch.path("out").display().to_string();
    let env = [("OUTPUT_PATH", out.as_str())];
    let cases: [(Role, &[&str]); 7] = [
        (Role::CdcCapture, &["database.password", "datahub.endpoint"]),
        (Role::DatahubLocal, &[]),
        // The default target is http, which needs its URL.
        (Role::DatahubRelay, &["datahub.endpoint", "relay.http.url"]),
        (Role::Transform, &["datahub.endpoint", "transform.config", "transform.outputTopic"]),
        (Role::FileSink, &["datahub.endpoint"]),
        (Role::ObjectSink, &["datahub.endpoint"]),
        // DataHub is embedded by default here, so only the database password is missing.
        (Role::CdcPipeline, &["database.password"]),
    ];
    for (role, expected) in cases {
        let result = scratch.load(role, None, &env);
        let got = match &result {
            Ok(_) => Vec::new(),
            Err(e) => missing_keys(e),
        };
        assert_eq!(got, expected, "{role}");
    }
}

#[test]
fn a_remote_endpoint_needs_access_keys() {
    let scratch = Scratch::new();
    let rules = scratch.write("rules.yml", "");
    let transform = [("TRANSFORM_CONFIG", rules.as_str()), ("TRANSFORM_OUTPUT_TOPIC", "out")];
    let env: Vec<(&str, &str)> = transform.iter().copied().chain([("DATAHUB_ENDPOINT", "https://dh-cn-hangzhou.aliyuncs.com")]).collect();
    let e = err(scratch.load(Role::Transform, None, &env));
    assert_eq!(missing_keys(&e), ["datahub.accessId", "datahub.accessKey"]);
    let env: Vec<(&str, &str)> = transform.iter().chain(REMOTE_DATAHUB).copied().collect();
    ok(scratch.load(Role::Transform, None, &env));
}

#[test]
fn cdc_pipeline_embeds_datahub_by_default() {
    let scratch = Scratch::new();
    let out = scratch.path("out").display().to_string();
    let config = ok(scratch.load(Role::CdcPipeline, None, &[("DATABASE_PASSWORD", "pw"), ("OUTPUT_PATH", out.as_str())]));
    assert_eq!(config.datahub.endpoint, Some(DatahubEndpoint::Embedded));
    assert!(config.datahub.access_key.is_none(), "no keys needed for the embedded log");
    assert_eq!(config.redacted_json()["datahub"]["endpoint"], "embedded");
    assert!(scratch.path("out").is_dir(), "cdc-pipeline writes files, so it prepares output.path");
}

#[test]
fn embedded_is_refused_where_it_cannot_work() {
    let scratch = Scratch::new();
    let e = err(scratch.load(Role::Transform, None, &[("DATAHUB_ENDPOINT", "EMBEDDED")]));
    assert!(e.to_string().contains("runs the log inside cdc-pipeline only"), "{e}");
}

#[test]
fn endpoints_are_normalised_to_urls() {
    let scratch = Scratch::new();
    let rules = scratch.write("rules.yml", "");
    let keys = [("DATAHUB_ACCESS_ID", "id"), ("DATAHUB_ACCESS_KEY", "key"), ("TRANSFORM_CONFIG", rules.as_str()), ("TRANSFORM_OUTPUT_TOPIC", "out")];
    let load = |endpoint: &'static str, extra: &[(&'static str, &'static str)]| {
        let env: Vec<(&str, &str)> = keys.iter().chain(extra).copied().chain([("DATAHUB_ENDPOINT", endpoint)]).collect();
        ok(scratch.load(Role::Transform, None, &env)).datahub
    };
    let dh = load("dh-cn-hangzhou.aliyuncs.com", &[]);
    assert_eq!(dh.endpoint, Some(DatahubEndpoint::Remote("https://dh-cn-hangzhou.aliyuncs.com".into())));
    assert!(dh.ssl_enabled);
    let dh = load("datahub-local:9000", &[("DATAHUB_SSL_ENABLED", "false")]);
    assert_eq!(dh.endpoint, Some(DatahubEndpoint::Remote("http://datahub-local:9000".into())));
    assert!(!dh.ssl_enabled);
    let dh = load("http://datahub-local:9000", &[]);
    assert!(!dh.ssl_enabled, "sslEnabled follows the scheme when unset");
}

#[test]
fn a_password_is_not_required_where_the_database_is_not_used() {
    let scratch = Scratch::new();
    let env: Vec<(&str, &str)> = REMOTE_DATAHUB.iter().copied().chain([("RELAY_HTTP_URL", "http://receiver:8000/batches")]).collect();
    let config = ok(scratch.load(Role::DatahubRelay, None, &env));
    assert!(config.database.password.is_none());
}

#[test]
fn the_relay_needs_its_targets_address_and_checks_it() {
    let scratch = Scratch::new();
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> { REMOTE_DATAHUB.iter().copied().chain(extra.iter().copied()).collect() };
    let e = err(scratch.load(Role::DatahubRelay, None, &with(&[("RELAY_TARGET", "lambda")])));
    assert_eq!(missing_keys(&e), vec!["relay.lambda.functionName".to_string()]);
    let e = err(scratch.load(Role::DatahubRelay, None, &with(&[("RELAY_HTTP_URL", "ftp://x")])));
    assert!(e.to_string().contains("relay.http.url"), "{e}");
    let config = ok(scratch.load(Role::DatahubRelay, None, &with(&[("RELAY_TARGET", "lambda"), ("RELAY_LAMBDA_FUNCTION_NAME", "f"), ("RELAY_LAMBDA_REGION", "eu-west-1"), ("RELAY_BATCH_MAX_BYTES", "2m")])));
    assert_eq!(config.relay.target, cdc_config::RelayTarget::Lambda);
    assert_eq!(config.relay.lambda_endpoint_url(), "https://lambda.eu-west-1.amazonaws.com");
    assert_eq!(config.relay.batch_max_bytes, 2 * 1024 * 1024);
    assert_eq!(config.relay.session_timeout_ms, 6000);
    // Other roles never need the relay's target.
    ok(scratch.load(Role::DatahubLocal, None, &[("RELAY_TARGET", "lambda")]));
}

#[test]
fn a_file_endpoint_needs_no_credentials_and_keeps_its_path() {
    let config = cdc_config::Config::load(
        cdc_config::LoadOptions::new(cdc_config::Role::CdcCapture)
            .with_file(cdc_config::ConfigFile::None)
            .with_env([("DATABASE_PASSWORD", "pw"), ("DATAHUB_ENDPOINT", "file:///var/tmp/events.jsonl")]),
    )
    .expect("a file endpoint is a complete bus configuration");
    assert_eq!(
        config.datahub.endpoint,
        Some(cdc_config::DatahubEndpoint::File("/var/tmp/events.jsonl".into()))
    );
    let err = cdc_config::Config::load(
        cdc_config::LoadOptions::new(cdc_config::Role::CdcCapture)
            .with_file(cdc_config::ConfigFile::None)
            .with_env([("DATABASE_PASSWORD", "pw"), ("DATAHUB_ENDPOINT", "file://relative.jsonl")]),
    )
    .expect_err("a relative file endpoint is ambiguous");
    assert!(err.to_string().contains("DATAHUB_ENDPOINT"), "{err}");
}

#[test]
fn transform_settings_are_checked_at_start_up() {
    let scratch = Scratch::new();
    let rules = scratch.write("rules.yml", "");
    let out = scratch.path("out").display().to_string();
    // The output shape: envelope has nested columns, which CSV cannot hold.
    let e = err(scratch.load(Role::FileSink, None, &[("DATAHUB_ENDPOINT", "http://h:1"), ("DATAHUB_ACCESS_ID", "i"), ("DATAHUB_ACCESS_KEY", "k"), ("OUTPUT_PATH", out.as_str()), ("OUTPUT_SHAPE", "envelope"), ("OUTPUT_FORMAT", "csv")]));
    assert!(e.to_string().contains("CSV cannot hold"), "{e}");
    // A rules file that does not exist, a short salt, and the output topic equal to the input.
    let mut env: Vec<(&str, &str)> = REMOTE_DATAHUB.to_vec();
    env.extend([("TRANSFORM_CONFIG", "/nonexistent/rules.yml"), ("TRANSFORM_HASH_SALT", "short"), ("TRANSFORM_OUTPUT_TOPIC", "cdc-events")]);
    let e = err(scratch.load(Role::Transform, None, &env));
    let text = e.to_string();
    assert_eq!(e.problems.len(), 3, "{text}");
    assert!(text.contains("transform.config") && text.contains("at least 16 characters") && text.contains("another topic"), "{text}");
    assert!(!text.contains("short"), "the salt is secret: {text}");
    // Defaults: the output project follows datahub.project, the DLQ topic the output topic.
    let mut env: Vec<(&str, &str)> = REMOTE_DATAHUB.to_vec();
    env.extend([("TRANSFORM_CONFIG", rules.as_str()), ("TRANSFORM_OUTPUT_TOPIC", "clean"), ("DATAHUB_PROJECT", "p")]);
    let config = ok(scratch.load(Role::Transform, None, &env));
    assert_eq!((config.transform.output_project.as_str(), config.transform.dlq_topic.as_deref()), ("p", Some("clean-dlq")));
    assert_eq!(config.output.shape, cdc_config::OutputShape::Flat);
}
