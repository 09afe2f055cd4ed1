//! Snapshot throughput on the 7-column table (BIGINT, INT, DECIMAL(12,2), VARCHAR(64),
//! DATETIME(6), TINYINT, TEXT) against a throwaway local MariaDB, side by side with a peer
//! measured in the same run: the same keyset-paged SELECTs through mysql_async without
//! conversion to events (what the server and driver cost on their own).
//!
//! ```text
//! cargo run --release -p cdc-mysql --example snapshot_throughput -- [rows] [chunk_size]
//! ```

use std::time::Instant;

use cdc_localdb::LocalMariaDb;
use cdc_mysql::{Snapshot, SnapshotConfig, SourceOptions, TableSelector};
use mysql_async::prelude::Queryable;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), AnyError> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let chunk_size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10_000);

    let db = LocalMariaDb::start()?;
    db.execute(&format!("CREATE DATABASE bench; GRANT ALL ON bench.* TO '{}'@'%'", db.user()))?;
    let opts = SourceOptions {
        host: db.host().into(),
        port: db.port(),
        user: db.user().into(),
        password: db.password().into(),
        schema: "bench".into(),
        tls: Default::default(),
    };
    let mut conn = opts.connect().await?;
    let fill = Instant::now();
    conn.query_drop(format!(
        "CREATE TABLE bench.t (id BIGINT PRIMARY KEY, n INT, amount DECIMAL(12,2), name VARCHAR(64),
         at DATETIME(6), flag TINYINT, note TEXT);
         INSERT INTO bench.t SELECT seq, seq * 7, seq / 100, CONCAT('customer-', seq),
           TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 1000001 MICROSECOND, seq % 100,
           REPEAT('lorem ipsum ', 1 + seq % 8) FROM bench.seq_1_to_{rows}"
    ))
    .await?;
    println!("filled {rows} rows in {:.1?}", fill.elapsed());

    // Peer: the same chunked SELECTs, rows left as mysql_async values.
    let started = Instant::now();
    let mut peer_rows = 0usize;
    let mut last: Option<i64> = None;
    loop {
        let chunk: Vec<mysql_async::Row> = match last {
            None => conn.exec(format!("SELECT id, n, amount, name, at, flag, note FROM bench.t ORDER BY id LIMIT {chunk_size}"), ()).await?,
            Some(key) => {
                conn.exec(
                    format!("SELECT id, n, amount, name, at, flag, note FROM bench.t WHERE id > ? ORDER BY id LIMIT {chunk_size}"),
                    (key,),
                )
                .await?
            }
        };
        peer_rows += chunk.len();
        last = chunk.last().and_then(|r| r.get::<i64, _>(0));
        if chunk.len() < chunk_size {
            break;
        }
    }
    let peer = started.elapsed();

    let config = SnapshotConfig::new("bench", 9_999, TableSelector::new("bench", "t", "")?).with_chunk_size(chunk_size);
    let started = Instant::now();
    let mut snapshot = Snapshot::start(&opts, config, None).await?;
    let mut events = 0usize;
    while let Some(chunk) = snapshot.next_chunk().await? {
        events += chunk.len();
    }
    let ours = started.elapsed();

    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("chunk size {chunk_size}");
    println!("  mysql_async SELECT only : {peer_rows:>9} rows in {peer:>9.2?}  {:>10.0} rows/s", rate(peer_rows, peer));
    println!("  Snapshot (Op::Read)     : {events:>9} rows in {ours:>9.2?}  {:>10.0} rows/s", rate(events, ours));
    Ok(())
}
