//! The transformer end to end: rules file → validated transformer → events in and out.

use std::sync::Arc;

use cdc_event::{
    ChangeEvent, ColumnDef, ColumnType, LobSize, Op, Position, Row, ServerFlavor, TableId, TableSchema, Value,
};
use cdc_transform::{TransformError, TransformOptions, Transformer};
use proptest::prelude::*;

const SALT: &str = "0123456789abcdef-test-salt";

fn customers() -> Arc<TableSchema> {
    let columns = vec![
        ColumnDef::new("id", ColumnType::BigInt { unsigned: true }, false),
        ColumnDef::new("email", ColumnType::VarChar { length: 128, charset: "utf8mb4".into() }, true),
        ColumnDef::new("phone", ColumnType::VarChar { length: 32, charset: "utf8mb4".into() }, true),
        ColumnDef::new("ssn", ColumnType::Char { length: 11, charset: "ascii".into() }, true),
        ColumnDef::new("notes", ColumnType::Text { size: LobSize::Regular, charset: "utf8mb4".into() }, true),
        ColumnDef::new("password_hash", ColumnType::Binary { length: 32 }, false),
        ColumnDef::new("status", ColumnType::VarChar { length: 16, charset: "utf8mb4".into() }, false),
        ColumnDef::new("score", ColumnType::Double, true),
    ];
    let primary_key = vec!["id".to_owned()];
    let version = TableSchema::fingerprint(&columns, &primary_key);
    Arc::new(TableSchema { table: TableId::new("shop", "customers"), version, columns, primary_key })
}

fn orders() -> Arc<TableSchema> {
    let columns = vec![
        ColumnDef::new("id", ColumnType::Int { unsigned: false }, false),
        ColumnDef::new("ref", ColumnType::VarChar { length: 16, charset: "utf8mb4".into() }, true),
    ];
    let version = TableSchema::fingerprint(&columns, &["id".to_owned()]);
    Arc::new(TableSchema { table: TableId::new("shop", "orders"), version, columns, primary_key: vec!["id".into()] })
}

fn customer_row(id: u64, email: &str, status: &str, notes: &str) -> Row {
    Row::new(vec![
        Value::UInt(id),
        Value::Text(email.into()),
        Value::Text("+65 5550 1234".into()),
        Value::Text("123-45-6789".into()),
        Value::Text(notes.into()),
        Value::Bytes(vec![7; 32]),
        Value::Text(status.into()),
        Value::Double(0.5),
    ])
}

fn event(schema: &Arc<TableSchema>, op: Op, before: Option<Row>, after: Option<Row>, offset: u64) -> ChangeEvent {
    ChangeEvent {
        op,
        schema: schema.clone(),
        before,
        after,
        position: Position::stream(ServerFlavor::MySql, "binlog.000001", offset),
        commit_ts_ms: 1_715_932_800_000,
        tx_id: None,
        source_name: Arc::from("src"),
        server_id: 1,
    }
}

const RULES: &str = r#"
tables:
  exclude: ["shop.audit_*"]
rules:
  - table: shop.customers
    rename: {database: crm, table: clients}
    columns:
      exclude: [password_hash]
      rename: {email: email_hash, notes: note}
    mask:
      email: hash
      phone: redact
      ssn: {redact: null}
      notes: {truncate: 5}
    filter: "status != 'deleted' AND (score > 0.1 OR status = 'vip')"
"#;

fn transformer(rules: &str) -> Transformer {
    let options = TransformOptions::new().with_hash_salt(SALT);
    Transformer::from_yaml(rules, &options).unwrap_or_else(|e| panic!("{e}")).transformer
}

#[test]
fn renames_drops_masks_and_filters() {
    let mut t = transformer(RULES);
    let schema = customers();
    let insert = event(&schema, Op::Insert, None, Some(customer_row(1, "a@example.com", "active", "héllo world")), 10);
    let out = t.apply(&insert).expect("transforms").expect("passes the filter");

    assert_eq!(out.schema.table, TableId::new("crm", "clients"));
    let names: Vec<&str> = out.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "email_hash", "phone", "ssn", "note", "status", "score"]);
    let types: Vec<String> = out.schema.columns.iter().map(|c| c.column_type.to_string()).collect();
    assert_eq!(types[1], "CHAR(64) CHARACTER SET ascii");
    assert_eq!(types[2], "VARCHAR(3) CHARACTER SET utf8mb4");
    assert_eq!(types[3], "CHAR(11) CHARACTER SET ascii");
    assert_eq!(types[4], "VARCHAR(5) CHARACTER SET utf8mb4");
    assert_eq!(out.schema.primary_key, ["id"]);
    assert_ne!(out.schema.version, schema.version);
    out.schema.validate().expect("the output schema is well-formed");

    let values = &out.after.as_ref().expect("after").values;
    let Value::Text(hash) = &values[1] else { panic!("hash is text: {values:?}") };
    assert_eq!(hash.len(), 64);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(values[2], Value::Text("***".into()));
    assert_eq!(values[3], Value::Null);
    assert_eq!(values[4], Value::Text("héllo".into()));
    assert_eq!(values[5], Value::Text("active".into()));
    // Every value still fits its output column, so the event encodes as Debezium JSON.
    let json = cdc_event::debezium::to_json(&out).expect("encodes");
    assert_eq!(cdc_event::debezium::from_json(&json).expect("decodes"), out);

    // Same input value, same hash (deterministic); another value, another hash.
    let again = t.apply(&event(&schema, Op::Insert, None, Some(customer_row(2, "a@example.com", "vip", "")), 11)).unwrap().unwrap();
    assert_eq!(again.after.as_ref().unwrap().values[1], values[1]);
    assert!(Arc::ptr_eq(&again.schema, &out.schema), "one output schema per input schema");
    let other = t.apply(&event(&schema, Op::Insert, None, Some(customer_row(3, "b@example.com", "vip", "")), 12)).unwrap().unwrap();
    assert_ne!(other.after.as_ref().unwrap().values[1], values[1]);

    // Filtered out: deleted status; a delete is judged on its before image.
    let deleted = event(&schema, Op::Insert, None, Some(customer_row(4, "c@example.com", "deleted", "")), 13);
    assert_eq!(t.apply(&deleted), Ok(None));
    let delete = event(&schema, Op::Delete, Some(customer_row(5, "d@example.com", "active", "")), None, 14);
    let out = t.apply(&delete).unwrap().expect("kept: before image passes");
    assert!(out.after.is_none());
    assert_eq!(out.before.as_ref().unwrap().values.len(), 7);
}

#[test]
fn excluded_and_unruled_tables() {
    let mut t = transformer(RULES);
    let audit = Arc::new(TableSchema { table: TableId::new("shop", "audit_2024"), ..(*orders()).clone() });
    let row = Row::new(vec![Value::Int(1), Value::Text("x".into())]);
    assert_eq!(t.apply(&event(&audit, Op::Insert, None, Some(row.clone()), 1)), Ok(None));
    let unruled = event(&orders(), Op::Insert, None, Some(row), 2);
    assert_eq!(t.apply(&unruled), Ok(Some(unruled.clone())), "no rule: unchanged, same schema");

    let only = transformer("tables:\n  include: [\"crm.*\"]\n");
    let mut only = only;
    assert_eq!(only.apply(&unruled), Ok(None));
}

#[test]
fn a_text_compared_with_a_number_is_an_error_with_the_reason() {
    let mut t = transformer("rules:\n  - table: shop.orders\n    filter: \"ref >= 1000\"\n");
    let ok = event(&orders(), Op::Insert, None, Some(Row::new(vec![Value::Int(1), Value::Text("1001".into())])), 1);
    assert!(t.apply(&ok).unwrap().is_some());
    let small = event(&orders(), Op::Insert, None, Some(Row::new(vec![Value::Int(2), Value::Text("7".into())])), 2);
    assert_eq!(t.apply(&small), Ok(None));
    let bad = event(&orders(), Op::Insert, None, Some(Row::new(vec![Value::Int(3), Value::Text("N/A".into())])), 3);
    let err = t.apply(&bad).expect_err("N/A is not a number");
    assert_eq!(err.kind(), "filter");
    let reason = err.to_string();
    assert!(reason.contains("shop.orders") && reason.contains("ref >= 1000") && reason.contains("'N/A'") && reason.contains("not a number"), "{reason}");

    // The fixed rule decides N/A first and never compares it with a number.
    let mut fixed = transformer("rules:\n  - table: shop.orders\n    filter: \"ref = 'N/A' OR ref >= 1000\"\n");
    assert!(fixed.apply(&bad).unwrap().is_some());
}

#[test]
fn masks_that_cannot_apply_fail_every_event_of_the_table() {
    let mut t = transformer("rules:\n  - table: shop.customers\n    mask: {score: {truncate: 3}, id: hash}\n");
    let e = event(&customers(), Op::Insert, None, Some(customer_row(1, "a", "b", "c")), 1);
    let err = t.apply(&e).unwrap_err();
    assert!(matches!(&err, TransformError::MaskType { column, mask: "truncate", .. } if column == "score"), "{err}");
    assert!(err.to_string().contains("DOUBLE"), "{err}");

    let mut t = transformer("rules:\n  - table: shop.customers\n    mask: {fax: redact}\n");
    let err = t.apply(&e).unwrap_err();
    assert!(matches!(&err, TransformError::UnknownColumn { column, .. } if column == "fax"), "{err}");

    let mut t = transformer("rules:\n  - table: shop.customers\n    columns: {rename: {email: phone}}\n");
    assert!(matches!(t.apply(&e).unwrap_err(), TransformError::DuplicateColumn { name, .. } if name == "phone"));
}

#[test]
fn start_up_validation_lists_every_problem() {
    let rules = r#"
tables: {include: [], exclude: "a b"}
rules:
  - table: shop.orders
    filter: "ref >= "
    mask: {ref: {truncate: 0}, id: scramble}
    colums: [x]
  - rename: x
  - table: shop.customers
    columns: {include: [id], exclude: [id]}
    mask: {email: hash}
"#;
    let err = Transformer::from_yaml(rules, &TransformOptions::new()).unwrap_err();
    let text = err.to_string();
    let expected = [
        "tables.include: an empty include list",
        "tables.exclude[0]: table pattern \"a b\" contains whitespace",
        "rules[0] (shop.orders).filter: expected a column, a value or `(`, found the end of the filter at column 8",
        "rules[0] (shop.orders).mask.ref: truncate needs a whole number of characters ≥ 1",
        "rules[0] (shop.orders).mask.id: unknown mask \"scramble\"",
        "rules[0].colums: unknown key",
        "rules[1]: missing `table`",
        "\"id\" is both included and excluded",
        "rules[2] (shop.customers).mask.email: masks a column the rule drops",
    ];
    for line in expected {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert_eq!(err.problems.len(), expected.len(), "{text}");
    // The caret of the filter error is shown under the problem.
    assert!(text.contains("ref >= \n") || text.contains("ref >= "), "{text}");
}

#[test]
fn hash_needs_a_salt() {
    let err = Transformer::from_yaml("rules:\n  - table: shop.customers\n    mask: {email: hash}\n", &TransformOptions::new()).unwrap_err();
    assert!(err.to_string().contains("transform.hashSalt"), "{err}");
    assert!(err.to_string().contains("rules[0] (shop.customers).mask.email"), "{err}");
}

#[test]
fn unknown_columns_are_errors_for_known_tables_and_warnings_otherwise() {
    let rules = "rules:\n  - table: shop.customers\n    columns: {exclude: [fax]}\n    filter: \"region = 'EU'\"\n";
    let loaded = Transformer::from_yaml(rules, &TransformOptions::new()).expect("unknown table: accepted");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("fax, region") && loaded.warnings[0].contains("known yet"), "{:?}", loaded.warnings);

    let known = TransformOptions::new().with_known_tables([customers()]);
    let err = Transformer::from_yaml(rules, &known).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"region\""), "{text}");
    let ok = Transformer::from_yaml("rules:\n  - table: shop.customers\n    filter: \"status = 'x'\"\n", &known).expect("valid");
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
}

#[test]
fn versions_change_with_the_rules_and_the_key() {
    let schema = customers();
    let e = event(&schema, Op::Insert, None, Some(customer_row(1, "a", "active", "n")), 1);
    let version = |rules: &str, salt: &str| {
        let options = TransformOptions::new().with_hash_salt(salt);
        let mut t = Transformer::from_yaml(rules, &options).unwrap().transformer;
        t.apply(&e).unwrap().unwrap().schema.version
    };
    let base = version("rules:\n  - table: shop.customers\n    mask: {email: hash}\n", SALT);
    assert_eq!(base, version("rules:\n  - table: shop.customers\n    mask: {email: hash}\n", SALT), "stable across processes");
    assert_ne!(base, version("rules:\n  - table: shop.customers\n    mask: {email: hash}\n", "another-salt-of-16+chars"));
    // redact null keeps the column type of a nullable column: only the version shows the mask.
    let plain = version("rules:\n  - table: shop.customers\n    filter: \"id > 0\"\n", SALT);
    let nulled = version("rules:\n  - table: shop.customers\n    filter: \"id > 0\"\n    mask: {ssn: {redact: null}}\n", SALT);
    assert_ne!(plain, nulled);
}

proptest! {
    #[test]
    fn truncated_values_fit_and_keep_a_prefix(notes in "\\PC{0,20}", n in 1u32..10) {
        let rules = format!("rules:\n  - table: shop.customers\n    mask: {{notes: {{truncate: {n}}}}}\n");
        let mut t = transformer(&rules);
        let e = event(&customers(), Op::Insert, None, Some(customer_row(1, "a", "s", &notes)), 1);
        let out = t.apply(&e).unwrap().unwrap();
        let Value::Text(cut) = &out.after.as_ref().unwrap().values[4] else { panic!("text") };
        prop_assert!(notes.starts_with(cut.as_str()));
        prop_assert_eq!(cut.chars().count(), notes.chars().count().min(n as usize));
    }
}

#[test]
fn the_example_rules_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/transform.yml");
    let loaded = Transformer::load(&path, &TransformOptions::new().with_hash_salt(SALT)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.transformer.spec().rules.len(), 2);
    let err = Transformer::load(&path, &TransformOptions::new()).unwrap_err();
    assert_eq!(err.file.as_deref(), Some(path.as_path()), "the error names the file");
    assert!(err.to_string().starts_with(&format!("transform rules {}", path.display())), "{err}");
}
