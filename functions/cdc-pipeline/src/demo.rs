//! `cdc-pipeline demo`: the README's first command. Starts a throwaway MariaDB with the demo
//! schema, runs the demo workload (inserts, updates, deletes, a schema change), runs the whole
//! pipeline over the binlog it wrote, and leaves Parquet files to query.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cdc_config::{Config, ConfigFile, LoadOptions, Role};
use cdc_event::Position;
use cdc_localdb::workload::{demo_workload_sql, DEMO_SCHEMA};
use cdc_localdb::{LocalMariaDb, LocalMariaDbOptions};
use cdc_mysql::{binlog_head, server_info, CapturePlan, SourceOptions, TableSelector};

use crate::pipeline::{self, PipelineOptions};

/// Options of the demo run.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the demo keeps its database, log, checkpoints and output (recreated each run).
    #[arg(long, default_value = ".local/demo")]
    pub dir: PathBuf,
    /// Number of orders the workload inserts (updates and deletes follow at random).
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output format: parquet, json or csv.
    #[arg(long, default_value = "parquet")]
    pub format: String,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let dir = std::path::absolute(&args.dir).with_context(|| format!("resolving {}", args.dir.display()))?;
    // A fresh directory each run, so the demo always starts from an empty binlog and output.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    println!("[1/4] starting a throwaway MariaDB in {} ...", dir.join("mariadb").display());
    let options = LocalMariaDbOptions { data_root: Some(dir.join("mariadb")), ..Default::default() };
    let db = tokio::task::spawn_blocking(move || LocalMariaDb::start_with(options))
        .await
        .context("MariaDB start-up task")??;
    println!("      listening on {}:{} (user {})", db.host(), db.port(), db.user());

    let source = SourceOptions {
        host: db.host().to_owned(),
        port: db.port(),
        user: db.user().to_owned(),
        password: db.password().to_owned(),
        schema: "shop".to_owned(),
        tls: Default::default(),
    };
    db.execute(DEMO_SCHEMA).context("creating the demo schema")?;
    let mut conn = source.connect().await?;
    let server = server_info(&mut conn).await?;
    let start = binlog_head(&mut conn, server.flavor).await?.context("the server reports no binlog position")?;

    let (sql, summary) = demo_workload_sql(args.seed, args.orders);
    println!(
        "[2/4] workload: {} inserts, {} updates, {} deletes, {} schema change(s)",
        summary.inserts, summary.updates, summary.deletes, summary.schema_changes
    );
    db.execute(&sql).context("running the demo workload")?;
    let end = binlog_head(&mut conn, server.flavor).await?.context("the server reports no binlog position")?;
    drop(conn);

    let plan = CapturePlan::gather(&source, &TableSelector::new("shop", "*", "")?, Some(&start.file)).await?;
    print!("{plan}");

    println!("[3/4] running capture → embedded log → {} file sink over {}:{} .. {}:{}", args.format, start.file, start.position, end.file, end.position);
    let config = demo_config(&db, &dir, &args.format)?;
    let output = PathBuf::from(&config.output.path);
    let options = PipelineOptions {
        start: Some(Position::stream(server.flavor, start.file.clone(), start.position)),
        until: Some(Position::stream(server.flavor, end.file.clone(), end.position)),
        log_dir: Some(dir.join("datahub-log")),
        ..Default::default()
    };
    let result = cdc_runtime::serve(Role::CdcPipeline, config, |function| pipeline::run(function, options)).await?;

    println!(
        "[4/4] done: {} row changes captured, {} files committed in {} checkpoints, max source lag {} ms",
        result.rows_captured, result.files_committed, result.checkpoints, result.max_lag_ms
    );
    for file in committed_files(&output)? {
        println!("      {}", file.display());
    }
    println!(
        "\nQuery them, e.g. with pyarrow (pip install pyarrow):\n  python3 -c \"import pyarrow.dataset as ds; \
         print(ds.dataset('{}/shop/orders', format='{}', partitioning='hive').to_table())\"",
        output.display(),
        if args.format == "parquet" { "parquet" } else { "json" }
    );
    tokio::task::spawn_blocking(move || db.stop()).await.context("MariaDB stop task")??;
    Ok(())
}

/// The configuration the demo runs with: embedded defaults pointed at the demo's directory,
/// with the caller's environment still able to override anything (e.g. OUTPUT_COMPRESSION).
fn demo_config(db: &LocalMariaDb, dir: &Path, format: &str) -> Result<Config> {
    let mut env: Vec<(String, String)> = db.env_vars();
    let url = |sub: &str| format!("file://{}", dir.join(sub).display());
    for (key, value) in [
        ("DATABASE_SCHEMA", "shop".to_owned()),
        ("DATABASE_SNAPSHOT_MODE", "never".to_owned()),
        ("OUTPUT_PATH", dir.join("output").display().to_string()),
        ("OUTPUT_FORMAT", format.to_owned()),
        ("OUTPUT_COMPRESSION", if format == "parquet" { "snappy" } else { "none" }.to_owned()),
        ("CHECKPOINT_DIR", url("checkpoints")),
        ("SAVEPOINT_DIR", url("savepoints")),
        ("CHECKPOINT_INTERVAL", "2000".to_owned()),
        ("CHECKPOINT_MIN_PAUSE", "0".to_owned()),
        ("MONITORING_PORT", "0".to_owned()),
    ] {
        env.push((key.to_owned(), value));
    }
    // The caller's environment wins over the demo's choices, as everywhere else.
    env.extend(std::env::vars().filter(|(k, _)| k.starts_with("OUTPUT_") || k.starts_with("LOG_") || k == "MONITORING_PORT"));
    Config::load(LoadOptions::new(Role::CdcPipeline).with_file(ConfigFile::None).with_env(env))
        .map_err(|err| anyhow::anyhow!("demo configuration: {err}"))
}

/// Committed data files under `root`, skipping the hidden in-progress directory.
fn committed_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry?.path();
            let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
