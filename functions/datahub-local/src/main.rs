//! `datahub-local`: the embedded DataHub-compatible log server.
//!
//! Serves DataHub's API (cdc-datahub) over the on-disk log (cdc-datalog) on its own port;
//! `MONITORING_PORT` stays the ops port. The `storage` health check is UP while the log is
//! open. Its own settings are flags with environment fallbacks until they get rows in
//! cdc-config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cdc_datalog::{Datalog, FsyncPolicy, LogOptions};
use cdc_runtime::{Function, FunctionArgs};
use clap::Parser;

/// The embedded DataHub-compatible log server.
#[derive(Debug, Parser)]
#[command(name = "datahub-local", version)]
struct Cli {
    #[command(flatten)]
    common: FunctionArgs,
    #[command(flatten)]
    local: LocalArgs,
}

#[derive(Debug, Clone, clap::Args)]
struct LocalArgs {
    /// Port of the DataHub API (0 = any free port).
    #[arg(long, env = "DATAHUB_LOCAL_PORT", default_value_t = 9091)]
    port: u16,
    /// Address the API binds to.
    #[arg(long, env = "DATAHUB_LOCAL_BIND", default_value = "0.0.0.0")]
    bind: std::net::IpAddr,
    /// Directory holding projects, topics, shards and subscriptions.
    #[arg(long, env = "DATAHUB_LOCAL_DATA_DIR", default_value = "./datahub-data")]
    data_dir: PathBuf,
    /// `batch`: fsync every write before acknowledging it; `interval`: fsync every
    /// --fsync-interval-ms (a machine crash may lose that much).
    #[arg(long, env = "DATAHUB_LOCAL_FSYNC", default_value = "batch", value_parser = ["batch", "interval"])]
    fsync: String,
    #[arg(long, env = "DATAHUB_LOCAL_FSYNC_INTERVAL_MS", default_value_t = 1000)]
    fsync_interval_ms: u64,
    /// Size at which a shard's segment file is sealed and a new one started.
    #[arg(long, env = "DATAHUB_LOCAL_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    segment_bytes: u64,
    /// How often retention (each topic's lifecycle) is applied, in seconds.
    #[arg(long, env = "DATAHUB_LOCAL_RETENTION_CHECK_SECS", default_value_t = 300)]
    retention_check_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let local = cli.local.clone();
    cdc_runtime::run(cdc_config::Role::DatahubLocal, &cli.common, |function| run(function, local)).await
}

async fn run(function: Function, args: LocalArgs) -> anyhow::Result<()> {
    let fsync = match args.fsync.as_str() {
        "interval" => FsyncPolicy::Interval(Duration::from_millis(args.fsync_interval_ms.max(1))),
        _ => FsyncPolicy::EveryBatch,
    };
    let options = LogOptions::default().with_segment_bytes(args.segment_bytes).with_fsync(fsync);
    function.health().declare("storage");
    let dir = args.data_dir.clone();
    let log = tokio::task::spawn_blocking(move || Datalog::open(&dir, options))
        .await
        .context("opening the log")?
        .with_context(|| format!("opening the log in {}", args.data_dir.display()))?;
    let log = Arc::new(log);
    function.health().set_up("storage");
    function.health().set_detail("dataDir", args.data_dir.display().to_string().into());

    // Signatures are verified when the deployment gives the server DataHub credentials;
    // otherwise any credentials are accepted (local use).
    let datahub = &function.config().datahub;
    let mut config = cdc_datahub::ServerConfig::new(log.clone());
    if let (Some(id), Some(key)) = (datahub.access_id.as_ref(), datahub.access_key.as_ref()) {
        config = config.with_credentials(id.expose().to_string(), key.expose().to_string());
        tracing::info!("verifying request signatures");
    }

    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the DataHub API to {addr} (DATAHUB_LOCAL_PORT)"))?;
    let api_addr = listener.local_addr().context("reading the API address")?;
    function.health().set_detail("apiAddr", api_addr.to_string().into());
    tracing::info!(%api_addr, data_dir = %args.data_dir.display(), ?fsync, "serving the DataHub API");

    let maintenance = tokio::spawn(maintain(log.clone(), function.clone(), fsync, Duration::from_secs(args.retention_check_secs.max(1))));
    let shutdown = function.shutdown().clone();
    let served = cdc_datahub::serve(listener, config, async move { shutdown.wait().await }).await;
    maintenance.abort();
    // Whatever the fsync policy, stop with everything on disk.
    let flush = tokio::task::spawn_blocking(move || log.sync_all()).await.context("final fsync")?;
    function.health().set_down("storage", "stopped");
    served.context("DataHub API server")?;
    flush.context("final fsync")?;
    Ok(())
}

/// Periodic fsync (interval policy) and retention; a storage failure marks `storage` DOWN.
async fn maintain(log: Arc<Datalog>, function: Function, fsync: FsyncPolicy, retention_every: Duration) {
    let sync_every = match fsync {
        FsyncPolicy::Interval(d) => d,
        FsyncPolicy::EveryBatch => retention_every,
    };
    let mut sync_tick = tokio::time::interval(sync_every);
    let mut retention_tick = tokio::time::interval(retention_every);
    loop {
        let work: fn(&Datalog) -> cdc_datalog::Result<()> = tokio::select! {
            _ = sync_tick.tick() => |l| l.sync_all(),
            _ = retention_tick.tick() => |l| l.enforce_retention().map(drop),
        };
        let log = log.clone();
        match tokio::task::spawn_blocking(move || work(&log)).await {
            Ok(Ok(())) => function.health().set_up("storage"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "storage maintenance failed");
                function.health().set_down("storage", e.to_string());
            }
            Err(e) => tracing::error!(error = %e, "storage maintenance task failed"),
        }
    }
}
