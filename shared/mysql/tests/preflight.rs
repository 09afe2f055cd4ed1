//! Pre-flight checks against a real MariaDB: one test per failure, each showing its error.

use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use cdc_event::ServerFlavor;
use cdc_mysql::{preflight, server_info, PreflightFailure, SourceOptions, TableSelector};

fn start(extra_args: &[&str]) -> LocalMariaDb {
    let db = LocalMariaDb::start_with(LocalMariaDbOptions {
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .expect("start MariaDB");
    db.execute("CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, note TEXT); CREATE TABLE shop.audit (at DATETIME)")
        .expect("schema");
    db
}

fn options(db: &LocalMariaDb, user: &str, password: &str) -> SourceOptions {
    SourceOptions {
        host: db.host().into(),
        port: db.port(),
        user: user.into(),
        password: password.into(),
        schema: "shop".into(),
        tls: Default::default(),
    }
}

async fn failures(opts: &SourceOptions, tables: &str, resume_file: Option<&str>) -> Vec<PreflightFailure> {
    let mut conn = opts.connect().await.expect("connect");
    let info = server_info(&mut conn).await.expect("server info");
    assert_eq!(info.flavor, ServerFlavor::MariaDb);
    let selector = TableSelector::new(&opts.schema, tables, "").unwrap();
    match preflight(&mut conn, &info, &selector, resume_file).await.expect("queries") {
        Ok(()) => Vec::new(),
        Err(err) => {
            // Every failure's message names the fix.
            for f in &err.failures {
                assert!(f.to_string().contains("fix:"), "{f}");
            }
            err.failures
        }
    }
}

#[tokio::test]
async fn a_correctly_configured_server_passes_and_lists_tables_with_keys() {
    let db = start(&[]);
    let opts = options(&db, db.user(), db.password());
    assert_eq!(failures(&opts, "*", None).await, vec![]);
    let mut conn = opts.connect().await.unwrap();
    let tables = cdc_mysql::existing_tables(&mut conn, &TableSelector::new("shop", "*", "").unwrap())
        .await
        .unwrap();
    let names: Vec<_> = tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, ["audit", "orders"]);
    assert_eq!(tables[1].primary_key, ["id"]);
    assert!(tables[0].primary_key.is_empty());
    assert_eq!(tables[1].columns[0], ("id".to_string(), "bigint(20)".to_string()));
}

#[tokio::test]
async fn statement_format_is_reported() {
    let db = start(&["--binlog-format=STATEMENT"]);
    let opts = options(&db, db.user(), db.password());
    assert_eq!(failures(&opts, "*", None).await, vec![PreflightFailure::BinlogFormat { actual: "STATEMENT".into() }]);
}

#[tokio::test]
async fn minimal_row_image_is_reported() {
    let db = start(&["--binlog-row-image=MINIMAL"]);
    let opts = options(&db, db.user(), db.password());
    assert_eq!(failures(&opts, "*", None).await, vec![PreflightFailure::BinlogRowImage { actual: "MINIMAL".into() }]);
}

#[tokio::test]
async fn disabled_binlog_is_reported() {
    // A later --skip-log-bin overrides the fixture's --log-bin.
    let db = start(&["--skip-log-bin"]);
    let opts = options(&db, db.user(), db.password());
    let got = failures(&opts, "*", None).await;
    assert!(got.contains(&PreflightFailure::BinlogDisabled), "{got:?}");
}

#[tokio::test]
async fn missing_privileges_are_named() {
    let db = start(&[]);
    db.execute("CREATE USER 'reader'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON shop.* TO 'reader'@'%'").unwrap();
    let opts = options(&db, "reader", "pw");
    let got = failures(&opts, "*", None).await;
    assert_eq!(
        got,
        vec![PreflightFailure::MissingPrivileges {
            user: "reader@%".into(),
            missing: vec!["REPLICATION SLAVE", "REPLICATION CLIENT"]
        }]
    );
}

#[tokio::test]
async fn a_configured_table_that_does_not_exist_is_named() {
    let db = start(&[]);
    let opts = options(&db, db.user(), db.password());
    let got = failures(&opts, "orders,shipments", None).await;
    assert_eq!(got, vec![PreflightFailure::TableNotFound { database: "shop".into(), table: "shipments".into() }]);
}

#[tokio::test]
async fn a_purged_resume_position_is_reported() {
    let db = start(&[]);
    let first: String = db.execute("SHOW MASTER STATUS").unwrap().split('\t').next().unwrap().to_string();
    db.execute("FLUSH BINARY LOGS").unwrap();
    let second: String = db.execute("SHOW MASTER STATUS").unwrap().split('\t').next().unwrap().to_string();
    db.execute(&format!("PURGE BINARY LOGS TO '{second}'")).unwrap();
    let opts = options(&db, db.user(), db.password());
    let got = failures(&opts, "*", Some(&first)).await;
    assert_eq!(got, vec![PreflightFailure::PositionPurged { file: first, oldest: Some(second) }]);
}
