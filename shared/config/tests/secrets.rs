//! `X_FILE` variables, `${VAR}` placeholders, and secrets never leaking.

mod common;

use cdc_config::{Origin, Problem, Role};
use common::{err, ok, Scratch, REMOTE_DATAHUB};

const PASSWORD: &str = "pa55-W0rd-never-print-me";
const ACCESS_KEY: &str = "AK-secret-never-print-me";

#[test]
fn file_secrets_are_read_and_never_shown() {
    let scratch = Scratch::new();
    let pw_file = scratch.write("db_password", &format!("{PASSWORD}\n"));
    let ak_file = scratch.write("datahub_key", ACCESS_KEY);
    let env = [
        ("DATABASE_PASSWORD_FILE", pw_file.as_str()),
        ("DATAHUB_ENDPOINT", "https://dh-cn-hangzhou.aliyuncs.com"),
        ("DATAHUB_ACCESS_ID", "id"),
        ("DATAHUB_ACCESS_KEY_FILE", ak_file.as_str()),
    ];
    let config = ok(scratch.load(Role::CdcCapture, None, &env));
    let password = config.database.password.as_ref().expect("password is required for cdc-capture");
    assert_eq!(password.expose(), PASSWORD, "exactly one trailing newline removed");
    assert_eq!(config.datahub.access_key.as_ref().map(|s| s.expose()), Some(ACCESS_KEY));
    assert!(matches!(config.origin("database.password"), Some(Origin::EnvFile { var, .. }) if var == "DATABASE_PASSWORD_FILE"));

    let debug = format!("{config:?} {:?} {:?}", config.database, config.datahub);
    let dump = config.redacted_json().to_string();
    for (what, text) in [("Debug", &debug), ("redacted dump", &dump)] {
        assert!(!text.contains(PASSWORD) && !text.contains(ACCESS_KEY), "{what} leaks a secret: {text}");
    }
    assert_eq!(config.redacted_json()["database"]["password"], "***");
    assert_eq!(config.redacted_json()["datahub"]["accessKey"], "***");
    assert_eq!(config.redacted_json()["database"]["host"], "localhost", "non-secrets are shown");
    assert_eq!(config.redacted_json()["database"]["serverId"], serde_json::Value::Null, "unset settings are listed");

    // The same secrets in a configuration that fails for other reasons: the error text must
    // not contain them either.
    let mut failing = env.to_vec();
    failing.push(("DATABASE_PORT", "not-a-port"));
    let e = err(scratch.load(Role::CdcCapture, None, &failing));
    let text = format!("{e} {e:?}");
    assert!(!text.contains(PASSWORD) && !text.contains(ACCESS_KEY), "{text}");
}

#[test]
fn secrets_in_the_environment_and_the_file_are_hidden_too() {
    let scratch = Scratch::new();
    let yaml = format!("datahub:\n  accessKey: {ACCESS_KEY}\n");
    let env: Vec<(&str, &str)> = [("DATABASE_PASSWORD", PASSWORD), ("DATAHUB_ENDPOINT", "https://dh"), ("DATAHUB_ACCESS_ID", "id")].to_vec();
    let config = ok(scratch.load(Role::CdcCapture, Some(&yaml), &env));
    let everything = format!("{config:?} {} {:?}", config.redacted_json(), config.database.password);
    assert!(!everything.contains(PASSWORD) && !everything.contains(ACCESS_KEY), "{everything}");
}

#[test]
fn a_malformed_secret_is_rejected_without_echoing_it() {
    let scratch = Scratch::new();
    let yaml = format!("database:\n  password: [{PASSWORD}, second]\n");
    let e = err(scratch.load(Role::DatahubLocal, Some(&yaml), &[]));
    let text = e.to_string();
    assert!(text.contains("database.password / DATABASE_PASSWORD: expected a single value"), "{text}");
    assert!(text.contains("value not shown: secret"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn values_from_x_file_are_never_echoed_even_for_ordinary_settings() {
    let scratch = Scratch::new();
    let port_file = scratch.write("port", "sensitive-looking-port\n");
    let e = err(scratch.load(Role::DatahubLocal, None, &[("DATABASE_PORT_FILE", port_file.as_str())]));
    let text = e.to_string();
    assert!(text.contains("database.port / DATABASE_PORT: expected a port number 1-65535 (value not shown: secret)"), "{text}");
    assert!(text.contains("DATABASE_PORT_FILE"), "origin is named: {text}");
    assert!(!text.contains("sensitive-looking-port"), "{text}");

    // A valid one is used, and hidden in the dump.
    let host_file = scratch.write("host", "internal-db.example\n");
    let config = ok(scratch.load(Role::DatahubLocal, None, &[("DATABASE_HOST_FILE", host_file.as_str())]));
    assert_eq!(config.database.host, "internal-db.example");
    assert_eq!(config.redacted_json()["database"]["host"], "***");
    assert!(!format!("{config:?}").contains("internal-db.example"));
}

#[test]
fn both_x_and_x_file_is_an_error() {
    let scratch = Scratch::new();
    let pw_file = scratch.write("pw", PASSWORD);
    let e = err(scratch.load(
        Role::DatahubLocal,
        None,
        &[("DATABASE_PASSWORD", "other"), ("DATABASE_PASSWORD_FILE", pw_file.as_str())],
    ));
    assert_eq!(e.problems.len(), 1, "{e}");
    assert!(matches!(&e.problems[0], Problem::BothValueAndFile { env, env_file, .. } if env == "DATABASE_PASSWORD" && env_file == "DATABASE_PASSWORD_FILE"));
    assert!(!e.to_string().contains(PASSWORD) && !e.to_string().contains("other"), "{e}");
}

#[test]
fn an_unreadable_x_file_is_reported() {
    let scratch = Scratch::new();
    let missing = scratch.path("does-not-exist").display().to_string();
    let e = err(scratch.load(Role::DatahubLocal, None, &[("DATAHUB_ACCESS_KEY_FILE", missing.as_str())]));
    let text = e.to_string();
    assert!(text.contains("datahub.accessKey: cannot read DATAHUB_ACCESS_KEY_FILE="), "{text}");
    assert!(text.contains("does-not-exist"), "{text}");
}

#[test]
fn placeholders_in_the_file_are_expanded() {
    let scratch = Scratch::new();
    // The guide's own example shape.
    let yaml = "\
database:
  host: ${DB_HOST:-oceanbase.example.com}
  port: ${DB_PORT:-2881}
  username: cdc_user
  password: ${DATABASE_PASSWORD}
  schema: ${SCHEMA}_db
datahub:
  endpoint: https://dh-cn-hangzhou.aliyuncs.com
  accessId: ${DATAHUB_ACCESS_ID}
  accessKey: ${DH_KEY}
";
    let key_file = scratch.write("dh_key", ACCESS_KEY);
    let env = [
        ("DATABASE_PASSWORD", PASSWORD),
        ("DB_PORT", "3306"),
        ("SCHEMA", "production"),
        ("DATAHUB_ACCESS_ID", "id"),
        ("DH_KEY_FILE", key_file.as_str()),
    ];
    let config = ok(scratch.load(Role::CdcCapture, Some(yaml), &env));
    assert_eq!(config.database.host, "oceanbase.example.com", "default used when unset");
    assert_eq!(config.database.port, 3306, "value used when set, then typed");
    assert_eq!(config.database.schema, "production_db");
    assert_eq!(config.database.password.as_ref().map(|s| s.expose()), Some(PASSWORD));
    assert_eq!(config.datahub.access_key.as_ref().map(|s| s.expose()), Some(ACCESS_KEY), "${{VAR}} reads VAR_FILE");
    assert!(matches!(config.origin("database.schema"), Some(Origin::File(_))));
}

#[test]
fn an_unresolved_placeholder_explains_a_missing_value() {
    let scratch = Scratch::new();
    let yaml = "database:\n  password: ${DB_PASSWORD_TYPO}\n";
    let e = err(scratch.load(Role::CdcCapture, Some(yaml), REMOTE_DATAHUB));
    let text = e.to_string();
    assert!(text.contains("database.password (env DATABASE_PASSWORD or DATABASE_PASSWORD_FILE) is missing"), "{text}");
    assert!(text.contains("sets it from ${DB_PASSWORD_TYPO}, which is not set"), "{text}");

    // The env var for the setting itself still fills it, so the placeholder is no error then.
    let config = ok(scratch.load(Role::CdcCapture, Some(yaml), &[REMOTE_DATAHUB, &[("DATABASE_PASSWORD", PASSWORD)]].concat()));
    assert!(config.database.password.is_some());
}

#[test]
fn a_malformed_placeholder_is_an_error() {
    let scratch = Scratch::new();
    let e = err(scratch.load(Role::DatahubLocal, Some("database:\n  host: ${UNCLOSED\n"), &[]));
    assert!(e.to_string().contains("'database.host' in") && e.to_string().contains("unterminated"), "{e}");
}
