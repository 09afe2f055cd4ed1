//! The server fixture the binlog and snapshot tests share.

use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use cdc_mysql::SourceOptions;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// A private MariaDB (kept alive by the fixture), connection settings for its `cdc` user and a
/// session connection as that user.
pub struct Fixture {
    pub _db: LocalMariaDb,
    pub opts: SourceOptions,
    pub conn: Conn,
}

/// A server with database `shop` writable by the `cdc` user, started with `extra_args`, and a
/// connection as that user in UTC with an empty sql_mode (zero dates allowed).
pub async fn fixture(extra_args: &[&str]) -> Fixture {
    let db = LocalMariaDb::start_with(LocalMariaDbOptions {
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .expect("start MariaDB");
    db.execute(&format!("CREATE DATABASE shop; GRANT ALL ON shop.* TO '{}'@'%'", db.user())).expect("grant");
    let opts = SourceOptions {
        host: db.host().into(),
        port: db.port(),
        user: db.user().into(),
        password: db.password().into(),
        schema: "shop".into(),
        tls: Default::default(),
    };
    let mut conn = opts.connect().await.expect("connect");
    conn.query_drop("SET time_zone = '+00:00', sql_mode = ''").await.expect("session");
    Fixture { _db: db, opts, conn }
}
