//! `cdc-pipeline demo`: the README's first command. Starts a throwaway MariaDB with the demo
//! schema, runs the demo workload and shows what the pipeline captures from it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cdc_localdb::workload::{demo_workload_sql, DEMO_SCHEMA};
use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use cdc_mysql::{binlog_head, server_info, CapturePlan, SourceOptions, TableSelector};

/// Options of the demo run.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the demo keeps its database and output.
    #[arg(long, default_value = ".local/demo")]
    pub dir: PathBuf,
    /// Number of orders the workload inserts (updates and deletes follow at random).
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    // The server's files live in a fresh directory each run so the demo always starts from an
    // empty binlog.
    let db_dir = args.dir.join("mariadb");
    if db_dir.exists() {
        std::fs::remove_dir_all(&db_dir).with_context(|| format!("removing the previous demo database {}", db_dir.display()))?;
    }
    std::fs::create_dir_all(&db_dir).with_context(|| format!("creating {}", db_dir.display()))?;
    println!("starting a throwaway MariaDB in {} ...", db_dir.display());
    let options = LocalMariaDbOptions { data_root: Some(db_dir), ..Default::default() };
    let db = tokio::task::spawn_blocking(move || LocalMariaDb::start_with(options))
        .await
        .context("MariaDB start-up task")??;
    println!("MariaDB listening on {}:{} (user {})", db.host(), db.port(), db.user());

    let source = SourceOptions {
        host: db.host().to_owned(),
        port: db.port(),
        user: db.user().to_owned(),
        password: db.password().to_owned(),
        schema: "shop".to_owned(),
    };
    db.execute(DEMO_SCHEMA).context("creating the demo schema")?;
    let mut conn = source.connect().await?;
    let server = server_info(&mut conn).await?;
    let start = binlog_head(&mut conn, server.flavor).await?.context("the server reports no binlog position")?;

    let (sql, summary) = demo_workload_sql(args.seed, args.orders);
    println!(
        "workload: {} inserts, {} updates, {} deletes, {} schema change(s)",
        summary.inserts, summary.updates, summary.deletes, summary.schema_changes
    );
    db.execute(&sql).context("running the demo workload")?;
    let end = binlog_head(&mut conn, server.flavor).await?.context("the server reports no binlog position")?;

    drop(conn);
    let selector = TableSelector::new(&source.schema, "*", "")?;
    let plan = CapturePlan::gather(&source, &selector, Some(&start.file)).await?;
    println!();
    print!("{plan}");
    println!(
        "binlog written by the workload: {}:{} .. {}:{}{}",
        start.file,
        start.position,
        end.file,
        end.position,
        end.gtid.as_deref().map(|g| format!(" (GTID {g})")).unwrap_or_default()
    );
    println!(
        "\nA capture started from {}:{} reads these {} row changes and {} DDL statement(s).",
        start.file,
        start.position,
        summary.inserts + summary.updates + summary.deletes,
        summary.schema_changes
    );
    tokio::task::spawn_blocking(move || db.stop()).await.context("MariaDB stop task")??;
    Ok(())
}
