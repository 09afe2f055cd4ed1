//! The source database: a MariaDB container with the binlog as capture needs it, the account
//! capture uses, the `shop.items` table, the workload (`cdc_localdb::workload`, the same as the
//! process-level pipeline test) and the table as `SELECT` shows it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use cdc_localdb::workload::{items_transaction, SplitMix64, ITEMS_SCHEMA};
use mysql_async::prelude::Queryable;
use testcontainers::core::WaitFor;
use testcontainers::{GenericImage, ImageExt};

use crate::images::ImageRef;
use crate::topology::Topology;
use crate::{wait_until, DEADLINE};

pub const ROLE: &str = "mariadb";
pub const ROOT_PASSWORD: &str = "cdc-it-root";
/// The account capture reads the binlog with.
pub const CAPTURE_USER: &str = "cdc";
pub const CAPTURE_PASSWORD: &str = "cdc-it-password";
/// `server_id` of the source; capture uses another.
pub const SERVER_ID: u32 = 1;

/// `id → (name, qty)`: the table, or what replaying changes gives.
pub type Table = BTreeMap<i64, (Option<String>, i64)>;

/// The MariaDB container as seen from the test (root, over the published port).
pub struct Source {
    pool: mysql_async::Pool,
    /// Next id the workload inserts.
    next_id: i64,
    rng: SplitMix64,
    /// Statements run so far.
    pub statements: usize,
}

/// Starts MariaDB (`MARIADB_IMAGE`; the official `mariadb` image works too) with a ROW/FULL
/// binlog, creates the capture account (REPLICATION SLAVE, REPLICATION CLIENT, SELECT) and
/// `shop.items`.
pub async fn start(topology: &mut Topology, image: &ImageRef, seed: u64) -> anyhow::Result<Source> {
    let request = GenericImage::new(image.name.clone(), image.tag.clone())
        .with_wait_for(WaitFor::message_on_stderr("ready for connections"))
        .with_env_var("MARIADB_ROOT_PASSWORD", ROOT_PASSWORD)
        .with_cmd([
            "--log-bin=binlog".to_owned(),
            format!("--server-id={SERVER_ID}"),
            "--binlog-format=ROW".to_owned(),
            "--binlog-row-image=FULL".to_owned(),
            "--binlog-row-metadata=FULL".to_owned(),
            "--innodb-buffer-pool-size=64M".to_owned(),
        ]);
    let port = topology.start(ROLE, request, &[3306]).await?.host_port(3306).await?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .pass(Some(ROOT_PASSWORD))
        .prefer_socket(false);
    let pool = mysql_async::Pool::new(opts);
    // The official image logs "ready for connections" for its initialisation server too
    // (which does not listen on TCP): wait until a TCP login works.
    wait_until("a root login to MariaDB over TCP", DEADLINE, Duration::from_millis(250), || {
        let pool = pool.clone();
        async move { Ok(pool.get_conn().await.is_ok()) }
    })
    .await?;
    let source = Source { pool, next_id: 1, rng: SplitMix64::new(seed), statements: 0 };
    source
        .execute(&format!(
            "CREATE USER '{CAPTURE_USER}'@'%' IDENTIFIED BY '{CAPTURE_PASSWORD}'; \
             GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{CAPTURE_USER}'@'%'; \
             FLUSH PRIVILEGES; {ITEMS_SCHEMA}"
        ))
        .await
        .context("creating the capture account and shop.items")?;
    Ok(source)
}

impl Source {
    /// Runs SQL (several statements allowed) as root.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let mut conn = self.pool.get_conn().await.context("connecting to MariaDB")?;
        conn.query_drop(sql).await.with_context(|| format!("running {}", excerpt(sql)))?;
        Ok(())
    }

    /// `count` workload transactions (inserts, updates, deletes), each one round trip.
    pub async fn run_workload(&mut self, count: usize) -> anyhow::Result<()> {
        let mut conn = self.pool.get_conn().await.context("connecting to MariaDB")?;
        for _ in 0..count {
            let statements = items_transaction(&mut self.rng, &mut self.next_id);
            self.statements += statements.len();
            let sql = format!("BEGIN; {}; COMMIT", statements.join("; "));
            conn.query_drop(&sql).await.with_context(|| format!("workload transaction {}", excerpt(&sql)))?;
        }
        Ok(())
    }

    /// The marker row: the last change of a test (id -1, below every workload id).
    pub async fn insert_marker(&self) -> anyhow::Result<()> {
        self.execute(&format!("INSERT INTO shop.items VALUES ({MARKER_ID}, 'marker', 0)")).await
    }

    /// `shop.items` as SELECT shows it.
    pub async fn table(&self) -> anyhow::Result<Table> {
        let mut conn = self.pool.get_conn().await.context("connecting to MariaDB")?;
        let rows: Vec<(i64, Option<String>, i64)> = conn.query("SELECT id, name, qty FROM shop.items ORDER BY id").await.context("SELECT of shop.items")?;
        Ok(rows.into_iter().map(|(id, name, qty)| (id, (name, qty))).collect())
    }

    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

/// Id of the marker row.
pub const MARKER_ID: i64 = -1;

/// Settings pointing capture at this source from inside the network.
pub fn capture_env(topology: &Topology) -> Vec<(String, String)> {
    [
        ("DATABASE_HOST", topology.host(ROLE)),
        ("DATABASE_PORT", "3306".to_owned()),
        ("DATABASE_USERNAME", CAPTURE_USER.to_owned()),
        ("DATABASE_PASSWORD", CAPTURE_PASSWORD.to_owned()),
        ("DATABASE_SCHEMA", "shop".to_owned()),
        ("DATABASE_SNAPSHOT_MODE", "never".to_owned()),
        ("DATABASE_SERVER_ID", "4343".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn excerpt(sql: &str) -> String {
    let mut text: String = sql.chars().take(200).collect();
    if text.len() < sql.len() {
        text.push('…');
    }
    text
}
