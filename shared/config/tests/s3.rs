//! The `s3.*` section: object-sink's store and `s3://` checkpoint directories.

mod common;

use cdc_config::Role;
use common::{err, ok, Scratch, REMOTE_DATAHUB};

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    REMOTE_DATAHUB.iter().chain(extra).copied().collect()
}

#[test]
fn s3_settings_load_from_env_and_flink_style_file_keys_with_secrets_hidden() {
    let scratch = Scratch::new();
    let env = with(&[
        ("OUTPUT_PATH", "s3://lake/cdc"),
        ("S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("S3_ACCESS_KEY", "AKIDEXAMPLE"),
        ("S3_SECRET_KEY", "wJalrXUtnFEMI-very-secret"),
    ]);
    // Flink's own spellings in the file: `s3.path.style.access`, `s3.access-key`.
    let yaml = "s3:\n  region: eu-central-1\n  path.style.access: true\n  stagingDir: /var/tmp/cdc-staging\n";
    let config = ok(scratch.load(Role::ObjectSink, Some(yaml), &env));
    let s3 = &config.s3;
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s3.region.as_deref(), Some("eu-central-1"));
    assert!(s3.path_style_access);
    assert_eq!(s3.access_key.as_ref().map(|k| k.expose().to_owned()).as_deref(), Some("AKIDEXAMPLE"));
    assert_eq!(s3.staging_dir.as_deref(), Some(std::path::Path::new("/var/tmp/cdc-staging")));
    let shown = format!("{config:?} {}", config.redacted_json());
    assert!(!shown.contains("very-secret") && !shown.contains("AKIDEXAMPLE"), "{shown}");
    assert_eq!(config.redacted_json()["s3"]["secretKey"], "***");

    let flink = ok(scratch.load(Role::ObjectSink, Some("s3:\n  access-key: a\n  secret-key: b\n"), REMOTE_DATAHUB));
    assert!(flink.s3.access_key.is_some() && flink.s3.secret_key.is_some());
    assert!(!flink.s3.path_style_access, "default");
    assert_eq!(flink.s3.endpoint, None, "unset: the AWS default chain");
}

#[test]
fn half_a_key_pair_and_a_bad_endpoint_are_errors_naming_the_settings() {
    let scratch = Scratch::new();
    let e = err(scratch.load(Role::ObjectSink, None, &with(&[("S3_ACCESS_KEY", "a")]))).to_string();
    assert!(e.contains("s3.accessKey") && e.contains("s3.secretKey") && e.contains("together"), "{e}");
    let e = err(scratch.load(Role::ObjectSink, None, &with(&[("S3_ENDPOINT", "minio:9000")]))).to_string();
    assert!(e.contains("S3_ENDPOINT") && e.contains("http://"), "{e}");
}
