//! Starts a real MariaDB from Debian's package and checks it is set up for binlog capture.

use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn starts_with_row_binlog_and_a_replication_account_reachable_over_tcp() {
    let db = tokio::task::spawn_blocking(LocalMariaDb::start).await.unwrap().expect("start MariaDB");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(db.host())
        .tcp_port(db.port())
        .user(Some(db.user()))
        .pass(Some(db.password()));
    let mut conn = mysql_async::Conn::new(opts).await.expect("TCP login as the client account");
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('log_bin','binlog_format','binlog_row_image','binlog_row_metadata')",
        )
        .await
        .unwrap();
    let vars: std::collections::HashMap<_, _> = vars.into_iter().collect();
    assert_eq!(vars["log_bin"], "ON");
    assert_eq!(vars["binlog_format"], "ROW");
    assert_eq!(vars["binlog_row_image"], "FULL");
    assert_eq!(vars["binlog_row_metadata"], "FULL");

    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap();
    let grants = grants.join("\n");
    assert!(grants.contains("REPLICATION SLAVE"), "{grants}");
    assert!(grants.contains("SELECT"), "{grants}");
    conn.disconnect().await.unwrap();

    let root = db.root().to_path_buf();
    db.stop().expect("stop");
    assert!(!root.exists(), "temporary server directory {root:?} should be removed");
}

#[test]
fn a_persistent_data_root_is_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalMariaDbOptions { data_root: Some(dir.path().to_path_buf()), ..Default::default() };
    let db = LocalMariaDb::start_with(options.clone()).expect("first start");
    db.execute("CREATE DATABASE kept; CREATE TABLE kept.t (id INT PRIMARY KEY); INSERT INTO kept.t VALUES (7)")
        .unwrap();
    db.stop().unwrap();
    let db = LocalMariaDb::start_with(options).expect("second start");
    assert_eq!(db.execute("SELECT id FROM kept.t").unwrap().trim(), "7");
}

#[test]
fn a_bad_server_argument_reports_the_server_log() {
    let options = LocalMariaDbOptions { extra_args: vec!["--no-such-option=1".into()], ..Default::default() };
    let err = LocalMariaDb::start_with(options).expect_err("must fail");
    let text = err.to_string();
    assert!(text.contains("no-such-option"), "error should quote the server log: {text}");
}

#[test]
fn the_demo_workload_runs_and_leaves_the_rows_it_promises() {
    use cdc_localdb::workload::{demo_workload_sql, DEMO_SCHEMA};
    let db = LocalMariaDb::start().expect("start");
    db.execute(DEMO_SCHEMA).unwrap();
    let (sql, summary) = demo_workload_sql(42, 300);
    db.execute(&sql).unwrap();
    let orders: u64 = db.execute("SELECT COUNT(*) FROM shop.orders").unwrap().trim().parse().unwrap();
    let customers: u64 = db.execute("SELECT COUNT(*) FROM shop.customers").unwrap().trim().parse().unwrap();
    assert_eq!(orders + customers, summary.inserts - summary.deletes);
    let channel = db.execute("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_NAME='orders' AND COLUMN_NAME='channel'").unwrap();
    assert_eq!(channel.trim(), "1");
}
