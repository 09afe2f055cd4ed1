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
        (Role::DatahubRelay, &["datahub.endpoint"]),
        (Role::Transform, &["datahub.endpoint"]),
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
    let e = err(scratch.load(Role::Transform, None, &[("DATAHUB_ENDPOINT", "https://dh-cn-hangzhou.aliyuncs.com")]));
    assert_eq!(missing_keys(&e), ["datahub.accessId", "datahub.accessKey"]);
    ok(scratch.load(Role::Transform, None, REMOTE_DATAHUB));
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
    let keys = [("DATAHUB_ACCESS_ID", "id"), ("DATAHUB_ACCESS_KEY", "key")];
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
    let config = ok(scratch.load(Role::DatahubRelay, None, REMOTE_DATAHUB));
    assert!(config.database.password.is_none());
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
